"""Crash-safe session log: every packet the host got from the sensor (and every command it sent), append-only.

The format (MAGIC, then records ``length u32 | type u8 | t_host_s f64 | payload | crc u32``), the record types,
how a damaged log is read (the reader resynchronises on the next record whose CRC checks) and what is reported
about the loss are defined in docs/log-format.md; this module implements that page: ``LogWriter`` writes a log,
``LogReader`` reads one and keeps its ``damage`` account (``LogDamage``), ``DAMAGE_WARN_FRACTION`` is the share of
records lost above which a summary says the log is badly damaged.
"""

from __future__ import annotations

import json
import os
import struct
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path

import numpy as np
from hipcheck.errors import InvalidTypeError, InvalidValueError

MAGIC = b"HCLOG\x00\x01\n"
FORMAT_VERSION = 1
_HEAD = struct.Struct("<IBd")  # length, type, t_host_s
_CRC = struct.Struct("<I")
_HEAD_LEN, _CRC_LEN = _HEAD.size, _CRC.size
MAX_RECORD_LEN = 1 << 20  # a length beyond this is damage, not a record
# Above this share of records lost, a command's summary says the log is badly damaged: at 5 % a two-minute walk
# misses about 6 s, several strides, enough to move a median drop or a side score, so its figures need that caveat;
# below it the loss is a few isolated packets (the session marks them lost like a radio gap) and one line says so.
DAMAGE_WARN_FRACTION = 0.05


class RecordType(IntEnum):
    HEADER = 1
    DATA = 2
    CONTROL = 3
    LOG = 4
    COMMAND = 5
    NOTE = 6


CHANNEL_TYPES = {"data": RecordType.DATA, "control": RecordType.CONTROL, "log": RecordType.LOG}
TYPE_CHANNELS = {v: k for k, v in CHANNEL_TYPES.items()}


class LogFormatError(InvalidValueError):
    """The file is not a hipcheck session log (or of a newer format); the message says what was found."""


@dataclass(frozen=True)
class LogRecord:
    type: int  # RecordType, or an unknown int from a newer writer
    t_host_s: float
    payload: bytes

    @property
    def channel(self) -> str | None:
        """'data', 'control' or 'log' for a received packet, else None."""
        return TYPE_CHANNELS.get(self.type)

    def json(self) -> dict:
        return json.loads(self.payload.decode("utf-8"))


def encode_record(rtype: int, t_host_s: float, payload: bytes) -> bytes:
    head = _HEAD.pack(len(payload), int(rtype), float(t_host_s))
    return head + payload + _CRC.pack(zlib.crc32(payload, zlib.crc32(head)))


def encode_note(note: str, **fields) -> bytes:
    """A NOTE record's payload: ``{"note": note, **fields}`` as UTF-8 JSON (numpy numbers and arrays as plain)."""
    return json.dumps({"note": note, **fields}, default=_json_default).encode("utf-8")


class LogWriter:
    """Appends records to a new log. ``LogWriter(path, header)`` writes MAGIC and the HEADER record at once.

    header: JSON-ready dict (``link``, ``device``, ...); ``format``, ``start_unix_s`` and ``start_monotonic_s``
    are added unless given.
    """

    def __init__(self, path, header: dict | None = None, *, sync_interval_s: float = 1.0):
        self.path = Path(path)
        self.sync_interval_s = sync_interval_s
        self.records = 0
        self.bytes = 0
        head = {"format": FORMAT_VERSION, "start_unix_s": time.time(), "start_monotonic_s": time.monotonic(),
                "link": None, "device": None}
        head.update(header or {})
        self.header = head
        # O_APPEND + one os.write per record: a record is never interleaved or half-buffered in this process
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
        self._last_sync = time.monotonic()
        self._write(MAGIC)
        self.write(RecordType.HEADER, json.dumps(head).encode("utf-8"), head["start_monotonic_s"])

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        self.bytes += len(data)

    def write(self, rtype: int, payload: bytes, t_host_s: float | None = None) -> None:
        if self._fd is None:
            raise InvalidValueError(f"log {self.path} is closed")
        if len(payload) > MAX_RECORD_LEN:
            raise InvalidValueError(f"a record of {len(payload)} bytes; the log takes at most {MAX_RECORD_LEN}")
        self._write(encode_record(rtype, time.monotonic() if t_host_s is None else t_host_s, bytes(payload)))
        self.records += 1
        now = time.monotonic()
        if now - self._last_sync >= self.sync_interval_s:
            os.fsync(self._fd)
            self._last_sync = now

    def packet(self, channel: str, packet: bytes, t_host_s: float) -> None:
        """A packet received on ``channel`` ('data', 'control', 'log')."""
        self.write(CHANNEL_TYPES[channel], packet, t_host_s)

    def command(self, packet: bytes, t_host_s: float | None = None) -> None:
        self.write(RecordType.COMMAND, packet, t_host_s)

    def note(self, note: str, t_host_s: float | None = None, **fields) -> None:
        self.write(RecordType.NOTE, encode_note(note, **fields), t_host_s)

    def flush(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)

    def close(self) -> None:
        if self._fd is not None:
            try:
                os.fsync(self._fd)
            finally:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> LogWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise InvalidTypeError(f"{type(value).__name__} is not JSON serialisable")


@dataclass
class LogDamage:
    """What a reader could not read in a log (docs/log-format.md, "What is reported").

    bytes_skipped: bytes that belong to no good record (damage in the middle, or a record cut short at the end);
    regions: (offset, length) of each run of such bytes; records_read: good records; records_lost: an estimate of
    the records those bytes held (each region's length over the mean good record's length, at least one per
    region); lost_from_s, lost_to_s: on the recording host's clock (``t_host_s``), the last good record before the
    first region and the first good one after the last region (None where there is none: damage at the start or a
    cut end); header_lost: the HEADER record itself was damaged (the data records are read all the same).
    """

    bytes_skipped: int = 0
    regions: list = field(default_factory=list)
    records_read: int = 0
    records_lost: int = 0
    lost_from_s: float | None = None
    lost_to_s: float | None = None
    header_lost: bool = False
    magic_damaged: bool = False  # the 8 bytes of MAGIC were damaged (good records after them say what it is)
    span_s: float = 0.0  # host time between the good records around each region, summed (a cut end adds none)
    cut_end: bool = False  # the last region runs to the end of the file
    ended: bool = False  # the last good record is the session's closing NOTE ("end"): the recording was closed
    _bytes_read: int = 0  # bytes of good records, for the mean record length
    _t_last: float | None = None  # t_host_s of the latest good record

    @property
    def damaged(self) -> bool:
        return self.bytes_skipped > 0 or self.header_lost or self.magic_damaged

    @property
    def lost_fraction(self) -> float:
        """Records lost over the records the log held (read + lost)."""
        total = self.records_read + self.records_lost
        return self.records_lost / total if total else 0.0

    @property
    def badly_damaged(self) -> bool:
        """More than DAMAGE_WARN_FRACTION of the records lost: a summary says so."""
        return self.lost_fraction > DAMAGE_WARN_FRACTION

    def line(self) -> str:
        """The one line a command that read the log prints (also for an intact log: the loss is always said)."""
        unended = "" if self.ended else ("; no closing record: the recording stopped without closing (killed, or "
                                         "the file cut short), what came after is not in it")
        if not self.damaged:
            return f"log: {self.records_read} records, nothing lost{unended}"
        parts = [f"log damaged: {self.bytes_skipped} bytes skipped in {len(self.regions)} place"
                 f"{'' if len(self.regions) == 1 else 's'}, about {self.records_lost} of "
                 f"{self.records_read + self.records_lost} records lost ({100 * self.lost_fraction:.1f} %), "
                 f"{self.span_s:.2f} s of the session affected"]
        if self.cut_end:
            parts.append("the end was cut short")
        if self.header_lost:
            parts.append("the header record was lost")
        if self.magic_damaged:
            parts.append("the file magic was damaged")
        return "; ".join(parts) + unended

    def _skip(self, offset: int, length: int) -> None:
        self.regions.append((offset, length))
        self.bytes_skipped += length
        if len(self.regions) == 1:
            self.lost_from_s = self._t_last
        self.lost_to_s = None  # until a good record follows

    def _good(self, nbytes: int, t_host_s: float) -> None:
        if self.regions and self.lost_to_s is None:
            self.lost_to_s = t_host_s
            if self._t_last is not None and t_host_s > self._t_last:
                self.span_s += t_host_s - self._t_last
        self.records_read += 1
        self._bytes_read += nbytes
        self._t_last = t_host_s

    def _finish(self, size: int) -> None:
        mean = self._bytes_read / self.records_read if self.records_read else _HEAD.size + _CRC.size
        self.records_lost = sum(max(1, round(length / mean)) for _, length in self.regions)
        self.cut_end = bool(self.regions) and sum(self.regions[-1]) == size


class LogReader:
    """Reads a log written by ``LogWriter``: every good record, past any damage (docs/log-format.md).

    ``header`` (dict; empty if the HEADER record was damaged), iteration over ``LogRecord`` (the HEADER included),
    ``damage`` (``LogDamage``, the account of the whole file), ``tail_bytes`` (bytes after the last good record: a
    record cut short by a crash), ``complete`` (nothing skipped anywhere), ``records_start`` (8, or less where the
    start of the file was lost and the first good record begins inside what MAGIC's bytes were). A file that does not start as a hipcheck
    log of this version raises ``LogFormatError``.
    """

    def __init__(self, path):
        self.path = Path(path)
        self._data = self.path.read_bytes()
        self._data_limit: int | None = None  # where _resync stops looking (None: the end of the file)
        # where records begin: after MAGIC, or where the first good one is when the start of the file was lost
        self.records_start = len(MAGIC)
        self.header = self._check_start()
        self._damage: LogDamage | None = None

    def _check_start(self) -> dict:
        data = self._data
        if data.startswith(MAGIC):
            first = self._record_at(len(MAGIC))
            if first is not None and first[0] == RecordType.HEADER:
                return _json_or_empty(first[2])
            return {}  # a damaged header record: the reader resynchronises on the records after it
        # a damaged MAGIC (even its version byte) in front of a good HEADER record of this version is our log
        first = self._record_at(len(MAGIC))
        header = _json_or_empty(first[2]) if first is not None and first[0] == RecordType.HEADER else {}
        if header.get("format") == FORMAT_VERSION:
            return header
        # MAGIC damaged (bytes lost or added), good records after it: a log of ours (its HEADER, if that is what
        # was found, must say this version). Looked for from offset 0: with the start of the file lost, the first
        # good record may begin inside what MAGIC's 8 bytes were.
        at, found = self._two_good_records(0)
        if found is not None and (found[0] != RecordType.HEADER or
                                  _json_or_empty(found[2]).get("format") == FORMAT_VERSION):
            self.records_start = min(at, len(MAGIC))  # from 8 on, the bytes before it are counted as skipped
            return _json_or_empty(found[2]) if found[0] == RecordType.HEADER else {}
        if data[:6] == MAGIC[:6] and len(data) >= 8 and data[6] != FORMAT_VERSION:
            raise LogFormatError(f"{self.path}: a hipcheck log of format version {data[6]}, this "
                                 f"hipcheck reads version {FORMAT_VERSION}: update hipcheck")
        raise LogFormatError(f"{self.path}: not a hipcheck session log (it does not start with {MAGIC!r})")

    def _two_good_records(self, pos: int):
        """(offset, ``_record_at``'s tuple) of the first of two good records back to back within the first 64 KiB
        from ``pos``, or (None, None): a damaged log, never chance (a record found by chance passes a 32-bit CRC
        once in 2^32 tries)."""
        self._data_limit = min(len(self._data), pos + 65536)
        try:
            while (start := self._resync(pos)) < self._data_limit:
                first = self._record_at(start)
                if first is not None and self._record_at(first[3]) is not None:
                    return start, first
                pos = start + 1
        finally:
            self._data_limit = None
        return None, None

    def _record_at(self, pos: int):
        """(type, t_host_s, payload, end) of a good record at ``pos``, or None (no room, implausible, bad CRC)."""
        data, n = self._data, len(self._data)
        if pos + _HEAD.size + _CRC.size > n:
            return None
        length, rtype, t = _HEAD.unpack_from(data, pos)
        end = pos + _HEAD_LEN + length + _CRC_LEN
        if length > MAX_RECORD_LEN or end > n:
            return None
        if zlib.crc32(data[pos:end - _CRC_LEN]) != _CRC.unpack_from(data, end - _CRC_LEN)[0]:
            return None
        return rtype, t, data[pos + _HEAD_LEN:end - _CRC_LEN], end

    def _records(self) -> Iterator[LogRecord]:
        damage = LogDamage(magic_damaged=not self._data.startswith(MAGIC))
        pos, n = self.records_start, len(self._data)
        skip_from = None  # start of the run of bytes being skipped
        first = True
        record_at, note = self._record_at, int(RecordType.NOTE)  # an hour holds tens of thousands of records
        while pos < n:
            rec = record_at(pos)
            if rec is None:
                if skip_from is None:
                    skip_from = pos
                pos = self._resync(pos + 1)
                continue
            if skip_from is not None:
                damage._skip(skip_from, pos - skip_from)
                skip_from = None
            rtype, t, payload, end = rec
            if first and rtype != RecordType.HEADER:
                damage.header_lost = True
            first = False
            damage._good(end - pos, t)
            damage.ended = rtype == note and _json_or_empty(payload).get("note") == "end"
            yield LogRecord(rtype, t, payload)
            pos = end
        if skip_from is not None:
            damage._skip(skip_from, n - skip_from)
        if first:
            damage.header_lost = True
        damage._finish(n)
        self._damage = damage

    def _resync(self, pos: int) -> int:
        """The offset of the next good record at or after ``pos`` (the file's length if none): a start whose
        length is plausible and whose CRC checks. Only such starts cost a CRC: random bytes give a plausible
        length about once in 4096 places (MAX_RECORD_LEN = 2^20 of 2^32)."""
        data, n = self._data, len(self._data)
        stop = n if self._data_limit is None else self._data_limit
        unpack = _HEAD.unpack_from
        last = min(n - _HEAD.size - _CRC.size, stop)
        while pos <= last:
            length = unpack(data, pos)[0]
            if length <= MAX_RECORD_LEN and pos + _HEAD.size + length + _CRC.size <= n and \
                    self._record_at(pos) is not None:
                return pos
            pos += 1
        return n

    def __iter__(self) -> Iterator[LogRecord]:
        return self._records()

    @property
    def damage(self) -> LogDamage:
        """The account of the whole file (read once if it was not iterated to its end yet)."""
        if self._damage is None:
            for _ in self._records():
                pass
        return self._damage

    @property
    def tail_bytes(self) -> int:
        """Bytes after the last good record (a record cut short at the end); 0 if the log ends on a good one."""
        regions = self.damage.regions
        if regions and regions[-1][0] + regions[-1][1] == len(self._data):
            return regions[-1][1]
        return 0

    @property
    def complete(self) -> bool:
        return not self.damage.damaged

    def packets(self) -> Iterator[tuple[str, bytes, float]]:
        """Received packets in order: (channel, packet, t_host_s)."""
        for r in self._records():
            if r.channel is not None:
                yield r.channel, r.payload, r.t_host_s

    def notes(self) -> list[dict]:
        return [r.json() | {"t_host_s": r.t_host_s} for r in self._records() if r.type == RecordType.NOTE]


def _json_or_empty(payload: bytes) -> dict:
    """A HEADER's JSON; {} if its CRC checked but it is no JSON object (never written by LogWriter)."""
    try:
        value = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return value if isinstance(value, dict) else {}


def log_samples(path) -> np.ndarray:
    """Every full-form DATA sample in the log (live and backfilled), one per sequence number, sorted by seq
    (``hipcheck.protocol.SAMPLE_DTYPE``). Bad packets are skipped (the session counted them when it ran)."""
    from hipcheck import protocol

    packets = [p for ch, p, _ in LogReader(path).packets()
               if ch == "data" and len(p) != protocol.COMPACT_PACKET_LEN and p[:1] == bytes([protocol.KIND_DATA])]
    if not packets:
        return np.zeros(0, protocol.SAMPLE_DTYPE)
    samples, _ = protocol.decode_data_packets(packets, strict=False)
    _, first = np.unique(samples["seq"], return_index=True)
    return samples[first]
