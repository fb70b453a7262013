"""``hipcheck sync``: the sensor's flash session logs copied to a folder, every block checked, resumable, erased only
after the copy is verified.

``SessionCopy`` is the copy of one flash session and the logic of its download, synchronous (no event loop, like
``TimeMap``): it is handed each LOG_CHUNK and says which block to ask for again. ``LogSync`` drives it over a link:
INFO, STOP while copying (START again after, if the sensor was streaming), LOG_LIST, then a LOG_DOWNLOAD per
session from the block its local copy ends at, and, with ``erase``, the two-step LOG_ERASE of each session whose
copy is whole and verified.

The folder holds per session (``name`` = ``session-<id>-<start_time_s>``):

- ``name.part`` while the copy is incomplete: the raw 512-byte blocks verified so far, in order, nothing else, so
  its length says how many (a block is appended in one write once checked; a cut write leaves a partial block at
  the end, dropped on the next run);
- ``name.blocks`` once every block is there: byte for byte the session as it lies on the sensor's flash;
- ``name.hclog``: the session as a session log (``hipcheck.device.logblocks.blocks_to_hclog``) for ``hipcheck
  analyze`` and every reader of logs.

**Resuming.** A rerun finds ``name.part`` (or ``name.blocks`` of a session that has grown since) and asks for the
blocks from its last one on: that block comes again and must equal the local one byte for byte, else the local copy
is another session's of the same name (ids restart after an erase of everything) and is moved aside
(``name.old-N.*``). A whole copy costs one block per sync to confirm.

**Checks.** Every block: whole (its chunks' offsets join up), its CRC-32, its session and block number. A block
that fails is asked for again; the same failing bytes twice is damage on the sensor's flash: the block is kept as it
lies there, reported, its samples marked lost in the ``.hclog``, and its session is not erased. A block that never
comes (the sensor cannot find it) after ``tries`` requests is reported likewise and kept as 512 zero bytes.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from hipcheck import protocol
from hipcheck.device.commands import CommandChannel, named_info
from hipcheck.device.errors import CommandError, SessionError
from hipcheck.device.logblocks import BLOCK_SIZE, blocks_to_hclog, check_block, read_blocks
from hipcheck.device.recording import SessionRecording
from hipcheck.device.stats import SessionStats
from hipcheck.errors import InvalidValueError
from hipcheck.links import Link, LinkError, within
from hipcheck.protocol import Ack, LogChunk, Opcode, Status

# A chunk that is not the next piece of the block being copied may be a stale one: the device sends at most one
# chunk of an earlier request after the ACK of a new one (the one its link had refused). Two in a row mean the
# block asked for is missing or cut.
_STRIKES = 2


class SyncInterrupted(SessionError):
    """The link went during a download; the verified blocks are kept and a rerun resumes from them."""


class FlashSession(NamedTuple):
    """One LOG_LIST entry. ``open``: the sensor is writing this session now (LOG_LIST's OPEN flag): it grows, a
    later sync continues it, it is not erased; None when the firmware does not say (before the flag)."""

    session_id: int
    start_time_s: int
    n_blocks: int
    open: bool | None = None

    @property
    def name(self) -> str:
        return f"session-{self.session_id:05d}-{self.start_time_s}"


class SessionCopy:
    """The local copy of one flash session in ``folder`` and the logic of its download (module docstring).

    ``open()`` reads what the folder holds and returns the block to ask for first; ``asked(n_blocks)`` after each
    LOG_DOWNLOAD's ACK; ``take(chunk)`` for each LOG_CHUNK and ``stalled()`` when none came for a while return the
    block to ask for again (None: go on); ``complete`` tells when every block is verified; ``finish()`` closes it.
    """

    def __init__(self, folder, entry: FlashSession, *, tries: int = 3):
        self.folder = Path(folder)
        self.entry = entry
        self.tries = tries
        name = entry.name
        self.part = self.folder / f"{name}.part"
        self.blocks_path = self.folder / f"{name}.blocks"
        self.hclog = self.folder / f"{name}.hclog"
        self.n_blocks = entry.n_blocks
        self.verified = 0  # blocks in the local copy: good, or confirmed damaged
        self.had = 0  # blocks the folder held before this run
        self.damaged: list[int] = []  # block numbers kept damaged (failed CRC twice alike, or never sent)
        self.expected = 0  # the block being copied
        self.replaced: list[Path] = []  # another session's copy, moved aside
        self.asks = 0  # LOG_DOWNLOAD requests made for this session
        self.stalls = 0  # requests after a silence since the last block came
        self._overlap: bytes | None = None  # the local last block, to be met again first
        self._buf = bytearray()
        self._strikes = 0
        self._waiting = False  # a request is out: chunks are stale until its ACK
        self._failed: dict[int, int] = {}  # block -> failed tries
        self._bad_copy: tuple[int, bytes] | None = None
        self._file = None

    # ------------------------------------------------------------------------------------------------ state
    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def complete(self) -> bool:
        return self._overlap is None and self.expected >= self.n_blocks

    def open(self) -> int:
        """Read the local copy (a partial block at its end dropped); the block to ask for first."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.blocks_path.exists() and not self.part.exists():
            os.replace(self.blocks_path, self.part)  # whole last time: confirmed (and continued if it has grown)
        kept = read_blocks(self.part) if self.part.exists() else []
        good = 0
        for i, raw in enumerate(kept):
            reason = check_block(raw, self.entry.session_id, i)
            if reason is not None and reason.startswith(("a block of", "block number")):
                break  # the local file is damaged here: copy again from this block
            good = i + 1
        kept = kept[:good]
        self.damaged = [i for i, raw in enumerate(kept) if check_block(raw) is not None]
        with open(self.part, "ab") as file:
            file.truncate(good * BLOCK_SIZE)
        self.verified = self.had = good
        self._file = open(self.part, "ab", buffering=0)  # one write per block: a kill loses no verified block
        if good and good - 1 not in self.damaged:
            self._overlap = kept[-1]
            self.expected = good - 1
        else:  # nothing yet, or a last block kept damaged (it may never come again to be met): go on after it
            self.expected = good
        return self.expected

    def asked(self, n_blocks: int) -> int | None:
        """The ACK of a LOG_DOWNLOAD said the session has n_blocks: chunks from the block asked for follow.
        Returns a block to ask for instead (None: go on). An ACK no request waits for (the answer to a command
        sent again after a timeout) changes nothing: the chunks tell where the stream is."""
        if not self._waiting:
            return None
        self._waiting = False
        self._buf = bytearray()
        self._strikes = 0
        if n_blocks < self.verified:  # fewer blocks than the local copy: it is another session's
            return self._start_over()
        self.n_blocks = n_blocks
        return None

    def request(self) -> int:
        """A LOG_DOWNLOAD is to be sent for the block returned: stale chunks are ignored until its ACK."""
        self._waiting = True
        return self.expected

    # ------------------------------------------------------------------------------------------------ chunks
    def take(self, chunk: LogChunk) -> int | None:
        """One LOG_CHUNK; returns the block to ask for again, or None."""
        if self._waiting or chunk.session_id != self.entry.session_id or self.complete:
            return None
        fill = len(self._buf)
        if chunk.block < self.expected or (chunk.block == self.expected and chunk.offset < fill):
            return None  # stale: an earlier request's
        if chunk.block != self.expected or chunk.offset != fill:
            self._strikes += 1
            return self._retry() if self._strikes >= _STRIKES else None
        self._strikes = 0
        self._buf += chunk.data
        if len(self._buf) < BLOCK_SIZE:
            return None
        raw = bytes(self._buf[:BLOCK_SIZE])
        self._buf = bytearray()
        return self._block(raw)

    def stalled(self) -> int:
        """No chunk came for a while: ask again from the block being copied. A silent link says nothing about the
        block, so this is no try of it: ``stalls`` counts the requests since the last block came."""
        self.stalls += 1
        self._buf = bytearray()
        self._strikes = 0
        return self.request()

    def _block(self, raw: bytes) -> int | None:
        k = self.expected
        reason = check_block(raw, self.entry.session_id, k)
        if self._overlap is not None:
            if raw == self._overlap:
                self._overlap = None
                self.expected = k + 1
                return None
            if reason is None:  # a good block, not ours: the local copy is another session's
                return self._start_over()
            return self._retry()
        if reason is None:
            self._append(raw)
            return None
        if self._bad_copy == (k, raw):  # the same bytes twice: damage on the sensor's flash, not on the way
            self.damaged.append(k)
            self._append(raw)
            return None
        self._bad_copy = (k, raw)
        return self._retry()

    def _append(self, raw: bytes) -> None:
        self.stalls = 0
        self._file.write(raw)
        self.verified += 1
        self.expected += 1
        self._bad_copy = None

    def _retry(self) -> int:
        k = self.expected
        self._buf = bytearray()
        self._strikes = 0
        self._failed[k] = self._failed.get(k, 0) + 1
        if self._failed[k] >= self.tries and self._overlap is None:
            bad = self._bad_copy[1] if self._bad_copy is not None and self._bad_copy[0] == k else bytes(BLOCK_SIZE)
            self.damaged.append(k)  # never came whole, or never twice alike: kept as it came, or as zeros
            self._append(bad)
        elif self._failed[k] >= self.tries:
            return self._start_over()  # the local last block cannot be met again: copy the session anew
        return self.request()

    def _start_over(self) -> int:
        """The local copy is not this session's: move it aside and copy from block 0."""
        self._file.close()
        n = 1
        while any((self.folder / f"{self.name}.old-{n}{ext}").exists() for ext in (".blocks", ".hclog")):
            n += 1
        moved = self.folder / f"{self.name}.old-{n}.blocks"
        os.replace(self.part, moved)
        self.replaced.append(moved)
        if self.hclog.exists():
            os.replace(self.hclog, self.folder / f"{self.name}.old-{n}.hclog")
        self._file = open(self.part, "ab", buffering=0)
        self.verified = self.had = 0
        self.damaged = []
        self._overlap = None
        self._failed.clear()
        self._bad_copy = None
        self.expected = 0
        return self.request()

    # ------------------------------------------------------------------------------------------------ end
    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def finish(self, header: dict) -> dict:
        """Every block is there: ``name.blocks`` and (when new blocks came, or it is missing) ``name.hclog``.
        Returns the ``.hclog``'s account, or None when it was up to date."""
        self.close()
        os.replace(self.part, self.blocks_path)
        if self.verified == self.had and self.hclog.exists():
            return None
        blocks = read_blocks(self.blocks_path)
        tmp = self.hclog.with_name(self.hclog.name + ".tmp")
        account = blocks_to_hclog(blocks, tmp, {**header, "flash_session": self.entry._asdict()})
        os.replace(tmp, self.hclog)
        return account


@dataclass
class SessionReport:
    """What the sync did with one flash session."""

    name: str
    session_id: int
    n_blocks: int
    new_blocks: int  # blocks copied in this run
    damaged: list[int]
    blocks_path: Path | None  # None: not whole (the .part is kept)
    hclog: Path | None
    erased: bool = False
    note: str = ""  # why it was not erased, or what was moved aside
    account: dict | None = None  # the .hclog's (blocks_to_hclog), when it was written in this run
    open: bool | None = None  # the sensor is still recording it (FlashSession.open)


@dataclass
class SyncSettings:
    idle_s: float = 2.0  # no chunk for this long: the block being copied is asked for again
    tries: int = 3  # requests for one block before it is reported damaged
    command_timeout_s: float = 1.0
    command_tries: int = 3
    reconnect_timeout_s: float = 20.0  # a link that drops during a download is reopened for this long


@dataclass
class _Progress:
    copy: SessionCopy | None = None
    last_chunk_s: float = 0.0
    ask: int | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class LogSync:
    """Copy the sensor's flash sessions behind ``link`` into ``folder`` (module docstring). ``progress(copy)`` is
    called as blocks are verified (``copy.verified`` of ``copy.n_blocks``); ``run()`` returns a ``SessionReport``
    per session listed."""

    def __init__(self, link: Link, folder, *, erase: bool = False,
                 progress: Callable[[SessionCopy], None] | None = None, settings: SyncSettings | None = None):
        self.link = link
        self.folder = Path(folder)
        self.erase = erase
        self.progress = progress or (lambda copy: None)
        self.settings = s = settings or SyncSettings()
        self._connected = asyncio.Event()
        self.stats = SessionStats()
        self.commands = CommandChannel(link, SessionRecording(None), self.stats, self._connected,
                                       timeout_s=s.command_timeout_s, tries=s.command_tries)
        self.device_info: dict | None = None
        self._state = _Progress()
        self._rx: asyncio.Task | None = None

    # ------------------------------------------------------------------------------------------------ run
    async def run(self) -> list[SessionReport]:
        with _folder_lock(self.folder):
            return await self._run()

    async def _run(self) -> list[SessionReport]:
        if not self.link.status().connected:
            await self.link.open()
        self._connected.set()
        self._rx = asyncio.create_task(self._rx_loop(), name="logsync-rx")
        try:
            self.device_info = named_info((await self._ok(Opcode.INFO)).fields)
            streaming = self.device_info["streaming"]
            if streaming:
                await self._ok(Opcode.STOP)  # the link carries the log alone while copying
            reports = [await self._copy(entry) for entry in await self.list_sessions()]
            if self.erase:
                for report in reports:
                    await self._erase(report)
            if streaming:
                await self._ok(Opcode.START)
            return reports
        finally:
            self._rx.cancel()
            try:
                await self._rx
            except (asyncio.CancelledError, Exception):  # its failure is the link's, told by the step that waited
                pass
            self.commands.cancel_all()

    async def list_sessions(self) -> list[FlashSession]:
        """LOG_LIST from index 0 until the count the device gives, each entry with its flags (OPEN). Firmware from
        before the flags answers that form BAD_LENGTH: then it is asked in the short form and ``open`` is None."""
        entries = []
        index = 0
        with_flags = True
        while True:
            if with_flags:
                ack = await self._command(Opcode.LOG_LIST, index=index, with_flags=1)
                if ack.status == Status.BAD_LENGTH:
                    with_flags = False
                    continue
            else:
                ack = await self._command(Opcode.LOG_LIST, index=index)
            if ack.status == Status.UNAVAILABLE:
                return entries
            if ack.status != Status.OK:
                raise CommandError(f"LOG_LIST refused by the sensor: {Status(ack.status).name}", Status(ack.status))
            f = ack.fields
            flags = f.get("flags")
            is_open = None if flags is None else bool(flags & protocol.LogEntryFlag.OPEN)
            entries.append(FlashSession(f["session_id"], f["start_time_s"], f["n_blocks"], is_open))
            index += 1
            if index >= f["n_sessions"]:
                return entries

    # ------------------------------------------------------------------------------------------------ copy
    async def _copy(self, entry: FlashSession) -> SessionReport:
        copy = SessionCopy(self.folder, entry, tries=self.settings.tries)
        state = self._state
        try:
            first = copy.open()
            state.copy = copy
            state.ask = None
            self.progress(copy)
            try:
                await self._ask(copy, first)
                while not copy.complete:
                    await self._wait_for_chunks(copy)
            except CommandError as error:
                if self.link.status().connected:
                    raise
                raise SyncInterrupted(self._interrupted(copy)) from error
            # as a live session's log: the INFO and the sensor's name (the key of its calibration profile)
            head = {"device": self.device_info, "device_id": self.link.device_id}
            replayed = getattr(self.link, "replayed_file", None)  # as DeviceSession's header: no device profile
            if replayed is not None:
                head["replayed_file"] = replayed
            account = copy.finish(head)
        finally:
            state.copy = None
            copy.close()
        self.progress(copy)
        note = f"another session's old copy moved to {copy.replaced[-1].name}" if copy.replaced else ""
        return SessionReport(copy.name, entry.session_id, copy.n_blocks, copy.verified - copy.had,
                             list(copy.damaged), copy.blocks_path, copy.hclog, note=note, account=account,
                             open=entry.open)

    async def _wait_for_chunks(self, copy: SessionCopy) -> None:
        """Until the next request is due: the copy asked for a block again, no chunk came for idle_s, the link
        dropped (reopened, or SyncInterrupted), or every block is there."""
        state = self._state
        before = copy.verified
        try:
            await within(state.wake.wait(), 0.1)
        except asyncio.TimeoutError:
            pass
        state.wake.clear()
        if copy.verified != before:
            self.progress(copy)
        if not self.link.status().connected:
            await self._reconnect(copy)
            await self._ask(copy, copy.request())
        elif state.ask is not None:
            block, state.ask = state.ask, None
            await self._ask(copy, block)
        elif not copy.complete and time.monotonic() - state.last_chunk_s > self.settings.idle_s:
            if copy.stalls >= self.settings.tries:
                raise SessionError(f"the sensor stopped sending {copy.name} ({copy.stalls} requests, "
                                   f"{self.settings.idle_s:g} s each, brought nothing): {copy.verified} of "
                                   f"{copy.n_blocks} blocks verified and kept in {copy.part}; run hipcheck sync "
                                   "again to go on from there")
            await self._ask(copy, copy.stalled())

    async def _ask(self, copy: SessionCopy, block: int) -> None:
        """LOG_DOWNLOAD from block. Its ACK reaches the copy in the receive task, in order with the chunks that
        follow it (``_rx_loop``); a block to ask for instead comes back through ``_Progress.ask``."""
        if copy.complete:
            return
        copy.request()
        copy.asks += 1
        self._state.last_chunk_s = time.monotonic()
        ack = await self._command(Opcode.LOG_DOWNLOAD, session_id=copy.entry.session_id, from_block=block)
        if ack.status != Status.OK:
            raise CommandError(f"LOG_DOWNLOAD of {copy.name} refused by the sensor: {Status(ack.status).name}"
                               " (erased meanwhile?)", Status(ack.status))

    async def _reconnect(self, copy: SessionCopy) -> None:
        link = self.link
        self._connected.clear()
        deadline = time.monotonic() + self.settings.reconnect_timeout_s
        while link.can_reconnect and not link.ended and time.monotonic() < deadline:
            try:
                await within(link.open(), max(0.05, deadline - time.monotonic()))
            except (LinkError, asyncio.TimeoutError):
                pass
            if link.status().connected:
                self._connected.set()
                self.stats.reconnects += 1
                return
            await asyncio.sleep(0.2)
        raise SyncInterrupted(self._interrupted(copy))

    @staticmethod
    def _interrupted(copy: SessionCopy) -> str:
        return (f"the link to the sensor went during the copy of {copy.name}: {copy.verified} of {copy.n_blocks} "
                f"blocks verified and kept in {copy.part}; run hipcheck sync again to go on from there")

    # ------------------------------------------------------------------------------------------------ erase
    async def _erase(self, report: SessionReport) -> None:
        """The two-step LOG_ERASE of a session whose whole copy was verified in this run, without damage, and that
        the sensor is not recording (an open session is never asked for)."""
        if report.open:
            report.note = report.note or "not erased: the sensor is still recording it"
            return
        if report.blocks_path is None or report.damaged:
            report.note = report.note or "not erased: " + (
                f"damaged blocks {report.damaged} (kept on the sensor)" if report.damaged else "the copy is not whole")
            return
        asked = await self._command(Opcode.LOG_ERASE, session_id=report.session_id, confirm=0)
        if asked.status == Status.OK:
            done = await self._command(Opcode.LOG_ERASE, session_id=report.session_id,
                                       confirm=asked.fields["confirm"])
            if done.status == Status.OK:
                report.erased = True
                return
            asked = done
        report.note = "not erased: " + ("the sensor is recording it now (it is synced again once it ends)"
                                        if asked.status == Status.BUSY else
                                        f"the sensor answered {Status(asked.status).name}")

    # ------------------------------------------------------------------------------------------------ commands
    async def _command(self, opcode: Opcode, **fields) -> Ack:
        """A command and its ACK; BUSY from the sensor's rate limit is waited out (a few tries)."""
        for _ in range(5):
            ack = (await self.commands.send(opcode, fields))[0]
            if ack.status != Status.BUSY or opcode == Opcode.LOG_ERASE:
                return ack
            await asyncio.sleep(0.2)
        return ack

    async def _ok(self, opcode: Opcode, **fields) -> Ack:
        ack = await self._command(opcode, **fields)
        if ack.status != Status.OK:
            raise CommandError(f"{Opcode(opcode).name} refused by the sensor: {Status(ack.status).name}",
                               Status(ack.status))
        return ack

    async def _rx_loop(self) -> None:
        link = self.link
        state = self._state
        while True:
            item = await link.receive(timeout_s=0.05)
            if item is None:
                if not link.status().connected:
                    self._connected.clear()
                    state.wake.set()
                    await asyncio.sleep(0.05)
                continue
            try:
                msg = protocol.decode_packet(item.packet)
            except protocol.ProtocolError:
                self.stats.bad_packets += 1
                continue
            if isinstance(msg, Ack):
                copy = state.copy
                if msg.opcode == Opcode.LOG_DOWNLOAD and msg.status == Status.OK and copy is not None:
                    self._again(copy.asked(msg.fields["n_blocks"]))  # before the chunks that follow it
                self.commands.answer(msg, item.host_time_s)
            elif isinstance(msg, LogChunk) and state.copy is not None:
                state.last_chunk_s = item.host_time_s
                self._again(state.copy.take(msg))

    def _again(self, block: int | None) -> None:
        """The copy asks for ``block`` again (None: nothing to ask): the copying task sends it."""
        if block is not None:
            self._state.ask = block
        self._state.wake.set()



class FolderBusyError(InvalidValueError):
    """Another sync is writing into the same folder."""


@contextmanager
def _folder_lock(folder: Path):
    """An exclusive lock on ``folder/.hipcheck-sync.lock`` while a sync writes there: two syncs appending to the
    same ``.part`` would interleave their blocks. Where the platform has no ``fcntl`` (Windows), no lock."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(folder / ".hipcheck-sync.lock", "w") as file:
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise FolderBusyError(f"another hipcheck sync is writing into {folder} (it holds "
                                  f"{folder / '.hipcheck-sync.lock'}): wait for it to end") from None
        try:
            yield
        finally:
            fcntl.flock(file, fcntl.LOCK_UN)


class FlashDamageError(InvalidValueError):
    """Blocks of the sensor's flash failed their check: the copies are written, the damage is reported (exit 1)."""


def progress_printer(out=print, interval_s: float = 0.5) -> Callable[[SessionCopy], None]:
    """A ``progress`` callback for ``LogSync`` that prints a line per session as it starts, at most one every
    interval_s while it is copied, and one when it is whole."""
    last = {}

    def show(copy: SessionCopy) -> None:
        now = time.monotonic()
        key = copy.name
        done = copy.complete
        if key in last and not done and now - last[key] < interval_s:
            return
        if last.get(key) == "done":
            return
        last[key] = "done" if done else now
        pct = 100.0 * copy.verified / copy.n_blocks if copy.n_blocks else 100.0
        whole = ", copied as far as it goes (still being recorded)" if copy.entry.open else ", copy whole"
        out(f"{copy.name}: {copy.verified}/{copy.n_blocks} blocks verified ({pct:.0f} %)" + (whole if done else ""))

    return show


def report_lines(reports: list[SessionReport]) -> list[str]:
    """What a sync did, a line per session and one in all."""
    lines = []
    for r in reports:
        what = f"{r.new_blocks} new blocks" if r.new_blocks else "already copied"
        lines.append(f"{r.name}: {r.n_blocks} blocks, {what} -> {r.hclog}"
                     + ("; still being recorded on the sensor: copied and verified as far as it goes, the next "
                        "sync continues it" if r.open else "")
                     + (f"; damaged on the sensor's flash: blocks {r.damaged} (their samples marked lost)"
                        if r.damaged else "")
                     + ("; erased on the sensor" if r.erased else "") + (f"; {r.note}" if r.note else ""))
    new = sum(r.new_blocks for r in reports)
    lines.append(f"sessions on the sensor: {len(reports)}; blocks copied: {new} ({new * BLOCK_SIZE / 1024:.0f} KiB); "
                 f"erased: {sum(r.erased for r in reports)}")
    return lines


def check_synced(reports: list[SessionReport]) -> None:
    """FlashDamageError naming every session with damaged blocks (their copies are written and kept)."""
    bad = [r for r in reports if r.damaged]
    if bad:
        raise FlashDamageError(
            "blocks failed their CRC on the sensor's flash (read twice alike, or never sent): "
            + "; ".join(f"{r.name} blocks {r.damaged}" for r in bad)
            + "; their samples are marked lost in the .hclog and those sessions are kept on the sensor")
