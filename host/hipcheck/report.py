"""Reports of an analysis: the JSON object of ``hipcheck analyze --json``, per-stride lines and the summary.

Records become plain dicts named with units (``drop_right_stance_deg``, ``sway_pp_cm``); sides and kinds become
their names; NaN becomes null. The summary names the weak side from the drops per stance side: a drop during right
single support (the left side sinking) points at weak right hip abductors (Trendelenburg sign).
"""

from __future__ import annotations

import math
from math import isfinite

import numpy as np

from hipcheck.detect import DECISION_NAMES, DEFAULT_DROP_THRESHOLD_DEG, HOLD_NAMES
from hipcheck.gait import FC, IC, SIDE_NAMES
from hipcheck.pelvis import mounting_to_dict

# A side is named weak when its median stance drop exceeds the drop threshold and the other side's by this much:
# the step-to-step variability of pelvic obliquity in healthy walking is about 1° (SD), so 2° is a real difference.
WEAK_SIDE_MARGIN_DEG = 2.0


def record_to_dict(record: np.void, names: dict[str, tuple[str, ...]] | None = None) -> dict:
    """One structured record as a JSON-ready dict; fields listed in ``names`` map their codes to names."""
    names = names or {}
    return {field: _json_value(record[field].item(), names.get(field)) for field in record.dtype.names}


def records_to_dicts(records: np.ndarray, names: dict[str, tuple[str, ...]] | None = None) -> list[dict]:
    """``record_to_dict`` of each record, the array turned into Python values in one call (an hour of walking
    holds thousands of strides), a column at a time."""
    names = names or {}
    columns = []
    for field in records.dtype.names:
        values = records[field].tolist()
        codes = names.get(field)
        if codes is not None:
            values = [_json_value(value, codes) for value in values]
        elif records.dtype[field].kind == "f":  # as _json_value does, inline: an hour holds 100 000 such values
            values = [round(value, 4) if isfinite(value) else None for value in values]
        # the others are JSON as they are
        columns.append(values)
    return [dict(zip(records.dtype.names, row)) for row in zip(*columns)]


def _json_value(value, codes: tuple[str, ...] | None):
    """A field's Python value as the JSON holds it: a code as its name (None if unknown), a float rounded to 4
    decimals (None if not finite)."""
    if codes is not None:
        code = int(value)
        return codes[code] if 0 <= code < len(codes) else None
    if isinstance(value, float):
        return None if not math.isfinite(value) else round(value, 4)
    return value


def events_to_list(events: np.ndarray, kind: int) -> list[dict]:
    chosen = events[events["kind"] == kind]  # columns as lists: an hour holds thousands of contacts
    return [{"sample": sample, "side": SIDE_NAMES[side]}
            for sample, side in zip(chosen["sample"].tolist(), chosen["side"].tolist())]


def summarize(strides: np.ndarray, drop_threshold_deg: float, holds: np.ndarray | None = None) -> dict:
    """Medians over the steady strides measured on the settled alignment (all aligned strides if none is
    steady) and the weak side, if any: from the strides, or else from the single-leg holds (``holds_weak_side``;
    ``weak_side_from`` says which)."""
    summary = _summarize_strides(strides, drop_threshold_deg)
    summary["weak_side_from"] = "strides" if summary["weak_side"] else None
    if summary["weak_side"] is None and not summary.get("side_refused") and holds is not None and len(holds):
        side = holds_weak_side(holds, drop_threshold_deg)
        if side is not None:
            summary["weak_side"], summary["weak_side_from"] = side, "holds"
    return summary


def holds_weak_side(holds: np.ndarray, drop_threshold_deg: float) -> str | None:
    """The stance side of the holds whose free side dropped furthest, when that drop is over the threshold and
    the other leg's holds (if any) dropped clearly less: the hip abductors of the standing leg are weak."""
    worst = {}
    for hold in holds:
        drop = float(hold["drop_deg"])
        if math.isfinite(drop):
            side = SIDE_NAMES[int(hold["side"])]
            worst[side] = max(drop, worst.get(side, -math.inf))
    if not worst:
        return None
    side = max(worst, key=worst.get)
    other = worst.get("left" if side == "right" else "right", -math.inf)
    if worst[side] > drop_threshold_deg and worst[side] - other >= WEAK_SIDE_MARGIN_DEG:
        return side
    return None


def _summarize_strides(strides: np.ndarray, drop_threshold_deg: float) -> dict:
    aligned = strides[strides["aligned"]]
    use = aligned[aligned["steady"]] if np.any(aligned["steady"]) else aligned
    summary: dict = {"strides": int(len(strides)), "steady_strides": int(np.sum(aligned["steady"]))}
    if len(use) == 0:
        summary["weak_side"] = None
        return summary
    for name in ("cadence_spm", "stride_time_s", "drop_right_stance_deg", "drop_left_stance_deg",
                 "obliquity_range_deg", "tilt_mean_deg", "tilt_range_deg", "rotation_range_deg", "sway_pp_cm",
                 "vertical_excursion_cm", "step_time_symmetry"):
        values = use[name][np.isfinite(use[name])]
        summary[f"{name}_median"] = round(float(np.median(values)), 3) if len(values) else None
    right = summary["drop_right_stance_deg_median"]
    left = summary["drop_left_stance_deg_median"]
    summary["weak_side"] = weak_side(right, left, drop_threshold_deg)
    return summary


def weak_side(drop_right_stance_deg: float | None, drop_left_stance_deg: float | None,
              drop_threshold_deg: float) -> str | None:
    """'right' when the drop in right stance is over the threshold and clearly larger than in left stance."""
    if drop_right_stance_deg is None or drop_left_stance_deg is None:
        return None
    if drop_right_stance_deg > drop_threshold_deg and \
            drop_right_stance_deg - drop_left_stance_deg >= WEAK_SIDE_MARGIN_DEG:
        return "right"
    if drop_left_stance_deg > drop_threshold_deg and \
            drop_left_stance_deg - drop_right_stance_deg >= WEAK_SIDE_MARGIN_DEG:
        return "left"
    return None


def analysis_to_dict(analysis, drop_threshold_deg: float = DEFAULT_DROP_THRESHOLD_DEG) -> dict:
    """The JSON object of ``hipcheck analyze --json`` (keys described in docs/validation.md and the CLI help)."""
    fs = analysis.fs_hz
    stride_names = {"side": SIDE_NAMES}
    strides = records_to_dicts(analysis.strides, stride_names)
    for entry, start in zip(strides, analysis.strides["start_sample"].tolist()):
        entry["t_s"] = round(int(start) / fs, 4)
    decisions = records_to_dicts(analysis.decisions, DECISION_NAMES)
    for entry, sample in zip(decisions, analysis.decisions["sample"].tolist()):
        entry["t_s"] = round(int(sample) / fs, 4)
    out = {
        "fs": fs,
        "n_samples": int(len(analysis.q_sensor_to_earth)),
        "duration_s": round(len(analysis.q_sensor_to_earth) / fs, 3),
        "orientation": "offline" if analysis.offline else "causal",
        "alignment_q_sensor_to_pelvis": None if analysis.alignment is None
        else [round(float(v), 6) for v in analysis.alignment],
        "initial_contacts": events_to_list(analysis.events, IC),
        "final_contacts": events_to_list(analysis.events, FC),
        "strides": strides,
        "decisions": decisions,
        "summary": summarize(analysis.strides, drop_threshold_deg, analysis.holds),
        "mounting": None if analysis.mounting is None else mounting_to_dict(analysis.mounting),
        "warnings": list(analysis.notes),
        "signs": {
            "obliquity_deg": "+ = left side higher",
            "tilt_deg": "+ = anterior tilt, against neutral standing",
            "rotation_deg": "+ = pelvis turned left (right side forward)",
            "drop_<side>_stance_deg": "+ = the free side sank below level while standing on <side>; "
                                      "<side> is the weak side",
        },
    }
    if analysis.side_refused:
        # The mounting could not be found: no side is named, and the summary says why (hipcheck.pelvis.Mounting).
        out["summary"]["weak_side"] = None
        out["summary"]["side_refused"] = analysis.side_refused
    if len(analysis.holds):
        out["holds"] = [record_to_dict(h, HOLD_NAMES) for h in analysis.holds]
    out.update(exercise_to_dict(analysis))
    return out


def exercise_to_dict(analysis) -> dict:
    """The coaching mode's part of the JSON: ``mode`` (when not walk), ``reps`` (bridge, clamshell: start, end,
    up and down durations, range, flag), ``posture_alerts`` (posture), ``user_holds`` and ``cheats`` (hold: the
    holds the user started, scored, and their cheat switches), each with ``t_s``."""
    from hipcheck.exercises import CHEAT_NAMES, FLAG_NAMES, POSTURE_NAMES

    out: dict = {}
    if analysis.mode != "walk":
        out["mode"] = analysis.mode
    if analysis.mode in ("bridge", "clamshell"):
        out["reps"] = [{**record_to_dict(r, {"flag": FLAG_NAMES}), "t_s": round(int(r["start_sample"]) / analysis.fs_hz, 4)}
                       for r in analysis.reps]
    if analysis.mode == "hold":
        out["user_holds"] = [{**record_to_dict(h, HOLD_NAMES), "t_s": round(int(h["start_sample"]) / analysis.fs_hz, 4)}
                             for h in analysis.guided_holds]
        out["cheats"] = [{**record_to_dict(c, {"kind": CHEAT_NAMES}), "t_s": round(int(c["sample"]) / analysis.fs_hz, 4)}
                         for c in analysis.cheats]
    if analysis.mode == "posture":
        out["posture_alerts"] = [{**record_to_dict(p, {"kind": POSTURE_NAMES}),
                                  "t_s": round(int(p["sample"]) / analysis.fs_hz, 4)} for p in analysis.posture]
    return out


# Said once above the stride lines: what each column is and which way its sign points.
STRIDE_LEGEND = ("strides: start time and the foot whose contact starts it; pelvic drop = how far the free side sank "
                 "below level while standing on that leg; sway = side to side, peak to peak; tilt = mean against "
                 "neutral standing, + = forward (anterior), − = backward")


def stride_line(stride: np.void, fs_hz: float) -> str:
    """One human-readable line per stride (the columns: ``STRIDE_LEGEND``)."""
    def fmt(value: float, spec: str) -> str:
        return format(value, spec) if math.isfinite(value) else "  -  "

    return (f"{int(stride['start_sample']) / fs_hz:7.2f} s  {SIDE_NAMES[int(stride['side'])]:>5} foot  "
            f"stride {fmt(stride['stride_time_s'], '.2f')} s  cadence {fmt(stride['cadence_spm'], '5.1f')} steps/min  "
            f"pelvic drop standing on right {fmt(stride['drop_right_stance_deg'], '4.1f')}°, "
            f"on left {fmt(stride['drop_left_stance_deg'], '4.1f')}°  "
            f"sway {fmt(stride['sway_pp_cm'], '4.1f')} cm  tilt {fmt(stride['tilt_mean_deg'], '+5.1f')}°"
            + ("" if stride["aligned"] else "  (provisional: alignment settling)"))


def decision_words(decision) -> str:
    """A detector's decision (DECISION_DTYPE record, or its dict from ``analysis_to_dict``) in plain words, with its
    unit and threshold: "pelvic drop while standing on the right leg: 8.7°, threshold 6.0°"."""
    kind, side = decision["kind"], decision["side"]
    kind = kind if isinstance(kind, str) else DECISION_NAMES["kind"][int(kind)]
    side = side if isinstance(side, str) or side is None else DECISION_NAMES["side"][int(side)]
    value, threshold = float(decision["value"]), float(decision["threshold"])
    if kind in ("drop", "drop_stride"):
        what = f"pelvic drop while standing on the {side} leg" + (" (whole step)" if kind == "drop_stride" else "")
        return f"{what}: {value:.1f}°, threshold {threshold:.1f}°"
    if kind == "sway":
        return f"hip sway, side to side per stride: {value:.1f} cm, threshold {threshold:.1f} cm"
    way = "forward (anterior)" if value >= 0 else "backward (posterior)"
    return f"pelvic tilt {way} of neutral, mean over the stride: {abs(value):.1f}°, threshold {abs(threshold):.1f}°"


def holds_table(holds, side_known: bool = True) -> list[str]:
    """Single-leg holds as a short table for a person (records of HOLD_DTYPE or their dicts), signs explained once
    under it. side_known False: the sensor's mounting was not found, so the standing leg is shown as unknown (the
    summary refuses to name a side too)."""
    if not len(holds):
        return []
    lines = ["single-leg holds:",
             "   #  standing on  held     free side of the pelvis   tilt drift  sway (RMS)"]
    for i, hold in enumerate(holds, 1):
        side = hold["side"] if isinstance(hold["side"], str) else SIDE_NAMES[int(hold["side"])]
        side = side if side_known else "unknown"
        drop = float(hold["drop_deg"])
        free = "  -" if not math.isfinite(drop) else \
            f"{'dropped' if drop >= 0 else 'hiked'} {abs(drop):4.1f}°"
        lines.append(f"  {i:2d}  {side + ' leg':11s}  {float(hold['hold_time_s']):5.1f} s  {free:24s}  "
                     f"{float(hold['tilt_drift_deg']):+5.1f}°      {float(hold['sway_rms_m_s2']):.2f} m/s²")
    lines.append("  free side: against the two-leg stance before lifting; dropped = sank (the standing leg's hip "
                 "abductors are weak), hiked = rose. tilt drift: end minus start, + = forward (anterior)")
    return lines


def hold_line(hold: np.void) -> str:
    """One line per single-leg hold."""
    return "hold: " + ", ".join(f"{k} {v}" for k, v in record_to_dict(hold, HOLD_NAMES).items())


def analysis_text(result: dict, strides: np.ndarray, source: str) -> str:
    """``hipcheck analyze`` without --json: a line per stride, alert and hold, the warnings and the summary.
    result: ``analysis_to_dict``; strides: the analysis's stride records; source: what was analysed."""
    fs = result["fs"]
    lines = [f"{source}: {result['duration_s']} s at {fs:g} Hz, {len(result['initial_contacts'])} initial contacts"]
    lines += [STRIDE_LEGEND] + [stride_line(stride, fs) for stride in strides] if len(strides) else []
    for decision in result["decisions"]:
        lines.append(f"{decision['t_s']:7.2f} s  alert: " + decision_words(decision))
    lines += holds_table(result.get("holds", []), side_known=not result["summary"].get("side_refused"))
    lines += [f"warning: {warning}" for warning in result["warnings"]]
    lines.append(summary_text(result["summary"]))
    return "\n".join(lines)


def summary_text(summary: dict) -> str:
    lines = [f"{summary['strides']} strides ({summary['steady_strides']} steady)"]
    if "cadence_spm_median" in summary:  # absent when no stride was measured on a settled mounting
        def f(key: str, spec: str = ".1f") -> str:
            return "-" if summary.get(key) is None else format(summary[key], spec)

        lines.append(f"  cadence {f('cadence_spm_median')} steps/min, hip sway {f('sway_pp_cm_median')} cm side "
                     f"to side per stride, mean pelvic tilt {f('tilt_mean_deg_median', '+.1f')}° from neutral "
                     "(+ = forward, − = backward)")
        lines.append(f"  pelvic drop (median): {f('drop_right_stance_deg_median')}° while standing on the right leg, "
                     f"{f('drop_left_stance_deg_median')}° while standing on the left leg")
    side = summary.get("weak_side")
    if summary.get("side_refused"):
        lines.append(f"  weak side: cannot be named: {summary['side_refused']}")
        return "\n".join(lines)
    if "cadence_spm_median" not in summary and not side and not summary.get("weak_side_from"):
        # no figure to name a side from: say what is missing rather than "none found"
        lines.append("  no stride measured on a settled mounting (a walk of a few strides is needed): no cadence, "
                     "drop, sway or tilt figures")
        lines.append("  weak side: cannot be named: no stride measured")
        return "\n".join(lines)
    source = "; found in the single-leg holds" if summary.get("weak_side_from") == "holds" else ""
    lines.append(f"  weak side: {side} (hip abductors; the pelvis drops while standing on the {side} leg{source})"
                 if side else "  weak side: none found (drops within the threshold or symmetric)")
    return "\n".join(lines)
