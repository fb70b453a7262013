"""hipcheck.hold: single-leg holds found, timed and scored against the truth."""

import numpy as np
import pytest

from hipcheck.exercises import analyze_guided_holds
from hipcheck.hold import HOLD_DTYPE, HoldAnalyzer, analyze_holds
from hipcheck.fusion import orient
from hipcheck.gait import LEFT, RIGHT
from hipcheck.motion import SensorModel, simulate_hold, simulate_sit_to_stand, simulate_stand, simulate_walk
from hipcheck.pelvis import PelvisTracker

FS_HZ = 100.0


def level_acc(trace, rng, noise_m_s2=0.05, bias_m_s2=0.03):
    """acc_level_m_s2 from the truth: earth-frame acceleration turned by the pelvis rotation (x forward, y left),
    plus white noise and a constant bias per axis (levelling error of a few tenths of a degree)."""
    acc = trace.truth.acc_pelvis_m_s2
    rotation = np.radians(trace.truth.angles_pelvis_deg[:, 0])
    c, s = np.cos(rotation), np.sin(rotation)
    level = np.column_stack([c * acc[:, 0] + s * acc[:, 1], -s * acc[:, 0] + c * acc[:, 1], acc[:, 2]])
    return level + rng.normal(0.0, noise_m_s2, level.shape) + rng.uniform(-bias_m_s2, bias_m_s2, 3)


def noisy_angles(trace, rng, white_deg=0.7):
    return trace.truth.angles_pelvis_deg + rng.normal(0.0, white_deg, trace.truth.angles_pelvis_deg.shape)


CASES = [
    dict(side="right", drop_deg=3.0, touchdowns=(12.0,), tilt_drift_deg=2.0),
    dict(side="left", drop_deg=-2.0, touchdowns=(), tilt_drift_deg=-2.0),
    dict(side="right", drop_deg=0.0, touchdowns=(9.0, 17.0), tilt_drift_deg=0.0),
    dict(side="left", drop_deg=5.0, touchdowns=(15.0,), tilt_drift_deg=1.0),
    dict(side="right", drop_deg=-3.0, touchdowns=(), tilt_drift_deg=-1.0, lift_s=4.0, hold_s=15.0),
    dict(side="left", drop_deg=0.0, touchdowns=(), tilt_drift_deg=3.0),
]


@pytest.mark.parametrize("seed, case", list(enumerate(CASES)))
def test_hold_against_truth(seed, case):
    trace = simulate_hold(duration_s=30, seed=seed, fs_hz=FS_HZ, **case)
    rng = np.random.default_rng(seed)
    holds = analyze_holds(noisy_angles(trace, rng), level_acc(trace, rng), FS_HZ)
    truth = [i for i in trace.truth.intervals if i.kind == "hold"][0]
    summary = trace.summary()
    assert holds.dtype == HOLD_DTYPE and len(holds) == 1
    hold = holds[0]
    assert hold["side"] == (RIGHT if case["side"] == "right" else LEFT)
    assert abs(hold["start_sample"] / FS_HZ - truth.start_s) < 0.3
    assert abs(hold["end_sample"] / FS_HZ - truth.end_s) < 0.3
    assert abs(hold["hold_time_s"] - (truth.end_s - truth.start_s)) < 0.4
    assert abs(hold["drop_deg"] - summary["free_side_drop_deg_mean"]) < 0.5
    assert abs(hold["tilt_drift_deg"] - summary["tilt_drift_deg"]) < 0.6
    assert hold["touchdowns"] == len(case["touchdowns"])
    assert 2.5 < hold["shift_cm"] < 8.0  # the simulated weight shift is 5 cm, plus sway
    assert hold["sway_ratio"] > 1.5  # sway grows on one leg (0.8 cm against 0.25 cm RMS here)
    assert not hold["capped"] and not hold["ended_by_stream_end"]
    assert 0.5 * hold["shift_cm"] <= hold["return_shift_cm"]


def test_sway_metrics_follow_their_definitions():
    trace = simulate_hold(duration_s=20, seed=3, fs_hz=FS_HZ)
    rng = np.random.default_rng(3)
    calm = analyze_holds(noisy_angles(trace, rng), level_acc(trace, rng), FS_HZ)[0]
    wobbly_trace = simulate_hold(duration_s=20, seed=3, fs_hz=FS_HZ, sway_rms_cm=1.6)
    wobbly = analyze_holds(noisy_angles(wobbly_trace, rng), level_acc(wobbly_trace, rng), FS_HZ)[0]
    for name in ("sway_rms_m_s2", "jerk_m2_s5", "jerk_rms_m_s3", "path_m_s2", "ellipse_95_m2_s4"):
        assert wobbly[name] > 1.5 * calm[name], name
    # Mancini's JERK integrates over the hold: ½ · mean |da/dt|² · time (the kept samples, about the hold).
    assert calm["jerk_m2_s5"] == pytest.approx(0.5 * calm["jerk_rms_m_s3"] ** 2 * calm["hold_time_s"], rel=0.1)
    assert calm["sway_rms_m_s2"] ** 2 == pytest.approx(calm["sway_rms_ap_m_s2"] ** 2 + calm["sway_rms_ml_m_s2"] ** 2)
    # 95 % ellipse ≤ 6π·s_ap·s_ml (equality without correlation).
    assert calm["ellipse_95_m2_s4"] <= 6 * np.pi * calm["sway_rms_ap_m_s2"] * calm["sway_rms_ml_m_s2"] * 1.01


def pipeline(trace):
    """The real stages: causal fusion, then the pelvis stage (automatic alignment)."""
    q = orient(trace.acc_sensor_m_s2, trace.gyr_sensor_rad_s, FS_HZ)
    return PelvisTracker(FS_HZ).update(q, trace.acc_sensor_m_s2)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_holds_while_walking_or_standing(seed):
    """No hold (analyze_holds flushes, so even one left open would show) in walks with turns, quiet stands and
    sit-to-stand, from truth + noise and through fusion → pelvis."""
    rng = np.random.default_rng(seed)
    traces = [simulate_walk(duration_s=60, seed=seed, fs_hz=FS_HZ, drop_right_deg=8, sway_cm=6,
                            turns=[(20.0, 90.0, 2.0), (40.0, -180.0, 3.0)]),
              simulate_stand(duration_s=30, seed=seed, fs_hz=FS_HZ, sway_rms_cm=0.5),
              simulate_sit_to_stand(duration_s=20, seed=seed, fs_hz=FS_HZ)]
    for trace in traces:
        assert len(analyze_holds(noisy_angles(trace, rng), level_acc(trace, rng), FS_HZ)) == 0, trace.activity
        assert len(analyze_holds(*pipeline(trace), FS_HZ)) == 0, trace.activity


@pytest.mark.parametrize("stop_s", [25.0, 16.0, 22.6])  # all of it; mid-hold; 0.6 s after lowering (at 22 s)
def test_live_state_and_block_invariance(stop_s):
    trace = simulate_hold(duration_s=25, seed=8, fs_hz=FS_HZ, side="left", drop_deg=2, touchdowns=(10.0,))
    rng = np.random.default_rng(8)
    n = int(stop_s * FS_HZ)
    angles, acc = noisy_angles(trace, rng)[:n], level_acc(trace, rng)[:n]
    whole = analyze_holds(angles, acc, FS_HZ)
    assert len(whole) == 1 and whole[0]["ended_by_stream_end"] == (stop_s == 16.0)

    analyzer = HoldAnalyzer(FS_HZ)
    pieces, start, seen = [], 0, {}
    while start < len(angles):
        stop = min(len(angles), start + int(rng.integers(1, 501)))
        pieces.append(analyzer.update(angles[start:stop], acc[start:stop]))
        for t_s in (2.0, 8.0, 15.0):
            if start <= t_s * FS_HZ < stop:
                seen[t_s] = (analyzer.holding, analyzer.hold_time_s, analyzer.stance_side)
        start = stop
    pieces.append(analyzer.flush())
    np.testing.assert_array_equal(whole, np.concatenate(pieces))
    assert not analyzer.holding and len(analyzer.flush()) == 0

    analyzer = HoldAnalyzer(FS_HZ)
    analyzer.update(angles[:1200], acc[:1200])  # 12 s: after the touchdown at 10 s
    assert analyzer.holding and analyzer.stance_side == LEFT and analyzer.touchdowns == 1
    assert analyzer.hold_time_s == pytest.approx(12.0 - 3.0, abs=0.3)
    flushed = analyzer.flush()  # the stream stops here: the hold so far, marked
    assert len(flushed) == 1 and flushed[0]["ended_by_stream_end"] and flushed[0]["end_sample"] == 1200
    assert flushed[0]["hold_time_s"] == pytest.approx(9.0, abs=0.3) and flushed[0]["touchdowns"] == 1
    truth_end = 22.0
    if stop_s == 22.6:  # stopped during the confirmation: the lowering seen so far agrees, so it is the end
        assert whole[0]["end_sample"] / FS_HZ == pytest.approx(truth_end, abs=0.3)


def test_capped_hold_and_bad_input():
    trace = simulate_hold(duration_s=20, seed=4, fs_hz=FS_HZ)
    rng = np.random.default_rng(4)
    holds = analyze_holds(noisy_angles(trace, rng), level_acc(trace, rng), FS_HZ, {"max_hold_s": 6.0})
    assert len(holds) == 1 and holds[0]["capped"] and holds[0]["hold_time_s"] == pytest.approx(6.0, abs=0.01)
    with pytest.raises(ValueError, match=r"\(n, 3\)"):
        analyze_holds(np.zeros((10, 3)), np.zeros((9, 3)), FS_HZ)
    with pytest.raises(TypeError, match="unknown hold setting"):
        HoldAnalyzer(FS_HZ, {"min_hold": 1})


# ------------------------------------------------------------------------------------------------ random sweep


def sweep_case(seed):
    """One random hold (seed → everything): side, hold 15–70 s, lift after 3.5–6 s of stance, 0.8–5 s of stance
    after lowering, drop −4..+8°, 0–2 touchdowns, tilt drift ±3°, one-leg sway 0.4–1.6 cm RMS (two-leg 0.15–0.3),
    weight shift 3.5–6.5 cm, any heading; realistic sensor with a mounting rotation of up to 20° about a random axis."""
    rng = np.random.default_rng([seed, 7])
    hold_s, lift_s, tail_s = rng.uniform(15, 70), rng.uniform(3.5, 6.0), rng.uniform(0.8, 5.0)
    touchdowns = tuple(sorted(rng.uniform(lift_s + 1.5, lift_s + hold_s - 2.0, int(rng.integers(0, 3)))))
    if len(touchdowns) == 2 and touchdowns[1] - touchdowns[0] < 1.5:
        touchdowns = touchdowns[:1]
    axis = rng.normal(size=3)
    mounting = tuple(axis / np.linalg.norm(axis) * rng.uniform(0, 20))
    case = dict(duration_s=lift_s + hold_s + tail_s, lift_s=lift_s, hold_s=hold_s,
                side=str(rng.choice(["left", "right"])), drop_deg=rng.uniform(-4, 8), touchdowns=touchdowns,
                tilt_drift_deg=rng.uniform(-3, 3), sway_rms_cm=rng.uniform(0.4, 1.6),
                baseline_sway_rms_cm=rng.uniform(0.15, 0.3), weight_shift_cm=rng.uniform(3.5, 6.5),
                heading_deg=rng.uniform(-180, 180))
    sensor = SensorModel.realistic(seed=seed + 1000, mounting_rpy_deg=mounting)
    return simulate_hold(fs_hz=FS_HZ, seed=seed, sensor=sensor, **case), case


def sweep(seeds, through_pipeline):
    """Per case: holds found, and for the one nearest the truth its errors against the truth."""
    rows = []
    for seed in seeds:
        trace, case = sweep_case(seed)
        if through_pipeline:
            angles, acc = pipeline(trace)
        else:
            rng = np.random.default_rng(seed)
            angles = noisy_angles(trace, rng)
            # The truth's level-frame acceleration (the rotation angle includes the heading).
            acc = level_acc(trace, rng)
        rows.append(sweep_row(seed, trace, case, analyze_holds(angles, acc, FS_HZ)))
    return rows


def sweep_row(seed, trace, case, holds):
    """One sweep case's errors against the truth: the hold found nearest the true one (n: how many were found)."""
    truth = [i for i in trace.truth.intervals if i.kind == "hold"][0]
    summary = trace.summary()
    row = dict(seed=seed, n=len(holds))
    if len(holds):
        h = holds[np.argmin(np.abs(holds["start_sample"] / FS_HZ - truth.start_s))]
        row.update(side=h["side"] == (LEFT if case["side"] == "left" else RIGHT),
                   start=abs(h["start_sample"] / FS_HZ - truth.start_s),
                   end=abs(h["end_sample"] / FS_HZ - truth.end_s),
                   hold=abs(h["hold_time_s"] - (truth.end_s - truth.start_s)),
                   drop=abs(h["drop_deg"] - summary["free_side_drop_deg_mean"]),
                   drift=abs(h["tilt_drift_deg"] - summary["tilt_drift_deg"]))
    return row


LIMITS = dict(start=0.3, end=0.3, hold=0.5, drop=1.0, drift=1.0)


def meets_targets(row):
    return row["n"] == 1 and row["side"] and all(row[k] <= v for k, v in LIMITS.items())


SWEEP_SEEDS = range(24)  # a fixed block of seeds, not chosen by result


def test_sweep_truth_plus_noise():
    """Regression guard on truth + noise (0.7° angle noise, 0.05 m/s² acceleration noise, constant bias): the
    figures the step-fit detector reaches on seeds 0–23 (all 24 found exactly once, 22 on the right side and
    meeting every target). The targets themselves are in test_sweep_pipeline_targets."""
    rows = sweep(SWEEP_SEEDS, through_pipeline=False)
    assert all(r["n"] == 1 for r in rows)
    assert sum(r["side"] for r in rows) >= 22
    assert sum(meets_targets(r) for r in rows) >= 22


@pytest.mark.xfail(strict=True, reason="not met yet through fusion → pelvis: 19 of seeds 0–23 meet every target "
                                       "(20 found exactly once, 21 side right); false lift-offs from one-leg-sized sway "
                                       "steps (docs/detectors.md, limits)")
def test_sweep_pipeline_targets():
    """The targets, on the real stages (fusion → pelvis → hold analyser): every hold found exactly once, side
    right, start and end within 0.3 s, hold time within 0.5 s, drop and tilt drift within 1°."""
    rows = sweep(SWEEP_SEEDS, through_pipeline=True)
    assert all(meets_targets(r) for r in rows), [r for r in rows if not meets_targets(r)]


# ------------------------------------------------------------------------------------------------ user-started holds


def user_key_s(seed, lift_s, countdown_s=3.0):
    """When the user pressed the key: the countdown before the lift-off, the reaction to its "go" drawn from
    −0.3 s (lifted early) to +0.8 s (its own generator, so the sweep's cases are the automatic finder's)."""
    reaction_s = np.random.default_rng([seed, 11]).uniform(-0.3, 0.8)
    return max(0.0, lift_s - countdown_s - reaction_s)


def guided_sweep(seeds):
    rows = []
    for seed in seeds:
        trace, case = sweep_case(seed)
        angles, acc = pipeline(trace)
        key = int(round(user_key_s(seed, case["lift_s"]) * FS_HZ))
        # The sweep's holds run to 70 s: a timer of 75 s lets each end at its lowering.
        _, holds = analyze_guided_holds(angles, acc, FS_HZ, [key], {"target_s": 75.0})
        rows.append(sweep_row(seed, trace, case, holds))
    return rows


GUIDED_LIMITS = dict(start=0.5, end=0.5, hold=0.5, drop=1.0, drift=1.0)


def guided_meets_targets(row):
    return row["n"] == 1 and row["side"] and all(row[k] <= v for k, v in GUIDED_LIMITS.items())


def test_sweep_pipeline_targets_user_started():
    """The targets for holds the user starts, on the real stages (fusion → pelvis → GuidedHold), seeds 0–23 of the
    sweep: every hold found once, side right, start, end and hold time within 0.5 s, drop and tilt drift within 1°
    (the automatic finder meets them on 19: the user's start tells the lift-off from one-leg sway steps)."""
    rows = guided_sweep(SWEEP_SEEDS)
    assert all(guided_meets_targets(r) for r in rows), [r for r in rows if not guided_meets_targets(r)]
