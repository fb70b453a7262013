"""How a device session behaves: one frozen settings object, every field with a default that suits a live sensor.

    DeviceSession(link, SessionSettings(start_seq=0))                    # a sensor booted with the session
    DeviceSession(replay_link, SessionSettings(passive=True))            # a replay: send nothing
    dataclasses.replace(settings, watchdog_s=1.0)                        # a variant
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from hipcheck.errors import InvalidValueError


@dataclass(frozen=True)
class SessionSettings:
    """A device session's settings (``hipcheck.device.DeviceSession``); see the comment on each field."""

    # the first sequence number the blocks hold (0: a sensor booted with the session, everything since boot is
    # backfilled); None: from the first live sample seen
    start_seq: int | None = None
    passive: bool = False  # send nothing, not even BACKFILL (a replay); holes wait for what the log holds
    backfill: bool = True  # fill holes by BACKFILL (False: a hole is marked lost at once)
    command_timeout_s: float = 1.0  # how long one try of a command waits for its ACK
    command_tries: int = 3  # sends of a command before CommandError
    # how long a BACKFILL answer may stall before it is asked again; None: the link's (``Link.backfill_timeout_s``)
    backfill_timeout_s: float | None = None
    backfill_tries: int = 3  # requests for one hole before it is marked lost
    backfill_chunk: int | None = None  # samples asked per BACKFILL; None: the link's (``Link.backfill_chunk``)
    sync_interval_s: float = 1.0  # one TIME_SYNC exchange this often (the time map)
    idle_probe_s: float = 0.25  # data quiet this long: a pong tells how far the device has got
    watchdog_s: float = 5.0  # a connected link with no packet at all for this long ends the session
    reconnect: bool | None = None  # reopen a dropped link; None: if the link can (``Link.can_reconnect``)
    reconnect_timeout_s: float = 30.0  # a dropped link not back within this ends the session
    passive_hold_s: float = 10.0  # passive: a hole the stream has moved this far past is marked lost

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.endswith(("_s", "_tries", "_chunk")) and value is not None and not value > 0:
                raise InvalidValueError(f"SessionSettings {f.name}={value!r}: give a positive number")
