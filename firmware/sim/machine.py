# The unix-port board's `machine` module: I2C backed by register-level chip emulators, Pin, and a PWM that
# records every duty change (the emulated vibration motor). Same API as MicroPython's `machine` for what the
# firmware uses; the simulation controls (`clock`, `attach`, `detach`) are extra and named as such.
#
# Time: emulators produce samples on `clock`. In virtual mode (the default) time stands still until a test or the
# sim board calls `clock.advance_us(dt)` / `clock.sleep_ms(ms)`, so runs go as fast as the CPU allows; with
# `clock.real()` it follows time.ticks_us().
import errno
import time


class SimClock:
    """Microseconds since the simulation started (an int that never wraps in a test's lifetime)."""

    def __init__(self):
        self._t_us = 0
        self._real = False
        self._t0 = 0

    def virtual(self, t_us=0):
        self._real = False
        self._t_us = t_us

    def real(self):
        self._real = True
        self._t0 = time.ticks_us()

    def ticks_us(self):
        if self._real:
            return time.ticks_diff(time.ticks_us(), self._t0)
        return self._t_us

    def advance_us(self, dt_us):
        if self._real:
            raise RuntimeError("the sim clock follows real time: call clock.virtual() to advance it")
        if dt_us < 0:
            raise ValueError("time only goes forward")
        self._t_us += dt_us

    def sleep_ms(self, ms):
        if self._real:
            time.sleep_ms(ms)
        else:
            self._t_us += ms * 1000


clock = SimClock()

_buses = {}  # bus id -> {7-bit address: emulator}


def attach(device, bus=0):
    """Put an emulated chip on I2C bus `bus` at `device.address` (the emulator answers there from now on)."""
    devs = _buses.setdefault(bus, {})
    devs[device.address] = device
    return device


def detach(address=None, bus=0):
    """Remove the chip at `address` (all chips when None) from bus `bus`."""
    devs = _buses.setdefault(bus, {})
    if address is None:
        devs.clear()
    else:
        devs.pop(address, None)


class I2C:
    """machine.I2C over emulated chips. A chip implements read_into(reg, buf) and write(reg, buf); an address
    without a chip NACKs, which MicroPython reports as OSError(ENODEV)."""

    def __init__(self, id=0, *, scl=None, sda=None, freq=400000, timeout=50000):
        self._id = id
        self._freq = freq
        self._devs = _buses.setdefault(id, {})

    def _dev(self, addr):
        dev = self._devs.get(addr)
        if dev is None:
            raise OSError(errno.ENODEV)
        return dev

    def scan(self):
        return sorted(self._devs)

    def readfrom_mem_into(self, addr, memaddr, buf, *, addrsize=8):
        self._dev(addr).read_into(memaddr, buf)

    def readfrom_mem(self, addr, memaddr, nbytes, *, addrsize=8):
        buf = bytearray(nbytes)
        self._dev(addr).read_into(memaddr, buf)
        return bytes(buf)

    def writeto_mem(self, addr, memaddr, buf, *, addrsize=8):
        self._dev(addr).write(memaddr, buf)

    def writeto(self, addr, buf, stop=True):
        # A bare write sets the register pointer (first byte) and writes the rest, as on the real chips.
        dev = self._dev(addr)
        if len(buf) > 1:
            dev.write(buf[0], memoryview(buf)[1:])
        return len(buf)

    def readfrom(self, addr, nbytes, stop=True):
        self._dev(addr)
        raise OSError(errno.EIO)  # register reads without an address are not modelled


SoftI2C = I2C


class Pin:
    IN = 0
    OUT = 1
    OPEN_DRAIN = 2
    PULL_UP = 1
    PULL_DOWN = 2
    IRQ_FALLING = 1
    IRQ_RISING = 2

    def __init__(self, id, mode=-1, pull=-1, *, value=None):
        self.id = id
        self._mode = mode
        self._pull = pull
        self._value = 1 if pull == Pin.PULL_UP else 0
        self._handler = None
        self._trigger = 0
        if value is not None:
            self._value = 1 if value else 0

    def init(self, mode=-1, pull=-1, *, value=None):
        if mode != -1:
            self._mode = mode
        if pull != -1:
            self._pull = pull
        if value is not None:
            self._value = 1 if value else 0

    def value(self, v=None):
        if v is None:
            return self._value
        self._value = 1 if v else 0

    def __call__(self, v=None):
        return self.value(v)

    def on(self):
        self._value = 1

    def off(self):
        self._value = 0

    def irq(self, handler=None, trigger=3):
        self._handler = handler
        self._trigger = trigger

    def sim_drive(self, level):
        """Simulation: an outside signal drives an input pin; fires the IRQ handler on a matching edge."""
        level = 1 if level else 0
        old = self._value
        self._value = level
        if self._handler is not None and old != level:
            if (level and self._trigger & Pin.IRQ_RISING) or (not level and self._trigger & Pin.IRQ_FALLING):
                self._handler(self)


class PWM:
    """machine.PWM on a recording motor: every change of duty or frequency is appended to `events` as
    (t_us on the sim clock, duty_u16, freq_hz). The duty is what the emulated cell (`battery`) sees the motor
    draw: each change settles the cell's charge up to now first."""

    def __init__(self, dest, *, freq=1000, duty_u16=0, duty_ns=None, invert=False):
        self.pin = dest
        self._freq = freq
        self._d = 0
        battery.motors.append(self)
        self.events = []
        self._active = True
        if duty_ns is not None:
            self.duty_ns(duty_ns)
        else:
            self.duty_u16(duty_u16)

    @property
    def _duty(self):
        return self._d

    @_duty.setter
    def _duty(self, value):
        battery.settle()  # the charge used at the old duty, up to now
        self._d = value

    def _log(self):
        self.events.append((clock.ticks_us(), self._duty, self._freq))

    def init(self, *, freq=None, duty_u16=None, duty_ns=None):
        self._active = True
        if freq is not None:
            self.freq(freq)
        if duty_u16 is not None:
            self.duty_u16(duty_u16)
        if duty_ns is not None:
            self.duty_ns(duty_ns)

    def freq(self, value=None):
        if value is None:
            return self._freq
        if value <= 0:
            raise ValueError("freq must be > 0")
        self._freq = value
        self._log()

    def duty_u16(self, value=None):
        if value is None:
            return self._duty
        if not 0 <= value <= 65535:
            raise ValueError("duty_u16 must be 0..65535")
        if value != self._duty or not self.events:
            self._duty = value
            self._log()

    def duty_ns(self, value=None):
        period_ns = 1000000000 // self._freq
        if value is None:
            return self._duty * period_ns // 65535
        self.duty_u16(min(65535, value * 65535 // period_ns))

    def deinit(self):
        self._active = False
        if self._duty:
            self._duty = 0
            self._log()


# --------------------------------------------------------------------------------------- battery and ADC

# The emulated cell's open-circuit voltage (mV) at 100, 90, ..., 0 % state of charge: the single-cell LiPo curve the
# firmware reads its percentage from (firmware/battery.py, after Meshtastic's src/power.h OCV_ARRAY). Interpolated.
_OCV_MV = (4190, 4050, 3990, 3890, 3800, 3720, 3630, 3530, 3420, 3300, 3100)


class SimBattery:
    """A LiPo cell powering the emulated board: its charge (µC, an int) drains on the sim clock at the board's own
    current plus the motor's current times its PWM duty (every PWM made here is a motor: `motors`); its terminal
    voltage is the open-circuit voltage at the state of charge (`_OCV_MV`) less the current through its internal
    resistance. Defaults: build (a)'s 350 mAh cell streaming (hardware/power.md: 35.9 mA; the motor 66 mA at full
    duty), 150 mΩ. `configure` sets them (the sim board's --battery); `wire` puts it behind a divider on an ADC pin.
    Integer arithmetic only: a PWM change inside the measured sampling step must not allocate."""

    def __init__(self):
        self.motors = []
        self.configure()
        self.pin = None

    def configure(self, capacity_mah=350, soc_pct=100, base_ua=35900, motor_ua=66000, r_mohm=150):
        self.capacity_uc = capacity_mah * 3600 * 1000  # mAh -> µC
        self.charge_uc = self.capacity_uc * soc_pct // 100
        self.base_ua = base_ua
        self.motor_ua = motor_ua
        self.r_mohm = r_mohm
        self.used_motor_uc = 0  # charge the motor took
        self._t_us = clock.ticks_us()

    def wire(self, pin, r_top, r_bottom):
        """Behind a divider (r_top from the cell's + to the pin, r_bottom to ground) on ADC pin `pin`."""
        self.pin = pin
        self.r_top = r_top
        self.r_bottom = r_bottom

    def current_ua(self):
        ua = self.base_ua
        for m in self.motors:
            ua += self.motor_ua * m._d // 65535
        return ua

    def settle(self):
        """Take the charge used since the last call (the current in between was constant: the duty changes call
        this first)."""
        now = clock.ticks_us()
        dt = now - self._t_us
        if dt <= 0:
            return
        self._t_us = now
        motor = 0
        for m in self.motors:
            motor += self.motor_ua * m._d // 65535
        motor = motor * dt // 1000000
        self.used_motor_uc += motor
        self.charge_uc = max(0, self.charge_uc - self.base_ua * dt // 1000000 - motor)

    def soc_permille(self):
        return self.charge_uc * 1000 // self.capacity_uc

    def ocv_mv(self):
        p = self.soc_permille()  # 0..1000
        if p >= 1000:
            return _OCV_MV[0]
        i = 10 - p // 100  # between _OCV_MV[i] (at 100 (10 - i) %) and _OCV_MV[i - 1]
        lo = _OCV_MV[i]
        hi = _OCV_MV[i - 1]
        return lo + (hi - lo) * (p % 100) // 100

    def mv(self):
        """Terminal voltage now, mV."""
        self.settle()
        return max(0, self.ocv_mv() - self.current_ua() * self.r_mohm // 1000000)

    def summary(self):
        return {"mv": self.mv(), "ocv_mv": self.ocv_mv(), "soc_pct": self.soc_permille() / 10,
                "charge_mah": self.charge_uc / 3600000, "motor_mah": self.used_motor_uc / 3600000}


battery = SimBattery()


class ADC:
    """machine.ADC as on the ESP32 (12 bits, 11 dB attenuation: 0-3.1 V full scale; ``read_uv`` calibrated, as
    ESP-IDF's eFuse calibration gives it) at the pin the emulated cell is wired to (`battery.wire`); any other pin
    reads 0 V (tied to ground)."""

    ATTN_0DB = 0
    ATTN_2_5DB = 1
    ATTN_6DB = 2
    ATTN_11DB = 3
    _FULL_UV = 3100000

    def __init__(self, pin, *, atten=ATTN_11DB):
        self.id = pin.id if isinstance(pin, Pin) else pin
        self.atten = atten

    def _code(self):
        # the pin's voltage as the 12-bit converter's code
        b = battery
        if b.pin != self.id:
            return 0
        uv = b.mv() * 1000 * b.r_bottom // (b.r_top + b.r_bottom)
        return min(4095, uv * 4095 // self._FULL_UV)

    def read_u16(self):
        return self._code() * 65535 // 4095

    def read_uv(self):
        return self._code() * self._FULL_UV // 4095


def idle():
    pass


def unique_id():
    return b"\x48\x43\x53\x49\x4d\x01"  # "HCSIM" + 1: fixed, so the advertised name is stable in tests


def freq():
    return 240000000


def reset():
    raise SystemExit(0)
