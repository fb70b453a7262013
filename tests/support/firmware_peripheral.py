"""The emulated sensor that *is* the firmware: firmware/main.py's App and its own BLE transport (firmware/link_ble.py,
MicroPython's ``bluetooth.BLE`` API) run in the MicroPython unix port (``simboard.py --link ble``), and the emulated
stack under it (firmware/sim/bluetooth.py) is bridged to a bumble peripheral on an ``Air``.

The bridge is the stack's own script and record (see the comment at the top of firmware/sim/bluetooth.py):

  firmware -> air   the binary record, streamed over a pipe (an inherited fd, opened as /dev/fd/N by the firmware):
                    S (the GATT layout: this peripheral's services are built from it, the firmware decides), V (local
                    values: served to reads), F (mtu, gap_name), A (advertising: started, changed or stopped with the
                    firmware's payloads), N (notifications: sent on the mirrored characteristic), K (the firmware
                    drops the central), X (errors), Z (end)
  air -> firmware   script lines on the firmware's stdin: connect, mtu, subscribe (CCCD writes), write (control
                    writes), disconnect, and, with ``buffers``, ``budget`` once and ``free 1`` per notification the
                    bumble stack took, so that gatts_notify meets ENOMEM when the firmware outruns the bridge

Security: bumble's own Security Manager pairs, as the firmware configured it (F records of ``config(bond=,
le_secure=, mitm=, io=)``), and its key store *is* the firmware's: ``update``/``get``/``delete`` become ``secret
set``/``secret get`` lines (MicroPython's _IRQ_SET_SECRET / _IRQ_GET_SECRET, answered by the firmware's
bonds.py from its flash file) and wait for the 'Y' record with the answer. A finished pairing (after its keys were
handed over) or a bonded central's encryption becomes an ``encrypted`` line (_IRQ_ENCRYPTION_UPDATE); writes that
arrive while a pairing is under way wait for it, as NimBLE delivers them after its encryption event. ATT
permissions follow the firmware's flags as NimBLE decides them: a write to a value with _FLAG_WRITE_ENCRYPTED on a
link that is not encrypted is answered with insufficient encryption when the store holds a key for the central,
else insufficient authentication, and never reaches the firmware. ``flash_dir`` keeps the firmware's files (bonds,
profile) across instances: a reboot of the sensor.

Differences from a board: bumble's LocalLink has no radio timing; its controller reports the advertising data as the
scan response, so the scan response is appended to the advertisement (as tests/support/emulated_sensor.py does).
Notifications are sent whether or not the central subscribed (NimBLE's gatts_notify does the same); a central drops
the ones it did not subscribe to.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import struct
import tempfile
import time
from pathlib import Path

from bumble.att import ATT_Error, ErrorCode
from bumble.device import Connection, Device
from bumble.gatt import Characteristic, CharacteristicValue, Descriptor, Service
from bumble.hci import Address
from bumble.keys import KeyStore, PairingKeys
from bumble.pairing import PairingConfig, PairingDelegate

from hipcheck.errors import DeviceError
from hipcheck.links.simboard import firmware_command, prepare_trace

from .bleak_bumble import Air

_HDR = struct.Struct("<BHHH")
P = Characteristic.Properties
_R, _W = Characteristic.READABLE, Characteristic.WRITEABLE
_FLAG_READ, _FLAG_WNR, _FLAG_WRITE, _FLAG_NOTIFY, _FLAG_INDICATE = 0x02, 0x04, 0x08, 0x10, 0x20
_FLAG_WRITE_ENCRYPTED, _FLAG_WRITE_AUTHENTICATED = 0x1000, 0x2000
_SEC_PEER = 2  # NimBLE's sec type of the peer's keys
# MicroPython's io capabilities (ble.config(io=...)) as bumble's
_IOCAP = PairingDelegate.IoCapability
_IO = {0: _IOCAP.DISPLAY_OUTPUT_ONLY, 1: _IOCAP.DISPLAY_OUTPUT_AND_YES_NO_INPUT, 2: _IOCAP.KEYBOARD_INPUT_ONLY,
       3: _IOCAP.NO_OUTPUT_NO_INPUT, 4: _IOCAP.DISPLAY_OUTPUT_AND_KEYBOARD_INPUT}


class FirmwareError(DeviceError, RuntimeError):
    """The firmware did not come up, or the bridge lost it; the message holds its console output."""


def _bumble_uuid(s: str) -> str:
    return s[2:].upper() if s.startswith("0x") else s  # the record writes 16-bit UUIDs as 0xNNNN


def _ad_structures(payload: bytes) -> dict[int, bytes]:
    out, o = {}, 0
    while o < len(payload) and payload[o]:
        n = payload[o]
        out[payload[o + 1]] = payload[o + 2:o + 1 + n]
        o += 1 + n
    return out


def secret_key(name: str) -> bytes:
    """A bumble key-store name (an address, 'XX:..:XX/P' for a public one) as the stack's key: ble_addr_t, the
    address type then the address as written (most significant byte first)."""
    address = Address(name)
    return bytes([address.address_type]) + bytes(reversed(address.address_bytes))


class FirmwareKeyStore(KeyStore):
    """bumble's key store, kept by the firmware (module docstring, "Security")."""

    def __init__(self, bridge: "FirmwarePeripheral"):
        self.bridge = bridge

    async def update(self, name: str, keys: PairingKeys) -> None:
        value = json.dumps(keys.to_dict(), separators=(",", ":")).encode()
        kept, _ = await self.bridge.secret(f"secret set {_SEC_PEER} {secret_key(name).hex()} {value.hex()}")
        if not kept:
            self.bridge.keys_refused += 1  # NimBLE goes on regardless; the firmware drops the connection itself

    async def get(self, name: str) -> PairingKeys | None:
        found, value = await self.bridge.secret(f"secret get {_SEC_PEER} 0 {secret_key(name).hex()}")
        return PairingKeys.from_dict(json.loads(value)) if found else None

    async def delete(self, name: str) -> None:
        await self.bridge.secret(f"secret set {_SEC_PEER} {secret_key(name).hex()} -")

    async def get_all(self) -> list[tuple[str, PairingKeys]]:
        return []  # no address resolution here: the firmware lists nothing to bumble's resolving list


class FirmwarePeripheral:
    """``async with FirmwarePeripheral(air, walk_csv, seconds=12) as sensor:`` the firmware advertises on ``air``.

    trace: a walk CSV (converted to the chip's trace) or a chip trace (.hct). seconds: device time to sample (then it
    pauses and keeps answering). mtu: what the firmware offers in the MTU exchange. buffers: the stack's notify
    buffers (None: unlimited; see the module comment). Counters and state: ``name`` (the firmware's, from its
    advertisement), ``address``, ``connections``, ``writes`` (values the central wrote to a writable
    characteristic), ``notified`` (``unsubscribed``: of them, sent on a characteristic the central had not
    subscribed to, which it drops), ``dropped`` (N records with no connection to carry them), ``enomem`` (E records),
    ``errors`` (X records), ``stats`` (the Z record), ``record`` (the sim board's JSON record, after stop);
    security: ``att_errors`` ((handle, ATT error code) answered to the central), ``encryption`` (the
    (encrypted, authenticated, bonded, key_size) updates the firmware got), ``keys_refused`` (key writes the
    firmware refused). flash_dir: where the firmware keeps its files (default: a fresh temporary folder; give the
    same folder, and the same ``address``, to reboot the same sensor)."""

    def __init__(self, air: Air, trace, *, seconds: float | None = None, mtu: int = 247, chip: str = "LSM6DSOX",
                 rate_hz: int = 100, buffers: int | None = None, address: str | None = None,
                 start_timeout_s: float = 15.0, extra_args: tuple = (), flash_dir=None):
        self.air = air
        self.trace = Path(trace)
        self.seconds = seconds
        self.mtu = mtu
        self.chip = chip
        self.rate_hz = rate_hz
        self.buffers = buffers
        self._address = address
        self.start_timeout_s = start_timeout_s
        self.extra_args = tuple(extra_args)
        self.device: Device | None = None
        self.connection: Connection | None = None
        self.name: str | None = None
        self.address: str | None = None
        self.proc: asyncio.subprocess.Process | None = None
        self._tmp: tempfile.TemporaryDirectory | None = None
        self.workdir: Path | None = None
        self._reader_task: asyncio.Task | None = None
        self._adv_task: asyncio.Task | None = None
        self._advertising = asyncio.Event()  # set by the first A record that starts advertising
        self._ended = False
        self._fw_connected = False  # the firmware's view: between our `connect` and its D record
        self._adv: tuple[bytes, bytes, bool, float] | None = None  # what the firmware advertises now
        self._hidden_until = 0.0
        self._chars: dict[int, Characteristic] = {}  # firmware value handle -> mirrored characteristic
        self._values: dict[int, bytes] = {}  # firmware value handle -> value (V and W records)
        self._config: dict[str, str] = {}
        self.connections = 0
        self.writes: list[bytes] = []
        self.notified = 0
        self.unsubscribed = 0  # of them, sent before the central subscribed (a central drops those)
        self.dropped = 0
        self._subscribed: set[int] = set()
        self.enomem = 0
        self.errors: list[str] = []
        self.stats: str | None = None
        self.record: dict | None = None
        self.flash_dir = None if flash_dir is None else Path(flash_dir)
        self.att_errors: list[tuple[int, int]] = []
        self.encryption: list[tuple[int, int, int, int]] = []
        self.keys_refused = 0
        self._secret_replies: collections.deque = collections.deque()
        self._pairing = False  # a pairing under way on the connection: its writes wait (module docstring)
        self._held: list[str] = []

    # ------------------------------------------------------------------------------------------- lifecycle
    async def __aenter__(self) -> "FirmwarePeripheral":
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    async def start(self) -> "FirmwarePeripheral":
        try:
            await self._start()
        except BaseException:
            await self.stop()  # whatever had started: the firmware ended, the tasks awaited
            raise
        return self

    async def _start(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="hipcheck-fwble-")
        self.workdir = Path(self._tmp.name)
        flash = self.flash_dir or self.workdir
        trace = self.trace
        if trace.suffix.lower() == ".csv":
            trace = self.workdir / "trace.hct"
            prepare_trace(self.trace, trace, self.chip, self.rate_hz)
        options = ["--link", "ble", "--realtime", "--chip", self.chip, "--rate", self.rate_hz, "--mtu", self.mtu,
                   "--record", self.workdir / "record.json", "--profile", flash / "profile.bin",
                   "--bonds", flash / "bonds.bin"]
        if self.seconds is not None:
            options += ["--seconds", repr(float(self.seconds))]
        self._console = open(self.workdir / "console.txt", "w+b")
        rfd, wfd = os.pipe()  # the record: the firmware opens /dev/fd/wfd (pass_fds keeps the number)
        record_pipe = os.fdopen(rfd, "rb", 0)
        try:
            args, env = firmware_command(trace, *options, "--ble-record", f"/dev/fd/{wfd}", *self.extra_args)
            self.proc = await asyncio.create_subprocess_exec(
                *args, stdin=asyncio.subprocess.PIPE, stdout=self._console, stderr=self._console, env=env,
                cwd=self.workdir, pass_fds=(wfd,))
        except BaseException:
            record_pipe.close()
            raise
        finally:
            os.close(wfd)  # ours: the pipe ends (EOF) when the firmware exits
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=1 << 20)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), record_pipe)
        self._reader_task = asyncio.create_task(self._read_records(reader))
        if self.buffers is not None:
            self._line(f"budget {int(self.buffers)}")
        waiter = asyncio.ensure_future(self._advertising.wait())
        try:
            await asyncio.wait({self._reader_task, waiter}, timeout=self.start_timeout_s,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if not self._advertising.is_set():
            if self._reader_task.done():  # the record ended: the firmware exited
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.proc.wait(), 2.0)
                raise FirmwareError(f"the firmware exited before advertising{self._why()}")
            raise FirmwareError(f"the firmware did not advertise within {self.start_timeout_s} s{self._why()}")

    async def stop(self) -> None:
        """End the firmware (its stdin closes: the script ends, it writes its record and exits; killed after 10 s),
        the bridge's tasks and the bumble side."""
        self._ended = True
        if self._adv_task is not None:
            self._adv_task.cancel()
            with contextlib.suppress(BaseException):
                await self._adv_task
        proc = self.proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(Exception):
                proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), 10.0)
            except asyncio.TimeoutError:
                proc.kill()
                await proc.wait()
        if self._reader_task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._reader_task), 5.0)  # the rest of the record (Z)
            except (asyncio.TimeoutError, Exception):
                self._reader_task.cancel()
                with contextlib.suppress(BaseException):
                    await self._reader_task
        device = self.device
        if device is not None:
            with contextlib.suppress(Exception):
                if device.is_advertising:
                    await device.stop_advertising()
                if self.connection is not None:
                    await self.connection.disconnect()
        if self.workdir is not None:
            with contextlib.suppress(OSError, ValueError):
                import json
                self.record = json.loads((self.workdir / "record.json").read_text())
        if self._tmp is not None:
            self.console = self.console_text()
            with contextlib.suppress(AttributeError):
                self._console.close()
            self._tmp.cleanup()
            self._tmp = None

    def console_text(self) -> str:
        """The firmware's stdout and stderr so far."""
        try:
            return (self.workdir / "console.txt").read_text(errors="replace")
        except (OSError, TypeError):
            return getattr(self, "console", "")

    def _why(self) -> str:
        code = self.proc.returncode if self.proc is not None else None
        return (f" (exit code {code})" if code is not None else "") + f"; console:\n{self.console_text()[-3000:]}"

    # ---------------------------------------------------------------------------------------- air -> firmware
    def _line(self, text: str) -> None:
        proc = self.proc
        if proc is None or proc.returncode is not None or self._ended or proc.stdin.is_closing():
            return
        proc.stdin.write(text.encode() + b"\n")  # buffered by the transport: the order of events is kept

    def _on_connection(self, connection: Connection) -> None:
        if self.connection is not None or self._adv is None or not self._adv[2]:
            # the firmware would refuse it (one central, connectable advertising only)
            asyncio.ensure_future(connection.disconnect())
            return
        self.connection = connection
        self.connections += 1
        self._subscribed.clear()
        self._fw_connected = True
        peer = bytes(reversed(bytes(connection.peer_address)))  # as written, most significant byte first
        self._line(f"connect 0 {peer.hex()}")
        self._pairing = False
        connection.on("disconnection", lambda reason: self._on_disconnection(connection))
        connection.on("connection_att_mtu_update", lambda: self._line(f"mtu {connection.att_mtu}"))
        connection.on("pairing_start", self._on_pairing_start)
        connection.on("pairing", lambda keys: self._on_secured(connection, keys))
        connection.on("pairing_failure", lambda reason: self._on_pairing_failure())
        connection.on("connection_encryption_change", lambda: self._on_encryption(connection))

    # ------------------------------------------------------------------------------------------ security
    def _pairing_config(self, _connection: Connection) -> PairingConfig:
        """The Security Manager's side as the firmware configured its stack (MicroPython's defaults otherwise)."""
        c = self._config
        yes = ("True", "1")
        # identity: the random static address it advertises (as tests/support/bleak_bumble.py's central)
        return PairingConfig(sc=c.get("le_secure") in yes, mitm=c.get("mitm") in yes, bonding=c.get("bond") in yes,
                             delegate=PairingDelegate(io_capability=_IO[int(c.get("io", 3))]),
                             identity_address_type=PairingConfig.AddressType.RANDOM)

    async def secret(self, line: str) -> tuple[int, bytes]:
        """A secret line to the firmware and its answer ('Y' record: arg, payload)."""
        reply = asyncio.get_running_loop().create_future()
        self._secret_replies.append(reply)
        self._line(line)
        if self.proc is None or self.proc.returncode is not None or self._ended:
            return 0, b""
        return await asyncio.wait_for(reply, 5.0)

    def _on_pairing_start(self) -> None:
        self._pairing = True

    def _on_pairing_failure(self) -> None:
        self._pairing = False
        self._release()

    def _on_secured(self, connection: Connection, keys: PairingKeys) -> None:
        # after the keys were handed to the firmware's store: the stack's encryption event
        self._pairing = False
        if connection is self.connection:
            authenticated = int(keys.ltk is not None and keys.ltk.authenticated)
            self._line(f"encrypted 0 1 {authenticated} {int(self._pairing_config(connection).bonding)} 16")
        self._release()

    def _on_encryption(self, connection: Connection) -> None:
        # a bonded central's reconnection (no pairing under way): encrypted with the key the store gave
        if not self._pairing and connection is self.connection and connection.is_encrypted:
            self._line("encrypted 0 1 0 1 16")

    def _release(self) -> None:
        held, self._held = self._held, []
        for line in held:
            self._line(line)

    def _on_disconnection(self, connection: Connection) -> None:
        if connection is not self.connection:
            return
        self.connection = None
        if self._fw_connected:  # the central (or the cut) ended it: the firmware learns it from its stack
            self._fw_connected = False
            self._line("disconnect")

    def _on_subscription(self, handle: int, notify: bool, indicate: bool) -> None:
        (self._subscribed.add if notify or indicate else self._subscribed.discard)(handle)
        self._line(f"subscribe {handle} {1 if notify else 2 if indicate else 0}")

    async def _on_write(self, connection: Connection, handle: int, flags: int, value: bytes) -> None:
        if not flags & (_FLAG_WRITE | _FLAG_WNR):
            raise ATT_Error(ErrorCode.WRITE_NOT_PERMITTED)  # notify-only (the log): as the firmware's stack
        if flags & (_FLAG_WRITE_ENCRYPTED | _FLAG_WRITE_AUTHENTICATED) and not connection.is_encrypted:
            # as NimBLE: a key kept for this central -> insufficient encryption, none -> insufficient authentication
            found, _ = await self.secret(f"secret get {_SEC_PEER} 0 {secret_key(str(connection.peer_address)).hex()}")
            code = ErrorCode.INSUFFICIENT_ENCRYPTION if found else ErrorCode.INSUFFICIENT_AUTHENTICATION
            self.att_errors.append((handle, int(code)))
            raise ATT_Error(code)
        value = bytes(value)
        self.writes.append(value)
        if value:  # the script has no empty write (nor does a command ever need one)
            line = f"write {handle} {value.hex()}"
            if self._pairing:
                self._held.append(line)
            else:
                self._line(line)

    async def cut(self, seconds: float) -> None:
        """The link breaks now (the connection drops, the firmware sees the central go) and the sensor stays out
        of reach for ``seconds``: the firmware's own re-advertising reaches the air only after that."""
        self._hidden_until = time.monotonic() + seconds
        if self.device is not None and self.device.is_advertising:
            await self.device.stop_advertising()
        if self.connection is not None:
            await self.connection.disconnect()
        self._schedule_advertising()

    # ---------------------------------------------------------------------------------------- firmware -> air
    async def _read_records(self, reader: asyncio.StreamReader) -> None:
        while True:
            try:
                head = await reader.readexactly(_HDR.size)
            except asyncio.IncompleteReadError:
                break  # the firmware exited
            kind, conn, arg, n = _HDR.unpack(head)
            payload = await reader.readexactly(n) if n else b""
            await self._on_record(chr(kind), conn, arg, payload)

    async def _on_record(self, kind: str, conn: int, arg: int, payload: bytes) -> None:
        if kind == "N":
            await self._notify(arg, payload)
        elif kind == "V" or kind == "W":
            self._values[arg] = payload
        elif kind == "E":
            self.enomem += 1
        elif kind == "A":
            await self._on_advertising(arg, payload)
        elif kind == "F":
            k, _, v = payload.decode().partition("=")
            self._config[k] = v
        elif kind == "S":
            await self._build(payload.decode())
        elif kind == "K":  # the firmware drops the central
            self._fw_connected = False
            if self.connection is not None:
                with contextlib.suppress(Exception):
                    await self.connection.disconnect()
        elif kind == "D":
            self._fw_connected = False
            if self.connection is not None and not self._ended:  # e.g. the firmware switched the radio off
                with contextlib.suppress(Exception):
                    await self.connection.disconnect()
        elif kind == "Y":
            if self._secret_replies:
                reply = self._secret_replies.popleft()
                if not reply.done():
                    reply.set_result((arg, payload))
        elif kind == "P":
            self.encryption.append(tuple(payload))
        elif kind == "Q":
            self.att_errors.append((arg, payload[0]))
        elif kind == "X":
            self.errors.append(payload.decode(errors="replace"))
        elif kind == "Z":
            self.stats = payload.decode(errors="replace")

    async def _notify(self, handle: int, value: bytes) -> None:
        char = self._chars.get(handle)
        connection = self.connection
        if char is None or connection is None:
            self.dropped += 1
        else:
            try:
                await self.device.notify_subscriber(connection, char, value, force=True)
                self.notified += 1
                if handle not in self._subscribed:
                    self.unsubscribed += 1
            except Exception:
                self.dropped += 1
        if self.buffers is not None:
            self._line("free 1")  # the bumble stack took it: the buffer returns to the firmware's stack

    async def _build(self, layout: str) -> None:
        """The bumble device and its GATT server, mirroring the firmware's registration (S record)."""
        if self.device is not None:
            return  # a second registration would need the bumble server rebuilt; the firmware registers once
        layout_services: list[tuple[str, list[Characteristic]]] = []
        chars: list[Characteristic] = []
        current: Characteristic | None = None
        for line in layout.splitlines():
            f = line.split()
            if not f:
                continue
            if f[0] == "S":
                chars = []
                layout_services.append((_bumble_uuid(f[2]), chars))
            elif f[0] == "C":
                value_handle, flags, uuid = int(f[2]), int(f[4]), _bumble_uuid(f[5])
                current = Characteristic(uuid, P(flags & 0xFF), self._permissions(flags),
                                         CharacteristicValue(read=self._reader(value_handle),
                                                             write=self._writer(value_handle, flags)))
                if flags & (_FLAG_NOTIFY | _FLAG_INDICATE):
                    current.on("subscription", self._subscriber(value_handle))
                self._chars[value_handle] = current
                chars.append(current)
            elif f[0] == "D" and current is not None:
                handle, flags, uuid = int(f[1]), int(f[2]), _bumble_uuid(f[3])
                current.descriptors.append(Descriptor(uuid, self._permissions(flags), CharacteristicValue(
                    read=self._reader(handle), write=self._writer(handle, flags))))
        services = [Service(uuid, cs) for uuid, cs in layout_services]  # Service copies its list: build last
        name = self._config.get("gap_name", "hipcheck-firmware")
        self.device = device = self.air.new_device(name, self._address)
        self.address = str(device.random_address.to_string(False)).upper()
        device.keystore = FirmwareKeyStore(self)
        device.pairing_config_factory = self._pairing_config
        device.add_services(services)
        mtu = int(self._config.get("mtu", self.mtu))
        device.gatt_server.max_mtu = mtu
        device.on("connection", self._on_connection)
        await device.power_on()

    @staticmethod
    def _permissions(flags: int):
        perm = 0
        if flags & _FLAG_READ:
            perm |= _R
        if flags & (_FLAG_WRITE | _FLAG_WNR):
            perm |= _W
        return perm or _R  # notify-only: bumble wants some permission; the central never reads them

    def _reader(self, handle: int):
        return lambda _connection: self._values.get(handle, b"")

    def _writer(self, handle: int, flags: int):
        return lambda connection, value: self._on_write(connection, handle, flags, value)

    def _subscriber(self, handle: int):
        return lambda _connection, notify, indicate: self._on_subscription(handle, notify, indicate)

    async def _on_advertising(self, connectable: int, payload: bytes) -> None:
        interval_us, n = struct.unpack_from("<IB", payload)
        if interval_us == 0xFFFFFFFF:
            self._adv = None
            if self.device is not None and self.device.is_advertising:
                await self.device.stop_advertising()
            return
        adv, resp = payload[5:5 + n], payload[5 + n:]
        self._adv = (adv, resp, bool(connectable), interval_us / 1000)
        name = _ad_structures(resp).get(0x09) or _ad_structures(adv).get(0x09) or _ad_structures(adv).get(0x08)
        if name:
            self.name = name.decode()
        if self.device is not None and self.device.is_advertising:
            await self.device.stop_advertising()  # new payloads
        self._schedule_advertising()

    def _schedule_advertising(self) -> None:
        if self._adv_task is None or self._adv_task.done():
            self._adv_task = asyncio.create_task(self._advertise_when_visible())

    async def _advertise_when_visible(self) -> None:
        while (delay := self._hidden_until - time.monotonic()) > 0:  # a later cut() moves it
            await asyncio.sleep(delay)
        adv = self._adv
        device = self.device
        if adv is None or device is None or self._ended or self.connection is not None or device.is_advertising:
            return
        from bumble.device import AdvertisingType
        kind = (AdvertisingType.UNDIRECTED_CONNECTABLE_SCANNABLE if adv[2]
                else AdvertisingType.UNDIRECTED_SCANNABLE)
        await device.start_advertising(advertising_type=kind, advertising_data=adv[0] + adv[1],
                                       scan_response_data=adv[1], advertising_interval_min=adv[3],
                                       advertising_interval_max=adv[3])
        self._advertising.set()
