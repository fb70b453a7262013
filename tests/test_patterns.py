"""The vibration patterns are defined once per side: the host's ``hipcheck.device.PATTERNS`` (what a live session asks
the sensor to play) and the firmware's ``haptics.PATTERNS`` (what the sensor plays on its own alerts, as VIBRATE
payloads) must name the same patterns with the same intensity, repeat count and steps. The firmware module runs in
the MicroPython unix port, so the test reads the table the board would hold."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hipcheck.device import PATTERNS

ROOT = Path(__file__).resolve().parents[1]
FIRMWARE = ROOT / "firmware"
MICROPYTHON = shutil.which("micropython", path=str(Path(sys.executable).parent)) or shutil.which("micropython")

pytestmark = pytest.mark.skipif(MICROPYTHON is None, reason="the micropython unix port is not installed")

DUMP = r"""
import json
from haptics import PATTERNS
print(json.dumps({name: list(payload) for name, payload in PATTERNS.items()}))
"""


def firmware_patterns(tmp_path) -> dict[str, list[int]]:
    """firmware/haptics.py PATTERNS as the unix port loads it: name -> VIBRATE payload bytes."""
    script = tmp_path / "dump_patterns.py"
    script.write_text(DUMP)
    env = dict(os.environ, MICROPYPATH=f"{FIRMWARE / 'sim'}:{FIRMWARE}:.frozen")
    result = subprocess.run([MICROPYTHON, str(script)], capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def as_host(payload: list[int]) -> tuple:
    """A VIBRATE payload (intensity_pct, repeat, n_steps, on/off pairs) in the host's form."""
    intensity, repeat, n_steps = payload[:3]
    steps = tuple((payload[3 + 2 * i], payload[4 + 2 * i]) for i in range(n_steps) if 4 + 2 * i < len(payload))
    return intensity, repeat, steps, len(payload) - 3 - 2 * n_steps


def mismatches(firmware: dict[str, list[int]], host: dict[str, tuple]) -> list[str]:
    """What differs between the firmware's payloads and the host's patterns, one line each ([]: the same)."""
    found = [f"{name}: only on the {side}" for side, a, b in (("firmware", firmware, host), ("host", host, firmware))
             for name in sorted(set(a) - set(b))]
    for name in sorted(set(firmware) & set(host)):
        intensity, repeat, steps, extra = as_host(firmware[name])
        want = (host[name][0], host[name][1], tuple(tuple(step) for step in host[name][2]))
        if (intensity, repeat, steps) != want or extra:
            found.append(f"{name}: firmware {(intensity, repeat, steps)} (+{extra} bytes), host {want}")
    return found


def test_host_and_firmware_patterns_are_the_same(tmp_path):
    assert mismatches(firmware_patterns(tmp_path), PATTERNS) == []


def test_the_comparison_can_fail(tmp_path):
    firmware = firmware_patterns(tmp_path)
    altered = {**firmware, "sway": firmware["sway"][:3] + [firmware["sway"][3] + 1] + firmware["sway"][4:]}
    assert [m.split(" (")[0] for m in mismatches(altered, PATTERNS)] == ["sway: firmware"]
    assert mismatches({k: v for k, v in firmware.items() if k != "tilt"}, PATTERNS) == ["tilt: only on the host"]
    assert mismatches({**firmware, "tilt": firmware["tilt"] + [0]}, PATTERNS) != []
