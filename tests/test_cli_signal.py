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


# ------------------------------------------------------------- time, units and output paths (issue 10, item 3-5)

def _csv_rows(path, t, acc, gyr):
    """A CSV written as another logger would: the time column as given, no rounding to µs."""
    rows = np.column_stack([t, acc, gyr])
    np.savetxt(path, rows, delimiter=",", header="t,acc_x,acc_y,acc_z,gyr_x,gyr_y,gyr_z", comments="", fmt="%.9g")
    return path


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_time_in_milliseconds_is_recognised(walk_csv, tmp_path, capsys):
    _, trace = walk_csv
    path = _csv_rows(tmp_path / "ms.csv", 1000.0 * trace.t_s, trace.acc_sensor_m_s2, trace.gyr_sensor_rad_s)
    assert main(["analyze", str(path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["fs"] == pytest.approx(FS_HZ) and result["summary"]["weak_side"] == "right"
    assert any("read in ms" in w and "--time-unit" in w for w in result["warnings"])  # stated
    assert main(["analyze", str(path), "--json", "--time-unit", "ms"]) == 0
    assert not any("read in ms" in w for w in json.loads(capsys.readouterr().out)["warnings"])
    assert main(["analyze", str(path), "--time-unit", "s"]) == 1  # 0.1 Hz: no sensor's rate
    assert "check --time-unit" in _one_line(capsys.readouterr().err)
    out = tmp_path / "q.csv"
    assert main(["orient", str(path), "-o", str(out)]) == 0
    table = np.loadtxt(out, delimiter=",", skiprows=1)
    assert table.shape == (len(trace.t_s), 5) and np.all(np.isfinite(table))
    np.testing.assert_allclose(table[:, 0], trace.t_s, atol=1e-9)  # written in s


def test_a_wrong_time_unit_is_refused_naming_the_option(walk_csv, tmp_path, capsys):
    _, trace = walk_csv
    path = _csv_rows(tmp_path / "samples.csv", 1e9 * trace.t_s, trace.acc_sensor_m_s2, trace.gyr_sensor_rad_s)
    assert main(["analyze", str(path)]) == 1
    assert "--time-unit" in _one_line(capsys.readouterr().err)


def test_slow_hold_in_degrees_is_refused_naming_the_fix(tmp_path, capsys):
    from hipcheck.motion import simulate_hold
    from hipcheck.units import DEG_PER_RAD

    hold = simulate_hold(fs_hz=FS_HZ, seed=1, sensor=SensorModel.realistic(seed=1))
    path = _csv_rows(tmp_path / "hold_dps.csv", hold.t_s, hold.acc_sensor_m_s2, hold.gyr_sensor_rad_s * DEG_PER_RAD)
    assert np.abs(hold.gyr_sensor_rad_s * DEG_PER_RAD).max() < 40.0  # passes any range check
    assert main(["analyze", str(path)]) == 1
    assert "pass --gyr-unit deg/s" in _one_line(capsys.readouterr().err)
    assert main(["analyze", str(path), "--gyr-unit", "deg/s", "--json"]) == 0
    capsys.readouterr()


def test_radians_declared_as_degrees_are_refused_naming_the_fix(walk_csv, capsys):
    path, _ = walk_csv
    assert main(["analyze", str(path), "--gyr-unit", "deg/s"]) == 1
    assert "pass --gyr-unit rad/s" in _one_line(capsys.readouterr().err)


def test_a_gap_and_a_rate_change_leave_the_answer_right(walk_csv, tmp_path, capsys):
    _, trace = walk_csv
    t, acc, gyr = trace.t_s, trace.acc_sensor_m_s2, trace.gyr_sensor_rad_s
    keep = ((np.arange(len(t)) % 2 == 0) | (t >= 10.0)) & ~((t > 15.0) & (t < 18.0))  # 50 Hz, then 100, a 3 s gap
    path = _csv_rows(tmp_path / "gappy.csv", t[keep], acc[keep], gyr[keep])
    assert main(["analyze", str(path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["fs"] == pytest.approx(FS_HZ) and result["duration_s"] == pytest.approx(t[-1] + 1 / FS_HZ, abs=0.02)
    assert result["summary"]["weak_side"] == "right"
    assert not any(s["t_s"] < 15.0 < s["t_s"] + s["stride_time_s"] for s in result["strides"])
    assert any("changes to 50 Hz" in w for w in result["warnings"]), result["warnings"]
    assert any("split the recording into 2 segments" in w for w in result["warnings"]), result["warnings"]
    assert main(["analyze", str(path)]) == 0
    assert "warning: 1 time gap(s) longer than 50 ms" in capsys.readouterr().out
    out = tmp_path / "q.csv"
    assert main(["orient", str(path), "-o", str(out)]) == 0
    said = capsys.readouterr().err
    table = np.loadtxt(out, delimiter=",", skiprows=1)
    assert np.all(np.isfinite(table)) and not np.any((table[:, 0] > 15.01) & (table[:, 0] < 17.99))
    assert f"wrote {len(table)} orientations" in said and "in a time gap" in said


def test_infinite_values_leak_no_warning(walk_csv, tmp_path, capfd):
    _, trace = walk_csv
    acc, gyr = trace.acc_sensor_m_s2.copy(), trace.gyr_sensor_rad_s.copy()
    acc[500, 0], gyr[600, 2] = np.inf, -np.inf
    path = _csv_rows(tmp_path / "inf.csv", trace.t_s, acc, gyr)
    assert main(["analyze", str(path)]) == 0
    out, err = capfd.readouterr()
    assert "Warning" not in err and "2 NaN (missing) samples" in out  # counted as flaws, analysed around
    assert "2 samples hold an infinite value (inf)" in out
    assert main(["orient", str(path), "-o", str(tmp_path / "q.csv")]) == 0
    err = capfd.readouterr().err
    assert "Warning" not in err and "not written: 2 samples with no data" in err
    assert np.all(np.isfinite(np.loadtxt(tmp_path / "q.csv", delimiter=",", skiprows=1)))


def test_orient_into_a_missing_folder_is_one_line(walk_csv, tmp_path, capsys):
    path, _ = walk_csv
    assert main(["orient", str(path), "-o", str(tmp_path / "no" / "such" / "q.csv")]) == 1
    line = _one_line(capsys.readouterr().err)
    assert "does not exist" in line and "create it" in line


def test_outputs_are_kept_unless_forced(walk_csv, tmp_path, capsys):
    path, _ = walk_csv
    out = tmp_path / "q.csv"
    out.write_text("keep me")
    assert main(["orient", str(path), "-o", str(out)]) == 1
    assert "pass --force" in _one_line(capsys.readouterr().err) and out.read_text() == "keep me"
    assert main(["orient", str(path), "-o", str(out), "--force"]) == 0
    assert out.read_text().startswith("t,qw") and "wrote 3000 orientations" in capsys.readouterr().err
    sim = tmp_path / "s.csv"
    sim.write_text("keep me")
    assert main(["simulate", "stand", "--seconds", "2", "-o", str(sim)]) == 1
    assert "pass --force" in _one_line(capsys.readouterr().err) and sim.read_text() == "keep me"
    log = tmp_path / "r.hclog"
    log.write_bytes(b"keep me")
    assert main(["record", "--sim", str(path), "-o", str(log)]) == 1
    assert "pass --force" in _one_line(capsys.readouterr().err) and log.read_bytes() == b"keep me"


def test_input_and_output_are_never_the_same_file(walk_csv, tmp_path, capsys):
    path, _ = walk_csv
    before = path.read_bytes()
    assert main(["orient", str(path), "-o", str(path), "--force"]) == 1
    assert "also the input" in _one_line(capsys.readouterr().err)
    log = tmp_path / "session.hclog"
    log.write_bytes(b"a session log")
    for argv in (["record", "--replay", str(log), "-o", str(log), "--force"],
                 ["live", "--replay", str(log), "-o", str(tmp_path / "." / "session.hclog")]):
        assert main(argv) == 1
        assert "also the input" in _one_line(capsys.readouterr().err)
    assert path.read_bytes() == before and log.read_bytes() == b"a session log"


@pytest.mark.parametrize("seconds", [3.5, 4.5, 6.0])
def test_short_recordings_give_what_exists_and_say_what_is_missing(walk_csv, tmp_path, capsys, seconds):
    _, trace = walk_csv
    n = int(seconds * FS_HZ)
    path = _csv_rows(tmp_path / "short.csv", trace.t_s[:n], trace.acc_sensor_m_s2[:n], trace.gyr_sensor_rad_s[:n])
    assert main(["analyze", str(path)]) == 0
    out = capsys.readouterr().out
    assert "weak side: cannot be named" in out or "pelvic drop (median)" in out
    assert main(["analyze", str(path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)["summary"]
    assert summary["weak_side"] in (None, "right")  # the walk's weak side, or none: never the wrong one


def test_record_for_five_seconds_ends_with_a_summary(walk_csv, tmp_path, capsys):
    path, _ = walk_csv
    log = tmp_path / "r.hclog"
    assert main(["record", "--sim", str(path), "--seconds", "5", "--no-alerts", "-o", str(log)]) == 0
    out = capsys.readouterr().out
    assert "weak side:" in out and log.stat().st_size > 0
