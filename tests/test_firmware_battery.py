"""The battery, real parts end to end: the firmware's reading (firmware/battery.py through the board's divider and
ADC) of the emulated cell of the sim board (firmware/sim/machine.py: a LiPo that drains on the sim clock with the
board's current and with the motor's duty), in the MicroPython unix port; INFO, the LOW_BATTERY event (once, on
the way down, with hysteresis) and the BLE Battery Level characteristic (bleak over bumble) follow it; the host says
it where a wearer looks (`hipcheck live` over a real pty: the sensor line, the one low-battery line, the closing
summary). The cells are small (half a mAh: 2 % a second at the board's 35.9 mA) so that a run of seconds crosses the
10 % threshold.
"""

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hipcheck.cli import main as cli_main
from hipcheck.links import within
from hipcheck.links.ble import BATTERY_LEVEL_UUID, BleLink
from hipcheck.links.simboard import SimBoard, firmware_command, prepare_trace
from hipcheck.protocol import EventCode, Opcode, Status
from support.firmware_pty import firmware_on_pty

ROOT = Path(__file__).resolve().parents[1]
FIRMWARE = ROOT / "firmware"
MICROPYTHON = shutil.which("micropython", path=str(Path(sys.executable).parent)) or shutil.which("micropython")
pytestmark = pytest.mark.skipif(MICROPYTHON is None, reason="micropython unix port not installed")
ENV = dict(os.environ, MICROPYPATH=f"{FIRMWARE / 'sim'}:{FIRMWARE}:.frozen")

# The published curve the firmware reads (Meshtastic src/power.h OCV_ARRAY), 100 % .. 0 % in 10 % steps
OCV_MV = (4190, 4050, 3990, 3890, 3800, 3720, 3630, 3530, 3420, 3300, 3100)


def curve_pct(mv: float) -> float:
    """The state of charge of OCV_MV at mv, interpolated (the test's own reading of the curve)."""
    import numpy as np

    return float(np.interp(mv, OCV_MV[::-1], np.arange(0, 101, 10)))


@pytest.fixture(scope="module")
def walk_csv(tmp_path_factory):
    out = tmp_path_factory.mktemp("battery") / "walk.csv"
    assert cli_main(["simulate", "walk", "--seconds", "16", "-o", str(out)]) == 0
    return out


def run_mpy(tmp_path, script):
    path = tmp_path / "script.py"
    path.write_text(script)
    result = subprocess.run([MICROPYTHON, str(path)], capture_output=True, text=True, timeout=60, env=ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_reading_curve_and_hysteresis_in_the_unix_port(tmp_path):
    """battery.Cell reads the emulated cell through boards/sim.py's divider and ADC to within the ADC's step; the
    percentage follows the curve; the Monitor fires once on the way down (not again while the charge wanders
    around the threshold), re-arms only above 15 %, and refreshes the level only when it changes."""
    out = run_mpy(tmp_path, """
import json, machine, battery
import boards.sim as board
cell = machine.battery
cell.configure(capacity_mah=1, soc_pct=14)     # 1 mAh at 35.9 mA: 1 % every 1.0 s of sim clock
r = {"curve": [battery.percent(v) for v in (4300, 4190, 4120, 4050, 3800, 3475, 3300, 3200, 3100, 2900)]}
mv, pct = board.battery()
r["first"] = [mv, pct, cell.mv()]
class Rp2Adc:  # the same emulated converter as the RP2040 port offers it: read_u16 only, no calibrated read_uv
    def __init__(self, adc):
        self.read_u16 = adc.read_u16
rp2 = battery.Cell(board.BATTERY_ADC_PIN, board.BATTERY_DIVIDER, 3100)  # vref: the emulated converter's full scale
rp2._adc = Rp2Adc(machine.ADC(machine.Pin(board.BATTERY_ADC_PIN)))
r["rp2"] = rp2.read()[0]
events, levels = [], []
mon = battery.Monitor(board.battery, lambda mv, pct: events.append([mv, pct, cell.soc_permille()]), levels.append)
def run(seconds):
    for _ in range(seconds * 50):              # 20 ms sampling steps
        machine.clock.advance_us(20000)
        mon.tick(20)
run(12)                                        # 14 % -> 2 %: the fall through 10 %
r["after_fall"] = [len(events), mon.armed, mon.pct]
cell.charge_uc = cell.capacity_uc * 12 // 100  # charged a little (to 12 %): still below the re-arm level
run(3)
r["no_rearm"] = [len(events), mon.armed]
cell.charge_uc = cell.capacity_uc * 60 // 100  # charged: re-armed
run(6)
r["rearmed"] = mon.armed
cell.charge_uc = cell.capacity_uc * 11 // 100   # a second fall: a second event
run(12)
r["events"] = events
r["levels"] = levels
r["readings"] = mon.readings
r["motor"] = []
p = machine.PWM(machine.Pin(1), freq=20000, duty_u16=0)
cell.configure(capacity_mah=10, soc_pct=50)
for duty in (0, 65535, 32768):                 # 10 s each: idle, full, half duty
    before = cell.charge_uc
    p.duty_u16(duty)
    machine.clock.advance_us(10000000)
    cell.settle()
    r["motor"].append(before - cell.charge_uc)
print(json.dumps(r))
""")
    assert out["curve"] == [100, 100, 95, 90, 60, 25, 10, 5, 0, 0]
    mv, pct, model_mv = out["first"]
    assert abs(mv - model_mv) <= 2  # 12 bits over 3.1 V at the pin, times 2 for the divider: 1.5 mV a step
    assert abs(mv - (3300 + 0.4 * 120 - 35.9 * 0.150)) <= 2  # 14 % on the curve, less 35.9 mA x 150 mOhm
    assert pct == 13  # the cell's voltage under the board's load reads a little below its state of charge
    assert abs(out["rp2"] - model_mv) <= 2  # read_u16 over the reference, as on the RP2040
    assert out["after_fall"][:2] == [1, False] and out["after_fall"][2] <= 6  # 2 %, seen ~4 s late
    assert out["no_rearm"] == [1, False]
    assert out["rearmed"] is True
    assert len(out["events"]) == 2  # once per fall, however long the charge stays low
    for mv, pct, soc_permille in out["events"]:
        assert pct <= 10 and abs(pct - curve_pct(mv)) <= 1
    # the smoothing lags the cell by a few seconds (here 1 % a second: a real cell takes minutes a percent)
    assert 60 <= out["events"][0][2] <= 110
    levels = out["levels"]
    assert len(levels) < out["readings"] and all(a != b for a, b in zip(levels, levels[1:]))
    idle, full, half = out["motor"]
    assert idle == 359000  # 35.9 mA for 10 s, in µC
    assert full == 359000 + 660000 and abs(half - (359000 + 330000)) <= 10


def test_sim_board_info_event_motor_and_alloc(walk_csv, tmp_path):
    """The sim board on a 0.5 mAh cell at 13 %: INFO reports the cell as the model has it (at the end, the sim clock
    stopped: equal to the model's voltage within the ADC's step), LOW_BATTERY comes once as it falls through 10 %,
    a VIBRATE's motor drains it more, and the sampling loop still allocates nothing."""
    record = tmp_path / "battery.json"
    sb = SimBoard(walk_csv, seconds=10.0, workdir=tmp_path, log=False,
                  extra_args=("--no-alerts", "--battery", "0.5:13", "--battery-record", record))
    with sb:
        sb.wait_samples(50)
        first = sb.command(Opcode.INFO)
        vibrate = sb.command(Opcode.VIBRATE, intensity_pct=100, repeat=0, steps=[(30, 0)])
        t_vibrate = time.monotonic()  # the pattern plays 0.3 s of wall time (the sim clock runs faster)
        last = None
        while True:  # to the end of the trace: the clock stops, the cell's voltage with it
            pong = sb.command(Opcode.TIME_SYNC, host_token=1)
            if pong.fields["next_seq"] == last:
                break
            last = pong.fields["next_seq"]
            time.sleep(0.1)
        time.sleep(max(0.0, t_vibrate + 0.5 - time.monotonic()))  # the motor off: no sag in the last reading
        end = sb.command(Opcode.INFO)
        result = sb.finish()
    cell = json.loads(record.read_text())
    assert first.status == end.status == vibrate.status == Status.OK
    assert 10 <= first.fields["battery_pct"] <= 13
    assert abs(end.fields["battery_mv"] - cell["mv"]) <= 2
    assert abs(end.fields["battery_pct"] - curve_pct(cell["mv"])) <= 1
    lows = [e for e in result.events if e.code == EventCode.LOW_BATTERY]
    assert len(lows) == 1 and lows[0].fields["battery_pct"] <= 10
    assert result.record["app"]["battery"]["events"] == 1
    # the drain: the board's current over the sim clock, plus what the motor took (the pattern's 2 s at full duty)
    sim_s = result.record["sim_s"]
    assert cell["motor_mah"] > 0
    expected = 0.5 * 0.13 - 35.9 * sim_s / 3600 - cell["motor_mah"]
    assert cell["charge_mah"] == pytest.approx(max(expected, 0), abs=2e-4)
    assert result.record["app"]["alloc_bytes"] == 0 and result.record["app"]["alloc_samples"] > 500


def test_ble_battery_level_follows_the_cell(walk_csv):
    """Over the firmware's own GATT server (bleak over bumble, real time): the Battery Level a central reads and is
    notified of falls with the cell, LOW_BATTERY reaches the host once, and the level ends where the firmware's
    monitor ends."""
    from support.bleak_bumble import Air
    from support.firmware_peripheral import FirmwarePeripheral
    from hipcheck.device import DeviceSession, SessionSettings

    async def main():
        air = Air()
        # 0.5 mAh at 12 %: 2 % a second
        async with FirmwarePeripheral(air, walk_csv, seconds=7,
                                      extra_args=("--no-alerts", "--battery", "0.5:12")) as sensor:
            async with BleLink(sensor.name, backend=air.backend(), mtu=247, watchdog_s=None) as link:
                await link.pair()
                first = link.status().battery_pct
                async with DeviceSession(link, SessionSettings(start_seq=0)) as session:
                    async for _ in session.blocks():
                        pass
                    info = await session.info()
                    notified = link.status().battery_pct  # the notifications' last value
                    client = link._client  # noqa: SLF001  (a plain GATT read, as any central does)
                    read = (await client.read_gatt_char(BATTERY_LEVEL_UUID))[0]
                    events = [e for e in session.events if e.code == EventCode.LOW_BATTERY]
        return first, notified, read, info, events, sensor.record

    first, notified, read, info, events, record = asyncio.run(within(main(), 45))
    assert 10 <= first <= 12
    assert read == notified == record["app"]["battery"]["pct"]  # notified as it changed, up to the last change
    # falling: the level (smoothed over ~4 s) lags INFO's fresh reading a little, never leads it
    assert read <= first - 4 and 0 <= read - info["battery_pct"] <= 8
    assert len(events) == 1 and events[0].fields["battery_pct"] <= 10


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pty")
def test_record_over_serial_says_the_battery_and_names_the_sensor(walk_csv, tmp_path, capsys):
    """`hipcheck record --serial` (the live job, and its log) on a real pty with the firmware on a low cell: the
    sensor line names the sensor and its battery, the LOW_BATTERY event is one clear line, the closing summary
    gives the battery at the end, and the log names the sensor as BLE names it (its calibration profile's key)."""
    trace = tmp_path / "trace.hct"
    prepare_trace(walk_csv, trace, "LSM6DSOX", 100)
    # 2 mAh at 14 %: 0.5 % a second, through 10 % after ~8 s of the 16 s walk (the sim clock runs on a little
    # before the host reads: what the pty holds)
    args, env = firmware_command(trace, "--link", "serial", "--no-alerts", "--battery", "2:14")
    log = tmp_path / "serial.hclog"
    with firmware_on_pty(args, env, tmp_path) as port:
        code = cli_main(["record", "--serial", port, "-o", str(log), "--no-profile", "--seconds", "15"])
    out = capsys.readouterr().out
    assert code == 0, (tmp_path / "stderr.txt").read_text(errors="replace")
    lines = out.splitlines()
    sensor = [line for line in lines if line.startswith("sensor hipcheck-4D01: sim board")]
    assert len(sensor) == 1 and re.search(r"battery 3\.[34]\d V, 1[0-4] %$", sensor[0]), sensor
    low = [line for line in lines if line.startswith("sensor battery low: ")]
    assert len(low) == 1, out  # once, from the event (or INFO at connect, had it been low already)
    assert lines.index(low[0]) > lines.index(sensor[0])
    mv, pct = low[0].removeprefix("sensor battery low: ").split(": charge it after this session")[0].split(", ")
    assert float(mv.removesuffix(" V")) < 3.31 and int(pct.removesuffix(" %")) <= 10
    closing = [line for line in lines if line.startswith("sensor battery: ")]
    assert len(closing) == 1 and closing[0].endswith(": low, charge it"), closing
    print("\n".join(sensor + low + closing))
    from hipcheck.record import LogReader

    assert LogReader(log).header["device_id"] == "hipcheck-4D01"


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pty")
def test_connect_over_serial_to_firmware_without_name_id(walk_csv, tmp_path, monkeypatch, capsys):
    """Firmware from before INFO's name_id (it answers the 4-byte INFO with BAD_LENGTH): `hipcheck connect --serial`
    works as before, says it cannot name the sensor on this link, and shows the battery in V and % on its lines."""
    old = tmp_path / "firmware"
    shutil.copytree(FIRMWARE, old)
    packet = old / "packet.py"
    text = packet.read_text()
    for new, before in (('INFO: ("<B", ("with_id",)),', 'INFO: ("", ()),'),
                        ("COMMAND_OPTIONAL = {LOG_LIST: 1, INFO: 1}", "COMMAND_OPTIONAL = {LOG_LIST: 1}")):
        assert new in text
        text = text.replace(new, before)
    packet.write_text(text)
    monkeypatch.setenv("HIPCHECK_FIRMWARE", str(old))
    trace = tmp_path / "trace.hct"
    prepare_trace(walk_csv, trace, "LSM6DSOX", 100)
    args, env = firmware_command(trace, "--link", "serial", "--realtime", "--battery", "350:60")
    assert str(old) in env["MICROPYPATH"]
    with firmware_on_pty(args, env, tmp_path) as port:
        code = cli_main(["connect", "--serial", port, "--seconds", "2.5"])
    out = capsys.readouterr().out
    assert code == 0, (tmp_path / "stderr.txt").read_text(errors="replace")
    lines = out.splitlines()
    assert "sensor (its name unknown on this link): battery 3.7" in out and "low" not in out, out
    status = [line for line in lines if "connected True" in line]
    assert len(status) >= 2 and all(re.search(r"battery 3\.7\d V, 5\d %", line) for line in status), status


def test_wiring_refuses_a_battery_pin_without_an_adc():
    """hardware/wiring.py holds the pin files' battery-sense pin to an ADC input the firmware can read with the
    radio on (ESP32-S3 ADC1, RP2040 ADC0-3)."""
    sys.path.insert(0, str(ROOT / "hardware"))
    try:
        import netlist
        import wiring
    finally:
        sys.path.pop(0)
    net = netlist.read(wiring.NETLIST)
    for build in wiring.BUILDS:
        board = wiring.load_board(build.module)
        wiring.check_board(build, board, net)  # the real pin files pass
        board.BATTERY_ADC_PIN = board.LED_PIN  # no ADC there (GPIO21 on the XIAO, GPIO6 on the Nano)
        with pytest.raises(wiring.WiringError, match="not an ADC input"):
            wiring.check_board(build, board, net)
