"""`hipcheck review` on long sessions: one 1-hour walk at 100 Hz warm, a folder of 1-hour sessions with --jobs, and
the cold compile a first review waits for.

Run: .venv/bin/python benchmarks/review.py [--sessions N] [--jobs J] [--minutes M] [--skip-folder] [--skip-cold]
     [--json PATH]   (defaults: 100 sessions, 2 jobs, 60 minutes)

1. A session log of a simulated M-minute walk at 100 Hz (full-form DATA packets of 10 samples, as a recording host
   writes them) is reviewed warm (the numba cache filled by a first run): the whole `review()` (read the log through
   the session's reassembly, analyse, draw the figures, write the HTML, the PNGs and the Parquet tables), best of 3,
   with its CPU time (which a busy machine inflates less), and each step alone. Target (issue 13): ≤ 2 s. 1b: the same walk as a CSV in the generic format (the log's
   reassembly, packet by packet, left out).
2. A folder of N such sessions (10 wearers; 4 distinct walks hard-linked under the session names, so the folder
   costs the disk 4 logs while each session is still read and analysed as its own task) reviewed with --jobs J in
   a fresh process, as a user types it (`hipcheck review DIR -o report.html --jobs J`): wall time and sessions/min.
3. The cold compile: `hipcheck review` of a 20 s log in a fresh process whose NUMBA_CACHE_DIR is a new empty folder
   (every kernel compiles), minus the same command warm; its stderr is checked for the compile notice.

The machine is shared: the load average is printed with the figures. Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from hipcheck import protocol
from hipcheck.motion import simulate_walk
from hipcheck.record import LogWriter

FS_HZ = 100.0
SAMPLES_PER_PACKET = 10
DISTINCT_WALKS = 4
WEARERS = 10
HIPCHECK = [sys.executable, "-m", "hipcheck"]
REPEATS = 3  # the best of: the machine is shared


def write_walk_log(path: Path, seconds: float, seed: int, start_unix_s: float = 1.8e9) -> None:
    """A session log of a simulated walk with a weak right hip (8° drop in right stance)."""
    trace = simulate_walk(duration_s=seconds, seed=seed, fs_hz=FS_HZ, drop_right_deg=8.0)
    quat, acc, gyr, flags = protocol.to_wire(trace.truth.q_sensor_to_earth, trace.acc_sensor_m_s2,
                                             trace.gyr_sensor_rad_s)
    period_us = int(round(1e6 / FS_HZ))
    packets = protocol.encode_data_packets(0, 0, period_us, quat, acc, gyr, flags,
                                           samples_per_packet=SAMPLES_PER_PACKET)
    step_s = SAMPLES_PER_PACKET / FS_HZ
    with LogWriter(path, {"link": "benchmark", "device": None, "start_unix_s": start_unix_s},
                   sync_interval_s=1e9) as log:
        for k, packet in enumerate(packets):
            log.packet("data", packet, 10.0 + step_s * k)
        log.note("end", 10.0 + step_s * len(packets), samples_emitted=len(trace.t_s), samples_live=len(trace.t_s),
                 samples_backfilled=0, samples_lost=0, holes=0)


def csv_of(log: Path, path: Path) -> Path:
    """The samples of a log as a CSV in the generic format (the same walk, without the log's reassembly)."""
    from hipcheck.imu_csv import write_imu_csv
    from hipcheck.sessionfile import read_session_log

    samples = read_session_log(log)
    write_imu_csv(path, samples.t_s, samples.acc_m_s2, samples.gyr_rad_s)
    return path


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def one_session(log: Path, folder: Path) -> dict:
    """Step 1: the warm review of one log, whole and by step (best of 2 each)."""
    from hipcheck.api import Result, read_recording
    from hipcheck.pipeline import analyze_arrays
    from hipcheck.review import ReviewSettings, Session, draw_session, review, review_session

    review_session(Session(str(log), log.name), ReviewSettings())  # warm: kernels, matplotlib's fonts

    def best(f):
        times = []
        for _ in range(REPEATS):
            t0 = time.perf_counter()
            value = f()
            times.append(time.perf_counter() - t0)
        return min(times), value

    cpu = []

    def whole_review():
        c0 = time.process_time()
        review([log], folder / "one.html", progress=False)
        cpu.append(time.process_time() - c0)

    whole, _ = best(whole_review)
    read_s, recording = best(lambda: read_recording(log))
    analyse_s, analysis = best(lambda: analyze_arrays(recording.acc_m_s2, recording.gyr_rad_s, recording.fs_hz,
                                                      mode="walk", hold_starts=[]))
    result = Result(analysis, recording)
    json_s, _ = best(result.json)
    figures_s, _ = best(lambda: draw_session(result, ReviewSettings()))
    return {"review_s": whole, "review_cpu_s": min(cpu), "read_log_s": read_s, "analyze_s": analyse_s, "json_s": json_s,
            "figures_s": figures_s, "strides": int(len(analysis.strides)), "samples": int(len(recording.acc_m_s2))}


def _timed(f) -> float:
    t0 = time.perf_counter()
    f()
    return time.perf_counter() - t0


def folder_of_sessions(logs: list[Path], n: int, jobs: int, folder: Path) -> dict:
    """Step 2: N sessions (hard links of the distinct logs) reviewed with --jobs in a fresh process."""
    archive = folder / "archive"
    for k in range(n):
        wearer = archive / f"wearer{k % WEARERS:02d}"
        wearer.mkdir(parents=True, exist_ok=True)
        target = wearer / f"session{k:03d}.hclog"
        try:
            os.link(logs[k % len(logs)], target)
        except OSError:  # a file system without hard links
            shutil.copyfile(logs[k % len(logs)], target)
    t0 = time.perf_counter()
    done = subprocess.run(HIPCHECK + ["review", str(archive), "-o", str(folder / "archive.html"), "--jobs", str(jobs),
                                      "--no-progress"], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode:
        raise SystemExit(f"review of the folder failed: {done.stderr}")
    return {"sessions": n, "jobs": jobs, "wall_s": wall, "sessions_per_min": 60.0 * n / wall,
            "last_line": done.stdout.strip().splitlines()[-1][:200]}


def cold_compile(log: Path, folder: Path) -> dict:
    """Step 3: a fresh process with an empty numba cache, then the same command warm."""
    cache = Path(tempfile.mkdtemp(prefix="numba-cold-"))
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache), HIPCHECK_COMPILE_NOTICE="1")  # the notice, as on a terminal
    runs = {}
    for name in ("cold", "warm"):
        t0 = time.perf_counter()
        done = subprocess.run(HIPCHECK + ["review", str(log), "-o", str(folder / f"{name}.html"), "--force",
                                          "--no-progress"], capture_output=True, text=True, env=env)
        runs[name] = (time.perf_counter() - t0, done.stderr)
    shutil.rmtree(cache, ignore_errors=True)
    notice = [line for line in runs["cold"][1].splitlines() if "compiling the signal kernels" in line]
    return {"cold_s": runs["cold"][0], "warm_s": runs["warm"][0], "compile_s": runs["cold"][0] - runs["warm"][0],
            "notice": notice, "warm_notice": "compiling the signal kernels" in runs["warm"][1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=100, help="sessions in the folder (default 100)")
    parser.add_argument("--jobs", type=int, default=2, help="processes for the folder (default 2)")
    parser.add_argument("--minutes", type=float, default=60.0, help="length of each session (default 60)")
    parser.add_argument("--skip-folder", action="store_true")
    parser.add_argument("--skip-cold", action="store_true")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args()

    figures: dict = {"minutes": args.minutes}
    with tempfile.TemporaryDirectory(prefix="hipcheck-review-bench-") as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        logs = [folder / f"walk{k}.hclog" for k in range(DISTINCT_WALKS if not args.skip_folder else 1)]
        for k, log in enumerate(logs):
            write_walk_log(log, 60.0 * args.minutes, seed=k, start_unix_s=1.8e9 + 86400.0 * k)
        print(f"{len(logs)} logs of {args.minutes:g} min written in {time.perf_counter() - t0:.0f} s "
              f"({logs[0].stat().st_size / 1e6:.1f} MB each)", flush=True)

        one = figures["one_session"] = one_session(logs[0], folder)
        print(f"1. review of a {args.minutes:g}-minute walk at {FS_HZ:g} Hz, warm ({one['samples']} samples, "
              f"{one['strides']} strides): {one['review_s']:.2f} s (target ≤ 2 s; CPU {one['review_cpu_s']:.2f} s) — "
              f"read the log "
              f"{one['read_log_s']:.2f} s, analyse {one['analyze_s']:.2f} s, JSON {one['json_s']:.2f} s, figures "
              f"{one['figures_s']:.2f} s; load {_load()}", flush=True)
        csv = csv_of(logs[0], folder / "walk.csv")
        from hipcheck.review import review

        t_csv = min(_timed(lambda: review([csv], folder / "csv.html", progress=False)) for _ in range(REPEATS))
        figures["one_session_csv_s"] = t_csv
        print(f"1b. the same walk as a CSV (no log to reassemble): {t_csv:.2f} s; load {_load()}", flush=True)
        if not args.skip_folder:
            many = figures["folder"] = folder_of_sessions(logs, args.sessions, args.jobs, folder)
            print(f"2. a folder of {many['sessions']} sessions of {args.minutes:g} min, --jobs {many['jobs']}: "
                  f"{many['wall_s']:.0f} s ({many['sessions_per_min']:.1f} sessions/min); load {_load()}", flush=True)
        if not args.skip_cold:
            short = folder / "short.hclog"
            write_walk_log(short, 20.0, seed=9)
            cold = figures["cold"] = cold_compile(short, folder)
            print(f"3. cold compile: `hipcheck review` of a 20 s log with an empty numba cache {cold['cold_s']:.0f} s, "
                  f"warm {cold['warm_s']:.1f} s: compile {cold['compile_s']:.0f} s; notice said: "
                  f"{' / '.join(cold['notice']) or 'NOTHING'}; load {_load()}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
