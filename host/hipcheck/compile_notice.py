"""One line on stderr when numba starts compiling the signal kernels (and, asked, a second process to compile them
in parallel): a first run on a fresh install (or after an update, which changes the kernels' source) waits for the
compile, and should say why it is silent.

``announce_compiles(command)`` registers a listener on numba's ``numba:compile`` event. numba fires it only for a
real compile: a kernel loaded from its on-disk cache (``cache=True``, the usual case from the second run on) fires
none, so the line is printed exactly when the cache is cold, once per process. It goes to stderr when stderr is a
terminal (a person waiting), or when ``HIPCHECK_COMPILE_NOTICE=1``; a script reading stderr gets no extra line (the
CLI's contract is one line per failure, docs/cli.md).

Where a core is idle it also starts, at that first compile, ``python -m hipcheck.warmup``, which compiles the
pipeline's stages from the end while this process compiles them from the start; each finds in numba's on-disk cache
what the other compiled, and it is ended when this process exits. It pays only where a core is free
(benchmarks/compile.py, walk, 2 cores: 19.8 s against 34.3 s alone at load 0.7-1.0, 30.2 against 37.1 at 1.6, but
52.6 against 43.5 at 2.2 and 53-56 against 36-37 at 4-5, the second process then taking the command's own core), so
it starts when the 1-minute load average leaves half a core spare (``AHEAD_SPARE_CORES``);
``HIPCHECK_COMPILE_AHEAD=1`` or ``0`` decides instead.
"""

from __future__ import annotations

import atexit
import os
import subprocess
import sys

# The cold compile of a walk's pipeline in a fresh process on 2 cores (benchmarks/compile.py: 34 s alone, 20 s with
# the compile-ahead process, a `hipcheck analyze` 28 s, on a quiet machine): the wait announced.
COLD_COMPILE_S = 30
ENV_FORCE = "HIPCHECK_COMPILE_NOTICE"
ENV_AHEAD = "HIPCHECK_COMPILE_AHEAD"
AHEAD_SPARE_CORES = 0.5  # the compile-ahead process starts while the load average is this far below the cores

_listener = None
_helper: subprocess.Popen | None = None


def notice_line(command: str) -> str:
    return (f"hipcheck {command}: compiling the signal kernels once, about {COLD_COMPILE_S} s on 2 cores (numba; "
            "cached for the next runs)…")


def announce_compiles(command: str, out=None, *, ahead: bool | None = None) -> bool:
    """At numba's first compile in this process: say so once through ``out`` (a line on stderr by default, when
    stderr is a terminal or ``HIPCHECK_COMPILE_NOTICE=1``) and start the compile-ahead process (``ahead``; default:
    ``ahead_wanted()``). Returns whether the line will be said."""
    global _listener
    if out is None and (os.environ.get(ENV_FORCE) == "1" or sys.stderr.isatty()):
        out = _print_stderr
    if ahead is None:
        ahead = ahead_wanted()
    if _listener is not None or (out is None and not ahead):
        return out is not None
    from numba.core import event

    class _Notice(event.Listener):
        said = False

        def on_start(self, ev) -> None:
            if not self.said:
                self.said = True
                if out is not None:
                    out(notice_line(command))
                if ahead:
                    start_compile_ahead()

        def on_end(self, ev) -> None:
            pass

    _listener = _Notice()
    event.register("numba:compile", _listener)
    return out is not None


def ahead_wanted() -> bool:
    """Compile ahead in a second process? ``HIPCHECK_COMPILE_AHEAD`` 1 or 0; unset, when a core is idle: the
    1-minute load average at least AHEAD_SPARE_CORES below the number of cores (module docstring)."""
    asked = os.environ.get(ENV_AHEAD)
    if asked in ("0", "1"):
        return asked == "1"
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # no load average on this system: leave the cores to the command
        return False
    cores = os.cpu_count() or 1
    return cores > 1 and load <= cores - AHEAD_SPARE_CORES


def start_compile_ahead() -> subprocess.Popen | None:
    """Start ``python -m hipcheck.warmup`` (once per process); it is ended when this process exits."""
    global _helper
    if _helper is None:
        try:
            _helper = subprocess.Popen([sys.executable, "-m", "hipcheck.warmup"], stdin=subprocess.DEVNULL,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except OSError:
            return None  # only a speed-up: the kernels compile here all the same
        atexit.register(_end_helper)
    return _helper


def _end_helper() -> None:
    if _helper is not None and _helper.poll() is None:
        _helper.terminate()
        try:
            _helper.wait(timeout=5)
        except subprocess.TimeoutExpired:
            _helper.kill()


def stop_announcing() -> None:
    """Remove the listener (tests; a long-lived process that no longer wants the line)."""
    global _listener
    if _listener is not None:
        from numba.core import event

        event.unregister("numba:compile", _listener)
        _listener = None


def _print_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
