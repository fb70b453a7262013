"""The on-device alert detector: pelvic drop (named by the stance side), sway and tilt, with no host connected.

Inputs per sample, as the fusion and the driver deliver them: the orientation quaternion sensor -> earth (w, x, y,
z, int16 Q14, earth z up, heading arbitrary) and the specific force (int16, 1/2048 g per LSB); the sample flags
(samples with FUSION_INITIALISING are skipped). Zero allocation per sample: `update` is viper over int32 state.

**Level reference.** The board's nominal axes are the pelvis axes (x anterior, y left, z superior); the mounting
tilt is taken out by a still stand: the first stretch of ``ref_still_s`` (1 s) in which every accelerometer axis
stays within ``still_range_g`` (0.05 g) over each half second gives the pelvis' superior axis in sensor
coordinates, u (the mean "up" of the quaternion). Its left axis is y_p = u x e_x (normalised), its anterior axis
x_p = y_p x u. `relevel()` makes the next still stand the reference. Drop and tilt alerts wait for it.

**Obliquity** (+ = left side higher): in Baker's rotation-obliquity-tilt sequence the earth z component of the
pelvis left axis is exactly sin(obliquity), whatever the rotation and tilt; so obliquity = asin(up_sensor . y_p),
up_sensor the third row of R(q). A mounting yaw e (not seen by a still stand) lets tilt leak in by sin(e) * tilt:
0.08 deg for 3 deg of yaw and 1.5 deg of tilt. Smoothed by a first-order low-pass of ``drop_smooth_s`` (25 ms,
the delay of the host's 0.05 s average). **Tilt** (+ = anterior) = -asin(up_sensor . x_p), low-passed over
``tilt_smooth_s`` (1 s, about a stride: the host judges the mean tilt per stride).

**Drop** (docs/detectors.md, DROP): obliquity <= -drop threshold: the left side sank while standing on the right
leg -> ALERT drop, side RIGHT (weak right hip abductors); >= +threshold -> side LEFT. Value: how far the free side
sank at the crossing, 0.01 deg. The pelvis is level in double support, so the channel of a side re-arms there
(below threshold x (1 - hysteresis)).

**Sway** (peak-to-peak lateral excursion per stride, mm; a proxy for the host's sway_pp_cm from its stride
events): the acceleration is turned into the earth frame by the quaternion and projected on the horizontal
lateral direction (perpendicular to the forward axis x_p, low-passed over 1 s so the pelvis' own rotation of
+-4 deg does not swing it), which removes gravity; high-passed (2 s), then integrated twice through leaky
integrators (2 s) to a lateral displacement. Lateral sway is one cycle per stride, so the displacement's
excursion between two upward zero crossings (Schmitt trigger +-3 mm) is the stride's peak to peak; cycles of
0.5-2.5 s count (others are standing, turning on the spot or noise). Each still half second resets velocity and
displacement (zero-velocity update). On the simulated walks it reads 0.94-1.02 of the true peak to peak once
walking is steady (the filters take 2-3 strides after a start). A turn's centripetal acceleration reads as sway.

**Alert rules** (SET_THRESHOLDS): an alert fires when its value crosses the threshold while armed; it re-arms
when the value falls below threshold x (1 - hysteresis_pct/100); at most one alert of a kind per refractory_ms
(an armed channel still over its threshold fires when the refractory time runs out, as on the host).

**Stand-by** (enable_mask bit 3, ``STANDBY``): the enabled alerts run only while no host is connected. A host that
alerts itself leaves the sensor's detector in stand-by, so that a link cut without warning is covered: the app
tells the detector when the host goes and comes back (``host_connected``), and the mask the per-sample loop reads
(``_C_MASK``) is switched there, never in the loop. The filters and the level reference run whatever the mask, so
the detector is warm the moment it takes over.

    a = Alert(rate_hz=100)
    a.set_thresholds(enable_mask, drop_cdeg, sway_mm, tilt_cdeg, hysteresis_pct, refractory_ms)  # -> status
    a.host_connected(False)                            # the link went: a stand-by detector takes over
    n = a.update(quat, acc, flags, count, start)       # per FIFO read; n alerts in this block
    for j in range(n): kind, side, value, index = a.event(j)
    a.dispatch(n, seq, t_us, period_us, ctrl, haptics) # ALERT EVENTs queued and buzzed, no allocation
"""

import micropython
from micropython import const
from array import array

# ALERT event fields (docs/protocol.md)
DROP = const(1)
SWAY = const(2)
TILT = const(3)
NONE = const(0)
LEFT = const(1)
RIGHT = const(2)

ENABLE_DROP = const(1)
ENABLE_SWAY = const(2)
ENABLE_TILT = const(4)
STANDBY = const(8)  # the enabled alerts run only while no host is connected

_OK = const(0)
_OUT_OF_RANGE = const(3)
_FUSION_INITIALISING = const(0x20)

_MAX_EVENTS = const(4)  # alerts kept per update() call (refractory time makes more than one rare)

# Settings (array 'i'): thresholds in Q4 cdeg (cdeg * 16) and um, coefficients in Q12, counts in samples.
_C_MASK = const(0)
_C_DROP = const(1)
_C_DROP_RE = const(2)
_C_TILT = const(3)
_C_TILT_RE = const(4)
_C_SWAY = const(5)  # um
_C_SWAY_RE = const(6)
_C_REFR = const(7)  # samples
_C_K_OBL = const(8)  # Q12 low-pass coefficients (dt / tau)
_C_K_TILT = const(9)
_C_K_HEAD = const(10)
_C_K_HP = const(11)
_C_KV = const(12)  # ((acc Q4 LSB) >> 2) * KV >> 12 = um/s per sample
_C_KX = const(13)  # (um/s) * KX >> 16 = um per sample
_C_CYC_MIN = const(14)
_C_CYC_MAX = const(15)
_C_STILL_N = const(16)  # samples per stillness window
_C_STILL_RANGE = const(17)  # acc LSB
_C_REF_WINS = const(18)  # still windows in a row for the level reference
_C_LEN = const(19)

# State (array 'i').
_S_INIT = const(0)
_S_OBL = const(1)  # Q4 cdeg, low-passed
_S_TILT = const(2)
_S_HX = const(3)  # heading (forward axis, horizontal), Q14, low-passed
_S_HY = const(4)
_S_M = const(5)  # lateral acc mean, Q4 LSB
_S_V = const(6)  # um/s
_S_X = const(7)  # um
_S_XMAX = const(8)
_S_XMIN = const(9)
_S_CYC = const(10)  # samples since the last upward crossing
_S_SCHMITT = const(11)
_S_ARM_L = const(12)
_S_ARM_R = const(13)
_S_ARM_SWAY = const(14)
_S_ARM_TILT = const(15)
_S_CD_DROP = const(16)  # refractory countdowns, samples
_S_CD_SWAY = const(17)
_S_CD_TILT = const(18)
_S_WIN_N = const(19)
_S_AMIN = const(20)  # 3: acc min per axis over the window
_S_AMAX = const(23)  # 3
_S_WSUM = const(26)  # 3: sum of up (Q14) over the window
_S_RSUM = const(29)  # 3: over the still run
_S_RUN_N = const(32)  # samples in the still run
_S_STILL_WINS = const(33)
_S_REF = const(34)  # 0 none, 1 pending (a still run is ready to become the reference), 2 ready
_S_YP = const(35)  # 3: pelvis left axis in sensor coordinates, Q14
_S_XP = const(38)  # 3: anterior axis
_S_EV_N = const(41)
_S_EV_LOST = const(42)
_S_PP = const(43)  # last stride's sway peak to peak, um
_S_STILL = const(44)  # the last window was still
_S_EV = const(45)  # _MAX_EVENTS x (kind, side, value, index)
_S_LEN = const(_S_EV + 4 * _MAX_EVENTS)

_UM_PER_S2_PER_LSB = 4788.4033  # 1/2048 g in um/s^2 (g = 9.80665 m/s^2)


class Alert:
    """On-device drop / sway / tilt detector (see the module docstring for the method and its signs).

    Settings: thresholds as SET_THRESHOLDS carries them (`set_thresholds`), rate (`configure`). Internal states
    for plots and tests: `obliquity_cdeg` (+ = left side higher), `tilt_cdeg` (+ = anterior), `sway_pp_mm` (last
    stride), `reference_ready`, `still`, `events_lost`.
    """

    def __init__(self, rate_hz=100, enable_mask=ENABLE_DROP | ENABLE_SWAY, drop_cdeg=600, sway_mm=60,
                 tilt_cdeg=800, hysteresis_pct=25, refractory_ms=1000):
        self._c = array("i", [0] * _C_LEN)
        self._s = array("i", [0] * _S_LEN)
        self.rate_hz = 0
        self.thresholds = ()
        self._host = False  # a host is connected (host_connected); matters only in stand-by
        self.configure(rate_hz)
        st = self.set_thresholds(enable_mask, drop_cdeg, sway_mm, tilt_cdeg, hysteresis_pct, refractory_ms)
        if st != _OK:
            raise ValueError("alert thresholds out of range: %r" % ((enable_mask, drop_cdeg, sway_mm, tilt_cdeg,
                                                                     hysteresis_pct, refractory_ms),))
        self.reset()

    def configure(self, rate_hz, drop_smooth_s=0.025, tilt_smooth_s=1.0, heading_s=1.0, highpass_s=2.0,
                  still_range_g=0.05, still_window_s=0.5, ref_still_s=1.0, cycle_min_s=0.5, cycle_max_s=2.5):
        """Rate-dependent settings (the state is kept; call reset() for a new start)."""
        if not 1 <= rate_hz <= 1000:
            raise ValueError("rate_hz %r: use 25, 50, 100, 200 or 400" % (rate_hz,))
        c = self._c
        dt = 1.0 / rate_hz
        self.rate_hz = rate_hz
        c[_C_K_OBL] = min(4096, max(1, int(4096 * dt / drop_smooth_s + 0.5)))
        c[_C_K_TILT] = min(4096, max(1, int(4096 * dt / tilt_smooth_s + 0.5)))
        c[_C_K_HEAD] = min(4096, max(1, int(4096 * dt / heading_s + 0.5)))
        c[_C_K_HP] = min(4096, max(1, int(4096 * dt / highpass_s + 0.5)))
        c[_C_KV] = int(_UM_PER_S2_PER_LSB * dt * 1024 + 0.5)
        c[_C_KX] = int(dt * 65536 + 0.5)
        c[_C_CYC_MIN] = int(cycle_min_s * rate_hz)
        c[_C_CYC_MAX] = int(cycle_max_s * rate_hz)
        c[_C_STILL_N] = max(2, int(still_window_s * rate_hz))
        c[_C_STILL_RANGE] = int(still_range_g * 2048)
        c[_C_REF_WINS] = max(1, int(ref_still_s / still_window_s + 0.5))
        if self.thresholds:
            self.set_thresholds(*self.thresholds)

    def set_thresholds(self, enable_mask, drop_cdeg, sway_mm, tilt_cdeg, hysteresis_pct, refractory_ms):
        """SET_THRESHOLDS, field for field (docs/protocol.md). Returns the ACK status: 0 OK, 3 OUT_OF_RANGE
        (mask bits other than 0-3, or a value outside config.ALERT_RANGES, enabled or not: drop 1-30 deg, sway
        10-300 mm, tilt 1-45 deg, hysteresis 0-100 %, refractory 500-60000 ms); settings unchanged then. Bit 3
        (STANDBY): the enabled alerts run only while no host is connected (``host_connected``, which the app
        calls when its sampler starts and at every change of the link)."""
        from config import ALERT_RANGES
        if enable_mask & ~15:
            return _OUT_OF_RANGE
        for key, v, unit in (("drop_deg", drop_cdeg, 100), ("sway_mm", sway_mm, 1), ("tilt_deg", tilt_cdeg, 100),
                             ("hysteresis_pct", hysteresis_pct, 1), ("refractory_ms", refractory_ms, 1)):
            low, high, _ = ALERT_RANGES[key]
            if not low * unit <= v <= high * unit:
                return _OUT_OF_RANGE
        c = self._c
        keep = 100 - hysteresis_pct
        c[_C_DROP] = drop_cdeg * 16
        c[_C_DROP_RE] = drop_cdeg * 16 * keep // 100
        c[_C_TILT] = tilt_cdeg * 16
        c[_C_TILT_RE] = tilt_cdeg * 16 * keep // 100
        c[_C_SWAY] = sway_mm * 1000
        c[_C_SWAY_RE] = sway_mm * 1000 * keep // 100
        c[_C_REFR] = refractory_ms * self.rate_hz // 1000
        self.thresholds = (enable_mask, drop_cdeg, sway_mm, tilt_cdeg, hysteresis_pct, refractory_ms)
        self._apply_mask()
        return _OK

    def host_connected(self, connected):
        """The app's word on the link: a host is connected (True) or not. A detector in stand-by runs only while
        none is; otherwise nothing changes."""
        self._host = bool(connected)
        self._apply_mask()

    def _apply_mask(self):
        mask = self.thresholds[0] if self.thresholds else 0
        if mask & STANDBY and self._host:
            mask = 0
        self._c[_C_MASK] = mask & 7

    @property
    def running(self):
        """The detector's alerts are on now (enabled, and not held in stand-by by a connected host)."""
        return self._c[_C_MASK] != 0

    @property
    def standby(self):
        """SET_THRESHOLDS asked for stand-by: the alerts run only while no host is connected."""
        return bool(self.thresholds and self.thresholds[0] & STANDBY)

    def reset(self, keep_reference=False):
        """A new start: filters, arming and refractory times cleared; the level reference kept if asked."""
        s = self._s
        ref = s[_S_REF] if keep_reference else 0
        axes = [s[_S_YP + i] for i in range(3)] + [s[_S_XP + i] for i in range(3)]
        for i in range(_S_LEN):
            s[i] = 0
        for ch in (_S_ARM_L, _S_ARM_R, _S_ARM_SWAY, _S_ARM_TILT):
            s[ch] = 1
        s[_S_CYC] = 1 << 20
        if ref == 2:
            s[_S_REF] = 2
            for i in range(3):
                s[_S_YP + i] = axes[i]
                s[_S_XP + i] = axes[3 + i]
        else:
            s[_S_YP + 1] = 16384  # nominal axes until a still stand gives the reference
            s[_S_XP] = 16384

    def relevel(self):
        """Take the level reference again from the next still stand (drop and tilt alerts pause until then)."""
        self._s[_S_REF] = 0
        self._s[_S_STILL_WINS] = 0

    def set_reference(self, up):
        """Level reference from a known "up" direction in sensor coordinates (any length; e.g. a stored one)."""
        ux, uy, uz = up
        norm = (ux * ux + uy * uy + uz * uz) ** 0.5
        if norm == 0:
            return False
        ux, uy, uz = ux / norm, uy / norm, uz / norm
        # y_p = u x e_x = (0, uz, -uy); undefined when the board's x axis points up or down.
        ny = (uz * uz + uy * uy) ** 0.5
        if ny < 0.5:
            return False
        yx, yy, yz = 0.0, uz / ny, -uy / ny
        xx, xy, xz = yy * uz - yz * uy, yz * ux - yx * uz, yx * uy - yy * ux  # x_p = y_p x u
        s = self._s
        for i, v in enumerate((yx, yy, yz)):
            s[_S_YP + i] = int(v * 16384 + (0.5 if v >= 0 else -0.5))
        for i, v in enumerate((xx, xy, xz)):
            s[_S_XP + i] = int(v * 16384 + (0.5 if v >= 0 else -0.5))
        s[_S_REF] = 2
        return True

    def set_mounting(self, q_sensor_to_pelvis):
        """Level reference from the alignment calibration (the profile's q_sensor_to_pelvis, w, x, y, z): the
        pelvis axes in sensor coordinates are the rows of R(q); it includes the mounting yaw a still stand
        cannot see. Replaces the still-stand reference; relevel() goes back to it."""
        w, x, y, z = q_sensor_to_pelvis
        n = (w * w + x * x + y * y + z * z) ** 0.5
        if not n > 0:  # also NaN
            return False
        w, x, y, z = w / n, x / n, y / n, z / n
        rows = ((1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)),
                (2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)))
        s = self._s
        for r, base in ((rows[1], _S_YP), (rows[0], _S_XP)):
            for i in range(3):
                v = r[i]
                s[base + i] = int(v * 16384 + (0.5 if v >= 0 else -0.5))
        s[_S_REF] = 2
        return True

    def update(self, quat, acc, flags, n, start=0):
        """Samples start..start+n-1 of array('h') quat (4 per sample) and acc (3 per sample) and the flags
        bytearray. Returns the number of alerts fired (read them with event(j) before the next update)."""
        s = self._s
        s[_S_EV_N] = 0
        done = 0
        while done < n:
            k = _update(s, self._c, quat, acc, flags, n - done, start + done)
            done += k
            if s[_S_REF] == 1:  # a still stand is complete: becomes the reference (once; floats are fine here)
                if not self.set_reference((s[_S_RSUM], s[_S_RSUM + 1], s[_S_RSUM + 2])):
                    s[_S_REF] = 0
        return s[_S_EV_N]

    def event(self, j):
        """Alert j of the last update(): (kind, side, value, index): DROP/SWAY/TILT, NONE/LEFT/RIGHT, value in
        0.01 deg (drop: how far the free side sank; tilt: + = anterior) or mm (sway), sample index. Makes a tuple:
        the per-alert path reads ``event_field`` instead."""
        b = _S_EV + 4 * j
        s = self._s
        return s[b], s[b + 1], s[b + 2], s[b + 3]

    def event_field(self, j, f):
        """Field f of alert j of the last update(), as in event(j) (0 kind, 1 side, 2 value, 3 index), without a
        tuple."""
        return self._s[_S_EV + 4 * j + f]

    def dispatch(self, n, seq, t_us, period_us, queue=None, haptics=None, start=0, t_hi=0):
        """After update(..., start) fired n alerts: queue each as an ALERT EVENT (``queue.alert(kind, side, value,
        t_us, seq, t_hi)``, as ``transmit.ControlQueue.alert``) and buzz its built-in pattern (``haptics.alert``).
        seq and the device time t_hi * 2^30 + t_us are those of sample `start` (sampling.Sampling passes a tick
        whose later samples' times stay below 2^30). Allocates nothing (with a haptics player already running)."""
        s = self._s
        b = _S_EV
        for _ in range(n):
            kind = s[b]
            side = s[b + 1]
            i = s[b + 3] - start
            if haptics is not None:
                haptics.alert(kind, side)
            if queue is not None:
                queue.alert(kind, side, s[b + 2], t_us + i * period_us, seq + i, t_hi)
            b += 4

    @property
    def reference_ready(self):
        return self._s[_S_REF] == 2

    @property
    def reference(self):
        """(y_p, x_p): the pelvis left and anterior axes in sensor coordinates, Q14."""
        s = self._s
        return tuple(s[_S_YP + i] for i in range(3)), tuple(s[_S_XP + i] for i in range(3))

    @property
    def obliquity_cdeg(self):
        return self._s[_S_OBL] >> 4

    @property
    def tilt_cdeg(self):
        return self._s[_S_TILT] >> 4

    @property
    def sway_pp_mm(self):
        return self._s[_S_PP] // 1000

    @property
    def still(self):
        return bool(self._s[_S_STILL])

    @property
    def events_lost(self):
        return self._s[_S_EV_LOST]


@micropython.viper
def _update(st, se, quat, acc, flags, n: int, start: int) -> int:
    # Kept whole, over the 100-line limit on purpose: the loop runs per sample, and a call from viper goes through
    # the generic call path with its arguments boxed and the state back through the array. Measured in the unix
    # port (x86-64, batches of 32): moving only the sway stage into a viper helper, one call per sample, took
    # 0.093 -> 0.190 us/sample (+100 %); pieces under 100 lines would need three or more such calls.
    # Returns the number of samples consumed: all n, or fewer when a still stand has just become ready to be
    # the level reference (the caller computes it and calls again).
    s = ptr32(st)
    c = ptr32(se)
    pq = ptr16(quat)
    pa = ptr16(acc)
    pf = ptr8(flags)
    mask = int(c[_C_MASK])
    thr_drop = int(c[_C_DROP])
    re_drop = int(c[_C_DROP_RE])
    thr_tilt = int(c[_C_TILT])
    re_tilt = int(c[_C_TILT_RE])
    thr_sway = int(c[_C_SWAY])
    re_sway = int(c[_C_SWAY_RE])
    refr = int(c[_C_REFR])
    k_obl = int(c[_C_K_OBL])
    k_tilt = int(c[_C_K_TILT])
    k_head = int(c[_C_K_HEAD])
    k_hp = int(c[_C_K_HP])
    kv = int(c[_C_KV])
    kx = int(c[_C_KX])
    still_n = int(c[_C_STILL_N])
    still_range = int(c[_C_STILL_RANGE])
    # Signed state: ptr32 loads are zero-extended on a 64-bit port; restore the sign (no-op on 32-bit ports).
    ypx = int(s[_S_YP])
    ypx -= ((ypx >> 31) & 1) << 16 << 16
    ypy = int(s[_S_YP + 1])
    ypy -= ((ypy >> 31) & 1) << 16 << 16
    ypz = int(s[_S_YP + 2])
    ypz -= ((ypz >> 31) & 1) << 16 << 16
    xpx = int(s[_S_XP])
    xpx -= ((xpx >> 31) & 1) << 16 << 16
    xpy = int(s[_S_XP + 1])
    xpy -= ((xpy >> 31) & 1) << 16 << 16
    xpz = int(s[_S_XP + 2])
    xpz -= ((xpz >> 31) & 1) << 16 << 16
    obl = int(s[_S_OBL])
    obl -= ((obl >> 31) & 1) << 16 << 16
    tilt = int(s[_S_TILT])
    tilt -= ((tilt >> 31) & 1) << 16 << 16
    hx = int(s[_S_HX])
    hx -= ((hx >> 31) & 1) << 16 << 16
    hy = int(s[_S_HY])
    hy -= ((hy >> 31) & 1) << 16 << 16
    m = int(s[_S_M])
    m -= ((m >> 31) & 1) << 16 << 16
    v = int(s[_S_V])
    v -= ((v >> 31) & 1) << 16 << 16
    x = int(s[_S_X])
    x -= ((x >> 31) & 1) << 16 << 16
    xmax = int(s[_S_XMAX])
    xmax -= ((xmax >> 31) & 1) << 16 << 16
    xmin = int(s[_S_XMIN])
    xmin -= ((xmin >> 31) & 1) << 16 << 16
    cyc = int(s[_S_CYC])
    schmitt = int(s[_S_SCHMITT])
    init = int(s[_S_INIT])
    ref_ok = int(s[_S_REF]) == 2
    ev_n = int(s[_S_EV_N])
    k = 0
    stop = 0
    while k < n:
        i = start + k
        k += 1
        j = 4 * i
        w = int(pq[j])
        w -= (w & 0x8000) << 1
        qx = int(pq[j + 1])
        qx -= (qx & 0x8000) << 1
        qy = int(pq[j + 2])
        qy -= (qy & 0x8000) << 1
        qz = int(pq[j + 3])
        qz -= (qz & 0x8000) << 1
        j = 3 * i
        ax = int(pa[j])
        ax -= (ax & 0x8000) << 1
        ay = int(pa[j + 1])
        ay -= (ay & 0x8000) << 1
        az = int(pa[j + 2])
        az -= (az & 0x8000) << 1
        # "Up" (earth z) in sensor axes: the third row of R(q), Q14.
        ux = (qx * qz - w * qy) >> 13
        uy = (qy * qz + w * qx) >> 13
        uz = 16384 - ((qx * qx + qy * qy) >> 13)

        # Stillness over windows of still_n samples: the level reference and zero-velocity updates. Runs on
        # the fusion's first samples too (at rest it has the inclination from the first sample on).
        zupt = 0
        wn = int(s[_S_WIN_N])
        if wn == 0:
            s[_S_AMIN] = ax
            s[_S_AMIN + 1] = ay
            s[_S_AMIN + 2] = az
            s[_S_AMAX] = ax
            s[_S_AMAX + 1] = ay
            s[_S_AMAX + 2] = az
            s[_S_WSUM] = ux
            s[_S_WSUM + 1] = uy
            s[_S_WSUM + 2] = uz
        else:
            lo = int(s[_S_AMIN])
            lo -= ((lo >> 31) & 1) << 16 << 16
            hi = int(s[_S_AMAX])
            hi -= ((hi >> 31) & 1) << 16 << 16
            if ax < lo:
                s[_S_AMIN] = ax
            if ax > hi:
                s[_S_AMAX] = ax
            lo = int(s[_S_AMIN + 1])
            lo -= ((lo >> 31) & 1) << 16 << 16
            hi = int(s[_S_AMAX + 1])
            hi -= ((hi >> 31) & 1) << 16 << 16
            if ay < lo:
                s[_S_AMIN + 1] = ay
            if ay > hi:
                s[_S_AMAX + 1] = ay
            lo = int(s[_S_AMIN + 2])
            lo -= ((lo >> 31) & 1) << 16 << 16
            hi = int(s[_S_AMAX + 2])
            hi -= ((hi >> 31) & 1) << 16 << 16
            if az < lo:
                s[_S_AMIN + 2] = az
            if az > hi:
                s[_S_AMAX + 2] = az
            s[_S_WSUM] = int(s[_S_WSUM]) + ux
            s[_S_WSUM + 1] = int(s[_S_WSUM + 1]) + uy
            s[_S_WSUM + 2] = int(s[_S_WSUM + 2]) + uz
        wn += 1
        if wn < still_n:
            s[_S_WIN_N] = wn
        else:
            s[_S_WIN_N] = 0
            rng = 0
            for a in range(3):
                lo = int(s[_S_AMIN + a])
                lo -= ((lo >> 31) & 1) << 16 << 16
                hi = int(s[_S_AMAX + a])
                hi -= ((hi >> 31) & 1) << 16 << 16
                if hi - lo > rng:
                    rng = hi - lo
            if rng > still_range:
                s[_S_STILL] = 0
                s[_S_STILL_WINS] = 0
            else:
                s[_S_STILL] = 1
                zupt = 1
                wins = int(s[_S_STILL_WINS]) + 1
                s[_S_STILL_WINS] = wins
                if int(s[_S_REF]) == 0:
                    if wins == 1:
                        for a in range(3):
                            s[_S_RSUM + a] = s[_S_WSUM + a]
                    else:
                        for a in range(3):
                            t = int(s[_S_RSUM + a])
                            t -= ((t >> 31) & 1) << 16 << 16
                            u = int(s[_S_WSUM + a])
                            u -= ((u >> 31) & 1) << 16 << 16
                            s[_S_RSUM + a] = t + u
                    if wins >= int(c[_C_REF_WINS]):
                        s[_S_REF] = 1
                        stop = 1
        if zupt:
            v = 0
            x = 0
            xmax = 0
            xmin = 0
            cyc = 1048576
            schmitt = 0

        # Refractory countdowns.
        cd = int(s[_S_CD_DROP])
        if cd > 0:
            s[_S_CD_DROP] = cd - 1
        cd = int(s[_S_CD_SWAY])
        if cd > 0:
            s[_S_CD_SWAY] = cd - 1
        cd = int(s[_S_CD_TILT])
        if cd > 0:
            s[_S_CD_TILT] = cd - 1

        if int(pf[i]) & _FUSION_INITIALISING:
            if stop:
                break
            continue

        # asin of a Q14 sine as Q4 centidegrees: s + s^3/6 (0.05 deg off at 10 deg, 0.3 deg at 20).
        sn = (ux * ypx + uy * ypy + uz * ypz) >> 14
        sn += (((((sn * sn) >> 14) * sn) >> 14) * 10923) >> 16
        cd_obl = (sn * 22918) >> 12
        sn = (ux * xpx + uy * xpy + uz * xpz) >> 14
        sn += (((((sn * sn) >> 14) * sn) >> 14) * 10923) >> 16
        cd_tilt = 0 - ((sn * 22918) >> 12)
        if init == 0:
            init = 1
            obl = cd_obl
            tilt = cd_tilt
        obl += ((cd_obl - obl) * k_obl) >> 12
        tilt += ((cd_tilt - tilt) * k_tilt) >> 12

        # Drop, named by the stance side.
        if ref_ok and (mask & ENABLE_DROP):
            if obl <= 0 - thr_drop:
                if int(s[_S_ARM_R]) and int(s[_S_CD_DROP]) == 0:
                    s[_S_ARM_R] = 0
                    s[_S_CD_DROP] = refr
                    if ev_n < _MAX_EVENTS:
                        b = _S_EV + 4 * ev_n
                        s[b] = DROP
                        s[b + 1] = RIGHT
                        s[b + 2] = (0 - obl) >> 4
                        s[b + 3] = i
                        ev_n += 1
                    else:
                        s[_S_EV_LOST] = int(s[_S_EV_LOST]) + 1
            elif obl > 0 - re_drop:
                s[_S_ARM_R] = 1
            if obl >= thr_drop:
                if int(s[_S_ARM_L]) and int(s[_S_CD_DROP]) == 0:
                    s[_S_ARM_L] = 0
                    s[_S_CD_DROP] = refr
                    if ev_n < _MAX_EVENTS:
                        b = _S_EV + 4 * ev_n
                        s[b] = DROP
                        s[b + 1] = LEFT
                        s[b + 2] = obl >> 4
                        s[b + 3] = i
                        ev_n += 1
                    else:
                        s[_S_EV_LOST] = int(s[_S_EV_LOST]) + 1
            elif obl < re_drop:
                s[_S_ARM_L] = 1

        # Tilt against the neutral standing posture.
        if ref_ok and (mask & ENABLE_TILT):
            at = tilt if tilt >= 0 else 0 - tilt
            if at >= thr_tilt:
                if int(s[_S_ARM_TILT]) and int(s[_S_CD_TILT]) == 0:
                    s[_S_ARM_TILT] = 0
                    s[_S_CD_TILT] = refr
                    if ev_n < _MAX_EVENTS:
                        b = _S_EV + 4 * ev_n
                        s[b] = TILT
                        s[b + 1] = NONE
                        s[b + 2] = tilt >> 4 if tilt >= 0 else 0 - ((0 - tilt) >> 4)
                        s[b + 3] = i
                        ev_n += 1
                    else:
                        s[_S_EV_LOST] = int(s[_S_EV_LOST]) + 1
            elif at < re_tilt:
                s[_S_ARM_TILT] = 1

        # Sway: lateral (horizontal, across the smoothed heading) acceleration -> displacement.
        r00 = 16384 - ((qy * qy + qz * qz) >> 13)
        r01 = (qx * qy - w * qz) >> 13
        r02 = (qx * qz + w * qy) >> 13
        r10 = (qx * qy + w * qz) >> 13
        r11 = 16384 - ((qx * qx + qz * qz) >> 13)
        r12 = (qy * qz - w * qx) >> 13
        fx = (r00 * xpx + r01 * xpy + r02 * xpz) >> 14
        fy = (r10 * xpx + r11 * xpy + r12 * xpz) >> 14
        if init == 1:
            hx = fx
            hy = fy
        hx += ((fx - hx) * k_head) >> 12
        hy += ((fy - hy) * k_head) >> 12
        nn = (hx * hx + hy * hy) >> 14
        if nn > 8192:  # the forward axis is within 45 deg of horizontal: upright
            # +-4 g is far beyond a walking pelvis; the clamp keeps every product below 2^31.
            if ax > 8191:
                ax = 8191
            elif ax < -8191:
                ax = -8191
            if ay > 8191:
                ay = 8191
            elif ay < -8191:
                ay = -8191
            if az > 8191:
                az = 8191
            elif az < -8191:
                az = -8191
            aex = (r00 * ax + r01 * ay + r02 * az) >> 14
            aey = (r10 * ax + r11 * ay + r12 * az) >> 14
            r = (49152 - nn) >> 1  # 1/sqrt(nn), Newton from 1: two steps, 0.1 % at nn = 0.8
            t = (nn * ((r * r) >> 14)) >> 14
            r = (r * (49152 - t)) >> 15
            al = ((((0 - hy) * aex + hx * aey) >> 14) * r) >> 14
            if init == 1 or zupt:
                m = al << 4
            m += (((al << 4) - m) * k_hp) >> 12
            ah = (al << 4) - m
            if ah > 32767:  # +-1 g after the high-pass
                ah = 32767
            elif ah < -32767:
                ah = -32767
            v += ((ah >> 2) * kv + 2048) >> 12
            v -= (v * k_hp) >> 12
            if v > 524287:
                v = 524287
            elif v < -524287:
                v = -524287
            x += (v * kx + 32768) >> 16
            x -= (x * k_hp) >> 12
            if x > 1048575:
                x = 1048575
            elif x < -1048575:
                x = -1048575
            if cyc < 1048576:
                cyc += 1
            if x > xmax:
                xmax = x
            if x < xmin:
                xmin = x
            if schmitt == 0:
                if x < -3000:
                    schmitt = 1
            elif x > 3000:
                schmitt = 0
                if cyc >= int(c[_C_CYC_MIN]) and cyc <= int(c[_C_CYC_MAX]):
                    pp = xmax - xmin
                    if pp > 1048575:
                        pp = 1048575
                    s[_S_PP] = pp
                    if mask & ENABLE_SWAY:
                        if pp >= thr_sway:
                            if int(s[_S_ARM_SWAY]) and int(s[_S_CD_SWAY]) == 0:
                                s[_S_ARM_SWAY] = 0
                                s[_S_CD_SWAY] = refr
                                if ev_n < _MAX_EVENTS:
                                    b = _S_EV + 4 * ev_n
                                    s[b] = SWAY
                                    s[b + 1] = NONE
                                    s[b + 2] = (pp * 1049) >> 20  # um -> mm
                                    s[b + 3] = i
                                    ev_n += 1
                                else:
                                    s[_S_EV_LOST] = int(s[_S_EV_LOST]) + 1
                        elif pp < re_sway:
                            s[_S_ARM_SWAY] = 1
                cyc = 0
                xmax = x
                xmin = x
        init = 2
        if stop:
            break
    s[_S_OBL] = obl
    s[_S_TILT] = tilt
    s[_S_HX] = hx
    s[_S_HY] = hy
    s[_S_M] = m
    s[_S_V] = v
    s[_S_X] = x
    s[_S_XMAX] = xmax
    s[_S_XMIN] = xmin
    s[_S_CYC] = cyc
    s[_S_SCHMITT] = schmitt
    s[_S_INIT] = init
    s[_S_EV_N] = ev_n
    return k
