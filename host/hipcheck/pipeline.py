"""The measuring pipeline: IMU samples in, orientation, pelvic angles, gait events, strides and decisions out.

``Pipeline`` composes the stages of docs/pipeline.md (fusion ▶ gait events ▶ pelvis ▶ strides ▶ detectors and
the single-leg-hold analyser) for live blocks; ``analyze_arrays`` runs the same pipeline over a whole recording
held in arrays (``hipcheck.analyze``, the notebook's front door, reads files and tables and calls it). Both give
identical results whatever blocks a recording arrives in, because every stage is a streaming state machine that
counts samples from the start of the stream.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from hipcheck.detect import DECISION_DTYPE, NONE, Detectors
from hipcheck.errors import InvalidValueError
from hipcheck.exercises import (
    CHEAT_DTYPE,
    GUIDED_HOLD_DTYPE,
    POSTURE_DTYPE,
    REP_DTYPE,
    GuidedHold,
    PostureMonitor,
    RepCounter,
    segment_angles_deg,
)
from hipcheck.fusion import Fusion, orient
from hipcheck.gait import EVENT_DTYPE, STRIDE_DTYPE
from hipcheck.gait.events import EventDetector
from hipcheck.gait.strides import StrideAnalyzer
from hipcheck.hold import HOLD_DTYPE, HoldAnalyzer
from hipcheck.inputs import InputReport, check_imu
from hipcheck.pelvis import Mounting, PelvisTracker, to_pelvis_frame

# The coaching modes: which exercise the wearer does. Walk and hold use the stages above as they are; posture,
# bridge and clamshell read the orientation of the segment the sensor is worn on in its declared or calibrated
# frame (lying down or sitting still gives no walk to find the mounting from).
MODES = ("walk", "hold", "posture", "bridge", "clamshell")
# Shorter than two strides at a slow cadence plus the stages' start-up leaves nothing to measure.
MIN_ANALYSIS_S = 3.0
# The fusion settings of a body-worn sensor on a walking person: while the pelvis turns faster than 20 °/s the
# centripetal acceleration of the walking path would tip the inclination, so the accelerometer correction pauses
# (at most 5 s) and the gyroscope carries the orientation (hipcheck.fusion, the turn gate). Off in the fusion's
# own defaults because hand-held motion, as in the BROAD benchmark, rotates fast for long stretches.
WALKING_FUSION_SETTINGS = {"turn_rate_rad_s": math.radians(20.0)}
# The gait events read each step's side from the lateral acceleration of the 0.5 s before its contact, contrasted
# with the step before's: strides that start within this long after the pelvis frame in use jumped (a mounting far
# from ours while it was being found: PelvisTracker.frame_jump_at) may have a side read on the frame before.
SIDE_SETTLE_S = 1.5


@dataclass
class Block:
    """What the pipeline made of one block of samples. Per-sample arrays have one row per input sample; records
    (events, strides, decisions, holds) are those settled during this block, which may refer to earlier samples."""

    first_sample: int
    q_sensor_to_earth: np.ndarray
    angles_pelvis_deg: np.ndarray
    acc_level_m_s2: np.ndarray
    events: np.ndarray
    strides: np.ndarray
    decisions: np.ndarray
    holds: np.ndarray
    reps: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=REP_DTYPE))
    posture: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=POSTURE_DTYPE))
    guided_holds: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=GUIDED_HOLD_DTYPE))
    cheats: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=CHEAT_DTYPE))


class Pipeline:
    """Streaming pipeline for one sensor. ``update(acc, gyr)`` for each block, in order.

    alignment: a calibrated q_sensor_to_pelvis (hipcheck.calibration.mounting), else found automatically for any
    mounting (``mounting`` says what was found). axes_given: the sensor frame is known to be the pelvis frame
    within ±45° (our clip as designed, or a file remapped with ``--axes``): the forward sign is then taken from
    it rather than from the data.
    detector_settings: passed to hipcheck.detect.Detectors (thresholds, baseline mode).
    fusion_settings: overrides of WALKING_FUSION_SETTINGS and the fusion's defaults.
    mode: one of MODES; bridge and clamshell count reps (hipcheck.exercises.RepCounter), posture alerts on the tilt
    against a neutral (PostureMonitor), both on the segment angles in the frame of ``alignment`` (or the sensor's
    own axes, x anterior, y left, z superior, when none is given). mode_settings: that stage's settings. In hold
    mode the holds the user starts (``start_hold``, or a double tap on the sensor) are timed and scored with their
    cheats (hipcheck.exercises.GuidedHold; mode_settings are its settings) beside the automatic finder's.
    """

    def __init__(self, fs_hz: float, *, alignment: np.ndarray | None = None, axes_given: bool = False,
                 detector_settings: dict | None = None, fusion_settings: dict | None = None, mode: str = "walk",
                 mode_settings: dict | None = None):
        if mode not in MODES:
            raise InvalidValueError(f"mode {mode!r}: one of {', '.join(MODES)}")
        self.fs_hz = float(fs_hz)
        self.mode = mode
        self._q_segment = np.array([1.0, 0.0, 0.0, 0.0]) if alignment is None else np.asarray(alignment, dtype=float)
        self._build_mode_stage(mode_settings)
        self.mode_from = 0  # the sample at which the mode's stage began (set_mode): its own sample 0
        self.fusion = Fusion(self.fs_hz, **{**WALKING_FUSION_SETTINGS, **(fusion_settings or {})})
        self.events = EventDetector(self.fs_hz)
        self.pelvis = PelvisTracker(self.fs_hz, alignment=alignment, nominal=axes_given)
        self._settle_samples = round(SIDE_SETTLE_S * self.fs_hz)
        self._mounting_found = alignment is None and not axes_given
        self.strides = StrideAnalyzer(self.fs_hz)
        self.detectors = Detectors(self.fs_hz, detector_settings)
        self.holds = HoldAnalyzer(self.fs_hz)
        self.n_samples = 0

    def update(self, acc_sensor_m_s2: np.ndarray, gyr_sensor_rad_s: np.ndarray,
               q_sensor_to_earth: np.ndarray | None = None) -> Block:
        """Process the next block. Pass ``q_sensor_to_earth`` to use an orientation found elsewhere (the offline
        fusion of a review); otherwise the causal fusion runs."""
        acc = np.ascontiguousarray(acc_sensor_m_s2, dtype=np.float64)
        gyr = np.ascontiguousarray(gyr_sensor_rad_s, dtype=np.float64)
        if q_sensor_to_earth is None:
            quat = self.fusion.update(acc, gyr)
        else:
            quat = np.ascontiguousarray(q_sensor_to_earth, dtype=np.float64)
        # The pelvis stage first: the events stage names sides from the lateral acceleration, so it gets its input
        # turned into the pelvis frame found so far (any mounting), not the sensor's own.
        axes = np.empty((len(acc), 3, 3))
        angles, acc_level = self.pelvis.update(quat, acc, axes)
        events = self.events.update(*_pelvis_frame_inputs(axes, quat, acc, gyr))
        strides = self._mark_aligned(self.strides.update(angles, acc_level, events))
        decisions = self.detectors.update(self._settled(angles), strides[strides["aligned"]])
        holds = self.holds.update(angles, acc_level)
        block = Block(self.n_samples, quat, angles, acc_level, events, strides, decisions, holds)
        if self.guided is not None:
            block.cheats, block.guided_holds = self.guided.update(angles, acc_level)
        if self.rep_counter is not None or self.posture is not None:
            segment = segment_angles_deg(quat, self._q_segment)
            if self.rep_counter is not None:
                block.reps = self.rep_counter.update(segment)
            else:
                block.posture = self.posture.update(segment)
        if self.mode_from:
            _shift_mode_records(block, self.mode_from)
        self.n_samples += len(acc)
        return block

    def _mark_aligned(self, strides: np.ndarray) -> np.ndarray:
        """Strides that began before the pelvis alignment settled were measured on a provisional frame: marked,
        kept out of the per-stride detectors and the summary. A stride is reported only after all its samples
        went through the pelvis stage, so the mark does not depend on block sizes."""
        since = self.pelvis.aligned_since
        jump = self.pelvis.frame_jump_at
        if jump >= 0 and since >= 0:
            since = max(since, jump + self._settle_samples)
        strides["aligned"] = (since >= 0) & (strides["start_sample"] >= since)
        return strides

    def _settled(self, angles: np.ndarray) -> np.ndarray:
        """The angles the per-sample drop detector may use: while a mounting is being found from the data the
        provisional frame can be reversed, and a drop alert would name the wrong side, so those rows are NaN
        (nothing fires). A declared or calibrated frame is used from the start, as before."""
        since = self.pelvis.aligned_since
        first = self.n_samples
        if not self._mounting_found or (0 <= since <= first):
            return angles
        cut = len(angles) if since < 0 else min(len(angles), since - first)
        settled = angles.copy()
        settled[:cut] = np.nan
        return settled

    @property
    def mounting(self) -> Mounting:
        """The sensor mounting in use and whether it can name sides (hipcheck.pelvis.Mounting)."""
        return self.pelvis.mounting

    def finish(self) -> Block:
        """End of the stream: settle what the stages still hold back (the contacts within the event detector's
        look-ahead, a hold still open) and return the records that completes. No samples are added."""
        no_vectors = np.zeros((0, 3))
        events = self.events.flush()
        strides = self._mark_aligned(self.strides.update(no_vectors, no_vectors, events))
        decisions = self.detectors.update(no_vectors, strides[strides["aligned"]])
        holds = self.holds.flush()
        block = Block(self.n_samples, np.zeros((0, 4)), no_vectors, no_vectors, events, strides, decisions, holds)
        if self.guided is not None:
            block.cheats, block.guided_holds = self.guided.flush()
        if self.mode_from:
            _shift_mode_records(block, self.mode_from)
        return block

    def start_hold(self, key_sample: int) -> bool:
        """Hold mode: the user's start (key) at key_sample (a sample of the pipeline); False if a hold is already
        under way (or not hold mode)."""
        return self.guided is not None and self.guided.start(key_sample - self.mode_from)

    def set_mode(self, mode: str, mode_settings: dict | None = None) -> None:
        """Switch the coaching mode from the next sample on: the mode's stage (rep counter, posture monitor,
        user-started holds) is replaced by a new one of ``mode`` with ``mode_settings`` (a hold under way, a rep
        half done are dropped), while fusion, pelvis, gait events, strides, detectors and the automatic hold
        finder carry on as they were. The new stage's records come in the pipeline's samples, as the first
        stage's do."""
        if mode not in MODES:
            raise InvalidValueError(f"mode {mode!r}: one of {', '.join(MODES)}")
        self.mode = mode
        self._build_mode_stage(mode_settings)
        self.mode_from = self.n_samples

    def _build_mode_stage(self, mode_settings: dict | None) -> None:
        """The stage of ``self.mode`` (None for the stages it does not run), counting its own samples from 0."""
        mode, fs = self.mode, self.fs_hz
        self.rep_counter = RepCounter(fs, mode, mode_settings) if mode in ("bridge", "clamshell") else None
        self.posture = PostureMonitor(fs, mode_settings) if mode == "posture" else None
        self.guided = GuidedHold(fs, mode_settings, taps={}) if mode == "hold" else None


@dataclass
class Analysis:
    """A whole recording analysed: per-sample arrays and all records, with the input's flaws."""

    fs_hz: float
    q_sensor_to_earth: np.ndarray
    angles_pelvis_deg: np.ndarray
    acc_level_m_s2: np.ndarray
    events: np.ndarray
    strides: np.ndarray
    decisions: np.ndarray
    holds: np.ndarray
    alignment: np.ndarray | None
    input_report: InputReport
    offline: bool = False
    notes: list[str] = field(default_factory=list)
    mounting: Mounting | None = None  # None only for analyses built by hand
    mode: str = "walk"
    reps: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=REP_DTYPE))
    posture: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=POSTURE_DTYPE))
    guided_holds: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=GUIDED_HOLD_DTYPE))
    cheats: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=CHEAT_DTYPE))

    @property
    def side_refused(self) -> str:
        """Why no side may be named from this analysis (the mounting could not be found); empty if it may."""
        return "" if self.mounting is None or self.mounting.ok else self.mounting.reason


def analyze_arrays(acc_sensor_m_s2: np.ndarray, gyr_sensor_rad_s: np.ndarray, fs_hz: float, *,
                   offline: bool = False, alignment: np.ndarray | None = None, axes_given: bool = False,
                   detector_settings: dict | None = None, block_size: int | None = None, mode: str = "walk",
                   mode_settings: dict | None = None, hold_starts=()) -> Analysis:
    """Analyse a whole recording (SI units; any sensor mounting, found from the data unless ``alignment`` is given;
    ``axes_given``: the axes are known to be x anterior, y left, z superior within ±45°, see Pipeline).

    When the mounting cannot be found (no walking, too few steps, the forward sign unclear), no stride is used, the
    per-stride decisions are dropped, ``side_refused`` says why and ``notes`` repeats it: a side named on a guessed
    mounting could be the wrong one.

    offline: orientation from the non-causal filter (review), instead of the causal one the live alerts use.
    block_size: feed the pipeline in blocks of this size (results are identical; for tests and progress).
    mode, mode_settings: the coaching mode (Pipeline). hold_starts: hold mode, the samples at which the user
    started a hold (a key; double taps on the sensor are found in the data).
    Raises ``hipcheck.inputs.InputError`` for data that cannot be analysed.
    """
    report = check_imu(acc_sensor_m_s2, gyr_sensor_rad_s, fs_hz, min_seconds=MIN_ANALYSIS_S)
    acc = np.ascontiguousarray(acc_sensor_m_s2, dtype=np.float64)
    gyr = np.ascontiguousarray(gyr_sensor_rad_s, dtype=np.float64)
    pipeline = Pipeline(fs_hz, alignment=alignment, axes_given=axes_given, detector_settings=detector_settings,
                        mode=mode, mode_settings=mode_settings)
    quat_all = orient(acc, gyr, fs_hz, offline=True, **WALKING_FUSION_SETTINGS) if offline else None
    n = len(acc)
    step = n if block_size is None else max(1, int(block_size))
    # Blocks end at each user start too: the start is given when its sample has arrived, as a key press would be.
    starts = {int(k) for k in hold_starts}
    cuts = sorted({*range(0, n, step), *(k for k in starts if 0 <= k < n), n})
    blocks = []
    for start, stop in zip(cuts[:-1], cuts[1:]):
        if start in starts:
            pipeline.start_hold(start)
        quat = None if quat_all is None else quat_all[start:stop]
        blocks.append(pipeline.update(acc[start:stop], gyr[start:stop], quat))
    blocks.append(pipeline.finish())
    mounting = pipeline.mounting
    strides = _concat([b.strides for b in blocks], STRIDE_DTYPE)
    decisions = sort_decisions(_concat([b.decisions for b in blocks], DECISION_DTYPE))
    notes = report.warnings()
    if not mounting.ok:
        # A mounting decided early and contradicted later: nothing measured on it may name a side.
        strides["aligned"] = False
        decisions = decisions[decisions["side"] == NONE]
        notes.append(f"no side can be named: {mounting.reason}")
    return Analysis(
        fs_hz=float(fs_hz),
        q_sensor_to_earth=np.concatenate([b.q_sensor_to_earth for b in blocks]),
        angles_pelvis_deg=np.concatenate([b.angles_pelvis_deg for b in blocks]),
        acc_level_m_s2=np.concatenate([b.acc_level_m_s2 for b in blocks]),
        events=_concat([b.events for b in blocks], EVENT_DTYPE),
        strides=strides,
        decisions=decisions,
        holds=_concat([b.holds for b in blocks], HOLD_DTYPE),
        alignment=pipeline.pelvis.alignment,
        input_report=report,
        offline=offline,
        notes=notes,
        mounting=mounting,
        mode=mode,
        reps=_concat([b.reps for b in blocks], REP_DTYPE),
        posture=_concat([b.posture for b in blocks], POSTURE_DTYPE),
        guided_holds=_concat([b.guided_holds for b in blocks], GUIDED_HOLD_DTYPE),
        cheats=_concat([b.cheats for b in blocks], CHEAT_DTYPE),
    )


def _pelvis_frame_inputs(axes, quat, acc, gyr):
    """The events stage's inputs (acc, gyr, q) turned into the pelvis frame in use per sample."""
    q_pelvis_to_earth, acc_pelvis, gyr_pelvis = to_pelvis_frame(axes, quat, acc, gyr)
    return (np.ascontiguousarray(acc_pelvis), np.ascontiguousarray(gyr_pelvis),
            np.ascontiguousarray(q_pelvis_to_earth))


def _shift_mode_records(block: Block, offset: int) -> None:
    """The records of a mode stage that began at pipeline sample ``offset`` (Pipeline.set_mode), in place: every
    sample field ("sample", "..._sample") counted from the stream's start."""
    for records in (block.reps, block.posture, block.guided_holds, block.cheats):
        if len(records):
            for name in records.dtype.names:
                if name == "sample" or name.endswith("_sample"):
                    records[name] += offset


def sort_decisions(decisions: np.ndarray) -> np.ndarray:
    """Decisions in sample order (kind, then side, break ties). A per-stride decision is settled when its stride
    ends, so it can arrive after a per-sample decision with a later sample."""
    return decisions[np.lexsort((decisions["side"], decisions["kind"], decisions["sample"]))]


def _concat(arrays: list[np.ndarray], dtype: np.dtype) -> np.ndarray:
    # Empty blocks left out: numpy checks a structured dtype field by field for every array it joins, and most
    # small blocks hold no stride, event or decision.
    arrays = [a for a in arrays if len(a)]
    return np.concatenate(arrays) if arrays else np.zeros(0, dtype=dtype)
