"""``SerialLink`` over a real pty, the firmware's sim board with ``--link serial`` on the other end.

The firmware's stdout goes through ``Relay`` (a thread of this process) to the pty's master, its stdin reads the
master directly; the link opens the slave tty by path as it opens /dev/ttyACM0. A 22 s walk streams as fast as
possible; the relay damages some DATA frames on their way (bit flips, truncation, garbage glued to a frame or
between frames, a lost delimiter, a run longer than any frame) and keeps both the clean and the damaged stream.
The link must deliver exactly the clean packets that were not damaged, in order, byte for byte (so no corrupted
sample), count the damage as a fresh ``Deframer`` counts the damaged stream, get every command answered, and have
the samples of the trace. Then: the port vanishing mid-stream, a port that comes back, a port that does not exist,
a silent port (watchdog), a command too long. The link asks INFO with_id at open: its device_id is the name the
firmware advertises over BLE, and a port that comes back asks again (another sensor may be on it).
"""

import asyncio
import os
import random
import select
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

serial = pytest.importorskip("serial")

from hipcheck import protocol  # noqa: E402
from hipcheck.cli import main as cli_main  # noqa: E402
from hipcheck.links import CONTROL, DATA, LinkError, within  # noqa: E402
from hipcheck.links.serial import SerialLink  # noqa: E402
from hipcheck.protocol import Ack, Opcode, Status  # noqa: E402
from hipcheck.links.simboard import expected_wire, firmware_command, prepare_trace  # noqa: E402

MICROPYTHON = shutil.which("micropython", path=str(Path(sys.executable).parent)) or shutil.which("micropython")
pytestmark = [pytest.mark.skipif(MICROPYTHON is None, reason="micropython unix port not installed"),
              pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pty")]

SECONDS = 20.0
INTERVAL_MS = 20
DAMAGE_FRAMES = (60, 300)  # frame indices of the stream (0 = the announcing 0x00) whose DATA frames may be damaged
DAMAGE_P = 0.3
KINDS = ("flip", "flip2", "truncate", "glue", "between", "merge", "oversize")


def run(coro, timeout_s: float = 60.0):
    async def bounded():
        return await within(coro, timeout_s)

    return asyncio.run(bounded())


class Relay(threading.Thread):
    """The firmware's stdout → the pty master, damaging DATA frames with index in DAMAGE_FRAMES (seeded).

    ``clean``: every byte from the firmware; ``out``: every byte written to the master; ``lost``: the clean frame
    indices whose packet cannot survive (a ``between`` or ``oversize`` damage loses only its garbage); ``kinds``:
    damages done. Only DATA frames are damaged, and a delimiter is dropped only between two DATA frames, so every
    ACK arrives. At the end of the firmware's output the master is closed.
    """

    def __init__(self, src_fd: int, master_fd: int, seed: int = 5):
        super().__init__(name="test-relay", daemon=True)
        self.src, self.master = src_fd, master_fd
        self.rng = random.Random(seed)
        self.clean = bytearray()
        self.out = bytearray()
        self.lost: set[int] = set()
        self.kinds: Counter = Counter()
        self.damage_at: dict[int, str] = {}  # frame index -> the damage done to it
        self.n_frames = 0
        self.n_damaged = 0
        self._held = None  # (index, frame) waiting to lose its delimiter to the next frame, if that is DATA
        self.error = None

    def _emit(self, data: bytes) -> None:
        self.out += data
        view = memoryview(data)
        while view:
            view = view[os.write(self.master, view):]

    def _garbage(self, n: int, zeros: bool = False) -> bytes:
        return bytes(self.rng.randrange(0 if zeros else 1, 256) for _ in range(n))

    def _frame(self, f: bytes) -> None:
        i = self.n_frames
        self.n_frames += 1
        is_data = len(f) > 1 and protocol.unframe(f)[0] == protocol.KIND_DATA
        if self._held is not None:
            (j, h), self._held = self._held, None
            if is_data:  # the delimiter between them lost: one frame of garbage
                self._emit(h[:-1] + f)
                self.lost.update((j, i))
                self.kinds["merge"] += 1
                return
            self.kinds["merge_not_done"] += 1
            self._emit(h)
        lo, hi = DAMAGE_FRAMES
        if not is_data or not lo <= i < hi or self.rng.random() >= DAMAGE_P:
            self._emit(f)
            return
        kind = KINDS[self.n_damaged % len(KINDS)]  # each kind in turn
        self.n_damaged += 1
        self.damage_at[i] = kind
        f = bytearray(f)
        if kind in ("flip", "flip2"):
            # two distinct bytes for flip2: the same bit flipped twice would leave the frame whole
            for pos in self.rng.sample(range(len(f) - 1), 1 if kind == "flip" else 2):
                f[pos] ^= 1 << self.rng.randrange(8)
                if f[pos] == 0:
                    f[pos] = 0xA5  # a flip to 0x00 would split the frame: still damage, but keep it one frame
            self.lost.add(i)
        elif kind == "truncate":
            f = f[:self.rng.randrange(1, len(f) - 1)] + b"\x00"
            self.lost.add(i)
        elif kind == "glue":  # no delimiter between garbage and frame: the frame goes with it
            f = self._garbage(self.rng.randrange(1, 40)) + f
            self.lost.add(i)
        elif kind == "between":  # garbage (zeros too) ending in a delimiter: only the garbage is lost
            f = self._garbage(self.rng.randrange(1, 80), zeros=True) + b"\x00" + f
        elif kind == "oversize":
            f = self._garbage(protocol.MAX_ENCODED_FRAME_LEN + 20) + b"\x00" + f
        elif kind == "merge":
            self._held = (i, bytes(f))
            return
        self.kinds[kind] += 1
        self._emit(bytes(f))

    def run(self) -> None:
        pending = bytearray()
        try:
            while True:
                ready, _, _ = select.select([self.src], [], [], 0.1)
                if not ready:
                    if self._held is not None:  # nothing followed: it keeps its delimiter
                        self.kinds["merge_not_done"] += 1
                        self._emit(self._held[1])
                        self._held = None
                    continue
                chunk = os.read(self.src, 65536)
                if not chunk:
                    break
                self.clean += chunk
                pending += chunk
                while (k := pending.find(0)) >= 0:
                    f = bytes(pending[:k + 1])
                    del pending[:k + 1]
                    self._frame(f)
            if self._held is not None:
                self._emit(self._held[1])
            if pending:
                self._emit(bytes(pending))
        except OSError as error:  # the slave went away first
            self.error = error
        finally:
            os.close(self.master)


@pytest.fixture(scope="module")
def trace(tmp_path_factory):
    work = tmp_path_factory.mktemp("seriallink")
    csv = work / "walk.csv"
    assert cli_main(["simulate", "walk", "--seconds", str(SECONDS + 2), "-o", str(csv)]) == 0
    raw = prepare_trace(csv, work / "trace.hct", "LSM6DSOX", 100)
    return work / "trace.hct", raw


class Collector:
    """Everything the link delivers, and waiting for an ACK by token."""

    def __init__(self, link):
        self.link = link
        self.items = []
        self.acks = []

    async def pump(self, timeout_s: float):
        item = await self.link.receive(timeout_s=timeout_s)
        if item is not None:
            self.items.append(item)
            if item.channel == CONTROL:
                msg = protocol.decode_packet(item.packet)
                if isinstance(msg, Ack):
                    self.acks.append(msg)
        return item

    async def ack(self, token: int, timeout_s: float = 10.0) -> Ack:
        start = len(self.acks)
        deadline = time.monotonic() + timeout_s
        while True:
            for a in self.acks[start:]:
                if a.token == token:
                    return a
            left = deadline - time.monotonic()
            assert left > 0, f"no ACK for token {token} within {timeout_s} s"
            await self.pump(min(left, 0.5))

    async def command(self, opcode, token, **fields) -> Ack:
        start = len(self.acks)
        await self.link.send(protocol.encode_command(opcode, token, **fields))
        deadline = time.monotonic() + 10.0
        while True:
            for a in self.acks[start:]:
                if a.token == token:
                    return a
            assert time.monotonic() < deadline, f"no ACK for token {token}"
            await self.pump(0.5)

    def data(self):
        return [x.packet for x in self.items if x.channel == DATA]


@pytest.fixture(scope="module")
def session(trace, tmp_path_factory):
    trace_path, _ = trace
    work = tmp_path_factory.mktemp("seriallink-run")
    stderr_path = work / "stderr.txt"
    args, env = firmware_command(trace_path, "--link", "serial", "--seconds", repr(SECONDS), "--interval-ms",
                                 INTERVAL_MS, "--no-alerts")
    master, slave = os.openpty()
    path = os.ttyname(slave)
    proc = relay = None
    out = {}

    async def main():
        nonlocal proc, relay, slave, master
        link = SerialLink(path, watchdog_s=10.0)
        await link.open()  # pyserial makes the tty raw before the firmware's first byte
        os.close(slave)  # the link holds the slave now: closing it is the hang-up that ends the firmware
        slave = None
        with open(stderr_path, "wb") as err:
            proc = subprocess.Popen(args, stdin=master, stdout=subprocess.PIPE, stderr=err, env=env, cwd=work)
        relay = Relay(proc.stdout.fileno(), master)
        master = None  # the relay closes it
        relay.start()
        c = Collector(link)
        out["info"] = await c.command(Opcode.INFO, 1)
        too_long = bytes(245)
        with pytest.raises(LinkError, match="at most 244"):
            await link.send(too_long)
        # to the end of the trace: device time at --seconds and nothing new since the last pong
        end_us = int(SECONDS * 1e6) - 2 * INTERVAL_MS * 1000
        last, token = None, 200
        deadline = time.monotonic() + 30
        while True:
            assert time.monotonic() < deadline, "the firmware did not reach the end of its trace"
            while await c.pump(0.2) is not None:
                pass
            pong = await c.command(Opcode.TIME_SYNC, token, host_token=token)
            token = 200 + (token - 199) % 50
            state = (pong.fields["next_seq"], len(c.data()))
            if pong.fields["device_t_us"] >= end_us and state == last:
                break
            last = state
        out["last_pong"] = pong
        out["device_id"] = link.device_id
        out["status"] = link.status()
        out["counters"] = link.counters()
        await link.close()
        await link.close()  # twice: nothing happens
        out["closed_status"] = link.status()
        out["receive_after_close"] = await link.receive(timeout_s=0.1)
        return c

    try:
        c = run(main())
        assert proc.wait(timeout=10) == 0, stderr_path.read_text(errors="replace")[-2000:]
        relay.join(timeout=5)
        return c, relay, out
    finally:
        for fd in (master, slave):
            if fd is not None:
                os.close(fd)
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)


def test_every_undamaged_packet_arrives_in_order_and_no_damaged_one(session):
    c, relay, out = session
    clean_d = protocol.Deframer()
    clean = clean_d.feed(bytes(relay.clean))
    assert (clean_d.crc_errors, clean_d.cobs_errors, clean_d.oversize_dropped) == (0, 0, 0)
    assert relay.clean[:1] == b"\x00"  # the firmware's announcing 0x00 passed through, harmless
    assert all(relay.kinds[k] >= 3 for k in KINDS), relay.kinds
    # frame index i of the stream is packet i - 1 (frame 0 is the lone 0x00); the answer to the link's own INFO
    # (token 0, asked at open) is the link's: it names the sensor and is not delivered
    identity = [p for p in clean if p[:3] == bytes([0x23, Opcode.INFO, 0])]
    assert len(identity) == 1
    expected = [p for i, p in enumerate(clean, start=1) if i not in relay.lost and p != identity[0]]
    got = [x.packet for x in c.items]
    assert got == expected
    # the name the firmware advertises over BLE (test_firmware_bumble), told by INFO's name_id over serial
    assert out["device_id"] == "hipcheck-4D01"
    assert len(got) < len(clean)
    times = [x.host_time_s for x in c.items]
    assert times == sorted(times)


def test_damage_is_counted_as_the_deframer_counts_it(session):
    c, relay, out = session
    model = protocol.Deframer()
    model.feed(bytes(relay.out))
    counters = out["counters"]
    assert {k: counters[k] for k in ("frames_ok", "crc_errors", "cobs_errors", "oversize_dropped",
                                     "bytes_dropped")} == {
        "frames_ok": model.frames_ok, "crc_errors": model.crc_errors, "cobs_errors": model.cobs_errors,
        "oversize_dropped": model.oversize_dropped, "bytes_dropped": model.bytes_dropped}
    s = out["status"]
    assert s.crc_errors == model.crc_errors + model.cobs_errors
    lost_frames = sum(relay.kinds[k] for k in ("flip", "flip2", "truncate", "glue", "merge"))
    assert s.crc_errors >= lost_frames
    assert model.crc_errors >= relay.kinds["flip"]
    assert counters["oversize_dropped"] >= relay.kinds["oversize"]
    assert counters["bad_packets"] == 0
    assert s.packets_in == len(c.items) and s.bytes_in == len(relay.out)
    assert s.connected and s.mtu == 247 and s.error is None
    assert out["closed_status"].connected is False and out["receive_after_close"] is None


def test_samples_are_the_trace_with_gaps_only_where_frames_were_damaged(session, trace):
    c, relay, _ = session
    clean = protocol.Deframer().feed(bytes(relay.clean))
    all_samples, _ = protocol.decode_data_packets([p for p in clean if p[0] == protocol.KIND_DATA])
    # the walk as the device sent it: no sequence gap, as long as the trace
    assert np.array_equal(all_samples["seq"], np.arange(len(all_samples)))
    assert abs(len(all_samples) - int(SECONDS * 1e6) // 9600) <= 2
    samples, report = protocol.decode_data_packets(c.data())
    assert report.skipped == []
    lost_seq = set()
    for i in relay.lost:
        p = clean[i - 1]
        lost_seq.update(range(int.from_bytes(p[2:6], "little"), int.from_bytes(p[2:6], "little") + p[1]))
    assert sorted(set(samples["seq"].tolist()) | lost_seq) == list(range(len(all_samples)))
    assert not set(samples["seq"].tolist()) & lost_seq
    first_lost = min(lost_seq)
    assert first_lost > 100 and np.array_equal(samples["seq"][:first_lost], np.arange(first_lost))

    raw = trace[1]
    acc_exp, gyr_exp = expected_wire("LSM6DSOX", raw)
    acc = np.rint(samples["acc_m_s2"] / protocol.ACC_LSB_M_S2).astype(np.int64)
    gyr = np.rint(samples["gyr_rad_s"] / protocol.GYR_LSB_RAD_S).astype(np.int64)
    offsets = [k for k in range(8) if np.array_equal(acc[:50], acc_exp[k:k + 50])]
    assert offsets, "the first samples match no position near the start of the trace"
    idx = (samples["seq"] + offsets[0]) % len(raw)
    assert np.array_equal(acc, acc_exp[idx]) and np.array_equal(gyr, gyr_exp[idx])


def test_commands_are_answered_through_the_damage(session):
    _, _, out = session
    info = out["info"]
    assert info.opcode == Opcode.INFO and info.status == Status.OK
    assert info.fields["board_id"] == 3 and info.fields["imu_id"] == 1
    pong = out["last_pong"]
    assert pong.status == Status.OK and pong.fields["host_token"] == pong.token
    assert out["status"].commands_out >= 3


def test_port_vanishing_mid_stream_is_a_clear_link_error(trace, tmp_path):
    trace_path, _ = trace
    args, env = firmware_command(trace_path, "--link", "serial", "--seconds", "10", "--realtime", "--no-alerts")
    master, slave = os.openpty()
    path = os.ttyname(slave)
    proc = None

    async def main():
        nonlocal proc, master, slave
        link = SerialLink(path, watchdog_s=1.0, reopen_interval_s=0.1)
        await link.open()
        os.close(slave)
        slave = None
        proc = subprocess.Popen(args, stdin=master, stdout=master, stderr=subprocess.DEVNULL, env=env, cwd=tmp_path)
        n = 0
        while n < 5:
            item = await link.receive(timeout_s=5.0)
            assert item is not None, "the firmware sent nothing"
            n += item.channel == DATA
        proc.kill()  # the device end goes: the slave reads EIO
        proc.wait(timeout=5)
        os.close(master)
        master = None
        t0 = time.monotonic()
        with pytest.raises(LinkError) as info:
            while True:
                await link.receive(timeout_s=0.5)
        took = time.monotonic() - t0
        s = link.status()
        with pytest.raises(LinkError):
            await link.send(protocol.encode_command(Opcode.INFO, 2))
        await link.close()
        await link.close()
        return str(info.value), took, s

    try:
        message, took, s = run(main(), 20)
    finally:
        for fd in (master, slave):
            if fd is not None:
                os.close(fd)
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
    assert "went away" in message and path in message and "plug" in message, message
    assert took < 3.0
    assert not s.connected and s.error == message


def test_a_port_that_comes_back_is_reopened(tmp_path):
    """The port's path (a symlink, as udev's /dev/serial/by-id names) points to a new pty after the first
    vanishes: the link reopens it by itself, counts a reconnect and delivers the new device's packets."""
    link_path = tmp_path / "ttyHIPCHECK"
    m1, s1 = os.openpty()
    link_path.symlink_to(os.ttyname(s1))
    fds = [m1, s1]

    async def main():
        link = SerialLink(str(link_path), watchdog_s=5.0, reopen_interval_s=0.05)
        await link.open()
        os.close(s1)
        fds.remove(s1)
        os.write(m1, protocol.frame(protocol.encode_ack(Opcode.STOP, 1, Status.OK)))
        first = await link.receive(timeout_s=2.0)
        m2, s2 = os.openpty()
        fds.extend((m2, s2))
        link_path.unlink()
        link_path.symlink_to(os.ttyname(s2))
        os.close(m1)  # the first device goes
        fds.remove(m1)
        deadline = time.monotonic() + 5
        while not (link.status().connected and link.status().reconnects == 1):
            assert await link.receive(timeout_s=0.05) is None
            assert time.monotonic() < deadline, "the link did not reopen the port"
        # the link's own 0x00 (the device's deframer starts clean), then INFO with_id: which sensor is it now?
        sent = os.read(m2, 64)
        assert sent[:1] == b"\x00"
        assert protocol.Deframer().feed(sent) == [protocol.encode_command(Opcode.INFO, 0, with_id=1)]
        assert link.device_id is None  # the first device never said
        info = dict(proto_version=1, fw_major=0, fw_minor=4, fw_patch=0, board_id=1, imu_id=1, rate_hz=100,
                    battery_mv=3900, battery_pct=65, state_flags=1)
        os.write(m2, b"\x00" + protocol.frame(protocol.encode_ack(Opcode.INFO, 0, Status.OK, **info, name_id=0x3F2A))
                 + protocol.frame(protocol.encode_ack(Opcode.START, 7, Status.OK)))
        second = await link.receive(timeout_s=2.0)  # the INFO answer is the link's own: not delivered
        device_id = link.device_id
        await link.close()
        return first, second, device_id

    try:
        first, second, device_id = run(main(), 20)
    finally:
        for fd in fds:
            os.close(fd)
    assert device_id == "hipcheck-3F2A"
    assert first.channel == CONTROL and protocol.decode_packet(first.packet).token == 1
    assert second.packet == protocol.encode_ack(Opcode.START, 7, Status.OK)


def test_a_silent_port_trips_the_watchdog():
    master, slave = os.openpty()
    path = os.ttyname(slave)

    async def main():
        link = SerialLink(path, watchdog_s=0.4)
        await link.open()
        t0 = time.monotonic()
        with pytest.raises(LinkError, match="no data") as info:
            await link.receive()  # no timeout: the watchdog ends the wait
        took = time.monotonic() - t0
        await link.close()
        return took, str(info.value)

    try:
        took, message = run(main(), 10)
    finally:
        os.close(master)
        os.close(slave)
    assert 0.3 < took < 2.0
    assert "0.4 s" in message and path in message


def test_a_port_that_does_not_exist_is_a_clear_link_error(tmp_path):
    async def main():
        link = SerialLink(str(tmp_path / "ttyNOTHERE"))
        with pytest.raises(LinkError, match="cannot open serial port") as info:
            await link.open()
        with pytest.raises(LinkError, match="not open"):
            await link.receive(timeout_s=0.1)
        await link.close()
        return str(info.value)

    message = run(main(), 10)
    assert "plugged in" in message and "ttyNOTHERE" in message
