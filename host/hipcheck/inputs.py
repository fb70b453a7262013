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

import numba
import numpy as np

from hipcheck.errors import InvalidValueError
from hipcheck.units import ACC_FULL_SCALE_G, DEG_PER_RAD, GRAVITY_M_S2, GYR_FULL_SCALE_DPS, GYR_WIDEST_RANGE_RAD_S, RAD_PER_DEG

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


# The gyro-against-inclination check (gyro_scale_from_inclination): both signals are smoothed over this long (s), which
# keeps the footfall's accelerations out of the inclination and still follows a slow movement; the inclination change
# is compared over windows this long (s); the acceleration counts as gravity alone within this fraction of 1 g.
SCALE_SMOOTH_S = 1.0
SCALE_WINDOW_S = 1.0
# Both signals are first averaged in blocks down to about this rate: the check looks at 1 s means, and a block mean
# of the gyro integrates exactly what its samples do; an hour at 1000 Hz then costs what an hour at 50 Hz does.
SCALE_RATE_HZ = 50.0
SCALE_STATIC_FRACTION = 0.1
# The check decides only on a recording whose inclination changes enough (rms over the windows, degrees) and whose
# gyro explains that change (fraction of its variance); otherwise the unit is left to the range check.
# The check decides when the fitted scale is at least this many standard deviations above zero; the unit is then
# the one nearest to the scale on a log axis (rad/s and °/s differ by 57.3, so the boundary is a factor of 7.6 from
# 1). Right units gave 0.49-1.08 on the nine mobgap lab recordings and 0.3-3.0 on 90 simulated walks, holds,
# stands, sittings and sit-to-stands at 25-1000 Hz (docs/validation.md).
SCALE_MIN_T = 2.0
SCALE_UNIT_BOUNDARY = math.sqrt(DEG_PER_RAD)
# Walking hides the inclination in its accelerations; there a moving body with a still gyro is the tell: an
# acceleration whose magnitude varies by this much (rms, m/s²) comes with the pelvis turning faster than
# GYR_MOVING_MIN_RAD_S (the tenth largest reading). Walks and sit-to-stands vary by 0.7-2.5 m/s² and turn at
# 0.8-3.2 rad/s (nine mobgap lab recordings, simulated activities); rad/s read as °/s turns at 0.014-0.056.
ACC_MOVING_RMS_M_S2 = 0.5
GYR_MOVING_MIN_RAD_S = 0.1


class InputError(InvalidValueError):
    """The data cannot be analysed; the message says what is wrong and what to do."""


@dataclass(frozen=True)
class InputReport:
    """Flaws found in a recording that was still analysed."""

    n_samples: int
    nan_samples: int  # samples with a NaN or an infinite value (the infinite ones are also in infinite_samples)
    saturated_samples: int
    stuck_samples: int
    infinite_samples: int = 0

    def warnings(self) -> list[str]:
        out = []
        for count, what in ((self.nan_samples, "NaN (missing) samples: orientation held over them"),
                            (self.infinite_samples, "samples hold an infinite value (inf): counted with the missing ones"),
                            (self.saturated_samples, "saturated samples: accelerometer correction skipped"),
                            (self.stuck_samples, "samples in runs of identical readings (sensor stuck?)")):
            if count:
                out.append(f"{count} {what} ({100.0 * count / self.n_samples:.1f} %)")
        return out


@dataclass(frozen=True)
class GyroScale:
    """How the gyroscope's integral matches the accelerometer's inclination: ``scale`` times the gyro explains
    ``fit`` (0..1) of the change of inclination, which moved ``motion_deg`` (rms over ``windows`` windows)."""

    scale: float
    scale_sd: float
    fit: float
    motion_deg: float
    windows: int

    @property
    def decisive(self) -> bool:
        """The scale is known well enough to name a unit (SCALE_MIN_T standard deviations above zero)."""
        return math.isfinite(self.scale) and self.scale > 0 and self.scale >= SCALE_MIN_T * self.scale_sd

    def unit_factor(self) -> float:
        """1 for data in the unit it was read as; RAD_PER_DEG when it must still be multiplied by π/180 (°/s read
        as rad/s), DEG_PER_RAD when by 180/π (rad/s read as °/s); NaN when the check cannot decide."""
        if not self.decisive:
            return math.nan
        if self.scale < 1.0 / SCALE_UNIT_BOUNDARY:
            return RAD_PER_DEG
        if self.scale > SCALE_UNIT_BOUNDARY:
            return DEG_PER_RAD
        return 1.0


def gyro_scale_from_inclination(acc_m_s2: np.ndarray, gyr_rad_s: np.ndarray, fs_hz: float) -> GyroScale:
    """The factor k for which k·gyr turns the sensor as the accelerometer's gravity direction turns.

    Where the acceleration is gravity alone (its magnitude within 10 % of 1 g: at rest and in slow motion), the
    gravity direction g in the sensor frame obeys dg/dt = -ω × g (the kinematics of a vector fixed in the earth,
    seen from a rotating frame; e.g. Titterton & Weston, Strapdown Inertial Navigation Technology, 2nd ed., 2004,
    eq. 3.17 — the same equation the gradient step of Madgwick et al., IEEE ICORR 2011, fits). Over windows of
    0.5 s between two such instants, the change of g measured by the accelerometer is regressed on the change the
    integrated gyro predicts; k is the least-squares slope. Right units give k ≈ 1; °/s read as rad/s give
    k ≈ 0.0175 and rad/s read as °/s k ≈ 57.3, at any speed of movement, which a range check cannot tell.
    """
    acc = np.asarray(acc_m_s2, dtype=np.float64)
    gyr = np.asarray(gyr_rad_s, dtype=np.float64)
    block = max(1, int(fs_hz // SCALE_RATE_HZ))
    if block > 1:
        acc, gyr = _block_mean(acc, block), _block_mean(gyr, block)
        fs_hz = fs_hz / block
    n = len(acc)
    lag = max(1, int(round(SCALE_WINDOW_S * fs_hz)))
    smooth = max(1, int(round(SCALE_SMOOTH_S * fs_hz)))
    if n < lag + smooth + 2:
        return GyroScale(math.nan, math.inf, 0.0, 0.0, 0)
    measured, predicted = _window_changes(np.ascontiguousarray(acc), np.ascontiguousarray(gyr), fs_hz, lag, smooth,
                                          SCALE_STATIC_FRACTION * GRAVITY_M_S2)
    if not len(measured):
        return GyroScale(math.nan, math.inf, 0.0, 0.0, 0)
    # A constant gyro bias b adds about -(b × g)·window to every prediction while the posture holds: fitted as an
    # offset (both sides centred), it cannot pass for a scale.
    measured = measured - measured.mean(axis=0)
    predicted = predicted - predicted.mean(axis=0)
    power = float(np.sum(predicted * predicted))
    change = float(np.sum(measured * measured))
    motion_deg = math.degrees(math.sqrt(change / len(measured)))
    if power <= 0.0 or change <= 0.0:
        return GyroScale(math.nan, math.inf, 0.0, motion_deg, len(measured))
    scale = float(np.sum(measured * predicted)) / power
    residual = float(np.sum((measured - scale * predicted) ** 2))
    # Overlapping windows are not independent: about one per window-plus-smoothing span of the recording is.
    independent = max(2.0, len(measured) / (lag + smooth))
    spread = math.sqrt(residual / (3.0 * power * independent))
    return GyroScale(scale, spread, max(0.0, 1.0 - residual / change), motion_deg, len(measured))


def _block_mean(values: np.ndarray, block: int) -> np.ndarray:
    """Means of consecutive blocks of ``block`` rows (a partial last block dropped)."""
    n_blocks = len(values) // block
    total = values[0:n_blocks * block:block].copy()
    for k in range(1, block):
        total += values[k:n_blocks * block:block]
    return total / block


@numba.njit(cache=True)
def _centred_moving_mean(values, width, out):
    """out[i] = mean of values[i - width//2 : i - width//2 + width] (clipped at the ends), per column."""
    n, m = values.shape
    half = width // 2
    running = np.zeros((n + 1, m))
    for i in range(n):
        for k in range(m):
            running[i + 1, k] = running[i, k] + values[i, k]
    for i in range(n):
        lo = min(max(i - half, 0), n)
        hi = min(max(i - half + width, 0), n)
        for k in range(m):
            out[i, k] = (running[hi, k] - running[lo, k]) / (hi - lo)


@numba.njit(cache=True)
def _window_changes(acc, gyr, fs_hz, lag, smooth, static_tolerance_m_s2):
    """The change of the gravity direction over each usable window of ``lag`` rows, as measured (the smoothed
    accelerometer's direction) and as the gyro predicts it: (measured (w, 3), predicted (w, 3)). Where the
    acceleration is gravity alone, g obeys dg/dt = -ω × g (``gyro_scale_from_inclination``)."""
    n = acc.shape[0]
    finite = np.empty(n, dtype=np.bool_)
    zeroed = np.empty((n, 3))
    finite_share_in = np.empty((n, 1))
    for i in range(n):
        finite[i] = True
        for k in range(3):
            if not (math.isfinite(acc[i, k]) and math.isfinite(gyr[i, k])):
                finite[i] = False
        for k in range(3):
            zeroed[i, k] = acc[i, k] if finite[i] else 0.0
        finite_share_in[i, 0] = 1.0 if finite[i] else 0.0
    acc_lp = np.empty((n, 3))
    _centred_moving_mean(zeroed, smooth, acc_lp)
    g_hat = np.empty((n, 3))
    norm = np.empty(n)
    for i in range(n):
        norm[i] = math.sqrt(acc_lp[i, 0] * acc_lp[i, 0] + acc_lp[i, 1] * acc_lp[i, 1] + acc_lp[i, 2] * acc_lp[i, 2])
        scale = norm[i] if norm[i] > 0 else 1.0
        for k in range(3):
            g_hat[i, k] = acc_lp[i, k] / scale
    # The gyro's prediction of g as a running sum, smoothed exactly as the measured g: the accelerations of each step
    # average out of both alike, and a window's change is a difference of two smoothed values.
    integral = np.empty((n, 3))
    total = np.zeros(3)
    for i in range(n):
        wx, wy, wz = (gyr[i, 0], gyr[i, 1], gyr[i, 2]) if finite[i] else (0.0, 0.0, 0.0)
        gx, gy, gz = g_hat[i, 0], g_hat[i, 1], g_hat[i, 2]
        total[0] += -(wy * gz - wz * gy) / fs_hz
        total[1] += -(wz * gx - wx * gz) / fs_hz
        total[2] += -(wx * gy - wy * gx) / fs_hz
        for k in range(3):
            integral[i, k] = total[k]
    predicted_g = np.empty((n, 3))
    _centred_moving_mean(integral, smooth, predicted_g)
    # A window is used only if no NaN falls in its smoothing spans and the mean acceleration is gravity alone, at
    # both ends, and no NaN falls inside it.
    finite_share = np.empty((n, 1))
    _centred_moving_mean(finite_share_in, smooth, finite_share)
    static = np.empty(n, dtype=np.bool_)
    for i in range(n):
        static[i] = finite_share[i, 0] > 0.999 and abs(norm[i] - GRAVITY_M_S2) < static_tolerance_m_s2
    bad_before = np.zeros(n + 1, dtype=np.int64)  # non-finite rows before each row
    for i in range(n):
        bad_before[i + 1] = bad_before[i] + (0 if finite[i] else 1)
    measured = np.empty((max(n - lag, 0), 3))
    predicted = np.empty((max(n - lag, 0), 3))
    windows = 0
    for s in range(n - lag):
        if static[s] and static[s + lag] and bad_before[s + lag + 1] == bad_before[s]:
            for k in range(3):
                measured[windows, k] = g_hat[s + lag, k] - g_hat[s, k]
                predicted[windows, k] = predicted_g[s + lag, k] - predicted_g[s, k]
            windows += 1
    return measured[:windows], predicted[:windows]


# Per-row facts of ``_row_facts`` (bits).
_ROW_FINITE = 1  # acc and gyr all finite
_ROW_ACC_FINITE = 2
_ROW_SATURATED = 4  # a reading within SATURATION_FRACTION of a full scale
_ROW_INFINITE = 8
_ROW_REPEATS = 16  # all six readings equal to the row before's


class _Rows:
    """What the checks read from every row, found in one pass (``_row_facts``): an hour's checks took as long as
    the pelvis stage when each was a numpy pass of its own."""

    def __init__(self, acc_m_s2: np.ndarray, gyr_rad_s: np.ndarray):
        acc = np.ascontiguousarray(acc_m_s2, dtype=np.float64)
        gyr = np.ascontiguousarray(gyr_rad_s, dtype=np.float64)
        self.facts = np.empty(len(acc), dtype=np.uint8)
        self.acc_norm = np.empty(len(acc))  # NaN where acc is not finite
        self.gyr_norm = np.empty(len(acc))  # NaN where gyr is not finite
        self.largest_rates = np.empty(GYR_GLITCH_SAMPLES + 1)  # the largest finite |gyr| readings, descending
        self.finite_rates = _row_facts(acc, gyr, SATURATION_FRACTION * ACC_FULL_SCALE_G * GRAVITY_M_S2,
                                       SATURATION_FRACTION * GYR_FULL_SCALE_DPS * RAD_PER_DEG, self.facts,
                                       self.acc_norm, self.gyr_norm, self.largest_rates)

    def has(self, bit: int) -> np.ndarray:
        return (self.facts & bit) != 0


@numba.njit(cache=True)
def _row_facts(acc, gyr, acc_limit, gyr_limit, facts, acc_norm, gyr_norm, largest_rates):
    """The ``_Rows`` of acc, gyr (n, 3); returns how many gyro readings are finite."""
    largest_rates[:] = -np.inf
    top = largest_rates.shape[0]
    finite_rates = 0
    for i in range(acc.shape[0]):
        bits = 0
        acc_ok = math.isfinite(acc[i, 0]) and math.isfinite(acc[i, 1]) and math.isfinite(acc[i, 2])
        gyr_ok = math.isfinite(gyr[i, 0]) and math.isfinite(gyr[i, 1]) and math.isfinite(gyr[i, 2])
        if acc_ok:
            bits |= _ROW_ACC_FINITE
            if gyr_ok:
                bits |= _ROW_FINITE
        acc_norm[i] = math.sqrt(acc[i, 0] * acc[i, 0] + acc[i, 1] * acc[i, 1] + acc[i, 2] * acc[i, 2]) \
            if acc_ok else math.nan
        gyr_norm[i] = math.sqrt(gyr[i, 0] * gyr[i, 0] + gyr[i, 1] * gyr[i, 1] + gyr[i, 2] * gyr[i, 2]) \
            if gyr_ok else math.nan
        repeats = i > 0
        for k in range(3):
            a, g = acc[i, k], gyr[i, k]
            if abs(a) >= acc_limit or abs(g) >= gyr_limit:
                bits |= _ROW_SATURATED
            if math.isinf(a) or math.isinf(g):
                bits |= _ROW_INFINITE
            if repeats and not (a == acc[i - 1, k] and g == gyr[i - 1, k]):
                repeats = False
            if math.isfinite(g):
                finite_rates += 1
                rate = abs(g)
                if rate > largest_rates[top - 1]:  # insert, keeping the largest first
                    j = top - 1
                    while j > 0 and largest_rates[j - 1] < rate:
                        largest_rates[j] = largest_rates[j - 1]
                        j -= 1
                    largest_rates[j] = rate
        if repeats:
            bits |= _ROW_REPEATS
        facts[i] = bits
    return finite_rates


def unit_problem(acc_m_s2: np.ndarray, gyr_rad_s: np.ndarray, acc_unit: str = "m/s2",
                 gyr_unit: str = "rad/s", fs_hz: float | None = None) -> str | None:
    """What looks wrong with the units of data converted from ``acc_unit``/``gyr_unit``, with the option to fix it.

    Acceleration: gravity's magnitude. Angular rate: the range of real gyroscopes, then (given ``fs_hz``) the
    gyro's integral against the accelerometer's change of inclination (``gyro_scale_from_inclination``), which
    tells rad/s from °/s at any speed of movement."""
    return _unit_problem(acc_m_s2, gyr_rad_s, acc_unit, gyr_unit, fs_hz, _Rows(acc_m_s2, gyr_rad_s))


def _unit_problem(acc_m_s2, gyr_rad_s, acc_unit: str, gyr_unit: str, fs_hz: float | None, rows: _Rows) -> str | None:
    norms = rows.acc_norm[rows.has(_ROW_ACC_FINITE)]
    if len(norms):
        gravity = float(np.median(norms))
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
    rank = min(rows.finite_rates, GYR_GLITCH_SAMPLES + 1)
    peak = float(rows.largest_rates[rank - 1]) if rank else 0.0
    if peak > GYR_PLAUSIBLE_MAX_RAD_S and gyr_unit == "rad/s":
        return (f"the angular rate reaches {peak:.0f} rad/s, beyond any IMU's range: the data seems to be in °/s; "
                "pass --gyr-unit deg/s")
    return None if fs_hz is None else _gyro_scale_problem(acc_m_s2, gyr_rad_s, fs_hz, gyr_unit, rows)


def _gyro_scale_problem(acc_m_s2: np.ndarray, gyr_rad_s: np.ndarray, fs_hz: float, gyr_unit: str,
                        rows: _Rows) -> str | None:
    estimate = gyro_scale_from_inclination(acc_m_s2, gyr_rad_s, fs_hz)
    factor = estimate.unit_factor()
    if not math.isfinite(factor):
        return _still_gyro_problem(rows, gyr_unit)
    if factor == 1.0:
        return None
    seen = (f"the gyroscope read as {gyr_unit} turns the sensor {1.0 / estimate.scale:.3g} times as far as the "
            f"accelerometer's inclination changes ({estimate.windows / fs_hz:.0f} s of slow motion compared)")
    if factor == RAD_PER_DEG and gyr_unit == "rad/s":
        return f"{seen}: the data seems to be in °/s; pass --gyr-unit deg/s"
    if factor == DEG_PER_RAD and gyr_unit == "deg/s":
        return f"{seen}: the data seems to be in rad/s; pass --gyr-unit rad/s"
    return f"{seen}: check the gyroscope's unit and scale (--gyr-unit rad/s or deg/s)"


def _still_gyro_problem(rows: _Rows, gyr_unit: str) -> str | None:
    """A body that moves (ACC_MOVING_RMS_M_S2) with a gyro that hardly turns (GYR_MOVING_MIN_RAD_S)."""
    finite = rows.has(_ROW_FINITE)
    if finite.sum() <= GYR_GLITCH_SAMPLES:
        return None
    norm = rows.acc_norm[finite]
    moving = float(np.sqrt(np.mean((norm - np.median(norm)) ** 2)))
    rates = rows.gyr_norm[finite]
    peak = float(np.partition(rates, len(rates) - GYR_GLITCH_SAMPLES - 1)[len(rates) - GYR_GLITCH_SAMPLES - 1])
    if moving < ACC_MOVING_RMS_M_S2 or peak >= GYR_MOVING_MIN_RAD_S:
        return None
    seen = (f"the accelerometer shows movement (its magnitude varies by {moving:.2f} m/s² rms) but the gyroscope "
            f"read as {gyr_unit} turns at most {peak * DEG_PER_RAD:.2f} °/s")
    if gyr_unit == "deg/s":
        return f"{seen}: the data seems to be in rad/s; pass --gyr-unit rad/s"
    return f"{seen}: check the gyroscope's unit and scale (--gyr-unit rad/s or deg/s)"


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

    rows = _Rows(acc, gyr)
    nan_rows = ~rows.has(_ROW_FINITE)
    if nan_rows.all():
        raise InputError("every sample holds NaN or infinite values: nothing to analyse")
    problem = _unit_problem(acc, gyr, "m/s2", "rad/s", fs_hz, rows)
    if problem:
        raise InputError(problem)

    saturated = rows.has(_ROW_SATURATED) & ~nan_rows
    stuck = _stuck_samples(rows.has(_ROW_REPEATS), max(2, int(round(STUCK_RUN_S * fs_hz))))
    if stuck.all():
        raise InputError("every sample reads the same values: the sensor is stuck or the file holds a constant")
    bad = nan_rows | stuck
    if bad.mean() > MAX_BAD_FRACTION:
        raise InputError(f"{100.0 * bad.mean():.0f} % of the samples are NaN or stuck; too little is left to measure")
    return InputReport(n, int(nan_rows.sum()), int(saturated.sum()), int(stuck.sum()),
                       int(rows.has(_ROW_INFINITE).sum()))


def _stuck_samples(repeats: np.ndarray, min_run: int) -> np.ndarray:
    """Samples inside runs of at least ``min_run`` rows identical on every column (repeats: each row equals the
    one before)."""
    n = len(repeats)
    # Run starts are rows that differ from the previous one; a run's length is the distance to the next start.
    starts = np.flatnonzero(~repeats)
    lengths = np.diff(np.append(starts, n))
    stuck = np.zeros(n, dtype=bool)
    for start, length in zip(starts[lengths >= min_run], lengths[lengths >= min_run]):
        stuck[start:start + length] = True
    return stuck
