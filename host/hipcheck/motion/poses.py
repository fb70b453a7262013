"""The sensor off the body, put down still in a series of poses: the recording the gyroscope and accelerometer steps
calibrate from (docs/calibration.md).

A pose is named by the sensor axis (or the sum of two axes, at 45°) that points up: ``"z up"`` lies flat, face up;
``"x down"`` stands on its +x end; ``"x+y up"`` rests on an edge with x and y both 45° from vertical. The sensor is
put down by hand on a table: each pose is off its nominal direction by up to ``placement_deg`` about a random
horizontal axis and faces a random heading. Between two poses it is picked up (lifted by ``lift_cm``), turned by the
shortest rotation with a minimum-jerk profile, and put down again, over ``move_s``. The specific force and angular
rate are exact (a rotation about a fixed body axis has the rate ṡ θ n), and go through the same sensor model as the
walks.
"""

from __future__ import annotations

import re

import numpy as np

from hipcheck.errors import InvalidValueError
from hipcheck.motion import smooth
from hipcheck.motion.sensor import SensorModel, apply_sensor, kept_samples, sample_times
from hipcheck.motion.smooth import Jet
from hipcheck.motion.trace import PHASE_OTHER, Interval, Trace, Truth
from hipcheck.rotation import (
    angles_from_quat,
    quat_conjugate,
    quat_from_rotvec,
    quat_multiply,
    quat_normalize,
    quat_rotate,
    rotvec_from_quat,
)
from hipcheck.units import DEG_PER_RAD, GRAVITY_M_S2, RAD_PER_DEG

__all__ = ["FACE_POSES", "EDGE_POSES", "ACCEL_POSES", "pose_up_sensor", "simulate_calibration_poses"]

FACE_POSES = ("z up", "z down", "x up", "x down", "y up", "y down")
EDGE_POSES = ("x+y up", "x-y up", "x+z up", "x-z up", "y+z up", "y-z up")
ACCEL_POSES = FACE_POSES + EDGE_POSES
_POSE = re.compile(r"^\s*([+-]?[xyz])([+-][xyz])?\s+(up|down)\s*$")


def pose_up_sensor(name: str) -> np.ndarray:
    """The unit vector in sensor coordinates that points up in pose ``name`` ('z up', 'x down', 'x+y up', ...)."""
    match = _POSE.match(name)
    if not match:
        raise InvalidValueError(f"pose {name!r}: name the axis that points up or down, e.g. 'z up', 'x down', "
                                "'x+y up'")
    up = np.zeros(3)
    for term in filter(None, match.groups()[:2]):
        sign = -1.0 if term.startswith("-") else 1.0
        up["xyz".index(term[-1])] += sign
    if match.group(3) == "down":
        up = -up
    if not np.any(up):
        raise InvalidValueError(f"pose {name!r}: the two axes cancel")
    return up / np.linalg.norm(up)


def simulate_calibration_poses(*, poses=ACCEL_POSES, pose_s: float = 3.0, move_s: float = 1.5,
                               placement_deg: float = 3.0, lift_cm: float = 3.0, fs_hz: float = 100.0, seed: int = 0,
                               sensor: SensorModel | None = None) -> Trace:
    """The sensor put down still in each pose for pose_s, turned to the next over move_s; activity
    'calibration_poses'. The gyroscope step is ``poses=("z up",), pose_s=10``. trace.params['poses'] names the
    poses; trace.truth.intervals holds one 'pose' interval (the still part) per pose. The truth's pelvis angles
    are those of the frame the sensor's mounting would give (the sensor is not worn here).
    sensor: None for SensorModel.realistic(seed=seed)."""
    poses = tuple(poses)
    if not poses:
        raise InvalidValueError("poses is empty: give at least one pose, e.g. ('z up',)")
    if not (fs_hz > 0 and pose_s > 0 and move_s > 0):
        raise InvalidValueError(f"fs_hz={fs_hz:g}, pose_s={pose_s:g}, move_s={move_s:g}: all must be positive")
    sensor = SensorModel.realistic(seed=seed) if sensor is None else sensor
    rng = np.random.default_rng([seed, 0x9055])
    q_poses = np.array([_placed(pose_up_sensor(name), placement_deg, rng) for name in poses])
    duration_s = len(poses) * pose_s + (len(poses) - 1) * move_s
    sample_index = np.arange(int(round(duration_s * fs_hz)), dtype=np.int64)
    sensor_rng = sensor.rng()
    t_s = sample_times(sensor, sample_index, fs_hz, sensor_rng)
    q, rate, lift = _path(t_s, q_poses, pose_s, move_s, 0.01 * lift_cm)
    f_earth = np.zeros((len(t_s), 3))
    f_earth[:, 2] = GRAVITY_M_S2 + lift.d2
    f_sensor = quat_rotate(quat_conjugate(q), f_earth)
    acc, gyr, errors = apply_sensor(sensor, f_sensor, rate, fs_hz, sensor_rng)
    keep = kept_samples(sensor, len(t_s), sensor_rng)
    q_pelvis = quat_multiply(q, quat_conjugate(sensor.q_sensor_to_pelvis))
    pos = np.zeros((len(t_s), 3))
    vel, acc_pelvis = pos.copy(), pos.copy()
    pos[:, 2], vel[:, 2], acc_pelvis[:, 2] = lift.value, lift.d1, lift.d2
    starts = np.arange(len(poses)) * (pose_s + move_s)
    truth = Truth(
        angles_pelvis_deg=angles_from_quat(q_pelvis[keep]) * DEG_PER_RAD,
        q_pelvis_to_earth=q_pelvis[keep], q_sensor_to_earth=q[keep], q_sensor_to_pelvis=sensor.q_sensor_to_pelvis,
        pos_pelvis_m=pos[keep], vel_pelvis_m_s=vel[keep], acc_pelvis_m_s2=acc_pelvis[keep],
        sway_m=np.zeros(int(keep.sum())), phase=np.full(int(keep.sum()), PHASE_OTHER, dtype=np.int8),
        stride_phase=np.full(int(keep.sum()), np.nan), specific_force_sensor_m_s2=f_sensor[keep],
        angular_rate_sensor_rad_s=rate[keep], acc_bias_m_s2=errors.acc_bias_m_s2[keep],
        gyr_bias_rad_s=errors.gyr_bias_rad_s[keep], acc_gain=errors.acc_gain, gyr_gain=errors.gyr_gain,
        intervals=[Interval("pose", float(s), float(s + pose_s)) for s in starts],
    )
    params = {"duration_s": duration_s, "poses": list(poses), "pose_s": pose_s, "move_s": move_s,
              "placement_deg": placement_deg, "lift_cm": lift_cm}
    return Trace(activity="calibration_poses", fs_hz=float(fs_hz), t_s=t_s[keep], sample_index=sample_index[keep],
                 acc_sensor_m_s2=acc[keep], gyr_sensor_rad_s=gyr[keep], truth=truth, params=params, sensor=sensor,
                 seed=seed)


def _placed(up_sensor: np.ndarray, placement_deg: float, rng: np.random.Generator) -> np.ndarray:
    """q_sensor_to_earth with up_sensor turned to earth up, then tipped by up to placement_deg and turned to a
    random heading."""
    z = np.array([0.0, 0.0, 1.0])
    axis = np.cross(up_sensor, z)
    if np.linalg.norm(axis) < 1e-9:  # already up, or straight down: any horizontal axis turns it
        axis = np.array([1.0, 0.0, 0.0]) if up_sensor[2] < 0 else np.zeros(3)
    else:
        axis = axis / np.linalg.norm(axis)
    swing = quat_from_rotvec(axis * np.arccos(np.clip(up_sensor @ z, -1.0, 1.0)))
    tip_direction = rng.uniform(0.0, 2.0 * np.pi)
    tip = quat_from_rotvec(np.array([np.cos(tip_direction), np.sin(tip_direction), 0.0])
                           * rng.uniform(0.0, placement_deg) * RAD_PER_DEG)
    heading = quat_from_rotvec(z * rng.uniform(-np.pi, np.pi))
    return quat_multiply(heading, quat_multiply(tip, swing))


def _path(t_s, q_poses, pose_s, move_s, lift_m):
    """q_sensor_to_earth (N, 4), angular rate in the sensor frame (N, 3) and the lift (a Jet) at instants t_s."""
    n = len(t_s)
    q = np.empty((n, 4))
    rate = np.zeros((n, 3))
    lift = Jet.constant(0.0, Jet.time(t_s))
    period = pose_s + move_s
    segment = np.clip((t_s // period).astype(np.int64), 0, len(q_poses) - 1)
    q[:] = q_poses[segment]
    for k in range(len(q_poses) - 1):
        start = k * period + pose_s
        moving = (t_s >= start) & (t_s < start + move_s)
        u = Jet.time((t_s[moving] - start) / move_s)
        s = smooth.smoothstep(u)
        rotvec = rotvec_from_quat(quat_multiply(quat_conjugate(q_poses[k]), q_poses[k + 1]))
        # q(t) = q_k ⊗ exp(s θn/2): the body turns about the fixed body axis n at ṡ θ.
        q[moving] = quat_multiply(q_poses[k], quat_from_rotvec(s.value[:, None] * rotvec))
        rate[moving] = (s.d1 / move_s)[:, None] * rotvec
        bump = lift_m * smooth.bump(u, 3, 3)
        lift.value[moving] = bump.value
        lift.d1[moving] = bump.d1 / move_s
        lift.d2[moving] = bump.d2 / move_s**2
    return quat_normalize(q), rate, lift
