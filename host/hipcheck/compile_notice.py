"""One line on stderr when numba starts compiling the signal kernels (and, asked, a second process to compile them
in parallel): a first run on a fresh install (or after an update, which changes the kernels' source) waits for the
compile, and should say why it is silent.

``announce_compiles(command)`` registers a listener on numba's ``numba:compile`` event. numba fires it only for a
real compile: a kernel loaded from its on-disk cache (``cache=True``, the usual case from the second run on) fires
none, so the line is printed exactly when the cache is cold, once per process. It goes to stderr when stderr is a
terminal (a person waiting), or when ``HIPCHECK_COMPILE_NOTICE=1``; a script reading stderr gets no extra line (the
CLI's contract is one line per failure, docs/cli.md).

With ``HIPCHECK_COMPILE_AHEAD=1`` it also starts, at that first compile, ``python -m hipcheck.warmup``, which
compiles the pipeline's stages from the end while this process compiles them from the start; each finds in numba's
on-disk cache what the other compiled, and it is ended when this process exits. Off by default: on the shared
2-core machine it was measured on (benchmarks/compile.py, load average 4-5) the command's own compile CPU fell from
35 to 26 s but its wait grew from 36 to 55 s, the second process taking the command's core rather than an idle one;
it pays only where a core is free.
"""

from __future__ import annotations

import atexit
import os
import subprocess
import sys

# The cold compile of the whole pipeline in a fresh process on 2 cores (benchmarks/compile.py, best of 3 on a
# machine shared with other jobs): the wait announced.
COLD_COMPILE_S = 40
ENV_FORCE = "HIPCHECK_COMPILE_NOTICE"
ENV_AHEAD = "HIPCHECK_COMPILE_AHEAD"

_listener = None
_helper: subprocess.Popen | None = None


def notice_line(command: str) -> str:
    return (f"hipcheck {command}: compiling the signal kernels once, about {COLD_COMPILE_S} s on 2 cores (numba; "
            "cached for the next runs)…")


def announce_compiles(command: str, out=None, *, ahead: bool | None = None) -> bool:
    """At numba's first compile in this process: say so once through ``out`` (a line on stderr by default, when
    stderr is a terminal or ``HIPCHECK_COMPILE_NOTICE=1``) and start the compile-ahead process (``ahead``; default:
    ``HIPCHECK_COMPILE_AHEAD=1``). Returns whether the line will be said."""
    global _listener
    if out is None and (os.environ.get(ENV_FORCE) == "1" or sys.stderr.isatty()):
        out = _print_stderr
    if ahead is None:
        ahead = os.environ.get(ENV_AHEAD) == "1"
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
