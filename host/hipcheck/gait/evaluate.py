"""Matching detected gait events to a reference, as gait-event benchmarks score them.

One-to-one matching within a tolerance, closest pairs first: each detected and each reference event is used at
most once (the matching of mobgap's evaluation, and of most IC-detection papers). Precision = matches / detected,
recall = matches / reference.
"""

from __future__ import annotations

import numpy as np


def match_events(detected: np.ndarray, reference: np.ndarray, tolerance: float) -> np.ndarray:
    """(k, 2) index pairs (detected, reference), one to one, closest first, |difference| ≤ tolerance (same units
    as the samples given)."""
    detected = np.asarray(detected)
    reference = np.asarray(reference)
    if len(detected) == 0 or len(reference) == 0:
        return np.zeros((0, 2), dtype=int)
    distance = np.abs(detected[:, None] - reference[None, :]).astype(float)
    pairs, used_detected, used_reference = [], set(), set()
    for i, j in zip(*np.unravel_index(np.argsort(distance, axis=None, kind="stable"), distance.shape)):
        if distance[i, j] > tolerance:
            break
        if i not in used_detected and j not in used_reference:
            used_detected.add(i)
            used_reference.add(j)
            pairs.append((i, j))
    return np.array(pairs, dtype=int).reshape(-1, 2)
