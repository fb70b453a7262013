"""The sensor's flash session log, read on the host: its 512-byte blocks checked, and a session's blocks turned into
a session log (``.hclog``, docs/log-format.md) that ``hipcheck analyze`` reads.

Block format, version 1 (``firmware/store.py`` writes it; docs/sync.md), little-endian::

    offset  size  field
    0       2     magic 0x4C48 ("HL")
    2       1     format version (1)
    3       1     flags (0)
    4       2     session_id
    6       2     length: payload bytes used (0-492)
    8       4     block number within the session
    12      4     start_time_s of the session
    16      492   payload (zero past length)
    508     4     CRC-32 (zlib.crc32) of bytes 0-507

A session's payloads, concatenated in block order, are a sequence of protocol v1 packets (DATA in the full form
and EVENT), each self-delimiting; a packet may run from one block into the next. ``blocks_to_hclog`` writes each
packet as the record its channel takes (DATA, or CONTROL for an EVENT). A block that fails its check leaves a hole:
the packets on either side of it are found again (the next DATA packet whose sequence number and period continue
the stream, followed by another packet), and the samples in between are written down as lost (a ``gap_lost``
NOTE, as a live session marks a gap), so the reader marks them and invents nothing.

Time: the packets were never received live, so a synced log's ``t_host_s`` is the device's own clock (seconds,
unwrapped); the header says so (``clock: "device"``).
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import NamedTuple

from hipcheck import protocol
from hipcheck.device.wire import nearest
from hipcheck.protocol import EVENT_LAYOUTS, KIND_DATA, PacketType

KIND_EVENT = protocol.kind_byte(PacketType.EVENT)

BLOCK_SIZE = 512
HEADER_SIZE = 16
PAYLOAD_SIZE = 492
BLOCK_MAGIC = 0x4C48
BLOCK_VERSION = 1
CRC_AT = 508
_HEADER = struct.Struct("<HBBHHII")
_EVENT_HEADER_LEN = 10
# After a damaged block, a DATA packet found by scanning must continue the stream: its first sample within this many
# of the last good one (a block holds at most 23 samples; 100 000 allows for over 4000 damaged blocks in a row).
_RESYNC_MAX_SEQ_JUMP = 100_000


class BlockHeader(NamedTuple):
    magic: int
    version: int
    flags: int
    session_id: int
    length: int
    block: int
    start_time_s: int


def block_header(raw: bytes) -> BlockHeader:
    """The header fields of a raw block (not checked)."""
    return BlockHeader(*_HEADER.unpack_from(raw, 0))


def check_block(raw: bytes, session_id: int | None = None, block: int | None = None) -> str | None:
    """None when ``raw`` is a whole good block (of that session and number, when given), else what is wrong."""
    if len(raw) != BLOCK_SIZE:
        return f"{len(raw)} bytes, not {BLOCK_SIZE}"
    crc = struct.unpack_from("<I", raw, CRC_AT)[0]
    if zlib.crc32(raw[:CRC_AT]) != crc:
        return "CRC-32 mismatch"
    h = block_header(raw)
    if h.magic != BLOCK_MAGIC or h.version != BLOCK_VERSION or h.length > PAYLOAD_SIZE:
        return f"not a version-{BLOCK_VERSION} log block (magic 0x{h.magic:04x}, version {h.version})"
    if session_id is not None and h.session_id != session_id:
        return f"a block of session {h.session_id}, not {session_id}"
    if block is not None and h.block != block:
        return f"block number {h.block}, not {block}"
    return None


def read_blocks(path) -> list[bytes]:
    """The whole blocks of a raw copy (``.blocks`` or ``.part``); a partial block at the end is left out."""
    data = Path(path).read_bytes()
    return [data[i:i + BLOCK_SIZE] for i in range(0, len(data) - BLOCK_SIZE + 1, BLOCK_SIZE)]


def _packet_len(stream: bytes, pos: int) -> int:
    """Length of the v1 packet that would start at pos (DATA full form or EVENT), 0 if none can."""
    kind = stream[pos]
    if kind == KIND_DATA and pos + 1 < len(stream):
        n = stream[pos + 1]
        return protocol.data_packet_len(n) if 1 <= n <= protocol.MAX_SAMPLES_PER_PACKET else 0
    if kind == KIND_EVENT and pos + 1 < len(stream):
        try:
            layout = EVENT_LAYOUTS[protocol.EventCode(stream[pos + 1])]
        except ValueError:
            return 0
        return _EVENT_HEADER_LEN + layout.fixed_len
    return 0


def _decodes(packet: bytes) -> bool:
    try:
        protocol.decode_packet(packet)
    except protocol.ProtocolError:
        return False
    return True


class _Splitter:
    """A session's payload bytes, piece by piece (a hole between pieces), into packets; after a hole the stream is
    found again where a DATA packet continues the sequence (module docstring)."""

    def __init__(self):
        self.tail = b""  # the bytes of a packet cut by the end of the last piece
        self.last = None  # (seq, period_us) after the newest DATA packet
        self.after_hole = False
        self.skipped_bytes = 0

    def hole(self) -> None:
        self.tail = b""
        self.after_hole = True

    def feed(self, piece: bytes) -> list[bytes]:
        stream = self.tail + piece
        out = []
        pos = 0
        while pos < len(stream):
            if self.after_hole:
                found = self._resync(stream, pos)
                if found is None:  # nothing here continues the stream: keep the last bytes (a packet may start)
                    keep = max(pos, len(stream) - protocol.MAX_PACKET_LEN)
                    self.skipped_bytes += keep - pos
                    pos = keep
                    break
                self.skipped_bytes += found - pos
                pos = found
                self.after_hole = False
            n = _packet_len(stream, pos)
            if n == 0:  # bytes that are no packet inside a good stretch: damage the CRC let through; look again
                self.after_hole = True
                continue
            if pos + n > len(stream):
                break
            packet = stream[pos:pos + n]
            if packet[0] == KIND_DATA:
                self._see(packet)
            out.append(packet)
            pos += n
        self.tail = stream[pos:]
        return out

    def _see(self, packet: bytes) -> None:
        n = packet[1]
        seq = int.from_bytes(packet[2:6], "little")
        self.last = ((seq + n) & 0xFFFFFFFF, int.from_bytes(packet[10:12], "little"))

    def _resync(self, stream: bytes, start: int) -> int | None:
        """The first offset from start where a DATA packet continues the stream and is followed by another packet
        (or by the end of what is there)."""
        for pos in range(start, len(stream)):
            if stream[pos] != KIND_DATA:
                continue
            n = _packet_len(stream, pos)
            if n == 0 or pos + n > len(stream):
                continue
            packet = stream[pos:pos + n]
            if self.last is not None:
                seq = int.from_bytes(packet[2:6], "little")
                jump = (seq - self.last[0]) & 0xFFFFFFFF
                if jump > _RESYNC_MAX_SEQ_JUMP or int.from_bytes(packet[10:12], "little") != self.last[1]:
                    continue
            if not _decodes(packet):
                continue
            after = pos + n
            if after < len(stream) and _packet_len(stream, after) == 0:
                continue
            return pos
        return None


def blocks_to_hclog(blocks, hclog_path, header: dict | None = None) -> dict:
    """A session's raw blocks (in order; ``read_blocks``) as a session log at ``hclog_path`` (module docstring).
    Returns the account: packets, samples, damaged blocks, bytes skipped."""
    from hipcheck.record import LogWriter

    session_id = block_header(blocks[0]).session_id if blocks else None
    damaged = [i for i, raw in enumerate(blocks) if check_block(raw, session_id, i) is not None]
    head = {"link": "flash", "clock": "device", "start_unix_s": None, "start_monotonic_s": 0.0,
            "source": "hipcheck sync", **(header or {})}
    splitter = _Splitter()
    timer = _DeviceClock()
    account = {"blocks": len(blocks), "damaged_blocks": damaged, "packets": 0, "samples": 0, "lost_samples": 0}
    writer = LogWriter(hclog_path, head)
    try:
        for i, raw in enumerate(blocks):
            if i in damaged:
                splitter.hole()
                continue
            length = block_header(raw).length
            for packet in splitter.feed(raw[HEADER_SIZE:HEADER_SIZE + length]):
                _write_packet(writer, packet, timer, account, damaged)
        account["skipped_bytes"] = splitter.skipped_bytes + len(splitter.tail)
        writer.note("end", t_host_s=timer.last_s, synced=account)
    finally:
        writer.close()
    return account


class _DeviceClock:
    """Device times of the packets, unwrapped (u32 µs wraps every 71.6 min)."""

    def __init__(self):
        self.t_us = None
        self.seq = None  # one past the newest DATA sample

    def data(self, packet: bytes) -> tuple[int, int, int]:
        """(first seq, seq past the last, t_us of the last sample), unwrapped."""
        n = packet[1]
        seq_w = int.from_bytes(packet[2:6], "little")
        t_w = int.from_bytes(packet[6:10], "little")
        period = int.from_bytes(packet[10:12], "little")
        seq = seq_w if self.seq is None else nearest(self.seq, seq_w)
        t = t_w if self.t_us is None else nearest(self.t_us, t_w)
        self.seq = seq + n
        self.t_us = t + (n - 1) * period
        return seq, seq + n, self.t_us

    def event(self, packet: bytes) -> int:
        t_w = int.from_bytes(packet[2:6], "little")
        self.t_us = t_w if self.t_us is None else nearest(self.t_us, t_w)
        return self.t_us

    @property
    def last_s(self) -> float:
        return 0.0 if self.t_us is None else self.t_us * 1e-6


def _write_packet(writer, packet: bytes, timer: _DeviceClock, account: dict, damaged: list[int]) -> None:
    from hipcheck.record import RecordType

    if packet[0] == KIND_DATA:
        before = timer.seq
        first, end, t_us = timer.data(packet)
        if before is not None and first > before:  # the samples of damaged blocks: marked lost, never invented
            account["lost_samples"] += first - before
            writer.note("gap_lost", t_host_s=t_us * 1e-6, first_seq=before, n=first - before,
                        reason=f"damaged on the sensor's flash (blocks {_ranges(damaged)})" if damaged
                        else "not in the sensor's log")
        account["samples"] += end - first
        writer.write(RecordType.DATA, packet, t_us * 1e-6)
    else:
        writer.write(RecordType.CONTROL, packet, timer.event(packet) * 1e-6)
    account["packets"] += 1


def _ranges(numbers: list[int]) -> str:
    """[3, 4, 5, 9] -> '3-5, 9'."""
    out = []
    for k in numbers:
        if out and out[-1][1] == k - 1:
            out[-1][1] = k
        else:
            out.append([k, k])
    return ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in out)
