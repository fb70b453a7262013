"""Run every benchmark in this folder, one after another, and print their tables.

Usage: .venv/bin/python benchmarks/run_all.py [NAME ...]   (names without .py; default: all)
Each benchmark measures the peers it compares against in the same run, so ratios hold on a noisy machine.
"""

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(names: list[str]) -> int:
    scripts = sorted(p for p in HERE.glob("*.py") if p.name != Path(__file__).name and not p.name.startswith("_"))
    if names:
        known = {p.stem: p for p in scripts}
        unknown = [n for n in names if n not in known]
        if unknown:
            print(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(known)}", file=sys.stderr)
            return 2
        scripts = [known[n] for n in names]
    failed = []
    for script in scripts:
        print(f"=== {script.name}", flush=True)
        started = time.perf_counter()
        result = subprocess.run([sys.executable, str(script)])
        print(f"=== {script.name}: {'ok' if result.returncode == 0 else 'FAILED'} in {time.perf_counter() - started:.1f} s\n")
        if result.returncode != 0:
            failed.append(script.name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
