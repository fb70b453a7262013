"""Wire protocol v1, device side (docs/protocol.md): the one definition of the byte layout in the firmware.

Encoders write into a caller's preallocated bytearray and return the packet length; the DATA and compact
encoders (the per-sample hot path) are viper and allocate nothing. The COMMAND decoder gives the status a v1
device answers on field checks alone (the vectors' ``device_status``). Serial framing: CRC-16/CCITT-FALSE and
canonical COBS (``frame_into``), and a streaming ``Deframer`` that resynchronises after garbage and counts damage.
Held to the host (host/hipcheck/protocol.py) by tests/vectors, which tests/test_firmware_packet.py runs here.
"""

import struct
import micropython
from micropython import const
from array import array

PROTOCOL_VERSION = const(1)
KIND_DATA = const(0x21)
KIND_COMMAND = const(0x22)
KIND_ACK = const(0x23)
KIND_EVENT = const(0x24)
KIND_LOG_CHUNK = const(0x25)

ATT_OVERHEAD = const(3)
MIN_MTU = const(23)
MIN_PAYLOAD_LEN = const(20)
DATA_HEADER_LEN = const(12)
WIRE_SAMPLE_LEN = const(21)
COMPACT_PACKET_LEN = const(20)
MAX_PACKET_LEN = const(510)
MAX_FRAME_LEN = const(512)  # packet + CRC-16
MAX_ENCODED_FRAME_LEN = const(515)  # COBS adds one code byte per 254 bytes
MAX_SAMPLES_PER_PACKET = const(23)
MAX_VIBRATE_STEPS = const(7)
CAL_PROFILE_LEN = const(79)

# Sample flags (SampleFlag)
BACKFILLED = const(0x40)
# LOG_LIST entry flags (LogEntryFlag)
LOG_OPEN = const(0x01)  # the session is being written now

# Opcodes
START = const(0x01)
STOP = const(0x02)
SET_RATE = const(0x03)
VIBRATE = const(0x04)
SET_THRESHOLDS = const(0x05)
TIME_SYNC = const(0x06)
INFO = const(0x07)
BACKFILL = const(0x08)
LOG_LIST = const(0x09)
LOG_DOWNLOAD = const(0x0A)
LOG_ERASE = const(0x0B)
CAL_UPLOAD = const(0x0C)

# ACK status
OK = const(0)
UNKNOWN_COMMAND = const(1)
BAD_LENGTH = const(2)
OUT_OF_RANGE = const(3)
TOO_LONG = const(4)
BUSY = const(5)
UNAVAILABLE = const(6)
CRC_ERROR = const(7)
UNSUPPORTED_VERSION = const(8)
STORAGE_ERROR = const(9)

# EVENT codes
EV_BUTTON = const(1)
EV_ALERT = const(2)
EV_LOW_BATTERY = const(3)
EV_BUFFER_OVERRUN = const(4)

SUPPORTED_RATES_HZ = (25, 50, 100, 200, 400)

# Payload layouts: (struct format, field names). The tails (VIBRATE steps, CAL_UPLOAD chunk) follow the fixed part.
COMMAND_LAYOUTS = {
    START: ("", ()),
    STOP: ("", ()),
    SET_RATE: ("<H", ("rate_hz",)),
    VIBRATE: ("<BBB", ("intensity_pct", "repeat", "n_steps")),  # then n_steps x (on_10ms u8, off_10ms u8)
    SET_THRESHOLDS: ("<BHHHBH", ("enable_mask", "drop_cdeg", "sway_mm", "tilt_cdeg", "hysteresis_pct",
                                 "refractory_ms")),
    TIME_SYNC: ("<I", ("host_token",)),
    INFO: ("<B", ("with_id",)),  # with_id optional (COMMAND_OPTIONAL); 1: the ACK has name_id
    BACKFILL: ("<IH", ("from_seq", "max_samples")),
    LOG_LIST: ("<HB", ("index", "with_flags")),  # with_flags optional (COMMAND_OPTIONAL); 1: the ACK has flags
    LOG_DOWNLOAD: ("<HI", ("session_id", "from_block")),
    LOG_ERASE: ("<HI", ("session_id", "confirm")),  # confirm 0 asks; the ACK's token confirms (docs/protocol.md)
    CAL_UPLOAD: ("<HH", ("total_len", "offset")),  # then the chunk, the rest of the packet
}
ACK_LAYOUTS = {  # payload of an OK ACK; other opcodes have none
    TIME_SYNC: ("<IIII", ("host_token", "device_t_us", "next_seq", "next_t_us")),
    INFO: ("<BBBBBBHHBBH", ("proto_version", "fw_major", "fw_minor", "fw_patch", "board_id", "imu_id", "rate_hz",
                            "battery_mv", "battery_pct", "state_flags", "name_id")),  # name_id: if asked
    BACKFILL: ("<IH", ("first_seq", "count")),
    LOG_LIST: ("<HHIIB", ("n_sessions", "session_id", "start_time_s", "n_blocks", "flags")),  # flags: if asked
    LOG_DOWNLOAD: ("<I", ("n_blocks",)),
    LOG_ERASE: ("<I", ("confirm",)),  # nonzero: send LOG_ERASE again with it to erase; 0: erased
}
# Trailing fields of a layout that may be left out together (one format letter each): the shorter form of an older
# host's command, and the ACK answering it (docs/protocol.md, LOG_LIST and INFO)
COMMAND_OPTIONAL = {LOG_LIST: 1, INFO: 1}
ACK_OPTIONAL = {LOG_LIST: 1, INFO: 1}
EVENT_LAYOUTS = {
    EV_BUTTON: ("<B", ("press",)),
    EV_ALERT: ("<BBh", ("alert_kind", "side", "value")),
    EV_LOW_BATTERY: ("<HB", ("battery_mv", "battery_pct")),
    EV_BUFFER_OVERRUN: ("<BIH", ("source", "first_lost_seq", "n_lost")),
}


def samples_per_packet(mtu):
    """Samples per full DATA notification at this ATT MTU; 0: use the compact form (MTU 23)."""
    if mtu < MIN_MTU:
        raise ValueError("ATT MTU %d is below the BLE minimum of 23" % mtu)
    return min((mtu - ATT_OVERHEAD - DATA_HEADER_LEN) // WIRE_SAMPLE_LEN, MAX_SAMPLES_PER_PACKET)


# ------------------------------------------------------------------------------------------------ DATA packets


@micropython.viper
def encode_data(buf, seq: int, t_us: int, t_hi: int, period_us: int, quat, acc, gyr, flags, start: int, n: int,
                extra: int) -> int:
    """Full-form DATA packet into buf from samples start .. start + n - 1 of the sample arrays (quat 4 x i16,
    acc and gyr 3 x i16, flags u8 per sample), wrapping at the arrays' end (a ring); extra is OR'ed into every
    flags byte (BACKFILLED). The device time is t_hi * 2^30 + t_us (a tick and its wraps, so that a 32-bit port
    passes small ints; or t_hi 0 and the whole time); it and seq are taken modulo 2^32. Returns the length,
    12 + 21 n."""
    t_us += t_hi << 30  # machine words: only the low 32 bits are written
    p = ptr8(buf)
    pq = ptr8(quat)
    pa = ptr8(acc)
    pg = ptr8(gyr)
    pf = ptr8(flags)
    cap = int(len(flags))
    p[0] = 0x21
    p[1] = n
    p[2] = seq
    p[3] = seq >> 8
    p[4] = seq >> 16
    p[5] = seq >> 24
    p[6] = t_us
    p[7] = t_us >> 8
    p[8] = t_us >> 16
    p[9] = t_us >> 24
    p[10] = period_us
    p[11] = period_us >> 8
    o = 12
    i = start
    k = 0
    while k < n:
        if i >= cap:
            i -= cap
        j = i * 8
        e = j + 8
        while j < e:
            p[o] = pq[j]
            o += 1
            j += 1
        j = i * 6
        e = j + 6
        while j < e:
            p[o] = pa[j]
            o += 1
            j += 1
        j = i * 6
        while j < e:
            p[o] = pg[j]
            o += 1
            j += 1
        p[o] = (pf[i] | extra) & 0x7F
        o += 1
        i += 1
        k += 1
    return o


@micropython.viper
def encode_compact(buf, seq: int, quat, acc, gyr, i: int) -> int:
    """Compact DATA packet (MTU 23, 20 bytes) of sample i: seq16, quat x, y, z (negated when w < 0), acc, gyr."""
    p = ptr8(buf)
    q = ptr16(quat)
    pa = ptr8(acc)
    pg = ptr8(gyr)
    p[0] = seq
    p[1] = seq >> 8
    neg = (int(q[i * 4]) & 0x8000) != 0
    o = 2
    j = i * 4 + 1
    while j < i * 4 + 4:
        v = (int(q[j]) ^ 0x8000) - 0x8000
        if neg:
            v = -v
            if v > 32767:  # -(-32768): the nearest value that fits
                v = 32767
        p[o] = v
        p[o + 1] = v >> 8
        o += 2
        j += 1
    j = i * 6
    while j < i * 6 + 6:
        p[o] = pa[j]
        p[o + 6] = pg[j]
        o += 1
        j += 1
    return 20


# --------------------------------------------------------------------------------------------- control packets


def encode_ack(buf, opcode, token, status, *fields):
    """ACK into buf; fields are the OK payload of ACK_LAYOUTS[opcode] in order (none for another status), without
    the optional last ones (ACK_OPTIONAL) when they are not given."""
    struct.pack_into("<BBBB", buf, 0, KIND_ACK, opcode & 0xFF, token & 0xFF, status)
    if status != OK or opcode not in ACK_LAYOUTS:
        return 4
    fmt, names = ACK_LAYOUTS[opcode]
    k = len(names) - len(fields)
    if 0 < k <= ACK_OPTIONAL.get(opcode, 0):
        fmt = fmt[:-k]
    struct.pack_into(fmt, buf, 4, *fields)
    return 4 + struct.calcsize(fmt)


def encode_event(buf, code, t_us, seq, *fields, t_hi=0):
    """EVENT into buf: code, device time t_hi * 2^30 + t_us (as encode_data), seq of the latest sample, then
    EVENT_LAYOUTS[code] fields."""
    struct.pack_into("<BBHHI", buf, 0, KIND_EVENT, code, t_us & 0xFFFF, _time_high16(t_us, t_hi), seq)
    fmt = EVENT_LAYOUTS[code][0]
    struct.pack_into(fmt, buf, 10, *fields)
    return 10 + struct.calcsize(fmt)


def encode_alert(buf, t_us, seq, kind, side, value, t_hi=0):
    """EVENT ALERT into buf, as encode_event(buf, EV_ALERT, t_us, seq, kind, side, value, t_hi=t_hi) writes it,
    without its tuple of fields: the on-device alert path allocates nothing, on a 32-bit port too (small ints
    only: the time in two u16 halves, seq packed modulo 2^32 by struct). Returns 14."""
    struct.pack_into("<BBHHIBBh", buf, 0, KIND_EVENT, EV_ALERT, t_us & 0xFFFF, _time_high16(t_us, t_hi), seq, kind,
                     side, value)
    return 14


def _time_high16(t_us, t_hi):
    # bits 16-31 of the u32 t_hi * 2^30 + t_us, from small ints (t_hi's low 2 bits are all the u32 keeps)
    return ((t_us >> 16) + ((t_hi & 3) << 14)) & 0xFFFF


def encode_log_chunk(buf, session_id, block, offset, data):
    """LOG_CHUNK into buf: session, block, byte offset within the block, then the data bytes."""
    n = len(data)
    struct.pack_into("<BHIH", buf, 0, KIND_LOG_CHUNK, session_id, block, offset)
    buf[9:9 + n] = data
    return 9 + n


def decode_command(packet):
    """A COMMAND packet -> (status, opcode, token, fields): fields is the tuple of COMMAND_LAYOUTS[opcode] values
    then, for VIBRATE, the steps as bytes (on, off, on, off...) and for CAL_UPLOAD the chunk; without the optional
    last fields (COMMAND_OPTIONAL) when the command leaves them out (an older host's LOG_LIST). A status other
    than OK comes with the fields decoded so far (possibly none). opcode and token read 0 when missing."""
    n = len(packet)
    opcode = packet[1] if n > 1 else 0
    token = packet[2] if n > 2 else 0
    if n == 0:
        return BAD_LENGTH, 0, 0, ()
    if packet[0] >> 5 != PROTOCOL_VERSION:
        return UNSUPPORTED_VERSION, opcode, token, ()
    if packet[0] != KIND_COMMAND:
        return UNKNOWN_COMMAND, opcode, token, ()
    if n > 1 and opcode not in COMMAND_LAYOUTS:
        return UNKNOWN_COMMAND, opcode, token, ()
    if n < 3:
        return BAD_LENGTH, opcode, token, ()
    fmt = COMMAND_LAYOUTS[opcode][0]
    size = struct.calcsize(fmt)
    rest = n - 3 - size
    k = COMMAND_OPTIONAL.get(opcode, 0)
    if rest < 0 and k:  # the shorter form, without the optional last fields
        fmt = fmt[:-k]
        size = struct.calcsize(fmt)
        rest = n - 3 - size
    if rest < 0:
        return BAD_LENGTH, opcode, token, ()
    fields = struct.unpack_from(fmt, packet, 3) if size else ()
    if opcode == VIBRATE:
        if rest != 2 * fields[2]:
            return BAD_LENGTH, opcode, token, fields
        fields = fields + (bytes(packet[3 + size:]),)
    elif opcode == CAL_UPLOAD:
        fields = fields + (bytes(packet[3 + size:]),)
    elif rest:
        return BAD_LENGTH, opcode, token, fields
    if n > MIN_PAYLOAD_LEN:
        return TOO_LONG, opcode, token, fields
    return _check_fields(opcode, fields), opcode, token, fields


def _check_fields(opcode, f):
    if opcode == SET_RATE and f[0] not in SUPPORTED_RATES_HZ:
        return OUT_OF_RANGE
    if opcode == VIBRATE and (f[0] > 100 or f[2] == 0):
        return OUT_OF_RANGE
    if opcode == SET_THRESHOLDS and (f[0] & ~0x0F or f[4] > 100):  # bit 3: stand-by
        return OUT_OF_RANGE
    if opcode == BACKFILL and f[1] == 0:
        return OUT_OF_RANGE
    if opcode == LOG_LIST and len(f) > 1 and f[1] > 1:
        return OUT_OF_RANGE
    if opcode == INFO and f and f[0] > 1:
        return OUT_OF_RANGE
    if opcode == CAL_UPLOAD:
        if f[0] != CAL_PROFILE_LEN:
            return BAD_LENGTH
        if f[1] + len(f[2]) > f[0] or not f[2]:
            return OUT_OF_RANGE
    return OK


# ------------------------------------------------------------------------------------------------ serial framing

_CRC_TABLE = array("H", [0] * 256)


def _make_crc_table():
    for i in range(256):
        c = i << 8
        for _ in range(8):
            c = ((c << 1) ^ 0x1021) if c & 0x8000 else (c << 1)
        _CRC_TABLE[i] = c & 0xFFFF


_make_crc_table()


@micropython.viper
def _crc16(data, n: int, table) -> int:
    p = ptr8(data)
    t = ptr16(table)
    crc = 0xFFFF
    i = 0
    while i < n:
        crc = ((crc << 8) & 0xFF00) ^ int(t[((crc >> 8) ^ p[i]) & 0xFF])
        i += 1
    return crc


def crc16_ccitt(data, n=-1):
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no final xor) of data[:n]."""
    return _crc16(data, len(data) if n < 0 else n, _CRC_TABLE)


@micropython.viper
def _cobs(out, data, n: int, crc: int) -> int:
    # COBS of data[:n] + crc (u16 little-endian), then the 0x00 delimiter; canonical: no empty block after a
    # full 0xFF block that ends the data.
    po = ptr8(out)
    pd = ptr8(data)
    total = n + 2
    code_pos = 0
    o = 1
    code = 1
    after_full = 0
    i = 0
    while i < total:
        if i < n:
            b = int(pd[i])
        elif i == n:
            b = crc & 0xFF
        else:
            b = (crc >> 8) & 0xFF
        i += 1
        if b == 0:
            po[code_pos] = code
            code_pos = o
            o += 1
            code = 1
            after_full = 0
        else:
            po[o] = b
            o += 1
            code += 1
            after_full = 0
            if code == 0xFF:
                po[code_pos] = code
                code_pos = o
                o += 1
                code = 1
                after_full = 1
    if after_full:
        o -= 1  # the data ended with a full block: no empty block follows
    else:
        po[code_pos] = code
    po[o] = 0
    return o + 1


def frame_into(out, packet, n=-1):
    """Serial frame of packet[:n] into out (at least n + 2 + (n + 2) // 254 + 2 bytes): COBS(packet + CRC-16
    little-endian) + 0x00. Returns the frame length."""
    if n < 0:
        n = len(packet)
    if not 1 <= n <= MAX_PACKET_LEN:
        raise ValueError("frame: packet of %d bytes, serial carries 1 to 510" % n)
    return _cobs(out, packet, n, _crc16(packet, n, _CRC_TABLE))


@micropython.viper
def _uncobs(src, n: int, dst) -> int:
    # COBS-decode src[:n] into dst; -1 for a zero byte or a block past the end, -2 if it decodes past dst.
    ps = ptr8(src)
    pd = ptr8(dst)
    cap = int(len(dst))
    i = 0
    o = 0
    while i < n:
        code = int(ps[i])
        if code == 0:
            return -1
        end = i + code
        if end > n:
            return -1
        i += 1
        while i < end:
            b = ps[i]
            if b == 0:
                return -1
            if o >= cap:
                return -2
            pd[o] = b
            o += 1
            i += 1
        if code != 0xFF and i < n:
            if o >= cap:
                return -2
            pd[o] = 0
            o += 1
    return o


@micropython.viper
def _collect(st, pend, data, start: int, n: int) -> int:
    # Copy data[start:n] into pend up to the next 0x00; st[0] pending length, st[1] discarding (oversize run),
    # st[2] bytes dropped by discarding. Returns the position after the delimiter, or -1 if none in data.
    s = ptr32(st)
    pp = ptr8(pend)
    pd = ptr8(data)
    cap = int(len(pend))
    m = int(s[0])
    i = start
    while i < n:
        b = pd[i]
        i += 1
        if b == 0:
            s[0] = m
            return i
        if int(s[1]):
            s[2] = int(s[2]) + 1
        elif m >= cap:  # a run without delimiter longer than any frame: drop it up to the next 0x00
            s[1] = 1
            s[2] = int(s[2]) + m + 1
            s[3] = int(s[3]) + 1
            m = 0
        else:
            pp[m] = b
            m += 1
    s[0] = m
    return -1


class Deframer:
    """Serial byte stream -> packets. Never raises: damage costs only its frame and is counted.

    ``feed(data, on_packet)`` calls ``on_packet(buf, n)`` for each good packet (buf[:n], valid until the call
    returns). Counters as on the host: frames_ok, crc_errors, cobs_errors, oversize_dropped, bytes_dropped.
    """

    def __init__(self):
        self._pend = bytearray(MAX_ENCODED_FRAME_LEN)
        self._dec = bytearray(MAX_FRAME_LEN)
        self._st = array("i", [0, 0, 0, 0])  # pending length, discarding, bytes dropped (oversize), oversize count
        self.frames_ok = 0
        self.crc_errors = 0
        self.cobs_errors = 0
        self._bytes_dropped = 0

    @property
    def oversize_dropped(self):
        return self._st[3]

    @property
    def bytes_dropped(self):
        return self._bytes_dropped + self._st[2]

    def feed(self, data, on_packet, n=-1):
        if n < 0:
            n = len(data)
        st = self._st
        pos = 0
        while pos < n:
            pos = _collect(st, self._pend, data, pos, n)
            if pos < 0:
                return
            m = st[0]
            st[0] = 0
            if st[1]:
                st[1] = 0  # the delimiter ends an oversize run
                continue
            if m == 0:
                continue  # back-to-back delimiters
            k = _uncobs(self._pend, m, self._dec)
            if k == -2:
                st[3] += 1
            elif k < 3:
                self.cobs_errors += 1
            elif _crc16(self._dec, k - 2, _CRC_TABLE) != self._dec[k - 2] | (self._dec[k - 1] << 8):
                self.crc_errors += 1
            else:
                self.frames_ok += 1
                on_packet(self._dec, k - 2)
                continue
            self._bytes_dropped += m
