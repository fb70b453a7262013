"""BLE link (bleak): scan by service UUID, connect with an MTU request, notifications in, commands out.

    async with BleLink("hipcheck-3F2A") as link:          # a name, an address, or None for the strongest sensor
        await link.send(encode_command(Opcode.INFO, token=1))
        item = await link.receive(timeout_s=1.0)

Only bleak's public API is used (``BleakScanner``, ``BleakClient``); the backend is a parameter — ``backend=None``
is bleak's platform backend, or a ``BleBackend(scanner=…, client=…)`` pair of backend classes (tests pass a bumble
one, ``tests/support/bleak_bumble.py``). bleak has no public call to request an ATT MTU: the platform stacks
negotiate it themselves (BlueZ reports 23 whatever it negotiated); a backend whose client class says
``supports_mtu_request = True`` gets ``mtu=`` as a keyword and requests it on connect.

Behaviour:
- Scanning keeps only advertisers of the hipcheck service (``SERVICE_UUID``): a stranger with the same name but not
  our service is never connected to. Its RSSI is the link's ``rssi_dbm`` (bleak gives no RSSI of a connection).
- Connected: notifications on data, control and log (and the battery level, read at connect from 0x2A19).
- ``send()``: write with response, ``command_timeout_s``; longer than MTU − 3 → LinkError before anything is sent.
- An unexpected disconnect → reconnect with back-off (``backoff_s`` first, doubling up to ``backoff_max_s``),
  each attempt a fresh scan, then connect and resubscribe. Sequence gaps caused meanwhile are the device session's
  to backfill; the link reports them (``gaps()``, ``status().samples_missing``).
- Bounded memory: notifications wait for ``receive()`` in a queue of at most ``queue_packets`` (default
  ``hipcheck.links.RECEIVE_QUEUE_PACKETS``); one that finds it full is dropped and counted in
  ``status().packets_dropped`` (the device session backfills the gap it leaves). A sensor does not wait for the
  host: holding everything would grow without limit.
- Watchdog: no packet at all for ``watchdog_s`` (connected or not) → the link gives up; ``receive()`` raises
  LinkError saying so. ``watchdog_s=None`` turns it off (e.g. while streaming is stopped on purpose).
- Pairing (docs/security.md): the sensor takes commands only from a bonded host on an encrypted link. ``pair()``
  bonds once, through bleak's ``BleakClient.pair()``, while the sensor's pairing window is open (``hipcheck pair
  --ble NAME``); afterwards the platform stack encrypts every connection with the bond by itself. A write the
  sensor refuses for want of it (ATT insufficient authentication or encryption) is a ``NotPairedError`` saying so.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from hipcheck.errors import InvalidValueError
from hipcheck.links import (CONTROL, DATA, LOG, RECEIVE_QUEUE_PACKETS, Link, LinkError, LinkStatus, Received,
                            within)
from hipcheck.protocol import CONTROL_CHAR_UUID, DATA_CHAR_UUID, LOG_CHAR_UUID, SERVICE_UUID

BATTERY_LEVEL_UUID = "00002a19-0000-1000-8000-00805f9b34fb"
# what the platform stacks (and bumble) put in the error of a write refused for want of a bond
_NOT_PAIRED = re.compile(r"insufficient[ _]?(authentication|encryption)|not ?authorized", re.IGNORECASE)
NAME_PREFIX = "hipcheck-"
_DATA_KIND = 0x21
_BACKFILLED = 0x40
_RATE_WINDOW_S = 2.0


class NotPairedError(LinkError):
    """The sensor refused a command: this host is not bonded with it (or the bond was lost on one side)."""


def not_paired_message(who: str) -> str:
    return (f"{who} refused the command: this computer is not paired with it. Open its pairing window (hold its "
            f"button 1 s; a new sensor has it open for 2 minutes after power-on) and run `hipcheck pair --ble {who}`")


class BleBackend(NamedTuple):
    """A bleak backend: the scanner and client classes (subclasses of ``BaseBleakScanner``/``BaseBleakClient``)."""

    scanner: type
    client: type


def load_backend(spec: str):
    """``MODULE:NAME`` → NAME from MODULE: a BleBackend, or a function (maybe async) that returns one inside the
    running event loop (an emulator must live in the loop that uses it). ValueError says what is wrong."""
    import importlib

    module_name, _, attr = spec.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attr or "backend")
    except (ImportError, AttributeError) as error:
        raise InvalidValueError(f"--backend {spec}: {error}; give MODULE:NAME of an importable BleBackend") from None


async def resolve_backend(backend):
    """What ``load_backend`` gave, made a BleBackend: a function is called (and awaited) here, in the loop."""
    import inspect

    if callable(backend) and not isinstance(backend, tuple):
        backend = backend()
        if inspect.isawaitable(backend):
            backend = await backend
    return backend


@dataclass(frozen=True)
class Found:
    """A sensor seen by a scan."""

    name: str | None
    address: str
    rssi_dbm: int | None
    device: Any = field(repr=False, compare=False, default=None)  # bleak's BLEDevice


@dataclass
class BleLinkStatus(LinkStatus):
    """LinkStatus plus the BLE link's own figures."""

    address: str | None = None
    name: str | None = None
    samples_in: int = 0  # live samples (not backfilled)
    samples_missing: int = 0  # live samples skipped by the sequence numbers
    loss_pct: float = 0.0  # samples_missing / (samples_in + samples_missing), %
    rate_samples_s: float = 0.0  # live samples per second over the last 2 s
    rate_packets_s: float = 0.0  # notifications per second over the last 2 s
    gaps: int = 0
    error: str | None = None


def _wanted(found_name: str | None, found_address: str, target: str | None) -> bool:
    if not target:
        return True
    t = target.lower()
    return found_address.lower() == t or (found_name or "").lower() == t


async def scan(seconds: float = 5.0, *, backend: BleBackend | None = None, target: str | None = None,
               stop_on_first: bool = False) -> list[Found]:
    """hipcheck sensors advertising our service during ``seconds``, strongest first. ``target`` (a name or an
    address) keeps only that one and ends the scan as soon as it is seen when ``stop_on_first``."""
    from bleak import BleakScanner

    seen: dict[str, Found] = {}
    hit = asyncio.Event()

    def on_adv(device, adv) -> None:
        if SERVICE_UUID not in [u.lower() for u in adv.service_uuids]:
            return  # not our service (bleak's filter is best effort on some platforms)
        name = adv.local_name or device.name
        if not _wanted(name, device.address, target):
            return
        old = seen.get(device.address)
        if old is not None and old.name and not adv.local_name:
            name = old.name
        seen[device.address] = Found(name, device.address, adv.rssi, device)
        if stop_on_first:
            hit.set()

    kwargs = {"backend": backend.scanner} if backend is not None else {}
    try:
        async with BleakScanner(on_adv, service_uuids=[SERVICE_UUID], **kwargs):
            try:
                await within(hit.wait(), seconds)
            except asyncio.TimeoutError:
                pass
    except Exception as error:  # bleak's errors (no adapter, BlueZ not running) say what is wrong
        raise LinkError(f"BLE scan failed: {error}. Is Bluetooth on and a BLE adapter present?") from error
    return sorted(seen.values(), key=lambda f: -(f.rssi_dbm if f.rssi_dbm is not None else -999))


class BleLink(Link):
    """A hipcheck sensor over BLE. ``name_or_address``: ``hipcheck-XXXX``, a BLE address, or None (the strongest
    hipcheck sensor in range); queue_packets: notifications held for ``receive()`` before new ones are dropped."""

    name = "ble"

    def __init__(self, name_or_address: str | None = None, *, backend: BleBackend | None = None, mtu: int = 247,
                 scan_timeout_s: float = 10.0, rescan_timeout_s: float = 3.0, connect_timeout_s: float = 10.0,
                 command_timeout_s: float = 2.0, watchdog_s: float | None = 10.0, reconnect: bool = True,
                 backoff_s: float = 0.25, backoff_max_s: float = 2.0,
                 queue_packets: int = RECEIVE_QUEUE_PACKETS):
        if not 23 <= mtu <= 517:
            raise InvalidValueError(f"mtu {mtu}: the ATT MTU is 23 to 517")
        self.target = name_or_address
        self.backend = backend
        self.mtu_request = mtu
        self.scan_timeout_s = scan_timeout_s
        self.rescan_timeout_s = rescan_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.command_timeout_s = command_timeout_s
        self.watchdog_s = watchdog_s
        self.reconnect = reconnect
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.queue_packets = int(queue_packets)
        self._client = None
        self._queue: asyncio.Queue = asyncio.Queue()
        self._status = BleLinkStatus()
        self._supervisor: asyncio.Task | None = None
        self._lost = asyncio.Event()
        self._closed = False
        self._opened = False
        self._error: LinkError | None = None
        self._next_seq: int | None = None  # next live seq expected (wire, mod 2^32 or 2^16 for compact)
        self._gaps: list[tuple[int, int]] = []  # (first missing wire seq, count)
        self._recent: deque = deque()  # (host time, samples) of recent DATA notifications
        self._t_open = 0.0

    # --------------------------------------------------------------------------------------------- interface
    async def open(self) -> None:
        if self._opened:
            return  # open, or reconnecting by itself
        self._closed = False
        self._error = None
        self._t_open = time.monotonic()
        found = await self._find(self.scan_timeout_s)
        if found is None:
            what = f"no hipcheck sensor named or addressed {self.target!r}" if self.target else "no hipcheck sensor"
            raise LinkError(f"{what} found in {self.scan_timeout_s:g} s of scanning (service {SERVICE_UUID}): "
                            "is it switched on, charged and within range, and not connected to another host?")
        await self._connect(found)
        self._opened = True
        self._supervisor = asyncio.create_task(self._supervise(), name="hipcheck-ble-supervisor")

    async def close(self) -> None:
        self._closed = True
        self._opened = False
        task, self._supervisor = self._supervisor, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        await self._drop_client()
        self._status.connected = False
        self._queue.put_nowait(None)  # wake a waiting receive()

    async def send(self, packet: bytes) -> None:
        client = self._client
        if client is None or not self._status.connected:
            raise LinkError(self._error.args[0] if self._error else
                            "not connected to the sensor (open the link first, or wait for it to reconnect)")
        limit = self._status.mtu - 3
        if len(packet) > limit:
            raise LinkError(f"command of {len(packet)} bytes does not fit one write at ATT MTU {self._status.mtu} "
                            f"(at most {limit} bytes); every hipcheck COMMAND fits 20 bytes")
        try:
            await within(client.write_gatt_char(CONTROL_CHAR_UUID, bytes(packet), response=True),
                                   self.command_timeout_s)
        except asyncio.TimeoutError:
            raise LinkError(f"the sensor did not confirm the write within {self.command_timeout_s:g} s") from None
        except Exception as error:
            if _NOT_PAIRED.search(str(error)):
                raise NotPairedError(not_paired_message(self._status.name or self.target or "the sensor")) from error
            raise LinkError(f"write to the sensor failed: {error}") from error
        self._status.commands_out += 1

    async def pair(self) -> None:
        """Bond with the connected sensor (module docstring). LinkError when it refuses (its window is closed), the
        link drops, or the platform cannot pair on request (macOS: it asks the user at the first protected write)."""
        client = self._client
        who = self._status.name or self.target or "the sensor"
        if client is None or not self._status.connected:
            raise LinkError("not connected to the sensor: open the link before pairing")
        try:
            await within(client.pair(), max(30.0, self.connect_timeout_s))
        except NotImplementedError:
            raise LinkError("this platform's Bluetooth stack pairs by itself at the first protected write (accept "
                            "its prompt); there is no pairing on request here") from None
        except Exception as error:
            raise LinkError(f"pairing with {who} failed ({error}): is its pairing window open? Hold its button 1 s "
                            "(the motor buzzes short-short-long) and try again within 2 minutes") from error

    async def receive(self, timeout_s: float | None = None) -> Received | None:
        if self._error is not None and self._queue.empty():
            raise self._error
        try:
            item = await within(self._queue.get(), timeout_s)
        except asyncio.TimeoutError:
            return None
        if item is None:
            if self._error is not None:
                raise self._error
            return None
        return item

    def status(self) -> BleLinkStatus:
        s = self._status
        now = time.monotonic()
        while self._recent and now - self._recent[0][0] > _RATE_WINDOW_S:
            self._recent.popleft()
        span = min(_RATE_WINDOW_S, max(1e-3, now - self._t_open))
        s.rate_samples_s = sum(n for _, n in self._recent) / span
        s.rate_packets_s = len(self._recent) / span
        total = s.samples_in + s.samples_missing
        s.loss_pct = 100.0 * s.samples_missing / total if total else 0.0
        s.gaps = len(self._gaps)
        s.error = self._error.args[0] if self._error else None
        return BleLinkStatus(**vars(s))

    @property
    def ended(self) -> bool:
        """Closed by the host: no more packets (a link that gave up may be opened again)."""
        return self._closed

    def gaps(self) -> list[tuple[int, int]]:
        """(first missing sequence number, count) of every gap in the live data, wire values (u32; u16 for the
        compact form), in arrival order."""
        return list(self._gaps)

    # ------------------------------------------------------------------------------------------- internals
    async def _find(self, timeout_s: float) -> Found | None:
        found = await scan(timeout_s, backend=self.backend, target=self.target, stop_on_first=bool(self.target))
        return found[0] if found else None

    async def _connect(self, found: Found) -> None:
        from bleak import BleakClient

        kwargs: dict[str, Any] = {}
        if self.backend is not None:
            kwargs["backend"] = self.backend.client
            if getattr(self.backend.client, "supports_mtu_request", False):
                kwargs["mtu"] = self.mtu_request
        client = BleakClient(found.device if found.device is not None else found.address,
                             disconnected_callback=self._on_disconnected, timeout=self.connect_timeout_s, **kwargs)
        try:
            await client.connect()
            if client.services.get_service(SERVICE_UUID) is None:
                raise LinkError(f"{found.name or found.address} has no hipcheck service {SERVICE_UUID}: not a "
                                "hipcheck sensor (or another firmware); name the right one")
            for uuid, channel in ((DATA_CHAR_UUID, DATA), (CONTROL_CHAR_UUID, CONTROL), (LOG_CHAR_UUID, LOG)):
                await client.start_notify(uuid, self._handler(client, channel))
            battery = client.services.get_characteristic(BATTERY_LEVEL_UUID)
            if battery is not None:
                value = await client.read_gatt_char(battery)
                self._status.battery_pct = value[0] if value else None
                if "notify" in battery.properties:
                    await client.start_notify(battery, self._on_battery)
        except LinkError:
            await _quiet_disconnect(client)
            raise
        except Exception as error:
            await _quiet_disconnect(client)
            raise LinkError(f"could not connect to {found.name or found.address}: {error}") from error
        self._client = client
        s = self._status
        s.connected = True
        s.mtu = client.mtu_size
        s.name, s.address, s.rssi_dbm = found.name, found.address, found.rssi_dbm
        s.last_packet_host_s = time.monotonic()  # the watchdog counts from the connection
        self._lost.clear()

    def _handler(self, client, channel: str):
        def on_notify(_characteristic, data: bytearray) -> None:
            if client is not self._client:
                return  # a late notification of an old connection
            now = time.monotonic()
            packet = bytes(data)
            s = self._status
            s.packets_in += 1
            s.bytes_in += len(packet)
            s.last_packet_host_s = now
            if channel == DATA:
                self._track(packet, now)
            if self._queue.qsize() >= self.queue_packets:
                s.packets_dropped += 1  # the host is this far behind: a gap for the session to backfill
                return
            self._queue.put_nowait(Received(channel, packet, now))

        return on_notify

    def _on_battery(self, _characteristic, data: bytearray) -> None:
        if data:
            self._status.battery_pct = data[0]

    def _track(self, packet: bytes, now: float) -> None:
        # Live sequence numbers: full form u32 seq + n samples, compact form u16 seq (one sample)
        if packet[0] == _DATA_KIND and len(packet) >= 33 and (len(packet) - 12) % 21 == 0:
            if packet[12 + 20] & _BACKFILLED:
                return
            seq, n, modulo = int.from_bytes(packet[2:6], "little"), packet[1], 1 << 32
        elif len(packet) == 20:
            seq, n, modulo = int.from_bytes(packet[0:2], "little"), 1, 1 << 16
        else:
            return
        s = self._status
        if self._next_seq is not None:
            missing = (seq - self._next_seq) % modulo
            if 0 < missing < modulo // 2:
                self._gaps.append((self._next_seq, missing))
                s.samples_missing += missing
            elif missing:
                return  # older than expected: a duplicate or reordering, not live progress
        self._next_seq = (seq + n) % modulo
        s.samples_in += n
        self._recent.append((now, n))

    def _on_disconnected(self, client) -> None:
        if client is self._client:
            self._status.connected = False
            self._lost.set()

    async def _drop_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await _quiet_disconnect(client)

    def _fail(self, message: str) -> None:
        self._error = LinkError(message)
        self._status.connected = False
        self._queue.put_nowait(None)

    async def _supervise(self) -> None:
        """Watch the connection: reconnect after an unexpected drop, give up after watchdog_s without packets."""
        try:
            while not self._closed:
                await self._wait_lost_or_silent()
                if self._closed:
                    return
                if self._silent():
                    await self._give_up()
                    return
                # the connection dropped: rescan, reconnect, resubscribe, with back-off
                await self._drop_client()
                if not self.reconnect:
                    self._fail(f"the sensor {self._status.name or self.target} disconnected")
                    return
                delay = self.backoff_s
                while not self._closed:
                    if self._silent():
                        await self._give_up()
                        return
                    await asyncio.sleep(delay)
                    delay = min(self.backoff_max_s, delay * 2)
                    found = await self._find(self._attempt_budget(self.rescan_timeout_s))
                    if found is None:
                        continue
                    try:
                        await self._connect(found)
                    except LinkError:
                        continue
                    self._status.reconnects += 1
                    break
        except asyncio.CancelledError:
            raise
        except Exception as error:  # never leave receive() hanging
            self._fail(f"BLE link failed: {error!r}")

    def _attempt_budget(self, seconds: float) -> float:
        if self.watchdog_s is None or self._status.last_packet_host_s is None:
            return seconds
        left = self.watchdog_s - (time.monotonic() - self._status.last_packet_host_s)
        return max(0.1, min(seconds, left))

    def _silent(self) -> bool:
        last = self._status.last_packet_host_s
        return self.watchdog_s is not None and last is not None and time.monotonic() - last >= self.watchdog_s

    async def _wait_lost_or_silent(self) -> None:
        while not self._lost.is_set():
            if self._silent():
                return
            wait = 1.0 if self.watchdog_s is None else max(0.05, min(1.0, self.watchdog_s / 4))
            try:
                await within(self._lost.wait(), wait)
            except asyncio.TimeoutError:
                pass

    async def _give_up(self) -> None:
        self._opened = False  # open() may try again from a fresh scan
        await self._drop_client()
        who = self._status.name or self.target or "the sensor"
        self._fail(f"no data from {who} for {self.watchdog_s:g} s ({self._status.reconnects} reconnects): it seems "
                   "switched off or out of range; check its battery and distance, then open the link again")


async def pair_sensor(target: str | None, *, backend: BleBackend | None = None, timeout_s: float = 10.0) -> dict:
    """``hipcheck pair``: connect, bond (``BleLink.pair``), then prove it with INFO, a command the sensor takes only
    from a bonded host. Returns INFO's fields; LinkError when the sensor refuses (its window is closed: it drops
    the connection right after the pairing) or cannot be found."""
    from hipcheck import protocol

    link = BleLink(target, backend=backend, watchdog_s=None, reconnect=False, scan_timeout_s=timeout_s)
    async with link:
        who = link.status().name or target or "the sensor"
        await link.pair()
        try:
            await link.send(protocol.encode_command(protocol.Opcode.INFO, 1))
            deadline = time.monotonic() + timeout_s
            while (left := deadline - time.monotonic()) > 0:
                item = await link.receive(timeout_s=left)
                if item is None:
                    break
                if item.channel == CONTROL and item.packet[:3] == bytes([0x23, protocol.Opcode.INFO, 1]):
                    return dict(protocol.decode_packet(item.packet).fields)
        except LinkError as error:
            raise LinkError(f"{who} did not accept the pairing ({error}): its pairing window is closed. Hold its "
                            "button 1 s (the motor buzzes short-short-long) and run `hipcheck pair` again within "
                            "2 minutes") from None
        raise LinkError(f"{who} paired but did not answer INFO within {timeout_s:g} s")


async def _quiet_disconnect(client) -> None:
    try:
        await within(client.disconnect(), 5.0)
    except Exception:
        pass
