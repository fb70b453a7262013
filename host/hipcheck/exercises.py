"""Coaching exercises: the single-leg hold the user starts, bridge and clamshell repetitions, posture.

- :class:`GuidedHold`: the single-leg hold started by the user (key, or a double tap on the sensor:
  :class:`DoubleTap`), countdown, timer, live cheats and a score (below).
- :class:`RepCounter`: bridge and clamshell repetitions from the angles of the segment the sensor is worn on
  (start, end, up and down durations, range, the bridge's side drop and the clamshell's roll-back as flags).
- :class:`PostureMonitor`: a gentle alert when sitting or standing slumped back or tipped forward for too long.

Each is a numba kernel over (settings, state, inputs, outputs) with a small class holding them; blocks of any
size give the same results. Methods and measured limits: docs/detectors.md.

A **user-started hold** (:class:`GuidedHold`) knows when the foot leaves the ground, which the automatic finder of
:mod:`hipcheck.hold` must guess from sway-sized steps: the user presses the key (or taps the sensor twice), a
countdown of ``countdown_s`` runs, and at its "go" the user lifts a foot. The lift-off is a lateral weight shift
whose middle lies within ``lift_before_s`` before to ``lift_after_s`` after the go, so a sway step of two-leg stance
can no longer start a hold: the hold analyser's short step fit and a fit of one step over the whole window (a few
seconds either side, where the shift stays and the one-leg sway swings back) must agree on its side, or the earlier
of the two is taken (``HoldAnalyzer.expect_lift``); it also gives the stance side. The two-leg baseline is the stance
before the lift-off (up to the hold analyser's ``baseline_s``: the time before the key and the countdown). The timer then runs until the foot comes down (the analyser's lowering test) or
``target_s`` (60 s by default), whichever comes first.

While the hold runs, **cheats** are decided per sample, each switched on after ``on_s`` beyond its threshold and
off after ``off_s`` back within it less a hysteresis (:data:`CHEAT_DTYPE` records, one per switch; each "on" is a
vibration for the live layer):

- ``sink``: the free side sinks below the two-leg baseline by ``sink_deg`` (obliquity smoothed over
  ``smooth_s``; the contralateral pelvic drop of a weak stance-side gluteus medius, the Trendelenburg sign:
  Trendelenburg 1895, "Ueber den Gang bei angeborener Hüftgelenksluxation", Dtsch Med Wochenschr 21:21–24);
- ``hike``: the free side hikes above it by ``hike_deg`` (the trunk leaning over the stance leg to unload the
  abductors, a compensation of the same weakness);
- ``sway``: the RMS of the horizontal acceleration (low-passed at 3.5 Hz as in Mancini et al. 2012, J NeuroEng
  Rehabil 9:59) over the last ``sway_window_s`` above ``sway_rms_m_s2``;
- ``tilt``: the tilt moved by ``tilt_drift_deg`` from its mean over the first ``drift_window_s`` of the hold.

The **score** is the share of the target time held clean: 100 · min(target, held − time with a cheat on) /
target, with the clean seconds beside it.

Latency: the hold is recognised once the long fit's window has passed, ``lift_after_s`` + the hold analyser's
``guided_after_s`` (4.5 s) after the go, and its first samples are judged then (the timer counts from the lift-off);
after that each sample is judged in the block it arrives in.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from hipcheck.errors import InvalidValueError
from hipcheck.gait import LEFT
from hipcheck.hold import HOLD_DTYPE, HoldAnalyzer
from hipcheck.rotation import angles_from_quat, quat_conjugate, quat_multiply
from hipcheck.settings import merged_settings

__all__ = ["CHEAT_DTYPE", "CHEAT_NAMES", "GUIDED_HOLD_DTYPE", "DEFAULT_SETTINGS", "GuidedHold",
           "analyze_guided_holds", "REP_DTYPE", "FLAG_NAMES", "RepCounter", "count_reps", "segment_angles_deg",
           "POSTURE_DTYPE", "POSTURE_NAMES", "PostureMonitor", "DoubleTap"]

SINK, HIKE, SWAY, TILT = 0, 1, 2, 3
CHEAT_NAMES = ("sink", "hike", "sway", "tilt")

CHEAT_DTYPE = np.dtype([
    ("sample", np.int64),  # the sample at which the cheat switched
    ("decided_sample", np.int64),  # the last sample seen when it was decided (≥ sample: the hold's start-up)
    ("kind", np.int8),  # SINK, HIKE, SWAY, TILT
    ("on", np.bool_),  # True: began (vibrate), False: ended
    ("value", np.float64),  # sink, hike: deg past level the cheat's way; tilt: deg, + = anterior; sway: m/s²
])

GUIDED_HOLD_DTYPE = np.dtype(HOLD_DTYPE.descr + [
    ("key_sample", np.int64),  # the user's start
    ("go_sample", np.int64),  # end of the countdown
    ("target_s", np.float64),
    ("clean_s", np.float64),  # hold time without a cheat on
    ("score_pct", np.float64),  # 100 · min(target, clean) / target
    ("sink_count", np.int32),
    ("hike_count", np.int32),
    ("sway_count", np.int32),
    ("tilt_count", np.int32),
])

DEFAULT_SETTINGS = dict(
    countdown_s=3.0,  # key to "go"
    target_s=60.0,  # the timer: the hold is scored and closed here
    lift_before_s=1.5,  # the lift-off shift may be centred this long before the go (an early start) ...
    lift_after_s=2.5,  # ... or this long after it (reaction time)
    sink_deg=4.0,  # free side below the two-leg baseline
    hike_deg=4.0,  # free side above it
    tilt_drift_deg=5.0,  # tilt away from its start of the hold
    sway_rms_m_s2=1.0,  # horizontal acceleration RMS over sway_window_s (a clean hold of 0.8 cm RMS sway: ~0.65)
    sway_window_s=2.0,
    smooth_s=0.1,  # time constant of the obliquity and tilt smoothing
    drift_window_s=1.0,  # tilt reference: its mean over this at the start of the hold
    on_s=0.15,  # beyond the threshold this long: the cheat begins
    off_s=0.5,  # back within it (less the hysteresis) this long: it ends
    hysteresis=0.25,  # fraction of the threshold
)

SETTINGS_DTYPE = np.dtype([("fs_hz", np.float64), ("settle_s", np.float64)]
                          + [(name, np.float64) for name in DEFAULT_SETTINGS])

STATE_DTYPE = np.dtype([
    ("next", np.int64),  # the next sample to judge
    ("n", np.int64),  # samples judged in this hold
    ("obl", np.float64),  # smoothed obliquity minus baseline, signed for the free side (+ = sank)
    ("tilt", np.float64),  # smoothed tilt
    ("tilt_sum", np.float64),
    ("tilt_n", np.int64),
    ("tilt_ref", np.float64),  # NaN until the first drift window is complete
    ("sway_energy", np.float64),  # mean square of the horizontal acceleration over sway_window_s
    ("on", np.int8, (4,)),  # 1: the cheat is on
    ("count", np.int64, (4,)),  # consecutive samples toward switching
])

# Idle, counting down, waiting for the lift-off, holding.
IDLE, COUNTDOWN, LIFT, HOLDING = 0, 1, 2, 3
PHASE_NAMES = ("idle", "countdown", "lift", "holding")


@numba.njit(cache=True)
def _switch(settings, st, kind, beyond, within, sample, decided, value, out, n_out):
    """Debounce one cheat: ``beyond`` its threshold for on_s switches it on, ``within`` (threshold less the
    hysteresis) for off_s switches it off. Returns the new count of records in out."""
    fs = settings["fs_hz"]
    need = int(round((settings["off_s"] if st["on"][kind] else settings["on_s"]) * fs))
    moving = within if st["on"][kind] else beyond
    st["count"][kind] = st["count"][kind] + 1 if moving else 0
    if st["count"][kind] >= max(need, 1):
        st["on"][kind] = 1 - st["on"][kind]
        st["count"][kind] = 0
        rec = out[n_out]
        rec["sample"] = sample
        rec["decided_sample"] = decided
        rec["kind"] = kind
        rec["on"] = st["on"][kind] == 1
        rec["value"] = value
        n_out += 1
    return n_out


@numba.njit(cache=True)
def cheat_update(settings_array, state_array, first_sample, recent, toward_free, baseline_obl, decided, out):
    """Judge the samples first_sample … of ``recent`` (rows of HoldAnalyzer.recent: obliquity, tilt, ax, ay,
    excluded); toward_free = +1 on the left leg, −1 on the right (obliquity + = left side higher, so on the left leg
    the free right side sinks as it grows), baseline_obl the two-leg obliquity. Writes cheat switches
    (CHEAT_DTYPE) and returns how many."""
    settings = settings_array[0]
    st = state_array[0]
    fs = settings["fs_hz"]
    gain = 1.0 - math.exp(-1.0 / (settings["smooth_s"] * fs))
    sway_gain = 1.0 / (settings["sway_window_s"] * fs)
    drift_n = int(round(settings["drift_window_s"] * fs))
    h = 1.0 - settings["hysteresis"]
    n_out = 0
    for i in range(recent.shape[0]):
        sample = first_sample + i
        st["next"] = sample + 1
        if recent[i, 4] != 0.0 or not math.isfinite(recent[i, 0]) or not math.isfinite(recent[i, 1]):
            continue  # a touchdown or a gap: nothing is judged, every cheat keeps its state
        drop = toward_free * (recent[i, 0] - baseline_obl)
        e = recent[i, 2] * recent[i, 2] + recent[i, 3] * recent[i, 3]
        if st["n"] == 0:
            st["obl"] = drop
            st["tilt"] = recent[i, 1]
            st["sway_energy"] = e
        else:
            st["obl"] += gain * (drop - st["obl"])
            st["tilt"] += gain * (recent[i, 1] - st["tilt"])
            st["sway_energy"] += max(sway_gain, 1.0 / (st["n"] + 1)) * (e - st["sway_energy"])
        st["n"] += 1
        if st["tilt_n"] < drift_n:
            st["tilt_sum"] += recent[i, 1]
            st["tilt_n"] += 1
            if st["tilt_n"] == drift_n:
                st["tilt_ref"] = st["tilt_sum"] / drift_n
        obl = st["obl"]
        n_out = _switch(settings, st, SINK, obl >= settings["sink_deg"], obl < h * settings["sink_deg"],
                        sample, decided, obl, out, n_out)
        n_out = _switch(settings, st, HIKE, -obl >= settings["hike_deg"], -obl < h * settings["hike_deg"],
                        sample, decided, -obl, out, n_out)
        if st["n"] >= int(round(settings["sway_window_s"] * fs)):
            rms = math.sqrt(st["sway_energy"])
            n_out = _switch(settings, st, SWAY, rms >= settings["sway_rms_m_s2"], rms < h * settings["sway_rms_m_s2"],
                            sample, decided, rms, out, n_out)
        if math.isfinite(st["tilt_ref"]):
            d = st["tilt"] - st["tilt_ref"]
            n_out = _switch(settings, st, TILT, abs(d) >= settings["tilt_drift_deg"],
                            abs(d) < h * settings["tilt_drift_deg"], sample, decided, d, out, n_out)
    return n_out


class GuidedHold:
    """Single-leg holds started by the user, from live blocks of ``angles_pelvis_deg`` and ``acc_level_m_s2`` (the
    inputs of :class:`hipcheck.hold.HoldAnalyzer`).

    ``start(key_sample)`` when the user presses the key or taps the sensor twice (any sample number, past or
    future, at least the countdown before the lift); ``update(angles, acc)`` returns ``(cheats, holds)``: the cheat
    switches decided in this block (CHEAT_DTYPE) and the holds finished in it (GUIDED_HOLD_DTYPE).
    Live state: ``phase`` ('idle', 'countdown', 'lift', 'holding'), ``countdown_left_s``, ``hold_time_s``,
    ``cheats_on`` (names), ``missed`` (key samples whose lift-off never came).
    settings: overrides of DEFAULT_SETTINGS; hold_settings: overrides of the hold analyser's (its max_hold_s is
    the target). taps: start on a double tap on the sensor too (:class:`DoubleTap` on ``acc_level_m_s2``; its
    second tap is the key), with these DoubleTap settings ({} for the defaults; None: no taps).
    """

    def __init__(self, fs_hz: float, settings: dict | None = None, hold_settings: dict | None = None,
                 taps: dict | None = None):
        values = merged_settings("guided hold", DEFAULT_SETTINGS, settings or {}, fs_hz)
        if not 0 < values["target_s"] <= 600 or values["countdown_s"] < 0:
            raise InvalidValueError(f"target_s={values['target_s']:g} must lie in (0, 600] s and countdown_s="
                                    f"{values['countdown_s']:g} must not be negative")
        self.fs_hz = float(fs_hz)
        self.analyzer = HoldAnalyzer(fs_hz, {**(hold_settings or {}), "max_hold_s": values["target_s"]})
        self.settings = np.zeros(1, dtype=SETTINGS_DTYPE)
        for name, value in values.items():
            self.settings[name] = value
        self.settings["fs_hz"] = fs_hz
        self.settings["settle_s"] = self.analyzer.settings["settle_s"][0]
        self._settle = int(round(self.settings["settle_s"][0] * fs_hz))
        self.missed: list[int] = []
        self._key = -1
        self._go = -1
        self._holding = False
        self._cheats: list[np.ndarray] = []
        self._state = np.zeros(1, dtype=STATE_DTYPE)
        self.taps = None if taps is None else DoubleTap(fs_hz, taps)

    def _n(self, name: str) -> int:
        return int(round(self.settings[name][0] * self.fs_hz))

    def start(self, key_sample: int) -> bool:
        """The user's start at key_sample; False (ignored) while a hold is counting down, waiting or running."""
        if self._key >= 0:
            return False
        self._key = int(key_sample)
        self._go = self._key + self._n("countdown_s")
        self.analyzer.expect_lift(self._go - self._n("lift_before_s"), self._go + self._n("lift_after_s"))
        return True

    @property
    def next_sample(self) -> int:
        return int(self.analyzer.state["next_sample"][0])

    @property
    def phase(self) -> str:
        if self._key < 0:
            return PHASE_NAMES[IDLE]
        if self._holding:
            return PHASE_NAMES[HOLDING]
        return PHASE_NAMES[COUNTDOWN] if self.next_sample < self._go else PHASE_NAMES[LIFT]

    @property
    def countdown_left_s(self) -> float:
        return max(0.0, (self._go - self.next_sample) / self.fs_hz) if self._key >= 0 else 0.0

    @property
    def hold_time_s(self) -> float:
        return self.analyzer.hold_time_s if self._holding else 0.0

    @property
    def cheats_on(self) -> list[str]:
        return [CHEAT_NAMES[k] for k in range(4) if self._holding and self._state["on"][0][k]]

    def update(self, angles_pelvis_deg: np.ndarray, acc_level_m_s2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.taps is None:
            return self._update(angles_pelvis_deg, acc_level_m_s2)
        # A double tap starts the hold at the sample it is decided: the block is cut there, whatever its size.
        first = self.next_sample
        cheats, holds, at = [], [], 0
        for tap, decided in self.taps.update(acc_level_m_s2):
            cut = int(decided) - first + 1
            c, h = self._update(angles_pelvis_deg[at:cut], acc_level_m_s2[at:cut])
            cheats.append(c)
            holds.append(h)
            self.start(int(tap))
            at = cut
        c, h = self._update(angles_pelvis_deg[at:], acc_level_m_s2[at:])
        return np.concatenate(cheats + [c]), np.concatenate(holds + [h])

    def _update(self, angles_pelvis_deg: np.ndarray, acc_level_m_s2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        first = self.next_sample
        ended = self.analyzer.update(angles_pelvis_deg, acc_level_m_s2)
        return self._after(first, ended)

    def flush(self) -> tuple[np.ndarray, np.ndarray]:
        """End of the stream: a hold still running is finished where the stream ends (or at its lowering)."""
        first = self.next_sample
        return self._after(first, self.analyzer.flush())

    def _after(self, first: int, ended: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cheats over the samples the block made available; the hold finished in it, if any."""
        cheats = np.zeros(0, dtype=CHEAT_DTYPE)
        holds = np.zeros(0, dtype=GUIDED_HOLD_DTYPE)
        if self._key < 0:
            return cheats, holds
        decided_at = self.analyzer.start_decided_at
        if not self._holding and decided_at >= 0:
            self._holding = True
            self._state = np.zeros(1, dtype=STATE_DTYPE)
            self._state["tilt_ref"] = np.nan
            self._state["next"] = self.analyzer.reference["start_sample"] + self._settle
            self._cheats = []
        if self._holding:
            hi = self.next_sample
            if len(ended):  # judged up to where the end was decided, live or not: the same whatever the blocks
                hi = min(hi, self._end_decided(ended[0]) + 1)
            cheats = self._judge(hi, max(decided_at, 0))
            self._cheats.append(cheats)
        if len(ended) and self._holding:
            holds = self._finish(ended[0])
        elif self.analyzer.missed_lift:
            self.missed.append(self._key)
            self._key = -1
        return cheats, holds

    def _end_decided(self, hold: np.void) -> int:
        """The sample at which the hold analyser decided this end: the cap itself, the lowering confirm_s later
        (the stream's end for a hold flushed there)."""
        end = int(hold["end_sample"])
        if hold["capped"]:
            return end
        if hold["ended_by_stream_end"]:
            return self.next_sample - 1
        return end + int(round(self.analyzer.settings["confirm_s"][0] * self.fs_hz))

    def _judge(self, hi: int, decided_at: int) -> np.ndarray:
        lo = int(self._state["next"][0])
        if hi <= lo:
            return np.zeros(0, dtype=CHEAT_DTYPE)
        ref = self.analyzer.reference
        recent = self.analyzer.recent(lo, hi)
        out = np.zeros(4 * len(recent) // max(1, self._n("on_s")) + 8, dtype=CHEAT_DTYPE)
        toward_free = 1.0 if ref["side"] == LEFT else -1.0
        n = cheat_update(self.settings, self._state, lo, recent, toward_free, ref["baseline_obliquity_deg"],
                         decided_at, out)
        out = out[:n].copy()
        out["decided_sample"] = np.maximum(out["sample"], decided_at)
        return out

    def _finish(self, hold: np.void) -> np.ndarray:
        """The finished hold with its cheat counts, clean time and score."""
        rec = np.zeros(1, dtype=GUIDED_HOLD_DTYPE)
        for name in HOLD_DTYPE.names:
            rec[name] = hold[name]
        switches = np.concatenate(self._cheats) if self._cheats else np.zeros(0, dtype=CHEAT_DTYPE)
        start, end = int(hold["start_sample"]), int(hold["end_sample"])
        lo, hi = start + self._settle, max(start + self._settle, end - self._settle)
        cheating = np.zeros(max(0, end - start), dtype=bool)  # per sample of the hold
        for kind in range(4):
            on_at = -1
            mine = switches[switches["kind"] == kind]
            for s in mine:
                if s["on"] and s["sample"] < hi:
                    on_at = int(s["sample"])
                    rec[f"{CHEAT_NAMES[kind]}_count"] += 1
                elif not s["on"] and on_at >= 0:
                    cheating[max(on_at, lo) - start:min(int(s["sample"]), hi) - start] = True
                    on_at = -1
            if on_at >= 0:
                cheating[max(on_at, lo) - start:hi - start] = True
        target_s = float(self.settings["target_s"][0])
        clean_s = (end - start - int(cheating.sum())) / self.fs_hz
        rec["key_sample"] = self._key
        rec["go_sample"] = self._go
        rec["target_s"] = target_s
        rec["clean_s"] = clean_s
        rec["score_pct"] = 100.0 * min(target_s, clean_s) / target_s
        self._holding = False
        self._key = -1
        return rec


def analyze_guided_holds(angles_pelvis_deg: np.ndarray, acc_level_m_s2: np.ndarray, fs_hz: float,
                         key_samples, settings: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Whole-array form of :class:`GuidedHold`: the user's starts at ``key_samples`` (in time order); returns every
    cheat switch (CHEAT_DTYPE) and every finished hold (GUIDED_HOLD_DTYPE). A start during a hold is ignored."""
    guided = GuidedHold(fs_hz, settings)
    keys = sorted(int(k) for k in key_samples)
    n = len(angles_pelvis_deg)
    cheats, holds = [], []
    at = 0
    for k in keys + [n]:
        stop = min(max(k, at), n)
        c, h = guided.update(angles_pelvis_deg[at:stop], acc_level_m_s2[at:stop])
        cheats.append(c)
        holds.append(h)
        at = stop
        if k < n:
            guided.start(k)
    c, h = guided.flush()
    return (np.concatenate(cheats + [c]), np.concatenate(holds + [h]))


# ------------------------------------------------------------------------------------------------ repetitions

BRIDGE, CLAMSHELL = 0, 1
REP_MODES = {"bridge": BRIDGE, "clamshell": CLAMSHELL}
# Flags of a rep.
FLAG_NONE, FLAG_LEFT_DROP, FLAG_RIGHT_DROP, FLAG_ROLL_BACK = 0, 1, 2, 3
FLAG_NAMES = ("none", "left side dropped", "right side dropped", "pelvis rolled back")

REP_DTYPE = np.dtype([
    ("start_sample", np.int64),  # the movement up begins
    ("top_start_sample", np.int64),  # the top is reached
    ("top_end_sample", np.int64),  # the movement down begins
    ("end_sample", np.int64),  # back at rest
    ("up_s", np.float64),
    ("top_s", np.float64),
    ("down_s", np.float64),
    ("range_deg", np.float64),  # the rep's angle at the top against rest (mean over the top)
    ("level_deg", np.float64),  # bridge: obliquity at the top against rest, + = left side higher
    ("flag", np.int8),  # FLAG_*
])

REP_DEFAULTS = dict(
    min_range_deg=8.0,  # a smaller excursion is not a rep
    rest_tau_s=2.0,  # the rest angle follows slow changes while at rest
    side_drop_deg=3.0,  # bridge: one side this much lower at the top is flagged
    roll_back_deg=10.0,  # clamshell worn on the pelvis: a roll this large is the pelvis rolling back
    worn_on_pelvis=0.0,  # clamshell: 1 when the sensor is on the pelvis instead of the thigh
)

REP_SETTINGS_DTYPE = np.dtype([("fs_hz", np.float64), ("mode", np.float64)]
                              + [(name, np.float64) for name in REP_DEFAULTS])
REP_STATE_DTYPE = np.dtype([
    ("next", np.int64),
    ("rest", np.float64),
    ("rest_level", np.float64),
    ("active", np.int8),  # 0 rest, 1 in a rep
    ("first", np.int64),  # first sample of this stretch at rest or in a rep (the search bound)
    ("peak", np.float64),
    ("peak_sample", np.int64),
])
_REP_BUFFER_S = 60.0  # longest rep
_REP_BASE_S = 0.3  # the rep's own rest level: the mean over this long before its start
# A minimum-jerk movement (Flash and Hogan 1985, "The coordination of arm movements: an experimentally confirmed
# mathematical model", J Neurosci 5:1688–1703; the quintic 10u³ − 15u⁴ + 6u⁵) passes 20 % of its way at
# u = 0.32660 and 80 % at 0.67340: its whole duration is the 20–80 % time over 0.34681. The ends, where the
# movement is slow and the segment's own wobble decides, are not measured directly; the 20–80 % times are where it
# is fastest, so a wobble of the angle moves them least.
_MJ_10 = 0.24664
_MJ_20 = 0.32660
_MJ_SPAN = 1.0 - 2.0 * _MJ_20


@numba.njit(cache=True)
def _crossing(ring, lo, hi, level, step):
    """The first sample from lo toward hi (step ±1, hi excluded) whose value is ≤ level (step −1: searching back)
    or ≥ level (step +1); hi if none."""
    n = ring.shape[0]
    s = lo
    while s != hi:
        v = ring[s % n, 0]
        if (step < 0 and v <= level) or (step > 0 and v >= level):
            return s
        s += step
    return hi


@numba.njit(cache=True)
def _interpolated(ring, s, level, sign, base):
    """Where (fractional sample) the rep's signed angle, sign · column 2 − base, crosses level between samples s
    and s + 1 (linear interpolation); s itself if it does not."""
    n = ring.shape[0]
    v0 = sign * ring[s % n, 2] - base
    v1 = sign * ring[(s + 1) % n, 2] - base
    if v1 == v0 or (v0 - level) * (v1 - level) > 0.0:
        return float(s)
    return s + (level - v0) / (v1 - v0)


@numba.njit(cache=True)
def _own_crossing(ring, lo, hi, level, sign, base, rising):
    """The last crossing of ``level`` before hi (searching back from hi to lo) by the rep's signed angle against its
    own base: rising, the last sample below level followed by one at or above it; falling, the reverse. Fractional
    sample; NaN if none."""
    n = ring.shape[0]
    s = hi - 1
    while s >= lo:
        v0 = sign * ring[s % n, 2] - base
        v1 = sign * ring[(s + 1) % n, 2] - base
        if (rising and v0 < level <= v1) or (not rising and v0 > level >= v1):
            return _interpolated(ring, s, level, sign, base)
        s -= 1
    return math.nan


@numba.njit(cache=True)
def _close_rep(settings, st, ring, now, out, n_out):
    """The rep whose value just came back to 10 % of its peak at ``now``. Its top: the mean between the 90 %
    crossings (found from the peak, then again from that mean, which noise leaves below the peak). Its own rest:
    the mean over ``_REP_BASE_S`` before it began (the slow drift of the rest follows only while still, and the
    segment's wobble moves it). Up and down times from the 20 % and 80 % crossings of the way from that rest to the
    top, interpolated between samples, extended to a minimum-jerk movement's whole duration."""
    fs = settings["fs_hz"]
    n = ring.shape[0]
    top = st["peak"]
    for _ in range(2):
        t10_up = _crossing(ring, st["peak_sample"], st["first"] - 1, 0.1 * top, -1)
        t90_up = _crossing(ring, t10_up, st["peak_sample"] + 1, 0.9 * top, 1)
        t90_down = now  # back from the end: the last sample at 90 % or more
        while t90_down > st["peak_sample"] and ring[t90_down % n, 0] < 0.9 * top:
            t90_down -= 1
        t10_down = t90_down  # forward: the first sample back at 10 % or less
        while t10_down < now and ring[t10_down % n, 0] > 0.1 * top:
            t10_down += 1
        total = 0.0
        level = 0.0
        signed = 0.0
        for k in range(t90_up, t90_down + 1):
            total += ring[k % n, 0]
            level += ring[k % n, 1]
            signed += ring[k % n, 2]
        count = t90_down - t90_up + 1
        top = total / count
    sign = 1.0 if signed >= 0.0 else -1.0
    # The plateau: the 90 % crossings extended as a minimum-jerk movement's (its 90 % point is _MJ_10 of the way
    # from the top's start in time), so the flanks do not lower the top's level.
    span = 1.0 - 2.0 * _MJ_10
    plateau_lo = t90_up + int(round(_MJ_10 / span * (t90_up - t10_up)))
    plateau_hi = t90_down - int(round(_MJ_10 / span * (t10_down - t90_down)))
    if plateau_hi < plateau_lo:
        plateau_lo = plateau_hi = st["peak_sample"]
    signed = 0.0
    for k in range(plateau_lo, plateau_hi + 1):
        signed += ring[k % n, 2]
    signed /= plateau_hi - plateau_lo + 1
    # The rep's own rest: before its start (estimated from the 10 % crossing), after the previous rep.
    base_hi = max(st["first"] + 1, t10_up - int(round(_MJ_10 / span * (t90_up - t10_up))))
    base_lo = max(st["first"], base_hi - int(round(_REP_BASE_S * fs)))
    base = 0.0
    for k in range(base_lo, base_hi):
        base += sign * ring[k % n, 2]
    base /= max(1, base_hi - base_lo)
    rise = sign * signed - base
    up20 = _own_crossing(ring, st["first"], t90_up, 0.2 * rise, sign, base, True)
    up80 = _own_crossing(ring, st["first"], t90_up, 0.8 * rise, sign, base, True)
    down80 = _own_crossing(ring, t90_down, now, 0.8 * rise, sign, base, False)
    down20 = _own_crossing(ring, t90_down, now, 0.2 * rise, sign, base, False)
    if not (math.isfinite(up20) and math.isfinite(up80) and math.isfinite(down80) and math.isfinite(down20)):
        up20, up80, down80, down20 = float(t10_up), float(t90_up), float(t90_down), float(t10_down)
    up = (up80 - up20) / _MJ_SPAN
    down = (down20 - down80) / _MJ_SPAN
    rec = out[n_out]
    rec["start_sample"] = int(round(up20 - _MJ_20 * up))
    rec["top_start_sample"] = int(round(up80 + _MJ_20 * up))
    rec["top_end_sample"] = int(round(down80 - _MJ_20 * down))
    rec["end_sample"] = int(round(down20 + _MJ_20 * down))
    rec["up_s"] = up / fs
    rec["down_s"] = down / fs
    rec["top_s"] = max(0.0, (rec["top_end_sample"] - rec["top_start_sample"]) / fs)
    rec["range_deg"] = top
    rec["level_deg"] = level / count
    rec["flag"] = FLAG_NONE
    if settings["mode"] == BRIDGE and abs(rec["level_deg"]) >= settings["side_drop_deg"]:
        rec["flag"] = FLAG_RIGHT_DROP if rec["level_deg"] > 0.0 else FLAG_LEFT_DROP  # + = left side higher
    if settings["mode"] == CLAMSHELL and settings["worn_on_pelvis"] != 0.0 \
            and rec["range_deg"] >= settings["roll_back_deg"]:
        rec["flag"] = FLAG_ROLL_BACK
    return n_out + 1


@numba.njit(cache=True)
def rep_update(settings_array, state_array, ring, angles_deg, out):
    """Repetitions over one block of segment angles (rotation, obliquity, tilt, deg). The rep angle: bridge, the
    turn away from rest (|tilt − rest|: posterior as the pelvis rises); clamshell, the roll (|obliquity − rest|).
    Writes finished reps (REP_DTYPE) into out, returns how many."""
    settings = settings_array[0]
    st = state_array[0]
    fs = settings["fs_hz"]
    n_ring = ring.shape[0]
    rest_gain = 1.0 / (settings["rest_tau_s"] * fs)
    enter = 0.5 * settings["min_range_deg"]
    n_out = np.int64(0)  # typed: _close_rep compiles once
    for i in range(angles_deg.shape[0]):
        sample = st["next"] + i
        a = angles_deg[i, 2] if settings["mode"] == BRIDGE else angles_deg[i, 1]
        obl = angles_deg[i, 1]
        if not (math.isfinite(a) and math.isfinite(obl)):
            for col in range(3):  # hold the last value through a gap
                ring[sample % n_ring, col] = ring[(sample - 1) % n_ring, col]
            continue
        if sample == 0 or not math.isfinite(st["rest"]):
            st["rest"] = a
            st["rest_level"] = obl
        # Away from rest either way: a sensor worn turned about (the clip upside down) reverses the sign.
        x = abs(a - st["rest"])
        ring[sample % n_ring, 0] = x
        ring[sample % n_ring, 1] = obl - st["rest_level"]
        ring[sample % n_ring, 2] = a - st["rest"]
        if st["active"] == 0:
            if x > enter:
                st["active"] = 1
                st["first"] = max(st["first"], sample - n_ring // 4)  # the search back stays within the ring
                st["peak"] = x
                st["peak_sample"] = sample
            elif x < 0.5 * enter:  # still: the rest follows slow drift
                st["rest"] += rest_gain * (a - st["rest"])
                st["rest_level"] += rest_gain * (obl - st["rest_level"])
        else:
            if x > st["peak"]:
                st["peak"] = x
                st["peak_sample"] = sample
            long_rep = sample - st["first"] >= n_ring - 1
            if x <= 0.1 * st["peak"] or long_rep:
                if st["peak"] >= settings["min_range_deg"] and not long_rep:
                    n_out = _close_rep(settings, st, ring, sample, out, n_out)
                st["active"] = 0
                st["first"] = sample
    st["next"] += angles_deg.shape[0]
    return n_out


class RepCounter:
    """Bridge or clamshell repetitions from live blocks of segment angles (``segment_angles_deg``):
    ``update(angles_deg)`` returns the reps finished in the block (REP_DTYPE), ``count`` is the total so far.

    mode: 'bridge' (sensor on the belt at the front, lying on the back: the pelvis turns posteriorly as it rises;
    one side lower at the top by ``side_drop_deg`` is flagged on that side) or 'clamshell' (sensor on the outside
    of the top thigh: the opening is its roll; with ``worn_on_pelvis=1`` the roll is the pelvis's and a rep of
    ``roll_back_deg`` or more is flagged as the pelvis rolling back). A rep is an excursion of at least
    ``min_range_deg`` from rest and back to within 10 % of it; its up and down durations are those of a
    minimum-jerk movement with the same 20–80 % times (Flash and Hogan 1985), taken against the rep's own rest
    (just before it) and top and interpolated between samples, so that the ends, where the movement is slow and
    noise decides, are not measured directly. A rep is reported when it is back at 10 %.
    """

    def __init__(self, fs_hz: float, mode: str, settings: dict | None = None):
        if mode not in REP_MODES:
            raise InvalidValueError(f"mode={mode!r}: the rep counter knows {', '.join(REP_MODES)}")
        values = merged_settings(f"{mode} rep", REP_DEFAULTS, settings or {}, fs_hz)
        self.fs_hz = float(fs_hz)
        self.mode = mode
        self.settings = np.zeros(1, dtype=REP_SETTINGS_DTYPE)
        for name, value in values.items():
            self.settings[name] = value
        self.settings["fs_hz"] = fs_hz
        self.settings["mode"] = REP_MODES[mode]
        self.state = np.zeros(1, dtype=REP_STATE_DTYPE)
        self.state["rest"] = np.nan
        self._ring = np.zeros((int(_REP_BUFFER_S * fs_hz), 3))
        self.count = 0

    def update(self, angles_deg: np.ndarray) -> np.ndarray:
        angles = np.ascontiguousarray(angles_deg, dtype=np.float64)
        if angles.ndim != 2 or angles.shape[1] != 3:
            raise InvalidValueError(f"angles_deg {angles.shape} must be (n, 3)")
        out = np.zeros(2 + len(angles) // max(1, int(0.5 * self.fs_hz)), dtype=REP_DTYPE)
        n = rep_update(self.settings, self.state, self._ring, angles, out)
        self.count += n
        return out[:n].copy()

    @property
    def in_rep(self) -> bool:
        return bool(self.state["active"][0])


def segment_angles_deg(q_sensor_to_earth: np.ndarray, q_sensor_to_segment: np.ndarray) -> np.ndarray:
    """Baker angles (deg) of the segment the sensor is worn on, from the fused orientation and the mounting (a
    mount calibration, or the clip's declared orientation): rotation, obliquity (+ = left side higher), tilt."""
    q_segment = quat_multiply(np.asarray(q_sensor_to_earth, dtype=float),
                              quat_conjugate(np.asarray(q_sensor_to_segment, dtype=float)))
    return np.degrees(angles_from_quat(q_segment))


def count_reps(angles_deg: np.ndarray, fs_hz: float, mode: str, settings: dict | None = None) -> np.ndarray:
    """Whole-array form of :class:`RepCounter`."""
    return RepCounter(fs_hz, mode, settings).update(angles_deg)


# ------------------------------------------------------------------------------------------------ posture

SLUMPED, FORWARD = 0, 1
POSTURE_NAMES = ("slumped back", "tipped forward")
POSTURE_DTYPE = np.dtype([
    ("sample", np.int64),  # when the alert is given
    ("since_sample", np.int64),  # when the posture began
    ("kind", np.int8),  # SLUMPED (posterior tilt: "sitting on the tail") or FORWARD (anterior)
    ("tilt_deg", np.float64),  # smoothed tilt against the neutral at the alert, + = anterior
])
POSTURE_DEFAULTS = dict(
    neutral_tilt_deg=0.0,  # the wearer's neutral tilt (a posture calibration will supply it)
    slumped_deg=10.0,  # this much posterior of neutral is slumped back
    forward_deg=15.0,  # this much anterior of neutral is tipped forward
    after_s=120.0,  # a posture held this long gets the alert
    repeat_s=300.0,  # and again after this long if it stays
    smooth_s=2.0,  # time constant of the tilt smoothing (shifting in the chair is not a posture)
    hysteresis_deg=2.0,  # back within the threshold less this: the posture ended
)
POSTURE_SETTINGS_DTYPE = np.dtype([("fs_hz", np.float64)] + [(name, np.float64) for name in POSTURE_DEFAULTS])
POSTURE_STATE_DTYPE = np.dtype([
    ("next", np.int64),
    ("n", np.int64),
    ("tilt", np.float64),  # smoothed, against neutral
    ("kind", np.int8),  # -1: upright, else the posture under way
    ("since", np.int64),
    ("last_alert", np.int64),
])


@numba.njit(cache=True)
def posture_update(settings_array, state_array, tilt_deg, out):
    """Posture alerts over one block of pelvic tilt (deg, + = anterior); returns how many were written."""
    settings = settings_array[0]
    st = state_array[0]
    fs = settings["fs_hz"]
    gain = 1.0 - math.exp(-1.0 / (settings["smooth_s"] * fs))
    after = int(round(settings["after_s"] * fs))
    repeat = int(round(settings["repeat_s"] * fs))
    n_out = 0
    for i in range(tilt_deg.shape[0]):
        sample = st["next"] + i
        if not math.isfinite(tilt_deg[i]):
            continue
        x = tilt_deg[i] - settings["neutral_tilt_deg"]
        st["tilt"] = x if st["n"] == 0 else st["tilt"] + gain * (x - st["tilt"])
        st["n"] += 1
        kind = -1
        if st["tilt"] <= -settings["slumped_deg"]:
            kind = SLUMPED
        elif st["tilt"] >= settings["forward_deg"]:
            kind = FORWARD
        if st["kind"] >= 0:
            limit = settings["slumped_deg"] if st["kind"] == SLUMPED else settings["forward_deg"]
            sign = -1.0 if st["kind"] == SLUMPED else 1.0
            if sign * st["tilt"] < limit - settings["hysteresis_deg"]:
                st["kind"] = -1
        if st["kind"] < 0 and kind >= 0:
            st["kind"] = kind
            st["since"] = sample
            st["last_alert"] = -1
        if st["kind"] >= 0 and sample - st["since"] >= after and \
                (st["last_alert"] < 0 or sample - st["last_alert"] >= repeat):
            rec = out[n_out]
            rec["sample"] = sample
            rec["since_sample"] = st["since"]
            rec["kind"] = st["kind"]
            rec["tilt_deg"] = st["tilt"]
            st["last_alert"] = sample
            n_out += 1
    st["next"] += tilt_deg.shape[0]
    return n_out


class PostureMonitor:
    """Sitting or standing posture against the neutral tilt: ``update(angles_pelvis_deg)`` returns the gentle
    alerts of the block (POSTURE_DTYPE) — a posture slumped back (posterior tilt, "sitting on the tail") or tipped
    forward, held for ``after_s``, alerted once and again every ``repeat_s`` while it lasts. The tilt is smoothed
    over ``smooth_s`` so that shifting in the chair is not a posture. ``posture`` is the one under way (None:
    near neutral)."""

    def __init__(self, fs_hz: float, settings: dict | None = None):
        values = merged_settings("posture", POSTURE_DEFAULTS, settings or {}, fs_hz)
        self.fs_hz = float(fs_hz)
        self.settings = np.zeros(1, dtype=POSTURE_SETTINGS_DTYPE)
        for name, value in values.items():
            self.settings[name] = value
        self.settings["fs_hz"] = fs_hz
        self.state = np.zeros(1, dtype=POSTURE_STATE_DTYPE)
        self.state["kind"] = -1

    def update(self, angles_pelvis_deg: np.ndarray) -> np.ndarray:
        tilt = np.ascontiguousarray(np.asarray(angles_pelvis_deg, dtype=np.float64)[:, 2])
        after = max(1, int(min(self.settings["after_s"][0], self.settings["repeat_s"][0]) * self.fs_hz))
        out = np.zeros(2 + len(tilt) // after, dtype=POSTURE_DTYPE)
        n = posture_update(self.settings, self.state, tilt, out)
        return out[:n].copy()

    @property
    def posture(self) -> str | None:
        kind = int(self.state["kind"][0])
        return None if kind < 0 else POSTURE_NAMES[kind]


# ------------------------------------------------------------------------------------------------ double tap

TAP_DEFAULTS = dict(
    tap_m_s2=6.0,  # a tap: the acceleration off its 0.2 s mean by more than this ...
    max_tap_s=0.08,  # ... for no longer than this (a step or a bump lasts longer)
    min_gap_s=0.12,  # the second tap's onset after the first's: at least ...
    max_gap_s=0.4,  # ... and at most (steps, even quick ones, come farther apart)
    quiet_s=0.8,  # nothing above the threshold this long before the first and after the second (steps come sooner)
)
TAP_SETTINGS_DTYPE = np.dtype([("fs_hz", np.float64)] + [(name, np.float64) for name in TAP_DEFAULTS])
TAP_STATE_DTYPE = np.dtype([
    ("next", np.int64),
    ("n", np.int64),
    ("mean", np.float64, (3,)),
    ("in_run", np.int8),
    ("run_start", np.int64),
    ("last_above", np.int64),
    ("before_run", np.int64),  # the last above-threshold sample before the current run
    ("tap1", np.int64),
    ("tap2", np.int64),
])


@numba.njit(cache=True)
def tap_update(settings_array, state_array, acc, out):
    """Double taps over one block of acceleration (m/s², any frame); writes for each double tap the sample of its
    second tap and the sample at which it was decided (quiet_s after the last transient) into out[k, 0:2] and
    returns how many."""
    settings = settings_array[0]
    st = state_array[0]
    fs = settings["fs_hz"]
    gain = 1.0 - math.exp(-1.0 / (0.2 * fs))
    gap = max(1, int(round(0.03 * fs)))  # a tap's own ringing may dip below the threshold this long
    quiet = int(round(settings["quiet_s"] * fs))
    n_out = 0
    for i in range(acc.shape[0]):
        sample = st["next"] + i
        if not (math.isfinite(acc[i, 0]) and math.isfinite(acc[i, 1]) and math.isfinite(acc[i, 2])):
            continue
        e = 0.0
        for k in range(3):
            if st["n"] == 0:
                st["mean"][k] = acc[i, k]
            d = acc[i, k] - st["mean"][k]
            e += d * d
            st["mean"][k] += gain * (acc[i, k] - st["mean"][k])
        st["n"] += 1
        if math.sqrt(e) > settings["tap_m_s2"]:
            if not st["in_run"]:
                st["in_run"] = 1
                st["before_run"] = st["last_above"]
                st["run_start"] = sample
            st["last_above"] = sample
        elif st["in_run"] and sample - st["last_above"] > gap:
            st["in_run"] = 0
            onset = st["run_start"]
            if st["last_above"] - onset > int(round(settings["max_tap_s"] * fs)):
                st["tap1"] = -1  # a longer burst: movement, not a tap
                st["tap2"] = -1
            elif st["tap1"] >= 0 and st["tap2"] < 0 \
                    and settings["min_gap_s"] * fs <= onset - st["tap1"] <= settings["max_gap_s"] * fs:
                st["tap2"] = onset
            else:
                st["tap1"] = onset if onset - st["before_run"] >= quiet else -1
                st["tap2"] = -1
        if st["tap2"] >= 0 and not st["in_run"] and sample - st["last_above"] >= quiet:
            out[n_out, 0] = st["tap2"]
            out[n_out, 1] = sample
            n_out += 1
            st["tap1"] = -1
            st["tap2"] = -1
    st["next"] += acc.shape[0]
    return n_out


class DoubleTap:
    """Double taps on the sensor (the user's start of a hold): two sharp transients of the acceleration
    (``tap_m_s2`` off its 0.2 s mean, each shorter than ``max_tap_s``) ``min_gap_s``–``max_gap_s`` apart, alone
    within ``quiet_s`` either side (steps and bumps are longer, a walk's are not alone). ``update(acc)`` returns
    (n, 2): per double tap the sample of its second tap and the sample at which it was decided (``quiet_s``
    later)."""

    def __init__(self, fs_hz: float, settings: dict | None = None):
        values = merged_settings("double tap", TAP_DEFAULTS, settings or {}, fs_hz)
        self.fs_hz = float(fs_hz)
        self.settings = np.zeros(1, dtype=TAP_SETTINGS_DTYPE)
        for name, value in values.items():
            self.settings[name] = value
        self.settings["fs_hz"] = fs_hz
        self.state = np.zeros(1, dtype=TAP_STATE_DTYPE)
        self.state["tap1"] = self.state["tap2"] = -1
        self.state["last_above"] = self.state["before_run"] = -(1 << 40)

    def update(self, acc_m_s2: np.ndarray) -> np.ndarray:
        acc = np.ascontiguousarray(acc_m_s2, dtype=np.float64)
        out = np.zeros((2 + len(acc) // max(1, int(self.settings["quiet_s"][0] * self.fs_hz)), 2), dtype=np.int64)
        n = tap_update(self.settings, self.state, acc, out)
        return out[:n].copy()
