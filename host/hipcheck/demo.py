"""``hipcheck demo`` and ``hipcheck record``: the live job — a sensor's blocks through the pipeline, alerts back.

``run_live(link, ...)`` is the job on any link: a ``DeviceSession`` (backfill, time map, crash-safe log), the
streaming ``Pipeline`` on its blocks in sequence order, a VIBRATE back to the sensor when a detector fires (DROP
per sample with the stance side's pattern, SWAY and TILT per stride; DROP_STRIDE is the per-stride confirmation
and is only printed), a line per stride and a closing summary that names the weak side.

``demo`` runs it on the simulated sensor: a walk (or a single-leg hold) from ``hipcheck.motion`` played through the
real firmware in the MicroPython unix port (``SimLink``). Headless it goes as fast as possible (about 20–30 times
real time here): the firmware's clock waits for the host, so no sample is lost and the analysis is the same as in
real time up to where the stream starts in the trace (in real time the emulated IMU runs while the firmware boots,
so its stream starts 3-4 samples later: measured on a 15 s walk, the same alerts and weak side, medians within
0.1°); the vibration patterns, which the emulated motor plays on the wall clock, overlap more (fewer duty changes).
The sensor's own alert detector is switched off (SET_THRESHOLDS, nothing enabled) so that every vibration on the
emulated motor is one the host sent.

Lost samples (``block.gap``) are left out of the pipeline and counted; the pipeline then joins the samples on
either side, so a lost stretch shortens the stride it falls in (it is printed, never hidden).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from hipcheck.errors import InvalidValueError

DROP_PATTERN = {0: "drop_left", 1: "drop_right"}  # detect side LEFT/RIGHT (stance side) -> firmware pattern


@dataclass
class LiveResult:
    summary: dict  # report.summarize
    strides: np.ndarray
    decisions: np.ndarray
    holds: np.ndarray
    session: dict  # DeviceSession.summary()
    vibrations_sent: int = 0
    vibrate_latency_ms: list = field(default_factory=list)  # block arrival on the host -> VIBRATE written
    fs_hz: float = float("nan")
    wall_s: float = 0.0
    device_info: dict | None = None
    record_path: str | None = None


def warm_up_pipeline(out=None) -> None:
    """Run the pipeline once over a few seconds of simulated walking, so that its numba kernels are compiled (or
    loaded from the cache) before a link opens: a first compile takes a minute or two, which would starve the link
    and trip the session's no-data watchdog. out: where to say so (a first run is otherwise a silent wait)."""
    from hipcheck.motion import SensorModel, simulate_walk
    from hipcheck.pipeline import analyze

    if out is not None:
        out("loading the signal pipeline (the first run compiles it: a minute or two, then cached)")
    t0 = time.perf_counter()
    trace = simulate_walk(duration_s=8.0, seed=0, sensor=SensorModel.ideal())
    analyze(trace.acc_sensor_m_s2, trace.gyr_sensor_rad_s, trace.fs_hz)
    if out is not None and time.perf_counter() - t0 > 5.0:
        out(f"  compiled in {time.perf_counter() - t0:.0f} s")


async def run_live(link, *, record=None, seconds: float | None = None, start_seq: int | None = None,
                   alerts: bool = True, device_alerts_off: bool = True, out=print, passive: bool = False,
                   header: dict | None = None) -> LiveResult:
    """The live job on an open-able link (module docstring). Returns what it found; prints as it goes. Call
    ``warm_up_pipeline()`` before the link opens."""
    from hipcheck import detect, report
    from hipcheck.device import DeviceSession
    from hipcheck.pipeline import Pipeline, sort_decisions

    t0 = time.perf_counter()
    pipeline = None
    strides, decisions, holds = [], [], []
    latencies, sends = [], []
    n_lost = 0
    session = DeviceSession(link, record=record, start_seq=start_seq, passive=passive, header=header)
    async with session:
        info = session.device_info
        if info is not None:
            out(f"sensor: {info['board']} board, {info['imu']}, firmware {info['firmware']}, {info['rate_hz']} Hz, "
                f"battery {info['battery_pct']} %")
            if device_alerts_off:
                await session.set_thresholds(enable=())
                out("the sensor's own alerts are off: the host decides and sends VIBRATE")

        def vibrate(pattern: str, t_arrival: float) -> None:
            async def send():
                try:
                    await session.vibrate(pattern)
                except Exception as error:  # an alert that cannot be delivered must not stop the recording
                    out(f"  (vibrate {pattern} not delivered: {error})")
            latencies.append((time.monotonic() - t_arrival) * 1e3)
            sends.append(asyncio.ensure_future(send()))

        async for block in session.blocks(until_device_s=seconds):
            t_arrival = time.monotonic()
            if pipeline is None:
                fs_hz = 1e6 / block.period_us
                pipeline = Pipeline(fs_hz)
                first_seq = int(block.seq[0])
            valid = block.valid
            if not valid.all():
                lost = int(np.count_nonzero(~valid))
                n_lost += lost
                out(f"  {lost} samples lost at seq {int(block.seq[~valid][0])} (marked, left out of the analysis)")
            if not valid.any():
                continue
            result = pipeline.update(block.acc_m_s2[valid], block.gyr_rad_s[valid])
            for d in result.decisions:
                kind = int(d["kind"])
                name = detect.KIND_NAMES[kind]
                side = detect.SIDE_NAMES[int(d["side"])]
                pattern = DROP_PATTERN.get(int(d["side"])) if kind == detect.DROP else \
                    {detect.SWAY: "sway", detect.TILT: "tilt"}.get(kind)
                if alerts and pattern is not None and not passive:
                    vibrate(pattern, t_arrival)
                where = "" if side == "none" else f" {side} stance"
                out(f"{int(d['sample']) / fs_hz:7.2f} s  ALERT {name}{where}: {d['value']:.1f} "
                    f"(threshold {d['threshold']:g})" + (f"  -> VIBRATE {pattern}" if pattern and alerts
                                                          and not passive else ""))
            for s in result.strides:
                out(report.stride_line(s, fs_hz))
            strides.append(result.strides)
            decisions.append(result.decisions)
            holds.append(result.holds)
        if pipeline is not None:
            last = pipeline.finish()
            for s in last.strides:
                out(report.stride_line(s, fs_hz))
            strides.append(last.strides)
            decisions.append(last.decisions)
            holds.append(last.holds)
        if sends:
            await asyncio.gather(*sends, return_exceptions=True)
    from hipcheck.gait import STRIDE_DTYPE

    strides_all = np.concatenate(strides) if strides else np.zeros(0, STRIDE_DTYPE)
    decisions_all = sort_decisions(np.concatenate(decisions)) if decisions else np.zeros(0, detect.DECISION_DTYPE)
    holds_all = np.concatenate(holds) if holds else np.zeros(0, detect.HOLD_DTYPE)
    summary = report.summarize(strides_all, detect.DEFAULT_DROP_THRESHOLD_DEG)
    return LiveResult(summary=summary, strides=strides_all, decisions=decisions_all, holds=holds_all,
                      session=session.summary(), vibrations_sent=len(sends), vibrate_latency_ms=latencies,
                      fs_hz=pipeline.fs_hz if pipeline else float("nan"), wall_s=time.perf_counter() - t0,
                      device_info=session.device_info, record_path=None if record is None else str(record))


def print_closing(result: LiveResult, out=print) -> None:
    from hipcheck import detect, report

    s = result.session
    out("")
    for h in result.holds:
        out("hold: " + ", ".join(f"{k} {v}" for k, v in report.record_to_dict(h, detect.HOLD_NAMES).items()))
    drops = int(np.count_nonzero(result.decisions["kind"] == detect.DROP))
    out(f"alerts: {drops} drop, {int(np.count_nonzero(result.decisions['kind'] == detect.SWAY))} sway, "
        f"{int(np.count_nonzero(result.decisions['kind'] == detect.TILT))} tilt; "
        f"{result.vibrations_sent} VIBRATE sent"
        + (f" (host latency, block arrival to command written: median "
           f"{np.median(result.vibrate_latency_ms):.2f} ms, max {max(result.vibrate_latency_ms):.2f} ms)"
           if result.vibrate_latency_ms else ""))
    out(f"samples: {s['samples_emitted']} in sequence ({s['samples_live']} live, {s['samples_backfilled']} "
        f"backfilled, {s['samples_lost']} lost and marked), {s['holes']} gaps found, {s['reconnects']} reconnects")
    for r in s["lost"]:
        out(f"  lost: seq {r['first_seq']}..{r['first_seq'] + r['n'] - 1} ({r['n']}): {r['reason']}")
    if result.record_path:
        out(f"recording: {result.record_path}")
    out(report.summary_text(result.summary))


def simulate_trace(activity: str, seconds: float, drop_left: float | None, drop_right: float | None, seed: int):
    from hipcheck import motion

    if activity == "walk":
        return motion.simulate_walk(duration_s=seconds, fs_hz=100.0, seed=seed,
                                    drop_left_deg=4.0 if drop_left is None else drop_left,
                                    drop_right_deg=8.0 if drop_right is None else drop_right)
    if drop_left is not None and drop_right is not None:
        raise InvalidValueError("a hold stands on one leg: give --drop-left or --drop-right, not both")
    side = "left" if drop_left is not None else "right"
    drop = drop_left if drop_left is not None else drop_right
    kwargs = {} if drop is None else {"drop_deg": drop}
    return motion.simulate_hold(duration_s=seconds, fs_hz=100.0, seed=seed, side=side, **kwargs)


def run_demo(*, seconds: float = 60.0, drop_left: float | None = None, drop_right: float | None = None,
             activity: str = "walk", headless: bool = False, realtime: bool | None = None, record=None,
             seed: int = 1, out=print) -> tuple[LiveResult, object]:
    """The demo (module docstring). Returns the result and the SimLink (closed: its ``motor`` record)."""
    from hipcheck.links.sim import SimLink

    if realtime is None:
        realtime = not headless
    if not headless:
        out("(the live plot would open here; it does not exist yet: running headless)")
    if record is None:
        folder = Path(tempfile.gettempdir()) / "hipcheck-demo"
        folder.mkdir(exist_ok=True)
        record = folder / "session.hclog"
    trace = simulate_trace(activity, seconds, drop_left, drop_right, seed)
    truth = trace.summary()
    out(f"simulated {activity}, {seconds:g} s: " + ", ".join(
        f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in truth.items()
        if k.startswith(("drop_", "cadence", "sway", "side"))))
    out(f"starting the simulated sensor: the firmware in the MicroPython unix port, "
        f"{'real time' if realtime else 'as fast as possible'}")
    link = SimLink(trace, seconds=seconds, realtime=realtime)

    async def main():
        async with link:
            return await run_live(link, record=record, start_seq=0, out=out,
                                  header={"demo": {"activity": activity, "seconds": seconds, "seed": seed,
                                                   "truth": truth}})

    warm_up_pipeline(out)  # before the link opens: a cold compile would starve it
    result = asyncio.run(main())
    print_closing(result, out)
    motor_on = int(np.count_nonzero(link.motor[:, 1] > 0)) if len(link.motor) else 0
    out(f"emulated motor: {motor_on} vibrations started ({len(link.motor)} duty changes logged by the firmware)"
        + ("" if realtime else "; as fast as possible the patterns overlap on the wall clock: --realtime plays each"))
    out(f"done in {result.wall_s:.1f} s")
    return result, link


def motor_vibrations(link) -> int:
    """Duty changes to a non-zero duty in the emulated motor's record (vibrations started)."""
    return int(np.count_nonzero(link.motor[:, 1] > 0)) if len(link.motor) else 0


async def make_link(args):
    """The link named by the link options of record, connect and live (``--sim``, ``--serial``, ``--ble`` with an
    optional ``--backend``, ``--replay``), made inside the running event loop; the links are imported lazily."""
    if args.sim is not None:
        from hipcheck.links.sim import SimLink

        return SimLink(args.sim, seconds=args.seconds, realtime=args.realtime)
    if args.serial is not None:
        from hipcheck.links.serial import SerialLink

        return SerialLink(args.serial)
    if args.ble is not None:
        from hipcheck.links.ble import BleLink, resolve_backend

        return BleLink(args.ble, backend=await resolve_backend(getattr(args, "backend_factory", None)))
    from hipcheck.links.replay import ReplayLink

    return ReplayLink(args.replay, realtime=args.realtime)


def run_record(args, out=print) -> int:
    record = args.output
    passive = args.replay is not None

    async def main():
        async with await make_link(args) as link:
            return await run_live(link, record=record, seconds=args.seconds, alerts=not args.no_alerts,
                                  device_alerts_off=not args.no_alerts and not passive, passive=passive,
                                  start_seq=0 if args.sim is not None else None, out=out)

    warm_up_pipeline(out)  # before the link opens: a cold compile would starve it
    result = asyncio.run(main())
    print_closing(result, out)
    return 0


def run_connect(args, out=print) -> int:
    """``hipcheck connect``: connect, print the device's INFO, then the live link figures every second until
    ``--seconds`` of wall time pass or Ctrl-C."""
    from hipcheck.device import DeviceSession

    async def main():
        async with await make_link(args) as link:
            async with DeviceSession(link, passive=args.replay is not None) as session:
                if session.device_info is not None:
                    out("device: " + ", ".join(f"{k} {v}" for k, v in session.device_info.items()))
                started = time.monotonic()
                while args.seconds is None or time.monotonic() - started < args.seconds:
                    await asyncio.sleep(1.0)
                    st = link.status()
                    out(f"{time.monotonic() - started:6.1f} s  connected {st.connected}  packets {st.packets_in}  "
                        f"CRC errors {st.crc_errors}  reconnects {st.reconnects}  "
                        f"RSSI {'-' if st.rssi_dbm is None else f'{st.rssi_dbm:.0f} dBm'}  "
                        f"battery {'-' if st.battery_pct is None else f'{st.battery_pct} %'}  "
                        f"samples live {session.stats.samples_live}  holes {len(session.stats.holes)}")
                    if not st.connected and getattr(link, "ended", False):
                        break
        return 0

    return asyncio.run(main())
