"""Initial contacts from one lower-back IMU on the mobgap lab data: hipcheck.gait.events against mobgap's detectors.

Run: .venv/bin/python benchmarks/gait.py [--data DIR] [--json PATH]   (default DIR: /work/shared/data/mobgap-lab)

Evaluation as mobgap does it: inside each reference walking bout, only the contacts inside the bout count, matched
one to one with the reference (closest pairs first) within a tolerance; precision, recall and F1 pooled over all
recordings; mean absolute time error over the matched pairs at that tolerance; side accuracy of the matched pairs.
Rows:
- ``hipcheck (whole rec.)``: our detector run over the whole recording (it finds the walking itself), its contacts
  then kept inside the reference bouts (the row the targets were read from before the fair scoring below);
- ``hipcheck (bout edges ±0.15 s)``: as the first row, but a contact of ours up to 0.15 s outside a reference bout is
  kept: the references' bouts start at their first contact and end one sample after their last, so a contact found
  a few samples early or late at a bout's edge is otherwise dropped before matching (a miss), while the nearest
  other contact of the same walk is at least a step (≥ 0.3 s) away;
- ``hipcheck (bout cut)``: our detector run on each bout's samples alone, as mobgap's detectors are (it loses the
  first steps, which fall inside its start-up);
- ``IcdIonescu``, ``IcdShinImproved``, ``IcdHKLeeImproved``: mobgap 1.2, default settings, body-frame data per bout;
- ``hipcheck (all contacts)``: our detector on the whole recording, every contact it reports against every reference
  contact (no bouts given): its false alarms outside walking count here (and so do real steps that the reference left
  out of its bouts: HA-002's Test5 trials have no INDIP bouts at all);
- ``Stereophoto as detector``: the optical reference's contacts scored like ours against INDIP (recordings that have
  both), inside INDIP's bouts: it mostly measures Stereophoto's smaller capture volume; where both look, see the
  references' own agreement below.
Also per-side timing bias of ours against each reference, and the leave-one-subject-out figures.

Then the fair scoring (``hipcheck.gait.references``), for ours and mobgap's detectors, in half A, half B and all:
- a contact up to the tolerance outside a reference bout counts when it matches (the bouts end at the reference's
  own edge contacts) and is ignored when it does not;
- against ``INDIP`` and ``Stereophoto`` alone; against each alone but only where both cover the walk (``…, both
  cover``: the overlap of their bouts); and against their ``consensus``: the contacts both place on the same foot
  within 0.1 s (their mean time), inside the overlap of their bouts; a contact only one of them has there, or that
  they place further apart or on different feet, is disputed: a detected contact within the tolerance of it is
  neither a hit nor a false alarm, and it is no miss;
- the references' own agreement: Stereophoto scored against INDIP where both cover the walk — what any detector can
  expect against one reference alone;
- halves: each participant's walking bouts (INDIP's, and Stereophoto's where INDIP has none), in time order
  through their recordings, alternate between half A and half B; any scored bout belongs to the half of the split
  bout it overlaps most. The figures per participant follow.
Also a leave-one-subject-out check of ``ic_offset_s`` (a constant fitted to all of this data; the other one,
``ic_forward_lag_s``, was chosen on half A). Results on this data come from the Mobilise-D project's mobgap example
data (Apache-2.0).
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np

from hipcheck.gait import IC, RIGHT
from hipcheck.gait.evaluate import match_events
from hipcheck.gait.events import DEFAULT_SETTINGS, detect_events
from hipcheck.gait.references import BoutScore, bout_overlap, consensus, score_bout

TOLERANCES_S = (0.1, 0.25, 0.5)
EDGE_MARGIN_S = 0.15  # half the shortest step: only a bout's own first or last contact can lie this close outside it
# The targets of issue 10 (DESIGN.md) on real lower-back recordings: F1 at 0.25 s and 0.1 s, side accuracy, MAE.
TARGETS = {"f1_0.25": 0.94, "f1_0.1": 0.85, "side": 0.95, "mae_ms": 30.0}
SYSTEMS = ("INDIP", "Stereophoto")
# The fair scoring (hipcheck.gait.references): each reference alone, and the contacts both agree on.
REFERENCES = ("INDIP", "Stereophoto", "INDIP, both cover", "Stereophoto, both cover", "consensus")
AGREE_S = 0.1  # two references agree on a contact within this (the tighter tolerance scored)


def load(path: Path) -> dict:
    d = np.load(path, allow_pickle=True)
    fs_hz = float(d["fs"])
    # mobgap's lower-back axes (x superior, y right, z anterior) -> ours (x anterior, y left, z superior)
    acc = d["acc"][:, [2, 1, 0]] * [1.0, -1.0, 1.0]
    gyr = np.radians(d["gyr_dps"][:, [2, 1, 0]]) * [1.0, -1.0, 1.0]
    rec = {"name": path.stem, "fs_hz": fs_hz, "acc": acc, "gyr": gyr, "acc_mobgap": d["acc"],
           "gyr_dps_mobgap": d["gyr_dps"]}
    for system in SYSTEMS:
        if f"{system}_ic" in d.files:
            rec[system] = {"ic": d[f"{system}_ic"].astype(np.int64), "lr": d[f"{system}_ic_lr"].astype(str),
                           "wb": d[f"{system}_wb"].astype(np.int64).reshape(-1, 2)}
    return rec


def orientation(acc, gyr, fs_hz):
    """q_sensor_to_earth from our causal fusion, as the pipeline feeds the detector."""
    from hipcheck.fusion import orient

    return orient(acc, gyr, fs_hz)


class Tally:
    """Pooled counts over recordings for one method, system and tolerance."""

    def __init__(self):
        self.tp = self.fp = self.fn = 0
        self.errors_s: list[float] = []
        self.side_ok: list[bool] = []

    def add(self, samples, sides, ref_samples, ref_lr, fs_hz, tolerance_s):
        pairs = match_events(samples, ref_samples, tolerance_s * fs_hz)
        self.tp += len(pairs)
        self.fp += len(samples) - len(pairs)
        self.fn += len(ref_samples) - len(pairs)
        self.errors_s += list((samples[pairs[:, 0]] - ref_samples[pairs[:, 1]]) / fs_hz)
        if sides is not None:
            self.side_ok += list((sides[pairs[:, 0]] == RIGHT) == (ref_lr[pairs[:, 1]] == "right"))

    def figures(self) -> dict:
        precision = self.tp / max(self.tp + self.fp, 1)
        recall = self.tp / max(self.tp + self.fn, 1)
        errors = np.array(self.errors_s)
        return {
            "precision": precision, "recall": recall,
            "f1": 2 * precision * recall / max(precision + recall, 1e-12),
            "mae_ms": float(np.abs(errors).mean() * 1e3) if len(errors) else float("nan"),
            "bias_ms": float(errors.mean() * 1e3) if len(errors) else float("nan"),
            "side_accuracy": float(np.mean(self.side_ok)) if self.side_ok else float("nan"),
            "tp": self.tp, "fp": self.fp, "fn": self.fn,
        }


def inside(samples: np.ndarray, bouts: np.ndarray, margin: float = 0.0) -> np.ndarray:
    keep = np.zeros(len(samples), dtype=bool)
    for start, end in bouts:
        keep |= (samples >= start - margin) & (samples <= end + margin)
    return keep


def ours_whole(rec, **settings):
    q = orientation(rec["acc"], rec["gyr"], rec["fs_hz"])
    events = detect_events(rec["acc"], rec["gyr"], q, rec["fs_hz"], **settings)
    ic = events[events["kind"] == IC]
    return ic["sample"], ic["side"]


def stereophoto_as_detector(rec):
    ref = rec.get("Stereophoto")
    if ref is None:
        return np.zeros(0, np.int64), np.zeros(0, np.int8)
    return ref["ic"], np.where(ref["lr"] == "right", RIGHT, 1 - RIGHT).astype(np.int8)


def side_bias(recs) -> dict:
    """Mean time error (ms) of ours per side of the matched reference contact, inside the bouts, at 0.25 s."""
    out = {}
    for system in SYSTEMS:
        errors = {"left": [], "right": []}
        for rec in recs:
            ref = rec.get(system)
            if ref is None or len(ref["wb"]) == 0:
                continue
            samples, _ = ours_whole(rec)
            samples = samples[inside(samples, ref["wb"])]
            pairs = match_events(samples, ref["ic"], 0.25 * rec["fs_hz"])
            for i, j in pairs:
                errors[ref["lr"][j]].append((samples[i] - ref["ic"][j]) / rec["fs_hz"] * 1e3)
        out[system] = {side: float(np.mean(e)) for side, e in errors.items()}
    return out


def ours_cut(rec, start, end):
    acc, gyr = rec["acc"][start:end + 1], rec["gyr"][start:end + 1]
    events = detect_events(acc, gyr, orientation(acc, gyr, rec["fs_hz"]), rec["fs_hz"])
    ic = events[events["kind"] == IC]
    return ic["sample"] + start, ic["side"]


def mobgap_cut(detector_type, rec, start, end):
    import pandas as pd
    from mobgap.utils.conversions import to_body_frame

    frame = pd.DataFrame(np.hstack([rec["acc_mobgap"][start:end + 1], rec["gyr_dps_mobgap"][start:end + 1]]),
                         columns=["acc_x", "acc_y", "acc_z", "gyr_x", "gyr_y", "gyr_z"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = detector_type().detect(to_body_frame(frame), sampling_rate_hz=rec["fs_hz"]).ic_list_
    return found["ic"].to_numpy(dtype=np.int64) + start, None


def evaluate(recs, methods) -> dict:
    """figures[method][system][tolerance] pooled over the recordings."""
    out = {}
    for label, (kind, fn) in methods.items():
        out[label] = {}
        for system in SYSTEMS:
            tallies = {tol: Tally() for tol in TOLERANCES_S}
            for rec in recs:
                ref = rec.get(system)
                if ref is None or len(ref["wb"]) == 0 and kind != "all":
                    continue
                if kind in ("whole", "edges"):
                    samples, sides = fn(rec)
                    keep = inside(samples, ref["wb"], EDGE_MARGIN_S * rec["fs_hz"] if kind == "edges" else 0.0)
                    for tol, tally in tallies.items():
                        tally.add(samples[keep], sides[keep], ref["ic"], ref["lr"], rec["fs_hz"], tol)
                elif kind == "all":
                    samples, sides = fn(rec)
                    for tol, tally in tallies.items():
                        tally.add(samples, sides, ref["ic"], ref["lr"], rec["fs_hz"], tol)
                else:  # per bout, on the bout's samples alone
                    for start, end in ref["wb"]:
                        samples, sides = fn(rec, start, end)
                        keep = (samples >= start) & (samples <= end)
                        in_bout = inside(ref["ic"], [(start, end)])
                        for tol, tally in tallies.items():
                            tally.add(samples[keep], None if sides is None else sides[keep], ref["ic"][in_bout],
                                      ref["lr"][in_bout], rec["fs_hz"], tol)
            out[label][system] = {str(tol): tally.figures() for tol, tally in tallies.items()}
    return out


def leave_one_subject_out(recs) -> dict:
    """Fit ic_offset_s on two subjects (median error vs INDIP at 0.25 s), test on the third."""
    result = {}
    subjects = sorted({rec["name"][:6] for rec in recs})
    raw = {rec["name"]: ours_whole(rec, ic_offset_s=0.0) for rec in recs}
    for held_out in subjects:
        errors = []
        for rec in recs:
            if rec["name"].startswith(held_out) or len(rec["INDIP"]["wb"]) == 0:
                continue
            samples, _ = raw[rec["name"]]
            samples = samples[inside(samples, rec["INDIP"]["wb"])]
            pairs = match_events(samples, rec["INDIP"]["ic"], 0.25 * rec["fs_hz"])
            errors += list((samples[pairs[:, 0]] - rec["INDIP"]["ic"][pairs[:, 1]]) / rec["fs_hz"])
        offset_s = -float(np.median(errors))
        tally = Tally()
        for rec in recs:
            if rec["name"].startswith(held_out):
                samples, sides = ours_whole(rec, ic_offset_s=offset_s)
                keep = inside(samples, rec["INDIP"]["wb"])
                tally.add(samples[keep], sides[keep], rec["INDIP"]["ic"], rec["INDIP"]["lr"], rec["fs_hz"], 0.25)
        result[held_out] = {"fitted_ic_offset_s": offset_s, **tally.figures()}
    return result


def assign_halves(recs) -> None:
    """Split the walks in two halves: each participant's walking bouts, in time order through their recordings
    (sorted by name), alternate between half A and half B. The bouts are INDIP's, and Stereophoto's where no INDIP
    bout overlaps them; rec["halves"] holds (start, end, half) for them."""
    count: dict = {}
    for rec in recs:
        own = [tuple(b) for b in rec["INDIP"]["wb"]] if "INDIP" in rec else []
        if "Stereophoto" in rec:
            own += [tuple(b) for b in rec["Stereophoto"]["wb"] if not len(bout_overlap([b], own))]
        participant = rec["name"][:6]
        rec["halves"] = []
        for start, end in sorted(own):
            rec["halves"].append((start, end, "AB"[count.get(participant, 0) % 2]))
            count[participant] = count.get(participant, 0) + 1


def half_of(rec, start: int, end: int) -> str:
    """The half of the split bout that overlaps [start, end] most (assign_halves)."""
    overlap = [min(end, e) - max(start, s) for s, e, _ in rec["halves"]]
    return rec["halves"][int(np.argmax(overlap))][2]


def fair_references(rec) -> dict:
    """reference name -> (contacts, sides 'left'/'right', bouts, disputed contacts) for the fair scoring."""
    out = {}
    for system in SYSTEMS:
        ref = rec.get(system)
        if ref is not None and len(ref["wb"]):
            out[system] = (ref["ic"], ref["lr"], ref["wb"], np.zeros(0, np.int64))
    if len(out) == 2:
        both = bout_overlap(rec["INDIP"]["wb"], rec["Stereophoto"]["wb"])
        for system in SYSTEMS:  # each alone, but only where the other one looks too: beside their own agreement
            out[f"{system}, both cover"] = (*out[system][:2], both, np.zeros(0, np.int64))
        c = consensus(rec["INDIP"]["ic"], rec["INDIP"]["lr"], rec["INDIP"]["wb"], rec["Stereophoto"]["ic"],
                      rec["Stereophoto"]["lr"], rec["Stereophoto"]["wb"], AGREE_S * rec["fs_hz"],
                      int(AGREE_S * rec["fs_hz"]))
        if len(c.wb):
            out["consensus"] = (c.ic, c.lr, c.wb, c.disputed)
    return out


def evaluate_fair(recs, methods) -> dict:
    """scores[method][reference][tolerance][half] (BoutScore; half 'A', 'B', 'all' and each participant)."""
    out = {}
    whole_cache: dict = {}
    for label, (kind, fn) in methods.items():
        out[label] = {name: {tol: {} for tol in TOLERANCES_S} for name in REFERENCES}
        for rec in recs:
            for name, (ic, lr, wb, disputed) in fair_references(rec).items():
                if kind == "whole":
                    key = (label, rec["name"])
                    if key not in whole_cache:
                        whole_cache[key] = fn(rec)
                    found = [whole_cache[key]] * len(wb)
                else:
                    found = [fn(rec, start, end) for start, end in wb]
                for (start, end), (samples, sides) in zip(wb, found):
                    groups = ("all", half_of(rec, start, end), rec["name"][:6])
                    for tol in TOLERANCES_S:
                        score = score_bout(samples, sides, ic, lr, start, end, tol * rec["fs_hz"], disputed, RIGHT)
                        for group in groups:
                            out[label][name][tol].setdefault(group, BoutScore())
                            out[label][name][tol][group] += score
    return out


def reference_agreement(recs) -> dict:
    """Stereophoto scored against INDIP where both cover the walk (the overlap of their bouts), by the fair rules:
    how far the references agree where both looked. scores[tolerance][half]."""
    out = {tol: {} for tol in TOLERANCES_S}
    for rec in recs:
        if "INDIP" not in rec or "Stereophoto" not in rec:
            continue
        ind, ste = rec["INDIP"], rec["Stereophoto"]
        sides = np.where(ste["lr"] == "right", RIGHT, 1 - RIGHT)
        for start, end in bout_overlap(ind["wb"], ste["wb"]):
            for tol in TOLERANCES_S:
                score = score_bout(ste["ic"], sides, ind["ic"], ind["lr"], start, end, tol * rec["fs_hz"],
                                   right=RIGHT)
                for group in ("all", half_of(rec, start, end)):
                    out[tol].setdefault(group, BoutScore())
                    out[tol][group] += score
    return out


def fair_figures(score: BoutScore, fs_hz: float = 100.0) -> dict:
    errors = np.array(score.errors, dtype=float) / fs_hz
    return {"f1": score.f1(), "precision": score.tp / max(score.tp + score.fp, 1),
            "recall": score.tp / max(score.tp + score.fn, 1), "tp": score.tp, "fp": score.fp, "fn": score.fn,
            "mae_ms": float(np.abs(errors).mean() * 1e3) if len(errors) else float("nan"),
            "side_accuracy": float(np.mean(score.side_ok)) if score.side_ok else float("nan")}


def print_fair(scores: dict, agreement: dict) -> dict:
    """The fair tables: per reference, F1 at 0.1 and 0.25 s in half A, half B and all, MAE and side (all, 0.25 s);
    the references' own agreement; the targets against the consensus. Returns the figures as plain numbers."""
    groups = ("A", "B", "all")
    plain = {label: {name: {str(tol): {g: fair_figures(sc) for g, sc in per_tol.items()}
                            for tol, per_tol in per_ref.items()} for name, per_ref in per_method.items()}
             for label, per_method in scores.items()}
    print("\nFair scoring (hipcheck.gait.references): a contact up to the tolerance outside a reference bout counts "
          "when it matches and is ignored when not; against the consensus, contacts near a disputed one are "
          "neither hits nor false alarms. Half A / half B: each participant's bouts alternating.")
    for name in REFERENCES:
        counts = {g: plain[next(iter(plain))][name]["0.25"].get(g, {}) for g in groups}
        sizes = ", ".join(f"{g} {c.get('tp', 0) + c.get('fn', 0)}" for g, c in counts.items())
        print(f"\nvs {name} (reference contacts: {sizes}); MAE and side: all, at 0.25 s\n")
        print("| method | " + " | ".join(f"{g} F1 0.1 | {g} F1 0.25" for g in groups) + " | MAE ms | side |")
        print("| --- " * (2 + 2 * len(groups) + 1) + "|")
        for label, per_ref in plain.items():
            cells = " | ".join(f"{per_ref[name]['0.1'].get(g, {}).get('f1', float('nan')):.3f} | "
                               f"{per_ref[name]['0.25'].get(g, {}).get('f1', float('nan')):.3f}" for g in groups)
            mid = per_ref[name]["0.25"]["all"]
            side = f"{mid['side_accuracy']:.3f}" if np.isfinite(mid["side_accuracy"]) else "—"
            print(f"| {label} | {cells} | {mid['mae_ms']:.0f} | {side} |")
    agree = {str(tol): {g: fair_figures(sc) for g, sc in per.items()} for tol, per in agreement.items()}
    print("\nThe references' own agreement, where both cover the walk (Stereophoto scored against INDIP, fair "
          "rules): " + "; ".join(f"{g}: F1 {agree['0.1'][g]['f1']:.3f} at 0.1 s, {agree['0.25'][g]['f1']:.3f} at "
                                 f"0.25 s, MAE {agree['0.25'][g]['mae_ms']:.0f} ms" for g in groups))
    participants = sorted(g for g in plain["hipcheck (whole rec.)"]["consensus"]["0.25"] if g not in groups)
    print("\nhipcheck (whole rec.) per participant, F1 at 0.1 s / 0.25 s: " + "; ".join(
        f"{p}: " + ", ".join(f"vs {name} {plain['hipcheck (whole rec.)'][name]['0.1'][p]['f1']:.3f} / "
                             f"{plain['hipcheck (whole rec.)'][name]['0.25'][p]['f1']:.3f}"
                             for name in REFERENCES if p in plain["hipcheck (whole rec.)"][name]["0.25"])
        for p in participants))
    print()
    for g in groups:
        ours = plain["hipcheck (whole rec.)"]["consensus"]
        measured = {"f1_0.25": ours["0.25"][g]["f1"], "f1_0.1": ours["0.1"][g]["f1"],
                    "side": ours["0.25"][g]["side_accuracy"], "mae_ms": ours["0.25"][g]["mae_ms"]}
        print(f"targets vs the consensus, half {g}, hipcheck (whole rec.): " + "; ".join(
            f"{key} {measured[key]:.3g} ({'met' if _met(key, measured[key], target) else 'missed'})"
            for key, target in TARGETS.items()))
    return {"scores": plain, "reference_agreement": agree}


def _met(key: str, value: float, target: float) -> bool:
    return value <= target if key == "mae_ms" else value >= target


def print_table(figures: dict, system: str) -> None:
    ours = figures["hipcheck (whole rec.)"][system]
    print(f"\nvs {system}: precision / recall / F1 at each tolerance; MAE = mean |time error| of the matches at "
          f"0.25 s; ratio = F1 (0.25 s) / ours\n")
    head = "| method | " + " | ".join(f"P {t} | R {t} | F1 {t}" for t in TOLERANCES_S)
    print(head + " | MAE ms | bias ms | L/R acc | F1 ratio | MAE ratio |")
    print("| --- " * (1 + 3 * len(TOLERANCES_S) + 5) + "|")
    for label, per_system in figures.items():
        if label.startswith(system):
            continue  # a reference against itself
        f = per_system[system]
        cells = " | ".join(f"{f[str(t)]['precision']:.3f} | {f[str(t)]['recall']:.3f} | {f[str(t)]['f1']:.3f}"
                           for t in TOLERANCES_S)
        mid = f["0.25"]
        side = f"{mid['side_accuracy']:.3f}" if np.isfinite(mid["side_accuracy"]) else "—"
        print(f"| {label} | {cells} | {mid['mae_ms']:.0f} | {mid['bias_ms']:+.0f} | {side} "
              f"| {mid['f1'] / ours['0.25']['f1']:.2f} | {mid['mae_ms'] / ours['0.25']['mae_ms']:.2f} |")


def print_summary(figures: dict) -> None:
    """The figures the targets name, per method and reference, and which targets the first row meets."""
    print("\nSummary (inside the reference bouts; MAE and side of the matches at 0.25 s):\n")
    print("| method | " + " | ".join(f"{s} F1 0.1 | {s} F1 0.25 | {s} MAE ms | {s} side" for s in SYSTEMS) + " |")
    print("| --- " * (1 + 4 * len(SYSTEMS)) + "|")
    for label, per_system in figures.items():
        if label.startswith(SYSTEMS) or label == "hipcheck (all contacts)":
            continue
        cells = []
        for system in SYSTEMS:
            tight, mid = per_system[system]["0.1"], per_system[system]["0.25"]
            side = f"{mid['side_accuracy']:.3f}" if np.isfinite(mid["side_accuracy"]) else "—"
            cells.append(f"{tight['f1']:.3f} | {mid['f1']:.3f} | {mid['mae_ms']:.0f} | {side}")
        print(f"| {label} | " + " | ".join(cells) + " |")
    print()
    for system in SYSTEMS:
        ours = figures["hipcheck (whole rec.)"][system]
        measured = {"f1_0.25": ours["0.25"]["f1"], "f1_0.1": ours["0.1"]["f1"],
                    "side": ours["0.25"]["side_accuracy"], "mae_ms": ours["0.25"]["mae_ms"]}
        verdicts = []
        for key, target in TARGETS.items():
            met = measured[key] <= target if key == "mae_ms" else measured[key] >= target
            verdicts.append(f"{key} {measured[key]:.3g} ({'met' if met else 'missed'}, target "
                            f"{'≤' if key == 'mae_ms' else '≥'} {target:g})")
        print(f"targets vs {system}, hipcheck (whole rec.): " + "; ".join(verdicts))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data/mobgap-lab"))
    parser.add_argument("--json", type=Path, help="write the figures to this JSON file")
    parser.add_argument("--no-mobgap", action="store_true", help="skip mobgap's detectors (faster)")
    args = parser.parse_args(argv)
    paths = sorted(args.data.glob("*.npz"))
    if not paths:
        print(f"no .npz recordings in {args.data}; pass --data DIR", file=sys.stderr)
        return 2
    recs = [load(p) for p in paths]
    assign_halves(recs)
    methods = {"hipcheck (whole rec.)": ("whole", ours_whole),
               f"hipcheck (bout edges ±{EDGE_MARGIN_S:g} s)": ("edges", ours_whole),
               "hipcheck (bout cut)": ("cut", ours_cut)}
    if not args.no_mobgap:
        from mobgap.initial_contacts import IcdHKLeeImproved, IcdIonescu, IcdShinImproved
        for detector_type in (IcdIonescu, IcdShinImproved, IcdHKLeeImproved):
            methods[detector_type.__name__] = ("cut", lambda rec, s, e, d=detector_type: mobgap_cut(d, rec, s, e))
    methods["hipcheck (all contacts)"] = ("all", ours_whole)
    methods["Stereophoto as detector"] = ("whole", stereophoto_as_detector)
    figures = evaluate(recs, methods)
    print(f"Initial contacts on {args.data} ({len(recs)} recordings, {sum(len(r['acc']) for r in recs) / 100:.0f} s)")
    for system in SYSTEMS:
        print_table(figures, system)
    print_summary(figures)
    loso = leave_one_subject_out(recs)
    print(f"\nic_offset_s = {DEFAULT_SETTINGS['ic_offset_s']} (fitted on all recordings); leave one subject out, "
          f"vs INDIP at 0.25 s:\n")
    print("| held out | fitted offset ms | F1 | MAE ms | bias ms |\n| --- | --- | --- | --- | --- |")
    for subject, f in loso.items():
        if isinstance(f, dict):
            print(f"| {subject} | {f['fitted_ic_offset_s'] * 1e3:+.0f} | {f['f1']:.3f} | {f['mae_ms']:.0f} "
                  f"| {f['bias_ms']:+.0f} |")
    fair_methods = {"hipcheck (whole rec.)": ("whole", ours_whole), "hipcheck (bout cut)": ("cut", ours_cut)}
    fair_methods.update({label: methods[label] for label in ("IcdIonescu", "IcdShinImproved", "IcdHKLeeImproved")
                         if label in methods})
    fair = print_fair(evaluate_fair(recs, fair_methods), reference_agreement(recs))
    bias = side_bias(recs)
    print("\nmean time error of ours by side (ms, inside the bouts, at 0.25 s): " + "; ".join(
        f"vs {system} left {b['left']:+.0f}, right {b['right']:+.0f}" for system, b in bias.items()))
    if args.json:
        args.json.write_text(json.dumps({"figures": figures, "leave_one_subject_out": loso, "side_bias_ms": bias,
                                         "fair": fair, "settings": DEFAULT_SETTINGS}, indent=1))
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
