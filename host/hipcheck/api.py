"""The notebook's front door: ``hipcheck.analyze(data)`` on arrays, a table, a CSV file or a session log, and its
result as pandas tables, a summary and figures; and the versioned JSON that ``hipcheck analyze --json`` prints.

    import hipcheck
    result = hipcheck.analyze("walk.hclog")                 # or a CSV path, a DataFrame, (acc, gyr) with fs=
    result.strides[["t_s", "side", "drop_right_stance_deg", "drop_left_stance_deg"]]
    result.summary["weak_side"]
    result.plot()

Inputs, all in SI units and the sensor frame (docs/csv-format.md for names and signs):

- a path: a session log (``.hclog``, recognised by its first bytes) through ``hipcheck.sessionfile`` — the samples
  in sequence order, lost ones left out as the live job left them out, at the live job's rate — or a CSV file in
  the generic format through ``hipcheck.imu_csv``;
- a pandas DataFrame with the CSV format's columns (``acc_x`` … ``gyr_z``; ``t`` in s gives the rate when ``fs``
  is not given);
- ``(acc, gyr)``, two (n, 3) arrays, or one (n, 6) array ``acc_x … gyr_z``, with ``fs``.

Every input goes through ``hipcheck.pipeline.analyze_arrays``: the same samples give the same strides whatever form
they came in. ``mode`` says what the recording is of (``hipcheck.pipeline.MODES``) — ``"walk"`` (strides, the
summary of ``analyze --json``), ``"hold"`` (single-leg holds: their summary and figures; the pipeline finds strides
and holds in either), ``"bridge"`` and ``"clamshell"`` (``reps``, on the segment angles in the sensor's own axes),
``"posture"`` (``posture`` alerts). ``thresholds`` are settings by name: the detectors'
(``hipcheck.detect.DEFAULT_SETTINGS``, e.g. ``drop_threshold_deg=5``), and in the exercise modes also the rep
counter's or posture monitor's (``hipcheck.exercises``, e.g. ``min_range_deg=6``, ``neutral_tilt_deg=-3``).

The JSON (``Result.json()``, ``analysis_json``) follows ``schema/analysis-v1.json`` (JSON Schema 2020-12, shipped
with the package; ``schema()`` loads it); ``schema_version`` says which, and a minor version only adds optional keys.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from hipcheck import report
from hipcheck.detect import DEFAULT_DROP_THRESHOLD_DEG, KIND_NAMES
from hipcheck.detect import DEFAULT_SETTINGS as DETECTOR_SETTINGS
from hipcheck.detect import SIDE_NAMES as DECISION_SIDE_NAMES
from hipcheck.errors import InvalidTypeError, InvalidValueError
from hipcheck.gait import FC, IC, SIDE_NAMES
from hipcheck.imu_csv import ACC_COLUMNS, GYR_COLUMNS, TIME_COLUMN, parse_axes, read_imu_csv
from hipcheck.exercises import FLAG_NAMES, POSTURE_NAMES
from hipcheck.pipeline import MODES, Analysis, analyze_arrays
from hipcheck.sessionfile import SessionLog, is_session_log, read_session_log

SCHEMA_VERSION = "1.0"
SCHEMA_PATH = Path(__file__).resolve().parent / "schema" / "analysis-v1.json"
CONTACT_NAMES = {IC: "initial", FC: "final"}


@dataclass
class Recording:
    """What was read, in SI units and the sensor frame: the samples analysed and where they came from."""

    acc_m_s2: np.ndarray
    gyr_rad_s: np.ndarray
    fs_hz: float
    t_s: np.ndarray | None  # the input's own times (None for arrays without them)
    format: str  # "csv", "hclog", "arrays", "dataframe"
    path: str | None = None
    session: SessionLog | None = None  # an .hclog's account: lost ranges, the device's orientation, host times
    notes: list[str] = field(default_factory=list)  # what the reader found and did (time unit, gaps, inf values)

    def input_json(self) -> dict:
        """The ``input`` object of the JSON."""
        out = {"format": self.format, "path": self.path,
               "samples_lost": 0 if self.session is None else self.session.n_lost}
        if self.session is not None:
            out["lost"] = [{"first_seq": int(r.first_seq), "n": int(r.n), "reason": r.reason}
                           for r in self.session.lost]
            out["damaged_bytes"] = int(self.session.damaged_bytes)
            if self.session.damage_line:
                out["damage"] = self.session.damage_line
        return out


def read_recording(path, *, fs_hz: float | None = None, acc_unit: str = "m/s2", gyr_unit: str = "rad/s",
                   axes: str | None = None, time_unit: str | None = None) -> Recording:
    """A file as a recording: a session log (recognised by its first bytes, or named ``.hclog``) or a CSV in the
    generic format read with these units, axes and rate. A log holds SI units and knows its rate: other units are
    refused, ``fs_hz`` must agree with it, ``axes`` turns its samples like a CSV's."""
    path = Path(path)
    if path.suffix.lower() != ".hclog" and not is_session_log(path):
        csv = read_imu_csv(path, acc_unit=acc_unit, gyr_unit=gyr_unit, axes=axes, fs_hz=fs_hz, time_unit=time_unit)
        rate = csv.fs_hz if fs_hz is not None else rate_from_times(csv.t_s)
        return Recording(csv.acc_m_s2, csv.gyr_rad_s, rate, csv.t_s, "csv", str(path), notes=csv.notes)
    if (acc_unit, gyr_unit, time_unit) not in (("m/s2", "rad/s", None), ("m/s2", "rad/s", "s")):
        raise InvalidValueError(f"{path}: a session log is in m/s2 and rad/s; the unit options are for CSV files")
    log = read_session_log(path)
    if fs_hz is not None and abs(fs_hz - log.fs_hz) > 1e-6 * log.fs_hz:
        raise InvalidValueError(f"{path}: the log was sampled at {log.fs_hz:g} Hz, not {fs_hz:g} Hz: leave out --fs")
    acc, gyr = log.acc_m_s2, log.gyr_rad_s
    if axes is not None:  # (an identity product of an hour's samples would cost a tenth of a second)
        rotation = parse_axes(axes)
        acc, gyr = acc @ rotation.T, gyr @ rotation.T
    return Recording(acc, gyr, log.fs_hz, log.t_s, "hclog", str(path), session=log)


def as_recording(data, fs: float | None = None) -> Recording:
    """Any input ``analyze`` takes (module docstring) as a ``Recording``."""
    if isinstance(data, (str, Path)):
        return read_recording(data, fs_hz=fs)
    if _is_dataframe(data):
        return _from_dataframe(data, fs)
    if isinstance(data, tuple) and len(data) == 2:
        acc, gyr = (np.asarray(a, dtype=np.float64) for a in data)
    elif isinstance(data, np.ndarray) and data.ndim == 2 and data.shape[1] == 6:
        acc, gyr = np.asarray(data[:, :3], dtype=np.float64), np.asarray(data[:, 3:], dtype=np.float64)
    else:
        raise InvalidTypeError(f"hipcheck.analyze takes a path, a DataFrame, (acc, gyr) or an (n, 6) array, not "
                               f"{type(data).__name__}" + (f" of shape {data.shape}" if hasattr(data, "shape") else ""))
    if fs is None:
        raise InvalidValueError("arrays carry no time: give the sample rate, e.g. hipcheck.analyze((acc, gyr), fs=100)")
    return Recording(acc, gyr, float(fs), None, "arrays")


def _is_dataframe(data) -> bool:
    import pandas

    return isinstance(data, pandas.DataFrame)


def _from_dataframe(frame, fs: float | None) -> Recording:
    columns = {str(c).strip().lower(): c for c in frame.columns}
    missing = [c for c in ACC_COLUMNS + GYR_COLUMNS if c not in columns]
    if missing:
        raise InvalidValueError(f"the DataFrame lacks {', '.join(missing)}; it has {', '.join(map(str, frame.columns))}"
                                " (names as docs/csv-format.md: t, acc_x, acc_y, acc_z, gyr_x, gyr_y, gyr_z)")
    acc = frame[[columns[c] for c in ACC_COLUMNS]].to_numpy(dtype=np.float64)
    gyr = frame[[columns[c] for c in GYR_COLUMNS]].to_numpy(dtype=np.float64)
    t_s = frame[columns[TIME_COLUMN]].to_numpy(dtype=np.float64) if TIME_COLUMN in columns else None
    if fs is None:
        if t_s is None or len(t_s) < 2 or not np.median(np.diff(t_s)) > 0:
            raise InvalidValueError("the DataFrame has no increasing 't' column (s): give the rate, fs=...")
        fs = rate_from_times(t_s)
    return Recording(acc, gyr, float(fs), t_s, "dataframe")


def rate_from_times(t_s: np.ndarray) -> float:
    """The nominal rate of a time column: 1 / the median step, the step rounded to the nanosecond. Times written
    as decimals come back with float noise in their steps (a 100 Hz file gives 100.00000000000213 Hz), and the
    pipeline's results are not blind to it (a stride's drop moved by 0.03° between 100 and that rate), so a table
    read with ``fs=100`` and the same file read alone would disagree; no sensor's period is finer than 1 ns."""
    step_ns = round(float(np.median(np.diff(t_s))) * 1e9)
    return 1e9 / step_ns


def analyze(data, fs: float | None = None, *, mode: str = "walk", offline: bool = False, profile: bool = True,
            **thresholds) -> Result:
    """Analyse a recording (module docstring): ``data`` a path (.hclog or CSV), a DataFrame, ``(acc, gyr)`` or an
    (n, 6) array; ``fs`` the sample rate in Hz (from the file or the ``t`` column when not given); ``mode`` "walk"
    or "hold"; ``offline`` the non-causal orientation filter (review) instead of the live one; ``profile``: a
    session log's samples with the calibration profile of the sensor it names, as ``hipcheck analyze`` does
    (docs/calibration.md); ``thresholds`` the detectors' settings by name. Raises a ``hipcheck.HipcheckError`` for
    input that cannot be analysed (a profile that cannot be used included)."""
    if mode not in MODES:
        raise InvalidValueError(f"mode {mode!r}: one of {', '.join(MODES)}")
    # Walk and hold have only the detectors' settings (an unknown name is refused there); an exercise mode's stage
    # takes the rest and refuses what it does not know.
    walking = mode in ("walk", "hold")
    detector = {k: v for k, v in thresholds.items() if walking or k in DETECTOR_SETTINGS}
    stage = {k: v for k, v in thresholds.items() if k not in detector}
    recording = as_recording(data, fs)
    acc, gyr, alignment = recording.acc_m_s2, recording.gyr_rad_s, None
    settings = {"mode": mode, "mode_settings": stage or None}
    if profile and recording.session is not None:
        from hipcheck.calibration.profile import for_analysis

        acc, gyr, alignment, _ = for_analysis(recording, detector, settings)
    analysis = analyze_arrays(acc, gyr, recording.fs_hz, offline=offline, alignment=alignment,
                              detector_settings=detector or None, **settings)
    return Result(analysis, recording, mode, float(thresholds.get("drop_threshold_deg", DEFAULT_DROP_THRESHOLD_DEG)))


def analysis_json(analysis: Analysis, recording: Recording,
                  drop_threshold_deg: float = DEFAULT_DROP_THRESHOLD_DEG) -> dict:
    """The object ``hipcheck analyze --json`` prints (schema/analysis-v1.json); ``warnings`` start with what the
    reader found in the input (a time unit other than s, gaps, rate changes, inf values)."""
    out = {"schema_version": SCHEMA_VERSION, "input": recording.input_json(),
           **report.analysis_to_dict(analysis, drop_threshold_deg)}
    out["warnings"] = list(recording.notes) + out["warnings"]
    return out


def schema() -> dict:
    """The JSON Schema of ``analysis_json`` (version ``SCHEMA_VERSION``)."""
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


class Result:
    """An analysed recording: tables (pandas DataFrames, a row per record, sides and kinds by name, ``t_s`` = sample
    / fs), ``summary``, ``json()`` and ``plot()``; ``analysis`` (``hipcheck.pipeline.Analysis``) holds the arrays
    (orientation, pelvic angles) and ``recording`` what was read."""

    def __init__(self, analysis: Analysis, recording: Recording, mode: str = "walk",
                 drop_threshold_deg: float = DEFAULT_DROP_THRESHOLD_DEG):
        self.analysis = analysis
        self.recording = recording
        self.mode = mode
        self.drop_threshold_deg = drop_threshold_deg

    def __repr__(self) -> str:
        a = self.analysis
        return (f"<hipcheck.Result {self.recording.format} {len(a.q_sensor_to_earth) / a.fs_hz:.1f} s at "
                f"{a.fs_hz:g} Hz, mode {self.mode}: {len(a.strides)} strides, {len(a.decisions)} decisions, "
                f"{len(a.holds)} holds, {len(a.reps)} reps, {len(a.posture)} posture alerts>")

    def json(self) -> dict:
        """The same object as ``hipcheck analyze --json`` on this input."""
        return analysis_json(self.analysis, self.recording, self.drop_threshold_deg)

    @cached_property
    def contacts(self):
        """Initial and final contacts: sample, t_s, kind ("initial", "final"), side (the foot)."""
        events = self.analysis.events
        return self._table(events, {"kind": CONTACT_NAMES, "side": dict(enumerate(SIDE_NAMES))}, "sample")

    @cached_property
    def strides(self):
        """A row per stride (hipcheck.gait.STRIDE_DTYPE's fields; ``side``: the foot that starts it)."""
        return self._table(self.analysis.strides, {"side": dict(enumerate(SIDE_NAMES))}, "start_sample")

    @cached_property
    def decisions(self):
        """The detectors' decisions in sample order (kind, stance side for drops, value, threshold)."""
        names = {"kind": dict(enumerate(KIND_NAMES)), "side": dict(enumerate(DECISION_SIDE_NAMES))}
        return self._table(self.analysis.decisions, names, "sample")

    @cached_property
    def holds(self):
        """A row per single-leg hold (hipcheck.hold.HOLD_DTYPE's fields; ``side``: the stance leg)."""
        return self._table(self.analysis.holds, {"side": dict(enumerate(DECISION_SIDE_NAMES))}, "start_sample")

    @cached_property
    def reps(self):
        """bridge, clamshell: a row per repetition (hipcheck.exercises.REP_DTYPE; ``flag`` by name)."""
        return self._table(self.analysis.reps, {"flag": dict(enumerate(FLAG_NAMES))}, "start_sample")

    @cached_property
    def posture(self):
        """posture: a row per alert (hipcheck.exercises.POSTURE_DTYPE; ``kind`` by name)."""
        return self._table(self.analysis.posture, {"kind": dict(enumerate(POSTURE_NAMES))}, "sample")

    @cached_property
    def summary(self) -> dict:
        """walk: the summary of ``analyze --json`` (medians over steady strides, the weak side or why none may be
        named); hold: the holds per stance leg and their medians; bridge, clamshell: the reps, their medians and
        flags; posture: the alerts per kind."""
        if self.mode == "hold":
            return hold_summary(self.holds, self.analysis.side_refused)
        if self.mode in ("bridge", "clamshell"):
            return rep_summary(self.reps)
        if self.mode == "posture":
            kinds = self.posture["kind"]
            return {"posture_alerts": int(len(kinds)),
                    **{name.replace(" ", "_"): int((kinds == name).sum()) for name in POSTURE_NAMES}}
        return self.json()["summary"]

    def _table(self, records: np.ndarray, names: dict, sample_field: str):
        import pandas

        frame = pandas.DataFrame({name: records[name] for name in records.dtype.names})
        for name, codes in names.items():
            frame[name] = pandas.Categorical(frame[name].map(codes), categories=list(dict.fromkeys(codes.values())))
        frame.insert(1, "t_s", records[sample_field] / self.analysis.fs_hz)
        return frame

    def plot(self, path=None):
        """The main figures in one matplotlib Figure (walk: obliquity with contacts and alerts, stride-normalised
        angles per side mean ± SD, stance drops per side over the session and as histograms; hold: obliquity and
        tilt with the holds, their metrics; bridge, clamshell, posture: the segment angles with the reps or alerts).
        Saved to ``path`` when given. Returns the Figure."""
        from hipcheck.figures import exercise_figure, hold_figure, walk_figure

        draw = {"walk": walk_figure, "hold": hold_figure}.get(self.mode, exercise_figure)
        figure = draw(self)
        if path is not None:
            figure.savefig(path, dpi=110)
        return figure


def hold_summary(holds, side_refused: str) -> dict:
    """Holds per stance leg and the medians of their main metrics (None when there are none)."""
    out: dict = {"holds": int(len(holds))}
    for side in ("left", "right"):
        out[f"holds_{side}_stance"] = int((holds["side"] == side).sum()) if len(holds) else 0
    for name in ("hold_time_s", "drop_deg", "tilt_drift_deg", "sway_rms_m_s2", "jerk_rms_m_s3"):
        values = holds[name].dropna() if len(holds) else []
        out[f"{name}_median"] = round(float(np.median(values)), 3) if len(values) else None
    if side_refused:
        out["side_refused"] = side_refused
    return out


def rep_summary(reps) -> dict:
    """The reps, the medians of their durations and range, and how many were flagged, by flag."""
    out: dict = {"reps": int(len(reps))}
    for name in ("up_s", "top_s", "down_s", "range_deg"):
        values = reps[name].dropna() if len(reps) else []
        out[f"{name}_median"] = round(float(np.median(values)), 3) if len(values) else None
    out["flagged"] = {name: int((reps["flag"] == name).sum()) for name in FLAG_NAMES[1:]} if len(reps) else {}
    return out
