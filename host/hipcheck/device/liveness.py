"""Is the sensor still talking, and is it time to ask how far it has got?

The session tells ``Liveness`` what the link brings (any packet, a live DATA packet, one that did not decode,
nothing); ``failure()`` says when the session must end — a connected link silent for ``watchdog_s``, or DATA that
has not decoded for as long (a firmware speaking another protocol) — and ``probe_due()`` when data has been quiet
for ``idle_probe_s``: a TIME_SYNC pong then tells the device's next sequence number (a lost last packet, or a
device that stopped sampling). No event loop: times are passed in.
"""

from __future__ import annotations


class Liveness:
    """watchdog_s: silence that ends the session; idle_probe_s: quiet data that calls for a probe; now: the start."""

    def __init__(self, watchdog_s: float, idle_probe_s: float, now: float):
        self.watchdog_s = watchdog_s
        self.idle_probe_s = idle_probe_s
        self.last_rx = now  # the newest packet of any kind (or the start, or a reconnect)
        self.last_data_rx = now  # the newest live DATA packet that decoded
        self.last_bad_data: tuple[float, str] | None = None  # (time, error) of the newest DATA that did not decode
        self.idle_since: float | None = None  # the receive queue ran dry after the last DATA packet
        self._last_probe = 0.0
        self._probe_next_seq: int | None = None  # the device's next_seq at the previous idle probe

    def received(self, t: float, data: bool) -> None:
        """A packet arrived at t (data: on the DATA channel)."""
        self.last_rx = t
        if data:
            self.idle_since = None

    def nothing(self, now: float) -> None:
        """A receive timed out empty."""
        if self.idle_since is None:
            self.idle_since = now

    def live_data(self, t: float) -> None:
        self.last_data_rx = t

    def bad_data(self, t: float, error: str) -> None:
        self.last_bad_data = (t, error)

    def reconnected(self, now: float) -> None:
        self.last_rx = now

    def failure(self, now: float, connected: bool) -> str | None:
        """Why the session must end now, or None."""
        if connected and now - self.last_rx > self.watchdog_s:
            return (f"no packet from the sensor for {self.watchdog_s:g} s while the link says it is connected: is "
                    "the sensor on? (its battery, its power switch)")
        bad = self.last_bad_data
        if bad is not None and bad[0] > self.last_data_rx and now - self.last_data_rx > self.watchdog_s:
            return (f"DATA packets arrive but none has decoded for {self.watchdog_s:g} s (the last: {bad[1]}): is "
                    "the firmware's protocol version the host's?")
        return None

    def probe_due(self, now: float) -> bool:
        """Data has been quiet long enough, and so has the last probe: probe now (counted as done)."""
        quiet = self.idle_probe_s
        if self.idle_since is None or now - self.idle_since < quiet or now - self.last_data_rx < quiet \
                or now - self._last_probe < quiet:
            return False
        self._last_probe = now
        return True

    def quiet(self, now: float) -> bool:
        """No live data for idle_probe_s."""
        return now - self.last_data_rx >= self.idle_probe_s

    def device_stopped(self, next_seq: int) -> bool:
        """A probe's pong says the device's next sample is next_seq: True when the previous probe's said the same
        (the device made no sample in between: its sampling stopped)."""
        same = next_seq == self._probe_next_seq
        self._probe_next_seq = next_seq
        return same
