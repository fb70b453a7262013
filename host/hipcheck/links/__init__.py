"""Links from the host to a sensor: one small interface, four implementations.

``BleLink`` (bleak; its backend is a parameter), ``SerialLink`` (pyserial, COBS + CRC frames), ``SimLink`` (the
firmware's sim board in the MicroPython unix port, over stdio) and ``ReplayLink`` (a recorded packet log, in real
time or as fast as possible) all carry whole protocol packets (``hipcheck.protocol``) both ways. The device session
(``hipcheck.device``) and everything above it see only this interface (bleak's model: one face, swappable backends).

    async with SimLink(trace_csv) as link:
        await link.send(encode_command(Opcode.START, token=1))
        while (item := await link.receive(timeout_s=1.0)) is not None:
            ...  # item.channel, item.packet, item.host_time_s
"""

from __future__ import annotations

import abc
import asyncio
from dataclasses import dataclass

from hipcheck import protocol
from hipcheck.errors import DeviceError

# Channels a packet arrives on: BLE has one characteristic each; serial, sim and replay tell them by packet type.
DATA = "data"  # DATA packets (full or compact)
CONTROL = "control"  # ACK and EVENT packets
LOG = "log"  # LOG_CHUNK packets
# The channel of a packet by its kind byte, for the links that carry every packet on one stream (serial, sim).
KIND_CHANNEL = {protocol.kind_byte(protocol.PacketType.DATA): DATA,
                protocol.kind_byte(protocol.PacketType.ACK): CONTROL,
                protocol.kind_byte(protocol.PacketType.EVENT): CONTROL,
                protocol.kind_byte(protocol.PacketType.LOG_CHUNK): LOG}


# Every link holds at most this much memory of received packets waiting for receive(): a sensor does not wait
# for the host, so a host that falls behind must drop (counted, and backfilled by the session where the link
# allows) instead of growing without limit. 8 MiB is seconds to minutes of data at any rate the firmware streams
# and nothing next to the pipeline's own footprint.
RECEIVE_QUEUE_BYTES = 8 << 20
# Host memory one queued packet costs at most: a Received (a dataclass with its __dict__) holding a bytes of the
# largest packet (protocol.MAX_PACKET_LEN, 510 bytes on serial) and a float, and its queue slot: tracemalloc
# measures about 670 bytes; rounded up for the allocator's slack (tests/test_serial_flood.py measures it again).
PACKET_COST_BYTES = 1024
RECEIVE_QUEUE_PACKETS = RECEIVE_QUEUE_BYTES // PACKET_COST_BYTES


async def within(awaitable, seconds: float):
    """Await with a time limit (TimeoutError when it passes).

    Used instead of ``asyncio.wait_for``: in Python 3.11 wait_for swallows a cancellation that lands as the awaited
    thing completes (CPython gh-86296), so a cancelled session task would run on and hang its close."""
    async with asyncio.timeout(seconds):
        return await awaitable


class LinkError(DeviceError):
    """The link cannot do what was asked (not open, packet too long for the MTU, device gone); says what to do."""


@dataclass(frozen=True)
class Received:
    channel: str  # DATA, CONTROL or LOG
    packet: bytes
    host_time_s: float  # time.monotonic() when the host got it


@dataclass
class LinkStatus:
    """Live link figures, for the live plot and the session's log."""

    connected: bool = False
    mtu: int = 23
    packets_in: int = 0
    bytes_in: int = 0
    commands_out: int = 0
    crc_errors: int = 0  # frames refused by the CRC (serial, sim)
    packets_dropped: int = 0  # packets received but dropped: receive() fell RECEIVE_QUEUE_PACKETS behind
    reconnects: int = 0
    rssi_dbm: float | None = None  # where the platform gives it
    battery_pct: int | None = None
    last_packet_host_s: float | None = None


class Link(abc.ABC):
    """A connection to one sensor. Use ``async with link:`` (open, then close whatever happens).

    Besides the methods and ``ended``, the device session reads the attributes below; a link overrides them as
    class attributes or per instance.
    """

    name: str = "link"  # in the session log's header
    can_reconnect: bool = True  # open() may bring the link back after it went down (a replay cannot)
    backfill_chunk: int = 0xFFFF  # samples the session asks per BACKFILL: what the link carries well
    backfill_timeout_s: float = 1.0  # a BACKFILL answer that stalls this long is asked again
    # ... and, if not 0, only once the live stream has also moved this many samples on (a device clock faster
    # than the wall's: hipcheck.device.backfill)
    backfill_stall_samples: int = 0

    @property
    def device_id(self) -> str | None:
        """A stable name of the sensor on the other end, kept in the session log's header (``device_id``) and the
        key of its calibration profile (``hipcheck.calibration.profile``): the name ``hipcheck-XXXX`` the sensor
        advertises over BLE (else the address) once connected, and tells over serial; None when the link cannot tell
        (firmware that does not tell its name, a replay without one)."""
        status = self.status()
        return getattr(status, "name", None) or getattr(status, "address", None)

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect (and subscribe); raise LinkError with a clear message if the sensor cannot be reached."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Disconnect and release everything; safe to call twice."""

    @abc.abstractmethod
    async def send(self, packet: bytes) -> None:
        """Write one COMMAND packet; LinkError if not connected or longer than the MTU allows (MTU − 3)."""

    @abc.abstractmethod
    async def receive(self, timeout_s: float | None = None) -> Received | None:
        """The next packet in arrival order; None when timeout_s passes with nothing, or the link has ended
        (``status().connected`` tells which)."""

    @abc.abstractmethod
    def status(self) -> LinkStatus:
        """A snapshot of the live figures."""

    async def pair(self) -> None:
        """Make this host one the sensor takes commands from (docs/security.md). A cable (USB serial, the sim
        board's stdio) is physical access: nothing to do. BLE bonds here, in the sensor's pairing window."""

    @property
    def ended(self) -> bool:
        """No packet will ever come again (a replay played to its end, a firmware that exited, a link its owner
        closed): the session ends the stream instead of reconnecting. False for a link that may come back."""
        return False

    async def __aenter__(self) -> Link:
        await self.open()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()
