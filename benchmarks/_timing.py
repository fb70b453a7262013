"""Timing shared by the benchmarks: the best of several runs, the figure least disturbed by a noisy machine."""

from __future__ import annotations

import time


def best_of(n_runs: int, fn) -> tuple[float, object]:
    """(shortest wall time in s, result of the last run) over n_runs calls of fn()."""
    best, result = float("inf"), None
    for _ in range(n_runs):
        started = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - started)
    return best, result
