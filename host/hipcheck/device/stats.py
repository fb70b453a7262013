"""What a device session counted."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class SessionStats:
    """Packets, samples, holes and commands, counted as the session goes."""

    packets: int = 0
    data_packets: int = 0
    samples_live: int = 0
    samples_backfilled: int = 0  # backfilled samples that filled a hole
    samples_duplicate: int = 0  # samples that arrived twice (a backfill racing late live data): ignored
    samples_emitted: int = 0
    samples_lost: int = 0  # marked rows emitted
    holes: list = field(default_factory=list)  # (first_seq, n) of each hole found (live jump or tail)
    backfill_requests: int = 0
    bad_packets: int = 0
    stray_acks: int = 0
    command_timeouts: int = 0
    reconnects: int = 0
    device_alerts: int = 0
    samples_unread_dropped: int = 0  # samples dropped because blocks() was BLOCK_QUEUE_SAMPLES behind

    def summary(self) -> dict:
        """The counts a session's summary shows (holes: how many)."""
        return {"samples_emitted": self.samples_emitted, "samples_live": self.samples_live,
                "samples_backfilled": self.samples_backfilled, "samples_lost": self.samples_lost,
                "samples_duplicate": self.samples_duplicate, "holes": len(self.holes),
                "backfill_requests": self.backfill_requests, "bad_packets": self.bad_packets,
                "command_timeouts": self.command_timeouts, "reconnects": self.reconnects,
                "device_alerts": self.device_alerts, "samples_unread_dropped": self.samples_unread_dropped}
