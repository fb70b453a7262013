"""Strides and per-stride metrics from contact events and the pelvis stage's per-sample outputs.

A stride runs from an initial contact (IC) of one foot to its next IC and is named by that foot; strides of both
feet are reported (they overlap by a step). Inside a stride the other foot's IC splits it into two steps, and the
two single-support phases give one pelvic drop each, named by the **stance** side (docs/pipeline.md):

- stance on the starting foot s: from the other foot's final contact (FC) to its IC (if that FC was missed, from
  the stride's first IC: the step after the IC, whose double support adds a level pelvis and no extreme);
- stance on the other foot: from s's FC to the stride's closing IC (or from the other foot's IC if s's FC was
  missed).

``drop_right_stance_deg`` = −(lowest obliquity) during right single support: how far the free left side sank below
the level (neutral) pelvis, + = sank, − = hiked; ``drop_left_stance_deg`` = +(highest obliquity) during left single
support, for the free right side (obliquity + = left side higher). A weak gluteus medius on the stance side lets the
free side drop: the Trendelenburg sign.

Sway and vertical excursion come from double integration of the level-frame acceleration over the stride, with the
integration constants fixed by periodicity: a steady stride starts and ends at the same lateral (vertical) velocity
and position, so the mean acceleration is removed before the first integration and the mean velocity before the
second (the stride-by-stride integration of Zijlstra & Hof 1997, "Displacement of the pelvis during human walking:
experimental data and model predictions", Gait & Posture 6:249-262; and 2003, "Assessment of spatio-temporal gait
parameters from trunk accelerations during human walking", Gait & Posture 18(2):1-10, who note that a high-pass
filter near the stride frequency distorts the excursion: none is used here). An accelerometer offset and the
drift of integration are a linear trend of velocity over one stride and are removed exactly.

Steady: the stride has both steps, finite samples, a stride time within 15 % of the previous stride's, and no turn:
the heading change over the stride, estimated as twice the mean rotation (the pelvis stage measures rotation
against the heading averaged over the last stride, which in a turn lags by half a stride), is under 10°.

Streaming: ``StrideAnalyzer.update`` keeps the last ``buffer_s`` (10 s) of samples, because contact events arrive
after their samples (a detector's look-ahead, up to ~1 s); a stride is reported in the call in which its closing IC
and all of its samples have arrived, so the concatenated output does not depend on block sizes.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from hipcheck.errors import InvalidValueError
from hipcheck.gait import EVENT_DTYPE, FC, IC, LEFT, RIGHT, STRIDE_DTYPE
from hipcheck.settings import merged_settings

__all__ = ["StrideAnalyzer", "analyze_strides", "stride_metrics", "DEFAULT_SETTINGS"]

DEFAULT_SETTINGS = {
    "buffer_s": 10.0,  # samples kept for strides whose closing contact has not arrived yet
    "min_stride_s": 0.5,  # shorter strides are not formed (missed or extra contacts)
    "max_stride_s": 2.5,  # nor longer ones (a pause, or missed contacts)
    "steady_time_change": 0.15,  # steady: stride time within this fraction of the previous stride's ...
    "steady_turn_deg": 10.0,  # ... and a heading change over the stride under this
}


@njit(cache=True)
def _extreme(ring, lo, hi, column, sign):
    """max over samples lo..hi (stream indices, inclusive) of sign · ring[:, column]: (value, sample); NaN if any
    sample is not finite."""
    n = ring.shape[0]
    best = -np.inf
    where = -1
    for k in range(lo, hi + 1):
        x = sign * ring[k % n, column]
        if not math.isfinite(x):
            return np.nan, -1
        if x > best:
            best = x
            where = k
    return best, where


@njit(cache=True)
def _excursion_cm(ring, lo, hi, column, dt):
    """Peak-to-peak displacement (cm) over samples lo..hi from acceleration ring[:, column] (m/s²).

    Trapezoid double integration; the velocity's end-to-end change is removed as a linear trend (= the mean
    acceleration, an offset) and the position's likewise (= the mean velocity), so that the stride starts and ends
    at the same velocity and position. Three passes, nothing allocated.
    """
    n = ring.shape[0]
    m = hi - lo
    if m < 2:
        return np.nan
    v = 0.0
    for k in range(lo + 1, hi + 1):  # pass 1: velocity gained over the stride
        v += 0.5 * (ring[(k - 1) % n, column] + ring[k % n, column]) * dt
    v_end = v
    v = 0.0
    v_prev = 0.0
    p = 0.0
    for k in range(lo + 1, hi + 1):  # pass 2: position with the velocity trend removed
        v += 0.5 * (ring[(k - 1) % n, column] + ring[k % n, column]) * dt
        vk = v - v_end * (k - lo) / m
        p += 0.5 * (v_prev + vk) * dt
        v_prev = vk
    p_end = p
    v = 0.0
    v_prev = 0.0
    p = 0.0
    top = 0.0
    bottom = 0.0
    for k in range(lo + 1, hi + 1):  # pass 3: extremes of the detrended position
        v += 0.5 * (ring[(k - 1) % n, column] + ring[k % n, column]) * dt
        vk = v - v_end * (k - lo) / m
        p += 0.5 * (v_prev + vk) * dt
        v_prev = vk
        pk = p - p_end * (k - lo) / m
        top = max(top, pk)
        bottom = min(bottom, pk)
    if not math.isfinite(top - bottom):
        return np.nan
    return 100.0 * (top - bottom)


@njit(cache=True)
def stride_metrics(ring, start, end, right_lo, right_hi, left_lo, left_hi, fs_hz):
    """Metrics of the stride start..end (stream sample indices, inclusive) from the ring of per-sample rows
    (rotation, obliquity, tilt in deg; acc_level x, y, z in m/s²), row k at ring[k % len(ring)].

    right_lo..right_hi, left_lo..left_hi: the single-support windows (−1 = unknown).
    Returns (drop_right_stance_deg, its sample, drop_left_stance_deg, its sample, obliquity_range_deg,
    tilt_mean_deg, tilt_range_deg, rotation_range_deg, sway_pp_cm, vertical_excursion_cm, rotation_mean_deg).
    """
    n = ring.shape[0]
    drop_r, drop_r_at = np.nan, -1
    drop_l, drop_l_at = np.nan, -1
    if right_lo >= 0:
        drop_r, drop_r_at = _extreme(ring, right_lo, right_hi, 1, -1.0)  # the left side at its lowest
    if left_lo >= 0:
        drop_l, drop_l_at = _extreme(ring, left_lo, left_hi, 1, 1.0)  # the right side at its lowest
    obl_hi, _ = _extreme(ring, start, end, 1, 1.0)
    obl_lo, _ = _extreme(ring, start, end, 1, -1.0)
    tilt_hi, _ = _extreme(ring, start, end, 2, 1.0)
    tilt_lo, _ = _extreme(ring, start, end, 2, -1.0)
    # Rotation against the line joining its two ends: a heading drift or slow turn is not pelvic rotation.
    r0 = ring[start % n, 0]
    r1 = ring[end % n, 0]
    m = end - start
    rot_hi = -np.inf
    rot_lo = np.inf
    tilt_sum = 0.0
    rot_sum = 0.0
    for k in range(start, end):
        rot = ring[k % n, 0] - (r0 + (r1 - r0) * (k - start) / m)
        rot_hi = max(rot_hi, rot)
        rot_lo = min(rot_lo, rot)
        tilt_sum += ring[k % n, 2]
        rot_sum += ring[k % n, 0]
    dt = 1.0 / fs_hz
    sway = _excursion_cm(ring, start, end, 4, dt)
    vertical = _excursion_cm(ring, start, end, 5, dt)
    return (drop_r, drop_r_at, drop_l, drop_l_at, obl_hi + obl_lo, tilt_sum / m,
            tilt_hi + tilt_lo, rot_hi - rot_lo, sway, vertical, rot_sum / m)


class StrideAnalyzer:
    """Streaming strides stage: ``update(angles_pelvis_deg (n, 3), acc_level_m_s2 (n, 3), events)`` →
    ``STRIDE_DTYPE`` array of the strides completed in this call.

    events: ``EVENT_DTYPE`` (sample, kind IC/FC, side), in sample order, any time after their samples (up to
    ``buffer_s`` minus the longest stride). Strides shorter than ``min_stride_s`` or longer than ``max_stride_s``
    are not formed. settings: any of DEFAULT_SETTINGS. Readable state: ``samples_seen``, ``strides_lost``
    (strides whose start had already left the buffer when their closing contact arrived).
    """

    def __init__(self, fs_hz: float, **settings):
        cfg = merged_settings("stride", DEFAULT_SETTINGS, settings, fs_hz)
        if cfg["buffer_s"] < cfg["max_stride_s"] + 1.0:
            raise InvalidValueError(f"buffer_s={cfg['buffer_s']}: keep at least max_stride_s + 1 s "
                                    f"({cfg['max_stride_s'] + 1.0} s) so that late events still find their samples")
        self.fs_hz = float(fs_hz)
        self.min_stride_samples = int(round(cfg["min_stride_s"] * fs_hz))
        self.max_stride_samples = int(round(cfg["max_stride_s"] * fs_hz))
        self.steady_time_change = cfg["steady_time_change"]
        self.steady_turn_deg = cfg["steady_turn_deg"]
        self._ring = np.full((int(round(cfg["buffer_s"] * fs_hz)), 6), np.nan)
        self.samples_seen = 0
        self.strides_lost = 0
        self._events = np.zeros(0, EVENT_DTYPE)  # recent events, sorted by sample
        self._event_columns = _columns(self._events)  # the same as contiguous columns, for the kernel
        # Closing ICs (sample, side) not yet measured, in sample order (events arrive in sample order).
        self._waiting = np.zeros((0, 2), np.int64)
        self._previous_stride_s = np.nan

    def update(self, angles_pelvis_deg, acc_level_m_s2, events=None) -> np.ndarray:
        angles = np.asarray(angles_pelvis_deg, dtype=np.float64)
        acc = np.asarray(acc_level_m_s2, dtype=np.float64)
        if angles.ndim != 2 or angles.shape[1] != 3 or acc.shape != angles.shape:
            raise InvalidValueError(f"angles_pelvis_deg {angles.shape} and acc_level_m_s2 {acc.shape}: expected two "
                                    "(n, 3) arrays, one row per sample")
        if events is not None and len(events):
            self._add_events(events)
        # Settle the waiting strides before a long block (a whole recording) pushes their samples out of the ring:
        # the oldest waiting stride starts at most max_stride_samples before its end, so the ring can take samples
        # up to a ring's length after that start before it must be measured. The results do not depend on blocks.
        out = np.zeros(len(self._waiting), STRIDE_DTYPE)  # at most a stride per closing IC
        n_out = self._settle(out, 0)
        pos = 0
        room = len(self._ring) - self.max_stride_samples
        while pos < len(angles):
            take = len(angles) - pos
            if len(self._waiting):
                take = min(take, int(self._waiting[0, 0]) + room - self.samples_seen)
            self._append_samples(angles[pos:pos + take], acc[pos:pos + take])
            pos += take
            n_out = self._settle(out, n_out)
        self._forget_old_events()
        return out[:n_out]

    # -- internals

    def _append_samples(self, angles, acc):
        n = len(angles)
        size = len(self._ring)
        if n >= size:  # only the newest samples can matter
            angles, acc = angles[-size:], acc[-size:]
            self.samples_seen += n - size
            n = size
        idx = (self.samples_seen + np.arange(n)) % size
        self._ring[idx, :3] = angles
        self._ring[idx, 3:] = acc
        self.samples_seen += n

    def _add_events(self, events):
        events = np.asarray(events)
        if events.dtype != EVENT_DTYPE:
            names = events.dtype.names or ()
            if not {"sample", "kind", "side"} <= set(names):
                raise InvalidValueError(f"events have dtype {events.dtype}: use hipcheck.gait.EVENT_DTYPE "
                                        "(sample, kind, side)")
            events = np.array([(e["sample"], e["kind"], e["side"]) for e in events], dtype=EVENT_DTYPE)
        bad = ~np.isin(events["kind"], (IC, FC)) | ~np.isin(events["side"], (LEFT, RIGHT)) | (events["sample"] < 0)
        if np.any(bad):
            raise InvalidValueError(f"{int(bad.sum())} event(s) with a kind other than IC/FC, a side other than "
                                    "LEFT/RIGHT or a negative sample")
        events = np.sort(events, order="sample", kind="stable")
        if len(self._events) and events["sample"][0] < self._events["sample"][-1]:
            raise InvalidValueError("events must arrive in sample order across calls")
        ics = events[events["kind"] == IC]
        self._waiting = np.concatenate([self._waiting, np.stack([ics["sample"], ics["side"]], axis=1)])
        self._events = np.concatenate([self._events, events])
        self._event_columns = _columns(self._events)

    def _forget_old_events(self) -> None:
        """Keep what a stride still waiting or still to come could need: back to the longest stride before the
        oldest end that can still be measured. Events arrive in sample order, so a closing IC not received yet lies
        at or after the last event received, however far the samples have run ahead of it (a detector's
        look-ahead): measured from the samples instead, a block boundary could forget a stride's opening IC."""
        oldest_end = int(self._waiting[0, 0]) if len(self._waiting) else self.samples_seen
        if len(self._events):
            oldest_end = min(oldest_end, int(self._events["sample"][-1]))
        horizon = min(oldest_end, self.samples_seen) - self.max_stride_samples - 1
        keep = self._events["sample"] >= horizon
        if not keep.all():
            self._events = self._events[keep]
            self._event_columns = _columns(self._events)

    def _settle(self, out: np.ndarray, n_out: int) -> int:
        """Measure the waiting strides whose samples have all arrived, into out from row n_out; returns the rows
        of out now written."""
        if not len(self._waiting) or self._waiting[0, 0] >= self.samples_seen:
            return n_out  # nothing ready (most live blocks): no kernel call
        settled, n_out, self._previous_stride_s, lost = _settle_strides(
            self._ring, self.samples_seen, self._waiting, *self._event_columns, self.min_stride_samples,
            self.max_stride_samples, self.fs_hz, self.steady_time_change, self.steady_turn_deg,
            self._previous_stride_s, out, n_out)
        self.strides_lost += lost
        if settled:
            self._waiting = self._waiting[settled:]
        return n_out


def _columns(events: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return tuple(np.ascontiguousarray(events[name]) for name in ("sample", "kind", "side"))


@njit(cache=True, inline="always")
def _bisect_left(values, x, lo):
    """The first index ≥ lo whose value is ≥ x in the sorted values (len(values) if none): np.searchsorted's
    answer, without the seconds its generic version adds to a cold compile."""
    hi = values.shape[0]
    while lo < hi:
        mid = (lo + hi) // 2
        if values[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True)
def _settle_strides(ring, samples_seen, waiting, ev_sample, ev_kind, ev_side, min_stride, max_stride, fs_hz,
                    steady_time_change, steady_turn_deg, previous_stride_s, out, n_out):
    """Measure the waiting strides (closing IC sample, side; in sample order) whose samples have all arrived
    (end < samples_seen), from the recent events (sorted by sample) and the ring of samples. Writes a row of out
    per stride formed, from row n_out; returns (waiting settled, rows of out written, the last stride time, strides
    lost: their start had left the ring). One call per block: per stride from Python this was a third of an
    hour's analysis."""
    settled = 0
    lost = 0
    for settled in range(waiting.shape[0] + 1):
        if settled == waiting.shape[0] or waiting[settled, 0] >= samples_seen:
            break
        end, side = waiting[settled, 0], waiting[settled, 1]
        # Only the events of the longest possible stride before end matter: [first, last).
        first = _bisect_left(ev_sample, end - max_stride, 0)
        last = _bisect_left(ev_sample, end, first)
        start = -1
        for i in range(last - 1, first - 1, -1):
            if ev_kind[i] == IC and ev_side[i] == side:
                start = ev_sample[i]
                break
        if start < 0:
            continue
        length = end - start
        if not min_stride <= length <= max_stride:
            continue
        if start < samples_seen - ring.shape[0]:
            lost += 1
            continue
        other = 1 - side
        opposite = -1
        opposite_count = 0
        for i in range(first, last):
            if start < ev_sample[i] < end and ev_kind[i] == IC and ev_side[i] == other:
                opposite_count += 1
                if opposite_count == 1:
                    opposite = ev_sample[i]
        if opposite_count != 1:
            opposite = -1
        windows = np.full((2, 2), -1, np.int64)  # by side (LEFT, RIGHT): single support lo, hi
        if opposite >= 0:
            fc_other, fc_same = -1, -1
            for i in range(first, last):
                if start < ev_sample[i] < end and ev_kind[i] == FC:
                    if fc_other < 0 and ev_side[i] == other and ev_sample[i] < opposite:
                        fc_other = ev_sample[i]
                    if fc_same < 0 and ev_side[i] == side and ev_sample[i] > opposite:
                        fc_same = ev_sample[i]
            windows[side, 0], windows[side, 1] = (fc_other if fc_other >= 0 else start), opposite
            windows[other, 0], windows[other, 1] = (fc_same if fc_same >= 0 else opposite), end
        (drop_r, drop_r_at, drop_l, drop_l_at, obl_range, tilt_mean, tilt_range, rot_range, sway, vertical,
         rot_mean) = stride_metrics(ring, start, end, windows[RIGHT, 0], windows[RIGHT, 1], windows[LEFT, 0],
                                    windows[LEFT, 1], fs_hz)
        stride_s = length / fs_hz
        step_s = (opposite - start) / fs_hz if opposite >= 0 else np.nan
        next_step_s = (end - opposite) / fs_hz if opposite >= 0 else np.nan
        regular = (math.isfinite(previous_stride_s)
                   and abs(stride_s - previous_stride_s) <= steady_time_change * previous_stride_s)
        straight = math.isfinite(rot_mean) and abs(2.0 * rot_mean) < steady_turn_deg
        finite = math.isfinite(drop_r + drop_l + obl_range + tilt_range + sway + vertical)  # NaN or inf propagates
        previous_stride_s = stride_s
        row = out[n_out]
        row.start_sample, row.end_sample, row.side, row.opposite_ic_sample = start, end, side, opposite
        row.stride_time_s, row.step_time_s, row.next_step_time_s = stride_s, step_s, next_step_s
        row.cadence_spm = 120.0 / stride_s
        row.drop_right_stance_deg, row.drop_right_stance_sample = drop_r, drop_r_at
        row.drop_left_stance_deg, row.drop_left_stance_sample = drop_l, drop_l_at
        row.obliquity_range_deg, row.tilt_mean_deg, row.tilt_range_deg = obl_range, tilt_mean, tilt_range
        row.rotation_range_deg, row.sway_pp_cm, row.vertical_excursion_cm = rot_range, sway, vertical
        row.step_time_symmetry = min(step_s, next_step_s) / max(step_s, next_step_s) if opposite >= 0 else np.nan
        row.drop_symmetry_deg = drop_r - drop_l
        row.steady = regular and straight and finite and opposite >= 0
        row.aligned = False
        n_out += 1
    return settled, n_out, previous_stride_s, lost


def analyze_strides(angles_pelvis_deg, acc_level_m_s2, events, fs_hz: float) -> np.ndarray:
    """Whole-array strides stage: every stride of a recording (the same code as StrideAnalyzer, in one call)."""
    angles = np.asarray(angles_pelvis_deg, dtype=np.float64)
    analyzer = StrideAnalyzer(fs_hz, buffer_s=max(10.0, len(angles) / fs_hz + 1.0))
    return analyzer.update(angles, acc_level_m_s2, events)
