"""BLE transport (docs/protocol.md, "BLE GATT"): one custom service with data (notify), control (write, write
without response, notify: COMMAND in, ACK and EVENT out) and log (notify), plus Battery (0x180F) and Device
Information (0x180A).

Written on MicroPython's raw ``bluetooth`` API in aioble's manner: the IRQ handler only copies what it must and sets
a flag; ``run()`` (an asyncio task) advertises, accepts one central, re-advertises after a disconnect and hands
commands to ``on_packet``; every wait has a timeout. On a board, aioble (``mip install aioble``) would replace the
advertising/connection part; the notify path stays on ``gatts_notify``, which aioble does not make cheaper.

Link interface (same as the serial and stdio links): ``mtu``, ``connected``, ``async run()``, ``send(buf, n)``
(DATA), ``send_control(buf, n)`` (ACK, EVENT), ``send_log(buf, n)`` (LOG_CHUNK), all returning False when the
packet could not be sent now (the caller keeps it and retries; nothing is dropped silently), and ``on_packet(buf,
n)``, set by main, called from ``run()`` with each COMMAND written to the control characteristic.

The notify path allocates nothing: packets go out through memoryviews cached per (buffer, length), and the stack's
ENOMEM (its buffers are full until the next connection events) becomes a back-off of 2, 4, ... 32 ms during which
``send`` returns False without calling the stack. After each connection the sends return False until the central has
written a command (or 1.5 s passed), so nothing goes out before it subscribed.

Security (docs/security.md): the stack pairs with LE Secure Connections and bonds (``config(bond=True,
le_secure=True, mitm=False, io=NO_INPUT_OUTPUT)``: the sensor has no display nor keys, so Just Works); its keys
live in ``bonds.Bonds`` (flash) through ``_IRQ_GET_SECRET`` / ``_IRQ_SET_SECRET``, which keeps new keys only while
the pairing window is open. The control characteristic needs an encrypted link (``_FLAG_WRITE_ENCRYPTED``: the
stack answers an unencrypted write with an ATT error). A connection is *trusted* once ``_IRQ_ENCRYPTION_UPDATE``
says encrypted and bonded with a key the store kept; only then does ``connected`` read True, commands reach
``on_packet`` and anything is notified (data, control, log: NimBLE's CCCDs carry no security of their own). A
central that encrypts without a kept bond (it paired outside the window) is disconnected at once; one that is not
trusted within _TRUST_WAIT_MS is disconnected too, so that nobody can hold the sensor's one connection.
"""

import asyncio
import bluetooth
import time
from array import array
from micropython import const

import ident
import packet
from bonds import Bonds

SERVICE_UUID = "8f3c0001-4b7e-4a8d-9e62-3d5a1c7b0e91"
DATA_CHAR_UUID = "8f3c0002-4b7e-4a8d-9e62-3d5a1c7b0e91"
CONTROL_CHAR_UUID = "8f3c0003-4b7e-4a8d-9e62-3d5a1c7b0e91"
LOG_CHAR_UUID = "8f3c0004-4b7e-4a8d-9e62-3d5a1c7b0e91"
DEVICE_NAME_PREFIX = "hipcheck-"  # + ident.name_id() in hex: hipcheck-XXXX
MANUFACTURER = "hipcheck"

_IRQ_CENTRAL_CONNECT = const(1)
_IRQ_CENTRAL_DISCONNECT = const(2)
_IRQ_GATTS_WRITE = const(3)
_IRQ_GATTS_READ_REQUEST = const(4)
_IRQ_MTU_EXCHANGED = const(21)
_IRQ_ENCRYPTION_UPDATE = const(28)
_IRQ_GET_SECRET = const(29)
_IRQ_SET_SECRET = const(30)
_IO_CAPABILITY_NO_INPUT_OUTPUT = const(3)

_FLAG_READ = const(0x0002)
_FLAG_WRITE_NO_RESPONSE = const(0x0004)
_FLAG_WRITE = const(0x0008)
_FLAG_NOTIFY = const(0x0010)
_FLAG_WRITE_ENCRYPTED = const(0x1000)

_ENOMEM = const(12)
_MIN_MTU = const(23)
_MAX_MTU = const(517)
_ATT_OVERHEAD = const(3)
_RX_SLOT = const(514)  # the largest write at MTU 517; also the control value's buffer, so a long write arrives
# whole and is refused, instead of being truncated by the stack to something that parses
_RX_SLOTS = const(4)
_CTRL_SLOT = const(20)  # ACK and EVENT fit 20 bytes (every packet but DATA does)
_CTRL_SLOTS = const(4)
_BUSY_SLOTS = const(4)
_NVIEW = const(8)
_BACKOFF_MIN_MS = const(2)
_BACKOFF_MAX_MS = const(32)
_IDLE_WAIT_MS = const(1000)
# After a connection nothing is notified until the central writes a command, or this long has passed: the stack has
# no event for a CCCD write, and notifications sent before the central subscribed are dropped on its side (seen
# against bumble; NimBLE sends them too). A hipcheck host subscribes, then sends INFO, so it never waits.
_LISTEN_MS = const(1500)
_TRUST_WAIT_MS = const(30000)  # a connection must be trusted (bonded, encrypted) within this: pairing takes seconds
_MIN_KEY_SIZE = const(16)

_ADV_FLAGS = const(0x01)
_ADV_NAME_SHORT = const(0x08)
_ADV_NAME_COMPLETE = const(0x09)
_ADV_UUID128_COMPLETE = const(0x07)
_ADV_MAX = const(31)


def uuid128_le(s):
    """A 128-bit UUID string as the 16 little-endian bytes that go on the air."""
    h = s.replace("-", "")
    b = bytearray(16)
    for i in range(16):
        b[15 - i] = int(h[2 * i:2 * i + 2], 16)
    return bytes(b)


def _ad(kind, data):
    return bytes((len(data) + 1, kind)) + data


def advertising_payloads(name):
    """(adv, resp): flags, the service UUID and the short name "hipcheck" in the advertisement (31 bytes), the
    complete name hipcheck-XXXX in the scan response. Flags + UUID + complete name would need 36 bytes."""
    adv = (_ad(_ADV_FLAGS, b"\x06")  # LE general discoverable, BR/EDR not supported
           + _ad(_ADV_UUID128_COMPLETE, uuid128_le(SERVICE_UUID))
           + _ad(_ADV_NAME_SHORT, DEVICE_NAME_PREFIX[:-1].encode()))
    resp = _ad(_ADV_NAME_COMPLETE, name.encode())
    if len(adv) > _ADV_MAX or len(resp) > _ADV_MAX:
        raise ValueError("advertising payload over 31 bytes")
    return adv, resp


class LinkBle:
    """The BLE transport. ``LinkBle(fw_version, board, imu, battery_pct)``, then ``asyncio.create_task(link.run())``.

    Name: hipcheck-XXXX, XXXX = ``ident.name_id()`` (what INFO's name_id says on any link). Device Information:
    manufacturer "hipcheck", model number = board name, serial number = BLE address (hex), firmware revision =
    fw_version, hardware revision = IMU name. Battery level: ``set_battery(pct)`` (app.App's battery monitor calls
    it when the percentage changes, not per sample).
    bonds: a ``bonds.Bonds`` (default: in RAM, its window open at start, as at a first power-on); window: a
    ``bonds.Window`` (cues, button), run by ``run()``. Counters: notifies, enomem (refusals by the stack), deferred
    (sends refused during the back-off), tx_errors, refused (writes longer than MTU - 3), rx_overflows, ctrl_dropped
    (ACK/EVENT queued when the connection went), connections, trusted (connections that became trusted),
    untrusted_writes (writes from a connection not trusted: dropped), dropped_untrusted (centrals disconnected
    for not being trusted). ``can_pair``: False when the port's stack has no bonding (nothing is ever trusted).
    """

    def __init__(self, fw_version="0.0.0", board="unknown", imu="unknown", battery_pct=100, ble=None,
                 adv_interval_us=100000, mtu=_MAX_MTU, bonds=None, window=None, log=None,
                 trust_wait_ms=_TRUST_WAIT_MS):
        if bonds is None:
            bonds = Bonds()
            bonds.open_window()
        self.bonds = bonds
        self.window = window
        self._log = log
        self._trust_wait_ms = trust_wait_ms
        self.can_pair = True
        self._trusted = False
        self._untrusted_key = False  # the stack was refused a key on this connection (window closed)
        self._new_bond = False
        self.trusted = self.untrusted_writes = self.dropped_untrusted = 0
        self._ble = ble if ble is not None else bluetooth.BLE()
        self._fw = fw_version
        self._board = board
        self._imu = imu
        self._adv_interval_us = adv_interval_us
        self._pref_mtu = mtu
        self.on_packet = None
        self.name = DEVICE_NAME_PREFIX + "0000"
        self._conn = -1
        self._mtu = _MIN_MTU
        self._advertising = False
        self._started = False
        self._reject = -1
        self._flag = asyncio.ThreadSafeFlag()
        self._h_data = self._h_ctrl = self._h_log = self._h_bat = 0
        self._bat = bytearray(1)
        self._bat[0] = max(0, min(100, battery_pct))
        # Back-off after ENOMEM
        self._backoff_ms = 0
        self._retry_at = 0
        # memoryview cache: (buffer, length) -> view, round robin
        self._vbuf = [None] * _NVIEW
        self._vlen = [0] * _NVIEW
        self._vview = [None] * _NVIEW
        self._vnext = 0
        # Received commands: single-producer (IRQ) single-consumer (run) ring; _rx_w and _rx_r only grow (mod 256)
        self._rxq = bytearray(_RX_SLOTS * _RX_SLOT)
        mv = memoryview(self._rxq)
        self._rx_views = [mv[i * _RX_SLOT:(i + 1) * _RX_SLOT] for i in range(_RX_SLOTS)]
        self._rx_len = array("H", [0] * _RX_SLOTS)
        self._rx_w = 0
        self._rx_r = 0
        self._busy = bytearray(2 * _BUSY_SLOTS)  # (opcode, token) of writes that found the queue full
        self._busy_w = 0
        self._busy_r = 0
        # ACK/EVENT waiting for the stack's buffers (FIFO, so they keep their order)
        self._cq = bytearray(_CTRL_SLOTS * _CTRL_SLOT)
        mv = memoryview(self._cq)
        self._cq_views = [mv[i * _CTRL_SLOT:(i + 1) * _CTRL_SLOT] for i in range(_CTRL_SLOTS)]
        self._cq_len = array("H", [0] * _CTRL_SLOTS)
        self._cq_head = 0
        self._cq_count = 0
        self._ack = bytearray(_CTRL_SLOT)
        self.notifies = 0
        self.enomem = 0
        self.deferred = 0
        self.tx_errors = 0
        self.refused = 0
        self.rx_overflows = 0
        self.ctrl_dropped = 0
        self.connections = 0
        self._heard = False  # the central wrote since it connected (see _LISTEN_MS)
        self._connected_at = 0

    # ------------------------------------------------------------------------------------------ link interface

    @property
    def mtu(self):
        """ATT MTU of the current connection (23 until the central exchanges it); a notification holds mtu - 3."""
        return self._mtu

    @property
    def connected(self):
        """A trusted central is connected (module docstring): the app sends only then."""
        return self._conn >= 0 and self._trusted

    def send(self, buf, n):
        """DATA packet buf[:n] on the data characteristic. False: not connected, or the stack is out of buffers
        (retry later, see retry_in_ms). n must fit mtu - 3 (ValueError otherwise: re-encode at the new MTU)."""
        return self._notify(self._h_data, buf, n)

    def send_log(self, buf, n):
        """LOG_CHUNK buf[:n] on the log characteristic; as send()."""
        return self._notify(self._h_log, buf, n)

    def send_control(self, buf, n):
        """ACK or EVENT buf[:n] on the control characteristic. Sent now, or queued (up to 4, in order) while the
        stack is out of buffers and sent by run(); False when not connected or the queue is full."""
        if self._conn < 0 or not self._trusted:
            return False
        if self._cq_count == 0 and self._notify(self._h_ctrl, buf, n):
            return True
        if n > _CTRL_SLOT or self._cq_count == _CTRL_SLOTS:
            return False
        i = (self._cq_head + self._cq_count) % _CTRL_SLOTS
        v = self._cq_views[i]
        for k in range(n):
            v[k] = buf[k]
        self._cq_len[i] = n
        self._cq_count += 1
        self._flag.set()
        return True

    def stats(self):
        """The link's counters (for the sim board's record and the device log)."""
        return {"notifies": self.notifies, "enomem": self.enomem, "deferred": self.deferred,
                "tx_errors": self.tx_errors, "refused": self.refused, "rx_overflows": self.rx_overflows,
                "ctrl_dropped": self.ctrl_dropped, "connections": self.connections, "trusted": self.trusted,
                "untrusted_writes": self.untrusted_writes, "dropped_untrusted": self.dropped_untrusted,
                "bond_entries": len(self.bonds.entries), "keys_refused": self.bonds.refused}

    def retry_in_ms(self):
        """Milliseconds until a send may succeed again (0: now)."""
        if self._backoff_ms == 0:
            return 0
        return max(0, time.ticks_diff(self._retry_at, time.ticks_ms()))

    def set_battery(self, pct):
        """Battery level characteristic (0..100 %); subscribed centrals are notified."""
        self._bat[0] = max(0, min(100, pct))
        if self._started:
            self._ble.gatts_write(self._h_bat, self._bat, True)

    @property
    def handles(self):
        """Value handles (data, control, log, battery), for tests and logs."""
        return self._h_data, self._h_ctrl, self._h_log, self._h_bat

    async def run(self):
        """The transport's task: set up the GATT server, then forever advertise while unconnected, hand received
        commands to on_packet, flush queued ACK/EVENTs and drop a second central."""
        self._start()
        if self.window is not None:
            asyncio.create_task(self.window.run())
        while True:
            if self._conn < 0 and not self._advertising:
                self._advertise()
            if (self._conn >= 0 and not self._trusted and self._reject < 0
                    and time.ticks_diff(time.ticks_ms(), self._connected_at) > self._trust_wait_ms):
                self._reject = self._conn  # connected but never trusted: it must not hold the one connection
            if self._reject >= 0:
                if self._reject == self._conn:
                    self.dropped_untrusted += 1
                self._ble.gap_disconnect(self._reject)
                self._reject = -1
            if self._new_bond:
                self._new_bond = False
                if self.window is not None:
                    self.window.paired()
                else:
                    self.bonds.close_window()
            self._service_rx()
            self._flush_control()
            wait_ms = _IDLE_WAIT_MS if self._trusted or self._conn < 0 else 100  # (the trust deadline)
            if self._cq_count:
                wait_ms = max(1, self.retry_in_ms())
            try:
                await asyncio.wait_for_ms(self._flag.wait(), wait_ms)
            except asyncio.TimeoutError:
                pass

    # ------------------------------------------------------------------------------------------------ set-up

    def _start(self):
        if self._started:
            return
        ble = self._ble
        ble.active(True)
        mac = ble.config("mac")[1]
        self.name = DEVICE_NAME_PREFIX + "%04X" % ident.name_id()  # as INFO's name_id says it on every link
        self._serial = "".join("%02X" % b for b in mac)
        ble.config(gap_name=self.name, mtu=self._pref_mtu)
        try:
            ble.config(bond=True, le_secure=True, mitm=False, io=_IO_CAPABILITY_NO_INPUT_OUTPUT)
        except (ValueError, OSError) as e:  # a port without bonding: BLE serves no control at all
            self.can_pair = False
            if self._log:
                self._log("BLE: this port cannot bond (%r): no central will be trusted; use USB serial" % (e,))
        ble.irq(self._irq)
        U = bluetooth.UUID
        services = (
            (U(SERVICE_UUID), (
                (U(DATA_CHAR_UUID), _FLAG_NOTIFY),
                (U(CONTROL_CHAR_UUID), _FLAG_WRITE | _FLAG_WRITE_NO_RESPONSE | _FLAG_NOTIFY | _FLAG_WRITE_ENCRYPTED),
                (U(LOG_CHAR_UUID), _FLAG_NOTIFY),
            )),
            (U(0x180F), (
                (U(0x2A19), _FLAG_READ | _FLAG_NOTIFY),  # Battery Level, u8 %
            )),
            (U(0x180A), (
                (U(0x2A29), _FLAG_READ),  # Manufacturer Name String
                (U(0x2A24), _FLAG_READ),  # Model Number String: the board
                (U(0x2A25), _FLAG_READ),  # Serial Number String: the BLE address
                (U(0x2A26), _FLAG_READ),  # Firmware Revision String
                (U(0x2A27), _FLAG_READ),  # Hardware Revision String: the IMU
            )),
        )
        ((self._h_data, self._h_ctrl, self._h_log), (self._h_bat,),
         (h_mfr, h_model, h_serial, h_fw, h_hw)) = ble.gatts_register_services(services)
        ble.gatts_set_buffer(self._h_ctrl, _RX_SLOT)
        ble.gatts_write(self._h_bat, self._bat)
        ble.gatts_write(h_mfr, MANUFACTURER)
        ble.gatts_write(h_model, self._board)
        ble.gatts_write(h_serial, self._serial)
        ble.gatts_write(h_fw, self._fw)
        ble.gatts_write(h_hw, self._imu)
        self._adv, self._resp = advertising_payloads(self.name)
        self._started = True

    def _advertise(self):
        self._ble.gap_advertise(self._adv_interval_us, self._adv, resp_data=self._resp)
        self._advertising = True

    # --------------------------------------------------------------------------------------------------- IRQ

    def _irq(self, event, data):
        # Runs in the stack's (scheduler) context: copy, count, set flags; the work happens in run().
        if event == _IRQ_GATTS_WRITE:
            conn, handle = data
            if handle == self._h_ctrl and conn == self._conn:
                if self._trusted:
                    self._rx_write(self._ble.gatts_read(handle))
                else:
                    self.untrusted_writes += 1  # the stack let it through: never act on it
        elif _IRQ_ENCRYPTION_UPDATE <= event <= _IRQ_SET_SECRET:
            return self._security_irq(event, data)
        elif event == _IRQ_CENTRAL_CONNECT:
            conn = data[0]
            self._advertising = False  # the stack stops advertising on a connection
            if self._conn < 0:
                self._conn = conn
                self._trusted = self._untrusted_key = False
                self._mtu = _MIN_MTU
                self._heard = False
                self._connected_at = time.ticks_ms()
                self.connections += 1
            else:
                self._reject = conn
        elif event == _IRQ_CENTRAL_DISCONNECT:
            if data[0] == self._conn:
                self._conn = -1
                self._trusted = False
                self._mtu = _MIN_MTU
        elif event == _IRQ_MTU_EXCHANGED:
            conn, mtu = data
            if conn == self._conn:
                self._mtu = mtu
        elif event == _IRQ_GATTS_READ_REQUEST:
            return 0  # allow
        else:
            return None
        self._flag.set()
        return None

    def _security_irq(self, event, data):
        if event == _IRQ_GET_SECRET:
            return self.bonds.get(data[0], data[1], data[2])
        if event == _IRQ_SET_SECRET:
            sec_type, key, value = data
            kept = self.bonds.set(sec_type, key, value)
            if not kept and sec_type in (1, 2):
                self._untrusted_key = True  # this connection paired outside the window
            elif kept and value is not None:
                self._new_bond = True
            return kept
        conn, encrypted, _, bonded, key_size = data  # _IRQ_ENCRYPTION_UPDATE (authenticated: Just Works, no)
        if conn == self._conn:
            if encrypted and bonded and key_size >= _MIN_KEY_SIZE and not self._untrusted_key and self.can_pair:
                self._trusted = True
                self.trusted += 1
                self._connected_at = time.ticks_ms()  # the listen time (_LISTEN_MS) starts now
            else:
                self._reject = conn
        self._flag.set()
        return None

    def _rx_write(self, value):
        self._heard = True
        n = len(value)
        if (self._rx_w - self._rx_r) & 0xFF == _RX_SLOTS:
            self.rx_overflows += 1
            if (self._busy_w - self._busy_r) & 0xFF < _BUSY_SLOTS:
                j = (self._busy_w % _BUSY_SLOTS) * 2
                self._busy[j] = value[1] if n > 1 else 0
                self._busy[j + 1] = value[2] if n > 2 else 0
                self._busy_w = (self._busy_w + 1) & 0xFF
            return
        i = self._rx_w % _RX_SLOTS
        m = min(n, _RX_SLOT)
        self._rx_views[i][:m] = value[:m]
        # A write longer than the MTU allows is refused (bit 15), decided at the MTU it arrived under.
        self._rx_len[i] = m | (0x8000 if n > self._mtu - _ATT_OVERHEAD else 0)
        self._rx_w = (self._rx_w + 1) & 0xFF

    # ------------------------------------------------------------------------------------------------- tasks

    def _service_rx(self):
        while self._rx_r != self._rx_w:
            i = self._rx_r % _RX_SLOTS
            n = self._rx_len[i]
            v = self._rx_views[i]
            if n & 0x8000:
                n &= 0x7FFF
                self.refused += 1
                self._reply(v[1] if n > 1 else 0, v[2] if n > 2 else 0, packet.TOO_LONG)
            elif self.on_packet is not None:
                try:
                    self.on_packet(v, n)
                except Exception as e:  # a bad command must not take the link down
                    import sys
                    sys.print_exception(e)
            self._rx_r = (self._rx_r + 1) & 0xFF
        while self._busy_r != self._busy_w:
            j = (self._busy_r % _BUSY_SLOTS) * 2
            self._reply(self._busy[j], self._busy[j + 1], packet.BUSY)
            self._busy_r = (self._busy_r + 1) & 0xFF

    def _reply(self, opcode, token, status):
        n = packet.encode_ack(self._ack, opcode, token, status)
        self.send_control(self._ack, n)

    def _flush_control(self):
        if self._conn < 0:
            self.ctrl_dropped += self._cq_count
            self._cq_count = 0
            return
        while self._cq_count:
            i = self._cq_head
            if not self._notify(self._h_ctrl, self._cq_views[i], self._cq_len[i]):
                return
            self._cq_head = (i + 1) % _CTRL_SLOTS
            self._cq_count -= 1

    # ----------------------------------------------------------------------------------------- notify path

    def _view(self, buf, n):
        if n == len(buf):
            return buf
        vb = self._vbuf
        vl = self._vlen
        for i in range(_NVIEW):
            if vb[i] is buf and vl[i] == n:
                return self._vview[i]
        i = self._vnext
        self._vnext = (i + 1) % _NVIEW
        v = memoryview(buf)[:n]  # once per (buffer, length): the streaming path meets a handful of them
        vb[i] = buf
        vl[i] = n
        self._vview[i] = v
        return v

    def _notify(self, handle, buf, n):
        conn = self._conn
        if conn < 0 or not self._trusted:
            return False
        if not self._heard:
            if time.ticks_diff(time.ticks_ms(), self._connected_at) < _LISTEN_MS:
                return False
            self._heard = True
        if n > self._mtu - _ATT_OVERHEAD:
            raise ValueError("packet of %d bytes over the MTU payload of %d" % (n, self._mtu - _ATT_OVERHEAD))
        if self._backoff_ms:
            if time.ticks_diff(self._retry_at, time.ticks_ms()) > 0:
                self.deferred += 1
                return False
        try:
            self._ble.gatts_notify(conn, handle, self._view(buf, n))
        except OSError as e:
            if e.errno == _ENOMEM:
                self.enomem += 1
                b = self._backoff_ms
                b = _BACKOFF_MIN_MS if b == 0 else min(2 * b, _BACKOFF_MAX_MS)
                self._backoff_ms = b
                self._retry_at = time.ticks_add(time.ticks_ms(), b)
            else:  # ENOTCONN and the like: the disconnect IRQ follows
                self.tx_errors += 1
            return False
        self._backoff_ms = 0
        self.notifies += 1
        return True
