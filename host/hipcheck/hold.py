"""Single-leg hold: found in the signal, timed, and scored for the "cheats" a therapist watches for.

No events are given. A hold is recognised from the lower-back motion alone (docs/detectors.md):

- **Lift-off** is the weight shift toward the stance leg: the pelvis moves several cm sideways in about half a
  second. A smooth step of ``step_rise_s`` plus a quadratic is fitted by least squares to the doubly integrated
  lateral acceleration over ± ``step_half_s`` (fixed weights on the acceleration, ``step_fit_weights``): the
  quadratic takes up position, velocity and a constant acceleration offset, so the levelling error of the fusion
  never enters. The fit's amplitude peaks at the middle of a shift (its sign the stance side), flanked by side lobes
  of the opposite sign and ~0.45 of its size at ±0.7 ``step_half_s``. The first peak of at least ``shift_min_cm``
  from quiet stance (valid, no walking for ``quiet_before_s``) is the lift-off if its leading lobe is there; if not
  it may be the leading lobe itself, and a larger opposite peak within ``lobe_s`` after it is taken instead. It must
  also be ``lift_over_sway`` times every fit of the stance before it (two-leg sway makes steps of its own).
- **Lowering** is a peak of the fit back toward the free side of at least ``end_fraction`` of the lift shift (more
  than ``lobe_s`` after the start, clear of the lift's own lobe), confirmed ``confirm_s`` later when the weight
  shift, the obliquity and the sway all agree (see ``_lowering_agrees``). A touchdown or a one-leg sway swing
  fails one of them. ``flush()`` fits the last samples with cut windows and closes a hold still open.
- **Touchdowns** (the free foot tapping down) are quick transients of horizontal acceleration, far faster than
  postural sway: energy above ``touchdown_hp_hz`` over ``touchdown_m_s2``. They are counted, and the samples around
  them are left out of the metrics.
- Walking (vertical acceleration RMS over ``walk_m_s2``) aborts a hold that is not ending, and a hold shorter than
  ``min_hold_s`` is not one.

Metrics, over the hold without ``settle_s`` after lift-off and before lowering and without touchdowns:

- drop: mean obliquity against the two-leg baseline (mean over the ``quiet_before_s`` before the lift shift), signed
  for the free side: + = the free side sank (the stance hip's abductors give way, Trendelenburg), − = hiked.
- tilt drift: mean tilt over the last ``drift_window_s`` minus the first (+ = drifted anterior).
- sway of the horizontal acceleration after the low-pass of 3.5 Hz used by Mancini et al. (2012, "ISway: a
  sensitive, valid and reliable measure of postural control", J NeuroEng Rehabil 9:59): RMS about the mean, JERK
  = ½ ∫ |d a/dt|² dt (their definition, m²/s⁵) and its duration-free form jerk_rms_m_s3, PATH = the length of the
  acceleration trajectory (m/s²), and the 95 % confidence ellipse area 2π·F·√(s_ap² s_ml² − s_apml²) with
  F = F.05[2, n−2] ≈ 3.00 for long records (Prieto et al. 1996, "Measures of postural steadiness: differences
  between healthy young and elderly adults", IEEE Trans Biomed Eng 43:956–966; applied to acceleration as in
  Mancini 2012).

Inputs: ``angles_pelvis_deg`` (n, 3: rotation, obliquity + = left side higher, tilt + = anterior) and
``acc_level_m_s2`` (n, 3: specific force minus gravity in a level frame, x forward and y left along the pelvis,
z up). Fixed delay: a fit is known ``step_half_s`` after its centre, a lift-off ``lobe_s`` later at most (≈ 1.9 s
after the middle of the shift; ``holding`` turns true then, ``hold_time_s`` counts from the middle). A hold is
reported once its end is confirmed, about ``confirm_s`` + ``step_half_s`` after the lowering shift, or by
``flush()``.
Limits, measured on simulated holds through fusion → pelvis, are in docs/detectors.md.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from hipcheck.errors import InvalidValueError
from hipcheck.filters import butter2_coefficients, butter2_highpass, butter2_lowpass
from hipcheck.gait import LEFT, RIGHT
from hipcheck.settings import merged_settings
from hipcheck.units import GRAVITY_M_S2

__all__ = ["HOLD_DTYPE", "SETTINGS_DTYPE", "STATE_DTYPE", "DEFAULT_SETTINGS", "make_settings", "hold_update",
           "HoldAnalyzer", "analyze_holds"]

HOLD_DTYPE = np.dtype([
    ("start_sample", np.int64),  # middle of the lift-off weight shift
    ("end_sample", np.int64),  # middle of the lowering weight shift (the last sample if ended_by_stream_end)
    ("side", np.int8),  # the STANCE leg, LEFT or RIGHT
    ("hold_time_s", np.float64),
    ("shift_cm", np.float64),  # lateral weight shift toward the stance leg at lift-off
    ("baseline_obliquity_deg", np.float64),  # two-leg stance before lift-off, + = left side higher
    ("baseline_tilt_deg", np.float64),  # + = anterior
    ("drop_deg", np.float64),  # free side against the two-leg baseline: + = dropped, − = hiked
    ("tilt_drift_deg", np.float64),  # tilt at the end minus at the start of the hold, + = toward anterior
    ("sway_rms_m_s2", np.float64),  # RMS of the horizontal acceleration about its mean (2D)
    ("sway_rms_ml_m_s2", np.float64),  # medio-lateral part
    ("sway_rms_ap_m_s2", np.float64),  # antero-posterior part
    ("jerk_m2_s5", np.float64),  # Mancini 2012 JERK: ½ ∫ |da/dt|² dt
    ("jerk_rms_m_s3", np.float64),  # √ mean |da/dt|²
    ("path_m_s2", np.float64),  # length of the acceleration trajectory
    ("ellipse_95_m2_s4", np.float64),  # 95 % confidence ellipse of the acceleration (Prieto 1996)
    ("sway_ratio", np.float64),  # sway_rms_m_s2 over that of the two-leg baseline
    ("touchdowns", np.int32),  # brief foot-down during the hold
    ("capped", np.bool_),  # the hold reached max_hold_s and was cut there
    ("ended_by_stream_end", np.bool_),  # flush(): the stream stopped during the hold, no lowering was seen
    ("return_shift_cm", np.float64),  # lateral shift back toward the free side at lowering (0 if none seen)
])

# User settings and their defaults.
DEFAULT_SETTINGS = dict(
    shift_min_cm=2.5,  # least lateral shift (step-fit amplitude) that counts as a lift-off
    shift_max_cm=15.0,  # a larger "shift" is not a weight shift
    guided_shift_min_cm=1.5,  # least shift of a lift-off the user announced (expect_lift): no sway step to reject
    guided_before_s=3.0,  # the long fit of an announced lift-off starts this long before its window ...
    guided_after_s=2.0,  # ... and ends this long after it (the lift-off is decided then)
    end_fraction=0.4,  # a lowering shift is at least this fraction of the lift shift
    min_hold_s=2.0,  # a shorter hold is not one
    max_hold_s=120.0,  # longest hold kept (the buffer); a longer one is cut and marked capped
    quiet_before_s=1.0,  # valid, non-walking data needed before the middle of the lift shift
    walk_m_s2=0.6,  # vertical acceleration RMS above this is walking or stepping
    step_half_s=1.0,  # the step fit spans ± this about its centre: the analyser's fixed delay
    step_rise_s=0.5,  # duration of the fitted smooth step (a weight shift takes about half a second)
    lobe_s=0.9,  # the step fit's side lobes lie within this of a step (at ±0.7 step_half_s)
    lobe_before_ratio=0.3,  # a step is preceded by its opposite lobe of at least this fraction
    lift_over_sway=2.0,  # a lift-off step is this many times the largest step fit of the stance before
    return_ratio=1.0,  # a lowering followed within keep_s by a shift back of this fraction is not one
    keep_s=1.2,  # window after a lowering shift in which a shift back (touchdown) is looked for
    confirm_s=2.5,  # a lowering shift must stay (and the obliquity agree) this long after its middle
    obliquity_agree_deg=1.5,  # a hold whose obliquity left its baseline by this much must return
    quiet_ratio=0.25,  # after lowering, the sway is within this fraction of the way from the baseline's to the hold's
    baseline_s=3.0,  # the two-leg baseline: the quiet stance before lift-off, up to this long
    settle_s=0.4,  # left out of the metrics after lift-off, before lowering
    drift_window_s=1.0,  # tilt averaged over this at the start and at the end
    level_window_s=4.0,  # the levelling error is measured over this at each end of the hold (tilt drift)
    level_min_s=1.0,  # ... and not corrected from a window shorter than this
    touchdown_hp_hz=4.0,  # high-pass cut-off of the touchdown detector
    touchdown_m_s2=1.0,  # a touchdown: energy above touchdown_hp_hz beyond this
    touchdown_pad_s=0.4,  # left out of the metrics around each touchdown transient
    sway_lowpass_hz=3.5,  # low-pass of the sway measures (Mancini 2012)
    bias_tau_s=4.0,  # slow mean of the acceleration removed before the sway and walking measures
)

SETTINGS_DTYPE = np.dtype([("fs_hz", np.float64)] + [(name, np.float64) for name in DEFAULT_SETTINGS])

QUIET = 0  # two-leg stance, walking, anything but a hold
HOLDING = 1
AFTER_CAP = 2  # a capped hold was reported; waiting for the lowering shift

# Ring-buffer columns, per sample.
# _LX, _LY: acc_level x, y as given (NaN: invalid). Typed (np.int64), as the flags handed to _finish (np.bool_):
# numba compiles a helper once per literal value it is called with (_window_mean four times for four columns).
_OBL, _TILT, _AX, _AY, _EXCLUDED, _LX, _LY = (np.int64(k) for k in range(7))
_N_COLS = 7
_EXTRA_BUFFER_S = 10.0  # baseline before, confirmation after
_N_BURSTS = 8  # recent touchdown transients remembered (a hold is recognised after its first ones may have passed)

STATE_DTYPE = np.dtype([
    ("next_sample", np.int64),
    ("mode", np.int8),  # QUIET, HOLDING, AFTER_CAP
    ("n_valid", np.int64),  # valid samples seen
    ("valid_run", np.int64),  # consecutive valid samples up to the last one
    ("bias", np.float64, (3,)),  # slow mean of acc_level
    ("lp", np.float64, (2, 2)),  # Butterworth states (hipcheck.filters) of the sway low-pass, for x and y
    ("hp", np.float64, (2, 2)),  # ... of the touchdown high-pass
    ("hf_energy", np.float64),  # smoothed square of the high-passed horizontal acceleration
    ("z_energy", np.float64),  # smoothed square of the vertical acceleration
    ("quiet_since", np.int64),  # first sample after the last walking or invalid sample (or the last hold's end)
    ("candidate", np.int64),  # a lift-off step waiting for its side lobes to be seen (-1: none)
    ("candidate_m", np.float64),
    ("start", np.int64),
    ("side", np.int8),
    ("shift_m", np.float64),
    ("baseline_obl", np.float64),
    ("baseline_tilt", np.float64),
    ("baseline_rms", np.float64),
    ("baseline_level_y", np.float64),  # levelling error (m/s², acc_level y) over the baseline; NaN: not measured
    ("touchdowns", np.int32),
    ("in_burst", np.int8),
    ("last_burst", np.int64),
    ("burst_onsets", np.int64, (_N_BURSTS,)),  # ring of recent counted transient onsets
    ("n_bursts", np.int64),
    ("exclude_until", np.int64),
    ("run_sign", np.int8),  # the current run of one sign of the step fit
    ("run_peak", np.float64),
    ("run_peak_sample", np.int64),
    ("pending", np.int8),  # a lowering shift is waiting for its confirmation
    ("pending_centroid", np.int64),  # middle of the lowering shift (the peak of the step fit)
    ("pending_area", np.float64),  # its size, m, signed (+ = left)
    ("pending_back", np.float64),  # largest step fit back toward the stance side within keep_s after it, m
    # A lift-off expected by the user (expect_lift): only a shift centred in [go_lo, go_hi] starts a hold.
    ("guided", np.int8),  # 0: automatic; 1: waiting for the expected lift-off; 2: its window passed with no shift;
    # 3: its hold was started (2 and 3: no automatic search, idle until the next expect_lift)
    ("go_lo", np.int64),
    ("go_hi", np.int64),
    ("best_sample", np.int64),  # the largest shift in the window so far (-1: none)
    ("best_m", np.float64),
    ("started_at", np.int64),  # step-fit centre at which the last guided start was decided (-1: none yet)
    ("short_sample", np.int64),  # the lift-off the short step fit chose (-1: none yet), waiting for the long fit
    ("short_m", np.float64),
])


def make_settings(fs_hz: float, **overrides) -> np.ndarray:
    """One settings record (SETTINGS_DTYPE) with the documented defaults; overrides by field name."""
    values = merged_settings("hold", DEFAULT_SETTINGS, overrides, fs_hz)
    settings = np.zeros(1, dtype=SETTINGS_DTYPE)
    for name, value in values.items():
        settings[name] = value
    settings["fs_hz"] = fs_hz
    for name in ("sway_lowpass_hz", "touchdown_hp_hz"):
        if not 0 < settings[name][0] < 0.5 * fs_hz:
            raise InvalidValueError(f"{name}={settings[name][0]:g} must lie between 0 and the Nyquist frequency "
                             f"({0.5 * fs_hz:g} Hz)")
    if not 0 < settings["step_rise_s"][0] < settings["step_half_s"][0]:
        raise InvalidValueError("step_rise_s must be positive and shorter than step_half_s")
    return settings


def _coefficients(fc_hz: float, fs_hz: float) -> np.ndarray:
    """Coefficients of the second-order Butterworth of hipcheck.filters for a cut-off in Hz."""
    c = np.empty(3)
    butter2_coefficients(fc_hz / fs_hz, c)
    return c


def _smooth_step(u):
    """0 → 1 over u in [0, 1], quintic smoothstep (zero slope and curvature at both ends)."""
    u = np.clip(u, 0.0, 1.0)
    return u ** 3 * (10.0 - 15.0 * u + 6.0 * u * u)


def step_fit_weights(fs_hz: float, half_s: float, rise_s: float, after: int | None = None) -> np.ndarray:
    """Weights w (on lateral acceleration, oldest first) whose sum Σ w·a over a window is the least-squares
    amplitude (m) of a smooth step of ``rise_s`` centred in the window, fitted together with a quadratic to the
    doubly integrated acceleration over ± ``half_s``. The quadratic takes up the unknown position, velocity and a
    constant acceleration offset (levelling error, bias): the weights sum to zero and have zero first moment, so
    the integration constants never enter. ``after``: samples after the centre when fewer than the full
    half-window are available (the end of a stream)."""
    half = int(round(half_s * fs_hz))
    after = half if after is None else int(after)
    tau = np.arange(-half, after + 1) / fs_hz
    design = np.column_stack([np.ones_like(tau), tau, tau * tau, _smooth_step(tau / rise_s + 0.5)])
    h = np.linalg.pinv(design)[-1]  # amplitude = h · x, x the position samples
    # x[k] = Σ_{j<k} (k − j) a[j] dt² (the integration constants are in the quadratic): amplitude = Σ_j w[j] a[j].
    n = len(tau)
    k = np.arange(n)
    lag = k[None, :] - k[:, None]  # [j, k] = k − j
    w = np.sum(np.where(lag > 0, lag, 0) * h[None, :], axis=1) / (fs_hz * fs_hz)
    return w


# ------------------------------------------------------------------------------------------------ numba kernel


@numba.njit(cache=True)
def _window_mean(buffer, column, lo, hi):
    """Mean of a buffer column over samples [lo, hi), skipping excluded samples; NaN if none."""
    n_rows = buffer.shape[0]
    total = 0.0
    n = 0
    for s in range(lo, hi):
        row = s % n_rows
        if buffer[row, _EXCLUDED] == 0.0 and math.isfinite(buffer[row, column]):
            total += buffer[row, column]
            n += 1
    return total / n if n > 0 else math.nan


@numba.njit(cache=True)
def _window_rms(buffer, lo, hi):
    """RMS about the mean of the 2D horizontal acceleration over [lo, hi), skipping excluded samples."""
    mx = _window_mean(buffer, _AX, lo, hi)
    my = _window_mean(buffer, _AY, lo, hi)
    n_rows = buffer.shape[0]
    total = 0.0
    n = 0
    for s in range(lo, hi):
        row = s % n_rows
        if buffer[row, _EXCLUDED] == 0.0:
            total += (buffer[row, _AX] - mx) ** 2 + (buffer[row, _AY] - my) ** 2
            n += 1
    return math.sqrt(total / n) if n > 0 else math.nan


@numba.njit(cache=True)
def _level_error(buffer, column, lo, hi, min_n, fs):
    """The constant part (m/s²) of one horizontal component of acc_level over samples [lo, hi): the quadratic
    coefficient (× 2) of a least-squares fit of position, velocity and a constant acceleration to its double
    integral. Standing, the pelvis stays within a few cm, so over T seconds its own acceleration enters this fit
    only as ~ sway / T², while gravity leaking through an orientation error δ (rad) enters in full, g·δ: this is the
    fusion's levelling error, to be taken out of the angles. A mean of the acceleration would keep the sway's
    velocity change over the window (≈ 1° at T = 1 s on one leg). NaN with fewer than min_n samples or an invalid
    one."""
    n_rows = buffer.shape[0]
    n = hi - lo
    if n < max(min_n, 3):
        return math.nan
    dt = 1.0 / fs
    mid = 0.5 * (n - 1)
    v = x = 0.0
    s2 = s4 = x0 = x2 = 0.0
    for k in range(n):
        a = buffer[(lo + k) % n_rows, column]
        if not math.isfinite(a):
            return math.nan
        t = (k - mid) * dt
        s2 += t * t
        s4 += t * t * t * t
        x0 += x
        x2 += x * t * t
        x += v * dt
        v += a * dt
    # Normal equations of x ≈ p + v·t + q·t² with t centred (odd moments vanish): q = (n·X2 − S2·X0)/(n·S4 − S2²).
    return 2.0 * (n * x2 - s2 * x0) / (n * s4 - s2 * s2)


@numba.njit(cache=True)
def _level_change(settings, buffer, column, lo, hi, before):
    """The correction (deg) to add to a difference of obliquity (column _LY) or tilt (_LX) between an earlier
    window, whose levelling error was ``before`` (m/s²; NaN: unknown, no correction), and the samples [lo, hi):
    it takes out the change of the fusion's own error between the two. A fused frame rolled δ too far (obliquity
    δ too high) reads gravity as −g·δ along y; one pitched δ too far forward (tilt δ too high), as +g·δ along x.
    The causal fusion settles over tens of seconds after switching on, and again once the one-leg sway begins
    (docs/detectors.md)."""
    fs = settings["fs_hz"]
    now = _level_error(buffer, column, lo, hi, int(round(settings["level_min_s"] * fs)), fs)
    change = now - before
    if not math.isfinite(change):
        return 0.0
    sign = 1.0 if column == _LY else -1.0
    return sign * math.degrees(change / GRAVITY_M_S2)


@numba.njit(cache=True)
def _fit_max(fit_ring, lo, hi, sign, latest):
    """Largest sign × step fit over centre samples [lo, hi] (NaN skipped; 0 if none); latest: the newest centre in
    the ring (older ones than it holds are skipped)."""
    n_rows = fit_ring.shape[0]
    lo = max(lo, latest - n_rows + 1, 0)
    hi = min(hi, latest)
    best = 0.0
    for c in range(lo, hi + 1):
        v = sign * fit_ring[c % n_rows]
        if v > best:  # NaN compares False
            best = v
    return best


@numba.njit(cache=True)
def _fit_argmax(fit_ring, lo, hi, sign, latest):
    n_rows = fit_ring.shape[0]
    lo = max(lo, latest - n_rows + 1, 0)
    hi = min(hi, latest)
    best = 0.0
    at = -1
    for c in range(lo, hi + 1):
        v = sign * fit_ring[c % n_rows]
        if v > best:
            best = v
            at = c
    return at


@numba.njit(cache=True)
def _finish(settings, st, buffer, end, capped, by_stream_end, return_shift_m, out, n_out):
    """Write the hold that ends at sample end into out[n_out]; returns the new count."""
    fs = settings["fs_hz"]
    start = st["start"]
    settle = int(round(settings["settle_s"] * fs))
    lo = start + settle
    hi = max(lo + 1, end - settle)
    n_rows = buffer.shape[0]
    rec = out[n_out]
    rec["start_sample"] = start
    rec["end_sample"] = end
    rec["side"] = st["side"]
    rec["hold_time_s"] = (end - start) / fs
    rec["shift_cm"] = 100.0 * abs(st["shift_m"])
    rec["baseline_obliquity_deg"] = st["baseline_obl"]
    rec["baseline_tilt_deg"] = st["baseline_tilt"]
    # Obliquity + = left side higher: on the right leg the free (left) side sinks as the obliquity falls.
    toward_free = 1.0 if st["side"] == LEFT else -1.0
    rec["drop_deg"] = toward_free * (_window_mean(buffer, _OBL, lo, hi) - st["baseline_obl"]
                                     + _level_change(settings, buffer, _LY, lo, hi, st["baseline_level_y"]))
    window = max(1, int(round(settings["drift_window_s"] * fs)))
    level = min(int(round(settings["level_window_s"] * fs)), (hi - lo) // 2)
    rec["tilt_drift_deg"] = (_window_mean(buffer, _TILT, max(lo, hi - window), hi)
                             - _window_mean(buffer, _TILT, lo, min(hi, lo + window))
                             + _level_change(settings, buffer, _LX, hi - level, hi,
                                             _level_error(buffer, _LX, lo, lo + level,
                                                          int(round(settings["level_min_s"] * fs)), fs)))
    # Sway: moments of the low-passed horizontal acceleration, differences only between neighbouring kept samples.
    mx = _window_mean(buffer, _AX, lo, hi)
    my = _window_mean(buffer, _AY, lo, hi)
    sxx = syy = sxy = 0.0
    jerk_sq = 0.0
    path = 0.0
    n = 0
    n_diff = 0
    for s in range(lo, hi):
        row = s % n_rows
        if buffer[row, _EXCLUDED] != 0.0:
            continue
        dx = buffer[row, _AX] - mx
        dy = buffer[row, _AY] - my
        sxx += dx * dx
        syy += dy * dy
        sxy += dx * dy
        n += 1
        prev = (s - 1) % n_rows
        if s > lo and buffer[prev, _EXCLUDED] == 0.0:
            step_x = buffer[row, _AX] - buffer[prev, _AX]
            step_y = buffer[row, _AY] - buffer[prev, _AY]
            path += math.sqrt(step_x * step_x + step_y * step_y)
            jerk_sq += (step_x * step_x + step_y * step_y) * fs * fs
            n_diff += 1
    if n > 2:
        var_ap = sxx / (n - 1)
        var_ml = syy / (n - 1)
        cov = sxy / (n - 1)
        rec["sway_rms_m_s2"] = math.sqrt((sxx + syy) / n)
        rec["sway_rms_ap_m_s2"] = math.sqrt(sxx / n)
        rec["sway_rms_ml_m_s2"] = math.sqrt(syy / n)
        # Prieto 1996: area = 2π F.05[2, n−2] √(s_ap² s_ml² − s_apml²), F → 3.00 for long records.
        rec["ellipse_95_m2_s4"] = 2.0 * math.pi * 3.00 * math.sqrt(max(0.0, var_ap * var_ml - cov * cov))
    else:
        rec["sway_rms_m_s2"] = rec["sway_rms_ap_m_s2"] = rec["sway_rms_ml_m_s2"] = math.nan
        rec["ellipse_95_m2_s4"] = math.nan
    rec["path_m_s2"] = path
    rec["jerk_m2_s5"] = 0.5 * jerk_sq / fs
    rec["jerk_rms_m_s3"] = math.sqrt(jerk_sq / n_diff) if n_diff > 0 else math.nan
    rec["sway_ratio"] = rec["sway_rms_m_s2"] / st["baseline_rms"] if st["baseline_rms"] > 0 else math.nan
    rec["touchdowns"] = st["touchdowns"]
    rec["capped"] = capped
    rec["ended_by_stream_end"] = by_stream_end
    rec["return_shift_cm"] = 100.0 * abs(return_shift_m)
    return n_out + 1


@numba.njit(cache=True)
def _lowering_agrees(settings, st, buffer, now):
    """Is the pending lowering shift a real return to two legs, judged on the samples up to ``now``? Three tests,
    each of which a sway swing or a touchdown fails:

    - the weight stays shifted back: within ``keep_s`` after the shift the step fit shows no shift back toward the
      stance leg of ``return_ratio`` of it (a touchdown lifts the foot again within ~0.5 s; the step fit's own
      side lobe after a kept shift is about 0.45 of it);
    - the obliquity agrees: if the hold moved it off its two-leg baseline by ``obliquity_agree_deg`` or more, it
      is back within half of that departure;
    - the sway agrees: the RMS of the horizontal acceleration after the shift is back near two-leg level: within
      ``quiet_ratio`` of the way from the baseline's to the hold's (or 1.25 × the baseline's, whichever is larger;
      1.5 × the baseline's when there is less than a second of hold to compare with)."""
    fs = settings["fs_hz"]
    settle = int(round(settings["settle_s"] * fs))
    if st["pending_back"] >= settings["return_ratio"] * abs(st["pending_area"]):
        return False
    shift_begin = st["pending_centroid"] - settle
    lo_after = min(st["pending_centroid"] + settle, now)
    # Both against the baseline with the fusion's levelling error taken out (_level_change); the few samples after
    # the lowering share that error with the end of the hold (it changes over tens of seconds).
    departure = (_window_mean(buffer, _OBL, st["start"] + settle, shift_begin) - st["baseline_obl"]
                 + _level_change(settings, buffer, _LY, st["start"] + settle, shift_begin, st["baseline_level_y"]))
    if abs(departure) >= settings["obliquity_agree_deg"]:  # NaN: nothing to compare
        level = int(round(settings["level_window_s"] * fs))
        after = (_window_mean(buffer, _OBL, lo_after, now + 1) - st["baseline_obl"]
                 + _level_change(settings, buffer, _LY, max(st["start"] + settle, shift_begin - level), shift_begin,
                                 st["baseline_level_y"]))
        if abs(after) > 0.5 * abs(departure):
            return False
    if now + 1 - lo_after >= settle:
        after_rms = _window_rms(buffer, lo_after, now + 1)
        if shift_begin - (st["start"] + settle) >= int(round(fs)):
            during = _window_rms(buffer, st["start"] + settle, shift_begin)
            base = st["baseline_rms"]
            if after_rms > max(1.25 * base, base + settings["quiet_ratio"] * (during - base)):
                return False
        elif after_rms > 1.5 * st["baseline_rms"]:  # too little hold to compare with: back to two-leg sway
            return False
    return True


@numba.njit(cache=True)
def _end_hold(settings, st, buffer, end, out, n_out):
    """Report the hold ending at the pending lowering shift ``end`` (if long enough); returns the new count."""
    fs = settings["fs_hz"]
    pad = int(round(settings["touchdown_pad_s"] * fs))
    if end - st["start"] >= int(round(settings["min_hold_s"] * fs)):
        # A foot contact at the lowering itself is the end, not a touchdown.
        if st["touchdowns"] > 0 and abs(st["last_burst"] - end) <= 2 * pad:
            st["touchdowns"] -= 1
        n_out = _finish(settings, st, buffer, end, np.bool_(False), np.bool_(False), st["pending_area"], out, n_out)
    return n_out


@numba.njit(cache=True)
def _start_hold(settings, st, buffer, peak, shift_m):
    """A lift-off step of shift_m (m, + = toward the left) centred on sample peak: the hold starts there."""
    fs = settings["fs_hz"]
    settle = int(round(settings["settle_s"] * fs))
    baseline_n = max(int(round(settings["quiet_before_s"] * fs)), int(round(settings["baseline_s"] * fs)))
    st["mode"] = HOLDING
    st["start"] = peak
    st["side"] = LEFT if shift_m > 0.0 else RIGHT  # +y is left: moved over the left leg
    st["shift_m"] = shift_m
    hi = peak - settle  # the shift begins about a quarter of a second before its middle
    lo = min(max(st["quiet_since"], peak - baseline_n), hi - 1)
    st["baseline_obl"] = _window_mean(buffer, _OBL, lo, hi)
    st["baseline_tilt"] = _window_mean(buffer, _TILT, lo, hi)
    st["baseline_rms"] = _window_rms(buffer, lo, hi)
    st["baseline_level_y"] = _level_error(buffer, _LY, lo, hi, int(round(settings["level_min_s"] * fs)), fs)
    # Touchdowns already seen (the hold is recognised lobe_s + step_half_s after its start).
    st["touchdowns"] = 0
    for k in range(min(st["n_bursts"], _N_BURSTS)):
        if st["burst_onsets"][k] - peak > settle:
            st["touchdowns"] += 1
    st["pending"] = 0


@numba.njit(cache=True)
def _long_step(settings, buffer, lo, hi, c_lo, c_hi):
    """The lift-off of an announced hold seen over a long window [lo, hi) of lateral acceleration (_LY): the smooth
    step of ``step_rise_s`` centred in [c_lo, c_hi] that, together with a polynomial of 4th degree, best fits the
    double integral (least squares; the polynomial takes up position, velocity and a levelling error that changes
    while the fusion settles). The weight stays shifted for the whole hold while the one-leg sway swings back and
    forth, so over seconds the shift is told from a sway step that the ± step_half_s fit may prefer. Returns
    (centre, shift in m, + = left), or (-1, 0) if the window holds an invalid sample or is too short."""
    fs = settings["fs_hz"]
    n_rows = buffer.shape[0]
    n = hi - lo
    n_poly = 5
    if n < 4 * n_poly or c_hi < c_lo:
        return -1, 0.0
    x = np.empty(n)
    v = 0.0
    pos = 0.0
    for k in range(n):
        a = buffer[(lo + k) % n_rows, _LY]
        if not math.isfinite(a):
            return -1, 0.0
        x[k] = pos
        pos += v / fs
        v += a / fs
    # Orthonormal polynomial basis over the window (Gram-Schmidt, twice for accuracy).
    basis = np.empty((n_poly, n))
    for j in range(n_poly):
        for k in range(n):
            basis[j, k] = (2.0 * k / (n - 1) - 1.0) ** j
        for _ in range(2):
            for i in range(j):
                _subtract_scaled(basis[j], np.dot(basis[i], basis[j]), basis[i])
        norm = math.sqrt(np.dot(basis[j], basis[j]))
        for k in range(n):
            basis[j, k] /= norm
    r = x.copy()
    for j in range(n_poly):
        _subtract_scaled(r, np.dot(basis[j], x), basis[j])
    rise = settings["step_rise_s"] * fs
    step = np.empty(n)
    best = 0.0
    at = -1
    shift = 0.0
    for c in range(max(c_lo, lo + 1), min(c_hi, hi - 2) + 1):
        for k in range(n):
            u = min(max((lo + k - c) / rise + 0.5, 0.0), 1.0)
            step[k] = u * u * u * (10.0 - 15.0 * u + 6.0 * u * u)
        for j in range(n_poly):
            _subtract_scaled(step, np.dot(basis[j], step), basis[j])
        norm = np.dot(step, step)
        if norm <= 0.0:
            continue
        proj = np.dot(step, r)
        if proj * proj / norm > best:  # the largest drop of the residual
            best = proj * proj / norm
            at = c
            shift = proj / norm
    return at, shift


@numba.njit(cache=True, inline="always")
def _subtract_scaled(y, a, x):
    """y -= a · x, element by element: numba's whole-array form checks the shapes and compiles the formatting of
    its error message, seconds of every cold start."""
    for k in range(y.shape[0]):
        y[k] -= a * x[k]


@numba.njit(cache=True)
def _guided_lift(settings, st, buffer, fit_ring, c, half):
    """The user said when to lift (expect_lift). Two views of the lift-off, decided once the window
    [go_lo − guided_before_s, go_hi + guided_after_s] has been seen:

    - short: the first step fit (guided_shift_min_cm .. shift_max_cm) centred in [go_lo, go_hi] that no larger one
      follows within ``lobe_s`` (a step fit's leading lobe, smaller, comes first; the one-leg sway after the
      lift-off can make steps as large as a small lift-off, so the largest of the whole window would not do);
    - long: the best single step over the whole window (:func:`_long_step`), which sees that the weight stays
      shifted.

    If they agree on the side, the short one's centre is the start (its timing is the sharper); if not, the earlier
    of the two: a one-leg sway step comes after the lift-off, not before it. No quiet-stance or sway test: the
    user's start rules out the sway steps of two-leg stance that the automatic finder must reject."""
    fs = settings["fs_hz"]
    lobe = int(round(settings["lobe_s"] * fs))
    fit = fit_ring[c % fit_ring.shape[0]]
    if st["short_sample"] < 0 and st["go_lo"] <= c <= st["go_hi"] and math.isfinite(fit) \
            and abs(fit) <= 0.01 * settings["shift_max_cm"] \
            and abs(fit) > max(abs(st["best_m"]), 0.01 * settings["guided_shift_min_cm"]):
        st["best_m"] = fit
        st["best_sample"] = c
    if st["short_sample"] < 0 and st["best_sample"] >= 0 \
            and (c >= st["best_sample"] + lobe or c > st["go_hi"] + lobe):
        st["short_sample"] = st["best_sample"]
        st["short_m"] = st["best_m"]
    # The long fit needs its whole window: guided_after_s past the lift window (c lags the samples by half).
    if c < st["go_hi"] + int(round(settings["guided_after_s"] * fs)) - half:
        return
    lo = max(st["go_lo"] - int(round(settings["guided_before_s"] * fs)), st["quiet_since"],
             c + half + 1 - buffer.shape[0])
    at, shift = _long_step(settings, buffer, lo, c + half + 1, st["go_lo"], st["go_hi"])
    long_ok = at >= 0 and 0.01 * settings["guided_shift_min_cm"] <= abs(shift) <= 0.01 * settings["shift_max_cm"]
    if st["short_sample"] >= 0 and (not long_ok or (shift > 0.0) == (st["short_m"] > 0.0)
                                    or st["short_sample"] <= at):
        _start_hold(settings, st, buffer, st["short_sample"], st["short_m"])
    elif long_ok:
        _start_hold(settings, st, buffer, at, shift)
    else:
        st["guided"] = 2
        return
    st["guided"] = 3
    st["started_at"] = c


@numba.njit(cache=True)
def _stands_out(settings, fit_ring, peak_sample, peak, c):
    """Is the lift-off step at peak_sample larger than lift_over_sway × every step fit of the stance before it (up
    to baseline_s before, short of its leading lobe)? Postural sway of two-leg stance makes steps of its own."""
    fs = settings["fs_hz"]
    lobe = int(round(settings["lobe_s"] * fs))
    lo = peak_sample - int(round(settings["baseline_s"] * fs))
    largest = max(_fit_max(fit_ring, lo, peak_sample - lobe, 1.0, c),
                  _fit_max(fit_ring, lo, peak_sample - lobe, -1.0, c))
    return abs(peak) >= settings["lift_over_sway"] * largest


@numba.njit(cache=True)
def _fit_sample(settings, st, buffer, fit_ring, c, fit, full_until, out, n_out):
    """One new step-fit value ``fit`` (m, + = toward the left; NaN if the window was not all valid) centred on
    sample c: lift-off and lowering decisions. full_until: the last centre whose fit had the full window (at the end
    of a stream the cut windows have larger side lobes: they do not count as a shift back). Returns the new count
    of holds out."""
    fs = settings["fs_hz"]
    n_fit = fit_ring.shape[0]
    fit_ring[c % n_fit] = fit
    lobe = int(round(settings["lobe_s"] * fs))
    settle = int(round(settings["settle_s"] * fs))
    keep = int(round(settings["keep_s"] * fs))
    quiet_before = int(round(settings["quiet_before_s"] * fs))
    shift_min = 0.01 * settings["shift_min_cm"]
    shift_max = 0.01 * settings["shift_max_cm"]

    # Runs of one sign of the step fit: each run's peak is one candidate step, at its middle.
    sign = 0
    if fit > 0.0:
        sign = 1
    elif fit < 0.0:
        sign = -1
    closed = sign != st["run_sign"] and st["run_sign"] != 0
    peak = st["run_peak"]
    peak_sample = st["run_peak_sample"]
    if sign != st["run_sign"]:
        st["run_sign"] = sign
        st["run_peak"] = 0.0
    if sign != 0 and abs(fit) > abs(st["run_peak"]):
        st["run_peak"] = fit
        st["run_peak_sample"] = c

    if st["mode"] == QUIET and st["guided"] == 1:
        _guided_lift(settings, st, buffer, fit_ring, c, int(round(settings["step_half_s"] * fs)))
        return n_out
    if st["mode"] == QUIET and st["guided"] >= 2:  # the window passed, or its hold was found: idle until the next
        return n_out
    if st["mode"] == QUIET:
        if st["candidate"] >= 0 and st["quiet_since"] > st["candidate"] - quiet_before:
            st["candidate"] = -1  # walking (or a gap) came after it: not from quiet stance
        if closed and st["candidate"] < 0 and shift_min <= abs(peak) <= shift_max \
                and st["quiet_since"] <= peak_sample - quiet_before:
            # A step fit's side lobes flank a step at about ±0.7 step_half_s with about 0.45 of its size and the
            # opposite sign. Before a lift-off the stance is quiet, so a lift-off shows its leading lobe; a peak
            # without one may itself be the leading lobe of a larger step just after it.
            s_pk = 1.0 if peak > 0.0 else -1.0
            before = _fit_max(fit_ring, peak_sample - lobe, peak_sample - settle, -s_pk, c)
            if before >= settings["lobe_before_ratio"] * abs(peak):
                if _stands_out(settings, fit_ring, peak_sample, peak, c):
                    _start_hold(settings, st, buffer, peak_sample, peak)
            else:
                st["candidate"] = peak_sample
                st["candidate_m"] = peak
        if st["candidate"] >= 0 and c >= st["candidate"] + lobe:
            s_pk = 1.0 if st["candidate_m"] > 0.0 else -1.0
            at = _fit_argmax(fit_ring, st["candidate"] + 1, st["candidate"] + lobe, -s_pk, c)
            if at >= 0 and abs(fit_ring[at % n_fit]) > abs(st["candidate_m"]) \
                    and abs(fit_ring[at % n_fit]) <= shift_max:
                if _stands_out(settings, fit_ring, at, fit_ring[at % n_fit], c):  # the candidate was its leading lobe
                    _start_hold(settings, st, buffer, at, fit_ring[at % n_fit])
            elif _stands_out(settings, fit_ring, st["candidate"], st["candidate_m"], c):
                _start_hold(settings, st, buffer, st["candidate"], st["candidate_m"])
            st["candidate"] = -1
        return n_out

    # HOLDING or AFTER_CAP: the lowering is a step back toward the free side, away from the lift's trailing lobe.
    toward_stance = 1.0 if st["shift_m"] > 0.0 else -1.0
    if st["pending"] and c <= min(st["pending_centroid"] + keep, full_until) and math.isfinite(fit):
        st["pending_back"] = max(st["pending_back"], toward_stance * fit)
    if closed and peak * toward_stance < 0.0 and peak_sample - st["start"] > lobe \
            and abs(peak) >= settings["end_fraction"] * abs(st["shift_m"]) \
            and not (st["pending"] and peak_sample > full_until):
        # A later qualifying shift replaces a pending one; not one seen only through the cut windows at the end of
        # the stream, whose side lobes are larger (the lowering's trailing lobe came back as a "shift" there).
        st["pending"] = 1
        st["pending_centroid"] = peak_sample
        st["pending_area"] = peak
        st["pending_back"] = _fit_max(fit_ring, peak_sample + 1, min(peak_sample + keep, full_until),
                                      toward_stance, c)
    return n_out


@numba.njit(cache=True)
def hold_update(settings_array, state_array, lp_c, hp_c, weights, acc_ring, fit_ring, buffer, angles_pelvis_deg,
                acc_level_m_s2, out):
    """Hold analysis over one block; writes completed holds into out and returns how many."""
    settings = settings_array[0]
    st = state_array[0]
    fs = settings["fs_hz"]
    dt = 1.0 / fs
    n_rows = buffer.shape[0]
    n_acc = acc_ring.shape[0]  # = len(weights), the step fit's window
    half = n_acc // 2
    bias_gain = dt / settings["bias_tau_s"]
    hf_gain = dt / 0.1  # 0.1 s smoothing: a touchdown transient lasts about that
    z_gain = dt / 1.0  # 1 s: steps at any cadence
    n_out = np.int64(0)
    for i in range(angles_pelvis_deg.shape[0]):
        sample = st["next_sample"] + i
        a = acc_level_m_s2[i]
        ok = (math.isfinite(a[0]) and math.isfinite(a[1]) and math.isfinite(a[2])
              and math.isfinite(angles_pelvis_deg[i, 1]) and math.isfinite(angles_pelvis_deg[i, 2]))
        ax = a[0] - st["bias"][0] if ok else 0.0
        ay = a[1] - st["bias"][1] if ok else 0.0
        az = a[2] - st["bias"][2] if ok else 0.0
        if ok:
            # The slow mean: a running mean until bias_tau_s of valid samples, then an exponential one.
            st["n_valid"] += 1
            gain = max(bias_gain, 1.0 / st["n_valid"])
            for k in range(3):
                st["bias"][k] += gain * (a[k] - st["bias"][k])
            st["valid_run"] += 1
        else:
            st["valid_run"] = 0
        ax_lp = butter2_lowpass(ax, lp_c, st["lp"][0])
        ay_lp = butter2_lowpass(ay, lp_c, st["lp"][1])
        hx = butter2_highpass(ax, hp_c, st["hp"][0])
        hy = butter2_highpass(ay, hp_c, st["hp"][1])
        st["hf_energy"] += hf_gain * (hx * hx + hy * hy - st["hf_energy"])
        st["z_energy"] += z_gain * (az * az - st["z_energy"])
        row = sample % n_rows
        buffer[row, _OBL] = angles_pelvis_deg[i, 1]
        buffer[row, _TILT] = angles_pelvis_deg[i, 2]
        buffer[row, _AX] = ax_lp
        buffer[row, _AY] = ay_lp
        buffer[row, _EXCLUDED] = 1.0 if (not ok or sample < st["exclude_until"]) else 0.0
        buffer[row, _LX] = a[0] if ok else math.nan
        buffer[row, _LY] = a[1] if ok else math.nan
        walking = math.sqrt(st["z_energy"]) > settings["walk_m_s2"]
        if walking or not ok:
            st["quiet_since"] = sample + 1

        # Touchdowns: quick transients. Remembered in any mode, since a hold is recognised only after its start.
        burst = ok and math.sqrt(st["hf_energy"]) > settings["touchdown_m_s2"]
        if burst:
            _touchdown(settings, st, buffer, sample)
        st["in_burst"] = 1 if burst else 0

        # The step fit over the last window, centred half a window back.
        acc_ring[sample % n_acc] = a[1] if ok else 0.0
        c = sample - half
        if c >= 0:
            fit = math.nan
            if st["valid_run"] >= n_acc:
                fit = _ring_dot(weights, acc_ring, (c - half) % n_acc)
            n_out = _fit_sample(settings, st, buffer, fit_ring, c, fit, c, out, n_out)

        if st["mode"] != QUIET:
            n_out = _hold_step(settings, st, buffer, sample, walking, out, n_out)
    st["next_sample"] += angles_pelvis_deg.shape[0]
    return n_out


@numba.njit(cache=True, inline="always")
def _ring_dot(weights, ring, first):
    """sum_j weights[j] · ring[(first + j) % len(ring)], summed in order of j, without a modulo per term (the step
    fit runs at every sample of every recording: the modulo was most of the hold stage's time)."""
    n = ring.shape[0]
    total = 0.0
    for j in range(n - first):
        total += weights[j] * ring[first + j]
    for j in range(n - first, n):
        total += weights[j] * ring[j - (n - first)]
    return total


@numba.njit(cache=True)
def _touchdown(settings, st, buffer, sample):
    """A sample of a quick transient (a touchdown): a new one is remembered (and counted during a hold), and the
    samples around it are left out of the metrics."""
    fs = settings["fs_hz"]
    pad = int(round(settings["touchdown_pad_s"] * fs))
    settle = int(round(settings["settle_s"] * fs))
    n_rows = buffer.shape[0]
    if not st["in_burst"] and sample - st["last_burst"] > 2 * pad:
        st["burst_onsets"][st["n_bursts"] % _N_BURSTS] = sample
        st["n_bursts"] += 1
        if st["mode"] == HOLDING and sample - st["start"] > settle:
            st["touchdowns"] += 1
        for s in range(max(sample - pad, 0), sample + 1):
            buffer[s % n_rows, _EXCLUDED] = 1.0
    st["last_burst"] = sample
    st["exclude_until"] = sample + pad


@numba.njit(cache=True)
def _hold_step(settings, st, buffer, sample, walking, out, n_out):
    """During a hold (or after a capped one): walking ends it, a confirmed lowering ends it, max_hold_s caps it.
    Returns the new count of holds out."""
    fs = settings["fs_hz"]
    if walking:
        # Walking off: the hold ended at a lowering shift that was still being confirmed, or was no hold.
        if st["mode"] == HOLDING and st["pending"] and _lowering_agrees(settings, st, buffer, sample):
            n_out = _end_hold(settings, st, buffer, st["pending_centroid"], out, n_out)
        st["mode"] = QUIET
        st["pending"] = 0
        return n_out
    if st["pending"] and sample - st["pending_centroid"] >= int(round(settings["confirm_s"] * fs)):
        if _lowering_agrees(settings, st, buffer, sample):
            if st["mode"] == HOLDING:
                n_out = _end_hold(settings, st, buffer, st["pending_centroid"], out, n_out)
            st["mode"] = QUIET
            st["quiet_since"] = max(st["quiet_since"], st["pending_centroid"] + int(round(settings["settle_s"] * fs)))
        st["pending"] = 0
    max_hold = int(round(settings["max_hold_s"] * fs))
    if st["mode"] == HOLDING and sample - st["start"] >= max_hold:
        n_out = _finish(settings, st, buffer, st["start"] + max_hold, np.bool_(True), np.bool_(False), 0.0, out, n_out)
        st["mode"] = AFTER_CAP
        st["pending"] = 0
    return n_out


@numba.njit(cache=True)
def _feed_tail(settings_array, state_array, acc_ring, fit_ring, buffer, tail_weights, out):
    """End of the stream: the step fit for the last centres, whose windows are cut short by the end (row r of
    tail_weights: centre last − half + 1 + r, its weights over the available samples, zero-padded)."""
    settings = settings_array[0]
    st = state_array[0]
    n_acc = acc_ring.shape[0]
    half = n_acc // 2
    last = st["next_sample"] - 1
    n_out = np.int64(0)
    for r in range(tail_weights.shape[0]):
        c = last - half + 1 + r
        if c < 0:
            continue
        n_win = half + 1 + last - c  # samples c − half … last
        fit = math.nan
        if st["valid_run"] >= n_win and math.isfinite(tail_weights[r, 0]):
            fit = 0.0
            for j in range(n_win):
                fit += tail_weights[r, j] * acc_ring[(c - half + j) % n_acc]
        n_out = _fit_sample(settings, st, buffer, fit_ring, c, fit, last - half, out, n_out)
    if tail_weights.shape[0] > 0:  # nothing follows: the run of one sign still open ends here
        n_out = _fit_sample(settings, st, buffer, fit_ring, last - half + 1 + tail_weights.shape[0], 0.0,
                            last - half, out, n_out)
    return n_out


@numba.njit(cache=True)
def _flush(settings_array, state_array, buffer, out, n_out):
    """The stream has ended: close a hold still open. A lowering shift still being confirmed ends it if the samples
    seen after it agree; otherwise the hold ends at the last sample, marked ended_by_stream_end."""
    settings = settings_array[0]
    st = state_array[0]
    last = st["next_sample"] - 1
    if st["mode"] == HOLDING:
        if st["pending"] and _lowering_agrees(settings, st, buffer, last):
            n_out = _end_hold(settings, st, buffer, st["pending_centroid"], out, n_out)
        elif last - st["start"] >= int(round(settings["min_hold_s"] * settings["fs_hz"])):
            n_out = _finish(settings, st, buffer, last + 1, np.bool_(False), np.bool_(True), 0.0, out, n_out)
    st["mode"] = QUIET
    st["pending"] = 0
    st["candidate"] = -1
    st["run_sign"] = 0
    st["valid_run"] = 0  # the step fit starts afresh
    st["quiet_since"] = st["next_sample"]
    return n_out


# ------------------------------------------------------------------------------------------------ Python faces


class HoldAnalyzer:
    """Single-leg holds from live blocks: ``update(angles_pelvis_deg, acc_level_m_s2)`` returns the holds whose end
    was confirmed in this call (HOLD_DTYPE); ``flush()`` at the end of the stream returns a hold still open.

    Live state for a timer: ``holding`` (a hold is under way), ``hold_time_s`` (since its start), ``stance_side``
    (LEFT, RIGHT or None), ``touchdowns`` so far. A hold is known to have started 1–2 s after the middle of the
    lift-off shift (``step_half_s`` for the step fit, up to ``lobe_s`` to see its side lobes); ``hold_time_s``
    counts from that middle. After the lowering shift the timer runs on until the lowering is confirmed
    (``step_half_s`` + ``confirm_s`` later); the reported hold ends at the middle of the lowering shift.
    """

    def __init__(self, fs_hz: float, settings=None):
        if settings is None:
            settings = make_settings(fs_hz)
        elif isinstance(settings, dict):
            settings = make_settings(fs_hz, **settings)
        else:
            settings = np.array(settings, dtype=SETTINGS_DTYPE).reshape(1)
        self.fs_hz = float(fs_hz)
        self.settings = settings
        s = settings[0]
        self._lp = _coefficients(s["sway_lowpass_hz"], fs_hz)
        self._hp = _coefficients(s["touchdown_hp_hz"], fs_hz)
        self._weights = step_fit_weights(fs_hz, s["step_half_s"], s["step_rise_s"])
        half = len(self._weights) // 2
        # The end of a stream: fits over cut windows, down to 0.6 of the rise after the centre.
        min_after = max(2, int(round(0.6 * s["step_rise_s"] * fs_hz)))
        self._tail_weights = np.full((max(0, half - min_after), len(self._weights)), np.nan)
        for r in range(len(self._tail_weights)):
            w = step_fit_weights(fs_hz, s["step_half_s"], s["step_rise_s"], after=half - 1 - r)
            self._tail_weights[r, :len(w)] = w
            self._tail_weights[r, len(w):] = 0.0
        rows = int(math.ceil((s["max_hold_s"] + _EXTRA_BUFFER_S + max(s["quiet_before_s"], s["baseline_s"])
                              + s["confirm_s"] + s["step_half_s"] + s["lobe_s"]) * fs_hz))
        self._buffer = np.zeros((rows, _N_COLS))
        self._acc_ring = np.zeros(len(self._weights))
        self._fit_ring = np.full(int(math.ceil((s["baseline_s"] + 2 * s["lobe_s"] + s["keep_s"] + 2 * s["step_half_s"])
                                           * fs_hz)) + 2,
                                 np.nan)
        self.state = np.zeros(1, dtype=STATE_DTYPE)
        self.state["exclude_until"] = -1
        self.state["candidate"] = -1
        self.state["last_burst"] = -(1 << 40)
        self.state["best_sample"] = -1
        self.state["started_at"] = -1
        self.state["short_sample"] = -1

    def expect_lift(self, lo_sample: int, hi_sample: int) -> None:
        """The user will lift a foot with the middle of the weight shift between these samples (a countdown's
        "go" and the reaction time around it): the next hold starts at a shift there (the short and the long step
        fit, see _guided_lift; decided ``guided_after_s`` after hi_sample), and no other lift-off is looked for. After that hold (or if the window passes with none: ``missed_lift``) the analyser
        stays idle until the next ``expect_lift``. A hold under way is not touched."""
        st = self.state
        if lo_sample > hi_sample:
            raise InvalidValueError(f"expect_lift: window {lo_sample}..{hi_sample} is empty")
        st["guided"] = 1
        st["go_lo"] = lo_sample
        st["go_hi"] = hi_sample
        st["best_sample"] = -1
        st["best_m"] = 0.0
        st["started_at"] = -1
        st["short_sample"] = -1

    @property
    def waiting_for_lift(self) -> bool:
        return bool(self.state["guided"][0] == 1)

    @property
    def missed_lift(self) -> bool:
        """The expected lift-off window passed without a weight shift."""
        return bool(self.state["guided"][0] == 2)

    @property
    def start_decided_at(self) -> int:
        """The sample at which the last expected lift-off was recognised (-1: none), ``step_half_s`` after the
        step-fit centre that decided it."""
        at = int(self.state["started_at"][0])
        return -1 if at < 0 else at + len(self._weights) // 2

    @property
    def reference(self) -> dict:
        """The hold under way: start sample, stance side, the two-leg baselines it is measured against."""
        st = self.state[0]
        return dict(start_sample=int(st["start"]), side=int(st["side"]),
                    baseline_obliquity_deg=float(st["baseline_obl"]), baseline_tilt_deg=float(st["baseline_tilt"]),
                    baseline_sway_rms_m_s2=float(st["baseline_rms"]))

    def recent(self, lo_sample: int, hi_sample: int) -> np.ndarray:
        """The analyser's own per-sample record of samples [lo, hi) still in its buffer, columns: obliquity and
        tilt (deg), the low-passed horizontal acceleration x, y without its slow mean (m/s²), excluded (1: invalid
        or next to a touchdown)."""
        n_rows = len(self._buffer)
        last = int(self.state["next_sample"][0])
        if not (last - n_rows <= lo_sample <= hi_sample <= last):
            raise InvalidValueError(f"samples {lo_sample}..{hi_sample} are not in the buffer ({last - n_rows}..{last})")
        return self._buffer[np.arange(lo_sample, hi_sample) % n_rows].copy()

    def update(self, angles_pelvis_deg: np.ndarray, acc_level_m_s2: np.ndarray) -> np.ndarray:
        angles = np.ascontiguousarray(angles_pelvis_deg, dtype=np.float64)
        acc = np.ascontiguousarray(acc_level_m_s2, dtype=np.float64)
        if angles.ndim != 2 or angles.shape[1] != 3 or acc.shape != angles.shape:
            raise InvalidValueError(f"angles_pelvis_deg {angles.shape} and acc_level_m_s2 {acc.shape} must both be "
                                    "(n, 3)")
        # At most one hold ends per min_hold_s; a block of n samples cannot finish more than this.
        out = np.zeros(2 + int(len(angles) / (self.settings["min_hold_s"][0] * self.fs_hz)), dtype=HOLD_DTYPE)
        n = hold_update(self.settings, self.state, self._lp, self._hp, self._weights, self._acc_ring, self._fit_ring,
                    self._buffer, angles, acc, out)
        return out[:n].copy()

    def flush(self) -> np.ndarray:
        """End of the stream: the hold still open, if any (HOLD_DTYPE, 0 or 1 records). A lowering shift seen but
        not yet confirmed ends it there; otherwise it ends at the last sample and is marked ``ended_by_stream_end``.
        Later updates start afresh (a new hold needs ``quiet_before_s`` of quiet stance first)."""
        out = np.zeros(2, dtype=HOLD_DTYPE)
        n = _feed_tail(self.settings, self.state, self._acc_ring, self._fit_ring, self._buffer, self._tail_weights,
                       out)
        n = _flush(self.settings, self.state, self._buffer, out, n)
        return out[:n].copy()

    @property
    def holding(self) -> bool:
        return bool(self.state["mode"][0] == HOLDING)

    @property
    def hold_time_s(self) -> float:
        if not self.holding:
            return 0.0
        return (int(self.state["next_sample"][0]) - 1 - int(self.state["start"][0])) / self.fs_hz

    @property
    def stance_side(self) -> int | None:
        return int(self.state["side"][0]) if self.holding else None

    @property
    def touchdowns(self) -> int:
        return int(self.state["touchdowns"][0]) if self.holding else 0


def analyze_holds(angles_pelvis_deg: np.ndarray, acc_level_m_s2: np.ndarray, fs_hz: float,
                  settings=None) -> np.ndarray:
    """Whole-array form of :class:`HoldAnalyzer`: every hold of a recording (HOLD_DTYPE), in time order, including
    one still open when the recording ends (``flush``)."""
    analyzer = HoldAnalyzer(fs_hz, settings)
    holds = analyzer.update(angles_pelvis_deg, acc_level_m_s2)
    return np.concatenate([holds, analyzer.flush()])
