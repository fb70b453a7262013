"""The live window: what the live job (``hipcheck.live``) measures, drawn as it comes, in a matplotlib figure.

Two sides that never wait for each other:

- the **data side** (the live job, in its own thread) calls ``LiveWindow.observe`` once per block; that copies the
  block's pelvic angles and its settled records (steps with their drops, strides with their sway, alerts) into a
  ``LiveRing``: preallocated numpy rings, written under a lock held only for the copy;
- the **draw side** (the Tk main loop) runs ``LiveWindow.frame`` on a timer (``FPS`` a second), reads the latest
  ``WINDOW_S`` seconds from the ring and redraws only the artists that move (blitting: the axes, ticks and labels
  are drawn once and restored from a saved background). A frame that comes late is skipped and counted
  (``frames_dropped``); a sample is never skipped: the ring holds ``RING_S`` (twice the window), and the samples
  that were overwritten before any frame could show them are counted (``samples_dropped``, 0 unless drawing stalls
  for longer than the ring).

Panels: obliquity, tilt and rotation over the last 10 s (Baker 2001 angles, hipcheck.pelvis; + = left side higher,
anterior, turned left) with the alerts as markers and the marked events as lines; the pelvic drop of each step,
left and right stance apart, against the drop threshold; sway per stride against its threshold; the mode panel
(``ModeFigures``: hold timer, rep counter, tempo — what the live job gives for the mode); the link's figures (rate,
loss, backfilled samples, battery) and the window's own (frames/s, frames and samples dropped).

Keys (each a small function of ``KEYS`` that tests call directly): space pauses the drawing (the data goes on),
m marks an event, n asks for the wearer's neutral, c switches to the next mode, 1–5 choose one (2, the hold key, also
starts a hold), q closes the window. A mark, a neutral, a mode switch and a hold are queued in
``LiveWindow.commands``; the live job (``hipcheck.live.run_live``) takes them after each block: a NOTE 'mark' in the
session log; the wearer's neutral, taken only if they stood still (else one line says why), for the posture mode,
the tilt detector and the plot's zero (``observe`` takes it from the job: the plot changes only when the job took
it); the pipeline's coaching mode (only that: passing through hold mode with c starts no hold); a user-started hold.

``run_with_window(job, ...)`` runs a live job with the window: the job in a thread, Tk in the main thread; without
a display it says so in one line and runs the job headless.
"""

from __future__ import annotations

import collections
import math
import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
from matplotlib.figure import Figure

from hipcheck import detect
from hipcheck.gait import LEFT, RIGHT
from hipcheck.pipeline import MODES  # the coaching modes, in the order c steps through them

WINDOW_S = 10.0  # the angle plots' span
RING_S = 20.0  # samples kept: twice the window, so a frame that comes late still finds all of its window
MAX_FS_HZ = 1000.0  # the ring is sized for this rate at most
STEPS_SHOWN = 10  # drop bars per stance side
STRIDES_SHOWN = 16  # sway bars
RECORDS = 512  # records kept per kind (steps, strides, alerts, marks)
FPS = 40.0  # the draw timer: within the 30–60 frames/s a live view needs, leaving the data side most of the CPU
GIL_SWITCH_S = 0.001  # while the window runs (run_tk)
MAX_POINTS = 1100  # per angle line drawn (see LiveWindow._update)
STATUS_EVERY_S = 0.5  # the status line's figures change this often (a text redrawn per frame costs a frame)
HOLD_LIMIT_S = 60.0  # the hold timer's full scale
ANGLE_LIMITS_DEG = {"obliquity": 15.0, "tilt": 25.0, "rotation": 25.0}  # fixed, so that blitting needs no rescale
ANGLE_COLUMN = {"rotation": 0, "obliquity": 1, "tilt": 2}  # columns of Block.angles_pelvis_deg
SIDE_COLOUR = {LEFT: "tab:blue", RIGHT: "tab:orange"}
KIND_COLOUR = {detect.DROP: "tab:red", detect.SWAY: "tab:purple", detect.TILT: "tab:green",
               detect.DROP_STRIDE: "darkred"}

STEP_DTYPE = np.dtype([("sample", np.int64), ("side", np.int8), ("drop_deg", np.float64)])  # side: the stance leg
SWAY_DTYPE = np.dtype([("sample", np.int64), ("sway_pp_cm", np.float64)])
ALERT_DTYPE = np.dtype([("sample", np.int64), ("kind", np.int8), ("side", np.int8), ("value", np.float64)])


@dataclass
class ModeFigures:
    """What the mode panel shows; the live job fills what its mode gives (``mode_figures``), NaN / 0 = nothing."""

    mode: str = "walk"
    timer_s: float = math.nan  # hold: time on one leg so far
    timer_limit_s: float = HOLD_LIMIT_S
    reps: int = 0
    tempo_up_s: float = math.nan  # the last repetition's lifting time
    tempo_down_s: float = math.nan  # ... and lowering time
    notes: tuple = ()  # short lines: the stance side, a cheat, the last score


@dataclass
class LinkFigures:
    """The link's figures for the status line (from the device session and the link's status)."""

    rate_hz: float = math.nan
    samples: int = 0
    lost: int = 0
    backfilled: int = 0
    battery_pct: int | None = None
    connected: bool = True

    @property
    def loss_pct(self) -> float:
        return 100.0 * self.lost / self.samples if self.samples else 0.0


class LiveRing:
    """Preallocated rings the data side writes and the draw side reads (module docstring). Sample k of the stream
    (the pipeline's count, lost samples left out) sits in row k mod capacity."""

    def __init__(self, capacity: int = int(RING_S * MAX_FS_HZ), records: int = RECORDS):
        self.capacity = int(capacity)
        self.t_s = np.full(self.capacity, np.nan)
        self.angles_deg = np.full((self.capacity, 3), np.nan)
        self.records = int(records)
        self.steps = np.zeros(self.records, STEP_DTYPE)
        self.sways = np.zeros(self.records, SWAY_DTYPE)
        self.alerts = np.zeros(self.records, ALERT_DTYPE)
        self.marks_s = np.zeros(self.records)
        self.n_samples = 0
        self.n_steps = self.n_sways = self.n_alerts = self.n_marks = 0
        self.drawn_upto = 0  # samples shown by a frame so far
        self.samples_dropped = 0  # overwritten before a frame showed them
        self.fs_hz = math.nan
        self.drop_threshold_deg = {LEFT: detect.DEFAULT_DROP_THRESHOLD_DEG, RIGHT: detect.DEFAULT_DROP_THRESHOLD_DEG}
        self.sway_threshold_cm = float(detect.DEFAULT_SETTINGS["sway_threshold_cm"])
        self.link = LinkFigures()
        self.mode = ModeFigures()
        self.lock = threading.Lock()

    def push_samples(self, first_sample: int, angles_deg: np.ndarray, fs_hz: float) -> None:
        """Rows of Block.angles_pelvis_deg, the first being sample ``first_sample`` of the stream."""
        n = len(angles_deg)
        if n == 0:
            return
        keep = min(n, self.capacity)
        rows = (first_sample + n - keep + np.arange(keep)) % self.capacity
        with self.lock:
            self.fs_hz = fs_hz
            self.t_s[rows] = (first_sample + n - keep + np.arange(keep)) / fs_hz
            self.angles_deg[rows] = angles_deg[n - keep:]
            self.n_samples = first_sample + n
            unseen_overwritten = self.n_samples - self.capacity - self.drawn_upto
            if unseen_overwritten > 0:
                self.samples_dropped += unseen_overwritten
                self.drawn_upto += unseen_overwritten

    def push_records(self, strides: np.ndarray, decisions: np.ndarray) -> None:
        """A block's settled strides (its two stance drops, its sway) and decisions (alerts; a decision's threshold
        becomes the line the bars are drawn against, so a personal baseline shows as it is learnt)."""
        with self.lock:
            for stride in strides:
                for side, name in ((LEFT, "drop_left_stance"), (RIGHT, "drop_right_stance")):
                    if math.isfinite(stride[f"{name}_deg"]):
                        self.steps[self.n_steps % self.records] = (stride[f"{name}_sample"], side,
                                                                   stride[f"{name}_deg"])
                        self.n_steps += 1
                if math.isfinite(stride["sway_pp_cm"]):
                    self.sways[self.n_sways % self.records] = (stride["end_sample"], stride["sway_pp_cm"])
                    self.n_sways += 1
            for d in decisions:
                self.alerts[self.n_alerts % self.records] = (d["sample"], d["kind"], d["side"], d["value"])
                self.n_alerts += 1
                if int(d["kind"]) in (detect.DROP, detect.DROP_STRIDE) and int(d["side"]) in (LEFT, RIGHT):
                    self.drop_threshold_deg[int(d["side"])] = float(d["threshold"])
                elif int(d["kind"]) == detect.SWAY:
                    self.sway_threshold_cm = float(d["threshold"])

    def mark(self) -> float:
        """An event marked now (at the newest sample); returns its time in s."""
        with self.lock:
            t = (self.n_samples - 1) / self.fs_hz if self.n_samples else 0.0
            self.marks_s[self.n_marks % self.records] = t
            self.n_marks += 1
        return t

    def snapshot(self, window_s: float = WINDOW_S) -> dict:
        """Copies of what the last ``window_s`` shows (read under the lock, drawn outside it)."""
        with self.lock:
            n = self.n_samples
            span = 0 if not n else min(n, self.capacity, int(round(window_s * self.fs_hz)) + 1)
            rows = (np.arange(n - span, n)) % self.capacity
            self.drawn_upto = n
            return {
                "now_s": (n - 1) / self.fs_hz if n else 0.0, "t_s": self.t_s[rows], "angles_deg": self.angles_deg[rows],
                "steps": _last(self.steps, self.n_steps), "sways": _last(self.sways, self.n_sways),
                "alerts": _last(self.alerts, self.n_alerts), "marks_s": _last(self.marks_s, self.n_marks),
                "drop_threshold_deg": dict(self.drop_threshold_deg), "sway_threshold_cm": self.sway_threshold_cm,
                "link": LinkFigures(**vars(self.link)), "mode": ModeFigures(**vars(self.mode)), "fs_hz": self.fs_hz,
                "samples_dropped": self.samples_dropped, "n_samples": n,
            }


def _last(ring: np.ndarray, count: int) -> np.ndarray:
    """The records of a ring in arrival order (at most its length)."""
    if count <= len(ring):
        return ring[:count].copy()
    start = count % len(ring)
    return np.concatenate([ring[start:], ring[:start]])


def mode_figures(mode: str, pipeline, strides_seen: int, last_stride, last_hold, last_rep=None) -> ModeFigures:
    """The mode panel's figures for ``mode`` from the live job's pipeline (``hipcheck.pipeline.Pipeline``, None
    before the first block), the strides seen so far, the last stride, the last hold and the last rep (records, or
    None): walk, the strides and the cadence; hold, the user-started hold's countdown, timer and cheats
    (``pipeline.guided``, ``hipcheck.exercises.GuidedHold``) when one is under way, else the automatic finder's
    timer (``HoldAnalyzer.holding``, ``hold_time_s``, ``stance_side``), and the last hold's drop; bridge and
    clamshell, the reps counted (``pipeline.rep_counter``) and the last one's tempo; posture, the posture under
    way. A stage the pipeline does not run (yet) leaves its figures empty."""
    figures = ModeFigures(mode=mode)
    if pipeline is None:
        return figures
    if mode in ("bridge", "clamshell"):
        counter = getattr(pipeline, "rep_counter", None)
        if counter is not None and counter.mode == mode:
            figures.reps = counter.count
            if last_rep is not None:
                figures.tempo_up_s, figures.tempo_down_s = float(last_rep["up_s"]), float(last_rep["down_s"])
                ratio = last_rep["down_s"] / last_rep["up_s"] if last_rep["up_s"] > 0 else math.nan
                shape = f", down/up {ratio:.1f} (aim: 3)" if math.isfinite(ratio) else ""
                figures.notes = (f"last rep {last_rep['range_deg']:.0f}°{shape}",)
            elif counter.in_rep:
                figures.notes = ("a rep under way",)
    elif mode == "posture":
        posture = getattr(pipeline, "posture", None)
        if posture is not None:
            figures.notes = (f"posture: {posture.posture or 'near neutral'}",)
    elif mode == "walk" and last_stride is not None:
        figures.notes = (f"{strides_seen} strides, cadence {last_stride['cadence_spm']:.0f} steps/min",)
    elif mode == "hold":
        notes = []
        guided = getattr(pipeline, "guided", None)
        if guided is not None and guided.phase != "idle":
            figures.timer_s = guided.hold_time_s if guided.phase == "holding" else math.nan
            notes.append(f"{guided.phase}" + (f": lift in {guided.countdown_left_s:.0f} s"
                                              if guided.phase == "countdown" else ""))
            if guided.cheats_on:
                notes.append("cheat: " + ", ".join(guided.cheats_on))
        elif pipeline.holds.holding:
            figures.timer_s = pipeline.holds.hold_time_s
            notes.append(f"standing on the {detect.SIDE_NAMES[pipeline.holds.stance_side]} leg")
        if last_hold is not None:
            notes.append(f"last hold: {last_hold['hold_time_s']:.1f} s on the "
                         f"{detect.SIDE_NAMES[int(last_hold['side'])]} leg, drop {last_hold['drop_deg']:.1f}°")
        figures.notes = tuple(notes)
    return figures


class LiveWindow:
    """The live figure, its artists and the key actions (module docstring), on the canvas of ``figure``: TkAgg for
    the window, Agg for pictures and tests. blit: redraw only the moving artists over a saved background (TkAgg);
    False: a full draw per frame. out: where key actions are reported (one line each)."""

    def __init__(self, figure: Figure, ring: LiveRing | None = None, *, mode: str = "walk", blit: bool = False,
                 out: Callable[[str], None] = print):
        self.figure = figure
        self.ring = LiveRing() if ring is None else ring
        self.ring.mode = ModeFigures(mode=mode)
        self.mode = mode
        self.blit = blit
        self.out = out
        self.paused = False
        self.closed = False
        self.neutral_deg = np.zeros(3)  # subtracted from the angles drawn (ANGLE_COLUMN order): the job's neutral
        self._neutral_seen = None  # the live job's (obliquity, tilt) last taken into neutral_deg
        self.commands: collections.deque = collections.deque(maxlen=64)  # (action, value) for the live job
        self.frames_drawn = 0
        self.frames_dropped = 0  # timer ticks that passed while a frame was still being drawn
        self.worst_frame_s = 0.0  # the longest a frame took to draw (blitted frames; the full draw apart)
        self.full_draw_s = math.nan  # the last full draw's time
        self.draw_cpu_s = 0.0  # CPU time of this thread spent in frames (what a frame costs, whatever the load)
        self.worst_interval_s = 0.0  # the longest between two frames (what the eye sees as a stall)
        self._frame_times = collections.deque(maxlen=120)
        self._backgrounds: dict = {}
        self._regions: dict = {}
        self._signatures: dict = {}
        self._status_at = 0.0
        self._strides_seen = 0
        self._last_stride = None
        self._last_hold = None
        self._last_rep = None
        self._build()
        figure.canvas.mpl_connect("key_press_event", self._on_key)
        if blit:
            figure.canvas.mpl_connect("draw_event", self._on_draw)

    # ------------------------------------------------------------------------------------------------ data side
    def observe(self, *, block, result, analysis, session) -> None:
        """The live job's hook, called once per block (``hipcheck.live.run_live``): the block's angles and
        records into the ring, the link's and the mode's figures updated. Never draws, never waits for a frame."""
        ring = self.ring
        if result is not None:
            ring.push_samples(result.first_sample, result.angles_pelvis_deg, analysis.fs_hz)
            ring.push_records(result.strides, result.decisions)
            if len(result.strides):
                self._strides_seen += len(result.strides)
                self._last_stride = result.strides[-1].copy()
            if len(result.holds):
                self._last_hold = result.holds[-1].copy()
            if len(result.reps):
                self._last_rep = result.reps[-1].copy()
        stats = session.stats
        status = session.link.status()
        if analysis.neutral_deg is not self._neutral_seen:  # the job took a neutral (n): the plot's new zero
            self._neutral_seen = analysis.neutral_deg
            self.neutral_deg = np.array([0.0, *analysis.neutral_deg])  # rotation is taken against the walk already
        figures = mode_figures(self.mode, analysis.pipeline, self._strides_seen, self._last_stride, self._last_hold,
                               self._last_rep)
        with ring.lock:
            ring.link = LinkFigures(rate_hz=1e6 / block.period_us, samples=stats.samples_emitted,
                                    lost=stats.samples_lost, backfilled=stats.samples_backfilled,
                                    battery_pct=status.battery_pct if status.battery_pct is not None
                                    else (session.device_info or {}).get("battery_pct"),
                                    connected=status.connected)
            ring.mode = figures

    # ------------------------------------------------------------------------------------------------ draw side
    def frame(self) -> bool:
        """Draw one frame from the ring's latest (nothing while paused); returns whether one was drawn."""
        if self.paused or self.closed:
            return False
        t0 = time.perf_counter()
        cpu0 = time.thread_time()
        snap = self.ring.snapshot()
        signatures = self._update(snap)
        canvas = self.figure.canvas
        if self.blit and self._backgrounds:
            # Only the panels whose content changed are redrawn: the angles every frame, the bars when a step
            # comes, the texts when their words change (text is the costliest thing Agg draws).
            for name, artists in self._panels.items():
                if name == "angles" or signatures[name] != self._signatures.get(name):
                    canvas.restore_region(self._backgrounds[name])
                    for artist in artists:
                        self.figure.draw_artist(artist)
                    canvas.blit(self._regions[name])
            self._signatures = signatures
        else:
            canvas.draw()  # blitting: the first draw saves the backgrounds (_on_draw)
        elapsed = time.perf_counter() - t0
        self.draw_cpu_s += time.thread_time() - cpu0
        self.frames_drawn += 1
        if self._backgrounds and self.frames_drawn > 1:  # the first, full draw lays out the whole figure once
            self.worst_frame_s = max(self.worst_frame_s, elapsed)
        else:
            self.full_draw_s = elapsed
        if self._frame_times:
            self.worst_interval_s = max(self.worst_interval_s, t0 - self._frame_times[-1])
        self._frame_times.append(t0)
        return True

    @property
    def frames_per_s(self) -> float:
        """Frames drawn per second over the last ones."""
        times = self._frame_times
        return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0

    def _on_draw(self, _event) -> None:
        """A full draw (first frame, resize, pause): keep each panel's background without its moving artists, then
        draw them."""
        from matplotlib.transforms import Bbox

        fig = self.figure
        width, height = fig.bbox.width, fig.bbox.height
        strip = 0.07 * height  # the status lines at the bottom
        mode = self.mode_axes.bbox
        # Padded: a line or marker at an axes' edge is drawn (antialiased) a pixel or two beyond it, and what is not
        # restored is never cleared.
        self._regions = {
            "angles": Bbox.union([ax.bbox for ax in self.angle_axes.values()]).padded(4),
            "drops": self.drop_axes.bbox.padded(4), "sways": self.sway_axes.bbox.padded(4),
            "mode": Bbox.from_extents(mode.x0 - 4, strip, width, mode.y1 + 4),
            "status": Bbox.from_extents(0, 0, width, strip),
        }
        self._backgrounds = {name: fig.canvas.copy_from_bbox(bbox) for name, bbox in self._regions.items()}
        self._signatures = {}
        for artists in self._panels.values():
            for artist in artists:
                fig.draw_artist(artist)

    def _on_key(self, event) -> None:
        action = KEYS.get(event.key)
        if action is not None:
            action(self)
        elif event.key in DIGIT_MODES:
            mode = DIGIT_MODES[event.key]
            if mode == "hold":
                key_hold(self)
            else:
                select_mode(self, mode)

    # ------------------------------------------------------------------------------------------------ artists
    def _build(self) -> None:
        fig = self.figure
        grid = fig.add_gridspec(3, 3, width_ratios=(1.0, 1.0, 1.0), left=0.06, right=0.97, top=0.93, bottom=0.12,
                                hspace=0.45, wspace=0.3)
        self.angle_axes, self.angle_lines, self.mark_lines = {}, {}, {}
        for row, name in enumerate(("obliquity", "tilt", "rotation")):
            ax = fig.add_subplot(grid[row, :2])
            limit = ANGLE_LIMITS_DEG[name]
            ax.set_xlim(-WINDOW_S, 0.0)
            ax.set_ylim(-limit, limit)
            ax.axhline(0.0, color="0.7", lw=0.8)
            ax.grid(alpha=0.3)
            ax.set_ylabel(f"{name} (°)")
            self.angle_axes[name] = ax
            self.angle_lines[name], = ax.plot([], [], lw=1.4, color="k")
            self.mark_lines[name] = ax.vlines([], -limit, limit, colors="tab:cyan", linestyles="--", lw=1.2)
        self.angle_axes["rotation"].set_xlabel("time (s, 0 = now)")
        self.angle_axes["obliquity"].set_title("pelvis: obliquity + = left side higher, tilt + = anterior, rotation "
                                               "+ = turned left; ▼ alert, -- marked event", fontsize=9)
        limit = ANGLE_LIMITS_DEG["obliquity"]
        self.alert_markers = self.angle_axes["obliquity"].scatter([], [], marker="v", s=70, zorder=5)
        self._alert_y = 0.85 * limit
        self._build_bars(fig.add_subplot(grid[0, 2]), fig.add_subplot(grid[1, 2]))
        self._build_mode(fig.add_subplot(grid[2, 2]))
        self.status_text = fig.text(0.01, 0.012, "", family="monospace", fontsize=9)
        self.paused_text = fig.text(0.5, 0.965, "PAUSED (space)", ha="center", fontsize=12, color="tab:red",
                                    visible=False)  # part of the background: a pause redraws the whole figure
        self._panels = {
            "angles": [*self.angle_lines.values(), *self.mark_lines.values(), self.alert_markers],
            "drops": [*self.drop_bars[LEFT].patches, *self.drop_bars[RIGHT].patches, *self.drop_threshold.values()],
            "sways": [*self.sway_bars.patches, self.sway_threshold],
            "mode": [self.timer_bar, self.mode_title, self.mode_text],
            "status": [self.status_text],
        }
        for artists in self._panels.values():
            for artist in artists:
                artist.set_animated(self.blit)

    def _build_bars(self, ax_drop, ax_sway) -> None:
        k = STEPS_SHOWN
        self.drop_axes = ax_drop
        self.drop_bars, self.drop_threshold = {}, {}
        for side, x0, name in ((LEFT, 0, "left"), (RIGHT, k + 1, "right")):
            self.drop_bars[side] = ax_drop.bar(np.arange(x0, x0 + k), np.zeros(k), width=0.8,
                                               color=SIDE_COLOUR[side], label=f"{name} stance")
            self.drop_threshold[side], = ax_drop.plot([x0 - 0.5, x0 + k - 0.5], [math.nan] * 2, "--", color="tab:red",
                                                      lw=1.2)
        ax_drop.set_xlim(-1, 2 * k + 1)
        ax_drop.set_ylim(-4.0, 14.0)
        ax_drop.axhline(0.0, color="0.5", lw=0.8)
        ax_drop.set_xticks([(k - 1) / 2, k + 1 + (k - 1) / 2], ["left stance", "right stance"])
        ax_drop.set_title("pelvic drop per step (°), -- threshold", fontsize=9)
        self.sway_axes = ax_sway
        self.sway_bars = ax_sway.bar(np.arange(STRIDES_SHOWN), np.zeros(STRIDES_SHOWN), width=0.8, color="tab:purple")
        self.sway_threshold, = ax_sway.plot([-0.5, STRIDES_SHOWN - 0.5], [math.nan] * 2, "--", color="tab:red", lw=1.2)
        ax_sway.set_xlim(-1, STRIDES_SHOWN)
        ax_sway.set_ylim(0.0, 12.0)
        ax_sway.set_xticks([])
        ax_sway.set_title("sway per stride (cm, peak to peak), -- threshold", fontsize=9)

    def _build_mode(self, ax) -> None:
        from matplotlib.patches import Rectangle

        ax.set_axis_off()
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.add_patch(Rectangle((0.0, 0.52), 1.0, 0.1, fill=False, edgecolor="0.4"))
        self.mode_axes = ax
        self.timer_bar = ax.add_patch(Rectangle((0.0, 0.52), 0.0, 0.1, color="tab:green"))
        self.mode_title = ax.text(0.0, 0.95, "", fontsize=13, weight="bold", va="top")
        self.mode_text = ax.text(0.0, 0.45, "", fontsize=9, va="top", family="monospace")

    def _update(self, snap: dict) -> dict:
        """The moving artists from a ring snapshot; returns a signature per panel (what its drawing shows)."""
        now = snap["now_s"]
        # At most MAX_POINTS a line: a 10 s window is ~700 pixels wide, and Agg's cost grows with the points drawn
        # (400 Hz input would be 4000); every k-th sample of a pelvis angle (below 10 Hz) still draws it smooth.
        k = max(1, -(-len(snap["t_s"]) // MAX_POINTS))
        rel = snap["t_s"][::-1][::k][::-1] - now  # decimated from the newest sample back, so "now" is always drawn
        angles = snap["angles_deg"][::-1][::k][::-1]
        for name, line in self.angle_lines.items():
            col = ANGLE_COLUMN[name]
            line.set_data(rel, angles[:, col] - self.neutral_deg[col])
        marks = snap["marks_s"] - now
        marks = marks[marks >= -WINDOW_S]
        for name, lines in self.mark_lines.items():
            limit = ANGLE_LIMITS_DEG[name]
            lines.set_segments([[(x, -limit), (x, limit)] for x in marks])
        alerts = snap["alerts"]
        t_alert = alerts["sample"] / snap["fs_hz"] - now if len(alerts) else np.zeros(0)
        shown = t_alert >= -WINDOW_S
        self.alert_markers.set_offsets(np.column_stack([t_alert[shown], np.full(shown.sum(), self._alert_y)]))
        self.alert_markers.set_facecolors([KIND_COLOUR[int(k)] for k in alerts["kind"][shown]] or "none")
        self._update_bars(snap)
        self._update_mode(snap["mode"])
        if time.perf_counter() - self._status_at > STATUS_EVERY_S or not self.status_text.get_text():
            self._status_at = time.perf_counter()
            self.status_text.set_text(self._status_line(snap))
        self.paused_text.set_visible(self.paused)
        return {"drops": (len(snap["steps"]), tuple(snap["drop_threshold_deg"].values())),
                "sways": (len(snap["sways"]), snap["sway_threshold_cm"]),
                "mode": (self.mode_title.get_text(), self.mode_text.get_text(), self.timer_bar.get_width()),
                "status": self.status_text.get_text()}

    def _update_bars(self, snap: dict) -> None:
        steps = snap["steps"]
        for side, bars in self.drop_bars.items():
            drops = steps["drop_deg"][steps["side"] == side][-STEPS_SHOWN:]
            _set_bars(bars, drops)
            threshold = snap["drop_threshold_deg"][side]
            self.drop_threshold[side].set_ydata([threshold, threshold])
        _set_bars(self.sway_bars, snap["sways"]["sway_pp_cm"][-STRIDES_SHOWN:])
        self.sway_threshold.set_ydata([snap["sway_threshold_cm"]] * 2)

    def _update_mode(self, figures: ModeFigures) -> None:
        self.mode_title.set_text(f"mode: {figures.mode}   (c: switch)")
        timer = figures.timer_s
        self.timer_bar.set_width(min(1.0, timer / figures.timer_limit_s) if math.isfinite(timer) else 0.0)
        lines = [f"hold timer {_fmt(timer, '.1f', 's')} of {figures.timer_limit_s:.0f} s",
                 f"reps       {figures.reps}",
                 f"tempo      up {_fmt(figures.tempo_up_s, '.1f', 's')}, down {_fmt(figures.tempo_down_s, '.1f', 's')}",
                 *figures.notes]
        self.mode_text.set_text("\n".join(lines))

    def _status_line(self, snap: dict) -> str:
        link = snap["link"]
        battery = "-" if link.battery_pct is None else f"{link.battery_pct} %"
        return (f"link {'up' if link.connected else 'DOWN'}  rate {_fmt(link.rate_hz, '.0f', 'Hz')}  "
                f"loss {link.loss_pct:.1f} %  backfilled {link.backfilled}  battery {battery}   |   "
                f"window {self.frames_per_s:4.1f} frames/s, frames dropped {self.frames_dropped}, "
                f"samples dropped {snap['samples_dropped']}\n"
                "keys: space pause, m mark, n set neutral, c next mode (1-5 choose; 2 starts a hold), q close")


def _set_bars(bars, heights: np.ndarray) -> None:
    """The newest heights on the first bars of a BarContainer, the bars left over hidden."""
    for i, patch in enumerate(bars.patches):
        if i < len(heights):
            patch.set_height(float(heights[i]))
            patch.set_visible(True)
        else:
            patch.set_height(0.0)
            patch.set_visible(False)


def _fmt(value: float, spec: str, unit: str) -> str:
    return f"{value:{spec}} {unit}" if math.isfinite(value) else "-"


# ---------------------------------------------------------------------------------------------------- keys
def key_pause(window: LiveWindow) -> None:
    """Pause or resume the drawing; the data keeps flowing into the ring."""
    window.paused = not window.paused
    window.paused_text.set_visible(window.paused)
    window.figure.canvas.draw_idle()  # the notice is part of the saved background: a full draw takes it in or out
    window.out("live window: " + ("paused (space resumes)" if window.paused else "resumed"))


def key_mark(window: LiveWindow) -> float:
    """Mark an event at the newest sample; returns its time in s."""
    t = window.ring.mark()
    window.commands.append(("mark", t))
    window.out(f"live window: event marked at {t:.2f} s")
    return t


def key_neutral(window: LiveWindow) -> None:
    """Ask the live job for the wearer's neutral. The job alone decides (``hipcheck.live.LiveAnalysis``: standing
    still over its last 2 s) and says so in one line, set or not; the plot's zero follows only a neutral it took
    (``LiveWindow.observe``), so a refused one leaves the plot as it was."""
    window.commands.append(("neutral", None))


def select_mode(window: LiveWindow, mode: str) -> None:
    """Show the panel of ``mode`` (one of MODES) and queue the switch for the live job; nothing starts."""
    _show_mode(window, mode)
    window.commands.append(("mode", mode))
    window.out(f"live window: mode {mode}")


def key_hold(window: LiveWindow) -> None:
    """The hold key (2): hold mode, and a user-started hold (a countdown, then lift the free leg) in the live job."""
    _show_mode(window, "hold")
    window.commands.append(("hold", None))
    window.out("live window: hold")


def _show_mode(window: LiveWindow, mode: str) -> None:
    window.mode = mode
    with window.ring.lock:
        window.ring.mode = ModeFigures(mode=mode)


def key_next_mode(window: LiveWindow) -> str:
    """Switch to the next mode of MODES (hold mode included, where it starts no hold); returns it."""
    select_mode(window, MODES[(MODES.index(window.mode) + 1) % len(MODES)])
    return window.mode


def key_close(window: LiveWindow) -> None:
    """Close the window (the live job carries on headless if it has not ended)."""
    window.closed = True


KEYS = {" ": key_pause, "m": key_mark, "n": key_neutral, "c": key_next_mode, "q": key_close}
DIGIT_MODES = {str(i + 1): mode for i, mode in enumerate(MODES)}  # the hold mode's digit is the hold key


# ---------------------------------------------------------------------------------------------------- Tk window
def open_window(*, mode: str = "walk", title: str = "hipcheck live", out: Callable[[str], None] = print):
    """A Tk window with the live figure (TkAgg, blitting), or None after one line saying why (no display, no Tk)."""
    try:
        import tkinter

        from matplotlib.backends.backend_tkagg import FigureCanvasTkAgg

        root = tkinter.Tk()
    except Exception as error:  # no DISPLAY, no Tk: the job runs headless, which is what the user needs then
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        out(f"(no live window: {reason}; running headless)")
        return None
    root.title(title)
    figure = Figure(figsize=(13, 8), dpi=90)
    canvas = FigureCanvasTkAgg(figure, master=root)
    canvas.get_tk_widget().pack(fill="both", expand=True)
    canvas.get_tk_widget().focus_set()
    window = LiveWindow(figure, mode=mode, blit=True, out=out)
    root.protocol("WM_DELETE_WINDOW", lambda: key_close(window))
    return root, window


def run_tk(root, window: LiveWindow, job_thread: threading.Thread, *, fps: float = FPS,
           out: Callable[[str], None] = print) -> None:
    """The draw side: a frame every 1/fps s until the window is closed (q or the window manager). A tick that
    comes later than a whole interval counts the frames it skipped. After the job ends the last frame stays up
    until the window is closed."""
    interval_s = 1.0 / fps
    state = {"last": time.perf_counter(), "ended": False}

    def tick():
        if window.closed:
            root.quit()
            return
        now = time.perf_counter()
        late = now - state["last"] - interval_s
        if late > interval_s:
            window.frames_dropped += int(late / interval_s)
        state["last"] = now
        window.frame()
        if not job_thread.is_alive() and not state["ended"]:
            state["ended"] = True
            window.frame()
            root.title(root.title() + " (ended: q or close the window)")
            out("live window: the live job ended; close the window (or press q) to finish")
        spent = time.perf_counter() - now
        root.after(max(1, int(1e3 * (interval_s - spent))), tick)

    root.after(int(1e3 * interval_s), tick)
    # The two sides share the GIL: a thread that wants it waits up to the switch interval (5 ms by default) while
    # the other runs Python code, so the drawing could hold an alert back that long. 1 ms keeps the alert path
    # within its 5 ms; the drawing's own C calls (Agg, the Tk blit) still hold it for their length.
    switch = sys.getswitchinterval()
    sys.setswitchinterval(GIL_SWITCH_S)
    try:
        root.mainloop()
    finally:
        sys.setswitchinterval(switch)
    if job_thread.is_alive():
        out("live window closed: the live job carries on headless (Ctrl-C ends it)")
    root.destroy()


def run_with_window(job: Callable, *, mode: str = "walk", title: str = "hipcheck live",
                    out: Callable[[str], None] = print):
    """Run ``job(window)`` (a live job, given the ``LiveWindow``: its ``observe`` to call per block and its
    ``commands`` to read) with the live window: the job in a thread, the window in this one; returns what the job
    returned, raises what it raised. Without a display the job runs here with window None."""
    opened = open_window(mode=mode, title=title, out=out)
    if opened is None:
        return job(None)
    root, window = opened
    outcome = {}

    def target():
        try:
            outcome["result"] = job(window)
        except BaseException as error:  # handed to the main thread, which raises it
            outcome["error"] = error

    thread = threading.Thread(target=target, name="hipcheck-live-job", daemon=True)
    thread.start()
    run_tk(root, window, thread, out=out)
    thread.join()
    out(f"live window: {window.frames_drawn} frames drawn, {window.frames_dropped} dropped (worst "
        f"{1e3 * window.worst_frame_s:.1f} ms), {window.ring.samples_dropped} samples dropped")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]
