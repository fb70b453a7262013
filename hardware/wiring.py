"""Wiring tables per build, generated from the firmware's pin files and the motor driver's netlist.

The pins live in one place, `firmware/boards/*.py`; this script reads them (each pin file is plain constants, run
as a module), maps every GPIO to the pad printed on the board, checks that the choice is sound (a pad exists, no
pin does two jobs, no ESP32-S3 strapping or USB pin, the PWM above hearing and equal to the netlist's, the pad
names in the pin file's comments agree with the pad map) and writes `hardware/wiring.md` and the pin summary in
`hardware/README.md`. `tests/test_hardware.py` checks that both equal what this script produces now, so the
documents cannot drift from the firmware.

    python hardware/wiring.py --write    # regenerate wiring.md and the README block
    python hardware/wiring.py --check    # exit 1 and say what differs
"""

from __future__ import annotations

import importlib.util
import re
import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import generated  # noqa: E402  (hardware/ is a folder of scripts, not a package)
import netlist  # noqa: E402

ROOT = HERE.parent
BOARDS_DIR = ROOT / "firmware" / "boards"
NETLIST = HERE / "motor_driver.cir"
WIRING_MD = HERE / "wiring.md"
README = HERE / "README.md"
HEARING_LIMIT_HZ = 20000  # PWM at or above this is not heard as a whine from the motor or the driver

# GPIO -> pad label printed on each board (the pad a wire is soldered to).
# Seeed Studio XIAO ESP32S3 pinout (Seeed wiki, "Pin List"): D0..D10 and the on-board user LED.
XIAO_ESP32S3_PADS = {1: "D0", 2: "D1", 3: "D2", 4: "D3", 5: "D4", 6: "D5", 43: "D6", 44: "D7", 7: "D8", 8: "D9",
                     9: "D10", 21: "LED (on board, user LED)"}
# ESP32-S3 strapping pins (ESP32-S3 Series Datasheet, Table 3-1) and the USB pins: never the motor or the bus.
ESP32S3_RESERVED = {0: "strapping", 3: "strapping", 45: "strapping", 46: "strapping", 19: "USB D-", 20: "USB D+"}
# Arduino Nano RP2040 Connect (ABX00053 datasheet pinout; MicroPython's ARDUINO_NANO_RP2040_CONNECT pins.csv).
NANO_RP2040_CONNECT_PADS = {25: "D2", 15: "D3", 16: "D4", 17: "D5", 18: "D6", 19: "D7", 20: "D8", 21: "D9", 5: "D10",
                            7: "D11", 4: "D12", 6: "D13 (on-board LED)", 26: "A0", 27: "A1", 28: "A2", 29: "A3",
                            12: "A4", 13: "A5"}

AXIS_NAMES = ("x (anterior)", "y (left)", "z (superior)")
WORN_DIRECTIONS = {(0, 1): "forward (into the body)", (0, -1): "backward (away from the body)",
                   (1, 1): "to the wearer's left", (1, -1): "to the wearer's right",
                   (2, 1): "up", (2, -1): "down"}


class WiringError(ValueError):
    """The pin files, the pad maps and the netlist disagree; the message says where."""


@dataclass(frozen=True)
class Build:
    key: str  # "a" / "b", as in bom.csv
    board_name: str  # the pin file's NAME
    module: str  # firmware/boards/<module>.py
    title: str
    pads: dict[int, str]
    reserved: dict[int, str]
    imu: str  # the IMU chip and where it sits
    imu_wiring: tuple[tuple[str, str, str], ...]  # (board pad, signal, where it goes) for an IMU off the board
    power_wiring: tuple[tuple[str, str, str], ...]  # battery and supply wires (not pins of the pin file)
    battery_node: str = ""  # where the battery-sense divider takes the cell's voltage
    battery_note: str = ""  # what the divider draws while the sensor is off
    adc_pins: frozenset = frozenset()  # GPIOs with an ADC input usable with the radio on


BUILDS = (
    Build("a", "xiao-esp32s3", "xiao_esp32s3", "Seeed Studio XIAO ESP32S3 + LSM6DSOX breakout",
          XIAO_ESP32S3_PADS, ESP32S3_RESERVED, imu="LSM6DSOX on the breakout (Adafruit 4438)",
          imu_wiring=(("3V3", "3.3 V", "IMU breakout VIN"), ("GND", "ground", "IMU breakout GND")),
          power_wiring=(("BAT+ (underside pad)", "battery +", "SW1 (slide switch) → J1 red lead → cell +"),
                        ("BAT− (underside pad)", "battery −", "J1 black lead → cell −")),
          battery_node="the XIAO's BAT+ pad (after SW1)",
          battery_note="It sits after SW1, so it draws nothing while the sensor is off.",
          # ESP32-S3 ADC1 (GPIO1-10; ADC2 is shared with the Wi-Fi/BLE radio): ESP32-S3 datasheet, Table 2-8
          adc_pins=frozenset(range(1, 11))),
    Build("b", "nano-rp2040-connect", "nano_rp2040_connect", "Arduino Nano RP2040 Connect (on-board LSM6DSOX)",
          NANO_RP2040_CONNECT_PADS, {}, imu="LSM6DSOX on the board",
          imu_wiring=(),
          power_wiring=(("VIN", "5 V in", "U3 PowerBoost 500C 5V output"),
                        ("GND", "ground", "U3 PowerBoost 500C GND"),
                        ("—", "power switch", "U3 EN → SW1 → U3 GND (closed = off; the cell still charges)"),
                        ("—", "battery", "cell JST-PH plug → U3 BAT socket")),
          battery_node="U3's BAT pin",
          battery_note="U3's BAT pin stays on the cell when SW1 turns the boost off, so it draws this while the "
                       "sensor is off too: years to empty a 500 mAh cell, slower than the cell's self-discharge.",
          # RP2040 ADC inputs 0-3 (GPIO26-29, the Nano's A0-A3; its A4-A7 belong to the NINA module)
          adc_pins=frozenset(range(26, 30))),
)

# How each netlist terminal is named on the real part: (subcircuit or kind, terminal index) -> label.
TERMINALS = {("AO3400A", "d"): "Q1 drain (SOT-23 pin 3)", ("AO3400A", "g"): "Q1 gate (pin 1)",
             ("AO3400A", "s"): "Q1 source (pin 2)", ("ERM10", "p"): "motor + (red lead)",
             ("ERM10", "n"): "motor − (blue lead)", ("D", 0): "anode", ("D", 1): "cathode (stripe)"}
BENCH_SOURCES = ("VSUP", "VPIN", "IPIN")  # the simulation's stand-ins for the board's rail and pin
AMMETERS = ("VSENSE",)


def load_board(module: str):
    """A pin file as a module object (plain constants; importing it runs nothing else)."""
    path = BOARDS_DIR / f"{module}.py"
    spec = importlib.util.spec_from_file_location(f"_hipcheck_board_{module}", path)
    board = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(board)
    board.__source__ = path.read_text()
    return board


def pwm_hz_of_netlist(net: netlist.Netlist) -> float:
    """The simulated pin's PWM frequency, from VPIN's PULSE(v1 v2 delay rise fall width period)."""
    match = re.fullmatch(r"PULSE\(([^)]*)\)", net.parts["VPIN"].value.strip(), re.IGNORECASE)
    if not match:
        raise WiringError(f"motor_driver.cir: VPIN is {net.parts['VPIN'].value!r}, expected PULSE(...)")
    return 1.0 / _spice_number(match.group(1).split()[6])


def _spice_number(text: str) -> float:
    scale = {"f": 1e-15, "p": 1e-12, "n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "meg": 1e6, "g": 1e9}
    match = re.fullmatch(r"([-+0-9.eE]+)(meg|[fpnumkg])?[a-zA-Z]*", text.strip(), re.IGNORECASE)
    if not match:
        raise WiringError(f"not a SPICE number: {text!r}")
    return float(match.group(1)) * scale.get((match.group(2) or "").lower(), 1.0)


def _ohms(value: str) -> str:
    ohms = _spice_number(value)
    return f"{ohms / 1000:g} kΩ" if ohms >= 1000 else f"{ohms:g} Ω"


def pad(build: Build, gpio: int) -> str:
    if gpio not in build.pads:
        raise WiringError(f"{build.module}.py uses GPIO{gpio}, which has no pad on the {build.title}; pick one of "
                          + ", ".join(f"GPIO{g} ({p})" for g, p in sorted(build.pads.items())))
    return build.pads[gpio]


def check_board(build: Build, board, net: netlist.Netlist) -> None:
    if board.NAME != build.board_name:
        raise WiringError(f"{build.module}.py: NAME is {board.NAME!r}, expected {build.board_name!r}")
    used = {"I2C_SDA": board.I2C_SDA, "I2C_SCL": board.I2C_SCL, "MOTOR_PIN": board.MOTOR_PIN,
            "LED_PIN": board.LED_PIN}
    if getattr(board, "BATTERY_ADC_PIN", None) is not None:
        used["BATTERY_ADC_PIN"] = board.BATTERY_ADC_PIN
        if build.adc_pins and board.BATTERY_ADC_PIN not in build.adc_pins:
            raise WiringError(f"{build.module}.py: BATTERY_ADC_PIN = GPIO{board.BATTERY_ADC_PIN} is not an ADC input "
                              "the firmware can read with the radio on; pick one of "
                              + ", ".join(f"GPIO{g}" for g in sorted(build.adc_pins)))
    seen = {}
    for constant, gpio in used.items():
        pad(build, gpio)
        if gpio in seen:
            raise WiringError(f"{build.module}.py: {constant} and {seen[gpio]} are both GPIO{gpio}")
        seen[gpio] = constant
        if gpio in build.reserved and constant != "LED_PIN":
            raise WiringError(f"{build.module}.py: {constant} = GPIO{gpio} is a {build.reserved[gpio]} pin")
    if board.MOTOR_PWM_HZ < HEARING_LIMIT_HZ:
        raise WiringError(f"{build.module}.py: MOTOR_PWM_HZ = {board.MOTOR_PWM_HZ} is audible; use >= "
                          f"{HEARING_LIMIT_HZ}")
    if abs(pwm_hz_of_netlist(net) - board.MOTOR_PWM_HZ) > 1:
        raise WiringError(f"motor_driver.cir simulates {pwm_hz_of_netlist(net):.0f} Hz but {build.module}.py "
                          f"drives the motor at {board.MOTOR_PWM_HZ} Hz")
    _check_comments(build, board)


def _check_comments(build: Build, board) -> None:
    """Pad names written in the pin file's comments ("D0 = GPIO1", "GPIO12 = A4", "I2C_SDA = 5  # D4") must be the
    ones this map gives."""
    source = board.__source__
    claims = [(int(g), p) for p, g in re.findall(r"\b([AD]\d+)\s*=\s*GPIO(\d+)", source)]
    claims += [(int(g), p) for g, p in re.findall(r"\bGPIO(\d+)\s*=\s*([AD]\d+)\b", source)]
    claims += [(int(g), p) for g, p in re.findall(r"^\w+\s*=\s*(\d+)\s*#\s*([AD]\d+)\b", source, re.MULTILINE)]
    for gpio, label in claims:
        mapped = build.pads.get(gpio, "")
        if (mapped.split() or [""])[0] != label:
            raise WiringError(f"{build.module}.py says {label} is GPIO{gpio}, the pad map says "
                              f"{mapped or 'no pad'}: fix one of them")


def axes_lines(board) -> list[str]:
    """What AXES means when worn: each chip axis in words, and each board axis as a chip axis."""
    axes = board.AXES
    rows = []
    for i, row in enumerate(axes):
        nonzero = [(j, v) for j, v in enumerate(row) if v]
        if len(nonzero) != 1 or abs(nonzero[0][1]) != 1:
            raise WiringError(f"AXES row {i} is {row}: each row must hold one ±1 (a signed permutation)")
        rows.append(nonzero[0])
    if sorted(j for j, _ in rows) != [0, 1, 2]:
        raise WiringError(f"AXES {axes} uses a chip axis twice")
    lines = []
    for i, (j, v) in enumerate(rows):
        lines.append(f"- board {AXIS_NAMES[i]} = {'+' if v > 0 else '−'}chip {'xyz'[j]}")
    for j in range(3):
        i, v = next((i, v) for i, (jj, v) in enumerate(rows) if jj == j)
        lines.append(f"- chip {'xyz'[j]} points {WORN_DIRECTIONS[(i, v)]}")
    return lines


def mounting_comment(board) -> str:
    """The pin file's own words about the mounting its AXES assume (comment lines from 'Assumed mounting')."""
    lines = board.__source__.splitlines()
    out = []
    for line in lines:
        text = line.strip()
        if text.startswith("#") and ("Assumed mounting" in text or out):
            if not text.startswith("# ") or "Check it on the bench" in text:
                break
            out.append(text[2:].replace("Assumed mounting: ", ""))
        elif out:
            break
    return " ".join(out)


def driver_nets(build: Build, board, net: netlist.Netlist) -> list[tuple[str, str, str]]:
    """(net, board pad, what is soldered to it) for the motor driver, from the netlist."""
    board_pads = {"gpio": f"{pad(build, board.MOTOR_PIN)} (GPIO{board.MOTOR_PIN}, MOTOR_PIN)", "v3v3": "3V3",
                  "0": "GND"}
    rows = []
    for node, members in net.nets(wires=AMMETERS).items():
        labels = []
        for name, index in members:
            if name in BENCH_SOURCES:
                continue
            part = net.parts[name]
            ref = name[1:] if part.kind == "X" else name  # XQ1 -> Q1, XM1 -> M1
            if part.kind == "X":
                pin = net.subckt_pins[part.value][index]
                labels.append(TERMINALS.get((part.value, pin), f"{ref} {pin}"))
            elif (part.kind, index) in TERMINALS:
                labels.append(f"{ref} {TERMINALS[(part.kind, index)]}")
            else:
                labels.append(f"{ref} ({_ohms(part.value)})" if part.kind == "R" else ref)
        rows.append((node, board_pads.get(node, "—"), ", ".join(labels)))
    order = {"gpio": 0, "gate": 1, "drain": 2, "v3v3": 3, "0": 4}
    return sorted(rows, key=lambda r: order.get(r[0], 9))


def summary_table() -> str:
    """The pin summary (README block): one row per build."""
    net = netlist.read(NETLIST)
    out = ["| build | pin file | I2C | SDA | SCL | IMU | motor PWM | LED |",
           "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for build in BUILDS:
        board = load_board(build.module)
        check_board(build, board, net)
        out.append(f"| ({build.key}) {build.board_name} | `firmware/boards/{build.module}.py` | "
                   f"I2C{board.I2C_ID}, {board.I2C_FREQ // 1000} kHz | {_pin(build, board.I2C_SDA)} | "
                   f"{_pin(build, board.I2C_SCL)} | {build.imu}, 0x{board.IMU_ADDRESS:02X} | "
                   f"{_pin(build, board.MOTOR_PIN)} at {board.MOTOR_PWM_HZ / 1000:g} kHz | "
                   f"{_pin(build, board.LED_PIN)} |")
    return "\n".join(out)


def _pin(build: Build, gpio: int) -> str:
    return f"{pad(build, gpio).split(' (')[0]} (GPIO{gpio})"


def build_section(build: Build, net: netlist.Netlist) -> str:
    board = load_board(build.module)
    check_board(build, board, net)
    out = [f"## Build ({build.key}): {build.title}", "",
           f"Pin file: `firmware/boards/{build.module}.py` (board `{board.NAME}`, INFO board_id {board.BOARD_ID}).",
           "", "### Wires", "", "| board pad | signal | goes to | firmware |", "| --- | --- | --- | --- |"]
    for where, signal, to in build.imu_wiring:
        out.append(f"| {where} | {signal} | {to} | — |")
    if build.imu_wiring:
        out.append(f"| {_pin(build, board.I2C_SDA)} | I2C{board.I2C_ID} SDA | IMU breakout SDA | "
                   f"`I2C_SDA = {board.I2C_SDA}` |")
        out.append(f"| {_pin(build, board.I2C_SCL)} | I2C{board.I2C_ID} SCL | IMU breakout SCL | "
                   f"`I2C_SCL = {board.I2C_SCL}` |")
    else:
        out.append(f"| {_pin(build, board.I2C_SDA)}, {_pin(build, board.I2C_SCL)} | I2C{board.I2C_ID} | "
                   f"the {build.imu}: nothing to wire | "
                   f"`I2C_SDA = {board.I2C_SDA}`, `I2C_SCL = {board.I2C_SCL}` |")
    out.append(f"| {_pin(build, board.MOTOR_PIN)} | motor PWM, {board.MOTOR_PWM_HZ} Hz | motor driver `gpio` "
               f"(R1) | `MOTOR_PIN = {board.MOTOR_PIN}` |")
    out.append(f"| 3V3, GND | 3.3 V, ground | motor driver `v3v3`, `0` (below) | — |")
    out.append(f"| {_pin(build, board.LED_PIN)} | status LED | on the board: nothing to wire | "
               f"`LED_PIN = {board.LED_PIN}` |")
    for where, signal, to in build.power_wiring:
        out.append(f"| {where} | {signal} | {to} | — |")
    if getattr(board, "BATTERY_ADC_PIN", None) is not None:
        out.append(f"| {_pin(build, board.BATTERY_ADC_PIN)} | battery sense (ADC) | divider midpoint: R3, R4, C1 "
                   f"(below) | `BATTERY_ADC_PIN = {board.BATTERY_ADC_PIN}` |")
        out += battery_section(build, board)
    out += ["", "### Motor driver (`hardware/motor_driver.cir`)", "", "| net | board pad | soldered to |",
            "| --- | --- | --- |"]
    out += [f"| `{node}` | {where} | {what} |" for node, where, what in driver_nets(build, board, net)]
    out += ["", f"### IMU and axes (I2C address 0x{board.IMU_ADDRESS:02X}, driver `{board.IMU}`)", "",
            f"The mounting the pin file's `AXES` assume: {mounting_comment(board)}", "",
            f"`AXES = {board.AXES}` (rows: board axes, columns: chip axes), so when worn:", ""]
    out += axes_lines(board)
    return "\n".join(out)


def _kohm(ohms: int) -> str:
    return f"{ohms / 1000:g} kΩ"


def battery_section(build: Build, board) -> list[str]:
    """The battery-sense divider (firmware/battery.py reads it): what it is soldered to and what the pin sees."""
    r_top, r_bottom = board.BATTERY_DIVIDER
    ratio = r_bottom / (r_top + r_bottom)
    return ["", "### Battery sense", "",
            f"The cell's voltage through a divider to {_pin(build, board.BATTERY_ADC_PIN)}, which the firmware reads "
            "now and then (`firmware/battery.py`: INFO's battery, the BLE Battery Level, the LOW_BATTERY event).", "",
            "| part | soldered between |", "| --- | --- |",
            f"| R3 ({_kohm(r_top)}) | {build.battery_node} and the divider midpoint |",
            f"| R4 ({_kohm(r_bottom)}) | the divider midpoint and GND |",
            "| C1 (100 nF) | the divider midpoint and GND (beside R4: the ADC samples a capacitor, not "
            f"{_kohm(r_top * r_bottom // (r_top + r_bottom))} of source resistance) |",
            f"| wire | the divider midpoint and {_pin(build, board.BATTERY_ADC_PIN)} |", "",
            f"`BATTERY_DIVIDER = {board.BATTERY_DIVIDER}`: the pin sees {ratio:g} of the cell, "
            f"{3.0 * ratio:.2f}-{4.2 * ratio:.2f} V for a cell at 3.0-4.2 V; the divider draws "
            f"{4.2 / (r_top + r_bottom) * 1e6:.1f} µA from a full cell (nothing against the 30-80 mA of "
            "[power.md](power.md)). " + build.battery_note]


def render() -> str:
    net = netlist.read(NETLIST)
    parts = ["# Wiring per build", "",
             "Generated by `hardware/wiring.py` from `firmware/boards/*.py` (the pins) and "
             "`hardware/motor_driver.cir` (the driver); do not edit by hand: change the pin file or the netlist "
             "and run `python hardware/wiring.py --write`. `tests/test_hardware.py` fails when this file is stale.",
             "", "## Pin summary", "", summary_table(), ""]
    for build in BUILDS:
        parts += [build_section(build, net), ""]
    return "\n".join(parts)


def outputs() -> dict[Path, str]:
    """Every file this script owns, with the text it must hold."""
    return {WIRING_MD: render(), README: generated.replace_block(README.read_text(), "pins", summary_table())}


if __name__ == "__main__":
    sys.exit(generated.main(outputs, sys.argv[1:], "hardware/wiring.py"))
