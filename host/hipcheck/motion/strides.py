"""Per-stride truth of a simulated walk: drops by stance side, ranges, sway, from the exact kinematics.

Extremes are found on the sample grid and then polished by Newton steps on the model's exact derivatives, so that
the truth does not depend on the sample rate (a peak between two samples is not missed).
"""

from __future__ import annotations

import numpy as np

from hipcheck.errors import InvalidValueError
from hipcheck.motion.kinematics import PelvisMotion, Walk
from hipcheck.motion.smooth import Jet
from hipcheck.motion.trace import Stride
from hipcheck.units import DEG_PER_RAD

# (quantity, extreme, window) for each figure; windows index the stride's phase instants k, k+.1, k+.5, k+.6, k+1.
_EXTREMES = {
    "right_stance_min": ("obliquity", "min", (1, 2)),
    "left_stance_max": ("obliquity", "max", (3, 4)),
    "obliquity_max": ("obliquity", "max", (0, 4)),
    "obliquity_min": ("obliquity", "min", (0, 4)),
    "tilt_max": ("tilt", "max", (0, 4)),
    "tilt_min": ("tilt", "min", (0, 4)),
    "rotation_max": ("rotation", "max", (0, 4)),
    "rotation_min": ("rotation", "min", (0, 4)),
    "sway_max": ("sway", "max", (0, 4)),
    "sway_min": ("sway", "min", (0, 4)),
}


def quantity(motion: PelvisMotion, name: str) -> Jet:
    """obliquity and tilt (deg), rotation relative to the path (deg), sway (cm), as jets."""
    angles = motion.angles_rad
    if name == "obliquity":
        return angles.column(1) * DEG_PER_RAD
    if name == "tilt":
        return angles.column(2) * DEG_PER_RAD
    if name == "rotation":
        return (angles.column(0) - motion.heading_rad) * DEG_PER_RAD
    if name == "sway":
        return motion.sway_m * 100.0
    raise InvalidValueError(name)


def stride_truth(walk: Walk, motion: PelvisMotion, fs_hz: float) -> list[Stride]:
    """The truth of every complete stride of the walk, from its motion evaluated at the (sorted) sample instants."""
    times = walk.phase_times_s
    if len(times) == 0:
        return []
    t = motion.t_s
    bounds = np.searchsorted(t, times)  # first sample at or after each phase instant
    values = {name: quantity(motion, name).value for name in ("obliquity", "tilt", "rotation", "sway")}
    extremes = _extremes(walk, t, values, times, bounds)
    n_samples = len(t)
    strides = []
    for s, row in enumerate(times):
        lo, hi = bounds[s, 0], bounds[s, 4]
        tilt_mean = np.trapezoid(values["tilt"][lo:hi], t[lo:hi]) / (t[hi - 1] - t[lo]) if hi - lo > 1 else np.nan
        strides.append(Stride(
            number=s,
            start_sample=int(np.clip(round(row[0] * fs_hz), 0, n_samples - 1)),
            end_sample=int(np.clip(round(row[4] * fs_hz), 0, n_samples - 1)),
            start_s=float(row[0]),
            end_s=float(row[4]),
            duration_s=float(row[4] - row[0]),
            drop_right_stance_deg=-extremes["right_stance_min"][s],
            drop_left_stance_deg=extremes["left_stance_max"][s],
            obliquity_range_deg=extremes["obliquity_max"][s] - extremes["obliquity_min"][s],
            tilt_mean_deg=float(tilt_mean),
            tilt_range_deg=extremes["tilt_max"][s] - extremes["tilt_min"][s],
            rotation_range_deg=extremes["rotation_max"][s] - extremes["rotation_min"][s],
            sway_pp_cm=extremes["sway_max"][s] - extremes["sway_min"][s],
            steady=walk.is_steady(float(row[0]), float(row[4])),
        ))
    return strides


def _extremes(walk: Walk, t: np.ndarray, values: dict, times: np.ndarray, bounds: np.ndarray) -> dict:
    """Every figure of _EXTREMES for every stride: found on the grid, then polished, all strides at once."""
    grid_t, grid_x, lo_t, hi_t, signs, names = [], [], [], [], [], []
    for name, kind, (lo_col, hi_col) in _EXTREMES.values():
        sign = 1.0 if kind == "max" else -1.0
        t_best, x_best = _grid_extreme(t, sign * values[name], bounds[:, lo_col], bounds[:, hi_col])
        grid_t.append(t_best)
        grid_x.append(x_best)
        lo_t.append(times[:, lo_col])
        hi_t.append(times[:, hi_col])
        signs.append(np.full(len(times), sign))
        names.append(name)
    polished = _polish(walk, np.concatenate(grid_t), np.concatenate(lo_t), np.concatenate(hi_t),
                       np.concatenate(signs), names)
    n = len(times)
    out = {}
    for j, key in enumerate(_EXTREMES):
        sign = signs[j][0]
        # Keep the better of grid and polish (sign · x is maximised), so that a failed polish never loses.
        best = np.fmax(grid_x[j], sign * polished[j * n:(j + 1) * n])
        out[key] = (sign * best).tolist()
    return out


def _grid_extreme(t: np.ndarray, x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Instant and value of the maximum of x[lo:hi] for each window (an empty window gives x[lo])."""
    width = max(1, int((hi - lo).max()))
    last = np.maximum(hi - 1, lo)
    index = np.minimum(lo[:, None] + np.arange(width), last[:, None])
    best = index[np.arange(len(lo)), np.argmax(x[index], axis=1)]
    return t[best], x[best]


def _polish(walk: Walk, t0: np.ndarray, lo: np.ndarray, hi: np.ndarray, sign: np.ndarray,
            names: list[str]) -> np.ndarray:
    """Newton steps toward each extreme (where the rate is zero), kept inside its window.

    The candidates are blocks of equal length, one block per entry of names (the quantity to polish).
    """
    t = t0.copy()
    block = len(t) // len(names)
    for _ in range(4):
        q = _quantities(walk.at(t, with_path=False), names, block)
        curving_right_way = sign * q.d2 < 0
        step = np.where(curving_right_way, q.d1 / np.where(q.d2 == 0, 1.0, q.d2), 0.0)
        t = np.clip(t - step, lo, hi)
    return _quantities(walk.at(t, with_path=False), names, block).value


def _quantities(motion: PelvisMotion, names: list[str], block: int) -> Jet:
    """Jet of names[j] on the j-th block of instants."""
    parts = {name: quantity(motion, name) for name in set(names)}
    pieces = [slice(j * block, (j + 1) * block) for j in range(len(names))]
    return Jet(*(np.concatenate([getattr(parts[name], field)[piece] for name, piece in zip(names, pieces)])
                 for field in ("value", "d1", "d2")))
