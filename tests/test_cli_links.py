"""`hipcheck record`, `live` and `connect` on every link the CLI names: --ble through a bleak backend on bumble
(the emulated sensor, the firmware in MicroPython), --serial on a real pty with the firmware's sim board on the
other end, --replay of a log that `record --sim` wrote. (--sim itself: test_cli_live.py.)"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from support.bleak_bumble import Air  # noqa: E402
from support.firmware_pty import firmware_on_pty  # noqa: E402
from support.emulated_sensor import EmulatedSensor  # noqa: E402

from hipcheck import protocol  # noqa: E402
from hipcheck.cli import main  # noqa: E402
from hipcheck.imu_csv import write_imu_csv  # noqa: E402
from hipcheck.motion import SensorModel, simulate_walk  # noqa: E402
from hipcheck.record import LogReader  # noqa: E402
from hipcheck.links.simboard import firmware_command, prepare_trace  # noqa: E402

WALK_S = 20.0
SENSORS: list[EmulatedSensor] = []  # started by the --backend hook inside the CLI's event loop
WALK: dict = {}


@pytest.fixture(scope="module")
def walk_csv(tmp_path_factory):
    trace = simulate_walk(duration_s=WALK_S, seed=4, drop_right_deg=9.0, sensor=SensorModel.realistic(seed=4))
    path = tmp_path_factory.mktemp("cli-links") / "walk.csv"
    write_imu_csv(path, trace.t_s, trace.acc_sensor_m_s2, trace.gyr_sensor_rad_s)
    WALK["csv"] = path
    return path


async def walk_air():
    """`--backend test_cli_links:walk_air`: the emulated sensor on the walk, alone on a fresh air (fast board)."""
    air = Air()
    SENSORS.append(await EmulatedSensor(air, WALK["csv"], seconds=WALK_S - 1).start())
    return air.backend()


@pytest.fixture
def emulated_sensors():
    yield SENSORS
    for sensor in SENSORS:  # the CLI's loop is closed: stop the firmware process directly
        if sensor.board is not None:
            sensor.board.close()
    SENSORS.clear()


def test_live_over_ble_names_the_weak_side(walk_csv, emulated_sensors, tmp_path, capsys):
    log = tmp_path / "ble.hclog"
    assert main(["live", "--ble", "hipcheck-0001", "--backend", "test_cli_links:walk_air", "-o", str(log)]) == 0
    out = capsys.readouterr().out
    assert "weak side: right" in out
    assert "0 lost and marked" in out
    assert len(emulated_sensors) == 1 and emulated_sensors[0].connections == 1
    # the host's VIBRATEs reached the sensor's control characteristic
    command = protocol.kind_byte(protocol.PacketType.COMMAND)
    vibrates = [w for w in emulated_sensors[0].writes if w[:2] == bytes([command, protocol.Opcode.VIBRATE])]
    assert vibrates
    header = LogReader(log).header
    assert header["link"] == "ble" and header["device"]["imu"] == "LSM6DSOX"


def test_connect_over_ble_prints_info_and_figures(walk_csv, emulated_sensors, capsys):
    assert main(["connect", "--ble", "hipcheck-0001", "--backend", "test_cli_links:walk_air", "--seconds", "2"]) == 0
    out = capsys.readouterr().out
    assert "board sim" in out and "imu LSM6DSOX" in out
    assert any("connected True" in line and "packets" in line for line in out.splitlines())


def test_backend_for_a_non_ble_link_is_a_usage_error(walk_csv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["connect", "--sim", str(walk_csv), "--backend", "test_cli_links:walk_air"])
    assert exit_info.value.code == 2
    assert "--backend applies to --ble only" in capsys.readouterr().err


def test_unknown_ble_backend_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["live", "--ble", "hipcheck-0001", "--backend", "no_such_module:air"])
    assert exit_info.value.code == 2
    assert "no_such_module" in capsys.readouterr().err


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pty")
def test_record_over_serial_pty(walk_csv, tmp_path, capsys):
    trace = tmp_path / "trace.hct"
    prepare_trace(walk_csv, trace, "LSM6DSOX", 100)
    args, env = firmware_command(trace, "--link", "serial", "--seconds", repr(WALK_S - 2), "--realtime")
    log = tmp_path / "serial.hclog"
    with firmware_on_pty(args, env, tmp_path) as port:
        code = main(["record", "--serial", port, "-o", str(log), "--seconds", "12"])
    out = capsys.readouterr().out
    assert code == 0, (tmp_path / "stderr.txt").read_text(errors="replace")
    assert "weak side: right" in out
    header = LogReader(log).header
    assert header["link"] == "serial" and header["device"]["board"] == "sim"


def test_record_sim_then_replay_gives_the_same_strides(walk_csv, tmp_path, capsys):
    log = tmp_path / "sim.hclog"
    assert main(["record", "--sim", str(walk_csv), "-o", str(log)]) == 0
    recorded = capsys.readouterr().out
    assert main(["live", "--replay", str(log)]) == 0
    replayed = capsys.readouterr().out
    assert "weak side: right" in recorded and "weak side: right" in replayed

    def stride_lines(text):
        return [line for line in text.splitlines() if " stride " in line and "cadence" in line]

    assert stride_lines(recorded) and stride_lines(replayed) == stride_lines(recorded)
    assert main(["connect", "--replay", str(log), "--seconds", "1"]) == 0
    assert "connected" in capsys.readouterr().out
