"""Mounting calibration: the sensor→pelvis rotation from a static stand plus a short walk or a forward bend.

Procedure (docs/angles.md):

1. **Stand** still and upright in the posture that should read zero (the wearer's neutral standing) for 2-5 s.
   The mean up direction in sensor coordinates is the pelvis superior axis: tilt and obliquity are zero there.
2. Then either
   - **walk** straight for 20 s: the walking direction (the major axis of the horizontal acceleration's
     covariance at a lag of one step, as in ``hipcheck.pelvis``) is the pelvis anterior axis; or
   - **bend** forward from the hips (at least 20°, more is better) and come back: the bend is a rotation about the
     pelvis's left-right axis, so its axis (the major axis of the sample-to-sample rotations over the bend, signed
     by the way down) is the pelvis y axis (a forward bend turns +y: tilt + = anterior).
3. The anterior axis is made perpendicular to the vertical; ``R_sensor_to_pelvis`` has rows (anterior, left, up).

The vertical is taken from the orientation input (``q_sensor_to_earth`` of the fusion) during the stand, as the
automatic tracker does, so that an accelerometer bias that tilts the filter's inclination cancels out; the stand's
raw acceleration checks that the wearer kept still. Sensor orientation convention: ``q_sensor_to_earth`` (w, x, y,
z), earth z up (docs/pipeline.md).

The sensor may be mounted any way round (the calibration is what a refused automatic mounting asks for): the
stand is not required to have sensor z up, but with a walk it must match the walking posture within 20°, and the
walk's forward sign comes from the data as in ``hipcheck.pelvis`` (AP acceleration leads the vertical by a quarter
step).

Errors (``MountingError``, a ``CalibrationRefused``) say what to repeat: moving during the stand, an unsteady stand
(standing on one leg: the pelvis wobbles and the acceleration varies several times more than in quiet standing on
both feet), too short a stand, a stand that was not upright standing, too few steps (no steady walking found),
turning during the walk, a walk that does not show which way is forward, a bend too small or not about a horizontal
axis.

``estimate_mounting`` is the front door on raw samples, with the call shape of the other estimators: one recording
of the whole step (stand, then walk or bend), cut where the movement begins, its orientation from the fusion
(``hipcheck.fusion.orient``, offline, with the walking settings of the pipeline). The stand's mean angular rate is
taken off the gyroscope before the fusion: standing still, the pelvis turns back and forth about a fixed posture,
so the mean is the gyroscope's bias (to a few hundredths of a degree per second), and the walk's heading, which the
turning check reads, does not drift with an uncalibrated gyroscope.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hipcheck.calibration.common import CalibrationRefused, check_samples, jsonable, moving_sd
from hipcheck.fusion import orient
from hipcheck.pipeline import WALKING_FUSION_SETTINGS
from hipcheck.rotation import (
    matrix_from_quat,
    quat_conjugate,
    quat_from_matrix,
    quat_multiply,
    quat_normalize,
    quat_rotate,
    rotvec_from_quat,
)
from hipcheck.settings import check_rate
from hipcheck.units import DEG_PER_RAD

__all__ = ["MountingError", "MountingCalibration", "calibrate_mounting", "vertical_from_stand", "estimate_mounting"]

STAND_MIN_S = 1.0
STAND_MAX_ACC_STD_M_S2 = 0.15  # per axis: postural sway is ~0.03 m/s², shifting one's weight ~0.3
STAND_MAX_ROTATION_DEG = 3.0  # orientation spread during the stand
# Beyond these the wearer was not standing but moving (a step, walking): the stand is "moved", not "unsteady".
STAND_MOVED_ACC_STD_M_S2 = 1.0
# Quiet standing on both feet turns the pelvis by tenths of a degree: 0.4-1.3 °/s RMS of the rate and 0.03-0.07
# m/s² of acceleration sd in the quietest 2 s of the mobgap lab recordings that begin standing (simulated: 1.1-1.5
# °/s); single-leg stance sways two to three times as far and faster (4-6 °/s, 0.5-0.7 m/s² in hipcheck.motion,
# whose sizes follow the postural-sway literature cited in docs/motion.md).
STAND_MAX_GYR_RMS_DPS = 3.0
# The walk: a turn of the smoothed heading beyond this is not walking straight; fewer steps than this are not enough
# to find forward.
WALK_MAX_TURN_DEG = 30.0
WALK_MIN_STEPS = 10
STEP_MIN_APART_S = 0.3
STEP_PEAK_M_S2 = 1.0  # a step's vertical acceleration peak above gravity
# estimate_mounting: the movement after the stand begins where the acceleration's 0.5 s sd passes this, the
# angular rate (bias taken off) passes MOVE_GYR_DPS, or gravity's direction tips by MOVE_TIP_DEG from the first
# second's (quiet standing sways by tenths of a degree); the stand ends MOVE_MARGIN_S before it.
MOVE_ACC_SD_M_S2 = 1.0
MOVE_GYR_DPS = 20.0
MOVE_MARGIN_S = 0.75
MOVE_SUSTAINED_S = 1.0
MOVE_TIP_DEG = 5.0
UPRIGHT_MAX_DEG = 45.0  # sensor z to up, when the sensor is declared nominal: mountings within ~20°, postures ~15°
# The stand's vertical against the mean posture over the walk: walking holds the pelvis within a few degrees of
# its standing tilt. Further off, the "stand" was not upright standing (sitting, lying, bending), which a sensor
# mounted any way round cannot tell from the stand alone.
STAND_WALK_MAX_DEG = 20.0
BEND_MIN_DEG = 20.0
BEND_MAX_OFF_HORIZONTAL_DEG = 30.0  # the bend's axis must be near horizontal (a twist is not a bend)
BEND_RETURN_DEG = 10.0  # the bend ends back near the stand's posture
BEND_MAX_STEPS = 3  # a step or two to keep one's balance; more is walking
WALK_MIN_S = 8.0  # walking needed: the forward axis is found to about 1° from 8 s (simulated walks), 0.8° from 17 s


class MountingError(CalibrationRefused):
    """The recording cannot give a mounting alignment; the message says what to repeat (step 'mount')."""

    def __init__(self, message: str, step: str = "mount"):
        super().__init__(message, step)


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
    stand_gyr_rms_dps: float = float("nan")  # the pelvis's wobble during the stand (when the gyroscope was given)
    steps: int = 0  # steps counted in the walk
    turn_deg: float = float("nan")  # range of the walk's heading, smoothed over a stride

    @property
    def R_sensor_to_pelvis(self) -> np.ndarray:
        """(3, 3) rows: the pelvis axes (anterior, left, superior) in sensor coordinates."""
        return matrix_from_quat(self.q_sensor_to_pelvis)

    def to_dict(self) -> dict:
        """JSON-ready, the names of docs/calibration.md."""
        return jsonable({"R_sensor_to_pelvis": self.R_sensor_to_pelvis, "q_sensor_to_pelvis": self.q_sensor_to_pelvis,
                         "method": self.method, "stand_s": self.stand_s,
                         "stand_acc_std_m_s2": self.stand_acc_std_m_s2, "stand_gyr_rms_dps": self.stand_gyr_rms_dps,
                         "walking_s": self.walking_s, "steps": self.steps, "turn_deg": self.turn_deg,
                         "bend_deg": self.bend_deg})


def vertical_from_stand(q_sensor_to_earth, acc_sensor_m_s2, fs_hz: float, *, gyr_sensor_rad_s=None,
                        nominal: bool = False) -> tuple[np.ndarray, float]:
    """Pelvis superior axis in sensor coordinates from a still stand; (up_sensor, acc std m/s²).

    Any sensor axis may point up (the sensor may be mounted any way round); nominal=True declares it mounted as
    designed (z up within 45°) and refuses a stand that is not. gyr_sensor_rad_s (optional, the same samples):
    the pelvis's wobble, which tells an unsteady stand (on one leg) from a quiet one. Raises MountingError if the
    stand is too short, the wearer moved or stood unsteadily.
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
    ups = matrix_from_quat(quat_normalize(q))[:, 2, :]  # earth z in sensor coordinates, per sample
    up = ups.mean(axis=0)
    up /= np.linalg.norm(up)
    spread_deg = float(np.max(np.degrees(np.arccos(np.clip(ups @ up, -1.0, 1.0)))))
    if acc_std > STAND_MOVED_ACC_STD_M_S2:
        raise MountingError(f"the wearer moved during the stand (acceleration varies by {acc_std:.2f} m/s², more "
                            f"than {STAND_MOVED_ACC_STD_M_S2:g} m/s²): stand still and repeat")
    if spread_deg > STAND_MAX_ROTATION_DEG:
        raise MountingError(f"the wearer moved during the stand (the pelvis turned by up to {spread_deg:.1f}°): "
                            "stand still and repeat")
    gyr_rms_dps = stand_gyr_rms_dps(gyr_sensor_rad_s, len(q))
    if acc_std > STAND_MAX_ACC_STD_M_S2 or gyr_rms_dps > STAND_MAX_GYR_RMS_DPS:
        wobble = "" if np.isnan(gyr_rms_dps) else f"the pelvis wobbles at {gyr_rms_dps:.1f} °/s RMS and "
        raise MountingError(f"standing on one leg or swaying during the stand ({wobble}the acceleration varies by "
                            f"{acc_std:.2f} m/s²; quiet standing on both feet stays under {STAND_MAX_GYR_RMS_DPS:g} "
                            f"°/s and {STAND_MAX_ACC_STD_M_S2} m/s²): stand still on both feet for 5 s and redo the "
                            "mount step")
    off_deg = float(np.degrees(np.arccos(np.clip(up[2], -1.0, 1.0))))
    if nominal and off_deg > UPRIGHT_MAX_DEG:
        raise MountingError(f"the sensor's z axis is {off_deg:.0f}° from vertical during the stand: the wearer "
                            "must stand upright with the sensor clipped on the sacrum, z up")
    return up, acc_std


def stand_gyr_rms_dps(gyr_sensor_rad_s, n: int) -> float:
    """RMS (°/s) of the angular rate about its mean (the bias) over a stand; NaN without a gyroscope."""
    if gyr_sensor_rad_s is None:
        return float("nan")
    gyr = _finite_rows(np.asarray(gyr_sensor_rad_s, dtype=float), 3, "stand gyr_sensor_rad_s")
    if len(gyr) != n:
        raise MountingError(f"stand: {len(gyr)} gyroscope rows for {n} samples; pass the same samples")
    return float(np.sqrt(np.mean(np.sum((gyr - gyr.mean(axis=0)) ** 2, axis=1))) * DEG_PER_RAD)


def calibrate_mounting(stand_q, stand_acc_m_s2, fs_hz: float, *, walk_q=None, walk_acc_m_s2=None,
                       bend_q=None, stand_gyr_rad_s=None) -> MountingCalibration:
    """The mounting from a stand (its orientation and acceleration) and either a walk or a forward bend.

    stand_q, walk_q, bend_q: q_sensor_to_earth (n, 4) from the fusion over each part; the three parts may come from
    one continuous recording cut into pieces (the bend's heading is measured against the bend's own first sample,
    so the parts need not share a heading). stand_gyr_rad_s: the stand's angular rate, for the steadiness check.
    """
    check_rate(fs_hz, MountingError)
    if (walk_q is None) == (bend_q is None):
        raise MountingError("give either a walk (walk_q and walk_acc_m_s2) or a forward bend (bend_q), not both "
                            "nor neither")
    up, acc_std = vertical_from_stand(stand_q, stand_acc_m_s2, fs_hz, gyr_sensor_rad_s=stand_gyr_rad_s)
    stand_s = len(stand_q) / fs_hz
    quality = {"stand_gyr_rms_dps": stand_gyr_rms_dps(stand_gyr_rad_s, len(stand_q))}
    if walk_q is not None:
        if walk_acc_m_s2 is None:
            raise MountingError("walk_acc_m_s2 is missing: the walk needs both orientation and acceleration")
        _check_stand_against_walk(up, walk_q)
        forward, walking_s = _forward_from_walk(up, walk_q, walk_acc_m_s2, fs_hz)
        steps = _count_steps(up, walk_acc_m_s2, fs_hz)
        if steps < WALK_MIN_STEPS:
            raise MountingError(f"too few steps ({steps} found, {WALK_MIN_STEPS} needed): walk straight at a "
                                "comfortable pace for 20 s and redo the mount step")
        turn_deg = _walk_turn_deg(forward, walk_q, fs_hz)
        if turn_deg > WALK_MAX_TURN_DEG:
            raise MountingError(f"turning during the walk (the heading changed by {turn_deg:.0f}°): walk straight "
                                "ahead without turning and redo the mount step")
        return _result(up, forward, "walk", stand_s, acc_std, walking_s=walking_s, steps=steps, turn_deg=turn_deg,
                       **quality)
    forward, bend_deg = _forward_from_bend(up, bend_q)
    return _result(up, forward, "bend", stand_s, acc_std, bend_deg=bend_deg, **quality)


def estimate_mounting(acc_m_s2, gyr_rad_s, fs_hz: float, *, stand_s: float | None = None,
                      method: str = "auto") -> MountingCalibration:
    """The mounting from one recording of the step: a quiet stand first, then a few straight steps or a slow
    forward bend from the hips and back (acc m/s², gyr rad/s, (n, 3), sensor frame; pass them corrected by the
    gyro and accel calibrations when there are some).

    stand_s: the stand's length (the guided procedure knows it); None: found, up to where the movement begins.
    method: 'walk', 'bend' or 'auto' (a bend tips the pelvis by BEND_MIN_DEG or more, a walk does not).
    """
    if method not in ("auto", "walk", "bend"):
        raise MountingError(f"method={method!r}: use 'auto', 'walk' or 'bend'")
    acc, gyr = check_samples(acc_m_s2, gyr_rad_s, fs_hz, "mount")
    stop = _stand_end(acc, gyr, fs_hz, stand_s)
    start = min(int(round(0.25 * fs_hz)), stop // 4)  # the first instants may hold the button press
    gyr = gyr - gyr[start:stop].mean(axis=0)
    q = orient(acc, gyr, fs_hz, offline=True, **WALKING_FUSION_SETTINGS)
    stand = slice(start, stop)
    rest = slice(stop, len(acc))
    up = matrix_from_quat(quat_normalize(q[stand]))[:, 2, :].mean(axis=0)
    steps = _count_steps(up / np.linalg.norm(up), acc[rest], fs_hz)
    tip_deg = _tip_deg(q[stand], q[rest], fs_hz)
    if method == "auto":
        # Steps make it a walk whatever the pelvis did; without them, a tip of BEND_MIN_DEG makes it a bend.
        bent = len(tip_deg) > 0 and tip_deg.max() >= BEND_MIN_DEG
        method = "bend" if bent and steps < WALK_MIN_STEPS else "walk"
    if method == "bend":
        _check_bend(tip_deg, steps)
    if method == "walk":
        return calibrate_mounting(q[stand], acc[stand], fs_hz, walk_q=q[rest], walk_acc_m_s2=acc[rest],
                                  stand_gyr_rad_s=gyr[stand])
    return calibrate_mounting(q[stand], acc[stand], fs_hz, bend_q=q[rest], stand_gyr_rad_s=gyr[stand])


def _stand_end(acc, gyr, fs_hz, stand_s) -> int:
    """The sample where the stand ends: stand_s, or MOVE_MARGIN_S before the movement after it begins."""
    n = len(acc)
    if stand_s is not None:
        stop = int(round(stand_s * fs_hz))
        if not 0 < stop < n:
            raise MountingError(f"stand_s={stand_s:g} is not inside the {n / fs_hz:.1f} s recording: record the "
                                "stand and then the walk or bend")
        return stop
    first = gyr[: max(1, int(round(fs_hz)))]
    rate = np.linalg.norm(gyr - np.median(first, axis=0), axis=1)
    window = max(1, int(round(0.2 * fs_hz)))
    rate = np.convolve(rate, np.ones(window) / window, mode="same")
    # A slow bend turns slower than a walk and barely shakes: its tip from the first second's posture tells it.
    smoothed = np.apply_along_axis(lambda x: np.convolve(x, np.ones(2 * window) / (2 * window), mode="same"), 0, acc)
    start_up = acc[: max(1, int(round(fs_hz)))].mean(axis=0)
    cos_tip = smoothed @ start_up / (np.linalg.norm(smoothed, axis=1) * np.linalg.norm(start_up))
    moving = (moving_sd(acc, int(round(0.5 * fs_hz))) > MOVE_ACC_SD_M_S2) | (rate > MOVE_GYR_DPS / DEG_PER_RAD)
    moving |= cos_tip < np.cos(np.radians(MOVE_TIP_DEG))
    # Walking or bending goes on; a sway peak of an unsteady stand does not: the onset is the first sample from
    # which the movement lasts MOVE_SUSTAINED_S.
    sustained = max(1, int(round(MOVE_SUSTAINED_S * fs_hz)))
    lasting = np.convolve(moving.astype(float), np.ones(sustained), mode="valid") >= sustained
    onset = int(np.argmax(lasting)) if lasting.any() else n
    if onset == n:
        raise MountingError("no walk or bend found after the stand: stand still for 5 s, then walk straight for "
                            "20 s (or bend forward from the hips and come back), and redo the mount step")
    if onset < MOVE_MARGIN_S * fs_hz + STAND_MIN_S * fs_hz:
        raise MountingError(f"no quiet stand before the movement (it starts {onset / fs_hz:.1f} s into the "
                            "recording): stand still on both feet for 5 s, then walk, and redo the mount step")
    return max(0, onset - int(round(MOVE_MARGIN_S * fs_hz)))


def _tip_deg(stand_q, rest_q, fs_hz) -> np.ndarray:
    """Inclination change of each later sample from the stand's mean up (degrees), smoothed over 0.5 s (steps
    jolt)."""
    up = matrix_from_quat(quat_normalize(stand_q))[:, 2, :].mean(axis=0)
    up /= np.linalg.norm(up)
    ups = matrix_from_quat(quat_normalize(rest_q))[:, 2, :]
    window = max(1, int(round(0.5 * fs_hz)))
    tip = np.degrees(np.arccos(np.clip(ups @ up, -1.0, 1.0)))
    return np.convolve(tip, np.ones(window) / window, mode="valid") if len(tip) >= window else tip


def _check_bend(tip_deg: np.ndarray, steps: int) -> None:
    """A bend is one excursion from the stand and back, in place."""
    if steps > BEND_MAX_STEPS:
        raise MountingError(f"walking during the bend ({steps} steps): stand in place, bend forward from the hips "
                            "and come back, and redo the mount step")
    if len(tip_deg) and tip_deg[-1] > BEND_RETURN_DEG:
        raise MountingError(f"the recording ends {tip_deg[-1]:.0f}° from the stand's posture: come back upright after "
                            "the bend and stand still for a moment, and redo the mount step")


def _count_steps(up, walk_acc, fs_hz) -> int:
    """Peaks of the vertical acceleration (0.1 s mean) STEP_PEAK_M_S2 above its mean, STEP_MIN_APART_S apart."""
    vertical = np.asarray(walk_acc, dtype=float) @ up
    window = max(1, int(round(0.1 * fs_hz)))
    v = np.convolve(vertical - np.median(vertical), np.ones(window) / window, mode="same")
    peaks = np.flatnonzero((v[1:-1] > v[:-2]) & (v[1:-1] >= v[2:]) & (v[1:-1] > STEP_PEAK_M_S2)) + 1
    count, last = 0, -np.inf
    for i in peaks:
        if i - last >= STEP_MIN_APART_S * fs_hz:
            count, last = count + 1, i
    return count


def _walk_turn_deg(forward, walk_q, fs_hz) -> float:
    """Range of the heading of the pelvis's forward axis over the walk, smoothed over 1.2 s (about a stride, which
    takes out the pelvis's own rotation)."""
    heading_vectors = quat_rotate(quat_normalize(np.asarray(walk_q, dtype=float)), forward)
    heading = np.unwrap(np.arctan2(heading_vectors[:, 1], heading_vectors[:, 0]))
    window = int(round(1.2 * fs_hz))
    if len(heading) < window:
        return 0.0
    smoothed = np.convolve(heading, np.ones(window) / window, mode="valid")
    return float(np.ptp(smoothed) * DEG_PER_RAD)


def _forward_from_walk(up, walk_q, walk_acc, fs_hz):
    from hipcheck.pelvis import PelvisTracker  # the same AP/ML estimator as the automatic alignment

    q = np.asarray(walk_q, dtype=float)
    acc = np.asarray(walk_acc, dtype=float)
    if q.ndim != 2 or q.shape[1] != 4 or acc.shape != (len(q), 3):
        raise MountingError(f"walk: q {q.shape} and acc {acc.shape}; expected (n, 4) and (n, 3) for the same samples")
    tracker = PelvisTracker(fs_hz, vertical_sensor=up, yaw_walk_s=WALK_MIN_S, sign_walk_s=WALK_MIN_S)
    tracker.update(q, acc)
    if tracker.walking_s < WALK_MIN_S:
        raise MountingError(f"too few steps: no steady walking found in the walk ({tracker.walking_s:.1f} s of the "
                            f"{WALK_MIN_S:g} s needed): walk straight at a comfortable pace for 20 s and redo the "
                            "mount step")
    if not tracker.aligned:
        # Forward and backward look alike but for the phase of AP against vertical acceleration (hipcheck.pelvis).
        raise MountingError(f"the walk does not show which way is forward (evidence "
                            f"{tracker.mounting.forward_sign_evidence:+.2f}): walk straight at a comfortable pace "
                            "for 20 s, or calibrate with a forward bend")
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
    # The axis: the major axis of the sample-to-sample rotations (body frame, q_i* ⊗ q_i+1) over the bend, which
    # weighs each sample by its rate: the slow postural wobble of the stand, which would tilt the axis of the one
    # rotation from the first sample to the deepest by its own size over the bend's (~0.3° in 40°), counts little.
    # Its sign: the way the bend went down.
    steps = rotvec_from_quat(quat_multiply(quat_conjugate(q[:-1]), q[1:]))
    axis = np.linalg.eigh(steps.T @ steps)[1][:, -1]
    if axis @ rotvec[deepest] < 0:
        axis = -axis
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
