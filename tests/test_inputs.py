"""Input checks: data that cannot give a right answer is refused with a hint; flaws are counted."""

from __future__ import annotations

import numpy as np
import pytest

from hipcheck.inputs import InputError, check_imu, unit_problem

FS_HZ = 100.0


def still_and_moving(n: int = 1000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    acc = np.array([0.3, -0.2, 9.8]) + rng.normal(0.0, 0.05, (n, 3))
    gyr = rng.normal(0.0, 0.2, (n, 3))
    return acc, gyr


def test_clean_data_passes_with_no_warnings():
    acc, gyr = still_and_moving()
    report = check_imu(acc, gyr, FS_HZ)
    assert report.n_samples == 1000 and report.warnings() == []


@pytest.mark.parametrize("scale, hint", [(1 / 9.80665, "--acc-unit g"), (1000 / 9.80665, "unit and scale")])
def test_accelerometer_units(scale, hint):
    acc, gyr = still_and_moving()
    with pytest.raises(InputError, match=hint):
        check_imu(acc * scale, gyr, FS_HZ)


def test_gyroscope_in_degrees_per_second():
    acc, gyr = still_and_moving()
    gyr[10:40] = [0.0, 0.0, 3.0]  # a quick turn: 3 rad/s, in °/s 172
    assert unit_problem(acc, np.degrees(gyr)) is not None
    with pytest.raises(InputError, match="--gyr-unit deg/s"):
        check_imu(acc, np.degrees(gyr), FS_HZ)
    assert unit_problem(acc, gyr) is None


def test_file_in_m_s2_read_as_g():
    acc, gyr = still_and_moving()
    assert "--acc-unit m/s2" in unit_problem(acc * 9.80665, gyr, acc_unit="g")


def test_flaws_are_counted():
    acc, gyr = still_and_moving()
    acc[5:8] = np.nan
    gyr[20] = np.inf
    gyr[40, 1] = np.radians(2000.0)
    acc[100:200] = acc[100]
    gyr[100:200] = gyr[100]
    report = check_imu(acc, gyr, FS_HZ)
    assert (report.nan_samples, report.saturated_samples, report.stuck_samples) == (4, 1, 100)
    assert report.infinite_samples == 1  # an inf is a flaw counted with the missing samples, and named
    assert len(report.warnings()) == 4 and any("infinite" in w for w in report.warnings())


def test_refusals():
    acc, gyr = still_and_moving()
    with pytest.raises(InputError, match="positive"):
        check_imu(acc, gyr, 0.0)
    with pytest.raises(InputError, match="sampled together"):
        check_imu(acc, gyr[:-1], FS_HZ)
    with pytest.raises(InputError, match="at least 20"):
        check_imu(acc, gyr, FS_HZ, min_seconds=20.0)
    with pytest.raises(InputError, match="stuck"):
        check_imu(np.tile(acc[0], (1000, 1)), np.tile(gyr[0], (1000, 1)), FS_HZ)
    bad = acc.copy()
    bad[:700] = np.nan
    with pytest.raises(InputError, match="too little"):
        check_imu(bad, gyr, FS_HZ)


def test_a_single_gyro_glitch_is_not_taken_for_a_unit():
    acc, gyr = still_and_moving()
    gyr[500] = [0.0, 1e6, 0.0]
    assert unit_problem(acc, gyr) is None
