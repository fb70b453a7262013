"""hipcheck wire protocol v1, host side: the one definition of the byte layout (see docs/protocol.md).

Every decoder here raises only `ProtocolError` subclasses on bad bytes (`TruncatedPacketError`, `BadLengthError`,
`UnknownVersionError`, `UnknownPacketTypeError`, `BadFieldError`, `FramingError`); `Deframer.feed` raises nothing.
Encoders raise `BadFieldError` for values that do not fit their fields. The firmware encoder is held to this file
by the vectors in tests/vectors.
"""

from __future__ import annotations

import binascii
import operator
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum, IntFlag
from typing import NamedTuple

import numpy as np

from hipcheck.errors import InvalidValueError
from hipcheck.units import ACC_LSB_M_S2, GYR_LSB_RAD_S, to_raw

PROTOCOL_VERSION = 1

# The fixed sample scales (ACC_LSB_M_S2, GYR_LSB_RAD_S) and to_raw are in hipcheck.units: the signal stages share them.
QUAT_FRACTION_BITS = 14  # quaternion components are int16 Q14: 16384 = 1.0
QUAT_ONE_Q14 = 1 << QUAT_FRACTION_BITS

INT16_MIN, INT16_MAX = -32768, 32767
SATURATION_RAW = 32767  # a raw acc/gyr value with |value| >= this is taken as saturated
U32_MODULUS = 1 << 32  # seq and t_us wrap here on the wire

# Sizes. BLE: payload = MTU - 3; the minimum MTU 23 leaves 20 bytes, which every non-data packet must fit.
ATT_OVERHEAD = 3
MIN_MTU = 23
MIN_PAYLOAD_LEN = MIN_MTU - ATT_OVERHEAD
MAX_PACKET_LEN = 510  # serial: packet + CRC-16 = 512 bytes decoded frame at most
MAX_FRAME_LEN = MAX_PACKET_LEN + 2
MAX_ENCODED_FRAME_LEN = MAX_FRAME_LEN + MAX_FRAME_LEN // 254 + 1  # COBS adds one code byte per 254 bytes
DATA_HEADER_LEN = 12
WIRE_SAMPLE_LEN = 21
COMPACT_PACKET_LEN = 20
MAX_SAMPLES_PER_PACKET = (MAX_PACKET_LEN - DATA_HEADER_LEN) // WIRE_SAMPLE_LEN  # 23
MAX_VIBRATE_STEPS = 7  # 3 + 3 + 2*7 = 20 bytes
MAX_CAL_CHUNK_LEN = MIN_PAYLOAD_LEN - 7  # 13: command header 3 + total_len 2 + offset 2
# A compact quaternion (x, y, z) may exceed unit length only by Q14 rounding: |2*v*e| summed over
# three components with |e| <= 0.5 LSB stays below sqrt(3)*16384 < 2**15 LSB^2.
COMPACT_QUAT_NORM2_MAX = QUAT_ONE_Q14 * QUAT_ONE_Q14 + (1 << 15)

# BLE GATT layout: one custom service, three characteristics.
SERVICE_UUID = "8f3c0001-4b7e-4a8d-9e62-3d5a1c7b0e91"
DATA_CHAR_UUID = "8f3c0002-4b7e-4a8d-9e62-3d5a1c7b0e91"  # notify: DATA (full or compact)
CONTROL_CHAR_UUID = "8f3c0003-4b7e-4a8d-9e62-3d5a1c7b0e91"  # write: COMMAND; notify: ACK and EVENT
LOG_CHAR_UUID = "8f3c0004-4b7e-4a8d-9e62-3d5a1c7b0e91"  # notify: LOG_CHUNK
DEVICE_NAME_PREFIX = "hipcheck-"  # advertised name: hipcheck-XXXX
LOW_BATTERY_PCT = 10  # the firmware's LOW_BATTERY threshold (firmware/battery.py LOW_PCT)


# ---------------------------------------------------------------------------------------------------------- errors


class ProtocolError(InvalidValueError):
    """Bytes that are not a valid protocol v1 packet or frame."""


class BadLengthError(ProtocolError):
    """The packet length does not match what its kind, opcode or header declares."""


class TruncatedPacketError(BadLengthError):
    """The packet ends before the fields its kind, opcode or header declares (a bad length too)."""


class UnknownVersionError(ProtocolError):
    """The kind byte carries a protocol version other than 1."""


class UnknownPacketTypeError(ProtocolError):
    """The kind byte names a packet type that v1 does not define, or not the type this decoder takes."""


class BadFieldError(ProtocolError):
    """A field holds a value the protocol forbids (n_samples 0, period 0, reserved bit, unknown opcode...)."""


class FramingError(ProtocolError):
    """A serial frame is malformed: bad COBS, CRC mismatch or too long."""


# ----------------------------------------------------------------------------------------------------- enumerations


class PacketType(IntEnum):
    DATA = 1
    COMMAND = 2
    ACK = 3
    EVENT = 4
    LOG_CHUNK = 5


def sensor_name(name_id: int) -> str:
    """The sensor's name from INFO's name_id: ``hipcheck-XXXX``, as it advertises itself over BLE."""
    return f"{DEVICE_NAME_PREFIX}{name_id:04X}"


def kind_byte(packet_type: PacketType) -> int:
    """First byte of every packet except compact data: version in bits 7-5, type in bits 4-0."""
    return (PROTOCOL_VERSION << 5) | packet_type


KIND_DATA = kind_byte(PacketType.DATA)  # 0x21


class SampleFlag(IntFlag):
    ACC_SATURATED = 1 << 0
    GYR_SATURATED = 1 << 1
    GYR_BIAS_CALIBRATED = 1 << 2
    ACC_CALIBRATED = 1 << 3
    AT_REST = 1 << 4
    FUSION_INITIALISING = 1 << 5
    BACKFILLED = 1 << 6  # resent from the device's ring buffer
    RESERVED = 1 << 7  # must be 0 in v1


class Opcode(IntEnum):
    START = 0x01
    STOP = 0x02
    SET_RATE = 0x03
    VIBRATE = 0x04
    SET_THRESHOLDS = 0x05
    TIME_SYNC = 0x06
    INFO = 0x07
    BACKFILL = 0x08
    LOG_LIST = 0x09
    LOG_DOWNLOAD = 0x0A
    LOG_ERASE = 0x0B
    CAL_UPLOAD = 0x0C


class Status(IntEnum):
    OK = 0
    UNKNOWN_COMMAND = 1
    BAD_LENGTH = 2
    OUT_OF_RANGE = 3
    TOO_LONG = 4
    BUSY = 5
    UNAVAILABLE = 6  # e.g. the backfill range is no longer in the device's buffer
    CRC_ERROR = 7
    UNSUPPORTED_VERSION = 8
    STORAGE_ERROR = 9


class EventCode(IntEnum):
    BUTTON = 1
    ALERT = 2
    LOW_BATTERY = 3
    BUFFER_OVERRUN = 4


class ButtonPress(IntEnum):
    SHORT = 1
    LONG = 2


class AlertKind(IntEnum):
    DROP = 1
    SWAY = 2
    TILT = 3


class Side(IntEnum):
    NONE = 0
    LEFT = 1
    RIGHT = 2


class OverrunSource(IntEnum):
    IMU_FIFO = 0
    TX_RING = 1
    LOG = 2


class ThresholdMask(IntFlag):
    """SET_THRESHOLDS enable_mask: the alerts on, and STANDBY: they run only while no host is connected."""

    DROP = 1 << 0
    SWAY = 1 << 1
    TILT = 1 << 2
    STANDBY = 1 << 3


class StateFlag(IntFlag):
    """INFO state_flags."""

    STREAMING = 1 << 0
    LOGGING = 1 << 1
    PROFILE_LOADED = 1 << 2
    ALERTS_ENABLED = 1 << 3


class LogEntryFlag(IntFlag):
    """LOG_LIST entry flags (the ACK's optional last byte, sent when the command asks with_flags=1)."""

    OPEN = 1 << 0  # the session is being written now: it grows, a later download continues it, LOG_ERASE is BUSY


BOARD_NAMES = {1: "xiao-esp32s3", 2: "nano-rp2040-connect", 3: "sim"}
IMU_NAMES = {1: "LSM6DSOX", 2: "LSM6DS3TR-C", 3: "MPU-6050", 4: "MPU-6886"}
SUPPORTED_RATES_HZ = (25, 50, 100, 200, 400)
LOG_ERASE_ALL = 0xFFFF


# ----------------------------------------------------------------------------------------- payload layouts (tables)


class Layout(NamedTuple):
    """A payload: fixed little-endian fields, then optionally one variable-length tail.

    The tail is raw bytes to the end of the packet (`tail_item` None) or `count` items of struct `tail_item`,
    where `count` names the fixed field holding the number of items (derived on encode, checked on decode).
    The last `optional` fields (no tail then) may be left out together: the shorter form an older peer sends
    and reads; `short()` is the layout without them.
    """

    fmt: str = ""
    names: tuple[str, ...] = ()
    tail: str | None = None
    tail_item: str | None = None
    count: str | None = None
    optional: int = 0

    def short(self) -> Layout:
        """The layout without its optional trailing fields (itself when it has none); formats are one letter a
        field."""
        k = self.optional
        return Layout(self.fmt[:-k], self.names[:-k]) if k else self

    @property
    def fixed_len(self) -> int:
        return struct.calcsize("<" + self.fmt)

    @property
    def field_names(self) -> tuple[str, ...]:
        """The fields an encoder takes and a decoder returns (the count field is implied by the tail)."""
        names = tuple(n for n in self.names if n != self.count)
        return names + ((self.tail,) if self.tail else ())


EMPTY = Layout()

# The one table of command payloads: encode_command and decode_packet both read it.
COMMAND_LAYOUTS: dict[Opcode, Layout] = {
    Opcode.START: EMPTY,
    Opcode.STOP: EMPTY,
    Opcode.SET_RATE: Layout("H", ("rate_hz",)),
    Opcode.VIBRATE: Layout("BBB", ("intensity_pct", "repeat", "n_steps"),
                           tail="steps", tail_item="BB", count="n_steps"),  # steps: (on_10ms, off_10ms)
    Opcode.SET_THRESHOLDS: Layout("BHHHBH", ("enable_mask", "drop_cdeg", "sway_mm", "tilt_cdeg",
                                             "hysteresis_pct", "refractory_ms")),
    Opcode.TIME_SYNC: Layout("I", ("host_token",)),
    # with_id 1: the ACK carries name_id (the sensor's identity); left out by hosts before it (same as 0)
    Opcode.INFO: Layout("B", ("with_id",), optional=1),
    Opcode.BACKFILL: Layout("IH", ("from_seq", "max_samples")),
    # with_flags 1: the ACK carries the entry's flags (LogEntryFlag); left out by hosts before it (same as 0)
    Opcode.LOG_LIST: Layout("HB", ("index", "with_flags"), optional=1),
    Opcode.LOG_DOWNLOAD: Layout("HI", ("session_id", "from_block")),
    Opcode.LOG_ERASE: Layout("HI", ("session_id", "confirm")),  # confirm 0 asks; the ACK's token erases
    Opcode.CAL_UPLOAD: Layout("HH", ("total_len", "offset"), tail="chunk"),
}

# Payloads of ACKs with status OK; any other status carries an empty payload.
ACK_LAYOUTS: dict[Opcode, Layout] = {op: EMPTY for op in Opcode} | {
    Opcode.TIME_SYNC: Layout("IIII", ("host_token", "device_t_us", "next_seq", "next_t_us")),
    # name_id (the XXXX of the sensor's BLE name hipcheck-XXXX, ``sensor_name``) only when the command asked
    # with_id=1: firmware before it sends 12 bytes
    Opcode.INFO: Layout("BBBBBBHHBBH", ("proto_version", "fw_major", "fw_minor", "fw_patch", "board_id", "imu_id",
                                        "rate_hz", "battery_mv", "battery_pct", "state_flags", "name_id"), optional=1),
    Opcode.BACKFILL: Layout("IH", ("first_seq", "count")),
    # flags (LogEntryFlag) only when the command asked with_flags=1: firmware before it sends 16 bytes
    Opcode.LOG_LIST: Layout("HHIIB", ("n_sessions", "session_id", "start_time_s", "n_blocks", "flags"), optional=1),
    Opcode.LOG_DOWNLOAD: Layout("I", ("n_blocks",)),
    Opcode.LOG_ERASE: Layout("I", ("confirm",)),  # nonzero: send LOG_ERASE again with it to erase; 0: erased
}

EVENT_LAYOUTS: dict[EventCode, Layout] = {
    EventCode.BUTTON: Layout("B", ("press",)),
    EventCode.ALERT: Layout("BBh", ("alert_kind", "side", "value")),  # value: cdeg (drop, tilt) or mm (sway)
    EventCode.LOW_BATTERY: Layout("HB", ("battery_mv", "battery_pct")),
    EventCode.BUFFER_OVERRUN: Layout("BIH", ("source", "first_lost_seq", "n_lost")),
}

LOG_CHUNK_LAYOUT = Layout("HIH", ("session_id", "block", "offset"), tail="data")

COMMAND_HEADER = Layout("BBB", ("kind", "opcode", "token"))
ACK_HEADER = Layout("BBBB", ("kind", "opcode", "token", "status"))
EVENT_HEADER = Layout("BBII", ("kind", "code", "t_us", "seq"))


def _pack(layout: Layout, fields: dict, what: str) -> bytes:
    if layout.optional and not set(layout.names[-layout.optional:]) & set(fields):
        layout = layout.short()  # the shorter form: none of the optional fields given
    expected = layout.field_names
    if set(fields) != set(expected):
        raise BadFieldError(f"{what} takes fields {list(expected)}, got {sorted(fields)}")
    values = dict(fields)
    tail = values.pop(layout.tail) if layout.tail else b""
    try:
        if layout.count:
            tail = [tuple(item) for item in tail]
            values[layout.count] = len(tail)
        fixed = struct.pack("<" + layout.fmt, *(operator.index(values[n]) for n in layout.names))
        if layout.tail_item:
            return fixed + b"".join(struct.pack("<" + layout.tail_item, *map(operator.index, t)) for t in tail)
        return fixed + memoryview(tail).tobytes()  # memoryview: refuses an int, which bytes() would take as a size
    except (struct.error, TypeError, ValueError) as e:
        raise BadFieldError(f"{what}: {e} (fields {fields})") from None


def _unpack(layout: Layout, payload: bytes, what: str) -> dict:
    if layout.optional and len(payload) == layout.short().fixed_len:
        layout = layout.short()  # an older peer's shorter form: the optional fields are absent from the result
    fixed_len = layout.fixed_len
    if len(payload) < fixed_len:
        raise TruncatedPacketError(f"{what}: {len(payload)} payload bytes, needs {fixed_len}")
    values = dict(zip(layout.names, struct.unpack_from("<" + layout.fmt, payload)))
    rest = payload[fixed_len:]
    if layout.tail is None:
        if rest:
            raise BadLengthError(f"{what}: {len(rest)} unexpected bytes after the {fixed_len}-byte payload")
    elif layout.tail_item is None:
        values[layout.tail] = bytes(rest)
    else:
        n_items = values.pop(layout.count)
        need = n_items * struct.calcsize("<" + layout.tail_item)
        if len(rest) != need:
            error = TruncatedPacketError if len(rest) < need else BadLengthError
            raise error(f"{what}: {layout.count} = {n_items} needs {need} bytes after the fixed fields, "
                        f"got {len(rest)}")
        values[layout.tail] = tuple(struct.iter_unpack("<" + layout.tail_item, rest))
    return values


def _enum(enum_type, value, what: str):
    try:
        return enum_type(value)
    except ValueError:
        raise BadFieldError(f"{what}: {value} is not a v1 {enum_type.__name__}") from None


def _maybe_enum(enum_type, value):
    try:
        return enum_type(value)
    except ValueError:
        return value


# ---------------------------------------------------------------------------------------------- control packets


class Command(NamedTuple):
    opcode: Opcode
    token: int  # echoed in the ACK
    fields: dict


class Ack(NamedTuple):
    opcode: Opcode | int  # an int when the device answers UNKNOWN_COMMAND to an opcode v1 does not know
    token: int
    status: Status
    fields: dict


class Event(NamedTuple):
    code: EventCode
    t_us: int  # device time, u32 wire value
    seq: int  # sequence number of the sample the event refers to, u32 wire value
    fields: dict


class LogChunk(NamedTuple):
    session_id: int
    block: int
    offset: int  # byte offset within the block
    data: bytes


def encode_command(opcode: Opcode | int, token: int, **fields) -> bytes:
    """COMMAND packet, e.g. `encode_command(Opcode.SET_RATE, 7, rate_hz=100)`."""
    opcode = _enum(Opcode, opcode, "command opcode")
    what = f"{opcode.name} command"
    header = _pack(COMMAND_HEADER, {"kind": kind_byte(PacketType.COMMAND), "opcode": opcode, "token": token}, what)
    return header + _pack(COMMAND_LAYOUTS[opcode], fields, what)


def encode_ack(opcode: Opcode | int, token: int, status: Status | int, **fields) -> bytes:
    """ACK packet; the payload (`fields`) is that of ACK_LAYOUTS[opcode] for status OK, else empty."""
    status = _enum(Status, status, "ack status")
    if status == Status.OK:
        opcode = _enum(Opcode, opcode, "ack opcode")
        layout = ACK_LAYOUTS[opcode]
    else:
        layout = EMPTY
    what = f"ACK {getattr(opcode, 'name', opcode)} {status.name}"
    header = _pack(ACK_HEADER, {"kind": kind_byte(PacketType.ACK), "opcode": opcode, "token": token,
                                "status": status}, what)
    return header + _pack(layout, fields, what)


def encode_event(code: EventCode | int, t_us: int, seq: int, **fields) -> bytes:
    """EVENT packet; t_us and seq are taken modulo 2**32 (they wrap on the wire)."""
    code = _enum(EventCode, code, "event code")
    what = f"{code.name} event"
    header = _pack(EVENT_HEADER, {"kind": kind_byte(PacketType.EVENT), "code": code,
                                  "t_us": operator.index(t_us) % U32_MODULUS,
                                  "seq": operator.index(seq) % U32_MODULUS}, what)
    return header + _pack(EVENT_LAYOUTS[code], fields, what)


def encode_log_chunk(session_id: int, block: int, offset: int, data: bytes) -> bytes:
    kind = bytes([kind_byte(PacketType.LOG_CHUNK)])
    return kind + _pack(LOG_CHUNK_LAYOUT, {"session_id": session_id, "block": block, "offset": offset,
                                           "data": data}, "LOG_CHUNK")


def packet_type(data: bytes, what: str = "packet") -> PacketType:
    """Type named by the kind byte; raises for an empty packet, another version or an undefined type."""
    if len(data) == 0:
        raise TruncatedPacketError(f"{what}: empty, a packet has at least its kind byte")
    kind = data[0]
    version = kind >> 5
    if version != PROTOCOL_VERSION:
        raise UnknownVersionError(
            f"{what}: kind byte 0x{kind:02x} carries protocol version {version}, this host speaks version "
            f"{PROTOCOL_VERSION}: update hipcheck or flash the matching firmware")
    try:
        return PacketType(kind & 0x1F)
    except ValueError:
        raise UnknownPacketTypeError(
            f"{what}: kind byte 0x{kind:02x} names packet type {kind & 0x1F}, v1 defines types 1-5") from None


def decode_packet(data: bytes) -> DataPacket | Command | Ack | Event | LogChunk:
    """One packet with a kind byte (not the compact data form) into its typed tuple."""
    data = bytes(data)
    ptype = packet_type(data)
    if ptype == PacketType.DATA:
        return _decode_data_packet(data, "DATA packet")
    if ptype == PacketType.COMMAND:
        head = _unpack(COMMAND_HEADER, data[:COMMAND_HEADER.fixed_len], "COMMAND header")
        opcode = _enum(Opcode, head["opcode"], "COMMAND opcode")
        fields = _unpack(COMMAND_LAYOUTS[opcode], data[COMMAND_HEADER.fixed_len:], f"{opcode.name} command")
        return Command(opcode, head["token"], fields)
    if ptype == PacketType.ACK:
        head = _unpack(ACK_HEADER, data[:ACK_HEADER.fixed_len], "ACK header")
        status = _enum(Status, head["status"], "ACK status")
        if status == Status.OK:
            opcode = _enum(Opcode, head["opcode"], "ACK opcode")
            layout = ACK_LAYOUTS[opcode]
        else:
            opcode, layout = _maybe_enum(Opcode, head["opcode"]), EMPTY
        fields = _unpack(layout, data[ACK_HEADER.fixed_len:], f"ACK {getattr(opcode, 'name', opcode)} {status.name}")
        return Ack(opcode, head["token"], status, fields)
    if ptype == PacketType.EVENT:
        head = _unpack(EVENT_HEADER, data[:EVENT_HEADER.fixed_len], "EVENT header")
        code = _enum(EventCode, head["code"], "EVENT code")
        fields = _unpack(EVENT_LAYOUTS[code], data[EVENT_HEADER.fixed_len:], f"{code.name} event")
        return Event(code, head["t_us"], head["seq"], fields)
    return LogChunk(**_unpack(LOG_CHUNK_LAYOUT, data[1:], "LOG_CHUNK"))


def command_status(packet: bytes) -> Status:
    """Status a v1 device answers to `packet` on field checks alone.

    BUSY, UNAVAILABLE, CRC_ERROR and STORAGE_ERROR depend on device state and are not decided here.
    """
    try:
        if packet_type(packet) != PacketType.COMMAND:
            return Status.UNKNOWN_COMMAND
        if len(packet) >= 2 and not isinstance(_maybe_enum(Opcode, packet[1]), Opcode):
            return Status.UNKNOWN_COMMAND
        command = decode_packet(packet)
    except UnknownVersionError:
        return Status.UNSUPPORTED_VERSION
    except UnknownPacketTypeError:
        return Status.UNKNOWN_COMMAND
    except ProtocolError:
        return Status.BAD_LENGTH
    if len(packet) > MIN_PAYLOAD_LEN:  # every command fits the 20-byte payload of the minimum MTU
        return Status.TOO_LONG
    f = command.fields
    match command.opcode:
        case Opcode.SET_RATE if f["rate_hz"] not in SUPPORTED_RATES_HZ:
            return Status.OUT_OF_RANGE
        case Opcode.VIBRATE if f["intensity_pct"] > 100 or not f["steps"]:
            return Status.OUT_OF_RANGE
        case Opcode.SET_THRESHOLDS if f["enable_mask"] & ~0x0F or f["hysteresis_pct"] > 100:
            return Status.OUT_OF_RANGE
        case Opcode.BACKFILL if f["max_samples"] == 0:
            return Status.OUT_OF_RANGE
        case Opcode.LOG_LIST if f.get("with_flags", 0) > 1:
            return Status.OUT_OF_RANGE
        case Opcode.INFO if f.get("with_id", 0) > 1:
            return Status.OUT_OF_RANGE
        case Opcode.CAL_UPLOAD if f["total_len"] != CAL_PROFILE_LEN:
            return Status.BAD_LENGTH
        case Opcode.CAL_UPLOAD if f["offset"] + len(f["chunk"]) > f["total_len"] or not f["chunk"]:
            return Status.OUT_OF_RANGE
    return Status.OK


# ----------------------------------------------------------------------------------------- calibration profile


class CalibrationProfile(NamedTuple):
    """Correction the device applies: gyr = gyr_measured - gyr_bias; acc = acc_matrix @ (acc_measured - acc_bias)."""

    gyr_bias_rad_s: tuple[float, float, float]
    acc_bias_m_s2: tuple[float, float, float]
    acc_matrix: tuple[float, ...]  # 3x3 row-major scale and misalignment correction
    q_sensor_to_pelvis: tuple[float, float, float, float]  # w, x, y, z


CAL_PROFILE_VERSION = 1
_CAL_PROFILE_STRUCT = struct.Struct("<B3f3f9f4f")
CAL_PROFILE_LEN = _CAL_PROFILE_STRUCT.size + 2  # 77 bytes + CRC-16 = 79


def encode_cal_profile(profile: CalibrationProfile) -> bytes:
    """Blob uploaded by CAL_UPLOAD: version, float32 fields, CRC-16/CCITT-FALSE of all before it."""
    parts = (profile.gyr_bias_rad_s, profile.acc_bias_m_s2, profile.acc_matrix, profile.q_sensor_to_pelvis)
    try:
        body = _CAL_PROFILE_STRUCT.pack(CAL_PROFILE_VERSION, *(float(v) for part in parts for v in part))
    except (struct.error, TypeError, ValueError) as e:
        raise BadFieldError(f"calibration profile: {e}; needs 3 + 3 + 9 + 4 numbers") from None
    return body + crc16_ccitt(body).to_bytes(2, "little")


def decode_cal_profile(blob: bytes) -> CalibrationProfile:
    blob = bytes(blob)
    if len(blob) != CAL_PROFILE_LEN:
        error = TruncatedPacketError if len(blob) < CAL_PROFILE_LEN else BadLengthError
        raise error(f"calibration profile: {len(blob)} bytes, v1 profiles are {CAL_PROFILE_LEN}")
    body, crc = blob[:-2], int.from_bytes(blob[-2:], "little")
    if crc16_ccitt(body) != crc:
        raise BadFieldError(f"calibration profile: CRC 0x{crc:04x} does not match 0x{crc16_ccitt(body):04x}")
    version, *v = _CAL_PROFILE_STRUCT.unpack(body)
    if version != CAL_PROFILE_VERSION:
        raise BadFieldError(f"calibration profile: version {version}, this host knows version {CAL_PROFILE_VERSION}")
    return CalibrationProfile(tuple(v[0:3]), tuple(v[3:6]), tuple(v[6:15]), tuple(v[15:19]))


def cal_upload_commands(blob: bytes, first_token: int, chunk_len: int = MAX_CAL_CHUNK_LEN) -> list[bytes]:
    """CAL_UPLOAD commands carrying `blob` in order; tokens count up from first_token (mod 256)."""
    return [encode_command(Opcode.CAL_UPLOAD, (first_token + i) % 256, total_len=len(blob), offset=offset,
                           chunk=blob[offset:offset + chunk_len])
            for i, offset in enumerate(range(0, len(blob), chunk_len))]


# ------------------------------------------------------------------------------------------------- data packets

DATA_HEADER_DTYPE = np.dtype([("kind", "u1"), ("n_samples", "u1"), ("seq", "<u4"), ("t_us", "<u4"),
                              ("period_us", "<u2")])
WIRE_SAMPLE_DTYPE = np.dtype([("quat_q14", "<i2", (4,)), ("acc_raw", "<i2", (3,)), ("gyr_raw", "<i2", (3,)),
                              ("flags", "u1")])
COMPACT_SAMPLE_DTYPE = np.dtype([("seq16", "<u2"), ("quat_xyz_q14", "<i2", (3,)), ("acc_raw", "<i2", (3,)),
                                 ("gyr_raw", "<i2", (3,))])
# Host-side decoded samples: seq and t_us unwrapped, quat w,x,y,z sensor->earth.
SAMPLE_DTYPE = np.dtype([("seq", "<i8"), ("t_us", "<i8"), ("quat", "<f4", (4,)), ("acc_m_s2", "<f4", (3,)),
                         ("gyr_rad_s", "<f4", (3,)), ("flags", "u1")])
assert DATA_HEADER_DTYPE.itemsize == DATA_HEADER_LEN and WIRE_SAMPLE_DTYPE.itemsize == WIRE_SAMPLE_LEN
assert COMPACT_SAMPLE_DTYPE.itemsize == COMPACT_PACKET_LEN


def data_packet_dtype(n_samples: int) -> np.dtype:
    """A whole full-form DATA packet of n_samples, to view stacked packets of one length without copying."""
    return np.dtype([("header", DATA_HEADER_DTYPE), ("samples", WIRE_SAMPLE_DTYPE, (n_samples,))])


def data_packet_len(n_samples: int) -> int:
    return DATA_HEADER_LEN + WIRE_SAMPLE_LEN * n_samples


def samples_per_packet(mtu: int) -> int:
    """Samples per full-form DATA notification at this ATT MTU; 0 means the compact form is needed."""
    if mtu < MIN_MTU:
        raise InvalidValueError(f"ATT MTU {mtu} is below the BLE minimum of {MIN_MTU}")
    return min((mtu - ATT_OVERHEAD - DATA_HEADER_LEN) // WIRE_SAMPLE_LEN, MAX_SAMPLES_PER_PACKET)


def is_saturated(raw: np.ndarray) -> np.ndarray:
    """True where a raw acc/gyr value sits at the end of the int16 range."""
    raw = np.asarray(raw)
    return (raw >= SATURATION_RAW) | (raw <= -SATURATION_RAW)


def saturation_flags(acc_raw: np.ndarray, gyr_raw: np.ndarray) -> np.ndarray:
    """ACC_SATURATED / GYR_SATURATED per sample from raw (..., 3) values."""
    # Three column operations: numpy's reductions over a short last axis are several times slower.
    acc_sat = is_saturated(acc_raw[..., 0]) | is_saturated(acc_raw[..., 1]) | is_saturated(acc_raw[..., 2])
    gyr_sat = is_saturated(gyr_raw[..., 0]) | is_saturated(gyr_raw[..., 1]) | is_saturated(gyr_raw[..., 2])
    return (acc_sat * np.uint8(SampleFlag.ACC_SATURATED)) | (gyr_sat * np.uint8(SampleFlag.GYR_SATURATED))


def to_wire(quat, acc_m_s2, gyr_rad_s) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Physical samples (..., 4), (..., 3), (..., 3) to wire integers: (quat_q14, acc_raw, gyr_raw, flags).

    Rounds to nearest (ties to even) and clips to int16; a clipped or full-scale channel sets its saturation flag.
    """
    quat, acc, gyr = (np.asarray(a, dtype=np.float64) for a in (quat, acc_m_s2, gyr_rad_s))
    if quat.shape[-1:] != (4,) or acc.shape[-1:] != (3,) or gyr.shape[-1:] != (3,):
        raise BadFieldError(f"to_wire: shapes {quat.shape}, {acc.shape}, {gyr.shape}; "
                            f"need (..., 4), (..., 3), (..., 3)")
    for name, a in (("quat", quat), ("acc_m_s2", acc), ("gyr_rad_s", gyr)):
        if not np.isfinite(a).all():
            raise BadFieldError(f"to_wire: {name} holds NaN or infinity; the wire has no code for it")
    quat_q14 = to_raw(quat, 1.0 / QUAT_ONE_Q14)
    acc_raw = to_raw(acc, ACC_LSB_M_S2)
    gyr_raw = to_raw(gyr, GYR_LSB_RAD_S)
    return quat_q14, acc_raw, gyr_raw, saturation_flags(acc_raw, gyr_raw)


def _int_array(values, shape: tuple, lo: int, hi: int, name: str, what: str) -> np.ndarray:
    a = np.asarray(values)
    if a.dtype.kind not in "iu" and not (a.size == 0 and a.dtype.kind == "f"):
        raise BadFieldError(f"{what}: {name} must hold integers (wire values), got dtype {a.dtype}")
    if a.shape != shape:
        raise BadFieldError(f"{what}: {name} has shape {a.shape}, expected {shape}")
    if a.size and (a.min() < lo or a.max() > hi):
        raise BadFieldError(f"{what}: {name} must lie in [{lo}, {hi}], got [{a.min()}, {a.max()}]")
    return a.astype(np.int64)


def _wire_samples(quat_q14, acc_raw, gyr_raw, flags, what: str) -> np.ndarray:
    n = len(np.asarray(flags))
    samples = np.empty(n, WIRE_SAMPLE_DTYPE)
    samples["quat_q14"] = _int_array(quat_q14, (n, 4), INT16_MIN, INT16_MAX, "quat_q14", what)
    samples["acc_raw"] = _int_array(acc_raw, (n, 3), INT16_MIN, INT16_MAX, "acc_raw", what)
    samples["gyr_raw"] = _int_array(gyr_raw, (n, 3), INT16_MIN, INT16_MAX, "gyr_raw", what)
    samples["flags"] = _int_array(flags, (n,), 0, 0x7F, "flags (bit 7 reserved)", what)
    return samples


def _data_header(seq: int, t_us: int, period_us: int, n_samples: int, what: str) -> np.ndarray:
    if not 1 <= n_samples <= MAX_SAMPLES_PER_PACKET:
        raise BadFieldError(f"{what}: {n_samples} samples, a DATA packet holds 1 to {MAX_SAMPLES_PER_PACKET} "
                            f"(the most that fit {MAX_PACKET_LEN} bytes)")
    if not 1 <= period_us <= 0xFFFF:
        raise BadFieldError(f"{what}: period_us {period_us} must lie in [1, 65535]")
    header = np.zeros((), DATA_HEADER_DTYPE)
    header[()] = (KIND_DATA, n_samples, operator.index(seq) % U32_MODULUS, operator.index(t_us) % U32_MODULUS,
                  period_us)
    return header


def encode_data(seq: int, t_us: int, period_us: int, quat_q14, acc_raw, gyr_raw, flags) -> bytes:
    """One full-form DATA packet from wire integers (n,4), (n,3), (n,3), (n,); seq and t_us wrap at 2**32."""
    samples = _wire_samples(quat_q14, acc_raw, gyr_raw, flags, "encode_data")
    return _data_header(seq, t_us, period_us, len(samples), "encode_data").tobytes() + samples.tobytes()


def encode_data_packets(seq0: int, t0_us: int, period_us: int, quat_q14, acc_raw, gyr_raw, flags, *,
                        samples_per_packet: int) -> list[bytes]:
    """A run of samples at an ideal clock (t = t0 + i*period) batched into full-form DATA packets.

    For the simulated sensor, tests and benchmarks; the last packet holds the remainder.
    """
    what = "encode_data_packets"
    samples = _wire_samples(quat_q14, acc_raw, gyr_raw, flags, what)
    spp = samples_per_packet
    _data_header(0, 0, period_us, spp, what)  # checks spp and period
    n_full = len(samples) // spp
    block = np.empty(n_full, data_packet_dtype(spp))
    first = np.arange(n_full, dtype=np.int64) * spp
    header = block["header"]
    header["kind"], header["n_samples"], header["period_us"] = KIND_DATA, spp, period_us
    header["seq"] = (seq0 + first) % U32_MODULUS
    header["t_us"] = (t0_us + first * period_us) % U32_MODULUS
    block["samples"] = samples[:n_full * spp].reshape(n_full, spp)
    buf, size = block.tobytes(), block.dtype.itemsize
    packets = [buf[i:i + size] for i in range(0, len(buf), size)]
    if len(samples) > n_full * spp:
        rest = samples[n_full * spp:]
        k = n_full * spp
        packets.append(_data_header(seq0 + k, t0_us + k * period_us, period_us, len(rest), what).tobytes()
                       + rest.tobytes())
    return packets


class DataPacket(NamedTuple):
    """A full-form DATA packet as wire integers; encode_data(**p._asdict()) gives its bytes back."""

    seq: int
    t_us: int
    period_us: int
    quat_q14: np.ndarray  # (n, 4) int16
    acc_raw: np.ndarray  # (n, 3) int16
    gyr_raw: np.ndarray  # (n, 3) int16
    flags: np.ndarray  # (n,) uint8


def _check_data_packet(data: bytes, what: str) -> int:
    """Raise the documented error for a bad full-form DATA packet; return n_samples."""
    if packet_type(data, what) != PacketType.DATA:
        raise UnknownPacketTypeError(
            f"{what}: kind byte 0x{data[0]:02x} is {PacketType(data[0] & 0x1F).name}, not DATA (0x{KIND_DATA:02x})")
    if len(data) < DATA_HEADER_LEN:
        raise TruncatedPacketError(f"{what}: {len(data)} bytes, shorter than the {DATA_HEADER_LEN}-byte DATA header")
    header = np.frombuffer(data, DATA_HEADER_DTYPE, count=1)[0]
    n = int(header["n_samples"])
    if n == 0:
        raise BadFieldError(f"{what}: n_samples is 0, a DATA packet carries at least one sample")
    if len(data) != data_packet_len(n):
        error = TruncatedPacketError if len(data) < data_packet_len(n) else BadLengthError
        raise error(f"{what}: {len(data)} bytes, but n_samples = {n} needs {data_packet_len(n)} (12 + 21*n)")
    if header["period_us"] == 0:
        raise BadFieldError(f"{what}: period_us is 0")
    flags = np.frombuffer(data, WIRE_SAMPLE_DTYPE, offset=DATA_HEADER_LEN)["flags"]
    if (flags & SampleFlag.RESERVED).any():
        i = int(np.flatnonzero(flags & SampleFlag.RESERVED)[0])
        raise BadFieldError(f"{what}: sample {i} has reserved flag bit 7 set (flags 0x{flags[i]:02x})")
    return n


def _decode_data_packet(data: bytes, what: str) -> DataPacket:
    n = _check_data_packet(data, what)
    packet = np.frombuffer(data, data_packet_dtype(n), count=1)[0]
    header, samples = packet["header"], packet["samples"]
    return DataPacket(int(header["seq"]), int(header["t_us"]), int(header["period_us"]),
                      samples["quat_q14"].copy(), samples["acc_raw"].copy(), samples["gyr_raw"].copy(),
                      samples["flags"].copy())


@dataclass
class SkippedPacket:
    index: int  # position in the list given to the decoder
    error: ProtocolError


@dataclass
class DecodeReport:
    """What a decode call did; last_seq/last_t_us (unwrapped) seed the reference of the next call."""

    n_packets: int = 0
    n_samples: int = 0
    skipped: list[SkippedPacket] = field(default_factory=list)
    last_seq: int | None = None
    last_t_us: int | None = None


def _signed32(x: np.ndarray) -> np.ndarray:
    return (x + (1 << 31)) % U32_MODULUS - (1 << 31)


def _signed16(x: np.ndarray) -> np.ndarray:
    return (x + (1 << 15)) % (1 << 16) - (1 << 15)


def _lengths(packets: Sequence[bytes]) -> np.ndarray:
    return np.fromiter(map(len, packets), dtype=np.int64, count=len(packets))


def _stack(packets: Sequence[bytes], idx: np.ndarray) -> bytes:
    if len(idx) == len(packets):
        return b"".join(packets)
    return b"".join([packets[i] for i in idx])


def decode_data_packets(packets: Sequence[bytes], *, strict: bool = True, seq_reference: int | None = None,
                        t_reference_us: int | None = None) -> tuple[np.ndarray, DecodeReport]:
    """Full-form DATA packets to one SAMPLE_DTYPE array, in packet order, vectorised.

    seq (u32) is unwrapped packet to packet to the candidate nearest the previous packet's, the first one nearest
    `seq_reference` if given. t_us (u32) is unwrapped against the prediction t_prev + (seq - seq_prev) * period,
    so a gap of any length is bridged as long as the device clock drifts less than 35 min over it; with
    `t_reference_us` (device time of sample `seq_reference`) the first packet is predicted from it.
    strict=True raises the documented ProtocolError naming the first bad packet; strict=False skips bad packets
    and lists them in the report.
    """
    if t_reference_us is not None and seq_reference is None:
        raise InvalidValueError("t_reference_us needs seq_reference, the sample it is the time of")
    packets = packets if isinstance(packets, (list, tuple)) else list(packets)
    report = DecodeReport(n_packets=len(packets))
    lengths = _lengths(packets)
    n_by_packet = np.zeros(len(packets), np.int64)  # 0 marks a bad packet
    groups = []  # (packet indices, records of one length)
    bad = []
    for length in np.unique(lengths):
        idx = np.flatnonzero(lengths == length)
        n = (int(length) - DATA_HEADER_LEN) // WIRE_SAMPLE_LEN
        if n < 1 or data_packet_len(n) != length:
            bad.extend(idx)
            continue
        records = np.frombuffer(_stack(packets, idx), data_packet_dtype(n))
        header = records["header"]
        ok = ((header["kind"] == KIND_DATA) & (header["n_samples"] == n) & (header["period_us"] != 0)
              & ~(records["samples"]["flags"] & SampleFlag.RESERVED).any(axis=1))
        bad.extend(idx[~ok])
        if ok.all():
            groups.append((idx, records))
        elif ok.any():
            groups.append((idx[ok], records[ok]))
        n_by_packet[idx[ok]] = n
    for i in sorted(bad):
        try:
            _check_data_packet(bytes(packets[i]), f"packet {i}")
            raise AssertionError(f"packet {i} failed the vectorised check but passed _check_data_packet")
        except ProtocolError as e:
            if strict:
                raise
            report.skipped.append(SkippedPacket(int(i), e))

    good = np.flatnonzero(n_by_packet)
    if len(good) == 0:
        return np.zeros(0, SAMPLE_DTYPE), report
    seq_wire = np.empty(len(packets), np.int64)
    t_wire = np.empty(len(packets), np.int64)
    period = np.empty(len(packets), np.int64)
    for idx, records in groups:
        seq_wire[idx], t_wire[idx], period[idx] = (records["header"][k] for k in ("seq", "t_us", "period_us"))
    seq_wire, t_wire, period, n_samples = seq_wire[good], t_wire[good], period[good], n_by_packet[good]

    # Unwrap, each packet against its predecessor: only wrap-size steps are removed.
    seq_start = seq_wire[0] if seq_reference is None else seq_reference + _signed32(seq_wire[0] - seq_reference)
    seq_first = seq_start + np.concatenate(([0], np.cumsum(_signed32(np.diff(seq_wire)))))
    predicted_step = np.diff(seq_first) * period[:-1]
    t_step = predicted_step + _signed32(np.diff(t_wire) - predicted_step)
    if t_reference_us is None:
        t_start = t_wire[0]
    else:
        t_predicted = t_reference_us + (seq_first[0] - seq_reference) * period[0]
        t_start = t_predicted + _signed32(t_wire[0] - t_predicted)
    t_first = t_start + np.concatenate(([0], np.cumsum(t_step)))

    out = np.empty(int(n_samples.sum()), SAMPLE_DTYPE)
    out_start = np.concatenate(([0], np.cumsum(n_samples)[:-1]))
    for idx, records in groups:
        n = records.dtype["samples"].shape[0]
        pos = np.searchsorted(good, idx)  # rows of this group among the good packets
        if pos[-1] - pos[0] + 1 == len(pos):  # consecutive packets (the usual case): a slice, not a scatter
            dest = slice(out_start[pos[0]], out_start[pos[0]] + n * len(pos))
        else:
            dest = (out_start[pos][:, None] + np.arange(n)).ravel()
        block = out[dest] if isinstance(dest, slice) else np.empty(n * len(pos), SAMPLE_DTYPE)
        k = np.arange(n)
        block["seq"] = (seq_first[pos][:, None] + k).ravel()
        block["t_us"] = (t_first[pos][:, None] + k * period[pos][:, None]).ravel()
        samples = records["samples"]
        # float64 then one rounding to float32: decoded values are the correctly rounded raw * LSB.
        block["quat"] = samples["quat_q14"].reshape(-1, 4) * (1.0 / QUAT_ONE_Q14)
        block["acc_m_s2"] = samples["acc_raw"].reshape(-1, 3) * ACC_LSB_M_S2
        block["gyr_rad_s"] = samples["gyr_raw"].reshape(-1, 3) * GYR_LSB_RAD_S
        block["flags"] = samples["flags"].reshape(-1)
        if not isinstance(dest, slice):
            out[dest] = block
    report.n_samples = len(out)
    report.last_seq, report.last_t_us = int(out["seq"][-1]), int(out["t_us"][-1])
    return out, report


# ----------------------------------------------------------------------------------------------- compact form


def _compact_samples(seq, quat_q14, acc_raw, gyr_raw, what: str) -> np.ndarray:
    seq = np.atleast_1d(np.asarray(seq, dtype=np.int64))
    n = len(seq)
    quat = _int_array(quat_q14, (n, 4), INT16_MIN, INT16_MAX, "quat_q14", what)
    # q and -q are the same rotation: send the one with w >= 0 so the host can derive w as a positive root.
    quat = np.where(quat[:, :1] < 0, -quat, quat)
    if quat.max(initial=0) > INT16_MAX:
        raise BadFieldError(f"{what}: quat_q14 -32768 cannot be negated to make w >= 0")
    samples = np.empty(n, COMPACT_SAMPLE_DTYPE)
    samples["seq16"] = seq % (1 << 16)
    samples["quat_xyz_q14"] = quat[:, 1:]
    samples["acc_raw"] = _int_array(acc_raw, (n, 3), INT16_MIN, INT16_MAX, "acc_raw", what)
    samples["gyr_raw"] = _int_array(gyr_raw, (n, 3), INT16_MIN, INT16_MAX, "gyr_raw", what)
    return samples


def encode_compact(seq: int, quat_q14, acc_raw, gyr_raw) -> bytes:
    """One 20-byte compact DATA packet: seq (low 16 bits sent), quat_q14 (4,) w,x,y,z, acc_raw (3,), gyr_raw (3,)."""
    return _compact_samples([operator.index(seq)], [quat_q14], [acc_raw], [gyr_raw], "encode_compact").tobytes()


def encode_compact_packets(seq0: int, quat_q14, acc_raw, gyr_raw) -> list[bytes]:
    """Consecutive samples seq0, seq0+1, ... as compact packets, one per sample."""
    n = len(np.asarray(quat_q14))
    buf = _compact_samples(seq0 + np.arange(n), quat_q14, acc_raw, gyr_raw, "encode_compact_packets").tobytes()
    return [buf[i:i + COMPACT_PACKET_LEN] for i in range(0, len(buf), COMPACT_PACKET_LEN)]


def decode_compact_packets(packets: Sequence[bytes], *, seq_reference: int, t_anchor_us: int, seq_anchor: int,
                           period_us: int, strict: bool = True) -> tuple[np.ndarray, DecodeReport]:
    """Compact DATA packets to SAMPLE_DTYPE, vectorised.

    seq: the first packet's 16-bit seq is taken nearest `seq_reference` (the last known sample, e.g. from a
    TIME_SYNC pong's next_seq), each next one nearest its predecessor; so fewer than 32768 samples may go
    missing between packets. t_us = t_anchor_us + (seq - seq_anchor) * period_us. Saturation flags are derived
    from the values; the other flags are unknown in this form and read 0.
    """
    if period_us <= 0:
        raise InvalidValueError(f"period_us {period_us} must be positive")
    packets = packets if isinstance(packets, (list, tuple)) else list(packets)
    report = DecodeReport(n_packets=len(packets))
    lengths = _lengths(packets)
    ok = lengths == COMPACT_PACKET_LEN
    records = np.frombuffer(_stack(packets, np.flatnonzero(ok)), COMPACT_SAMPLE_DTYPE)
    xyz = records["quat_xyz_q14"].astype(np.int64)
    norm2 = xyz[:, 0] * xyz[:, 0] + xyz[:, 1] * xyz[:, 1] + xyz[:, 2] * xyz[:, 2]
    quat_ok = norm2 <= COMPACT_QUAT_NORM2_MAX
    if not quat_ok.all():
        ok[np.flatnonzero(ok)[~quat_ok]] = False
        records, xyz, norm2 = records[quat_ok], xyz[quat_ok], norm2[quat_ok]
    for i in np.flatnonzero(~ok):
        what = f"compact packet {i}"
        if lengths[i] != COMPACT_PACKET_LEN:
            error_type = TruncatedPacketError if lengths[i] < COMPACT_PACKET_LEN else BadLengthError
            error = error_type(f"{what}: {lengths[i]} bytes, the compact form is exactly {COMPACT_PACKET_LEN}")
        else:
            x, y, z = np.frombuffer(bytes(packets[i]), COMPACT_SAMPLE_DTYPE)[0]["quat_xyz_q14"]
            error = BadFieldError(f"{what}: quaternion x, y, z = {x}, {y}, {z} (Q14) is longer than 1, w has no "
                                  f"real value")
        if strict:
            raise error
        report.skipped.append(SkippedPacket(int(i), error))
    if len(records) == 0:
        return np.zeros(0, SAMPLE_DTYPE), report

    seq16 = records["seq16"].astype(np.int64)
    seq_start = seq_reference + _signed16(seq16[0] - seq_reference)
    seq = seq_start + np.concatenate(([0], np.cumsum(_signed16(np.diff(seq16)))))
    out = np.empty(len(records), SAMPLE_DTYPE)
    out["seq"] = seq
    out["t_us"] = t_anchor_us + (seq - seq_anchor) * period_us
    w = np.sqrt(np.maximum(0.0, 1.0 - norm2 / float(QUAT_ONE_Q14 * QUAT_ONE_Q14)))
    out["quat"][:, 0] = w
    out["quat"][:, 1:] = xyz * (1.0 / QUAT_ONE_Q14)
    out["acc_m_s2"] = records["acc_raw"] * ACC_LSB_M_S2
    out["gyr_rad_s"] = records["gyr_raw"] * GYR_LSB_RAD_S
    out["flags"] = saturation_flags(records["acc_raw"], records["gyr_raw"])
    report.n_samples = len(out)
    report.last_seq, report.last_t_us = int(out["seq"][-1]), int(out["t_us"][-1])
    return out, report


# -------------------------------------------------------------------------------------------- serial framing


def crc16_ccitt(data: bytes) -> int:
    """CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, no final xor (check 0x29B1)."""
    # binascii.crc_hqx is exactly this CRC with the initial value passed in, running in C.
    return binascii.crc_hqx(data, 0xFFFF)


def cobs_encode(data: bytes) -> bytes:
    """Consistent overhead byte stuffing: the result holds no 0x00; canonical (no empty block after a 254-run)."""
    out = bytearray()
    parts = bytes(data).split(b"\x00")
    for i, part in enumerate(parts):
        while len(part) >= 254:
            out.append(0xFF)  # a full block: 254 data bytes, no zero implied after them
            out += part[:254]
            part = part[254:]
            if not part and i == len(parts) - 1:
                return bytes(out)
        out.append(len(part) + 1)
        out += part
    return bytes(out)


def cobs_decode(encoded: bytes) -> bytes:
    """Inverse of cobs_encode; raises FramingError on a 0x00 byte, a block past the end or empty input."""
    encoded = bytes(encoded)
    if not encoded:
        raise FramingError("COBS: empty input, an encoded frame has at least one code byte")
    out = bytearray()
    i, n = 0, len(encoded)
    while i < n:
        code = encoded[i]
        end = i + code
        if code == 0:
            raise FramingError(f"COBS: 0x00 at byte {i}, a delimiter inside the frame")
        if end > n:
            raise FramingError(f"COBS: code 0x{code:02x} at byte {i} runs {end - n} bytes past the end")
        block = encoded[i + 1:end]
        if 0 in block:
            raise FramingError(f"COBS: 0x00 at byte {i + 1 + block.index(0)}, a delimiter inside the frame")
        out += block
        i = end
        if code != 0xFF and i < n:
            out.append(0)
    return bytes(out)


def frame(packet: bytes) -> bytes:
    """Serial frame: COBS(packet + CRC-16 little-endian) + 0x00."""
    packet = bytes(packet)
    if not 1 <= len(packet) <= MAX_PACKET_LEN:
        raise BadLengthError(f"frame: packet of {len(packet)} bytes, serial carries 1 to {MAX_PACKET_LEN}")
    return cobs_encode(packet + crc16_ccitt(packet).to_bytes(2, "little")) + b"\x00"


def unframe(encoded: bytes) -> bytes:
    """One frame (trailing 0x00 optional) back to its packet; raises FramingError."""
    encoded = bytes(encoded)
    if encoded.endswith(b"\x00"):
        encoded = encoded[:-1]
    if len(encoded) > MAX_ENCODED_FRAME_LEN:
        raise FramingError(f"frame: {len(encoded)} encoded bytes, at most {MAX_ENCODED_FRAME_LEN}")
    decoded = cobs_decode(encoded)
    if not 3 <= len(decoded) <= MAX_FRAME_LEN:
        raise FramingError(f"frame: decodes to {len(decoded)} bytes, a frame holds 1 to {MAX_PACKET_LEN} + 2 CRC")
    packet, crc = decoded[:-2], int.from_bytes(decoded[-2:], "little")
    if crc16_ccitt(packet) != crc:
        raise FramingError(f"frame: CRC 0x{crc:04x} does not match 0x{crc16_ccitt(packet):04x} of the packet")
    return packet


class Deframer:
    """Splits a serial byte stream into packets. Never raises: damage is counted and costs only its frame.

    Counters: frames_ok; crc_errors; cobs_errors (bad COBS or too short for a CRC); oversize_dropped (runs
    without a delimiter longer than MAX_ENCODED_FRAME_LEN, and frames decoding past MAX_FRAME_LEN);
    bytes_dropped (encoded bytes of all dropped frames).
    """

    def __init__(self) -> None:
        self.frames_ok = 0
        self.crc_errors = 0
        self.cobs_errors = 0
        self.oversize_dropped = 0
        self.bytes_dropped = 0
        self._pending = bytearray()
        self._discarding = False  # inside an oversize run: drop bytes until the next delimiter

    def feed(self, chunk: bytes) -> list[bytes]:
        """Take the next bytes of the stream; return the packets of every frame completed by them."""
        data = bytes(chunk)
        packets = []
        start = 0
        while (end := data.find(0, start)) >= 0:
            self._take(data[start:end])
            packet = self._end_frame()
            if packet is not None:
                packets.append(packet)
            start = end + 1
        self._take(data[start:])
        return packets

    def _take(self, piece: bytes) -> None:
        if self._discarding:
            self.bytes_dropped += len(piece)
            return
        self._pending += piece
        if len(self._pending) > MAX_ENCODED_FRAME_LEN:
            self.oversize_dropped += 1
            self.bytes_dropped += len(self._pending)
            self._pending.clear()
            self._discarding = True

    def _end_frame(self) -> bytes | None:
        if self._discarding:
            self._discarding = False
            return None
        encoded = bytes(self._pending)
        self._pending.clear()
        if not encoded:
            return None  # back-to-back delimiters: idle line or a sender resynchronising
        try:
            decoded = cobs_decode(encoded)
        except FramingError:
            decoded = b""
        if len(decoded) < 3:
            self.cobs_errors += 1
        elif len(decoded) > MAX_FRAME_LEN:
            self.oversize_dropped += 1
        elif crc16_ccitt(decoded[:-2]) != int.from_bytes(decoded[-2:], "little"):
            self.crc_errors += 1
        else:
            self.frames_ok += 1
            return decoded[:-2]
        self.bytes_dropped += len(encoded)
        return None
