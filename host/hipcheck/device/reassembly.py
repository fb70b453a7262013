"""Sample reassembly: samples arrive live, backfilled, twice or never; rows leave once each, in sequence order.

``Reassembly`` holds what was received but not yet emitted (sorted by seq, one per seq) and the ranges marked lost.
``emit()`` hands out everything from the next sequence number on that is known — received rows, and marked rows
(``gap`` True, NaN values, the device time the sample would have had) — and stops at the first hole still open, so
rows never leave out of order. ``missing()`` lists the open holes between the next row to emit and the newest live
sample. No event loop, no link: the session feeds it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hipcheck import protocol

# A sample of a session block: the decoded sample, its host time, and whether it is a marked hole.
BLOCK_DTYPE = np.dtype([
    ("seq", np.int64),  # sequence number, unwrapped
    ("t_device_us", np.int64),  # device time, unwrapped, µs
    ("t_host_s", np.float64),  # the same instant on the host's time.monotonic() clock (time map)
    ("quat", np.float32, (4,)),  # w, x, y, z sensor → earth (the device's fusion)
    ("acc_m_s2", np.float32, (3,)),  # specific force, sensor frame
    ("gyr_rad_s", np.float32, (3,)),  # angular rate, sensor frame
    ("flags", np.uint8),  # SampleFlag (BACKFILLED: resent from the device's ring)
    ("gap", np.bool_),  # True: the sample was lost (values NaN, time predicted), never to arrive
])


@dataclass
class SampleBlock:
    """Consecutive samples in sequence order (``BLOCK_DTYPE`` rows), lost ones marked with ``gap``."""

    samples: np.ndarray
    period_us: int  # the sample period of the newest sample in the block

    def __len__(self) -> int:
        return len(self.samples)

    seq = property(lambda self: self.samples["seq"])
    t_device_us = property(lambda self: self.samples["t_device_us"])
    t_host_s = property(lambda self: self.samples["t_host_s"])
    quat = property(lambda self: self.samples["quat"])
    acc_m_s2 = property(lambda self: self.samples["acc_m_s2"])
    gyr_rad_s = property(lambda self: self.samples["gyr_rad_s"])
    flags = property(lambda self: self.samples["flags"])
    gap = property(lambda self: self.samples["gap"])

    @property
    def valid(self) -> np.ndarray:
        """Rows that hold a sample (not a marked hole)."""
        return ~self.samples["gap"]

    @property
    def n_lost(self) -> int:
        return int(np.count_nonzero(self.samples["gap"]))


@dataclass
class LostRange:
    """Samples [first_seq, first_seq + n) marked lost, and why."""

    first_seq: int
    n: int
    reason: str


class Reassembly:
    """Received samples in, ``BLOCK_DTYPE`` rows out in sequence order (module docstring).

    start_seq: the first sequence number to emit; None: the first live sample's.
    """

    def __init__(self, start_seq: int | None = None):
        self.next_out = start_seq  # next seq to emit
        self.live_next: int | None = None  # one past the newest live sample seen
        self.pending = np.zeros(0, protocol.SAMPLE_DTYPE)  # received, not yet emitted, sorted by seq, unique
        self.lost: list[LostRange] = []  # every range marked lost, with why (merged when adjacent, same reason)
        self._marked: list[list[int]] = []  # [a, b) marked lost, not yet emitted, sorted
        self._last_out: tuple[int, int] | None = None  # (seq, t_device_us) of the last emitted row

    def see_live(self, first: int, end: int) -> tuple[int, int] | None:
        """A live packet holds [first, end): the hole [a, b) it reveals behind it, if any."""
        if self.next_out is None:
            self.next_out = first
        if self.live_next is None:
            self.live_next = max(first, self.next_out)
        hole = (self.live_next, first) if first > self.live_next else None
        self.live_next = max(self.live_next, end)
        return hole

    def see_tail(self, next_seq: int) -> tuple[int, int] | None:
        """The device says its next sample is next_seq: the hole at the tail (a lost last packet), if any."""
        if self.live_next is None or next_seq <= self.live_next:
            return None
        hole = (self.live_next, next_seq)
        self.live_next = next_seq
        return hole

    def insert(self, samples: np.ndarray) -> tuple[int, int]:
        """Received samples (``SAMPLE_DTYPE``, consecutive or not) take their places. Returns (new, duplicate):
        how many were new, and how many were already held (a backfill racing late live data; ignored). Samples
        before the next row to emit, or before any live sample, are dropped unseen."""
        if self.next_out is None:
            return 0, 0  # backfilled data before any live packet: nothing to place it against
        samples = samples[samples["seq"] >= self.next_out]
        if not len(samples):
            return 0, 0
        duplicate = 0
        if len(self.pending):
            known = np.isin(samples["seq"], self.pending["seq"])
            duplicate = int(np.count_nonzero(known))
            samples = samples[~known]
            merged = np.concatenate([self.pending, samples])
            self.pending = merged[np.argsort(merged["seq"], kind="stable")]
        else:
            self.pending = samples
        return len(samples), duplicate

    def declare_lost(self, a: int, b: int, reason: str) -> tuple[int, int] | None:
        """Mark [a, b) lost (clipped to what is not yet emitted); the range marked, or None if nothing was."""
        if self.next_out is not None:
            a = max(a, self.next_out)
        if b <= a:
            return None
        self._marked.append([a, b])
        self._marked.sort()
        last = self.lost[-1] if self.lost else None
        if last is not None and last.reason == reason and last.first_seq + last.n == a:
            last.n += b - a
        else:
            self.lost.append(LostRange(a, b - a, reason))
        return a, b

    def emit(self, period_us: int) -> np.ndarray | None:
        """Every row known from the next one on, in order (``t_host_s`` left 0 for the caller); None if none.
        period_us spaces the device times of marked rows."""
        if self.next_out is None:
            return None
        parts = []
        while True:
            p = self.pending
            nxt = self.next_out
            if len(p) and p["seq"][0] == nxt:
                breaks = np.flatnonzero(np.diff(p["seq"]) != 1)
                k = int(breaks[0]) + 1 if len(breaks) else len(p)
                parts.append(block_rows(p[:k]))
                self.pending = p[k:]
                self.next_out = nxt + k
                continue
            while self._marked and self._marked[0][1] <= nxt:
                self._marked.pop(0)
            if self._marked and self._marked[0][0] <= nxt:
                end = self._marked[0][1]
                if len(p):
                    end = min(end, int(p["seq"][0]))
                parts.append(self._gap_rows(nxt, end, period_us))
                self.next_out = end
                continue
            break
        if not parts:
            return None
        out = np.concatenate(parts)
        self._last_out = (int(out["seq"][-1]), int(out["t_device_us"][-1]))
        return out

    def in_order_next(self) -> int | None:
        """The seq a live packet must start at to leave at once as it is: nothing pending or marked, the live edge
        at the next row to emit (None when that is not the case)."""
        if self.next_out is None or self.live_next != self.next_out or len(self.pending) or self._marked:
            return None
        return self.next_out

    def pass_in_order(self, last_seq: int, last_t_us: int) -> None:
        """Live samples from ``in_order_next()`` to last_seq, consecutive, were emitted at once: what ``see_live``,
        ``insert`` and ``emit`` do with them."""
        self.next_out = self.live_next = last_seq + 1
        self._last_out = (last_seq, last_t_us)

    def missing(self) -> list[tuple[int, int]]:
        """Holes [a, b) between the next row to emit and the newest live sample: not received, not marked."""
        if self.next_out is None or self.live_next is None or self.live_next <= self.next_out:
            return []
        seqs = self.pending["seq"]
        seqs = seqs[seqs < self.live_next]
        starts = np.concatenate(([self.next_out], seqs + 1))
        ends = np.concatenate((seqs, [self.live_next]))
        holes = [(int(a), int(b)) for a, b in zip(starts, ends) if b > a]
        out = []
        for a, b in holes:
            for la, lb in self._marked:
                if lb <= a or la >= b:
                    continue
                if la > a:
                    out.append((a, la))
                a = max(a, lb)
                if a >= b:
                    break
            if a < b:
                out.append((a, b))
        return out

    def _gap_rows(self, a: int, b: int, period_us: int) -> np.ndarray:
        out = np.zeros(b - a, BLOCK_DTYPE)
        out["seq"] = np.arange(a, b)
        if self._last_out is not None:
            s0, t0 = self._last_out
        elif len(self.pending):
            s0, t0 = int(self.pending["seq"][0]), int(self.pending["t_us"][0])
        else:
            s0, t0 = a, 0
        out["t_device_us"] = t0 + (out["seq"] - s0) * period_us
        for name in ("quat", "acc_m_s2", "gyr_rad_s"):
            out[name] = np.nan
        out["gap"] = True
        return out


def block_rows(samples: np.ndarray) -> np.ndarray:
    """Received samples (``protocol.SAMPLE_DTYPE``) as ``BLOCK_DTYPE`` rows (``t_host_s`` 0, ``gap`` False)."""
    out = np.zeros(len(samples), BLOCK_DTYPE)
    out["seq"] = samples["seq"]
    out["t_device_us"] = samples["t_us"]
    for name in ("quat", "acc_m_s2", "gyr_rad_s", "flags"):
        out[name] = samples[name]
    return out
