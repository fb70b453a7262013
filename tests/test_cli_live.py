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
    assert main(["live", "--sim", str(walk_csv), "--seconds", "14", "--headless"]) == 0
    captured = capsys.readouterr()
    assert "live window" not in captured.out  # headless: no window, and nothing said about one
    assert "weak side: right" in captured.out
    assert "0 lost and marked" in captured.out


def test_connect_prints_info_and_link_figures(walk_csv, capsys):
    assert main(["connect", "--sim", str(walk_csv), "--seconds", "2", "--realtime"]) == 0
    out = capsys.readouterr().out
    assert "board sim" in out and "imu LSM6DSOX" in out
    lines = [line for line in out.splitlines() if "connected True" in line]
    assert len(lines) >= 1 and "packets" in lines[-1]


def test_live_analysis_on_blocks_with_a_lost_stretch():
    """LiveAnalysis apart from any link: blocks of a weak-right walk, one stretch marked lost. The lost samples are
    counted and left out, the rest gives the strides of the pipeline on the same samples, and each DROP alert the
    policy lets through hands the stance side's pattern to vibrate."""
    import numpy as np

    from hipcheck import detect
    from hipcheck.device import BLOCK_DTYPE, SampleBlock
    from hipcheck.live import LiveAnalysis
    from hipcheck.pipeline import Pipeline

    trace = simulate_walk(duration_s=20.0, seed=5, drop_right_deg=9.0, sensor=SensorModel.ideal())
    samples = np.zeros(len(trace.t_s), BLOCK_DTYPE)
    samples["seq"] = np.arange(len(samples))
    samples["acc_m_s2"] = trace.acc_sensor_m_s2
    samples["gyr_rad_s"] = trace.gyr_sensor_rad_s
    samples["gap"][1000:1010] = True
    lines, patterns = [], []
    analysis = LiveAnalysis(lines.append, patterns.append)
    for start in range(0, len(samples), 25):
        analysis.update(SampleBlock(samples[start:start + 25], period_us=10_000))
    analysis.finish()
    strides, decisions, holds = analysis.results()

    assert analysis.samples_lost == 10 and analysis.fs_hz == 100.0
    assert any("10 samples lost at seq 1000" in line for line in lines)
    valid = ~samples["gap"]
    pipeline = Pipeline(100.0)
    expected = [pipeline.update(samples["acc_m_s2"][valid], samples["gyr_rad_s"][valid]).strides,
                pipeline.finish().strides]
    np.testing.assert_array_equal(strides, np.concatenate(expected))
    assert len(strides) >= 10 and len(holds) == 0
    drops = decisions[decisions["kind"] == detect.DROP]
    # The alert policy (hipcheck.alerts, its defaults: 2 of the last 3 steps, 3 s refractory) picks which DROP
    # decisions buzz: each buzz is one of them, with its stance side's pattern; every decision is printed.
    by_sample = {int(d["sample"]): ("drop_left", "drop_right")[int(d["side"])] for d in drops}
    assert patterns == [p for _, p in analysis.policy.buzzes]
    assert patterns and all(by_sample[sample] == p for sample, p in analysis.policy.buzzes)
    # mostly the weak right side (the joined samples at the lost stretch shift the stance sides for a few strides)
    assert patterns.count("drop_right") > 2 * patterns.count("drop_left")
    assert sum("-> VIBRATE drop_" in line for line in lines) == len(patterns)
    assert sum("ALERT pelvic drop while standing on the" in line for line in lines) >= len(drops)
