"""An emulated hipcheck sensor: a bumble peripheral with the firmware's GATT layout, fed by the firmware itself.

The GATT database copies ``firmware/link_ble.py``: the hipcheck service (data notify; control write, write without
response, notify; log notify), Battery (0x180F: level 0x2A19, read + notify) and Device Information (0x180A). It
advertises like the firmware: flags, the 128-bit service UUID and the short name "hipcheck" in the advertisement,
the complete name ``hipcheck-XXXX`` (the last two address bytes) in the scan response.

Its packets come from the firmware running in the MicroPython unix port (``hipcheck.links.simboard.SimBoard``, the real
firmware on a simulated trace, over stdio): every DATA, ACK, EVENT and LOG_CHUNK it writes is notified on the
characteristic the firmware would use, and every write to the control characteristic goes to the firmware's stdin.
The firmware packs DATA for the sensor's ``mtu`` (its stdio link is given that MTU; at 23 it sends the compact form).
The board starts when a central first subscribes to the data characteristic (a fast sim board would otherwise have
played its whole walk before anyone connected).

Injected faults (the bumble link has no radio timing): ``loss`` (fraction of DATA notifications dropped), ``jitter_s``
(a random delay of 0..jitter_s before each notification, order kept), ``cut(seconds)`` (disconnect now, advertise
again after seconds; what the firmware sends meanwhile is lost to the air and stays in its ring for BACKFILL),
``power_off()`` (disconnect, never advertise again, the firmware stops). ``StrangerSensor`` advertises the same name
without our service.

Known difference from a board: the firmware here does not see the BLE connection (its stdio link is always up), so
it does not hold samples back while disconnected; they come back by BACKFILL as they would after a long drop.
"""

from __future__ import annotations

import asyncio
import random
import time

from bumble.device import Connection
from bumble.gatt import Characteristic, CharacteristicValue, Service

from hipcheck.protocol import CONTROL_CHAR_UUID, DATA_CHAR_UUID, LOG_CHAR_UUID, SERVICE_UUID, Opcode
from hipcheck.links.simboard import SimBoard

from .bleak_bumble import Air

NAME_PREFIX = "hipcheck-"
_ACK, _EVENT, _LOG, _DATA = 0x23, 0x24, 0x25, 0x21

P = Characteristic.Properties
R, W = Characteristic.READABLE, Characteristic.WRITEABLE


def _ad(kind: int, data: bytes) -> bytes:
    return bytes((len(data) + 1, kind)) + data


def _uuid128_le(s: str) -> bytes:
    return bytes(reversed(bytes.fromhex(s.replace("-", ""))))


def advertising_payloads(name: str, service_uuid: str | None = SERVICE_UUID) -> tuple[bytes, bytes]:
    """As firmware/link_ble.py: flags, service UUID and short name; the complete name in the scan response."""
    adv = _ad(0x01, b"\x06")
    if service_uuid is not None:
        adv += _ad(0x07, _uuid128_le(service_uuid))
    adv += _ad(0x08, NAME_PREFIX[:-1].encode())
    return adv, _ad(0x09, name.encode())


def emulated_payloads(name: str, service_uuid: str | None = SERVICE_UUID) -> tuple[bytes, bytes]:
    """What the emulated sensor puts on bumble's air: bumble's controller reports the advertising data again as
    the scan response (the scan response data never reaches a scanner), so the complete name goes into the
    advertisement itself, after the firmware's fields (36 bytes: over the 31 of a legacy advertisement, which the
    emulated controller does not enforce)."""
    adv, resp = advertising_payloads(name, service_uuid)
    return adv + resp, resp


class _Board(SimBoard):
    """SimBoard whose packets go to a callback (raw, from its reader thread) and whose stdio link has ``mtu``."""

    def __init__(self, trace, *, on_packet, mtu: int, **kwargs):
        extra = tuple(kwargs.pop("extra_args", ())) + (("--mtu", str(mtu)) if mtu != 247 else ())
        super().__init__(trace, extra_args=extra, **kwargs)
        self._on_packet = on_packet
        self.mtu = mtu

    def _dispatch(self, p: bytes) -> None:
        if not (self.mtu == 23 and len(p) == 20 and p[0] not in (_ACK, _LOG)):
            try:
                super()._dispatch(p)  # SimBoard's own bookkeeping (acks, counters) where the packet is not compact
            except Exception:
                pass
        self._on_packet(p)


class EmulatedSensor:
    """A hipcheck sensor on ``air``. ``trace``: a walk CSV (or chip trace) for the firmware; None: no firmware (it
    advertises and answers GATT reads only, e.g. for a scan). Counters: ``notified``, ``dropped_loss``,
    ``dropped_offline`` (sent by the firmware while no central listened), ``connections``, ``writes``."""

    def __init__(self, air: Air, trace=None, *, address: str | None = None, mtu: int = 247, seconds: float | None = None,
                 realtime: bool = False, rate_hz: int = 100, loss: float = 0.0, jitter_s: float = 0.0, seed: int = 1,
                 battery_pct: int = 87, adv_interval_ms: float = 20.0, simboard_options: dict | None = None):
        if mtu not in (23, 247) and not 36 <= mtu <= 517:
            raise ValueError("mtu: 23, or 36..517")
        self.air = air
        self.device = air.new_device("hipcheck-sensor", address)
        a = self.device.random_address  # bumble's LocalLink routes LE traffic by random address
        raw = bytes(a)  # little-endian: the last two bytes of the written address are raw[1], raw[0]
        self.address = str(a.to_string(False)).upper()
        self.name = NAME_PREFIX + f"{raw[1]:02X}{raw[0]:02X}"
        self.trace = trace
        self.mtu = mtu
        self.seconds = seconds
        self.realtime = realtime
        self.rate_hz = rate_hz
        self.loss = loss
        self.jitter_s = jitter_s
        self.rng = random.Random(seed)
        self.battery_pct = battery_pct
        self.adv_interval_ms = adv_interval_ms
        self.simboard_options = dict(simboard_options or {})
        self.board: _Board | None = None
        self.connection: Connection | None = None
        self.powered = False
        self._hidden_until = 0.0
        self._queue: asyncio.Queue | None = None
        self._pump_task: asyncio.Task | None = None
        self._adv_task: asyncio.Task | None = None
        self._pending: dict[int, int] = {}  # token -> opcode of commands not yet acknowledged
        self.notified = 0
        self.dropped_loss = 0
        self.dropped_offline = 0
        self.dropped_oversize = 0
        self.connections = 0
        self.writes: list[bytes] = []
        self._build_gatt()

    # ------------------------------------------------------------------------------------------------ GATT
    def _build_gatt(self) -> None:
        self.data_char = Characteristic(DATA_CHAR_UUID, P.NOTIFY, R, b"")
        self.control_char = Characteristic(
            CONTROL_CHAR_UUID, P.WRITE | P.WRITE_WITHOUT_RESPONSE | P.NOTIFY, R | W,
            CharacteristicValue(read=lambda _c: b"", write=self._on_control_write))
        self.log_char = Characteristic(LOG_CHAR_UUID, P.NOTIFY, R, b"")
        self.battery_char = Characteristic("2A19", P.READ | P.NOTIFY, R,
                                           CharacteristicValue(read=lambda _c: bytes([self.battery_pct])))
        info = [Characteristic(u, P.READ, R, v.encode()) for u, v in (
            ("2A29", "hipcheck"), ("2A24", "sim"), ("2A25", self.address.replace(":", "")),
            ("2A26", "emulated"), ("2A27", "LSM6DSOX"))]
        self.device.add_services([
            Service(SERVICE_UUID, [self.data_char, self.control_char, self.log_char]),
            Service("180F", [self.battery_char]),
            Service("180A", info),
        ])
        self.device.gatt_server.max_mtu = self.mtu
        self.data_char.on("subscription", self._on_subscription)

    def _on_subscription(self, connection, notify_enabled, indicate_enabled) -> None:
        if notify_enabled and self.board is None and self.trace is not None and self.powered:
            self._start_board()

    def _on_control_write(self, connection, value: bytes) -> None:
        value = bytes(value)
        self.writes.append(value)
        if self.board is None:
            return
        if len(value) >= 3:
            self._pending[value[2]] = value[1]
        self.board.send_packet(value)

    # ------------------------------------------------------------------------------------------- lifecycle
    async def start(self) -> "EmulatedSensor":
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._queue = asyncio.Queue()
        self.device.on("connection", self._on_connection)
        await self.device.power_on()
        self.powered = True
        self._pump_task = asyncio.create_task(self._pump())
        await self._advertise()
        return self

    def _start_board(self) -> None:
        options = dict(seconds=self.seconds, realtime=self.realtime, rate_hz=self.rate_hz, log=False)
        options.update(self.simboard_options)
        loop = self._loop

        def on_packet(p: bytes) -> None:  # the board's reader thread
            loop.call_soon_threadsafe(self._queue.put_nowait, (p, time.monotonic()))

        self.board = _Board(self.trace, on_packet=on_packet, mtu=self.mtu, **options)
        self.board.start()

    async def _advertise(self) -> None:
        adv, resp = emulated_payloads(self.name)
        await self.device.start_advertising(advertising_data=adv, scan_response_data=resp,
                                            advertising_interval_min=self.adv_interval_ms,
                                            advertising_interval_max=self.adv_interval_ms)

    def _on_connection(self, connection: Connection) -> None:
        self.connection = connection
        self.connections += 1
        connection.on("disconnection", lambda reason: self._on_disconnection(connection))

    def _on_disconnection(self, connection) -> None:
        if connection is self.connection:
            self.connection = None
        if self.powered:
            self._adv_task = asyncio.create_task(self._advertise_later())

    async def _advertise_later(self) -> None:
        delay = self._hidden_until - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if self.powered and self.connection is None and not self.device.is_advertising:
            await self._advertise()

    async def cut(self, seconds: float) -> None:
        """The link breaks now (the sensor drops the connection) and the sensor is out of reach for ``seconds``."""
        self._hidden_until = time.monotonic() + seconds
        if self.connection is not None:
            await self.connection.disconnect()
        elif self.device.is_advertising:
            await self.device.stop_advertising()
            self._adv_task = asyncio.create_task(self._advertise_later())

    async def power_off(self) -> None:
        """Switched off: the connection ends, it never advertises again, the firmware stops."""
        self.powered = False
        if self.device.is_advertising:
            await self.device.stop_advertising()
        if self.connection is not None:
            try:
                await self.connection.disconnect()
            except Exception:
                pass
        await self._stop_board()

    async def stop(self) -> None:
        self.powered = False
        for task in (self._pump_task, self._adv_task):
            if task is not None:
                task.cancel()
                try:
                    await task
                except (asyncio.CancelledError, Exception):
                    pass
        try:
            if self.device.is_advertising:
                await self.device.stop_advertising()
            if self.connection is not None:
                await self.connection.disconnect()
        except Exception:
            pass
        await self._stop_board()

    async def _stop_board(self) -> None:
        board, self.board = self.board, None
        if board is not None:
            await asyncio.get_running_loop().run_in_executor(None, board.close)

    async def __aenter__(self) -> "EmulatedSensor":
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    # ------------------------------------------------------------------------------------------ forwarding
    def _characteristic(self, p: bytes):
        """The characteristic the firmware would notify ``p`` on (link_ble: send → data, send_control → control,
        send_log → log). At MTU 23 a 20-byte packet is compact DATA unless it is the ACK of a pending command."""
        if self.mtu == 23 and len(p) == 20:
            if p[0] == _ACK and self._pending.get(p[2]) == p[1]:
                del self._pending[p[2]]
                return self.control_char
            if p[0] == _LOG and Opcode.LOG_DOWNLOAD in self._pending.values():
                return self.log_char
            return self.data_char
        kind = p[0]
        if kind == _DATA:
            return self.data_char
        if kind == _ACK:
            self._pending.pop(p[2], None)
            return self.control_char
        if kind == _EVENT:
            return self.control_char
        if kind == _LOG:
            return self.log_char
        return self.data_char

    async def _pump(self) -> None:
        while True:
            p, _t = await self._queue.get()
            char = self._characteristic(p)
            connection = self.connection
            if connection is None or not self.powered:
                self.dropped_offline += 1
                continue
            if char is self.data_char and self.loss and self.rng.random() < self.loss:
                self.dropped_loss += 1
                continue
            if len(p) > connection.att_mtu - 3:
                self.dropped_oversize += 1  # the firmware packed for a larger MTU than the central took
                continue
            if self.jitter_s:
                await asyncio.sleep(self.rng.uniform(0.0, self.jitter_s))
                if connection is not self.connection:
                    self.dropped_offline += 1
                    continue
            try:
                await self.device.notify_subscriber(connection, char, p)
                self.notified += 1
            except Exception:
                self.dropped_offline += 1


class StrangerSensor:
    """Somebody else's device with the same kind of name (``hipcheck-XXXX``) but not our service."""

    def __init__(self, air: Air, name: str | None = None, address: str | None = None):
        self.device = air.new_device("stranger", address)
        a = self.device.random_address
        raw = bytes(a)
        self.address = str(a.to_string(False)).upper()
        self.name = name or NAME_PREFIX + f"{raw[1]:02X}{raw[0]:02X}"
        self.device.add_services([Service("180F", [Characteristic("2A19", P.READ, R, bytes([50]))])])

    async def start(self) -> "StrangerSensor":
        await self.device.power_on()
        adv = _ad(0x01, b"\x06") + _ad(0x03, bytes.fromhex("0f18")) + _ad(0x09, self.name.encode())
        await self.device.start_advertising(advertising_data=adv, scan_response_data=b"",
                                            advertising_interval_min=20.0, advertising_interval_max=20.0)
        return self

    async def stop(self) -> None:
        if self.device.is_advertising:
            await self.device.stop_advertising()
