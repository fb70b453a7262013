"""Initial and final contacts, with side, from one IMU on the sacrum: streaming, numba, walking found from the signal.

Method
------
The detector follows the classic lower-back recipe, step by step:

1. **Earth-frame signals.** The orientation ``q_sensor_to_earth`` turns the specific force into the earth frame, so
   that a mounting up to 20° off (or a tilted pelvis) does not leak forward acceleration into the vertical one:
   ``acc_vertical`` (z up, gravity and a slow baseline removed) and ``acc_lateral`` (horizontal, along the sensor's
   left axis projected on the ground: + = toward the wearer's left). Heading is not used, so a 6D fusion will do.
2. **Steps.** The vertical acceleration smoothed by a Gaussian (σ = 40 ms) peaks once per step, during the loading
   response that follows each initial contact. This is the smoothed-integrate-then-differentiate signal of McCamley
   et al. (2012, "An enhanced estimate of initial contact and final contact instants of time using lower trunk
   inertial sensor data", Gait & Posture 36:316-318): integrating the vertical acceleration and differentiating it
   with a Gaussian wavelet equals smoothing it with that Gaussian. Changed: we keep the peaks of the smoothed signal
   as step *anchors* only (a peak at least ``min_peak_m_s2`` high, and the largest within ±``step_min_s``), not as the
   contact instants, because on the mobgap-lab data they come 40-60 ms after the reference's contacts.
3. **Initial contact.** The heel strike is the sharp rise of the vertical acceleration (the impact transient that
   Zijlstra & Hof 2003, "Assessment of spatio-temporal gait parameters from trunk accelerations during human
   walking", Gait & Posture 18:1-10, and Del Din et al. 2016 time their contacts on). We take the maximum of the
   vertical jerk (derivative of a Gaussian, σ = 15 ms) between ``ic_search_before_s`` before and
   ``ic_search_after_s`` after the anchor, plus a constant ``ic_offset_s`` (fitted over all nine mobgap-lab
   recordings at once: see benchmarks/gait.py). A second estimate comes from the forward (anteroposterior)
   acceleration, laid flat like the lateral one in step 5: Zijlstra & Hof (2003) time the heel strike on its peak,
   after which it falls as the landing leg brakes the body; we take the minimum of that fall (smoothed as in step 2)
   between ``ic_forward_before_s`` before and ``ic_forward_after_s`` after the jerk's contact, less
   ``ic_forward_lag_s`` (60 ms: chosen on half A of the mobgap-lab walks, benchmarks/gait.py). The contact is the
   weighted mean of the two (``ic_forward_weight`` 0.5: equal weights, not fitted); their errors are only partly
   correlated, and the mean takes the matched contacts off by more than 0.1 s from 11 to 6 of 139 against the
   contacts both references agree on (half A 5 → 3, half B 6 → 3; F1 at 0.1 s 0.865 → 0.899), from 25 to 21
   against INDIP and from 17 to 13 against Stereophoto. A forward acceleration with no variation in the window
   (less than 0.05 m/s²: no braking seen) leaves the jerk's contact alone.
4. **Final contact.** The other foot leaves the ground at the end of the double support that follows an initial
   contact, when the vertical acceleration falls fastest after its loading peak (McCamley 2012 take a further
   derivative; the steepest fall is the same instant). We take the minimum of the vertical jerk from the anchor to
   ``fc_search_s`` after it, only for a step that another step follows. Its side is the foot opposite to the
   initial contact. No reference toe offs come with the mobgap-lab data: FC timing is checked on the simulator only.
5. **Side.** In single support the pelvis accelerates toward the swinging foot that is about to land (the inverted
   pendulum tips over the stance foot toward the swing side), so the lateral acceleration averaged over the
   ``side_window_s`` before a contact points at the foot that lands: left (+) or right (−). McCamley (2012) name the
   side from the sign of the angular rate; on the mobgap-lab data the lateral acceleration decides better (0.95 vs
   0.85 with the yaw rate high-passed, 0.70 without). Changed: a step's score is contrasted with its neighbours' in
   the same walk (``score − mean(neighbours)``), since the sides alternate; this cancels a lateral bias such as a
   slope or a lean. In a turn the pelvis also accelerates toward the turn's centre, by v·ω (walking speed times
   yaw rate: 1 m/s at 90°/s gives 1.6 m/s², as much as a step's own lateral acceleration), and that bias appears
   and vanishes within a step at the turn's start and end, where the contrast cannot cancel it: the lateral
   acceleration is taken less ``turn_speed_m_s`` times the earth-vertical angular rate smoothed over
   ``turn_tau_s`` (the speed assumed, 1 m/s, lies between slow and brisk walking). On simulated 180° turns (8 walks
   at 0.8-1.5 m/s, 536 contacts) this took the wrong sides from 3 to 0; on the mobgap-lab data it changes none.
   The neighbours are the nearest chain members that are steps in their own right (peak ≥
   ``min_peak_m_s2``), skipping the weak members of step 6: a weak peak may be a second bump of the same step,
   whose lateral score belongs to no foot (with them as neighbours the side accuracy fell from 0.989 to 0.973).
6. **Walking.** No bout input: a step counts only if it belongs to a chain of at least ``min_steps`` anchors, each
   within ``max_step_s`` of the next, counting the anchors seen up to the decision time (``delay_s`` after the
   anchor). Standing, sitting, a single-leg hold or turning without steps gives no anchor above ``min_peak_m_s2``, or
   no chain. Walking is recognised by steps that repeat (the step regularity of Moe-Nilssen & Helbostad 2004,
   "Estimation of gait cycle characteristics by trunk accelerometry", J. Biomech. 37:121-126), so the chain also
   counts weaker peaks, down to ``chain_peak_m_s2``, as neighbours; such a peak yields no contact itself. The trunk's
   vertical acceleration grows with walking speed, and the steps that start and end a walk, or that follow a slow
   or shuffling step, are the slow ones: on the mobgap-lab data the first step of a bout, a clear loading peak of
   0.6-2 m/s², was lost because the step after it peaked below 0.5 m/s² (recall vs INDIP 0.754 → 0.788, precision
   0.894 → 0.886; benchmarks/gait.py).
7. **Postural transitions.** Sitting down, standing up and bending shake the vertical acceleration like steps do.
   They tilt the trunk fast, walking does not: a step is dropped when the horizontal part of the earth-frame angular
   rate (pitch and roll, heading-free) exceeds ``transition_rate_dps`` anywhere within ± ``transition_window_s`` of
   its anchor. Trunk pitch and roll rates stay below about 50 deg/s in walking (90th percentile of the matched steps
   on the mobgap-lab data), while sit-to-stand and stand-to-sit transitions reach 100-250 deg/s (Najafi et al.
   2002, "Measurement of stand-sit and sit-stand transitions using a miniature gyroscope and its application in
   fall risk evaluation in the elderly", IEEE Trans. Biomed. Eng. 49(8):843-851, detect them from this rate); the
   bound sits well above walking to spare fast or unsteady gait. A vetoed peak still counts as a neighbour in the
   chain of the steps around it.

Streaming: every sample goes through the same kernel, whatever the block sizes, so the output does not depend on how
the stream is cut. A contact is reported ``delay_samples`` (= ``delay_s`` × fs) after its step anchor, i.e. at most
about ``delay_s`` + 0.1 s after it happened; events come back with their absolute sample indices (0-based from the
stream start), in sample order across calls.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from hipcheck.errors import InvalidValueError
from hipcheck.settings import merged_settings
from hipcheck.gait import EVENT_DTYPE, FC, IC, LEFT, RIGHT

__all__ = ["EventDetector", "detect_events", "events_update", "make_settings", "make_state", "make_rings",
           "check_supported_rate", "DEFAULT_SETTINGS", "SETTINGS_DTYPE", "STATE_DTYPE", "MIN_RATE_HZ", "MAX_RATE_HZ"]

# The rates every stage is built for. Below 25 Hz a heel strike's impact (tens of ms) falls between samples; above
# 1000 Hz no body-worn IMU gains anything for gait, and the look-back rings would grow for nothing.
MIN_RATE_HZ = 25.0
MAX_RATE_HZ = 1000.0
KERNEL_MAX = 257  # longest Gaussian kernel (taps), 3σ each side: the 40 ms smoothing at MAX_RATE_HZ
PENDING = 32  # step anchors remembered for the chain and side decisions
# Rows of the ring buffers (one array, (N_RINGS, ring length), the length a power of two sized from the rate by
# make_settings: the look-ahead and the look-back in samples).
VERTICAL, LATERAL, TILT_RATE, SMOOTH, JERK, FORWARD = range(6)
N_RINGS = 6
_FLAT_FORWARD_M_S2 = 0.05  # a smoothed forward acceleration varying less than this shows no braking
_GRAVITY_GUESS_M_S2 = 9.81  # starts the baseline; the baseline then tracks the sensor's own gravity reading

DEFAULT_SETTINGS = {
    "smooth_sigma_s": 0.04,  # Gaussian that makes one peak per step of the vertical acceleration
    "impact_sigma_s": 0.015,  # Gaussian derivative for the heel-strike jerk
    "baseline_tau_s": 2.0,  # slow baseline (gravity, sensor scale) removed from the vertical acceleration
    "min_peak_m_s2": 0.5,  # a step's loading peak of smoothed vertical acceleration, at least
    "chain_peak_m_s2": 0.15,  # a weaker peak (at least this) is a neighbour in a walk's chain, not a step itself
    "step_min_s": 0.18,  # an anchor is the largest peak within ± this (steps are ≥ 0.36 s apart: ≤ 167 steps/min)
    "max_step_s": 1.5,  # anchors further apart than this break the chain (a pause)
    "min_steps": 2,  # anchors in a chain before they count as walking
    "ic_search_before_s": 0.10,  # heel strike searched from this long before the anchor ...
    "ic_search_after_s": 0.03,  # ... to this long after it
    "ic_offset_s": -0.02,  # constant added to each initial contact (fitted: mobgap-lab vs INDIP)
    "ic_forward_weight": 0.5,  # weight of the forward-braking estimate of the contact (the jerk's: 1 − this)
    "ic_forward_lag_s": 0.06,  # the forward acceleration's minimum follows the heel strike by this much
    "ic_forward_before_s": 0.10,  # that minimum searched from this long before the jerk's contact ...
    "ic_forward_after_s": 0.08,  # ... to this long after it
    "fc_search_s": 0.25,  # toe off searched from the anchor to this long after it
    "fc_offset_s": 0.0,  # constant added to each final contact
    "side_window_s": 0.5,  # lateral acceleration averaged over this long before the contact
    "turn_speed_m_s": 1.0,  # walking speed assumed for the centripetal acceleration of a turn (lateral − v·yaw rate)
    "turn_tau_s": 0.3,  # the yaw rate for that is smoothed over this long
    "delay_s": 1.0,  # decision delay after an anchor (look-ahead for the chain)
    "transition_rate_dps": 150.0,  # trunk tilting faster than this (pitch/roll, earth frame) is no walking step ...
    "transition_window_s": 0.5,  # ... anywhere within ± this of the step's anchor (sitting down, standing up, bending)
}

# DEFAULT_SETTINGS as the kernel uses them: a name without a unit counts samples.
SETTINGS_DTYPE = np.dtype([
    ("fs_hz", np.float64),
    ("baseline_alpha", np.float64),  # EMA weight of one sample for the baseline
    ("min_peak_m_s2", np.float64),
    ("chain_peak_m_s2", np.float64),  # at most min_peak_m_s2
    ("smooth_half", np.int64),  # taps each side of the smoothing kernel
    ("smooth_kernel", np.float64, (KERNEL_MAX,)),
    ("impact_half", np.int64),
    ("impact_kernel", np.float64, (KERNEL_MAX,)),  # derivative of a Gaussian, per sample (m/s² per sample)
    ("peak_half", np.int64),
    ("max_step", np.int64),
    ("min_steps", np.int64),
    ("ic_before", np.int64),
    ("ic_after", np.int64),
    ("ic_offset", np.int64),
    ("ic_forward_weight", np.float64),
    ("ic_forward_lag", np.int64),
    ("ic_forward_before", np.int64),
    ("ic_forward_after", np.int64),
    ("fc_after", np.int64),
    ("fc_offset", np.int64),
    ("side_window", np.int64),
    ("turn_speed_m_s", np.float64),
    ("turn_alpha", np.float64),  # EMA weight of one sample for the smoothed yaw rate
    ("delay", np.int64),
    ("transition_rate_rad_s", np.float64),
    ("transition_window", np.int64),
    ("ring_mask", np.int64),  # ring length - 1 (the length is a power of two): sample index -> ring slot
])

STATE_DTYPE = np.dtype([
    ("samples_seen", np.int64),  # samples seen: the stream index of the next sample
    ("baseline_m_s2", np.float64),  # slow baseline of the earth-vertical specific force (gravity, sensor scale)
    ("baseline_ready", np.bool_),  # baseline_m_s2 started (from the first valid sample)
    ("last_vertical_m_s2", np.float64),  # held through invalid (NaN) samples
    ("last_lateral_m_s2", np.float64),  # the same for acc_lateral
    ("last_forward_m_s2", np.float64),  # the same for acc_forward
    ("last_tilt_rate_rad_s", np.float64),  # the same for the tilt rate
    ("yaw_rate_rad_s", np.float64),  # earth-vertical angular rate smoothed over turn_tau_s (+ = turning left)
    ("anchor", np.int64, (PENDING,)),  # step anchors (sample), oldest first in ring order
    ("score", np.float64, (PENDING,)),  # side score per anchor: + = left
    ("peak", np.float64, (PENDING,)),  # smoothed vertical acceleration at each anchor (m/s²)
    ("n_anchors", np.int64),  # anchors found so far
    ("n_decided", np.int64),  # anchors decided so far
    ("last_emitted", np.int64),  # sample of the last emitted event (keeps the output ordered)
    ("walking", np.bool_),  # the latest decided anchor was part of a walk
    ("last_walk_anchor", np.int64),  # anchor of the latest accepted step (-1: none)
])


def make_settings(fs_hz: float, **overrides) -> np.ndarray:
    """One-record settings array from physical settings (see DEFAULT_SETTINGS); checks what the kernel needs."""
    cfg = merged_settings("event-detector", DEFAULT_SETTINGS, overrides, fs_hz)
    check_supported_rate(fs_hz)

    def samples(key: str) -> int:
        return int(round(cfg[key] * fs_hz))

    s = np.zeros(1, SETTINGS_DTYPE)
    s["fs_hz"] = fs_hz
    s["baseline_alpha"] = 1.0 - np.exp(-1.0 / (cfg["baseline_tau_s"] * fs_hz))
    s["min_peak_m_s2"] = cfg["min_peak_m_s2"]
    s["chain_peak_m_s2"] = min(cfg["chain_peak_m_s2"], cfg["min_peak_m_s2"])
    for name, sigma_s, derivative in (("smooth", cfg["smooth_sigma_s"], False),
                                      ("impact", cfg["impact_sigma_s"], True)):
        sigma = max(sigma_s * fs_hz, 0.5)
        half = int(np.ceil(3.0 * sigma)) + (1 if derivative else 0)
        if 2 * half + 1 > KERNEL_MAX:
            raise InvalidValueError(f"{name}_sigma_s={sigma_s} is too long at {fs_hz:g} Hz: at most "
                                    f"{(KERNEL_MAX // 2 - 1) / 3 / fs_hz:.3f} s")
        k = np.arange(-half, half + 1, dtype=float)
        g = np.exp(-0.5 * (k / sigma) ** 2)
        g /= g.sum()
        # The derivative kernel is a discrete derivative of the Gaussian: the convolution gives d/dsample.
        kernel = np.convolve(g, [-0.5, 0.0, 0.5], mode="same") if derivative else g
        s[f"{name}_half"] = half
        s[f"{name}_kernel"][0, :2 * half + 1] = kernel
    s["peak_half"] = max(samples("step_min_s"), 1)
    s["max_step"] = samples("max_step_s")
    s["min_steps"] = int(cfg["min_steps"])
    s["ic_before"] = samples("ic_search_before_s")
    s["ic_after"] = samples("ic_search_after_s")
    s["ic_offset"] = samples("ic_offset_s")
    s["ic_forward_weight"] = cfg["ic_forward_weight"]
    s["ic_forward_lag"] = samples("ic_forward_lag_s")
    s["ic_forward_before"] = samples("ic_forward_before_s")
    s["ic_forward_after"] = samples("ic_forward_after_s")
    s["fc_after"] = samples("fc_search_s")
    s["fc_offset"] = samples("fc_offset_s")
    s["side_window"] = max(samples("side_window_s"), 1)
    s["turn_speed_m_s"] = cfg["turn_speed_m_s"]
    s["turn_alpha"] = 1.0 - np.exp(-1.0 / (max(cfg["turn_tau_s"], 1e-6) * fs_hz))
    s["delay"] = samples("delay_s")
    s["transition_rate_rad_s"] = np.radians(cfg["transition_rate_dps"])
    s["transition_window"] = samples("transition_window_s")
    r = s[0]
    if r["min_steps"] < 1:
        raise InvalidValueError(f"min_steps={cfg['min_steps']}: at least one step makes a walk")
    # What the decision needs must have arrived by then: the jerk up to the FC window, the anchor confirmed.
    needed = max(r["peak_half"] + r["smooth_half"], r["fc_after"] + r["impact_half"], r["ic_after"] + r["impact_half"],
                 r["ic_after"] + max(r["ic_offset"], 0) + r["ic_forward_after"] + r["smooth_half"])
    if r["delay"] < needed + 1:
        raise InvalidValueError(f"delay_s={cfg['delay_s']} is shorter than the look-ahead the settings need "
                                f"({(needed + 1) / fs_hz:.3f} s): raise delay_s")
    look_back = r["delay"] + r["side_window"] + r["ic_before"] + abs(r["ic_offset"]) + 2 * r["impact_half"] + 2
    if r["transition_window"] < 0 or r["transition_window"] > r["delay"]:
        raise InvalidValueError(f"transition_window_s={cfg['transition_window_s']} must lie between 0 and delay_s="
                                f"{cfg['delay_s']} (the look-ahead must cover it)")
    if not 0.0 <= cfg["ic_forward_weight"] <= 1.0 or r["ic_forward_before"] < 0 or r["ic_forward_after"] < 1:
        raise InvalidValueError(f"ic_forward_weight={cfg['ic_forward_weight']} must lie in 0..1 and the forward "
                                f"search window (ic_forward_before_s, ic_forward_after_s) must not be empty")
    look_back = max(look_back, r["delay"] + r["ic_before"] + abs(r["ic_offset"]) + r["ic_forward_before"]
                    + r["smooth_half"] + 1, r["delay"] + r["transition_window"] + 1,
                    r["delay"] + r["peak_half"] + r["smooth_half"] + 1)
    # The rings hold that history: the next power of two (a slot is then a bit mask away).
    s["ring_mask"] = (1 << int(look_back).bit_length()) - 1
    if r["max_step"] <= r["peak_half"]:
        raise InvalidValueError(f"max_step_s={cfg['max_step_s']} must exceed step_min_s={cfg['step_min_s']}")
    return s


def check_supported_rate(fs_hz: float) -> None:
    """Refuse a sample rate outside MIN_RATE_HZ..MAX_RATE_HZ with a message that names the range."""
    if not MIN_RATE_HZ <= fs_hz <= MAX_RATE_HZ:
        raise InvalidValueError(f"sample rate {fs_hz:g} Hz is outside the {MIN_RATE_HZ:g}-{MAX_RATE_HZ:g} Hz that "
                                f"hipcheck analyses: check the rate given (--fs) or resample the recording")


def make_rings(settings: np.ndarray) -> np.ndarray:
    """The ring buffers (N_RINGS, length) at the start of a stream; make_settings sized their length from the
    rate."""
    return np.zeros((N_RINGS, int(settings[0]["ring_mask"]) + 1))


def make_state() -> np.ndarray:
    """The state record (STATE_DTYPE) at the start of a stream."""
    st = np.zeros(1, STATE_DTYPE)
    st["last_emitted"] = -1
    st["last_walk_anchor"] = -1
    return st


# The helpers that run on every sample are inlined (inline="always"): left as calls they made the kernel about 18 %
# slower (60 000 samples, warm cache). Those that run once per step (_decide and its parts) stay calls.


@njit(cache=True, inline="always")
def _ring(s, i):
    # Sample index → ring slot; indices before the stream start read sample 0 (clamped by the caller). Unsigned, so
    # that numba adds no negative-index wraparound to each access (the mask is no longer a constant it can see).
    return np.uint64(i) & np.uint64(s["ring_mask"])


@njit(cache=True)
def _chain(s, st, k):
    """Anchors chained to anchor k (neighbours within max_step of each other) before it and after it, each counted
    up to min_steps, among the anchors remembered and those already found."""
    back = 0
    j = k - 1
    while j >= 0 and j > k - PENDING + 1 and back < s["min_steps"]:
        if st["anchor"][(j + 1) % PENDING] - st["anchor"][j % PENDING] > s["max_step"]:
            break
        back += 1
        j -= 1
    fwd = 0
    j = k + 1
    while j < st["n_anchors"] and fwd < s["min_steps"]:
        if st["anchor"][j % PENDING] - st["anchor"][(j - 1) % PENDING] > s["max_step"]:
            break
        fwd += 1
        j += 1
    return back, fwd


@njit(cache=True)
def _initial_contact(s, rings, anchor):
    """Heel strike: the steepest rise of the vertical acceleration around the anchor, plus the offset, averaged
    with the braking minimum of the forward acceleration that follows it less its lag (step 3)."""
    lo = max(anchor - s["ic_before"], 0)
    hi = anchor + s["ic_after"]
    ic = lo
    best = -np.inf
    for i in range(lo, hi + 1):
        v = rings[JERK, _ring(s, i)]
        if v > best:
            best = v
            ic = i
    ic += s["ic_offset"]
    if s["ic_forward_weight"] <= 0.0:
        return ic
    # The braking minimum of the forward acceleration (smoothed as the vertical one) near the jerk's contact.
    lo = max(ic - s["ic_forward_before"], s["smooth_half"])
    hi = ic + s["ic_forward_after"]
    brake = lo
    lowest = np.inf
    highest = -np.inf
    for i in range(lo, hi):
        v = 0.0
        for j in range(2 * s["smooth_half"] + 1):
            v += s["smooth_kernel"][j] * rings[FORWARD, _ring(s, i - s["smooth_half"] + j)]
        if v < lowest:
            lowest = v
            brake = i
        highest = max(highest, v)
    if highest - lowest < _FLAT_FORWARD_M_S2:
        return ic  # no braking seen: the forward acceleration stays flat (a bump, a sensor at rest)
    w = s["ic_forward_weight"]
    return int(np.floor((1.0 - w) * ic + w * (brake - s["ic_forward_lag"]) + 0.5))


@njit(cache=True)
def _is_transition(s, rings, anchor):
    """The trunk pitches or rolls fast around this peak: sitting down, standing up or bending, not a step."""
    for i in range(max(anchor - s["transition_window"], 0), anchor + s["transition_window"] + 1):
        if rings[TILT_RATE, _ring(s, i)] > s["transition_rate_rad_s"]:
            return True
    return False


@njit(cache=True)
def _side(s, st, k, back, fwd):
    """This step's lateral score against its nearest chain neighbours that are steps themselves (the sides
    alternate): LEFT if above, else RIGHT."""
    score = st["score"][k % PENDING]
    neighbours = 0.0
    count = 0
    j = _strong_neighbour(s, st, k, -1, back)
    if j >= 0:
        neighbours += st["score"][j % PENDING]
        count += 1
    j = _strong_neighbour(s, st, k, 1, fwd)
    if j >= 0:
        neighbours += st["score"][j % PENDING]
        count += 1
    if count > 0:
        score -= neighbours / count
    return LEFT if score > 0.0 else RIGHT


@njit(cache=True)
def _strong_neighbour(s, st, k, direction, chained):
    """The nearest anchor in this direction among the chained ones whose peak makes it a step; -1 if none."""
    j = k
    for _ in range(chained):
        j += direction
        if st["peak"][j % PENDING] >= s["min_peak_m_s2"]:
            return j
    return -1


@njit(cache=True)
def _final_contact(s, st, rings, k, anchor, fwd):
    """Toe off of the other foot: the steepest fall after the loading peak, before the next heel-strike search;
    only when a next step follows (the last step of a walk is not followed by a toe off that starts a swing).
    The sample without the offset, -1 if none."""
    fc_hi = -1
    if fwd > 0:
        fc_hi = min(anchor + s["fc_after"], st["anchor"][(k + 1) % PENDING] - s["ic_before"] - 1)
    fc = -1
    best = np.inf
    for i in range(anchor, fc_hi + 1):
        v = rings[JERK, _ring(s, i)]
        if v < best:
            best = v
            fc = i
    return fc


@njit(cache=True)
def _emit(st, out_sample, out_kind, out_side, n_out, sample, kind, side):
    """Write one event if it comes after the last one written (keeps the output ordered); the new count."""
    if sample <= st["last_emitted"]:
        return n_out
    out_sample[n_out] = sample
    out_kind[n_out] = kind
    out_side[n_out] = side
    st["last_emitted"] = sample
    return n_out + 1


@njit(cache=True)
def _decide(s, st, rings, out_sample, out_kind, out_side, n_out):
    """Decide the oldest undecided anchor: walking or not, its contacts and side; returns the new output count."""
    k = st["n_decided"]
    anchor = st["anchor"][k % PENDING]
    back, fwd = _chain(s, st, k)
    st["n_decided"] = k + 1
    if st["peak"][k % PENDING] < s["min_peak_m_s2"]:
        return n_out  # a weak peak: a neighbour in the chain of the steps around it, no step of its own
    ic = _initial_contact(s, rings, anchor)
    if _is_transition(s, rings, anchor) or back + fwd + 1 < s["min_steps"]:
        if anchor - st["last_walk_anchor"] > s["max_step"]:
            st["walking"] = False
        return n_out
    st["walking"] = True
    st["last_walk_anchor"] = anchor
    side = _side(s, st, k, back, fwd)
    fc = _final_contact(s, st, rings, k, anchor, fwd)
    n_out = _emit(st, out_sample, out_kind, out_side, n_out, ic, IC, side)
    if fc >= 0:
        n_out = _emit(st, out_sample, out_kind, out_side, n_out, fc + s["fc_offset"], FC,
                      RIGHT if side == LEFT else LEFT)
    return n_out


@njit(cache=True, inline="always")
def _earth_signals(s, st, acc_sensor_m_s2, gyr_sensor_rad_s, q_sensor_to_earth, b):
    """Vertical and lateral acceleration of input row b, returned and kept in st["last_*"] with the tilt rate; an
    invalid row (NaN, a degenerate quaternion) gives the previous values."""
    qw = q_sensor_to_earth[b, 0]
    qx = q_sensor_to_earth[b, 1]
    qy = q_sensor_to_earth[b, 2]
    qz = q_sensor_to_earth[b, 3]
    ax = acc_sensor_m_s2[b, 0]
    ay = acc_sensor_m_s2[b, 1]
    az = acc_sensor_m_s2[b, 2]
    norm_q = qw * qw + qx * qx + qy * qy + qz * qz
    if not (np.isfinite(norm_q) and norm_q > 0.25 and np.isfinite(ax + ay + az)):
        return st["last_vertical_m_s2"], st["last_lateral_m_s2"], st["last_forward_m_s2"]
    inv = 1.0 / norm_q
    # Rows of R_sensor_to_earth (unit-normalised on the fly).
    r00 = (1.0 - 2.0 * (qy * qy + qz * qz) * inv)
    r01 = 2.0 * (qx * qy - qw * qz) * inv
    r02 = 2.0 * (qx * qz + qw * qy) * inv
    r10 = 2.0 * (qx * qy + qw * qz) * inv
    r11 = (1.0 - 2.0 * (qx * qx + qz * qz) * inv)
    r12 = 2.0 * (qy * qz - qw * qx) * inv
    r20 = 2.0 * (qx * qz - qw * qy) * inv
    r21 = 2.0 * (qy * qz + qw * qx) * inv
    r22 = (1.0 - 2.0 * (qx * qx + qy * qy) * inv)
    up = r20 * ax + r21 * ay + r22 * az
    if not st["baseline_ready"]:
        st["baseline_m_s2"] = up
        st["baseline_ready"] = True
    st["baseline_m_s2"] += s["baseline_alpha"] * (up - st["baseline_m_s2"])
    vertical = up - st["baseline_m_s2"]
    # Lateral: the sensor's left axis (column 1 of R) laid flat; heading is not needed.
    lx = r01
    ly = r11
    ln = np.sqrt(lx * lx + ly * ly)
    lateral = 0.0
    if ln > 0.3:  # the left axis is not (nearly) vertical: the wearer is upright-ish
        lateral = ((r00 * ax + r01 * ay + r02 * az) * lx + (r10 * ax + r11 * ay + r12 * az) * ly) / ln
    # Forward: the sensor's forward axis (column 0) laid flat, likewise.
    fn = np.sqrt(r00 * r00 + r10 * r10)
    forward = 0.0
    if fn > 0.3:
        forward = ((r00 * ax + r01 * ay + r02 * az) * r00 + (r10 * ax + r11 * ay + r12 * az) * r10) / fn
    gx = gyr_sensor_rad_s[b, 0]
    gy = gyr_sensor_rad_s[b, 1]
    gz = gyr_sensor_rad_s[b, 2]
    if np.isfinite(gx + gy + gz):
        wx = r00 * gx + r01 * gy + r02 * gz
        wy = r10 * gx + r11 * gy + r12 * gz
        st["last_tilt_rate_rad_s"] = np.sqrt(wx * wx + wy * wy)
        wz = r20 * gx + r21 * gy + r22 * gz
        st["yaw_rate_rad_s"] += s["turn_alpha"] * (wz - st["yaw_rate_rad_s"])
    # A turn to the left (+ yaw rate) accelerates the pelvis to the left, toward the turn's centre, by v·ω.
    lateral -= s["turn_speed_m_s"] * st["yaw_rate_rad_s"]
    st["last_vertical_m_s2"] = vertical
    st["last_lateral_m_s2"] = lateral
    st["last_forward_m_s2"] = forward
    return vertical, lateral, forward


@njit(cache=True, inline="always")
def _filter_vertical(s, rings, n):
    """Smoothed vertical acceleration at sample n - smooth_half, vertical jerk at n - impact_half."""
    m = n - s["smooth_half"]
    if m >= 0:
        acc_sum = 0.0
        for j in range(2 * s["smooth_half"] + 1):
            acc_sum += s["smooth_kernel"][j] * rings[VERTICAL, _ring(s, max(m - s["smooth_half"] + j, 0))]
        rings[SMOOTH, _ring(s, m)] = acc_sum
    mj = n - s["impact_half"]
    if mj >= 0:
        acc_sum = 0.0
        for j in range(2 * s["impact_half"] + 1):
            acc_sum += s["impact_kernel"][j] * rings[VERTICAL, _ring(s, max(mj - s["impact_half"] + j, 0))]
        rings[JERK, _ring(s, mj)] = acc_sum


@njit(cache=True, inline="always")
def _find_anchor(s, st, rings, c):
    """A step anchor at sample c: at least chain_peak_m_s2 and the largest within ± peak_half (the first of equal
    values); remembered with its side score and its peak."""
    if c < 0:
        return
    v = rings[SMOOTH, _ring(s, c)]
    if v < s["chain_peak_m_s2"]:
        return
    for i in range(max(c - s["peak_half"], 0), c + s["peak_half"] + 1):
        w = rings[SMOOTH, _ring(s, i)]
        if (i < c and w >= v) or (i > c and w > v):
            return
    if st["n_anchors"] - st["n_decided"] >= PENDING - 1:
        st["n_decided"] += 1  # cannot happen with the checked settings; never overwrite pending
    slot = st["n_anchors"] % PENDING
    st["anchor"][slot] = c
    # Side score: mean lateral acceleration over the window before the heel-strike search.
    total = 0.0
    end = c - s["ic_before"] // 2
    for i in range(end - s["side_window"], end):
        total += rings[LATERAL, _ring(s, max(i, 0))]
    st["score"][slot] = total / s["side_window"]
    st["peak"][slot] = v
    st["n_anchors"] += 1


@njit(cache=True)
def events_update(settings, state, rings, acc_sensor_m_s2, gyr_sensor_rad_s, q_sensor_to_earth,
                  out_sample, out_kind, out_side, vertical_out_m_s2, walking_out):
    """The events stage kernel: one block; writes the settled events to out_* and returns how many. Allocates
    nothing. rings: make_rings(settings), carried from block to block like the state.

    vertical_out_m_s2[i]: earth-vertical acceleration of input sample i (gravity baseline removed);
    walking_out[i]: the walking flag after sample i (it refers to the anchor decided delay samples earlier).
    The angular rate is used only to recognise postural transitions (fast trunk pitch or roll).
    """
    s = settings[0]
    st = state[0]
    n_out = 0
    for b in range(acc_sensor_m_s2.shape[0]):
        n = st["samples_seen"]
        vertical, lateral, forward = _earth_signals(s, st, acc_sensor_m_s2, gyr_sensor_rad_s, q_sensor_to_earth, b)
        rings[VERTICAL, _ring(s, n)] = vertical
        rings[TILT_RATE, _ring(s, n)] = st["last_tilt_rate_rad_s"]
        rings[LATERAL, _ring(s, n)] = lateral
        rings[FORWARD, _ring(s, n)] = forward
        vertical_out_m_s2[b] = vertical
        _filter_vertical(s, rings, n)
        _find_anchor(s, st, rings, n - s["smooth_half"] - s["peak_half"])
        # Decide every anchor whose look-ahead is complete.
        while st["n_decided"] < st["n_anchors"] and n - st["anchor"][st["n_decided"] % PENDING] >= s["delay"]:
            n_out = _decide(s, st, rings, out_sample, out_kind, out_side, n_out)
        if st["walking"] and n - s["delay"] - st["last_walk_anchor"] > s["max_step"]:
            st["walking"] = False
        walking_out[b] = st["walking"]
        st["samples_seen"] = n + 1
    return n_out


class EventDetector:
    """Streaming contact detector: ``update(acc, gyr, q)`` per block returns the contacts settled in it.

    fs_hz: sample rate, MIN_RATE_HZ to MAX_RATE_HZ (25-1000 Hz). settings: any of DEFAULT_SETTINGS (seconds, m/s²).
    Inputs per block: ``acc_sensor_m_s2`` (n, 3), ``gyr_sensor_rad_s`` (n, 3: only its pitch and roll rate are
    used, to veto postural transitions), ``q_sensor_to_earth`` (n, 4, earth z up, heading arbitrary). Output:
    EVENT_DTYPE array ordered by sample, with absolute sample indices. A contact is reported about
    ``delay_samples`` after it happened.

    Readable states for plots and tests: ``walking`` (the latest decision), ``walking_per_sample`` and
    ``vertical_acc_m_s2`` of the last block, ``delay_samples``.
    """

    def __init__(self, fs_hz: float, **settings):
        self.fs_hz = float(fs_hz)
        self.settings = make_settings(self.fs_hz, **settings)
        self.state = make_state()
        self.rings = make_rings(self.settings)
        self.vertical_acc_m_s2 = np.zeros(0)
        self.walking_per_sample = np.zeros(0, dtype=bool)

    @property
    def delay_samples(self) -> int:
        """Look-ahead after a step's anchor before its contacts are reported (the anchor trails the contact by
        about 0.05 s, so a contact is reported about delay_samples + 5 samples at 100 Hz after it happened)."""
        s = self.settings[0]
        return int(s["delay"])

    @property
    def walking(self) -> bool:
        return bool(self.state[0]["walking"])

    @property
    def samples_seen(self) -> int:
        return int(self.state[0]["samples_seen"])

    def update(self, acc_sensor_m_s2, gyr_sensor_rad_s, q_sensor_to_earth) -> np.ndarray:
        acc = _as_block(acc_sensor_m_s2, 3, "acc_sensor_m_s2")
        gyr = _as_block(gyr_sensor_rad_s, 3, "gyr_sensor_rad_s")
        q = _as_block(q_sensor_to_earth, 4, "q_sensor_to_earth")
        if not len(acc) == len(gyr) == len(q):
            raise InvalidValueError(f"blocks differ in length: acc {len(acc)}, gyr {len(gyr)}, q {len(q)} samples; "
                                    f"pass one row per sample in each")
        n = len(acc)
        # Each anchor yields at most two events; anchors are more than peak_half apart, plus the pending ones.
        capacity = 2 * (n // (int(self.settings[0]["peak_half"]) + 1) + PENDING + 1)
        out_sample = np.empty(capacity, np.int64)
        out_kind = np.empty(capacity, np.int8)
        out_side = np.empty(capacity, np.int8)
        self.vertical_acc_m_s2 = np.empty(n)
        self.walking_per_sample = np.empty(n, dtype=np.bool_)
        count = events_update(self.settings, self.state, self.rings, acc, gyr, q, out_sample, out_kind, out_side,
                              self.vertical_acc_m_s2, self.walking_per_sample)
        events = np.empty(count, EVENT_DTYPE)
        events["sample"] = out_sample[:count]
        events["kind"] = out_kind[:count]
        events["side"] = out_side[:count]
        return events

    def flush(self) -> np.ndarray:
        """Settle the contacts still waiting for their look-ahead by feeding still samples (the wearer stopped).

        The detector then carries on from the flushed state; use it at the end of a stream.
        """
        n = self.delay_samples + int(self.settings[0]["peak_half"] + self.settings[0]["smooth_half"]) + 1
        acc = np.zeros((n, 3))
        q = np.zeros((n, 4))
        q[:, 0] = 1.0
        # A still sensor reads its baseline: the vertical acceleration (gravity removed) stays at zero.
        acc[:, 2] = self.state[0]["baseline_m_s2"] if self.state[0]["baseline_ready"] else _GRAVITY_GUESS_M_S2
        return self.update(acc, np.zeros((n, 3)), q)


def detect_events(acc_sensor_m_s2, gyr_sensor_rad_s, q_sensor_to_earth, fs_hz: float, **settings) -> np.ndarray:
    """Whole-array contacts (EVENT_DTYPE, ordered by sample): the streaming kernel run once over the recording.

    Contacts in the last ``delay_samples`` of the recording are settled as well: the stream is flushed with
    samples that hold still (no steps), as if the wearer had stopped.
    """
    detector = EventDetector(fs_hz, **settings)
    events = detector.update(acc_sensor_m_s2, gyr_sensor_rad_s, q_sensor_to_earth)
    n_samples = detector.samples_seen
    events = np.concatenate([events, detector.flush()])
    return events[events["sample"] < n_samples]




def _as_block(x, width: int, name: str) -> np.ndarray:
    a = np.ascontiguousarray(x, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != width:
        raise InvalidValueError(f"{name} has shape {a.shape}; expected (n, {width}) with one row per sample")
    return a
