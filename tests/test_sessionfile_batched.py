"""A session log read in runs of packets (``SampleStream.data_run``, the fast path of ``read_session_log``) gives
exactly what the live session's one-packet-at-a-time path gives (``read_session_log(..., one_by_one=True)``): the
same rows bit for bit (values, flags, device and host times, lost rows), the same lost ranges and reasons, the same
counts of bad packets and damaged bytes, on a log that holds everything the replay has to decide about."""

import numpy as np
import pytest

from hipcheck import protocol
from hipcheck.protocol import EventCode, Opcode, OverrunSource, SampleFlag, Status
from hipcheck.record import LogWriter
from hipcheck.sessionfile import read_session_log

PER_PACKET = 10
N_PACKETS = 320
RATE_CHANGE = 200  # from this packet on the device samples at 200 Hz instead of 100 Hz
SEQ0 = (1 << 32) - 2000  # the wire seq wraps after 200 packets
T0_US = (1 << 32) - 5_000_000  # the wire time wraps after 5 s
MISSED_BACKFILLED = (30, 31, 32)  # missed live, backfilled at packet 42
LATE = 100  # missed, marked lost at 110 (gap_lost), its backfill arriving after that
OVERRUN = 130  # the device dropped it (BUFFER_OVERRUN event)
DUPLICATE = 60  # received twice
NEVER = (250, 251)  # missed, never backfilled: lost at the end of the log


def _timeline():
    """Per sample: unwrapped seq, device time (µs; the period halves at RATE_CHANGE)."""
    n = N_PACKETS * PER_PACKET
    period = np.where(np.arange(n) < RATE_CHANGE * PER_PACKET, 10_000, 5_000)
    t_us = T0_US + np.concatenate(([0], np.cumsum(period[:-1])))
    return SEQ0 + np.arange(n), t_us, period


def _packet(k: int, rng, seq, t_us, period, backfilled: bool = False) -> bytes:
    rows = slice(k * PER_PACKET, (k + 1) * PER_PACKET)
    quat = rng.integers(-16384, 16384, (PER_PACKET, 4))
    acc = rng.integers(-30000, 30000, (PER_PACKET, 3))
    gyr = rng.integers(-30000, 30000, (PER_PACKET, 3))
    flags = np.full(PER_PACKET, SampleFlag.BACKFILLED if backfilled else 0, np.uint8)
    return protocol.encode_data(int(seq[rows][0]), int(t_us[rows][0]), int(period[rows][0]), quat, acc, gyr, flags)


def _write_log(path):
    """Live packets with jittered arrival times (the time map's envelope moves before the first TIME_SYNC),
    TIME_SYNC pings and pongs every 50 packets, backfill, a duplicate, a late backfill after a gap_lost NOTE, a
    BUFFER_OVERRUN, two bad packets, a SET_RATE with the period halving, a hole never filled, wrapping seq and
    time."""
    rng = np.random.default_rng(7)
    seq, t_us, period = _timeline()
    packets = [_packet(k, rng, seq, t_us, period) for k in range(N_PACKETS)]
    late = [_packet(k, rng, seq, t_us, period, backfilled=True) for k in range(N_PACKETS)]

    def host(k):  # arrival of packet k: its last sample's device time, on the host's clock, plus radio jitter
        return 50.0 + (t_us[k * PER_PACKET + PER_PACKET - 1] - T0_US) * 1e-6 + rng.uniform(0.002, 0.03)

    with LogWriter(path, {"link": "test", "device": None}) as log:
        for k in range(N_PACKETS):
            t = host(k)
            if k % 50 == 20:
                i = k * PER_PACKET
                log.command(protocol.encode_command(Opcode.TIME_SYNC, k % 256, host_token=k), t - 0.004)
                log.packet("control", protocol.encode_ack(
                    Opcode.TIME_SYNC, k % 256, Status.OK, host_token=k, device_t_us=int(t_us[i] % (1 << 32)),
                    next_seq=int(seq[i] % (1 << 32)), next_t_us=int(t_us[i] % (1 << 32))), t + 0.004)
            if k == RATE_CHANGE:
                log.command(protocol.encode_command(Opcode.SET_RATE, 9, rate_hz=200), t - 0.05)
                log.packet("control", protocol.encode_ack(Opcode.SET_RATE, 9, Status.OK), t - 0.04)
            if k == OVERRUN:
                log.packet("control", protocol.encode_event(
                    EventCode.BUFFER_OVERRUN, int(t_us[k * PER_PACKET]), int(seq[k * PER_PACKET]),
                    source=OverrunSource.IMU_FIFO, first_lost_seq=int(seq[k * PER_PACKET] % (1 << 32)),
                    n_lost=PER_PACKET), t)
            if k not in (*MISSED_BACKFILLED, LATE, OVERRUN, *NEVER):
                log.packet("data", packets[k], t)
            if k == DUPLICATE:
                log.packet("data", packets[k], t + 0.001)
            if k == 42:
                for j in MISSED_BACKFILLED:
                    log.packet("data", late[j], t + 0.001 * j)
            if k == LATE + 10:
                log.note("gap_lost", t, first_seq=int(seq[LATE * PER_PACKET]), n=PER_PACKET, reason="backfill failed")
                log.packet("data", late[LATE], t + 0.001)
            if k == 150:
                log.packet("data", packets[k][:40], t + 0.001)  # cut short
                log.packet("data", b"\x7f" + packets[k][1:], t + 0.002)  # not a DATA packet
    return seq, t_us


def _same(a, b):
    assert a.samples.dtype == b.samples.dtype and a.samples.tobytes() == b.samples.tobytes()
    for name in ("t_s", "acc_m_s2", "gyr_rad_s", "q_device_sensor_to_earth", "t_host_s", "seq"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and x.tobytes() == y.tobytes(), name
    assert (a.fs_hz, a.lost, a.header) == (b.fs_hz, b.lost, b.header)
    assert (a.damaged_bytes, a.damage_line, a.bad_packets) == (b.damaged_bytes, b.damage_line, b.bad_packets)


@pytest.fixture(scope="module")
def log_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("batched") / "s.hclog"
    _write_log(path)
    return path


def test_the_batched_reader_equals_the_one_by_one_path(log_path):
    seq, t_us = _timeline()[:2]
    fast, slow = read_session_log(log_path), read_session_log(log_path, one_by_one=True)
    _same(fast, slow)
    # The log exercises what it is meant to: every sample emitted once, in order, across the wraps.
    np.testing.assert_array_equal(fast.samples["seq"], seq[:len(fast.samples)])
    assert len(fast.samples) == N_PACKETS * PER_PACKET and fast.samples["seq"][-1] > 1 << 32
    np.testing.assert_array_equal(fast.samples["t_device_us"], t_us)
    assert {(r.first_seq - SEQ0, r.n, r.reason) for r in fast.lost} == {
        (LATE * PER_PACKET, PER_PACKET, "backfill failed"),
        (OVERRUN * PER_PACKET, PER_PACKET, "device buffer overrun (IMU_FIFO)"),
        (NEVER[0] * PER_PACKET, 2 * PER_PACKET, "not in the recording")}
    backfilled = fast.samples["flags"] & SampleFlag.BACKFILLED != 0
    np.testing.assert_array_equal(np.flatnonzero(backfilled) // PER_PACKET, np.repeat(MISSED_BACKFILLED, PER_PACKET))
    assert fast.bad_packets == 2 and fast.fs_hz == 100.0 and fast.damaged_bytes == 0
    assert set(np.diff(fast.samples["t_device_us"]).tolist()) == {10_000, 5_000}
    assert np.all(np.isfinite(fast.t_host_s))


def test_a_damaged_log_reads_the_same_both_ways(log_path, tmp_path):
    """Bytes overwritten in the middle (records lost, the reader resynchronises) and the end cut mid-record."""
    data = bytearray(log_path.read_bytes())
    middle = len(data) // 3
    data[middle:middle + 300] = bytes(300)
    damaged = tmp_path / "damaged.hclog"
    damaged.write_bytes(bytes(data[:len(data) - 57]))
    fast, slow = read_session_log(damaged), read_session_log(damaged, one_by_one=True)
    _same(fast, slow)
    assert fast.damaged_bytes > 300 and "cut short" in fast.damage_line
    assert any(r.reason == "not in the recording" and r.first_seq - SEQ0 < NEVER[0] * PER_PACKET for r in fast.lost)


def test_a_log_that_starts_with_backfill_and_holes_reads_the_same(tmp_path):
    """Only part of the log: from packet 25 on (backfill first arrives for samples before the first live one)."""
    path = tmp_path / "s.hclog"
    _write_log(path)
    data = path.read_bytes()
    cut = tmp_path / "late-start.hclog"
    cut.write_bytes(data[:8] + data[len(data) // 10:])
    fast, slow = read_session_log(cut), read_session_log(cut, one_by_one=True)
    _same(fast, slow)
    assert fast.damaged_bytes > 0 and len(fast) > 2000
