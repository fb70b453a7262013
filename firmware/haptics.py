"""Vibration patterns on a PWM pin (an ERM motor through a transistor or a driver), played by an asyncio task.

A pattern is what the VIBRATE command carries (docs/protocol.md): intensity_pct (0-100, one for the whole
pattern), repeat (the steps play repeat + 1 times) and 1-7 steps of (on_10ms, off_10ms), each in units of 10 ms.
`play` returns at once; a new pattern replaces one in progress (the running task is cancelled; the motor goes
straight to the new pattern). Every wait is a bounded sleep toward a deadline computed from the pattern's start,
so steps do not drift by the scheduler's latency. The motor is off at the end of a pattern, on stop() and when
the task is cancelled.

Motor safety, whatever asks (a host's VIBRATE, the on-device alert): docs/protocol.md, "Motor safety".
    MAX_PATTERN_MS   a pattern plays at most 4 s (on and off, every repeat); a longer one is cut there
    BUDGET_MS        the motor runs at most 12 s in any minute: a bucket of 12 000 ms of motor-on time, refilled
                     at 200 ms per second; a step gets what is left, and an empty bucket ends the pattern
                     (`play` answers BUSY while under MIN_ON_MS is left)
Counters: `capped` (patterns cut at MAX_PATTERN_MS), `budget_cuts` (patterns cut by the budget), `on_ms` (motor-on
time granted in all).

Built-in patterns for the on-device alert (felt apart without looking):
    drop_left   one long buzz           400 ms
    drop_right  two long buzzes         250 on, 150 off, 250 on
    sway        three short buzzes      80 on, 80 off (x 3)
    tilt        long then short         300 on, 100 off, 100 on
Cues of the device itself (`cue(name)`, not VIBRATE patterns): `pairing` (the pairing window opened: short, short,
long) and `paired` (a central bonded: one 150 ms buzz).

    h = Haptics(PWM(Pin(board.MOTOR_PIN), freq=board.MOTOR_PWM_HZ, duty_u16=0))
    status = h.play(intensity_pct, repeat, n_steps, steps)   # the VIBRATE fields; steps = bytes (on, off, ...)
    h.play_pattern("drop_right"); h.alert(kind, side); h.cue("pairing"); h.stop(); h.playing
"""

import asyncio
import time
from micropython import const

from limits import TokenBucket

MAX_STEPS = const(7)
# Motor safety (docs/protocol.md, "Motor safety"): why these numbers are there.
MAX_PATTERN_MS = const(4000)
BUDGET_MS = const(12000)
BUDGET_REFILL_MS_PER_S = const(200)  # 12 000 ms per 60 s: the budget is 20 % duty on average
MIN_ON_MS = const(20)  # below this left in the budget, a new pattern is refused (BUSY)

_OK = const(0)
_BAD_LENGTH = const(2)
_OUT_OF_RANGE = const(3)
_TOO_LONG = const(4)
_BUSY = const(5)

# The VIBRATE payload of each built-in pattern: intensity_pct, repeat, n_steps, (on_10ms, off_10ms) * n_steps.
PATTERNS = {
    "drop_left": b"\x64\x00\x01\x28\x00",
    "drop_right": b"\x64\x00\x02\x19\x0f\x19\x00",
    "sway": b"\x50\x02\x01\x08\x08",
    "tilt": b"\x50\x00\x02\x1e\x0a\x0a\x00",
}
# The device's own cues, same form (not VIBRATE patterns a host names).
CUES = {
    "pairing": b"\x64\x00\x03\x08\x08\x08\x08\x1e\x00",  # 80 on, 80 off, 80 on, 80 off, 300 on
    "paired": b"\x64\x00\x01\x0f\x00",  # 150 on
}
# alert (kind, side) -> pattern; kinds and sides as in the ALERT event (alert.py).
_ALERT_PATTERNS = {(1, 1): "drop_left", (1, 2): "drop_right", (2, 0): "sway", (3, 0): "tilt"}


class Haptics:
    def __init__(self, pwm, max_intensity_pct=100, budget=None):
        """pwm: a machine.PWM already set to the motor's frequency. max_intensity_pct scales every pattern
        (a motor rated below the supply voltage). budget: a limits.TokenBucket of motor-on milliseconds (default
        BUDGET_MS refilled at BUDGET_REFILL_MS_PER_S)."""
        self._pwm = pwm
        self._scale = max_intensity_pct
        self._steps = bytearray(2 * MAX_STEPS)
        self._task = None
        self._gen = 0
        self.budget = budget if budget is not None else TokenBucket(BUDGET_MS, BUDGET_REFILL_MS_PER_S)
        self._on_end = None  # deadline of the motor-on step under way (its unused part returns to the budget)
        self.capped = 0
        self.budget_cuts = 0
        self.on_ms = 0
        pwm.duty_u16(0)

    @property
    def playing(self):
        return self._task is not None

    def play(self, intensity_pct, repeat, n_steps, steps):
        """Start a pattern (the VIBRATE fields) now, replacing any in progress. Returns the ACK status:
        0 OK, 3 OUT_OF_RANGE (0 steps, intensity over 100), 4 TOO_LONG (more than 7 steps), 2 BAD_LENGTH
        (steps shorter than 2 * n_steps bytes), 5 BUSY (the duty budget is spent); nothing changes on an error.
        A pattern longer than MAX_PATTERN_MS plays its first MAX_PATTERN_MS."""
        if n_steps > MAX_STEPS:
            return _TOO_LONG
        if n_steps < 1 or not 0 <= intensity_pct <= 100 or not 0 <= repeat <= 255:
            return _OUT_OF_RANGE
        if len(steps) < 2 * n_steps:
            return _BAD_LENGTH
        left = self.budget.level()
        if self._on_end is not None:
            left += max(0, time.ticks_diff(self._on_end, time.ticks_ms()))  # what stopping the pattern gives back
        if left < MIN_ON_MS:
            return _BUSY  # the pattern playing, if any, goes on
        self._cancel()
        total = 0
        for i in range(2 * n_steps):
            self._steps[i] = steps[i]
            total += steps[i]
        if (repeat + 1) * total * 10 > MAX_PATTERN_MS:
            self.capped += 1  # plays its first MAX_PATTERN_MS
        duty = intensity_pct * self._scale * 65535 // 10000
        self._gen += 1
        self._task = asyncio.create_task(self._run(self._gen, duty, repeat, n_steps))
        return _OK

    def play_pattern(self, name):
        """A built-in pattern by name (PATTERNS); KeyError names the known ones."""
        p = PATTERNS.get(name)
        if p is None:
            raise KeyError("no haptic pattern %r; known: %s" % (name, ", ".join(sorted(PATTERNS))))
        return self.play(p[0], p[1], p[2], memoryview(p)[3:])

    def cue(self, name):
        """One of the device's own cues (CUES): the pairing window opened, a central bonded."""
        p = CUES[name]
        return self.play(p[0], p[1], p[2], memoryview(p)[3:])

    def alert(self, kind, side):
        """The pattern for an on-device alert (kind DROP 1 / SWAY 2 / TILT 3, side NONE 0 / LEFT 1 / RIGHT 2)."""
        name = _ALERT_PATTERNS.get((kind, side))
        if name is not None:
            self.play_pattern(name)

    def stop(self):
        self._cancel()
        self._pwm.duty_u16(0)

    def _cancel(self):
        if self._task is not None:
            self._gen += 1  # the cancelled task must not touch the motor any more
            self._task.cancel()
            self._task = None
        if self._on_end is not None:
            left = time.ticks_diff(self._on_end, time.ticks_ms())
            if left > 0:
                self.budget.give(left)  # the motor stops now: the rest of its step was not used
                self.on_ms -= left
            self._on_end = None

    async def _run(self, gen, duty, repeat, n):
        pwm = self._pwm
        steps = self._steps
        deadline = time.ticks_ms()
        end = time.ticks_add(deadline, MAX_PATTERN_MS)
        try:
            for _ in range(repeat + 1):
                for i in range(n):
                    on_ms = min(steps[2 * i] * 10, time.ticks_diff(end, deadline))
                    if on_ms > 0:
                        grant = self.budget.take_upto(on_ms)
                        if grant:
                            self.on_ms += grant
                            pwm.duty_u16(duty)
                            deadline = time.ticks_add(deadline, grant)
                            self._on_end = deadline
                            await asyncio.sleep_ms(max(0, time.ticks_diff(deadline, time.ticks_ms())))
                            self._on_end = None
                        if grant < on_ms:
                            self.budget_cuts += 1  # the budget is spent: the rest of the pattern is not played
                            return
                    off_ms = min(steps[2 * i + 1] * 10, time.ticks_diff(end, deadline))
                    if off_ms > 0:
                        pwm.duty_u16(0)
                        deadline = time.ticks_add(deadline, off_ms)
                        await asyncio.sleep_ms(max(0, time.ticks_diff(deadline, time.ticks_ms())))
                    if time.ticks_diff(end, deadline) <= 0:
                        return  # MAX_PATTERN_MS reached
        finally:
            if self._gen == gen:
                pwm.duty_u16(0)
                self._task = None
                self._on_end = None
