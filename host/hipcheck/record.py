"""Crash-safe session log: every packet the host got from the sensor (and every command it sent), append-only.

Format (version 1), all integers little-endian::

    file    = MAGIC record*                       MAGIC = b"HCLOG\\x00\\x01\\n" (8 bytes: name, 0, version 1, newline)
    record  = length u32 | type u8 | t_host_s f64 | payload (length bytes) | crc u32
    crc     = CRC-32 (zlib.crc32) of the 13 header bytes and the payload

The first record is a HEADER. Record types:

| type | name | payload |
| ---: | --- | --- |
| 1 | HEADER | JSON (UTF-8): ``format`` 1, ``start_unix_s``, ``start_monotonic_s`` (the same instant on both clocks), ``link`` (name), ``device`` (the INFO answer: firmware, board, IMU, rate_hz...; ``null`` if unknown), anything else the writer adds |
| 2 | DATA | one packet from the data channel (DATA, full or compact form), as received |
| 3 | CONTROL | one packet from the control channel (ACK or EVENT) |
| 4 | LOG | one packet from the log channel (LOG_CHUNK) |
| 5 | COMMAND | one COMMAND packet the host sent |
| 6 | NOTE | JSON: what the session decided (``{"note": "gap_lost", "first_seq": .., "n": .., "reason": ..}``, ``reconnect``, ``time_map``, ``alert``, ``end``...) |

``t_host_s`` is the host's ``time.monotonic()`` when the packet arrived (or was sent); ``start_monotonic_s`` in the
header turns it into wall time. Packets are stored exactly as they came off the link; ``hipcheck.protocol`` decodes
them. A replay (``hipcheck.links.replay.ReplayLink``) plays types 2–4 back as ``Received(channel, packet,
host_time_s)``, channels ``data``, ``control``, ``log``.

Crash safety: each record goes to the file in one ``write`` call on an unbuffered file, so a process killed with
SIGKILL leaves every record it wrote (the OS holds them); ``fsync`` runs at most once per ``sync_interval_s``
(power loss). A record cut short by a crash fails its length or CRC: the reader stops there and reports the bytes
it skipped (``LogReader.tail_bytes``), so a log is readable up to its last complete record. Records of unknown
types are skipped (a newer writer), an unknown format version is refused.
"""

from __future__ import annotations

import json
import os
import struct
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

import numpy as np
from hipcheck.errors import InvalidTypeError, InvalidValueError

MAGIC = b"HCLOG\x00\x01\n"
FORMAT_VERSION = 1
_HEAD = struct.Struct("<IBd")  # length, type, t_host_s
_CRC = struct.Struct("<I")
MAX_RECORD_LEN = 1 << 20  # a length beyond this is damage, not a record


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


class LogReader:
    """Reads a log written by ``LogWriter``, up to its last complete record.

    ``header`` (dict), iteration over ``LogRecord`` (the HEADER included), ``tail_bytes`` (bytes after the last
    good record: a record cut short by a crash, or damage) once iterated, ``complete`` (no such bytes).
    """

    def __init__(self, path):
        self.path = Path(path)
        self._data = self.path.read_bytes()
        if not self._data.startswith(MAGIC):
            if self._data[:6] == MAGIC[:6] and len(self._data) >= 8:
                raise LogFormatError(f"{self.path}: a hipcheck log of format version {self._data[6]}, this "
                                     f"hipcheck reads version {FORMAT_VERSION}: update hipcheck")
            raise LogFormatError(f"{self.path}: not a hipcheck session log (it does not start with {MAGIC!r})")
        self.tail_bytes = 0
        first = next(self._records(), None)
        if first is None or first.type != RecordType.HEADER:
            raise LogFormatError(f"{self.path}: the log has no header record (cut short right after it began?)")
        self.header = first.json()

    def _records(self) -> Iterator[LogRecord]:
        data, pos, n = self._data, len(MAGIC), len(self._data)
        while pos < n:
            if pos + _HEAD.size > n:
                break
            length, rtype, t = _HEAD.unpack_from(data, pos)
            end = pos + _HEAD.size + length + _CRC.size
            if length > MAX_RECORD_LEN or end > n:
                break
            crc = _CRC.unpack_from(data, end - _CRC.size)[0]
            if zlib.crc32(data[pos:end - _CRC.size]) != crc:
                break
            yield LogRecord(rtype, t, data[pos + _HEAD.size:end - _CRC.size])
            pos = end
        self.tail_bytes = n - pos

    def __iter__(self) -> Iterator[LogRecord]:
        return self._records()

    @property
    def complete(self) -> bool:
        for _ in self._records():
            pass
        return self.tail_bytes == 0

    def packets(self) -> Iterator[tuple[str, bytes, float]]:
        """Received packets in order: (channel, packet, t_host_s)."""
        for r in self._records():
            if r.channel is not None:
                yield r.channel, r.payload, r.t_host_s

    def notes(self) -> list[dict]:
        return [r.json() | {"t_host_s": r.t_host_s} for r in self._records() if r.type == RecordType.NOTE]


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
