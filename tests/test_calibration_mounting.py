"""Mounting calibration: stand + walk, stand + forward bend, and the errors that say what to repeat."""

import numpy as np
import pytest

from hipcheck.calibration.mounting import MountingError, calibrate_mounting, vertical_from_stand
from hipcheck.motion import PHASE_OTHER, SensorModel, simulate_stand, simulate_walk
from hipcheck.pelvis import pelvis_angles
from hipcheck.rotation import matrix_from_quat, quat_conjugate, quat_from_angles, quat_multiply, quat_rotate
from hipcheck.units import GRAVITY_M_S2, RAD_PER_DEG

FS = 100.0


def axis_error_deg(q_estimate, q_truth) -> float:
    A, B = matrix_from_quat(q_estimate), matrix_from_quat(q_truth)
    return float(np.degrees(np.arccos(np.clip(np.sum(A * B, axis=1), -1, 1))).max())


def bend(q_sensor_to_pelvis, depth_deg=40.0, heading_deg=35.0, obliquity_deg=0.0, twist_deg=0.0):
    """q_sensor_to_earth of a forward bend from the hips: tilt 0 → depth → 0 over 3 s after 1 s upright."""
    t = np.arange(0, 5.0, 1 / FS)
    shape = np.where((t > 1) & (t < 4), np.sin(np.pi * (t - 1) / 3), 0.0)
    angles = np.stack([heading_deg + twist_deg * shape, obliquity_deg * shape, depth_deg * shape], axis=1)
    return quat_multiply(quat_from_angles(angles * RAD_PER_DEG), q_sensor_to_pelvis)


@pytest.fixture(scope="module")
def walk():
    return simulate_walk(duration_s=25, seed=4, drop_right_deg=7,
                         sensor=SensorModel.realistic(seed=4, mounting_rpy_deg=(8, -20, 12)))


def parts(trace):
    """The walk cut into its 1.5 s stand and the rest."""
    q, acc = trace.truth.q_sensor_to_earth, trace.acc_sensor_m_s2
    return q[:140], acc[:140], q[140:], acc[140:]


def test_stand_and_walk(walk):
    stand_q, stand_acc, walk_q, walk_acc = parts(walk)
    cal = calibrate_mounting(stand_q, stand_acc, FS, walk_q=walk_q, walk_acc_m_s2=walk_acc)
    assert cal.method == "walk" and cal.walking_s > 10
    assert axis_error_deg(cal.q_sensor_to_pelvis, walk.truth.q_sensor_to_pelvis) < 1.0
    angles, _ = pelvis_angles(walk.truth.q_sensor_to_earth, walk.acc_sensor_m_s2, FS, alignment=cal.q_sensor_to_pelvis)
    moving = walk.truth.phase != PHASE_OTHER
    rmse = np.sqrt(np.mean((angles[moving, 1:] - walk.truth.angles_pelvis_deg[moving, 1:]) ** 2, axis=0))
    assert np.all(rmse < 0.2)


@pytest.mark.parametrize("mounting", [(8, -20, 12), (-15, 10, -20), (0, 0, 0)])
def test_stand_and_bend(walk, mounting):
    q_mount = SensorModel.realistic(mounting_rpy_deg=mounting).q_sensor_to_pelvis
    stand_q = bend(q_mount, depth_deg=0.0)[:150]
    stand_acc = quat_rotate(quat_conjugate(stand_q), np.array([0, 0, GRAVITY_M_S2]))  # still: gravity only
    cal = calibrate_mounting(stand_q, stand_acc, FS, bend_q=bend(q_mount))
    assert cal.method == "bend" and cal.bend_deg == pytest.approx(40, abs=0.5)
    assert axis_error_deg(cal.q_sensor_to_pelvis, q_mount) < 1e-6
    # A bend with a little side lean still finds the left-right axis to within a few degrees.
    leaning = calibrate_mounting(stand_q, stand_acc, FS, bend_q=bend(q_mount, obliquity_deg=3))
    assert axis_error_deg(leaning.q_sensor_to_pelvis, q_mount) < 5


def test_stand_vertical_uses_the_orientation():
    trace = simulate_stand(duration_s=5, seed=2, sensor=SensorModel.realistic(seed=2, mounting_rpy_deg=(5, -18, 0)))
    up, acc_std = vertical_from_stand(trace.truth.q_sensor_to_earth, trace.acc_sensor_m_s2, FS)
    true_up = matrix_from_quat(trace.truth.q_sensor_to_pelvis)[2]
    assert np.degrees(np.arccos(up @ true_up)) < 0.5  # postural sway of 0.2° RMS averages out
    assert acc_std < 0.15


def test_errors_say_what_to_repeat(walk):
    stand_q, stand_acc, walk_q, walk_acc = parts(walk)
    q_mount = walk.truth.q_sensor_to_pelvis
    with pytest.raises(MountingError, match="moved during the stand"):
        calibrate_mounting(walk_q[:300], walk_acc[:300], FS, walk_q=walk_q, walk_acc_m_s2=walk_acc)
    with pytest.raises(MountingError, match="too short"):
        calibrate_mounting(stand_q[:50], stand_acc[:50], FS, walk_q=walk_q, walk_acc_m_s2=walk_acc)
    with pytest.raises(MountingError, match="no steady walking"):
        calibrate_mounting(stand_q, stand_acc, FS, walk_q=stand_q, walk_acc_m_s2=stand_acc)
    with pytest.raises(MountingError, match="at least 20"):
        calibrate_mounting(stand_q, stand_acc, FS, bend_q=bend(q_mount, depth_deg=10))
    with pytest.raises(MountingError, match="twist or a side bend"):
        calibrate_mounting(stand_q, stand_acc, FS, bend_q=bend(q_mount, depth_deg=0, twist_deg=40))
    with pytest.raises(MountingError, match="either a walk"):
        calibrate_mounting(stand_q, stand_acc, FS)
    with pytest.raises(MountingError, match="either a walk"):
        calibrate_mounting(stand_q, stand_acc, FS, walk_q=walk_q, walk_acc_m_s2=walk_acc, bend_q=walk_q)
    with pytest.raises(MountingError, match="walk_acc_m_s2 is missing"):
        calibrate_mounting(stand_q, stand_acc, FS, walk_q=walk_q)
    nan_stand = stand_acc.copy()
    nan_stand[3] = np.nan
    with pytest.raises(MountingError, match="NaN"):
        calibrate_mounting(stand_q, nan_stand, FS, walk_q=walk_q, walk_acc_m_s2=walk_acc)
    lying = quat_multiply(quat_from_angles(np.array([0, 0, 90.0]) * RAD_PER_DEG), q_mount)
    with pytest.raises(MountingError, match="upright"):
        vertical_from_stand(np.tile(lying, (200, 1)), np.tile([9.8, 0, 0], (200, 1)), FS, nominal=True)
    # Any mounting: a lying "stand" passes alone, but not against the walk that follows it.
    vertical_from_stand(np.tile(lying, (200, 1)), np.tile([9.8, 0, 0], (200, 1)), FS)
    with pytest.raises(MountingError, match="not upright standing"):
        calibrate_mounting(np.tile(lying, (200, 1)), np.tile([9.8, 0, 0], (200, 1)), FS, walk_q=walk_q,
                           walk_acc_m_s2=walk_acc)
    assert issubclass(MountingError, ValueError)


@pytest.mark.parametrize("mounting", [(180.0, -8.0, 3.0), (0.0, -8.0, 180.0), (0.0, -90.0, 0.0)],
                         ids=["upside down", "backwards", "x up"])
def test_any_mounting_calibrates(mounting):
    """The calibration is what a refused automatic mounting asks for, so it must take any mounting."""
    trace = simulate_walk(duration_s=20, seed=6, sensor=SensorModel.realistic(seed=6, mounting_rpy_deg=mounting))
    stand_q, stand_acc, walk_q, walk_acc = parts(trace)
    result = calibrate_mounting(stand_q, stand_acc, FS, walk_q=walk_q, walk_acc_m_s2=walk_acc)
    assert axis_error_deg(result.q_sensor_to_pelvis, trace.truth.q_sensor_to_pelvis) < 3.0
    bent = calibrate_mounting(stand_q, stand_acc, FS, bend_q=bend(trace.truth.q_sensor_to_pelvis))
    assert axis_error_deg(bent.q_sensor_to_pelvis, trace.truth.q_sensor_to_pelvis) < 3.0
