"""hardware/: the documents its scripts generate are current, the pins agree with firmware/boards, the BOM agrees with
the motor driver's netlist, the driver switches as designed (ngspice), and every enclosure part renders to a closed
solid of the size its parameters give (openscad).

ngspice and openscad are Debian packages that .ci/run installs. Without them these tests skip on a workstation but
fail in CI (CI=true), so that a missing tool can never pass silently.
"""

import math
import os
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
HARDWARE = ROOT / "hardware"
ENCLOSURE = HARDWARE / "enclosure"


# hardware/ is a folder of scripts that import each other by name
sys.path.insert(0, str(HARDWARE))
try:
    import bom
    import generated
    import netlist
    import power
    import wiring
finally:
    sys.path.remove(str(HARDWARE))
for _module in (bom, generated, netlist, power, wiring):
    assert Path(_module.__file__).parent == HARDWARE, f"{_module.__name__} was imported from {_module.__file__}"


def _tool(name):
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} is not installed, and CI must run this test: .ci/run installs the Debian package "
                        f"{name}")
        pytest.skip(f"{name} is not installed (Debian: apt-get install {name}); CI installs it and runs this test")
    return path


# --- generated documents -------------------------------------------------------------------------------------

@pytest.mark.parametrize("script", [wiring, bom, power], ids=["wiring", "bom", "power"])
def test_generated_documents_are_current(script):
    for path, text in script.outputs().items():
        assert path.read_text() == text, f"{path.relative_to(ROOT)} is stale: run python " \
                                         f"hardware/{Path(script.__file__).name} --write"


def test_pin_numbers_appear_only_in_generated_text():
    # the hand-written guides name pads through wiring.md, so a pin change cannot leave them behind
    readme = (HARDWARE / "README.md").read_text()
    outside = readme.replace(generated.block(readme, "pins"), "")
    assert not re.findall(r"GPIO\d+", outside)
    assert not re.findall(r"GPIO\d+", (HARDWARE / "mounting.md").read_text())


# --- wiring checks ---------------------------------------------------------------------------------------------

def _board(**changes):
    base = dict(NAME="xiao-esp32s3", BOARD_ID=1, I2C_ID=0, I2C_SDA=5, I2C_SCL=6, I2C_FREQ=400000,
                IMU="imu_lsm6ds", IMU_ADDRESS=0x6A, AXES=((0, 0, -1), (-1, 0, 0), (0, 1, 0)), MOTOR_PIN=1,
                MOTOR_PWM_HZ=20000, LED_PIN=21, __source__="MOTOR_PIN = 1  # D0\n")
    base.update(changes)
    return types.SimpleNamespace(**base)


@pytest.mark.parametrize("changes, message", [
    (dict(MOTOR_PIN=3), "strapping"),                      # GPIO3 decides the ESP32-S3's boot mode
    (dict(MOTOR_PIN=10), "has no pad"),                     # no XIAO pad
    (dict(MOTOR_PIN=5), "are both GPIO5"),                  # shared with SDA
    (dict(MOTOR_PWM_HZ=1000), "audible"),
    (dict(__source__="MOTOR_PIN = 1  # D1\n"), "says D1 is GPIO1"),
    (dict(AXES=((1, 0, 0), (1, 0, 0), (0, 0, 1))), "chip axis twice"),
])
def test_wiring_refuses_unsound_pin_files(changes, message):
    net = netlist.read(wiring.NETLIST)
    board = _board(**changes)
    with pytest.raises(wiring.WiringError, match=message):
        wiring.check_board(wiring.BUILDS[0], board, net)
        wiring.axes_lines(board)


def test_the_real_pin_files_pass_and_their_axes_read_as_worn():
    net = netlist.read(wiring.NETLIST)
    for build in wiring.BUILDS:
        board = wiring.load_board(build.module)
        wiring.check_board(build, board, net)
        lines = wiring.axes_lines(board)
        # both boards sit with their parts facing away from the body: chip z points backward
        assert "- chip z points backward (away from the body)" in lines


# --- the motor driver's netlist ------------------------------------------------------------------------------

DRIVER_REFS = {"R1": "R1", "R2": "R2", "Q1": "XQ1", "D1": "D1", "M1": "XM1"}  # bom.csv ref -> netlist part


def _terminal(net, part_name, pin):
    part = net.parts[part_name]
    return part.nodes[net.subckt_pins[part.value].index(pin)]


def test_driver_connectivity():
    net = netlist.read(wiring.NETLIST)
    nets = net.nets(wires=("VSENSE",))
    parts = net.parts
    assert set(parts["R1"].nodes) == {"gpio", "gate"}, "the gate resistor goes between the pin and the gate"
    assert set(parts["R2"].nodes) == {"gate", "0"}, "the pull-down goes from gate to source (ground)"
    assert net.subckt_pins["AO3400A"] == ("d", "g", "s")
    assert (_terminal(net, "XQ1", "g"), _terminal(net, "XQ1", "s"), _terminal(net, "XQ1", "d")) == \
        ("gate", "0", "drain"), "low-side switch: source on ground, drain on the motor"
    # flyback diode across the motor, reverse-biased while the MOSFET conducts: anode on the drain, cathode on 3.3 V
    assert parts["D1"].nodes == ("drain", "v3v3")
    motor = {n for n, members in nets.items() if any(p == "XM1" for p, _ in members)}
    assert motor == {"v3v3", "drain"}, "the motor sits between the 3.3 V rail and the drain"
    assert _terminal(net, "XM1", "p") in ("v3v3", "motp") and _terminal(net, "XM1", "n") == "drain"
    assert parts["VPIN"].nodes == ("gpio", "0")


def test_bom_and_netlist_agree():
    net = netlist.read(wiring.NETLIST)
    rows = {r.ref: r for r in bom.load() if r.ref in DRIVER_REFS}
    assert set(rows) == set(DRIVER_REFS)
    for ref, part_name in DRIVER_REFS.items():
        part = net.parts[part_name]
        if rows[ref].value:
            assert rows[ref].value == part.value, f"{ref}: bom.csv says {rows[ref].value}, the netlist {part.value}"
        assert "ab" == rows[ref].builds, f"{ref}: both builds use the same driver"


def test_pwm_of_the_simulation_is_the_boards():
    net = netlist.read(wiring.NETLIST)
    for build in wiring.BUILDS:
        assert wiring.pwm_hz_of_netlist(net) == pytest.approx(wiring.load_board(build.module).MOTOR_PWM_HZ)


def _simulate(tmp_path, name, edit=None):
    """Run the deck (optionally edited) in ngspice; columns t, v(gpio), v(gate), v(drain), i(vsense)."""
    ngspice = _tool("ngspice")
    deck = wiring.NETLIST.read_text()
    if edit is not None:
        old, new = edit
        assert re.search(old, deck, re.MULTILINE), f"the edit {old!r} matches nothing in the deck"
        deck = re.sub(old, new, deck, flags=re.MULTILINE)
    work = tmp_path / name
    work.mkdir()
    (work / "deck.cir").write_text(deck)
    done = subprocess.run([ngspice, "-b", "deck.cir"], cwd=work, capture_output=True, text=True, timeout=120)
    out = work / "motor_driver.out"
    assert done.returncode == 0 and out.exists(), done.stdout[-2000:] + done.stderr[-2000:]
    data = np.loadtxt(out)
    return data[:, 0], data[:, 1], data[:, 3], data[:, 5], data[:, 7]


def test_driver_switches_the_motor(tmp_path):
    t, pin, gate, drain, current = _simulate(tmp_path, "pwm")
    period = 1 / 20000
    # the pin is high from 10 µs + k·period for half a period; look at the cycles after the first
    phase = (t - 10e-6) % period
    steady = t > 100e-6
    on = steady & (phase > 2e-6) & (phase < period / 2 - 0.1e-6)
    assert drain[on].max() < 0.05, "the MOSFET is fully on at a 3.3 V gate"
    assert drain[steady].max() < 3.3 + 0.5, "the diode clamps the turn-off spike to a diode drop over the rail"
    # gate edges through the 220 Ω resistor: 10-90 % within a microsecond (the PWM period is 50 µs)
    edge = t[(t >= 110e-6) & (t < 112e-6)][np.argmax(gate[(t >= 110e-6) & (t < 112e-6)] > 0.9 * 3.3)]
    assert edge - 110e-6 < 1e-6
    fall = (t >= 135e-6) & (t < 137e-6)
    assert t[fall][np.argmax(gate[fall] < 0.1 * 3.3)] - 135e-6 < 1e-6
    # after turn-off the motor current keeps flowing, through the diode
    i_off = np.interp(235e-6, t, current)
    assert i_off > 0.03 and np.interp(236e-6, t, current) > 0.5 * i_off


def test_without_the_diode_the_drain_flies_up(tmp_path):
    t, _, _, drain, _ = _simulate(tmp_path, "nodiode", (r"^D1 ", "* D1 "))
    assert drain[t > 100e-6].max() > 20, "the flyback diode is what keeps the drain near the rail"


def test_motor_current_at_full_duty_is_the_power_budgets(tmp_path):
    t, _, _, drain, current = _simulate(tmp_path, "full", (r"^VPIN .*$", "VPIN gpio 0 DC 3.3"))
    assert current[t > 100e-6].mean() * 1000 == pytest.approx(power.motor_ma(3.3), rel=0.03)
    assert drain[t > 100e-6].max() < 0.01


def test_a_floating_pin_leaves_the_motor_off(tmp_path):
    # at reset the pin is an input: at most its leakage (50 nA, ESP32-S3 datasheet Table 5-4) reaches the gate
    t, _, gate, _, current = _simulate(tmp_path, "float", (r"^VPIN .*$", "IPIN 0 gpio DC 50n"))
    assert gate.max() < 0.1, "the 100 kΩ pull-down holds the gate far below the threshold (0.65 V minimum)"
    assert np.abs(current[t > 10e-6]).max() < 1e-4


# --- BOM and power ------------------------------------------------------------------------------------------

def test_bom_totals_and_rows(tmp_path):
    rows = bom.load()
    totals = bom.totals(rows)
    assert totals["a"] == pytest.approx(sum(r.qty * r.unit_price for r in rows if "a" in r.builds))
    assert totals["b"] == pytest.approx(sum(r.qty * r.unit_price for r in rows if "b" in r.builds))
    assert f"USD {totals['a']:.2f}" in (HARDWARE / "README.md").read_text()
    broken = tmp_path / "bom.csv"
    text = bom.BOM_CSV.read_text().splitlines()
    broken.write_text("\n".join([text[0], text[1].replace(",1,", ",one,", 1)]) + "\n")
    with pytest.raises(bom.BomError, match="qty"):
        bom.load(broken)


def test_power_budget_orders_the_states():
    for build in power.BUILDS:
        stream, logging, idle, motor, walk = (sum(power.rail_ma(build, s).values()) for s in power.STATES)
        assert logging < idle < stream < walk < motor
        assert motor - stream == pytest.approx(power.motor_ma(3.3))
        hours = [power.hours(build, power.STATES[0], c) for c in power.CELLS_MAH]
        assert hours == sorted(hours) and hours[1] == pytest.approx(2 * hours[0])


# --- enclosure ---------------------------------------------------------------------------------------------

def _params(*files):
    """Plain numeric parameters (`name = 12.5;`) of .scad files, later files overriding earlier ones."""
    values = {}
    for name in files:
        for key, number in re.findall(r"^(\w+)\s*=\s*(-?[0-9.]+)\s*;", (ENCLOSURE / name).read_text(), re.MULTILINE):
            values[key] = float(number)
    return values


def _case_bbox(p):
    return (p["inner_w"] + 2 * p["wall"], p["back_t"] + p["inner_d"] + p["rail_h"] + p["detent_h"],
            p["inner_h"] + 2 * p["wall"])


def _lid_bbox(p):
    return p["inner_w"] + 2 * p["wall"], p["lid_t"] + p["lip_h"], p["inner_h"] + 2 * p["wall"]


def _sacrum_bbox(p):
    return p["clip_w"], p["back_t"] + p["belt_t"] + p["front_t"] + p["rail_h"] + p["rail_clear"], p["clip_h"]


def _thigh_bbox(p):
    r, c = p["thigh_r"], p["chord"]
    channel_w = p["rail_top_w"] + 2 * p["rail_clear"] + 2 * p["channel_wall"]
    y_low = -r + math.sqrt(r * r - c * c / 4)
    y_seat = -r + math.sqrt((r + p["shell_t"]) ** 2 - (channel_w / 2 + 1) ** 2)
    return c, y_seat + p["rail_h"] + p["rail_clear"] - y_low, p["clip_h"]


PARTS = [  # (file, part, bounding box from the parameters, overrides)
    ("case_a.scad", "case", _case_bbox, {}),
    ("case_a.scad", "lid", _lid_bbox, {}),
    ("case_b.scad", "case", _case_bbox, {}),
    ("case_b.scad", "lid", _lid_bbox, {}),
    ("clip_sacrum.scad", None, _sacrum_bbox, {}),
    ("clip_thigh.scad", None, _thigh_bbox, {}),
    ("case_a.scad", "case", _case_bbox, {"inner_h": 50, "wall": 2.4}),      # the model follows its parameters
    ("clip_thigh.scad", None, _thigh_bbox, {"thigh_r": 55, "chord": 60}),
]


def _render(tmp_path, scad, part=None, overrides=None):
    openscad = _tool("openscad")
    out = tmp_path / f"{Path(scad).stem}-{part}-{len(list(tmp_path.iterdir()))}.stl"
    args = [openscad, "-o", str(out)]
    if part is not None:
        args += ["-D", f'part="{part}"']
    for key, value in (overrides or {}).items():
        args += ["-D", f"{key}={value}"]
    done = subprocess.run(args + [str(ENCLOSURE / scad)], capture_output=True, text=True, timeout=240)
    return done, out


def read_stl(path):
    """Triangles (n, 3, 3) of an ASCII or binary STL."""
    data = path.read_bytes()
    if data[:5] == b"solid" and b"facet" in data[:512]:
        numbers = re.findall(rb"vertex\s+(\S+)\s+(\S+)\s+(\S+)", data)
        return np.array(numbers, dtype=float).reshape(-1, 3, 3)
    count = int(np.frombuffer(data[80:84], "<u4")[0])
    record = np.dtype([("normal", "<f4", 3), ("v", "<f4", (3, 3)), ("attr", "<u2")])
    return np.frombuffer(data[84:84 + record.itemsize * count], record)["v"].astype(float)


def closed_solid_report(triangles):
    """(edges not shared by exactly two triangles, directed edges not used exactly once, signed volume)."""
    _, index = np.unique(triangles.reshape(-1, 3), axis=0, return_inverse=True)
    faces = index.reshape(-1, 3)
    directed = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    _, undirected_count = np.unique(np.sort(directed, axis=1), axis=0, return_counts=True)
    _, directed_count = np.unique(directed, axis=0, return_counts=True)
    volume = np.einsum("ij,ij->i", triangles[:, 0], np.cross(triangles[:, 1], triangles[:, 2])).sum() / 6
    return int((undirected_count != 2).sum()), int((directed_count != 1).sum()), float(volume)


@pytest.mark.parametrize("scad, part, bbox, overrides", PARTS,
                         ids=[f"{s}-{p}-{'+'.join(o) or 'default'}" for s, p, _, o in PARTS])
def test_enclosure_part_is_a_closed_solid_of_its_size(tmp_path, scad, part, bbox, overrides):
    done, out = _render(tmp_path, scad, part, overrides)
    assert done.returncode == 0 and out.exists(), done.stderr[-3000:]
    assert "WARNING" not in done.stderr, done.stderr[-3000:]
    triangles = read_stl(out)
    open_edges, misoriented, volume = closed_solid_report(triangles)
    assert open_edges == 0, f"{open_edges} edges are not shared by exactly two triangles"
    assert misoriented == 0, f"{misoriented} edges are not walked once each way: faces are flipped"
    assert volume > 0
    params = _params("common.scad", scad) | {k: float(v) for k, v in overrides.items()}
    expected = np.array(bbox(params))
    size = np.ptp(triangles.reshape(-1, 3), axis=0)
    # facets of the round parts (the detent bump, the saddle) fall a few hundredths of a mm short of the true curve
    assert size == pytest.approx(expected, abs=0.05)
    echoed = re.findall(r"ECHO: (\w+)_bbox = \[([^\]]+)\]", done.stderr)
    declared = {name: [float(v) for v in values.split(",")] for name, values in echoed}
    assert declared[part or "clip"] == pytest.approx(expected, abs=1e-3), "the file's own size formula disagrees"


def test_a_cavity_too_small_for_the_parts_refuses_to_render(tmp_path):
    done, out = _render(tmp_path, "case_a.scad", "case", {"inner_d": 12})
    assert "inner_d is too small" in done.stderr
    assert not out.exists() or out.stat().st_size == 0
