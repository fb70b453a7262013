"""``DeviceSession``: one sensor behind a link, turned into blocks of samples in sequence order.

The session runs two tasks — one receives, one keeps house (time sync, idle probes, backfill, watchdog, reconnect)
— around parts that hold the logic: ``SampleStream`` (DATA packets to blocks, through ``WireDecoder``,
``PeriodLearner``, ``Reassembly`` and ``TimeMap``), ``BackfillPlan`` (which hole to ask for, what the answer means),
``Liveness`` (watchdog, idle probes), ``CommandChannel`` (tokens, ACKs, retries) and ``SessionRecording`` (the log).
All but the command channel are synchronous. The package docstring (``hipcheck.device``) says what the session
guarantees.
"""

from __future__ import annotations

import asyncio
import time

from hipcheck import protocol
from hipcheck.device.backfill import BackfillPlan
from hipcheck.device.commands import CommandChannel, named_info, threshold_fields, vibrate_fields
from hipcheck.device.errors import CommandError, SessionError
from hipcheck.device.liveness import Liveness
from hipcheck.device.reassembly import BLOCK_DTYPE, SampleBlock
from hipcheck.device.recording import SessionRecording
from hipcheck.device.settings import SessionSettings
from hipcheck.device.stats import SessionStats
from hipcheck.device.stream import SampleStream
from hipcheck.links import DATA, Link, LinkError, within
from hipcheck.protocol import Ack, Event, EventCode, Opcode, SampleFlag, Status


# Samples waiting for blocks() hold at most this much memory: a consumer that falls this far behind (or none at all,
# as in ``hipcheck connect``) loses the newest blocks, counted in ``stats.samples_unread_dropped``, instead of the
# host growing without limit. 8 MiB of BLOCK_DTYPE rows is over 20 minutes at 100 Hz.
BLOCK_QUEUE_BYTES = 8 << 20
BLOCK_QUEUE_SAMPLES = BLOCK_QUEUE_BYTES // BLOCK_DTYPE.itemsize


class BlockQueue:
    """Blocks waiting for ``DeviceSession.blocks()`` (None: the end), at most BLOCK_QUEUE_SAMPLES rows of them."""

    def __init__(self, stats: SessionStats):
        self.stats = stats
        self.samples = 0  # rows waiting
        self._queue: asyncio.Queue = asyncio.Queue()

    def put(self, block: SampleBlock | None) -> None:
        """Queue a block, or drop it (counted in ``stats.samples_unread_dropped``) if it would pass the bound."""
        if block is not None:
            if self.samples + len(block) > BLOCK_QUEUE_SAMPLES:
                self.stats.samples_unread_dropped += len(block)
                return
            self.samples += len(block)
        self._queue.put_nowait(block)

    async def get(self) -> SampleBlock | None:
        block = await self._queue.get()
        if block is not None:
            self.samples -= len(block)
        return block


class DeviceSession:
    """One sensor behind ``link``. ``start()`` (or ``async with``) then ``blocks()``; ``close()`` at the end.

    settings: ``SessionSettings`` (start_seq, passive, timeouts...); record: a path for the crash-safe log
    (``hipcheck.record``), or None; header: more header fields for it.
    """

    def __init__(self, link: Link, settings: SessionSettings | None = None, *, record=None,
                 header: dict | None = None):
        self.link = link
        self.settings = s = settings if settings is not None else SessionSettings()
        self.header = dict(header or {})
        self.passive = s.passive
        self.backfill = s.backfill and not s.passive
        self.reconnect = link.can_reconnect if s.reconnect is None else s.reconnect
        self.recording = SessionRecording(record)
        self.stats = SessionStats()
        self._blocks = BlockQueue(self.stats)
        self.stream = SampleStream(s.start_seq, self.stats, self.recording, self._blocks.put,
                                   mark_holes=not self.backfill and not self.passive)
        self.time_map = self.stream.time_map
        self.period = self.stream.period
        self.wire = self.stream.wire
        self.backfill_plan = BackfillPlan(int(s.backfill_chunk or link.backfill_chunk), s.backfill_tries,
                                          float(s.backfill_timeout_s or link.backfill_timeout_s), self.stream.lose,
                                          link.backfill_stall_samples)
        self.liveness = Liveness(s.watchdog_s, s.idle_probe_s, time.monotonic())
        self._connected = asyncio.Event()
        self.commands = CommandChannel(link, self.recording, self.stats, self._connected,
                                       timeout_s=s.command_timeout_s, tries=s.command_tries, passive=s.passive)
        self.device_info: dict | None = None
        self.events: list[Event] = []  # device events, in arrival order (ALERT, BUTTON, LOW_BATTERY, BUFFER_OVERRUN)
        self.log_chunks: list = []
        self.on_event = None  # callback(Event), called from the receive task
        self.stream_over = False  # the device stopped making samples with everything delivered (a sim at its end)
        self._tasks: list[asyncio.Task] = []
        self._wake = asyncio.Event()
        self._finished = False
        self._error: BaseException | None = None
        self._closed = False
        self._next_sync = 0.0

    @property
    def lost(self) -> list:
        """Every range marked lost (``LostRange``: first_seq, n, reason)."""
        return self.stream.reassembly.lost

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
        self._tasks.append(asyncio.create_task(self._guard(self._rx_loop), name="session-rx"))
        if not self.passive:
            self.device_info = await self.info()
            for _ in range(3):
                await self.time_sync()
            if protocol.samples_per_packet(self.link.status().mtu) == 0:
                await self._learn_period()
            self._next_sync = time.monotonic() + self.settings.sync_interval_s
            if not self.device_info["state_flags"] & protocol.StateFlag.STREAMING:
                await self.start_streaming()
        head = {"link": self.link.name, "device": self.device_info, "device_id": self.link.device_id}
        replayed = getattr(self.link, "replayed_file", None)  # the samples replay a file (SimLink): no device profile
        if replayed is not None:
            head["replayed_file"] = replayed
        self.recording.open({**head, **self.header})
        self._tasks.append(asyncio.create_task(self._guard(self._housekeeping), name="session-housekeeping"))
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
        self.commands.cancel_all()
        self.recording.note("end", **self.summary())
        self.recording.close()
        self._finish()

    def summary(self) -> dict:
        """The counts, every range lost, the packets the link dropped for a full receive queue (their gaps are holes
        like a radio's) and the time map's figures (the log's closing NOTE)."""
        return self.stats.summary() | {"lost": [vars(r) for r in self.lost], "time_map": self.time_map.summary(),
                                       "link_packets_dropped": self.link.status().packets_dropped}

    async def blocks(self, until_device_s: float | None = None):
        """Sample blocks in sequence order, until the stream ends: the link ended, the device's clock stopped
        (no new sample between two idle probes) with everything delivered (a sim board at the end of its trace),
        ``until_device_s`` seconds of device time after the first sample, or ``close()``. Raises
        ``SessionError`` if the session failed."""
        t_end = None
        while True:
            block = await self._blocks.get()
            if block is None:
                self._blocks.put(None)  # later calls end at once too
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
    async def command(self, opcode: Opcode, *, timeout_s: float | None = None, tries: int | None = None,
                      **fields) -> Ack:
        """Send a COMMAND and wait for its ACK (any status); ``CommandError`` when none comes after ``tries``
        sends of ``timeout_s`` each. Fields as ``hipcheck.protocol.encode_command``."""
        return (await self.commands.send(opcode, fields, timeout_s, tries))[0]

    async def _ok(self, opcode: Opcode, **fields) -> Ack:
        ack = await self.command(opcode, **fields)
        if ack.status != Status.OK:
            raise CommandError(f"{Opcode(opcode).name} refused by the sensor: {Status(ack.status).name}",
                               Status(ack.status))
        return ack

    async def vibrate(self, pattern="drop_right") -> Ack:
        """Play a pattern on the sensor's motor: a name of ``PATTERNS`` or (intensity_pct, repeat, steps) with
        steps ((on_10ms, off_10ms), ...)."""
        return await self._ok(Opcode.VIBRATE, **vibrate_fields(pattern))

    async def set_thresholds(self, *, drop_deg: float = 6.0, sway_mm: int = 60, tilt_deg: float = 8.0,
                             hysteresis_pct: int = 25, refractory_ms: int = 1000,
                             enable=("drop", "sway")) -> Ack:
        """The on-device alert detector's thresholds; ``enable=()`` turns it off (the host alerts instead)."""
        return await self._ok(Opcode.SET_THRESHOLDS, **threshold_fields(
            drop_deg=drop_deg, sway_mm=sway_mm, tilt_deg=tilt_deg, hysteresis_pct=hysteresis_pct,
            refractory_ms=refractory_ms, enable=enable))

    async def set_rate(self, rate_hz: int) -> Ack:
        """SET_RATE; in the compact form (MTU 23) the period and time anchor are then learnt anew from pongs (the
        few old-rate samples still in flight get the new timing: at most one sampling step's worth)."""
        ack = await self._ok(Opcode.SET_RATE, rate_hz=rate_hz)
        if not self.period.from_data:
            self.period.forget()
            await self._learn_period()
        return ack

    async def _learn_period(self) -> None:
        """Pongs until the compact form's period is known (``PeriodLearner``); compact packets wait meanwhile."""
        for _ in range(100):
            if self.period.ready:
                return
            await asyncio.sleep(0.05)
            await self.time_sync()
        raise SessionError("the sensor's sample period could not be learnt from its pongs (is it sampling?)")

    async def start_streaming(self) -> Ack:
        self.stream.restarted = True
        return await self._ok(Opcode.START)

    async def info(self) -> dict:
        """INFO, with names: firmware, board, imu, rate_hz, battery_mv, battery_pct, state_flags, streaming."""
        self.device_info = named_info((await self._ok(Opcode.INFO)).fields)
        return self.device_info

    async def time_sync(self) -> dict:
        """One ping/pong: adds an exchange to ``time_map``; returns the pong's fields (unwrapped) and the round
        trip."""
        token32 = int(time.monotonic() * 1e6) % protocol.U32_MODULUS
        ack, t_send, t_recv = await self.commands.send(Opcode.TIME_SYNC, {"host_token": token32})
        if ack.status != Status.OK:
            raise CommandError(f"TIME_SYNC refused: {Status(ack.status).name}", Status(ack.status))
        pong = self.wire.pong(ack.fields)
        self.time_map.add_exchange(t_send, t_recv, pong["device_t_us"])
        self._take_pong(pong)
        return pong | {"rtt_s": t_recv - t_send}

    def _take_pong(self, pong: dict) -> None:
        """A pong (ours, or a recorded one in a replay); compact packets held for the period it gave go on."""
        for packet, t in self.stream.take_pong(pong["next_seq"], pong["next_t_us"]):
            self._on_data(packet, t)

    # ---------------------------------------------------------------------------------------------- receive
    async def _guard(self, job) -> None:
        # job called here: a task cancelled before its first run leaves no coroutine that was never awaited
        try:
            await job()
        except asyncio.CancelledError:
            raise
        except Exception as error:  # a failure ends the stream with the error, never a silent hang
            self._fail(error if isinstance(error, SessionError) else
                       SessionError(f"the session stopped: {type(error).__name__}: {error}"))

    def _fail(self, error: BaseException) -> None:
        if self._error is None:
            self._error = error
            self.recording.note("error", message=str(error))
        self._finish()

    def _finish(self) -> None:
        if not self._finished:
            self._finished = True
            self._blocks.put(None)

    async def _rx_loop(self) -> None:
        link = self.link
        while not self._finished:
            item = await link.receive(timeout_s=0.05)
            if item is None:
                self.liveness.nothing(time.monotonic())
                if not link.status().connected:
                    if not await self._reconnect():
                        return
                continue
            self.liveness.received(item.host_time_s, item.channel == DATA)
            self.stats.packets += 1
            self.recording.packet(item.channel, item.packet, item.host_time_s)
            if item.channel == DATA:
                self._on_data(item.packet, item.host_time_s)
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
            self.recording.note("bad_packet", error=str(error), packet=packet.hex())
            return
        if isinstance(msg, Ack):
            self._on_ack(msg, t)
        elif isinstance(msg, Event):
            self._on_event(msg)
        elif isinstance(msg, protocol.LogChunk):
            self.log_chunks.append(msg)
        else:
            self.stats.bad_packets += 1

    def _on_ack(self, ack: Ack, t: float) -> None:
        if self.commands.answer(ack, t):
            return
        if self.passive and ack.status == Status.OK:  # a replay: the recorded session's answers
            if ack.opcode == Opcode.TIME_SYNC:
                self._take_pong(self.wire.pong(ack.fields))
            elif ack.opcode == Opcode.SET_RATE:
                self.period.forget()
        else:
            self.stats.stray_acks += 1  # the late answer to a command already retried

    def _on_event(self, event: Event) -> None:
        self.events.append(event)
        if event.code == EventCode.ALERT:
            self.stats.device_alerts += 1
        elif event.code == EventCode.BUFFER_OVERRUN:
            self.stream.overrun(event.fields)
        if self.on_event is not None:
            self.on_event(event)

    def _on_data(self, packet: bytes, t: float) -> None:
        try:
            samples = self.stream.data(packet, t)
        except protocol.UnknownVersionError as error:
            self._fail(SessionError(str(error)))
            return
        except protocol.ProtocolError as error:
            self.stats.bad_packets += 1
            self.liveness.bad_data(t, str(error))
            self.recording.note("bad_packet", error=str(error), packet=packet.hex())
            return
        if samples is None:
            return  # held until pongs have told the compact form's period
        if not samples["flags"][0] & SampleFlag.BACKFILLED:
            self.liveness.live_data(t)
        elif self.backfill_plan.received(int(samples["seq"][-1]) + 1, time.monotonic(),
                                         self.stream.reassembly.live_next):
            self._wake.set()  # the answer is complete: the next hole is asked for at once

    # ------------------------------------------------------------------------------------------- upkeep
    async def _reconnect(self) -> bool:
        """The link went down: reopen it with back-off. False when the stream is over (cannot reconnect)."""
        self._connected.clear()
        link = self.link
        if link.ended or not self.reconnect:
            self._end_of_link("the link ended")
            return False
        self.recording.note("link_down")
        timeout_s = self.settings.reconnect_timeout_s
        deadline = time.monotonic() + timeout_s
        delay = 0.05
        last = None
        while time.monotonic() < deadline:
            try:
                await within(link.open(), max(0.05, deadline - time.monotonic()))
            except (LinkError, asyncio.TimeoutError) as error:
                last = error
                if link.ended:
                    break
            if link.status().connected:
                self.stats.reconnects += 1
                self.recording.note("reconnected")
                self._connected.set()
                self._next_sync = 0.0  # a fresh time exchange at once
                self.liveness.reconnected(time.monotonic())
                return True
            await asyncio.sleep(delay)
            delay = min(2 * delay, 2.0)
        if link.ended:
            self._end_of_link("the link ended while reconnecting")
            return False
        self._fail(SessionError(f"the sensor did not come back within {timeout_s:g} s"
                                + (f" ({last})" if last else "") + ": is it on and in range?"))
        return False

    def _end_of_link(self, why: str) -> None:
        self.stream.lose_missing(why)
        self._finish()

    async def _housekeeping(self) -> None:
        while not self._finished:
            try:  # a finished BACKFILL answer wakes this at once: the next hole is asked for without a pause
                await within(self._wake.wait(), 0.02)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            now = time.monotonic()
            failure = self.liveness.failure(now, self._connected.is_set())
            if failure is not None:
                raise SessionError(failure)
            if self.passive:
                self._passive_upkeep()
                continue
            if not self._connected.is_set():
                continue
            try:
                if now >= self._next_sync:
                    self._next_sync = now + self.settings.sync_interval_s
                    await self.time_sync()
                await self._probe_if_idle()
                if self.backfill:
                    await self._backfill_step()
            except CommandError:
                continue  # the link dropped or the sensor is busy: the next round retries

    async def _probe_if_idle(self) -> None:
        """Quiet data: a pong tells how far the device has got (a lost last packet, or the end of a sim)."""
        if not self.liveness.probe_due(time.monotonic()):
            return
        pong = await self.time_sync()
        next_seq = pong["next_seq"]
        re = self.stream.reassembly
        if re.live_next is None:
            return
        if self.liveness.quiet(time.monotonic()):
            self.stream.see_tail(next_seq)
        if self.liveness.device_stopped(next_seq) and re.next_out is not None and re.next_out >= next_seq \
                and self.backfill_plan.answer_due is None:
            self.stream_over = True
            self.recording.note("stream_over", device_t_us=pong["device_t_us"], next_seq=next_seq)
            self._finish()

    async def _backfill_step(self) -> None:
        """One exchange of BACKFILL requests (``BackfillPlan``), if one is due."""
        plan = self.backfill_plan
        re = self.stream.reassembly
        request = plan.next_request(re.missing(), time.monotonic(), re.live_next)
        while request is not None:
            ack = await self._backfill_request(*request)
            request = plan.answer(ack.status, ack.fields, time.monotonic(), re.live_next)

    async def _backfill_request(self, from_seq: int, n: int) -> Ack:
        self.stats.backfill_requests += 1
        return await self.command(Opcode.BACKFILL, from_seq=from_seq % protocol.U32_MODULUS, max_samples=n,
                                  tries=1)

    def _passive_upkeep(self) -> None:
        period_us = self.period.period_us
        live_next = self.stream.reassembly.live_next
        if period_us and live_next is not None:
            hold = int(self.settings.passive_hold_s * 1e6 / period_us)
            self.stream.lose_missing("not in the recording", before=live_next - hold)
