"""Inputs checked against physics: the gyro's unit from the accelerometer's inclination, the time column's unit,
gaps and changes of rate (hipcheck.inputs, hipcheck.timing, hipcheck.imu_csv)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hipcheck.imu_csv import ImuCsvError, read_imu_csv, write_imu_csv
from hipcheck.inputs import InputError, check_imu, gyro_scale_from_inclination, unit_problem
from hipcheck.motion import SensorModel, simulate_hold, simulate_sit_to_stand, simulate_stand, simulate_walk
from hipcheck.pipeline import Pipeline
from hipcheck.timing import MAX_INTERPOLATED_GAP_S, regrid, time_unit_from_period
from hipcheck.units import DEG_PER_RAD, RAD_PER_DEG

MOBGAP = Path(__file__).resolve().parents[2] / "shared" / "data" / "mobgap-lab"


@pytest.fixture(scope="module")
def hold():
    """A slow single-leg hold: its angular rate stays under 10 °/s, so °/s read as rad/s passes any range check."""
    return simulate_hold(fs_hz=100.0, seed=1, sensor=SensorModel.realistic(seed=1))


@pytest.fixture(scope="module")
def walk():
    return simulate_walk(duration_s=30.0, fs_hz=100.0, seed=4, drop_right_deg=9.0, drop_left_deg=3.0,
                         sensor=SensorModel.realistic(seed=4))


# ------------------------------------------------------------------------------------ gyro unit from inclination

@pytest.mark.parametrize("make, fs_hz", [(simulate_hold, 100.0), (simulate_sit_to_stand, 25.0),
                                         (simulate_sit_to_stand, 1000.0), (simulate_stand, 100.0)])
def test_gyro_scale_names_the_unit_at_any_speed(make, fs_hz):
    trace = make(duration_s=30.0, fs_hz=fs_hz, seed=2, sensor=SensorModel.realistic(seed=2))
    acc, gyr = trace.acc_sensor_m_s2, trace.gyr_sensor_rad_s
    right = gyro_scale_from_inclination(acc, gyr, fs_hz)
    assert right.decisive and 0.8 < right.scale < 1.25 and right.unit_factor() == 1.0
    # °/s read as rad/s: the gyro turns 57 times too far; rad/s read as °/s: 57 times too little.
    assert gyro_scale_from_inclination(acc, gyr * DEG_PER_RAD, fs_hz).unit_factor() == RAD_PER_DEG
    assert gyro_scale_from_inclination(acc, gyr * RAD_PER_DEG, fs_hz).unit_factor() == DEG_PER_RAD


def test_slow_hold_in_degrees_is_refused_with_the_fix(hold):
    gyr_dps = hold.gyr_sensor_rad_s * DEG_PER_RAD
    assert np.abs(gyr_dps).max() < 40.0  # under the range check's limit: only the physics can tell
    assert unit_problem(hold.acc_sensor_m_s2, gyr_dps) is None
    problem = unit_problem(hold.acc_sensor_m_s2, gyr_dps, fs_hz=100.0)
    assert problem is not None and "pass --gyr-unit deg/s" in problem
    with pytest.raises(InputError, match="--gyr-unit deg/s"):
        check_imu(hold.acc_sensor_m_s2, gyr_dps, 100.0)


def test_radians_read_as_degrees_are_refused_with_the_fix(hold, walk):
    for trace in (hold, walk):
        problem = unit_problem(trace.acc_sensor_m_s2, trace.gyr_sensor_rad_s * RAD_PER_DEG, gyr_unit="deg/s",
                               fs_hz=100.0)
        assert problem is not None and problem.endswith("pass --gyr-unit rad/s")


def test_a_gyro_unrelated_to_the_inclination_decides_nothing(hold):
    """Noise, a random walk and the recording's own gyro shifted in time: never a unit named, never a refusal."""
    rng = np.random.default_rng(0)
    acc, n = hold.acc_sensor_m_s2, len(hold.acc_sensor_m_s2)
    for draw in range(30):
        gyr = (rng.normal(0.0, 0.2, (n, 3)), np.cumsum(rng.normal(0.0, 0.01, (n, 3)), axis=0),
               np.roll(hold.gyr_sensor_rad_s, int(rng.integers(500, n - 500)), axis=0))[draw % 3]
        estimate = gyro_scale_from_inclination(acc, gyr, 100.0)
        assert not estimate.decisive or estimate.unit_factor() == 1.0


@pytest.mark.skipif(not MOBGAP.is_dir(), reason="the mobgap lab recordings are not in ../shared/data")
def test_real_recordings_keep_their_unit_and_a_wrong_one_is_named():
    files = sorted(MOBGAP.glob("*.npz"))
    assert files
    for path in files:
        data = np.load(path)
        fs_hz, acc, gyr = float(data["fs"]), data["acc"], data["gyr_dps"] * RAD_PER_DEG
        acc = acc * 9.80665 if np.median(np.linalg.norm(acc, axis=1)) < 3.0 else acc
        assert unit_problem(acc, gyr, fs_hz=fs_hz) is None, path.name
        estimate = gyro_scale_from_inclination(acc, gyr, fs_hz)
        for factor, named in ((DEG_PER_RAD, RAD_PER_DEG), (RAD_PER_DEG, DEG_PER_RAD)):
            wrong = gyro_scale_from_inclination(acc, gyr * factor, fs_hz)
            assert not estimate.decisive or wrong.unit_factor() == named, path.name
        # Whether or not the inclination decides, every wrong unit is refused with its fix.
        assert "pass --gyr-unit deg/s" in unit_problem(acc, gyr * DEG_PER_RAD, fs_hz=fs_hz)
        assert "pass --gyr-unit rad/s" in unit_problem(acc, gyr * RAD_PER_DEG, gyr_unit="deg/s", fs_hz=fs_hz)


# ------------------------------------------------------------------------------------------------ time unit

@pytest.mark.parametrize("fs_hz", [25.0, 100.0, 1000.0])
@pytest.mark.parametrize("unit, scale", [("s", 1.0), ("ms", 1e3), ("us", 1e6)])
def test_time_unit_is_recognised_from_the_period(fs_hz, unit, scale):
    assert time_unit_from_period(scale / fs_hz, (5.0, 5000.0)) == unit


def _write(path, t, acc, gyr):
    write_imu_csv(path, np.asarray(t, dtype=np.float64), acc, gyr)
    return path


def test_time_in_ms_is_read_and_said(tmp_path, walk):
    n = len(walk.t_s)
    text = "t,acc_x,acc_y,acc_z,gyr_x,gyr_y,gyr_z\n" + "\n".join(
        ",".join(f"{v:.9g}" for v in (1000.0 * walk.t_s[i], *walk.acc_sensor_m_s2[i], *walk.gyr_sensor_rad_s[i]))
        for i in range(n))
    path = tmp_path / "ms.csv"
    path.write_text(text)
    recording = read_imu_csv(path)
    assert recording.time_unit == "ms" and recording.fs_hz == pytest.approx(100.0)
    np.testing.assert_allclose(recording.t_s, walk.t_s, atol=1e-9)
    assert any("read in ms" in note and "--time-unit" in note for note in recording.notes)
    assert read_imu_csv(path, time_unit="ms").fs_hz == pytest.approx(100.0)
    # Declared wrongly: 0.1 Hz is no sensor's rate, and the refusal names the option.
    with pytest.raises(ImuCsvError, match="check --time-unit"):
        read_imu_csv(path, time_unit="s")


def test_a_period_in_no_unit_is_refused_naming_the_option(tmp_path):
    t = np.arange(200) * 5000.0  # 200 Hz in µs
    acc = np.tile([0.0, 0.0, 9.81], (200, 1)) + np.random.default_rng(0).normal(0, 0.05, (200, 3))
    gyr = np.random.default_rng(1).normal(0, 0.05, (200, 3))
    assert read_imu_csv(_write(tmp_path / "us.csv", t, acc, gyr)).time_unit == "us"
    with pytest.raises(ImuCsvError, match="--time-unit"):
        read_imu_csv(_write(tmp_path / "slow.csv", np.arange(200) * 1e6, acc, gyr))
    with pytest.raises(ImuCsvError, match="--time-unit"):
        read_imu_csv(_write(tmp_path / "fast.csv", np.arange(200) * 1e-5, acc, gyr))


# ---------------------------------------------------------------------------------------- gaps and rate changes

def test_no_gap_no_change(walk):
    grid = regrid(walk.t_s, walk.acc_sensor_m_s2, walk.gyr_sensor_rad_s)
    assert grid.notes == [] and grid.observed is None and grid.t_s is walk.t_s


def test_a_short_gap_is_interpolated(walk):
    keep = np.ones(len(walk.t_s), dtype=bool)
    keep[1000:1004] = False  # 40 ms missing: within MAX_INTERPOLATED_GAP_S
    grid = regrid(walk.t_s[keep], walk.acc_sensor_m_s2[keep], walk.gyr_sensor_rad_s[keep])
    assert 0.04 <= MAX_INTERPOLATED_GAP_S
    assert len(grid.t_s) == len(walk.t_s) and grid.observed.all()
    assert np.all(np.isfinite(grid.acc)) and "1 short time gap" in grid.notes[0]
    np.testing.assert_allclose(grid.t_s, walk.t_s, atol=1e-9)


def test_a_long_gap_splits_the_recording_and_no_stride_spans_it(walk):
    keep = np.ones(len(walk.t_s), dtype=bool)
    keep[1500:1800] = False  # 3 s
    grid = regrid(walk.t_s[keep], walk.acc_sensor_m_s2[keep], walk.gyr_sensor_rad_s[keep])
    assert len(grid.t_s) == len(walk.t_s)
    assert not grid.observed[1501:1800].any() and grid.observed[:1500].all() and grid.observed[1800:].all()
    assert np.isnan(grid.acc[~grid.observed]).all()
    assert any("2 segments" in note and "3.01 s" in note for note in grid.notes), grid.notes
    pipeline = Pipeline(grid.fs_hz)
    strides = np.concatenate([pipeline.update(grid.acc, grid.gyr).strides, pipeline.finish().strides])
    starts, ends = strides["start_sample"], strides["end_sample"]
    assert len(strides) > 10
    assert not np.any((starts < 1500) & (ends > 1500))  # none measured across the missing 3 s


def test_a_change_of_rate_is_found_and_resampled(walk):
    """The first 15 s at 50 Hz, the rest at 100 Hz: on one 100 Hz grid, and said."""
    t, acc, gyr = walk.t_s, walk.acc_sensor_m_s2, walk.gyr_sensor_rad_s
    keep = (np.arange(len(t)) % 2 == 0) | (t >= 15.0)
    grid = regrid(t[keep], acc[keep], gyr[keep])
    assert grid.fs_hz == pytest.approx(100.0)
    np.testing.assert_allclose(grid.t_s, t, atol=1e-9)
    assert any("changes to 50 Hz" in note and "resampled" in note for note in grid.notes), grid.notes
    # Linear interpolation between 50 Hz samples: close to what was measured at 100 Hz.
    assert np.sqrt(np.mean((grid.acc - acc) ** 2)) < 0.2


def test_a_file_that_is_mostly_gaps_is_refused(walk):
    keep = np.zeros(len(walk.t_s), dtype=bool)
    keep[:500] = keep[2500:] = True
    grid = regrid(walk.t_s[keep], walk.acc_sensor_m_s2[keep], walk.gyr_sensor_rad_s[keep])
    assert grid.refusal is not None and "split it" in grid.refusal


def test_infinite_values_are_counted_as_missing(walk):
    acc, gyr = walk.acc_sensor_m_s2.copy(), walk.gyr_sensor_rad_s.copy()
    acc[100, 0], gyr[200, 2] = np.inf, -np.inf
    with np.errstate(all="raise"):
        report = check_imu(acc, gyr, 100.0)
    assert report.nan_samples == 2 and report.infinite_samples == 2
    assert any("infinite" in warning for warning in report.warnings())
