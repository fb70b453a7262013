# The unix-port board's `bluetooth` module: MicroPython's low-level `bluetooth.BLE` API (peripheral role, GATT
# server) over an emulated stack, so that firmware/link_ble.py runs unchanged under the unix port.
#
# Layers (the API never changes; a bridge to a bumble peripheral plays the central through the same script):
#   BLE                 the singleton with MicroPython's methods; it only checks arguments and delegates
#   sim (SimController) the "stack": GATT database and handles, advertising state, the one connection, its MTU,
#                       notify buffers (ENOMEM), a record of everything sent to the air, and IRQ delivery
#   event source        what plays the central: ScriptSource reads a line protocol from a file or pipe
#                       (HIPCHECK_BLE_SCRIPT / sim.configure(script=...)) in an asyncio task started by
#                       BLE.active(True). A bridge (simboard.py --link ble, tests/support/firmware_peripheral.py)
#                       is the same pair: its bumble peripheral's events come in as script lines on stdin, and
#                       the record, streamed to a pipe, tells it what to put on its air.
#
# What follows MicroPython's NimBLE port: handles (GAP 1-5, GATT 6-9, then per service a declaration, per
# characteristic a declaration, a value and a CCCD when it can notify or indicate, then its descriptors);
# gatts_register_services returns one tuple of value handles per service (descriptors flattened in, CCCDs not);
# remote writes are truncated to the value's buffer (20 bytes unless gatts_set_buffer or a longer gatts_write);
# gatts_notify sends whatever the subscription and raises OSError(ENOMEM) when the stack's buffers are full and
# OSError(ENOTCONN) for an unknown connection; a connection stops advertising; a notification longer than
# MTU - 3 is truncated (counted in `truncated`, as NimBLE silently does). IRQs are delivered from the event
# source's task (between the firmware's awaits) or, for ones the firmware causes itself (gap_disconnect), with
# micropython.schedule, as the real stack does. Not modelled: radio timing, the central role, L2CAP, passkeys.
#
# Security (SimSecurity): config(bond=, le_secure=, mitm=, io=) is kept and recorded; the connection's encryption
# state decides ATT permissions as NimBLE does: a write (read) of a value with FLAG_WRITE_ENCRYPTED
# (FLAG_READ_ENCRYPTED) on a link that is not encrypted is refused with ATT error 0x0F insufficient encryption when
# the stack holds a key for the peer (_IRQ_GET_SECRET finds one), else 0x05 insufficient authentication; an
# _AUTHENTICATED flag needs an MITM-authenticated link (0x05). CCCDs carry no security (as NimBLE registers them).
# The key exchange is played by the central's side: a bridge's own Security Manager (bumble) hands over the keys
# with `secret set`, asks for them with `secret get` and reports the result with `encrypted`; a bare script uses
# `pair` (Just Works LE Secure Connections: the LTK is 16 random bytes, kept through _IRQ_SET_SECRET, whose answer
# the stack ignores, as NimBLE does) and `encrypt` (a bonded central's reconnection: the key from _IRQ_GET_SECRET).
# The firmware learns the outcome from _IRQ_ENCRYPTION_UPDATE (conn, encrypted, authenticated, bonded, key_size).
# A peer's key is b"\x00" + its address (ble_addr_t: type, address), the sec types NimBLE's (1 ours, 2 the peer's).
#
# Line protocol (one command a line, '#' starts a comment; TARGET is a decimal handle, a 128-bit UUID string or
# 0xNNNN for a 16-bit UUID, naming the characteristic's value handle; CONN defaults to 0):
#   wait MS                          sleep
#   until adv [TIMEOUT_MS]           until the peripheral advertises
#   until notifies TARGET COUNT [TIMEOUT_MS]   until COUNT notifications were sent on TARGET (all: 'any')
#   until note TEXT [TIMEOUT_MS]     until the firmware side called sim.note(TEXT) (test harnesses only)
#   connect [CONN] [ADDR_HEX]        a central connects (refused with an 'X' record when not advertising)
#   mtu CENTRAL_MTU [CONN]           ATT MTU exchange: the result is min(CENTRAL_MTU, config('mtu'))
#   write TARGET HEX [CONN]          a write (any length: a long write); the stack truncates it to the buffer
#   subscribe TARGET [VALUE] [CONN]  write the CCCD of TARGET (VALUE 1 notify, 2 indicate, 0 off; default 1)
#   read TARGET                      a central's read: an 'R' record with the value
#   budget BUFFERS [FREED INTERVAL_MS]  the stack's notify buffers: BUFFERS in flight at most (-1: unlimited);
#                                    FREED of them return every INTERVAL_MS (the connection events)
#   free COUNT                       COUNT notify buffers return now (a bridge: its radio sent them)
#   disconnect [CONN]                the central disconnects
#   pair [CONN]                      the central pairs, Just Works LE Secure Connections (see "Security")
#   encrypt [CONN]                   a bonded central encrypts the link with the key the stack keeps
#   encrypted CONN ENC AUTH BOND KEY_SIZE   a bridge's Security Manager finished: _IRQ_ENCRYPTION_UPDATE
#   secret set TYPE KEY VALUE        _IRQ_SET_SECRET (hex; '-' for None): a 'Y' record, arg 1 when kept
#   secret get TYPE INDEX KEY        _IRQ_GET_SECRET (KEY hex or '-'): a 'Y' record, arg 1 and the value if found
#   mark TEXT                        an 'M' record (to split a record into phases)
#   end                              a 'Z' record with counters; sim.finished is set (also at end of input)
# An `until` that times out writes an 'X' record and ends the script.
#
# Record (HIPCHECK_BLE_RECORD / sim.configure(record=...)), binary, appended record by record:
#   type u8, conn u16, arg u16, length u16 (little-endian), then `length` bytes. Types:
#   S registration (text lines: "S handle uuid", "C decl value cccd flags uuid", "D handle flags uuid")
#   A advertising (arg: connectable; payload interval_us u32 (0xFFFFFFFF: stopped), adv length u8, adv, resp)
#   N notification (arg: value handle)   I indication   E a notification refused with ENOMEM (no payload)
#   C connect (payload: address)   D disconnect   U MTU exchanged (arg: MTU)   W a delivered write (arg: handle,
#   payload: the value as stored)   R read (arg: handle)   K gap_disconnect by the peripheral
#   V a local gatts_write (arg: handle, payload: the value; what a central's read would return)
#   F config (text "key=value")   M mark (text)   X error (text)   Z end (text "key=value ...")
#   P the link's security changed (payload: encrypted, authenticated, bonded, key size: u8 each)
#   Q an ATT error answered to the central (arg: handle, payload: the error code u8)   Y a secret IRQ's answer
# Writing a notification record allocates nothing, so the firmware's streaming path can be measured with it. The
# record is unbuffered (MicroPython's files write through), so a reader on a pipe sees each record as it is made.

import errno
import sys
import time

try:
    import micropython
except ImportError:  # CPython (docs, linters)
    micropython = None

FLAG_BROADCAST = 0x0001
FLAG_READ = 0x0002
FLAG_WRITE_NO_RESPONSE = 0x0004
FLAG_WRITE = 0x0008
FLAG_NOTIFY = 0x0010
FLAG_INDICATE = 0x0020
FLAG_AUTHENTICATED_SIGNED_WRITE = 0x0040
FLAG_AUX_WRITE = 0x0100
FLAG_READ_ENCRYPTED = 0x0200
FLAG_READ_AUTHENTICATED = 0x0400
FLAG_READ_AUTHORIZED = 0x0800
FLAG_WRITE_ENCRYPTED = 0x1000
FLAG_WRITE_AUTHENTICATED = 0x2000
FLAG_WRITE_AUTHORIZED = 0x4000

_IRQ_CENTRAL_CONNECT = 1
_IRQ_CENTRAL_DISCONNECT = 2
_IRQ_GATTS_WRITE = 3
_IRQ_GATTS_INDICATE_DONE = 20
_IRQ_MTU_EXCHANGED = 21
_IRQ_ENCRYPTION_UPDATE = 28
_IRQ_GET_SECRET = 29
_IRQ_SET_SECRET = 30
_ATT_INSUFFICIENT_AUTHENTICATION = 0x05
_ATT_INSUFFICIENT_ENCRYPTION = 0x0F
_SEC_PEER = 2

_DEFAULT_ATTR_LEN = 20  # MicroPython's default value buffer
_MIN_MTU = 23
_MAX_MTU = 517
_ADV_MAX = 31
_BASE_UUID_TAIL = "-0000-1000-8000-00805f9b34fb"
_EBUSY = getattr(errno, "EBUSY", 16)  # not in the unix port's errno


class UUID:
    """bluetooth.UUID: a 16-bit int, a 128-bit string ('6E400001-B5A3-...'), or its little-endian bytes."""

    def __init__(self, value):
        if isinstance(value, UUID):
            self._s = value._s
        elif isinstance(value, int):
            if not 0 <= value <= 0xFFFF:
                raise ValueError("a UUID int must be 16-bit")
            self._s = "0x%04x" % value
        elif isinstance(value, str):
            s = value.lower()
            if len(s) != 36 or s.count("-") != 4:
                raise ValueError("invalid UUID string: %r" % value)
            int(s.replace("-", ""), 16)
            if s.startswith("0000") and s.endswith(_BASE_UUID_TAIL):
                s = "0x" + s[4:8]  # the Bluetooth base UUID: the stack shortens it
            self._s = s
        elif isinstance(value, (bytes, bytearray, memoryview)):
            b = bytes(value)
            if len(b) == 2:
                self._s = "0x%02x%02x" % (b[1], b[0])
            elif len(b) == 16:
                h = "".join("%02x" % b[15 - i] for i in range(16))
                self._s = UUID("%s-%s-%s-%s-%s" % (h[:8], h[8:12], h[12:16], h[16:20], h[20:]))._s
            else:
                raise ValueError("a UUID buffer must hold 2 or 16 bytes")
        else:
            raise TypeError("UUID from an int, a str or a buffer")

    def __eq__(self, other):
        return isinstance(other, UUID) and other._s == self._s

    def __hash__(self):
        return hash(self._s)

    def __str__(self):
        return self._s

    def __repr__(self):
        return "UUID(%s)" % (self._s if self._s.startswith("0x") else "'%s'" % self._s)


class _Attr:
    __slots__ = ("uuid", "flags", "value", "maxlen", "append", "kind", "cccd")

    def __init__(self, uuid, flags, kind):
        self.uuid = uuid
        self.flags = flags
        self.kind = kind  # 'S' service, 'c' characteristic declaration, 'C' value, 'P' CCCD, 'D' descriptor
        self.value = b""
        self.maxlen = _DEFAULT_ATTR_LEN
        self.append = False
        self.cccd = 0  # value handles: the handle of their CCCD (0: none)


def _bytes(data):
    # what the C API takes through the buffer protocol: bytes, bytearray, memoryview, array, str
    return data.encode() if isinstance(data, str) else bytes(data)


def _u16(buf, o, v):
    buf[o] = v & 0xFF
    buf[o + 1] = (v >> 8) & 0xFF


class SimController:
    """The emulated BLE stack behind BLE: one GATT server, one connection at a time, a record of the air."""

    def __init__(self):
        self.ble = None  # the BLE singleton, for IRQ delivery
        self._rec = None
        self._script = None
        self._hdr = bytearray(7)
        self.finished = None  # asyncio.Event, made when the script task starts
        self.notes = []
        self.sec = SimSecurity(self)
        self.reset()

    def reset(self):
        self.active = False
        self.attrs = {}
        self.uuids = {}  # UUID string -> value handle (characteristics and descriptors)
        self.adv = None  # (interval_us, adv, resp, connectable) while advertising
        self._adv_data = b""
        self._resp_data = b""
        self.conn = -1
        self.peer = b""
        self.mtu = _MIN_MTU
        self.pref_mtu = _MIN_MTU
        self.gap_name = b"MPY BTSTACK"
        self.rxbuf = 256
        self.mac = None
        self.buffers = -1  # notify buffers (-1: unlimited)
        self.credits = 0
        self.freed = 0
        self.interval_ms = 0
        self._t_free = 0
        self.notifies = 0
        self.indications = 0
        self.enomem = 0
        self.truncated = 0
        self.irq_errors = 0
        self._pump_task = None
        self._notify_count = {}  # value handle -> notifications sent
        self._install_gap_gatt()

    # ----------------------------------------------------------------------------------------- configuration

    def configure(self, script=None, record=None):
        """Where the central's script comes from (a path, '-' for stdin, or an open stream) and where the record
        goes (a path or an open binary stream)."""
        if record is not None:
            self._rec = open(record, "wb") if isinstance(record, str) else record
        if script is not None:
            import asyncio
            self._script = script
            if self.finished is None:
                self.finished = asyncio.Event()

    def note(self, text):
        """Test harnesses: a marker the script can wait for with `until note TEXT`."""
        self.notes.append(text)

    # ----------------------------------------------------------------------------------------------- record

    def _record(self, kind, conn, arg, data=b""):
        out = self._rec
        if out is None:
            return
        h = self._hdr
        h[0] = kind
        _u16(h, 1, conn)
        _u16(h, 3, arg)
        _u16(h, 5, len(data))
        out.write(h)
        if len(data):
            out.write(data)

    def _error(self, text):
        self._record(0x58, 0, 0, text.encode())  # 'X'
        print("bluetooth sim:", text, file=sys.stderr)  # stdout may carry the record

    # ---------------------------------------------------------------------------------------------- database

    def _add(self, uuid, flags, kind):
        h = len(self.attrs) + 1
        a = _Attr(uuid, flags, kind)
        self.attrs[h] = a
        return h, a

    def _install_gap_gatt(self):
        self._add(UUID(0x1800), 0, "S")
        self._add(UUID(0x2A00), FLAG_READ, "c")
        self._gap_name_handle, a = self._add(UUID(0x2A00), FLAG_READ, "C")
        a.value = self.gap_name
        self._add(UUID(0x2A01), FLAG_READ, "c")
        _, a = self._add(UUID(0x2A01), FLAG_READ, "C")
        a.value = b"\x00\x00"
        self._add(UUID(0x1801), 0, "S")
        self._add(UUID(0x2A05), FLAG_INDICATE, "c")
        h, a = self._add(UUID(0x2A05), FLAG_INDICATE, "C")
        a.cccd, c = self._add(UUID(0x2902), FLAG_READ | FLAG_WRITE, "P")
        c.value = b"\x00\x00"
        self._gap_end = len(self.attrs)

    def register(self, services):
        if self.adv is not None:
            raise OSError(_EBUSY)  # "Advertising must be stopped before registering services."
        for h in list(self.attrs):
            if h > self._gap_end:
                del self.attrs[h]
        self.uuids = {}
        result = []
        lines = []
        for svc in services:
            suuid, chars = svc[0], svc[1]
            h, _ = self._add(UUID(suuid), 0, "S")
            lines.append("S %d %s" % (h, suuid))
            handles = []
            for ch in chars:
                cuuid, flags = UUID(ch[0]), ch[1]
                dh, _ = self._add(cuuid, flags, "c")
                vh, a = self._add(cuuid, flags, "C")
                if flags & (FLAG_NOTIFY | FLAG_INDICATE):
                    a.cccd, c = self._add(UUID(0x2902), FLAG_READ | FLAG_WRITE, "P")
                    c.value = b"\x00\x00"
                lines.append("C %d %d %d %d %s" % (dh, vh, a.cccd, flags, cuuid))
                self.uuids[str(cuuid)] = vh
                handles.append(vh)
                for d in (ch[2] if len(ch) > 2 else ()):
                    duuid = UUID(d[0])
                    h, _ = self._add(duuid, d[1], "D")
                    lines.append("D %d %d %s" % (h, d[1], duuid))
                    self.uuids.setdefault(str(duuid), h)
                    handles.append(h)
            result.append(tuple(handles))
        self._record(0x53, 0, 0, ("\n".join(lines) + "\n").encode())  # 'S'
        return tuple(result)

    def _value(self, handle):
        a = self.attrs.get(handle)
        if a is None or a.kind not in "CDP":
            raise ValueError("no such value handle: %r" % handle)
        return a

    def read(self, handle):
        a = self._value(handle)
        v = a.value
        if a.append:
            a.value = b""
        return bytes(v)

    def write(self, handle, data, send_update=False):
        a = self._value(handle)
        data = _bytes(data)
        if len(data) > a.maxlen:
            a.maxlen = len(data)  # a local write grows the buffer, as on the real stack
        a.value = data
        self._record(0x56, 0, handle, data)  # 'V': a bridge serves reads of it
        if send_update and self.conn >= 0 and a.cccd:
            sub = self.attrs[a.cccd].value
            if sub and sub[0] & 1:
                self.notify(self.conn, handle, None)
            elif sub and sub[0] & 2:
                self.indicate(self.conn, handle)

    def set_buffer(self, handle, n, append=False):
        a = self._value(handle)
        a.maxlen = n
        a.append = bool(append)
        if len(a.value) > n:
            a.value = a.value[:n]

    # ------------------------------------------------------------------------------------------- advertising

    def advertise(self, interval_us, adv_data, resp_data, connectable):
        if adv_data is not None:
            self._adv_data = _bytes(adv_data)
        if resp_data is not None:
            self._resp_data = _bytes(resp_data)
        if interval_us is None:
            self.adv = None
            self._record(0x41, 0, 0, b"\xff\xff\xff\xff\x00")  # 'A' stopped
            return
        if len(self._adv_data) > _ADV_MAX or len(self._resp_data) > _ADV_MAX:
            raise OSError(errno.EINVAL)  # the controller refuses more than 31 bytes of legacy advertising
        self.adv = (interval_us, self._adv_data, self._resp_data, connectable)
        p = bytearray(5)
        p[0] = interval_us & 0xFF
        p[1] = (interval_us >> 8) & 0xFF
        p[2] = (interval_us >> 16) & 0xFF
        p[3] = (interval_us >> 24) & 0xFF
        p[4] = len(self._adv_data)
        self._record(0x41, 0, 1 if connectable else 0, bytes(p) + self._adv_data + self._resp_data)

    # -------------------------------------------------------------------------------------- notify / indicate

    def _take_buffer(self):
        if self.buffers < 0:
            return True
        if self.freed:
            now = time.ticks_ms()
            k = time.ticks_diff(now, self._t_free) // self.interval_ms
            if k > 0:
                self.credits = min(self.buffers, self.credits + k * self.freed)
                self._t_free = time.ticks_add(self._t_free, k * self.interval_ms)
        if self.credits <= 0:
            return False
        self.credits -= 1
        return True

    def notify(self, conn, handle, data):
        if conn != self.conn or conn < 0:
            raise OSError(errno.ENOTCONN)
        if data is None:
            data = self._value(handle).value
        elif handle not in self.attrs:
            raise ValueError("no such value handle")
        if not self._take_buffer():
            self.enomem += 1
            self._record(0x45, conn, handle)  # 'E'
            raise OSError(errno.ENOMEM)
        n = len(data)
        if n > self.mtu - 3:
            self.truncated += 1
            data = bytes(data)[:self.mtu - 3]
        self.notifies += 1
        self._notify_count[handle] = self._notify_count.get(handle, 0) + 1
        self._record(0x4E, conn, handle, data)  # 'N'
        return None

    def indicate(self, conn, handle, data=None):
        if conn != self.conn or conn < 0:
            raise OSError(errno.ENOTCONN)
        v = self._value(handle).value if data is None else _bytes(data)
        self.indications += 1
        self._record(0x49, conn, handle, v[:self.mtu - 3])  # 'I'
        self._schedule(_IRQ_GATTS_INDICATE_DONE, (conn, handle, 0))

    # ------------------------------------------------------------------------------------------------- IRQs

    def _irq(self, event, data):
        ble = self.ble
        if ble is None or ble._handler is None:
            return None
        try:
            return ble._handler(event, data)
        except Exception as e:  # MicroPython prints an exception raised in the IRQ handler and goes on
            self.irq_errors += 1
            sys.print_exception(e)
            self._error("exception in the IRQ handler (event %d): %r" % (event, e))
            return None

    def _schedule(self, event, data):
        if micropython is not None and hasattr(micropython, "schedule"):
            micropython.schedule(lambda _: self._irq(event, data), None)
        else:
            self._irq(event, data)

    def disconnect(self, conn):
        if conn != self.conn or conn < 0:
            return False
        self._record(0x4B, conn, 0)  # 'K'
        self._drop(conn, scheduled=True)
        return True

    def _drop(self, conn, scheduled=False):
        addr = self.peer
        self.conn = -1
        self.mtu = _MIN_MTU
        self.sec.reset()
        for a in self.attrs.values():
            if a.kind == "P":
                a.value = b"\x00\x00"  # subscriptions end with the connection (no bonding)
        self._record(0x44, conn, 0, addr)  # 'D'
        if scheduled:
            self._schedule(_IRQ_CENTRAL_DISCONNECT, (conn, 0, addr))
        else:
            self._irq(_IRQ_CENTRAL_DISCONNECT, (conn, 0, memoryview(addr)))

    # ---------------------------------------------------------------------------- the central (event source)

    def central_connect(self, conn=0, addr=b"\xc0\xff\xee\x00\x00\x01"):
        if self.adv is None or not self.adv[3]:
            self._error("connect refused: the peripheral is not advertising connectably")
            return False
        if self.conn >= 0:
            self._error("connect refused: already connected (one connection at a time)")
            return False
        self.conn = conn
        self.peer = bytes(addr)
        self.mtu = _MIN_MTU
        self.sec.reset()
        self.adv = None  # a connection stops advertising
        self._record(0x43, conn, 0, self.peer)  # 'C'
        self._irq(_IRQ_CENTRAL_CONNECT, (conn, 0, memoryview(self.peer)))
        return True

    def central_mtu(self, central_mtu, conn=0):
        if conn != self.conn:
            self._error("mtu: not connected")
            return
        self.mtu = max(_MIN_MTU, min(central_mtu, self.pref_mtu))
        self._record(0x55, conn, self.mtu)  # 'U'
        self._irq(_IRQ_MTU_EXCHANGED, (conn, self.mtu))

    def central_write(self, handle, data, conn=0):
        if conn != self.conn:
            self._error("write: not connected")
            return
        a = self.attrs.get(handle)
        if a is None or a.kind not in "CDP" or not (a.flags & (FLAG_WRITE | FLAG_WRITE_NO_RESPONSE)):
            self._error("write to handle %d not permitted" % handle)
            return
        err = self.sec.att_error(a, True)
        if err:
            self._record(0x51, conn, handle, bytes((err,)))  # 'Q': the central gets the ATT error, nothing stored
            return
        data = bytes(data)
        if a.append:
            a.value = (a.value + data)[:a.maxlen]
        else:
            a.value = data[:a.maxlen]
        self._record(0x57, conn, handle, a.value)  # 'W'
        if a.kind != "P":  # NimBLE handles CCCD writes itself: no IRQ
            self._irq(_IRQ_GATTS_WRITE, (conn, handle))

    def central_read(self, handle, conn=0):
        a = self.attrs.get(handle)
        if a is None or a.kind not in "CDP" or not (a.flags & FLAG_READ):
            self._error("read of handle %s not permitted" % handle)
            return None
        err = self.sec.att_error(a, False)
        if err:
            self._record(0x51, conn, handle, bytes((err,)))  # 'Q'
            return None
        self._record(0x52, conn, handle, a.value)  # 'R'
        return a.value

    def central_disconnect(self, conn=0):
        if conn != self.conn:
            self._error("disconnect: not connected")
            return
        self._drop(conn)

    def set_budget(self, buffers, freed=0, interval_ms=0):
        self.buffers = buffers
        self.credits = buffers
        self.freed = freed
        self.interval_ms = interval_ms if interval_ms > 0 else 1
        self._t_free = time.ticks_ms()

    def free_buffers(self, count):
        if self.buffers >= 0:
            self.credits = min(self.buffers, self.credits + count)

    def notify_count(self, handle=None):
        if handle is None:
            return self.notifies
        return self._notify_count.get(handle, 0)

    def stats(self):
        return "notifies=%d indications=%d enomem=%d truncated=%d irq_errors=%d" % (
            self.notifies, self.indications, self.enomem, self.truncated, self.irq_errors)

    def _end(self):
        self._record(0x5A, 0, 0, self.stats().encode())  # 'Z'
        if self.finished is not None:
            self.finished.set()

    # ------------------------------------------------------------------------------------------ script source

    def _start_source(self):
        if self._script is None or self._pump_task is not None:
            return
        import asyncio
        self._pump_task = asyncio.create_task(ScriptSource(self, self._script).run())


class SimSecurity:
    """The stack's side of security (module comment, "Security"): the pairing configuration, the connection's
    encryption state, ATT permissions, and the secret IRQs the firmware answers."""

    def __init__(self, ctrl):
        self.c = ctrl
        self.config = {"bond": False, "le_secure": False, "mitm": False, "io": 3}  # MicroPython's defaults
        self.updates = 0
        self.reset()

    def reset(self):
        self.encrypted = self.authenticated = self.bonded = False
        self.key_size = 0

    def peer_key(self):
        return b"\x00" + self.c.peer

    def get_secret(self, sec_type, index, key):
        v = self.c._irq(_IRQ_GET_SECRET, (sec_type, index, None if key is None else memoryview(key)))
        return None if v is None else bytes(v)

    def set_secret(self, sec_type, key, value):
        v = None if value is None else memoryview(value)
        return bool(self.c._irq(_IRQ_SET_SECRET, (sec_type, memoryview(key), v)))

    def update(self, conn, encrypted, authenticated, bonded, key_size):
        if conn != self.c.conn:
            self.c._error("encrypted: not connected")
            return
        self.encrypted, self.authenticated, self.bonded = bool(encrypted), bool(authenticated), bool(bonded)
        self.key_size = key_size
        self.updates += 1
        self.c._record(0x50, conn, 0, bytes((self.encrypted, self.authenticated, self.bonded, key_size)))  # 'P'
        self.c._irq(_IRQ_ENCRYPTION_UPDATE, (conn, self.encrypted, self.authenticated, self.bonded, key_size))

    def pair(self, conn):
        """A bare script's central pairs: Just Works, LE Secure Connections, bonding as configured."""
        if conn != self.c.conn:
            self.c._error("pair: not connected")
            return
        import os
        bond = bool(self.config["bond"])
        if bond:
            self.set_secret(_SEC_PEER, self.peer_key(), os.urandom(16))  # NimBLE does not check the answer
        self.update(conn, True, False, bond, 16)

    def encrypt(self, conn):
        """A bonded central encrypts with the key the stack keeps for it; none: the encryption fails."""
        if conn != self.c.conn:
            self.c._error("encrypt: not connected")
        elif self.get_secret(_SEC_PEER, 0, self.peer_key()) is None:
            self.c._error("encryption failed: no key kept for this central (it must pair)")
        else:
            self.update(conn, True, False, True, 16)

    def att_error(self, attr, write):
        """The ATT error a central's access to attr meets on this connection (0: none), as NimBLE decides it."""
        enc = FLAG_WRITE_ENCRYPTED if write else FLAG_READ_ENCRYPTED
        auth = FLAG_WRITE_AUTHENTICATED if write else FLAG_READ_AUTHENTICATED
        if attr.flags & (enc | auth) and not self.encrypted:
            if self.get_secret(_SEC_PEER, 0, self.peer_key()) is not None:
                return _ATT_INSUFFICIENT_ENCRYPTION
            return _ATT_INSUFFICIENT_AUTHENTICATION
        if attr.flags & auth and not self.authenticated:
            return _ATT_INSUFFICIENT_AUTHENTICATION
        return 0

    def script(self, t):
        """The script's security lines (module comment): pair, encrypt, encrypted, secret."""
        import binascii
        cmd = t[0]
        n = len(t)
        if cmd == "pair":
            self.pair(int(t[1]) if n > 1 else 0)
        elif cmd == "encrypt":
            self.encrypt(int(t[1]) if n > 1 else 0)
        elif cmd == "encrypted":
            self.update(*[int(x) for x in t[1:6]])
        elif t[1] == "set":
            value = None if t[4] == "-" else binascii.unhexlify(t[4])
            kept = self.set_secret(int(t[2]), binascii.unhexlify(t[3]), value)
            self.c._record(0x59, 0, 1 if kept else 0)  # 'Y'
        else:
            v = self.get_secret(int(t[2]), int(t[3]), None if t[4] == "-" else binascii.unhexlify(t[4]))
            self.c._record(0x59, 0, 0 if v is None else 1, v or b"")


class ScriptSource:
    """Plays the central from the line protocol (see the module comment), one line at a time."""

    def __init__(self, ctrl, script):
        self.c = ctrl
        self.script = script

    def _target(self, tok):
        if tok.isdigit():
            return int(tok)
        u = str(UUID(int(tok, 16) if tok.startswith("0x") else tok))
        h = self.c.uuids.get(u)
        if h is None:
            for k, a in self.c.attrs.items():  # GAP/GATT characteristics
                if a.kind == "C" and str(a.uuid) == u:
                    return k
            raise ValueError("no characteristic %s" % tok)
        return h

    async def _until(self, cond, timeout_ms, what):
        import asyncio
        t0 = time.ticks_ms()
        while not cond():
            if time.ticks_diff(time.ticks_ms(), t0) > timeout_ms:
                self.c._error("timeout after %d ms: until %s" % (timeout_ms, what))
                return False
            await asyncio.sleep_ms(1)
        return True

    async def run(self):
        import asyncio
        c = self.c
        src = self.script
        if src == "-":
            src = getattr(sys.stdin, "buffer", sys.stdin)  # bytes lines, as from a file opened "rb"
        elif isinstance(src, str):
            src = open(src, "rb")
        reader = asyncio.StreamReader(src)
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                line = line.decode().split("#")[0].strip()
                if not line:
                    continue
                if not await self._step(line.split()):
                    break
        except Exception as e:
            sys.print_exception(e)
            c._error("script error: %r" % e)
        c._end()

    async def _step(self, t):
        import asyncio
        c = self.c
        cmd = t[0]
        n = len(t)
        if cmd == "wait":
            await asyncio.sleep_ms(int(t[1]))
        elif cmd == "until":
            what = t[1]
            if what == "adv":
                return await self._until(lambda: c.adv is not None, int(t[2]) if n > 2 else 5000, "adv")
            if what == "notifies":
                h = None if t[2] == "any" else self._target(t[2])
                count = int(t[3])
                return await self._until(lambda: c.notify_count(h) >= count, int(t[4]) if n > 4 else 10000,
                                         " ".join(t[1:]))
            if what == "note":
                return await self._until(lambda: t[2] in c.notes, int(t[3]) if n > 3 else 10000, " ".join(t[1:]))
            raise ValueError("until what? %s" % what)
        elif cmd == "connect":
            import binascii
            conn = int(t[1]) if n > 1 else 0
            addr = binascii.unhexlify(t[2]) if n > 2 else b"\xc0\xff\xee\x00\x00\x01"
            c.central_connect(conn, addr)
        elif cmd == "mtu":
            c.central_mtu(int(t[1]), int(t[2]) if n > 2 else 0)
        elif cmd == "write":
            import binascii
            c.central_write(self._target(t[1]), binascii.unhexlify(t[2]), int(t[3]) if n > 3 else 0)
        elif cmd == "subscribe":
            a = c.attrs[self._target(t[1])]
            v = int(t[2]) if n > 2 else 1
            if not a.cccd:
                c._error("subscribe: %s has no CCCD" % t[1])
            else:
                c.central_write(a.cccd, bytes((v, 0)), int(t[3]) if n > 3 else 0)
        elif cmd == "read":
            c.central_read(self._target(t[1]))
        elif cmd == "budget":
            c.set_budget(int(t[1]), int(t[2]) if n > 2 else 0, int(t[3]) if n > 3 else 0)
        elif cmd == "free":
            c.free_buffers(int(t[1]))
        elif cmd == "disconnect":
            c.central_disconnect(int(t[1]) if n > 1 else 0)
        elif cmd in ("pair", "encrypt", "encrypted", "secret"):
            c.sec.script(t)
        elif cmd == "mark":
            c._record(0x4D, 0, 0, " ".join(t[1:]).encode())
        elif cmd == "end":
            return False
        else:
            raise ValueError("unknown script command: %s" % cmd)
        return True


sim = SimController()
try:
    import os
    _script = os.getenv("HIPCHECK_BLE_SCRIPT")
    _record = os.getenv("HIPCHECK_BLE_RECORD")
    sim.configure(script=_script, record=_record)
except (ImportError, AttributeError):
    pass

_ble = None


class BLE:
    """bluetooth.BLE: the singleton (BLE() returns the same object), peripheral and GATT server methods."""

    def __new__(cls):
        global _ble
        if _ble is None:
            _ble = object.__new__(cls)
            _ble._handler = None
            sim.ble = _ble
        return _ble

    def __init__(self):
        pass

    def _check(self):
        if not sim.active:
            raise OSError(errno.EPERM)  # the radio must be made active first

    def active(self, active=None):
        if active is not None:
            if active and not sim.active:
                sim.active = True
                if sim.mac is None:
                    try:
                        import machine
                        uid = bytes(machine.unique_id())
                    except (ImportError, AttributeError):
                        uid = b"\x00\x00\x00\x00\x00\x01"
                    sim.mac = (b"\x00" * 6 + uid)[-6:]
                sim._start_source()
            elif not active and sim.active:
                if sim.conn >= 0:
                    sim._drop(sim.conn, scheduled=True)
                sim.adv = None
                sim.active = False
        return sim.active

    def config(self, *args, **kw):
        if args:
            if len(args) != 1 or kw:
                raise TypeError("config: query one value, or set with keywords")
            k = args[0]
            if k == "mac":
                self._check()
                return (0, sim.mac)
            if k == "gap_name":
                return bytes(sim.gap_name)
            if k == "mtu":
                return sim.pref_mtu
            if k == "rxbuf":
                return sim.rxbuf
            if k == "addr_mode":
                return 0
            raise ValueError("unknown config param")
        for k, v in kw.items():
            if k == "gap_name":
                sim.gap_name = v.encode() if isinstance(v, str) else bytes(v)
                sim.attrs[sim._gap_name_handle].value = sim.gap_name
            elif k == "mtu":
                if not _MIN_MTU <= v <= _MAX_MTU:
                    raise ValueError("mtu must be 23..517")
                sim.pref_mtu = v
            elif k == "rxbuf":
                sim.rxbuf = v
            elif k in ("bond", "mitm", "io", "le_secure"):
                sim.sec.config[k] = v
            elif k == "addr_mode":
                pass
            else:
                raise ValueError("unknown config param")
            sim._record(0x46, 0, 0, ("%s=%s" % (k, v)).encode())  # 'F'

    def irq(self, handler):
        self._handler = handler

    def gap_advertise(self, interval_us, adv_data=None, *, resp_data=None, connectable=True):
        self._check()
        sim.advertise(interval_us, adv_data, resp_data, connectable)

    def gap_disconnect(self, conn_handle):
        self._check()
        return sim.disconnect(conn_handle)

    def gatts_register_services(self, services_definition):
        self._check()
        return sim.register(services_definition)

    def gatts_read(self, value_handle):
        self._check()
        return sim.read(value_handle)

    def gatts_write(self, value_handle, data, send_update=False):
        self._check()
        sim.write(value_handle, data, send_update)

    def gatts_notify(self, conn_handle, value_handle, data=None):
        self._check()
        sim.notify(conn_handle, value_handle, data)

    def gatts_indicate(self, conn_handle, value_handle, data=None):
        self._check()
        sim.indicate(conn_handle, value_handle, data)

    def gatts_set_buffer(self, value_handle, len, append=False):
        self._check()
        sim.set_buffer(value_handle, len, append)

    def gap_pair(self, conn_handle):
        raise OSError(errno.EOPNOTSUPP)  # the hosts start pairing here; the firmware never asks for it

    def gap_passkey(self, conn_handle, action, passkey):
        raise OSError(errno.EOPNOTSUPP)  # io=NO_INPUT_OUTPUT: Just Works, no passkey

    def gattc_exchange_mtu(self, conn_handle):
        raise OSError(errno.EOPNOTSUPP)  # the central (the script) starts the exchange here
