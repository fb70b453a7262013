"""`hipcheck import`: a CSV with other column names and units, a Movella DOT export and MetaMotion MetaBase files
become session logs that `hipcheck analyze` reads, with the strides of the samples read directly; wrong units and
unknown files are refused with a line that names the fix. The DOT and MetaMotion files of tests/data/vendor are
synthetic (a simulated walk written in those layouts by tests/data/vendor/make_vendor_csv.py)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import hipcheck
from hipcheck.import_csv import write_session_log
from hipcheck.motion import simulate_walk
from hipcheck.sessionfile import read_session_log
from hipcheck.units import DEG_PER_RAD, GRAVITY_M_S2
from hipcheck.vendor_csv import VendorCsvError, parse_columns, read_foreign_csv

VENDOR = Path(__file__).resolve().parent / "data" / "vendor"
DOT = VENDOR / "movella_dot_walk.csv"
METAMOTION_ACC = VENDOR / "MetaWear_2026-01-01T00.00.00.000_SYNTHETIC_Accelerometer_1.0.0.csv"
METAMOTION_GYR = VENDOR / "MetaWear_2026-01-01T00.00.00.000_SYNTHETIC_Gyroscope_1.0.0.csv"
COLUMNS = "t=Time,acc_x=AccX,acc_y=AccY,acc_z=AccZ,gyr_x=GyrX,gyr_y=GyrY,gyr_z=GyrZ"


def _hipcheck(*argv, cwd):
    script = Path(sys.executable).with_name("hipcheck")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "hipcheck"]
    return subprocess.run(command + [str(a) for a in argv], capture_output=True, text=True, cwd=cwd, timeout=300)


def _same_strides(a, b, drop_tol_deg=0.05):
    """Two strides tables alike: the same strides (start, end, side), metrics within the wire's rounding."""
    assert len(a) == len(b) >= 8
    assert a["start_sample"].tolist() == b["start_sample"].tolist()
    assert a["end_sample"].tolist() == b["end_sample"].tolist()
    assert a["side"].tolist() == b["side"].tolist()
    for column in ("drop_right_stance_deg", "drop_left_stance_deg", "tilt_mean_deg"):
        np.testing.assert_allclose(a[column], b[column], atol=drop_tol_deg, equal_nan=True)


def test_other_names_and_units_give_the_strides_of_the_csv_analysed_directly(tmp_path):
    trace = simulate_walk(duration_s=15.0, seed=7, drop_right_deg=8.0)
    acc_g, gyr_dps = trace.acc_sensor_m_s2 / GRAVITY_M_S2, trace.gyr_sensor_rad_s * DEG_PER_RAD
    rows = np.column_stack([trace.t_s * 1000.0, acc_g, gyr_dps])
    np.savetxt(tmp_path / "theirs.csv", rows, delimiter=",", fmt="%.9g", comments="",
               header="Time,AccX,AccY,AccZ,GyrX,GyrY,GyrZ")
    np.savetxt(tmp_path / "plain.csv", rows, delimiter=",", fmt="%.9g", comments="",
               header="t,acc_x,acc_y,acc_z,gyr_x,gyr_y,gyr_z")
    done = _hipcheck("import", "theirs.csv", "-o", "s.hclog", "--columns", COLUMNS, "--acc-unit", "g",
                     "--gyr-unit", "deg/s", "--time-unit", "ms", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("wrote s.hclog: 1500 samples at 100 Hz from a generic CSV")
    from_log = json.loads(_hipcheck("analyze", "s.hclog", "--json", cwd=tmp_path).stdout)
    direct = _hipcheck("analyze", "plain.csv", "--json", "--acc-unit", "g", "--gyr-unit", "deg/s", "--time-unit", "ms",
                       cwd=tmp_path)
    assert direct.returncode == 0, direct.stderr
    import pandas

    _same_strides(pandas.DataFrame(from_log["strides"]), pandas.DataFrame(json.loads(direct.stdout)["strides"]))
    assert from_log["input"]["format"] == "hclog" and from_log["summary"]["weak_side"] == "right"
    # a wrong unit is refused naming the option that fixes it; an existing output needs --force
    wrong = _hipcheck("import", "theirs.csv", "-o", "t.hclog", "--columns", COLUMNS, "--gyr-unit", "deg/s",
                      cwd=tmp_path)
    assert wrong.returncode == 1 and "pass --acc-unit g" in wrong.stderr and len(wrong.stderr.splitlines()) == 1
    again = _hipcheck("import", "theirs.csv", "-o", "s.hclog", "--columns", COLUMNS, "--acc-unit", "g",
                      "--gyr-unit", "deg/s", cwd=tmp_path)
    assert again.returncode == 1 and "--force" in again.stderr


def _analysed_directly(foreign):
    recording = foreign.recording
    return hipcheck.analyze((recording.acc_m_s2, recording.gyr_rad_s), fs=recording.fs_hz)


@pytest.mark.parametrize("files, kind, fs_hz", [([DOT], "movella-dot", 60.0), ([METAMOTION_ACC], "metamotion", 100.0)])
def test_sensor_exports_are_recognised_and_their_logs_give_the_same_strides(files, kind, fs_hz, tmp_path):
    foreign = read_foreign_csv(files)
    assert foreign.format == kind
    recording = foreign.recording
    assert abs(recording.fs_hz - fs_hz) < 0.01 * fs_hz
    assert np.all(np.diff(recording.t_s) > 0) and 14.9 < recording.t_s[-1] < 15.1  # the DOT's clock wrap unwrapped
    summary = write_session_log(foreign, tmp_path / "s.hclog")
    log = read_session_log(tmp_path / "s.hclog")
    assert len(log) == summary.samples == len(recording) and not log.lost and not log.damage_line
    assert np.abs(log.acc_m_s2 - recording.acc_m_s2).max() < 0.003  # 1/2048 g rounding
    from_log = hipcheck.analyze(tmp_path / "s.hclog")
    _same_strides(from_log.strides, _analysed_directly(foreign).strides)
    assert from_log.summary["weak_side"] == "right"  # the simulated walk drops 8° in right stance


def test_metamotion_takes_both_files_in_either_order_and_interpolates_the_gyroscope():
    one = read_foreign_csv([METAMOTION_GYR])  # the accelerometer's file found beside it
    both = read_foreign_csv([METAMOTION_GYR, METAMOTION_ACC])
    assert one.sources == both.sources == [str(METAMOTION_ACC), str(METAMOTION_GYR)]
    assert one.start_unix_s == pytest.approx(1_767_225_600.01)  # the first accelerometer instant the gyro covers
    np.testing.assert_array_equal(one.recording.gyr_rad_s, both.recording.gyr_rad_s)
    with pytest.raises(VendorCsvError, match="both g files"):
        read_foreign_csv([METAMOTION_ACC, METAMOTION_ACC])


def test_a_long_gap_becomes_a_lost_range_of_the_log(tmp_path):
    trace = simulate_walk(duration_s=12.0, seed=8)
    keep = (trace.t_s < 5.0) | (trace.t_s >= 6.0)  # one second missing
    np.savetxt(tmp_path / "gap.csv", np.column_stack([trace.t_s, trace.acc_sensor_m_s2, trace.gyr_sensor_rad_s])[keep],
               delimiter=",", fmt="%.9g", comments="", header="t,acc_x,acc_y,acc_z,gyr_x,gyr_y,gyr_z")
    foreign = read_foreign_csv([tmp_path / "gap.csv"])
    summary = write_session_log(foreign, tmp_path / "gap.hclog")
    log = read_session_log(tmp_path / "gap.hclog")
    assert [(r.first_seq, r.n) for r in log.lost] == [(500, 100)] and summary.lost == 100
    assert log.lost[0].reason == "missing in the imported file" and len(log) == keep.sum()


def test_unknown_files_and_bad_options_are_refused_with_the_fix(tmp_path):
    (tmp_path / "x.csv").write_text("Zeit;Beschleunigung\n0;1\n")
    with pytest.raises(VendorCsvError, match="--columns"):
        read_foreign_csv([tmp_path / "x.csv"])
    with pytest.raises(VendorCsvError, match="pass --gyr-unit deg/s"):
        read_foreign_csv([DOT], gyr_unit="rad/s")
    with pytest.raises(VendorCsvError, match="NAME=COLUMN"):
        parse_columns("t=Time,acc_x")
    with pytest.raises(VendorCsvError, match="none of ours"):
        parse_columns("time=Time")
    with pytest.raises(VendorCsvError, match="lacks GyrX"):
        read_foreign_csv([DOT], columns="t=SampleTimeFine,acc_x=Acc_X,acc_y=Acc_Y,acc_z=Acc_Z,gyr_x=GyrX")
