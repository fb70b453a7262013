"""hipcheck.gait.events: contacts and sides against the simulator's truth and a real-data excerpt, block invariance,
no contacts when not walking, bad input."""

from pathlib import Path

import numpy as np
import pytest

from hipcheck.gait import EVENT_DTYPE, FC, IC, LEFT, RIGHT
from hipcheck.fusion import orient
from hipcheck.gait.evaluate import match_events
from hipcheck.gait.events import DEFAULT_SETTINGS, EventDetector, detect_events
from hipcheck.motion import SensorModel, simulate_hold, simulate_sit, simulate_stand, simulate_walk
from hipcheck.rotation import quat_from_rotvec, quat_multiply, quat_rotate

DATA = Path(__file__).parent / "data" / "mobgap"


def orientation(acc_sensor_m_s2, gyr_sensor_rad_s, fs_hz):
    """q_sensor_to_earth (6D, causal), as the pipeline's fusion stage provides it."""
    return orient(acc_sensor_m_s2, gyr_sensor_rad_s, fs_hz)


def run(trace, **settings):
    q = orientation(trace.acc_sensor_m_s2, trace.gyr_sensor_rad_s, trace.fs_hz)
    return detect_events(trace.acc_sensor_m_s2, trace.gyr_sensor_rad_s, q, trace.fs_hz, **settings)


@pytest.fixture(scope="module")
def walk():
    return simulate_walk(duration_s=60, seed=1, drop_right_deg=8,
                         sensor=SensorModel.realistic(seed=1, mounting_rpy_deg=(5, -15, 10)))


def nearest_truth(trace, events, kind_name):
    truth = [e for e in trace.truth.events if e.kind == kind_name]
    samples = np.array([e.sample_index for e in truth])
    nearest = np.abs(events["sample"][:, None] - samples[None, :]).argmin(axis=1)
    return truth, samples, nearest


def test_initial_contacts_match_simulated_truth_with_the_right_side(walk):
    events = run(walk)
    assert events.dtype == EVENT_DTYPE
    assert np.all(np.diff(events["sample"]) > 0)
    ic = events[events["kind"] == IC]
    truth, samples, nearest = nearest_truth(walk, ic, "IC")
    assert len(ic) == len(truth)  # every step found, none added
    assert len(set(nearest)) == len(truth)
    error_s = (ic["sample"] - samples[nearest]) / walk.fs_hz
    assert np.abs(error_s).max() <= 0.03
    sides = np.array([RIGHT if truth[j].side == "right" else LEFT for j in nearest])
    assert np.array_equal(ic["side"], sides)  # the side must always be right


def test_final_contacts_follow_the_truth_with_the_opposite_foot(walk):
    events = run(walk)
    fc = events[events["kind"] == FC]
    truth, samples, nearest = nearest_truth(walk, fc, "FC")
    assert len(fc) == len(truth)
    error_s = (fc["sample"] - samples[nearest]) / walk.fs_hz
    assert np.abs(error_s).max() <= 0.08  # toe off is less sharp than heel strike: about −40 ms here
    sides = np.array([RIGHT if truth[j].side == "right" else LEFT for j in nearest])
    assert np.array_equal(fc["side"], sides)


@pytest.mark.parametrize("simulate", [simulate_stand, simulate_sit, simulate_hold])
@pytest.mark.parametrize("seed", [0, 1])
def test_no_contacts_when_not_walking(simulate, seed):
    trace = simulate(duration_s=30, seed=seed)
    detector = EventDetector(trace.fs_hz)
    q = orientation(trace.acc_sensor_m_s2, trace.gyr_sensor_rad_s, trace.fs_hz)
    events = detector.update(trace.acc_sensor_m_s2, trace.gyr_sensor_rad_s, q)
    assert len(events) == 0 and len(detector.flush()) == 0
    assert not detector.walking_per_sample.any()


def test_no_contacts_when_turning_on_the_spot():
    """Standing while the body turns 2 × 360° about the vertical (through the sensor): no steps, no contacts."""
    trace = simulate_stand(duration_s=20, seed=3)
    fs_hz = trace.fs_hz
    t_s = np.arange(len(trace.acc_sensor_m_s2)) / fs_hz
    turning = (t_s >= 5) & (t_s < 15)
    yaw_rate_rad_s = np.where(turning, 4 * np.pi / 5 * np.sin(np.pi * (t_s - 5) / 10) ** 2, 0.0)  # 720° in 10 s
    q_stand = trace.truth.q_sensor_to_earth
    yaw_rad = np.cumsum(yaw_rate_rad_s) / fs_hz
    q = quat_multiply(quat_from_rotvec(np.outer(yaw_rad, [0.0, 0.0, 1.0])), q_stand)
    # The turn adds its rate, seen in the sensor frame, to the gyro; the specific force stays (turn about the sensor).
    gyr = trace.gyr_sensor_rad_s + quat_rotate(q * np.array([1, -1, -1, -1]), np.outer(yaw_rate_rad_s, [0, 0, 1.0]))
    assert len(detect_events(trace.acc_sensor_m_s2, gyr, q, fs_hz)) == 0


def test_fast_trunk_tilt_vetoes_the_steps_around_it(walk):
    """A postural transition (here: 4 rad/s of pitch for 0.4 s added to the gyroscope) drops the steps within
    transition_window_s of it and leaves the others as they were."""
    q = orientation(walk.acc_sensor_m_s2, walk.gyr_sensor_rad_s, walk.fs_hz)
    plain = detect_events(walk.acc_sensor_m_s2, walk.gyr_sensor_rad_s, q, walk.fs_hz)
    gyr = walk.gyr_sensor_rad_s.copy()
    start, stop = 3000, 3040
    gyr[start:stop, 1] += 4.0
    tilted = detect_events(walk.acc_sensor_m_s2, gyr, q, walk.fs_hz)
    window = 0.5 * walk.fs_hz + 0.25 * walk.fs_hz  # the veto window plus anchor-to-contact spacing and margin
    near = (plain["sample"] > start - window) & (plain["sample"] < stop + window)
    far = (plain["sample"] < start - 2 * window) | (plain["sample"] > stop + 2 * window)
    ic = tilted[tilted["kind"] == IC]["sample"]
    assert not ((ic > start - 0.3 * walk.fs_hz) & (ic < stop + 0.3 * walk.fs_hz)).any()
    assert near.sum() >= 2
    assert np.array_equal(plain[far], tilted[(tilted["sample"] < start - 2 * window) |
                                             (tilted["sample"] > stop + 2 * window)])


def test_block_size_does_not_change_the_events(walk):
    q = orientation(walk.acc_sensor_m_s2, walk.gyr_sensor_rad_s, walk.fs_hz)
    whole = detect_events(walk.acc_sensor_m_s2, walk.gyr_sensor_rad_s, q, walk.fs_hz)
    rng = np.random.default_rng(7)
    detector = EventDetector(walk.fs_hz)
    parts, vertical, start = [], [], 0
    n = len(q)
    while start < n:
        stop = min(n, start + int(rng.integers(1, 501)))
        parts.append(detector.update(walk.acc_sensor_m_s2[start:stop], walk.gyr_sensor_rad_s[start:stop],
                                     q[start:stop]))
        vertical.append(detector.vertical_acc_m_s2)
        start = stop
    parts.append(detector.flush())
    blocks = np.concatenate(parts)
    blocks = blocks[blocks["sample"] < n]
    assert np.array_equal(whole, blocks)
    assert len(whole) > 150
    one_go = EventDetector(walk.fs_hz)
    one_go.update(walk.acc_sensor_m_s2, walk.gyr_sensor_rad_s, q)
    assert np.array_equal(np.concatenate(vertical), one_go.vertical_acc_m_s2)


def test_events_are_reported_within_the_fixed_delay(walk):
    q = orientation(walk.acc_sensor_m_s2, walk.gyr_sensor_rad_s, walk.fs_hz)
    detector = EventDetector(walk.fs_hz)
    assert detector.delay_samples <= walk.fs_hz  # ≤ 1 s
    latest_lag = 0
    for i in range(0, len(q), 10):
        for e in detector.update(walk.acc_sensor_m_s2[i:i + 10], walk.gyr_sensor_rad_s[i:i + 10], q[i:i + 10]):
            latest_lag = max(latest_lag, detector.samples_seen - 1 - e["sample"])
    assert latest_lag <= detector.delay_samples + 0.15 * walk.fs_hz


def _load_excerpt(name):
    d = np.load(DATA / name)
    acc = d["acc"].astype(float)[:, [2, 1, 0]] * [1, -1, 1]  # mobgap (x sup, y right, z ant) -> ours (z, -y, x)
    gyr = np.radians(d["gyr_dps"].astype(float))[:, [2, 1, 0]] * [1, -1, 1]
    return acc, gyr, float(d["fs"]), d["INDIP_ic"], d["INDIP_ic_lr"], d["INDIP_wb"]


@pytest.mark.parametrize("name, f1_floor", [("HA-001-Test5-Trial1.npz", 0.9),
                                            ("MS-001-Test11-Trial1-12000-15000.npz", 0.8)])
def test_real_lower_back_data_against_indip(name, f1_floor):
    acc, gyr, fs_hz, ic_ref, lr_ref, wb_ref = _load_excerpt(name)
    events = detect_events(acc, gyr, orientation(acc, gyr, fs_hz), fs_hz)
    ic = events[events["kind"] == IC]
    inside = np.zeros(len(ic), dtype=bool)
    for start, end in wb_ref:
        inside |= (ic["sample"] >= start) & (ic["sample"] <= end)
    ic = ic[inside]
    pairs = match_events(ic["sample"], ic_ref, 0.25 * fs_hz)
    precision, recall = len(pairs) / max(len(ic), 1), len(pairs) / len(ic_ref)
    f1 = 2 * precision * recall / max(precision + recall, 1e-9)
    assert f1 >= f1_floor
    error_s = (ic["sample"][pairs[:, 0]] - ic_ref[pairs[:, 1]]) / fs_hz
    assert np.abs(error_s).mean() <= 0.07
    sides_ok = (ic["side"][pairs[:, 0]] == RIGHT) == (lr_ref[pairs[:, 1]] == "right")
    assert sides_ok.mean() >= 0.9


def test_nan_samples_do_not_crash_or_leak(walk):
    q = orientation(walk.acc_sensor_m_s2, walk.gyr_sensor_rad_s, walk.fs_hz)
    acc = walk.acc_sensor_m_s2.copy()
    acc[1000:1040] = np.nan
    q = q.copy()
    q[3000:3005] = np.nan
    events = detect_events(acc, walk.gyr_sensor_rad_s, q, walk.fs_hz)
    assert len(events) > 100
    assert np.all((events["sample"] >= 0) & (events["sample"] < len(acc)))
    assert np.all(np.diff(events["sample"]) > 0)


@pytest.mark.parametrize("n", [0, 1, 5, 50])
def test_too_short_input_gives_no_events(n):
    acc = np.tile([0.0, 0.0, 9.81], (n, 1))
    q = np.tile([1.0, 0.0, 0.0, 0.0], (n, 1))
    events = detect_events(acc, np.zeros((n, 3)), q, 100.0)
    assert events.dtype == EVENT_DTYPE and len(events) == 0


def test_bad_shapes_and_settings_are_refused():
    detector = EventDetector(100.0)
    with pytest.raises(ValueError, match="expected"):
        detector.update(np.zeros((10, 2)), np.zeros((10, 3)), np.zeros((10, 4)))
    with pytest.raises(ValueError, match="differ in length"):
        detector.update(np.zeros((10, 3)), np.zeros((9, 3)), np.zeros((10, 4)))
    with pytest.raises(TypeError, match="unknown"):
        EventDetector(100.0, threshold=3)
    with pytest.raises(ValueError, match="sample rate"):
        EventDetector(0.0)
    with pytest.raises(ValueError, match="delay_s"):
        EventDetector(100.0, delay_s=0.1)


def _bumps(fs_hz, times_s, heights_m_s2, duration_s=12.0):
    """A still, upright sensor whose vertical specific force carries Gaussian bumps (σ 30 ms) at the given times."""
    t = np.arange(int(duration_s * fs_hz)) / fs_hz
    acc = np.zeros((len(t), 3))
    acc[:, 2] = 9.81
    for t0, height in zip(times_s, heights_m_s2):
        acc[:, 2] += height * np.exp(-0.5 * ((t - t0) / 0.03) ** 2)
    q = np.zeros((len(t), 4))
    q[:, 0] = 1.0
    return acc, np.zeros((len(t), 3)), q


def test_a_weak_step_makes_a_chain_but_no_contact():
    # Pairs of a clear step and a weak one 0.55 s later, 4 s apart: each clear step has a neighbour only in the
    # weak one. The weak ones (smoothed peak ~0.3 m/s², below min_peak_m_s2) never give a contact.
    fs_hz = 100.0
    strong_s = np.array([2.0, 6.0, 10.0])
    times = np.concatenate([strong_s, strong_s + 0.55])
    heights = np.concatenate([np.full(3, 3.0), np.full(3, 0.5)])
    acc, gyr, q = _bumps(fs_hz, times, heights)
    ic = detect_events(acc, gyr, q, fs_hz)
    ic = ic[ic["kind"] == IC]
    assert len(ic) == 3
    assert np.all(np.abs(ic["sample"] / fs_hz - strong_s) < 0.1)
    # Without weak neighbours in the chain (the floor at min_peak_m_s2) the clear steps stand alone: no walking.
    alone = detect_events(acc, gyr, q, fs_hz, chain_peak_m_s2=0.5)
    assert len(alone) == 0
    # A weak bump alone is nothing.
    acc, gyr, q = _bumps(fs_hz, strong_s + 0.55, np.full(3, 0.5))
    assert len(detect_events(acc, gyr, q, fs_hz)) == 0


@pytest.mark.parametrize("seed", [0, 1, 4])
def test_sides_stay_right_through_u_turns(seed):
    """Two 180° turns: the centripetal acceleration toward each turn's centre (about v·ω) must not flip the side
    of the steps where a turn begins or ends (seeds 0 and 1 had 2 and 1 such flips without the correction)."""
    trace = simulate_walk(duration_s=40.0, seed=seed, speed_m_s=0.8 + 0.1 * seed,
                          turns=((12.0, 180.0, 2.0 + 0.2 * seed), (26.0, -180.0, 1.5 + 0.2 * seed)),
                          sensor=SensorModel.realistic(seed=seed, mounting_rpy_deg=(3, -10, 5)))
    ic = run(trace)
    ic = ic[ic["kind"] == IC]
    truth = [e for e in trace.truth.events if e.kind == "IC"]
    truth_samples = np.array([e.sample_index for e in truth])
    pairs = match_events(ic["sample"], truth_samples, 0.1 * trace.fs_hz)
    assert len(pairs) == len(truth)
    sides = np.array([RIGHT if truth[j].side == "right" else LEFT for j in pairs[:, 1]])
    assert np.array_equal(ic["side"][pairs[:, 0]], sides)


def test_the_forward_braking_moves_the_contact_halfway_to_it():
    """The contact is the mean of the jerk's instant and the forward acceleration's braking minimum less its lag:
    a braking dip placed 40 ms earlier than the lag says moves each contact 20 ms earlier; without a dip (a flat
    forward acceleration) the jerk's instant stands."""
    fs_hz = 100.0
    steps_s = np.arange(1.0, 10.0, 0.55)
    acc, gyr, q = _bumps(fs_hz, steps_s, np.full(len(steps_s), 3.0))
    jerk_only = detect_events(acc, gyr, q, fs_hz, ic_forward_weight=0.0)
    jerk_only = jerk_only[jerk_only["kind"] == IC]["sample"]
    assert len(jerk_only) >= len(steps_s) - 2
    flat = detect_events(acc, gyr, q, fs_hz)
    assert np.array_equal(flat[flat["kind"] == IC]["sample"], jerk_only)
    t = np.arange(len(acc)) / fs_hz
    lag_s = DEFAULT_SETTINGS["ic_forward_lag_s"]
    for contact in jerk_only:  # the upright sensor's x axis points forward
        acc[:, 0] -= 1.0 * np.exp(-0.5 * ((t - (contact / fs_hz + lag_s - 0.04)) / 0.03) ** 2)
    blended = detect_events(acc, gyr, q, fs_hz)
    blended = blended[blended["kind"] == IC]["sample"]
    assert np.array_equal(blended, jerk_only - 2)
