"""Scoring the pipeline's output against a simulated trace's truth (used by tests and benchmarks/synthetic.py).

Truth strides run from one right initial contact to the next (docs/motion.md); ours are matched to them by their
start. Drop detection is scored per single-support phase: a phase whose true drop is at least ``margin_deg`` over
the threshold should hold a drop decision naming its stance side, one at least ``margin_deg`` under should hold none.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hipcheck.gait import LEFT, RIGHT
from hipcheck.motion.kinematics import LEFT_FC_PHASE, LEFT_IC_PHASE, RIGHT_FC_PHASE
from hipcheck.motion.trace import PHASE_OTHER

# A decision this close outside a single-support phase still belongs to it (the drop peaks well inside).
DECISION_SLACK_S = 0.1


def steady_strides(trace) -> list:
    return [s for s in trace.truth.strides if s.steady]


def angle_rmse_deg(trace, angles_pelvis_deg: np.ndarray) -> tuple[np.ndarray, float]:
    """RMSE (rotation, obliquity, tilt) over the walking samples that have an output, and that share of them."""
    walking = trace.truth.phase != PHASE_OTHER
    usable = walking & np.all(np.isfinite(angles_pelvis_deg), axis=1)
    error = angles_pelvis_deg[usable] - trace.truth.angles_pelvis_deg[usable]
    return np.sqrt(np.mean(error ** 2, axis=0)), float(usable.sum() / max(1, walking.sum()))


def matched_strides(trace, strides: np.ndarray, tolerance_s: float = 0.05) -> list[tuple]:
    """(truth, ours) pairs of steady right strides whose starts agree within ``tolerance_s``; ours only those
    the pipeline calls steady (straight, regular) and measured on its settled alignment. The truth's steady strides
    include those in turns, where sway from the path and sway in the pelvis's frame differ by definition."""
    ours = strides[(strides["side"] == RIGHT) & strides["aligned"] & strides["steady"]]
    pairs = []
    for truth in steady_strides(trace):
        if len(ours) == 0:
            break
        k = int(np.argmin(np.abs(ours["start_sample"] - truth.start_sample)))
        if abs(int(ours["start_sample"][k]) - truth.start_sample) <= tolerance_s * trace.fs_hz:
            pairs.append((truth, ours[k]))
    return pairs


def stride_errors(pairs: list[tuple], field: str) -> np.ndarray:
    return np.array([ours[field] - getattr(truth, field) for truth, ours in pairs])


def single_support_windows(trace, side: str) -> list[tuple[int, int, float]]:
    """(first sample, last sample, true drop) of each single support on ``side`` in the steady strides."""
    lo, hi = (LEFT_FC_PHASE, LEFT_IC_PHASE) if side == "right" else (RIGHT_FC_PHASE, 1.0)
    out = []
    for stride in steady_strides(trace):
        n = stride.end_sample - stride.start_sample
        out.append((stride.start_sample + int(lo * n), stride.start_sample + int(hi * n),
                    getattr(stride, f"drop_{side}_stance_deg")))
    return out


@dataclass
class DetectionCounts:
    hits: int = 0
    misses: int = 0
    false_alarms: int = 0
    correct_rejections: int = 0
    wrong_side: int = 0

    def add(self, other: "DetectionCounts") -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def sensitivity(self) -> float:
        return self.hits / max(1, self.hits + self.misses)

    @property
    def specificity(self) -> float:
        return self.correct_rejections / max(1, self.correct_rejections + self.false_alarms)


def drop_detection(trace, decisions: np.ndarray, drop_kind: int, threshold_deg: float,
                   margin_deg: float = 2.0) -> DetectionCounts:
    """Score the drop decisions of one trace per single-support phase (module docstring)."""
    counts = DetectionCounts()
    drops = decisions[decisions["kind"] == drop_kind]
    slack = int(DECISION_SLACK_S * trace.fs_hz)
    for side_name, side_code in (("right", RIGHT), ("left", LEFT)):
        for start, end, true_drop in single_support_windows(trace, side_name):
            inside = drops[(drops["sample"] >= start - slack) & (drops["sample"] <= end + slack)]
            counts.wrong_side += int(np.sum(inside["side"] != side_code))
            fired = bool(np.any(inside["side"] == side_code))
            if true_drop >= threshold_deg + margin_deg:
                counts.hits += fired
                counts.misses += not fired
            elif true_drop <= threshold_deg - margin_deg:
                counts.false_alarms += fired
                counts.correct_rejections += not fired
    return counts
