"""The firmware (the MicroPython unix port) on a pseudo-terminal, as a sensor on USB serial: the host side opens
the slave tty by its path, as it would /dev/ttyACM0."""

from __future__ import annotations

import os
import subprocess
import tty
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def firmware_on_pty(args: list, env: dict, workdir: Path):
    """Run ``args`` (``hipcheck.links.simboard.firmware_command``'s) on a raw pty's master; yields the slave tty's
    path. The firmware's stderr goes to ``workdir/stderr.txt``; the firmware is killed when the block ends."""
    master, slave = os.openpty()
    tty.setraw(slave)  # raw before the firmware's first byte, as pyserial would make it
    with open(workdir / "stderr.txt", "wb") as err:
        proc = subprocess.Popen(args, stdin=master, stdout=master, stderr=err, env=env, cwd=workdir)
    os.close(master)
    try:
        yield os.ttyname(slave)
    finally:
        proc.kill()
        proc.wait()
        os.close(slave)
