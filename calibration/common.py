"""What the calibration estimators share: the refusal that says what to redo, input checks, and stillness.

Stillness is judged against the sensor's own noise: a sensor lying on a table reads white noise of the datasheet's
density over the band fs/2 (the convention of ST's LSM6DSO datasheets, as in ``hipcheck.motion.sensor``) plus the
quantisation of the wire format (one LSB, uniform: LSB/√12). A window whose standard deviation exceeds that by
``STILL_NOISE_FACTOR`` on any axis is moving. The default densities are those of the noisiest part the firmware
drives (``CHIP_NOISE``: the MPU-6050's accelerometer, the MPU-6050's and LSM6DS3TR-C's gyroscope), so that every
supported sensor lying still passes; a hand-held sensor does not (tremor moves it by tenths of a degree per second,
several times the limit). A caller that knows the part may pass its own, stricter, densities.
"""

from __future__ import annotations

import numpy as np

from hipcheck.errors import InvalidValueError
from hipcheck.inputs import unit_problem
from hipcheck.settings import check_rate
from hipcheck.units import ACC_LSB_M_S2, GRAVITY_M_S2, GYR_LSB_RAD_S, RAD_PER_DEG

__all__ = ["CalibrationRefused", "check_samples", "noise_sd", "moving_sd", "still_runs", "jsonable", "CHIP_NOISE",
           "ACC_NOISE_UG_RTHZ", "GYR_NOISE_MDPS_RTHZ", "STILL_NOISE_FACTOR", "STILL_WINDOW_S"]

# Typical noise densities of the chips the firmware drives (datasheets, high-performance modes: ST LSM6DSOX DS12140
# and LSM6DS3TR-C; InvenSense MPU-6050 PS-MPU-6000A, MPU-6886 DS-000193), as the estimators' keyword arguments:
# estimate_accel(..., **CHIP_NOISE["LSM6DSOX"]).
CHIP_NOISE = {
    "LSM6DSOX": {"acc_noise_ug_rthz": 110.0, "gyr_noise_mdps_rthz": 3.8},
    "LSM6DS3TR-C": {"acc_noise_ug_rthz": 90.0, "gyr_noise_mdps_rthz": 5.0},
    "MPU-6050": {"acc_noise_ug_rthz": 400.0, "gyr_noise_mdps_rthz": 5.0},
    "MPU-6886": {"acc_noise_ug_rthz": 100.0, "gyr_noise_mdps_rthz": 4.0},
}
ACC_NOISE_UG_RTHZ = max(chip["acc_noise_ug_rthz"] for chip in CHIP_NOISE.values())  # µg/√Hz
GYR_NOISE_MDPS_RTHZ = max(chip["gyr_noise_mdps_rthz"] for chip in CHIP_NOISE.values())  # mdps/√Hz
# A window's sd from 50 samples scatters by ~10 %; 4x the expected noise leaves room for a part noisier than typical
# and still refuses a hand holding the sensor (tremor: tenths of a degree per second, ten times the noise).
STILL_NOISE_FACTOR = 4.0
STILL_WINDOW_S = 0.5


class CalibrationRefused(InvalidValueError):
    """A calibration recording that cannot give a trustworthy estimate; the message says what to redo.

    ``step`` names the procedure to repeat: 'gyro', 'accel', 'mount' or 'neutral'."""

    def __init__(self, message: str, step: str = ""):
        super().__init__(message)
        self.step = step


def check_samples(acc_m_s2, gyr_rad_s, fs_hz: float, step: str) -> tuple[np.ndarray, np.ndarray]:
    """The two arrays as float (n, 3), refused with a CalibrationRefused if shapes, values or units are wrong."""
    check_rate(fs_hz, lambda message: CalibrationRefused(message, step))
    acc = np.asarray(acc_m_s2, dtype=float)
    gyr = np.asarray(gyr_rad_s, dtype=float)
    for name, x in (("acc_m_s2", acc), ("gyr_rad_s", gyr)):
        if x.ndim != 2 or x.shape[1] != 3:
            raise CalibrationRefused(f"{step} step: {name} has shape {x.shape}; expected (n, 3)", step)
    if len(acc) != len(gyr):
        raise CalibrationRefused(f"{step} step: {len(acc)} accelerometer and {len(gyr)} gyroscope samples; "
                                 "pass the same samples of both", step)
    bad = ~(np.all(np.isfinite(acc), axis=1) & np.all(np.isfinite(gyr), axis=1))
    if bad.any():
        raise CalibrationRefused(f"{step} step: {int(bad.sum())} sample(s) with NaN or inf; record the {step} step "
                                 "again", step)
    if len(acc) == 0:
        raise CalibrationRefused(f"{step} step: the recording is empty; record the {step} step", step)
    problem = unit_problem(acc, gyr)
    if problem:
        raise CalibrationRefused(f"{step} step: {problem}", step)
    return acc, gyr


def noise_sd(fs_hz: float, acc_noise_ug_rthz: float = ACC_NOISE_UG_RTHZ,
             gyr_noise_mdps_rthz: float = GYR_NOISE_MDPS_RTHZ) -> tuple[float, float]:
    """The standard deviation (acc m/s², gyr rad/s) a still sensor reads per axis: white noise over fs/2 plus
    the wire format's quantisation."""
    band = np.sqrt(fs_hz / 2.0)
    acc = np.hypot(acc_noise_ug_rthz * 1e-6 * GRAVITY_M_S2 * band, ACC_LSB_M_S2 / np.sqrt(12.0))
    gyr = np.hypot(gyr_noise_mdps_rthz * 1e-3 * RAD_PER_DEG * band, GYR_LSB_RAD_S / np.sqrt(12.0))
    return float(acc), float(gyr)


def moving_sd(x: np.ndarray, window: int) -> np.ndarray:
    """Largest per-axis standard deviation over a centred window of ``window`` samples, per sample (n,).

    Running sums of x and x², taken about the median so that the squares stay small: O(n) time and memory at any
    rate (a window view would hold n × window numbers: 0.6 GB for a minute at 1 kHz)."""
    n = len(x)
    window = int(max(2, min(window, n)))
    centred = x - np.median(x, axis=0)
    zero = np.zeros((1, x.shape[1]))
    s1 = np.concatenate([zero, np.cumsum(centred, axis=0)])
    s2 = np.concatenate([zero, np.cumsum(centred**2, axis=0)])
    mean = (s1[window:] - s1[:-window]) / window
    var = (s2[window:] - s2[:-window]) / window - mean**2
    sd = np.sqrt(np.maximum(var, 0.0)).max(axis=1)  # (n - window + 1,)
    before = (window - 1) // 2
    return np.concatenate([np.full(before, sd[0]), sd, np.full(n - len(sd) - before, sd[-1])])


def still_runs(acc: np.ndarray, gyr: np.ndarray, fs_hz: float, acc_sd_max: float, gyr_sd_max: float,
               min_s: float) -> list[tuple[int, int]]:
    """[start, stop) sample ranges at least min_s long where both sensors stay within their still limits."""
    window = int(round(STILL_WINDOW_S * fs_hz))
    still = (moving_sd(acc, window) <= acc_sd_max) & (moving_sd(gyr, window) <= gyr_sd_max)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], still.astype(np.int8), [0]])))
    runs = [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]
    return [(a, b) for a, b in runs if b - a >= min_s * fs_hz]


def jsonable(value):
    """Arrays as lists, NaN as None: what json.dumps writes as a strict JSON document."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return None if not np.isfinite(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value
