"""A bleak backend on a bumble central, over a ``bumble.link.LocalLink`` in this process.

bleak takes its backend as a parameter (``BleakScanner(backend=…)``, ``BleakClient(…, backend=…)``); this module
gives it a scanner and a client (subclasses of bleak's ``BaseBleakScanner`` / ``BaseBleakClient``) that drive a
bumble ``Device`` in the central role. Peripherals (``tests/support/emulated_sensor.py``) join the same ``Air``::

    air = Air()
    sensor = EmulatedSensor(air, trace)            # a bumble peripheral on the same LocalLink
    await sensor.start()
    link = BleLink("hipcheck-0001", backend=air.backend())

What bumble's link does not do by itself, and this backend does (DESIGN.md, "Emulation → BLE"):
- the ATT MTU is not negotiated on connect: the client requests it explicitly (``mtu=`` keyword of the client,
  forwarded by ``BleakClient``; ``BleLink`` passes it when the backend says ``supports_mtu_request``);
- a write longer than MTU − 3 is refused with ``BleakError`` (a real stack refuses or truncates it);
- the disconnected callback fires on every disconnect, ours or the peripheral's, once per connection;
- the link has no radio timing: loss, jitter and drops are injected by the peripheral;
- pairing: ``pair()`` runs bumble's Security Manager as the central (LE Secure Connections, bonding, no MITM: the
  sensor has no display or keys) and keeps the keys in the central's key store (one per ``Air``, in memory);
  ``unpair()`` forgets them and disconnects, as bleak documents. On connecting to a peripheral the store holds keys
  for, the link is encrypted with them first, as the platform stacks do for a bonded device; a failed encryption
  (the peripheral forgot the bond) leaves the link unencrypted, and its protected writes fail with the ATT error.

The RSSI in advertisement reports is the bumble controller's fixed -50 dBm. One ``Air`` per event loop.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid as _uuid
from typing import Any

from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakDeviceNotFoundError, BleakError
from bumble import hci
from bumble.controller import Controller
from bumble.core import PhysicalTransport
from bumble.device import Device, Peer
from bumble.gatt import Characteristic
from bumble.host import Host
from bumble.keys import JsonKeyStore
from bumble.link import LocalLink
from bumble.pairing import PairingConfig, PairingDelegate
from bumble.transport.common import AsyncPipeSink

from hipcheck.links import within
from hipcheck.links.ble import BleBackend


def uuid_str(u) -> str:
    """A bumble UUID as bleak writes UUIDs: 128-bit, lower case, with dashes."""
    return str(_uuid.UUID(bytes=bytes(reversed(u.to_bytes(force_128=True)))))


def address_str(address: hci.Address) -> str:
    return address.to_string(False).upper()


class Air:
    """One radio medium (a bumble ``LocalLink``) with one central; peripherals add their own devices.

    ``backend()`` returns the bleak backend pair bound to this air. Create it inside the running event loop.
    central_address: the central's (a stranger is another one); keystore_path: a JSON file (bumble's
    ``JsonKeyStore``) for the central's bonds, as a host's OS keeps them across runs (default: in memory).
    """

    def __init__(self, central_address: str = "C0:00:00:00:00:01", keystore_path=None) -> None:
        self.central_address = central_address
        self.keystore_path = keystore_path
        self.link = LocalLink()
        self._numbers = itertools.count(1)
        self._central: Device | None = None
        self._central_lock = asyncio.Lock()
        self._scanners = 0
        self._scan_lock = asyncio.Lock()
        self.addresses: dict[str, hci.Address] = {}  # address string -> bumble address, as last seen

    def new_device(self, name: str, address: str | None = None) -> Device:
        """A bumble device with its own controller on this air (not yet powered on)."""
        if address is None:
            n = next(self._numbers)
            address = f"F0:00:00:00:{n >> 8:02X}:{n & 0xFF:02X}"
        controller = Controller(name, link=self.link, public_address=address)
        host = Host(controller, AsyncPipeSink(controller))
        return Device(name=name, address=hci.Address(address), host=host)

    async def central(self) -> Device:
        async with self._central_lock:
            if self._central is None:
                device = self.new_device("central", self.central_address)
                if self.keystore_path is not None:
                    device.keystore = JsonKeyStore("central", str(self.keystore_path))
                # identity: the random static address it connects with (bumble would give its controller's public
                # one, which it never uses on the air: a bond could then not be found again)
                device.pairing_config_factory = lambda _connection: PairingConfig(
                    sc=True, mitm=False, bonding=True,
                    delegate=PairingDelegate(io_capability=PairingDelegate.IoCapability.NO_OUTPUT_NO_INPUT),
                    identity_address_type=PairingConfig.AddressType.RANDOM)
                await device.power_on()
                self._central = device
            return self._central

    async def scan_acquire(self, active: bool) -> None:
        async with self._scan_lock:
            self._scanners += 1
            central = await self.central()
            if not central.is_scanning:
                await central.start_scanning(active=active, filter_duplicates=False)

    async def scan_release(self) -> None:
        async with self._scan_lock:
            self._scanners = max(0, self._scanners - 1)
            central = await self.central()
            if self._scanners == 0 and central.is_scanning:
                await central.stop_scanning()

    def backend(self) -> BleBackend:
        """bleak backend types (scanner, client) bound to this air."""
        air = self
        scanner = type("BumbleScanner", (BumbleScanner,), {"air": air})
        client = type("BumbleClient", (BumbleClient,), {"air": air})
        return BleBackend(scanner=scanner, client=client)


def _uuid_le(b: bytes) -> str:
    if len(b) in (2, 4):  # Bluetooth base UUID
        return f"{int.from_bytes(b, 'little'):08x}-0000-1000-8000-00805f9b34fb"
    return str(_uuid.UUID(bytes=bytes(reversed(b))))


def advertisement_data(adv) -> tuple[str | None, AdvertisementData]:
    """A bumble advertisement (advertising data merged with the scan response) as bleak's AdvertisementData,
    parsed from the raw AD structures."""
    names: dict[int, str] = {}
    uuids: list[str] = []
    manufacturer: dict[int, bytes] = {}
    service_data: dict[str, bytes] = {}
    tx = None
    for ad_type, value in adv.data.ad_structures:
        ad_type, value = int(ad_type), bytes(value)
        if ad_type in (0x08, 0x09):  # shortened, complete local name
            names[ad_type] = value.decode("utf-8", "replace")
        elif ad_type in (0x02, 0x03, 0x04, 0x05, 0x06, 0x07):  # service UUID lists: 16, 32, 128 bit
            size = {0x02: 2, 0x03: 2, 0x04: 4, 0x05: 4, 0x06: 16, 0x07: 16}[ad_type]
            for i in range(0, len(value) - size + 1, size):
                u = _uuid_le(value[i:i + size])
                if u not in uuids:
                    uuids.append(u)
        elif ad_type == 0xFF and len(value) >= 2:
            manufacturer[int.from_bytes(value[:2], "little")] = value[2:]
        elif ad_type in (0x16, 0x20, 0x21):  # service data: 16, 32, 128 bit
            size = {0x16: 2, 0x20: 4, 0x21: 16}[ad_type]
            service_data[_uuid_le(value[:size])] = value[size:]
        elif ad_type == 0x0A and value:
            tx = int.from_bytes(value[:1], "little", signed=True)
    name = names.get(0x09) or names.get(0x08)
    return name, AdvertisementData(local_name=name, manufacturer_data=manufacturer, service_data=service_data,
                                   service_uuids=uuids, tx_power=tx, rssi=int(adv.rssi), platform_data=(adv,))


class BumbleScanner(BaseBleakScanner):
    """bleak scanner backend: the air's central scans (active by default) and reports every advertisement."""

    air: Air  # set by Air.backend()

    def __init__(self, detection_callback=None, service_uuids=None, scanning_mode="active", **kwargs: Any):
        super().__init__(detection_callback, service_uuids)
        self._active = scanning_mode != "passive"
        self._central: Device | None = None
        self._scanning = False

    async def start(self) -> None:
        self.seen_devices = {}
        self._central = await self.air.central()
        self._central.on("advertisement", self._on_advertisement)
        await self.air.scan_acquire(self._active)
        self._scanning = True

    async def stop(self) -> None:
        if not self._scanning:
            return
        self._scanning = False
        self._central.remove_listener("advertisement", self._on_advertisement)
        await self.air.scan_release()

    def _on_advertisement(self, adv) -> None:
        name, data = advertisement_data(adv)
        if not self.is_allowed_uuid(data.service_uuids):
            return
        address = address_str(adv.address)
        self.air.addresses[address] = adv.address
        device = self.create_or_update_device(address, address, name, adv.address, data)
        self.call_detection_callbacks(device, data)


class BumbleClient(BaseBleakClient):
    """bleak client backend: the air's central connects, requests the MTU, discovers GATT, subscribes, reads and
    writes. Extra keyword: ``mtu`` (the ATT MTU to request on connect; default 517)."""

    air: Air  # set by Air.backend()
    supports_mtu_request = True

    def __init__(self, address_or_ble_device, *, disconnected_callback=None, timeout: float = 10.0,
                 mtu: int = 517, **kwargs: Any):
        super().__init__(address_or_ble_device, disconnected_callback=disconnected_callback, timeout=timeout)
        self._hci_address = (address_or_ble_device.details
                             if isinstance(address_or_ble_device, BLEDevice)
                             and isinstance(address_or_ble_device.details, hci.Address) else None)
        self._name = address_or_ble_device.name if isinstance(address_or_ble_device, BLEDevice) else None
        self._mtu_request = mtu
        self._connection = None
        self._peer: Peer | None = None
        self._gone: asyncio.Future | None = None  # resolved when the connection ends
        self._proxies: dict[int, Any] = {}  # handle -> bumble proxy
        self._subscribers: dict[int, Any] = {}

    # ------------------------------------------------------------------------------------------- connection
    @property
    def name(self) -> str:
        return self._name or self.address

    @property
    def mtu_size(self) -> int:
        return self._connection.att_mtu if self._connection is not None else 23

    @property
    def is_connected(self) -> bool:
        return self._connection is not None and self._gone is not None and not self._gone.done()

    async def connect(self, pair: bool = False, **kwargs: Any) -> None:
        if self.is_connected:
            return
        central = await self.air.central()
        address = self._hci_address or self.air.addresses.get(self.address.upper())
        if address is None:
            raise BleakDeviceNotFoundError(self.address, f"device {self.address} was not found: scan for it first")
        try:
            connection = await within(
                central.connect(address, transport=PhysicalTransport.LE, timeout=self._timeout), self._timeout + 1)
        except (asyncio.TimeoutError, Exception) as error:  # bumble raises its own errors: one bleak error here
            if isinstance(error, asyncio.CancelledError):
                raise
            raise BleakError(f"could not connect to {self.address}: {error!r}") from error
        self._connection = connection
        self._gone = asyncio.get_running_loop().create_future()
        connection.on("disconnection", self._on_disconnection)
        self._peer = Peer(connection)
        try:
            await self._encrypt_if_bonded(central, connection)
            # bumble does not exchange the MTU by itself: ask for it, as a phone or BlueZ would
            await self._op(self._peer.request_mtu(self._mtu_request))
            await self._discover()
        except BaseException:
            await self.disconnect()
            raise

    def _on_disconnection(self, reason) -> None:
        gone = self._gone
        if gone is None or gone.done():
            return
        gone.set_result(reason)
        self._connection = None
        # every disconnect, ours or the peer's: bleak's callback (the platform stacks do the same)
        if self._disconnected_callback is not None:
            self._disconnected_callback()

    async def disconnect(self) -> None:
        if not self.is_connected:
            return
        connection, gone = self._connection, self._gone
        try:
            await within(connection.disconnect(), self._timeout)
        except Exception:  # already gone
            pass
        try:
            await within(asyncio.shield(gone), self._timeout)
        except asyncio.TimeoutError:
            self._on_disconnection(None)

    async def _encrypt_if_bonded(self, central: Device, connection) -> None:
        if await central.keystore.get(str(connection.peer_address)) is None:
            return
        try:
            await self._op(connection.encrypt(), timeout=self._timeout)
        except BleakError:
            pass  # the peripheral has no key for us any more: protected writes will say so

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        """Pair and bond (module docstring); BleakError when the peripheral refuses or the link drops."""
        if not self.is_connected:
            raise BleakError("not connected: connect before pairing")
        try:
            await self._op(self._connection.pair(), timeout=max(self._timeout, 30.0))
        except BleakError as error:
            raise BleakError(f"pairing with {self.address} failed: {error}") from error

    async def unpair(self) -> None:
        """Forget the keys for this peripheral and disconnect."""
        central = await self.air.central()
        address = self._hci_address or self.air.addresses.get(self.address.upper())
        if self._connection is not None:
            address = self._connection.peer_address
        if address is not None and await central.keystore.get(str(address)) is not None:
            await central.keystore.delete(str(address))
        await self.disconnect()

    async def _op(self, coro, timeout: float | None = None):
        """Run one GATT operation; BleakError when the connection ends meanwhile or it takes too long (bumble's
        own ATT timeout is 30 s)."""
        if not self.is_connected:
            coro.close()
            raise BleakError("not connected")
        task = asyncio.ensure_future(coro)
        gone = self._gone
        done, _ = await asyncio.wait({task, gone}, timeout=timeout or self._timeout,
                                     return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            try:
                return task.result()
            except BleakError:
                raise
            except Exception as error:  # str() of bumble's ATT_Error names the ATT error, as the platforms' do
                raise BleakError(str(error) or repr(error)) from error
        task.cancel()
        if gone in done:
            raise BleakError("disconnected during the operation")
        raise BleakError("timed out")

    async def _discover(self) -> None:
        peer = self._peer
        services = BleakGATTServiceCollection()
        for s in await self._op(peer.discover_services()):
            bs = BleakGATTService(s, s.handle, uuid_str(s.uuid))
            services.add_service(bs)
            for c in await self._op(peer.discover_characteristics(service=s)):
                props = _properties(c.properties)
                bc = BleakGATTCharacteristic(c, c.handle, uuid_str(c.uuid), props,
                                             lambda: self.mtu_size - 3, bs)
                services.add_characteristic(bc)
                self._proxies[c.handle] = c
                for d in await self._op(peer.discover_descriptors(characteristic=c)):
                    services.add_descriptor(BleakGATTDescriptor(d, d.handle, uuid_str(d.type), bc))
                    self._proxies[d.handle] = d
        self.services = services

    # ------------------------------------------------------------------------------------------------- I/O
    async def read_gatt_char(self, characteristic: BleakGATTCharacteristic, *, use_cached: bool = False,
                             **kwargs: Any) -> bytearray:
        return bytearray(await self._op(self._peer.read_value(self._proxies[characteristic.handle])))

    async def read_gatt_descriptor(self, descriptor: BleakGATTDescriptor, *, use_cached: bool = False,
                                   **kwargs: Any) -> bytearray:
        return bytearray(await self._op(self._peer.read_value(self._proxies[descriptor.handle])))

    async def write_gatt_char(self, characteristic: BleakGATTCharacteristic, data, response: bool) -> None:
        data = bytes(data)
        if len(data) > self.mtu_size - 3:
            # a platform stack refuses (or silently truncates) it; refusing keeps a test honest
            raise BleakError(f"write of {len(data)} bytes is longer than the ATT MTU {self.mtu_size} - 3")
        await self._op(self._peer.write_value(self._proxies[characteristic.handle], data, with_response=response))

    async def write_gatt_descriptor(self, descriptor: BleakGATTDescriptor, data) -> None:
        await self._op(self._peer.write_value(self._proxies[descriptor.handle], bytes(data), with_response=True))

    async def start_notify(self, characteristic: BleakGATTCharacteristic, callback, **kwargs: Any) -> None:
        proxy = self._proxies[characteristic.handle]

        def subscriber(value: bytes) -> None:
            callback(bytearray(value))

        old = self._subscribers.pop(characteristic.handle, None)
        if old is not None:
            await self._op(self._peer.unsubscribe(proxy, old))
        self._subscribers[characteristic.handle] = subscriber
        await self._op(self._peer.subscribe(proxy, subscriber, prefer_notify=True))

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        subscriber = self._subscribers.pop(characteristic.handle, None)
        if subscriber is not None and self.is_connected:
            await self._op(self._peer.unsubscribe(self._proxies[characteristic.handle], subscriber))


def _properties(props: Characteristic.Properties) -> list:
    names = []
    P = Characteristic.Properties
    for flag, name in ((P.BROADCAST, "broadcast"), (P.READ, "read"),
                       (P.WRITE_WITHOUT_RESPONSE, "write-without-response"), (P.WRITE, "write"),
                       (P.NOTIFY, "notify"), (P.INDICATE, "indicate"),
                       (P.AUTHENTICATED_SIGNED_WRITES, "authenticated-signed-writes"),
                       (P.EXTENDED_PROPERTIES, "extended-properties")):
        if props & flag:
            names.append(name)
    return names
