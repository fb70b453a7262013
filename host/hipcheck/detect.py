"""Streaming detectors for pelvic drop, hip sway and pelvic tilt, with hysteresis and a refractory time.

What fires when (docs/detectors.md has the table and the sources):

- ``DROP``, per sample, for the vibration alert: the obliquity, smoothed over ``drop_smooth_s``, says which side of
  the pelvis is low; the stance side is the other one (obliquity − = left side low = right stance). A decision is
  made on the sample where that drop crosses the stance side's threshold upwards, if the side is armed and its last
  decision is at least ``refractory_s`` old; the side re-arms when the drop falls below threshold − hysteresis,
  which happens in every double support because the pelvis passes level there. ``side`` = the stance side, the
  weak hip.
- ``DROP_STRIDE``, per stride, when the stride stage delivers it: the stride's drop for a stance side
  (``drop_*_stance_deg``) over that side's threshold. The confirmation for the log and the review; each single
  support is judged once even when strides of both feet overlap (by the sample where the drop peaked).
- ``SWAY``: the stride's ``sway_pp_cm`` over its threshold; ``TILT``: the stride's ``tilt_mean_deg`` beyond the
  anterior (value +) or the posterior (value −) threshold. Per stride, at the stride's ``end_sample``.

Every kind has its own hysteresis (a channel re-arms only after a value below threshold − hysteresis) and the
common refractory time. Thresholds are fixed (defaults from the gait literature, below) or a personal baseline:
mean + k·SD (at least a minimum margin) of the first ``baseline_strides`` steady strides of the session, then
fixed. While the baseline is learnt nothing fires.

Defaults and where they come from (the numbers are approximate; they are settings):

- drop 6°: in healthy walking the free side drops about 4–5° below level in early single support (Perry &
  Burnfield 2010, *Gait Analysis: Normal and Pathological Function*, 2nd ed., pelvis frontal plane; Whittle 2007,
  *Gait Analysis: An Introduction*); Trendelenburg-like drops are reported beyond about 7–8°, and in runners each
  extra degree of contralateral pelvic drop raised the odds of being injured by about 80 % (Bramah et al. 2018,
  Am J Sports Med 46:3023–3031). 6° sits between the two, so a 4° (healthy) step and an 8° step are told apart
  with 2° to spare on each side.
- sway 6 cm peak to peak: the pelvis moves about 4–4.5 cm from side to side per stride in healthy walking
  (Saunders, Inman & Eberhart 1953, J Bone Joint Surg Am 35:543–558, "lateral displacement of the pelvis";
  Whittle 2007: about 40–50 mm); 6 cm is about 1.5 times that.
- tilt ±8° against neutral standing: mean pelvic tilt in walking differs between healthy people with an SD of about
  4° (Kadaba et al. 1989, J Orthop Res 7:849–860), so ±8° is about two SD from the standing posture.

Inputs follow docs/pipeline.md: ``angles_pelvis_deg`` (n, 3) = rotation, obliquity (+ = left side higher), tilt
(+ = anterior), and the ``STRIDE_DTYPE`` records the stride stage completed in the same call.

Block invariance: per-sample decisions depend only on the samples; per-stride decisions carry the stride's
``end_sample``. A personal baseline applies to the per-sample drop from ``baseline_apply_delay_s`` after the end of
its last stride, whatever the blocks, provided the stride stage delivers strides within that delay (it does: about
one step). Each call returns its decisions sorted by sample; a per-stride decision can carry a sample earlier than
the last per-sample decision of a previous call (the stride stage reports a stride after it ends), so compare
whole runs sorted by (sample, kind, side).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from hipcheck.errors import InvalidValueError, InvalidTypeError
from hipcheck.settings import merged_settings
from hipcheck.gait import LEFT, RIGHT, STRIDE_DTYPE

__all__ = [
    "DROP", "SWAY", "TILT", "DROP_STRIDE", "KIND_NAMES",
    "NONE", "SIDE_NAMES",
    "FIXED", "BASELINE",
    "DECISION_DTYPE", "DEFAULT_SETTINGS", "SETTINGS_DTYPE", "STATE_DTYPE",
    "Detectors", "detect", "make_settings", "make_state", "detect_update_samples", "detect_update_strides",
]

# Decision kinds, in the order of KIND_NAMES.
DROP = 0  # per sample: the obliquity crossed the stance side's drop threshold
SWAY = 1  # per stride: sway_pp_cm over its threshold
TILT = 2  # per stride: tilt_mean_deg beyond the anterior (+) or posterior (−) threshold
DROP_STRIDE = 3  # per stride: the stride's drop for a stance side over its threshold
KIND_NAMES = ("drop", "sway", "tilt", "drop_stride")

NONE = 2  # a decision that belongs to no side (sway, tilt)
SIDE_NAMES = ("left", "right", "none")  # indexed by LEFT, RIGHT, NONE

FIXED = 0
BASELINE = 1

DECISION_DTYPE = np.dtype([
    ("sample", np.int64),  # sample index (from the start of the stream) the decision belongs to
    ("kind", np.int8),  # DROP, SWAY, TILT, DROP_STRIDE
    ("side", np.int8),  # drops: the STANCE side (weak hip abductors), LEFT or RIGHT; sway, tilt: NONE
    ("value", np.float64),  # drop: deg the free side sank (+); sway: cm peak to peak; tilt: deg, + = anterior
    ("threshold", np.float64),  # the threshold crossed, same unit and sign as value
])

# One field per DEFAULT_SETTINGS entry (same name, same unit), and the sample rate.
SETTINGS_DTYPE = np.dtype([
    ("fs_hz", np.float64),
    ("mode", np.int8),
    ("drop_threshold_deg", np.float64),
    ("drop_hysteresis_deg", np.float64),
    ("drop_smooth_s", np.float64),
    ("sway_threshold_cm", np.float64),
    ("sway_hysteresis_cm", np.float64),
    ("tilt_anterior_deg", np.float64),
    ("tilt_posterior_deg", np.float64),
    ("tilt_hysteresis_deg", np.float64),
    ("refractory_s", np.float64),
    ("baseline_strides", np.int64),
    ("baseline_k", np.float64),
    ("baseline_drop_margin_deg", np.float64),
    ("baseline_sway_margin_cm", np.float64),
    ("baseline_tilt_margin_deg", np.float64),
    ("baseline_apply_delay_s", np.float64),
])

DEFAULT_DROP_THRESHOLD_DEG = 6.0  # sources in the module docstring
# Code-to-name maps for reports (hipcheck.report): decision fields, hold fields.
DECISION_NAMES = {"kind": KIND_NAMES, "side": SIDE_NAMES}
HOLD_NAMES = {"side": SIDE_NAMES}

DEFAULT_SETTINGS = {
    "mode": FIXED,  # FIXED thresholds, or BASELINE: learnt from the first steady strides of the session
    "drop_threshold_deg": DEFAULT_DROP_THRESHOLD_DEG,  # the free side sank this far below level
    "drop_hysteresis_deg": 2.0,  # a drop channel re-arms below threshold − this
    "drop_smooth_s": 0.05,  # moving average of the obliquity before the per-sample drop detector
    "sway_threshold_cm": 6.0,  # sway_pp_cm of a stride
    "sway_hysteresis_cm": 0.5,
    "tilt_anterior_deg": 8.0,  # + = anterior; fires when tilt_mean_deg ≥ this
    "tilt_posterior_deg": -8.0,  # negative; fires when tilt_mean_deg ≤ this
    "tilt_hysteresis_deg": 1.0,
    "refractory_s": 0.5,  # least time between two decisions of one channel
    "baseline_strides": 20,  # steady strides that make the baseline
    "baseline_k": 3.0,  # baseline threshold: mean + k·SD ...
    "baseline_drop_margin_deg": 1.5,  # ... and at least this far above the mean
    "baseline_sway_margin_cm": 1.0,
    "baseline_tilt_margin_deg": 2.0,
    "baseline_apply_delay_s": 3.0,  # the per-sample drop uses the baseline this long after its last stride
}

# Channels: one armed flag, last decision and threshold each.
_CH_DROP = 0  # + side: 0 left stance, 1 right stance
_CH_DROP_STRIDE = 2  # + side
_CH_SWAY = 4
_CH_TILT_ANTERIOR = 5
_CH_TILT_POSTERIOR = 6
_N_CHANNELS = 7
# Baseline statistics: drop left stance, drop right stance, sway, tilt.
_ST_DROP = 0  # + side
_ST_SWAY = 2
_ST_TILT = 3
_N_STATS = 4
_RING = 64  # longest obliquity smoothing window, samples

STATE_DTYPE = np.dtype([
    ("next_sample", np.int64),  # index of the next sample to come
    ("ring", np.float64, (_RING,)),  # the last obliquity samples (deg)
    ("ring_count", np.int64),  # valid samples in the ring (a NaN empties it)
    ("armed", np.int8, (_N_CHANNELS,)),  # 1 = may fire (int8: numba has no nested bool arrays)
    ("last_decision", np.int64, (_N_CHANNELS,)),  # sample of each channel's last decision
    ("threshold", np.float64, (_N_CHANNELS,)),  # current threshold per channel (inf = not yet known)
    ("last_drop_peak", np.int64, (2,)),  # drop_*_stance_sample of the last single support judged, per side
    ("stat_n", np.int64, (_N_STATS,)),  # baseline statistics: values counted ...
    ("stat_sum", np.float64, (_N_STATS,)),  # ... their sum ...
    ("stat_sum_sq", np.float64, (_N_STATS,)),  # ... and their sum of squares
    ("baseline_strides_seen", np.int64),  # steady strides counted into the baseline
    ("baseline_ready", np.bool_),  # the baseline thresholds are set
    ("drop_apply_sample", np.int64),  # from this sample on, the per-sample drop uses the baseline thresholds
    ("drop_threshold_baseline", np.float64, (2,)),  # the per-sample drop thresholds from then on, per stance side
])


def make_settings(fs_hz: float, **overrides) -> np.ndarray:
    """One settings record (SETTINGS_DTYPE) from DEFAULT_SETTINGS and overrides by name."""
    values = merged_settings("detector", DEFAULT_SETTINGS, overrides, fs_hz)
    settings = np.zeros(1, dtype=SETTINGS_DTYPE)
    for name, value in values.items():
        settings[name] = value
    settings["fs_hz"] = fs_hz
    s = settings[0]
    if s["mode"] not in (FIXED, BASELINE):
        raise InvalidValueError(f"mode={s['mode']}: use hipcheck.detect.FIXED or BASELINE")
    if not 1 <= round(s["drop_smooth_s"] * fs_hz) <= _RING:
        raise InvalidValueError(f"drop_smooth_s={s['drop_smooth_s']:g} at {fs_hz:g} Hz is "
                                f"{round(s['drop_smooth_s'] * fs_hz)} samples; use 1 to {_RING} samples")
    if s["mode"] == BASELINE and s["baseline_strides"] < 2:
        raise InvalidValueError(f"baseline_strides={s['baseline_strides']}: a baseline needs at least 2 strides for "
                                "its SD")
    if not s["tilt_posterior_deg"] < s["tilt_anterior_deg"]:
        raise InvalidValueError("tilt_posterior_deg must be below tilt_anterior_deg (posterior tilt is negative)")
    return settings


def make_state(settings: np.ndarray) -> np.ndarray:
    """The state record (STATE_DTYPE) at the start of a stream: fixed thresholds set, or silent until a baseline."""
    s = settings[0]
    state = np.zeros(1, dtype=STATE_DTYPE)
    state["armed"] = 1
    state["last_decision"] = np.iinfo(np.int64).min // 2
    state["last_drop_peak"] = -1
    state["drop_apply_sample"] = np.iinfo(np.int64).max
    if s["mode"] == FIXED:
        thr = state["threshold"][0]
        thr[_CH_DROP + LEFT] = thr[_CH_DROP + RIGHT] = s["drop_threshold_deg"]
        thr[_CH_DROP_STRIDE + LEFT] = thr[_CH_DROP_STRIDE + RIGHT] = s["drop_threshold_deg"]
        thr[_CH_SWAY] = s["sway_threshold_cm"]
        thr[_CH_TILT_ANTERIOR] = s["tilt_anterior_deg"]
        thr[_CH_TILT_POSTERIOR] = s["tilt_posterior_deg"]
        state["drop_apply_sample"] = 0
        state["drop_threshold_baseline"] = s["drop_threshold_deg"]
    else:
        state["threshold"] = np.inf  # silent until the baseline is learnt
        state["threshold"][0][_CH_TILT_POSTERIOR] = -np.inf
    return state


# ------------------------------------------------------------------------------------------------ numba kernels

# Constants handed to a numba helper are typed (np.int64, np.bool_): numba compiles a helper once per literal value
# it is called with (Literal[int](4) and Literal[int](5) are two compiles of the same code); a typed value is one.


@numba.njit(cache=True)
def _emit(out, n_out, sample, kind, side, value, threshold):
    out[n_out]["sample"] = sample
    out[n_out]["kind"] = kind
    out[n_out]["side"] = side
    out[n_out]["value"] = value
    out[n_out]["threshold"] = threshold
    return n_out + 1


@numba.njit(cache=True)
def _channel(settings, st, channel, sample, value, sign, hysteresis):
    """Hysteresis and refractory time of one channel; True when it fires. sign −1 for a lower threshold."""
    threshold = st["threshold"][channel]
    if st["armed"][channel]:
        refractory = int(round(settings["refractory_s"] * settings["fs_hz"]))
        if sign * value >= sign * threshold and sample - st["last_decision"][channel] >= refractory:
            st["armed"][channel] = 0
            st["last_decision"][channel] = sample
            return True
    elif sign * value < sign * threshold - hysteresis:
        st["armed"][channel] = 1
    return False


@numba.njit(cache=True)
def detect_update_samples(settings_array, state_array, angles_pelvis_deg, out):
    """Per-sample drop detector over one block; writes decisions into out, returns how many."""
    settings = settings_array[0]
    st = state_array[0]
    window = int(round(settings["drop_smooth_s"] * settings["fs_hz"]))
    n_out = np.int64(0)
    for i in range(angles_pelvis_deg.shape[0]):
        sample = st["next_sample"] + i
        obliquity_deg = angles_pelvis_deg[i, 1]
        if not math.isfinite(obliquity_deg):
            st["ring_count"] = 0  # a gap: the average starts again
            continue
        st["ring"][sample % _RING] = obliquity_deg
        if st["ring_count"] < window:
            st["ring_count"] += 1
            if st["ring_count"] < window:
                continue
        total = 0.0
        for k in range(window):
            total += st["ring"][(sample - k) % _RING]
        obliquity_smooth_deg = total / window
        # Obliquity + = left side higher: in left stance the right (free) side sinks, so the drop is +obliquity.
        for side in (LEFT, RIGHT):
            drop_deg = obliquity_smooth_deg if side == LEFT else -obliquity_smooth_deg
            channel = _CH_DROP + side
            if sample >= st["drop_apply_sample"]:
                st["threshold"][channel] = st["drop_threshold_baseline"][side]
            if _channel(settings, st, channel, sample, drop_deg, 1.0, settings["drop_hysteresis_deg"]):
                n_out = _emit(out, n_out, sample, np.int64(DROP), side, drop_deg, st["threshold"][channel])
    st["next_sample"] += angles_pelvis_deg.shape[0]
    return n_out


@numba.njit(cache=True)
def _baseline_threshold(st, stat, k, margin):
    n = st["stat_n"][stat]
    if n < 2:
        return np.inf  # this side never showed a measurable drop: stay silent rather than guess
    mean = st["stat_sum"][stat] / n
    var = max(0.0, (st["stat_sum_sq"][stat] - n * mean * mean) / (n - 1))
    return mean + max(k * math.sqrt(var), margin)


@numba.njit(cache=True)
def _add_stat(st, stat, value):
    if math.isfinite(value):
        st["stat_n"][stat] += 1
        st["stat_sum"][stat] += value
        st["stat_sum_sq"][stat] += value * value


@numba.njit(cache=True)
def detect_update_strides(settings_array, state_array, strides, out):
    """Per-stride detectors (and the baseline) over the strides of one call; returns the number of decisions."""
    settings = settings_array[0]
    st = state_array[0]
    n_out = np.int64(0)
    # the helpers' constant arguments, typed (see above)
    stride_kind, sway_kind, tilt_kind, no_side = np.int64(DROP_STRIDE), np.int64(SWAY), np.int64(TILT), np.int64(NONE)
    ch_sway, ch_anterior, ch_posterior = np.int64(_CH_SWAY), np.int64(_CH_TILT_ANTERIOR), np.int64(_CH_TILT_POSTERIOR)
    st_sway, st_tilt = np.int64(_ST_SWAY), np.int64(_ST_TILT)
    for j in range(strides.shape[0]):
        stride = strides[j]
        end = stride["end_sample"]
        drops = (stride["drop_left_stance_deg"], stride["drop_right_stance_deg"])
        peaks = (stride["drop_left_stance_sample"], stride["drop_right_stance_sample"])
        if settings["mode"] == BASELINE and not st["baseline_ready"]:
            if not stride["steady"]:
                continue
            for side in (LEFT, RIGHT):
                if peaks[side] > st["last_drop_peak"][side]:
                    st["last_drop_peak"][side] = peaks[side]
                    _add_stat(st, _ST_DROP + side, drops[side])
            _add_stat(st, st_sway, stride["sway_pp_cm"])
            _add_stat(st, st_tilt, stride["tilt_mean_deg"])
            st["baseline_strides_seen"] += 1
            if st["baseline_strides_seen"] >= settings["baseline_strides"]:
                k = settings["baseline_k"]
                for side in (LEFT, RIGHT):
                    thr = _baseline_threshold(st, _ST_DROP + side, k, settings["baseline_drop_margin_deg"])
                    st["threshold"][_CH_DROP_STRIDE + side] = thr
                    st["drop_threshold_baseline"][side] = thr
                st["threshold"][_CH_SWAY] = _baseline_threshold(st, st_sway, k, settings["baseline_sway_margin_cm"])
                tilt_up = _baseline_threshold(st, st_tilt, k, settings["baseline_tilt_margin_deg"])
                tilt_mean = st["stat_sum"][_ST_TILT] / max(1, st["stat_n"][_ST_TILT])
                st["threshold"][_CH_TILT_ANTERIOR] = tilt_up
                st["threshold"][_CH_TILT_POSTERIOR] = 2.0 * tilt_mean - tilt_up  # mirrored about the mean
                st["baseline_ready"] = True
                delay = int(round(settings["baseline_apply_delay_s"] * settings["fs_hz"]))
                # Normally end + delay lies ahead; if the stride came later than that, apply from the next sample.
                st["drop_apply_sample"] = max(end + delay, st["next_sample"])
            continue
        for side in (LEFT, RIGHT):
            # Strides of both feet overlap: judge each single support once, by where its drop peaked.
            if peaks[side] <= st["last_drop_peak"][side] or not math.isfinite(drops[side]):
                continue
            st["last_drop_peak"][side] = peaks[side]
            channel = _CH_DROP_STRIDE + side
            if _channel(settings, st, channel, end, drops[side], 1.0, settings["drop_hysteresis_deg"]):
                n_out = _emit(out, n_out, end, stride_kind, side, drops[side], st["threshold"][channel])
        sway_cm = stride["sway_pp_cm"]
        if math.isfinite(sway_cm):
            if _channel(settings, st, ch_sway, end, sway_cm, 1.0, settings["sway_hysteresis_cm"]):
                n_out = _emit(out, n_out, end, sway_kind, no_side, sway_cm, st["threshold"][_CH_SWAY])
        tilt_deg = stride["tilt_mean_deg"]
        if math.isfinite(tilt_deg):
            hysteresis = settings["tilt_hysteresis_deg"]
            if _channel(settings, st, ch_anterior, end, tilt_deg, 1.0, hysteresis):
                n_out = _emit(out, n_out, end, tilt_kind, no_side, tilt_deg, st["threshold"][_CH_TILT_ANTERIOR])
            if _channel(settings, st, ch_posterior, end, tilt_deg, -1.0, hysteresis):
                n_out = _emit(out, n_out, end, tilt_kind, no_side, tilt_deg, st["threshold"][_CH_TILT_POSTERIOR])
    return n_out


# ------------------------------------------------------------------------------------------------ Python faces


class Detectors:
    """Drop, sway and tilt detectors for live blocks (docs/detectors.md).

    ``Detectors(fs_hz, settings)``: settings is None (the defaults), a dict of overrides (``{"mode": BASELINE}``)
    or a record made by :func:`make_settings`. ``update(angles_pelvis_deg, strides)`` takes the next block of
    per-sample angles (n, 3: rotation, obliquity + = left side higher, tilt + = anterior) and the STRIDE_DTYPE
    records the stride stage completed in the same call, and returns the decisions (DECISION_DTYPE) sorted by
    sample.

    Readable state: ``baseline_ready``, ``thresholds`` (dict of the thresholds in use), ``obliquity_smooth_deg``
    (what the drop detector compares), ``next_sample``.
    """

    def __init__(self, fs_hz: float, settings=None):
        if settings is None:
            settings = make_settings(fs_hz)
        elif isinstance(settings, dict):
            settings = make_settings(fs_hz, **settings)
        else:
            settings = np.array(settings, dtype=SETTINGS_DTYPE).reshape(1)
            if settings["fs_hz"][0] != fs_hz:
                raise InvalidValueError(f"settings were made for {settings['fs_hz'][0]:g} Hz, not fs_hz={fs_hz:g}")
        self.fs_hz = float(fs_hz)
        self.settings = settings
        self.state = make_state(settings)

    def update(self, angles_pelvis_deg: np.ndarray, strides: np.ndarray | None = None) -> np.ndarray:
        angles = np.ascontiguousarray(angles_pelvis_deg, dtype=np.float64)
        if angles.ndim != 2 or angles.shape[1] != 3:
            raise InvalidValueError(f"angles_pelvis_deg has shape {angles.shape}; expected (n, 3): rotation, "
                                    "obliquity, tilt")
        if strides is None:
            strides = np.zeros(0, dtype=STRIDE_DTYPE)
        elif strides.dtype != STRIDE_DTYPE:
            raise InvalidTypeError("strides must be a hipcheck.gait.STRIDE_DTYPE array (from the stride stage)")
        strides = np.ascontiguousarray(strides)
        # Strides first: a baseline they complete then starts at its fixed sample, inside or after this block.
        out_strides = np.zeros(4 * len(strides), dtype=DECISION_DTYPE)
        n_strides = detect_update_strides(self.settings, self.state, strides, out_strides)
        out_samples = np.zeros(2 * len(angles), dtype=DECISION_DTYPE)
        n_samples = detect_update_samples(self.settings, self.state, angles, out_samples)
        out = np.concatenate([out_strides[:n_strides], out_samples[:n_samples]])
        return out[np.argsort(out["sample"], kind="stable")]

    @property
    def next_sample(self) -> int:
        return int(self.state["next_sample"][0])

    @property
    def baseline_ready(self) -> bool:
        return bool(self.settings["mode"][0] == FIXED or self.state["baseline_ready"][0])

    @property
    def thresholds(self) -> dict:
        thr = self.state["threshold"][0]
        per_sample = self.state["drop_threshold_baseline"][0]
        return {
            "drop_left_stance_deg": float(per_sample[LEFT]) if self.baseline_ready else math.inf,
            "drop_right_stance_deg": float(per_sample[RIGHT]) if self.baseline_ready else math.inf,
            "sway_pp_cm": float(thr[_CH_SWAY]),
            "tilt_anterior_deg": float(thr[_CH_TILT_ANTERIOR]),
            "tilt_posterior_deg": float(thr[_CH_TILT_POSTERIOR]),
        }

    @property
    def obliquity_smooth_deg(self) -> float:
        st = self.state[0]
        window = int(round(self.settings["drop_smooth_s"][0] * self.fs_hz))
        if st["ring_count"] < window:
            return math.nan
        last = st["next_sample"] - 1
        return float(np.mean([st["ring"][(last - k) % _RING] for k in range(window)]))


def detect(angles_pelvis_deg: np.ndarray, strides: np.ndarray | None, fs_hz: float, settings=None) -> np.ndarray:
    """Whole-array form of :class:`Detectors`: every decision of a recording, sorted by sample."""
    return Detectors(fs_hz, settings).update(angles_pelvis_deg, strides)
