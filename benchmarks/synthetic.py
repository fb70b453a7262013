"""The whole pipeline against the simulator's truth: pelvic angles, per-stride ranges, sway and drop detection.

Run: .venv/bin/python benchmarks/synthetic.py [--json PATH]. Realistic sensor model (noise, bias and its drift, scale,
misalignment, quantisation), mounting rotations up to 20°, no calibration given. Targets (DESIGN.md): obliquity and
tilt RMSE ≤ 1.0°, range-of-motion error ≤ 0.5°, sway peak-to-peak error ≤ 1 cm, drop detection sensitivity and
specificity ≥ 0.95 for drops 2° or more beyond the threshold with the side always right. Strides are those the
pipeline measured on its settled alignment (it marks the first one or two of a walk as provisional).
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from hipcheck import detect
from hipcheck.motion import SensorModel, score, simulate_walk
from hipcheck.pipeline import analyze_arrays

FS_HZ = 100.0
SCENARIOS = [
    # name, mounting (roll, pitch, yaw) deg, walk settings
    ("drop R 8, L 4", (2.0, -8.0, 3.0), dict(drop_right_deg=8.0, drop_left_deg=4.0)),
    ("drop R 8, L 4", (8.0, -20.0, 12.0), dict(drop_right_deg=8.0, drop_left_deg=4.0)),
    ("drop R 2, L 10", (-15.0, 10.0, -20.0), dict(drop_right_deg=2.0, drop_left_deg=10.0)),
    ("healthy 4 / 4", (20.0, 5.0, 8.0), dict(drop_right_deg=4.0, drop_left_deg=4.0)),
    ("sway 8 cm, tilt +5°", (5.0, -15.0, -10.0), dict(sway_cm=8.0, tilt_mean_deg=5.0)),
    ("sway 2 cm, tilt −5°", (-10.0, -5.0, 15.0), dict(sway_cm=2.0, tilt_mean_deg=-5.0)),
    ("slow 80 steps/min", (0.0, -12.0, 0.0), dict(cadence_spm=80.0, speed_m_s=0.8, drop_right_deg=7.0)),
    ("turns +90°, −180°", (5.0, -15.0, -10.0), dict(turns=((20.0, 90.0, 2.0), (40.0, -180.0, 3.0)))),
]
# Drop settings around the threshold for the detection score, with a spread of per-step drops.
DETECTION_WALKS = [(3.0, -3.0), (-3.0, 3.0), (2.5, -2.5), (-4.0, -4.0), (4.0, 4.0), (3.5, -2.0)]


def accuracy_rows(offline: bool) -> list[dict]:
    rows = []
    for k, (name, mounting, settings) in enumerate(SCENARIOS):
        trace = simulate_walk(duration_s=60.0, seed=100 + k, fs_hz=FS_HZ,
                              sensor=SensorModel.realistic(seed=100 + k, mounting_rpy_deg=mounting), **settings)
        result = analyze_arrays(trace.acc_sensor_m_s2, trace.gyr_sensor_rad_s, FS_HZ, offline=offline)
        (_, rmse_obliquity, rmse_tilt), _ = score.angle_rmse_deg(trace, result.angles_pelvis_deg)
        pairs = score.matched_strides(trace, result.strides)

        def worst(field: str) -> float:
            errors = score.stride_errors(pairs, field)
            return float(np.max(np.abs(errors))) if len(errors) else float("nan")

        rows.append(dict(scenario=name, mounting=mounting, strides=len(pairs),
                         steady_truth=len(score.steady_strides(trace)),
                         obliquity_rmse_deg=rmse_obliquity, tilt_rmse_deg=rmse_tilt,
                         obliquity_range_err_deg=worst("obliquity_range_deg"),
                         tilt_range_err_deg=worst("tilt_range_deg"), sway_err_cm=worst("sway_pp_cm"),
                         drop_err_deg=max(worst("drop_right_stance_deg"), worst("drop_left_stance_deg"))))
    return rows


def detection(threshold: float) -> score.DetectionCounts:
    counts = score.DetectionCounts()
    mountings = [s[1] for s in SCENARIOS]
    for k, (right, left) in enumerate(DETECTION_WALKS):
        trace = simulate_walk(duration_s=90.0, seed=200 + k, fs_hz=FS_HZ, amplitude_cv=0.08,
                              drop_right_deg=threshold + right, drop_left_deg=threshold + left,
                              sensor=SensorModel.realistic(seed=200 + k, mounting_rpy_deg=mountings[k]))
        result = analyze_arrays(trace.acc_sensor_m_s2, trace.gyr_sensor_rad_s, FS_HZ)
        counts.add(score.drop_detection(trace, result.decisions, detect.DROP, threshold))
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args()

    out: dict = {}
    for offline in (False, True):
        rows = accuracy_rows(offline)
        out["offline" if offline else "causal"] = rows
        label = "offline review" if offline else "causal (live)"
        print(f"\nPipeline vs simulator truth, {label} orientation; 60 s walks, realistic sensor, no calibration\n")
        print("| scenario | mounting r, p, y (°) | strides | obliquity RMSE ° | tilt RMSE ° | obliquity range err ° "
              "| tilt range err ° | sway err cm | drop err ° |")
        print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for r in rows:
            print(f"| {r['scenario']} | {', '.join(f'{a:g}' for a in r['mounting'])} | "
                  f"{r['strides']}/{r['steady_truth']} | {r['obliquity_rmse_deg']:.2f} | {r['tilt_rmse_deg']:.2f} | "
                  f"{r['obliquity_range_err_deg']:.2f} | {r['tilt_range_err_deg']:.2f} | {r['sway_err_cm']:.2f} | "
                  f"{r['drop_err_deg']:.2f} |")
        print("\n(range, sway and drop errors: the worst stride; targets RMSE ≤ 1.0°, range ≤ 0.5°, sway ≤ 1 cm)")

    threshold = detect.DEFAULT_DROP_THRESHOLD_DEG
    counts = detection(threshold)
    out["drop_detection"] = dict(threshold_deg=threshold, **counts.__dict__, sensitivity=counts.sensitivity,
                                 specificity=counts.specificity)
    print(f"\nDrop detection (per-sample detector, threshold {threshold:g}°), {len(DETECTION_WALKS)} walks of 90 s "
          f"with drops 2-4° either side of it, per single-support phase:")
    print(f"sensitivity {counts.sensitivity:.3f} ({counts.hits} of {counts.hits + counts.misses} phases ≥ threshold "
          f"+ 2°), specificity {counts.specificity:.3f} ({counts.correct_rejections} of "
          f"{counts.correct_rejections + counts.false_alarms} phases ≤ threshold − 2°), wrong side {counts.wrong_side}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
