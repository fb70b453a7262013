"""The calibration profile (docs/protocol.md, CAL_UPLOAD): 79 bytes of version, gyroscope bias, accelerometer bias,
accelerometer matrix and the mounting rotation (q_sensor_to_pelvis), CRC-16 last.

``Upload`` assembles the CAL_UPLOAD chunks and checks the whole; ``save`` keeps it (write then rename), ``load``
reads it at boot; ``parse`` turns it into the int16 form ``calibrate`` applies to every sample in viper (gyro bias;
acc bias and matrix in Q13; saturated samples stay raw).
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


class Upload:
    """The chunks of one CAL_UPLOAD, in order (offset 0 starts over)."""

    def __init__(self):
        self._buf = bytearray(packet.CAL_PROFILE_LEN)
        self._got = 0

    def add(self, total, offset, chunk):
        """One chunk -> (status, profile): the ACK status, and the whole checked profile after its last chunk
        (else None). OUT_OF_RANGE: a chunk out of order; CRC_ERROR, UNSUPPORTED_VERSION: the whole is bad."""
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
        status = check(blob)
        return status, (blob if status == packet.OK else None)


def check(blob):
    """The ACK status for a whole profile: OK, CRC_ERROR or UNSUPPORTED_VERSION."""
    if packet.crc16_ccitt(blob, _CRC_AT) != blob[_CRC_AT] | (blob[_CRC_AT + 1] << 8):
        return packet.CRC_ERROR
    if blob[0] != _VERSION:
        return packet.UNSUPPORTED_VERSION
    return packet.OK


def save(path, blob):
    """Keep the profile at path: write then rename, so that a reset leaves the old profile or the new one, never
    half of one. Raises OSError."""
    import os
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(blob)
    os.rename(tmp, path)


def load(path):
    """The calibration profile kept at path, or None (none uploaded, or damaged: CRC or version wrong)."""
    try:
        with open(path, "rb") as f:
            blob = f.read()
    except OSError:
        return None
    if len(blob) != packet.CAL_PROFILE_LEN or check(blob) != packet.OK:
        return None
    return blob


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
