"""Session logs read past damage (docs/log-format.md): random mutations of a real log — truncation, bit flips,
inserted and deleted bytes, zeroed blocks, several at once — never crash the reader, every record the mutations left
intact is recovered (the acceptance asks ≥ 99 %; the CRC resynchronisation gives all of them), and the loss is
always reported: a damaged log's account is never "nothing lost", and it names the bytes, records and time span.
A damaged log replayed by the CLI prints the loss line, and says so in the summary when more than
DAMAGE_WARN_FRACTION is gone."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hipcheck import protocol
from hipcheck.cli import main
from hipcheck.errors import InvalidValueError
from hipcheck.motion import SensorModel, simulate_walk
from hipcheck.record import (DAMAGE_WARN_FRACTION, MAGIC, LogDamage, LogReader, LogWriter, RecordType,
                             encode_record)

WALK_S = 24.0
SAMPLES_PER_PACKET = 5  # 20 packets a second: a log of ~500 records, small enough for hundreds of mutations


def _walk_log(path) -> None:
    """A session log as a recording host writes it: the header, full-form DATA packets of a simulated walk with a
    weak right hip (2 per ~0.05 s of host time), a time-sync ACK now and then, NOTEs."""
    trace = simulate_walk(duration_s=WALK_S, seed=3, drop_right_deg=9.0, sensor=SensorModel.ideal())
    quat, acc, gyr, flags = protocol.to_wire(trace.truth.q_sensor_to_earth, trace.acc_sensor_m_s2, trace.gyr_sensor_rad_s)
    period_us = int(round(1e6 / trace.fs_hz))
    packets = protocol.encode_data_packets(0, 0, period_us, quat, acc, gyr, flags,
                                           samples_per_packet=SAMPLES_PER_PACKET)
    info = {"firmware": "test", "board": "sim", "imu": "ideal", "rate_hz": int(trace.fs_hz)}
    with LogWriter(path, {"link": "sim", "device": info, "mtu": 247}, sync_interval_s=1e9) as w:
        t0 = 1000.0
        for k, packet in enumerate(packets):
            t = t0 + (k + 1) * SAMPLES_PER_PACKET * period_us * 1e-6 + 0.004
            w.packet("data", packet, t)
            if k % 100 == 50:
                w.note("time_map", t + 1e-4, offset_s=t0)
        w.note("end", t + 1e-3, samples_emitted=len(trace.t_s))  # as DeviceSession.close() ends every log


@pytest.fixture(scope="module")
def demo_log(tmp_path_factory):
    path = tmp_path_factory.mktemp("damage") / "walk.hclog"
    _walk_log(path)
    return path


def _spans(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of every record of an intact log."""
    spans, pos = [], len(MAGIC)
    while pos < len(data):
        end = pos + 13 + int.from_bytes(data[pos:pos + 4], "little") + 4
        spans.append((pos, end))
        pos = end
    return spans


# A mutation: (kind, where as a fraction of the file as it is by then, size, a byte). Mutations apply one after
# the other, each on the file the previous ones left.
MUTATION = st.tuples(st.sampled_from(["truncate", "flip", "insert", "delete", "zero"]),
                     st.floats(0.0, 1.0, exclude_max=True), st.integers(1, 300), st.integers(0, 255))


def _mutate(data: bytes, mutations) -> tuple[bytes, np.ndarray]:
    """The damaged file, and for each of its bytes the offset in the original it came from unchanged (-1: a
    byte inserted or changed)."""
    out = bytearray(data)
    origin = np.arange(len(data))
    for kind, where, size, byte in mutations:
        at = int(where * len(out))
        if kind == "truncate":
            del out[at:]
            origin = origin[:at]
        elif kind == "flip" and at < len(out):
            out[at] ^= 1 << (byte % 8)
            origin[at] = -1
        elif kind == "insert":
            out[at:at] = bytes([byte]) * size if byte % 2 else np.random.default_rng(byte).bytes(size)
            origin = np.concatenate([origin[:at], np.full(size, -1), origin[at:]])
        elif kind == "delete":
            del out[at:at + size]
            origin = np.concatenate([origin[:at], origin[at + size:]])
        elif kind == "zero":
            out[at:at + size] = bytes(len(out[at:at + size]))
            origin[at:at + size] = -1
    return bytes(out), origin


def _intact(spans, origin: np.ndarray) -> list[tuple[int, int]]:
    """Records whose every byte is still in the damaged file, unchanged and in one piece."""
    where = np.full(max(e for _, e in spans), -1)
    kept = origin >= 0
    where[origin[kept]] = np.flatnonzero(kept)
    return [(s, e) for s, e in spans
            if where[s] >= 0 and np.array_equal(origin[where[s]:where[s] + e - s], np.arange(s, e))]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutations=st.lists(MUTATION, min_size=1, max_size=4))
def test_mutated_logs_never_crash_recover_every_intact_record_and_report_the_loss(demo_log, tmp_path, mutations):
    data = demo_log.read_bytes()
    spans = _spans(data)
    damaged, origin = _mutate(data, mutations)
    path = tmp_path / "damaged.hclog"
    path.write_bytes(damaged)
    intact = _intact(spans, origin)
    want = [data[s:e] for s, e in intact if s > len(MAGIC)]  # the header record is checked apart
    try:
        reader = LogReader(path)
    except InvalidValueError as error:  # LogFormatError: only when nothing of the log can be trusted
        assert "not a hipcheck session log" in str(error) or "update hipcheck" in str(error)
        assert damaged[:len(MAGIC)] != MAGIC and len(want) <= 1, (mutations, len(want))
        return
    got = {encode_record(r.type, r.t_host_s, r.payload) for r in reader}
    recovered = sum(1 for w in want if w in got)
    assert recovered >= 0.99 * len(want), (mutations, recovered, len(want))
    damage = reader.damage
    if damaged != data:
        # the loss is always reported: as damage, or (a cut exactly between two records) as a log with no closing
        # record
        assert damage.damaged or not damage.ended, mutations
        line = damage.line()
        if damage.damaged:
            assert line.startswith("log damaged: ") and "bytes skipped" in line and "records lost" in line
            assert "s of the session affected" in line
        else:
            assert "no closing record" in line
        assert damage.records_read == len(list(LogReader(path)))
        assert damage.bytes_skipped == sum(n for _, n in damage.regions)
        # every byte after MAGIC is in a good record or counted as skipped
        assert reader.records_start + damage.bytes_skipped + sum(len(r.payload) + 17 for r in reader) == \
            len(damaged)
        assert reader.records_start == len(MAGIC) or damage.magic_damaged


def test_an_intact_log_says_nothing_was_lost(demo_log):
    reader = LogReader(demo_log)
    damage = reader.damage
    assert not damage.damaged and reader.complete and reader.tail_bytes == 0
    assert damage.line() == f"log: {damage.records_read} records, nothing lost" and damage.ended
    assert reader.header["link"] == "sim"


def test_a_zeroed_block_loses_only_the_records_it_covers(demo_log, tmp_path):
    data = bytearray(demo_log.read_bytes())
    spans = _spans(bytes(data))
    s, e = spans[100][0] + 3, spans[103][1] - 3  # inside record 100 to inside record 103
    data[s:e] = bytes(e - s)
    path = tmp_path / "zeroed.hclog"
    path.write_bytes(bytes(data))
    reader = LogReader(path)
    records = list(reader)
    assert len(records) == len(spans) - 4
    d = reader.damage
    assert d.regions == [(spans[100][0], spans[103][1] - spans[100][0])]
    assert d.records_lost == 4 and not d.cut_end and not d.header_lost
    assert d.lost_to_s - d.lost_from_s == pytest.approx(0.25, abs=0.06)  # five packets' worth of host time
    assert d.span_s == pytest.approx(d.lost_to_s - d.lost_from_s)


def test_a_damaged_header_and_magic_still_give_the_data(demo_log, tmp_path):
    data = bytearray(demo_log.read_bytes())
    data[1] ^= 0xFF  # MAGIC
    data[len(MAGIC) + 20] ^= 0x01  # inside the HEADER record
    path = tmp_path / "head.hclog"
    path.write_bytes(bytes(data))
    reader = LogReader(path)
    assert reader.header == {}
    d = reader.damage
    assert d.header_lost and d.magic_damaged and d.records_read == len(_spans(bytes(data))) - 1
    assert "the header record was lost" in d.line() and "the file magic was damaged" in d.line()


def test_a_log_of_a_newer_format_and_garbage_are_refused(tmp_path):
    newer = tmp_path / "newer.hclog"
    newer.write_bytes(MAGIC[:6] + b"\x02\n" + bytes(40))
    with pytest.raises(InvalidValueError, match="update hipcheck"):
        LogReader(newer)
    garbage = tmp_path / "garbage.hclog"
    garbage.write_bytes(np.random.default_rng(1).bytes(100_000))
    with pytest.raises(InvalidValueError, match="not a hipcheck session log"):
        LogReader(garbage)


def test_the_warning_fraction_is_what_the_summary_uses():
    small = LogDamage(bytes_skipped=100, regions=[(10, 100)], records_read=990, records_lost=10)
    big = LogDamage(bytes_skipped=9000, regions=[(10, 9000)], records_read=900, records_lost=100)
    assert small.lost_fraction == pytest.approx(0.01) and not small.badly_damaged
    assert big.lost_fraction == pytest.approx(0.1) and big.badly_damaged
    assert 0 < DAMAGE_WARN_FRACTION < 0.1


def _damage_middle(src, dst, fraction: float) -> None:
    """Zero a block of ``fraction`` of the file in its middle (records from there are lost)."""
    data = bytearray(src.read_bytes())
    n = int(len(data) * fraction)
    start = len(data) // 2 - n // 2
    data[start:start + n] = bytes(n)
    dst.write_bytes(bytes(data))


@pytest.mark.parametrize("fraction, warned", [(0.01, False), (0.2, True)])
def test_replaying_a_damaged_log_prints_the_loss(demo_log, tmp_path, capsys, fraction, warned):
    damaged = tmp_path / "damaged.hclog"
    _damage_middle(demo_log, damaged, fraction)
    assert main(["live", "--replay", str(damaged)]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("log damaged: ")]
    assert len(lines) == 2  # once when the replay opens, once beside the summary
    assert "bytes skipped in 1 place" in lines[0] and "s of the session affected" in lines[0]
    assert ("caution: the replayed log lost" in out) == warned
    assert "weak side: right" in out  # read past the damage: the session after it is analysed too
    assert zlib.crc32(damaged.read_bytes()) != zlib.crc32(demo_log.read_bytes())


def test_connect_to_a_damaged_replay_prints_the_loss(demo_log, tmp_path, capsys):
    damaged = tmp_path / "damaged.hclog"
    _damage_middle(demo_log, damaged, 0.01)
    assert main(["connect", "--replay", str(damaged), "--seconds", "5"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("log damaged: ")]
    assert len(lines) == 1 and "records lost" in lines[0]


def test_the_record_types_written_are_the_ones_read(demo_log):
    types = {r.type for r in LogReader(demo_log)}
    assert types == {RecordType.HEADER, RecordType.DATA, RecordType.NOTE}


def test_a_log_cut_between_two_records_says_it_was_not_closed(demo_log, tmp_path):
    data = demo_log.read_bytes()
    spans = _spans(data)
    cut = tmp_path / "cut.hclog"
    cut.write_bytes(data[:spans[200][1]])  # as a recorder killed between two writes leaves it
    damage = LogReader(cut).damage
    assert not damage.damaged and not damage.ended and damage.records_read == 201
    assert "no closing record" in damage.line()
