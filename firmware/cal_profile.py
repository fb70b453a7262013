"""The calibration profile (docs/protocol.md, CAL_UPLOAD): 79 bytes of version, gyroscope bias, accelerometer bias,
accelerometer matrix and the mounting rotation (q_sensor_to_pelvis), CRC-16 last.

``Upload`` assembles the CAL_UPLOAD chunks and checks the whole (``validate``: CRC, version, then every value
finite and plausible, before anything is written); ``save`` keeps it (write then rename), ``load`` reads it at boot
and validates it again (a profile that fails is ignored with its reason: no file can stop the sensor from booting);
``parse`` turns it into the int16 form ``calibrate`` applies to every sample in viper (gyro bias; acc bias and
matrix in Q13; saturated samples stay raw).

Plausible (docs/protocol.md, "Calibration profile"): gyroscope bias within 0.45 rad/s (26 deg/s; the MPU-6050 allows
+-20 deg/s at 25 C), accelerometer bias within 1.5 m/s^2 (0.15 g; the chips allow 20-80 mg), an accelerometer
matrix that is a rotation times a scale of 0.9-1.1 up to 0.1 of cross-axis and axis-to-axis error (M^T M / s^2
within 0.2 of the identity, det M > 0: no reflection, no zero matrix), and a mounting quaternion of norm 1 +- 0.01.
"""

import struct

import micropython
from micropython import const

import packet

_VERSION = const(1)
_CRC_AT = const(77)  # CRC-16 of bytes 0..76, little-endian
# Wire scales (docs/protocol.md)
_GYR_LSB_RAD_S = 2000.0 * 3.141592653589793 / 180.0 / 32768.0
_ACC_LSB_M_S2 = 9.80665 / 2048.0
_CAL_Q = const(13)  # acc_matrix in Q13 (|entries| <= 2: products stay below 2^31 on 32-bit ports)
# Plausible ranges (module docstring)
GYR_BIAS_MAX_RAD_S = 0.45
ACC_BIAS_MAX_M_S2 = 1.5
SCALE_MIN = 0.9
SCALE_MAX = 1.1
SHAPE_TOL = 0.2  # M^T M / s^2 against the identity, per entry: +-5 % per axis and 2 deg of misalignment reach 0.13
QUAT_NORM_TOL = 0.01
_NAMES = ("gyr_bias_rad_s", "acc_bias_m_s2", "acc_matrix", "q_sensor_to_pelvis")


class Upload:
    """The chunks of one CAL_UPLOAD, in order (offset 0 starts over)."""

    def __init__(self):
        self._buf = bytearray(packet.CAL_PROFILE_LEN)
        self._got = 0
        self.reason = ""  # why the last whole profile was refused

    def add(self, total, offset, chunk):
        """One chunk -> (status, profile): the ACK status, and the whole checked profile after its last chunk
        (else None). OUT_OF_RANGE: a chunk out of order, or an implausible whole (``validate``: ``reason`` says
        why); CRC_ERROR, UNSUPPORTED_VERSION: the whole is bad."""
        self.reason = ""
        if offset == 0:
            self._got = 0
        if offset != self._got:
            return packet.OUT_OF_RANGE, None
        end = offset + len(chunk)
        self._buf[offset:end] = chunk
        self._got = end
        if end < total:
            return packet.OK, None
        blob = bytes(self._buf)
        self._got = 0
        status, self.reason = validate(blob)
        return status, (blob if status == packet.OK else None)


def check(blob):
    """The ACK status for a whole profile: OK, CRC_ERROR or UNSUPPORTED_VERSION."""
    if packet.crc16_ccitt(blob, _CRC_AT) != blob[_CRC_AT] | (blob[_CRC_AT + 1] << 8):
        return packet.CRC_ERROR
    if blob[0] != _VERSION:
        return packet.UNSUPPORTED_VERSION
    return packet.OK


def validate(blob):
    """(status, reason) for a whole profile: (OK, "") when the device may use it, else the ACK status (BAD_LENGTH,
    CRC_ERROR, UNSUPPORTED_VERSION, OUT_OF_RANGE) and what is wrong, naming the field."""
    if len(blob) != packet.CAL_PROFILE_LEN:
        return packet.BAD_LENGTH, "%d bytes, not %d" % (len(blob), packet.CAL_PROFILE_LEN)
    status = check(blob)
    if status == packet.CRC_ERROR:
        return status, "CRC mismatch"
    if status != packet.OK:
        return status, "profile_version %d, not %d" % (blob[0], _VERSION)
    v = struct.unpack_from("<B3f3f9f4f", blob, 0)
    for i in range(1, 20):
        if v[i] - v[i] != 0.0:  # NaN, +inf or -inf
            k = 0 if i < 4 else 1 if i < 7 else 2 if i < 16 else 3
            return packet.OUT_OF_RANGE, "%s holds %r: not a finite number" % (_NAMES[k], v[i])
    for i in range(3):
        if abs(v[1 + i]) > GYR_BIAS_MAX_RAD_S:
            return packet.OUT_OF_RANGE, "gyr_bias_rad_s[%d] = %g: beyond +-%g rad/s" % (i, v[1 + i],
                                                                                     GYR_BIAS_MAX_RAD_S)
        if abs(v[4 + i]) > ACC_BIAS_MAX_M_S2:
            return packet.OUT_OF_RANGE, "acc_bias_m_s2[%d] = %g: beyond +-%g m/s^2" % (i, v[4 + i],
                                                                                    ACC_BIAS_MAX_M_S2)
    why = _matrix_fault(v[7:16])
    if why:
        return packet.OUT_OF_RANGE, "acc_matrix " + why
    q = v[16:20]
    norm = (q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3]) ** 0.5
    if abs(norm - 1.0) > QUAT_NORM_TOL:
        return packet.OUT_OF_RANGE, "q_sensor_to_pelvis has norm %g, not 1" % norm
    return packet.OK, ""


def _matrix_fault(m):
    # "" when the row-major 3x3 m is a rotation times a scale in [SCALE_MIN, SCALE_MAX] within SHAPE_TOL
    g = [0.0] * 9  # M^T M
    for i in range(3):
        for j in range(3):
            g[3 * i + j] = m[i] * m[j] + m[3 + i] * m[3 + j] + m[6 + i] * m[6 + j]
    s2 = (g[0] + g[4] + g[8]) / 3
    if not SCALE_MIN * SCALE_MIN <= s2 <= SCALE_MAX * SCALE_MAX:
        return "has a scale of %g: not %g to %g" % (s2 ** 0.5, SCALE_MIN, SCALE_MAX)
    for i in range(9):
        if abs(g[i] / s2 - (1.0 if i % 4 == 0 else 0.0)) > SHAPE_TOL:
            return "is not a rotation times a scale (M^T M / s^2 differs from the identity by more than %g)" % (
                SHAPE_TOL)
    det = (m[0] * (m[4] * m[8] - m[5] * m[7]) - m[1] * (m[3] * m[8] - m[5] * m[6])
           + m[2] * (m[3] * m[7] - m[4] * m[6]))
    if det <= 0:
        return "is a reflection (determinant %g)" % det
    return ""


def save(path, blob):
    """Keep the profile at path: write then rename, so that a reset leaves the old profile or the new one, never
    half of one. Raises OSError."""
    import os
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(blob)
    os.rename(tmp, path)


def load(path):
    """(profile, reason): the calibration profile kept at path and None, or None and None when there is none, or
    None and why the one there is ignored (damaged or implausible: see ``validate``)."""
    try:
        with open(path, "rb") as f:
            blob = f.read()
    except OSError:
        return None, None
    status, reason = validate(blob)
    if status != packet.OK:
        return None, reason
    return blob, None


def parse(blob):
    """(cal, q_sensor_to_pelvis): cal is array('h') of the acc bias and gyr bias in LSB and the acc matrix in Q13
    (clamped to +-2), as ``calibrate`` takes it; q is (w, x, y, z) floats for the alert detector."""
    from array import array
    v = struct.unpack_from("<B3f3f9f4f", blob, 0)
    gb = v[1:4]
    ab = v[4:7]
    m = v[7:16]
    cal = array("h", bytes(30))
    for i in range(3):
        cal[i] = _round(ab[i] / _ACC_LSB_M_S2)
        cal[3 + i] = _round(gb[i] / _GYR_LSB_RAD_S)
    for i in range(9):
        x = m[i]
        x = 2.0 if x > 2.0 else (-2.0 if x < -2.0 else x)
        cal[6 + i] = _round(x * (1 << _CAL_Q))
    return cal, v[16:20]


def _round(x):
    return int(x + 0.5) if x >= 0 else -int(-x + 0.5)


@micropython.viper
def calibrate(acc, gyr, n: int, cal):
    # gyr -= gyr bias; acc = M (acc - acc bias), M in Q13 (cal: int16 acc bias 3, gyr bias 3, M 9). A sample with
    # a saturated axis (|v| >= 32767) keeps its raw values: saturation must stay visible on the wire.
    pa = ptr16(acc)
    pg = ptr16(gyr)
    pc = ptr16(cal)
    i = 0
    while i < n:
        j = 3 * i
        x = (int(pa[j]) ^ 0x8000) - 0x8000
        y = (int(pa[j + 1]) ^ 0x8000) - 0x8000
        z = (int(pa[j + 2]) ^ 0x8000) - 0x8000
        if x < 32767 and x > -32767 and y < 32767 and y > -32767 and z < 32767 and z > -32767:
            x -= (int(pc[0]) ^ 0x8000) - 0x8000
            y -= (int(pc[1]) ^ 0x8000) - 0x8000
            z -= (int(pc[2]) ^ 0x8000) - 0x8000
            r = 0
            while r < 3:
                m = 6 + 3 * r
                o = (((int(pc[m]) ^ 0x8000) - 0x8000) * x + ((int(pc[m + 1]) ^ 0x8000) - 0x8000) * y
                     + ((int(pc[m + 2]) ^ 0x8000) - 0x8000) * z + 4096) >> 13
                if o > 32766:
                    o = 32766
                elif o < -32766:
                    o = -32766
                pa[j + r] = o
                r += 1
        k = 0
        while k < 3:
            v = (int(pg[j + k]) ^ 0x8000) - 0x8000
            if v < 32767 and v > -32767:
                v -= (int(pc[3 + k]) ^ 0x8000) - 0x8000
                if v > 32766:
                    v = 32766
                elif v < -32766:
                    v = -32766
                pg[j + k] = v
            k += 1
        i += 1
