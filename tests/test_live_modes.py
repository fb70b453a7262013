"""Coaching modes switched on a running pipeline (hipcheck.pipeline.Pipeline.set_mode) and by the live window's keys
(hipcheck.live_window -> hipcheck.live.LiveAnalysis): the stage is swapped, the rest of the pipeline carries on;
only the hold key starts a hold; a neutral the live job refuses leaves the window's plot as it was."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from hipcheck import live_window
from hipcheck.live import LiveAnalysis
from hipcheck.live_window import LiveRing, LiveWindow
from hipcheck.motion import SensorModel, simulate_bridge, simulate_hold, simulate_stand, simulate_walk
from hipcheck.pipeline import Pipeline

BLOCK = 20


def _run(pipeline: Pipeline, trace, switches=(), holds=()):
    """The trace through the pipeline in blocks; at each (sample, mode, settings) of ``switches`` the mode is set
    before that block, at each sample of ``holds`` a hold is started. Returns the blocks (finish included)."""
    acc, gyr = trace.acc_sensor_m_s2, trace.gyr_sensor_rad_s
    switches, holds = dict((s, (m, st)) for s, m, st in switches), set(holds)
    cuts = sorted({*range(0, len(acc), BLOCK), *switches, *holds, len(acc)})
    blocks = []
    for start, stop in zip(cuts[:-1], cuts[1:]):
        if start in switches:
            pipeline.set_mode(*switches[start])
        if start in holds:
            assert pipeline.start_hold(start)
        blocks.append(pipeline.update(acc[start:stop], gyr[start:stop]))
    blocks.append(pipeline.finish())
    return blocks


def _records(blocks, name):
    return np.concatenate([getattr(b, name) for b in blocks])


def test_set_mode_swaps_the_stage_and_keeps_the_rest():
    """A walk with the mode switched walk -> posture -> bridge -> walk on the way gives the very strides, events,
    angles and decisions of the pipeline left in walk mode (fusion, pelvis, events, detectors carry on); the stages
    are built as a fresh pipeline of that mode builds them, and the mode counts from the switch."""
    trace = simulate_walk(duration_s=14.0, fs_hz=100.0, seed=7, drop_right_deg=8.0)
    plain = _run(Pipeline(100.0), trace)
    switched_pipeline = Pipeline(100.0)
    fusion, pelvis, events = switched_pipeline.fusion, switched_pipeline.pelvis, switched_pipeline.events
    switched = _run(switched_pipeline, trace, [(300, "posture", {"neutral_tilt_deg": 3.0}), (700, "bridge", None),
                                               (1100, "walk", None)])
    for name in ("strides", "events", "decisions", "holds", "angles_pelvis_deg", "q_sensor_to_earth"):
        np.testing.assert_array_equal(_records(switched, name), _records(plain, name), err_msg=name)
    assert len(_records(plain, "strides")) >= 8
    assert (switched_pipeline.fusion, switched_pipeline.pelvis, switched_pipeline.events) == (fusion, pelvis, events)
    assert switched_pipeline.mode == "walk" and switched_pipeline.mode_from == 1100
    assert switched_pipeline.rep_counter is switched_pipeline.posture is switched_pipeline.guided is None
    # while in posture mode: the monitor had the settings given
    p = Pipeline(100.0)
    p.set_mode("posture", {"neutral_tilt_deg": 3.0})
    assert p.posture is not None and p.posture.settings["neutral_tilt_deg"][0] == 3.0 and p.rep_counter is None
    with pytest.raises(Exception, match="mode 'run'"):
        p.set_mode("run")


def test_set_mode_records_come_in_the_pipelines_samples():
    """Bridges counted after a switch to bridge mode 1.5 s into the stream carry the stream's sample numbers: the
    reps of a pipeline in bridge mode from the start, to a sample or two; a user-started hold after a switch to hold
    mode is keyed, timed and dated as one started in a pipeline in hold mode from the start."""
    bridge = simulate_bridge(reps=3, fs_hz=100.0, seed=2, up_s=1.0, down_s=2.0, rest_s=3.0)
    whole = _records(_run(Pipeline(100.0, mode="bridge"), bridge), "reps")
    late = _records(_run(Pipeline(100.0), bridge, [(150, "bridge", None)]), "reps")
    assert len(whole) == len(late) == 3 and late["start_sample"][0] > 150
    for name in ("start_sample", "top_start_sample", "top_end_sample", "end_sample"):
        np.testing.assert_allclose(late[name], whole[name], atol=2, err_msg=name)

    hold = simulate_hold(duration_s=16.0, fs_hz=100.0, seed=5, side="right", lift_s=8.0, hold_s=6.0)
    whole = _records(_run(Pipeline(100.0, mode="hold"), hold, holds=[500]), "guided_holds")
    late = _records(_run(Pipeline(100.0), hold, [(400, "hold", None)], holds=[500]), "guided_holds")
    assert len(whole) == len(late) == 1 and late["key_sample"][0] == 500, late
    for name in ("start_sample", "end_sample", "go_sample"):
        assert abs(int(late[name][0]) - int(whole[name][0])) <= 2, (name, late, whole)
    assert abs(late["hold_time_s"][0] - whole["hold_time_s"][0]) < 0.05


# ------------------------------------------------------------------------------------------ the window's keys

def _window(mode="walk"):
    figure = Figure(figsize=(13, 8), dpi=60)
    FigureCanvasAgg(figure)
    lines = []
    return LiveWindow(figure, LiveRing(capacity=4000), mode=mode, out=lines.append), lines


def _session_blocks(trace, size=10):
    from hipcheck.device.reassembly import BLOCK_DTYPE, SampleBlock

    rows = np.zeros(len(trace.t_s), BLOCK_DTYPE)
    rows["seq"] = np.arange(len(rows))
    rows["t_host_s"] = trace.t_s
    rows["acc_m_s2"], rows["gyr_rad_s"] = trace.acc_sensor_m_s2, trace.gyr_sensor_rad_s
    return [SampleBlock(rows[i:i + size], round(1e6 / trace.fs_hz)) for i in range(0, len(rows), size)]


class _Session:
    """What LiveWindow.observe reads of a device session (its figures only)."""

    class stats:  # noqa: N801 - an attribute bag
        samples_emitted = samples_lost = samples_backfilled = 0

    device_info = None

    class link:  # noqa: N801
        @staticmethod
        def status():
            class Status:
                battery_pct, connected = None, True
            return Status


def _drive(window, analysis, trace, presses, taken=None):
    """run_live's loop without a link: each block through the analysis, the keys pressed at (time_s, key) taken by
    the job after the block (then ``taken(window)``, if given), then the window's observer."""
    pending = sorted(presses, key=lambda p: p[0])
    for block in _session_blocks(trace):
        result = analysis.update(block)
        pressed = False
        while pending and analysis.pipeline.n_samples / analysis.fs_hz >= pending[0][0]:
            pending.pop(0)[1](window)
            pressed = True
        while window.commands:
            analysis.command(*window.commands.popleft())
        if pressed and taken is not None:
            taken(window)
        window.observe(block=block, result=result, analysis=analysis, session=_Session)
    assert not pending, pending


def _press(key):
    """The key as Tk hands it to the figure: a matplotlib key_press_event on its canvas."""
    from matplotlib.backend_bases import KeyEvent

    def press(window):
        canvas = window.figure.canvas
        canvas.callbacks.process("key_press_event", KeyEvent("key_press_event", canvas, key))
    return press


def _about_neutral(line: str) -> bool:
    """A line that answers n (the job's, or one the window would add), not the stride legend's word 'neutral'."""
    return line.startswith(("neutral ", "live window: neutral"))


def test_a_refused_neutral_leaves_the_plot_and_a_taken_one_moves_it():
    """n while walking: the job refuses (one line: moving) and the plot keeps its zero; n after standing still: the
    job takes it and the plot's zero is the job's obliquity and tilt, drawn as 0 for the stand."""
    window, lines = _window()
    analysis = LiveAnalysis(lines.append)
    walk = simulate_walk(duration_s=8.0, fs_hz=100.0, seed=1)
    _drive(window, analysis, walk, [(6.0, live_window.key_neutral)])
    refused = [line for line in lines if _about_neutral(line)]
    assert len(refused) == 1 and refused[0].startswith("neutral not set: moving"), lines
    assert analysis.neutral_deg is None and not window.neutral_deg.any()
    window.frame()
    _, tilt = window.angle_lines["tilt"].get_data()
    np.testing.assert_array_equal(tilt, window.ring.snapshot()["angles_deg"][:, 2])  # the plot as measured

    window, lines = _window()
    analysis = LiveAnalysis(lines.append)
    # a sensor with mounting and chip errors: the stand reads about 1° of obliquity, which the neutral takes away
    stand = simulate_stand(duration_s=6.0, fs_hz=100.0, seed=4, sensor=SensorModel.with_errors(seed=1))
    _drive(window, analysis, stand, [(4.0, live_window.key_neutral)])
    taken = [line for line in lines if _about_neutral(line)]
    assert len(taken) == 1 and taken[0].startswith("neutral set: "), lines
    np.testing.assert_array_equal(window.neutral_deg, [0.0, *analysis.neutral_deg])
    assert abs(analysis.neutral_deg[0]) > 0.5, analysis.neutral_deg  # a zero that visibly moves the plot
    window.frame()
    measured = window.ring.snapshot()["angles_deg"]
    for name, column in (("obliquity", 1), ("tilt", 2)):
        _, drawn = window.angle_lines[name].get_data()
        np.testing.assert_allclose(drawn, measured[:, column] - window.neutral_deg[column])
        assert abs(np.nanmean(drawn[-100:])) < 0.3, name  # standing as at neutral: drawn about 0
    assert abs(np.nanmean(measured[-100:, 1])) > 0.5  # ... where the measured obliquity is not


def test_only_the_hold_key_starts_a_hold():
    """c through every mode (hold mode included) and the digits 1, 3, 4, 5 switch the pipeline's mode and start
    nothing; 2 (the hold key) switches to hold mode and starts a user-started hold."""
    window, lines = _window()
    analysis = LiveAnalysis(lines.append)
    stand = simulate_stand(duration_s=5.0, fs_hz=100.0, seed=3)
    seen = []

    def note(w):
        guided = analysis.pipeline.guided
        seen.append((w.mode, analysis.pipeline.mode, guided.phase if guided is not None else None))

    presses = [(1.0 + 0.2 * i, _press("c")) for i in range(5)]
    digits = [(2.5 + 0.2 * i, _press(k)) for i, k in enumerate("1345")]
    _drive(window, analysis, stand, presses + digits + [(4.0, _press("2"))], taken=note)
    assert seen[:5] == [("hold", "hold", "idle"), ("posture", "posture", None), ("bridge", "bridge", None),
                        ("clamshell", "clamshell", None), ("walk", "walk", None)], seen
    assert seen[5:9] == [("walk", "walk", None), ("posture", "posture", None), ("bridge", "bridge", None),
                         ("clamshell", "clamshell", None)], seen
    assert seen[9] == ("hold", "hold", "countdown"), seen
    started = [line for line in lines if "hold started" in line]
    assert len(started) == 1 and 3.9 < float(started[0].split()[0]) < 4.2, lines


def test_a_mode_switch_during_a_user_hold_says_the_hold_stopped():
    """2 starts a hold; c while it counts down switches to posture and drops it: one line says so, in place of the
    mode line. A switch with no hold under way (hold mode idle, or another mode) says only the mode."""
    window, lines = _window()
    analysis = LiveAnalysis(lines.append)
    stand = simulate_stand(duration_s=4.0, fs_hz=100.0, seed=3)
    seen = []

    def note(w):
        guided = analysis.pipeline.guided
        seen.append((analysis.pipeline.mode, guided.phase if guided is not None else None))

    presses = [(0.5, _press("2")), (1.5, _press("c")), (2.0, _press("2")), (2.4, _press("3")), (3.0, _press("c")),
               (3.4, _press("1"))]
    _drive(window, analysis, stand, presses, taken=note)
    assert seen == [("hold", "countdown"), ("posture", None), ("hold", "countdown"), ("posture", None),
                    ("bridge", None), ("walk", None)], seen
    job = [line.split(None, 2) for line in lines if line[:7].strip().replace(".", "").isdigit()]  # the job's lines
    switched = [(float(t), what) for t, _, what in job if what.startswith(("mode ", "hold stopped"))]
    assert [what for _, what in switched] == [
        "mode hold", "hold stopped: mode switched to posture", "mode hold", "hold stopped: mode switched to posture",
        "mode bridge", "mode walk"], lines
    np.testing.assert_allclose([t for t, _ in switched], [0.5, 1.5, 2.0, 2.4, 3.0, 3.4], atol=0.05)
