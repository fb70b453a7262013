"""Power budget: current per state for both builds from datasheet figures, and battery life; writes power.md.

Every current is either a datasheet figure (`FIGURES`: value, datasheet, table) or derived from one with a stated
assumption (`ASSUMPTIONS`): how long the radio is on per second follows from the firmware's own timing (its
sampling step, advertising interval and the wire format of `hipcheck.protocol`), which this script reads, so a
change there changes the budget. What no datasheet gives (how busy MicroPython keeps the CPU, the Nano's power
LED, converter efficiencies) is marked as an estimate. Measure a built sensor with a USB power meter or a
µCurrent-style shunt before trusting the hours.

    python hardware/power.py            # check power.md; print the battery-life table
    python hardware/power.py --write    # regenerate power.md
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import generated  # noqa: E402  (hardware/ is a folder of scripts, not a package)
from hipcheck.motion.chip_trace import chip_rate_hz  # noqa: E402
from hipcheck.protocol import ATT_OVERHEAD, DATA_HEADER_LEN, SUPPORTED_RATES_HZ, WIRE_SAMPLE_LEN  # noqa: E402

ROOT = HERE.parent
POWER_MD = HERE / "power.md"
CELLS_MAH = (150, 300, 500)


@dataclass(frozen=True)
class Figure:
    ma: float
    source: str


S3 = "Espressif, ESP32-S3 Series Datasheet v2.2"
ESP32 = "Espressif, ESP32 Series Datasheet v4.9 (the ESP32 inside the u-blox NINA-W102)"
RP2040 = "Raspberry Pi, RP2040 Datasheet"
FIGURES = {
    "imu": Figure(0.55, "ST, LSM6DSOX datasheet DS12814, section 3.2 (electrical characteristics): accelerometer "
                        "+ gyroscope in high-performance mode (the mode the driver leaves on at every rate)"),
    "s3_idle": Figure(27.6, f"{S3}, Table 5-9 (Modem-sleep): 160 MHz, both cores in WAITI, peripheral clocks off"),
    "s3_busy": Figure(39.9, f"{S3}, Table 5-9: 160 MHz, one core running 32-bit data access, the other idle"),
    "s3_flash": Figure(10.0, f"{S3}, Table 5-9 note 3: added while the flash is written"),
    "s3_tx": Figure(176.0, f"{S3}, Table 5-8: Bluetooth LE TX at 0 dBm"),
    "s3_rx": Figure(93.0, f"{S3}, Table 5-8: Bluetooth LE RX"),
    "rp2040_dvdd_48mhz": Figure(9.0, f"{RP2040}, section 5.7.2, Table 637: BOOTSEL idle, typical DVDD "
                                     "(clk_sys 48 MHz)"),
    "rp2040_iovdd": Figure(1.2, f"{RP2040}, Table 637: BOOTSEL idle, typical IOVDD"),
    "nina_idle": Figure(30.0, f"{ESP32}, Table 4-2 (Modem-sleep): 240 MHz dual core, low end of 30-68 mA (CPU "
                              "mostly idle: it only runs the Bluetooth controller)"),
    "nina_off": Figure(0.001, f"{ESP32}, Table 4-2: power off (CHIP_PU low), 1 µA"),
    "nina_tx": Figure(130.0, f"{ESP32}, Table 5-4: transmit BT/BLE, 0 dBm"),
    "nina_rx": Figure(100.0, f"{ESP32}, Table 5-4: receive BT/BLE, 95-100 mA (upper end)"),
    "motor": Figure(0.0, "Adafruit 1201 product page: 60 mA at 3 V, 80 mA at 4 V; interpolated at 3.3 V"),
    "nano_led": Figure(1.5, "estimate: the Nano's green power LED, always on (not in Arduino's datasheet)"),
    "battery_divider": Figure(round(3.7 / 400e3 * 1e3, 4), "Ohm's law: the battery-sense divider (R3 + R4 = "
                                                         "400 kOhm, wiring.md) across the cell at 3.7 V, in every "
                                                         "state; 10.5 µA at a full 4.2 V"),
}


def motor_ma(volts: float = 3.3) -> float:
    """The coin motor's running current at `volts`, on the line through Adafruit's two published points."""
    (v0, i0), (v1, i1) = (3.0, 60.0), (4.0, 80.0)
    return i0 + (i1 - i0) * (volts - v0) / (v1 - v0)


FIGURES["motor"] = Figure(round(motor_ma(), 1), FIGURES["motor"].source)


def _firmware_default(path: str, pattern: str) -> int:
    """A default the firmware states in its source (so the budget follows the firmware)."""
    match = re.search(pattern, (ROOT / path).read_text())
    if not match:
        raise ValueError(f"{path}: no match for {pattern!r}; update hardware/power.py")
    return int(match.group(1))


STEP_MS = _firmware_default("firmware/app.py", r"interval_ms=(\d+)")  # one FIFO read and one notification per step
ADV_INTERVAL_US = _firmware_default("firmware/link_ble.py", r"adv_interval_us=(\d+)")

ASSUMPTIONS = {
    "rate_hz": (100, "the firmware's default rate (config.json); the LSM6DSOX runs it at 104.17 Hz"),
    "conn_interval_ms": (30.0, "BLE connection interval: BlueZ's default minimum (hosts choose 15-50 ms)"),
    "us_per_byte": (8.0, "LE 1M PHY; data length extension on, so a notification is one air packet"),
    "pdu_overhead_bytes": (18, "preamble 1, access address 4, LL header 2, L2CAP 4, MIC 4 (encrypted link), "
                               "CRC 3; the ATT header (3) is counted with the payload"),
    "tx_ramp_us": (150.0, "radio start-up and turnaround per transmitted packet (estimate)"),
    "rx_event_us": (330.0, "receiving the central's packet at each connection event, with window widening and "
                           "turnaround (estimate)"),
    "rx_ack_us": (230.0, "receiving the central's reply to each extra packet in an event (estimate)"),
    "adv_pdu_bytes": (47, "ADV_IND with 31 bytes of advertising data"),
    "adv_listen_us": (300.0, "listening for a scan request after each advertising packet (estimate)"),
    "cpu_step_fraction": (0.05, "MicroPython's share of a 20 ms step spent in asyncio and the FIFO read (estimate)"),
    "cpu_us_per_sample": (40.0, "fusion, ring, alert and packing per sample on the ESP32-S3 (estimate: ~60× the "
                                "unix port's 0.6 µs)"),
    "log_block": ((512, 492), "the session log's block and payload bytes (firmware/store.py)"),
    "flash_ms_per_4kb": (70 + 16 * 0.8, "one 4 kB sector erase (70 ms) and 16 page programs (0.8 ms each), ESP32-S3 "
                                        "datasheet Table 5-11 (the Nano's flash is assumed alike)"),
    "rp2040_mhz": (125.0, "MicroPython's RP2040 clock; DVDD scales with clk_sys (RP2040 datasheet Figure 172)"),
    "nina_reset_when_idle": (True, "assumed: with BLE off the NINA-W102 is held in reset (RESETN low); if it runs, "
                                   "add nina_idle to the logging row"),
    "boost_efficiency": (0.85, "estimate: PowerBoost 500C boost from a 3.7 V cell to 5 V at 50-150 mA"),
    "buck_efficiency": (0.85, "estimate: the Nano's MP2322 buck, 5 V to 3.3 V at 50-150 mA"),
    "cell_v": (3.7, "LiPo nominal voltage"),
    "usable_fraction": (0.9, "share of the rated capacity used before the protection or the regulator cuts off "
                             "(estimate: a LiPo near 3.4 V has given ~90 %)"),
    "alert_motor_duty": (0.10, "a walk with alerts: the motor on 10 % of the time"),
}


def a(name):
    return ASSUMPTIONS[name][0]


def f(name):
    return FIGURES[name].ma


@dataclass(frozen=True)
class RadioTime:
    tx_s: float  # seconds of transmitting per second
    rx_s: float  # seconds of receiving per second


def notifications_per_s(rate_hz: int) -> float:
    """One DATA notification per sampling step that read a sample (a step that read none sends nothing)."""
    return min(1000 / STEP_MS, chip_rate_hz("LSM6DSOX", rate_hz))


def samples_per_notification(rate_hz: int) -> float:
    return chip_rate_hz("LSM6DSOX", rate_hz) / notifications_per_s(rate_hz)


def flash_busy_fraction(rate_hz: int) -> float:
    """Share of the time the flash is erased or programmed for the session log (full DATA packets of up to 23
    samples in 512-byte blocks)."""
    block, payload = a("log_block")
    packet_share = 1 + DATA_HEADER_LEN / (23 * WIRE_SAMPLE_LEN)
    bytes_per_s = chip_rate_hz("LSM6DSOX", rate_hz) * WIRE_SAMPLE_LEN * packet_share * block / payload
    return bytes_per_s / 4096 * a("flash_ms_per_4kb") / 1000


def streaming_radio(rate_hz: int) -> RadioTime:
    """Connected and streaming: one DATA notification per sampling step, connection events at the interval."""
    notifies = notifications_per_s(rate_hz)
    payload = ATT_OVERHEAD + DATA_HEADER_LEN + WIRE_SAMPLE_LEN * samples_per_notification(rate_hz)
    if payload + 4 > 251:
        raise ValueError(f"{payload:.0f}-byte notifications need more than one air packet: extend the model")
    air_us = a("us_per_byte") * (a("pdu_overhead_bytes") + payload)
    events = 1000 / a("conn_interval_ms")
    extra = max(notifies - events, 0.0)  # packets beyond the first in an event: one more reply each
    empty = max(events - notifies, 0.0)  # events with nothing to send still answer the central (10 bytes)
    tx_us = (events + extra) * a("tx_ramp_us") + notifies * air_us + empty * a("us_per_byte") * 10
    rx_us = events * a("rx_event_us") + extra * a("rx_ack_us")
    return RadioTime(tx_us * 1e-6, rx_us * 1e-6)


def advertising_radio() -> RadioTime:
    """Advertising on the three channels every ADV_INTERVAL_US, listening briefly after each packet."""
    events = 1e6 / ADV_INTERVAL_US
    tx_us = events * 3 * (a("tx_ramp_us") + a("us_per_byte") * a("adv_pdu_bytes"))
    return RadioTime(tx_us * 1e-6, events * 3 * a("adv_listen_us") * 1e-6)


@dataclass(frozen=True)
class State:
    name: str
    radio: str | None  # "stream", "adv" or None (radio off)
    motor_duty: float


STATES = (
    State("streaming over BLE", "stream", 0.0),
    State("logging only, radio off", None, 0.0),
    State("idle: advertising (still sampling and logging)", "adv", 0.0),
    State("motor on, while streaming", "stream", 1.0),
    State("walk with alerts: streaming, motor 10 % of the time", "stream", a("alert_motor_duty")),
)
BUILDS = {"a": "XIAO ESP32S3 + LSM6DSOX breakout", "b": "Nano RP2040 Connect + PowerBoost 500C"}
PARTS = ("IMU", "MCU", "radio", "flash", "motor", "board")


def _radio_time(state: State, rate_hz: int) -> RadioTime:
    if state.radio == "stream":
        return streaming_radio(rate_hz)
    if state.radio == "adv":
        return advertising_radio()
    return RadioTime(0.0, 0.0)


def rail_ma(build: str, state: State, rate_hz: int = 100) -> dict[str, float]:
    """Current per part at the 3.3 V rail (mA)."""
    odr = chip_rate_hz("LSM6DSOX", rate_hz)
    radio = _radio_time(state, rate_hz)
    flash = flash_busy_fraction(rate_hz) * f("s3_flash")
    motor = state.motor_duty * f("motor")
    if build == "a":
        busy = a("cpu_step_fraction") + a("cpu_us_per_sample") * 1e-6 * odr
        mcu = f("s3_idle") + busy * (f("s3_busy") - f("s3_idle"))
        # the TX/RX figures are the chip's whole current while the radio works: count what they add to idle
        rf = radio.tx_s * (f("s3_tx") - f("s3_idle")) + radio.rx_s * (f("s3_rx") - f("s3_idle"))
        return dict(zip(PARTS, (f("imu"), mcu, rf, flash, motor, 0.0)))
    mcu = f("rp2040_dvdd_48mhz") * a("rp2040_mhz") / 48 + f("rp2040_iovdd")
    if state.radio is None and a("nina_reset_when_idle"):
        rf = f("nina_off")
    else:
        rf = (f("nina_idle") + radio.tx_s * (f("nina_tx") - f("nina_idle"))
              + radio.rx_s * (f("nina_rx") - f("nina_idle")))
    return dict(zip(PARTS, (f("imu"), mcu, rf, flash, motor, f("nano_led"))))


def cell_ma(build: str, rail: float) -> float:
    """What the cell gives for `rail` mA at 3.3 V: through the XIAO's linear regulator the same current; through
    the boost to 5 V and the Nano's buck back to 3.3 V, the same power over both efficiencies; plus the battery-sense
    divider across the cell."""
    if build == "a":
        return rail + f("battery_divider")
    return rail * 3.3 / (a("boost_efficiency") * a("buck_efficiency") * a("cell_v")) + f("battery_divider")


def hours(build: str, state: State, cell_mah: float, rate_hz: int = 100) -> float:
    return cell_mah * a("usable_fraction") / cell_ma(build, sum(rail_ma(build, state, rate_hz).values()))


def peak_ma(build: str) -> float:
    """Worst instant at the 3.3 V rail: the radio transmitting (the whole chip's current), the motor starting (about
    twice its running current, an estimate for coin ERMs) and the rest."""
    if build == "a":
        return f("s3_tx") + 2 * f("motor") + f("imu")
    mcu = f("rp2040_dvdd_48mhz") * a("rp2040_mhz") / 48 + f("rp2040_iovdd")
    return f("nina_tx") + mcu + 2 * f("motor") + f("imu") + f("nano_led")


def _table(header: list[str], rows: list[list], align: str) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "| " + " | ".join("---:" if c == "r" else "---" for c in align) + " |"]
    return out + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def _state_rows() -> list[list]:
    rows = []
    for build in BUILDS:
        for state in STATES:
            parts = rail_ma(build, state)
            rail = sum(parts.values())
            rows.append([f"({build})", state.name] + [f"{v:.2f}" for v in parts.values()]
                        + [f"{rail:.1f}", f"{cell_ma(build, rail):.1f}"])
    return rows


def _rate_rows() -> list[list]:
    rows = []
    for rate in SUPPORTED_RATES_HZ:
        stream = STATES[0]
        radio = streaming_radio(rate)
        cells = [f"{cell_ma(b, sum(rail_ma(b, stream, rate).values())):.1f}" for b in BUILDS]
        rows.append([rate, f"{chip_rate_hz('LSM6DSOX', rate):.2f}", f"{f('imu'):.2f}",
                     f"{samples_per_notification(rate):.2f}", f"{radio.tx_s * 1e3:.1f} / {radio.rx_s * 1e3:.1f}"]
                    + cells + [f"{hours(b, stream, 300, rate):.1f}" for b in BUILDS])
    return rows


def render() -> str:
    rate = a("rate_hz")
    life = [[f"({b})", s.name] + [f"{hours(b, s, c):.1f}" for c in CELLS_MAH] for b in BUILDS for s in STATES]
    stream, adv = streaming_radio(rate), advertising_radio()
    out = ["# Power budget", "",
           "Generated by `hardware/power.py` (do not edit: change the figures or assumptions there and run "
           "`python hardware/power.py --write`; `tests/test_hardware.py` fails when this file is stale). Datasheet "
           "figures are typical values at 25 °C; the estimates are marked. Measure your build before relying on "
           "the hours.", "",
           f"## Battery life (hours, {rate} Hz, {a('usable_fraction'):.0%} of the rated capacity usable)", ""]
    out += _table(["build", "state"] + [f"{c} mAh" for c in CELLS_MAH], life, "llrrr")
    out += ["", "Builds: " + "; ".join(f"({k}) {v}" for k, v in BUILDS.items()) + ". Build (a) draws the cell "
            "through the XIAO's linear regulator (cell current = 3.3 V rail current); build (b) through a 5 V boost "
            "and the Nano's buck (cell current = rail power / both efficiencies / cell voltage).", "",
            f"## Current per state ({rate} Hz, mA)", ""]
    out += _table(["build", "state", *PARTS, "3.3 V rail", "from the cell"], _state_rows(), "llrrrrrrrr")
    out += ["", "## Streaming at each sample rate", "",
            "The IMU stays in high-performance mode at every rate: DS12814 gives one figure for it, so its current "
            "does not change with the output data rate; the radio's share grows with the samples per notification.",
            ""]
    out += _table(["rate Hz", "chip ODR Hz", "IMU mA", "samples per notification", "TX / RX ms per s",
                   "cell mA (a)", "cell mA (b)", "h at 300 mAh (a)", "h at 300 mAh (b)"], _rate_rows(), "rrrrrrrrr")
    out += ["", f"## Radio time per second ({rate} Hz)", "",
            f"- Streaming: one notification per {STEP_MS} ms step (`firmware/app.py`), "
            f"{samples_per_notification(rate):.2f} samples each ({DATA_HEADER_LEN}-byte header + {WIRE_SAMPLE_LEN} "
            f"bytes per sample, `hipcheck.protocol`), connection events every {a('conn_interval_ms'):g} ms: "
            f"TX {stream.tx_s * 1e3:.1f} ms, RX {stream.rx_s * 1e3:.1f} ms.",
            f"- Advertising every {ADV_INTERVAL_US / 1000:g} ms on three channels (`firmware/link_ble.py`): "
            f"TX {adv.tx_s * 1e3:.1f} ms, RX {adv.rx_s * 1e3:.1f} ms.", "",
            "## Peak current at the 3.3 V rail", "",
            f"- (a) {peak_ma('a'):.0f} mA: ESP32-S3 transmitting, the motor starting, the IMU. Espressif asks for a "
            "supply of 500 mA or more for the ESP32-S3 (datasheet v2.2, Table 5-2 note 4).",
            f"- (b) {peak_ma('b'):.0f} mA: NINA transmitting, RP2040, the motor starting, the IMU, the LED.", "",
            "## Datasheet figures", ""]
    out += _table(["figure", "mA", "source"], [[k, f"{v.ma:g}", v.source] for k, v in FIGURES.items()], "lrl")
    out += ["", "## Assumptions", ""]
    out += _table(["name", "value", "why"], [[k, v, why] for k, (v, why) in ASSUMPTIONS.items()], "lrl")
    return "\n".join(out) + "\n"


def outputs() -> dict[Path, str]:
    return {POWER_MD: render()}


if __name__ == "__main__":
    status = generated.main(outputs, sys.argv[1:], "hardware/power.py")
    if sys.argv[1:] != ["--write"]:
        print(render().split("\n## Current per state")[0])
    sys.exit(status)
