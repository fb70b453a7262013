"""The session's crash-safe log (``hipcheck.record``): every packet, every command sent, every decision taken.

The log's header holds the device's INFO, which is known only once the session has asked for it; records made
before that are held and written right after the header.
"""

from __future__ import annotations

import time

from hipcheck.record import CHANNEL_TYPES, LogWriter, RecordType, encode_note


class SessionRecording:
    """path: where the log goes; None: nothing is recorded."""

    def __init__(self, path=None):
        self.path = path
        self.writer: LogWriter | None = None
        self._held: list | None = [] if path is not None else None  # records made before the header

    def open(self, header: dict) -> None:
        """Write the header, then the records held so far."""
        if self.path is None:
            return
        self.writer = LogWriter(self.path, header)
        for args in self._held:
            self.writer.write(*args)
        self._held = None

    def packet(self, channel: str, packet: bytes, t: float) -> None:
        self._write(CHANNEL_TYPES[channel], packet, t)

    def command(self, packet: bytes, t: float) -> None:
        self._write(RecordType.COMMAND, packet, t)

    def note(self, note: str, **fields) -> None:
        """A NOTE record: ``{"note": note, **fields}``, timed now."""
        if self.writer is not None or self._held is not None:
            self._write(RecordType.NOTE, encode_note(note, **fields), time.monotonic())

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        self._held = None

    def _write(self, rtype: int, payload: bytes, t: float) -> None:
        if self.writer is not None:
            self.writer.write(rtype, payload, t)
        elif self._held is not None:
            self._held.append((rtype, payload, t))
