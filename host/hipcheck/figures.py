"""The figures of an analysed recording (``hipcheck.api.Result.plot``), drawn on a matplotlib ``Figure`` without
pyplot (no global state, any backend; a notebook shows the returned Figure).

Walk: pelvic obliquity over the session with the initial contacts and the detectors' drop alerts; the pelvic
angles over the gait cycle, normalised 0–100 % from an initial contact to the next of the same foot, mean ± SD per
side, as gait laboratories draw them (Baker R., 2013, "Measuring Walking: A Handbook of Clinical Gait Analysis",
Mac Keith Press: a cycle per foot, the curves of both sides on one axis); the stance drops per stride over the
session and their histograms per stance side. Hold: obliquity and tilt with each hold shaded by its stance leg,
and each hold's drop and duration.
"""

from __future__ import annotations

import numpy as np

from hipcheck.detect import DROP
from hipcheck.gait import IC, LEFT, RIGHT

SIDE_COLOR = {LEFT: "tab:blue", RIGHT: "tab:red"}
SIDE_WORD = {LEFT: "left", RIGHT: "right"}
ANGLES = ((1, "obliquity (°, + left up)"), (2, "tilt (°, + anterior)"), (0, "rotation (°, + left turn)"))
CYCLE_POINTS = 101  # 0, 1, … 100 % of the stride


FIGURE_WIDTH_IN = 12.0


def _figure(height_in: float):
    """A figure laid out by matplotlib's constrained layout (the notebook figures: any content fits)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(FIGURE_WIDTH_IN, height_in), layout="constrained")


def _fixed_figure(height_in: float, *, left_in: float = 0.75, right_in: float = 0.2, top_in: float = 0.4,
                  bottom_in: float = 0.55, wspace: float = 0.25, hspace: float = 0.3):
    """A figure with fixed margins in inches (the report's figures, whose content is known). Constrained layout
    measures every tick label of every panel before drawing: about 0.12 s a figure, half the time of an hour's
    report figures."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(FIGURE_WIDTH_IN, height_in))
    figure.subplots_adjust(left=left_in / FIGURE_WIDTH_IN, right=1.0 - right_in / FIGURE_WIDTH_IN,
                           bottom=bottom_in / height_in, top=1.0 - top_in / height_in, wspace=wspace, hspace=hspace)
    return figure


def stride_normalised(angles_deg: np.ndarray, strides: np.ndarray) -> np.ndarray:
    """(n_strides, 101) of one angle from each stride's initial contact to the next of the same foot, linearly
    interpolated (all strides at once: an hour holds thousands)."""
    out = np.full((len(strides), CYCLE_POINTS), np.nan)
    a = strides["start_sample"].astype(np.int64)
    b = strides["end_sample"].astype(np.int64)
    ok = (b > a) & (b < len(angles_deg))
    if not ok.any():
        return out
    a, b = a[ok], b[ok]
    position = a[:, None] + np.linspace(0.0, 1.0, CYCLE_POINTS)[None, :] * (b - a)[:, None]
    left = np.minimum(np.floor(position).astype(np.int64), b[:, None] - 1)
    fraction = position - left
    out[ok] = angles_deg[left] * (1.0 - fraction) + angles_deg[left + 1] * fraction
    return out


def walk_figure(result):
    """The walk figures of a ``hipcheck.api.Result`` (module docstring)."""
    analysis = result.analysis
    fs = analysis.fs_hz
    angles = analysis.angles_pelvis_deg
    figure = _figure(10.0)
    grid = figure.add_gridspec(3, 3)
    ax = figure.add_subplot(grid[0, :])
    t = np.arange(len(angles)) / fs
    ax.plot(t, angles[:, 1], color="0.3", lw=0.7)
    events = analysis.events[analysis.events["kind"] == IC]
    for side in (LEFT, RIGHT):
        samples = events["sample"][events["side"] == side]
        samples = samples[samples < len(angles)]
        ax.plot(samples / fs, angles[samples, 1], "o", ms=3, color=SIDE_COLOR[side],
                label=f"{SIDE_WORD[side]} initial contact")
        drops = analysis.decisions[(analysis.decisions["kind"] == DROP) & (analysis.decisions["side"] == side)]
        if len(drops):
            ax.plot(drops["sample"] / fs, np.full(len(drops), np.nanmax(angles[:, 1])), "v", ms=6,
                    color=SIDE_COLOR[side], label=f"drop alert, {SIDE_WORD[side]} stance")
    ax.set(xlabel="time (s)", ylabel="obliquity (°, + left up)", title=f"{result.recording.format} input, "
           f"{len(t) / fs:.0f} s at {fs:g} Hz: pelvic obliquity")
    low, high = ax.get_ylim()
    ax.set_ylim(low, high + 0.3 * (high - low))  # room for the legend above the curve
    _legend(ax, loc="upper right", ncols=4)
    used = analysis.strides[analysis.strides["aligned"]] if np.any(analysis.strides["aligned"]) \
        else analysis.strides
    for col, (k, label) in enumerate(ANGLES):
        _cycle_panel(figure.add_subplot(grid[1, col]), stride_normalised(angles[:, k], used), used, label)
    _drops_panels(figure.add_subplot(grid[2, :2]), figure.add_subplot(grid[2, 2]), used, fs,
                  result.drop_threshold_deg)
    _say_refused(figure, analysis.side_refused)
    return figure


def _style(n_points: int) -> str:
    """A dot per stride while they can be told apart; a line alone for thousands (and quicker to draw)."""
    return ".-" if n_points <= 600 else "-"


def _say_refused(figure, refused: str) -> None:
    """A mounting that could not be found: the figure says that no side may be read from it."""
    if refused:
        figure.suptitle(f"no side can be named: {refused[:120]}…", color="tab:red", fontsize=9)


def _legend(ax, **options) -> None:
    """A legend when something is labelled (a recording without strides draws empty panels, said in words)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, **options)
    else:
        ax.text(0.5, 0.5, "no strides", transform=ax.transAxes, ha="center", va="center", color="0.5",
                bbox={"facecolor": "white", "edgecolor": "none"})


def _cycle_panel(ax, curves: np.ndarray, strides: np.ndarray, label: str, legend: bool = True) -> None:
    pct = np.linspace(0.0, 100.0, CYCLE_POINTS)
    for side in (LEFT, RIGHT):
        rows = curves[strides["side"] == side]
        rows = rows[np.all(np.isfinite(rows), axis=1)]
        if not len(rows):
            continue
        mean, sd = rows.mean(axis=0), rows.std(axis=0)
        ax.plot(pct, mean, color=SIDE_COLOR[side], label=f"{SIDE_WORD[side]} cycle (n={len(rows)})")
        ax.fill_between(pct, mean - sd, mean + sd, color=SIDE_COLOR[side], alpha=0.2, lw=0)
    ax.axhline(0.0, color="0.7", lw=0.5)
    ax.set(xlabel="% gait cycle (initial contact to the next, same foot)", ylabel=label, xlim=(0, 100))
    if legend:
        _legend(ax)


def _drops_panels(ax_time, ax_hist, strides: np.ndarray, fs: float, threshold_deg: float) -> None:
    names = {RIGHT: "drop_right_stance_deg", LEFT: "drop_left_stance_deg"}
    values = [strides[name][np.isfinite(strides[name])] for name in names.values()]
    bins = np.linspace(min([0.0] + [v.min() for v in values if len(v)]),
                       max([threshold_deg + 1.0] + [v.max() for v in values if len(v)]), 25)
    for (side, name), finite in zip(names.items(), values):
        ok = np.isfinite(strides[name])
        ax_time.plot(strides["start_sample"][ok] / fs, strides[name][ok], _style(len(strides)), lw=0.6, ms=4,
                     color=SIDE_COLOR[side], label=f"{SIDE_WORD[side]} stance" if ok.any() else None)
        # One filled outline per side, not a bar patch per bin: the same picture, drawn much faster.
        ax_hist.stairs(np.histogram(finite, bins=bins)[0], bins, fill=True, color=SIDE_COLOR[side], alpha=0.5,
                       label=f"{SIDE_WORD[side]} stance: median {np.median(finite):.1f}°" if len(finite) else None)
    for ax in (ax_time, ax_hist):
        _legend(ax)
    ax_time.axhline(threshold_deg, color="0.4", ls="--", lw=0.8)
    ax_hist.axvline(threshold_deg, color="0.4", ls="--", lw=0.8)
    ax_time.set(xlabel="stride start (s)", ylabel="pelvic drop per stride (°)",
                title=f"drop of the free side per stance side (threshold {threshold_deg:g}°)")
    ax_hist.set(xlabel="pelvic drop (°)", ylabel="strides")


def hold_figure(result):
    """The hold figures of a ``hipcheck.api.Result`` (module docstring)."""
    analysis = result.analysis
    fs = analysis.fs_hz
    angles = analysis.angles_pelvis_deg
    t = np.arange(len(angles)) / fs
    figure = _figure(8.0)
    grid = figure.add_gridspec(3, 2)
    axes = [figure.add_subplot(grid[0, :]), figure.add_subplot(grid[1, :])]
    for ax, (k, label) in zip(axes, ANGLES[:2]):
        ax.plot(t, angles[:, k], color="0.3", lw=0.7)
        for hold in analysis.holds:
            side = int(hold["side"])
            ax.axvspan(hold["start_sample"] / fs, hold["end_sample"] / fs, color=SIDE_COLOR.get(side, "0.5"),
                       alpha=0.15, label=f"hold on the {SIDE_WORD.get(side, '?')} leg")
        ax.set(ylabel=label)
        handles, labels = ax.get_legend_handles_labels()
        if handles:
            unique = dict(zip(labels, handles))
            ax.legend(unique.values(), unique.keys(), fontsize=8, loc="upper right")
    axes[0].set_title(f"{result.recording.format} input, {len(t) / fs:.0f} s at {fs:g} Hz: "
                      f"{len(analysis.holds)} single-leg hold(s)")
    axes[1].set_xlabel("time (s)")
    holds = analysis.holds
    labels = [f"{i + 1}: {SIDE_WORD.get(int(h['side']), '?')}" for i, h in enumerate(holds)]
    colors = [SIDE_COLOR.get(int(h["side"]), "0.5") for h in holds]
    for col, (name, label) in enumerate((("drop_deg", "drop of the free side (°)"), ("hold_time_s", "hold (s)"))):
        ax = figure.add_subplot(grid[2, col])
        ax.bar(labels, holds[name], color=colors, width=0.5)
        ax.set(ylabel=label, xlabel="hold: stance leg", xlim=(-1, max(1, len(holds))))
    _say_refused(figure, analysis.side_refused)
    return figure


def exercise_figure(result):
    """Bridge, clamshell, posture: the angles of the segment the sensor is worn on (in the sensor's own axes, as
    the rep counter and the posture monitor read them when no calibration is given) with each rep shaded or each
    posture alert marked; below, each rep's range (coloured when flagged) or each alert's tilt."""
    from hipcheck.exercises import FLAG_NAMES, POSTURE_NAMES, segment_angles_deg

    analysis = result.analysis
    fs = analysis.fs_hz
    angles = segment_angles_deg(analysis.q_sensor_to_earth, np.array([1.0, 0.0, 0.0, 0.0]))
    t = np.arange(len(angles)) / fs
    figure = _figure(7.0)
    top, bottom = figure.add_subplot(2, 1, 1), figure.add_subplot(2, 1, 2)
    for (k, label), color in zip(ANGLES, ("tab:purple", "tab:green", "tab:orange")):
        top.plot(t, angles[:, k], lw=0.7, color=color, label=label.split(" (")[0])
    reps, alerts = analysis.reps, analysis.posture
    for rep in reps:
        top.axvspan(rep["start_sample"] / fs, rep["end_sample"] / fs, color="0.6", alpha=0.2)
    for alert in alerts:
        top.axvline(alert["sample"] / fs, color="tab:red", lw=0.8)
    top.set(xlabel="time (s)", ylabel="segment angle (°)",
            title=f"{result.mode}: {len(reps)} reps" if result.mode != "posture"
            else f"posture: {len(alerts)} alert(s)")
    _legend(top, loc="upper right", ncols=3)
    if result.mode == "posture":
        bottom.bar([f"{i + 1}: {POSTURE_NAMES[int(a['kind'])]}" for i, a in enumerate(alerts)], alerts["tilt_deg"],
                   color="tab:red", width=0.5)
        bottom.set(ylabel="tilt against neutral at the alert (°)", xlabel="alert")
    else:
        colors = ["0.5" if int(r["flag"]) == 0 else "tab:red" for r in reps]
        bottom.bar(np.arange(1, len(reps) + 1), reps["range_deg"], color=colors, width=0.6)
        flagged = sorted({FLAG_NAMES[int(r["flag"])] for r in reps if int(r["flag"])})
        bottom.set(ylabel="range at the top (°)", xlabel="rep" + (f" (red: {', '.join(flagged)})" if flagged else ""))
    return figure


# ------------------------------------------------------------------------------------- the review's figures
# ``hipcheck review`` (hipcheck.review) draws each section of its report as its own figure, so that a section can
# be looked at alone (the PNGs beside the report) and a session without holds or a link account draws nothing there.

DECISION_ROWS = (("drop", RIGHT, "drop, right stance"), ("drop", LEFT, "drop, left stance"),
                 ("drop_stride", RIGHT, "stride drop, right stance"), ("drop_stride", LEFT, "stride drop, left stance"),
                 ("sway", None, "sway"), ("tilt", None, "tilt"))
DECISION_COLOR = {"drop": None, "drop_stride": None, "sway": "tab:green", "tilt": "tab:purple"}


def used_strides(analysis) -> np.ndarray:
    """The strides the summary reads: those measured on the settled mounting (all of them while none is)."""
    aligned = analysis.strides["aligned"]
    return analysis.strides[aligned] if np.any(aligned) else analysis.strides


def cycle_figure(result):
    """Obliquity, tilt and rotation over the gait cycle (0–100 % from an initial contact to the next of the same
    foot), mean ± SD per side, as gait laboratories draw them (Baker 2013, module docstring)."""
    analysis = result.analysis
    used = used_strides(analysis)
    figure = _fixed_figure(3.6, top_in=0.45, right_in=0.35, wspace=0.3)
    for col, (k, label) in enumerate(ANGLES):  # one legend: the three panels share their sides and counts
        _cycle_panel(figure.add_subplot(1, 3, col + 1), stride_normalised(analysis.angles_pelvis_deg[:, k], used),
                     used, label, legend=col == 0)
    figure.suptitle("pelvic angles over the gait cycle, mean ± SD per side (cycle named by the foot that starts it)",
                    fontsize=10)
    return figure


def drops_figure(result):
    """The drop of the free side per stride for each stance side, over the session and as histograms."""
    analysis = result.analysis
    figure = _fixed_figure(3.6, top_in=0.6 if analysis.side_refused else 0.35, wspace=0.3)
    grid = figure.add_gridspec(1, 3)
    _drops_panels(figure.add_subplot(grid[0, :2]), figure.add_subplot(grid[0, 2]), used_strides(analysis),
                  analysis.fs_hz, result.drop_threshold_deg)
    _say_refused(figure, analysis.side_refused)
    return figure


def sway_tilt_figure(result, sway_threshold_cm: float | None = None, tilt_threshold_deg: float | None = None):
    """Side-to-side sway (peak to peak) and mean pelvic tilt per stride over the session, with the thresholds."""
    analysis = result.analysis
    used = used_strides(analysis)
    t = used["start_sample"] / analysis.fs_hz
    figure = _fixed_figure(4.4, top_in=0.15, hspace=0.15)
    panels = (("sway_pp_cm", "sway, peak to peak (cm)", "tab:green", (sway_threshold_cm,)),
              ("tilt_mean_deg", "mean tilt (°, + anterior)", "tab:purple",
               (tilt_threshold_deg, None if tilt_threshold_deg is None else -tilt_threshold_deg)))
    for row, (name, label, color, limits) in enumerate(panels):
        ax = figure.add_subplot(2, 1, row + 1)
        ok = np.isfinite(used[name])
        ax.plot(t[ok], used[name][ok], _style(len(used)), lw=0.6, ms=3, color=color,
                label=f"median {np.median(used[name][ok]):.2f}" if ok.any() else None)
        for limit in limits:
            if limit is not None:
                ax.axhline(limit, color="0.4", ls="--", lw=0.8)
        ax.set(ylabel=label)
        _legend(ax, loc="upper right")
    ax.set_xlabel("stride start (s)")
    return figure


def alerts_figure(result):
    """The detectors' decisions on a timeline, a row per kind and stance side; a drop's colour is its stance side."""
    analysis = result.analysis
    fs = analysis.fs_hz
    decisions = result.decisions
    figure = _fixed_figure(2.6, left_in=2.3, top_in=0.35)
    ax = figure.add_subplot(1, 1, 1)
    for row, (kind, side, label) in enumerate(DECISION_ROWS):
        chosen = decisions["kind"] == kind
        if side is not None:
            chosen &= decisions["side"] == SIDE_WORD[side]
        color = DECISION_COLOR[kind] or SIDE_COLOR[side]
        ax.plot(decisions.loc[chosen, "t_s"], np.full(int(chosen.sum()), row), "|", ms=12, mew=1.5, color=color)
    ax.set_yticks(range(len(DECISION_ROWS)), [f"{label} ({int(n)})" for (_, _, label), n in
                                              zip(DECISION_ROWS, _decision_counts(decisions))])
    ax.set(xlim=(0, len(analysis.angles_pelvis_deg) / fs), ylim=(-0.7, len(DECISION_ROWS) - 0.3),
           xlabel="time (s)", title=f"alerts: {len(decisions)} decisions of the detectors")
    ax.invert_yaxis()
    return figure


def _decision_counts(decisions) -> list[int]:
    counts = []
    for kind, side, _ in DECISION_ROWS:
        chosen = decisions["kind"] == kind
        if side is not None:
            chosen &= decisions["side"] == SIDE_WORD[side]
        counts.append(int(chosen.sum()))
    return counts


def holds_reps_figure(result):
    """Each single-leg hold's drop and duration and each exercise rep's range; None when there are neither."""
    holds, reps = result.analysis.holds, result.analysis.reps
    if not len(holds) and not len(reps):
        return None
    figure = _fixed_figure(3.2, top_in=0.15, bottom_in=0.6)
    ax = figure.add_subplot(1, 1, 1)
    if len(holds):
        labels = [f"{i + 1}: {SIDE_WORD.get(int(h['side']), '?')} leg, {h['hold_time_s']:.1f} s"
                  for i, h in enumerate(holds)]
        ax.bar(labels, holds["drop_deg"], color=[SIDE_COLOR.get(int(h["side"]), "0.5") for h in holds], width=0.5)
        ax.axhline(result.drop_threshold_deg, color="0.4", ls="--", lw=0.8)
        ax.set(ylabel="drop of the free side (°)", xlabel="single-leg hold: standing leg, duration")
    else:
        ax.bar(np.arange(1, len(reps) + 1), reps["range_deg"],
               color=["0.5" if int(r["flag"]) == 0 else "tab:red" for r in reps], width=0.6)
        ax.set(ylabel="range at the top (°)", xlabel="rep (red: flagged)", xticks=np.arange(1, len(reps) + 1))
    return figure


def link_figure(samples: np.ndarray, fs_hz: float, backfilled_flag: int, bins: int = 60):
    """The link over the session: of each stretch of device time, the share of samples that came live, were
    backfilled (resent from the sensor's ring) or were lost. samples: every row the session emitted (the
    reassembly's ``BLOCK_DTYPE``: ``seq``, ``flags``, ``gap``)."""
    n = len(samples)
    edges = np.linspace(0, n, min(bins, max(n, 1)) + 1).astype(int)
    lost = samples["gap"]
    backfilled = ~lost & ((samples["flags"] & backfilled_flag) != 0)
    shares = []
    for what in (~lost & ~backfilled, backfilled, lost):
        counts = np.add.reduceat(what.astype(np.int64), edges[:-1]) if n else np.zeros(0)
        shares.append(100.0 * counts / np.maximum(np.diff(edges), 1))
    width = np.diff(edges) / fs_hz
    figure = _fixed_figure(2.6, top_in=0.35)
    ax = figure.add_subplot(1, 1, 1)
    bottom = np.zeros(len(width))
    for share, label, color in zip(shares, ("live", "backfilled", "lost"), ("0.75", "tab:orange", "tab:red")):
        # A filled outline per kind stacked on the ones below (one patch, not a bar per stretch: faster to draw).
        ax.stairs(bottom + share, edges / fs_hz, baseline=bottom, fill=True, lw=0, color=color,
                  label=f"{label}: {100.0 * np.sum(share * width) / max(np.sum(width) * 100.0, 1e-9):.2f} %")
        bottom = bottom + share
    ax.set(xlabel="device time (s)", ylabel="samples (%)", ylim=(0, 100), xlim=(0, max(n / fs_hz, 1e-3)),
           title="link quality: how each sample arrived")
    ax.legend(fontsize=8, loc="lower left", ncols=3)
    return figure


TREND_PANELS = (("drop_right_stance_deg_median", "drop, right stance (°)", "tab:red"),
                ("drop_left_stance_deg_median", "drop, left stance (°)", "tab:blue"),
                ("sway_pp_cm_median", "sway (cm)", "tab:green"),
                ("tilt_mean_deg_median", "mean tilt (°)", "tab:purple"),
                ("cadence_spm_median", "cadence (steps/min)", "0.3"))


def trends_figure(sessions, wearer: str, drop_threshold_deg: float):
    """One wearer's sessions across dates: the medians of each session (``hipcheck.review``'s session table, a row
    per session with ``start`` and the summary's ``*_median`` columns), drops of both stance sides on one axis."""
    figure = _figure(5.0)
    start = sessions["start"]
    axes = [figure.add_subplot(2, 2, k + 1) for k in range(4)]
    for ax, names in zip(axes, ((0, 1), (2,), (3,), (4,))):
        for k in names:
            name, label, color = TREND_PANELS[k]
            values = sessions[name].astype(float) if name in sessions else np.full(len(sessions), np.nan)
            ax.plot(start, values, "o-", color=color, label=label, ms=4)
        ax.set(ylabel=TREND_PANELS[names[0]][1] if len(names) == 1 else "pelvic drop, median (°)")
        _legend(ax, loc="best")
        ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    axes[0].axhline(drop_threshold_deg, color="0.4", ls="--", lw=0.8)
    figure.suptitle(f"{wearer}: {len(sessions)} sessions, medians of the steady strides per session", fontsize=10)
    return figure
