"""A sensor that sends valid frames faster than the host takes them: host memory stays bounded, the loss is counted.

Over a real pty (the link opens the slave by path, as /dev/ttyACM0), a writer thread floods the master with valid
full-size DATA frames (510-byte packets, the serial maximum) while the host does not call ``receive()``. The
receive queue must stop at ``queue_packets`` and count every packet it had to drop; the memory it holds, as
tracemalloc measures it in this process (the link's reader thread included), stays under the stated bound
``queue_packets × PACKET_COST_BYTES`` — an unbounded queue would hold five times that. Every frame is accounted
for: delivered + dropped = sent. Then the same through a passive ``DeviceSession``: the drop reaches the session's
summary and the sequence gap it left is found. The other bounds: BLE notifications beyond ``queue_packets`` are
dropped and counted the same way, and the session's own queue of sample blocks (a consumer far behind, or none, as
in ``hipcheck connect``) stops at ``BLOCK_QUEUE_SAMPLES`` with the rest counted.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import tracemalloc
import tty

import numpy as np
import pytest

serial = pytest.importorskip("serial")

from hipcheck import protocol  # noqa: E402
from hipcheck.device import DeviceSession, SessionSettings, SessionStats  # noqa: E402
from hipcheck.device.reassembly import BLOCK_DTYPE, SampleBlock  # noqa: E402
from hipcheck.device.session import BLOCK_QUEUE_BYTES, BLOCK_QUEUE_SAMPLES, BlockQueue  # noqa: E402
from hipcheck.links import DATA  # noqa: E402
from hipcheck.links.ble import BleLink  # noqa: E402
from hipcheck.links import (PACKET_COST_BYTES, RECEIVE_QUEUE_BYTES, RECEIVE_QUEUE_PACKETS,  # noqa: E402
                            within)
from hipcheck.links.serial import SerialLink  # noqa: E402

pytestmark = pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pty")

QUEUE_PACKETS = 600  # small, so that the flood overflows it in a second; the bound scales with it
N_FRAMES = 3000
SAMPLES = (protocol.MAX_PACKET_LEN - protocol.DATA_HEADER_LEN) // protocol.WIRE_SAMPLE_LEN  # 23: 495 bytes


def _frames(n: int, samples: int = SAMPLES, first: int = 0) -> bytes:
    """n frames of ``samples`` samples each, packet ``first`` onwards, at 100 Hz."""
    total = n * samples
    quat = np.zeros((total, 4), int)
    quat[:, 0] = protocol.QUAT_ONE_Q14
    acc, gyr, flags = np.zeros((total, 3), int), np.zeros((total, 3), int), np.zeros(total, int)
    seq0 = first * samples
    return b"".join(protocol.frame(p) for p in protocol.encode_data_packets(
        seq0, seq0 * 10_000, 10_000, quat, acc, gyr, flags, samples_per_packet=samples))


class Flood(threading.Thread):
    """Writes ``data`` to the pty master as fast as the pty takes it."""

    def __init__(self, master: int, data: bytes):
        super().__init__(name="test-flood", daemon=True)
        self.master, self.data, self.error = master, data, None

    def run(self):
        try:
            view = memoryview(self.data)
            while view:
                view = view[os.write(self.master, view[:65536]):]
        except OSError as error:
            self.error = error


@pytest.fixture
def pty():
    master, slave = os.openpty()
    tty.setraw(slave)  # no line discipline: the bytes pass as they are
    yield master, os.ttyname(slave)
    os.close(master)
    os.close(slave)


def test_a_flood_is_dropped_at_the_bound_and_counted(pty):
    master, path = pty
    data = _frames(N_FRAMES)

    async def main():
        link = SerialLink(path, watchdog_s=None, queue_packets=QUEUE_PACKETS)
        tracemalloc.start()
        try:
            await link.open()
            base = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            flood = Flood(master, data)
            flood.start()
            deadline = time.monotonic() + 60.0
            while link.status().packets_in < N_FRAMES and time.monotonic() < deadline:
                await asyncio.sleep(0.05)  # the host is busy: nothing taken from the link
            flood.join(5.0)
            held, peak = tracemalloc.get_traced_memory()
            status = link.status()
            got = 0
            while await link.receive(timeout_s=0.2) is not None:
                got += 1
            await link.close()
            return status, got, held - base, peak - base, flood.error
        finally:
            tracemalloc.stop()

    status, got, held_bytes, peak_bytes, error = asyncio.run(within(main(), 120.0))
    assert error is None
    assert status.packets_in == N_FRAMES and status.crc_errors == 0
    assert got == QUEUE_PACKETS  # the queue stopped at its limit...
    assert status.packets_dropped == N_FRAMES - QUEUE_PACKETS  # ...and counted every packet it dropped
    bound = QUEUE_PACKETS * PACKET_COST_BYTES
    # the stated bound holds at the peak (the reader thread's chunk and deframer buffers are a few kB)
    assert peak_bytes < bound, (peak_bytes, bound)
    assert held_bytes / QUEUE_PACKETS <= PACKET_COST_BYTES  # the per-packet cost the default limit rests on
    assert held_bytes > 0.5 * QUEUE_PACKETS * protocol.MAX_PACKET_LEN  # it did hold the full packets
    assert RECEIVE_QUEUE_PACKETS * PACKET_COST_BYTES <= RECEIVE_QUEUE_BYTES


def test_a_session_behind_a_flooded_link_reports_the_drop(pty):
    master, path = pty
    n, samples = 3000, 1  # compact, fast frames: the session's own pace is the slow part here

    async def main():
        link = SerialLink(path, watchdog_s=None, queue_packets=QUEUE_PACKETS)
        await link.open()
        session = DeviceSession(link, SessionSettings(passive=True))
        async with session:
            # the session waits for nothing (passive); the flood arrives while the event loop is held up
            flood = Flood(master, _frames(n, samples))
            flood.start()
            flood.join(10.0)
            t_end = time.monotonic() + 1.0
            while time.monotonic() < t_end:  # the host stalls: the link fills, then drops
                time.sleep(0.01)
            await asyncio.sleep(0.5)
            later = Flood(master, _frames(10, samples, first=n))  # the stream goes on after the drop
            later.start()
            later.join(5.0)
            await asyncio.sleep(0.5)
            summary = session.summary()
        await link.close()
        return summary, link.status()

    summary, status = asyncio.run(within(main(), 60.0))
    assert status.packets_dropped > 0
    assert summary["link_packets_dropped"] == status.packets_dropped
    assert summary["holes"] >= 1  # the session found the sequence gap the drop left


def test_ble_notifications_past_the_bound_are_dropped_and_counted():
    link = BleLink("hipcheck-0001", queue_packets=5)
    client = object()  # a connection: notifications of any other are ignored
    link._client = client
    notify = link._handler(client, DATA)
    packets = _frames(12, 1)  # framed: only to cut them apart again
    decoded = protocol.Deframer().feed(packets)
    for packet in decoded:
        notify(None, bytearray(packet))

    async def drain():
        got = []
        while (item := await link.receive(timeout_s=0.01)) is not None:
            got.append(item.packet)
        return got

    got = asyncio.run(drain())
    status = link.status()
    assert got == decoded[:5]  # the first ones, in order
    assert status.packets_in == 12 and status.packets_dropped == 7
    assert status.samples_missing == 0  # a host drop is not a radio gap: the session finds and backfills it


def test_the_session_block_queue_stops_at_its_bound():
    stats = SessionStats()
    queue = BlockQueue(stats)
    half = SampleBlock(np.zeros(BLOCK_QUEUE_SAMPLES // 2, BLOCK_DTYPE), 10_000)
    for _ in range(5):  # nobody reads: two fit, three are dropped
        queue.put(half)
    queue.put(None)  # the end always gets through
    assert queue.samples == 2 * len(half) <= BLOCK_QUEUE_SAMPLES
    assert queue.samples * BLOCK_DTYPE.itemsize <= BLOCK_QUEUE_BYTES
    assert stats.samples_unread_dropped == 3 * len(half)

    async def drain():
        n = 0
        while await queue.get() is not None:
            n += 1
        return n

    assert asyncio.run(drain()) == 2 and queue.samples == 0
    queue.put(half)  # read: room again
    assert queue.samples == len(half) and stats.samples_unread_dropped == 3 * len(half)
