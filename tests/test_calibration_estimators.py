"""Calibration estimators on simulated sensors with known errors (issue 14's acceptance).

Each draw is ``SensorModel.with_errors(seed)``: accelerometer scale within ±5 %, bias within ±0.3 m/s², each axis
term misaligned within ±2°, gyroscope bias within ±2 °/s, the clip turned up to 25° from its nominal mounting. The
same sensor records the calibration steps (a still period, twelve poses, a stand and a 20 s walk) and then the
sessions the calibration is checked on. Required: scale within 0.5 %, accelerometer bias within 0.02 m/s², gyro
bias within 0.05 °/s, mounting within 1°; the pelvic angles of the pipeline (``analyze_arrays``) halve their error
against the simulator's truth, over the sessions and in each session unless the error is already within what an
ideal sensor gives plus what a 1° mounting error can leak (a walk's tilt is limited by the fusion itself: 0.66° RMSE
with a perfect sensor). Bad input is refused with what to redo.

``python tests/test_calibration_estimators.py [draws]`` prints the before/after table of docs/validation.md.
"""

import functools
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from hipcheck.calibration import (
    CHIP_NOISE,
    CalibrationRefused,
    MountingError,
    estimate_accel,
    estimate_gyro_bias,
    estimate_mounting,
    estimate_neutral,
)
from hipcheck.errors import InvalidValueError
from hipcheck.motion import (
    FACE_POSES,
    PHASE_OTHER,
    SensorModel,
    simulate_calibration_poses,
    simulate_sit,
    simulate_stand,
    simulate_stand_and_bend,
    simulate_stand_and_walk,
    simulate_walk,
)
from hipcheck.pipeline import analyze_arrays
from hipcheck.rotation import (
    matrix_from_quat,
    quat_angle_rad,
    quat_conjugate,
    quat_from_matrix,
    quat_from_rotvec,
    quat_multiply,
)
from hipcheck.units import DEG_PER_RAD, GRAVITY_M_S2

FS = 100.0
DRAWS = (0, 1, 2, 3)
ANGLES = ("rotation", "obliquity", "tilt")


@functools.cache
def calibrated(seed: int):
    """The sensor of draw ``seed`` and its gyro, accel and mount calibrations, each step on the one before."""
    sensor = SensorModel.with_errors(seed)
    still = simulate_calibration_poses(poses=("z up",), pose_s=10.0, sensor=sensor, seed=seed)
    gyro = estimate_gyro_bias(still.acc_sensor_m_s2, still.gyr_sensor_rad_s, FS, temperature_c=31.5)
    poses = simulate_calibration_poses(sensor=sensor, seed=seed)
    accel = estimate_accel(poses.acc_sensor_m_s2, gyro.apply(poses.gyr_sensor_rad_s), FS)
    walk = simulate_stand_and_walk(sensor=sensor, seed=seed)
    mount = estimate_mounting(accel.apply(walk.acc_sensor_m_s2), gyro.apply(walk.gyr_sensor_rad_s), FS)
    return sensor, {"still": still, "poses": poses, "walk": walk}, gyro, accel, mount


def polar(X: np.ndarray) -> np.ndarray:
    """The rotation of X's polar decomposition: the frame turn of a gain matrix."""
    U, _, Vt = np.linalg.svd(X)
    return U @ Vt


def rotation_deg(R: np.ndarray) -> float:
    return float(np.degrees(np.arccos(np.clip((np.trace(R) - 1.0) / 2.0, -1.0, 1.0))))


def axis_errors_deg(q_estimate, q_truth) -> np.ndarray:
    """Angle between each estimated pelvis axis (anterior, left, superior) and the true one."""
    A, B = matrix_from_quat(q_estimate), matrix_from_quat(q_truth)
    return np.degrees(np.arccos(np.clip(np.sum(A * B, axis=1), -1.0, 1.0)))


@pytest.mark.parametrize("seed", DRAWS)
def test_estimates_on_sensors_with_known_errors(seed):
    sensor, traces, gyro, accel, mount = calibrated(seed)
    truth_gyr_bias = traces["still"].truth.gyr_bias_rad_s.mean(axis=0)
    # The draw really has errors of the size the calibration is for.
    assert np.max(np.abs(np.array(sensor.gyr_bias_rad_s))) * DEG_PER_RAD > 0.5
    assert np.max(np.abs(gyro.gyro_bias_rad_s - truth_gyr_bias)) * DEG_PER_RAD < 0.05
    assert gyro.temperature_c == 31.5 and gyro.still_s >= 9.5

    G = np.array(sensor.acc_gain)
    true_scale = np.linalg.norm(G, axis=1)  # axis i reads |row i| per unit acceleration along its own direction
    assert np.max(np.abs(true_scale - 1)) > 0.01
    assert accel.model == "full" and len(accel.poses) == 12
    assert np.max(np.abs(accel.acc_scale / true_scale - 1)) < 0.005
    assert np.max(np.abs(accel.acc_bias_m_s2 - traces["poses"].truth.acc_bias_m_s2.mean(axis=0))) < 0.02
    # Up to a rotation, the correction undoes the gain: M G is a rotation, and the turns between the poses put the
    # corrected accelerometer in the gyroscope's frame (both read the same body rotation), to within 0.6°.
    MG = accel.acc_matrix @ G
    assert np.max(np.abs(MG @ MG.T - np.eye(3))) < 2e-3
    assert np.isfinite(accel.gyro_alignment_deg) and accel.turn_residual_deg < 2.0
    assert rotation_deg(polar(MG) @ polar(np.array(sensor.gyr_gain)).T) < 0.6
    rows = G / true_scale[:, None]
    true_misalignment = 90 - np.degrees(np.arccos([rows[0] @ rows[1], rows[0] @ rows[2], rows[1] @ rows[2]]))
    assert np.max(np.abs(accel.misalignment_deg - true_misalignment)) < 0.2
    assert accel.residual_rms_m_s2 < 0.01 and np.all(accel.bias_sd_m_s2 < 0.01) and np.all(accel.scale_sd < 1e-3)

    assert mount.method == "walk" and mount.steps >= 20 and mount.turn_deg < 5
    assert axis_errors_deg(sensor.q_sensor_to_pelvis, SensorModel().q_sensor_to_pelvis).max() > 2
    # The calibrated samples are in the corrected accelerometer's frame, M G f: M G is the gyroscope's frame turn
    # (a few tenths of a degree; the simulated gyroscope is misaligned too), and the mounting maps that frame to the
    # pelvis. So R_sensor_to_pelvis · M G is the true mounting, and the pipeline's angles are right.
    found = mount.R_sensor_to_pelvis @ MG
    assert axis_errors_deg(quat_from_matrix(found), traces["walk"].truth.q_sensor_to_pelvis).max() < 1.0

    for result in (gyro, accel, mount):  # strict JSON, the documented names
        assert json.loads(json.dumps(result.to_dict(), allow_nan=False)) == result.to_dict()
    assert {"gyro_bias_rad_s", "temperature_c"} <= set(gyro.to_dict())
    assert {"acc_bias_m_s2", "acc_scale", "acc_matrix", "misalignment_deg"} <= set(accel.to_dict())
    assert np.allclose(mount.to_dict()["R_sensor_to_pelvis"], matrix_from_quat(mount.q_sensor_to_pelvis))


@pytest.mark.parametrize("seed", DRAWS[:2])
def test_mounting_from_a_forward_bend(seed):
    sensor, _, gyro, accel, _ = calibrated(seed)
    trace = simulate_stand_and_bend(sensor=sensor, seed=seed)
    mount = estimate_mounting(accel.apply(trace.acc_sensor_m_s2), gyro.apply(trace.gyr_sensor_rad_s), FS)
    assert mount.method == "bend" and mount.bend_deg == pytest.approx(40.0, abs=1.5)
    found = mount.R_sensor_to_pelvis @ accel.acc_matrix @ np.array(sensor.acc_gain)
    assert axis_errors_deg(quat_from_matrix(found), trace.truth.q_sensor_to_pelvis).max() < 1.0
    assert mount.to_dict()["walking_s"] is None and mount.to_dict()["method"] == "bend"
    twist = simulate_stand_and_bend(sensor=sensor, seed=seed, twist_deg=40.0)
    with pytest.raises(MountingError, match="twist or a side bend; bend straight forward from the hips"):
        estimate_mounting(twist.acc_sensor_m_s2, twist.gyr_sensor_rad_s, FS, method="bend")
    shallow = simulate_stand_and_bend(sensor=sensor, seed=seed, bend_deg=12.0)
    with pytest.raises(MountingError, match="the bend reached 1[0-4]°: bend forward from the hips by at least 20°"):
        estimate_mounting(shallow.acc_sensor_m_s2, shallow.gyr_sensor_rad_s, FS, method="bend")


def test_six_faces_give_scale_and_bias():
    """With only the six faces the off-diagonal terms are not determined: scale and bias alone, still in bounds."""
    sensor = SensorModel.with_errors(5)
    trace = simulate_calibration_poses(poses=FACE_POSES, sensor=sensor, seed=5)
    accel = estimate_accel(trace.acc_sensor_m_s2, trace.gyr_sensor_rad_s, FS)
    assert accel.model == "scale_bias" and sorted(accel.poses) == sorted(FACE_POSES)
    assert np.max(np.abs(accel.acc_scale / np.linalg.norm(np.array(sensor.acc_gain), axis=1) - 1)) < 0.005
    assert np.max(np.abs(accel.acc_bias_m_s2 - trace.truth.acc_bias_m_s2.mean(axis=0))) < 0.02
    with pytest.raises(CalibrationRefused, match="full model needs 9"):
        estimate_accel(trace.acc_sensor_m_s2, trace.gyr_sensor_rad_s, FS, model="full")


def test_every_supported_chip_lying_still_is_still():
    """The stillness limits are set by the noisiest chip the firmware drives (the MPU-6050: 400 µg/√Hz); with it the
    steps pass and stay within their accuracy, while a person wearing the sensor is refused
    (test_moving_during_the_gyro_step_is_refused)."""
    assert CHIP_NOISE["MPU-6050"]["acc_noise_ug_rthz"] == max(c["acc_noise_ug_rthz"] for c in CHIP_NOISE.values())
    sensor = SensorModel.with_errors(2, **CHIP_NOISE["MPU-6050"])
    still = simulate_calibration_poses(poses=("z up",), pose_s=10.0, sensor=sensor, seed=2)
    gyro = estimate_gyro_bias(still.acc_sensor_m_s2, still.gyr_sensor_rad_s, FS)
    assert np.max(np.abs(gyro.gyro_bias_rad_s - still.truth.gyr_bias_rad_s.mean(axis=0))) * DEG_PER_RAD < 0.05
    poses = simulate_calibration_poses(sensor=sensor, seed=2)
    accel = estimate_accel(poses.acc_sensor_m_s2, poses.gyr_sensor_rad_s, FS)
    assert len(accel.poses) == 12
    assert np.max(np.abs(accel.acc_scale / np.linalg.norm(np.array(sensor.acc_gain), axis=1) - 1)) < 0.005
    assert np.max(np.abs(accel.acc_bias_m_s2 - poses.truth.acc_bias_m_s2.mean(axis=0))) < 0.02


def test_neutral_standing_and_sitting():
    sensor, _, gyro, accel, mount = calibrated(0)
    for simulate, posture, tilt in ((simulate_stand, "standing", 4.0), (simulate_sit, "sitting", -15.0)):
        trace = simulate(duration_s=8, seed=7, sensor=sensor, tilt_mean_deg=tilt)
        neutral = estimate_neutral(accel.apply(trace.acc_sensor_m_s2), gyro.apply(trace.gyr_sensor_rad_s), FS,
                                   q_sensor_to_pelvis=mount.q_sensor_to_pelvis, posture=posture)
        truth = trace.truth.angles_pelvis_deg[50:-50]
        assert neutral.tilt_deg == pytest.approx(truth[:, 2].mean(), abs=0.5)
        assert neutral.obliquity_deg == pytest.approx(truth[:, 1].mean(), abs=0.5)
        assert f"neutral_{posture}_tilt_deg" in neutral.to_dict()
    walk = simulate_walk(duration_s=8, seed=7, sensor=sensor)
    with pytest.raises(CalibrationRefused, match="moving during the neutral standing step.*redo"):
        estimate_neutral(walk.acc_sensor_m_s2, walk.gyr_sensor_rad_s, FS, q_sensor_to_pelvis=mount.q_sensor_to_pelvis)
    lying = simulate_sit(duration_s=8, seed=7, sensor=sensor, tilt_mean_deg=-80.0)  # reclined far back
    with pytest.raises(CalibrationRefused, match="not sitting upright on this mounting.*redo the neutral sitting"):
        estimate_neutral(accel.apply(lying.acc_sensor_m_s2), gyro.apply(lying.gyr_sensor_rad_s), FS,
                         q_sensor_to_pelvis=mount.q_sensor_to_pelvis, posture="sitting")


# ------------------------------------------------------------------------------------- the pipeline, before/after

def _scenarios():
    """(name, simulate, settings, pipeline mode): sessions where a sensor's errors would show."""
    return (
        ("walk, still start", simulate_walk, dict(duration_s=30, drop_right_deg=7), "walk"),
        ("walk, no still start", simulate_walk, dict(duration_s=30, drop_right_deg=7, start_rest_s=0.0,
                                                    tilt_mean_deg=4), "walk"),
        ("sitting (posture mode)", simulate_sit, dict(duration_s=15), "posture"),
        ("standing (posture mode)", simulate_stand, dict(duration_s=15, tilt_mean_deg=3), "posture"),
    )


def _rmse(angles, truth, selected) -> np.ndarray:
    ok = selected & np.all(np.isfinite(angles), axis=1)
    d = angles[ok] - truth[ok]
    d[:, 0] = (d[:, 0] + 180.0) % 360.0 - 180.0
    return np.sqrt(np.mean(d**2, axis=0))


def angle_errors(seed: int) -> dict:
    """name -> (before, after, ideal): RMSE per angle (deg) of analyze_arrays against the truth on the raw samples
    with the mounting found automatically, on the calibrated samples with the calibrated mounting, and on an ideal
    sensor (no scale, bias or misalignment; the same noise) with the true mounting."""
    sensor, _, gyro, accel, mount = calibrated(seed)
    ideal = SensorModel(seed=seed, mounting_rpy_deg=sensor.mounting_rpy_deg, acc_gain=np.eye(3),
                        gyr_gain=np.eye(3), acc_bias_m_s2=(0, 0, 0), gyr_bias_rad_s=(0, 0, 0))
    out = {}
    for name, simulate, settings, mode in _scenarios():
        trace = simulate(seed=seed + 100, sensor=sensor, **settings)
        reference = simulate(seed=seed + 100, sensor=ideal, **settings)
        truth = trace.truth.angles_pelvis_deg
        selected = trace.truth.phase != PHASE_OTHER if mode == "walk" else np.ones(len(truth), dtype=bool)
        before = analyze_arrays(trace.acc_sensor_m_s2, trace.gyr_sensor_rad_s, FS, mode=mode)
        after = analyze_arrays(accel.apply(trace.acc_sensor_m_s2), gyro.apply(trace.gyr_sensor_rad_s), FS,
                               alignment=mount.q_sensor_to_pelvis, mode=mode)
        best = analyze_arrays(reference.acc_sensor_m_s2, reference.gyr_sensor_rad_s, FS,
                              alignment=ideal.q_sensor_to_pelvis, mode=mode)
        out[name] = tuple(_rmse(a.angles_pelvis_deg, truth, selected) for a in (before, after, best))
    return out


# The mounting's forward axis is found to within 1° (the acceptance above): a yaw error ε of the mounting turns part
# of a posture's tilt θ into obliquity, ε·sin θ, which at sitting's −15° is up to 0.26°. No sensor calibration can do
# better than that, nor than the fusion with an ideal sensor.
YAW_LEAK_DEG = np.sin(np.radians(15.0)) * 1.0


def test_calibration_halves_the_angle_errors():
    runs = [angle_errors(seed) for seed in DRAWS[:2]]
    for errors in runs:
        for name, (before, after, ideal) in errors.items():
            for k, angle in enumerate(ANGLES):
                assert after[k] <= max(0.5 * before[k], ideal[k] + YAW_LEAK_DEG), (name, angle, before, after, ideal)
        # Where the sensor's errors dominate, calibration takes them away: tilt of the postures, the walk without a
        # stand.
        for name in ("walk, no still start", "sitting (posture mode)", "standing (posture mode)"):
            before, after, ideal = errors[name]
            assert after[2] < 0.5 * before[2] and after[2] < ideal[2] + 0.1, name
    # Over the sessions and draws, every angle's error halves or better (one draw's errors may happen to spare an
    # angle: seed 0 leaves obliquity at 0.23° before calibration).
    before, after = (np.mean([e[i] for errors in runs for e in errors.values()], axis=0) for i in (0, 1))
    assert np.all(after <= 0.5 * before), (before, after)


# ------------------------------------------------------------------------------------------------ bad input

def test_moving_during_the_gyro_step_is_refused():
    sensor = SensorModel.with_errors(1)
    picked_up = simulate_calibration_poses(poses=("z up", "x up"), pose_s=4.5, sensor=sensor, seed=1)
    with pytest.raises(CalibrationRefused, match="moving during the gyro step: hold the sensor still on a table "
                                                 "for 10 s and redo") as info:
        estimate_gyro_bias(picked_up.acc_sensor_m_s2, picked_up.gyr_sensor_rad_s, FS)
    assert info.value.step == "gyro" and isinstance(info.value, InvalidValueError)
    worn = simulate_stand(duration_s=12, seed=1, sensor=sensor)  # standing is not still enough for a gyro bias
    with pytest.raises(CalibrationRefused, match="moving during the gyro step"):
        estimate_gyro_bias(worn.acc_sensor_m_s2, worn.gyr_sensor_rad_s, FS)
    # A slow turn at 1 °/s passes the windowed check; gravity's direction catches it.
    still = simulate_calibration_poses(poses=("z up",), pose_s=10.0, sensor=sensor, seed=1)
    turn = quat_from_rotvec(np.outer(np.arange(len(still.t_s)) / FS, [np.radians(1.0), 0, 0]))
    acc = _rotate_back(turn, still.acc_sensor_m_s2)
    with pytest.raises(CalibrationRefused, match=r"turned [0-9.]+° while it seemed still"):
        estimate_gyro_bias(acc, still.gyr_sensor_rad_s + [np.radians(1.0), 0, 0], FS)


def _rotate_back(q_turn, vectors):
    """vectors seen by a sensor that turns by q_turn (the sensor frame rotated: v_sensor = R(q)ᵀ v)."""
    R = matrix_from_quat(q_turn)
    return np.einsum("nji,nj->ni", R, vectors)


def test_only_three_poses_names_the_missing_ones():
    trace = simulate_calibration_poses(poses=("x up", "y up", "z up"), sensor=SensorModel.with_errors(2), seed=2)
    with pytest.raises(CalibrationRefused, match=r"only three poses \(x up, y up, z up\): missing x down, y down, "
                                                 r"z down: put the sensor down still .* redo the accel step"):
        estimate_accel(trace.acc_sensor_m_s2, trace.gyr_sensor_rad_s, FS)
    walk = simulate_walk(duration_s=10, sensor=SensorModel.with_errors(2), seed=2)  # held, never put down
    with pytest.raises(CalibrationRefused, match="no still pose found"):
        estimate_accel(walk.acc_sensor_m_s2, walk.gyr_sensor_rad_s, FS)
    eight = ("z up", "z down", "x up", "x down", "y up", "x+y up", "x-z up", "y+z up")
    trace = simulate_calibration_poses(poses=eight, sensor=SensorModel.with_errors(2), seed=2)
    with pytest.raises(CalibrationRefused, match=r"8 poses \(.*\), but missing y down: .*redo the accel step"):
        estimate_accel(trace.acc_sensor_m_s2, trace.gyr_sensor_rad_s, FS)


def test_standing_on_one_leg_during_the_mount_stand_is_refused():
    sensor = SensorModel.with_errors(3)
    for side in ("left", "right"):
        trace = simulate_stand_and_walk(stand_on=side, sensor=sensor, seed=3)
        assert trace.truth.intervals[0].side == side
        with pytest.raises(MountingError, match="standing on one leg .*stand still on both feet for 5 s and redo "
                                                "the mount step") as info:
            estimate_mounting(trace.acc_sensor_m_s2, trace.gyr_sensor_rad_s, FS)
        assert info.value.step == "mount" and isinstance(info.value, CalibrationRefused)


def test_mount_walk_turning_or_too_short_is_refused():
    sensor = SensorModel.with_errors(4)
    turning = simulate_stand_and_walk(sensor=sensor, seed=4, turns=[(12.0, 90.0, 2.0)])
    with pytest.raises(MountingError, match=r"turning during the walk \(the heading changed by (8|9)\d°\): walk "
                                            "straight ahead"):
        estimate_mounting(turning.acc_sensor_m_s2, turning.gyr_sensor_rad_s, FS)
    short = simulate_stand_and_walk(sensor=sensor, seed=4, walk_s=6.0)
    with pytest.raises(MountingError, match="too few steps"):
        estimate_mounting(short.acc_sensor_m_s2, short.gyr_sensor_rad_s, FS)
    with pytest.raises(MountingError, match="no walk or bend found after the stand"):
        still = simulate_stand(duration_s=10, sensor=sensor, seed=4)
        estimate_mounting(still.acc_sensor_m_s2, still.gyr_sensor_rad_s, FS)


@pytest.mark.parametrize("name", ["HA-001-Test5-Trial1", "MS-001-Test11-Trial1-12000-15000"])
def test_real_recordings_that_are_no_mount_step_are_refused(name):
    """Two mobgap lab recordings (tests/data/mobgap, Apache-2.0): a short walk started without a quiet stand, and
    30 s of a daily-life course. Neither is the mount step; each is refused with what to redo, never turned into a
    mounting. (All nine recordings of the set are refused: docs/validation.md.)"""
    data = np.load(Path(__file__).parent / "data" / "mobgap" / f"{name}.npz")
    with pytest.raises(MountingError, match="(repeat|redo the mount step)$"):
        estimate_mounting(data["acc"], np.radians(data["gyr_dps"]), float(data["fs"]))
    with pytest.raises(CalibrationRefused, match="moving during the gyro step"):
        estimate_gyro_bias(data["acc"], np.radians(data["gyr_dps"]), float(data["fs"]))


def test_inputs_are_checked():
    trace = simulate_calibration_poses(poses=("z up",), pose_s=6.0, seed=0)
    acc, gyr = trace.acc_sensor_m_s2, trace.gyr_sensor_rad_s
    with pytest.raises(CalibrationRefused, match="seems to be in g"):
        estimate_gyro_bias(acc / GRAVITY_M_S2, gyr, FS)
    with pytest.raises(CalibrationRefused, match="NaN"):
        estimate_accel(np.where(np.arange(len(acc))[:, None] == 7, np.nan, acc), gyr, FS)
    with pytest.raises(CalibrationRefused, match="sample rate"):
        estimate_gyro_bias(acc, gyr, 0.0)
    with pytest.raises(CalibrationRefused, match="shape"):
        estimate_gyro_bias(acc[:, :2], gyr, FS)


# ------------------------------------------------------------------------------------------------ the simulator

def test_simulated_sensor_errors_are_fixed_and_the_poses_exact():
    sensor = SensorModel.with_errors(9)
    a = simulate_calibration_poses(poses=("z up", "x down"), sensor=sensor, seed=1)
    b = simulate_walk(duration_s=10, sensor=sensor, seed=2)
    assert np.array_equal(a.truth.acc_gain, b.truth.acc_gain) and np.array_equal(a.truth.gyr_gain, b.truth.gyr_gain)
    assert np.allclose(a.truth.gyr_bias_rad_s[0], sensor.gyr_bias_rad_s)
    assert np.allclose(b.truth.acc_bias_m_s2[0], sensor.acc_bias_m_s2)
    assert 0 < quat_angle_rad(quat_multiply(quat_conjugate(SensorModel().q_sensor_to_pelvis),
                                            sensor.q_sensor_to_pelvis)) * DEG_PER_RAD <= 25.0
    # The true rate integrates to the true orientation through the turn between the poses.
    q, w = a.truth.q_sensor_to_earth, a.truth.angular_rate_sensor_rad_s
    integrated = q[0]
    for i in range(len(q) - 1):
        integrated = quat_multiply(integrated, quat_from_rotvec(0.5 * (w[i] + w[i + 1]) / FS))
    assert quat_angle_rad(quat_multiply(quat_conjugate(integrated), q[-1])) * DEG_PER_RAD < 0.01
    # Still in a pose, the true specific force is gravity along the named axis (placed within 3°).
    pose = a.truth.intervals[1]
    still = (a.t_s > pose.start_s) & (a.t_s < pose.end_s)
    f = a.truth.specific_force_sensor_m_s2[still].mean(axis=0)
    assert np.linalg.norm(f) == pytest.approx(GRAVITY_M_S2) and np.degrees(np.arccos(-f[0] / GRAVITY_M_S2)) <= 3.0


def write_table(draws: int) -> str:
    """The before/after table for docs/validation.md (markdown), over the first ``draws`` sensors."""
    rows = {}
    for seed in range(draws):
        for name, errors in angle_errors(seed).items():
            rows.setdefault(name, []).append(errors)
    lines = ["| session | angle | before: RMSE ° (worst draw) | after | ideal sensor |", "|---|---|---|---|---|"]
    for name, runs in rows.items():
        before, after, ideal = (np.array([r[i] for r in runs]) for i in range(3))
        for k, angle in enumerate(ANGLES):
            lines.append(f"| {name} | {angle} | {before[:, k].mean():.2f} ({before[:, k].max():.2f}) | "
                         f"{after[:, k].mean():.2f} ({after[:, k].max():.2f}) | {ideal[:, k].mean():.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(write_table(int(sys.argv[1]) if len(sys.argv) > 1 else 6))
