"""The one root of every error hipcheck raises, and the exit code the command line gives each kind.

Catch ``HipcheckError`` to catch anything the library refuses; each subclass keeps the built-in base that callers
of a numeric library expect (``ValueError`` for a bad value, ``TypeError`` for an unknown setting) so that
``except ValueError`` still works. The CLI prints ``str(error)`` on one line and exits with ``error.exit_code``:

====  =====================================================================
code  meaning
====  =====================================================================
0     done
1     the input was refused: a file, a recording, a value (``HipcheckError``)
2     the command line was wrong (argparse)
69    a device or link could not be reached or was lost (``DeviceError``)
70    an unexpected internal error: one line, and the traceback in a log file
130   interrupted (Ctrl-C)
====  =====================================================================
"""

from __future__ import annotations

__all__ = ["HipcheckError", "InvalidValueError", "InvalidTypeError", "DeviceError",
           "EXIT_OK", "EXIT_REFUSED", "EXIT_USAGE", "EXIT_DEVICE", "EXIT_INTERNAL", "EXIT_INTERRUPTED"]

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_DEVICE = 69       # sysexits EX_UNAVAILABLE
EXIT_INTERNAL = 70     # sysexits EX_SOFTWARE
EXIT_INTERRUPTED = 130


class HipcheckError(Exception):
    """Root of every error the library raises on purpose."""
    exit_code = EXIT_REFUSED


class InvalidValueError(HipcheckError, ValueError):
    """An argument, setting or array the library cannot use; the message names it and what would do."""


class InvalidTypeError(HipcheckError, TypeError):
    """An argument of the wrong type, or a setting name the stage does not have (as for an unexpected keyword)."""


class DeviceError(HipcheckError):
    """A sensor, link or port that could not be reached, or was lost."""
    exit_code = EXIT_DEVICE
