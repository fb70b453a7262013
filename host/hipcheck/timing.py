"""The time column as a clock: its unit, its gaps and its changes of rate, and one uniform grid for the analysis.

Every stage after the reader assumes one sample every 1/fs seconds. A file that breaks this silently (a logger that
paused for 3 s, a rate switched from 50 to 100 Hz mid-file) would shift every stride time and angle after the break,
so the recording is put on one grid at its nominal rate (the median sample period) and what was done is said:

- a **short gap** (missing samples lasting at most ``MAX_INTERPOLATED_GAP_S``) is filled by linear interpolation:
  50 ms is a tenth of a step, over which the pelvis's angles change by a fraction of a degree;
- a **long gap** is left as missing samples (NaN rows, ``observed`` False): the fusion holds its orientation over
  them and no stride is measured across them, so the recording is analysed as segments on one time axis;
- a stretch sampled at **another rate** (the local median period more than ``RATE_CHANGE_FRACTION`` off the nominal
  one for at least ``RATE_CHANGE_MIN_S``) is resampled onto the grid by linear interpolation. Going down in rate this
  way does not low-pass first: the pelvis signals the analysis uses lie below 10 Hz, well inside any rate it takes.

A recording whose gaps make up more than half of its span is refused: it is several recordings, to be split.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

MAX_INTERPOLATED_GAP_S = 0.05
# A step this many local periods long is a gap (one or more samples missing); below it, timestamp jitter.
GAP_FACTOR = 1.5
RATE_CHANGE_FRACTION = 0.2
RATE_CHANGE_MIN_S = 1.0
# The local period is the median over this many steps: long enough to ignore jitter and single gaps.
LOCAL_STEPS = 25
MAX_GAP_FRACTION = 0.5
TIME_UNIT_SECONDS = {"s": 1.0, "ms": 1e-3, "us": 1e-6}


@dataclass
class Grid:
    """A recording on one uniform time grid, with what was found on the way (``notes``) or why it cannot be."""

    t_s: np.ndarray
    acc: np.ndarray
    gyr: np.ndarray
    mag: np.ndarray | None
    fs_hz: float
    observed: np.ndarray | None = None  # False in long gaps; None when every row was observed as read
    notes: list[str] = field(default_factory=list)
    refusal: str | None = None


def time_unit_from_period(period: float, rate_range_hz: tuple[float, float]) -> str | None:
    """The unit (s, ms, us) in which ``period`` is the sample period of a rate within ``rate_range_hz``, or None."""
    low, high = rate_range_hz
    for unit, seconds in TIME_UNIT_SECONDS.items():
        if 1.0 / high <= period * seconds <= 1.0 / low:
            return unit
    return None


def local_period(steps: np.ndarray) -> np.ndarray:
    """Running median of the sample steps over LOCAL_STEPS (centred; the ends use the nearest full window)."""
    n = len(steps)
    width = min(LOCAL_STEPS, n)
    windows = np.lib.stride_tricks.sliding_window_view(steps, width)
    medians = np.median(windows, axis=1)
    index = np.clip(np.arange(n) - width // 2, 0, len(medians) - 1)
    return medians[index]


def regrid(t_s: np.ndarray, acc: np.ndarray, gyr: np.ndarray, mag: np.ndarray | None = None) -> Grid:
    """The recording on a grid at its median sample period (see the module docstring for the rule); returned as
    read when the time column has neither gaps nor changes of rate."""
    steps = np.diff(t_s)
    period = float(np.median(steps))
    fs_hz = 1.0 / period
    local = local_period(steps)
    off_rate = np.abs(local / period - 1.0) > RATE_CHANGE_FRACTION
    rate_runs = [(a, b) for a, b in _runs(off_rate) if t_s[b] - t_s[a] >= RATE_CHANGE_MIN_S]
    gaps = np.flatnonzero(steps > GAP_FACTOR * local)
    if not rate_runs and not len(gaps):
        return Grid(t_s, acc, gyr, mag, fs_hz)

    notes = []
    for a, b in rate_runs:
        notes.append(f"the sample rate changes to {1.0 / float(np.median(steps[a:b])):.4g} Hz from t = "
                     f"{t_s[a] - t_s[0]:.2f} s to {t_s[b] - t_s[0]:.2f} s (elsewhere {fs_hz:.4g} Hz): resampled "
                     f"to {fs_hz:.4g} Hz by linear interpolation")
    long_gaps = [int(i) for i in gaps if steps[i] - local[i] > MAX_INTERPOLATED_GAP_S]
    short = len(gaps) - len(long_gaps)
    if short:
        notes.append(f"{short} short time gap(s) (at most {1000 * MAX_INTERPOLATED_GAP_S:.0f} ms) filled by linear "
                     "interpolation")
    missing_s = float(sum(steps[i] for i in long_gaps))
    span_s = float(t_s[-1] - t_s[0])
    if missing_s > MAX_GAP_FRACTION * span_s:
        return Grid(t_s, acc, gyr, mag, fs_hz, refusal=(
            f"time gaps make up {missing_s:.1f} s of its {span_s:.1f} s ({len(long_gaps)} gap(s), the first at "
            f"t = {t_s[long_gaps[0]] - t_s[0]:.2f} s): it holds separate recordings; split it into one file each"))
    t_grid = t_s[0] + np.arange(int(np.floor(span_s / period + 1e-9)) + 1) * period
    observed = np.ones(len(t_grid), dtype=bool)
    for i in long_gaps:  # a grid point within a quarter period of a real sample is that sample
        observed[(t_grid > t_s[i] + 0.25 * period) & (t_grid < t_s[i + 1] - 0.25 * period)] = False
    if long_gaps:
        segments = np.split(np.arange(len(t_s)), np.array(long_gaps) + 1)
        spans = ", ".join(f"{t_s[s[0]] - t_s[0]:.2f}-{t_s[s[-1]] - t_s[0]:.2f} s" for s in segments)
        notes.append(f"{len(long_gaps)} time gap(s) longer than {1000 * MAX_INTERPOLATED_GAP_S:.0f} ms "
                     f"({missing_s:.2f} s in all, the longest {max(steps[i] for i in long_gaps):.2f} s at t = "
                     f"{t_s[max(long_gaps, key=lambda i: steps[i])] - t_s[0]:.2f} s) split the recording into "
                     f"{len(segments)} segments ({spans}); their samples are missing: no stride spans a gap")
    return Grid(t_grid, _resample(t_grid, t_s, acc, observed), _resample(t_grid, t_s, gyr, observed),
                None if mag is None else _resample(t_grid, t_s, mag, observed), fs_hz, observed, notes)


def _resample(t_grid: np.ndarray, t_s: np.ndarray, values: np.ndarray, observed: np.ndarray) -> np.ndarray:
    out = np.column_stack([np.interp(t_grid, t_s, values[:, k]) for k in range(values.shape[1])])
    out[~observed] = np.nan
    return out


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of each run of True in ``mask``."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))
