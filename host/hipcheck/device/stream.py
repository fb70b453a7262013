"""The session's receive side without its I/O: DATA packets in, blocks of samples (``SampleBlock``) out, in order.

``SampleStream`` decodes each DATA packet (``WireDecoder``, timed in the compact form by the ``PeriodLearner``),
finds the hole a live packet reveals, places the samples (``Reassembly``), and hands every row that can leave to
``on_block`` with its host time (``TimeMap``). Ranges the device cannot serve are marked lost through it, with a
NOTE in the session's log. No event loop: the session feeds it packets and pongs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from hipcheck import protocol
from hipcheck.device.period import PeriodLearner
from hipcheck.device.reassembly import Reassembly, SampleBlock, block_rows
from hipcheck.device.recording import SessionRecording
from hipcheck.device.stats import SessionStats
from hipcheck.device.timemap import TimeMap
from hipcheck.device.wire import WireDecoder, unwrap_packets
from hipcheck.protocol import SampleFlag

EARLY_COMPACT_MAX = 4096  # compact packets held while the period is learnt; more are counted bad


class SampleStream:
    """start_seq: the first sequence number to emit (None: the first live one); stats, recording: the session's;
    on_block: called with each ``SampleBlock``; mark_holes: a hole in the live data is marked lost at once (no
    backfill will fill it)."""

    def __init__(self, start_seq: int | None, stats: SessionStats, recording: SessionRecording,
                 on_block: Callable[[SampleBlock], None], mark_holes: bool = False):
        self.period = PeriodLearner()
        self.wire = WireDecoder(self.period)
        self.reassembly = Reassembly(start_seq)
        self.time_map = TimeMap()
        self.stats = stats
        self.recording = recording
        self.on_block = on_block
        self.mark_holes = mark_holes
        self.restarted = False  # START was sent: the next jump in live seq is not a hole
        self._early: list[tuple[bytes, float]] = []  # compact packets that came before the period was known

    def data(self, packet: bytes, t: float) -> np.ndarray | None:
        """A DATA packet that arrived at t: its samples, or None when it waits for the compact form's period.
        Raises ``protocol.ProtocolError`` on bad bytes (nothing counted: the caller says what it was)."""
        if self.wire.waits(packet):
            if len(self._early) < EARLY_COMPACT_MAX:
                self._early.append((packet, t))
            else:
                self.stats.bad_packets += 1
            return None
        samples = self.wire.decode(packet, self.reassembly.live_next)
        self.stats.data_packets += 1
        backfilled = bool(samples["flags"][0] & SampleFlag.BACKFILLED)
        if not backfilled:
            self._live(samples, t)
        new, duplicate = self.reassembly.insert(samples)
        self.stats.samples_duplicate += duplicate
        if backfilled:
            self.stats.samples_backfilled += new
        self.emit()
        return samples

    def data_run(self, packets: list[bytes], times: list[float], decoded: np.ndarray, first_row: np.ndarray,
                 one_by_one: Callable[[bytes, float], object]) -> None:
        """Consecutive full-form DATA packets (none of the compact length) that arrived at times, with the same
        effect as ``data`` on each in turn, in a few array operations (a session log read back: 36 000 packets an
        hour). decoded: their samples from any ``protocol.decode_data_packets`` call over them in order (values
        and flags are used; seq and t_us are unwrapped here as ``data`` would); first_row[i]: packet i's first row
        in decoded, -1 for a packet that did not decode. A run of live packets that continue the stream (nothing
        pending, marked or missing, the period unchanged) leaves as one block; every other packet goes through
        one_by_one (the caller's ``data`` with its error handling)."""
        good = np.flatnonzero(first_row >= 0)
        if not len(good):
            for packet, t in zip(packets, times):
                one_by_one(packet, t)
            return
        head = np.frombuffer(b"".join([packets[i][:protocol.DATA_HEADER_LEN] for i in good]),
                             protocol.DATA_HEADER_DTYPE)
        run = _Run(decoded, first_row[good], head["n_samples"].astype(np.int64), head["period_us"].astype(np.int64),
                   np.asarray(times, dtype=np.float64)[good])
        run.seq, run.t_us = unwrap_packets(self.wire.ref, head["seq"].astype(np.int64), head["t_us"].astype(np.int64),
                                           run.n, run.period)
        backfilled = (decoded["flags"][run.first_row] & SampleFlag.BACKFILLED) != 0
        seqs, ends, periods = run.seq.tolist(), (run.seq + run.n).tolist(), run.period.tolist()
        passing = (~backfilled).tolist()
        chunk: list[int] = []
        expect, period_now = self._in_order()
        k = 0
        for i, packet in enumerate(packets):
            if first_row[i] >= 0:
                k += 1
                if passing[k - 1] and seqs[k - 1] == expect and periods[k - 1] == period_now:
                    chunk.append(k - 1)
                    expect = ends[k - 1]
                    continue
            self._pass(run, chunk)
            chunk = []
            one_by_one(packet, times[i])
            expect, period_now = self._in_order()
        self._pass(run, chunk)

    def _in_order(self) -> tuple[int | None, int | None]:
        """(the seq a live packet must start at to leave at once, the period it must have), or (None, None)."""
        if not self.period.from_data:
            return None, None
        return self.reassembly.in_order_next(), self.period.period_us

    def _pass(self, run: _Run, chunk: list[int]) -> None:
        """Live packets run[chunk], consecutive and in order, through as ``data`` would take them one by one."""
        if not chunk:
            return
        ks = np.array(chunk)
        n = run.n[ks]
        packet_of_row = np.repeat(np.arange(len(ks)), n)
        within = np.arange(int(n.sum())) - np.concatenate(([0], np.cumsum(n)[:-1]))[packet_of_row]
        rows = block_rows(run.decoded[run.first_row[ks][packet_of_row] + within])
        rows["seq"] = run.seq[ks][packet_of_row] + within
        rows["t_device_us"] = run.t_us[ks][packet_of_row] + within * run.period[ks][packet_of_row]
        last_us = run.t_us[ks] + (n - 1) * run.period[ks]
        rows["t_host_s"] = self.time_map.add_arrivals(last_us, run.times[ks], rows["t_device_us"], packet_of_row)
        last = (int(rows["seq"][-1]), int(rows["t_device_us"][-1]))
        self.reassembly.pass_in_order(*last)
        self.wire.ref = last
        self.restarted = False
        self.stats.data_packets += len(ks)
        self.stats.samples_live += len(rows)
        self.stats.samples_emitted += len(rows)
        self.on_block(SampleBlock(rows, self.period.period_us or 0))

    def _live(self, samples: np.ndarray, t: float) -> None:
        self.stats.samples_live += len(samples)
        self.time_map.add_arrival(int(samples["t_us"][-1]), t)
        hole = self.reassembly.see_live(int(samples["seq"][0]), int(samples["seq"][-1]) + 1)
        if hole is not None:
            if self.restarted:
                self.declare_lost(*hole, "not streamed (the sensor was stopped)")
            else:
                self.stats.holes.append((hole[0], hole[1] - hole[0]))
                if self.mark_holes:
                    self.declare_lost(*hole, "backfill is off")
        self.restarted = False

    def take_pong(self, next_seq: int, next_t_us: int) -> list[tuple[bytes, float]]:
        """A pong's next_seq and next_t_us, unwrapped: the compact form's period and anchor. Returns the packets
        held for them once they are known (to be fed again through ``data``)."""
        self.period.take_pong(next_seq, next_t_us)
        if not self._early or not self.period.ready:
            return []
        early, self._early = self._early, []
        return early

    def see_tail(self, next_seq: int) -> None:
        """Data went quiet and the device says its next sample is next_seq: a hole at the tail, if any."""
        hole = self.reassembly.see_tail(next_seq)
        if hole is not None:
            self.stats.holes.append((hole[0], hole[1] - hole[0]))

    def overrun(self, fields: dict) -> None:
        """A BUFFER_OVERRUN event's fields: the samples the device dropped are marked lost."""
        first = self.wire.seq(fields["first_lost_seq"])
        try:
            source = protocol.OverrunSource(fields["source"]).name
        except ValueError:
            source = f"source {fields['source']}"
        self.lose(first, first + fields["n_lost"], f"device buffer overrun ({source})")

    def declare_lost(self, a: int, b: int, reason: str) -> None:
        """Mark [a, b) lost (a NOTE says so); ``emit()`` lets the marked rows out."""
        marked = self.reassembly.declare_lost(a, b, reason)
        if marked is not None:
            self.recording.note("gap_lost", first_seq=marked[0], n=marked[1] - marked[0], reason=reason)

    def lose(self, a: int, b: int, reason: str) -> None:
        """Mark [a, b) lost and emit what that lets through."""
        self.declare_lost(a, b, reason)
        self.emit()

    def lose_missing(self, reason: str, before: int | None = None) -> None:
        """Mark every open hole lost (those ending ``before`` or earlier when given), then emit."""
        for a, b in self.reassembly.missing():
            if before is None or b <= before:
                self.declare_lost(a, b, reason)
        self.emit()

    def emit(self) -> None:
        period_us = self.period.period_us or 0
        rows = self.reassembly.emit(period_us)
        if rows is None:
            return
        rows["t_host_s"] = self.time_map.to_host_s(rows["t_device_us"])
        self.stats.samples_emitted += len(rows)
        self.stats.samples_lost += int(np.count_nonzero(rows["gap"]))
        self.on_block(SampleBlock(rows, period_us))


@dataclass
class _Run:
    """The good packets of a ``data_run``: where their samples are in decoded, their sizes, periods, arrival times,
    and (set after) their first seq and t_us unwrapped."""

    decoded: np.ndarray
    first_row: np.ndarray
    n: np.ndarray
    period: np.ndarray
    times: np.ndarray
    seq: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    t_us: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
