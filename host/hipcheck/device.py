"""The device session: one sensor behind a link (``hipcheck.links``), turned into blocks of samples in order.

``DeviceSession(link)`` decodes the packets, tracks the sequence numbers, fills every gap by BACKFILL from the
device's ring buffer, maps device time to host time from TIME_SYNC ping/pong exchanges, sends commands and waits
for their acknowledgement, watches for silence, reconnects through the link when it drops, and records every
packet in a crash-safe log (``hipcheck.record``)::

    async with SimLink("walk.csv") as link:
        async with DeviceSession(link, record="walk.hclog") as session:
            print(session.device_info)
            async for block in session.blocks():        # SampleBlock, in sequence order
                pipeline.update(block.acc_m_s2[block.valid], block.gyr_rad_s[block.valid])
                await session.vibrate("drop_right")

**Gaps.** A live packet whose first sequence number is past the next expected one opens a hole; when data goes
quiet, a TIME_SYNC pong's ``next_seq`` reveals a hole at the tail (a lost last packet). Holes are asked for one
BACKFILL at a time (the device serves one answer at a time), lowest first; the samples come back flagged
``BACKFILLED`` and take their place. What the device cannot serve — ACK UNAVAILABLE, the part older than its ring
(the ACK's ``first_seq`` past the ``from_seq`` asked for), samples a BUFFER_OVERRUN event names, a hole still
unanswered after ``backfill_tries`` requests, or the link gone for good — is **marked**: rows with ``gap`` True,
NaN values and the time the sample would have had, and an entry in ``lost`` with the reason. Nothing is invented.
Blocks are held back while an earlier hole is being filled, so they always come in sequence order (the price: a
hole delays live data by one round trip of BACKFILL).

**Time.** Each TIME_SYNC gives (host send time, host receive time, device time at reception); the device time is
taken to match the midpoint. A straight line host_s = a + b · device_s is fitted (least squares over the exchanges
with the shortest round trips): ``b − 1`` is the drift of the device's clock. Before the first exchange, the lower
envelope of (arrival time − device time) of the live packets gives the offset with b = 1.
``t_host_s`` of each sample uses the fit at the moment its block is emitted.

**Link drops.** When the link reports it is not connected, the session calls ``link.open()`` again with back-off
(0.05 s doubling to 2 s) until it is back or ``reconnect_timeout_s`` passes (then ``SessionError``); a link that
cannot reconnect (``can_reconnect`` False, e.g. a replay) or that has ``ended`` ends the stream instead. After a
reconnect the first live packet shows the hole, which is backfilled as any other. The watchdog ends the session
with a ``SessionError`` when a connected link brings no packet at all for ``watchdog_s`` (idle probes keep a live
device answering).

Passive sessions (``passive=True``, for a replay) send nothing: no commands, no backfill; a hole waits for the
backfilled packets the log holds and is marked lost when the stream has moved ``passive_hold_s`` past it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import numpy as np

from hipcheck.errors import DeviceError
from hipcheck import protocol
from hipcheck.links import CONTROL, DATA, LOG, Link, LinkError, within
from hipcheck.protocol import Ack, Event, EventCode, Opcode, SampleFlag, Status

U32 = 1 << 32
PERIOD_BASELINE = 20  # samples between the two pongs that measure the period in the compact form (MTU 23)

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

# The firmware's built-in patterns (firmware/haptics.py PATTERNS): intensity_pct, repeat, steps (on_10ms, off_10ms).
PATTERNS = {
    "drop_left": (100, 0, ((40, 0),)),
    "drop_right": (100, 0, ((25, 15), (25, 0))),
    "sway": (80, 2, ((8, 8),)),
    "tilt": (80, 0, ((30, 10), (10, 0))),
}


class SessionError(DeviceError, RuntimeError):
    """The session cannot go on (sensor silent, gone, or a protocol the host does not speak); says what to do."""


class CommandError(SessionError):
    """A command got no ACK in time (``status`` None) or was refused (``status`` the ACK's)."""

    def __init__(self, message: str, status: Status | None = None):
        super().__init__(message)
        self.status = status


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
    first_seq: int
    n: int
    reason: str


class TimeMap:
    """Device time → host time: host_s = offset_s + slope · (device_us − device0_us) / 1e6 (module docstring)."""

    def __init__(self, keep: int = 64):
        self.keep = keep
        self.exchanges: list[tuple[float, float, int]] = []  # (host midpoint s, round trip s, device µs)
        self._fit = None  # (device0_us, offset_s, slope)
        self._envelope = None  # (device_us, host_s) with the least host − device, from live packets

    def add_exchange(self, t_send_s: float, t_recv_s: float, device_us: int) -> None:
        self.exchanges.append(((t_send_s + t_recv_s) / 2, t_recv_s - t_send_s, int(device_us)))
        del self.exchanges[:-self.keep]
        self._refit()

    def add_arrival(self, device_us: int, t_host_s: float) -> None:
        """A live packet's newest sample (device time) arrived at t_host_s: bounds the offset from below."""
        if self._envelope is None or t_host_s - device_us * 1e-6 < self._envelope[1] - self._envelope[0] * 1e-6:
            self._envelope = (int(device_us), float(t_host_s))

    def _refit(self) -> None:
        ex = np.array(self.exchanges, dtype=np.float64)
        rtt = ex[:, 1]
        use = ex[rtt <= np.median(rtt) * 1.0 + 1e-9] if len(ex) >= 4 else ex
        d0 = int(use[-1, 2])
        x = (use[:, 2] - d0) * 1e-6
        y = use[:, 0]
        if len(use) >= 2 and np.ptp(x) >= 0.5:
            slope, offset = np.polyfit(x, y, 1)
        else:
            slope = self._fit[2] if self._fit is not None else 1.0
            offset = float(np.mean(y - slope * x))
        self._fit = (d0, float(offset), float(slope))

    @property
    def ready(self) -> bool:
        return self._fit is not None or self._envelope is not None

    @property
    def slope(self) -> float:
        return self._fit[2] if self._fit is not None else 1.0

    @property
    def drift_ppm(self) -> float | None:
        return None if self._fit is None else (self._fit[2] - 1.0) * 1e6

    @property
    def rtt_min_ms(self) -> float | None:
        return None if not self.exchanges else min(e[1] for e in self.exchanges) * 1e3

    def residuals_ms(self) -> np.ndarray:
        """Host midpoint minus the fit, per exchange, ms."""
        if not self.exchanges:
            return np.zeros(0)
        ex = np.array(self.exchanges, dtype=np.float64)
        return (ex[:, 0] - self.to_host_s(ex[:, 2].astype(np.int64))) * 1e3

    def to_host_s(self, device_us):
        device_us = np.asarray(device_us, dtype=np.int64)
        if self._fit is not None:
            d0, offset, slope = self._fit
            return offset + slope * ((device_us - d0) * 1e-6)
        if self._envelope is not None:
            d0, h0 = self._envelope
            return h0 + (device_us - d0) * 1e-6
        return np.full(device_us.shape, np.nan)

    def summary(self) -> dict:
        res = self.residuals_ms()
        return {"exchanges": len(self.exchanges), "slope": self.slope, "drift_ppm": self.drift_ppm,
                "rtt_min_ms": self.rtt_min_ms,
                "residual_rms_ms": float(np.sqrt(np.mean(res ** 2))) if len(res) else None}


@dataclass
class SessionStats:
    packets: int = 0
    data_packets: int = 0
    samples_live: int = 0
    samples_backfilled: int = 0  # backfilled samples that filled a hole
    samples_duplicate: int = 0  # samples that arrived twice (a backfill racing late live data): ignored
    samples_emitted: int = 0
    samples_lost: int = 0  # marked rows emitted
    holes: list = field(default_factory=list)  # (first_seq, n) of each hole found (live jump or tail)
    backfill_requests: int = 0
    bad_packets: int = 0
    stray_acks: int = 0
    command_timeouts: int = 0
    reconnects: int = 0
    device_alerts: int = 0


class DeviceSession:
    """One sensor behind ``link``. ``start()`` (or ``async with``) then ``blocks()``; ``close()`` at the end.

    record: a path for the crash-safe log (``hipcheck.record``), or None; header: more header fields.
    start_seq: the first sequence number the blocks should hold (e.g. 0 for a sensor that booted with the session:
    everything since boot is backfilled); None: from the first live sample seen.
    passive: send nothing (a replay). backfill: fill holes (else they are marked lost at once).
    """

    def __init__(self, link: Link, *, record=None, header: dict | None = None, start_seq: int | None = None,
                 passive: bool = False, backfill: bool = True, command_timeout_s: float = 1.0,
                 command_tries: int = 3, backfill_timeout_s: float | None = None, backfill_tries: int = 3,
                 sync_interval_s: float = 1.0, idle_probe_s: float = 0.25, watchdog_s: float = 5.0,
                 reconnect: bool | None = None, reconnect_timeout_s: float = 30.0, passive_hold_s: float = 10.0,
                 backfill_chunk: int | None = None):
        self.link = link
        self.record_path = record
        self.header = dict(header or {})
        self.passive = passive
        self.backfill = backfill and not passive
        self.command_timeout_s = command_timeout_s
        self.command_tries = command_tries
        # how long a BACKFILL answer may stall before it is asked again: 1 s, or what the link says it needs (a sim
        # board as fast as possible makes 30 s of samples in a wall second and would outrun its ring meanwhile)
        self.backfill_timeout_s = float(backfill_timeout_s or getattr(link, "backfill_timeout_s", None) or 1.0)
        self.backfill_tries = backfill_tries
        self.sync_interval_s = sync_interval_s
        self.idle_probe_s = idle_probe_s
        self.watchdog_s = watchdog_s
        self.reconnect = getattr(link, "can_reconnect", True) if reconnect is None else reconnect
        self.reconnect_timeout_s = reconnect_timeout_s
        self.passive_hold_s = passive_hold_s
        # samples asked per BACKFILL: what the link carries well (SimLink as fast as possible: 48), else all
        self.backfill_chunk = int(backfill_chunk or getattr(link, "backfill_chunk", 0xFFFF))

        self.stats = SessionStats()
        self.time_map = TimeMap()
        self.device_info: dict | None = None
        self.events: list[Event] = []  # device events, in arrival order (ALERT, BUTTON, LOW_BATTERY, BUFFER_OVERRUN)
        self.lost: list[LostRange] = []  # every range marked lost, with why
        self.log_chunks: list = []
        self.on_event = None  # callback(Event), called from the receive task
        self.writer = None

        self._next_out = start_seq  # next seq to emit
        self._live_next = None  # one past the newest live sample seen
        self._pending = np.zeros(0, protocol.SAMPLE_DTYPE)  # received, not yet emitted, sorted by seq, unique
        self._lost_ranges: list[list] = []  # [a, b) marked lost, not yet emitted
        self._last_out = None  # (seq, t_device_us) of the last emitted row
        self._period_us = None
        self._ref = (None, None)  # (seq, t_us) reference for unwrapping the next packet
        self._anchor = None  # (seq, t_us) from the last pong: compact-form time anchor
        self._period_from_data = False  # period_us read off a full DATA packet (else from two pongs)
        self._period_base = None  # (next_seq, next_t_us) of the first pong of a period measurement
        self._period_estimates = 0  # since the last rate change; compact packets are decoded from the second on
        self._early_compact: list = []  # compact packets that came before the anchor and period were known
        self._last_bad_data = None  # (host time, error) of the newest DATA packet that did not decode
        self._restart_live = False  # after START: a jump in live seq is not a hole
        self._streaming = True
        self._bf = None  # the BACKFILL answer under way: dict(start, end, deadline)
        self._bf_tries: dict = {}
        self._waiting: dict[int, tuple[int, asyncio.Future]] = {}
        self._token = 0
        self._prebuf: list = []  # records before the log's header is written
        self._blocks: asyncio.Queue = asyncio.Queue()
        self._tasks: list[asyncio.Task] = []
        self._connected = asyncio.Event()
        self._wake = asyncio.Event()
        self._finished = False
        self._error: BaseException | None = None
        self._closed = False
        now = time.monotonic()
        self._last_rx = now
        self._last_data_rx = now
        self._rx_idle_since = None
        self._next_sync = 0.0
        self._last_probe = 0.0
        self._probe_state = None  # next_seq of the previous idle pong
        self.stream_over = False  # the device stopped making samples with everything delivered (a sim at its end)

    # ------------------------------------------------------------------------------------------- lifecycle
    async def __aenter__(self) -> DeviceSession:
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def start(self) -> dict | None:
        """Open the link if needed, start receiving, ask INFO, synchronise time, START streaming if it is not;
        open the log with the device info in its header. Returns the INFO (None when passive)."""
        if not self.link.status().connected:
            await self.link.open()
        self._connected.set()
        self._tasks.append(asyncio.create_task(self._guard(self._rx_loop()), name="session-rx"))
        if not self.passive:
            self.device_info = await self.info()
            for _ in range(3):
                await self.time_sync()
            if protocol.samples_per_packet(self.link.status().mtu) == 0:
                await self._learn_period()
            self._next_sync = time.monotonic() + self.sync_interval_s
            if not self.device_info["state_flags"] & protocol.StateFlag.STREAMING:
                await self.start_streaming()
        if self.record_path is not None:
            from hipcheck.record import LogWriter

            self.writer = LogWriter(self.record_path, {"link": self.link.name, "device": self.device_info,
                                                       **self.header})
            for args in self._prebuf:
                self.writer.write(*args)
            self._prebuf = None
        self._tasks.append(asyncio.create_task(self._guard(self._housekeeping()), name="session-housekeeping"))
        return self.device_info

    async def close(self) -> None:
        """Stop the session's tasks and close the log (the link stays open: its owner closes it)."""
        if self._closed:
            return
        self._closed = True
        pending = {task for task in self._tasks if not task.done()}
        for _ in range(50):  # a task that lost one cancellation to a race gets another, never an endless wait
            if not pending:
                break
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=0.1)
        for task in self._tasks:
            if task.done() and not task.cancelled():
                task.exception()  # retrieved: the session already reported it through _fail
        for _, fut in self._waiting.values():
            if not fut.done():
                fut.cancel()
        self._note("end", **self.summary())
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        self._prebuf = None
        self._finish()

    def summary(self) -> dict:
        s = self.stats
        return {"samples_emitted": s.samples_emitted, "samples_live": s.samples_live,
                "samples_backfilled": s.samples_backfilled, "samples_lost": s.samples_lost,
                "samples_duplicate": s.samples_duplicate, "holes": len(s.holes),
                "backfill_requests": s.backfill_requests, "bad_packets": s.bad_packets,
                "command_timeouts": s.command_timeouts, "reconnects": s.reconnects,
                "device_alerts": s.device_alerts, "lost": [vars(r) for r in self.lost],
                "time_map": self.time_map.summary()}

    # -------------------------------------------------------------------------------------------- blocks
    async def blocks(self, until_device_s: float | None = None):
        """Sample blocks in sequence order, until the stream ends: the link ended, the device's clock stopped
        (no new sample between two idle probes) with everything delivered (a sim board at the end of its trace), ``until_device_s`` seconds of device
        time after the first sample, or ``close()``. Raises ``SessionError`` if the session failed."""
        t_end = None
        while True:
            block = await self._blocks.get()
            if block is None:
                self._blocks.put_nowait(None)  # later calls end at once too
                if self._error is not None:
                    raise self._error
                return
            if until_device_s is not None:
                if t_end is None:
                    t_end = int(block.t_device_us[0]) + int(until_device_s * 1e6)
                keep = block.t_device_us < t_end
                if not keep.all():
                    if keep.any():
                        yield SampleBlock(block.samples[keep], block.period_us)
                    return
            yield block

    # ---------------------------------------------------------------------------------------------- commands
    def _new_token(self) -> int:
        for _ in range(256):
            self._token = self._token % 255 + 1
            if self._token not in self._waiting:
                return self._token
        raise SessionError("255 commands wait for their ACK: the sensor does not answer")

    async def _command_timed(self, opcode: Opcode, fields: dict, timeout_s: float | None, tries: int | None):
        if self.passive:
            raise SessionError(f"a passive session (replay) sends no commands ({Opcode(opcode).name})")
        timeout_s = self.command_timeout_s if timeout_s is None else timeout_s
        tries = self.command_tries if tries is None else tries
        why = "no answer"
        loop = asyncio.get_running_loop()
        for _ in range(tries):
            if not self._connected.is_set():
                try:
                    await within(self._connected.wait(), timeout_s)
                except asyncio.TimeoutError:
                    why = "the link is down"
                    continue
            token = self._new_token()
            packet = protocol.encode_command(opcode, token, **fields)
            fut = loop.create_future()
            self._waiting[token] = (int(opcode), fut)
            try:
                t_send = time.monotonic()
                await self.link.send(packet)
                self._record_command(packet, t_send)
                ack, t_recv = await within(fut, timeout_s)
                return ack, t_send, t_recv
            except LinkError as error:
                why = f"the link refused it ({error})"
                await asyncio.sleep(min(0.1, timeout_s))
            except asyncio.TimeoutError:
                why = f"no ACK within {timeout_s:g} s"
                self.stats.command_timeouts += 1
            finally:
                self._waiting.pop(token, None)
        raise CommandError(f"{Opcode(opcode).name}: {why} ({tries} tries); is the sensor on and in range?")

    async def command(self, opcode: Opcode, *, timeout_s: float | None = None, tries: int | None = None,
                      **fields) -> Ack:
        """Send a COMMAND and wait for its ACK (any status); ``CommandError`` when none comes after ``tries``
        sends of ``timeout_s`` each. Fields as ``hipcheck.protocol.encode_command``."""
        return (await self._command_timed(opcode, fields, timeout_s, tries))[0]

    async def _ok(self, opcode: Opcode, **fields) -> Ack:
        ack = await self.command(opcode, **fields)
        if ack.status != Status.OK:
            raise CommandError(f"{Opcode(opcode).name} refused by the sensor: {Status(ack.status).name}",
                               Status(ack.status))
        return ack

    async def vibrate(self, pattern="drop_right") -> Ack:
        """Play a pattern on the sensor's motor: a name of ``PATTERNS`` or (intensity_pct, repeat, steps) with
        steps ((on_10ms, off_10ms), ...)."""
        intensity, repeat, steps = PATTERNS[pattern] if isinstance(pattern, str) else pattern
        return await self._ok(Opcode.VIBRATE, intensity_pct=intensity, repeat=repeat, steps=steps)

    async def set_thresholds(self, *, drop_deg: float = 6.0, sway_mm: int = 60, tilt_deg: float = 8.0,
                             hysteresis_pct: int = 25, refractory_ms: int = 1000,
                             enable=("drop", "sway")) -> Ack:
        """The on-device alert detector's thresholds; ``enable=()`` turns it off (the host alerts instead)."""
        mask = 0
        for name in enable:
            mask |= protocol.ThresholdMask[name.upper()]
        return await self._ok(Opcode.SET_THRESHOLDS, enable_mask=mask, drop_cdeg=round(drop_deg * 100),
                              sway_mm=int(sway_mm), tilt_cdeg=round(tilt_deg * 100),
                              hysteresis_pct=int(hysteresis_pct), refractory_ms=int(refractory_ms))

    async def set_rate(self, rate_hz: int) -> Ack:
        """SET_RATE; in the compact form (MTU 23) the period and time anchor are then learnt anew from pongs (the
        few old-rate samples still in flight get the new timing: at most one sampling step's worth)."""
        ack = await self._ok(Opcode.SET_RATE, rate_hz=rate_hz)
        if not self._period_from_data:
            self._forget_period()
            await self._learn_period()
        return ack

    async def _learn_period(self) -> None:
        """The compact form has no period on the wire: two pongs PERIOD_BASELINE samples apart give the true one
        (compact packets meanwhile wait, and are decoded once it is known)."""
        for _ in range(100):
            if self._period_estimates >= 2:
                return
            await asyncio.sleep(0.05)
            await self.time_sync()
        raise SessionError("the sensor's sample period could not be learnt from its pongs (is it sampling?)")

    async def start_streaming(self) -> Ack:
        self._restart_live = True
        ack = await self._ok(Opcode.START)
        self._streaming = True
        return ack

    async def stop_streaming(self) -> Ack:
        ack = await self._ok(Opcode.STOP)
        self._streaming = False
        return ack

    async def info(self) -> dict:
        """INFO, with names: firmware, board, imu, rate_hz, battery_mv, battery_pct, state_flags, streaming."""
        f = dict((await self._ok(Opcode.INFO)).fields)
        f["firmware"] = f"{f['fw_major']}.{f['fw_minor']}.{f['fw_patch']}"
        f["board"] = protocol.BOARD_NAMES.get(f["board_id"], f"board {f['board_id']}")
        f["imu"] = protocol.IMU_NAMES.get(f["imu_id"], f"imu {f['imu_id']}")
        f["streaming"] = bool(f["state_flags"] & protocol.StateFlag.STREAMING)
        self.device_info = f
        return f

    async def time_sync(self) -> dict:
        """One ping/pong: adds an exchange to ``time_map``; returns the pong's fields (unwrapped) and the round
        trip."""
        token32 = int(time.monotonic() * 1e6) % U32
        ack, t_send, t_recv = await self._command_timed(Opcode.TIME_SYNC, {"host_token": token32}, None, None)
        if ack.status != Status.OK:
            raise CommandError(f"TIME_SYNC refused: {Status(ack.status).name}", Status(ack.status))
        f = ack.fields
        device_us = self._unwrap_time(f["device_t_us"], f["next_seq"])
        next_seq = self._unwrap_seq(f["next_seq"])
        next_t = self._unwrap_time(f["next_t_us"], f["next_seq"])
        self.time_map.add_exchange(t_send, t_recv, device_us)
        self._take_pong(next_seq, next_t)
        return {"device_t_us": device_us, "next_seq": next_seq, "next_t_us": next_t, "rtt_s": t_recv - t_send}

    def _take_pong(self, next_seq: int, next_t: int) -> None:
        """A pong's (next_seq, next_t_us), unwrapped: the compact form's time anchor and period (ours, or a
        recorded one in a replay)."""
        if not self._period_from_data:
            # the period is the slope of next_t_us over next_seq between pongs. The first estimate (PERIOD_BASELINE
            # samples) may span the device's settling after boot or a rate change, so the baseline then restarts
            # and every later pong refines the period over a longer and longer stretch
            base = self._period_base
            if base is None:
                self._period_base = (next_seq, next_t)
            elif next_seq - base[0] >= PERIOD_BASELINE:
                self._period_us = round((next_t - base[1]) / (next_seq - base[0]))
                self._period_estimates += 1
                if self._period_estimates == 1:
                    self._period_base = (next_seq, next_t)
        self._anchor = (next_seq, next_t)
        if self._early_compact and self._period_estimates >= 2:
            early, self._early_compact = self._early_compact, []
            for packet, t in early:
                self._on_data(packet, t)

    def _forget_period(self) -> None:
        """After SET_RATE the compact form's period is measured anew (full packets carry theirs)."""
        if not self._period_from_data:
            self._period_us, self._period_base, self._period_estimates = None, None, 0

    def _unwrap_seq(self, wire: int) -> int:
        ref = self._ref[0] if self._ref[0] is not None else (self._live_next or 0)
        return ref + ((wire - ref + (1 << 31)) % U32 - (1 << 31))

    def _unwrap_time(self, wire: int, seq_wire: int) -> int:
        ref_seq, ref_t = self._ref
        if ref_seq is None:
            return int(wire)
        predicted = ref_t + (self._unwrap_seq(seq_wire) - ref_seq) * (self._period_us or 0)
        return predicted + ((wire - predicted + (1 << 31)) % U32 - (1 << 31))

    # ---------------------------------------------------------------------------------------------- receive
    async def _guard(self, coro) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception as error:  # a failure ends the stream with the error, never a silent hang
            self._fail(error if isinstance(error, SessionError) else
                       SessionError(f"the session stopped: {type(error).__name__}: {error}"))

    def _fail(self, error: BaseException) -> None:
        if self._error is None:
            self._error = error
            self._note("error", message=str(error))
        self._finish()

    def _finish(self) -> None:
        if not self._finished:
            self._finished = True
            self._blocks.put_nowait(None)

    async def _rx_loop(self) -> None:
        link = self.link
        while not self._finished:
            item = await link.receive(timeout_s=0.05)
            if item is None:
                if self._rx_idle_since is None:
                    self._rx_idle_since = time.monotonic()
                if not link.status().connected:
                    if not await self._reconnect():
                        return
                continue
            if item.channel == DATA:
                self._rx_idle_since = None  # (idle: nothing left to read since the last DATA packet)
            self._last_rx = item.host_time_s
            self.stats.packets += 1
            self._record(item.channel, item.packet, item.host_time_s)
            if item.channel == DATA:
                self._on_data(item.packet, item.host_time_s)
            elif item.channel == LOG:
                self._on_other(item.packet, item.host_time_s)
            else:
                self._on_other(item.packet, item.host_time_s)

    def _on_other(self, packet: bytes, t: float) -> None:
        try:
            msg = protocol.decode_packet(packet)
        except protocol.UnknownVersionError as error:
            self._fail(SessionError(str(error)))
            return
        except protocol.ProtocolError as error:
            self.stats.bad_packets += 1
            self._note("bad_packet", error=str(error), packet=packet.hex())
            return
        if isinstance(msg, Ack):
            waiting = self._waiting.get(msg.token)
            if waiting is not None and waiting[0] == int(msg.opcode) and not waiting[1].done():
                waiting[1].set_result((msg, t))
            elif self.passive and msg.status == Status.OK:  # a replay: the recorded session's answers
                if msg.opcode == Opcode.TIME_SYNC:
                    self._take_pong(self._unwrap_seq(msg.fields["next_seq"]),
                                    self._unwrap_time(msg.fields["next_t_us"], msg.fields["next_seq"]))
                elif msg.opcode == Opcode.SET_RATE:
                    self._forget_period()
            else:
                self.stats.stray_acks += 1  # the late answer to a command already retried
        elif isinstance(msg, Event):
            self.events.append(msg)
            if msg.code == EventCode.ALERT:
                self.stats.device_alerts += 1
            elif msg.code == EventCode.BUFFER_OVERRUN:
                first = self._unwrap_seq(msg.fields["first_lost_seq"])
                try:
                    source = protocol.OverrunSource(msg.fields["source"]).name
                except ValueError:
                    source = f"source {msg.fields['source']}"
                self._declare_lost(first, first + msg.fields["n_lost"], f"device buffer overrun ({source})")
                self._emit()
            if self.on_event is not None:
                self.on_event(msg)
        elif isinstance(msg, protocol.LogChunk):
            self.log_chunks.append(msg)
        else:
            self.stats.bad_packets += 1

    def _on_data(self, packet: bytes, t: float) -> None:
        ref_seq, ref_t = self._ref
        try:
            if len(packet) == protocol.COMPACT_PACKET_LEN:  # a full DATA packet is never 20 bytes (docs/protocol.md)
                if self._period_estimates < 2:  # decoded once the pongs tell the time (and the anchor)
                    if len(self._early_compact) < 4096:
                        self._early_compact.append((packet, t))
                    else:
                        self.stats.bad_packets += 1
                    return
                samples, rep = protocol.decode_compact_packets(
                    [packet], seq_reference=ref_seq if ref_seq is not None else self._anchor[0],
                    t_anchor_us=self._anchor[1], seq_anchor=self._anchor[0], period_us=self._period_us)
                if self._live_next is not None:  # no flag byte: a sample behind the live edge is a BACKFILL answer
                    samples["flags"][samples["seq"] < self._live_next] |= np.uint8(SampleFlag.BACKFILLED)
            else:
                samples, rep = protocol.decode_data_packets([packet], seq_reference=ref_seq,
                                                            t_reference_us=ref_t)
                self._period_us = int.from_bytes(packet[10:12], "little")
                self._period_from_data = True
        except protocol.UnknownVersionError as error:
            self._fail(SessionError(str(error)))
            return
        except protocol.ProtocolError as error:
            self.stats.bad_packets += 1
            self._last_bad_data = (t, str(error))
            self._note("bad_packet", error=str(error), packet=packet.hex())
            return
        self.stats.data_packets += 1
        self._ref = (rep.last_seq, rep.last_t_us)
        seq = samples["seq"]
        backfilled = bool(samples["flags"][0] & SampleFlag.BACKFILLED)
        if backfilled:
            if self._bf is not None:
                self._bf["deadline"] = time.monotonic() + self.backfill_timeout_s
                if int(seq[-1]) + 1 >= self._bf["end"]:
                    self._wake.set()
        else:
            self._last_data_rx = t
            self.stats.samples_live += len(samples)
            self.time_map.add_arrival(int(samples["t_us"][-1]), t)
            first, end = int(seq[0]), int(seq[-1]) + 1
            if self._next_out is None:
                self._next_out = first
            if self._live_next is None:
                self._live_next = max(first, self._next_out)
            if first > self._live_next:
                if self._restart_live:
                    self._declare_lost(self._live_next, first, "not streamed (the sensor was stopped)")
                else:
                    self.stats.holes.append((self._live_next, first - self._live_next))
                    if not self.backfill and not self.passive:
                        self._declare_lost(self._live_next, first, "backfill is off")
            self._restart_live = False
            self._live_next = max(self._live_next, end)
        self._insert(samples, backfilled)
        self._emit()

    def _insert(self, samples: np.ndarray, backfilled: bool) -> None:
        if self._next_out is None:
            return  # backfilled data before any live packet: nothing to place it against
        samples = samples[samples["seq"] >= self._next_out]
        if not len(samples):
            return
        if len(self._pending):
            known = np.isin(samples["seq"], self._pending["seq"])
            self.stats.samples_duplicate += int(np.count_nonzero(known))
            samples = samples[~known]
            merged = np.concatenate([self._pending, samples])
            self._pending = merged[np.argsort(merged["seq"], kind="stable")]
        else:
            self._pending = samples
        if backfilled:
            self.stats.samples_backfilled += len(samples)

    def _declare_lost(self, a: int, b: int, reason: str) -> None:
        if self._next_out is not None:
            a = max(a, self._next_out)
        if b <= a:
            return
        self._lost_ranges.append([a, b])
        self._lost_ranges.sort()
        last = self.lost[-1] if self.lost else None
        if last is not None and last.reason == reason and last.first_seq + last.n == a:
            last.n += b - a
        else:
            self.lost.append(LostRange(a, b - a, reason))
        self._note("gap_lost", first_seq=a, n=b - a, reason=reason)

    def _emit(self) -> None:
        if self._next_out is None:
            return
        parts = []
        while True:
            p = self._pending
            nxt = self._next_out
            if len(p) and p["seq"][0] == nxt:
                breaks = np.flatnonzero(np.diff(p["seq"]) != 1)
                k = int(breaks[0]) + 1 if len(breaks) else len(p)
                parts.append(self._rows(p[:k]))
                self._pending = p[k:]
                self._next_out = nxt + k
                continue
            while self._lost_ranges and self._lost_ranges[0][1] <= nxt:
                self._lost_ranges.pop(0)
            if self._lost_ranges and self._lost_ranges[0][0] <= nxt:
                end = self._lost_ranges[0][1]
                if len(p):
                    end = min(end, int(p["seq"][0]))
                parts.append(self._gap_rows(nxt, end))
                self._next_out = end
                continue
            break
        if parts:
            out = np.concatenate(parts)
            out["t_host_s"] = self.time_map.to_host_s(out["t_device_us"])
            self._last_out = (int(out["seq"][-1]), int(out["t_device_us"][-1]))
            self.stats.samples_emitted += len(out)
            self.stats.samples_lost += int(np.count_nonzero(out["gap"]))
            self._blocks.put_nowait(SampleBlock(out, self._period_us or 0))

    def _rows(self, samples: np.ndarray) -> np.ndarray:
        out = np.zeros(len(samples), BLOCK_DTYPE)
        out["seq"] = samples["seq"]
        out["t_device_us"] = samples["t_us"]
        for name in ("quat", "acc_m_s2", "gyr_rad_s", "flags"):
            out[name] = samples[name]
        return out

    def _gap_rows(self, a: int, b: int) -> np.ndarray:
        out = np.zeros(b - a, BLOCK_DTYPE)
        out["seq"] = np.arange(a, b)
        period = self._period_us or 0
        if self._last_out is not None:
            s0, t0 = self._last_out
        elif len(self._pending):
            s0, t0 = int(self._pending["seq"][0]), int(self._pending["t_us"][0])
        else:
            s0, t0 = a, 0
        out["t_device_us"] = t0 + (out["seq"] - s0) * period
        for name in ("quat", "acc_m_s2", "gyr_rad_s"):
            out[name] = np.nan
        out["gap"] = True
        return out

    def _missing(self) -> list[tuple[int, int]]:
        """Holes [a, b) between the next sample to emit and the newest live one, not received, not marked."""
        if self._next_out is None or self._live_next is None or self._live_next <= self._next_out:
            return []
        seqs = self._pending["seq"]
        seqs = seqs[seqs < self._live_next]
        starts = np.concatenate(([self._next_out], seqs + 1))
        ends = np.concatenate((seqs, [self._live_next]))
        holes = [(int(a), int(b)) for a, b in zip(starts, ends) if b > a]
        out = []
        for a, b in holes:
            for la, lb in self._lost_ranges:
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

    # ------------------------------------------------------------------------------------------- upkeep
    async def _reconnect(self) -> bool:
        """The link went down: reopen it with back-off. False when the stream is over (cannot reconnect)."""
        self._connected.clear()
        link = self.link
        if getattr(link, "ended", False) or not self.reconnect:
            self._end_of_link("the link ended")
            return False
        self._note("link_down")
        deadline = time.monotonic() + self.reconnect_timeout_s
        delay = 0.05
        last = None
        while time.monotonic() < deadline:
            try:
                await within(link.open(), max(0.05, deadline - time.monotonic()))
            except (LinkError, asyncio.TimeoutError) as error:
                last = error
                if getattr(link, "ended", False):
                    break
            if link.status().connected:
                self.stats.reconnects += 1
                self._note("reconnected")
                self._connected.set()
                self._next_sync = 0.0  # a fresh time exchange at once
                self._last_rx = time.monotonic()
                return True
            await asyncio.sleep(delay)
            delay = min(2 * delay, 2.0)
        if getattr(link, "ended", False):
            self._end_of_link("the link ended while reconnecting")
            return False
        self._fail(SessionError(f"the sensor did not come back within {self.reconnect_timeout_s:g} s"
                                + (f" ({last})" if last else "") + ": is it on and in range?"))
        return False

    def _end_of_link(self, why: str) -> None:
        for a, b in self._missing():
            self._declare_lost(a, b, why)
        self._emit()
        self._finish()

    async def _housekeeping(self) -> None:
        while not self._finished:
            try:  # a finished BACKFILL answer wakes this at once: the next hole is asked for without a pause
                await within(self._wake.wait(), 0.02)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            now = time.monotonic()
            if self._connected.is_set() and now - self._last_rx > self.watchdog_s:
                raise SessionError(f"no packet from the sensor for {self.watchdog_s:g} s while the link says it "
                                   "is connected: is the sensor on? (its battery, its power switch)")
            bad = self._last_bad_data
            if bad is not None and bad[0] > self._last_data_rx and now - self._last_data_rx > self.watchdog_s:
                raise SessionError(f"DATA packets arrive but none has decoded for {self.watchdog_s:g} s "
                                   f"(the last: {bad[1]}): is the firmware's protocol version the host's?")
            if self.passive:
                self._passive_upkeep()
                continue
            if not self._connected.is_set():
                continue
            try:
                if now >= self._next_sync:
                    self._next_sync = now + self.sync_interval_s
                    await self.time_sync()
                await self._probe_if_idle()
                if self.backfill:
                    await self._backfill_step()
            except CommandError:
                continue  # the link dropped or the sensor is busy: the next round retries

    async def _probe_if_idle(self) -> None:
        """Quiet data: a pong tells how far the device has got (a lost last packet, or the end of a sim)."""
        now = time.monotonic()
        if self._rx_idle_since is None or now - self._rx_idle_since < self.idle_probe_s \
                or now - self._last_data_rx < self.idle_probe_s or now - self._last_probe < self.idle_probe_s:
            return
        self._last_probe = now
        pong = await self.time_sync()
        next_seq = pong["next_seq"]
        if not self._streaming or self._live_next is None:
            return
        quiet = time.monotonic() - self._last_data_rx >= self.idle_probe_s
        if quiet and next_seq > self._live_next:
            self.stats.holes.append((self._live_next, next_seq - self._live_next))
            self._live_next = next_seq
        state = next_seq  # the device made no new sample since the last probe: its sampling stopped
        if state == self._probe_state and self._next_out is not None and self._next_out >= next_seq \
                and self._bf is None:
            self.stream_over = True
            self._note("stream_over", device_t_us=pong["device_t_us"], next_seq=next_seq)
            self._finish()
        self._probe_state = state

    async def _backfill_step(self) -> None:
        now = time.monotonic()
        bf = self._bf
        if bf is not None:
            outstanding = [h for h in self._missing() if h[0] < bf["end"] and h[1] > bf["start"]]
            if outstanding and now < bf["deadline"]:
                return
            self._bf = None
        missing = self._missing()
        if not missing:
            return
        a, b = missing[0]
        key = (a, b)
        tries = self._bf_tries.get(key, 0)
        if tries >= self.backfill_tries:
            self._declare_lost(a, b, f"no backfill after {tries} requests")
            self._emit()
            return
        self._bf_tries[key] = tries + 1
        n = min(b - a, self.backfill_chunk, 0xFFFF)
        ack = await self._backfill_request(a, n)
        if ack.status == Status.UNAVAILABLE and b - a > n:
            # the chunk is older than the ring: one request over the whole hole says where the ring begins
            ack = await self._backfill_request(a, min(b - a, 0xFFFF))
            if ack.status == Status.OK:
                first = a + (ack.fields["first_seq"] - a) % U32
                self._declare_lost(a, first, "older than the device's ring buffer")
                self._emit()
                a, n = first, min(b - first, self.backfill_chunk, 0xFFFF)
                ack = await self._backfill_request(a, n)  # replaces the long answer with a chunk
        if ack.status == Status.UNAVAILABLE:
            self._declare_lost(a, a + n, "the device no longer holds these samples (ACK UNAVAILABLE)")
            self._emit()
        elif ack.status != Status.OK:
            self._declare_lost(a, a + n, f"BACKFILL refused: {Status(ack.status).name}")
            self._emit()
        else:
            first = a + (ack.fields["first_seq"] - a) % U32
            if first > a:
                self._declare_lost(a, min(first, a + n), "older than the device's ring buffer")
                self._emit()
            if ack.fields["count"]:
                self._bf = {"start": first, "end": first + ack.fields["count"],
                            "deadline": time.monotonic() + self.backfill_timeout_s}

    async def _backfill_request(self, from_seq: int, n: int) -> Ack:
        self.stats.backfill_requests += 1
        return await self.command(Opcode.BACKFILL, from_seq=from_seq % U32, max_samples=n, tries=1)

    def _passive_upkeep(self) -> None:
        if self._period_us and self._live_next is not None:
            hold = int(self.passive_hold_s * 1e6 / self._period_us)
            for a, b in self._missing():
                if self._live_next - b >= hold:
                    self._declare_lost(a, b, "not in the recording")
            self._emit()

    # ------------------------------------------------------------------------------------------- record
    def _record(self, channel: str, packet: bytes, t: float) -> None:
        from hipcheck.record import CHANNEL_TYPES

        self._write(CHANNEL_TYPES[channel], packet, t)

    def _record_command(self, packet: bytes, t: float) -> None:
        from hipcheck.record import RecordType

        self._write(RecordType.COMMAND, packet, t)

    def _note(self, note: str, **fields) -> None:
        import json

        from hipcheck.record import RecordType, _json_default

        self._write(RecordType.NOTE, json.dumps({"note": note, **fields}, default=_json_default).encode(),
                    time.monotonic())

    def _write(self, rtype, payload: bytes, t: float) -> None:
        if self.writer is not None:
            self.writer.write(rtype, payload, t)
        elif self._prebuf is not None and self.record_path is not None:
            self._prebuf.append((rtype, payload, t))
