"""``ReplayLink``: a session log (``hipcheck.record``) played back through the link interface.

A session recorded from the firmware's sim board (``SimLink``) replays as fast as possible packet for packet; a
written log with known timing replays at 1x and 2x within a few milliseconds of its schedule; a log cut mid-record
(as a crash leaves it) plays up to its last good record, one with a flipped byte plays every record but the damaged
one, both with the damage counted; commands are accepted and never answered; what is not a log is a clear
LogFormatError (a file problem, not a device one).
"""

import asyncio
import shutil
import sys
import time
from pathlib import Path

import pytest

from hipcheck import protocol
from hipcheck.errors import InvalidValueError
from hipcheck.links import CONTROL, DATA, LOG, LinkError, within
from hipcheck.links.replay import ReplayLink
from hipcheck.protocol import Opcode, Status
from hipcheck.record import MAGIC, LogReader, LogWriter

MICROPYTHON = shutil.which("micropython", path=str(Path(sys.executable).parent)) or shutil.which("micropython")


def run(coro, timeout_s: float = 30.0):
    async def bounded():
        return await within(coro, timeout_s)

    return asyncio.run(bounded())


async def play(link, timeout_s=2.0):
    """Everything the replay delivers, to its end: [(Received, wall time of delivery)]."""
    got = []
    async with link:
        while True:
            item = await link.receive(timeout_s=timeout_s)
            if item is None:
                if not link.status().connected:
                    return got
                continue
            got.append(item)
    return got


def _packets(n: int):
    """n packets of the three channels with their log times: DATA every 10 ms, an ACK and a LOG chunk now and then."""
    out = []
    for i in range(n):
        t = 100.0 + 0.01 * i
        if i % 10 == 3:
            out.append(("control", protocol.encode_ack(Opcode.START, i % 256, Status.OK), t))
        elif i % 17 == 5:
            out.append(("log", protocol.encode_log_chunk(1, i, 0, bytes(range(i % 50))), t))
        else:
            q = [[16384, 0, 0, 0]]
            out.append(("data", protocol.encode_data(i, i * 10000, 10000, q, [[i, -i, 2048]], [[1, 2, 3]], [0]), t))
    return out


@pytest.fixture
def written_log(tmp_path):
    """A log of 60 packets over 0.59 s, with a command and notes among them (never played)."""
    path = tmp_path / "written.hclog"
    packets = _packets(60)
    with LogWriter(path, {"link": "sim", "device": {"board": "sim"}}) as w:
        for k, (channel, packet, t) in enumerate(packets):
            w.packet(channel, packet, t)
            if k == 10:
                w.command(protocol.encode_command(Opcode.INFO, 9), t + 0.001)
                w.note("time_map", t + 0.002, offset_s=1.5)
    return path, packets


def test_as_fast_as_possible_plays_every_packet_in_order(written_log):
    path, packets = written_log
    link = ReplayLink(path, speed=None)
    t0 = time.monotonic()
    got = run(play(link))
    took = time.monotonic() - t0
    assert [(x.channel, x.packet) for x in got] == [(c, p) for c, p, _ in packets]
    assert {x.channel for x in got} == {DATA, CONTROL, LOG}
    assert took < 0.3  # the log spans 0.59 s
    s = link.status()
    assert not s.connected and link.ended
    assert s.packets_in == s.records_played == 60 and s.bytes_in == sum(len(p) for _, p, _ in packets)
    assert s.complete is True and s.damaged_bytes == 0
    assert s.position_s == pytest.approx(0.59)
    assert link.header["link"] == "sim" and link.header["device"] == {"board": "sim"}
    times = [x.host_time_s for x in got]
    assert times == sorted(times) and got[-1].host_time_s <= time.monotonic()


@pytest.mark.parametrize("speed", [1.0, 2.0])
def test_timing_follows_the_log_scaled_by_speed(written_log, speed):
    path, packets = written_log
    link = ReplayLink(path, speed=speed)
    got = run(play(link, timeout_s=0.05))  # short timeouts: receive() returns None in between, the clock goes on
    assert [(x.channel, x.packet) for x in got] == [(c, p) for c, p, _ in packets]
    start = got[0].host_time_s
    for item, (_, _, t) in zip(got, packets):
        due = (t - packets[0][2]) / speed
        late = item.host_time_s - start - due
        assert -0.002 <= late < 0.03, f"{late * 1e3:.1f} ms off the schedule at {due:.3f} s"
    span = got[-1].host_time_s - start
    assert span == pytest.approx(0.59 / speed, abs=0.03)


def test_realtime_switch_of_hipcheck_record(written_log):
    path, _ = written_log
    assert ReplayLink(path, realtime=True).speed == 1.0
    assert ReplayLink(path, realtime=False).speed is None
    with pytest.raises(ValueError, match="speed"):
        ReplayLink(path, speed=0)


def test_commands_are_accepted_and_never_answered(written_log):
    path, packets = written_log

    async def main():
        link = ReplayLink(path, speed=None)
        with pytest.raises(LinkError, match="not open"):
            await link.send(protocol.encode_command(Opcode.INFO, 1))
        async with link:
            await link.send(protocol.encode_command(Opcode.INFO, 200))
            await link.send(protocol.encode_command(Opcode.VIBRATE, 201, intensity_pct=50, repeat=0,
                                                    steps=[(20, 0)]))
            with pytest.raises(LinkError, match="at most 244"):
                await link.send(bytes(245))
            got = []
            while (item := await link.receive(timeout_s=0.5)) is not None:
                got.append(item)
            s = link.status()
        await link.close()  # twice: nothing happens
        return link, got, s

    link, got, s = run(main())
    assert s.commands_out == 2 and s.answers_commands is False
    assert [p for _, p in link.commands] == [protocol.encode_command(Opcode.INFO, 200),
                                             protocol.encode_command(Opcode.VIBRATE, 201, intensity_pct=50,
                                                                     repeat=0, steps=[(20, 0)])]
    tokens = [protocol.decode_packet(x.packet).token for x in got if x.channel == CONTROL]
    assert 200 not in tokens and 201 not in tokens  # only what the log holds
    assert len(got) == len(packets)


def _cut_inside_record(path: Path, k: int) -> int:
    """Byte offset of the middle of the k-th record after the header."""
    data = path.read_bytes()
    pos = len(MAGIC)
    for _ in range(k + 1):  # the header, then k records
        pos += 13 + int.from_bytes(data[pos:pos + 4], "little") + 4
    return pos + 9


def test_a_log_cut_mid_record_plays_to_its_last_record_then_ends(written_log, tmp_path):
    path, packets = written_log
    # records after the header: packets 0..10, the command, the note, then packet 11...: cut inside packet 30
    cut_at = _cut_inside_record(path, 30 + 2)
    cut = tmp_path / "cut.hclog"
    cut.write_bytes(path.read_bytes()[:cut_at])  # as a recorder killed mid-write leaves it
    link = ReplayLink(cut, speed=None)
    got = run(play(link))
    assert [x.packet for x in got] == [p for _, p, _ in packets[:30]]
    s = link.status()
    assert not s.connected and s.complete is False
    assert s.damaged_bytes == 9 and s.records_played == 30
    assert run(link.receive(timeout_s=0.1)) is None  # closed by play(): still no hang, no error


def test_a_flipped_byte_loses_only_its_record(written_log, tmp_path):
    path, packets = written_log
    data = bytearray(path.read_bytes())
    at = _cut_inside_record(path, 20 + 2) + 5  # inside packet 20's payload
    data[at] ^= 0x10
    bad = tmp_path / "flipped.hclog"
    bad.write_bytes(bytes(data))

    async def main():
        link = ReplayLink(bad, speed=None)
        got = []
        async with link:
            while (item := await link.receive(timeout_s=0.5)) is not None:
                got.append(item)
            ended = (link.status(), await link.receive(timeout_s=0.01), await link.receive())
        return got, ended

    got, (s, again, again_no_timeout) = run(main())
    assert [x.packet for x in got] == [p for _, p, _ in packets[:20] + packets[21:]]  # read on past the damage
    assert again is None and again_no_timeout is None  # an ended replay never blocks
    assert not s.connected and s.complete is False
    start = _cut_inside_record(path, 20 + 2) - 9
    assert s.damaged_bytes == _cut_inside_record(path, 20 + 3) - 9 - start  # exactly packet 20's record
    damage = LogReader(bad).damage
    assert damage.regions == [(start, s.damaged_bytes)] and damage.records_lost == 1


def test_what_is_not_a_log_is_a_clear_file_error(tmp_path):
    async def main(p):
        link = ReplayLink(p)
        with pytest.raises(InvalidValueError) as info:
            await link.open()
        with pytest.raises(LinkError, match="not open"):
            await link.receive(timeout_s=0.1)
        await link.close()
        return str(info.value)

    csv = tmp_path / "walk.csv"
    csv.write_text("t_s,acc_x\n0,1\n")
    assert "not a hipcheck session log" in run(main(csv))
    assert "cannot read the log" in run(main(tmp_path / "missing.hclog"))
    newer = tmp_path / "newer.hclog"
    newer.write_bytes(MAGIC[:6] + b"\x02\n" + bytes(40))
    assert "update hipcheck" in run(main(newer))


@pytest.mark.skipif(MICROPYTHON is None, reason="micropython unix port not installed")
def test_a_recorded_sim_session_replays_packet_for_packet(tmp_path):
    """Record what the firmware's sim board sends (SimLink) with LogWriter, then replay it."""
    from hipcheck.cli import main as cli_main
    from hipcheck.links.sim import SimLink

    csv = tmp_path / "walk.csv"
    assert cli_main(["simulate", "walk", "--seconds", "8", "-o", str(csv)]) == 0
    log = tmp_path / "session.hclog"

    async def record():
        got = []
        async with SimLink(csv, seconds=3.0, workdir=tmp_path / "sim") as link:
            with LogWriter(log, {"link": "sim"}) as w:
                await link.send(protocol.encode_command(Opcode.INFO, 1))
                w.command(protocol.encode_command(Opcode.INFO, 1))
                while True:
                    item = await link.receive(timeout_s=1.0)
                    if item is None:
                        break
                    w.packet(item.channel, item.packet, item.host_time_s)
                    got.append(item)
        return got

    recorded = run(record(), 60)
    assert sum(x.channel == DATA for x in recorded) > 20 and any(x.channel == CONTROL for x in recorded)
    assert LogReader(log).complete
    link = ReplayLink(log, speed=None)
    replayed = run(play(link))
    assert [(x.channel, x.packet) for x in replayed] == [(x.channel, x.packet) for x in recorded]
    samples, report = protocol.decode_data_packets([x.packet for x in replayed if x.channel == DATA])
    assert report.skipped == [] and (samples["seq"] == range(len(samples))).all()
    assert link.status().complete and link.last_t_host_s == recorded[-1].host_time_s


def test_data_that_never_decodes_ends_the_session_with_a_clear_error(tmp_path):
    """DATA packets that keep coming but never decode (each one byte short) are not taken as a quiet sensor: the
    session fails after its watchdog and says why."""
    from hipcheck.device import DeviceSession, SessionError, SessionSettings

    good = (Path(__file__).parent / "vectors" / "data_1_sample.bin").read_bytes()
    path = tmp_path / "bad.hclog"
    with LogWriter(path, {"link": "sim"}) as w:
        for k in range(300):  # 3 s at 100 packets/s, each one byte short of its n_samples
            w.packet(DATA, good[:-1], 100.0 + 0.01 * k)

    async def main():
        async with ReplayLink(path, realtime=True) as link:
            async with DeviceSession(link, SessionSettings(passive=True, watchdog_s=1.0)) as session:
                return [b async for b in session.blocks()], session

    with pytest.raises(SessionError, match="none has decoded for 1 s"):
        run(main(), timeout_s=20)
