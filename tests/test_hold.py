"""hipcheck.hold (re-exported by hipcheck.detect): single-leg holds found, timed and scored against the truth."""

import numpy as np
import pytest

from hipcheck.detect import HOLD_DTYPE, HoldAnalyzer, analyze_holds
from hipcheck.gait import LEFT, RIGHT
from hipcheck.motion import simulate_hold, simulate_stand, simulate_walk

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
    assert not hold["capped"]


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


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_holds_while_walking_or_standing(seed):
    rng = np.random.default_rng(seed)
    walk = simulate_walk(duration_s=60, seed=seed, fs_hz=FS_HZ, drop_right_deg=8, sway_cm=6)
    assert len(analyze_holds(noisy_angles(walk, rng), level_acc(walk, rng), FS_HZ)) == 0
    stand = simulate_stand(duration_s=30, seed=seed, fs_hz=FS_HZ, sway_rms_cm=0.5)
    assert len(analyze_holds(noisy_angles(stand, rng), level_acc(stand, rng), FS_HZ)) == 0


def test_live_state_and_block_invariance():
    trace = simulate_hold(duration_s=25, seed=8, fs_hz=FS_HZ, side="left", drop_deg=2, touchdowns=(10.0,))
    rng = np.random.default_rng(8)
    angles, acc = noisy_angles(trace, rng), level_acc(trace, rng)
    whole = analyze_holds(angles, acc, FS_HZ)

    analyzer = HoldAnalyzer(FS_HZ)
    pieces, start, seen = [], 0, {}
    while start < len(angles):
        stop = min(len(angles), start + int(rng.integers(1, 501)))
        pieces.append(analyzer.update(angles[start:stop], acc[start:stop]))
        for t_s in (2.0, 8.0, 15.0):
            if start <= t_s * FS_HZ < stop:
                seen[t_s] = (analyzer.holding, analyzer.hold_time_s, analyzer.stance_side)
        start = stop
    np.testing.assert_array_equal(whole, np.concatenate(pieces))

    analyzer = HoldAnalyzer(FS_HZ)
    analyzer.update(angles[:1200], acc[:1200])  # 12 s: after the touchdown at 10 s
    assert analyzer.holding and analyzer.stance_side == LEFT and analyzer.touchdowns == 1
    assert analyzer.hold_time_s == pytest.approx(12.0 - 3.0, abs=0.3)


def test_capped_hold_and_bad_input():
    trace = simulate_hold(duration_s=20, seed=4, fs_hz=FS_HZ)
    rng = np.random.default_rng(4)
    holds = analyze_holds(noisy_angles(trace, rng), level_acc(trace, rng), FS_HZ, {"max_hold_s": 6.0})
    assert len(holds) == 1 and holds[0]["capped"] and holds[0]["hold_time_s"] == pytest.approx(6.0, abs=0.01)
    with pytest.raises(ValueError, match=r"\(n, 3\)"):
        analyze_holds(np.zeros((10, 3)), np.zeros((9, 3)), FS_HZ)
    with pytest.raises(TypeError, match="unknown hold setting"):
        HoldAnalyzer(FS_HZ, {"min_hold": 1})
