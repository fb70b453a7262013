"""The battery: the cell's voltage through the board's divider and ADC pin (hardware/wiring.md, "Battery sense"), as
mV and a state of charge, for INFO, the BLE Battery Level and the LOW_BATTERY event.

``Cell(pin, divider)`` reads it: ``cell.read()`` -> (mv, pct). A board's pin file makes one and hands its ``read``
to main (``board.battery``). ``Monitor`` (in ``app.App``) reads it every ``POLL_MS`` of sampling, never per sample:
it refreshes the BLE Battery Level when the percentage changes and queues LOW_BATTERY once when the smoothed
charge falls to ``LOW_PCT``, then not again until it has come back above ``REARM_PCT`` (charged: hysteresis, so
that the voltage wandering by a few mV around the threshold, or sagging under the motor, gives one event).
"""

from micropython import const

# Open-circuit voltage (mV) of a single LiPo / Li-ion cell at 100, 90, ..., 10, 0 % state of charge: Meshtastic
# firmware, src/power.h, OCV_ARRAY (its default for LiPo and Li-ion cells: 4190, 4050, 3990, 3890, 3800, 3720,
# 3630, 3530, 3420, 3300, 3100 mV). A state of charge between two points is interpolated linearly.
OCV_MV = (4190, 4050, 3990, 3890, 3800, 3720, 3630, 3530, 3420, 3300, 3100)

LOW_PCT = const(10)  # LOW_BATTERY at or below this: about an hour of streaming left on build (a) (hardware/power.md)
REARM_PCT = const(15)  # ... and again only after the charge has been above this (the cell was charged)
POLL_MS = const(1000)  # sampling time between readings
_SMOOTH_SHIFT = const(2)  # exponential average over ~4 s: ADC noise and the motor's sag alone do not fire it


def percent(mv):
    """State of charge (0..100 %, int) of a cell at mv millivolts, from OCV_MV."""
    if mv >= OCV_MV[0]:
        return 100
    if mv <= OCV_MV[-1]:
        return 0
    i = 1
    while OCV_MV[i] > mv:
        i += 1
    hi = OCV_MV[i - 1]
    lo = OCV_MV[i]
    # between (100 - 10 i) % at lo and (110 - 10 i) % at hi
    return 100 - 10 * i + (10 * (mv - lo) + (hi - lo) // 2) // (hi - lo)


class Cell:
    """The cell through a divider: pin (the ADC's GPIO), divider (r_top, r_bottom) in ohms, the top resistor from
    the cell's + to the pin, the bottom one from the pin to ground. vref_mv: the ADC's full scale for ports whose
    ADC has no calibrated ``read_uv`` (the RP2040: 3.3 V); attenuation for the ESP32's ADC (11 dB: up to ~3.1 V
    at the pin). The ADC is made at the first reading, so that importing a pin file touches no hardware."""

    def __init__(self, pin, divider, vref_mv=3300):
        self.pin = pin
        self.r_top = divider[0]
        self.r_bottom = divider[1]
        self.vref_mv = vref_mv
        self._adc = None

    def _make(self):
        import machine
        try:
            self._adc = machine.ADC(machine.Pin(self.pin), atten=machine.ADC.ATTN_11DB)
        except (AttributeError, TypeError):  # a port whose ADC takes no attenuation (rp2)
            self._adc = machine.ADC(machine.Pin(self.pin))

    def pin_uv(self):
        """The voltage at the ADC pin, µV: ``read_uv`` where the port calibrates it (ESP32), else read_u16 over the
        reference."""
        if self._adc is None:
            self._make()
        adc = self._adc
        if hasattr(adc, "read_uv"):
            return adc.read_uv()
        return adc.read_u16() * self.vref_mv * 1000 // 65535

    def read(self):
        """(mv, pct): the cell's voltage (the pin's scaled back up by the divider) and its state of charge."""
        mv = self.pin_uv() * (self.r_top + self.r_bottom) // (self.r_bottom * 1000)
        return mv, percent(mv)


class Monitor:
    """Polls ``read`` (() -> (mv, pct)) every POLL_MS of sampling time (``tick(ms)`` after each step):
    ``set_level(pct)`` (the BLE Battery Level; None: no BLE) when the percentage changes, ``low(mv, pct)`` (queue
    LOW_BATTERY) when the smoothed charge reaches LOW_PCT from above. ``mv``/``pct``: the last smoothed reading."""

    def __init__(self, read, low, set_level=None, poll_ms=POLL_MS, low_pct=LOW_PCT, rearm_pct=REARM_PCT):
        self._read = read
        self._low = low
        self._set_level = set_level
        self.poll_ms = poll_ms
        self.low_pct = low_pct
        self.rearm_pct = rearm_pct
        self._due = 0  # ms until the next reading
        self._avg = -1  # smoothed mV << _SMOOTH_SHIFT; -1: no reading yet
        self.mv = 0
        self.pct = -1
        self.armed = True  # a fall to low_pct sends LOW_BATTERY
        self.events = 0  # LOW_BATTERY sent
        self.readings = 0

    def tick(self, ms):
        """After a sampling step of ms milliseconds: a reading when one is due. Small ints only."""
        self._due -= ms
        if self._due <= 0:
            self._due += self.poll_ms
            self.poll()

    def poll(self):
        """Read now, update the level, fire or re-arm the low-battery event."""
        mv = self._read()[0]
        self.readings += 1
        if self._avg < 0:
            self._avg = mv << _SMOOTH_SHIFT
        else:
            self._avg += mv - (self._avg >> _SMOOTH_SHIFT)
        mv = self._avg >> _SMOOTH_SHIFT
        pct = percent(mv)
        self.mv = mv
        if pct != self.pct:
            self.pct = pct
            if self._set_level is not None:
                self._set_level(pct)
        if self.armed and pct <= self.low_pct:
            self.armed = False
            self.events += 1
            self._low(mv, pct)
        elif not self.armed and pct > self.rearm_pct:
            self.armed = True
