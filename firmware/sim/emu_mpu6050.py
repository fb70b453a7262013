# Register-level emulator of the InvenSense MPU-6050 and MPU-6886, fed by a motion trace on the sim clock.
# Register names and bits follow "MPU-6000/MPU-6050 Register Map and Descriptions" (RM-MPU-6000A-00 rev 4.2) and the
# MPU-6886 datasheet. Modelled: WHO_AM_I, PWR_MGMT_1 (DEVICE_RESET, SLEEP), SMPLRT_DIV and CONFIG (DLPF_CFG picks the
# 8 kHz or 1 kHz gyro rate; MPU-6886 FCHOICE_B and FIFO_MODE), GYRO_CONFIG / ACCEL_CONFIG full scale (kept, the
# trace is at ±16 g / ±2000 dps), FIFO_EN, USER_CTRL (FIFO_EN, FIFO_RESET), the 1024-byte FIFO with byte-wise
# overflow, INT_STATUS (FIFO_OFLOW_INT, DATA_RDY_INT; cleared on read), FIFO_COUNTH/L, FIFO_R_W burst reads, the
# MPU-6886 FIFO watermark (FIFO_WM_TH, FIFO_WM_INT_STATUS) and the data output registers. Big-endian, as the chips.
from micropython import const

from emu_common import put_le, ring_out, trace_and_clock

MPU6050 = const(0x68)
MPU6886 = const(0x19)
GYR_LSB_UDPS = const(60976)  # 16.4 LSB/(°/s) at ±2000 dps

_SMPLRT_DIV = const(0x19)
_CONFIG = const(0x1A)
_GYRO_CONFIG = const(0x1B)
_FIFO_EN = const(0x23)
_FIFO_WM_INT_STATUS = const(0x39)
_INT_STATUS = const(0x3A)
_ACCEL_XOUT_H = const(0x3B)
_FIFO_WM_TH1 = const(0x60)
_USER_CTRL = const(0x6A)
_PWR_MGMT_1 = const(0x6B)
_FIFO_COUNTH = const(0x72)
_FIFO_R_W = const(0x74)
_WHO_AM_I = const(0x75)
FIFO_BYTES = const(1024)


class MpuEmu:
    def __init__(self, trace=None, chip=MPU6050, address=0x68, clock=None, whoami=None):
        trace, clock = trace_and_clock(trace, clock, GYR_LSB_UDPS, "MPU (16.4 LSB/dps)")
        self.trace = trace
        self.chip = chip
        self.address = address
        self.clock = clock
        self._whoami = chip if whoami is None else whoami
        self.regs = bytearray(128)
        self._ring = bytearray(FIFO_BYTES)
        self._frame = bytearray(14)
        self.writes = []
        self.samples_produced = 0
        self.bytes_lost = 0
        self._reset()

    def _reset(self):
        r = self.regs
        for i in range(128):
            r[i] = 0
        r[_WHO_AM_I] = self._whoami
        r[_PWR_MGMT_1] = 0x41 if self.chip == MPU6886 else 0x40  # asleep after power-up
        self._head = 0
        self.count = 0
        self._t_now = self.clock.ticks_us() * 1000
        self._reschedule()

    def _period_ns(self):
        r = self.regs
        if r[_PWR_MGMT_1] & 0x40:
            return 0  # SLEEP
        dlpf = r[_CONFIG] & 0x07
        if self.chip == MPU6886 and r[_GYRO_CONFIG] & 0x03:
            return 31250  # FCHOICE_B != 0: 32 kHz, SMPLRT_DIV not applied
        if dlpf == 0 or dlpf == 7:
            if self.chip == MPU6886:
                return 125000  # 8 kHz; the MPU-6886 applies SMPLRT_DIV only for 0 < DLPF_CFG < 7
            return 125000 * (1 + r[_SMPLRT_DIV])
        return 1000000 * (1 + r[_SMPLRT_DIV])

    def _reschedule(self):
        self._p = self._period_ns()
        self._next = self._t_now + self._p

    def frame_len(self):
        en = self.regs[_FIFO_EN]
        n = 6 if en & 0x08 else 0
        if self.chip == MPU6886:
            return n + (8 if en & 0x10 else 0)  # GYRO_FIFO_EN writes temperature and gyro
        if en & 0x80:
            n += 2
        for bit in (0x40, 0x20, 0x10):
            if en & bit:
                n += 2
        return n

    # ---- sample production -------------------------------------------------------------------------------------
    def _catch_up(self):
        now = self.clock.ticks_us() * 1000
        self._t_now = now
        p = self._p
        if not p:
            return
        raw = self.trace.raw
        r = self.regs
        f = self._frame
        while self._next <= now:
            t = self._next
            self._next = t + p
            row = 6 * self.trace.index(t)
            self.samples_produced += 1
            # data registers ACCEL_XOUT_H…GYRO_ZOUT_L hold the latest sample
            put_le(r, _ACCEL_XOUT_H, raw, row, 1)
            temp = 0 if self.chip == MPU6886 else -3920  # 25 °C
            r[0x41] = (temp >> 8) & 0xFF
            r[0x42] = temp & 0xFF
            put_le(r, 0x43, raw, row + 3, 1)
            r[_INT_STATUS] |= 0x01  # DATA_RDY_INT
            if r[_USER_CTRL] & 0x40:
                self._push_frame(r, f)

    def _push_frame(self, r, f):
        en = r[_FIFO_EN]
        n = 0
        if en & 0x08:
            for k in range(6):
                f[n + k] = r[_ACCEL_XOUT_H + k]
            n += 6
        if self.chip == MPU6886:
            if en & 0x10:
                for k in range(8):
                    f[n + k] = r[0x41 + k]
                n += 8
        else:
            if en & 0x80:
                f[n] = r[0x41]
                f[n + 1] = r[0x42]
                n += 2
            for a in range(3):
                if en & (0x40 >> a):
                    f[n] = r[0x43 + 2 * a]
                    f[n + 1] = r[0x44 + 2 * a]
                    n += 2
        stop_when_full = self.chip == MPU6886 and r[_CONFIG] & 0x40
        for k in range(n):
            if self.count == FIFO_BYTES:
                r[_INT_STATUS] |= 0x10  # FIFO_OFLOW_INT
                self.bytes_lost += 1
                if stop_when_full:
                    continue
                self._head = (self._head + 1) % FIFO_BYTES  # the oldest byte is lost
                self.count -= 1
            self._ring[(self._head + self.count) % FIFO_BYTES] = f[k]
            self.count += 1

    # ---- I2C ---------------------------------------------------------------------------------------------------
    def _wm(self):
        return (self.regs[_FIFO_WM_TH1] & 0x03) << 8 | self.regs[_FIFO_WM_TH1 + 1]

    def _read_byte(self, reg):
        r = self.regs
        if reg == _INT_STATUS:
            v = r[_INT_STATUS]
            r[_INT_STATUS] = 0  # cleared by reading (INT_RD_CLEAR = 0)
            return v
        if reg == _FIFO_COUNTH:
            return (self.count >> 8) & 0xFF
        if reg == _FIFO_COUNTH + 1:
            return self.count & 0xFF
        if reg == _FIFO_R_W:
            if not self.count:
                return 0xFF
            v = self._ring[self._head]
            self._head = (self._head + 1) % FIFO_BYTES
            self.count -= 1
            return v
        if reg == _FIFO_WM_INT_STATUS and self.chip == MPU6886:
            wm = self._wm()
            return 0x40 if wm and self.count >= wm else 0
        return r[reg & 0x7F]

    def read_into(self, reg, buf):
        self._catch_up()
        n = len(buf)
        if reg == _FIFO_R_W and n <= self.count:
            self._head = ring_out(buf, 0, self._ring, self._head, FIFO_BYTES, n)  # FIFO_R_W burst: no increment
            self.count -= n
            return
        for i in range(n):
            buf[i] = self._read_byte(reg)
            if reg != _FIFO_R_W:
                reg = (reg + 1) & 0x7F

    def write(self, reg, buf):
        self._catch_up()
        for i in range(len(buf)):
            self._write_byte(reg, buf[i])
            if reg != _FIFO_R_W:
                reg = (reg + 1) & 0x7F

    def _write_byte(self, reg, v):
        self.writes.append((reg, v))
        r = self.regs
        if reg in (_WHO_AM_I, _INT_STATUS, _FIFO_COUNTH, _FIFO_COUNTH + 1) or _ACCEL_XOUT_H <= reg <= 0x48:
            return  # read-only
        if reg == _PWR_MGMT_1 and v & 0x80:
            self._reset()  # DEVICE_RESET: all registers to their defaults
            return
        if reg == _USER_CTRL and v & 0x04:
            # FIFO_RESET: on the MPU-6050 only while FIFO_EN (bit 6) is 0; the bit clears itself
            if self.chip == MPU6886 or not v & 0x40:
                self._head = 0
                self.count = 0
            v &= ~0x04
        if reg == _FIFO_R_W:
            return  # host writes into the FIFO are not modelled
        r[reg] = v
        if reg in (_SMPLRT_DIV, _CONFIG, _GYRO_CONFIG, _PWR_MGMT_1):
            self._reschedule()
