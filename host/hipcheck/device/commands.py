"""Commands to the sensor: their fields by name, and the channel that sends each and waits for its ACK.

A COMMAND carries a token (1–255) that its ACK echoes; ``CommandChannel`` hands out tokens not in use, sends, waits
for the ACK with the same token and opcode, and sends again after a timeout. An ACK that no command waits for is
the late answer to one already retried (or, in a replay, the recorded session's).
"""

from __future__ import annotations

import asyncio
import time

from hipcheck import protocol
from hipcheck.device.errors import CommandError, SessionError
from hipcheck.links import Link, LinkError, within
from hipcheck.protocol import Ack, Opcode

# The firmware's built-in patterns (firmware/haptics.py PATTERNS): intensity_pct, repeat, steps (on_10ms, off_10ms).
PATTERNS = {
    "drop_left": (100, 0, ((40, 0),)),
    "drop_right": (100, 0, ((25, 15), (25, 0))),
    "sway": (80, 2, ((8, 8),)),
    "tilt": (80, 0, ((30, 10), (10, 0))),
}


def vibrate_fields(pattern) -> dict:
    """VIBRATE's fields for a name of ``PATTERNS`` or (intensity_pct, repeat, steps)."""
    intensity, repeat, steps = PATTERNS[pattern] if isinstance(pattern, str) else pattern
    return {"intensity_pct": intensity, "repeat": repeat, "steps": steps}


def threshold_fields(*, drop_deg: float, sway_mm: int, tilt_deg: float, hysteresis_pct: int, refractory_ms: int,
                     enable) -> dict:
    """SET_THRESHOLDS's fields, in the wire's units (centidegrees, a mask of the detectors enabled)."""
    mask = 0
    for name in enable:
        mask |= protocol.ThresholdMask[name.upper()]
    return {"enable_mask": mask, "drop_cdeg": round(drop_deg * 100), "sway_mm": int(sway_mm),
            "tilt_cdeg": round(tilt_deg * 100), "hysteresis_pct": int(hysteresis_pct),
            "refractory_ms": int(refractory_ms)}


def named_info(fields: dict) -> dict:
    """INFO's fields plus names: firmware, board, imu, streaming."""
    f = dict(fields)
    f["firmware"] = f"{f['fw_major']}.{f['fw_minor']}.{f['fw_patch']}"
    f["board"] = protocol.BOARD_NAMES.get(f["board_id"], f"board {f['board_id']}")
    f["imu"] = protocol.IMU_NAMES.get(f["imu_id"], f"imu {f['imu_id']}")
    f["streaming"] = bool(f["state_flags"] & protocol.StateFlag.STREAMING)
    return f


class CommandChannel:
    """Commands out through ``link``, each paired with its ACK by token (module docstring).

    recording: the session's log (commands go in it as sent); stats: counts the timeouts; connected: set while
    the link is up (a send waits for it); timeout_s, tries: the defaults of ``send``; passive: refuse to send.
    """

    def __init__(self, link: Link, recording, stats, connected: asyncio.Event, *, timeout_s: float, tries: int,
                 passive: bool = False):
        self.link = link
        self.recording = recording
        self.stats = stats
        self.connected = connected
        self.timeout_s = timeout_s
        self.tries = tries
        self.passive = passive
        self._waiting: dict[int, tuple[int, asyncio.Future]] = {}  # token: (opcode, future of (Ack, host time))
        self._token = 0

    async def send(self, opcode: Opcode, fields: dict, timeout_s: float | None = None,
                   tries: int | None = None) -> tuple[Ack, float, float]:
        """Send a COMMAND and wait for its ACK, ``tries`` times ``timeout_s`` at most: (ACK, host send time, host
        receive time). ``CommandError`` when no ACK came."""
        if self.passive:
            raise SessionError(f"a passive session (replay) sends no commands ({Opcode(opcode).name})")
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        tries = self.tries if tries is None else tries
        why = "no answer"
        loop = asyncio.get_running_loop()
        for _ in range(tries):
            if not self.connected.is_set():
                try:
                    await within(self.connected.wait(), timeout_s)
                except asyncio.TimeoutError:
                    why = "the link is down"
                    continue
            fut = loop.create_future()
            token = self._add(opcode, fut)
            try:
                packet = protocol.encode_command(opcode, token, **fields)
                t_send = time.monotonic()
                await self.link.send(packet)
                self.recording.command(packet, t_send)
                ack, t_recv = await within(fut, timeout_s)
                return ack, t_send, t_recv
            except LinkError as error:
                why = f"the link refused it ({error})"
                await asyncio.sleep(min(0.1, timeout_s))
            except asyncio.TimeoutError:
                why = f"no ACK within {timeout_s:g} s"
                self.stats.command_timeouts += 1
            finally:
                self._waiting.pop(token, None)
        raise CommandError(f"{Opcode(opcode).name}: {why} ({tries} tries); is the sensor on and in range?")

    def answer(self, ack: Ack, t: float) -> bool:
        """An ACK arrived at t: True if a command waiting for it took it."""
        waiting = self._waiting.get(ack.token)
        if waiting is None or waiting[0] != int(ack.opcode) or waiting[1].done():
            return False
        waiting[1].set_result((ack, t))
        return True

    def cancel_all(self) -> None:
        for _, future in self._waiting.values():
            if not future.done():
                future.cancel()

    def _add(self, opcode: int, future) -> int:
        """A new command waits on ``future``: its token, one not in use."""
        for _ in range(256):
            self._token = self._token % 255 + 1
            if self._token not in self._waiting:
                self._waiting[self._token] = (int(opcode), future)
                return self._token
        raise SessionError("255 commands wait for their ACK: the sensor does not answer")
