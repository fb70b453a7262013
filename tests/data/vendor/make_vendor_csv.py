"""Writes the synthetic sample files of this folder: a simulated walk (hipcheck.motion.simulate_walk) in the CSV
layouts of a Movella DOT export and of MbientLab MetaBase (MetaMotion), as docs/import.md describes them. No real
sensor recorded these: they exercise the readers of hipcheck.vendor_csv (tests/test_import.py).

Run from the repository root: .venv/bin/python tests/data/vendor/make_vendor_csv.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hipcheck.fusion import orient
from hipcheck.motion import SensorModel, simulate_walk
from hipcheck.units import DEG_PER_RAD, GRAVITY_M_S2

HERE = Path(__file__).resolve().parent
SECONDS = 15.0
DROP_RIGHT_DEG = 8.0
# The DOT's clock starts 4 s before its 32-bit µs counter wraps, so the file crosses the wrap.
DOT_FIRST_US = 2 ** 32 - 4_000_000
METAMOTION_EPOCH_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
GYRO_LAG_MS = 4  # MetaBase's gyroscope samples fall between the accelerometer's


def walk(fs_hz: float, seed: int):
    return simulate_walk(duration_s=SECONDS, seed=seed, fs_hz=fs_hz, sensor=SensorModel.realistic(seed=seed),
                         drop_right_deg=DROP_RIGHT_DEG)


def write_dot(path: Path) -> None:
    fs = 60.0
    trace = walk(fs, 5)
    acc, gyr = trace.acc_sensor_m_s2, trace.gyr_sensor_rad_s
    quat = orient(acc, gyr, fs)
    n = len(acc)
    t_us = (DOT_FIRST_US + np.round(np.arange(n) * 1e6 / fs).astype(np.int64)) % 2 ** 32
    lines = ["DOT data exporter (SYNTHETIC sample written by hipcheck tests/data/vendor/make_vendor_csv.py)",
             "DeviceTag:,0", "Firmware Version:,0.0.0", "Sync Status:,Unsynced", "OutputRate:,60Hz",
             "Filter Profile:,General", "Measurement Mode:,Custom Mode 4",
             "PacketCounter,SampleTimeFine,Quat_W,Quat_X,Quat_Y,Quat_Z,Acc_X,Acc_Y,Acc_Z,Gyr_X,Gyr_Y,Gyr_Z"]
    gyr_dps = gyr * DEG_PER_RAD
    for i in range(n):
        cells = [str(i), str(int(t_us[i]))] + [f"{v:.6f}" for v in (*quat[i], *acc[i], *gyr_dps[i])]
        lines.append(",".join(cells))
    path.write_text("\n".join(lines) + "\n")


def write_metamotion(acc_path: Path, gyr_path: Path) -> None:
    fs = 100.0
    trace = walk(fs, 6)
    n = len(trace.acc_sensor_m_s2)
    t_ms = METAMOTION_EPOCH_MS + np.arange(n) * 10
    acc_g = trace.acc_sensor_m_s2 / GRAVITY_M_S2
    # the gyroscope's own instants, GYRO_LAG_MS after the accelerometer's, its values interpolated there
    t_gyr = t_ms + GYRO_LAG_MS
    gyr_dps = np.column_stack([np.interp(t_gyr, t_ms, trace.gyr_sensor_rad_s[:, k]) for k in range(3)]) * DEG_PER_RAD
    for path, t, values, unit in ((acc_path, t_ms, acc_g, "g"), (gyr_path, t_gyr, gyr_dps, "deg/s")):
        rows = [f"epoc (ms),timestamp (+0000),elapsed (s),x-axis ({unit}),y-axis ({unit}),z-axis ({unit})"]
        for k in range(n):
            stamp = np.datetime64(int(t[k]), "ms").astype(str).replace(":", ".")
            rows.append(f"{int(t[k])},{stamp},{(t[k] - t[0]) / 1000:.3f},{values[k, 0]:.4f},{values[k, 1]:.4f},"
                        f"{values[k, 2]:.4f}")
        path.write_text("\n".join(rows) + "\n")


if __name__ == "__main__":
    write_dot(HERE / "movella_dot_walk.csv")
    stem = "MetaWear_2026-01-01T00.00.00.000_SYNTHETIC"
    write_metamotion(HERE / f"{stem}_Accelerometer_1.0.0.csv", HERE / f"{stem}_Gyroscope_1.0.0.csv")
