"""The wearer's neutral pelvic tilt standing and sitting: what the tilt detector and the posture mode measure from.

"Neutral" pelvic tilt differs from person to person by several degrees (standing: Herrington 2011, "Assessment of
the degree of pelvic tilt within a normal asymptomatic population", Manual Therapy 16(6):646-648; in walking an SD
of about 4°, Kadaba et al. 1989, as hipcheck.detect cites; sitting tips the pelvis back by 10-20°), so the posture
mode's ``neutral_tilt_deg`` and the tilt detector's thresholds are centred on the wearer's own. The wearer stands
(or sits) still and comfortably for a few seconds; the estimate is the mean Baker tilt and obliquity
(docs/angles.md: tilt + = anterior, obliquity + = left side higher) of the pelvis frame given by the mounting, over
the recording without its first and last ``_EDGE_S``. The orientation comes from the offline fusion after the
recording's mean angular rate is taken off the gyroscope (still, that mean is the bias).

When the mounting itself came from a quiet stand (``hipcheck.calibration.mounting``), neutral standing reads zero
by construction and the standing estimate only checks it; sitting, and a mounting declared or found automatically,
are where it matters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hipcheck.calibration.common import CalibrationRefused, check_samples, jsonable
from hipcheck.fusion import orient
from hipcheck.rotation import angles_from_quat, quat_conjugate, quat_multiply, quat_normalize
from hipcheck.units import DEG_PER_RAD

__all__ = ["NeutralCalibration", "estimate_neutral", "POSTURES"]

POSTURES = ("standing", "sitting")
MIN_STILL_S = 2.0
_EDGE_S = 0.5
# Postural sway leaves the mean tilt alone (the simulator's sitting wobbles at 3-4 °/s RMS); these refuse real
# movement: walking, fidgeting, standing up (tens of °/s, 1-2 m/s²).
MAX_ACC_STD_M_S2 = 0.4
MAX_GYR_RMS_DPS = 8.0
# Tilt this far from the mounting's zero is not the posture asked for (lying down, bending, slumped over).
TILT_PLAUSIBLE_DEG = {"standing": (-25.0, 25.0), "sitting": (-45.0, 25.0)}
OBLIQUITY_MAX_DEG = 15.0


@dataclass(frozen=True)
class NeutralCalibration:
    """Mean tilt and obliquity of the wearer's neutral posture (degrees), and how steady it was."""

    posture: str  # 'standing' or 'sitting'
    tilt_deg: float  # + = anterior: the posture mode's neutral_tilt_deg
    obliquity_deg: float  # + = left side higher
    tilt_sd_deg: float
    still_s: float

    def to_dict(self) -> dict:
        """JSON-ready, the names of docs/calibration.md (one set per posture, so both fit in one profile)."""
        p = f"neutral_{self.posture}"
        return jsonable({f"{p}_tilt_deg": self.tilt_deg, f"{p}_obliquity_deg": self.obliquity_deg,
                         f"{p}_tilt_sd_deg": self.tilt_sd_deg, f"{p}_still_s": self.still_s})


def estimate_neutral(acc_m_s2, gyr_rad_s, fs_hz: float, *, q_sensor_to_pelvis, posture: str = "standing",
                     min_still_s: float = MIN_STILL_S) -> NeutralCalibration:
    """The neutral tilt from a recording of the wearer standing (or sitting) still (acc m/s², gyr rad/s, (n, 3)).

    q_sensor_to_pelvis: the mounting (w, x, y, z), from the mount calibration or the clip as declared.
    Raises CalibrationRefused (step 'neutral') for movement, too short a recording or an implausible posture.
    """
    if posture not in POSTURES:
        raise CalibrationRefused(f"posture={posture!r}: use 'standing' or 'sitting'", "neutral")
    acc, gyr = check_samples(acc_m_s2, gyr_rad_s, fs_hz, "neutral")
    mount = quat_normalize(np.asarray(q_sensor_to_pelvis, dtype=float))
    if mount.shape != (4,) or not np.all(np.isfinite(mount)):
        raise CalibrationRefused("q_sensor_to_pelvis must be 4 finite numbers (w, x, y, z): run the mount step "
                                 "first", "neutral")
    verb = "stand" if posture == "standing" else "sit"
    redo = f"{verb} still and comfortably for 5 s and redo the neutral {posture} step"
    edge = int(round(_EDGE_S * fs_hz))
    part = slice(edge, len(acc) - edge)
    still_s = max(0, len(acc) - 2 * edge) / fs_hz
    if still_s < min_still_s:
        raise CalibrationRefused(f"the neutral {posture} recording is {len(acc) / fs_hz:.1f} s: {redo}", "neutral")
    acc_std = float(np.max(acc[part].std(axis=0)))
    gyr_mean = gyr[part].mean(axis=0)
    gyr_rms = float(np.sqrt(np.mean(np.sum((gyr[part] - gyr_mean) ** 2, axis=1))) * DEG_PER_RAD)
    if acc_std > MAX_ACC_STD_M_S2 or gyr_rms > MAX_GYR_RMS_DPS:
        raise CalibrationRefused(f"moving during the neutral {posture} step (acceleration varies by {acc_std:.2f} "
                                 f"m/s², the pelvis turns at {gyr_rms:.1f} °/s RMS): {redo}", "neutral")
    q = orient(acc, gyr - gyr_mean, fs_hz, offline=True)[part]
    angles = angles_from_quat(quat_multiply(q, quat_conjugate(mount))) * DEG_PER_RAD
    tilt, obliquity = float(angles[:, 2].mean()), float(angles[:, 1].mean())
    low, high = TILT_PLAUSIBLE_DEG[posture]
    if not low <= tilt <= high or abs(obliquity) > OBLIQUITY_MAX_DEG:
        raise CalibrationRefused(f"tilt {tilt:.0f}° and obliquity {obliquity:.0f}° are not {posture} upright on this "
                                 f"mounting (tilt {low:g} to {high:g}°): {redo}, or redo the mount step if the sensor "
                                 "was moved on the belt", "neutral")
    return NeutralCalibration(posture=posture, tilt_deg=tilt, obliquity_deg=obliquity,
                              tilt_sd_deg=float(angles[:, 2].std()), still_s=still_s)
