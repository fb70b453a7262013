"""One line on stderr when numba starts compiling the signal kernels: a first run on a fresh install (or after an
update, which changes the kernels' source) waits for the compile, and should say why it is silent.

``announce_compiles(command)`` registers a listener on numba's ``numba:compile`` event. numba fires it only for a
real compile: a kernel loaded from its on-disk cache (``cache=True``, the usual case from the second run on) fires
none, so the line is printed exactly when the cache is cold, once per process. It goes to stderr when stderr is a
terminal (a person waiting), or when ``HIPCHECK_COMPILE_NOTICE=1``; a script reading stderr gets no extra line (the
CLI's contract is one line per failure, docs/cli.md).
"""

from __future__ import annotations

import os
import sys

# The cold compile of the whole pipeline in a fresh process on 2 cores (benchmarks/compile.py, best of 3 on a
# machine shared with other jobs): the wait announced.
COLD_COMPILE_S = 40
ENV_FORCE = "HIPCHECK_COMPILE_NOTICE"

_listener = None


def notice_line(command: str) -> str:
    return (f"hipcheck {command}: compiling the signal kernels once, about {COLD_COMPILE_S} s on 2 cores (numba; "
            "cached for the next runs)…")


def announce_compiles(command: str, out=None) -> bool:
    """Say once, through ``out`` (a line on stderr by default), when numba starts compiling in this process.
    Returns whether the notice is armed (stderr a terminal, ``HIPCHECK_COMPILE_NOTICE=1``, or ``out`` given)."""
    global _listener
    if _listener is not None:
        return True
    if out is None:
        if not (os.environ.get(ENV_FORCE) == "1" or sys.stderr.isatty()):
            return False
        out = _print_stderr
    from numba.core import event

    class _Notice(event.Listener):
        said = False

        def on_start(self, ev) -> None:
            if not self.said:
                self.said = True
                out(notice_line(command))

        def on_end(self, ev) -> None:
            pass

    _listener = _Notice()
    event.register("numba:compile", _listener)
    return True


def stop_announcing() -> None:
    """Remove the listener (tests; a long-lived process that no longer wants the line)."""
    global _listener
    if _listener is not None:
        from numba.core import event

        event.unregister("numba:compile", _listener)
        _listener = None


def _print_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
