"""Gyroscope bias from a still period: the sensor lies on a table for about 10 s.

The bias is the mean reading over the longest still stretch of the recording (a still gyroscope reads its bias plus
white noise: the zero-rate level of IEEE Std 952-1997, §A.2, estimated as the sample mean). Stillness is checked on
both sensors against their noise (``hipcheck.calibration.common``), in windows of 0.5 s, and over the whole stretch:
the accelerometer's direction of gravity must not turn by more than ``STILL_MAX_TURN_DEG`` between its first and
last second, which catches a slow turn the windowed check would pass. A steady turn about the vertical at a
constant rate stays invisible to both sensors and would be taken for bias; ``BIAS_MAX_DPS`` refuses the grossest
(cheap parts such as the MPU-6050 allow ±20 °/s of zero-rate offset, so the limit is above that).

The temperature given (the chip's sensor, °C, a number or one value per sample) is recorded beside the bias: a
MEMS gyroscope's bias drifts with temperature (LSM6DSOX: ±0.01 °/s/°C typical), so a profile can tell when its
gyro calibration was made under other conditions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hipcheck.calibration.common import (
    ACC_NOISE_UG_RTHZ,
    GYR_NOISE_MDPS_RTHZ,
    STILL_NOISE_FACTOR,
    CalibrationRefused,
    check_samples,
    jsonable,
    noise_sd,
    still_runs,
)
from hipcheck.units import DEG_PER_RAD

__all__ = ["GyroCalibration", "estimate_gyro_bias", "GYRO_STEP_S"]

GYRO_STEP_S = 10.0  # what the procedure asks for
MIN_STILL_S = 5.0
STILL_MAX_TURN_DEG = 0.5
BIAS_MAX_DPS = 25.0
_EDGE_S = 0.25  # trimmed from each end of the still stretch: the window's reach into the movement around it
_REDO = f"hold the sensor still on a table for {GYRO_STEP_S:g} s and redo"


@dataclass(frozen=True)
class GyroCalibration:
    """The gyroscope bias and how it was found. ``apply`` subtracts it."""

    gyro_bias_rad_s: np.ndarray  # (3,) subtract from the readings
    bias_sd_rad_s: float  # standard error of each axis's mean
    still_s: float  # length of the still stretch used
    start_s: float  # where it starts in the recording
    gyr_std_rad_s: np.ndarray  # (3,) noise seen while still
    acc_std_m_s2: np.ndarray  # (3,)
    temperature_c: float | None = None

    def apply(self, gyr_rad_s) -> np.ndarray:
        return np.asarray(gyr_rad_s, dtype=float) - self.gyro_bias_rad_s

    def to_dict(self) -> dict:
        """JSON-ready, the names of docs/calibration.md."""
        return jsonable({"gyro_bias_rad_s": self.gyro_bias_rad_s, "bias_sd_rad_s": self.bias_sd_rad_s,
                         "still_s": self.still_s, "start_s": self.start_s, "gyr_std_rad_s": self.gyr_std_rad_s,
                         "acc_std_m_s2": self.acc_std_m_s2, "temperature_c": self.temperature_c})


def estimate_gyro_bias(acc_m_s2, gyr_rad_s, fs_hz: float, *, temperature_c=None, min_still_s: float = MIN_STILL_S,
                       acc_noise_ug_rthz: float = ACC_NOISE_UG_RTHZ,
                       gyr_noise_mdps_rthz: float = GYR_NOISE_MDPS_RTHZ) -> GyroCalibration:
    """The bias of a gyroscope recorded lying still (acc m/s², gyr rad/s, (n, 3), sensor frame).

    temperature_c: the chip's temperature, a number or one per sample. The noise densities set how still is still
    (the datasheet's typical figures for the part). Raises CalibrationRefused (step 'gyro') when the sensor moved.
    """
    acc, gyr = check_samples(acc_m_s2, gyr_rad_s, fs_hz, "gyro")
    acc_sd, gyr_sd = noise_sd(fs_hz, acc_noise_ug_rthz, gyr_noise_mdps_rthz)
    runs = still_runs(acc, gyr, fs_hz, STILL_NOISE_FACTOR * acc_sd, STILL_NOISE_FACTOR * gyr_sd, 0.0)
    start, stop = max(runs, key=lambda r: r[1] - r[0], default=(0, 0))
    edge = int(round(_EDGE_S * fs_hz))
    start, stop = start + (edge if start > 0 else 0), stop - (edge if stop < len(acc) else 0)
    still_s = max(0, stop - start) / fs_hz
    total_s = len(acc) / fs_hz
    if still_s < min_still_s:
        raise CalibrationRefused(f"moving during the gyro step: {_REDO} (still for {still_s:.1f} s of the "
                                 f"{total_s:.1f} s recorded; {min_still_s:g} s needed)", "gyro")
    a, g = acc[start:stop], gyr[start:stop]
    second = max(1, int(round(fs_hz)))
    first_up, last_up = a[:second].mean(axis=0), a[-second:].mean(axis=0)
    turn_deg = float(np.degrees(np.arccos(np.clip(first_up @ last_up / np.linalg.norm(first_up)
                                                  / np.linalg.norm(last_up), -1.0, 1.0))))
    if turn_deg > STILL_MAX_TURN_DEG:
        raise CalibrationRefused(f"moving during the gyro step (the sensor turned {turn_deg:.1f}° while it seemed "
                                 f"still): {_REDO}", "gyro")
    bias = g.mean(axis=0)
    bias_dps = float(np.max(np.abs(bias)) * DEG_PER_RAD)
    if bias_dps > BIAS_MAX_DPS:
        raise CalibrationRefused(f"moving during the gyro step (it reads {bias_dps:.0f} °/s, more than any bias): "
                                 f"{_REDO}", "gyro")
    std = g.std(axis=0)
    return GyroCalibration(gyro_bias_rad_s=bias, bias_sd_rad_s=float(np.max(std) / np.sqrt(len(g))),
                           still_s=still_s, start_s=start / fs_hz, gyr_std_rad_s=std, acc_std_m_s2=a.std(axis=0),
                           temperature_c=_temperature(temperature_c, len(acc), start, stop))


def _temperature(temperature_c, n: int, start: int, stop: int) -> float | None:
    if temperature_c is None:
        return None
    t = np.asarray(temperature_c, dtype=float)
    if t.ndim == 0:
        values = t.reshape(1)
    elif t.shape == (n,):
        values = t[start:stop]
    else:
        raise CalibrationRefused(f"temperature_c has shape {t.shape}: give one number or one per sample ({n})",
                                 "gyro")
    if not np.all(np.isfinite(values)) or not -40.0 <= float(values.mean()) <= 125.0:
        raise CalibrationRefused("temperature_c is not a chip temperature in °C (-40 to 125): check the log's "
                                 "temperature column", "gyro")
    return float(values.mean())
