"""The generic IMU CSV reader and writer: round trip, units, axes, and clear errors for bad files."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hipcheck.imu_csv import ImuCsvError, parse_axes, read_imu_csv, write_imu_csv
from hipcheck.units import GRAVITY_M_S2


def _recording(n=200, fs_hz=100.0, seed=1):
    rng = np.random.default_rng(seed)
    t_s = np.arange(n) / fs_hz
    acc = np.array([0.3, -0.2, GRAVITY_M_S2]) + 0.1 * rng.standard_normal((n, 3))
    gyr = 0.5 * rng.standard_normal((n, 3))
    mag = np.array([20.0, 5.0, -40.0]) + rng.standard_normal((n, 3))
    return t_s, acc, gyr, mag


def _write_text(tmp_path, text, name="rec.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_round_trip_keeps_values(tmp_path):
    t_s, acc, gyr, mag = _recording()
    path = tmp_path / "rec.csv"
    write_imu_csv(path, t_s, acc, gyr, mag)
    rec = read_imu_csv(path)
    np.testing.assert_allclose(rec.t_s, t_s, atol=1e-6)
    np.testing.assert_allclose(rec.acc_m_s2, acc, rtol=1e-8)
    np.testing.assert_allclose(rec.gyr_rad_s, gyr, rtol=1e-8)
    np.testing.assert_allclose(rec.mag_uT, mag, rtol=1e-8)
    assert rec.fs_hz == pytest.approx(100.0)


def test_magnetometer_is_optional(tmp_path):
    t_s, acc, gyr, _ = _recording()
    write_imu_csv(tmp_path / "rec.csv", t_s, acc, gyr)
    assert read_imu_csv(tmp_path / "rec.csv").mag_uT is None


def test_columns_in_any_order_and_case(tmp_path):
    path = _write_text(
        tmp_path,
        "GYR_Z, gyr_y,gyr_x,acc_z,acc_y,acc_x,T,extra\n"
        "3,2,1,9.8,0.5,0.25,0.0,7\n"
        "6,5,4,9.7,0.4,0.125,0.01,7\n",
    )
    rec = read_imu_csv(path)
    np.testing.assert_allclose(rec.acc_m_s2[0], [0.25, 0.5, 9.8])
    np.testing.assert_allclose(rec.gyr_rad_s[1], [4, 5, 6])
    assert rec.fs_hz == pytest.approx(100.0)


def test_units_g_and_degrees(tmp_path):
    t_s, acc, gyr, _ = _recording()
    write_imu_csv(tmp_path / "rec.csv", t_s, acc / GRAVITY_M_S2, np.degrees(gyr))
    rec = read_imu_csv(tmp_path / "rec.csv", acc_unit="g", gyr_unit="deg/s")
    np.testing.assert_allclose(rec.acc_m_s2, acc, rtol=1e-7)
    np.testing.assert_allclose(rec.gyr_rad_s, gyr, rtol=1e-7)


def test_file_in_g_read_as_m_s2_is_refused_with_hint(tmp_path):
    t_s, acc, gyr, _ = _recording()
    write_imu_csv(tmp_path / "rec.csv", t_s, acc / GRAVITY_M_S2, gyr)
    with pytest.raises(ImuCsvError, match="--acc-unit g"):
        read_imu_csv(tmp_path / "rec.csv")


def test_file_in_m_s2_read_as_g_is_refused_with_hint(tmp_path):
    t_s, acc, gyr, _ = _recording()
    write_imu_csv(tmp_path / "rec.csv", t_s, acc, gyr)
    with pytest.raises(ImuCsvError, match="--acc-unit m/s2"):
        read_imu_csv(tmp_path / "rec.csv", acc_unit="g")


def test_file_in_degrees_read_as_radians_is_refused_with_hint(tmp_path):
    t_s, acc, gyr, _ = _recording()
    gyr[50] = [3.0, 0.0, 0.0]  # 172 deg/s, a brisk turn
    write_imu_csv(tmp_path / "rec.csv", t_s, acc, np.degrees(gyr))
    with pytest.raises(ImuCsvError, match="--gyr-unit deg/s"):
        read_imu_csv(tmp_path / "rec.csv")


def test_axis_mapping_rotates_all_sensors(tmp_path):
    t_s, acc, gyr, mag = _recording()
    write_imu_csv(tmp_path / "rec.csv", t_s, acc, gyr, mag)
    rec = read_imu_csv(tmp_path / "rec.csv", axes="x,-z,y", check_units=False)
    for ours, theirs in ((rec.acc_m_s2, acc), (rec.gyr_rad_s, gyr), (rec.mag_uT, mag)):
        np.testing.assert_allclose(ours[:, 0], theirs[:, 0])
        np.testing.assert_allclose(ours[:, 1], -theirs[:, 2])
        np.testing.assert_allclose(ours[:, 2], theirs[:, 1])


@pytest.mark.parametrize(
    "spec, message",
    [("x,y", "three axes"), ("x,y,w", "not one of"), ("x,x,z", "twice"), ("x,y,-z", "mirror image"), ("y,x,z", "mirror")],
)
def test_bad_axis_mapping(spec, message):
    with pytest.raises(ImuCsvError, match=message):
        parse_axes(spec)


def test_proper_rotations_are_accepted():
    for spec in ("x,y,z", "y,-x,z", "-x,-y,z", "z,x,y", "x,-z,y"):
        assert np.linalg.det(parse_axes(spec)) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "text, message",
    [
        ("time,ax,ay,az\n0,1,2,3\n", "header lacks t, acc_x"),
        ("t,acc_x,acc_y,acc_z,gyr_x,gyr_y,gyr_z\n0,0,0,9.8,0,0,0\n", "at least two"),
        ("t,acc_x,acc_y,acc_z,gyr_x,gyr_y,gyr_z\n0,0,0,9.8,0,0,0\n0.01,0,zero,9.8,0,0,0\n", "line 3, column 3"),
        ("t,acc_x,acc_y,acc_z,gyr_x,gyr_y,gyr_z\n0,0,0,9.8,0,0,0\n0.01,0,0\n", "line 3 has 3 values"),
        ("t,acc_x,acc_y,acc_z,gyr_x,gyr_y,gyr_z\n0,0,0,9.8,0,0,0\n0.01,0,0,9.8,0,0,0\n0.01,0,0,9.8,0,0,0\n", "line 4"),
        ("", "header lacks"),
    ],
)
def test_bad_files_get_clear_errors(tmp_path, text, message):
    with pytest.raises(ImuCsvError, match=message):
        read_imu_csv(_write_text(tmp_path, text))


def test_missing_file_and_bad_options(tmp_path):
    with pytest.raises(ImuCsvError, match="no such file"):
        read_imu_csv(tmp_path / "absent.csv")
    t_s, acc, gyr, _ = _recording()
    write_imu_csv(tmp_path / "rec.csv", t_s, acc, gyr)
    with pytest.raises(ImuCsvError, match="unknown unit 'mg'"):
        read_imu_csv(tmp_path / "rec.csv", acc_unit="mg")
    with pytest.raises(ImuCsvError, match="not a positive number"):
        read_imu_csv(tmp_path / "rec.csv", fs_hz=0)


def test_nan_values_are_passed_on(tmp_path):
    t_s, acc, gyr, _ = _recording()
    acc[10] = np.nan
    write_imu_csv(tmp_path / "rec.csv", t_s, acc, gyr)
    rec = read_imu_csv(tmp_path / "rec.csv")
    assert np.isnan(rec.acc_m_s2[10]).all()
    assert np.isfinite(rec.acc_m_s2[11]).all()


def test_given_sample_rate_wins(tmp_path):
    t_s, acc, gyr, _ = _recording()
    write_imu_csv(tmp_path / "rec.csv", t_s, acc, gyr)
    assert read_imu_csv(tmp_path / "rec.csv", fs_hz=102.4).fs_hz == 102.4


HEADER = "t,acc_x,acc_y,acc_z,gyr_x,gyr_y,gyr_z\n"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.text(alphabet="0123456789.,-e\nnaNx ", max_size=300), with_header=st.booleans())
def test_any_text_is_read_or_refused_with_imu_csv_error(tmp_path, body, with_header):
    path = tmp_path / "fuzz.csv"
    path.write_text((HEADER if with_header else "") + body)
    try:
        rec = read_imu_csv(path, check_units=False)
    except ImuCsvError:
        return
    assert len(rec) >= 2 and np.all(np.diff(rec.t_s) > 0)
    assert rec.acc_m_s2.shape == rec.gyr_rad_s.shape == (len(rec), 3)


def test_a_clean_file_is_read_as_written_with_nothing_to_say(tmp_path):
    t_s, acc, gyr, _ = _recording()
    write_imu_csv(tmp_path / "rec.csv", t_s, acc, gyr)
    rec = read_imu_csv(tmp_path / "rec.csv", check_units=False)
    assert rec.time_unit == "s" and rec.notes == [] and rec.observed is None
    np.testing.assert_allclose(rec.t_s, t_s, atol=1e-9)


@pytest.mark.parametrize("unit, scale", [("ms", 1e3), ("us", 1e6)])
def test_time_in_ms_and_us_is_recognised_and_said(tmp_path, unit, scale):
    t_s, acc, gyr, _ = _recording()
    rows = np.column_stack([t_s * scale, acc, gyr])
    np.savetxt(tmp_path / "rec.csv", rows, delimiter=",", header=HEADER.strip(), comments="", fmt="%.9g")
    rec = read_imu_csv(tmp_path / "rec.csv", check_units=False)
    assert rec.time_unit == unit and rec.fs_hz == pytest.approx(100.0)
    assert rec.notes and f"read in {unit}" in rec.notes[0]
    with pytest.raises(ImuCsvError, match="unknown unit 'min' for --time-unit"):
        read_imu_csv(tmp_path / "rec.csv", time_unit="min")


def test_infinite_values_are_read_as_missing_and_said(tmp_path):
    t_s, acc, gyr, _ = _recording()
    acc[3, 1], gyr[7, 0] = np.inf, -np.inf
    write_imu_csv(tmp_path / "rec.csv", t_s, acc, gyr)
    with np.errstate(all="raise"):
        rec = read_imu_csv(tmp_path / "rec.csv", check_units=False)
    assert np.isnan(rec.acc_m_s2[3]).any() and np.isnan(rec.gyr_rad_s[7]).any()
    assert not np.isinf(rec.acc_m_s2).any() and "2 samples hold an infinite value" in rec.notes[0]


def test_gaps_put_the_file_on_one_grid(tmp_path):
    t_s, acc, gyr, _ = _recording(n=1000)
    keep = (t_s < 3.0) | (t_s > 4.0)
    write_imu_csv(tmp_path / "rec.csv", t_s[keep], acc[keep], gyr[keep])
    rec = read_imu_csv(tmp_path / "rec.csv", check_units=False)
    assert len(rec) == 1000 and rec.fs_hz == pytest.approx(100.0)
    assert (~rec.observed).sum() == 101 and np.isnan(rec.acc_m_s2[~rec.observed]).all()
    assert any("2 segments" in note for note in rec.notes)
