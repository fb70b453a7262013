"""``hipcheck demo``: the whole system without hardware — the live job (``hipcheck.live``) on the simulated sensor.

A walk (or a single-leg hold) from ``hipcheck.motion`` is played through the real firmware in the MicroPython unix
port (``SimLink``), and ``run_live`` receives, records and analyses it and sends VIBRATE back to the emulated motor.
Headless it goes as fast as possible (about 20–30 times real time here): the firmware's clock waits for the host, so
no sample is lost and the analysis is the same as in real time up to where the stream starts in the trace (in real
time the emulated IMU runs while the firmware boots, so its stream starts 3-4 samples later: measured on a 15 s
walk, the same alerts and weak side, medians within 0.1°); the vibration patterns, which the emulated motor plays on
the wall clock, overlap more (fewer duty changes), and the sensor refuses VIBRATEs that come faster than 2 a second
(its motor safety, docs/protocol.md): those are reported as not delivered. The sensor's own alert detector is switched
off (SET_THRESHOLDS, nothing enabled) so that every vibration on the emulated motor is one the host sent. The sim
board's link is a cable (physical access), so the demo's pairing step (``link.pair()``) has nothing to do.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import numpy as np

from hipcheck import motion
from hipcheck.errors import InvalidValueError
from hipcheck.links.sim import SimLink
from hipcheck.links.simboard import SimBoardError
from hipcheck.live import LiveResult, print_closing, run_live, warm_up_pipeline

WALK_DROP_LEFT_DEG = 4.0  # healthy left hip
WALK_DROP_RIGHT_DEG = 8.0  # a weak right hip: the demo's finding
DEMO_DEVICE_ID = "sim-demo"  # the demo's own simulated sensor (see run_demo)


def default_record_path() -> Path:
    """Where the demo keeps its session log unless told: hipcheck-demo/session.hclog in the temp folder."""
    folder = Path(tempfile.gettempdir()) / "hipcheck-demo"
    folder.mkdir(exist_ok=True)
    return folder / "session.hclog"


def simulate_trace(activity: str, seconds: float, drop_left: float | None, drop_right: float | None, seed: int):
    """The demo's motion at 100 Hz: a walk (drops default to a weak right hip) or a hold on the leg a drop names."""
    if activity == "walk":
        return motion.simulate_walk(duration_s=seconds, fs_hz=100.0, seed=seed,
                                    drop_left_deg=WALK_DROP_LEFT_DEG if drop_left is None else drop_left,
                                    drop_right_deg=WALK_DROP_RIGHT_DEG if drop_right is None else drop_right)
    if drop_left is not None and drop_right is not None:
        raise InvalidValueError("a hold stands on one leg: give --drop-left or --drop-right, not both")
    side = "left" if drop_left is not None else "right"
    drop = drop_left if drop_left is not None else drop_right
    kwargs = {} if drop is None else {"drop_deg": drop}
    return motion.simulate_hold(duration_s=seconds, fs_hz=100.0, seed=seed, side=side, **kwargs)


def run_demo(*, seconds: float = 60.0, drop_left: float | None = None, drop_right: float | None = None,
             activity: str = "walk", headless: bool = False, realtime: bool | None = None, record=None,
             seed: int = 1, policy=None, out=print) -> tuple[LiveResult, SimLink]:
    """The demo (module docstring). realtime None: real time unless headless. Returns the live job's result and
    the SimLink (closed: its ``motor`` record). policy: the alert policy (``hipcheck.alerts``; None: its
    defaults)."""
    if realtime is None:
        realtime = not headless
    record = default_record_path() if record is None else record
    trace = simulate_trace(activity, seconds, drop_left, drop_right, seed)
    truth = trace.summary()
    out(f"simulated {activity}, {seconds:g} s: " + ", ".join(
        f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in truth.items()
        if k.startswith(("drop_", "cadence", "sway", "side"))))
    out(f"starting the simulated sensor: the firmware in the MicroPython unix port, "
        f"{'real time' if realtime else 'as fast as possible'}")
    # The demo's simulated person wears a simulated sensor of its own (its own errors and mounting), not the one
    # `calibrate --sim` calibrates (device "sim"): its logs name another device, so that no profile of that sensor
    # is applied to them later (the live run applies none either).
    link = SimLink(trace, seconds=seconds, realtime=realtime, device_id=DEMO_DEVICE_ID)
    header = {"demo": {"activity": activity, "seconds": seconds, "seed": seed, "truth": truth}}

    async def job(window=None):
        async with link:
            await link.pair()  # the sim board's link is a cable (physical access): paired as it is
            return await run_live(link, record=record, start_seq=0, out=out, policy=policy,
                                  header=header, observer=window and window.observe,
                                  commands=window and window.commands, mode=activity)

    warm_up_pipeline(out)  # before the link opens: a cold compile would starve it
    if headless:
        result = asyncio.run(job())
    else:  # the live window (hipcheck.live_window), or headless after one line when no display can show it
        from hipcheck.live_window import run_with_window

        result = run_with_window(lambda window: asyncio.run(job(window)), mode=activity,
                                 title=f"hipcheck demo: simulated {activity}", out=out)
    print_closing(result, out)
    if link.record is None:
        raise SimBoardError("the simulated sensor ended without its record (motor, counters): the firmware did not "
                            "exit cleanly")
    out(f"emulated motor: {motor_vibrations(link)} vibrations started ({len(link.motor)} duty changes logged by the "
        "firmware)" + ("" if realtime else "; as fast as possible the patterns overlap on the wall clock and the "
                       "sensor refuses VIBRATE beyond 2 a second (BUSY): --realtime plays each"))
    out(f"done in {result.wall_s:.1f} s")
    return result, link


def motor_vibrations(link: SimLink) -> int:
    """Duty changes to a non-zero duty in the emulated motor's record (vibrations started)."""
    return int(np.count_nonzero(link.motor[:, 1] > 0)) if len(link.motor) else 0
