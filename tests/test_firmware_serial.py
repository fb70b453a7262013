"""The USB-serial transport (firmware/link_serial.py: COBS + CRC-16 frames) over a real pty, the host on pyserial.

The sim board runs the firmware with ``--link serial``: ``link_serial.Link`` on its stdin/stdout, both on the pty's
master, so that the host opens the slave tty with ``serial.Serial`` (raw, as a USB CDC port) exactly as it opens
/dev/ttyACM0 on a real board. One 15 s walk, as fast as possible: every frame decodes with
``hipcheck.protocol.Deframer``, the byte stream is exactly a 0x00 then the canonical frames (nothing translated by
the tty), the samples have no sequence gap and are the trace's wire values; commands sent as frames are answered;
garbage, bit-flipped, truncated and oversize frames toward the device are dropped by its deframer, counted exactly
as the host's own deframer counts the same bytes, and the next good command is answered while streaming goes on.
The device-to-host direction cannot be corrupted on a pty, so the captured stream is damaged on the host and fed to
a fresh ``Deframer``: it resynchronises after every damage and accepts no corrupted packet.
"""

import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
import tty
from pathlib import Path

import numpy as np
import pytest

serial = pytest.importorskip("serial")

from hipcheck import protocol  # noqa: E402
from hipcheck.cli import main as cli_main  # noqa: E402
from hipcheck.protocol import Ack, EventCode, Opcode, PacketType, Status  # noqa: E402
from hipcheck.links.simboard import expected_wire, firmware_command, prepare_trace  # noqa: E402

MICROPYTHON = shutil.which("micropython", path=str(Path(sys.executable).parent)) or shutil.which("micropython")
pytestmark = [pytest.mark.skipif(MICROPYTHON is None, reason="micropython unix port not installed"),
              pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pty")]

SECONDS = 15.0
PERIOD_US = 9600  # LSM6DSOX "104 Hz"
INTERVAL_MS = 20
TIMEOUT_S = 10.0  # for any one answer; the whole run takes about 3-5 s


class SerialHost:
    """The host end: pyserial on the slave tty and a reader thread that keeps every byte received and decodes
    every frame. Writes go through ``send``, which also feeds them to ``model``, a host Deframer that sees exactly
    what the device's deframer sees (so its counters are the device's expected counters)."""

    def __init__(self, port: "serial.Serial", proc: subprocess.Popen, stderr_path: Path):
        self.port = port
        self.proc = proc
        self.stderr_path = stderr_path
        self.raw = bytearray()  # every byte from the device, as received
        self.deframer = protocol.Deframer()
        self.model = protocol.Deframer()
        self.sent = 0  # bytes written to the device
        self.packets: list[bytes] = []  # every good packet, in order
        self.data: list[bytes] = []
        self.acks: list[Ack] = []
        self.events: list = []
        self.bad: list = []
        self.live_samples = 0
        self.cv = threading.Condition()
        self._stop = threading.Event()
        self.read_error = None
        self.thread = threading.Thread(target=self._read, name="serial-host-reader", daemon=True)
        self.thread.start()

    def _read(self):
        while not self._stop.is_set():
            try:
                chunk = self.port.read(self.port.in_waiting or 1)  # returns after the port's timeout at most
            except (serial.SerialException, OSError, TypeError, ValueError) as e:
                self.read_error = e  # the device end went away (EIO on the slave), or the port was closed
                break
            if not chunk:
                continue
            with self.cv:
                self.raw += chunk
                for p in self.deframer.feed(chunk):
                    self.packets.append(p)
                    self._dispatch(p)
                self.cv.notify_all()
        with self.cv:
            self.cv.notify_all()

    def _dispatch(self, p):
        try:
            if protocol.packet_type(p) == PacketType.DATA:
                self.data.append(p)
                self.live_samples += p[1]
                return
            msg = protocol.decode_packet(p)
        except protocol.ProtocolError as e:
            self.bad.append((p, e))
            return
        (self.acks if isinstance(msg, Ack) else self.events if isinstance(msg, protocol.Event) else self.bad).append(
            msg)

    def stop_reading(self):
        self._stop.set()
        self.thread.join(timeout=5)

    def stderr(self):
        try:
            return self.stderr_path.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def _fail(self, what):
        alive = "running" if self.proc.poll() is None else f"exited with {self.proc.returncode}"
        raise AssertionError(f"{what} (firmware {alive}); stderr:\n{self.stderr()}")

    # ---- host -> device
    def send(self, data: bytes):
        n = self.port.write(data)  # write_timeout bounds it
        assert n == len(data), f"wrote {n} of {len(data)} bytes"
        self.sent += n
        self.model.feed(data)

    def wait_ack(self, token, start=0, timeout_s=TIMEOUT_S):
        """The first ACK with this token among those from index ``start`` on (tokens are 8 bits: reused)."""
        deadline = time.monotonic() + timeout_s
        with self.cv:
            while True:
                for a in self.acks[start:]:
                    if a.token == token:
                        return a
                left = deadline - time.monotonic()
                if left <= 0 or not self.thread.is_alive():
                    self._fail(f"no ACK for token {token} within {timeout_s} s")
                self.cv.wait(min(left, 0.5))

    def command(self, opcode, token, **fields):
        with self.cv:
            start = len(self.acks)
        self.send(protocol.frame(protocol.encode_command(opcode, token, **fields)))
        return self.wait_ack(token, start)

    def wait_samples(self, n, timeout_s=TIMEOUT_S):
        deadline = time.monotonic() + timeout_s
        with self.cv:
            while self.live_samples < n:
                left = deadline - time.monotonic()
                if left <= 0 or not self.thread.is_alive():
                    self._fail(f"{self.live_samples} of {n} samples arrived in {timeout_s} s")
                self.cv.wait(min(left, 0.5))
            return self.live_samples


@pytest.fixture(scope="module")
def trace(tmp_path_factory):
    work = tmp_path_factory.mktemp("serial")
    csv = work / "walk.csv"
    assert cli_main(["simulate", "walk", "--seconds", str(SECONDS + 2), "-o", str(csv)]) == 0
    raw = prepare_trace(csv, work / "trace.hct", "LSM6DSOX", 100)
    return work / "trace.hct", raw


@pytest.fixture(scope="module")
def session(trace, tmp_path_factory):
    """One run over the pty with commands and injected damage; returns (host, answers, record)."""
    trace_path, _ = trace
    work = tmp_path_factory.mktemp("serial-run")
    record_path, stderr_path = work / "record.json", work / "stderr.txt"
    args, env = firmware_command(trace_path, "--link", "serial", "--seconds", repr(SECONDS), "--interval-ms",
                                 INTERVAL_MS, "--record", record_path, "--no-alerts")
    master, slave = os.openpty()
    port = proc = host = None
    answers = {}
    try:
        # baudrate means nothing on a pty; the timeouts bound every read and write
        port = serial.Serial(os.ttyname(slave), baudrate=115200, timeout=0.1, write_timeout=5)
        tty.setraw(port.fileno())  # before the firmware's first byte: no echo, no CR/LF or XON/XOFF handling
        os.close(slave)  # the port holds the slave now: closing it is the hang-up that ends the firmware
        slave = None
        with open(stderr_path, "wb") as err:
            proc = subprocess.Popen(args, stdin=master, stdout=master, stderr=err, env=env, cwd=work)
        os.close(master)
        master = None
        host = SerialHost(port, proc, stderr_path)

        # the injections below take some 25 ms of the ~0.4 s the firmware streams for: start early
        host.wait_samples(100)
        answers["info"] = host.command(Opcode.INFO, 1)
        answers["sync"] = host.command(Opcode.TIME_SYNC, 2, host_token=0x5E51A1)

        # toward the device: each damage, then a good command that must be answered
        bad_tokens = []
        good = []

        def then_good(name, token):
            answers[name] = host.command(Opcode.TIME_SYNC, token, host_token=token)
            good.append(name)

        host.send(b"\x00\x13\x37garbage\xff\xfe\x00")  # garbage between delimiters: one bad frame
        then_good("after_garbage", 10)
        rng = random.Random(7)
        for i, token in enumerate(range(100, 106)):  # single bit flips, in the data, the CRC, the COBS code byte
            f = bytearray(protocol.frame(protocol.encode_command(Opcode.INFO, token)))
            pos = [3, 1, len(f) - 2, len(f) - 3, 2, 0][i]
            f[pos] ^= 1 << rng.randrange(8)
            if f[pos] == 0:
                f[pos] = 0x5A  # a flip to 0x00 would split the frame instead: still bad, but keep one frame
            bad_tokens.append(token)
            host.send(bytes(f))
            then_good(f"after_flip_{i}", 20 + i)
        f = protocol.frame(protocol.encode_command(Opcode.TIME_SYNC, 110, host_token=1))
        bad_tokens.append(110)
        host.send(f[: len(f) // 2] + b"\x00")  # a truncated frame
        then_good("after_truncated", 30)
        bad_tokens.append(111)  # garbage glued to a frame (no delimiter between): that frame is lost ...
        host.send(b"\x55\xaa\x01\x02" + protocol.frame(protocol.encode_command(Opcode.INFO, 111)))
        then_good("after_glued", 31)  # ... the next one is not
        host.send(bytes(range(1, 256)) * 3 + b"\x00")  # 765 bytes without a delimiter: an oversize run
        then_good("after_oversize", 32)
        n_before = host.live_samples
        start = len(host.acks)
        host.send(protocol.frame(bytes([0x22, 0x7E, 40])))  # a good frame, an unknown opcode: the app answers
        answers["unknown"] = host.wait_ack(40, start)
        host.wait_samples(n_before + 400)
        answers["n_before"] = n_before
        answers["bad_tokens"] = bad_tokens
        answers["good"] = good

        # the end: device time at --seconds and nothing new since the last pong (as SimBoard.finish)
        end_us = int(SECONDS * 1e6) - 2 * INTERVAL_MS * 1000
        deadline, last, token = time.monotonic() + 20, None, 200
        while True:
            assert time.monotonic() < deadline, "the firmware did not reach its end of trace"
            pong = host.command(Opcode.TIME_SYNC, token, host_token=token)
            token = 200 + (token - 199) % 50  # 200-249: never one of the bad tokens
            with host.cv:
                state = (pong.fields["next_seq"], host.live_samples)
            if pong.fields["device_t_us"] >= end_us and state == last:
                break
            last = state
            time.sleep(0.05)
        host.stop_reading()
        port.close()  # hang-up: the firmware writes its record and exits
        rc = proc.wait(timeout=TIMEOUT_S)
        assert rc == 0, f"firmware exit code {rc}; stderr:\n{host.stderr()}"
        record = json.loads(record_path.read_text())
        return host, answers, record
    finally:
        if host is not None:
            host.stop_reading()
        if port is not None and port.is_open:
            port.close()
        for fd in (master, slave):
            if fd is not None:
                os.close(fd)
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)


def _wire(samples):
    acc = np.rint(samples["acc_m_s2"] / protocol.ACC_LSB_M_S2).astype(np.int64)
    gyr = np.rint(samples["gyr_rad_s"] / protocol.GYR_LSB_RAD_S).astype(np.int64)
    return acc, gyr


def test_the_stream_is_exactly_the_frames_and_every_sample_arrives(session):
    host, _, record = session
    # nothing added, lost or translated by the tty: the one 0x00 of link_serial.run, then the canonical frames
    assert bytes(host.raw) == b"\x00" + b"".join(protocol.frame(p) for p in host.packets)
    d = host.deframer
    assert (d.crc_errors, d.cobs_errors, d.oversize_dropped, d.bytes_dropped) == (0, 0, 0, 0)
    assert host.bad == []
    assert not [e for e in host.events if e.code == EventCode.BUFFER_OVERRUN]
    samples, report = protocol.decode_data_packets(host.data)
    assert report.skipped == []
    assert np.array_equal(samples["seq"], np.arange(len(samples)))
    assert abs(len(samples) - int(SECONDS * 1e6) // PERIOD_US) <= 2
    assert (np.diff(samples["t_us"])[200:] == PERIOD_US).all()
    assert max(len(p) for p in host.data) <= 247 - 3
    assert record["app"]["lost_tx"] == 0 and record["app"]["lost_imu"] == 0
    assert record["link"]["frames_sent"] == len(host.packets)


def test_samples_are_the_trace(session, trace):
    host, _, _ = session
    raw = trace[1]
    acc_exp, gyr_exp = expected_wire("LSM6DSOX", raw)
    acc, gyr = _wire(protocol.decode_data_packets(host.data)[0])
    offsets = [k for k in range(8) if np.array_equal(acc[:50], acc_exp[k:k + 50])]
    assert offsets, "the first samples match no position near the start of the trace"
    idx = (np.arange(len(acc)) + offsets[0]) % len(raw)
    assert np.array_equal(acc, acc_exp[idx])
    assert np.array_equal(gyr, gyr_exp[idx])


def test_commands_sent_as_frames_are_answered(session):
    _, a, _ = session
    info = a["info"]
    assert info.opcode == Opcode.INFO and info.status == Status.OK
    assert info.fields["board_id"] == 3 and info.fields["imu_id"] == 1 and info.fields["rate_hz"] == 100
    assert info.fields["state_flags"] & protocol.StateFlag.STREAMING
    assert a["sync"].status == Status.OK and a["sync"].fields["host_token"] == 0x5E51A1
    assert a["unknown"].status == Status.UNKNOWN_COMMAND and a["unknown"].opcode == 0x7E


def test_device_deframer_resynchronises_and_counts_the_damage(session):
    host, a, record = session
    # the good command after each damage was answered, with its own token echoed
    assert len(a["good"]) == 10
    for name in a["good"]:
        ack = a[name]
        assert ack.status == Status.OK and ack.fields["host_token"] == ack.token, name
    # no damaged command was ever answered
    assert not [x for x in host.acks if x.token in a["bad_tokens"]]
    # the device's deframer counted exactly what the host's deframer counts on the same bytes
    link, m = record["link"], host.model
    assert link["bytes_read"] == host.sent
    assert {k: link[k] for k in ("frames_ok", "crc_errors", "cobs_errors", "oversize_dropped", "bytes_dropped")} == {
        "frames_ok": m.frames_ok, "crc_errors": m.crc_errors, "cobs_errors": m.cobs_errors,
        "oversize_dropped": m.oversize_dropped, "bytes_dropped": m.bytes_dropped}
    assert link["oversize_dropped"] == 1
    assert link["crc_errors"] + link["cobs_errors"] == 1 + 6 + 1 + 1  # garbage, 6 flips, truncated, glued
    assert link["crc_errors"] >= 3  # the flips inside the data and the CRC can only fail the CRC
    # streaming went on through it all (no gap: above)
    assert host.live_samples >= a["n_before"] + 400


def test_host_deframer_resynchronises_and_accepts_no_corrupted_packet(session):
    """The pty cannot corrupt the device's bytes, so the captured stream is damaged here: bits flipped in frames,
    frames truncated, a delimiter lost (two frames merge), garbage glued to a frame or between frames, a run longer
    than any frame. The Deframer must hand back exactly the untouched packets, in order, byte for byte."""
    host, _, _ = session
    packets = list(host.packets)
    assert len(packets) > 150
    rng = random.Random(20240611)
    out = bytearray(b"\x00")
    lost = set()
    kinds = {}
    i = 0
    while i < len(packets):
        f = bytearray(protocol.frame(packets[i]))
        kind = rng.choice(["clean"] * 6 + ["flip", "flip2", "truncate", "glue", "between", "merge", "oversize"])
        if kind in ("flip", "flip2"):
            for _ in range(1 if kind == "flip" else 2):
                pos = rng.randrange(len(f) - 1)  # anywhere but the delimiter (a flip to 0x00 splits the frame)
                f[pos] ^= 1 << rng.randrange(8)
            lost.add(i)
        elif kind == "truncate":
            f = f[:rng.randrange(1, len(f) - 1)] + b"\x00"
            lost.add(i)
        elif kind == "glue":  # no delimiter between the garbage and the frame: the frame goes with it
            out += bytes(rng.randrange(1, 256) for _ in range(rng.randrange(1, 40)))
            lost.add(i)
        elif kind == "between":  # garbage (zeros too) that ends in a delimiter: only the garbage is lost
            out += bytes(rng.randrange(256) for _ in range(rng.randrange(1, 80))) + b"\x00"
        elif kind == "merge" and i + 1 < len(packets):  # the delimiter lost: this frame and the next become one
            out += f[:-1]
            lost.update((i, i + 1))
            f = bytearray(protocol.frame(packets[i + 1]))
            i += 1
        elif kind == "oversize":  # a run longer than any frame, then the frame after its delimiter is fine
            out += bytes(rng.randrange(1, 256) for _ in range(protocol.MAX_ENCODED_FRAME_LEN + 10)) + b"\x00"
        kinds[kind] = kinds.get(kind, 0) + 1
        out += f
        i += 1
    assert all(kinds.get(k, 0) >= 3 for k in ("flip", "flip2", "truncate", "glue", "between", "merge", "oversize"))

    d = protocol.Deframer()
    got = []
    pos = 0
    while pos < len(out):  # in arbitrary pieces, as reads return them
        n = rng.randrange(1, 700)
        got += d.feed(bytes(out[pos:pos + n]))
        pos += n
    expected = [p for k, p in enumerate(packets) if k not in lost]
    assert got == expected
    assert d.frames_ok == len(expected)
    assert d.crc_errors + d.cobs_errors >= len(lost) - kinds["merge"]  # a merge costs two frames, one error
    assert d.oversize_dropped >= kinds["oversize"]
    # and so, sample for sample: what was accepted is what the device sent
    clean = protocol.decode_data_packets(host.data)[0]
    kept = protocol.decode_data_packets([p for p in got if protocol.packet_type(p) == PacketType.DATA])[0]
    assert len(kept) < len(clean)
    idx = kept["seq"] - clean["seq"][0]
    for name in ("t_us", "quat", "acc_m_s2", "gyr_rad_s", "flags"):
        assert np.array_equal(kept[name], clean[name][idx]), name
