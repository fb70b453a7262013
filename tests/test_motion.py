"""hipcheck.motion: the synthetic kinematics are self-consistent, the truth is right, the sensor model does what
its settings say."""

import dataclasses
import json

import numpy as np
import pytest

from hipcheck.motion import (
    PHASE_LEFT_SINGLE_SUPPORT,
    PHASE_OTHER,
    PHASE_RIGHT_SINGLE_SUPPORT,
    SensorModel,
    simulate_hold,
    simulate_sit,
    simulate_sit_to_stand,
    simulate_stand,
    simulate_walk,
)
from hipcheck.rotation import (
    angles_from_quat,
    body_rate_from_angle_rates,
    matrix_from_angles,
    matrix_from_quat,
    quat_angle_rad,
    quat_conjugate,
    quat_from_angles,
    quat_from_matrix,
    quat_from_rotvec,
    quat_multiply,
    quat_rotate,
    rotvec_from_quat,
)
from hipcheck.motion.sensor import apply_sensor
from hipcheck.units import ACC_LSB_M_S2, GYR_LSB_RAD_S
from hipcheck.units import DEG_PER_RAD, GRAVITY_M_S2, RAD_PER_DEG

G_EARTH = np.array([0.0, 0.0, -GRAVITY_M_S2])
NO_VARIABILITY = dict(stride_time_cv=0.0, amplitude_cv=0.0)
TURNS = [(12.0, 90.0, 2.5), (30.0, -180.0, 3.0), (45.0, 30.0, 1.0)]


def still_stand(**sensor_settings):
    return simulate_stand(duration_s=5.0, sway_rms_cm=0.0, angle_sway_rms_deg=0.0, tilt_mean_deg=10.0,
                          obliquity_deg=-5.0, seed=1, sensor=SensorModel.ideal(**sensor_settings))


def cumulative_product(q):
    """q[0] ⊗ q[1] ⊗ … ⊗ q[i] for every i, by a log-depth scan (order preserved)."""
    out = q.copy()
    shift = 1
    while shift < len(out):
        out[shift:] = quat_multiply(out[:-shift], out[shift:])
        shift *= 2
    return out


# ------------------------------------------------------------------------------------------------- rotations


def test_quaternion_matrix_and_baker_angles_round_trip():
    rng = np.random.default_rng(0)
    angles = rng.uniform([-3.1, -1.5, -3.1], [3.1, 1.5, 3.1], (500, 3))
    q = quat_from_angles(angles)
    R = matrix_from_angles(angles)
    np.testing.assert_allclose(matrix_from_quat(q), R, atol=1e-12)
    np.testing.assert_allclose(angles_from_quat(q), angles, atol=1e-9)
    np.testing.assert_allclose(quat_angle_rad(quat_multiply(quat_conjugate(q), quat_from_matrix(R))), 0, atol=1e-7)
    v = rng.normal(size=(500, 3))
    np.testing.assert_allclose(quat_rotate(q, v), np.einsum("nij,nj->ni", R, v), atol=1e-12)
    rotvec = rng.normal(size=(500, 3))
    rotvec *= rng.uniform(0, 3.0, (500, 1)) / np.linalg.norm(rotvec, axis=1, keepdims=True)
    np.testing.assert_allclose(rotvec_from_quat(quat_from_rotvec(rotvec)), rotvec, atol=1e-12)


def test_baker_angle_signs():
    deg = RAD_PER_DEG
    # Obliquity +: the left (+y) side goes up. Tilt +: the superior axis tips anterior (+x).
    assert matrix_from_angles([0, 10 * deg, 0])[..., :, 1][2] > 0
    assert matrix_from_angles([0, 0, 10 * deg])[..., :, 2][0] > 0
    # Rotation +: the anterior axis turns to the left (+y).
    assert matrix_from_angles([10 * deg, 0, 0])[..., :, 0][1] > 0


def test_body_rate_matches_rotation_matrix_derivative():
    t = np.linspace(0, 2, 200_001)
    angles = np.stack([np.sin(3 * t) + t, 0.3 * np.cos(5 * t), 0.4 * np.sin(7 * t + 1)], axis=-1)
    rates = np.stack([3 * np.cos(3 * t) + 1, -1.5 * np.sin(5 * t), 2.8 * np.cos(7 * t + 1)], axis=-1)
    R = matrix_from_angles(angles)
    Rt_dR = np.einsum("nji,njk->nik", R, np.gradient(R, t, axis=0))
    omega = np.stack([Rt_dR[:, 2, 1], Rt_dR[:, 0, 2], Rt_dR[:, 1, 0]], axis=-1)
    np.testing.assert_allclose(omega[1:-1], body_rate_from_angle_rates(angles, rates)[1:-1], atol=1e-6)


# ------------------------------------------------------------------------------------- kinematic consistency


def test_integrated_gyro_reproduces_orientation_over_a_minute_of_walking_with_turns():
    trace = simulate_walk(duration_s=60.0, fs_hz=1000.0, turns=TURNS, seed=2,
                          sensor=SensorModel.ideal(mounting_rpy_deg=(5.0, -12.0, 20.0)))
    w = trace.gyr_sensor_rad_s
    h = np.diff(trace.t_s)[:, None]
    # Fourth-order Magnus step between samples: averaged rate plus the commutator term; its own error is ~1e-4 °.
    steps = quat_from_rotvec(0.5 * h * (w[1:] + w[:-1]) + h**2 / 12.0 * np.cross(w[:-1], w[1:]))
    q_true = trace.truth.q_sensor_to_earth
    q = np.vstack([q_true[:1], quat_multiply(q_true[0], cumulative_product(steps))])
    error_deg = quat_angle_rad(quat_multiply(quat_conjugate(q_true), q)) * DEG_PER_RAD
    assert error_deg.max() < 0.01
    # The walk really turned: net heading change of 90 − 180 + 30 degrees.
    assert trace.truth.angles_pelvis_deg[-1, 0] == pytest.approx(-60.0, abs=1e-9)


def test_specific_force_at_rest_is_gravity_in_the_sensor_frame():
    trace = still_stand(mounting_rpy_deg=(10.0, 20.0, -15.0))
    R = matrix_from_quat(trace.truth.q_sensor_to_earth)
    expected = np.einsum("nji,j->ni", R, -G_EARTH)
    np.testing.assert_allclose(trace.acc_sensor_m_s2, expected, atol=1e-6)
    np.testing.assert_allclose(trace.gyr_sensor_rad_s, 0.0, atol=1e-12)
    # The standing start of a walk is at rest too.
    walk = simulate_walk(duration_s=10.0, seed=1, sensor=SensorModel.ideal())
    rest = walk.t_s < 1.4
    R = matrix_from_quat(walk.truth.q_sensor_to_earth[rest])
    np.testing.assert_allclose(walk.acc_sensor_m_s2[rest], np.einsum("nji,j->ni", R, -G_EARTH), atol=1e-6)


def test_double_derivative_of_position_matches_the_accelerometer():
    trace = simulate_walk(duration_s=20.0, fs_hz=1000.0, turns=[(8.0, 90.0, 2.0)], seed=4,
                          sensor=SensorModel.ideal(mounting_rpy_deg=(0.0, 15.0, 5.0)))
    h = 1.0 / trace.fs_hz
    pos = trace.truth.pos_pelvis_m
    # Fourth-order central difference: its own error stays below 5e-3 m/s² even at the heel-strike transients
    # (smooth to the third derivative only); a missing kinematic term would be off by ~1 m/s².
    acc_from_position = (-pos[4:] + 16 * pos[3:-1] - 30 * pos[2:-2] + 16 * pos[1:-3] - pos[:-4]) / (12 * h**2)
    R = matrix_from_quat(trace.truth.q_sensor_to_earth)
    acc_from_sensor = np.einsum("nij,nj->ni", R, trace.acc_sensor_m_s2) + G_EARTH
    assert np.abs(acc_from_sensor).max() > 5.0  # a real workout for the check, not a pelvis at rest
    np.testing.assert_allclose(acc_from_position, acc_from_sensor[2:-2], atol=5e-3)
    # And velocity agrees with position.
    vel_from_position = (-pos[4:] + 8 * pos[3:-1] - 8 * pos[1:-3] + pos[:-4]) / (12 * h)
    np.testing.assert_allclose(vel_from_position, trace.truth.vel_pelvis_m_s[2:-2], atol=1e-5)


def test_signals_are_continuous():
    trace = simulate_walk(duration_s=15.0, fs_hz=2000.0, turns=[(8.0, 60.0, 1.5)], seed=5, sensor=SensorModel.ideal())
    # Steps between neighbouring samples stay small: no jumps in specific force or rate at stride boundaries.
    assert np.abs(np.diff(trace.acc_sensor_m_s2, axis=0)).max() < 0.5
    assert np.abs(np.diff(trace.gyr_sensor_rad_s, axis=0)).max() < 0.01


# ------------------------------------------------------------------------------------------------ walk truth


def test_walk_drops_by_stance_side():
    trace = simulate_walk(duration_s=30.0, drop_right_deg=8.0, drop_left_deg=4.0, seed=3,
                          sensor=SensorModel.ideal(), **NO_VARIABILITY)
    obliquity = trace.truth.angles_pelvis_deg[:, 1]
    phase = trace.truth.phase
    strides = [s for s in trace.truth.strides if s.steady]
    assert len(strides) >= 20
    for stride in strides:
        # Right single support: the left side sinks to 8° below level; left single support: the right side, 4°.
        assert stride.drop_right_stance_deg == pytest.approx(8.0, abs=0.2)
        assert stride.drop_left_stance_deg == pytest.approx(4.0, abs=0.2)
        inside = slice(stride.start_sample, stride.end_sample)
        right = phase[inside] == PHASE_RIGHT_SINGLE_SUPPORT
        left = phase[inside] == PHASE_LEFT_SINGLE_SUPPORT
        assert obliquity[inside][right].min() == pytest.approx(-8.0, abs=0.2)
        assert obliquity[inside][left].max() == pytest.approx(4.0, abs=0.2)
        assert obliquity[inside][right].max() <= 1e-9 and obliquity[inside][left].min() >= -1e-9
    summary = trace.summary()
    assert summary["drop_right_stance_deg_mean"] == pytest.approx(8.0, abs=0.2)
    assert summary["drop_left_stance_deg_mean"] == pytest.approx(4.0, abs=0.2)


def test_walk_sway_tilt_and_rotation_ranges():
    trace = simulate_walk(duration_s=30.0, sway_cm=5.0, tilt_mean_deg=3.0, tilt_range_deg=4.0, rotation_range_deg=10.0,
                          turns=[(15.0, 90.0, 2.0)], seed=3, sensor=SensorModel.ideal(), **NO_VARIABILITY)
    for stride in (s for s in trace.truth.strides if s.steady):
        assert stride.sway_pp_cm == pytest.approx(5.0, abs=0.05)
        assert stride.tilt_range_deg == pytest.approx(4.0, abs=0.05)
        assert stride.tilt_mean_deg == pytest.approx(3.0, abs=0.05)
        assert stride.rotation_range_deg == pytest.approx(10.0, abs=0.05)
    # Sway is toward the stance side: right (−y) in right single support, left in left single support.
    sway = trace.truth.sway_m
    assert np.mean(sway[trace.truth.phase == PHASE_RIGHT_SINGLE_SUPPORT]) < -0.01
    assert np.mean(sway[trace.truth.phase == PHASE_LEFT_SINGLE_SUPPORT]) > 0.01


def test_walk_events_alternate_and_give_the_cadence():
    trace = simulate_walk(duration_s=40.0, cadence_spm=104.0, seed=6, sensor=SensorModel.ideal(), **NO_VARIABILITY)
    events = trace.truth.events
    pattern = [("IC", "right"), ("FC", "left"), ("IC", "left"), ("FC", "right")]
    for i, event in enumerate(events):
        assert (event.kind, event.side) == pattern[i % 4]
        assert event.sample_index == round(event.t_s * trace.fs_hz)
    steady_ic = [e.t_s for e in events if e.kind == "IC" and 4.0 < e.t_s < 35.0]
    assert 60.0 / np.diff(steady_ic) == pytest.approx(104.0, rel=1e-9)
    assert trace.summary()["cadence_spm"] == pytest.approx(104.0, rel=1e-6)
    # Stance is 60 % of the stride, single support 40 %.
    ic_right = trace.truth.contacts_s("IC", "right")
    fc_right = trace.truth.contacts_s("FC", "right")
    stride_s = 120.0 / 104.0
    np.testing.assert_allclose(fc_right - ic_right[: len(fc_right)], 0.6 * stride_s, rtol=1e-9)
    # Gait initiation and stop: standing at both ends.
    assert trace.truth.phase[0] == PHASE_OTHER and trace.truth.phase[-1] == PHASE_OTHER


def test_walk_variability_has_the_requested_spread():
    trace = simulate_walk(duration_s=240.0, seed=7, stride_time_cv=0.03, amplitude_cv=0.05, sensor=SensorModel.ideal())
    strides = [s for s in trace.truth.strides if s.steady]
    durations = np.array([s.duration_s for s in strides])
    assert np.std(durations) / np.mean(durations) == pytest.approx(0.03, rel=0.25)
    drops = np.array([s.drop_right_stance_deg for s in strides])
    assert np.std(drops) / np.mean(drops) == pytest.approx(0.05, rel=0.25)


# ------------------------------------------------------------------------------------------- hold and others


@pytest.mark.parametrize("side, drop_deg, expected_obliquity", [("right", 6.0, -6.0), ("left", 6.0, 6.0),
                                                                  ("right", -3.0, 3.0), ("left", -3.0, -3.0)])
def test_hold_free_side_drop_and_hike(side, drop_deg, expected_obliquity):
    trace = simulate_hold(duration_s=20.0, side=side, drop_deg=drop_deg, sway_rms_cm=0.0, baseline_sway_rms_cm=0.0,
                          angle_sway_rms_deg=0.0, seed=1, sensor=SensorModel.ideal())
    t, obliquity = trace.t_s, trace.truth.angles_pelvis_deg[:, 1]
    hold = trace.truth.intervals[0]
    assert (hold.kind, hold.side) == ("hold", side)
    middle = (t > hold.start_s + 1) & (t < hold.end_s - 1)
    np.testing.assert_allclose(obliquity[middle], expected_obliquity, atol=1e-9)
    np.testing.assert_allclose(obliquity[t < hold.start_s - 0.5], 0.0, atol=1e-9)
    code = PHASE_RIGHT_SINGLE_SUPPORT if side == "right" else PHASE_LEFT_SINGLE_SUPPORT
    assert np.all(trace.truth.phase[middle] == code)
    # Weight goes over the stance leg (+y is left).
    shift = np.mean(trace.truth.sway_m[middle])
    assert shift > 0.03 if side == "left" else shift < -0.03


def test_hold_touchdown_returns_toward_level_and_tilt_drifts():
    trace = simulate_hold(duration_s=20.0, side="right", drop_deg=6.0, touchdowns=[9.0], tilt_drift_deg=4.0,
                          angle_sway_rms_deg=0.0, seed=1, sensor=SensorModel.ideal())
    t, angles = trace.t_s, trace.truth.angles_pelvis_deg
    during = (t >= 9.1) & (t <= 9.3)
    assert np.all(np.abs(angles[during, 1]) < 0.25 * 6.0)
    assert np.all(trace.truth.phase[during] == PHASE_OTHER)
    assert angles[(t > 7.0) & (t < 8.0), 1].mean() == pytest.approx(-6.0, abs=0.01)
    hold = trace.truth.intervals[0]
    assert angles[np.searchsorted(t, hold.end_s - 0.3), 2] == pytest.approx(4.0, abs=0.01)
    assert trace.summary()["touchdowns"] == 1


def test_sit_and_sit_to_stand():
    sit = simulate_sit(duration_s=10.0, seed=1, sensor=SensorModel.ideal())
    assert sit.truth.angles_pelvis_deg[:, 2].mean() == pytest.approx(-15.0, abs=1.0)
    rise = simulate_sit_to_stand(duration_s=8.0, seed=1, sensor=SensorModel.ideal(), sway_rms_cm=0.0,
                                 angle_sway_rms_deg=0.0)
    z = rise.truth.pos_pelvis_m[:, 2]
    assert z[-1] - z[0] == pytest.approx(0.45, abs=1e-9)
    tilt = rise.truth.angles_pelvis_deg[:, 2]
    assert tilt[0] == pytest.approx(-15.0) and tilt[-1] == pytest.approx(0.0, abs=1e-9)
    assert tilt.max() > 5.0  # the anterior tilt surge before seat-off
    assert np.argmax(tilt) < np.searchsorted(z, z[0] + 0.2)


# -------------------------------------------------------------------------------------------------- sensor


def test_noise_matches_the_density_over_half_the_sample_rate():
    fs_hz = 200.0
    model = SensorModel.ideal(acc_noise_ug_rthz=110.0, gyr_noise_mdps_rthz=3.8)
    trace = simulate_stand(duration_s=60.0, fs_hz=fs_hz, sway_rms_cm=0.0, angle_sway_rms_deg=0.0, sensor=model)
    acc_noise = trace.acc_sensor_m_s2 - trace.truth.specific_force_sensor_m_s2
    gyr_noise = trace.gyr_sensor_rad_s - trace.truth.angular_rate_sensor_rad_s
    expected_acc = 110e-6 * GRAVITY_M_S2 * np.sqrt(fs_hz / 2)
    expected_gyr = 3.8e-3 * RAD_PER_DEG * np.sqrt(fs_hz / 2)
    np.testing.assert_allclose(np.std(acc_noise, axis=0), expected_acc, rtol=0.1)
    np.testing.assert_allclose(np.std(gyr_noise, axis=0), expected_gyr, rtol=0.1)


def test_realistic_reading_is_gain_times_truth_plus_bias_plus_noise():
    trace = simulate_walk(duration_s=20.0, seed=8, sensor=SensorModel.realistic(seed=8))
    tr = trace.truth
    residual = trace.acc_sensor_m_s2 - tr.specific_force_sensor_m_s2 @ tr.acc_gain.T - tr.acc_bias_m_s2
    assert np.abs(residual.mean(axis=0)).max() < 0.002
    assert np.std(residual) < 0.02
    bias_mg = np.abs(tr.acc_bias_m_s2[0]) / GRAVITY_M_S2 * 1e3
    assert np.all(bias_mg <= 20.0) and np.any(bias_mg > 1.0)
    assert not np.allclose(tr.gyr_gain, np.eye(3))


def test_saturation_and_quantisation_follow_the_wire_format():
    model = SensorModel.ideal(acc_full_scale_g=16.0, gyr_full_scale_dps=2000.0, quantise=True)
    n = 1000
    big = np.linspace(-30, 30, n)[:, None] * GRAVITY_M_S2 * np.ones((n, 3))
    fast = np.linspace(-4000, 4000, n)[:, None] * RAD_PER_DEG * np.ones((n, 3))
    acc, gyr, _ = apply_sensor(model, big, fast, 100.0, np.random.default_rng(0))
    assert acc.max() == pytest.approx(32767 * ACC_LSB_M_S2) and acc.min() == pytest.approx(-32768 * ACC_LSB_M_S2)
    assert gyr.max() == pytest.approx(32767 * GYR_LSB_RAD_S) and gyr.min() == pytest.approx(-32768 * GYR_LSB_RAD_S)
    assert acc.max() / GRAVITY_M_S2 == pytest.approx(16.0, abs=1e-3)
    assert gyr.max() * DEG_PER_RAD == pytest.approx(2000.0, abs=0.1)
    # Realistic traces land on the wire grid, and the smallest step between readings is one LSB.
    trace = simulate_stand(duration_s=10.0, seed=2)
    for values, lsb in ((trace.acc_sensor_m_s2, ACC_LSB_M_S2), (trace.gyr_sensor_rad_s, GYR_LSB_RAD_S)):
        counts = values / lsb
        np.testing.assert_allclose(counts, np.round(counts), atol=1e-6)
        steps = np.abs(np.diff(np.round(counts), axis=0))
        assert steps[steps > 0].min() == 1


@pytest.mark.parametrize("rpy, expected", [
    ((0.0, 20.0, 0.0), (-np.sin(np.radians(20)), 0.0, np.cos(np.radians(20)))),
    ((20.0, 0.0, 0.0), (0.0, np.sin(np.radians(20)), np.cos(np.radians(20)))),
])
def test_mounting_rotation_rotates_gravity(rpy, expected):
    trace = simulate_stand(duration_s=2.0, sway_rms_cm=0.0, angle_sway_rms_deg=0.0, seed=1,
                           sensor=SensorModel.ideal(mounting_rpy_deg=rpy))
    np.testing.assert_allclose(trace.acc_sensor_m_s2, GRAVITY_M_S2 * np.array(expected) * np.ones((200, 3)), atol=1e-9)


def test_dropped_samples_leave_gaps_in_the_sample_index():
    model = SensorModel.ideal(drop_rate=0.1, drop_burst_mean=3.0, seed=4)
    trace = simulate_walk(duration_s=60.0, seed=4, sensor=model)
    n_taken = 6000
    assert len(trace.t_s) / n_taken == pytest.approx(0.9, abs=0.02)
    gaps = np.diff(trace.sample_index)
    assert gaps.min() == 1 and gaps.max() > 2
    assert np.mean(gaps[gaps > 1] - 1) == pytest.approx(3.0, rel=0.3)
    np.testing.assert_allclose(trace.t_s, trace.sample_index / trace.fs_hz, atol=1e-12)
    assert len(trace.truth.angles_pelvis_deg) == len(trace.t_s) == len(trace.acc_sensor_m_s2)
    assert trace.summary()["dropped_samples"] == n_taken - len(trace.t_s)


def test_timestamps_carry_the_jitter():
    trace = simulate_stand(duration_s=60.0, seed=3, sensor=SensorModel.ideal(jitter_us=200.0))
    jitter_s = trace.t_s - trace.sample_index / trace.fs_hz
    assert np.std(jitter_s) == pytest.approx(200e-6, rel=0.05)
    assert np.all(np.diff(trace.t_s) > 0)


def test_same_seed_same_trace_other_seed_other_trace():
    a = simulate_walk(duration_s=15.0, seed=11)
    b = simulate_walk(duration_s=15.0, seed=11)
    c = simulate_walk(duration_s=15.0, seed=12)
    for name in ("t_s", "acc_sensor_m_s2", "gyr_sensor_rad_s"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    np.testing.assert_array_equal(a.truth.angles_pelvis_deg, b.truth.angles_pelvis_deg)
    assert not np.array_equal(a.acc_sensor_m_s2, c.acc_sensor_m_s2)
    assert not np.array_equal(a.truth.angles_pelvis_deg, c.truth.angles_pelvis_deg)
    # The sensor's seed changes the sensor only, not the motion.
    d = simulate_walk(duration_s=15.0, seed=11, sensor=SensorModel.realistic(seed=99))
    np.testing.assert_array_equal(a.truth.angles_pelvis_deg, d.truth.angles_pelvis_deg)
    assert not np.array_equal(a.acc_sensor_m_s2, d.acc_sensor_m_s2)


# ----------------------------------------------------------------------------------------------- the result


@pytest.mark.parametrize("simulate", [simulate_walk, simulate_hold, simulate_stand, simulate_sit,
                                      simulate_sit_to_stand])
def test_truth_dict_is_json_and_complete(simulate):
    trace = simulate(duration_s=12.0, seed=1)
    truth = json.loads(json.dumps(trace.truth_dict()))
    n = len(trace.t_s)
    assert truth["activity"] == trace.activity
    for key, width in (("angles_pelvis_deg", 3), ("q_sensor_to_earth", 4), ("pos_pelvis_m", 3)):
        assert np.asarray(truth[key]).shape == (n, width)
    for key in ("t_s", "sample_index", "sway_m", "phase", "stride_phase"):
        assert len(truth[key]) == n
    assert truth["params"]["duration_s"] == 12.0
    assert isinstance(truth["summary"], dict)
    if simulate is simulate_walk:
        assert truth["events"][0] == {**truth["events"][0], "kind": "IC", "side": "right"}
        assert {"drop_right_stance_deg", "drop_left_stance_deg", "sway_pp_cm"} <= set(truth["strides"][0])


def test_bad_settings_are_named():
    with pytest.raises(TypeError, match="drop_rigth_deg"):
        simulate_walk(drop_rigth_deg=8.0)
    with pytest.raises(ValueError, match="too short"):
        simulate_walk(duration_s=3.0)
    with pytest.raises(ValueError, match="side"):
        simulate_hold(side="middle")
    with pytest.raises(ValueError, match="drop_rate"):
        SensorModel.ideal(drop_rate=1.5)
    assert dataclasses.replace(SensorModel.ideal(), jitter_us=5.0).jitter_us == 5.0


def test_bridge_and_clamshell_truth(tmp_path):
    """Reps as asked: a bridge turns the supine pelvis posteriorly (tilt −90° → −115°) and the dropping side sinks;
    a clamshell rolls the segment it is worn on; the CLI writes them with their truth."""
    from hipcheck.cli import main
    from hipcheck.errors import InvalidValueError
    from hipcheck.motion import simulate_bridge, simulate_clamshell

    bridge = simulate_bridge(reps=3, drop_side="left", drop_deg=5.0, fs_hz=100.0, seed=1)
    angles = bridge.truth.angles_pelvis_deg
    reps = [i for i in bridge.truth.intervals if i.kind == "rep"]
    assert len(reps) == 3 and bridge.duration_s == pytest.approx(2.0 + 3 * 6.5 + 1.5)
    top = (bridge.t_s > reps[0].start_s + 1.0) & (bridge.t_s < reps[0].start_s + 2.0)
    assert np.mean(angles[top, 2]) == pytest.approx(-115.0, abs=1.0)
    assert np.mean(angles[top, 1]) == pytest.approx(-5.0, abs=1.0)  # left side lower: obliquity + = left higher
    assert np.mean(angles[bridge.t_s < 1.5, 2]) == pytest.approx(-90.0, abs=1.0)
    assert bridge.summary()["up_s"] == 1.0 and bridge.summary()["down_s"] == 3.0

    pelvis = simulate_clamshell(reps=2, worn="pelvis", roll_back_deg=15.0, up_s=1.5, fs_hz=100.0, seed=2)
    assert np.max(pelvis.truth.angles_pelvis_deg[:, 1]) == pytest.approx(15.0, abs=1.5)
    thigh = simulate_clamshell(reps=2, fs_hz=100.0, seed=2)
    assert np.max(thigh.truth.angles_pelvis_deg[:, 1]) == pytest.approx(40.0, abs=1.5)
    with pytest.raises(InvalidValueError, match="drop_side"):
        simulate_bridge(drop_side="up")
    with pytest.raises(InvalidValueError, match="need duration_s"):
        simulate_clamshell(reps=5, duration_s=10.0)

    out = tmp_path / "clam.csv"
    assert main(["simulate", "clamshell", "--reps", "4", "--down-s", "2", "-o", str(out)]) == 0
    truth = json.loads(out.with_name("clam.truth.json").read_text())
    assert truth["summary"]["reps"] == 4 and truth["summary"]["down_s"] == 2.0
