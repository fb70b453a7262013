"""Pelvis stage: automatic alignment and Baker angles against the simulator's truth, signs, streaming, bad input.

Orientation input: the simulator's true q_sensor_to_earth (isolates this stage's errors) and a real filter
(hipcheck.fusion, causal) for the end-to-end figure.
"""

import numpy as np
import pytest
from walk_scenarios import WALKS

from hipcheck.fusion import orient
from hipcheck.motion import PHASE_OTHER, SensorModel, simulate_hold, simulate_sit, simulate_stand, simulate_walk
from hipcheck.pelvis import PelvisTracker, pelvis_angles
from hipcheck.rotation import matrix_from_quat, quat_from_angles, quat_multiply
from hipcheck.units import GRAVITY_M_S2, RAD_PER_DEG


def real_filter(trace) -> np.ndarray:
    """q_sensor_to_earth from our causal fusion, as the pipeline feeds it."""
    return orient(trace.acc_sensor_m_s2, trace.gyr_sensor_rad_s, trace.fs_hz)


def walking_rmse(trace, angles) -> np.ndarray:
    """RMSE (deg) of obliquity and tilt over walking samples with an output."""
    ok = (trace.truth.phase != PHASE_OTHER) & np.isfinite(angles[:, 1])
    assert ok.sum() > 0.9 * (trace.truth.phase != PHASE_OTHER).sum()
    return np.sqrt(np.mean((angles[ok, 1:] - trace.truth.angles_pelvis_deg[ok, 1:]) ** 2, axis=0))


def axis_error_deg(q_estimate, q_truth) -> float:
    """Largest angle between corresponding pelvis axes of two alignments."""
    A, B = matrix_from_quat(q_estimate), matrix_from_quat(q_truth)
    return float(np.degrees(np.arccos(np.clip(np.sum(A * B, axis=1), -1, 1))).max())




@pytest.mark.parametrize("mounting, settings", WALKS)
def test_automatic_alignment_with_true_orientation(mounting, settings):
    trace = simulate_walk(duration_s=60, seed=3, sensor=SensorModel.realistic(seed=3, mounting_rpy_deg=mounting),
                          **settings)
    tracker = PelvisTracker(trace.fs_hz)
    angles, acc_level = tracker.update(trace.truth.q_sensor_to_earth, trace.acc_sensor_m_s2)
    assert tracker.aligned and tracker.vertical_source == "stand"
    # Turns bias the forward axis a little (about 1.3° with the two turns here).
    assert axis_error_deg(tracker.alignment, trace.truth.q_sensor_to_pelvis) < 2.0
    assert np.all(walking_rmse(trace, angles) <= 0.5)  # the acceptance is 1.0°; this stage alone does far better
    # Level-frame acceleration: lateral is the pelvis's sway acceleration (truth: second derivative of sway_m).
    walking = trace.truth.phase != PHASE_OTHER
    assert abs(np.nanmean(acc_level[walking, 2])) < 0.2


def test_automatic_alignment_with_a_real_filter():
    trace = simulate_walk(duration_s=60, seed=1, drop_right_deg=8,
                          sensor=SensorModel.realistic(seed=1, mounting_rpy_deg=(8, -20, 12)))
    angles, _ = pelvis_angles(real_filter(trace), trace.acc_sensor_m_s2, trace.fs_hz)
    assert np.all(walking_rmse(trace, angles) <= 1.0)


def test_offline_alignment_covers_the_whole_recording():
    trace = simulate_walk(duration_s=40, seed=5, sensor=SensorModel.realistic(seed=5, mounting_rpy_deg=(-8, -18, 15)))
    angles, _ = pelvis_angles(trace.truth.q_sensor_to_earth, trace.acc_sensor_m_s2, trace.fs_hz, offline=True)
    assert np.all(np.isfinite(angles))
    assert np.all(walking_rmse(trace, angles) <= 0.1)


def test_vertical_from_walking_when_there_is_no_still_start():
    trace = simulate_walk(duration_s=40, seed=6, start_rest_s=0.0, drop_left_deg=4, drop_right_deg=4,
                          sensor=SensorModel.realistic(seed=6, mounting_rpy_deg=(5, -12, 8)))
    tracker = PelvisTracker(trace.fs_hz)
    angles, _ = tracker.update(trace.truth.q_sensor_to_earth, trace.acc_sensor_m_s2)
    assert tracker.vertical_source == "walking" and tracker.aligned
    # Tilt is then relative to the mean walking posture (0 here), and symmetric drops leave obliquity level.
    assert np.all(walking_rmse(trace, angles) <= 1.0)


def test_signs_follow_baker():
    """Left side up → obliquity +, anterior tilt → tilt +, pelvis turned left → rotation +."""
    fs = 100.0
    mounting = np.array(SensorModel.realistic(mounting_rpy_deg=(6, -15, 9)).q_sensor_to_pelvis)
    n = 300
    angles_true = np.zeros((n, 3))
    angles_true[150:, :] = [10.0, 4.0, -3.0]  # after 1.5 s: turned left 10°, left side up 4°, tilted back 3°
    q_pelvis = quat_from_angles(angles_true * RAD_PER_DEG)
    q_sensor = quat_multiply(q_pelvis, mounting)
    acc = np.einsum("nji,j->ni", matrix_from_quat(q_sensor), np.array([0, 0, GRAVITY_M_S2]))
    out, acc_level = pelvis_angles(q_sensor, acc, fs, alignment=mounting)
    np.testing.assert_allclose(out[-1, 1:], [4.0, -3.0], atol=1e-9)
    assert out[151, 0] > 5.0  # just after the turn: rotation + (left); the walking direction then follows it
    assert abs(out[-1, 0]) < 1e-6
    np.testing.assert_allclose(acc_level, 0.0, atol=1e-9)  # still: no acceleration once gravity is removed


def test_hold_uses_the_stand_and_nominal_forward():
    trace = simulate_hold(duration_s=30, side="right", drop_deg=5, seed=2,
                          sensor=SensorModel.realistic(seed=2, mounting_rpy_deg=(4, -15, 6)))
    tracker = PelvisTracker(trace.fs_hz)
    angles, _ = tracker.update(trace.truth.q_sensor_to_earth, trace.acc_sensor_m_s2)
    assert tracker.vertical_source == "stand" and not tracker.aligned  # no walking: forward is the nominal one
    ok = np.isfinite(angles[:, 1])
    err = angles[ok, 1:] - trace.truth.angles_pelvis_deg[ok, 1:]
    assert np.all(np.sqrt(np.mean(err ** 2, axis=0)) <= 1.0)


def test_block_size_invariance():
    trace = simulate_walk(duration_s=30, seed=7, drop_right_deg=8, turns=[(15, 60, 2)],
                          sensor=SensorModel.realistic(seed=7, mounting_rpy_deg=(8, -20, 12)))
    q, acc = trace.truth.q_sensor_to_earth, trace.acc_sensor_m_s2
    whole = PelvisTracker(trace.fs_hz).update(q, acc)
    rng = np.random.default_rng(0)
    tracker = PelvisTracker(trace.fs_hz)
    parts, i = [], 0
    while i < len(q):
        n = int(rng.integers(1, 501))
        parts.append(tracker.update(q[i:i + n], acc[i:i + n]))
        i += n
    for k in range(2):
        np.testing.assert_array_equal(np.concatenate([p[k] for p in parts]), whole[k])


def test_bad_input():
    trace = simulate_walk(duration_s=20, seed=8, sensor=SensorModel.realistic(seed=8))
    q = trace.truth.q_sensor_to_earth.copy()
    acc = trace.acc_sensor_m_s2.copy()
    q[500:510] = np.nan
    acc[900] = np.nan
    angles, acc_level = pelvis_angles(q, acc, trace.fs_hz)
    assert np.all(np.isnan(angles[500:510])) and np.all(np.isnan(acc_level[900]))
    assert np.isfinite(angles[1000:]).all()
    with pytest.raises(ValueError, match="expected"):
        PelvisTracker(100).update(q[:, :3], acc)
    with pytest.raises(ValueError, match="one row per"):
        PelvisTracker(100).update(q, acc[:-1])
    with pytest.raises(ValueError, match="sample rate"):
        PelvisTracker(0)
    short, _ = pelvis_angles(q[:20], acc[:20], trace.fs_hz)  # too short for anything: NaN, no error
    assert np.isnan(short).all()
    empty, _ = pelvis_angles(q[:0], acc[:0], trace.fs_hz)
    assert empty.shape == (0, 3)


def test_no_walking_gives_no_alignment_offline():
    trace = simulate_stand(duration_s=10, seed=1)
    tracker = PelvisTracker(trace.fs_hz)
    tracker.update(trace.truth.q_sensor_to_earth, trace.acc_sensor_m_s2)
    assert tracker.vertical_source == "stand" and not tracker.aligned and tracker.walking_s == 0
    with pytest.raises(ValueError, match="no alignment"):
        pelvis_angles(trace.truth.q_sensor_to_earth, trace.acc_sensor_m_s2, trace.fs_hz, offline=True)


def test_a_seat_before_the_walk_is_not_taken_for_standing():
    """Sitting (pelvis tilted back 15°) is the only still period before a walk: the vertical must come from the
    walking posture instead, so the walk's tilt is not read as 15° anterior."""
    sit = simulate_sit(duration_s=10.0, seed=4, sensor=SensorModel.realistic(seed=4, mounting_rpy_deg=(5, -12, 8)))
    walk = simulate_walk(duration_s=40.0, seed=4, start_rest_s=0.0,
                         sensor=SensorModel.realistic(seed=4, mounting_rpy_deg=(5, -12, 8)))
    q = np.concatenate([sit.truth.q_sensor_to_earth, walk.truth.q_sensor_to_earth])
    acc = np.concatenate([sit.acc_sensor_m_s2, walk.acc_sensor_m_s2])
    tracker = PelvisTracker(100.0)
    angles, _ = tracker.update(q, acc)
    assert tracker.vertical_source == "walking"
    walking = np.flatnonzero(walk.truth.phase != PHASE_OTHER) + len(sit.t_s)
    late = walking[walking > len(sit.t_s) + 1000]  # after the walking vertical has settled
    tilt_error = angles[late, 2] - walk.truth.angles_pelvis_deg[late - len(sit.t_s), 2]
    assert abs(np.mean(tilt_error)) < 1.0


@pytest.mark.parametrize("mounting", [(0, -8, 180), (180, -8, 3), (0, -90, 0)], ids=["backwards", "upside down", "x up"])
def test_any_mounting_is_found_and_a_declared_frame_keeps_its_sign(mounting):
    trace = simulate_walk(duration_s=20, seed=2, sensor=SensorModel.realistic(seed=2, mounting_rpy_deg=mounting))
    tracker = PelvisTracker(trace.fs_hz)
    angles, _ = tracker.update(trace.truth.q_sensor_to_earth, trace.acc_sensor_m_s2)
    assert tracker.aligned and tracker.mounting.ok and tracker.mounting.source == "found"
    assert axis_error_deg(tracker.alignment, trace.truth.q_sensor_to_pelvis) < 3.0
    assert tracker.mounting.forward_sign_evidence > 0.3 and tracker.mounting.confidence > 0.3
    since = tracker.aligned_since
    assert np.sqrt(np.nanmean((angles[since:, 1] - trace.truth.angles_pelvis_deg[since:, 1]) ** 2)) < 1.0
    if mounting[2] == 180:  # declared nominal, a backwards clip is taken at its word: forward is sensor x
        declared = PelvisTracker(trace.fs_hz, nominal=True)
        declared.update(trace.truth.q_sensor_to_earth, trace.acc_sensor_m_s2)
        assert declared.mounting.source == "given" and matrix_from_quat(declared.alignment)[0, 0] > 0.9


def test_a_forward_sign_contradicted_later_is_reported():
    """8 s of walking decide the sign; the rest, played backwards in time, makes AP lag the vertical instead of
    leading it: the whole walk contradicts the early decision, and the mounting says so instead of naming sides."""
    trace = simulate_walk(duration_s=40, seed=1, sensor=SensorModel.realistic(seed=1))
    q, acc = trace.truth.q_sensor_to_earth, trace.acc_sensor_m_s2
    tracker = PelvisTracker(trace.fs_hz)
    tracker.update(np.concatenate([q[:800], q[800:][::-1]]), np.concatenate([acc[:800], acc[800:][::-1]]))
    assert tracker.aligned_since >= 0  # decided early on ...
    mounting = tracker.mounting
    assert mounting.status == "conflicting" and not mounting.ok and "contradicted" in mounting.reason
