"""Serial link: packets as COBS + CRC-16 frames (docs/protocol.md, "Serial") over a byte stream.

The stream is whatever carries bytes on the board: a ``machine.UART``, the USB CDC interface
(``usb.device.cdc.CDCInterface``), or on the unix port a file descriptor / pty path (``Link(path="/dev/pts/3")``).
The link interface is the one every transport keeps (firmware/README.md, "Links"): ``mtu``, ``connected``,
``async run()``, ``send(buf, n) -> bool`` (``send_control`` and ``send_log`` are the same call here) and the
``on_packet(buf, n)`` callback.

``send`` never blocks: it writes a frame only when the stream polls writable (on a pipe or pty at least
PIPE_BUF = 4096 bytes are then free, more than a 515-byte frame) and otherwise returns False, so the caller keeps the
packet and retries (back-pressure). Framing and writing allocate nothing. ``run`` sends one 0x00 (so that bytes
left on the line cannot merge into the first frame), then reads commands through a ``packet.Deframer``: a corrupt
frame costs only itself and is counted (``deframer.crc_errors``).
"""

import select

import asyncio
from micropython import const

import packet

SERIAL_MTU = const(247)  # payload = MTU - 3 = 244 bytes: 11 samples per DATA packet, as at a typical BLE MTU
_POLL_MS = const(1000)  # longest wait for input before checking `connected` again


class Link:
    """A framed link over a byte stream; ``inp`` and ``out`` may be the same object.

    read_chunk: bytes asked for per read. 1 suits streams whose ``readinto`` waits until the buffer is full (files,
    pipes and ptys on the unix port); a UART or USB CDC created with ``timeout=0`` returns what it has, so 64 is
    fine there.
    """

    def __init__(self, inp=None, out=None, path=None, mtu=SERIAL_MTU, read_chunk=1, raw=True):
        if path is not None:
            inp = out = open(path, "r+b")
            if raw:
                _set_raw(inp)
        if inp is None or out is None:
            raise ValueError("link_serial.Link needs a stream (inp and out) or a path")
        self.mtu = mtu
        self.connected = True
        self.on_packet = None
        self._in = inp
        self._out = out
        self._frame = bytearray(packet.MAX_ENCODED_FRAME_LEN + 1)
        self._rbuf = bytearray(read_chunk)
        self._wpoll = select.poll()
        self._wpoll.register(out, select.POLLOUT)
        self._rpoll = select.poll()
        self._rpoll.register(inp, select.POLLIN)
        self.deframer = packet.Deframer()
        self.frames_sent = 0
        self.refused = 0  # send() calls answered False (stream not writable)
        self.bytes_read = 0

    # ---- device -> host ---------------------------------------------------------------------------------------
    def writable(self):
        for ev in self._wpoll.ipoll(0):
            return not ev[1] & (select.POLLHUP | select.POLLERR)
        return False

    def send(self, buf, n):
        """Frame buf[:n] and write it, or return False (nothing written) when the stream cannot take it now."""
        if not self.connected:
            return False
        if not self.writable():
            self.refused += 1
            return False
        k = packet.frame_into(self._frame, buf, n)
        self._write(k)
        self.frames_sent += 1
        return True

    # one byte stream carries every kind of packet: ACK/EVENT and LOG_CHUNK go the same way as DATA
    send_control = send
    send_log = send

    def _write(self, k):
        try:
            self._out.write(self._frame, k)
        except OSError:
            self.connected = False  # the other end went away (EPIPE, EIO on a closed pty)

    # ---- host -> device ---------------------------------------------------------------------------------------
    def _readable(self, timeout_ms):
        for ev in self._rpoll.ipoll(timeout_ms):
            return ev[1]
        return 0

    def _deliver(self, buf, n):
        if self.on_packet is not None:
            self.on_packet(buf, n)

    async def run(self):
        """The transport's task: announce the port (one 0x00), then deframe incoming commands until the input
        ends (end of file or hang-up: ``connected`` turns False)."""
        self._frame[0] = 0
        self._write(1)
        reader = asyncio.StreamReader(self._in)
        rb = self._rbuf
        deliver = self._deliver
        while self.connected:
            try:
                k = await asyncio.wait_for_ms(reader.readinto(rb), _POLL_MS)
            except asyncio.TimeoutError:
                continue
            except OSError:
                k = 0  # EIO on a pty whose other end closed: a hang-up, as end of file
            if not k:
                self.connected = False  # end of file: the host closed its end
                break
            self.bytes_read += k
            self.deframer.feed(rb, deliver, k)
            # drain what is already there without a round through the scheduler
            while self.connected:
                ev = self._readable(0)
                if not ev & select.POLLIN:
                    break
                try:
                    k = self._in.readinto(rb)
                except OSError:
                    k = 0  # hang-up
                if not k:
                    self.connected = False
                    break
                self.bytes_read += k
                self.deframer.feed(rb, deliver, k)

    def stats(self):
        d = self.deframer
        return {"frames_sent": self.frames_sent, "refused": self.refused, "bytes_read": self.bytes_read,
                "frames_ok": d.frames_ok, "crc_errors": d.crc_errors, "cobs_errors": d.cobs_errors,
                "oversize_dropped": d.oversize_dropped, "bytes_dropped": d.bytes_dropped}


def _set_raw(f):
    # a pty or tty starts in cooked mode (line editing, echo, CR/LF translation): frames need raw bytes
    try:
        import termios
        termios.setraw(f.fileno())
    except (ImportError, OSError, AttributeError):
        pass  # a FIFO or plain file: nothing to set
