"""``SerialLink``: a sensor on a USB serial port (pyserial), COBS + CRC-16 frames both ways.

    async with SerialLink("/dev/ttyACM0") as link:          # COM5 on Windows; a pty works the same
        await link.send(encode_command(Opcode.INFO, token=1))
        item = await link.receive(timeout_s=1.0)

The firmware's serial transport (``firmware/link_serial.py``) announces the port with one 0x00 and then sends every
packet as ``protocol.frame(packet)``: COBS(packet + CRC-16) + 0x00. A reader thread owns the port (pyserial's
blocking reads never touch the event loop), splits the bytes with ``hipcheck.protocol.Deframer`` and hands whole
packets to the event loop; they are told apart by packet type (DATA → ``data``, ACK/EVENT → ``control``,
LOG_CHUNK → ``log``; a packet with no v1 kind byte goes to ``control`` for the session to report, counted in
``bad_packets``).

Behaviour:
- Garbage, bit flips, lost delimiters, runs longer than any frame: the deframer drops the damaged frame and
  resynchronises at the next 0x00; no packet failing its CRC is ever delivered. ``status().crc_errors`` counts the
  frames refused (CRC and COBS errors, as ``SimLink`` does); ``counters()`` has the deframer's figures one by one.
- ``send()`` writes ``protocol.frame(packet)`` (a 0x00 goes out first on open, so the device's deframer starts on
  a frame boundary whatever was on the line); a packet longer than MTU − 3 = 244 bytes is refused before anything
  is written (``SERIAL_MTU`` = the firmware's 247).
- The port disappears (unplugged, the device resets, EIO): the link goes down (``status().connected`` False) and the
  reader tries to reopen the port every ``reopen_interval_s`` until ``watchdog_s`` after the last packet; back, it
  counts a reconnect and goes on; not back, ``receive()`` raises ``LinkError`` saying so. ``watchdog_s=None``: no
  waiting, the first loss of the port is the end.
- Watchdog: no packet at all for ``watchdog_s`` (garbage does not count) → ``receive()`` raises ``LinkError``.
  ``watchdog_s=None`` turns it off (e.g. while streaming is stopped on purpose).
- ``open()`` of a port that does not exist or is busy raises ``LinkError`` at once, with what to check; after a
  failure ``open()`` may be called again; ``close()`` is safe to call twice.

- Bounded memory: packets wait for ``receive()`` in a queue of at most ``queue_packets`` (default
  ``hipcheck.links.RECEIVE_QUEUE_PACKETS``, sized from ``RECEIVE_QUEUE_BYTES``); the reader thread drops what
  comes while it is full and counts it in ``status().packets_dropped``. A sensor does not wait for the host, so a
  host that falls behind loses packets instead of growing without limit; the device session sees the sequence gap
  and backfills it from the sensor's buffer. The thread never leaves more than one wake-up pending in the event
  loop, so a blocked loop does not pile up callbacks either.

- Which sensor: ``open()`` (and a reopen of a lost port) sends INFO asking for name_id (token 0, never one of the
  session's); the reader thread takes that one ACK out of the stream and ``device_id`` becomes the sensor's name
  ``hipcheck-XXXX``, the name it advertises over BLE, so one sensor has one calibration profile and names its logs
  alike on either link. Serial delivers in order, so a session's own first answer comes after it: its log header
  has the name. Firmware before name_id (it answers BAD_LENGTH), or no answer: ``device_id`` stays None.

Limits: the baud rate means nothing on USB CDC or a pty, only on a UART bridge.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from dataclasses import dataclass

from hipcheck.errors import InvalidValueError
from hipcheck import protocol
from hipcheck.links import (CONTROL, KIND_CHANNEL, RECEIVE_QUEUE_PACKETS, Link, LinkError, LinkStatus, Received,
                            within)

SERIAL_MTU = 247  # the firmware's serial MTU (firmware/link_serial.SERIAL_MTU): commands up to 244 bytes
_COUNTERS = ("frames_ok", "crc_errors", "cobs_errors", "oversize_dropped", "bytes_dropped")
_READ_TIMEOUT_S = 0.05  # a read returns at least this often: the thread sees close() and the watchdog in time
IDENTITY_TOKEN = 0  # the token of the link's own INFO (the session's CommandChannel hands out 1-255)
_IDENTITY_ACK = bytes([protocol.kind_byte(protocol.PacketType.ACK), protocol.Opcode.INFO, IDENTITY_TOKEN])


@dataclass
class SerialLinkStatus(LinkStatus):
    """LinkStatus plus the serial link's own figures."""

    port: str | None = None
    bad_packets: int = 0  # frames that passed the CRC but have no v1 kind byte
    bytes_dropped: int = 0  # bytes of damaged frames thrown away by the deframer
    error: str | None = None


class SerialLink(Link):
    """A hipcheck sensor on a serial port. port: ``/dev/ttyACM0``, ``COM5``, a pty's slave path; baudrate: for a
    UART bridge (ignored by USB CDC); watchdog_s: no packet for this long ends the link with LinkError (None: off);
    reopen_interval_s: how often a lost port is tried again; write_timeout_s: a write that cannot go out in this
    time (a device that stopped reading) raises LinkError; queue_packets: packets held for ``receive()`` before
    new ones are dropped (counted)."""

    name = "serial"
    can_reconnect = True

    def __init__(self, port: str, *, baudrate: int = 115200, watchdog_s: float | None = 10.0,
                 reopen_interval_s: float = 0.25, write_timeout_s: float = 2.0,
                 queue_packets: int = RECEIVE_QUEUE_PACKETS):
        if watchdog_s is not None and watchdog_s <= 0:
            raise InvalidValueError(f"watchdog_s {watchdog_s}: a positive number of seconds, or None for no watchdog")
        self.port = str(port)
        self.baudrate = int(baudrate)
        self.watchdog_s = watchdog_s
        self.reopen_interval_s = reopen_interval_s
        self.write_timeout_s = write_timeout_s
        self._serial = None  # the pyserial port, owned by the reader thread once it runs
        self._port_lock = threading.Lock()  # the port object is swapped on reopen while send() may write
        self._write_lock: asyncio.Lock | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.queue_packets = int(queue_packets)
        # Received items (None: a wake-up) from the reader thread to receive(); the thread appends, the loop pops
        self._queue: deque | None = None
        self._queue_lock = threading.Lock()
        self._ready: asyncio.Event | None = None  # set when the queue may have an item
        self._wake_pending = False  # a wake-up is scheduled in the event loop and has not run yet
        self._deframer = protocol.Deframer()
        self._counted = dict.fromkeys(_COUNTERS, 0)  # the counters of the deframers of earlier connections
        self._status = SerialLinkStatus(mtu=SERIAL_MTU, port=self.port)
        self._error: LinkError | None = None
        self._closed = False
        self._device_id: str | None = None

    # --------------------------------------------------------------------------------------------- interface
    @property
    def device_id(self) -> str | None:
        """The sensor's name ``hipcheck-XXXX`` from its answer to the INFO sent at open (module docstring); None
        before it, or from firmware that does not say it."""
        return self._device_id

    async def open(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return  # open, or reopening the port by itself
        self._loop = asyncio.get_running_loop()
        reopened = self._error is not None
        self._error = None
        self._status.error = None
        port = await asyncio.to_thread(self._open_port)  # raises LinkError with what to check
        try:
            # the device's deframer starts on a frame boundary; then the question of who it is
            await asyncio.to_thread(port.write, b"\x00" + _IDENTITY_QUESTION)
        except Exception as error:
            await asyncio.to_thread(_quiet_close, port)
            raise LinkError(f"cannot write to serial port {self.port} ({error}): is the sensor still there?") from None
        if self._queue is None:
            self._queue = deque()
            self._ready = asyncio.Event()
            self._write_lock = asyncio.Lock()
        self._closed = False
        self._stop.clear()
        self._new_deframer()  # a partial frame of the last connection is not this one's
        with self._port_lock:
            self._serial = port
        s = self._status
        s.connected = True
        s.last_packet_host_s = time.monotonic()  # the watchdog counts from the connection
        if reopened:
            s.reconnects += 1
        self._thread = threading.Thread(target=self._run, name=f"hipcheck-serial-{self.port}", daemon=True)
        self._thread.start()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        thread = self._thread
        if thread is not None:
            await asyncio.to_thread(thread.join, 5 * _READ_TIMEOUT_S + 1.0)
        with self._port_lock:
            port, self._serial = self._serial, None
        if port is not None:
            await asyncio.to_thread(_quiet_close, port)
        self._status.connected = False
        if self._queue is not None:
            with self._queue_lock:
                self._queue.append(None)  # wake a waiting receive()
            self._ready.set()

    async def send(self, packet: bytes) -> None:
        if self._error is not None:
            raise self._error
        limit = self._status.mtu - protocol.ATT_OVERHEAD
        if len(packet) > limit:
            raise LinkError(f"a command of {len(packet)} bytes; the serial link carries at most {limit} "
                            "(every hipcheck COMMAND fits 20 bytes)")
        if self._closed or self._write_lock is None:
            raise LinkError(f"serial port {self.port} is not open: await open() first")
        if not self._status.connected:
            raise LinkError(f"serial port {self.port} is gone for now (the link is trying to reopen it): "
                            "wait, or open the link again")
        data = protocol.frame(packet)
        async with self._write_lock:
            try:
                await asyncio.to_thread(self._write, data)
            except LinkError:
                raise
            except Exception as error:
                raise LinkError(f"write to serial port {self.port} failed ({error}): the sensor seems unplugged "
                                "or reset; check it and open the link again") from None
        self._status.commands_out += 1

    async def receive(self, timeout_s: float | None = None) -> Received | None:
        if self._queue is None:
            raise LinkError(f"serial port {self.port} is not open: await open() first")
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            with self._queue_lock:
                item = self._queue.popleft() if self._queue else False
                if item is False:
                    self._ready.clear()  # under the lock: an append after this schedules a new set()
            if item is not False:
                break
            if self._error is not None:
                raise self._error
            if self._closed:
                return None
            try:
                await within(self._ready.wait(), None if deadline is None else max(0.0, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                return None
        if item is None:  # a wake-up: the link failed or was closed
            if self._error is not None:
                raise self._error
            return None
        return item

    def status(self) -> SerialLinkStatus:
        s = self._status
        c = self.counters()
        s.crc_errors = c["crc_errors"] + c["cobs_errors"]
        s.bytes_dropped = c["bytes_dropped"]
        s.error = self._error.args[0] if self._error else None
        return SerialLinkStatus(**vars(s))

    # ------------------------------------------------------------------------------------------------ extras
    @property
    def ended(self) -> bool:
        """Closed by the host: no more packets (a link that failed may still be opened again)."""
        return self._closed

    def counters(self) -> dict:
        """The deframer's counters over every connection of this link, and the packets with no v1 kind byte."""
        d = self._deframer
        return {k: self._counted[k] + getattr(d, k) for k in _COUNTERS} | {"bad_packets": self._status.bad_packets}

    # ------------------------------------------------------------------------------------------------ inside
    def _open_port(self):
        import serial

        try:
            return serial.Serial(self.port, baudrate=self.baudrate, timeout=_READ_TIMEOUT_S,
                                 write_timeout=self.write_timeout_s)
        except (serial.SerialException, OSError, ValueError) as error:
            raise LinkError(f"cannot open serial port {self.port}: {error}. Is the sensor plugged in and is this "
                            "its port (Linux /dev/ttyACM*, macOS /dev/cu.usbmodem*, Windows COMn), and is it free "
                            "(no other program on it; on Linux, are you in the dialout group)?") from None

    def _new_deframer(self) -> None:
        old, self._deframer = self._deframer, protocol.Deframer()
        for k in _COUNTERS:
            self._counted[k] += getattr(old, k)

    def _write(self, data: bytes) -> None:
        with self._port_lock:
            port = self._serial
            if port is None:
                raise LinkError(f"serial port {self.port} is gone for now: wait, or open the link again")
            import serial

            try:
                n = port.write(data)
                port.flush()
            except serial.SerialTimeoutException:
                raise LinkError(f"the sensor on {self.port} took no data for {self.write_timeout_s:g} s: it "
                                "seems hung; reset it") from None
        if n != len(data):
            raise LinkError(f"only {n} of {len(data)} bytes went out on {self.port}")

    def _run(self) -> None:
        """The reader thread: bytes → packets → the event loop; watches the port and the watchdog."""
        port = self._serial
        try:
            while not self._stop.is_set():
                try:
                    chunk = port.read(port.in_waiting or 1)  # returns after _READ_TIMEOUT_S at most
                except Exception as error:  # SerialException (EIO: the device end went), OSError, TypeError
                    if self._stop.is_set():
                        return
                    port = self._lost(error)
                    if port is None:
                        return
                    continue
                now = time.monotonic()
                if chunk:
                    self._status.bytes_in += len(chunk)
                    items = self._items(self._deframer.feed(chunk), now)
                    if items and not self._post(items):
                        return
                if self._silent(now):
                    self._fail(self._watchdog_message())
                    return
        except Exception as error:  # never leave receive() hanging
            self._fail(f"the serial link to {self.port} failed: {error!r}")

    def _items(self, packets: list[bytes], now: float) -> list[Received]:
        s = self._status
        items = []
        for packet in packets:
            if packet[:3] == _IDENTITY_ACK:
                self._identified(packet)
                continue
            channel = KIND_CHANNEL.get(packet[0])
            if channel is None:
                s.bad_packets += 1
                channel = CONTROL  # the session decodes it and says what was wrong
            items.append(Received(channel, packet, now))
        if items:
            s.packets_in += len(items)
            s.last_packet_host_s = now
        return items

    def _identified(self, packet: bytes) -> None:
        """The answer to the INFO of open(): the sensor's name, if it says it (firmware before name_id answers the
        longer INFO with BAD_LENGTH)."""
        try:
            fields = protocol.decode_packet(packet).fields
        except protocol.ProtocolError:
            fields = {}
        name_id = fields.get("name_id")
        self._device_id = None if name_id is None else protocol.sensor_name(name_id)

    def _post(self, items) -> bool:
        """Hand items (Received, or None to wake receive()) to the event loop, dropping (counted) the packets that
        find the queue full; False if the loop is gone."""
        with self._queue_lock:
            queue = self._queue
            for item in items:
                if item is None or len(queue) < self.queue_packets:
                    queue.append(item)
                else:
                    self._status.packets_dropped += 1
            wake = not self._wake_pending
            self._wake_pending = True
        if not wake:
            return True
        try:
            self._loop.call_soon_threadsafe(self._wake)
        except RuntimeError:  # the event loop was closed under us: nobody is listening any more
            self._stop.set()
            return False
        return True

    def _wake(self) -> None:
        with self._queue_lock:
            self._wake_pending = False
        self._ready.set()

    def _silent(self, now: float) -> bool:
        last = self._status.last_packet_host_s
        return self.watchdog_s is not None and last is not None and now - last >= self.watchdog_s

    def _watchdog_message(self) -> str:
        return (f"no data from the sensor on {self.port} for {self.watchdog_s:g} s: is it switched on and "
                "streaming, and is this its port? Open the link again (or use watchdog_s=None while streaming is "
                "stopped on purpose)")

    def _lost(self, error: Exception):
        """The port failed under a read: reopen it until the watchdog runs out. The new port, or None (failed)."""
        self._status.connected = False
        with self._port_lock:
            old, self._serial = self._serial, None
        if old is not None:
            _quiet_close(old)
        what = f"serial port {self.port} went away ({error})"
        if self.watchdog_s is None:
            self._fail(f"{what}: the sensor was unplugged or reset; plug it in and open the link again")
            return None
        while not self._stop.wait(self.reopen_interval_s):
            if self._silent(time.monotonic()):
                self._fail(f"{what} and did not come back within {self.watchdog_s:g} s of the last packet: plug "
                           "the sensor in (or reset it) and open the link again")
                return None
            try:
                port = self._open_port()
                port.write(b"\x00" + _IDENTITY_QUESTION)  # it may be another sensor now
            except Exception:
                continue
            self._new_deframer()
            with self._port_lock:
                self._serial = port
            self._status.reconnects += 1
            self._status.connected = True
            return port
        return None

    def _fail(self, message: str) -> None:
        """The end of this connection: receive() raises LinkError(message) once the queue is drained."""
        self._error = LinkError(message)
        self._status.connected = False
        self._status.error = message
        with self._port_lock:
            port, self._serial = self._serial, None
        if port is not None:
            _quiet_close(port)
        self._post([None])


_IDENTITY_QUESTION = protocol.frame(protocol.encode_command(protocol.Opcode.INFO, IDENTITY_TOKEN, with_id=1))


def _quiet_close(port) -> None:
    try:
        port.close()
    except Exception:
        pass
