# Register-level emulator of the ST LSM6DSOX (tagged FIFO) and LSM6DS3TR-C (untagged pattern FIFO), fed by a motion
# trace on the sim clock. Register names and bits follow the datasheets (DS12814 LSM6DSOX, DS12865 LSM6DS3TR-C).
# Modelled: WHO_AM_I, CTRL1_XL / CTRL2_G ODR and FS, CTRL3_C (SW_RESET, IF_INC), the FIFO (depth, modes bypass /
# FIFO / continuous, watermark, overrun, status registers, burst reads that roll back over the data-out registers),
# TIMESTAMP and INTERNAL_FREQ_FINE (LSM6DSOX). Not modelled: filters, interrupts pins, embedded functions, decimation.
from micropython import const

from emu_common import copy_bytes, put_le, ring_out, trace_and_clock

LSM6DSOX = const(0x6C)
LSM6DS3TRC = const(0x6A)
GYR_LSB_UDPS = const(70000)  # 70 mdps/LSB at ±2000 dps on both chips

_WHO_AM_I = const(0x0F)
_CTRL1_XL = const(0x10)
_CTRL2_G = const(0x11)
_CTRL3_C = const(0x12)
_CTRL9_XL = const(0x18)
_CTRL10_C = const(0x19)
_FIFO_STATUS1 = const(0x3A)
_TIMESTAMP0 = const(0x40)
# LSM6DSOX
_X_FIFO_CTRL1 = const(0x07)
_X_FIFO_CTRL4 = const(0x0A)
_X_INTERNAL_FREQ_FINE = const(0x63)
_X_TAG = const(0x78)
_X_OUT_END = const(0x7E)
_X_DEPTH_WORDS = const(512)  # 3 kbyte of 6-byte data words (plus the tag byte each)
_TAG_GYRO = const(0x01)
_TAG_ACC = const(0x02)
# LSM6DS3TR-C
_D_FIFO_CTRL1 = const(0x06)
_D_FIFO_CTRL3 = const(0x08)
_D_FIFO_CTRL5 = const(0x0A)
_D_OUT_L = const(0x3E)
_D_OUT_H = const(0x3F)
_D_DEPTH_WORDS = const(2046)  # 4 kbyte: 682 data sets of three 16-bit words (DIFF_FIFO is 11 bits)

_RESERVED = const(0xFF)


def period_ns(code, fine=0):
    """Sample period of ODR code 1…10 (12.5 Hz … 6.66 kHz): the 6.667 kHz base clock divided by 2^(10-code),
    corrected by INTERNAL_FREQ_FINE (0.15 % per LSB) as in ST's application notes."""
    return (150000 << (10 - code)) * 100000 // (100000 + 150 * fine)


class Lsm6dsEmu:
    def __init__(self, trace=None, chip=LSM6DSOX, address=0x6A, clock=None, whoami=None, freq_fine=0):
        trace, clock = trace_and_clock(trace, clock, GYR_LSB_UDPS, "LSM6 (70 mdps/LSB)")
        self.trace = trace
        self.chip = chip
        self.address = address
        self.clock = clock
        self.tagged = chip == LSM6DSOX
        self._whoami = chip if whoami is None else whoami
        self._fine = freq_fine
        self.regs = bytearray(128)
        self.depth = _X_DEPTH_WORDS if self.tagged else _D_DEPTH_WORDS
        self.word_len = 7 if self.tagged else 2
        self._ring = bytearray(self.depth * self.word_len)
        self._latch = bytearray(7)
        self._word = bytearray(7)
        self.writes = []  # (reg, value) of every register write, for tests of the configuration sequence
        self.samples_produced = 0
        self.words_overwritten = 0
        self._reset()

    # ---- registers -------------------------------------------------------------------------------------------
    def _reset(self):
        r = self.regs
        for i in range(128):
            r[i] = 0
        r[_WHO_AM_I] = self._whoami
        r[_CTRL3_C] = 0x04  # IF_INC
        r[_CTRL9_XL] = 0xE0
        if self.tagged:
            r[_X_INTERNAL_FREQ_FINE] = self._fine & 0xFF
        self._head = 0
        self.level = 0
        self._pat = 0  # LSM6DS3TR-C: pattern position of the word at the head
        self._ovr_ia = False
        self._ovr_latched = False
        self._cnt = 0
        self._t_now = self.clock.ticks_us() * 1000
        self._reschedule()

    def _odr_codes(self):
        # effective batching rate code per sensor (0: not in the FIFO); the FIFO never batches faster than the ODR
        r = self.regs
        xl = r[_CTRL1_XL] >> 4
        g = r[_CTRL2_G] >> 4
        if xl > 10:
            xl = 0  # 1.6 Hz low-power code: not modelled
        if g > 10:
            g = 0
        if self.tagged:
            bxl = r[0x09] & 0x0F
            bg = r[0x09] >> 4
            xl = min(xl, bxl) if bxl <= 10 else 0
            g = min(g, bg) if bg <= 10 else 0
        else:
            dec = r[_D_FIFO_CTRL3]
            fodr = (r[_D_FIFO_CTRL5] >> 3) & 0x0F
            dxl = dec & 0x07
            dg = (dec >> 3) & 0x07
            if dxl > 1 or dg > 1:
                raise NotImplementedError("LSM6DS3TR-C emulator: FIFO decimation other than 1 is not modelled")
            xl = min(xl, fodr) if dxl else 0
            g = min(g, fodr) if dg else 0
            if xl and g and xl != g:
                raise NotImplementedError("LSM6DS3TR-C emulator: different accelerometer and gyro FIFO rates")
        return xl, g

    def _reschedule(self):
        xl, g = self._odr_codes()
        self._t0 = self._t_now
        self._p_xl = period_ns(xl, self._fine) if xl else 0
        self._p_g = period_ns(g, self._fine) if g else 0
        self._next_xl = self._t0 + self._p_xl
        self._next_g = self._t0 + self._p_g
        self._plen = (3 if xl else 0) + (3 if g else 0)

    def _mode(self):
        if self.tagged:
            return self.regs[_X_FIFO_CTRL4] & 0x07
        return self.regs[_D_FIFO_CTRL5] & 0x07

    def _wtm(self):
        r = self.regs
        if self.tagged:
            return r[_X_FIFO_CTRL1] | (r[_X_FIFO_CTRL1 + 1] & 0x01) << 8
        return r[_D_FIFO_CTRL1] | (r[_D_FIFO_CTRL1 + 1] & 0x07) << 8

    # ---- sample production -------------------------------------------------------------------------------------
    def _catch_up(self):
        now = self.clock.ticks_us() * 1000
        self._t_now = now
        p_xl = self._p_xl
        p_g = self._p_g
        if not (p_xl or p_g):
            return
        mode = self._mode()
        raw = self.trace.raw
        while True:
            t_xl = self._next_xl if p_xl else now + 1
            t_g = self._next_g if p_g else now + 1
            t = t_xl if t_xl < t_g else t_g
            if t > now:
                return
            row = 6 * self.trace.index(t)
            self.samples_produced += 1
            self._cnt = (self._cnt + 1) & 3
            # gyro first: data set 1 of the LSM6DS3TR-C pattern; the LSM6DSOX tags make the order irrelevant
            if t_g == t:
                self._push(_TAG_GYRO, raw, row + 3, mode)
                self._next_g += p_g
            if t_xl == t:
                self._push(_TAG_ACC, raw, row, mode)
                self._next_xl += p_xl

    def _push(self, tag, raw, i, mode):
        if mode == 0:
            return  # bypass: the FIFO stays empty
        w = self._word
        if self.tagged:
            tb = (tag << 3) | (self._cnt << 1)
            ones = 0
            v = tb
            while v:
                ones += v & 1
                v >>= 1
            w[0] = tb | (ones & 1)  # TAG_PARITY: even parity over the tag byte
            put_le(w, 1, raw, i, 0)
            self._push_word(w, 0, mode)
        else:
            put_le(w, 0, raw, i, 0)
            for k in range(3):
                self._push_word(w, 2 * k, mode)

    def _push_word(self, src, off, mode):
        wl = self.word_len
        if self.level == self.depth:
            if mode == 1:  # FIFO mode: stops collecting when full
                self._ovr_ia = True
                self._ovr_latched = True
                return
            if mode != 6:
                raise NotImplementedError("LSM6DS emulator: FIFO mode %d is not modelled" % mode)
            # continuous: the oldest word is overwritten
            self._head = (self._head + 1) % self.depth
            self.level -= 1
            self.words_overwritten += 1
            self._ovr_ia = True
            self._ovr_latched = True
            if not self.tagged:
                self._pat = (self._pat + 1) % self._plen
        tail = (self._head + self.level) % self.depth
        copy_bytes(self._ring, tail * wl, src, off, wl)
        self.level += 1

    def _pop_into(self, dst, di, nwords):
        # pops up to nwords into dst[di:]; words past the FIFO's end read as zeros (tag 0: empty)
        wl = self.word_len
        take = nwords if nwords <= self.level else self.level
        if take:
            self._head = ring_out(dst, di, self._ring, self._head * wl, self.depth * wl, take * wl) // wl
            self.level -= take
            self._ovr_ia = False
            if not self.tagged:
                self._pat = (self._pat + take) % self._plen
        for k in range(di + take * wl, di + nwords * wl):
            dst[k] = 0

    # ---- I2C ---------------------------------------------------------------------------------------------------
    def _status(self, reg):
        lvl = self.level
        wtm = self._wtm()
        if self.tagged:
            if reg == _FIFO_STATUS1:
                return lvl & 0xFF
            v = (lvl >> 8) & 0x03
            if wtm and lvl >= wtm:
                v |= 0x80  # FIFO_WTM_IA
            if self._ovr_ia:
                v |= 0x40  # FIFO_OVR_IA
            if lvl + 2 > self.depth:
                v |= 0x20  # FIFO_FULL_IA: full at the next ODR
            if self._ovr_latched:
                v |= 0x08  # FIFO_OVR_LATCHED, cleared by this read
                self._ovr_latched = False
            return v
        diff = lvl
        if reg == _FIFO_STATUS1:
            return diff & 0xFF
        if reg == _FIFO_STATUS1 + 1:
            v = (diff >> 8) & 0x07
            if wtm and lvl >= wtm:
                v |= 0x80  # WaterM
            if self._ovr_ia:
                v |= 0x40  # OVER_RUN
            if lvl + self._plen > self.depth:
                v |= 0x20  # FIFO_FULL_SMART
            if lvl == 0:
                v |= 0x10  # FIFO_EMPTY
            return v
        if reg == _FIFO_STATUS1 + 2:
            return self._pat & 0xFF  # FIFO_PATTERN[7:0]: the next word to be read
        return (self._pat >> 8) & 0x03

    def _read_byte(self, reg):
        if reg == _FIFO_STATUS1 or reg == _FIFO_STATUS1 + 1 or (not self.tagged and reg <= 0x3D and reg > 0x3B):
            return self._status(reg)
        if self.tagged:
            if reg == _X_TAG:
                self._pop_into(self._latch, 0, 1)
                return self._latch[0]
            if _X_TAG < reg <= _X_OUT_END:
                return self._latch[reg - _X_TAG]
        else:
            if reg == _D_OUT_L:
                self._pop_into(self._latch, 0, 1)
                return self._latch[0]
            if reg == _D_OUT_H:
                return self._latch[1]
        if _TIMESTAMP0 <= reg <= _TIMESTAMP0 + 3 and self.regs[_CTRL10_C] & 0x20:
            ts = self._t_now // 25000  # 25 µs per LSB
            return (ts >> (8 * (reg - _TIMESTAMP0))) & 0xFF
        return self.regs[reg & 0x7F]

    def _next_reg(self, reg):
        if not self.regs[_CTRL3_C] & 0x04:
            return reg  # IF_INC off: the address stays
        if self.tagged and reg == _X_OUT_END:
            return _X_TAG  # burst reads roll back over FIFO_DATA_OUT_TAG…Z_H
        if not self.tagged and reg == _D_OUT_H:
            return _D_OUT_L
        return (reg + 1) & 0x7F

    def read_into(self, reg, buf):
        self._catch_up()
        n = len(buf)
        wl = self.word_len
        out = _X_TAG if self.tagged else _D_OUT_L
        if reg == out and n % wl == 0 and self.regs[_CTRL3_C] & 0x04:
            self._pop_into(buf, 0, n // wl)  # fast path: whole words
            return
        for i in range(n):
            buf[i] = self._read_byte(reg)
            reg = self._next_reg(reg)

    def write(self, reg, buf):
        self._catch_up()
        for i in range(len(buf)):
            self._write_byte(reg, buf[i])
            reg = self._next_reg(reg)

    def _write_byte(self, reg, v):
        self.writes.append((reg, v))
        if reg == _WHO_AM_I or _FIFO_STATUS1 <= reg <= 0x3F or reg >= 0x78 or reg == _X_INTERNAL_FREQ_FINE:
            return  # read-only
        if reg == _CTRL3_C and v & 0x01:
            self._reset()  # SW_RESET: registers to their defaults, FIFO emptied; the bit clears itself
            return
        self.regs[reg] = v & 0x7F if reg == _CTRL3_C and v & 0x80 else v  # BOOT clears itself
        if self._mode() == 0:  # bypass mode empties the FIFO
            self._head = 0
            self.level = 0
            self._pat = 0
            self._ovr_ia = False
        if reg in (_CTRL1_XL, _CTRL2_G) or (self.tagged and reg == 0x09) or (
                not self.tagged and reg in (_D_FIFO_CTRL3, _D_FIFO_CTRL5)):
            self._reschedule()
            if not self.tagged:
                self._pat = 0
