"""The result of a simulation: the IMU samples a sacral sensor records, and the truth behind them.

Frames and signs (see docs/motion.md): earth z up, x the initial walking direction, y left; pelvis x anterior,
y left, z superior; Baker angles (rotation, obliquity, tilt) in degrees with rotation + = turned left (right side
forward), obliquity + = left side higher, tilt + = anterior.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

# Per-sample gait phase codes (Truth.phase).
PHASE_DOUBLE_SUPPORT = 0
PHASE_LEFT_SINGLE_SUPPORT = 1  # standing on the left leg, right foot off the ground
PHASE_RIGHT_SINGLE_SUPPORT = 2
PHASE_OTHER = 3  # standing on both legs, sitting, transitions, gait initiation and stop

_DECIMALS = {"deg": 4, "quat": 6, "m": 5, "s": 6, "m_s2": 5, "rad_s": 6}


@dataclass(frozen=True)
class GaitEvent:
    """An initial contact ('IC', heel strike) or final contact ('FC', toe off) of one foot."""

    kind: str  # 'IC' or 'FC'
    side: str  # 'left' or 'right': the foot that lands or leaves
    t_s: float
    sample_index: int  # the original sample nearest in time (may be a dropped one)


@dataclass(frozen=True)
class Interval:
    """A stretch of an activity: 'hold' (free foot off the ground), 'touchdown', 'rise', 'sit_down'; for bridges and
    clamshells 'rep' (start of the lift to the end of the lowering; side: a bridge's dropping side), 'up', 'down'."""

    kind: str
    start_s: float
    end_s: float
    side: str | None = None  # for a hold: the stance leg


@dataclass(frozen=True)
class Stride:
    """One stride, right initial contact to the next, with the truth of its pelvis motion.

    drop_right_stance_deg: how far the LEFT side sinks below level at its lowest during right single support
    (−min obliquity; + = sinks, − = the left side stays above level). drop_left_stance_deg likewise for the right
    side during left single support (+max obliquity). Ranges are max − min over the stride; rotation_range_deg is
    taken on the rotation relative to the walking path (turns excluded); sway_pp_cm on the lateral displacement
    from the path. steady: the stride lies wholly outside gait initiation and stop.
    """

    number: int
    start_sample: int
    end_sample: int
    start_s: float
    end_s: float
    duration_s: float
    drop_right_stance_deg: float
    drop_left_stance_deg: float
    obliquity_range_deg: float
    tilt_mean_deg: float
    tilt_range_deg: float
    rotation_range_deg: float
    sway_pp_cm: float
    steady: bool


@dataclass(frozen=True)
class Truth:
    """What really happened, per kept sample (arrays of N rows) and per event, stride and interval.

    sway_m: lateral displacement of the pelvis from the walking path (or from the standing spot), + = left.
    phase: PHASE_* code per sample. stride_phase: fraction of the stride since the last right initial contact,
    NaN outside walking. angles_pelvis_deg[:, 0] (rotation) is continuous, not wrapped, and includes the heading.
    The ideal sensor signals and the sensor's errors are kept so that each error can be checked on its own.
    """

    angles_pelvis_deg: np.ndarray  # (N, 3) rotation, obliquity, tilt
    q_pelvis_to_earth: np.ndarray  # (N, 4)
    q_sensor_to_earth: np.ndarray  # (N, 4)
    q_sensor_to_pelvis: np.ndarray  # (4,) the mounting rotation
    pos_pelvis_m: np.ndarray  # (N, 3) earth frame, the sacral point the sensor sits on
    vel_pelvis_m_s: np.ndarray  # (N, 3)
    acc_pelvis_m_s2: np.ndarray  # (N, 3) earth frame, gravity not included
    sway_m: np.ndarray  # (N,)
    phase: np.ndarray  # (N,) int8
    stride_phase: np.ndarray  # (N,)
    specific_force_sensor_m_s2: np.ndarray  # (N, 3) what an ideal accelerometer reads
    angular_rate_sensor_rad_s: np.ndarray  # (N, 3) what an ideal gyroscope reads
    acc_bias_m_s2: np.ndarray  # (N, 3) the accelerometer bias at each sample (constant + random walk)
    gyr_bias_rad_s: np.ndarray  # (N, 3)
    acc_gain: np.ndarray  # (3, 3) scale and misalignment: reading = acc_gain @ true + bias + noise
    gyr_gain: np.ndarray  # (3, 3)
    events: list[GaitEvent] = field(default_factory=list)
    strides: list[Stride] = field(default_factory=list)
    intervals: list[Interval] = field(default_factory=list)

    def contacts_s(self, kind: str = "IC", side: str | None = None) -> np.ndarray:
        """Times (s) of the events of one kind ('IC' or 'FC'), of one side or both."""
        return np.array([e.t_s for e in self.events if e.kind == kind and (side is None or e.side == side)])


@dataclass(frozen=True)
class Trace:
    """A simulated recording: samples as the sensor delivers them, the truth, and how it was made.

    t_s are the instants the samples were taken (with jitter, as a device clock would stamp them);
    sample_index numbers the samples as taken, so dropped samples show up as gaps.
    """

    activity: str
    fs_hz: float
    t_s: np.ndarray  # (N,)
    sample_index: np.ndarray  # (N,) int64
    acc_sensor_m_s2: np.ndarray  # (N, 3) specific force, sensor frame
    gyr_sensor_rad_s: np.ndarray  # (N, 3) angular rate, sensor frame
    truth: Truth
    params: dict  # the activity settings used, JSON-ready
    sensor: object  # the SensorModel used
    seed: int

    @property
    def duration_s(self) -> float:
        return float(self.params["duration_s"])

    def summary(self) -> dict:
        """Headline truth as a flat dict of numbers and strings (units in the keys)."""
        out: dict = {"activity": self.activity, "duration_s": self.duration_s, "samples": int(len(self.t_s))}
        out["dropped_samples"] = int(round(self.duration_s * self.fs_hz)) - len(self.t_s)
        angles = self.truth.angles_pelvis_deg
        strides = [s for s in self.truth.strides if s.steady] or self.truth.strides
        if strides:
            ic = self.truth.contacts_s("IC")
            out["strides"] = len(self.truth.strides)
            out["cadence_spm"] = float(60.0 * (len(ic) - 1) / (ic[-1] - ic[0]))
            out["drop_left_stance_deg_mean"] = _mean(s.drop_left_stance_deg for s in strides)
            out["drop_right_stance_deg_mean"] = _mean(s.drop_right_stance_deg for s in strides)
            out["sway_pp_cm_mean"] = _mean(s.sway_pp_cm for s in strides)
            out["tilt_mean_deg"] = _mean(s.tilt_mean_deg for s in strides)
            out["tilt_range_deg_mean"] = _mean(s.tilt_range_deg for s in strides)
            out["obliquity_range_deg_mean"] = _mean(s.obliquity_range_deg for s in strides)
        else:
            out["tilt_mean_deg"] = float(np.mean(angles[:, 2]))
            out["obliquity_mean_deg"] = float(np.mean(angles[:, 1]))
        reps = [i for i in self.truth.intervals if i.kind == "rep"]
        if reps:
            out["reps"] = len(reps)
            out["up_s"] = _mean(i.end_s - i.start_s for i in self.truth.intervals if i.kind == "up")
            out["down_s"] = _mean(i.end_s - i.start_s for i in self.truth.intervals if i.kind == "down")
            out["range_deg"] = float(self.params["range_deg"])
        for hold in (i for i in self.truth.intervals if i.kind == "hold"):
            out.update(self._hold_summary(hold))
            break
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in out.items()}

    def _hold_summary(self, hold: Interval) -> dict:
        touchdowns = [i for i in self.truth.intervals if i.kind == "touchdown"]
        on_one_leg = self.truth.phase != PHASE_OTHER
        obliquity = self.truth.angles_pelvis_deg[on_one_leg, 1]
        # The free side sinks when the stance side rises: obliquity + = left higher.
        free_drop = obliquity if hold.side == "left" else -obliquity
        # Tilt drift: the second after lift-off is complete against the second before lowering begins.
        settle_s = 0.5 * float(self.params.get("transition_s", 0.0))
        tilt = self.truth.angles_pelvis_deg[:, 2]
        first = (self.t_s >= hold.start_s + settle_s) & (self.t_s < hold.start_s + settle_s + 1.0)
        last = (self.t_s > hold.end_s - settle_s - 1.0) & (self.t_s <= hold.end_s - settle_s)
        sway = self.truth.sway_m[on_one_leg]
        return {
            "hold_side": hold.side,
            "hold_s": hold.end_s - hold.start_s,
            "free_side_drop_deg_mean": _mean(free_drop),
            "touchdowns": len(touchdowns),
            "tilt_drift_deg": _mean(tilt[last]) - _mean(tilt[first]),
            "sway_rms_cm": 100.0 * float(np.std(sway)) if len(sway) else float("nan"),
        }

    def truth_dict(self) -> dict:
        """The truth as a JSON-ready dict: arrays as lists, rounded (4 decimals for degrees). See docs/motion.md."""
        tr = self.truth
        return {
            "format": "hipcheck-motion-truth/1",
            "activity": self.activity,
            "fs_hz": self.fs_hz,
            "seed": self.seed,
            "params": self.params,
            "sensor": _jsonable(dataclasses.asdict(self.sensor)) if dataclasses.is_dataclass(self.sensor) else None,
            "summary": self.summary(),
            "q_sensor_to_pelvis": _rounded(tr.q_sensor_to_pelvis, "quat"),
            "acc_gain": _rounded(tr.acc_gain, "quat"),
            "gyr_gain": _rounded(tr.gyr_gain, "quat"),
            "acc_bias_start_m_s2": _rounded(tr.acc_bias_m_s2[0], "m_s2") if len(self.t_s) else None,
            "gyr_bias_start_rad_s": _rounded(tr.gyr_bias_rad_s[0], "rad_s") if len(self.t_s) else None,
            "t_s": _rounded(self.t_s, "s"),
            "sample_index": self.sample_index.tolist(),
            "angles_pelvis_deg": _rounded(tr.angles_pelvis_deg, "deg"),
            "q_sensor_to_earth": _rounded(tr.q_sensor_to_earth, "quat"),
            "pos_pelvis_m": _rounded(tr.pos_pelvis_m, "m"),
            "sway_m": _rounded(tr.sway_m, "m"),
            "phase": tr.phase.tolist(),
            "stride_phase": [None if np.isnan(p) else p for p in np.round(tr.stride_phase, 4).tolist()],
            "events": [_jsonable(dataclasses.asdict(e)) for e in tr.events],
            "strides": [_jsonable(dataclasses.asdict(s)) for s in tr.strides],
            "intervals": [_jsonable(dataclasses.asdict(i)) for i in tr.intervals],
        }


def _mean(values) -> float:
    values = np.fromiter(values, dtype=float) if not isinstance(values, np.ndarray) else values
    return float(np.mean(values)) if len(values) else float("nan")


def _rounded(array: np.ndarray, unit: str) -> list:
    return np.round(np.asarray(array, dtype=float), _DECIMALS[unit]).tolist()


def _jsonable(value):
    """Plain Python values for json: floats rounded to 6 decimals, tuples as lists, numpy scalars unwrapped."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return round(float(value), 6)
    return value
