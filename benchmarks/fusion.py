"""Orientation filters on BROAD: inclination RMSE per trial, and throughput, ours against the peers.

Data: BROAD, Laidig, Caruso, Cereatti, Seel (2021), "BROAD — A Benchmark for Robust Inertial Orientation
Estimation", Data 6(7):72, CC BY 4.0 — the trials in the team's shared data folder (see its README). Metric as the
benchmark defines it: error quaternion q_e = q_est ⊗ q_ref⁻¹, inclination 2·acos(√(w²+z²)), RMSE over the
`movement` samples (reference NaN skipped), per trial; a group score is the mean of the trials.

Compared, each with its library defaults (6D: accelerometer + gyroscope):
  ours causal (hipcheck.fusion.causal), ours offline (hipcheck.fusion.offline), vqf's VQF, BasicVQF and offline_vqf
  (Laidig & Seel 2023), imufusion's Ahrs (x-io Fusion; AhrsSettings with only the sample rate set), and ahrs'
  Madgwick (default gain).

A second table applies the same latency compensation to every filter's output (q ⊗ exp(ω·lead/2), raw gyroscope,
lead = half a sample, 1.75 ms): on BROAD this removes a timing offset between the IMU and the optical reference
that dominates the error of the fast trials. It is a property of the recordings, not of any filter, so the
headline figures are those of the first table.

Measured here (9 trials): ours causal 0.759 (VQF 0.758), ours offline 0.549 (offline VQF 0.566), 13 M samples/s.
With the paper's motion-bias process noise the causal filter matches VQF on every trial; the 0.70 target is not
met. A process noise 25 times the paper's (a 4 s instead of a 100 s forgetting time) reaches 0.719, helped by the
fast hand-held trials, but lets every gait initiation pull the bias by 0.25 °/s on a walk
(tests/test_fusion.py::test_bias_is_not_pulled_by_walk_start_and_stop).

Both run with their defaults here: the still anchors of the offline filter (the offline still_weight) act only
on still samples, which BROAD does not score (0.5487 → 0.5488), and the turn gate (fusion.turn_rate_rad_s), a
setting for a body-worn sensor while walking, is off by default: on these hand-held trials, with sustained
rotations of 100-400 °/s, a 20 °/s gate raises the causal error from 0.76° to 3.3° (tests/test_fusion.py covers it
on simulated walks with turns).

Run: .venv/bin/python benchmarks/fusion.py [--data DIR] [--json PATH] [--repeats N]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from _timing import best_of

from hipcheck.fusion import Fusion
from hipcheck.fusion import orient_offline
from hipcheck.rotation import inclination_error_rad, quat_from_rotvec, quat_multiply

DATA_DIR = Path("/work/shared/data/broad")
LEAD_S = 0.00175
CITATION = ("BROAD: Laidig, Caruso, Cereatti, Seel (2021), Data 6(7):72, CC BY 4.0; "
            "VQF: Laidig & Seel (2023), Information Fusion 91:187-204")


def load_trials(data_dir: Path) -> list[dict]:
    trials = []
    for path in sorted(data_dir.glob("*.npz")):
        with np.load(path) as d:
            trials.append(dict(name=path.stem, fs=float(d["fs"]), acc=np.ascontiguousarray(d["acc"], np.float64),
                               gyr=np.ascontiguousarray(d["gyr"], np.float64), quat_ref=d["quat_ref"],
                               movement=d["movement"]))
    if not trials:
        raise SystemExit(f"no .npz trials in {data_dir}; pass --data DIR")
    return trials


# Each filter: (acc m/s², gyr rad/s, fs) -> q_sensor_to_earth (n, 4), earth z up.
def ours_causal(acc, gyr, fs):
    return Fusion(fs).update(acc, gyr)


def ours_offline(acc, gyr, fs):
    return orient_offline(acc, gyr, fs)


def vqf_vqf(acc, gyr, fs):
    from vqf import VQF

    return VQF(1.0 / fs).updateBatch(gyr, acc)["quat6D"]


def vqf_basic(acc, gyr, fs):
    from vqf import BasicVQF

    return BasicVQF(1.0 / fs).updateBatch(gyr, acc)["quat6D"]


def vqf_offline(acc, gyr, fs):
    from vqf import offlineVQF

    return offlineVQF(gyr, acc, None, 1.0 / fs)["quat6D"]


def imufusion_ahrs(acc, gyr, fs):
    import imufusion

    settings = imufusion.AhrsSettings()
    settings.sample_rate = fs
    ahrs = imufusion.Ahrs()
    ahrs.set_settings(settings)
    gyr_dps, acc_g = np.degrees(gyr), acc / 9.80665  # its units
    q = np.empty((len(acc), 4))
    for k in range(len(acc)):
        ahrs.update_no_magnetometer(gyr_dps[k], acc_g[k])
        q[k] = ahrs.get_quaternion()
    return q


def ahrs_madgwick(acc, gyr, fs):
    from ahrs.filters import Madgwick

    return Madgwick(gyr=gyr, acc=acc, frequency=fs).Q


FILTERS = {  # name: (function, causal?, whole-set throughput run?)
    "ours causal": (ours_causal, True, True),
    "ours offline": (ours_offline, False, True),
    "VQF": (vqf_vqf, True, True),
    "BasicVQF": (vqf_basic, True, True),
    "offline VQF": (vqf_offline, False, True),
    "imufusion Ahrs": (imufusion_ahrs, True, False),
    "ahrs Madgwick": (ahrs_madgwick, True, False),
}


def inclination_rmse_deg(q, trial) -> float:
    err = inclination_error_rad(q, trial["quat_ref"])
    scored = trial["movement"] & np.isfinite(err)
    return float(np.degrees(np.sqrt(np.mean(err[scored] ** 2))))


def lead(q, gyr, fs, lead_s):
    return quat_multiply(q, quat_from_rotvec(np.nan_to_num(gyr) * lead_s))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA_DIR)
    parser.add_argument("--json", type=Path, help="write the figures to this JSON file")
    parser.add_argument("--repeats", type=int, default=5, help="throughput: best of this many runs")
    args = parser.parse_args(argv)
    trials = load_trials(args.data)

    rmse = {name: [] for name in FILTERS}
    rmse_lead = {name: [] for name in FILTERS}
    for trial in trials:
        for name, (fn, _, _) in FILTERS.items():
            q = fn(trial["acc"], trial["gyr"], trial["fs"])
            rmse[name].append(inclination_rmse_deg(q, trial))
            rmse_lead[name].append(inclination_rmse_deg(lead(q, trial["gyr"], trial["fs"], LEAD_S), trial))

    # Throughput: the fast filters on all trials end to end (whole-array calls, warm cache, best of N); the two
    # with a Python loop per sample on the first trial, once.
    acc_all = np.concatenate([t["acc"] for t in trials])
    gyr_all = np.concatenate([t["gyr"] for t in trials])
    fs = trials[0]["fs"]
    speed = {}
    for name, (fn, _, whole_set) in FILTERS.items():
        acc, gyr = (acc_all, gyr_all) if whole_set else (trials[0]["acc"], trials[0]["gyr"])
        fn(acc[:1000], gyr[:1000], fs)  # warm (numba cache, imports)
        seconds, _ = best_of(args.repeats if whole_set else 1, lambda: fn(acc, gyr, fs))
        speed[name] = len(acc) / seconds / 1e6

    names = [t["name"] for t in trials]
    print(f"Inclination RMSE (deg) over the movement samples, {len(trials)} BROAD trials, 6D.\n{CITATION}\n")
    for title, table in (("library defaults", rmse), (f"all outputs led by {LEAD_S * 1e3:.2f} ms", rmse_lead)):
        ref_causal, ref_offline = np.mean(table["ours causal"]), np.mean(table["ours offline"])
        print(f"### {title}\n")
        print("| filter | " + " | ".join(n[:2] for n in names) + " | mean | ÷ ours causal | ÷ ours offline |")
        print("| --- |" + " ---: |" * (len(names) + 3))
        for name, values in table.items():
            mean = float(np.mean(values))
            print(f"| {name} | " + " | ".join(f"{v:.3f}" for v in values)
                  + f" | **{mean:.3f}** | {mean / ref_causal:.2f} | {mean / ref_offline:.2f} |")
        print()
    print("Trials: " + ", ".join(names) + "\n")
    print(f"### Throughput, one core (M samples/s; best of {args.repeats} on {len(acc_all):,} samples, "
          f"Python-loop peers once on {len(trials[0]['acc']):,})\n")
    print("| filter | M samples/s | ÷ ours causal |")
    print("| --- | ---: | ---: |")
    for name, value in speed.items():
        print(f"| {name} | {value:.2f} | {value / speed['ours causal']:.3f} |")
    print("\nTargets (DESIGN.md): causal ≤ 0.70°, offline ≤ 0.50°, causal ≥ 10 M samples/s.")

    if args.json:
        args.json.write_text(json.dumps({
            "citation": CITATION,
            "trials": names,
            "inclination_rmse_deg": rmse,
            "inclination_rmse_deg_mean": {k: float(np.mean(v)) for k, v in rmse.items()},
            "inclination_rmse_deg_led": {"lead_s": LEAD_S, **rmse_lead},
            "inclination_rmse_deg_led_mean": {k: float(np.mean(v)) for k, v in rmse_lead.items()},
            "throughput_M_samples_s": speed,
        }, indent=1))
        print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
