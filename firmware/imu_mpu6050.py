# Driver: InvenSense MPU-6050 and MPU-6886 over I2C, read through the FIFO.
# Register facts from "MPU-6000/MPU-6050 Register Map and Descriptions" (RM-MPU-6000A-00) and the MPU-6886
# datasheet. Interface: firmware/README.md, "Drivers". The sampling path (read) allocates nothing after the first call.
import time
from array import array

import micropython
from micropython import const

from imu_i2c import I2cImu, ImuError, axis_map  # noqa: F401 (ImuError, axis_map: part of the interface)

MPU6050 = const(0x68)  # WHO_AM_I values
MPU6886 = const(0x19)
IMU_ID_MPU6050 = const(3)  # hipcheck.protocol.IMU_NAMES
IMU_ID_MPU6886 = const(4)

_SMPLRT_DIV = const(0x19)  # sample rate = gyro output rate / (1 + SMPLRT_DIV)
_CONFIG = const(0x1A)  # EXT_SYNC_SET[5:3], DLPF_CFG[2:0]; MPU-6886: FIFO_MODE bit 6 (0: overwrite when full)
_GYRO_CONFIG = const(0x1B)  # FS_SEL[4:3] (11 = ±2000 dps); MPU-6886: FCHOICE_B[1:0]
_ACCEL_CONFIG = const(0x1C)  # AFS_SEL[4:3] (11 = ±16 g)
_ACCEL_CONFIG2 = const(0x1D)  # MPU-6886: ACCEL_FCHOICE_B bit 3, A_DLPF_CFG[2:0]
_FIFO_EN = const(0x23)
_INT_ENABLE = const(0x38)  # FIFO_OFLOW_EN bit 4
_INT_STATUS = const(0x3A)  # FIFO_OFLOW_INT bit 4, DATA_RDY_INT bit 0; cleared by reading
_USER_CTRL = const(0x6A)  # FIFO_EN bit 6, FIFO_RESET bit 2
_PWR_MGMT_1 = const(0x6B)  # DEVICE_RESET bit 7, SLEEP bit 6, CLKSEL[2:0]
_PWR_MGMT_2 = const(0x6C)
_FIFO_COUNTH = const(0x72)  # FIFO_COUNTH, FIFO_COUNTL: bytes in the FIFO, big-endian
_FIFO_R_W = const(0x74)
_WHO_AM_I = const(0x75)
_FIFO_BYTES = const(1024)
_CHUNK_LOG2 = const(5)  # FIFO reads in bursts of up to 32 frames

# rate -> (SMPLRT_DIV, DLPF_CFG). DLPF_CFG 0 runs the gyro at 8 kHz (MPU-6050 only: 8 kHz / 20 = 400 Hz), 1…6 at
# 1 kHz; each rate's filter keeps its bandwidth below the Nyquist frequency except at 400 Hz (256 Hz bandwidth).
_RATES = {25: (39, 5), 50: (19, 4), 100: (9, 3), 200: (4, 2), 400: (19, 0)}


@micropython.viper
def _decode_be(buf: ptr8, nframes: int, flen: int, goff: int, acc: ptr16, gyr: ptr16, n0: int, amap: ptr32):
    # frames of big-endian int16: accel x, y, z at 0, gyro x, y, z at goff; ±16 g and ±2000 dps are the wire
    # scales already (2048 LSB/g; 16.4 LSB/dps is 2000/32768 dps per LSB within 0.1 %)
    i = 3 * n0
    for f in range(nframes):
        o = f * flen
        for sensor in range(2):
            x = (buf[o] << 8) | buf[o + 1]
            y = (buf[o + 2] << 8) | buf[o + 3]
            z = (buf[o + 4] << 8) | buf[o + 5]
            if x & 0x8000:
                x -= 0x10000
            if y & 0x8000:
                y -= 0x10000
            if z & 0x8000:
                z -= 0x10000
            if x < -32767:
                x = -32767
            if y < -32767:
                y = -32767
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
                acc[i] = v0
                acc[i + 1] = v1
                acc[i + 2] = v2
                o += goff
            else:
                gyr[i] = v0
                gyr[i + 1] = v1
                gyr[i + 2] = v2
        i += 3


class Imu(I2cImu):
    """MPU-6050 or MPU-6886: Imu(i2c, address=None) finds the chip (0x68, then 0x69) by WHO_AM_I.

    After configure(rate_hz), read(acc, gyr) drains the FIFO into array('h') buffers of 3*N values in the wire
    scales and returns the number of samples. On a FIFO overflow (INT_STATUS FIFO_OFLOW_INT) the byte stream has
    lost its frame alignment, so the FIFO is reset and its content dropped: `overflows` counts these, `lost` is the
    number of samples lost before the next sample delivered (estimated from the sample period and the time since
    the previous read), `lost_total` their sum.
    """

    def __init__(self, i2c, address=None, axes=None, ticks_us=None):
        self._find(i2c, address, (0x68, 0x69), _WHO_AM_I, {MPU6050: "an MPU-6050", MPU6886: "an MPU-6886"}, "AD0")
        self._b2 = bytearray(2)
        self.is6886 = self.whoami == MPU6886
        self.name = "MPU-6886" if self.is6886 else "MPU-6050"
        self.imu_id = IMU_ID_MPU6886 if self.is6886 else IMU_ID_MPU6050
        # FIFO frame: accel (6 bytes), [MPU-6886: temperature (2), written with the gyro], gyro (6)
        self._flen = 14 if self.is6886 else 12
        self._goff = 8 if self.is6886 else 6
        self._ticks = ticks_us if ticks_us is not None else time.ticks_us
        self._map = axis_map(axes)
        self._buf = bytearray(self._flen << _CHUNK_LOG2)
        mv = memoryview(self._buf)
        self._mvs = [mv[: self._flen << j] for j in range(_CHUNK_LOG2 + 1)]
        self.rate_hz = 0
        self.period_us = 0
        self.overflows = 0
        self.lost = 0
        self.lost_total = 0
        self._backlog = 0
        self._t_prev = 0

    def configure(self, rate_hz, acc_fs_g=16, gyr_fs_dps=2000, watermark=0):
        """Reset the chip and start sampling into the FIFO at rate_hz (25, 50, 100, 200; 400 on the MPU-6050 only).
        watermark: accepted for the common interface; these chips have no FIFO watermark interrupt in use here."""
        cfg = _RATES.get(rate_hz)
        if cfg is None:
            raise ValueError("rate_hz must be one of 25, 50, 100, 200, 400, not %r" % (rate_hz,))
        if self.is6886 and cfg[1] == 0:
            raise ValueError("the MPU-6886 divides its 1 kHz gyro rate (SMPLRT_DIV works only for DLPF_CFG 1..6): "
                             "400 Hz is not reachable, use 200 Hz or an LSM6DSOX")
        if acc_fs_g != 16 or gyr_fs_dps != 2000:
            raise ValueError("the wire format carries ±16 g and ±2000 dps: acc_fs_g=16, gyr_fs_dps=2000 only")
        self._w(_PWR_MGMT_1, 0x80)  # DEVICE_RESET
        time.sleep_ms(100)  # the register map asks for 100 ms after a reset
        for _ in range(100):
            if not self._r(_PWR_MGMT_1) & 0x80:
                break
            time.sleep_ms(1)
        else:
            raise ImuError("%s at 0x%02x did not finish its reset" % (self.name, self.address))
        self._w(_PWR_MGMT_1, 0x01)  # wake up, clock from the X gyro PLL (MPU-6886: auto-select)
        self._w(_PWR_MGMT_2, 0x00)  # all axes on
        div, dlpf = cfg
        self._w(_SMPLRT_DIV, div)
        self._w(_CONFIG, dlpf)  # MPU-6886: FIFO_MODE 0, overwrite the oldest data when full, as the MPU-6050
        self._w(_GYRO_CONFIG, 0x18)  # FS_SEL 3: ±2000 dps; FCHOICE_B 00
        self._w(_ACCEL_CONFIG, 0x18)  # AFS_SEL 3: ±16 g
        if self.is6886:
            self._w(_ACCEL_CONFIG2, dlpf)  # A_DLPF_CFG as the gyro filter, ACCEL_FCHOICE_B 0
        self._w(_INT_ENABLE, 0x10)  # FIFO_OFLOW_EN
        self._w(_FIFO_EN, 0x18 if self.is6886 else 0x78)  # accel + gyro (x, y, z)
        self._w(_USER_CTRL, 0x04)  # FIFO_RESET (the MPU-6050 resets the FIFO only while FIFO_EN is 0)
        self._w(_USER_CTRL, 0x40)  # FIFO_EN
        self._r(_INT_STATUS)  # clear a stale flag
        self.period_us = (125 if dlpf == 0 else 1000) * (1 + div)
        self.rate_hz = rate_hz
        self._backlog = 0
        self.lost = 0
        self._t_prev = self._ticks()

    def read(self, acc, gyr):
        cap = len(acc) // 3
        if len(gyr) // 3 < cap:
            cap = len(gyr) // 3
        i2c = self._i2c
        addr = self.address
        b = self._b2
        i2c.readfrom_mem_into(addr, _INT_STATUS, self._b1)
        oflow = self._b1[0] & 0x10
        i2c.readfrom_mem_into(addr, _FIFO_COUNTH, b)
        t = self._ticks()
        count = (b[0] << 8) | b[1]
        flen = self._flen
        if oflow or count >= _FIFO_BYTES:  # a full FIFO holds a partial frame: 1024 is no multiple of 12 or 14
            self.overflows += 1
            p = self.period_us
            lost = self._backlog + (time.ticks_diff(t, self._t_prev) + (p >> 1)) // p
            self.lost = lost if lost > 0 else 1
            self.lost_total += self.lost
            self._w(_USER_CTRL, 0x04)  # FIFO_RESET with FIFO_EN 0, then sample on
            self._w(_USER_CTRL, 0x40)
            self._backlog = 0
            self._t_prev = t
            return 0
        self.lost = 0
        avail = count // flen
        n = avail if avail < cap else cap
        left = n
        done = 0
        j = _CHUNK_LOG2
        mvs = self._mvs
        while left:
            while (1 << j) > left:
                j -= 1
            i2c.readfrom_mem_into(addr, _FIFO_R_W, mvs[j])  # burst reads of FIFO_R_W pop consecutive bytes
            _decode_be(self._buf, 1 << j, flen, self._goff, acc, gyr, done, self._map)
            done += 1 << j
            left -= 1 << j
        self._backlog = avail - n
        self._t_prev = t
        return n
