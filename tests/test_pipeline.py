"""The whole pipeline against the simulator's truth, block by block and whole, and on bad input.

Acceptance of the signal core (issue 3): with the realistic sensor model, mounting rotations up to 20° and no
calibration, obliquity and tilt RMSE ≤ 1.0°, range-of-motion error ≤ 0.5°, sway peak-to-peak error ≤ 1 cm; drop
detection sensitivity and specificity ≥ 0.95 for drops 2° or more beyond the threshold, the side always right;
identical results whatever the block sizes.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hipcheck import detect
from hipcheck.gait import IC, LEFT
from hipcheck.inputs import InputError
from hipcheck.motion import SensorModel, simulate_hold, simulate_walk
from hipcheck.motion import score
from hipcheck.pipeline import Pipeline, analyze_arrays, sort_decisions

FS_HZ = 100.0
# Mountings (roll, pitch, yaw) in degrees, up to 20° about any axis: the acceptance's "mounting rotation up to 20°".
MOUNTINGS = [(2.0, -8.0, 3.0), (8.0, -20.0, 12.0), (-15.0, 10.0, -20.0), (20.0, 5.0, 8.0)]


@functools.lru_cache(maxsize=None)
def walk(seed: int, mounting: tuple, drop_right_deg: float = 8.0, drop_left_deg: float = 4.0, duration_s=60.0,
         **extra):
    return simulate_walk(duration_s=duration_s, seed=seed, fs_hz=FS_HZ, drop_right_deg=drop_right_deg,
                         drop_left_deg=drop_left_deg,
                         sensor=SensorModel.realistic(seed=seed, mounting_rpy_deg=mounting), **extra)


@functools.lru_cache(maxsize=None)
def analysed(seed: int, mounting: tuple, **settings):
    trace = walk(seed, mounting, **settings)
    return trace, analyze_arrays(trace.acc_sensor_m_s2, trace.gyr_sensor_rad_s, FS_HZ)


# ------------------------------------------------------------------------------------------ accuracy vs truth


@pytest.mark.parametrize("mounting", MOUNTINGS)
def test_angles_match_truth_without_calibration(mounting):
    trace, result = analysed(3, mounting)
    (_, rmse_obliquity, rmse_tilt), available = score.angle_rmse_deg(trace, result.angles_pelvis_deg)
    assert available > 0.95, "angles should be available over the walk"
    assert rmse_obliquity <= 1.0, f"obliquity RMSE {rmse_obliquity:.2f}° with mounting {mounting}"
    assert rmse_tilt <= 1.0, f"tilt RMSE {rmse_tilt:.2f}° with mounting {mounting}"


@pytest.mark.parametrize("mounting", MOUNTINGS)
def test_stride_ranges_and_sway_match_truth(mounting):
    trace, result = analysed(3, mounting)
    pairs = score.matched_strides(trace, result.strides)
    assert len(pairs) >= 0.9 * len(score.steady_strides(trace)), "most steady strides should be found"
    for field in ("obliquity_range_deg", "tilt_range_deg"):
        errors = score.stride_errors(pairs, field)
        assert np.all(np.abs(errors) <= 0.5), f"{field}: errors up to {np.max(np.abs(errors)):.2f}° ({mounting})"
    sway_errors = score.stride_errors(pairs, "sway_pp_cm")
    assert np.all(np.abs(sway_errors) <= 1.0), f"sway errors up to {np.max(np.abs(sway_errors)):.2f} cm"
    for side in ("right", "left"):
        field = f"drop_{side}_stance_deg"
        errors = score.stride_errors(pairs, field)
        assert np.all(np.abs(errors) <= 1.0), f"{field}: errors up to {np.max(np.abs(errors)):.2f}°"


def test_drop_detection_sensitivity_specificity_and_side():
    threshold = detect.DEFAULT_DROP_THRESHOLD_DEG
    counts = score.DetectionCounts()
    for seed, (right, left) in enumerate([(threshold + 3, threshold - 3), (threshold - 3, threshold + 3),
                                          (threshold + 2.5, threshold - 2.5), (threshold - 4, threshold - 4),
                                          (threshold + 4, threshold + 4)]):
        trace, result = analysed(10 + seed, MOUNTINGS[seed % len(MOUNTINGS)], drop_right_deg=right,
                                 drop_left_deg=left)
        counts.add(score.drop_detection(trace, result.decisions, detect.DROP, threshold))
    assert counts.wrong_side == 0
    assert counts.hits + counts.misses > 50 and counts.correct_rejections + counts.false_alarms > 50
    assert counts.sensitivity >= 0.95, f"sensitivity {counts.sensitivity:.3f}: {counts}"
    assert counts.specificity >= 0.95, f"specificity {counts.specificity:.3f}: {counts}"


def test_weak_side_is_named_in_the_summary():
    from hipcheck import report

    _, weak_right = analysed(3, MOUNTINGS[1])
    summary = report.summarize(weak_right.strides, detect.DEFAULT_DROP_THRESHOLD_DEG)
    assert summary["weak_side"] == "right"
    _, healthy = analysed(4, MOUNTINGS[2], drop_right_deg=4.0, drop_left_deg=4.0)
    summary = report.summarize(healthy.strides, detect.DEFAULT_DROP_THRESHOLD_DEG)
    assert summary["weak_side"] is None
    assert not np.any(healthy.decisions["kind"] == detect.DROP)


def test_single_leg_hold_is_found():
    trace = simulate_hold(duration_s=30.0, side="left", drop_deg=4.0, seed=5, fs_hz=FS_HZ,
                          sensor=SensorModel.realistic(seed=5, mounting_rpy_deg=MOUNTINGS[1]))
    result = analyze_arrays(trace.acc_sensor_m_s2, trace.gyr_sensor_rad_s, FS_HZ)
    (truth,) = [i for i in trace.truth.intervals if i.kind == "hold"]
    assert len(result.holds) == 1
    hold = result.holds[0]
    assert hold["side"] == LEFT
    assert abs(hold["start_sample"] / FS_HZ - truth.start_s) < 0.5
    assert abs(hold["end_sample"] / FS_HZ - truth.end_s) < 0.5
    assert len(result.strides) == 0 and not np.any(result.events["kind"] == IC)


# --------------------------------------------------------------------------------------------- block sizes


def _records_equal(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and len(a) == len(b) and all(
        np.array_equal(a[name], b[name], equal_nan=a[name].dtype.kind == "f") for name in a.dtype.names)


@pytest.mark.parametrize("seed", [0, 1])
def test_whole_and_random_blocks_give_identical_results(seed):
    trace = walk(20 + seed, MOUNTINGS[seed + 1], duration_s=40.0, turns=((20.0, 90.0, 2.0),))
    acc, gyr = trace.acc_sensor_m_s2, trace.gyr_sensor_rad_s
    whole = analyze_arrays(acc, gyr, FS_HZ)
    rng = np.random.default_rng(seed)
    pipeline = Pipeline(FS_HZ)
    blocks, start = [], 0
    while start < len(acc):
        stop = min(len(acc), start + int(rng.integers(1, 501)))
        blocks.append(pipeline.update(acc[start:stop], gyr[start:stop]))
        start = stop
    blocks.append(pipeline.finish())
    joined = {name: np.concatenate([getattr(b, name) for b in blocks])
              for name in ("q_sensor_to_earth", "angles_pelvis_deg", "acc_level_m_s2", "events", "strides",
                           "decisions", "holds")}
    for name in ("q_sensor_to_earth", "angles_pelvis_deg", "acc_level_m_s2"):
        assert np.array_equal(joined[name], getattr(whole, name), equal_nan=True), name
    joined["decisions"] = sort_decisions(joined["decisions"])
    for name in ("events", "strides", "decisions", "holds"):
        assert _records_equal(joined[name], getattr(whole, name)), name
    assert len(whole.strides) > 10 and len(whole.decisions) > 0


# ---------------------------------------------------------------------------------------------- bad input


def _short_walk():
    return walk(30, MOUNTINGS[0], duration_s=20.0)


def test_wrong_units_are_refused_with_a_hint():
    trace = _short_walk()
    with pytest.raises(InputError, match="--acc-unit g"):
        analyze_arrays(trace.acc_sensor_m_s2 / 9.80665, trace.gyr_sensor_rad_s, FS_HZ)
    with pytest.raises(InputError, match="--gyr-unit deg/s"):
        analyze_arrays(trace.acc_sensor_m_s2, np.degrees(trace.gyr_sensor_rad_s) * 10, FS_HZ)


def test_too_short_constant_and_all_nan_recordings_are_refused():
    trace = _short_walk()
    with pytest.raises(InputError, match="at least"):
        analyze_arrays(trace.acc_sensor_m_s2[:100], trace.gyr_sensor_rad_s[:100], FS_HZ)
    constant_acc = np.tile([0.0, 0.0, 9.81], (2000, 1))
    with pytest.raises(InputError, match="stuck"):
        analyze_arrays(constant_acc, np.zeros((2000, 3)), FS_HZ)
    with pytest.raises(InputError, match="NaN"):
        analyze_arrays(np.full((2000, 3), np.nan), np.full((2000, 3), np.nan), FS_HZ)
    with pytest.raises(InputError, match="shape"):
        analyze_arrays(trace.acc_sensor_m_s2[:, :2], trace.gyr_sensor_rad_s, FS_HZ)


def test_nan_and_saturated_samples_are_counted_and_survived():
    trace = _short_walk()
    acc, gyr = trace.acc_sensor_m_s2.copy(), trace.gyr_sensor_rad_s.copy()
    acc[500:510] = np.nan
    gyr[900] = np.nan
    acc[1200:1203, 2] = 16 * 9.80665
    clean = analyze_arrays(trace.acc_sensor_m_s2, trace.gyr_sensor_rad_s, FS_HZ)
    result = analyze_arrays(acc, gyr, FS_HZ)
    assert result.input_report.nan_samples == 11 and result.input_report.saturated_samples == 3
    assert any("NaN" in note for note in result.notes)
    assert np.all(np.isfinite(result.q_sensor_to_earth))
    # Flawed samples cost at most a stride or so, never the whole analysis.
    assert len(result.strides) >= len(clean.strides) - 2


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_corrupted_recordings_get_an_answer_or_a_clear_refusal(data):
    """Random runs of NaN, zeros, saturation, constants and spikes anywhere: the pipeline either refuses with an
    InputError or returns finite orientations and well-formed records, never a crash."""
    trace = _short_walk()
    acc, gyr = trace.acc_sensor_m_s2.copy(), trace.gyr_sensor_rad_s.copy()
    n = len(acc)
    for _ in range(data.draw(st.integers(1, 6))):
        start = data.draw(st.integers(0, n - 1))
        stop = min(n, start + data.draw(st.integers(1, 800)))
        target = data.draw(st.sampled_from([acc, gyr]))
        value = data.draw(st.sampled_from([np.nan, np.inf, 0.0, 16 * 9.80665, -34.9, 1e6]))
        target[start:stop, data.draw(st.integers(0, 2))] = value
    try:
        result = analyze_arrays(acc, gyr, FS_HZ)
    except InputError as error:
        assert str(error)
        return
    assert result.q_sensor_to_earth.shape == (n, 4) and np.all(np.isfinite(result.q_sensor_to_earth))
    assert np.all(np.diff(result.events["sample"]) >= 0)
    assert np.all((result.strides["start_sample"] < result.strides["end_sample"]))
    assert np.all((result.decisions["sample"] >= 0) & (result.decisions["sample"] < n))
