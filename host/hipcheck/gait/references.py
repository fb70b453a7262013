"""Scoring contacts against reference systems that disagree with each other, and the consensus of two of them.

Two reference systems that watch the same walk (a wearable one such as INDIP, an optical one such as
stereophotogrammetry) each miss or misplace some contacts, and each covers its own walking bouts: an optical
system sees only its capture volume. A detector scored against one of them is charged for that reference's errors
too, so its score is bounded by how well the references agree. Two tools make the figure fairer:

- ``consensus``: the contacts both references report, on the same foot, within ``agree`` samples of each other
  (time: the mean of the two), inside the stretches both cover. A contact that only one reference reports there, or
  that the two place further apart or on different feet, is *disputed*: the truth is unknown, so a detected contact
  near it counts neither as a hit nor as a false alarm, and it is no miss either (a "don't care" region around it).
- ``score_bout``: one-to-one matching within a tolerance inside one reference bout. The references' bouts start at
  their first contact and end at (or one sample after) their last, so a detected contact a few samples outside the
  bout can be the right answer for its edge contact: a detected contact up to the tolerance outside the bout counts
  when it matches, and is ignored (not a false alarm) when it does not — the bout's own edge is the only contact a
  tolerance shorter than a step can reach there.

Matching as ``hipcheck.gait.evaluate.match_events``: closest pairs first, each contact used at most once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hipcheck.gait.evaluate import match_events

__all__ = ["Consensus", "BoutScore", "bout_overlap", "consensus", "score_bout"]


@dataclass
class Consensus:
    """Contacts two references agree on (sample, side 'left'/'right'), the bouts both cover (start, end samples,
    widened to hold their own contacts) and the disputed contacts (samples) inside them."""

    ic: np.ndarray
    lr: np.ndarray
    wb: np.ndarray
    disputed: np.ndarray


@dataclass
class BoutScore:
    """Counts of one scoring: hits, false alarms, misses; time errors (detected − reference, samples) and side
    agreement of the hits (only where sides were given)."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    errors: list = field(default_factory=list)
    side_ok: list = field(default_factory=list)

    def __iadd__(self, other: "BoutScore") -> "BoutScore":
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn
        self.errors += other.errors
        self.side_ok += other.side_ok
        return self

    def f1(self) -> float:
        return 2 * self.tp / max(2 * self.tp + self.fp + self.fn, 1)


def bout_overlap(bouts_a, bouts_b) -> np.ndarray:
    """(k, 2) stretches [start, end] covered by a bout of each list (inclusive sample bounds), in order."""
    out = [(max(a0, b0), min(a1, b1)) for a0, a1 in np.reshape(bouts_a, (-1, 2))
           for b0, b1 in np.reshape(bouts_b, (-1, 2)) if min(a1, b1) >= max(a0, b0)]
    return np.array(sorted(out), dtype=np.int64).reshape(-1, 2)


def consensus(ic_a, lr_a, wb_a, ic_b, lr_b, wb_b, agree: float, margin: int) -> Consensus:
    """The contacts references a and b agree on within ``agree`` samples, on the same foot, inside the stretches
    both cover (a contact up to ``margin`` samples outside such a stretch still belongs to it: each reference's
    bouts end at its own contacts, which the other may place a few samples further out)."""
    ic_a, ic_b = np.asarray(ic_a, np.int64), np.asarray(ic_b, np.int64)
    lr_a, lr_b = np.asarray(lr_a).astype(str), np.asarray(lr_b).astype(str)
    wb = bout_overlap(wb_a, wb_b)
    in_a, in_b = _inside(ic_a, wb, margin), _inside(ic_b, wb, margin)
    a, b, la, lb = ic_a[in_a], ic_b[in_b], lr_a[in_a], lr_b[in_b]
    pairs = match_events(a, b, agree)
    pairs = pairs[la[pairs[:, 0]] == lb[pairs[:, 1]]] if len(pairs) else pairs
    agreed = np.floor((a[pairs[:, 0]] + b[pairs[:, 1]]) / 2 + 0.5).astype(np.int64)
    order = np.argsort(agreed, kind="stable")
    agreed, sides = agreed[order], la[pairs[:, 0]][order]
    disputed = np.sort(np.concatenate([np.delete(a, pairs[:, 0]), np.delete(b, pairs[:, 1])]))
    wb = wb.copy()
    for row in wb:  # a stretch holds its own agreed contacts (the two references' edges differ by a few samples)
        near = agreed[(agreed >= row[0] - margin) & (agreed <= row[1] + margin)]
        if len(near):
            row[0], row[1] = min(row[0], near.min()), max(row[1], near.max())
    return Consensus(agreed, sides, wb, disputed)


def score_bout(detected, sides, ref_ic, ref_lr, start: int, end: int, tolerance: float, disputed=(),
               right=None) -> BoutScore:
    """Score the detected contacts (samples; sides coded, ``right`` being the code of the right foot, or None)
    against the reference contacts inside the bout [start, end]: see the module docstring for the rules at the
    bout's edges and near disputed contacts."""
    detected = np.asarray(detected, np.int64)
    near_bout = (detected >= start - tolerance) & (detected <= end + tolerance)
    found = detected[near_bout]
    ref_ic = np.asarray(ref_ic, np.int64)
    in_bout = (ref_ic >= start) & (ref_ic <= end)
    ref, ref_sides = ref_ic[in_bout], np.asarray(ref_lr).astype(str)[in_bout]
    pairs = match_events(found, ref, tolerance)
    unmatched = np.ones(len(found), dtype=bool)
    unmatched[pairs[:, 0]] = False
    unmatched &= (found >= start) & (found <= end)
    disputed = np.asarray(disputed, np.int64)
    if len(disputed) and len(found):
        unmatched &= np.abs(found[:, None] - disputed[None, :]).min(axis=1) > tolerance
    score = BoutScore(tp=len(pairs), fp=int(unmatched.sum()), fn=len(ref) - len(pairs),
                      errors=list(found[pairs[:, 0]] - ref[pairs[:, 1]]))
    if sides is not None:
        found_sides = np.asarray(sides)[near_bout]
        score.side_ok = list((found_sides[pairs[:, 0]] == right) == (ref_sides[pairs[:, 1]] == "right"))
    return score


def _inside(samples: np.ndarray, bouts: np.ndarray, margin: int) -> np.ndarray:
    keep = np.zeros(len(samples), dtype=bool)
    for start, end in bouts:
        keep |= (samples >= start - margin) & (samples <= end + margin)
    return keep
