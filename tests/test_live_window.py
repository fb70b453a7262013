"""The live window (hipcheck.live_window): the figure rendered with Agg for each mode from a simulated walk's (or
hold's) pipeline blocks, its bars read back from the artists, the keys; and the real window under Xvfb, opened by
`hipcheck demo` against the simulated sensor, photographed and driven by keys (xdotool)."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from hipcheck import detect, live_window
from hipcheck.gait import LEFT, RIGHT
from hipcheck.live_window import MODES, LinkFigures, LiveRing, LiveWindow, mode_figures
from hipcheck.motion import simulate_hold, simulate_walk
from hipcheck.pipeline import Pipeline

NOTES_PNG = Path("/work/notes/png")  # where the lead looks at the pictures (when that folder can be made)
BLOCK = 5  # samples per block, as a BLE packet brings them at 100 Hz


def _feed(trace, seconds_shown: float | None = None):
    """A ring and the pipeline after a trace went through block by block, as the live job's observer pushes it."""
    pipeline = Pipeline(trace.fs_hz)
    ring = LiveRing()
    acc, gyr = trace.acc_sensor_m_s2, trace.gyr_sensor_rad_s
    strides, holds = [], []
    n = len(acc) if seconds_shown is None else int(seconds_shown * trace.fs_hz)
    for start in range(0, n, BLOCK):
        block = pipeline.update(acc[start:start + BLOCK], gyr[start:start + BLOCK])
        ring.push_samples(block.first_sample, block.angles_pelvis_deg, trace.fs_hz)
        ring.push_records(block.strides, block.decisions)
        strides.append(block.strides)
        holds.append(block.holds)
    ring.link = LinkFigures(rate_hz=trace.fs_hz, samples=n, lost=12, backfilled=30, battery_pct=87)
    return ring, pipeline, np.concatenate(strides), np.concatenate(holds)


@pytest.fixture(scope="module")
def walk():
    trace = simulate_walk(duration_s=24.0, fs_hz=100.0, seed=3, drop_left_deg=4.0, drop_right_deg=9.0)
    return _feed(trace)


@pytest.fixture(scope="module")
def hold():
    trace = simulate_hold(duration_s=30.0, fs_hz=100.0, seed=2, side="right", drop_deg=7.0)
    return _feed(trace, seconds_shown=20.0)  # stopped mid-hold: the timer runs


def _agg_window(ring, mode):
    figure = Figure(figsize=(13, 8), dpi=80)
    FigureCanvasAgg(figure)
    lines = []
    return LiveWindow(figure, ring, mode=mode, blit=False, out=lines.append), lines


def _save(window, tmp_path, name):
    path = tmp_path / f"live_{name}.png"
    window.figure.savefig(path)
    try:
        NOTES_PNG.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, NOTES_PNG / path.name)
    except OSError:  # another machine: the copy for the lead is a convenience, the tmp picture is the test's
        pass
    return path


def _not_blank(path, min_colours=20):
    pixels = np.asarray(Image.open(path).convert("RGB"))
    colours = len(np.unique(pixels.reshape(-1, 3), axis=0))
    dark = np.count_nonzero(pixels.sum(axis=2) < 200) / pixels.shape[0] / pixels.shape[1]
    return colours >= min_colours and dark > 0.005, (colours, dark)


@pytest.mark.parametrize("mode", MODES)
def test_live_figure_renders_each_mode(mode, walk, hold, tmp_path):
    ring, pipeline, strides, holds = hold if mode == "hold" else walk
    window, _ = _agg_window(ring, mode)
    ring.mode = mode_figures(mode, pipeline, len(strides), strides[-1] if len(strides) else None,
                             holds[-1] if len(holds) else None)
    assert window.frame()
    ok, figures = _not_blank(_save(window, tmp_path, mode))
    assert ok, figures
    assert window.mode_title.get_text().startswith(f"mode: {mode}")
    # the angle lines hold the last 10 s, in the ring's time, relative to now
    x, y = window.angle_lines["obliquity"].get_data()
    assert len(x) == 1001 and x[-1] == 0.0 and x[0] == pytest.approx(-10.0)
    if mode == "hold":
        assert pipeline.holds.holding, "the hold fixture is meant to stop mid-hold"
        assert window.timer_bar.get_width() > 0.05
        assert "standing on the right leg" in window.mode_text.get_text()
    if mode == "walk":
        assert "strides, cadence" in window.mode_text.get_text()


def test_drop_bars_have_the_steps_drops(walk, tmp_path):
    ring, _, strides, _ = walk
    window, _ = _agg_window(ring, "walk")
    window.frame()
    for side, name in ((LEFT, "drop_left_stance_deg"), (RIGHT, "drop_right_stance_deg")):
        expected = strides[name][np.isfinite(strides[name])][-live_window.STEPS_SHOWN:]
        bars = [p for p in window.drop_bars[side].patches if p.get_visible()]
        assert len(bars) == live_window.STEPS_SHOWN
        np.testing.assert_allclose([p.get_height() for p in bars], expected)
        threshold = window.drop_threshold[side].get_ydata()
        assert threshold[0] == threshold[1] > 0
    # the weak right hip: its bars stand over the threshold line, the left ones under it
    right = np.array([p.get_height() for p in window.drop_bars[RIGHT].patches])
    left = np.array([p.get_height() for p in window.drop_bars[LEFT].patches])
    assert np.median(right) > detect.DEFAULT_DROP_THRESHOLD_DEG > np.median(left)
    sway = [p.get_height() for p in window.sway_bars.patches if p.get_visible()]
    np.testing.assert_allclose(sway, strides["sway_pp_cm"][-live_window.STRIDES_SHOWN:])
    offsets = window.alert_markers.get_offsets()
    assert len(offsets) >= 1 and (offsets[:, 0] >= -10.0).all()  # the right-stance drop alerts of the last 10 s
    assert "loss 0.5 %" in window.status_text.get_text() and "battery 87 %" in window.status_text.get_text()


def test_keys(walk):
    trace_ring, *_ = walk
    window, lines = _agg_window(trace_ring, "walk")
    live_window.key_pause(window)
    assert window.paused and not window.frame()  # paused: no frame, the data keeps coming
    live_window.key_pause(window)
    assert not window.paused and window.frame()
    t = live_window.key_mark(window)
    assert t == pytest.approx((trace_ring.n_samples - 1) / 100.0)
    window.frame()
    segments = window.mark_lines["tilt"].get_segments()
    assert len(segments) >= 1 and segments[-1][0][0] == pytest.approx(0.0)
    live_window.key_neutral(window)  # asks the live job; the plot's zero waits for its answer (test_live_modes)
    assert not window.neutral_deg.any() and window.commands[-1] == ("neutral", None)
    assert [live_window.key_next_mode(window) for _ in MODES] == [*MODES[1:], MODES[0]]
    assert [c[0] for c in window.commands][:3] == ["mark", "neutral", "mode"]
    assert any("event marked at" in line for line in lines)
    live_window.key_close(window)
    assert window.closed and not window.frame()


def test_ring_keeps_every_sample_of_a_late_frame():
    ring = LiveRing(capacity=2000)
    fs = 100.0
    for start in range(0, 1500, 10):
        ring.push_samples(start, np.full((10, 3), start / fs), fs)
    snap = ring.snapshot()
    assert len(snap["t_s"]) == 1001 and ring.samples_dropped == 0
    ring.push_samples(1500, np.zeros((2600, 3)), fs)  # the draw side stalled longer than the ring: counted
    ring.snapshot()
    assert ring.samples_dropped == 1500 + 2600 - 2000 - 1500


def test_no_display_says_so_in_one_line(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    lines = []
    ran = live_window.run_with_window(lambda window: ("headless", window), out=lines.append)
    assert ran == ("headless", None)
    assert len(lines) == 1 and lines[0].startswith("(no live window: ") and lines[0].endswith("running headless)")


def _x_tools():
    return all(shutil.which(tool) for tool in ("Xvfb", "xdotool"))


@pytest.mark.skipif(not _x_tools() and os.environ.get("CI") != "true", reason="Xvfb/xdotool not installed")
def test_real_window_under_xvfb(tmp_path):
    """`hipcheck demo` (not headless) under Xvfb: the window opens, draws at ≥ 20 frames/s, a screenshot of the
    screen shows it, the keys reach it (m marks an event), q closes it after the job."""
    from PIL import ImageGrab

    xvfb, display = start_xvfb()
    env = {**os.environ, "DISPLAY": display, "MPLBACKEND": "TkAgg"}
    demo = None
    try:
        demo = subprocess.Popen([sys.executable, "-m", "hipcheck", "demo", "--seconds", "10", "--record",
                                 str(tmp_path / "demo.hclog")], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        window_id = _wait_for_window(env, "hipcheck demo", 45.0)
        time.sleep(6.5)  # the walk under way: lines, and the first strides' bars
        subprocess.run(["xdotool", "key", "--window", window_id, "m"], env=env, check=True)
        time.sleep(0.5)
        shot = ImageGrab.grab(xdisplay=display)
        path = tmp_path / "xvfb_demo.png"
        shot.save(path)
        try:
            NOTES_PNG.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, NOTES_PNG / path.name)
        except OSError:
            pass
        ok, figures = _not_blank(path)
        assert ok, figures
        pixels = np.asarray(Image.open(path).convert("RGB")).astype(int)
        for colour in ((255, 127, 14), (31, 119, 180)):  # the right- and left-stance bars (tab:orange, tab:blue)
            assert np.count_nonzero(np.abs(pixels - colour).sum(axis=2) < 30) > 200, colour
        out = _close_after_end(demo, env, window_id)
    finally:
        if demo is not None and demo.poll() is None:
            demo.kill()
        xvfb.terminate()
        xvfb.wait(5)
    assert demo.returncode == 0, out
    assert "live window: event marked at" in out
    # the key reached the live job: a NOTE 'mark' in the session log at the sample it was pressed
    from hipcheck.record import LogReader

    marks = [n for n in LogReader(tmp_path / "demo.hclog").notes() if n["note"] == "mark"]
    assert len(marks) == 1 and 5.0 < marks[0]["t_s"] < 10.0, marks
    assert "weak side: right" in out
    frames = int(out.split("live window: ")[-1].split(" frames drawn")[0])
    assert frames >= 20 * 8, out  # ≥ 20 frames/s over the 10 s walk under Xvfb on a shared machine
    assert "0 samples dropped" in out and "no live window" not in out


@pytest.mark.skipif(not _x_tools() and os.environ.get("CI") != "true", reason="Xvfb/xdotool not installed")
def test_live_on_the_sim_link_opens_the_window(tmp_path):
    """`hipcheck live --sim FILE` (not headless) opens the same window; q after the job closes it."""
    from hipcheck.imu_csv import write_imu_csv

    trace = simulate_walk(duration_s=10.0, fs_hz=100.0, seed=4, drop_right_deg=8.0)
    csv = tmp_path / "walk.csv"
    write_imu_csv(csv, trace.t_s, trace.acc_sensor_m_s2, trace.gyr_sensor_rad_s)
    xvfb, display = start_xvfb()
    env = {**os.environ, "DISPLAY": display}
    live = None
    try:
        live = subprocess.Popen([sys.executable, "-m", "hipcheck", "live", "--sim", str(csv), "--realtime"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        window_id = _wait_for_window(env, "hipcheck live", 45.0)
        out = _close_after_end(live, env, window_id)
    finally:
        if live is not None and live.poll() is None:
            live.kill()
        xvfb.terminate()
        xvfb.wait(5)
    assert live.returncode == 0, out
    assert "0 samples dropped" in out and "weak side: right" in out


def start_xvfb():
    """An Xvfb on a free display (it picks the number and writes it to -displayfd): (process, ":N")."""
    read, write = os.pipe()
    xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
                            pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write)
    with os.fdopen(read) as f:
        number = f.readline().strip()
    if not number:
        xvfb.kill()
        raise RuntimeError("Xvfb did not start")
    return xvfb, f":{number}"


def _wait_for_window(env, name, timeout_s):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = subprocess.run(["xdotool", "search", "--name", name], env=env, capture_output=True, text=True)
        if found.returncode == 0 and found.stdout.strip():
            return found.stdout.split()[0]
        time.sleep(0.3)
    raise AssertionError(f"no window named {name!r} within {timeout_s} s")


def _close_after_end(demo, env, window_id):
    """Wait for the live job's end (the window says so), press q, collect the output."""
    lines = []
    deadline = time.monotonic() + 40.0
    for line in demo.stdout:
        lines.append(line)
        if "the live job ended" in line:
            subprocess.run(["xdotool", "key", "--window", window_id, "q"], env=env)
        if time.monotonic() > deadline:
            break
    demo.wait(10)
    return "".join(lines)


# ------------------------------------------------------------------------------------ the keys reach the live job

def _keys_at(window, presses):
    """An observer that feeds the window and presses its keys (the functions the Tk keys call) once the stream
    reaches each (time_s, key function, argument) of ``presses``."""
    pending = sorted(presses, key=lambda press: press[0])

    def observe(*, block, result, analysis, session):
        window.observe(block=block, result=result, analysis=analysis, session=session)
        window.last = (analysis, session)
        pipeline = analysis.pipeline
        while pending and pipeline is not None and pipeline.n_samples / analysis.fs_hz >= pending[0][0]:
            _, key, *arg = pending.pop(0)
            key(window, *arg)
    return observe


def test_keys_reach_the_live_job_on_the_sim_board(tmp_path):
    """A hold on the sim board (the firmware in the unix port) through run_live with the window's keys: n while
    standing still sets the wearer's neutral (the tilt detector's thresholds and the posture mode's neutral move to
    it, and the plot's zero with them), m writes a NOTE 'mark' at that sample, 2 (the hold key) switches the pipeline
    to hold mode and starts a user-started hold, which the lift-off 3 s later begins; the mode panel shows its
    timer."""
    import asyncio

    from hipcheck.alerts import AlertPolicy
    from hipcheck.links.sim import SimLink
    from hipcheck.live import run_live
    from hipcheck.record import LogReader

    trace = simulate_hold(duration_s=18.0, fs_hz=100.0, seed=5, side="right", lift_s=9.0, hold_s=8.5,
                          tilt_mean_deg=4.0)
    window, lines = _agg_window(LiveRing(), "walk")
    log = tmp_path / "keys.hclog"
    panel = []  # the mode panel during the hold
    observe = _keys_at(window, [(4.0, live_window.key_neutral), (4.5, live_window.key_mark),
                                (6.0, live_window.key_hold),
                                *[(t, lambda w: panel.append(live_window.ModeFigures(**vars(w.ring.mode))))
                                  for t in (11.0, 13.0, 15.0, 16.5)]])

    async def job():
        async with SimLink(trace) as link:
            return await run_live(link, record=log, start_seq=0, out=lines.append, observer=observe,
                                  commands=window.commands, policy=AlertPolicy())

    asyncio.run(job())
    analysis, _ = window.last
    marks = [n for n in LogReader(log).notes() if n["note"] == "mark"]
    print("\n".join(line for line in lines if "neutral" in line or "mark" in line or "hold" in line))
    assert len(marks) == 1 and abs(marks[0]["t_s"] - 4.5) < 0.1 and analysis.marks == [marks[0]["sample"]]
    # neutral: the mean of the last 2 s of the pipeline's own angles before the key (the ring still holds them)
    fs = analysis.fs_hz
    ring = window.ring
    k = int(round(4.0 * fs)) + 1
    rows = np.arange(k - int(round(2.0 * fs)), k + 4) % ring.capacity
    obliquity, tilt = analysis.neutral_deg
    assert np.nanmin(ring.angles_deg[rows, 2]) - 0.05 <= tilt <= np.nanmax(ring.angles_deg[rows, 2]) + 0.05
    assert abs(obliquity - np.nanmean(ring.angles_deg[rows, 1])) < 0.5
    detectors = analysis.pipeline.detectors.thresholds
    assert detectors["tilt_anterior_deg"] == pytest.approx(tilt + 8.0)
    assert detectors["tilt_posterior_deg"] == pytest.approx(tilt - 8.0)
    assert any(line.startswith("neutral set: ") for line in lines)
    np.testing.assert_array_equal(window.neutral_deg, [0.0, obliquity, tilt])  # the plot's zero: the job's
    pipeline = analysis.pipeline
    assert pipeline.mode == "hold" and pipeline.guided is not None
    assert any("hold started" in line for line in lines)
    (hold,) = np.concatenate(analysis.user_holds)  # lifted at 9 s (the go: 3 s after the key), lowered at 17.5 s
    assert abs(hold["key_sample"] / fs - 6.0) < 0.1 and abs(hold["start_sample"] / fs - 9.0) < 0.6, hold
    assert hold["hold_time_s"] > 7.0 and hold["side"] == RIGHT
    print(panel)
    assert [figures.mode for figures in panel] == ["hold"] * 4
    assert panel[0].notes[0] == "lift"  # 2 s after the lift: the hold stage has not decided its start yet
    assert panel[-1].notes[0] == "holding" and abs(panel[-1].timer_s - 7.5) < 0.6, panel  # 16.5 s: 7.5 s held


def _session_blocks(trace, size=11):
    """The trace as a device session's blocks (hipcheck.device: SampleBlock rows in sequence order), 11 samples each
    as a 247-byte MTU brings them; the host's clock is the trace's."""
    from hipcheck.device.reassembly import BLOCK_DTYPE, SampleBlock

    rows = np.zeros(len(trace.t_s), BLOCK_DTYPE)
    rows["seq"] = np.arange(len(rows))
    rows["t_device_us"] = np.round(trace.t_s * 1e6).astype(np.int64)
    rows["t_host_s"] = trace.t_s
    rows["acc_m_s2"], rows["gyr_rad_s"] = trace.acc_sensor_m_s2, trace.gyr_sensor_rad_s
    period_us = round(1e6 / trace.fs_hz)
    return [SampleBlock(rows[i:i + size], period_us) for i in range(0, len(rows), size)]


def test_mode_key_counts_bridges_and_neutral_is_refused_while_walking():
    """Keys into the live analysis between blocks: 4 (bridge) switches the pipeline to counting bridges, and the
    mode panel shows their count and tempo from the rep counter; n while walking is refused with a line."""
    from hipcheck.live import LiveAnalysis
    from hipcheck.motion import simulate_bridge

    lines = []
    analysis = LiveAnalysis(lines.append)
    bridge = simulate_bridge(reps=4, fs_hz=100.0, seed=2, up_s=1.0, down_s=3.0)
    for i, block in enumerate(_session_blocks(bridge)):
        analysis.update(block)
        if i == 5:
            analysis.command("mode", "bridge")
    reps = np.concatenate(analysis.reps)
    assert analysis.pipeline.mode == "bridge" and len(reps) == 4, reps
    assert np.allclose(reps["up_s"], 1.0, rtol=0.15) and np.allclose(reps["down_s"], 3.0, rtol=0.15), reps
    figures = mode_figures("bridge", analysis.pipeline, 0, None, None, reps[-1])
    assert figures.reps == 4 and figures.tempo_up_s == reps[-1]["up_s"] and figures.tempo_down_s == reps[-1]["down_s"]
    assert f"down/up {reps[-1]['down_s'] / reps[-1]['up_s']:.1f}" in figures.notes[0]

    walking = LiveAnalysis(lines.append)
    for block in _session_blocks(simulate_walk(duration_s=8.0, fs_hz=100.0, seed=1)):
        walking.update(block)
    walking.command("neutral", None)
    assert walking.neutral_deg is None and lines[-1].startswith("neutral not set: moving")


def test_neutral_from_a_still_stand_moves_the_posture_mode_and_the_tilt_detector():
    """n after 3 s of quiet standing (tilted 5° forward, an ideal sensor on its own axes): the posture mode then
    measures from that stand's tilt, and the tilt detector's thresholds sit either side of the neutral."""
    from hipcheck.live import LiveAnalysis
    from hipcheck.motion import SensorModel, simulate_stand

    lines = []
    analysis = LiveAnalysis(lines.append)
    stand = simulate_stand(duration_s=6.0, fs_hz=100.0, seed=4, tilt_mean_deg=5.0, sensor=SensorModel.ideal())
    blocks = _session_blocks(stand)
    for i, block in enumerate(blocks):
        analysis.update(block)
        if i == len(blocks) // 2:
            analysis.command("neutral", None)
            analysis.command("mode", "posture")
    assert lines[-2].startswith("neutral set: ") and analysis.neutral_deg is not None, lines
    assert abs(analysis.neutral_posture_tilt_deg - 5.0) < 1.0, analysis.neutral_posture_tilt_deg
    posture = analysis.pipeline.posture
    assert analysis.pipeline.mode == "posture" and posture is not None
    assert posture.settings["neutral_tilt_deg"][0] == analysis.neutral_posture_tilt_deg
    assert posture.posture is None  # standing as at neutral: neither slumped nor tipped forward
    thresholds = analysis.pipeline.detectors.thresholds
    tilt = analysis.neutral_deg[1]
    assert thresholds["tilt_anterior_deg"] - tilt == pytest.approx(8.0)
    assert tilt - thresholds["tilt_posterior_deg"] == pytest.approx(8.0)
