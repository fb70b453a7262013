"""A session log (``.hclog``, ``hipcheck.record``) read back as a recording: the samples in sequence order, as the
live session handed them to its pipeline.

``read_session_log(path)`` puts the log's packets through the session's own receive side
(``hipcheck.device.SampleStream``: decoding, the compact form's period from the recorded pongs, reassembly, the time
map), in the order the host received them, and replays the decisions the live session logged:

- backfilled samples take their places, as they did live;
- a range the live session marked lost (its ``gap_lost`` NOTE) is marked lost at the same point of the stream, so a
  backfill that came after the decision is dropped as it was live; a BUFFER_OVERRUN event marks its samples lost;
- a hole still open at the end of the log (a recorder killed before the backfill came) is marked lost.

Lost samples are left out of ``acc_m_s2``/``gyr_rad_s``, as the live job leaves them out of the pipeline
(``hipcheck.live``), so ``hipcheck.pipeline.analyze_arrays`` on them finds the strides the live job found. The
sample rate is the live job's: that of the first block (``1e6 / period_us``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hipcheck import protocol
from hipcheck.device import LostRange, SampleBlock, SampleStream, SessionRecording, SessionStats
from hipcheck.device.reassembly import BLOCK_DTYPE
from hipcheck.errors import InvalidValueError
from hipcheck.protocol import Ack, Command, Event, EventCode, Opcode, Status
from hipcheck.record import MAGIC, LogReader, LogRecord, RecordType


class SessionLogError(InvalidValueError):
    """A session log that holds nothing to analyse; the message names the file and says why."""


@dataclass
class SessionLog:
    """A session log as a recording (``t_s``, ``acc_m_s2``, ``gyr_rad_s``, ``fs_hz``, ``source`` as
    ``hipcheck.imu_csv.ImuRecording``) plus what only a log has. Per-sample arrays hold the received samples only
    (lost ones left out); ``samples`` holds every row the session emitted, lost ones marked (``BLOCK_DTYPE``)."""

    t_s: np.ndarray  # device time since the first emitted sample, s
    acc_m_s2: np.ndarray  # (n, 3) specific force, sensor frame
    gyr_rad_s: np.ndarray  # (n, 3) angular rate, sensor frame
    fs_hz: float
    source: str
    q_device_sensor_to_earth: np.ndarray  # (n, 4) w, x, y, z: the sensor's own fusion
    t_host_s: np.ndarray  # the same instants on the recording host's time.monotonic() clock (time map)
    seq: np.ndarray  # sequence numbers, unwrapped
    samples: np.ndarray  # every emitted row, lost ones with gap True
    lost: list[LostRange] = field(default_factory=list)
    header: dict = field(default_factory=dict)
    damaged_bytes: int = 0  # bytes of the log that belong to no good record (damage, a cut end): not read
    damage_line: str = ""  # the reader's account of them (``hipcheck.record.LogDamage.line``); empty if none
    bad_packets: int = 0  # DATA packets that could not be decoded (skipped, as live)
    notes: list[dict] = field(default_factory=list)  # the NOTE records, as ``hipcheck.record.LogReader.notes``

    mag_uT = None  # the sensor sends no magnetometer

    def __len__(self) -> int:
        return len(self.t_s)

    @property
    def n_lost(self) -> int:
        return int(np.count_nonzero(self.samples["gap"]))


def is_session_log(path) -> bool:
    """The file starts as a hipcheck session log does (any format version: the reader says which it takes)."""
    try:
        with open(path, "rb") as file:
            return file.read(6) == MAGIC[:6]
    except OSError:
        return False


def read_session_log(path, *, one_by_one: bool = False) -> SessionLog:
    """The samples of a session log, in sequence order, lost ones marked (module docstring). Raises
    ``LogFormatError`` for a file that is not a log, ``SessionLogError`` for a log without samples. Runs of
    full-form DATA packets go through ``SampleStream.data_run``; one_by_one=True feeds every packet to
    ``SampleStream.data`` as the live session did (the same result, about 50 times slower: the reference)."""
    path = Path(path)
    try:
        reader = LogReader(path)
    except FileNotFoundError:
        raise SessionLogError(f"{path}: no such file") from None
    except OSError as error:
        raise SessionLogError(f"{path}: cannot be read ({error.strerror or error})") from None
    records = list(reader)  # one pass: the start, the notes and the replay all need them
    batch = _FullPackets(records)
    notes = [record.json() | {"t_host_s": record.t_host_s} for record in records if record.type == RecordType.NOTE]
    blocks: list[SampleBlock] = []
    stats = SessionStats()
    stream = SampleStream(_start_seq(notes, batch), stats, SessionRecording(None), blocks.append)
    _Replay(stream, batch, batched=not one_by_one).run(records)
    stream.lose_missing("not in the recording")
    if not blocks:
        raise SessionLogError(f"{path}: the log holds no samples (was the sensor streaming?)")
    rows = np.concatenate([b.samples for b in blocks]) if blocks else np.zeros(0, BLOCK_DTYPE)
    valid = rows[~rows["gap"]]
    t_device = valid["t_device_us"]
    return SessionLog(
        t_s=(t_device - t_device[0]) * 1e-6 if len(valid) else np.zeros(0),
        acc_m_s2=valid["acc_m_s2"].astype(np.float64),
        gyr_rad_s=valid["gyr_rad_s"].astype(np.float64),
        fs_hz=1e6 / blocks[0].period_us,
        source=str(path),
        q_device_sensor_to_earth=valid["quat"].astype(np.float64),
        t_host_s=valid["t_host_s"].copy(),
        seq=valid["seq"].copy(),
        samples=rows,
        lost=list(stream.reassembly.lost),
        header=reader.header,
        damaged_bytes=reader.damage.bytes_skipped,
        damage_line=reader.damage.line() if reader.damage.damaged else "",
        bad_packets=stats.bad_packets,
        notes=notes,
    )


def _start_seq(notes: list[dict], batch: _FullPackets) -> int | None:
    """The first sequence number the live session emitted: the lowest the log holds (a session that started at 0
    backfilled everything since boot; one that started at its first live sample never asked for anything before
    it), or the first of a range it marked lost. None (the first live sample's) for a log in the compact form only."""
    seqs = [int(batch.samples["seq"].min())] if len(batch.samples) else []
    seqs += [int(note["first_seq"]) for note in notes if note.get("note") == "gap_lost"]
    return min(seqs) if seqs else None


class _FullPackets:
    """Every full-form DATA packet of the log decoded in one call, as ``hipcheck.record.log_samples`` decodes them
    (bad ones skipped): the values the replay takes (``SampleStream.data_run``) and the lowest seq."""

    def __init__(self, records: list[LogRecord]):
        kind = bytes([protocol.KIND_DATA])
        index = [i for i, r in enumerate(records) if r.type == RecordType.DATA
                 and len(r.payload) != protocol.COMPACT_PACKET_LEN and r.payload[:1] == kind]
        self.first_row = np.full(len(records), -1, np.int64)  # by record: its first row in samples, -1 if none
        if not index:
            self.samples = np.zeros(0, protocol.SAMPLE_DTYPE)
            return
        packets = [records[i].payload for i in index]
        self.samples, report = protocol.decode_data_packets(packets, strict=False)
        n = np.array([(len(p) - protocol.DATA_HEADER_LEN) // protocol.WIRE_SAMPLE_LEN for p in packets], np.int64)
        n[[s.index for s in report.skipped]] = 0
        rows = np.concatenate(([0], np.cumsum(n)[:-1]))
        self.first_row[np.array(index)[n > 0]] = rows[n > 0]


class _Replay:
    """The log's records in order through a ``SampleStream``, as ``DeviceSession``'s receive task fed it live."""

    def __init__(self, stream: SampleStream, batch: _FullPackets, batched: bool = True):
        self.stream = stream
        self.batch = batch
        self.batched = batched
        self.pings: dict[int, float] = {}  # TIME_SYNC token -> when the host sent it

    def run(self, records: list[LogRecord]) -> None:
        i = 0
        while i < len(records):
            record = records[i]
            if self.batched and record.type == RecordType.DATA \
                    and len(record.payload) != protocol.COMPACT_PACKET_LEN:
                j = i + 1  # the run of full-form DATA records goes through at once (same effect as one by one)
                while j < len(records) and records[j].type == RecordType.DATA \
                        and len(records[j].payload) != protocol.COMPACT_PACKET_LEN:
                    j += 1
                run = records[i:j]
                self.stream.data_run([r.payload for r in run], [r.t_host_s for r in run], self.batch.samples,
                                     self.batch.first_row[i:j], self.data)
                i = j
                continue
            if record.type == RecordType.DATA:
                self.data(record.payload, record.t_host_s)
            elif record.type in (RecordType.CONTROL, RecordType.COMMAND):
                self.control(record.payload, record.t_host_s)
            elif record.type == RecordType.NOTE:
                self.note(record.json())
            i += 1

    def data(self, packet: bytes, t: float) -> None:
        try:
            self.stream.data(packet, t)
        except protocol.ProtocolError:
            self.stream.stats.bad_packets += 1  # skipped live too (the session logged a bad_packet NOTE)

    def control(self, packet: bytes, t: float) -> None:
        try:
            message = protocol.decode_packet(packet)
        except protocol.ProtocolError:
            return
        if isinstance(message, Command) and message.opcode == Opcode.TIME_SYNC:
            self.pings[message.token] = t
        elif isinstance(message, Ack) and message.status == Status.OK:
            self.ack(message, t)
        elif isinstance(message, Event) and message.code == EventCode.BUFFER_OVERRUN:
            self.stream.overrun(message.fields)

    def ack(self, ack: Ack, t: float) -> None:
        stream = self.stream
        if ack.opcode == Opcode.TIME_SYNC:
            pong = stream.wire.pong(ack.fields)
            sent = self.pings.pop(ack.token, None)
            if sent is not None:
                stream.time_map.add_exchange(sent, t, pong["device_t_us"])
            for packet, t_early in stream.take_pong(pong["next_seq"], pong["next_t_us"]):
                self.data(packet, t_early)
        elif ack.opcode == Opcode.SET_RATE:
            stream.period.forget()

    def note(self, note: dict) -> None:
        if note.get("note") == "gap_lost":
            first = int(note["first_seq"])
            self.stream.lose(first, first + int(note["n"]), str(note.get("reason", "lost")))

