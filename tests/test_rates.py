"""Every sample rate from 25 to 1000 Hz through the whole pipeline (its buffers sized from the rate); rates outside
are refused with one line that names the range, by the library and by the command line.

Short simulated walks (30 s) keep this quick; the simulator's truth says where the strides are and which side is weak.
"""

from __future__ import annotations

import numpy as np
import pytest

from hipcheck import detect
from hipcheck.cli import main
from hipcheck.errors import InvalidValueError
from hipcheck.gait import IC, LEFT, RIGHT
from hipcheck.gait.events import MAX_RATE_HZ, MIN_RATE_HZ, EventDetector
from hipcheck.fusion import orient
from hipcheck.imu_csv import write_imu_csv
from hipcheck.motion import SensorModel, score, simulate_walk
from hipcheck.pipeline import analyze_arrays

RATES_HZ = (25.0, 50.0, 100.0, 200.0, 400.0, 1000.0)
WEAK_RIGHT_DEG, HEALTHY_LEFT_DEG = 9.0, 3.0


def walk(fs_hz: float, seed: int = 4):
    return simulate_walk(duration_s=30.0, seed=seed, fs_hz=fs_hz, drop_right_deg=WEAK_RIGHT_DEG,
                         drop_left_deg=HEALTHY_LEFT_DEG,
                         sensor=SensorModel.realistic(seed=seed, mounting_rpy_deg=(4.0, -10.0, 6.0)))


@pytest.mark.parametrize("fs_hz", RATES_HZ)
def test_the_pipeline_finds_the_strides_and_the_weak_side_at_every_rate(fs_hz):
    trace = walk(fs_hz)
    result = analyze_arrays(trace.acc_sensor_m_s2, trace.gyr_sensor_rad_s, fs_hz)
    # Contacts: every true initial contact of the walk found within 50 ms, with its side.
    ic = result.events[result.events["kind"] == IC]
    truth = [e for e in trace.truth.events if e.kind == "IC"]
    truth_samples = np.array([e.sample_index for e in truth])
    nearest = np.abs(truth_samples[:, None] - ic["sample"][None, :]).argmin(axis=1)
    error_s = np.abs(ic["sample"][nearest] - truth_samples) / fs_hz
    found = error_s <= 0.05
    assert found.mean() >= 0.95, f"{fs_hz:g} Hz: {found.sum()} of {len(truth)} contacts found"
    sides = np.array([RIGHT if e.side == "right" else LEFT for e in truth])
    assert np.array_equal(ic["side"][nearest][found], sides[found]), f"{fs_hz:g} Hz: a contact's side is wrong"
    # Strides: most steady strides measured, their drops near the truth.
    pairs = score.matched_strides(trace, result.strides)
    assert len(pairs) >= 0.8 * len(score.steady_strides(trace)), \
        f"{fs_hz:g} Hz: {len(pairs)} strides matched"
    for field in ("drop_right_stance_deg", "drop_left_stance_deg"):
        errors = score.stride_errors(pairs, field)
        assert np.all(np.abs(errors) <= 1.0), f"{fs_hz:g} Hz: {field} errors up to {np.max(np.abs(errors)):.2f}°"
    # The weak side: the drop alerts name the right stance, never the left.
    drops = result.decisions[result.decisions["kind"] == detect.DROP]
    assert len(drops) > 0 and np.all(drops["side"] == RIGHT), f"{fs_hz:g} Hz: drop alerts {drops['side']}"


@pytest.mark.parametrize("fs_hz", (400.0, 1000.0))
def test_events_do_not_depend_on_blocks_at_high_rates(fs_hz):
    trace = walk(fs_hz, seed=5)
    acc, gyr = trace.acc_sensor_m_s2, trace.gyr_sensor_rad_s
    q = orient(acc, gyr, fs_hz)
    whole = EventDetector(fs_hz).update(acc, gyr, q)
    detector = EventDetector(fs_hz)
    rng = np.random.default_rng(0)
    parts, start = [], 0
    while start < len(acc):
        stop = min(len(acc), start + int(rng.integers(1, 1500)))
        parts.append(detector.update(acc[start:stop], gyr[start:stop], q[start:stop]))
        start = stop
    assert len(whole) > 20
    assert np.array_equal(np.concatenate(parts), whole)


@pytest.mark.parametrize("fs_hz", (10.0, 24.0, 1001.0, 2000.0))
def test_rates_outside_the_range_are_refused_naming_it(fs_hz):
    trace = simulate_walk(duration_s=8.0, seed=2, fs_hz=fs_hz)
    with pytest.raises(InvalidValueError, match=f"{MIN_RATE_HZ:g}-{MAX_RATE_HZ:g} Hz"):
        analyze_arrays(trace.acc_sensor_m_s2, trace.gyr_sensor_rad_s, fs_hz)


@pytest.mark.parametrize("fs_hz", (10.0, 2000.0))
def test_the_command_line_refuses_them_on_one_line(fs_hz, tmp_path, capsys):
    trace = simulate_walk(duration_s=8.0, seed=2, fs_hz=fs_hz)
    path = tmp_path / "walk.csv"
    write_imu_csv(path, trace.t_s, trace.acc_sensor_m_s2, trace.gyr_sensor_rad_s)
    for argv in (["analyze", str(path)], ["analyze", str(path), "--fs", f"{fs_hz:g}"]):
        assert main(argv) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "Traceback" not in err
        assert f"{MIN_RATE_HZ:g}-{MAX_RATE_HZ:g} Hz" in err, err


@pytest.mark.parametrize("fs_hz", (400.0, 1000.0))
def test_the_live_job_runs_at_the_rates_the_firmware_streams(fs_hz):
    """A sensor streaming at 400 Hz (a rate of our firmware) or 1000 Hz: the live job's pipeline, fed in blocks as a
    session delivers them, gives strides and alerts on the weak side."""
    from hipcheck.device import BLOCK_DTYPE, SampleBlock
    from hipcheck.live import LiveAnalysis

    trace = walk(fs_hz)
    samples = np.zeros(len(trace.t_s), BLOCK_DTYPE)
    samples["seq"] = np.arange(len(samples))
    samples["acc_m_s2"] = trace.acc_sensor_m_s2
    samples["gyr_rad_s"] = trace.gyr_sensor_rad_s
    analysis = LiveAnalysis(lambda line: None, lambda pattern: None)
    block = int(fs_hz / 10)
    for start in range(0, len(samples), block):
        analysis.update(SampleBlock(samples[start:start + block], period_us=round(1e6 / fs_hz)))
    analysis.finish()
    strides, decisions, _ = analysis.results()
    assert analysis.fs_hz == fs_hz
    assert len(strides) >= 0.8 * len(score.steady_strides(trace))
    drops = decisions[decisions["kind"] == detect.DROP]
    assert len(drops) > 0 and np.all(drops["side"] == RIGHT)


def test_the_live_job_refuses_a_sensor_streaming_too_fast():
    from hipcheck.device import BLOCK_DTYPE, SampleBlock
    from hipcheck.live import LiveAnalysis

    samples = np.zeros(100, BLOCK_DTYPE)
    samples["acc_m_s2"][:, 2] = 9.81
    with pytest.raises(InvalidValueError, match=f"{MIN_RATE_HZ:g}-{MAX_RATE_HZ:g} Hz"):
        LiveAnalysis(lambda line: None).update(SampleBlock(samples, period_us=500))
