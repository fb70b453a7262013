"""6D orientation on the device: a Mahony complementary filter in 32-bit fixed point (viper), no allocation.

Based on Mahony, Hamel & Pflimlin (2008), "Nonlinear complementary filters on the special orthogonal group",
IEEE Trans. Automatic Control 53(5): the "explicit complementary filter" with a proportional correction from
the accelerometer (e = a x v, a the measured and v the estimated direction of gravity in the sensor frame,
omega += Kp e) and an integral term that estimates the gyroscope bias (b -= Ki e dt).

What we changed:
- **Rest detection** as in VQF (Laidig & Seel 2023, Information Fusion 91): gyroscope and accelerometer within
  ``rest_gyr_dps`` and ``rest_acc_g`` of their own low-pass (8 samples) on every axis, the gyroscope low-pass
  within ``rest_clip_dps``, for ``rest_min_s``: then the bias follows the gyroscope itself (a running mean of all
  rest samples, then a low-pass of time constant ``rest_tau_s``), far faster and more exact than the integral
  term; GYR_BIAS_CALIBRATED once rest_min_s of rest samples are averaged. The integral term is off at rest.
- **Initialisation**: the first sample sets the inclination from the accelerometer at once; for ``init_s`` the
  proportional gain is ``kp_init`` (flag FUSION_INITIALISING), and the integral term is off.
- No accelerometer norm gate (a gate keeps the samples whose free acceleration happens to be horizontal and so
  biases the inclination); only saturated samples (any axis beyond 8 g) are left out of the correction.
- Fixed point, so that the unix port, the ESP32-S3 and the RP2040 all run it without a float allocation: the
  quaternion is Q28 in int32, products use a 14-bit split ((ah*2^14 + al)(bh*2^14 + bl) / 2^28 ~ ah*bh +
  (ah*bl + al*bh) / 2^14) so that every intermediate stays below 2^31 on a 32-bit port; renormalised to first
  order every sample. The bias is held in gyroscope LSB * 2^16. Heading (rotation about earth z) is free
  and drifts with the residual z bias, as in any 6D filter.

Inputs are wire-scale int16 (docs/protocol.md): acc 1/2048 g, gyr 2000/32768 deg/s per LSB. Output is the
quaternion sensor -> earth (earth z up), w, x, y, z in Q14, and per-sample flags (SampleFlag bits of the wire).
"""

import micropython
from micropython import const
from array import array

# Sample flags (docs/protocol.md, SampleFlag).
ACC_SATURATED = const(0x01)
GYR_SATURATED = const(0x02)
GYR_BIAS_CALIBRATED = const(0x04)
ACC_CALIBRATED = const(0x08)
AT_REST = const(0x10)
FUSION_INITIALISING = const(0x20)

_GYR_LSB_RAD_S = 2000.0 * 3.141592653589793 / 180.0 / 32768.0
_GYR_LSB_DPS = 2000.0 / 32768.0
_ACC_LSB_G = 1.0 / 2048.0

# State (array 'i'): quaternion Q28, bias (gyr LSB * 2^16), acc low-pass (acc LSB * 16), |a| seed, counters.
_S_W = const(0)
_S_BX = const(4)
_S_ALP = const(7)
_S_AN = const(10)
_S_REST_N = const(11)
_S_INIT_N = const(12)  # samples of initialisation left; -1: not started (the next sample sets q)
_S_FLAGS = const(13)  # flags that persist (GYR_BIAS_CALIBRATED)
_S_BIAS_N = const(14)  # rest samples averaged into the bias (capped at 2^rest_shift)
_S_GLP = const(15)  # gyr low-pass (gyr LSB * 16)
_S_LEN = const(18)

# Settings (array 'i', all >= 0), derived from the float settings by configure().
_C_KD = const(0)  # gyr LSB -> half rotation angle per sample, Q28
_C_KP = const(1)  # e (Q14) * _C_KP >> 8 -> Q28 half angle
_C_KP_INIT = const(2)
_C_KI = const(3)  # e (Q14) * _C_KI >> 10 -> bias (LSB * 2^16) per sample
_C_REST_SHIFT = const(4)
_C_REST_GYR = const(5)  # gyr LSB * 16
_C_REST_ACC = const(6)  # acc LSB * 16
_C_REST_MIN = const(7)  # samples
_C_INIT = const(8)  # samples
_C_EXTRA = const(9)  # flags OR'ed into every sample (ACC_CALIBRATED from a profile)
_C_REST_CLIP = const(10)  # gyr LSB * 16
_C_LEN = const(11)

_BIAS_MAX = const(1 << 24)  # 256 LSB = 15.6 deg/s


class Fusion:
    """Settings apart from state, as x-io Fusion: ``configure(rate_hz, ...)`` then ``update(...)`` per FIFO read.

    Internal state for plots and tests: ``quat()`` (floats), ``bias_dps()``, ``at_rest``, ``initialising``.
    """

    def __init__(self, rate_hz=100):
        self._state = array("i", [0] * _S_LEN)
        self._settings = array("i", [0] * _C_LEN)
        self.configure(rate_hz)
        self.reset()

    def configure(self, rate_hz, kp=0.15, ki=0.004, kp_init=2.0, init_s=1.0, rest_gyr_dps=0.5, rest_clip_dps=2.0,
                  rest_acc_g=0.05, rest_min_s=0.5, rest_tau_s=4.0, acc_calibrated=False):
        """Gains in rad/s per unit error (kp; time constant ~1/kp s) and rad/s^2 (ki). Keeps the state."""
        dt = 1.0 / rate_hz
        c = self._settings
        c[_C_KD] = int(_GYR_LSB_RAD_S * dt / 2 * (1 << 28) + 0.5)
        c[_C_KP] = min(int(kp * dt / 2 * (1 << 22) + 0.5), 65535)  # e * k < 2^30
        c[_C_KP_INIT] = min(int(kp_init * dt / 2 * (1 << 22) + 0.5), 65535)
        c[_C_KI] = min(int(ki * dt / _GYR_LSB_RAD_S * 4 * 1024 + 0.5), 65535)
        shift = 0
        while (1 << (shift + 1)) <= rest_tau_s * rate_hz:
            shift += 1
        c[_C_REST_SHIFT] = shift
        c[_C_REST_GYR] = int(rest_gyr_dps / _GYR_LSB_DPS * 16 + 0.5)
        c[_C_REST_CLIP] = int(rest_clip_dps / _GYR_LSB_DPS * 16 + 0.5)
        c[_C_REST_ACC] = int(rest_acc_g / _ACC_LSB_G * 16 + 0.5)
        c[_C_REST_MIN] = int(rest_min_s * rate_hz + 0.5)
        c[_C_INIT] = int(init_s * rate_hz + 0.5)
        c[_C_EXTRA] = ACC_CALIBRATED if acc_calibrated else 0
        self.rate_hz = rate_hz

    def reset(self, bias_lsb=None):
        """Start over: the next sample sets the inclination. bias_lsb: (x, y, z) gyr LSB from a profile."""
        s = self._state
        for i in range(_S_LEN):
            s[i] = 0
        s[_S_W] = 1 << 28
        s[_S_AN] = 2048
        s[_S_INIT_N] = -1
        if bias_lsb is not None:
            for i in range(3):
                s[_S_BX + i] = int(bias_lsb[i] * 65536)
            s[_S_FLAGS] = GYR_BIAS_CALIBRATED
            s[_S_BIAS_N] = self._settings[_C_REST_MIN]  # a profile counts as that many rest samples

    def update(self, acc, gyr, quat, flags, n, start=0):
        """Fuse n samples: acc, gyr array('h') of 3n values (wire scales) -> quat array('h') of Q14 w, x, y, z
        and flags (bytearray) at sample positions start .. start + n - 1. No allocation."""
        _fuse(self._state, self._settings, acc, gyr, quat, flags, n, start)

    # -- internal state, for plots and tests (these allocate)
    def quat(self):
        return tuple(self._state[i] / (1 << 28) for i in range(4))

    def bias_dps(self):
        return tuple(self._state[_S_BX + i] / 65536 * _GYR_LSB_DPS for i in range(3))

    @property
    def at_rest(self):
        return self._state[_S_REST_N] >= self._settings[_C_REST_MIN]

    @property
    def initialising(self):
        return self._state[_S_INIT_N] != 0


@micropython.viper
def _fuse(st, se, acc, gyr, quat, flags, n: int, start: int):
    # Kept whole, over the 100-line limit on purpose: the loop runs per sample, and a call from viper goes through
    # the generic call path with its arguments boxed and the state back through the array. Measured in the unix
    # port (x86-64, batches of 32): moving only the quaternion integration into a viper helper, one call per
    # sample, took 0.112 -> 0.165 us/sample (+47 %); pieces under 100 lines would need two or more such calls.
    s = ptr32(st)
    c = ptr32(se)
    pa = ptr16(acc)
    pg = ptr16(gyr)
    pq = ptr16(quat)
    pf = ptr8(flags)
    # ptr32 loads are zero-extended on a 64-bit port: restore the sign (a no-op on a 32-bit port).
    w = int(s[0])
    w -= ((w >> 31) & 1) << 16 << 16
    x = int(s[1])
    x -= ((x >> 31) & 1) << 16 << 16
    y = int(s[2])
    y -= ((y >> 31) & 1) << 16 << 16
    z = int(s[3])
    z -= ((z >> 31) & 1) << 16 << 16
    bx = int(s[4])
    bx -= ((bx >> 31) & 1) << 16 << 16
    by = int(s[5])
    by -= ((by >> 31) & 1) << 16 << 16
    bz = int(s[6])
    bz -= ((bz >> 31) & 1) << 16 << 16
    lx = int(s[7])
    lx -= ((lx >> 31) & 1) << 16 << 16
    ly = int(s[8])
    ly -= ((ly >> 31) & 1) << 16 << 16
    lz = int(s[9])
    lz -= ((lz >> 31) & 1) << 16 << 16
    an = int(s[10])
    rest_n = int(s[11])
    init_n = int(s[12])
    init_n -= ((init_n >> 31) & 1) << 16 << 16
    keep = int(s[13])
    bias_n = int(s[14])
    hx = int(s[15])
    hx -= ((hx >> 31) & 1) << 16 << 16
    hy = int(s[16])
    hy -= ((hy >> 31) & 1) << 16 << 16
    hz = int(s[17])
    hz -= ((hz >> 31) & 1) << 16 << 16
    rest_clip = int(c[10])
    kd = int(c[0])
    kp = int(c[1])
    kp_init = int(c[2])
    ki = int(c[3])
    rest_shift = int(c[4])
    rest_gyr = int(c[5])
    rest_acc = int(c[6])
    rest_min = int(c[7])
    extra = int(c[9])
    one = 1 << 28
    k = 0
    while k < n:
        i3 = (start + k) * 3
        ax = (int(pa[i3]) ^ 0x8000) - 0x8000
        ay = (int(pa[i3 + 1]) ^ 0x8000) - 0x8000
        az = (int(pa[i3 + 2]) ^ 0x8000) - 0x8000
        gx = (int(pg[i3]) ^ 0x8000) - 0x8000
        gy = (int(pg[i3 + 1]) ^ 0x8000) - 0x8000
        gz = (int(pg[i3 + 2]) ^ 0x8000) - 0x8000
        fl = keep | extra
        if ax >= 32767 or ax <= -32767 or ay >= 32767 or ay <= -32767 or az >= 32767 or az <= -32767:
            fl |= 0x01
        if gx >= 32767 or gx <= -32767 or gy >= 32767 or gy <= -32767 or gz >= 32767 or gz <= -32767:
            fl |= 0x02
        # |a| by Newton's method from the previous value; beyond 8 g the sample is not used for correction.
        acc_ok = 1
        if ax > 16384 or ax < -16384 or ay > 16384 or ay < -16384 or az > 16384 or az < -16384:
            acc_ok = 0
        n2 = ax * ax + ay * ay + az * az
        if n2 < 4096:  # below 1/32 g: no direction (free fall)
            acc_ok = 0
        if acc_ok:
            if an < 64:
                an = 2048
            it = 0
            while it < 12:
                r = (an + n2 // an) >> 1
                if r == an or r == an + 1 or r + 1 == an:
                    an = r
                    break
                an = r
                it += 1
        if init_n < 0:  # the low-passes start at the first sample
            lx = ax << 4
            ly = ay << 4
            lz = az << 4
            hx = gx << 4
            hy = gy << 4
            hz = gz << 4
        # Rest: the accelerometer near its low-pass, on every axis,
        ex = (ax << 4) - lx
        ey = (ay << 4) - ly
        ez = (az << 4) - lz
        lx += ex >> 3
        ly += ey >> 3
        lz += ez >> 3
        # The gyroscope near its own low-pass (rest_gyr) and that low-pass below the bias clip (rest_clip).
        dgx = (gx << 4) - hx
        dgy = (gy << 4) - hy
        dgz = (gz << 4) - hz
        hx += dgx >> 3
        hy += dgy >> 3
        hz += dgz >> 3
        if (acc_ok and -rest_gyr <= dgx <= rest_gyr and -rest_gyr <= dgy <= rest_gyr and -rest_gyr <= dgz <= rest_gyr
                and -rest_clip <= hx <= rest_clip and -rest_clip <= hy <= rest_clip and -rest_clip <= hz <= rest_clip
                and -rest_acc <= ex <= rest_acc and -rest_acc <= ey <= rest_acc and -rest_acc <= ez <= rest_acc):
            if rest_n < rest_min:
                rest_n += 1
        else:
            rest_n = 0
        if rest_n >= rest_min:
            fl |= 0x10
            # A running mean over all rest samples so far, then a low-pass of time constant 2^rest_shift.
            if bias_n < (1 << rest_shift):
                bias_n += 1
                if bias_n >= rest_min:
                    keep |= 0x04
            bx += ((gx << 16) - bx) // bias_n
            by += ((gy << 16) - by) // bias_n
            bz += ((gz << 16) - bz) // bias_n
        # First usable sample: inclination from the accelerometer, q = normalise(1 + az, ay, -ax, 0) (Q14).
        if init_n < 0:
            if acc_ok:
                ux = (ax << 14) // an
                uy = (ay << 14) // an
                uz = (az << 14) // an
                qw = 16384 + uz
                m2 = qw * qw + uy * uy + ux * ux
                if m2 < 4096:  # upside down: half turn about x
                    w = 0
                    x = one
                    y = 0
                    z = 0
                else:
                    m = 16384
                    it = 0
                    while it < 20:
                        r = (m + m2 // m) >> 1
                        if r == m or r == m + 1 or r + 1 == m:
                            m = r
                            break
                        m = r
                        it += 1
                    w = ((qw << 14) // m) << 14
                    x = ((uy << 14) // m) << 14
                    y = ((-ux << 14) // m) << 14
                    z = 0
                init_n = int(c[8])
        # Gyroscope, bias corrected, to half rotation angles per sample (Q28).
        dx = gx * kd - ((((bx >> 8) * kd)) >> 8)
        dy = gy * kd - ((((by >> 8) * kd)) >> 8)
        dz = gz * kd - ((((bz >> 8) * kd)) >> 8)
        if acc_ok and init_n >= 0:
            ux = (ax << 14) // an
            uy = (ay << 14) // an
            uz = (az << 14) // an
            w14 = w >> 14
            x14 = x >> 14
            y14 = y >> 14
            z14 = z >> 14
            # Earth z (up) in the sensor frame, Q14.
            vx = (x14 * z14 - w14 * y14) >> 13
            vy = (w14 * x14 + y14 * z14) >> 13
            vz = (w14 * w14 - x14 * x14 - y14 * y14 + z14 * z14) >> 14
            ex = (uy * vz - uz * vy) >> 14
            ey = (uz * vx - ux * vz) >> 14
            ez = (ux * vy - uy * vx) >> 14
            if init_n > 0:
                g = kp_init
            else:
                g = kp
                if rest_n < rest_min:
                    bx -= (ex * ki) >> 10
                    by -= (ey * ki) >> 10
                    bz -= (ez * ki) >> 10
                    if bx > _BIAS_MAX:
                        bx = _BIAS_MAX
                    if bx < -_BIAS_MAX:
                        bx = -_BIAS_MAX
                    if by > _BIAS_MAX:
                        by = _BIAS_MAX
                    if by < -_BIAS_MAX:
                        by = -_BIAS_MAX
                    if bz > _BIAS_MAX:
                        bz = _BIAS_MAX
                    if bz < -_BIAS_MAX:
                        bz = -_BIAS_MAX
            dx += (ex * g) >> 8
            dy += (ey * g) >> 8
            dz += (ez * g) >> 8
        if init_n > 0:
            init_n -= 1
            fl |= 0x20
        elif init_n < 0:
            fl |= 0x20
        # q += q (x) (0, d), each product by the 14-bit split.
        wh = w >> 14
        wl = w & 0x3FFF
        xh = x >> 14
        xl = x & 0x3FFF
        yh = y >> 14
        yl = y & 0x3FFF
        zh = z >> 14
        zl = z & 0x3FFF
        dxh = dx >> 14
        dxl = dx & 0x3FFF
        dyh = dy >> 14
        dyl = dy & 0x3FFF
        dzh = dz >> 14
        dzl = dz & 0x3FFF
        nw = w - (xh * dxh + ((xh * dxl + xl * dxh) >> 14)) - (yh * dyh + ((yh * dyl + yl * dyh) >> 14)) \
            - (zh * dzh + ((zh * dzl + zl * dzh) >> 14))
        nx = x + (wh * dxh + ((wh * dxl + wl * dxh) >> 14)) + (yh * dzh + ((yh * dzl + yl * dzh) >> 14)) \
            - (zh * dyh + ((zh * dyl + zl * dyh) >> 14))
        ny = y + (wh * dyh + ((wh * dyl + wl * dyh) >> 14)) - (xh * dzh + ((xh * dzl + xl * dzh) >> 14)) \
            + (zh * dxh + ((zh * dxl + zl * dxh) >> 14))
        nz = z + (wh * dzh + ((wh * dzl + wl * dzh) >> 14)) + (xh * dyh + ((xh * dyl + xl * dyh) >> 14)) \
            - (yh * dxh + ((yh * dxl + yl * dxh) >> 14))
        # Renormalise to first order: q *= 1 + (1 - |q|^2) / 2.
        wh = nw >> 14
        wl = nw & 0x3FFF
        xh = nx >> 14
        xl = nx & 0x3FFF
        yh = ny >> 14
        yl = ny & 0x3FFF
        zh = nz >> 14
        zl = nz & 0x3FFF
        m2 = (wh * wh + ((wh * wl) >> 13) + xh * xh + ((xh * xl) >> 13) + yh * yh + ((yh * yl) >> 13)
              + zh * zh + ((zh * zl) >> 13))
        e = (one - m2) >> 1
        eh = e >> 14
        el = e & 0x3FFF
        w = nw + wh * eh + ((wh * el + wl * eh) >> 14)
        x = nx + xh * eh + ((xh * el + xl * eh) >> 14)
        y = ny + yh * eh + ((yh * el + yl * eh) >> 14)
        z = nz + zh * eh + ((zh * el + zl * eh) >> 14)
        i4 = (start + k) * 4
        pq[i4] = (w + 8192) >> 14
        pq[i4 + 1] = (x + 8192) >> 14
        pq[i4 + 2] = (y + 8192) >> 14
        pq[i4 + 3] = (z + 8192) >> 14
        pf[start + k] = fl
        k += 1
    s[0] = w
    s[1] = x
    s[2] = y
    s[3] = z
    s[4] = bx
    s[5] = by
    s[6] = bz
    s[7] = lx
    s[8] = ly
    s[9] = lz
    s[10] = an
    s[11] = rest_n
    s[12] = init_n
    s[13] = keep
    s[14] = bias_n
    s[15] = hx
    s[16] = hy
    s[17] = hz
