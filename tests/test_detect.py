"""hipcheck.detect: drop, sway and tilt decisions against the simulator's truth, block invariance, baseline mode."""

import numpy as np
import pytest

from hipcheck.detect import (
    BASELINE,
    DECISION_DTYPE,
    DROP,
    DROP_STRIDE,
    KIND_NAMES,
    NONE,
    SIDE_NAMES,
    SWAY,
    TILT,
    Detectors,
    detect,
)
from hipcheck.gait import LEFT, RIGHT, STRIDE_DTYPE
from hipcheck.motion import SensorModel, simulate_walk

FS_HZ = 100.0
THRESHOLD_DEG = 6.0  # the default


def stride_records(trace, rng, sway_noise_cm=0.5, drop_noise_deg=0.5):
    """STRIDE_DTYPE records from the truth strides (right IC to right IC), with measurement noise."""
    truth = trace.truth.strides
    out = np.zeros(len(truth), dtype=STRIDE_DTYPE)
    for k, s in enumerate(truth):
        length = s.end_sample - s.start_sample
        out[k]["start_sample"], out[k]["end_sample"], out[k]["side"] = s.start_sample, s.end_sample, RIGHT
        # Peaks at 37.5 % of each single support (phases 0.25 and 0.75 of the stride).
        out[k]["drop_right_stance_sample"] = s.start_sample + round(0.25 * length)
        out[k]["drop_left_stance_sample"] = s.start_sample + round(0.75 * length)
        out[k]["drop_right_stance_deg"] = s.drop_right_stance_deg + rng.normal(0, drop_noise_deg)
        out[k]["drop_left_stance_deg"] = s.drop_left_stance_deg + rng.normal(0, drop_noise_deg)
        out[k]["sway_pp_cm"] = s.sway_pp_cm + rng.normal(0, sway_noise_cm)
        out[k]["tilt_mean_deg"] = s.tilt_mean_deg + rng.normal(0, 0.5)
        out[k]["steady"] = s.steady
    return out


def noisy_angles(trace, rng, white_deg=0.7, slow_deg=0.5):
    """Truth angles plus white noise and a slow wander, as a pelvis stage might deliver them."""
    angles = trace.truth.angles_pelvis_deg.copy()
    t_s = np.arange(len(angles)) / FS_HZ
    angles += rng.normal(0.0, white_deg, angles.shape)
    angles += slow_deg * np.sin(2 * np.pi * t_s[:, None] / rng.uniform(10, 30, 3) + rng.uniform(0, 6, 3))
    return angles


def walk(seed, **settings):
    return simulate_walk(duration_s=60, seed=seed, fs_hz=FS_HZ, sensor=SensorModel.ideal(), **settings)


def step_outcomes(trace, decisions):
    """Per single support: (truth drop, stance side, fired on that side, fired on the other side)."""
    drops = decisions[decisions["kind"] == DROP]
    rows = []
    for s in trace.truth.strides:
        length = s.end_sample - s.start_sample
        windows = {RIGHT: (s.start_sample + 0.1 * length, s.start_sample + 0.5 * length),
                   LEFT: (s.start_sample + 0.6 * length, s.end_sample)}
        for side, value in ((RIGHT, s.drop_right_stance_deg), (LEFT, s.drop_left_stance_deg)):
            lo, hi = windows[side]
            inside = drops[(drops["sample"] >= lo) & (drops["sample"] < hi + 0.1 * FS_HZ)]
            rows.append((value, side, bool(np.any(inside["side"] == side)), bool(np.any(inside["side"] != side))))
    return rows


def test_drop_sensitivity_specificity_and_side():
    outcomes = []
    for seed, (right, left) in enumerate([(8, 4), (4, 8), (9, 3.5), (3, 10), (8.5, 8.5), (4, 4)]):
        trace = walk(seed, drop_right_deg=right, drop_left_deg=left, amplitude_cv=0.1)
        rng = np.random.default_rng(seed)
        decisions = detect(noisy_angles(trace, rng), stride_records(trace, rng), FS_HZ)
        outcomes += step_outcomes(trace, decisions)
    positives = [o for o in outcomes if o[0] >= THRESHOLD_DEG + 2]
    negatives = [o for o in outcomes if o[0] <= THRESHOLD_DEG - 2]
    sensitivity = np.mean([o[2] for o in positives])
    specificity = 1.0 - np.mean([o[2] for o in negatives])
    assert len(positives) > 150 and len(negatives) > 150
    assert sensitivity >= 0.95, sensitivity
    assert specificity >= 0.95, specificity
    assert not any(o[3] for o in outcomes if o[2] or o[0] >= THRESHOLD_DEG + 2), "a drop was named by the wrong side"


def test_drop_names_the_stance_side_on_the_crossing_sample():
    obliquity = np.zeros(200)
    obliquity[50:80] = -8.0  # left side low: right single support, weak right hip
    obliquity[150:170] = +8.0  # right side low: left stance
    angles = np.column_stack([np.zeros(200), obliquity, np.zeros(200)])
    decisions = detect(angles, None, FS_HZ, {"drop_smooth_s": 0.01})
    assert decisions.dtype == DECISION_DTYPE
    assert decisions["sample"].tolist() == [50, 150]
    assert [SIDE_NAMES[s] for s in decisions["side"]] == ["right", "left"]
    assert [KIND_NAMES[k] for k in decisions["kind"]] == ["drop", "drop"]
    assert np.allclose(decisions["value"], 8.0) and np.allclose(decisions["threshold"], THRESHOLD_DEG)


def test_hysteresis_and_refractory_time():
    # Chatter around the threshold fires once; a second real drop inside the refractory time does not fire.
    obliquity = np.zeros(300)
    obliquity[10:40] = -np.where(np.arange(30) % 2, 6.5, 5.5)  # crosses up and down, never below 4° (re-arm)
    obliquity[45:55] = -8.0  # re-armed, but 0.34 s after the first decision: inside the 0.5 s refractory time
    obliquity[100:110] = -8.0  # 0.9 s after the first: fires
    obliquity[130:140] = -8.0  # 0.3 s after the previous: inside it
    angles = np.column_stack([np.zeros(300), obliquity, np.zeros(300)])
    decisions = detect(angles, None, FS_HZ, {"drop_smooth_s": 0.01})
    assert decisions["sample"].tolist() == [11, 100]


def test_sway_and_tilt_fire_per_stride():
    rng = np.random.default_rng(5)
    wide = walk(5, sway_cm=9.0, tilt_mean_deg=12.0)
    decisions = detect(noisy_angles(wide, rng), stride_records(wide, rng), FS_HZ)
    sway = decisions[decisions["kind"] == SWAY]
    tilt = decisions[decisions["kind"] == TILT]
    assert len(sway) >= 1 and np.all(sway["value"] >= sway["threshold"]) and np.all(sway["side"] == NONE)
    assert len(tilt) >= 1 and np.all(tilt["value"] >= 8.0)
    ends = {s.end_sample for s in wide.truth.strides}
    assert set(sway["sample"]) <= ends and set(tilt["sample"]) <= ends

    back = walk(6, tilt_mean_deg=-12.0)
    tilt_back = detect(noisy_angles(back, rng), stride_records(back, rng), FS_HZ)
    tilt_back = tilt_back[tilt_back["kind"] == TILT]
    assert len(tilt_back) >= 1 and np.all(tilt_back["value"] <= tilt_back["threshold"])
    assert np.all(tilt_back["threshold"] == -8.0)

    healthy = walk(7)
    quiet = detect(noisy_angles(healthy, rng), stride_records(healthy, rng), FS_HZ)
    assert not np.any(np.isin(quiet["kind"], [SWAY, TILT, DROP, DROP_STRIDE]))


def concatenated(traces, rng):
    """One session of several walks: angles end to end, strides shifted to the session's sample numbers."""
    angles, strides, offset = [], [], 0
    for trace in traces:
        angles.append(noisy_angles(trace, rng))
        records = stride_records(trace, rng)
        for field in ("start_sample", "end_sample", "drop_right_stance_sample", "drop_left_stance_sample"):
            records[field] += offset
        strides.append(records)
        offset += len(trace.t_s)
    return np.concatenate(angles), np.concatenate(strides)


def test_baseline_mode_learns_then_flags_a_change():
    rng = np.random.default_rng(11)
    angles, strides = concatenated([walk(11, drop_right_deg=3, drop_left_deg=3),
                                    walk(12, drop_right_deg=7, drop_left_deg=3)], rng)
    detectors = Detectors(FS_HZ, {"mode": BASELINE})
    decisions = detectors.update(angles, strides)
    assert detectors.baseline_ready
    thresholds = detectors.thresholds
    # 3° ± noise: mean + max(3 SD, 1.5°) lands a little under 5°, well under the fixed 6°.
    assert 4.0 < thresholds["drop_right_stance_deg"] < 6.0
    first_walk_end = len(walk(11).t_s)
    drops = decisions[np.isin(decisions["kind"], [DROP, DROP_STRIDE])]
    assert np.all(drops["side"] == RIGHT)
    late = drops[drops["sample"] >= first_walk_end]
    assert np.mean(late["kind"] == DROP) > 0 and len(drops[drops["sample"] < first_walk_end]) <= 2


@pytest.mark.parametrize("mode", ["fixed", "baseline"])
def test_block_size_invariance(mode):
    rng = np.random.default_rng(3)
    angles, strides = concatenated([walk(3, drop_right_deg=7, drop_left_deg=5, sway_cm=6.5, amplitude_cv=0.1)], rng)
    settings = {"mode": BASELINE, "baseline_strides": 10} if mode == "baseline" else None
    whole = detect(angles, strides, FS_HZ, settings)
    assert len(whole) >= 2

    detectors = Detectors(FS_HZ, settings)
    pieces, start, delivered = [], 0, 0
    while start < len(angles):
        stop = min(len(angles), start + int(rng.integers(1, 501)))
        # The stride stage hands a stride over some 0.3 s after it ends, in whichever block that falls.
        ready = delivered + int(np.sum(strides["end_sample"][delivered:] + 30 < stop))
        pieces.append(detectors.update(angles[start:stop], strides[delivered:ready]))
        delivered, start = ready, stop
    pieces.append(detectors.update(np.zeros((0, 3)), strides[delivered:]))
    blocks = np.concatenate(pieces)
    order = lambda d: d[np.lexsort((d["side"], d["kind"], d["sample"]))]  # noqa: E731
    np.testing.assert_array_equal(order(whole), order(blocks))


def test_gaps_and_bad_input():
    angles = np.zeros((100, 3))
    angles[40:45, 1] = np.nan
    angles[60:80, 1] = -9.0
    decisions = detect(angles, None, FS_HZ)
    # The 5-sample average starts again after the gap and reaches 6° on the 4th sample at −9° (−7.2°).
    assert decisions["sample"].tolist() == [63]
    with pytest.raises(ValueError, match="rotation, obliquity, tilt"):
        detect(np.zeros((10, 2)), None, FS_HZ)
    with pytest.raises(TypeError, match="unknown detector setting"):
        Detectors(FS_HZ, {"drop_thresold_deg": 5})
    with pytest.raises(TypeError, match="STRIDE_DTYPE"):
        Detectors(FS_HZ).update(np.zeros((3, 3)), np.zeros(2))
