"""The simulate_* functions: an activity's kinematics through the sensor model into a Trace with its truth."""

from __future__ import annotations

import dataclasses

import numpy as np

from hipcheck.errors import InvalidValueError, InvalidTypeError
from hipcheck.motion.calibration_motion import StandBend, StandBendSettings, StandWalk, StandWalkSettings
from hipcheck.motion.kinematics import (
    BridgeSettings,
    ClamshellSettings,
    Hold,
    HoldSettings,
    Posture,
    Reps,
    SitSettings,
    SitToStand,
    SitToStandSettings,
    StandSettings,
    Walk,
    WalkSettings,
)
from hipcheck.rotation import (
    body_rate_from_angle_rates,
    matrix_from_angles,
    matrix_from_quat,
    quat_from_angles,
    quat_multiply,
)
from hipcheck.motion.sensor import SensorModel, apply_sensor, kept_samples, sample_times
from hipcheck.motion.strides import stride_truth
from hipcheck.motion.trace import GaitEvent, Trace, Truth
from hipcheck.units import DEG_PER_RAD, GRAVITY_M_S2

__all__ = ["simulate_walk", "simulate_hold", "simulate_stand", "simulate_sit", "simulate_sit_to_stand",
           "simulate_bridge", "simulate_clamshell", "simulate_stand_and_walk", "simulate_stand_and_bend"]


def simulate_walk(*, fs_hz: float = 100.0, seed: int = 0, sensor: SensorModel | None = None, **settings) -> Trace:
    """A walking bout (rest, gait initiation, walking, stop, rest) and the IMU signals it produces.

    settings: any field of :class:`WalkSettings`, e.g. duration_s=60, speed_m_s=1.3, cadence_spm=110,
    drop_left_deg=4, drop_right_deg=4 (drop of the opposite side during that side's stance), sway_cm=4,
    tilt_mean_deg=0, tilt_range_deg=3, rotation_range_deg=8, bounce_cm=3, stride_time_cv=0.02,
    amplitude_cv=0.02, turns=[(time_s, angle_deg, duration_s), ...].
    sensor: None for SensorModel.realistic(seed=seed). The same seed gives the same trace.
    """
    return _simulate("walk", Walk, WalkSettings, settings, fs_hz, seed, sensor)


def simulate_hold(*, fs_hz: float = 100.0, seed: int = 0, sensor: SensorModel | None = None, **settings) -> Trace:
    """A single-leg hold; settings: fields of :class:`HoldSettings` (side, duration_s, lift_s, hold_s, drop_deg,
    tilt_drift_deg, touchdowns, sway_rms_cm, weight_shift_cm...)."""
    return _simulate("hold", Hold, HoldSettings, settings, fs_hz, seed, sensor)


def simulate_stand(*, fs_hz: float = 100.0, seed: int = 0, sensor: SensorModel | None = None, **settings) -> Trace:
    """Quiet standing; settings: fields of :class:`StandSettings` (duration_s, tilt_mean_deg, sway_rms_cm...)."""
    return _simulate("stand", Posture, StandSettings, settings, fs_hz, seed, sensor)


def simulate_sit(*, fs_hz: float = 100.0, seed: int = 0, sensor: SensorModel | None = None, **settings) -> Trace:
    """Sitting (posterior tilt); settings: fields of :class:`SitSettings` (tilt_mean_deg=-15, ...)."""
    return _simulate("sit", Posture, SitSettings, settings, fs_hz, seed, sensor)


def simulate_sit_to_stand(*, fs_hz: float = 100.0, seed: int = 0, sensor: SensorModel | None = None,
                          **settings) -> Trace:
    """Sit-to-stand repetitions; settings: fields of :class:`SitToStandSettings` (duration_s, reps, rise_m...)."""
    return _simulate("sit_to_stand", SitToStand, SitToStandSettings, settings, fs_hz, seed, sensor)


def simulate_bridge(*, fs_hz: float = 100.0, seed: int = 0, sensor: SensorModel | None = None, **settings) -> Trace:
    """Bridges lying on the back, the sensor on the belt at the front; settings: fields of :class:`BridgeSettings`
    (reps, up_s, top_s, down_s, rest_s, range_deg, rise_cm, drop_side, drop_deg...). The truth's angles are the
    pelvis's (tilt about −90°: supine). sensor: None for the realistic preset, worn at the front (its mounting
    turned 180° about the vertical from the sacral clip's)."""
    if sensor is None:
        sensor = SensorModel.realistic(seed=seed, mounting_rpy_deg=(2.0, -8.0, 183.0))
    return _simulate("bridge", Reps, BridgeSettings, settings, fs_hz, seed, sensor)


def simulate_clamshell(*, fs_hz: float = 100.0, seed: int = 0, sensor: SensorModel | None = None,
                       **settings) -> Trace:
    """Clamshells lying on the side; settings: fields of :class:`ClamshellSettings` (reps, up_s, down_s, range_deg,
    worn='thigh'|'pelvis', roll_back_deg...). The truth's angles are those of the segment the sensor is worn on
    (tilt −90°: long axis horizontal; obliquity: its roll, the opening on the thigh). sensor: None for the
    realistic preset turned 90° about the segment's long axis (the sensor's face up, on the outside of the top
    leg)."""
    if sensor is None:
        sensor = SensorModel.realistic(seed=seed, mounting_rpy_deg=(2.0, -8.0, 93.0))
    return _simulate("clamshell", Reps, ClamshellSettings, settings, fs_hz, seed, sensor)


def simulate_stand_and_walk(*, fs_hz: float = 100.0, seed: int = 0, sensor: SensorModel | None = None,
                            **settings) -> Trace:
    """The mounting step: a quiet stand, then straight walking; settings: fields of :class:`StandWalkSettings`
    (stand_s=5, walk_s=20, stand_on='both' | 'left' | 'right' (on one leg during the stand: the bad input), and any
    walk setting such as turns or cadence_spm). truth.intervals holds the 'stand' (side: the leg stood on, if one)."""
    return _simulate("stand_and_walk", StandWalk, StandWalkSettings, settings, fs_hz, seed, sensor)


def simulate_stand_and_bend(*, fs_hz: float = 100.0, seed: int = 0, sensor: SensorModel | None = None,
                            **settings) -> Trace:
    """The mounting step with a forward bend: a quiet stand, then a slow bend forward from the hips and back;
    settings: fields of :class:`StandBendSettings` (stand_s=5, bend_deg=40, down_s, hold_s, up_s; twist_deg or
    lean_deg for a bend that is not straight forward)."""
    return _simulate("stand_and_bend", StandBend, StandBendSettings, settings, fs_hz, seed, sensor)


def _simulate(activity: str, model_type, settings_type, settings: dict, fs_hz: float, seed: int,
              sensor: SensorModel | None) -> Trace:
    cfg = _make_settings(activity, settings_type, settings)
    if not fs_hz > 0:
        raise InvalidValueError(f"fs_hz={fs_hz}: the sample rate must be positive")
    if not cfg.duration_s > 0:
        raise InvalidValueError(f"duration_s={cfg.duration_s}: the duration must be positive")
    sensor = SensorModel.realistic(seed=seed) if sensor is None else sensor
    model = model_type.draw(cfg, np.random.default_rng([seed, 0x3071]))
    rng = sensor.rng()

    sample_index = np.arange(int(round(cfg.duration_s * fs_hz)), dtype=np.int64)
    t_s = sample_times(sensor, sample_index, fs_hz, rng)
    motion = model.at(t_s)
    ideal = _ideal_signals(motion, sensor)
    acc, gyr, errors = apply_sensor(sensor, ideal["specific_force"], ideal["angular_rate"], fs_hz, rng)
    keep = kept_samples(sensor, len(t_s), rng)

    events = [GaitEvent(kind, side, t, int(round(t * fs_hz))) for kind, side, t in model.events()]
    strides = stride_truth(model, motion, fs_hz) if isinstance(model, (Walk, StandWalk)) else []
    truth = Truth(
        angles_pelvis_deg=motion.angles_rad.value[keep] * DEG_PER_RAD,
        q_pelvis_to_earth=ideal["q_pelvis_to_earth"][keep],
        q_sensor_to_earth=ideal["q_sensor_to_earth"][keep],
        q_sensor_to_pelvis=sensor.q_sensor_to_pelvis,
        pos_pelvis_m=motion.pos_m.value[keep],
        vel_pelvis_m_s=motion.pos_m.d1[keep],
        acc_pelvis_m_s2=motion.pos_m.d2[keep],
        sway_m=motion.sway_m.value[keep],
        phase=motion.phase[keep],
        stride_phase=motion.stride_phase[keep],
        specific_force_sensor_m_s2=ideal["specific_force"][keep],
        angular_rate_sensor_rad_s=ideal["angular_rate"][keep],
        acc_bias_m_s2=errors.acc_bias_m_s2[keep],
        gyr_bias_rad_s=errors.gyr_bias_rad_s[keep],
        acc_gain=errors.acc_gain,
        gyr_gain=errors.gyr_gain,
        events=events,
        strides=strides,
        intervals=model.intervals(),
    )
    return Trace(
        activity=activity,
        fs_hz=float(fs_hz),
        t_s=t_s[keep],
        sample_index=sample_index[keep],
        acc_sensor_m_s2=acc[keep],
        gyr_sensor_rad_s=gyr[keep],
        truth=truth,
        params=_jsonable_settings(cfg),
        sensor=sensor,
        seed=seed,
    )


def _ideal_signals(motion, sensor: SensorModel) -> dict:
    """What a perfect sensor with the model's mounting reads: specific force and angular rate, sensor frame.

    f = R_sensor_to_earthᵀ (a_earth − g_earth), g_earth = (0, 0, −g): at rest, +g along the sensor's up direction.
    ω_sensor = R_sensor_to_pelvisᵀ ω_pelvis (the mounting is rigid).
    """
    angles = motion.angles_rad
    q_pelvis_to_earth = quat_from_angles(angles.value)
    q_sensor_to_pelvis = sensor.q_sensor_to_pelvis
    R_sensor_to_pelvis = matrix_from_quat(q_sensor_to_pelvis)
    R_sensor_to_earth = matrix_from_angles(angles.value) @ R_sensor_to_pelvis
    omega_pelvis = body_rate_from_angle_rates(angles.value, angles.d1)
    f_earth = motion.pos_m.d2 + np.array([0.0, 0.0, GRAVITY_M_S2])
    return {
        "q_pelvis_to_earth": q_pelvis_to_earth,
        "q_sensor_to_earth": quat_multiply(q_pelvis_to_earth, q_sensor_to_pelvis),
        "specific_force": np.einsum("nji,nj->ni", R_sensor_to_earth, f_earth),
        "angular_rate": omega_pelvis @ R_sensor_to_pelvis,  # row-vector form of R_sensor_to_pelvisᵀ ω
    }


def _make_settings(activity: str, settings_type, settings: dict):
    known = {f.name for f in dataclasses.fields(settings_type)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise InvalidTypeError(f"simulate_{activity} got unknown setting(s) {', '.join(unknown)}; "
                        f"the settings are: {', '.join(sorted(known))}")
    return settings_type(**settings)


def _jsonable_settings(cfg) -> dict:
    out = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if isinstance(value, tuple):
            value = [list(v) if isinstance(v, tuple) else v for v in value]
        out[f.name] = value
    return out
