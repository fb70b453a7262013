"""`hipcheck live` and `hipcheck connect` wired to the simulated sensor (the firmware in the unix port)."""

from __future__ import annotations

import pytest

from hipcheck.cli import main
from hipcheck.imu_csv import write_imu_csv
from hipcheck.motion import SensorModel, simulate_walk


@pytest.fixture(scope="module")
def walk_csv(tmp_path_factory):
    trace = simulate_walk(duration_s=15.0, seed=3, drop_right_deg=9.0, sensor=SensorModel.realistic(seed=3))
    path = tmp_path_factory.mktemp("live") / "walk.csv"
    write_imu_csv(path, trace.t_s, trace.acc_sensor_m_s2, trace.gyr_sensor_rad_s)
    return path


def test_live_runs_the_pipeline_and_names_the_weak_side(walk_csv, capsys):
    assert main(["live", "--sim", str(walk_csv), "--seconds", "14"]) == 0
    captured = capsys.readouterr()
    assert "live plot does not exist yet" in captured.out
    assert "weak side: right" in captured.out
    assert "0 lost and marked" in captured.out


def test_connect_prints_info_and_link_figures(walk_csv, capsys):
    assert main(["connect", "--sim", str(walk_csv), "--seconds", "2", "--realtime"]) == 0
    out = capsys.readouterr().out
    assert "board sim" in out and "imu LSM6DSOX" in out
    lines = [line for line in out.splitlines() if "connected True" in line]
    assert len(lines) >= 1 and "packets" in lines[-1]
