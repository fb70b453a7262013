"""`hipcheck orient` and `hipcheck analyze`: the contracts users of other sensors rely on."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hipcheck.cli import main
from hipcheck.gait.evaluate import match_events
from hipcheck.imu_csv import write_imu_csv
from hipcheck.motion import SensorModel, simulate_walk
from hipcheck.rotation import inclination_error_rad

FS_HZ = 100.0


@pytest.fixture(scope="module")
def walk_csv(tmp_path_factory):
    trace = simulate_walk(duration_s=30.0, seed=7, fs_hz=FS_HZ, drop_right_deg=9.0, drop_left_deg=3.0,
                          sensor=SensorModel.realistic(seed=7, mounting_rpy_deg=(6.0, -14.0, 9.0)))
    path = tmp_path_factory.mktemp("cli") / "walk.csv"
    write_imu_csv(path, trace.t_s, trace.acc_sensor_m_s2, trace.gyr_sensor_rad_s)
    return path, trace


@pytest.mark.parametrize("offline", [False, True])
def test_orient_writes_sensor_to_earth_quaternions(walk_csv, tmp_path, capsys, offline):
    path, trace = walk_csv
    out = tmp_path / "q.csv"
    assert main(["orient", str(path), "-o", str(out)] + (["--offline"] if offline else [])) == 0
    assert out.read_text().splitlines()[0] == "t,qw,qx,qy,qz"
    table = np.loadtxt(out, delimiter=",", skiprows=1)
    assert table.shape == (len(trace.t_s), 5)
    np.testing.assert_allclose(table[:, 0], trace.t_s, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(table[:, 1:], axis=1), 1.0, atol=1e-6)
    error = np.degrees(inclination_error_rad(table[:, 1:], trace.truth.q_sensor_to_earth))
    # The realistic sensor's accelerometer bias (up to 20 mg per axis) tips any 6D estimate by up to about 1.6°.
    assert np.sqrt(np.mean(error[200:] ** 2)) < 2.0


def test_analyze_json_contract(walk_csv, capsys):
    path, trace = walk_csv
    assert main(["analyze", str(path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["fs"] == pytest.approx(FS_HZ)
    for key in ("initial_contacts", "final_contacts"):
        assert result[key] and all(set(c) == {"sample", "side"} and c["side"] in ("left", "right")
                                   and isinstance(c["sample"], int) for c in result[key])
    truth_ic = trace.truth.contacts_s("IC") * FS_HZ
    found = np.array([c["sample"] for c in result["initial_contacts"]])
    matched = sum(np.min(np.abs(found - t)) <= 0.1 * FS_HZ for t in truth_ic if t > 3 * FS_HZ)
    assert matched >= 0.9 * np.sum(truth_ic > 3 * FS_HZ)
    stride = result["strides"][len(result["strides"]) // 2]
    for key in ("drop_right_stance_deg", "drop_left_stance_deg", "sway_pp_cm", "tilt_mean_deg", "stride_time_s",
                "cadence_spm", "side"):
        assert key in stride
    assert isinstance(result["decisions"], list) and result["decisions"]
    assert {"kind", "side", "sample", "value"} <= set(result["decisions"][0])
    assert result["summary"]["weak_side"] == "right"
    assert "holds" not in result  # no single-leg hold in a walk


def test_analyze_text_names_the_weak_side(walk_csv, capsys):
    path, _ = walk_csv
    assert main(["analyze", str(path)]) == 0
    out = capsys.readouterr().out
    assert "weak side: right" in out


def test_file_in_g_gets_a_hint(walk_csv, tmp_path, capsys):
    _, trace = walk_csv
    path = tmp_path / "in_g.csv"
    write_imu_csv(path, trace.t_s, trace.acc_sensor_m_s2 / 9.80665, trace.gyr_sensor_rad_s)
    assert main(["analyze", str(path), "--json"]) == 1
    assert "--acc-unit g" in capsys.readouterr().err
    assert main(["analyze", str(path), "--json", "--acc-unit", "g"]) == 0


def test_too_short_recording_is_refused(walk_csv, tmp_path, capsys):
    _, trace = walk_csv
    path = tmp_path / "short.csv"
    write_imu_csv(path, trace.t_s[:150], trace.acc_sensor_m_s2[:150], trace.gyr_sensor_rad_s[:150])
    assert main(["analyze", str(path)]) == 1
    assert "at least" in capsys.readouterr().err


def test_analyze_real_lower_back_recording_with_remapped_axes(tmp_path, capsys):
    """A mobgap lab recording (tests/data/mobgap, Apache-2.0), written as a user of another sensor would: its own
    axes (x superior, y right, z anterior) and deg/s, remapped by the options."""
    from pathlib import Path

    data = np.load(Path(__file__).parent / "data" / "mobgap" / "MS-001-Test11-Trial1-12000-15000.npz")
    fs = float(data["fs"])
    path = tmp_path / "mobgap.csv"
    t_s = np.arange(len(data["acc"])) / fs
    write_imu_csv(path, t_s, data["acc"].astype(float), data["gyr_dps"].astype(float))
    assert main(["analyze", str(path), "--json"]) == 1  # read as rad/s, the gyro is out of any IMU's range
    assert "--gyr-unit deg/s" in capsys.readouterr().err
    assert main(["analyze", str(path), "--json", "--gyr-unit", "deg/s", "--axes", "z,-y,x"]) == 0
    result = json.loads(capsys.readouterr().out)
    found = np.array([c["sample"] for c in result["initial_contacts"]])
    sides = [c["side"] for c in result["initial_contacts"]]
    reference = data["INDIP_ic"]
    tolerance = int(0.25 * fs)
    matched = match_events(found, reference, tolerance)
    recall = len(matched) / len(reference)
    assert recall >= 0.8, f"recall {recall:.2f} of the INDIP contacts"
    side_right = np.mean([sides[k] == str(data["INDIP_ic_lr"][i]) for k, i in matched])
    assert side_right >= 0.9
    assert len(result["strides"]) >= 8
