"""The sample period and time anchor of the compact DATA form (MTU 23), learnt from TIME_SYNC pongs.

A compact packet carries a 16-bit sequence number and no time: the host times it as anchor + (seq − anchor seq) ·
period. Each pong names the device's next sample (``next_seq``) and its time (``next_t_us``): the newest pong is
the anchor, and the slope of next_t_us over next_seq between pongs is the period. The first estimate spans
``PERIOD_BASELINE`` samples and may hold the device's settling after boot or a rate change, so the baseline then
restarts; every later pong refines the period over a longer and longer stretch. Compact packets are decoded from the
second estimate on (``ready``). A full DATA packet carries its period: once one is seen, pongs only move the anchor.
"""

from __future__ import annotations

PERIOD_BASELINE = 20  # samples between the two pongs that give a period estimate


class PeriodLearner:
    """The compact form's period and anchor (module docstring). No event loop: the session feeds it pongs."""

    def __init__(self):
        self.period_us: int | None = None
        self.from_data = False  # period_us read off a full DATA packet (pongs then leave it alone)
        self.anchor: tuple[int, int] | None = None  # (seq, t_us) from the newest pong
        self.estimates = 0  # period estimates since the last rate change
        self._base: tuple[int, int] | None = None  # (next_seq, next_t_us) the current estimate counts from

    @property
    def ready(self) -> bool:
        """Compact packets can be timed: two estimates since the last rate change."""
        return self.estimates >= 2

    def take_pong(self, next_seq: int, next_t_us: int) -> None:
        """A pong's next_seq and next_t_us, unwrapped."""
        if not self.from_data:
            base = self._base
            if base is None:
                self._base = (next_seq, next_t_us)
            elif next_seq - base[0] >= PERIOD_BASELINE:
                self.period_us = round((next_t_us - base[1]) / (next_seq - base[0]))
                self.estimates += 1
                if self.estimates == 1:
                    self._base = (next_seq, next_t_us)
        self.anchor = (next_seq, next_t_us)

    def take_data_period(self, period_us: int) -> None:
        """A full DATA packet's own period field."""
        self.period_us = int(period_us)
        self.from_data = True

    def forget(self) -> None:
        """The rate changed (SET_RATE): the compact form's period is measured anew (a full packet carries its
        own)."""
        if not self.from_data:
            self.period_us, self._base, self.estimates = None, None, 0
