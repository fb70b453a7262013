"""Checks on IMU arrays before they are analysed: wrong units, NaN, saturated or stuck samples, too little data.

A recording that cannot give a right answer is refused with a message that says what is wrong and what to do
(``InputError``); one that can, but has flaws, is analysed and its flaws are counted in an ``InputReport`` that the
report shows, so nothing is papered over. The per-sample stages handle the flawed samples themselves (the fusion
holds its orientation over a NaN sample and ignores a saturated accelerometer).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from hipcheck.errors import InvalidValueError
from hipcheck.units import ACC_FULL_SCALE_G, GRAVITY_M_S2, GYR_FULL_SCALE_DPS, GYR_WIDEST_RANGE_RAD_S, RAD_PER_DEG

# Beyond the widest MEMS gyroscope range (34.9 rad/s) the data is in °/s. The 15 % margin (40 rad/s) keeps a real
# rotation near full scale, read by a chip whose sensitivity is a few % high, from being taken for °/s; data in
# °/s crosses it at 40 °/s, which most movements exceed.
GYR_PLAUSIBLE_MAX_RAD_S = 1.15 * GYR_WIDEST_RANGE_RAD_S
GYR_GLITCH_SAMPLES = 9  # readings beyond that range tolerated as glitches before the unit is doubted
# Gravity as the median norm of the specific force: a body-worn sensor reads close to 9.81 m/s² most of the time.
GRAVITY_PLAUSIBLE_M_S2 = (7.0, 13.0)
# A reading within this fraction of a full scale counts as saturated (the common ±16 g and ±2000 °/s ranges, and
# any smaller range whose clipping shows as a run of one repeated extreme value).
SATURATION_FRACTION = 0.995
# A run of identical readings on all six axes this long (s) means a stuck sensor or a frozen driver; a real MEMS
# sensor's noise changes its last bit from sample to sample.
STUCK_RUN_S = 0.5
# More than this fraction of unusable samples leaves too little to measure.
MAX_BAD_FRACTION = 0.5


class InputError(InvalidValueError):
    """The data cannot be analysed; the message says what is wrong and what to do."""


@dataclass(frozen=True)
class InputReport:
    """Flaws found in a recording that was still analysed."""

    n_samples: int
    nan_samples: int
    saturated_samples: int
    stuck_samples: int

    def warnings(self) -> list[str]:
        out = []
        for count, what in ((self.nan_samples, "NaN (missing) samples: orientation held over them"),
                            (self.saturated_samples, "saturated samples: accelerometer correction skipped"),
                            (self.stuck_samples, "samples in runs of identical readings (sensor stuck?)")):
            if count:
                out.append(f"{count} {what} ({100.0 * count / self.n_samples:.1f} %)")
        return out


def unit_problem(acc_m_s2: np.ndarray, gyr_rad_s: np.ndarray, acc_unit: str = "m/s2",
                 gyr_unit: str = "rad/s") -> str | None:
    """What looks wrong with the units of data converted from ``acc_unit``/``gyr_unit``, with the option to fix it."""
    finite = np.all(np.isfinite(acc_m_s2), axis=1)
    if finite.any():
        gravity = float(np.median(np.linalg.norm(acc_m_s2[finite], axis=1)))
        if 0.5 < gravity < 2.0 and acc_unit != "g":
            return f"gravity reads {gravity:.2f} m/s²: the data seems to be in g; pass --acc-unit g"
        if 5.0 * GRAVITY_M_S2 < gravity < 15.0 * GRAVITY_M_S2 and acc_unit == "g":
            return (f"gravity reads {gravity / GRAVITY_M_S2:.2f} g: the data seems to be in m/s²; "
                    "pass --acc-unit m/s2")
        low, high = GRAVITY_PLAUSIBLE_M_S2
        if not low <= gravity <= high:
            return (f"gravity reads {gravity:.3g} m/s² (expected about {GRAVITY_M_S2:.2f}): check the "
                    "accelerometer's unit and scale")
    # The tenth largest reading, not the largest: one corrupted sample is a glitch, not a unit.
    finite_gyr = np.abs(gyr_rad_s[np.isfinite(gyr_rad_s)])
    rank = min(finite_gyr.size, GYR_GLITCH_SAMPLES + 1)
    peak = float(np.partition(finite_gyr, finite_gyr.size - rank)[finite_gyr.size - rank]) if rank else 0.0
    if peak > GYR_PLAUSIBLE_MAX_RAD_S and gyr_unit == "rad/s":
        return (f"the angular rate reaches {peak:.0f} rad/s, beyond any IMU's range: the data seems to be in °/s; "
                "pass --gyr-unit deg/s")
    return None


def check_imu(acc_m_s2: np.ndarray, gyr_rad_s: np.ndarray, fs_hz: float, *, min_seconds: float = 0.0) -> InputReport:
    """Refuse data that cannot be analysed (``InputError``); count the flaws of data that can."""
    if not (isinstance(fs_hz, numbers.Real) and math.isfinite(fs_hz) and fs_hz > 0):
        raise InputError(f"sample rate {fs_hz!r} Hz is not a positive number")
    acc = np.asarray(acc_m_s2)
    gyr = np.asarray(gyr_rad_s)
    for name, array in (("acc", acc), ("gyr", gyr)):
        if array.ndim != 2 or array.shape[1] != 3:
            raise InputError(f"{name} has shape {array.shape}; expected (n_samples, 3)")
    if len(acc) != len(gyr):
        raise InputError(f"acc has {len(acc)} samples and gyr {len(gyr)}; they must be sampled together")
    n = len(acc)
    if n / fs_hz < min_seconds:
        raise InputError(f"the recording lasts {n / fs_hz:.2f} s; this analysis needs at least {min_seconds:g} s")

    nan_rows = ~(np.all(np.isfinite(acc), axis=1) & np.all(np.isfinite(gyr), axis=1))
    if nan_rows.all():
        raise InputError("every sample holds NaN or infinite values: nothing to analyse")
    problem = unit_problem(acc, gyr)
    if problem:
        raise InputError(problem)

    acc_limit = SATURATION_FRACTION * ACC_FULL_SCALE_G * GRAVITY_M_S2
    gyr_limit = SATURATION_FRACTION * GYR_FULL_SCALE_DPS * RAD_PER_DEG
    with np.errstate(invalid="ignore"):
        saturated = (np.any(np.abs(acc) >= acc_limit, axis=1) | np.any(np.abs(gyr) >= gyr_limit, axis=1)) & ~nan_rows
    stuck = _stuck_samples(np.concatenate([acc, gyr], axis=1), max(2, int(round(STUCK_RUN_S * fs_hz))))
    if stuck.all():
        raise InputError("every sample reads the same values: the sensor is stuck or the file holds a constant")
    bad = nan_rows | stuck
    if bad.mean() > MAX_BAD_FRACTION:
        raise InputError(f"{100.0 * bad.mean():.0f} % of the samples are NaN or stuck; too little is left to measure")
    return InputReport(n, int(nan_rows.sum()), int(saturated.sum()), int(stuck.sum()))


def _stuck_samples(values: np.ndarray, min_run: int) -> np.ndarray:
    """Samples inside runs of at least ``min_run`` rows identical on every column."""
    n = len(values)
    same = np.zeros(n, dtype=bool)
    if n > 1:
        same[1:] = np.all(values[1:] == values[:-1], axis=1)
    # Run starts are rows that differ from the previous one; a run's length is the distance to the next start.
    starts = np.flatnonzero(~same)
    lengths = np.diff(np.append(starts, n))
    stuck = np.zeros(n, dtype=bool)
    for start, length in zip(starts[lengths >= min_run], lengths[lengths >= min_run]):
        stuck[start:start + length] = True
    return stuck
