"""The device session's synchronous parts, each on its own, without a link or a device: reassembly, period learning,
unwrapping and decoding, the backfill exchange, liveness, the settings, the log, and the whole receive side
(``SampleStream``) fed with packets made by ``hipcheck.protocol``."""

import asyncio
import dataclasses

import numpy as np
import pytest

from hipcheck import protocol
from hipcheck.device import (BackfillPlan, CommandChannel, CommandError, Liveness, PeriodLearner, Reassembly,
                             SampleStream, SessionError, SessionRecording, SessionSettings, SessionStats,
                             WireDecoder)
from hipcheck.device.period import PERIOD_BASELINE
from hipcheck.device.wire import forward, nearest
from hipcheck.errors import InvalidValueError
from hipcheck.links import Link, LinkStatus
from hipcheck.protocol import Opcode, SampleFlag, Status
from hipcheck.record import LogReader, RecordType

PERIOD_US = 9600
U32 = 1 << 32


def samples(first: int, n: int, t0_us: int = 0, flags: int = 0) -> np.ndarray:
    """n consecutive decoded samples from seq first (SAMPLE_DTYPE), acc x = seq so rows can be told apart."""
    out = np.zeros(n, protocol.SAMPLE_DTYPE)
    out["seq"] = np.arange(first, first + n)
    out["t_us"] = t0_us + (out["seq"] - first) * PERIOD_US
    out["quat"][:, 0] = 1.0
    out["acc_m_s2"][:, 0] = out["seq"]
    out["flags"] = flags
    return out


def data_packet(first: int, n: int, flags: int = 0) -> bytes:
    """A full DATA packet of samples first..first+n-1 at PERIOD_US (seq and time wrap at 2^32)."""
    quat = np.tile([16384, 0, 0, 0], (n, 1))
    acc = np.zeros((n, 3), int)
    acc[:, 2] = 2048
    return protocol.encode_data(first % U32, (first * PERIOD_US) % U32, PERIOD_US, quat, acc, np.zeros((n, 3), int),
                                np.full(n, int(flags)))


# ------------------------------------------------------------------------------------------------ reassembly
def test_reassembly_emits_in_order_and_holds_rows_behind_a_hole():
    r = Reassembly(start_seq=0)
    assert r.see_live(0, 10) is None
    assert r.insert(samples(0, 10)) == (10, 0)
    out = r.emit(PERIOD_US)
    assert np.array_equal(out["seq"], np.arange(10)) and not out["gap"].any()
    assert r.see_live(15, 20) == (10, 15)  # a live jump: the hole behind it
    r.insert(samples(15, 5))
    assert r.emit(PERIOD_US) is None  # held back: 10..14 may still come
    assert r.missing() == [(10, 15)]
    assert r.insert(samples(12, 5, t0_us=12 * PERIOD_US)) == (3, 2)  # 15, 16 were there already
    assert r.missing() == [(10, 12)]
    r.insert(samples(10, 2, t0_us=10 * PERIOD_US))
    assert np.array_equal(r.emit(PERIOD_US)["seq"], np.arange(10, 20))
    assert r.missing() == [] and r.next_out == 20


def test_reassembly_marks_lost_rows_with_nan_and_the_time_they_would_have_had():
    r = Reassembly(start_seq=0)
    r.see_live(0, 5)
    r.insert(samples(0, 5))
    r.emit(PERIOD_US)
    r.see_live(9, 12)
    r.insert(samples(9, 3, t0_us=9 * PERIOD_US))
    assert r.declare_lost(5, 7, "gone") == (5, 7)
    assert r.declare_lost(7, 9, "gone") == (7, 9)
    assert r.declare_lost(0, 3, "gone") is None  # emitted already: nothing to mark
    assert [(x.first_seq, x.n, x.reason) for x in r.lost] == [(5, 4, "gone")]  # adjacent, same reason: one range
    out = r.emit(PERIOD_US)
    assert np.array_equal(out["seq"], np.arange(5, 12))
    assert np.array_equal(out["gap"], [True] * 4 + [False] * 3)
    assert np.isnan(out["acc_m_s2"][:4]).all() and np.isnan(out["quat"][:4]).all()
    assert np.array_equal(out["t_device_us"], np.arange(5, 12) * PERIOD_US)


def test_reassembly_missing_skips_marked_ranges_and_a_tail_hole_counts():
    r = Reassembly(start_seq=0)
    r.see_live(30, 40)
    r.insert(samples(30, 10))
    r.declare_lost(10, 20, "older than the ring")
    assert r.missing() == [(0, 10), (20, 30)]
    assert r.see_tail(40) is None and r.see_tail(45) == (40, 45)
    assert r.missing()[-1] == (40, 45)


def test_reassembly_without_start_seq_begins_at_the_first_live_sample():
    r = Reassembly()
    assert r.insert(samples(3, 2, flags=SampleFlag.BACKFILLED)) == (0, 0)  # nothing to place it against yet
    r.see_live(100, 110)
    assert r.insert(samples(95, 15)) == (10, 0)  # what is older than the first live sample is dropped
    assert r.emit(PERIOD_US)["seq"][0] == 100


# ----------------------------------------------------------------------------------------------------- period
def test_period_learnt_from_two_estimates_and_refined_over_a_longer_stretch():
    p = PeriodLearner()
    p.take_pong(100, 1_000_000)
    assert p.period_us is None and not p.ready and p.anchor == (100, 1_000_000)
    p.take_pong(100 + PERIOD_BASELINE, 1_000_000 + PERIOD_BASELINE * 9700)  # settling: a bit slow
    assert p.period_us == 9700 and not p.ready
    p.take_pong(100 + PERIOD_BASELINE + 5, 0)  # too close to the restarted baseline: only the anchor moves
    assert p.period_us == 9700 and p.anchor == (125, 0)
    base = (100 + PERIOD_BASELINE, 1_000_000 + PERIOD_BASELINE * 9700)
    p.take_pong(base[0] + 50, base[1] + 50 * PERIOD_US)
    assert p.period_us == PERIOD_US and p.ready
    p.take_pong(base[0] + 1000, base[1] + 1000 * PERIOD_US + 700)  # from the same baseline, further away
    assert p.period_us == PERIOD_US + 1 and p.estimates == 3


def test_period_forgotten_after_set_rate_unless_the_packets_carry_it():
    p = PeriodLearner()
    for k in range(3):
        p.take_pong(k * PERIOD_BASELINE, k * PERIOD_BASELINE * PERIOD_US)
    assert p.ready
    p.forget()
    assert p.period_us is None and not p.ready
    p.take_data_period(4800)
    p.take_pong(0, 0)
    p.take_pong(100, 100 * 9999)
    p.forget()
    assert p.period_us == 4800 and p.from_data and p.anchor == (100, 100 * 9999)


# ------------------------------------------------------------------------------------------------------- wire
def test_unwrap_nearest_and_forward():
    assert nearest(U32 - 5, 3) == U32 + 3
    assert nearest(U32 + 3, U32 - 5) == U32 - 5
    assert nearest(10, 5) == 5
    assert forward(10, 5) == U32 + 5 and forward(10, 12) == 12


def test_wire_decoder_numbers_samples_across_the_u32_wrap():
    wire = WireDecoder(PeriodLearner())
    first = U32 - 4
    a = wire.decode(data_packet(first, 3), live_next=None)
    b = wire.decode(data_packet(first + 3, 3), live_next=None)
    assert np.array_equal(np.concatenate([a, b])["seq"], np.arange(first, first + 6))
    assert np.all(np.diff(np.concatenate([a, b])["t_us"]) == PERIOD_US)
    assert wire.period.from_data and wire.period.period_us == PERIOD_US
    pong = wire.pong({"device_t_us": 5, "next_seq": 2, "next_t_us": (first + 6) * PERIOD_US % U32})
    assert pong["next_seq"] == first + 6 and pong["next_t_us"] == a["t_us"][0] + 6 * PERIOD_US


def test_wire_decoder_times_compact_packets_from_the_anchor_and_flags_old_ones_backfilled():
    period = PeriodLearner()
    wire = WireDecoder(period)
    packets = protocol.encode_compact_packets(200, np.tile([16384, 0, 0, 0], (3, 1)), np.zeros((3, 3), int),
                                              np.zeros((3, 3), int))
    assert wire.waits(packets[0]) and not wire.waits(data_packet(0, 1))
    for k in range(3):
        period.take_pong(160 + k * PERIOD_BASELINE, 5_000_000 + k * PERIOD_BASELINE * PERIOD_US)
    assert not wire.waits(packets[0])
    out = wire.decode(packets[0], live_next=None)
    assert out["seq"][0] == 200 and out["t_us"][0] == 5_000_000 + 40 * PERIOD_US
    assert wire.decode(packets[1], live_next=300)["flags"][0] & SampleFlag.BACKFILLED


# --------------------------------------------------------------------------------------------------- backfill
class Lost(list):
    def __call__(self, a, b, reason):
        self.append((a, b, reason))


def test_backfill_one_answer_at_a_time_asked_again_when_it_stalls_then_marked_lost():
    lost = Lost()
    plan = BackfillPlan(chunk=48, tries=2, timeout_s=0.25, lose=lost)
    missing = [(100, 200), (300, 310)]
    assert plan.next_request(missing, now=0.0) == (100, 48)  # lowest hole first, one chunk
    assert plan.answer(Status.OK, {"first_seq": 100, "count": 48}, now=0.0) is None
    assert plan.next_request(missing, now=0.1) is None  # the answer is under way
    assert not plan.received(130, now=0.2)
    assert plan.received(148, now=0.3)  # complete
    assert plan.next_request([(148, 200)], now=0.3) == (148, 48)  # the next chunk at once
    plan.answer(Status.OK, {"first_seq": 148, "count": 48}, now=0.3)
    assert plan.next_request([(148, 200)], now=0.5) is None
    assert plan.next_request([(148, 200)], now=0.6) == (148, 48)  # stalled past its deadline: asked again
    plan.answer(Status.OK, {"first_seq": 148, "count": 48}, now=0.6)
    assert plan.next_request([(148, 200)], now=1.0) is None
    assert lost == [(148, 200, "no backfill after 2 requests")]


def test_backfill_stall_counted_in_device_progress_where_the_device_clock_runs_ahead():
    # the sim board as fast as possible: wall time passing with no live progress (a loaded host) is no stall
    lost = Lost()
    plan = BackfillPlan(chunk=48, tries=3, timeout_s=0.25, lose=lost, stall_samples=256)
    assert plan.next_request([(100, 148)], now=0.0, live_next=200) == (100, 48)
    plan.answer(Status.OK, {"first_seq": 100, "count": 48}, now=0.0, live_next=200)
    assert plan.next_request([(100, 148)], now=1.0, live_next=300) is None  # 4 timeouts, 100 live samples: waits
    assert plan.next_request([(100, 148)], now=1.0, live_next=456) == (100, 48)  # 256 live samples: stalled
    plan.answer(Status.OK, {"first_seq": 100, "count": 48}, now=1.0, live_next=456)
    assert not plan.received(120, now=1.1, live_next=470)  # progress: the live mark moves with it
    assert plan.next_request([(120, 148)], now=1.5, live_next=700) is None  # 230 since the progress
    assert plan.next_request([(120, 148)], now=1.5, live_next=726) == (120, 28)
    plan.answer(Status.OK, {"first_seq": 120, "count": 28}, now=1.5, live_next=726)
    # no live data at all (the device stopped streaming): the wall clock decides after WALL_FALLBACK timeouts
    assert plan.next_request([(120, 148)], now=1.5 + 2.49, live_next=726) is None
    assert plan.next_request([(120, 148)], now=1.5 + 2.5, live_next=726) == (120, 28)
    assert lost == []


def test_backfill_older_than_the_ring_asks_the_whole_hole_then_the_chunk_from_where_the_ring_begins():
    lost = Lost()
    plan = BackfillPlan(chunk=48, tries=3, timeout_s=1.0, lose=lost)
    assert plan.next_request([(0, 5000)], now=0.0) == (0, 48)
    assert plan.answer(Status.UNAVAILABLE, {}, now=0.0) == (0, 5000)  # where does the ring begin?
    assert plan.answer(Status.OK, {"first_seq": 1800, "count": 3200}, now=0.0) == (1800, 48)
    assert lost == [(0, 1800, "older than the device's ring buffer")]
    assert plan.answer(Status.UNAVAILABLE, {}, now=0.0) is None  # no second probe
    assert lost[-1] == (1800, 1848, "the device no longer holds these samples (ACK UNAVAILABLE)")


def test_backfill_answer_from_a_later_seq_and_refusals_are_marked():
    lost = Lost()
    plan = BackfillPlan(chunk=0xFFFF, tries=3, timeout_s=1.0, lose=lost)
    assert plan.next_request([(10, 20)], now=0.0) == (10, 10)
    plan.answer(Status.OK, {"first_seq": 14, "count": 6}, now=0.0)
    assert lost == [(10, 14, "older than the device's ring buffer")] and plan.answer_due.start == 14
    plan.next_request([(40, 50)], now=5.0)
    plan.answer(Status.BUSY, {}, now=5.0)
    assert lost[-1] == (40, 50, "BACKFILL refused: BUSY")
    plan.next_request([(U32 - 2, U32 + 3)], now=6.0)
    plan.answer(Status.OK, {"first_seq": 0, "count": 3}, now=6.0)  # wire seq past the wrap
    assert lost[-1] == (U32 - 2, U32, "older than the device's ring buffer")


# --------------------------------------------------------------------------------------------------- liveness
def test_liveness_watchdog_bad_data_and_idle_probes():
    live = Liveness(watchdog_s=5.0, idle_probe_s=0.25, now=0.0)
    assert live.failure(4.0, connected=True) is None
    assert "no packet from the sensor for 5 s" in live.failure(5.1, connected=True)
    assert live.failure(5.1, connected=False) is None  # down: the reconnect has its own deadline
    live.received(5.0, data=True)
    live.bad_data(6.0, "bad CRC")
    assert "none has decoded for 5 s (the last: bad CRC)" in live.failure(6.5, connected=False)
    live.live_data(7.0)
    assert live.failure(7.5, connected=True) is None
    assert not live.probe_due(8.0)  # the queue never ran dry
    live.nothing(8.0)
    live.nothing(8.1)  # idle since the first
    assert not live.probe_due(8.2) and live.probe_due(8.3)
    assert not live.probe_due(8.4)  # one probe per idle_probe_s
    assert live.quiet(8.4)
    assert not live.device_stopped(500) and live.device_stopped(500) and not live.device_stopped(501)


# --------------------------------------------------------------------------------------------------- settings
def test_settings_defaults_are_frozen_and_checked():
    s = SessionSettings()
    assert (s.start_seq, s.passive, s.backfill, s.command_timeout_s, s.watchdog_s) == (None, False, True, 1.0, 5.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.watchdog_s = 1.0
    assert dataclasses.replace(s, watchdog_s=1.0).watchdog_s == 1.0
    for bad in ({"watchdog_s": 0}, {"command_tries": 0}, {"backfill_chunk": -1}):
        with pytest.raises(InvalidValueError):
            SessionSettings(**bad)


# ---------------------------------------------------------------------------------------------- recording
def test_recording_holds_records_until_the_header_is_known(tmp_path):
    rec = SessionRecording(tmp_path / "s.hclog")
    rec.packet("data", b"\x21abc", 1.0)
    rec.note("link_down", n=np.int64(3))
    rec.open({"link": "sim", "device": {"board": "sim"}})
    rec.command(b"\x22\x01\x01", 2.0)
    rec.close()
    reader = LogReader(tmp_path / "s.hclog")
    assert reader.header["device"] == {"board": "sim"}
    assert [r.type for r in reader][1:] == [RecordType.DATA, RecordType.NOTE, RecordType.COMMAND]
    assert reader.notes()[0]["n"] == 3
    nothing = SessionRecording(None)
    nothing.note("x")
    nothing.open({})
    nothing.close()


# ------------------------------------------------------------------------------------------------- the stream
def make_stream(**kwargs):
    blocks = []
    stats = SessionStats()
    return SampleStream(0, stats, SessionRecording(None), blocks.append, **kwargs), blocks, stats


def test_stream_backfilled_packets_fill_the_hole_and_blocks_stay_in_order():
    stream, blocks, stats = make_stream()
    stream.data(data_packet(0, 10), t=100.0)
    stream.data(data_packet(20, 10), t=100.2)  # 10..19 lost on the way
    assert stats.holes == [(10, 10)] and [len(b) for b in blocks] == [10]
    stream.data(data_packet(25, 5, flags=SampleFlag.BACKFILLED), t=100.3)  # held already: duplicates
    stream.data(data_packet(10, 10, flags=SampleFlag.BACKFILLED), t=100.3)
    rows = np.concatenate([b.samples for b in blocks])
    assert np.array_equal(rows["seq"], np.arange(30)) and not rows["gap"].any()
    assert (stats.samples_live, stats.samples_backfilled, stats.samples_duplicate) == (20, 10, 5)
    assert np.isclose(rows["t_host_s"][0], 100.0 - 9 * PERIOD_US * 1e-6)  # the arrival envelope, before any pong
    assert blocks[-1].period_us == PERIOD_US


def test_stream_marks_holes_at_once_without_backfill_and_what_a_link_end_leaves():
    stream, blocks, stats = make_stream(mark_holes=True)
    stream.data(data_packet(0, 5), t=1.0)
    stream.data(data_packet(8, 2), t=1.1)
    rows = np.concatenate([b.samples for b in blocks])
    assert np.array_equal(rows["gap"], [False] * 5 + [True] * 3 + [False] * 2)
    assert stream.reassembly.lost[0].reason == "backfill is off" and stats.samples_lost == 3

    stream, blocks, stats = make_stream()
    stream.data(data_packet(0, 5), t=1.0)
    stream.data(data_packet(8, 2), t=1.1)
    stream.lose_missing("the link ended")
    assert stats.samples_emitted == 10 and stream.reassembly.lost[0].reason == "the link ended"


def test_stream_holds_compact_packets_until_pongs_give_the_period():
    stream, blocks, stats = make_stream()
    packets = protocol.encode_compact_packets(0, np.tile([16384, 0, 0, 0], (3, 1)), np.zeros((3, 3), int),
                                              np.zeros((3, 3), int))
    assert stream.data(packets[0], t=1.0) is None and not blocks
    assert stream.take_pong(0, 0) == [] and stream.take_pong(PERIOD_BASELINE, PERIOD_BASELINE * PERIOD_US) == []
    held = stream.take_pong(2 * PERIOD_BASELINE, 2 * PERIOD_BASELINE * PERIOD_US)
    assert held == [(packets[0], 1.0)]
    for packet, t in held + [(packets[1], 1.1), (packets[2], 1.2)]:
        stream.data(packet, t)
    rows = np.concatenate([b.samples for b in blocks])
    assert np.array_equal(rows["seq"], [0, 1, 2]) and np.array_equal(rows["t_device_us"], [0, PERIOD_US, 2 * PERIOD_US])


def test_stream_device_overrun_is_marked_lost():
    stream, blocks, stats = make_stream()
    stream.data(data_packet(0, 5), t=1.0)
    stream.data(data_packet(9, 1), t=1.1)
    stream.overrun({"first_lost_seq": 5, "n_lost": 4, "source": int(protocol.OverrunSource.TX_RING)})
    assert stats.samples_emitted == 10 and stream.reassembly.lost[0].reason.startswith("device buffer overrun")


# -------------------------------------------------------------------------------------------------- commands
class AnsweringLink(Link):
    """Answers every command with OK, except the first ``silent`` ones (no answer at all)."""

    def __init__(self, silent: int = 0):
        self.silent = silent
        self.channel = None
        self.sent = []

    async def open(self):
        pass

    async def close(self):
        pass

    async def send(self, packet):
        cmd = protocol.decode_packet(packet)
        self.sent.append(cmd)
        if len(self.sent) > self.silent:
            ack = protocol.decode_packet(protocol.encode_ack(cmd.opcode, cmd.token, Status.OK))
            asyncio.get_running_loop().call_soon(self.channel.answer, ack, 0.0)

    async def receive(self, timeout_s=None):
        return None

    def status(self):
        return LinkStatus(connected=True)


def test_command_channel_pairs_acks_by_token_and_retries_silence():
    async def main():
        link = AnsweringLink(silent=1)
        connected = asyncio.Event()
        connected.set()
        stats = SessionStats()
        channel = link.channel = CommandChannel(link, SessionRecording(None), stats, connected, timeout_s=0.05,
                                                tries=2)
        ack, t_send, t_recv = await channel.send(Opcode.START, {})
        assert ack.status == Status.OK and stats.command_timeouts == 1
        assert [c.token for c in link.sent] == [1, 2]  # a fresh token for the retry
        stale = protocol.decode_packet(protocol.encode_ack(Opcode.START, 1, Status.OK))
        assert not channel.answer(stale, 0.0)  # the late answer to the first try: nobody waits for it
        link.silent = 99
        with pytest.raises(CommandError, match="no ACK within 0.05 s"):
            await channel.send(Opcode.START, {})
        passive = CommandChannel(link, SessionRecording(None), stats, connected, timeout_s=0.05, tries=1,
                                 passive=True)
        with pytest.raises(SessionError, match="passive"):
            await passive.send(Opcode.START, {})

    asyncio.run(main())
