"""The device session: one sensor behind a link (``hipcheck.links``), turned into blocks of samples in order.

``DeviceSession(link, settings)`` decodes the packets, tracks the sequence numbers, fills every gap by BACKFILL
from the device's ring buffer, maps device time to host time from TIME_SYNC ping/pong exchanges, sends commands and
waits for their acknowledgement, watches for silence, reconnects through the link when it drops, and records every
packet in a crash-safe log (``hipcheck.record``)::

    async with SimLink("walk.csv") as link:
        async with DeviceSession(link, SessionSettings(start_seq=0), record="walk.hclog") as session:
            print(session.device_info)
            async for block in session.blocks():        # SampleBlock, in sequence order
                pipeline.update(block.acc_m_s2[block.valid], block.gyr_rad_s[block.valid])
                await session.vibrate("drop_right")

**Gaps.** A live packet whose first sequence number is past the next expected one opens a hole; when data goes
quiet, a TIME_SYNC pong's ``next_seq`` reveals a hole at the tail (a lost last packet). Holes are asked for one
BACKFILL at a time (the device serves one answer at a time), lowest first; the samples come back flagged
``BACKFILLED`` and take their place. What the device cannot serve — ACK UNAVAILABLE, the part older than its ring
(the ACK's ``first_seq`` past the ``from_seq`` asked for), samples a BUFFER_OVERRUN event names, a hole still
unanswered after ``backfill_tries`` requests, or the link gone for good — is **marked**: rows with ``gap`` True,
NaN values and the time the sample would have had, and an entry in ``lost`` with the reason. Nothing is invented.
Blocks are held back while an earlier hole is being filled, so they always come in sequence order (the price: a
hole delays live data by one round trip of BACKFILL).

**Time.** ``TimeMap``: a straight line host_s = a + b · device_s fitted to the TIME_SYNC exchanges (``b − 1`` is
the drift of the device's clock); before the first exchange, the lower envelope of the live packets' arrivals.
``t_host_s`` of each sample uses the fit at the moment its block is emitted. In the compact form (MTU 23) the
packets carry no time: the ``PeriodLearner`` learns the period and anchor from pongs.

**Link drops.** When the link reports it is not connected, the session calls ``link.open()`` again with back-off
(0.05 s doubling to 2 s) until it is back or ``reconnect_timeout_s`` passes (then ``SessionError``); a link that
cannot reconnect (``Link.can_reconnect`` False, e.g. a replay) or that has ``ended`` ends the stream instead. After a
reconnect the first live packet shows the hole, which is backfilled as any other. The watchdog ends the session
with a ``SessionError`` when a connected link brings no packet at all for ``watchdog_s`` (idle probes keep a live
device answering).

Passive sessions (``SessionSettings(passive=True)``, for a replay) send nothing: no commands, no backfill; a hole
waits for the backfilled packets the log holds and is marked lost when the stream has moved ``passive_hold_s`` past
it.

Modules: ``session`` (``DeviceSession``: the two tasks, the commands), ``settings`` (``SessionSettings``),
``stream`` (``SampleStream``: DATA packets to blocks, no I/O), and the small synchronous parts it is built from —
``wire`` (unwrapping, decoding), ``period`` (the compact form's period), ``reassembly`` (rows in order, holes),
``timemap``, ``backfill`` (which hole to ask for, what the answer means), ``liveness`` (watchdog, idle probes),
``commands`` (command fields, tokens and ACKs), ``recording`` (the log), ``stats``, ``errors``.
"""

from hipcheck.device.backfill import BackfillPlan
from hipcheck.device.commands import PATTERNS, CommandChannel
from hipcheck.device.errors import CommandError, SessionError
from hipcheck.device.liveness import Liveness
from hipcheck.device.period import PERIOD_BASELINE, PeriodLearner
from hipcheck.device.reassembly import BLOCK_DTYPE, LostRange, Reassembly, SampleBlock
from hipcheck.device.recording import SessionRecording
from hipcheck.device.session import DeviceSession
from hipcheck.device.settings import SessionSettings
from hipcheck.device.stats import SessionStats
from hipcheck.device.stream import SampleStream
from hipcheck.device.timemap import TimeMap
from hipcheck.device.wire import WireDecoder

__all__ = [
    "BLOCK_DTYPE", "PATTERNS", "PERIOD_BASELINE", "BackfillPlan", "CommandChannel", "CommandError",
    "DeviceSession", "Liveness", "LostRange", "PeriodLearner", "Reassembly", "SampleBlock", "SampleStream",
    "SessionError", "SessionRecording", "SessionSettings", "SessionStats", "TimeMap", "WireDecoder",
]
