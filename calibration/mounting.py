"""Mounting calibration: the sensor→pelvis rotation from a static stand plus a short walk or a forward bend.

Procedure (docs/angles.md):

1. **Stand** still and upright in the posture that should read zero (the wearer's neutral standing) for 2-5 s.
   The mean up direction in sensor coordinates is the pelvis superior axis: tilt and obliquity are zero there.
2. Then either
   - **walk** straight for 10-20 s: the walking direction (the major axis of the horizontal acceleration's
     covariance at a lag of one step, as in ``hipcheck.pelvis``) is the pelvis anterior axis; or
   - **bend** forward from the hips (at least 20°, more is better) and come back: the bend is a rotation about the
     pelvis's left-right axis, so its axis, taken from the stand orientation to the deepest point of the bend, is
     the pelvis y axis (a forward bend turns +y: tilt + = anterior).
3. The anterior axis is made perpendicular to the vertical; ``R_sensor_to_pelvis`` has rows (anterior, left, up).

The vertical is taken from the orientation input (``q_sensor_to_earth`` of the fusion) during the stand, as the
automatic tracker does, so that an accelerometer bias that tilts the filter's inclination cancels out; the stand's
raw acceleration checks that the wearer kept still. Sensor orientation convention: ``q_sensor_to_earth`` (w, x, y,
z), earth z up (docs/pipeline.md).

The sensor may be mounted any way round (the calibration is what a refused automatic mounting asks for): the
stand is not required to have sensor z up, but with a walk it must match the walking posture within 20°, and the
walk's forward sign comes from the data as in ``hipcheck.pelvis`` (AP acceleration leads the vertical by a quarter
step).

Errors (``MountingError``, a ValueError) say what to repeat: moving during the stand, too short a stand, a stand
that was not upright standing, no walking found, a walk that does not show which way is forward, a bend too small
or not about a horizontal axis.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hipcheck.errors import InvalidValueError
from hipcheck.rotation import (
    matrix_from_quat,
    quat_conjugate,
    quat_from_matrix,
    quat_multiply,
    quat_normalize,
    rotvec_from_quat,
)
from hipcheck.settings import check_rate
from hipcheck.units import DEG_PER_RAD

__all__ = ["MountingError", "MountingCalibration", "calibrate_mounting", "vertical_from_stand"]

STAND_MIN_S = 1.0
STAND_MAX_ACC_STD_M_S2 = 0.15  # per axis: postural sway is ~0.03 m/s², shifting one's weight ~0.3
STAND_MAX_ROTATION_DEG = 3.0  # orientation spread during the stand
UPRIGHT_MAX_DEG = 45.0  # sensor z to up, when the sensor is declared nominal: mountings within ~20°, postures ~15°
# The stand's vertical against the mean posture over the walk: walking holds the pelvis within a few degrees of
# its standing tilt. Further off, the "stand" was not upright standing (sitting, lying, bending), which a sensor
# mounted any way round cannot tell from the stand alone.
STAND_WALK_MAX_DEG = 20.0
BEND_MIN_DEG = 20.0
BEND_MAX_OFF_HORIZONTAL_DEG = 30.0  # the bend's axis must be near horizontal (a twist is not a bend)
WALK_MIN_S = 4.0


class MountingError(InvalidValueError):
    """The recording cannot give a mounting alignment; the message says what to repeat."""


@dataclass(frozen=True)
class MountingCalibration:
    """q_sensor_to_pelvis and how it was found. Axes are unit vectors in sensor coordinates."""

    q_sensor_to_pelvis: np.ndarray  # (4,) w, x, y, z: pass to PelvisTracker(alignment=...)
    up_sensor: np.ndarray  # pelvis superior axis
    forward_sensor: np.ndarray  # pelvis anterior axis
    method: str  # 'walk' or 'bend'
    stand_s: float
    stand_acc_std_m_s2: float  # largest per-axis standard deviation during the stand
    walking_s: float = float("nan")  # walking found (method 'walk')
    bend_deg: float = float("nan")  # depth of the bend (method 'bend')


def vertical_from_stand(q_sensor_to_earth, acc_sensor_m_s2, fs_hz: float, *,
                        nominal: bool = False) -> tuple[np.ndarray, float]:
    """Pelvis superior axis in sensor coordinates from a still stand; (up_sensor, acc std m/s²).

    Any sensor axis may point up (the sensor may be mounted any way round); nominal=True declares it mounted as
    designed (z up within 45°) and refuses a stand that is not. Raises MountingError if the stand is too short or
    the wearer moved.
    """
    q = _finite_rows(np.asarray(q_sensor_to_earth, dtype=float), 4, "stand q_sensor_to_earth")
    acc = _finite_rows(np.asarray(acc_sensor_m_s2, dtype=float), 3, "stand acc_sensor_m_s2")
    if len(q) != len(acc):
        raise MountingError(f"stand: {len(q)} quaternions but {len(acc)} acceleration rows; pass the same samples")
    stand_s = len(q) / fs_hz
    if stand_s < STAND_MIN_S:
        raise MountingError(f"stand of {stand_s:.2f} s is too short: stand still for at least {STAND_MIN_S:g} s "
                            "(2-5 s is best)")
    acc_std = float(np.max(np.std(acc, axis=0)))
    if acc_std > STAND_MAX_ACC_STD_M_S2:
        raise MountingError(f"the wearer moved during the stand (acceleration varies by {acc_std:.2f} m/s², more "
                            f"than {STAND_MAX_ACC_STD_M_S2} m/s²): stand still and repeat")
    ups = matrix_from_quat(quat_normalize(q))[:, 2, :]  # earth z in sensor coordinates, per sample
    up = ups.mean(axis=0)
    up /= np.linalg.norm(up)
    spread_deg = float(np.max(np.degrees(np.arccos(np.clip(ups @ up, -1.0, 1.0)))))
    if spread_deg > STAND_MAX_ROTATION_DEG:
        raise MountingError(f"the wearer moved during the stand (the pelvis turned by up to {spread_deg:.1f}°): "
                            "stand still and repeat")
    off_deg = float(np.degrees(np.arccos(np.clip(up[2], -1.0, 1.0))))
    if nominal and off_deg > UPRIGHT_MAX_DEG:
        raise MountingError(f"the sensor's z axis is {off_deg:.0f}° from vertical during the stand: the wearer "
                            "must stand upright with the sensor clipped on the sacrum, z up")
    return up, acc_std


def calibrate_mounting(stand_q, stand_acc_m_s2, fs_hz: float, *, walk_q=None, walk_acc_m_s2=None,
                       bend_q=None) -> MountingCalibration:
    """The mounting from a stand (its orientation and acceleration) and either a walk or a forward bend.

    stand_q, walk_q, bend_q: q_sensor_to_earth (n, 4) from the fusion over each part; the three parts may come from
    one continuous recording cut into pieces (the bend's heading is measured against the bend's own first sample,
    so the parts need not share a heading).
    """
    check_rate(fs_hz, MountingError)
    if (walk_q is None) == (bend_q is None):
        raise MountingError("give either a walk (walk_q and walk_acc_m_s2) or a forward bend (bend_q), not both "
                            "nor neither")
    up, acc_std = vertical_from_stand(stand_q, stand_acc_m_s2, fs_hz)
    stand_s = len(stand_q) / fs_hz
    if walk_q is not None:
        if walk_acc_m_s2 is None:
            raise MountingError("walk_acc_m_s2 is missing: the walk needs both orientation and acceleration")
        _check_stand_against_walk(up, walk_q)
        forward, walking_s = _forward_from_walk(up, walk_q, walk_acc_m_s2, fs_hz)
        return _result(up, forward, "walk", stand_s, acc_std, walking_s=walking_s)
    forward, bend_deg = _forward_from_bend(up, bend_q)
    return _result(up, forward, "bend", stand_s, acc_std, bend_deg=bend_deg)


def _forward_from_walk(up, walk_q, walk_acc, fs_hz):
    from hipcheck.pelvis import PelvisTracker  # the same AP/ML estimator as the automatic alignment

    q = np.asarray(walk_q, dtype=float)
    acc = np.asarray(walk_acc, dtype=float)
    if q.ndim != 2 or q.shape[1] != 4 or acc.shape != (len(q), 3):
        raise MountingError(f"walk: q {q.shape} and acc {acc.shape}; expected (n, 4) and (n, 3) for the same samples")
    tracker = PelvisTracker(fs_hz, vertical_sensor=up, yaw_walk_s=WALK_MIN_S, sign_walk_s=WALK_MIN_S)
    tracker.update(q, acc)
    if tracker.walking_s < WALK_MIN_S:
        raise MountingError(f"no steady walking found in the walk ({tracker.walking_s:.1f} s of the {WALK_MIN_S:g} s "
                            "needed): walk straight at a comfortable pace for 10-20 s")
    if not tracker.aligned:
        # Forward and backward look alike but for the phase of AP against vertical acceleration (hipcheck.pelvis).
        raise MountingError(f"the walk does not show which way is forward (evidence "
                            f"{tracker.mounting.forward_sign_evidence:+.2f}): walk straight at a comfortable pace "
                            "for 10-20 s, or calibrate with a forward bend")
    A = matrix_from_quat(tracker.alignment)
    return A[0], tracker.walking_s


def _check_stand_against_walk(up, walk_q):
    q = quat_normalize(_finite_rows(np.asarray(walk_q, dtype=float), 4, "walk q_sensor_to_earth"))
    walk_up = matrix_from_quat(q)[:, 2, :].mean(axis=0)
    walk_up /= np.linalg.norm(walk_up)
    off_deg = float(np.degrees(np.arccos(np.clip(walk_up @ up, -1.0, 1.0))))
    if off_deg > STAND_WALK_MAX_DEG:
        raise MountingError(f"the stand is {off_deg:.0f}° from the posture of the walk: it was not upright standing; "
                            "stand upright and still, then walk")


def _forward_from_bend(up, bend_q):
    q = quat_normalize(_finite_rows(np.asarray(bend_q, dtype=float), 4, "bend q_sensor_to_earth"))
    if len(q) < 2:
        raise MountingError("the bend recording is empty: record the forward bend and the return")
    # Rotation from the first (upright) sample to each later one, in sensor coordinates: q0* ⊗ q.
    rotvec = rotvec_from_quat(quat_multiply(quat_conjugate(q[0]), q))
    angles_deg = np.linalg.norm(rotvec, axis=1) * DEG_PER_RAD
    deepest = int(np.argmax(angles_deg))
    bend_deg = float(angles_deg[deepest])
    if bend_deg < BEND_MIN_DEG:
        raise MountingError(f"the bend reached {bend_deg:.0f}°: bend forward from the hips by at least "
                            f"{BEND_MIN_DEG:g}° and repeat")
    axis = rotvec[deepest] / np.linalg.norm(rotvec[deepest])
    off_deg = float(np.degrees(np.arcsin(min(1.0, abs(float(axis @ up))))))
    if off_deg > BEND_MAX_OFF_HORIZONTAL_DEG:
        raise MountingError(f"the bend's axis is {off_deg:.0f}° from horizontal: that was a twist or a side bend; "
                            "bend straight forward from the hips and repeat")
    left = axis - (axis @ up) * up
    left /= np.linalg.norm(left)
    return np.cross(left, up), bend_deg  # x = y × z


def _result(up, forward, method, stand_s, acc_std, **extra) -> MountingCalibration:
    forward = forward - (forward @ up) * up
    forward /= np.linalg.norm(forward)
    left = np.cross(up, forward)
    q = quat_from_matrix(np.stack([forward, left, up]))
    return MountingCalibration(q_sensor_to_pelvis=q, up_sensor=up, forward_sensor=forward, method=method,
                               stand_s=stand_s, stand_acc_std_m_s2=acc_std, **extra)


def _finite_rows(x: np.ndarray, width: int, what: str) -> np.ndarray:
    if x.ndim != 2 or x.shape[1] != width:
        raise MountingError(f"{what} has shape {x.shape}: expected (n, {width})")
    finite = np.all(np.isfinite(x), axis=1)
    if not np.all(finite):
        raise MountingError(f"{what} has {int((~finite).sum())} row(s) with NaN or inf: record again or cut them out")
    return x
