# Driver: ST LSM6DSOX (tagged FIFO) and LSM6DS3TR-C (untagged FIFO with a data pattern) over I2C.
# Register facts from the datasheets DS12814 (LSM6DSOX) and DS12865 (LSM6DS3TR-C) and application notes AN5272 /
# AN5130. Interface: firmware/README.md, "Drivers". The sampling path (read) allocates nothing after the first call.
import time
from array import array

import micropython
from micropython import const

from imu_i2c import I2cImu, ImuError, axis_map  # noqa: F401 (ImuError, axis_map: part of the interface)

LSM6DSOX = const(0x6C)  # WHO_AM_I values (the LSM6DSO answers 0x6C too; LSM6DSL/DSM answer 0x6A)
LSM6DS3TRC = const(0x6A)
IMU_ID_LSM6DSOX = const(1)  # hipcheck.protocol.IMU_NAMES
IMU_ID_LSM6DS3TRC = const(2)

_WHO_AM_I = const(0x0F)
_CTRL1_XL = const(0x10)  # ODR_XL[7:4], FS_XL[3:2] (01 = ±16 g)
_CTRL2_G = const(0x11)  # ODR_G[7:4], FS_G[3:2] (11 = ±2000 dps)
_CTRL3_C = const(0x12)  # BOOT 7, BDU 6, IF_INC 2, SW_RESET 0
_CTRL9_XL = const(0x18)
_FIFO_STATUS1 = const(0x3A)
# LSM6DSOX
_X_FIFO_CTRL1 = const(0x07)  # WTM[7:0]; FIFO_CTRL2 bit 0 = WTM8 (in words)
_X_FIFO_CTRL3 = const(0x09)  # BDR_GY[7:4], BDR_XL[3:0]
_X_FIFO_CTRL4 = const(0x0A)  # FIFO_MODE[2:0]: 000 bypass, 110 continuous
_X_INTERNAL_FREQ_FINE = const(0x63)
_X_FIFO_DATA_OUT_TAG = const(0x78)  # TAG_SENSOR[7:3], TAG_CNT[2:1], TAG_PARITY[0]; then X_L … Z_H
# LSM6DS3TR-C
_D_FIFO_CTRL1 = const(0x06)  # FTH[7:0]; FIFO_CTRL2 bits 2:0 = FTH[10:8] (in 16-bit words)
_D_FIFO_CTRL3 = const(0x08)  # DEC_FIFO_GYRO[5:3], DEC_FIFO_XL[2:0]: 001 = in the FIFO, no decimation
_D_FIFO_CTRL4 = const(0x09)
_D_FIFO_CTRL5 = const(0x0A)  # ODR_FIFO[6:3], FIFO_MODE[2:0]
_D_FIFO_DATA_OUT_L = const(0x3E)

_FS_XL_16G = const(0x04)
_FS_G_2000 = const(0x0C)
_MODE_CONTINUOUS = const(0x06)
_CHUNK_LOG2 = const(5)  # FIFO reads in bursts of up to 32 samples
_ODR_CODE = {25: 2, 50: 3, 100: 4, 200: 5, 400: 6}  # 26, 52, 104, 208, 416 Hz: 6.667 kHz / 2^(10 - code)

# LSM6 gyro at ±2000 dps: 70 mdps/LSB; wire: 2000/32768 dps/LSB -> x 3584/3125 = 1.14688 ~ 37581 / 2^15
_G_MUL = const(37581)


@micropython.viper
def _decode_tagged(buf: ptr8, nwords: int, acc: ptr16, gyr: ptr16, st: ptr32, amap: ptr32, cap: int):
    # st: [0] samples written, [1] pending sensor tag (0 none, 1 gyro, 2 acc), [2] pending TAG_CNT,
    #     [3] orphan words (a sensor word whose partner of the same time slot is missing, after an overrun)
    n = st[0]
    o = 0
    for _ in range(nwords):
        b0 = buf[o]
        tag = b0 >> 3
        cnt = (b0 >> 1) & 3
        if tag == 1 or tag == 2:
            x = buf[o + 1] | (buf[o + 2] << 8)
            y = buf[o + 3] | (buf[o + 4] << 8)
            z = buf[o + 5] | (buf[o + 6] << 8)
            if x & 0x8000:
                x -= 0x10000
            if y & 0x8000:
                y -= 0x10000
            if z & 0x8000:
                z -= 0x10000
            if tag == 1:
                x = (x * _G_MUL + 16384) >> 15
                y = (y * _G_MUL + 16384) >> 15
                z = (z * _G_MUL + 16384) >> 15
            if x > 32767:
                x = 32767
            if x < -32767:
                x = -32767
            if y > 32767:
                y = 32767
            if y < -32767:
                y = -32767
            if z > 32767:
                z = 32767
            if z < -32767:
                z = -32767
            s = amap[0]
            v0 = x if s == 0 else (y if s == 1 else z)
            if amap[1]:
                v0 = 0 - v0
            s = amap[2]
            v1 = x if s == 0 else (y if s == 1 else z)
            if amap[3]:
                v1 = 0 - v1
            s = amap[4]
            v2 = x if s == 0 else (y if s == 1 else z)
            if amap[5]:
                v2 = 0 - v2
            if n < cap:
                i = 3 * n
                if tag == 1:
                    gyr[i] = v0
                    gyr[i + 1] = v1
                    gyr[i + 2] = v2
                else:
                    acc[i] = v0
                    acc[i + 1] = v1
                    acc[i + 2] = v2
                p = st[1]
                if p != 0 and p != tag and st[2] == cnt:
                    n += 1
                    st[1] = 0
                else:
                    if p != 0:
                        st[3] += 1
                    st[1] = tag
                    st[2] = cnt
        o += 7
    st[0] = n


@micropython.viper
def _decode_pattern(buf: ptr8, nsamples: int, acc: ptr16, gyr: ptr16, n0: int, amap: ptr32):
    # LSM6DS3TR-C pattern with both sensors at the same rate: Gx Gy Gz XLx XLy XLz, 16-bit little-endian words
    o = 0
    i = 3 * n0
    for _ in range(nsamples):
        for sensor in range(2):
            x = buf[o] | (buf[o + 1] << 8)
            y = buf[o + 2] | (buf[o + 3] << 8)
            z = buf[o + 4] | (buf[o + 5] << 8)
            if x & 0x8000:
                x -= 0x10000
            if y & 0x8000:
                y -= 0x10000
            if z & 0x8000:
                z -= 0x10000
            if sensor == 0:
                x = (x * _G_MUL + 16384) >> 15
                y = (y * _G_MUL + 16384) >> 15
                z = (z * _G_MUL + 16384) >> 15
            if x > 32767:
                x = 32767
            if x < -32767:
                x = -32767
            if y > 32767:
                y = 32767
            if y < -32767:
                y = -32767
            if z > 32767:
                z = 32767
            if z < -32767:
                z = -32767
            s = amap[0]
            v0 = x if s == 0 else (y if s == 1 else z)
            if amap[1]:
                v0 = 0 - v0
            s = amap[2]
            v1 = x if s == 0 else (y if s == 1 else z)
            if amap[3]:
                v1 = 0 - v1
            s = amap[4]
            v2 = x if s == 0 else (y if s == 1 else z)
            if amap[5]:
                v2 = 0 - v2
            if sensor == 0:
                gyr[i] = v0
                gyr[i + 1] = v1
                gyr[i + 2] = v2
            else:
                acc[i] = v0
                acc[i + 1] = v1
                acc[i + 2] = v2
            o += 6
        i += 3


class Imu(I2cImu):
    """LSM6DSOX or LSM6DS3TR-C: Imu(i2c, address=None) finds the chip (0x6A, then 0x6B) by WHO_AM_I.

    After configure(rate_hz), read(acc, gyr) drains the FIFO into array('h') buffers of 3*N values in the wire
    scales (acc 1/2048 g, gyr 2000/32768 dps per LSB) and returns the number of samples. A FIFO overrun is a gap:
    `overflows` counts them, `lost` is the number of samples lost just before this read's first sample (estimated
    from the sample period and the time since the previous read), `lost_total` their sum.
    """

    def __init__(self, i2c, address=None, axes=None, ticks_us=None):
        self._find(i2c, address, (0x6A, 0x6B), _WHO_AM_I, {LSM6DSOX: "an LSM6DSOX", LSM6DS3TRC: "an LSM6DS3TR-C"},
                   "SA0")
        self._stat = bytearray(4)
        self._stat2 = memoryview(self._stat)[:2]
        self.tagged = self.whoami == LSM6DSOX
        self.name = "LSM6DSOX" if self.tagged else "LSM6DS3TR-C"
        self.imu_id = IMU_ID_LSM6DSOX if self.tagged else IMU_ID_LSM6DS3TRC
        self._ticks = ticks_us if ticks_us is not None else time.ticks_us
        self._map = axis_map(axes)
        wl = 7 if self.tagged else 12  # bytes per FIFO read unit: a tagged word, or a pattern of 6 words
        self._unit = wl
        self._buf = bytearray(wl << _CHUNK_LOG2)
        mv = memoryview(self._buf)
        self._mvs = [mv[: wl << j] for j in range(_CHUNK_LOG2 + 1)]
        self._word = mv[:2]
        self._st = array("i", (0, 0, 0, 0))
        self._pend = array("h", (0, 0, 0))
        self.rate_hz = 0
        self.period_us = 0
        self.overflows = 0
        self.lost = 0
        self.lost_total = 0
        self.orphans = 0  # LSM6DSOX: sensor words dropped because their partner was overwritten
        self._backlog = 0
        self._t_prev = 0

    def configure(self, rate_hz, acc_fs_g=16, gyr_fs_dps=2000, watermark=0):
        """Reset the chip and start sampling into the FIFO (continuous mode) at rate_hz (25, 50, 100, 200, 400:
        the chip runs at 26, 52, 104, 208, 416 Hz; `period_us` is its true period). watermark: FIFO threshold in
        samples (0: none), for an interrupt pin."""
        code = _ODR_CODE.get(rate_hz)
        if code is None:
            raise ValueError("rate_hz must be one of 25, 50, 100, 200, 400, not %r" % (rate_hz,))
        if acc_fs_g != 16 or gyr_fs_dps != 2000:
            raise ValueError("the wire format carries ±16 g and ±2000 dps: acc_fs_g=16, gyr_fs_dps=2000 only")
        self._w(_CTRL3_C, 0x01)  # SW_RESET
        for _ in range(100):
            if not self._r(_CTRL3_C) & 0x01:
                break
            time.sleep_us(100)
        else:
            raise ImuError("%s at 0x%02x did not finish its software reset" % (self.name, self.address))
        self._w(_CTRL3_C, 0x44)  # BDU, IF_INC
        if self.tagged:
            self._w(_CTRL9_XL, 0xE2)  # I3C_disable: I2C only
            self._w(_X_FIFO_CTRL4, 0x00)  # bypass: empty the FIFO
            wtm = 2 * watermark  # one accelerometer and one gyro word per sample
            if not 0 <= wtm <= 511:
                raise ValueError("watermark must be 0..255 samples on the LSM6DSOX")
            self._w(_X_FIFO_CTRL1, wtm & 0xFF)
            self._w(_X_FIFO_CTRL1 + 1, wtm >> 8)  # FIFO_CTRL2: WTM8; no compression, no ODR-change tag
            self._w(_X_FIFO_CTRL3, (code << 4) | code)  # BDR_GY, BDR_XL = ODR
            self._w(_CTRL1_XL, (code << 4) | _FS_XL_16G)
            self._w(_CTRL2_G, (code << 4) | _FS_G_2000)
            self._w(_X_FIFO_CTRL4, _MODE_CONTINUOUS)  # no temperature or timestamp batching
            fine = self._r(_X_INTERNAL_FREQ_FINE)
            if fine > 127:
                fine -= 256
        else:
            self._w(_D_FIFO_CTRL5, 0x00)  # bypass: empty the FIFO
            fth = 6 * watermark  # six 16-bit words per sample
            if not 0 <= fth <= 2047:
                raise ValueError("watermark must be 0..341 samples on the LSM6DS3TR-C")
            self._w(_D_FIFO_CTRL1, fth & 0xFF)
            self._w(_D_FIFO_CTRL1 + 1, fth >> 8)
            self._w(_D_FIFO_CTRL3, 0x09)  # gyro and accelerometer in the FIFO, no decimation
            self._w(_D_FIFO_CTRL4, 0x00)
            self._w(_CTRL1_XL, (code << 4) | _FS_XL_16G)
            self._w(_CTRL2_G, (code << 4) | _FS_G_2000)
            self._w(_D_FIFO_CTRL5, (code << 3) | _MODE_CONTINUOUS)  # ODR_FIFO = ODR
            fine = 0
        # 6.667 kHz base clock / 2^(10 - code), trimmed by INTERNAL_FREQ_FINE (0.15 % per LSB, LSM6DSOX only)
        self.period_us = (150 << (10 - code)) * 100000 // (100000 + 150 * fine)
        self.rate_hz = rate_hz
        st = self._st
        st[0] = st[1] = st[2] = st[3] = 0
        self._backlog = 0
        self.lost = 0
        self._t_prev = self._ticks()

    def _expected_lost(self, t, available):
        # samples the chip made since the previous read (sample period of its clock) that are no longer there
        p = self.period_us
        made = self._backlog + (time.ticks_diff(t, self._t_prev) + (p >> 1)) // p
        lost = made - available
        return lost if lost > 0 else 1

    def read(self, acc, gyr):
        cap = len(acc) // 3
        if len(gyr) // 3 < cap:
            cap = len(gyr) // 3
        if self.tagged:
            return self._read_tagged(acc, gyr, cap)
        return self._read_pattern(acc, gyr, cap)

    def _read_tagged(self, acc, gyr, cap):
        i2c = self._i2c
        addr = self.address
        stat = self._stat
        st = self._st
        i2c.readfrom_mem_into(addr, _FIFO_STATUS1, self._stat2)  # FIFO_STATUS1, FIFO_STATUS2
        t = self._ticks()
        diff = stat[0] | (stat[1] & 0x03) << 8  # DIFF_FIFO: unread words
        pend = st[1]
        if stat[1] & 0x48:  # FIFO_OVR_IA or FIFO_OVR_LATCHED: words were overwritten
            self.overflows += 1
            st[1] = 0  # a half sample from before the gap cannot be paired any more
            pend = 0
            self.lost = self._expected_lost(t, diff >> 1)
            self.lost_total += self.lost
        else:
            self.lost = 0
        st[0] = 0
        if pend:  # the half sample held over from the previous read goes first
            p = self._pend
            dst = gyr if pend == 1 else acc
            dst[0] = p[0]
            dst[1] = p[1]
            dst[2] = p[2]
        room = 2 * cap - (1 if pend else 0)  # so that every word read finds a free sample slot
        nwords = diff if diff < room else room
        left = nwords
        j = _CHUNK_LOG2
        mvs = self._mvs
        while left:
            while (1 << j) > left:
                j -= 1
            i2c.readfrom_mem_into(addr, _X_FIFO_DATA_OUT_TAG, mvs[j])  # burst reads roll back over TAG…Z_H
            _decode_tagged(self._buf, 1 << j, acc, gyr, st, self._map, cap)
            left -= 1 << j
        n = st[0]
        pend = st[1]
        if pend:
            src = gyr if pend == 1 else acc
            i = 3 * n
            p = self._pend
            p[0] = src[i]
            p[1] = src[i + 1]
            p[2] = src[i + 2]
        self.orphans += st[3]
        st[3] = 0
        self._backlog = (diff - nwords) >> 1
        self._t_prev = t
        return n

    def _read_pattern(self, acc, gyr, cap):
        i2c = self._i2c
        addr = self.address
        stat = self._stat
        i2c.readfrom_mem_into(addr, _FIFO_STATUS1, stat)  # FIFO_STATUS1…4: DIFF_FIFO, flags, FIFO_PATTERN
        t = self._ticks()
        diff = stat[0] | (stat[1] & 0x07) << 8
        pattern = stat[2] | (stat[3] & 0x03) << 8  # the pattern position of the next word
        skip = (6 - pattern) % 6  # after an overrun the oldest sample can be incomplete: drop to the next Gx
        if skip > diff:
            skip = diff
        for _ in range(skip):
            i2c.readfrom_mem_into(addr, _D_FIFO_DATA_OUT_L, self._word)
        avail = (diff - skip) // 6
        if stat[1] & 0x40:  # OVER_RUN
            self.overflows += 1
            self.lost = self._expected_lost(t, avail)
            self.lost_total += self.lost
        else:
            self.lost = 0
        n = avail if avail < cap else cap
        left = n
        done = 0
        j = _CHUNK_LOG2
        mvs = self._mvs
        while left:
            while (1 << j) > left:
                j -= 1
            i2c.readfrom_mem_into(addr, _D_FIFO_DATA_OUT_L, mvs[j])  # burst reads roll back over OUT_L/OUT_H
            _decode_pattern(self._buf, 1 << j, acc, gyr, done, self._map)
            done += 1 << j
            left -= 1 << j
        self._backlog = avail - n
        self._t_prev = t
        return n
