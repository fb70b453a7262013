"""Every command of the installed `hipcheck` entry point meets a missing file, a bad option, garbage files and a
device that is not there: one line on stderr, no traceback, the exit code of docs/cli.md (hipcheck.errors).

The commands are read from the parser, so a new command is caught here until its cases are written down."""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from hipcheck import cli
from hipcheck.errors import (EXIT_DEVICE, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_REFUSED, EXIT_USAGE, DeviceError,
                             InvalidValueError)

COMMANDS = sorted(next(action for action in cli.build_parser()._actions
                       if isinstance(action, argparse._SubParsersAction)).choices)

NO_PORT = "/dev/ttyHIPCHECK-NO-SUCH-PORT"
NO_BLE = "hipcheck-no-such-sensor"
# Placeholders: {missing} a file that does not exist, {missing_dir} a folder that does not exist, {tmp} a scratch
# folder, {file} each garbage file in turn.
MISSING = {  # command -> [(arguments naming a missing file, exit code)]
    "calibrate": [(["mount", "--from", "{missing}"], EXIT_REFUSED)],
    "simulate": [(["walk", "-o", "{missing_dir}/x.csv"], EXIT_REFUSED)],
    "orient": [(["{missing}", "-o", "{tmp}/q.csv"], EXIT_REFUSED)],
    "analyze": [(["{missing}"], EXIT_REFUSED)],
    "simboard": [(["{missing}"], EXIT_REFUSED)],
    "demo": [(["--headless", "--record", "{missing_dir}/x.hclog"], EXIT_REFUSED)],
    "flash": [(["--board", "xiao-esp32s3", "--port", NO_PORT, "--firmware", "{missing}"], EXIT_REFUSED)],
    "record": [(["--sim", "{missing}", "-o", "{tmp}/r.hclog"], EXIT_REFUSED),
               (["--replay", "{missing}", "-o", "{tmp}/r.hclog"], EXIT_REFUSED),
               (["--sim", "{missing}", "-o", "{missing_dir}/r.hclog"], EXIT_REFUSED)],
    "live": [(["--sim", "{missing}"], EXIT_REFUSED), (["--replay", "{missing}"], EXIT_REFUSED)],
    "connect": [(["--sim", "{missing}"], EXIT_REFUSED), (["--replay", "{missing}"], EXIT_REFUSED)],
    "scan": [],  # reads no file
    "pair": [],
    "sync": [(["--sim", "{missing_dir}/flash.bin", "-o", "{tmp}/copies"], EXIT_REFUSED),
             (["--sim", "{tmp}/flash.bin", "--sim-trace", "{missing}", "-o", "{tmp}/copies"], EXIT_REFUSED)],
    "review": [(["{missing}", "-o", "{tmp}/r.html"], EXIT_REFUSED)],
    "export": [(["{missing}"], EXIT_REFUSED), (["{missing}", "-o", "{missing_dir}/out"], EXIT_REFUSED)],
    "import": [(["{missing}", "-o", "{tmp}/x.hclog"], EXIT_REFUSED)],
}
GARBAGE = {  # command -> [arguments reading {file}]; every one exits EXIT_REFUSED
    "calibrate": [["mount", "--from", "{file}", "--json"]],
    "simulate": [],
    "orient": [["{file}", "-o", "{tmp}/q.csv"]],
    "analyze": [["{file}"]],
    "simboard": [["{file}"]],
    "demo": [],
    "flash": [["--board", "xiao-esp32s3", "--port", NO_PORT, "--firmware", "{file}"]],
    "record": [["--sim", "{file}", "-o", "{tmp}/r.hclog"], ["--replay", "{file}", "-o", "{tmp}/r.hclog"]],
    "live": [["--sim", "{file}"], ["--replay", "{file}"]],
    "connect": [["--sim", "{file}"], ["--replay", "{file}"]],
    "scan": [],
    "pair": [],
    "sync": [["--sim", "{tmp}/flash.bin", "--sim-trace", "{file}", "-o", "{tmp}/copies"]],
    "review": [["{file}", "-o", "{tmp}/r.html"]],
    "export": [["{file}", "-o", "{tmp}/out"]],
    "import": [["{file}", "-o", "{tmp}/x.hclog"]],
}
DEVICE = {  # command -> [(arguments naming a device that is not there, or a wrong one, exit code)]
    "calibrate": [(["mount", "--serial", NO_PORT, "--non-interactive"], EXIT_DEVICE),
                  (["gyro", "--ble", NO_BLE, "--non-interactive"], EXIT_DEVICE)],
    "simulate": [],
    "orient": [],
    "analyze": [],
    "simboard": [],
    "demo": [],
    "flash": [(["--board", "xiao-esp32s3", "--port", NO_PORT], EXIT_DEVICE),
              (["--board", "no-such-board", "--port", NO_PORT], EXIT_USAGE)],
    "record": [(["--serial", NO_PORT, "-o", "{tmp}/r.hclog"], EXIT_DEVICE),
               (["--ble", NO_BLE, "-o", "{tmp}/r.hclog"], EXIT_DEVICE)],
    "live": [(["--serial", NO_PORT], EXIT_DEVICE), (["--ble", NO_BLE], EXIT_DEVICE)],
    "connect": [(["--serial", NO_PORT], EXIT_DEVICE), (["--ble", NO_BLE, "--seconds", "1"], EXIT_DEVICE)],
    "scan": [(["--seconds", "0.5"], EXIT_DEVICE)],
    "pair": [(["--ble", NO_BLE], EXIT_DEVICE)],
    "sync": [(["--serial", NO_PORT, "-o", "{tmp}/copies"], EXIT_DEVICE),
             (["--ble", NO_BLE, "-o", "{tmp}/copies"], EXIT_DEVICE)],
    "review": [],  # a Dask scheduler that is not there: tests/test_review.py (it needs a good log to get that far)
    "export": [],
    "import": [],
}


def _hipcheck() -> list[str]:
    script = Path(sys.executable).with_name("hipcheck")
    return [str(script)] if script.exists() else [sys.executable, "-m", "hipcheck"]


def run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    # No Bluetooth: the system D-Bus is pointed at nothing, so that a BLE command fails at once on any Linux host.
    env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS="unix:path=/nonexistent/hipcheck-test-bus",
               XDG_CACHE_HOME=str(cwd / "cache"))
    # Generous: a command on a link warms the pipeline up first, a minute or two on a cold numba cache.
    return subprocess.run(_hipcheck() + argv, capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


def assert_one_line(result: subprocess.CompletedProcess, command: str, code: int) -> None:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"hipcheck {command}: "), lines[0]
    assert result.returncode == code, (result.returncode, lines[0])


@pytest.fixture(scope="module")
def garbage(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("garbage")
    noise = folder / "noise.bin"
    noise.write_bytes(random.Random(9).randbytes(4096))
    text = folder / "notes.txt"
    text.write_text("this is not a recording\nonly a note, 1, 2, 3\n")
    return {"random bytes": noise, "text": text}


def fill(argv: list[str], tmp_path: Path, file: Path | None = None) -> list[str]:
    names = {"missing": str(tmp_path / "no-such-file.csv"), "missing_dir": str(tmp_path / "no-such-folder"),
             "tmp": str(tmp_path), "file": str(file)}
    return [arg.format(**names) for arg in argv]


def test_every_command_has_its_cases():
    for name, table in (("MISSING", MISSING), ("GARBAGE", GARBAGE), ("DEVICE", DEVICE)):
        assert sorted(table) == COMMANDS, f"write down the error cases of each command in {name} (an empty list " \
            "when it reads no file or talks to no device)"


@pytest.mark.parametrize("command", COMMANDS)
def test_bad_option(command, tmp_path):
    assert_one_line(run([command, "--no-such-option"], tmp_path), command, EXIT_USAGE)


@pytest.mark.parametrize("command, argv, code",
                         [(c, argv, code) for c in COMMANDS for argv, code in MISSING.get(c, [])])
def test_missing_file(command, argv, code, tmp_path):
    result = run([command, *fill(argv, tmp_path)], tmp_path)
    assert_one_line(result, command, code)
    if code == EXIT_REFUSED:
        # which file, or which folder of an output
        assert "no-such-file.csv" in result.stderr or "no-such-folder does not exist" in result.stderr


@pytest.mark.parametrize("kind", ["random bytes", "text"])
@pytest.mark.parametrize("command, argv", [(c, argv) for c in COMMANDS for argv in GARBAGE.get(c, [])])
def test_garbage_file(command, argv, kind, garbage, tmp_path):
    assert_one_line(run([command, *fill(argv, tmp_path, garbage[kind])], tmp_path), command, EXIT_REFUSED)


@pytest.mark.parametrize("command, argv, code",
                         [(c, argv, code) for c in COMMANDS for argv, code in DEVICE.get(c, [])])
def test_device_not_there(command, argv, code, tmp_path):
    assert_one_line(run([command, *fill(argv, tmp_path)], tmp_path), command, code)


def test_usage_error_without_a_command(tmp_path):
    result = run([], tmp_path)
    assert result.returncode == EXIT_USAGE
    assert result.stderr.strip().splitlines() == [
        "hipcheck: the following arguments are required: COMMAND (see hipcheck --help)"]


def _raising(error: BaseException):
    def run_command(args, parser):
        raise error
    return run_command


def test_unexpected_error_exits_70_with_the_traceback_in_a_log(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(cli, "run_analyze", _raising(ZeroDivisionError("the bug under test")))
    assert cli.main(["analyze", "walk.csv"]) == EXIT_INTERNAL
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("hipcheck analyze: unexpected error ZeroDivisionError: the bug under test")
    log = Path(err.split("the full traceback is in ")[1].split(" (")[0])
    assert log.parent == tmp_path / "cache" / "hipcheck" and log.exists()
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "ZeroDivisionError: the bug under test" in text
    assert "command: hipcheck analyze walk.csv" in text


def test_crash_log_falls_back_to_the_temp_folder(monkeypatch, tmp_path, capsys):
    blocked = tmp_path / "cache-is-a-file"
    blocked.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(cli, "run_scan", _raising(RuntimeError("boom")))
    assert cli.main(["scan"]) == EXIT_INTERNAL
    log = Path(capsys.readouterr().err.split("the full traceback is in ")[1].split(" (")[0])
    assert log.parent == tmp_path / "tmp" / "hipcheck" and "RuntimeError: boom" in log.read_text()


@pytest.mark.parametrize("error, code, line", [
    (KeyboardInterrupt(), EXIT_INTERRUPTED, "hipcheck live: interrupted"),
    (InvalidValueError("a value\nover two lines"), EXIT_REFUSED, "hipcheck live: a value; over two lines"),
    (DeviceError("the sensor went away"), EXIT_DEVICE, "hipcheck live: the sensor went away"),
    (PermissionError(13, "Permission denied", "walk.csv"), EXIT_REFUSED, "hipcheck live: walk.csv: Permission denied"),
])
def test_each_kind_of_error_is_one_line_and_its_code(monkeypatch, capsys, error, code, line):
    monkeypatch.setattr(cli, "run_live", _raising(error))
    assert cli.main(["live", "--serial", NO_PORT]) == code
    assert capsys.readouterr().err.splitlines() == [line]
