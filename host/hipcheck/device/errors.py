"""The device session's errors, under ``hipcheck.errors.DeviceError`` (exit code 69 at the command line)."""

from __future__ import annotations

from hipcheck.errors import DeviceError
from hipcheck.protocol import Status


class SessionError(DeviceError, RuntimeError):
    """The session cannot go on (sensor silent, gone, or a protocol the host does not speak); says what to do."""


class CommandError(SessionError):
    """A command got no ACK in time (``status`` None) or was refused (``status`` the ACK's)."""

    def __init__(self, message: str, status: Status | None = None):
        super().__init__(message)
        self.status = status
