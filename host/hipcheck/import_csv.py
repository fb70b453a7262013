"""A CSV from another sensor turned into a session log (``.hclog``, docs/log-format.md), read back by every command
that reads a log (``hipcheck analyze``, ``orient``, ``review``, ``--replay``).

The samples are written as the sensor would have sent them: full-form DATA packets (``hipcheck.protocol``) at the
recording's rate, sequence numbers from 0, the device clock from 0, the orientation field from hipcheck's causal
fusion of the same samples (the one a live session's sensor computes; another sensor's own orientation is not
carried over). The wire holds int16 counts of 1/2048 g and 1/16.4 °/s (``hipcheck.units``): values are rounded to
them, and beyond ±16 g or ±2000 °/s they are clipped and flagged saturated. A stretch the CSV lacks (a long time
gap, left as missing samples by ``hipcheck.timing.regrid``) is not invented: its sequence numbers are marked lost
by a ``gap_lost`` NOTE, as a live session marks a radio gap it could not backfill. A NOTE ``imported`` first says
where the samples came from; a NOTE ``end`` closes the log.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hipcheck import protocol
from hipcheck.errors import InvalidValueError
from hipcheck.outputs import check_output_file
from hipcheck.fusion import orient
from hipcheck.pipeline import WALKING_FUSION_SETTINGS
from hipcheck.record import LogWriter, RecordType
from hipcheck.vendor_csv import ForeignRecording

# The DATA packet's period field is a u16 of µs.
MAX_PERIOD_US = 0xFFFF
SAMPLES_PER_PACKET = protocol.MAX_SAMPLES_PER_PACKET


@dataclass(frozen=True)
class ImportSummary:
    """What was written: samples, lost samples, the rate, saturated samples and the kind of file read."""

    path: str
    format: str
    samples: int
    lost: int
    fs_hz: float
    saturated: int

    def line(self) -> str:
        lost = f", {self.lost} missing samples marked lost" if self.lost else ""
        saturated = f", {self.saturated} samples clipped at the wire's range (saturated)" if self.saturated else ""
        return (f"wrote {self.path}: {self.samples} samples at {self.fs_hz:g} Hz from a {self.format} CSV "
                f"({self.samples / self.fs_hz:.1f} s){lost}{saturated}")


def write_session_log(foreign: ForeignRecording, out_path) -> ImportSummary:
    """Write ``foreign``'s samples as a session log at ``out_path`` (replaced if there: the caller checks)."""
    recording = foreign.recording
    period_us = round(1e6 / recording.fs_hz)
    if not 1 <= period_us <= MAX_PERIOD_US:
        raise InvalidValueError(f"{recording.source}: {recording.fs_hz:g} Hz cannot be written to a session log "
                                f"(its sample period is {1e6 / MAX_PERIOD_US:.2f} Hz at the slowest)")
    acc, gyr = recording.acc_m_s2, recording.gyr_rad_s
    finite = np.all(np.isfinite(acc), axis=1) & np.all(np.isfinite(gyr), axis=1)
    observed = finite if recording.observed is None else finite & recording.observed
    quat = orient(acc, gyr, recording.fs_hz, **WALKING_FUSION_SETTINGS)
    observed &= np.all(np.isfinite(quat), axis=1)
    header = {"link": "import", "start_monotonic_s": 0.0,
              "start_unix_s": foreign.start_unix_s if foreign.start_unix_s is not None else time.time(),
              "device": {"rate_hz": round(1e6 / period_us, 6), "imported_from": foreign.format}}
    saturated = 0
    with LogWriter(out_path, header) as log:
        log.note("imported", 0.0, format=foreign.format, sources=foreign.sources, fs_hz=recording.fs_hz,
                 notes=recording.notes)
        for first, stop, seen in _runs(observed):
            if not seen:
                log.note("gap_lost", stop * period_us * 1e-6, first_seq=first, n=stop - first,
                         reason="missing in the imported file")
                continue
            quat_q14, acc_raw, gyr_raw, flags = protocol.to_wire(quat[first:stop], acc[first:stop], gyr[first:stop])
            saturated += int(np.count_nonzero(flags))
            packets = protocol.encode_data_packets(first, first * period_us, period_us, quat_q14, acc_raw, gyr_raw,
                                                   flags, samples_per_packet=SAMPLES_PER_PACKET)
            for k, packet in enumerate(packets):
                # received when its last sample was taken
                last = min(stop, first + (k + 1) * SAMPLES_PER_PACKET) - 1
                log.write(RecordType.DATA, packet, last * period_us * 1e-6)
        log.note("end", len(observed) * period_us * 1e-6)
    return ImportSummary(str(out_path), foreign.format, int(observed.sum()), int((~observed).sum()),
                         1e6 / period_us, saturated)


def _runs(mask: np.ndarray):
    """(start, stop, value) of each run of equal values in a boolean array."""
    edges = np.flatnonzero(np.diff(mask.astype(np.int8))) + 1
    bounds = np.concatenate([[0], edges, [len(mask)]])
    for a, b in zip(bounds[:-1], bounds[1:]):
        yield int(a), int(b), bool(mask[a])


def check_output(out_path, inputs, *, force: bool) -> Path:
    """The log to write, checked before any work (``hipcheck.outputs.check_output_file``)."""
    return check_output_file(out_path, force=force, inputs=[Path(source) for source in inputs])
