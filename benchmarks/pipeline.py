"""Throughput of each pipeline stage and of the whole pipeline on a simulated 1-hour walk at 100 Hz.

Run: .venv/bin/python benchmarks/pipeline.py [minutes] [--json PATH]   (default 60 minutes). The numba caches are
warmed on a short walk first, so the figures are what a user sees from the second run on. Target (DESIGN.md): the
full offline review of a 1-hour walk in ≤ 2 s with a warm cache. Best of 3 runs per stage; asserts nothing. At
100 Hz the fusion's 50 Hz correction step runs every second sample, so its rate per sample is lower than on BROAD's
286 Hz (benchmarks/fusion.py).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from _timing import best_of

from hipcheck.detect import Detectors
from hipcheck.fusion import Fusion, orient
from hipcheck.gait.events import EventDetector
from hipcheck.gait.strides import StrideAnalyzer
from hipcheck.hold import HoldAnalyzer
from hipcheck.motion import SensorModel, simulate_walk
from hipcheck.pelvis import PelvisTracker
from hipcheck.pipeline import WALKING_FUSION_SETTINGS, analyze_arrays

FS_HZ = 100.0


def stage_times(acc: np.ndarray, gyr: np.ndarray, runs: int) -> list[tuple[str, float]]:
    """Each stage alone over the whole recording, fed the previous stage's output."""
    rows = []
    t, quat = best_of(runs, lambda: Fusion(FS_HZ, **WALKING_FUSION_SETTINGS).update(acc, gyr))
    rows.append(("fusion (causal)", t))
    t, _ = best_of(runs, lambda: orient(acc, gyr, FS_HZ, offline=True, **WALKING_FUSION_SETTINGS))
    rows.append(("fusion (offline)", t))
    t, events = best_of(runs, lambda: EventDetector(FS_HZ).update(acc, gyr, quat))
    rows.append(("gait events", t))
    t, (angles, acc_level) = best_of(runs, lambda: PelvisTracker(FS_HZ).update(quat, acc))
    rows.append(("pelvis alignment + angles", t))
    t, strides = best_of(runs, lambda: StrideAnalyzer(FS_HZ).update(angles, acc_level, events))
    rows.append(("strides + metrics", t))
    t, _ = best_of(runs, lambda: Detectors(FS_HZ).update(angles, strides))
    rows.append(("detectors", t))
    t, _ = best_of(runs, lambda: HoldAnalyzer(FS_HZ).update(angles, acc_level))
    rows.append(("hold analyser", t))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("minutes", nargs="?", type=float, default=60.0)
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args()

    warm = simulate_walk(duration_s=20, seed=2, fs_hz=FS_HZ, sensor=SensorModel.realistic(seed=2))
    analyze_arrays(warm.acc_sensor_m_s2, warm.gyr_sensor_rad_s, FS_HZ)
    analyze_arrays(warm.acc_sensor_m_s2, warm.gyr_sensor_rad_s, FS_HZ, offline=True)
    stage_times(warm.acc_sensor_m_s2, warm.gyr_sensor_rad_s, 1)

    started = time.perf_counter()
    trace = simulate_walk(duration_s=60.0 * args.minutes, seed=1, fs_hz=FS_HZ, sensor=SensorModel.realistic(seed=1),
                          turns=tuple((t, 180.0, 2.0) for t in np.arange(60.0, 60.0 * args.minutes - 30, 120.0)))
    simulate_s = time.perf_counter() - started
    acc, gyr = trace.acc_sensor_m_s2, trace.gyr_sensor_rad_s
    n = len(acc)

    rows = stage_times(acc, gyr, 3)
    t_causal, result = best_of(3, lambda: analyze_arrays(acc, gyr, FS_HZ))
    rows.append(("whole pipeline, causal (live)", t_causal))
    t_offline, _ = best_of(3, lambda: analyze_arrays(acc, gyr, FS_HZ, offline=True))
    rows.append(("whole pipeline, offline review", t_offline))
    t_blocks, _ = best_of(1, lambda: analyze_arrays(acc, gyr, FS_HZ, block_size=10))
    rows.append(("whole pipeline, causal, 10-sample blocks", t_blocks))

    print(f"hipcheck pipeline on a simulated {args.minutes:g}-minute walk at {FS_HZ:g} Hz ({n:,} samples, "
          f"{len(result.strides)} strides; simulated in {simulate_s:.1f} s), warm numba cache, best of 3\n")
    print(f"| {'stage':<42} | {'time s':>7} | {'M samples/s':>11} | {'x real time':>11} |")
    print(f"| {'-' * 42} | {'-' * 6}:| {'-' * 10}:| {'-' * 10}:|")
    for name, seconds in rows:
        print(f"| {name:<42} | {seconds:7.3f} | {n / seconds / 1e6:11.2f} | {n / FS_HZ / seconds:11.0f} |")
    print(f"\ntarget: offline review of a 1-hour walk ≤ 2 s -> measured {t_offline * 60.0 / args.minutes:.2f} s "
          f"per hour (decode excluded: see benchmarks/protocol.py)")
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"n_samples": n, "fs_hz": FS_HZ, "stages_s": dict(rows)}, out, indent=2)


if __name__ == "__main__":
    main()
