"""Token buckets: how much of something may happen per unit of time, whatever asks for it.

A bucket holds at most ``capacity`` tokens and gains ``per_s`` tokens per second of its clock (``time.ticks_ms``
unless given); ``take(n)`` spends n tokens or refuses, ``take_upto(n)`` spends what there is up to n, ``give(n)``
returns tokens not used. Used for the motor's duty budget (tokens = milliseconds of motor on, haptics.py) and the
command rate limits (tokens = commands, commands.py). The level is kept in thousandths of a token so that slow
refills (200 per minute) lose nothing to rounding; every value stays a small int on 32-bit ports (below 2^30 for
capacities up to 1 000 000 tokens), so a bucket allocates nothing.
"""

import time


class TokenBucket:
    def __init__(self, capacity, per_s, ticks_ms=None):
        self.capacity = capacity
        self.per_s = per_s
        self._ticks = ticks_ms if ticks_ms is not None else time.ticks_ms
        self._milli = capacity * 1000
        self._t = self._ticks()

    def _refill(self):
        now = self._ticks()
        dt = time.ticks_diff(now, self._t)
        if dt > 0:
            self._t = now
            cap = self.capacity * 1000
            m = self._milli + dt * self.per_s  # dt ms x per_s tokens/s = dt * per_s thousandths
            self._milli = m if m < cap else cap

    def level(self):
        """Whole tokens there now."""
        self._refill()
        return self._milli // 1000

    def take(self, n=1):
        """Spend n tokens: True, or False (and nothing spent) when fewer are there."""
        self._refill()
        if self._milli < n * 1000:
            return False
        self._milli -= n * 1000
        return True

    def take_upto(self, n):
        """Spend up to n tokens; returns how many were spent."""
        self._refill()
        k = self._milli // 1000
        if k > n:
            k = n
        self._milli -= k * 1000
        return k

    def give(self, n):
        """Return n tokens not used after all (never above the capacity)."""
        m = self._milli + n * 1000
        cap = self.capacity * 1000
        self._milli = m if m < cap else cap
