"""``ReplayLink``: a recorded session log (``hipcheck.record``) played back through the link interface.

    async with ReplayLink("session.hclog") as link:            # speed=None: as fast as possible; 2.0: twice as fast
        while (item := await link.receive(timeout_s=1.0)) is not None or link.status().connected:
            ...

Every packet the recording host received (log records DATA, CONTROL, LOG) comes out of ``receive()`` in the log's
order on its channel, at its original time since the first packet divided by ``speed`` (``speed=None``: at once,
as fast as the reader takes them). A reader that falls behind gets the packets that are due at once, so the replay
catches up instead of drifting. ``Received.host_time_s`` is ``time.monotonic()`` at delivery, as for a live link
(so watchdogs and rate figures work); ``last_t_host_s`` holds the original time of the latest packet, on the
recording host's clock (``header["start_monotonic_s"]`` turns it into wall time with ``start_unix_s``).

Memory: the log's bytes (read once at ``open()``) and one packet ahead; packets are taken from the log as
``receive()`` asks for them, so there is no receive queue to grow.

A replay cannot answer: commands sent to it are accepted (so a passive session or a UI may send what it likes),
counted in ``status().commands_out`` and kept in ``commands`` with their time, but nothing replies to them;
``status().answers_commands`` is False. Use a passive device session (``passive=True``) on a replay.

A damaged log (a record cut short by a crash, flipped, inserted or lost bytes) plays every good record: the reader
resynchronises on the next record whose CRC checks (docs/log-format.md). Its account is known at ``open()``:
``damage`` (``hipcheck.record.LogDamage``: bytes skipped, records lost, the time span affected; ``damage.line()``
is what a command prints), ``status().damaged_bytes`` counts the bytes skipped and ``status().complete`` says
whether there were none. At the end of the good records ``receive()`` returns None and ``status().connected`` is
False. A file that is not a hipcheck log (or of a newer format) fails ``open()`` with ``LogFormatError``, a file
that cannot be read with ``InvalidValueError``: a problem with the file (exit 1), not with a device.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

from hipcheck.errors import InvalidValueError
from hipcheck import protocol
from hipcheck.links import Link, LinkError, LinkStatus, Received
from hipcheck.record import LogDamage, LogReader

REPLAY_MTU = 247  # the MTU a replay reports when the log's header names none


@dataclass
class ReplayLinkStatus(LinkStatus):
    """LinkStatus plus the replay's own figures."""

    answers_commands: bool = False  # a replay never answers a command
    records_played: int = 0  # packets delivered
    position_s: float = 0.0  # original time of the latest packet since the first one
    damaged_bytes: int = 0  # bytes that belong to no good record (damage, a cut end); known at open()
    complete: bool | None = None  # the whole log was good (None until the link is open)


class ReplayLink(Link):
    """A session log as a link. log_path: a file written by ``hipcheck.record.LogWriter``; speed: 1.0 for the
    original pace, 2.0 twice as fast, None as fast as possible; realtime: ``hipcheck record``'s switch (True is
    speed 1.0, False as fast as possible; it wins over speed when given)."""

    name = "replay"
    can_reconnect = False

    def __init__(self, log_path, *, speed: float | None = 1.0, realtime: bool | None = None):
        if realtime is not None:
            speed = 1.0 if realtime else None
        if speed is not None and not speed > 0:
            raise InvalidValueError(f"speed {speed}: a positive factor (1.0 = the original pace), or None for as fast "
                             "as possible")
        self.log_path = Path(log_path)
        self.speed = None if speed is None else float(speed)
        self.header: dict | None = None
        self.commands: list[tuple[float, bytes]] = []  # (host monotonic time, packet) of every command sent
        self.last_t_host_s: float | None = None  # original arrival time of the latest packet delivered
        self._reader: LogReader | None = None
        self.damage: LogDamage | None = None  # the log's damage account, known at open()
        self._records = None  # iterator over the log's packets: (channel, packet, t_host_s)
        self._next: tuple[str, bytes, float] | None = None
        self._t0_log: float | None = None  # original time of the first packet
        self._t0_play: float | None = None  # monotonic time the first packet was due
        self._status = ReplayLinkStatus(mtu=REPLAY_MTU)
        self._opened = False
        self._ended = False
        self._closed = False

    # --------------------------------------------------------------------------------------------- interface
    async def open(self) -> None:
        if self._closed:
            raise LinkError(f"the replay of {self.log_path} was closed: make a new ReplayLink")
        if self._opened:
            if self._ended:
                raise LinkError(f"the replay of {self.log_path} has ended: make a new ReplayLink to play it again")
            return
        try:
            reader = await asyncio.to_thread(LogReader, self.log_path)
        except OSError as error:
            raise InvalidValueError(f"cannot read the log {self.log_path}: {error.strerror or error}") from None
        self.damage = await asyncio.to_thread(lambda: reader.damage)  # one pass over the CRCs, before playing
        self._reader = reader
        self._status.damaged_bytes = self.damage.bytes_skipped
        self._status.complete = not self.damage.damaged
        self.header = reader.header
        mtu = self.header.get("mtu") if isinstance(self.header, dict) else None
        if isinstance(mtu, int) and protocol.MIN_MTU <= mtu <= 517:
            self._status.mtu = mtu
        self._records = reader.packets()
        self._opened = True
        self._status.connected = True
        self._advance()

    @property
    def device_id(self) -> str | None:
        """The sensor the replayed log names (its header's ``device_id``), once open."""
        device_id = self.header.get("device_id") if isinstance(self.header, dict) else None
        return device_id if isinstance(device_id, str) else None

    @property
    def replayed_file(self) -> str | None:
        """The file the replayed log's samples themselves replay through the simulated sensor (its header's
        ``replayed_file``: ``record --sim FILE``), once open; a recording of this replay keeps it."""
        name = self.header.get("replayed_file") if isinstance(self.header, dict) else None
        return None if name is None else str(name)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._status.connected = False
        self._records = None
        self._next = None

    async def send(self, packet: bytes) -> None:
        if not self._opened or self._closed:
            raise LinkError(f"the replay of {self.log_path} is not open: await open() first")
        limit = self._status.mtu - protocol.ATT_OVERHEAD
        if len(packet) > limit:
            raise LinkError(f"a command of {len(packet)} bytes; the link carries at most {limit}")
        self.commands.append((time.monotonic(), bytes(packet)))  # accepted, never answered
        self._status.commands_out += 1

    async def receive(self, timeout_s: float | None = None) -> Received | None:
        if not self._opened:
            raise LinkError(f"the replay of {self.log_path} is not open: await open() first")
        if self._next is None:
            return None
        channel, packet, t_log = self._next
        if self.speed is not None:
            now = time.monotonic()
            if self._t0_play is None:
                self._t0_log, self._t0_play = t_log, now
            wait = self._t0_play + (t_log - self._t0_log) / self.speed - now
            if wait > 0:
                if timeout_s is not None and wait > timeout_s:
                    await asyncio.sleep(max(0.0, timeout_s))
                    return None
                await asyncio.sleep(wait)
            if self._next is None:  # closed while waiting
                return None
        else:
            if self._t0_log is None:
                self._t0_log = t_log
            await asyncio.sleep(0)  # as fast as possible, but never starve the event loop
            if self._next is None:
                return None
        now = time.monotonic()
        s = self._status
        s.packets_in += 1
        s.bytes_in += len(packet)
        s.records_played += 1
        s.last_packet_host_s = now
        s.position_s = t_log - self._t0_log
        self.last_t_host_s = t_log
        self._advance()
        return Received(channel, packet, now)

    def status(self) -> ReplayLinkStatus:
        return ReplayLinkStatus(**vars(self._status))

    # ------------------------------------------------------------------------------------------------ extras
    @property
    def ended(self) -> bool:
        """Every good record has been played (or the link was closed): no more packets, ever."""
        return self._ended or self._closed

    # ------------------------------------------------------------------------------------------------ inside
    def _advance(self) -> None:
        """Take the next packet from the log, or end the replay at the end of its good records."""
        try:
            self._next = next(self._records) if self._records is not None else None
        except StopIteration:
            self._next = None
        if self._next is None and not self._ended:
            self._ended = True
            self._status.connected = False
