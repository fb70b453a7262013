"""Sampling: each step drains the IMU FIFO in batches, applies the calibration profile, fuses (``fusion``), appends
to the sample ring (``ring``; it numbers the samples), feeds the on-device alert detector and the session log.

Samples the FIFO lost advance the sequence number (ring slots with period 0, never sent) and are announced by a
BUFFER_OVERRUN event (source IMU_FIFO). Samples the ring overwrote before the link took them go to the control
queue, which announces them (source TX_RING) once the link is back. Device time is the board's microsecond clock
extended to a never-wrapping int (``DeviceClock``; u32 on the wire); each sample's time follows the driver's true
``period_us`` from the previous one, re-anchored to the read time when the clocks drift apart.

``step`` allocates nothing per sample, alerts included (``alert.Alert.dispatch``).
"""

from array import array

from micropython import const

from cal_profile import calibrate

_U32 = const(0xFFFFFFFF)
_BATCH = const(32)  # samples per driver read (the drivers read bursts of up to 32)
_SRC_IMU_FIFO = const(0)  # BUFFER_OVERRUN source


class DeviceClock:
    """Device time in µs since boot: the board clock (ticks_us, ticks_diff; default ``time``) extended to an int
    that never wraps here."""

    def __init__(self, ticks_us=None, ticks_diff=None):
        import time
        self._ticks = ticks_us if ticks_us is not None else time.ticks_us
        self._diff = ticks_diff if ticks_diff is not None else time.ticks_diff
        self._prev = self._ticks()
        self._t_us = 0

    def now_us(self):
        t = self._ticks()
        self._t_us += self._diff(t, self._prev)
        self._prev = t
        return self._t_us


class Sampling:
    """The sampling step over a driver (``read``, ``configure``, ``period_us``, ``lost``).

    fusion, ring: ``fusion.Fusion``, ``ring.Ring``; clock: ``DeviceClock``; ctrl: ``transmit.ControlQueue`` (events,
    samples lost to the link); backfill: ``transmit.Backfill`` (cancelled when a gap empties the ring); alert,
    haptics, session_log: optional role objects (None: not used). ``cal``: the calibration in use (None: raw
    samples), set by ``set_calibration``. ``t_last``: device time of the newest sample (-1: re-anchor at the next
    read).
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
            t = self.t_last
            if t < 0:
                t = now
            else:
                t += n * period
                err = now - t
                if err < 0:
                    t = now
                elif n < _BATCH and err > period:
                    t += (err - (period >> 1)) >> 3  # the chip's clock is slower than the board's: follow
            self.t_last = t
            if self.cal is not None:
                calibrate(acc, gyr, n, self.cal)
            self.fusion.update(acc, gyr, quat, flags, n)
            self.ring.append(quat, acc, gyr, flags, n, t, period)
            if self.alert is not None:
                k = self.alert.update(quat, acc, flags, n)
                if k:
                    self._alerts(k, n, t)
            if log is not None and log.active:
                log.write_samples(self.ring.next_seq - n, t - (n - 1) * period, period, quat, acc, gyr, flags, n)
            total += n
            if n < _BATCH:
                break
        self.samples += total
        ring = self.ring
        lost = ring.take_lost()
        if lost:  # overwritten before the link took them (a long disconnect)
            self.ctrl.tx_lost((ring.next_seq - ring.unsent - lost) & _U32, lost)
        return total

    def _gap(self, lost, now):
        # samples the FIFO lost: their seq numbers pass by unused (ring slots with period 0, never sent)
        ring = self.ring
        first = ring.next_seq
        self.lost_imu += lost
        if self.t_last >= 0:
            self.t_last += lost * self.period_us
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
                ring.append(zq, za, zg, zf, k, now, 0)
                left -= k
        self.ctrl.overrun(_SRC_IMU_FIFO, first, lost)

    def _alerts(self, k, n, t_last):
        # each alert: an ALERT EVENT in the control queue and its pattern on the motor, with no allocation
        self.alerts += k
        self.alert.dispatch(k, self.ring.next_seq - n, t_last - (n - 1) * self.period_us, self.period_us, self.ctrl,
                            self.haptics)


def _h(n):
    return array("h", bytes(2 * n))
