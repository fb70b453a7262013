"""Sampling: each step drains the IMU FIFO in batches, applies the calibration profile, fuses (``fusion``), appends
to the sample ring (``ring``; it numbers the samples), feeds the on-device alert detector and the session log.

Samples the FIFO lost advance the sequence number (ring slots with period 0, never sent) and are announced by a
BUFFER_OVERRUN event (source IMU_FIFO). Samples the ring overwrote before the link took them go to the control
queue, which announces them (source TX_RING) once the link is back. Each sample's time follows the driver's true
``period_us`` from the previous one, re-anchored to the read time when the clocks drift apart.

Device time (``DeviceClock``) is kept in small ints on every port, so that the hot path never makes a big int: a
32-bit port's small ints hold +-2^30, which µs since boot pass after 17.9 min (and the wire's u32 after 71.6 min).
Every time in the firmware is a *tick*: the device time in µs modulo 2^30 (``TICK_MASK`` + 1), moved and compared
with ``tick_add`` and ``tick_diff`` (as time.ticks_add/ticks_diff, but with the same period on every port: the
64-bit unix port's own ticks wrap at 2^62, so tests there meet the wrap a board meets). The clock also counts its
``wraps`` (device time = wraps * 2^30 + tick), and ``clock.wraps_of(t)`` gives a recent tick's, so that a time
goes on the wire as the pair (t, wraps): the encoders (``packet.encode_data``, ``encode_alert``,
``encode_event``) and ``ring.append`` take ``t_hi`` and write t_hi * 2^30 + t modulo 2^32, the u32 of
docs/protocol.md.

``step`` allocates nothing per sample, alerts included (``alert.Alert.dispatch``), on 32-bit ports too.
"""

from array import array

from micropython import const

from cal_profile import calibrate

_U32 = const(0xFFFFFFFF)  # a big int on a 32-bit port: only off the hot path (rare events)
TICK_MASK = const(0x3FFFFFFF)  # ticks: device time in µs modulo 2^30 (2^30 itself is not a small int on 32 bits)
_HALF = const(0x20000000)  # 2^29 µs = 8.9 min: ticks compared are closer than this
_BATCH = const(32)  # samples per driver read (the drivers read bursts of up to 32)
_SRC_IMU_FIFO = const(0)  # BUFFER_OVERRUN source


def tick_add(t, d):
    """Tick t moved by d µs (|d| <= 2^29), modulo 2^30. Every intermediate stays within +-2^30: t is first taken
    to its residue in [-2^29, 2^29)."""
    return ((t ^ _HALF) - _HALF + d) & TICK_MASK


def tick_diff(a, b):
    """a - b in µs for ticks less than 2^29 µs (8.9 min) apart: in [-2^29, 2^29)."""
    return (((a - b) & TICK_MASK) ^ _HALF) - _HALF


class DeviceClock:
    """Device time in µs since boot, from the board clock (ticks_us, ticks_diff; default ``time``), kept as two
    small ints: ``tick`` (µs modulo 2^30) and ``wraps`` (how many times the tick wrapped: device time = wraps *
    2^30 + tick; a small int for 36 000 years). ``now_us()`` returns the tick; it must be called at least every
    8.9 min (the board clock's own ticks_diff range on a 32-bit port; the sampler calls it every step)."""

    def __init__(self, ticks_us=None, ticks_diff=None):
        import time
        self._ticks = ticks_us if ticks_us is not None else time.ticks_us
        self._diff = ticks_diff if ticks_diff is not None else time.ticks_diff
        self._prev = self._ticks()
        self.tick = 0
        self.wraps = 0

    def start_at(self, t_us):
        """Set the device time now to t_us (the sim board and tests: a board that has been up for a while)."""
        self._prev = self._ticks()
        self.tick = t_us & TICK_MASK
        self.wraps = t_us >> 30

    def now_us(self):
        """The device time now, as a tick (µs modulo 2^30). No allocation."""
        t = self._ticks()
        d = self._diff(t, self._prev)
        self._prev = t
        tick = self.tick
        while d > TICK_MASK - tick:  # passes 2^30 (in steps that stay small ints)
            d -= TICK_MASK - tick
            d -= 1
            tick = 0
            self.wraps += 1
        self.tick = tick + d
        return self.tick

    def wraps_of(self, t):
        """The wraps of tick t, a time within 2^29 µs of the clock's last reading (before or after it): t's device
        time is wraps_of(t) * 2^30 + t."""
        d = t - self.tick
        if d > _HALF:
            return self.wraps - 1  # t was before the last wrap
        if d < -_HALF:
            return self.wraps + 1  # t comes after the next wrap (a predicted time)
        return self.wraps

    def wire(self, t):
        """Tick t as the wire's u32 device time (docs/protocol.md). A big int on a 32-bit port: for commands."""
        return ((self.wraps_of(t) & 3) << 30) + t

    def seconds(self):
        """Whole seconds since boot (a session's start time). Allocates on a 32-bit port: for commands."""
        t = self.now_us()
        return (self.wraps * (TICK_MASK + 1) + t) // 1000000


class Sampling:
    """The sampling step over a driver (``read``, ``configure``, ``period_us``, ``lost``).

    fusion, ring: ``fusion.Fusion``, ``ring.Ring``; clock: ``DeviceClock``; ctrl: ``transmit.ControlQueue`` (events,
    samples lost to the link); backfill: ``transmit.Backfill`` (cancelled when a gap empties the ring); alert,
    haptics, session_log: optional role objects (None: not used). ``cal``: the calibration in use (None: raw
    samples), set by ``set_calibration``. ``t_last``: device time of the newest sample, a tick (-1: re-anchor at
    the next read).
    """

    def __init__(self, imu, fusion, ring, clock, ctrl, backfill, alert=None, haptics=None, session_log=None):
        self.imu = imu
        self.fusion = fusion
        self.ring = ring
        self.ctrl = ctrl
        self.backfill = backfill
        self.alert = alert
        self.haptics = haptics
        self.session_log = session_log
        self._now_us = clock.now_us
        self._wraps_of = clock.wraps_of
        # batch buffers: one driver read
        self._acc = _h(3 * _BATCH)
        self._gyr = _h(3 * _BATCH)
        self._quat = _h(4 * _BATCH)
        self._flags = bytearray(_BATCH)
        self._zero = (_h(4 * _BATCH), _h(3 * _BATCH), _h(3 * _BATCH), bytearray(_BATCH))  # gap placeholders
        self.t_last = -1
        self.cal = None  # array('h'): acc bias, gyr bias (LSB), acc matrix Q13
        self.rate_hz = 0
        self.period_us = 0
        self.samples = 0
        self.lost_imu = 0
        self.alerts = 0

    def configure(self, rate_hz):
        """(Re)start the IMU at rate_hz; raises ValueError for a rate the chip cannot make."""
        if self.period_us:
            self.step()  # what the FIFO holds at the old rate
        self.imu.configure(rate_hz)
        self.rate_hz = rate_hz
        self.period_us = self.imu.period_us
        self.fusion.configure(rate_hz, acc_calibrated=self.cal is not None)
        if self.alert is not None:
            self.alert.configure(rate_hz)
        self.t_last = -1

    def set_calibration(self, cal):
        """Biases and acc matrix (``cal_profile.parse``) on every sample from now on; None: raw samples."""
        self.cal = cal
        self.fusion.configure(self.rate_hz, acc_calibrated=cal is not None)

    def step(self):
        """Drain the FIFO: calibrate, fuse, ring, alert, log. Returns the samples taken. No allocation."""
        imu = self.imu
        acc = self._acc
        gyr = self._gyr
        quat = self._quat
        flags = self._flags
        period = self.period_us
        log = self.session_log
        total = 0
        while True:
            n = imu.read(acc, gyr)
            now = self._now_us()
            lost = imu.lost
            if lost:
                self._gap(lost, now)
            if n == 0:
                break
            # time of the newest sample: the previous one plus n periods, kept within one period before the read
            # (ticks: tick_add and tick_diff keep every value a small int across the wraps)
            t = self.t_last
            if t < 0:
                t = now
            else:
                t = tick_add(t, n * period)
                err = tick_diff(now, t)
                if err < 0:
                    t = now
                elif n < _BATCH and err > period:
                    t = tick_add(t, (err - (period >> 1)) >> 3)  # the chip's clock is slower than the board's: follow
            self.t_last = t
            hi = self._wraps_of(t)
            if self.cal is not None:
                calibrate(acc, gyr, n, self.cal)
            self.fusion.update(acc, gyr, quat, flags, n)
            self.ring.append(quat, acc, gyr, flags, n, t, period, 0, hi)
            # the first sample's time as (t0, hi): t0 = t - (n - 1) period may be below 0, still a small int, and
            # t0 + k period never passes t
            t0 = t - (n - 1) * period
            if self.alert is not None:
                k = self.alert.update(quat, acc, flags, n)
                if k:
                    self.alerts += k
                    self.alert.dispatch(k, self.ring.next_seq - n, t0, period, self.ctrl, self.haptics, 0, hi)
            if log is not None and log.active:
                log.write_samples(self.ring.next_seq - n, t0, hi, period, quat, acc, gyr, flags, n)
            total += n
            if n < _BATCH:
                break
        self.samples += total
        ring = self.ring
        lost = ring.take_lost()
        if lost:  # overwritten before the link took them (a long disconnect)
            self.ctrl.tx_lost(ring.next_seq - ring.unsent - lost, lost)
        return total

    def _gap(self, lost, now):
        # samples the FIFO lost: their seq numbers pass by unused (ring slots with period 0, never sent)
        ring = self.ring
        first = ring.next_seq
        self.lost_imu += lost
        if self.t_last >= 0:
            period = self.period_us
            # a gap over 8.9 min is past what ticks compare: re-anchor at the next read
            self.t_last = tick_add(self.t_last, lost * period) if lost < _HALF // period else -1
        if lost >= ring.capacity:
            stale = ring.unsent
            ring.reset((first + lost) & _U32)
            self.backfill.cancel()
            if stale:  # unsent samples dropped with the ring's content
                self.ctrl.tx_lost((first - stale) & _U32, stale)
        else:
            zq, za, zg, zf = self._zero
            left = lost
            while left:
                k = left if left < _BATCH else _BATCH
                ring.append(zq, za, zg, zf, k, now, 0, 0, self._wraps_of(now))
                left -= k
        self.ctrl.overrun(_SRC_IMU_FIFO, first, lost)

def _h(n):
    return array("h", bytes(2 * n))
