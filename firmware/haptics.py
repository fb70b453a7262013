"""Vibration patterns on a PWM pin (an ERM motor through a transistor or a driver), played by one asyncio task.

A pattern is what the VIBRATE command carries (docs/protocol.md): intensity_pct (0-100, one for the whole
pattern), repeat (the steps play repeat + 1 times) and 1-7 steps of (on_10ms, off_10ms), each in units of 10 ms.
`play` returns at once: it sets the motor for the pattern's first step itself and leaves the later steps to the
player task; a new pattern replaces one in progress (the motor goes straight to the new pattern). Every step ends
at a deadline computed from the pattern's start, so steps do not drift by the scheduler's latency. The motor is off
at the end of a pattern and on stop().

The player task is created once (at the first pattern) and runs for good: it sleeps until the current step's
deadline, or IDLE_MS while nothing plays (a wearable's battery: a few wake-ups a minute when idle, `wakeups`
counts them), and looks at the pattern state when it wakes. `play` (a flag and a deadline, no message) wakes it
at once: it brings the sleeping task forward to now in asyncio's run queue, as asyncio's own Task.cancel does
with a sleeping task (asyncio/core.py: ``_task_queue.remove``, ``push``), so the new pattern's steps are timed
from the start. Nothing is allocated per pattern: no task, coroutine, memoryview or tuple is made after the first
`play` (an asyncio.Event's wait() or a cancelled task would allocate a coroutine or an exception each time;
`asyncio.sleep_ms` returns a singleton). `play` and `stop` are called from tasks of the loop the player runs on
(the sampler, the link), never from an interrupt.

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
Pattern and cue names are looked up in dicts of preallocated memoryviews; `alert(kind, side)` by index.
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
# alert (kind, side) -> pattern, at index kind * 3 + side; kinds and sides as in the ALERT event (alert.py)
_ALERT_PATTERNS = (None, None, None, None, "drop_left", "drop_right", "sway", None, None, "tilt")
# (intensity_pct, repeat, n_steps, steps memoryview) per pattern and cue, made once: play_pattern and alert then
# allocate nothing
_PLAYABLE = {}
for _name, _p in list(PATTERNS.items()) + list(CUES.items()):
    _PLAYABLE[_name] = (_p[0], _p[1], _p[2], memoryview(_p)[3:])
IDLE_MS = const(5000)  # the player's sleep while nothing plays (play wakes it at once)


class Haptics:
    def __init__(self, pwm, max_intensity_pct=100, budget=None):
        """pwm: a machine.PWM already set to the motor's frequency. max_intensity_pct scales every pattern
        (a motor rated below the supply voltage). budget: a limits.TokenBucket of motor-on milliseconds (default
        BUDGET_MS refilled at BUDGET_REFILL_MS_PER_S)."""
        self._pwm = pwm
        self._scale = max_intensity_pct
        self._steps = bytearray(2 * MAX_STEPS)
        self._task = None  # the player (created at the first pattern)
        self._sleeping = False  # the player sleeps in asyncio's run queue (play may bring it forward)
        self.wakeups = 0  # times the player woke up
        self.budget = budget if budget is not None else TokenBucket(BUDGET_MS, BUDGET_REFILL_MS_PER_S)
        # the pattern under way: state the player reads when it wakes
        self._active = False
        self._duty = 0
        self._n = 0  # steps
        self._rep = 0  # repeats left after this one
        self._i = 0  # step
        self._phase = 0  # 0: its on part is next, 1: its off part
        self._deadline = 0  # ticks_ms: the end of the part under way
        self._end = 0  # ticks_ms: MAX_PATTERN_MS after the start
        self._cut = False  # the budget granted less than the part under way: the pattern ends with it
        self._on_end = None  # deadline of the motor-on step under way (its unused part returns to the budget)
        self.capped = 0
        self.budget_cuts = 0
        self.on_ms = 0
        pwm.duty_u16(0)

    @property
    def playing(self):
        return self._active

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
        now = time.ticks_ms()
        left = self.budget.level()
        if self._on_end is not None:
            left += max(0, time.ticks_diff(self._on_end, now))  # what stopping the pattern gives back
        if left < MIN_ON_MS:
            return _BUSY  # the pattern playing, if any, goes on
        self._cancel()
        total = 0
        for i in range(2 * n_steps):
            self._steps[i] = steps[i]
            total += steps[i]
        if (repeat + 1) * total * 10 > MAX_PATTERN_MS:
            self.capped += 1  # plays its first MAX_PATTERN_MS
        self._duty = intensity_pct * self._scale * 65535 // 10000
        self._n = n_steps
        self._rep = repeat
        self._i = 0
        self._phase = 0
        self._deadline = now
        self._end = time.ticks_add(now, MAX_PATTERN_MS)
        self._active = True
        self._enter()  # the first step now: straight to the new pattern
        task = self._task
        if task is None or task.done():
            self._task = asyncio.create_task(self._player())  # once (again only if it ever ended)
        elif self._sleeping:
            _wake(task)
        return _OK

    def play_pattern(self, name):
        """A built-in pattern by name (PATTERNS); KeyError names the known ones."""
        if name not in PATTERNS:
            raise KeyError("no haptic pattern %r; known: %s" % (name, ", ".join(sorted(PATTERNS))))
        p = _PLAYABLE[name]
        return self.play(p[0], p[1], p[2], p[3])

    def cue(self, name):
        """One of the device's own cues (CUES): the pairing window opened, a central bonded."""
        p = _PLAYABLE[name]
        return self.play(p[0], p[1], p[2], p[3])

    def alert(self, kind, side):
        """The pattern for an on-device alert (kind DROP 1 / SWAY 2 / TILT 3, side NONE 0 / LEFT 1 / RIGHT 2)."""
        k = kind * 3 + side
        if 0 <= side <= 2 and 0 <= k < len(_ALERT_PATTERNS):
            name = _ALERT_PATTERNS[k]
            if name is not None:
                p = _PLAYABLE[name]
                self.play(p[0], p[1], p[2], p[3])

    def stop(self):
        self._cancel()
        self._pwm.duty_u16(0)

    def _cancel(self):
        # the pattern under way ends now (the motor is left as it is: the caller sets it)
        self._active = False
        self._cut = False
        if self._on_end is not None:
            left = time.ticks_diff(self._on_end, time.ticks_ms())
            if left > 0:
                self.budget.give(left)  # the motor stops now: the rest of its step was not used
                self.on_ms -= left
            self._on_end = None

    def _finish(self):
        self._active = False
        self._cut = False
        self._on_end = None
        self._pwm.duty_u16(0)

    def _enter(self):
        # Start the next part of the pattern at self._deadline (the end of the last one, or the start): its on part
        # (budget permitting) or its off part; parts of 0 ms are skipped. The pattern ends after its last repeat,
        # at MAX_PATTERN_MS, or when the budget is spent.
        steps = self._steps
        while True:
            if self._i >= self._n:
                if self._rep <= 0:
                    self._finish()
                    return
                self._rep -= 1
                self._i = 0
            t0 = self._deadline
            room = time.ticks_diff(self._end, t0)
            if room <= 0:
                self._finish()  # MAX_PATTERN_MS reached
                return
            i = self._i
            if self._phase == 0:
                self._phase = 1
                on_ms = steps[2 * i] * 10
                if on_ms > room:
                    on_ms = room
                if on_ms > 0:
                    grant = self.budget.take_upto(on_ms)
                    if not grant:
                        self.budget_cuts += 1  # the budget is spent: the rest of the pattern is not played
                        self._finish()
                        return
                    self.on_ms += grant
                    self._pwm.duty_u16(self._duty)
                    self._deadline = self._on_end = time.ticks_add(t0, grant)
                    self._cut = grant < on_ms
                    return
            else:
                self._phase = 0
                self._i = i + 1
                off_ms = steps[2 * i + 1] * 10
                if off_ms > room:
                    off_ms = room
                if off_ms > 0:
                    self._pwm.duty_u16(0)
                    self._deadline = time.ticks_add(t0, off_ms)
                    return

    async def _player(self):
        # the one task: wakes at the deadline of the part under way and moves on; sleeps IDLE_MS while nothing
        # plays; play() wakes it early (_wake)
        while True:
            if self._active:
                wait = time.ticks_diff(self._deadline, time.ticks_ms())
                if wait <= 0:
                    self._on_end = None
                    if self._cut:
                        self.budget_cuts += 1  # the budget granted part of this step: the pattern ends here
                        self._finish()
                    else:
                        self._enter()
                    continue
            else:
                wait = IDLE_MS
            self._sleeping = True
            await asyncio.sleep_ms(wait)
            self._sleeping = False
            self.wakeups += 1


def _wake(task):
    # A task sleeping in asyncio.sleep_ms, brought forward to now: out of the run queue and back in with no time,
    # as asyncio's Task.cancel does; its sleep returns early. The queue is looked up now: a new event loop makes a
    # new one.
    q = asyncio.core._task_queue
    q.remove(task)
    q.push(task)
