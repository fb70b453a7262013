"""hipcheck.compile_notice: one line when numba compiles in the process, none when a kernel comes from the cache;
the CLI arms it for the commands that run the kernels (silent when stderr is not a terminal, so a failure stays one
line); the compile-ahead process compiles the later stages into the same on-disk cache."""

import numba
import numpy as np
import pytest

from hipcheck import cli, compile_notice


@pytest.fixture
def lines():
    compile_notice.stop_announcing()
    said = []
    yield said
    compile_notice.stop_announcing()


def test_one_line_at_the_first_compile_and_none_after(lines):
    assert compile_notice.announce_compiles("analyze", out=lines.append, ahead=False)
    assert lines == []

    @numba.njit
    def first(x):
        return x + 1

    @numba.njit
    def second(x):
        return x * 2

    assert first(1) == 2 and second(np.arange(3)).tolist() == [0, 2, 4]
    assert lines == [compile_notice.notice_line("analyze")]
    assert "compiling the signal kernels once" in lines[0] and f"about {compile_notice.COLD_COMPILE_S} s" in lines[0]


def test_nothing_said_when_nothing_compiles(lines):
    @numba.njit
    def ready(x):
        return x - 1

    ready(1)  # compiled before the notice is armed: calling it again compiles nothing
    compile_notice.announce_compiles("demo", out=lines.append, ahead=False)
    assert ready(5) == 4 and lines == []


def test_silent_without_a_terminal_unless_asked(monkeypatch):
    compile_notice.stop_announcing()
    monkeypatch.setenv(compile_notice.ENV_AHEAD, "0")
    monkeypatch.delenv(compile_notice.ENV_FORCE, raising=False)
    assert not compile_notice.announce_compiles("analyze")  # pytest's stderr is no terminal
    monkeypatch.setenv(compile_notice.ENV_FORCE, "1")
    try:
        assert compile_notice.announce_compiles("analyze")
    finally:
        compile_notice.stop_announcing()


def test_the_commands_that_run_kernels_are_armed():
    commands = set(next(a for a in cli.build_parser()._actions if a.dest == "command").choices)
    assert {"analyze", "export", "import", "demo", "live", "review"} <= set(cli.COMPILING_COMMANDS) <= commands


WARMUP_CHECK = """
import numpy as np
from hipcheck import detect, hold, warmup
from hipcheck.gait import strides
from hipcheck.motion import simulate_walk
from hipcheck.pipeline import analyze_arrays

warmup.compile_later_stages()
trace = simulate_walk(duration_s=8.0, seed=1)
analyze_arrays(trace.acc_sensor_m_s2, trace.gyr_sensor_rad_s, trace.fs_hz)
kernels = [hold.hold_update, detect.detect_update_samples, detect.detect_update_strides, strides._settle_strides]
print([len(k.signatures) for k in kernels])
"""


def test_the_compile_ahead_process_compiles_the_kernels_the_pipeline_calls():
    """hipcheck.warmup feeds the later stages arrays of the pipeline's types: the kernels it compiles are those the
    pipeline then calls (one signature each), so the CLI finds them in the cache. A fresh process: its own kernels'
    signatures, whatever this one compiled before."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", WARMUP_CHECK], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-4:] == ["[1,", "1,", "1,", "1]"]


@pytest.mark.parametrize("asked, load, cores, wanted", [
    ("1", 9.0, 2, True), ("0", 0.0, 8, False),  # the variable decides when set
    (None, 0.7, 2, True), (None, 1.5, 2, True), (None, 2.2, 2, False), (None, 3.0, 8, True), (None, 0.0, 1, False),
])
def test_the_compile_ahead_process_starts_where_a_core_is_idle(monkeypatch, asked, load, cores, wanted):
    """Unset, HIPCHECK_COMPILE_AHEAD follows the load: the second process shortened the wait at load 0.7-1.6 on 2
    cores and lengthened it from 2.2 on (benchmarks/compile.py)."""
    if asked is None:
        monkeypatch.delenv(compile_notice.ENV_AHEAD, raising=False)
    else:
        monkeypatch.setenv(compile_notice.ENV_AHEAD, asked)
    monkeypatch.setattr(compile_notice.os, "getloadavg", lambda: (load, load, load))
    monkeypatch.setattr(compile_notice.os, "cpu_count", lambda: cores)
    assert compile_notice.ahead_wanted() is wanted
