"""The cold numba compile of the whole pipeline: what a first `hipcheck analyze` on a fresh install waits for.

Run: .venv/bin/python benchmarks/compile.py [--runs N] [--json PATH] [--top K] [--walk-only]

Each run is a fresh Python process whose NUMBA_CACHE_DIR is a new empty folder, so every kernel compiles (the
in-tree __pycache__ is not read then). In it: the import of hipcheck.pipeline, then the first analyze_arrays of a
20 s simulated walk in each mode `hipcheck analyze` has (walk causal, walk offline review, hold, bridge, posture: each
mode reaches kernels the others do not; --walk-only: walk causal, a plain `hipcheck analyze`), then the same again
warm. The cold compile is the first pass minus the warm one. Two ways per run: "serial", numba alone (one core
compiles everything; what the CLI does on a busy machine), and "ahead", as the CLI does where a core is idle or with
HIPCHECK_COMPILE_AHEAD=1
(hipcheck.compile_notice starts hipcheck.warmup at the first compile, which compiles the pipeline from its end on the
other core; the two meet in the on-disk cache).
numba's compile events (numba.core.event "numba:compile") give each function's own compile time, nested
ones excluded, to find what dominates. The machine is shared, so the load average is printed beside the figures and
the best of --runs is the headline (the least disturbed), with the CPU time this process spent compiling (less
disturbed by a loaded machine than the wall time; the compile-ahead process's is not in it). Asserts nothing.

``cold_compile_seconds(runs=1)`` returns the best cold compile in s (benchmarks/review.py calls it).

Measured on the shared 2-core machine (other jobs' load average 1.5-6; CPU time is the steadier figure):
- all five modes, serial, load 1.5: before the typed helper constants (detect.py, hold.py) 55.8 and 48.3 s
  (149 compiles), after 41.9 and 39.9 s (125 compiles), CPU 55.4/48.2 -> 41.3/39.6 s;
- walk (a plain `hipcheck analyze`), serial, load 1.2-1.5: before 48.7 and 51.5 s (123 compiles), after 36.5 and
  39.8 s (99 compiles), CPU 47.9/50.7 -> 36.1/39.1 s;
- walk, ahead (HIPCHECK_COMPILE_AHEAD=1): 30.2 s against 37.1 s serial at load 1.6, but 52.6 against 43.5 at
  load 2.2 and 53-56 against 36-37 at load 4-5: the second process shortens the wait only when a core is idle
  (the command's own compile CPU falls 35-42 -> 25 s either way); after the session of 2026-12-03 (no shape-error
  formatting compiled in the pelvis and hold kernels), walk at load 0.7-1.0: serial 34.3 s, ahead 19.8 s. Hence
  ahead only where the load average leaves half a core spare (hipcheck.compile_notice.ahead_wanted).
What dominates (own time, serial walk): pelvis.pelvis_update 10-14 s (its 21 helpers are inline="always", kept
for speed: un-inlined, the stage ran 14 % slower), the causal fusion's update and window kernels about 9 s, the hold
analyser's kernels about 11 s, the gait events' about 9 s (figures of a run at load 6: about 1.4 times an idle
machine's).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from numba.core import event

FS_HZ = 100.0
MODES = (("walk", False), ("walk", True), ("hold", False), ("bridge", False), ("posture", False))


def _child(ahead: bool, modes) -> None:
    """One cold measurement in this (fresh) process; prints one JSON line."""
    from hipcheck.compile_notice import announce_compiles

    started = time.perf_counter()
    import numpy as np

    from hipcheck.motion import SensorModel, simulate_walk
    from hipcheck.pipeline import analyze_arrays
    import_s = time.perf_counter() - started

    trace = simulate_walk(duration_s=20, seed=2, fs_hz=FS_HZ, sensor=SensorModel.realistic(seed=2))
    acc, gyr = np.ascontiguousarray(trace.acc_sensor_m_s2), np.ascontiguousarray(trace.gyr_sensor_rad_s)

    cpu = []

    def one_pass() -> float:
        t0, c0 = time.perf_counter(), time.process_time()
        for mode, offline in modes:
            analyze_arrays(acc, gyr, FS_HZ, mode=mode, offline=offline)
        cpu.append(time.process_time() - c0)
        return time.perf_counter() - t0

    listener = _CompileListener()
    event.register("numba:compile", listener)
    if ahead:
        announce_compiles("benchmark", ahead=True)
    cold = one_pass()
    event.unregister("numba:compile", listener)
    warm = min(one_pass(), one_pass())
    print(json.dumps({"import_s": import_s, "cold_pass_s": cold, "warm_pass_s": warm,
                      "compile_s": cold - warm, "compile_cpu_s": cpu[0] - min(cpu[1:]),
                      "functions": listener.own_times(),
                      "compiles": listener.count}))


class _CompileListener(event.Listener):
    """Each numba:compile event's own time: its duration less the compiles nested in it (helpers compiled for a
    caller are timed inside the caller's event)."""

    def __init__(self):
        self.stack: list[list] = []  # [name, start, nested]
        self.own: dict[str, float] = {}
        self.count = 0

    def on_start(self, ev) -> None:
        func = getattr(ev.data.get("dispatcher"), "py_func", None)
        name = f"{func.__module__}.{func.__qualname__}" if func is not None else "?"
        self.stack.append([name, time.perf_counter(), 0.0])

    def on_end(self, ev) -> None:
        entry = self.stack.pop()
        total = time.perf_counter() - entry[1]
        self.own[entry[0]] = self.own.get(entry[0], 0.0) + total - entry[2]
        self.count += 1
        if self.stack:
            self.stack[-1][2] += total

    def own_times(self) -> dict[str, float]:
        return dict(sorted(self.own.items(), key=lambda kv: -kv[1]))


def measure_once(ahead: bool = False, walk_only: bool = False) -> dict:
    """One cold measurement in a fresh process with an empty numba cache (``ahead``: with the compile-ahead
    process, as the CLI with HIPCHECK_COMPILE_AHEAD=1)."""
    with tempfile.TemporaryDirectory(prefix="hipcheck-numba-cold-") as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache, HIPCHECK_COMPILE_NOTICE="0")
        argv = [sys.executable, __file__, "--child"] + (["--ahead"] if ahead else []) + (["--walk-only"] if walk_only
                                                                                          else [])
        load = os.getloadavg()[0]
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["load_average"] = (load + os.getloadavg()[0]) / 2
    result["how"] = "ahead" if ahead else "serial"
    return result


def cold_compile_seconds(runs: int = 1, ahead: bool = False, walk_only: bool = False) -> float:
    """The best cold compile of the pipeline (s) over ``runs`` fresh processes (default: as the CLI does it)."""
    return min(measure_once(ahead, walk_only)["compile_s"] for _ in range(runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--top", type=int, default=15, help="functions listed by own compile time")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    parser.add_argument("--walk-only", action="store_true", help="only the walk, causal (a plain analyze)")
    parser.add_argument("--how", choices=("both", "serial", "ahead"), default="both")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--ahead", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    modes = MODES[:1] if args.walk_only else MODES
    if args.child:
        _child(args.ahead, modes)
        return
    ways = {"both": (False, True), "serial": (False,), "ahead": (True,)}[args.how]
    runs = [measure_once(ahead, args.walk_only) for _ in range(args.runs) for ahead in ways]
    print(f"cold numba compile of the pipeline ({', '.join(m + (' offline' if o else '') for m, o in modes)}; "
          f"a 20 s walk at {FS_HZ:g} Hz), fresh process, empty NUMBA_CACHE_DIR, {os.cpu_count()} cores\n")
    print("| run | how | import s | first pass s | warm pass s | compile s | its CPU s | compiles here | load avg |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for i, r in enumerate(runs, 1):
        print(f"| {(i + 1) // 2} | {r['how']} | {r['import_s']:.1f} | {r['cold_pass_s']:.1f} | "
              f"{r['warm_pass_s']:.2f} | {r['compile_s']:.1f} | {r['compile_cpu_s']:.1f} | {r['compiles']} | "
              f"{r['load_average']:.1f} |")
    for how in sorted({r["how"] for r in runs}):
        best = min((r for r in runs if r["how"] == how), key=lambda r: r["compile_s"])
        print(f"\ncold compile, {how}: best {best['compile_s']:.1f} s (its CPU {best['compile_cpu_s']:.1f} s) of "
              f"{args.runs} runs")
    best = min(runs, key=lambda r: r["compile_s"])
    print(f"\nown compile time per function (best run, {best['how']}), top {args.top}:")
    for name, seconds in list(best["functions"].items())[:args.top]:
        print(f"  {seconds:6.2f} s  {name}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"runs": runs, "best_compile_s": best["compile_s"]}, out, indent=2)


if __name__ == "__main__":
    main()
