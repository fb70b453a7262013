"""The live window against the live job: frames/s and frame times at 100 and 400 Hz input, samples never dropped,
and the host time from a threshold-crossing sample to the VIBRATE command.

Run: .venv/bin/python benchmarks/live.py [--seconds S] [--json PATH]   (about a minute: the runs are in real time).
Without a display it starts its own Xvfb (Debian ``xvfb``) and draws there.

Each run is the real path of ``hipcheck demo``: a simulated walk with a weak right hip (``--drop-right 8``) played in
real time through the firmware in the MicroPython unix port (``SimLink``, the emulated LSM6DSOX at 104 or 416 Hz:
the chip's rates for 100 and 400 Hz), received by the ``DeviceSession``, analysed by ``LiveAnalysis`` in the live
job's thread, pushed into the window's rings by ``LiveWindow.observe``, and drawn by ``run_tk`` (TkAgg, blitting) in
the main thread — both sides in one process, sharing the GIL, as ``hipcheck demo`` runs them.

Figures per rate:
- frames/s: frames drawn per second of steady streaming (from ``STEADY_AFTER_S`` after the first block: the
  pipeline is built on the first block, in the job's thread, and holds the GIL meanwhile), and over the whole run;
  the timer asks for ``live_window.FPS``; target ≥ 30;
- CPU/frame: the drawing thread's CPU time per frame (``time.thread_time``): what a frame costs whatever else the
  machine runs (the 1-minute load average is printed next to it: frames/s falls when the cores are shared);
- full draw: the first frame, which lays out the whole figure (and any resize or pause); worst draw: the longest a
  blitted frame took; worst gap: the longest between two frames (a stall the eye sees);
- frames dropped: timer ticks skipped because the previous frame or the data side held the main thread;
- samples: emitted by the session, lost on the link, and dropped by the window's ring (overwritten before a frame
  showed them); target: none lost, none dropped;
- alert path: ``run_live``'s own measure, from the arrival on the host of the block holding the sample at which
  the drop detector fired (the threshold crossing: the per-sample detector fires on the crossing sample itself) to
  the VIBRATE command handed to the session (``LiveResult.vibrate_latency_ms``), median and max; target ≤ 5 ms.
  Only the alerts the alert policy lets vibrate are timed (its gating and refractory time leave a few per run).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import threading
import time

import numpy as np

from hipcheck import live_window, motion
from hipcheck.links.sim import SimLink
from hipcheck.live import run_live, warm_up_pipeline

STEADY_AFTER_S = 2.0


def _display():
    """A display to draw on: the one there is, or an Xvfb started here (returned to be stopped)."""
    if os.environ.get("DISPLAY"):
        return None
    if shutil.which("Xvfb") is None:
        sys.exit("benchmarks/live.py: no DISPLAY and no Xvfb (Debian package xvfb) to make one")
    read, write = os.pipe()  # Xvfb picks a free display and writes its number to -displayfd
    xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
                            pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write)
    with os.fdopen(read) as f:
        os.environ["DISPLAY"] = ":" + f.readline().strip()
    return xvfb


def one_run(rate_hz: int, seconds: float) -> dict:
    trace = motion.simulate_walk(duration_s=seconds, fs_hz=float(rate_hz), seed=1, drop_left_deg=4.0,
                                 drop_right_deg=8.0)
    lines: list[str] = []
    opened = live_window.open_window(title=f"hipcheck benchmark {rate_hz} Hz", out=lines.append)
    if opened is None:
        sys.exit(f"benchmarks/live.py: {lines[-1]}")
    root, window = opened
    outcome = {}

    marks = {}

    def observe(**kwargs):
        """The window's hook, and the steady stretch's start and end: from STEADY_AFTER_S after the first block
        (the pipeline is built on the first block, in the job's thread) to the last block."""
        window.observe(**kwargs)
        now = time.perf_counter()
        marks.setdefault("first", now)
        if "steady" not in marks and now - marks["first"] >= STEADY_AFTER_S:
            marks["steady"] = (now, window.frames_drawn, window.frames_dropped)
            window.worst_frame_s = window.worst_interval_s = window.draw_cpu_s = 0.0
        marks["last"] = (now, window.frames_drawn)

    async def job():
        async with SimLink(trace, rate_hz=rate_hz, seconds=seconds, realtime=True) as link:
            return await run_live(link, start_seq=0, out=lines.append, observer=observe)

    def target():
        started = time.perf_counter()
        try:
            outcome["result"] = asyncio.run(job())
        finally:
            outcome["stream_s"] = time.perf_counter() - started
            outcome["frames"] = window.frames_drawn
            window.closed = True  # the benchmark closes the window with the job (a user closes it)

    thread = threading.Thread(target=target)
    thread.start()
    live_window.run_tk(root, window, thread, out=lines.append)
    thread.join()
    result = outcome["result"]
    s = result.session
    latencies = np.array(result.vibrate_latency_ms)
    (t_steady, frames_steady, dropped_steady), (t_last, frames_last) = marks["steady"], marks["last"]
    return {
        "rate_hz": rate_hz, "fs_hz": result.fs_hz, "stream_s": outcome["stream_s"],
        "frames_per_s_all": outcome["frames"] / outcome["stream_s"],
        "frames_per_s": (frames_last - frames_steady) / (t_last - t_steady),
        "frames_dropped_steady": window.frames_dropped - dropped_steady,
        "cpu_ms_per_frame": 1e3 * window.draw_cpu_s / max(1, window.frames_drawn - frames_steady),
        "load_1min": os.getloadavg()[0],
        "worst_frame_ms": 1e3 * window.worst_frame_s, "full_draw_ms": 1e3 * window.full_draw_s,
        "worst_interval_ms": 1e3 * window.worst_interval_s,
        "frames_dropped": window.frames_dropped, "samples_emitted": s["samples_emitted"],
        "samples_lost": s["samples_lost"], "samples_dropped": window.ring.samples_dropped,
        "samples_in_ring": window.ring.n_samples,
        "vibrations": len(latencies),
        "alert_ms_median": float(np.median(latencies)) if len(latencies) else float("nan"),
        "alert_ms_max": float(latencies.max()) if len(latencies) else float("nan"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="walk per rate (default 20 s)")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    xvfb = _display()
    try:
        warm_up_pipeline()
        rows = [one_run(rate, args.seconds) for rate in (100, 400)]
    finally:
        if xvfb is not None:
            xvfb.terminate()
    print(f"live window, TkAgg on DISPLAY {os.environ['DISPLAY']}, timer {live_window.FPS:g} frames/s, "
          f"{args.seconds:g} s walk per rate, real time")
    print("steady: from 2 s after the first block to the last (the frame figures below are of that stretch); "
          "all: from the link's opening, with the pipeline's construction on the first block")
    print(f"{'input':>8} {'frames/s':>9} {'(all)':>6} {'CPU/frame':>10} {'load':>5} {'full draw':>10} "
          f"{'worst draw':>11} {'worst gap':>10} {'dropped':>8} {'samples':>8} "
          f"{'lost':>5} {'ring drop':>9} {'VIBRATE':>8} {'alert median':>13} {'alert max':>10}")
    for r in rows:
        print(f"{r['fs_hz']:6.0f}Hz {r['frames_per_s']:9.1f} {r['frames_per_s_all']:6.1f} "
              f"{r['cpu_ms_per_frame']:7.1f} ms {r['load_1min']:5.1f} "
              f"{r['full_draw_ms']:7.1f} ms {r['worst_frame_ms']:8.1f} ms {r['worst_interval_ms']:7.1f} ms "
              f"{r['frames_dropped_steady']:8d} {r['samples_emitted']:8d} {r['samples_lost']:5d} "
              f"{r['samples_dropped']:9d} "
              f"{r['vibrations']:8d} {r['alert_ms_median']:10.2f} ms {r['alert_ms_max']:7.2f} ms")
    ok = all(r["frames_per_s"] >= 30 and r["samples_lost"] == 0 and r["samples_dropped"] == 0
             and r["samples_in_ring"] == r["samples_emitted"] for r in rows)
    alerts_ok = all(r["vibrations"] == 0 or r["alert_ms_max"] <= 5.0 for r in rows)
    print(f"targets: >= 30 frames/s and no sample dropped: {'met' if ok else 'NOT met'}; "
          f"crossing sample -> VIBRATE <= 5 ms: {'met' if alerts_ok else 'NOT met'}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
