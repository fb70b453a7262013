"""Stdio link (the unix-port board): frames on stdout, commands from stdin.

The serial framing of docs/protocol.md (COBS + CRC-16, one 0x00 sent first) over the process's standard streams, so
that a host runs the firmware as a subprocess and talks to it through two pipes, exactly as over USB serial. It is
``link_serial.Link`` on ``sys.stdin.buffer`` / ``sys.stdout.buffer``: the same link interface (firmware/README.md,
"Links"), non-blocking through ``select.poll`` and asyncio; stdout carries nothing but frames, so diagnostics go to
stderr. End of file on stdin (the host closed its end) turns ``connected`` False.
"""

import sys

from link_serial import SERIAL_MTU
from link_serial import Link as _SerialLink


class Link(_SerialLink):
    def __init__(self, mtu=SERIAL_MTU):
        # 1-byte reads: a read on a pipe waits until its buffer is full; poll tells when the next byte is there
        super().__init__(inp=sys.stdin.buffer, out=sys.stdout.buffer, mtu=mtu, read_chunk=1)
