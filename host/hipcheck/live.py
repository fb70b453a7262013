"""The live job: a sensor's blocks through the streaming pipeline, alerts sent back, a line per stride, a summary.

``run_live(link, ...)`` is the job on any link: a ``DeviceSession`` (backfill, time map, crash-safe log), the
streaming ``Pipeline`` on its blocks in sequence order (``LiveAnalysis``), a VIBRATE back to the sensor when a
detector fires (DROP per sample with the stance side's pattern, SWAY and TILT per stride; DROP_STRIDE is the
per-stride confirmation and is only printed), a line per stride and a closing summary that names the weak side
(``print_closing``).

``make_link`` opens the link that the command line's link options name (``LinkOptions``); ``run_record`` is the job
of ``hipcheck record`` and ``hipcheck live``, ``run_connect`` that of ``hipcheck connect``; ``hipcheck demo``
(``hipcheck.demo``) calls ``run_live`` on the simulated sensor. Call ``warm_up_pipeline()`` before a link opens.

Lost samples (``block.gap``) are left out of the pipeline and counted; the pipeline then joins the samples on
either side, so a lost stretch shortens the stride it falls in (it is printed, never hidden).

The live window's keys reach the job (``LiveAnalysis.command``, between two blocks): a mark becomes a NOTE 'mark'
in the session log at the newest sample; neutral takes the wearer's neutral tilt and obliquity from the last
``NEUTRAL_S`` if they stood still (else a line says why not, and nothing changes) and uses it in the posture mode,
the tilt detector and the window's plot; a mode switches the pipeline's coaching mode (``Pipeline.set_mode``) and
nothing else (a user-started hold under way is dropped with the hold mode: its line says "hold stopped"); the hold
key switches to the hold mode and starts a user-started hold there.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from hipcheck import detect, protocol, report
from hipcheck.alerts import AlertPolicy, HandOver
from hipcheck.device import DeviceSession, SessionSettings
from hipcheck.gait import LEFT, RIGHT, STRIDE_DTYPE
from hipcheck.errors import HipcheckError, InvalidValueError
from hipcheck.exercises import segment_angles_deg
from hipcheck.hold import HOLD_DTYPE
from hipcheck.pipeline import MODES, Pipeline, sort_decisions

if TYPE_CHECKING:  # imported where used: the calibration package is only needed with a profile
    from hipcheck.calibration.profile import DeviceCalibration

_NO_ROTATION = np.array([1.0, 0.0, 0.0, 0.0])  # the live pipeline's segment frame: the sensor's own axes
DROP_PATTERN = {LEFT: "drop_left", RIGHT: "drop_right"}  # stance side of a DROP -> firmware vibration pattern
STRIDE_PATTERN = {detect.SWAY: "sway", detect.TILT: "tilt"}  # per-stride kinds that vibrate
T_HOST_KEEP = 1 << 15  # samples whose measuring time is kept (82 s at 400 Hz): decisions come within a stride
NEUTRAL_S = 2.0  # "set neutral" takes the mean of this last stretch ...
RECENT_KEEP = 4096  # samples kept for it (2 s at up to 2 kHz)
STILL_RANGE_M_S2 = 1.0  # ... if no axis of the level-frame acceleration moved more than this in it (walking: ±3)


@dataclass(frozen=True)
class LinkOptions:
    """The sensor to talk to, as the command line names it: exactly one of sim, serial, ble and replay."""

    sim: Path | None = None  # the simulated sensor (firmware in the unix port) on an IMU CSV or chip trace
    serial: str | None = None  # a serial port
    ble: str | None = None  # a BLE name or address
    replay: Path | None = None  # a recorded session log
    backend: object = None  # BLE only: what hipcheck.links.ble.load_backend gave, or None for the platform's
    realtime: bool = False  # sim and replay: at real-time pace instead of as fast as possible

    @property
    def passive(self) -> bool:
        """A replay answers no command: the session only listens."""
        return self.replay is not None


def battery_words(mv: int, pct: int) -> str:
    """'3.71 V, 45 %' (a board that cannot read its cell reports 0 mV: '-')."""
    return f"{mv / 1000:.2f} V, {pct} %" if mv else "-"


def low_battery_line(mv: int, pct: int) -> str:
    """The one line a wearer sees when the sensor's battery is low (its LOW_BATTERY event, or INFO at connect)."""
    return f"sensor battery low: {battery_words(mv, pct)}: charge it after this session"


def _battery_low(info: dict | None) -> bool:
    return bool(info) and bool(info["battery_mv"]) and info["battery_pct"] <= protocol.LOW_BATTERY_PCT


class BatteryWatch:
    """The sensor's battery as the session learns it: INFO (at connect, and when asked again) and LOW_BATTERY
    events. A low battery is said once a session, in one line through ``out``: at once if INFO at connect is
    already low, else when the event comes. ``on_event`` chains to the session's earlier handler (make it after
    ``HandOver``, which sets its own)."""

    def __init__(self, session: DeviceSession, out: Callable[[str], None]):
        self.session = session
        self.out = out
        info = session.device_info
        self.reading = (info["battery_mv"], info["battery_pct"]) if info else None
        self.said_low = False
        self._forward = session.on_event
        session.on_event = self.on_event
        for event in session.events:  # one that came while the session started (before this handler)
            if event.code == protocol.EventCode.LOW_BATTERY:
                self.reading = (event.fields["battery_mv"], event.fields["battery_pct"])
        if _battery_low(info) or any(e.code == protocol.EventCode.LOW_BATTERY for e in session.events):
            self._say_low()

    def _say_low(self) -> None:
        if not self.said_low:
            self.said_low = True
            self.out(low_battery_line(*self.reading))

    def on_event(self, event) -> None:
        if event.code == protocol.EventCode.LOW_BATTERY:
            self.reading = (event.fields["battery_mv"], event.fields["battery_pct"])
            self._say_low()
        if self._forward is not None:
            self._forward(event)

    async def refresh(self) -> tuple[int, int] | None:
        """Ask INFO again (the newest reading); the last one known if the sensor cannot answer now."""
        if not self.session.link.status().connected:
            return self.reading
        try:
            info = await self.session.info()
            self.reading = (info["battery_mv"], info["battery_pct"])
        except HipcheckError:
            pass
        return self.reading


def device_calibration(device_id: str | None, *, replays: Path | None = None,
                       replayed: str | None = None) -> tuple[DeviceCalibration | None, str]:
    """The calibration profile of the sensor a link names (its ``device_id``: a BLE name, a replayed log's sensor),
    taken by the rule ``hipcheck analyze`` takes the profile of the sensor a log names
    (``hipcheck.calibration.profile.calibration_of``), and one line saying what is applied. ProfileError when that
    sensor's profile cannot be used. replays: the file the simulated sensor plays (``--sim``): none is applied, for
    that file's numbers come from whatever sensor recorded (or simulated) it, not from the sensor device "sim"'s
    profile was calibrated on. replayed: the file a replayed log's samples replay so (its header's
    ``replayed_file``): none either, as analyze takes that log (``hipcheck.calibration.profile.replayed_file``)."""
    from hipcheck.calibration.profile import NEUTRAL_LEFT_OUT, load_calibration, replayed_file_line

    if replays is not None:
        return None, (f"no calibration profile used: --sim replays a file ({Path(replays).name}), not a calibrated "
                      "sensor; live analysis uncalibrated")
    if replayed is not None:
        return None, replayed_file_line(replayed)
    if device_id is None:
        return None, ("no calibration profile used: the link does not name its sensor (a serial port, or a "
                      "replayed log without a device id)")
    calibration = load_calibration(device_id)
    if calibration is None:
        return None, (f"no calibration profile for device {device_id}: live analysis uncalibrated (`hipcheck "
                      "calibrate mount` makes one)")
    line = f"calibration profile of device {device_id} ({calibration.profile.path}) applied: " + calibration.used()
    if calibration.alignment is not None:
        line += "; the pelvis frame is its mounting"
    elif calibration.neutral_left_out:
        line += "; " + NEUTRAL_LEFT_OUT
    return calibration, line


@dataclass
class LiveResult:
    summary: dict  # report.summarize
    strides: np.ndarray
    decisions: np.ndarray
    holds: np.ndarray
    session: dict  # DeviceSession.summary()
    vibrations_sent: int = 0
    vibrate_latency_ms: list = field(default_factory=list)  # block arrival on the host -> VIBRATE written
    fs_hz: float = float("nan")
    wall_s: float = 0.0
    device_info: dict | None = None
    record_path: str | None = None
    handover: dict = field(default_factory=dict)  # HandOver's counts: handed_over, taken_back
    side_known: bool = True  # the sensor's mounting was found (or given): holds may name the standing leg
    log_damage: object = None  # hipcheck.record.LogDamage of a replayed log (None for a live link)
    alignment: np.ndarray | None = None  # the pelvis frame in use at the end (q_sensor_to_pelvis; None: none found)
    battery: tuple[int, int] | None = None  # the sensor's (mV, %) at the end (None: not known, a replay)


class LiveAnalysis:
    """The pipeline on a session's blocks, in sequence order: lost samples counted and left out, a line per alert
    and per stride through ``out``, and each alert that has a vibration pattern handed to ``vibrate(pattern)``
    (None: no VIBRATE is sent) when the alert policy (``hipcheck.alerts.AlertPolicy``; None: its defaults) says
    so. calibration: the sensor's calibration profile as ``device_calibration`` gives it (None: uncalibrated; the
    mounting is then found from the walk). Synchronous, so that it runs apart from the event loop in tests."""

    def __init__(self, out: Callable[[str], None], vibrate: Callable[[str], None] | None = None,
                 policy: AlertPolicy | None = None, mode: str = "walk", calibration: DeviceCalibration | None = None):
        if mode not in MODES:
            raise InvalidValueError(f"mode {mode!r}: one of {', '.join(MODES)}")
        self.out = out
        self.vibrate = vibrate
        self.policy = policy if policy is not None else AlertPolicy()
        self.mode = mode
        self.calibration = calibration
        # the frame the posture mode measures the segment in (Pipeline: the alignment, else the sensor's axes)
        self._q_segment = _NO_ROTATION if calibration is None or calibration.alignment is None \
            else calibration.alignment
        self.neutral_deg: tuple[float, float] | None = None  # (obliquity, tilt) of the wearer's neutral stand
        # the same stand's tilt as the posture mode measures it (n; until then the calibrated one, if any)
        self.neutral_posture_tilt_deg: float | None = None if calibration is None else calibration.posture_tilt_deg
        self.marks: list[int] = []  # pipeline samples marked
        self.reps: list[np.ndarray] = []  # the reps counted so far (REP_DTYPE, samples of the pipeline)
        self.user_holds: list[np.ndarray] = []  # the user-started holds finished (GUIDED_HOLD_DTYPE, likewise)
        self.pipeline: Pipeline | None = None
        self.fs_hz = float("nan")
        self.samples_lost = 0
        self._strides: list[np.ndarray] = []
        self._decisions: list[np.ndarray] = []
        self._holds: list[np.ndarray] = []
        # when each recent sample was measured (host clock), by pipeline sample: the policy's "whose alert was it"
        self._t_host = np.full(T_HOST_KEEP, np.nan)
        # the last seconds for "neutral", by pipeline sample: obliquity, tilt, segment tilt, level acceleration x y z
        self._recent = np.full((RECENT_KEEP, 6), np.nan)

    def update(self, block):
        """One session block (``hipcheck.device``): its valid samples through the pipeline. Returns what the
        pipeline made of them (``hipcheck.pipeline.Block``), None if none was valid."""
        if self.pipeline is None:
            self._start_pipeline(1e6 / block.period_us)
        valid = block.valid
        if not valid.all():
            lost = int(np.count_nonzero(~valid))
            self.samples_lost += lost
            self.out(f"  {lost} samples lost at seq {int(block.seq[~valid][0])} (marked, left out of the analysis)")
        if not valid.any():
            return None
        first = self.pipeline.n_samples
        t_host = block.t_host_s[valid]
        self._t_host[(first + np.arange(len(t_host))) % T_HOST_KEEP] = t_host
        acc, gyr = block.acc_m_s2[valid], block.gyr_rad_s[valid]
        if self.calibration is not None and self.calibration.corrects_samples:
            # as analyze corrects a log: the raw samples only (not those the sensor corrected with its own copy)
            applied = self.calibration.correct(acc, gyr, block.flags[valid])
            acc, gyr = applied.acc_m_s2, applied.gyr_rad_s
        result = self.pipeline.update(acc, gyr)
        if len(result.strides):
            self.policy.see_strides(result.strides, self.pipeline.detectors.thresholds)
        for decision in result.decisions:
            self._alert(decision)
        self._keep(result)
        rows = (first + np.arange(len(t_host))) % RECENT_KEEP
        self._recent[rows, :2] = result.angles_pelvis_deg[:, 1:]
        self._recent[rows, 2] = segment_angles_deg(result.q_sensor_to_earth, self._q_segment)[:, 2]
        self._recent[rows, 3:] = result.acc_level_m_s2
        self._keep_mode_records(result)
        return result

    def _start_pipeline(self, fs_hz: float) -> None:
        """The pipeline, at the first block's rate: the policy's detector settings, the calibration's mounting and
        neutral standing tilt (the tilt thresholds centred on it, as analyze does)."""
        self.fs_hz = fs_hz
        settings = self.policy.settings.detector_settings()
        calibration = self.calibration
        if calibration is not None:
            calibration.centre_tilt_thresholds(settings)
        self.pipeline = Pipeline(fs_hz, alignment=None if calibration is None else calibration.alignment,
                                 detector_settings=settings, mode=self.mode,
                                 mode_settings=self._mode_settings(self.mode))
        self.policy.fs_hz = fs_hz

    def _keep_mode_records(self, result) -> None:
        """The reps and the user-started holds of the mode's stage (in the pipeline's samples)."""
        if len(result.reps):
            self.reps.append(result.reps)
        if len(result.guided_holds):
            holds = result.guided_holds
            self.user_holds.append(holds)
            for hold in holds:
                self.out(f"{int(hold['end_sample']) / self.fs_hz:7.2f} s  hold ended: {hold['hold_time_s']:.1f} s on "
                         f"the {detect.SIDE_NAMES[int(hold['side'])]} leg, score {hold['score_pct']:.0f} %")

    # ------------------------------------------------------------------------------------ the live window's keys
    def command(self, action: str, value, session=None) -> None:
        """One key of the live window (``LiveWindow.commands``: "mark", "neutral", "mode" with the mode's name, or
        "hold"), at the newest sample the pipeline has seen. session: the device session, whose log gets a mark's
        NOTE. A neutral is taken or refused here alone (``neutral_deg`` changes only when it is taken: the window
        draws from it); a mode only switches the mode, "hold" (the hold key) also starts a user-started hold."""
        if action == "mark":
            self._mark(session)
        elif action == "neutral":
            self._set_neutral()
        elif action == "mode":
            self.set_mode(str(value))
        elif action == "hold":
            self.start_hold()

    def _newest(self) -> int:
        return self.pipeline.n_samples - 1 if self.pipeline is not None else -1

    def _mark(self, session) -> None:
        sample = self._newest()
        self.marks.append(sample)
        t_s = sample / self.fs_hz if sample >= 0 else 0.0
        if session is not None:
            session.recording.note("mark", sample=sample, t_s=round(t_s, 3))
        self.out(f"{t_s:7.2f} s  mark")

    def _set_neutral(self) -> None:
        """The mean obliquity and tilt of the last NEUTRAL_S become the wearer's neutral, if they stood still."""
        need = int(round(NEUTRAL_S * self.fs_hz)) if self.pipeline is not None else 0
        n = self.pipeline.n_samples if self.pipeline is not None else 0
        if n < need or need > RECENT_KEEP:
            self.out(f"neutral not set: stand still for {NEUTRAL_S:g} s first")
            return
        last = self._recent[np.arange(n - need, n) % RECENT_KEEP]
        pelvis, segment, acc = last[:, :2], last[:, 2], last[:, 3:]
        if not np.isfinite(last).all():
            self.out(f"neutral not set: the pelvis angles are not settled yet (stand still for {NEUTRAL_S:g} s)")
            return
        moved = float(np.max(np.ptp(acc, axis=0)))
        if moved > STILL_RANGE_M_S2:
            self.out(f"neutral not set: moving (the acceleration varied by {moved:.1f} m/s² in the last "
                     f"{NEUTRAL_S:g} s); stand still and press n again")
            return
        obliquity, tilt = (float(v) for v in np.mean(pelvis, axis=0))
        segment_tilt = float(np.mean(segment))
        self.neutral_deg = (obliquity, tilt)
        self.neutral_posture_tilt_deg = segment_tilt
        detectors = self.pipeline.detectors
        if detectors.settings["mode"][0] == detect.FIXED:  # a baseline is the wearer's own already
            half = self.policy.settings.tilt_threshold_deg
            detectors.settings["tilt_anterior_deg"] = tilt + half
            detectors.settings["tilt_posterior_deg"] = tilt - half
            detectors.state["threshold"][0] = detect.make_state(detectors.settings)["threshold"][0]
        if self.pipeline.posture is not None:
            self.pipeline.posture.settings["neutral_tilt_deg"] = segment_tilt
        self.out(f"neutral set: obliquity {obliquity:+.1f}°, tilt {tilt:+.1f}° (+ = left side higher, forward); "
                 "tilt alerts and the posture mode measure from it")

    def _mode_settings(self, mode: str) -> dict | None:
        if mode == "posture" and self.neutral_posture_tilt_deg is not None:
            return {"neutral_tilt_deg": self.neutral_posture_tilt_deg}
        return None

    def set_mode(self, mode: str) -> None:
        """Switch the pipeline's coaching mode after the newest sample (``Pipeline.set_mode``). It starts nothing:
        in hold mode a hold begins with the hold key (``start_hold``) or a double tap on the sensor. A user-started
        hold under way (counting down, waiting for the lift, held) is dropped with the hold mode's stage: the one
        line says so."""
        if mode not in MODES:
            raise InvalidValueError(f"mode {mode!r}: one of {', '.join(MODES)}")
        if mode == self.mode:
            return
        guided = self.pipeline.guided if self.pipeline is not None else None
        dropped = guided is not None and guided.phase != "idle"
        self.mode = mode
        if self.pipeline is not None:
            self.pipeline.set_mode(mode, self._mode_settings(mode))
        said = f"hold stopped: mode switched to {mode}" if dropped else f"mode {mode}"
        self.out(f"{self._now_s():7.2f} s  {said}")

    def start_hold(self) -> None:
        """The hold key: hold mode (switched to if need be), and a user-started hold from the next sample on."""
        self.set_mode("hold")
        if self.pipeline is None:
            self.out("hold not started: no samples from the sensor yet")
            return
        started = self.pipeline.start_hold(self.pipeline.n_samples)
        self.out(f"{self._now_s():7.2f} s  " + ("hold started: lift the free leg when the countdown ends" if started
                                                 else "a hold is already under way"))

    def _now_s(self) -> float:
        """The newest sample's time (0 before the first)."""
        return max(self._newest(), 0) / self.fs_hz if self.pipeline is not None else 0.0

    def finish(self) -> None:
        """The stream has ended: the strides still open are closed (their decisions are counted, not announced:
        there is no one left to vibrate)."""
        if self.pipeline is not None:
            block = self.pipeline.finish()
            self._keep(block)
            self._keep_mode_records(block)

    def results(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(strides, decisions in time order, holds) so far."""
        strides = np.concatenate(self._strides) if self._strides else np.zeros(0, STRIDE_DTYPE)
        decisions = sort_decisions(np.concatenate(self._decisions)) if self._decisions \
            else np.zeros(0, detect.DECISION_DTYPE)
        holds = np.concatenate(self._holds) if self._holds else np.zeros(0, HOLD_DTYPE)
        return strides, decisions, holds

    def _alert(self, decision: np.void) -> None:
        kind = int(decision["kind"])
        sample = int(decision["sample"])
        t_host = self._t_host[sample % T_HOST_KEEP] if 0 <= self.pipeline.n_samples - sample < T_HOST_KEEP \
            else float("nan")
        verdict = self.policy.decide(decision, t_host) if self.vibrate is not None else None
        if verdict is not None and verdict.pattern is not None:
            self.vibrate(verdict.pattern)
        tail = "" if verdict is None or kind == detect.DROP_STRIDE else \
            f"  -> VIBRATE {verdict.pattern}" if verdict.pattern is not None else f"  (no vibration: {verdict.why})"
        self.out(f"{int(decision['sample']) / self.fs_hz:7.2f} s  ALERT " + report.decision_words(decision) + tail)

    def _keep(self, result) -> None:
        if len(result.strides) and not any(len(kept) for kept in self._strides):
            self.out(report.STRIDE_LEGEND)  # the columns and signs, once
        for stride in result.strides:
            self.out(report.stride_line(stride, self.fs_hz))
        self._strides.append(result.strides)
        self._decisions.append(result.decisions)
        self._holds.append(result.holds)


def warm_up_pipeline(out=None) -> None:
    """Run the pipeline once over a few seconds of simulated walking, so that its numba kernels are compiled (or
    loaded from the cache) before a link opens: a first compile takes a minute or two, which would starve the link
    and trip the session's no-data watchdog. out: where to say so (a first run is otherwise a silent wait)."""
    from hipcheck.motion import SensorModel, simulate_walk
    from hipcheck.pipeline import analyze_arrays

    if out is not None:
        out("loading the signal pipeline (the first run compiles it: a minute or two, then cached)")
    t0 = time.perf_counter()
    trace = simulate_walk(duration_s=8.0, seed=0, sensor=SensorModel.ideal())
    analyze_arrays(trace.acc_sensor_m_s2, trace.gyr_sensor_rad_s, trace.fs_hz)
    if out is not None and time.perf_counter() - t0 > 5.0:
        out(f"  compiled in {time.perf_counter() - t0:.0f} s")


async def run_live(link, *, record=None, seconds: float | None = None, start_seq: int | None = None,
                   alerts: bool = True, device_alerts_off: bool = True, out=print, passive: bool = False,
                   header: dict | None = None, policy: AlertPolicy | None = None, observer=None, commands=None,
                   mode: str = "walk", use_profile: bool = False, replays: Path | None = None) -> LiveResult:
    """The live job on a link (module docstring): until the link ends or ``seconds`` of device time. Returns what
    it found; prints as it goes. record: the session log to write (None: none); device_alerts_off: switch the
    sensor's own detector off so that every vibration is one the host sent; passive: only listen (a replay);
    policy: the alert policy (``hipcheck.alerts``; None: its defaults), which also hands the alerts over to the
    sensor's own detector while the link fails;
    observer: called after each block as ``observer(block=, result=, analysis=, session=)`` (the live window's
    ``LiveWindow.observe``; it must not block: it runs on the data path);
    commands: the keys of the live window (``LiveWindow.commands``), a deque of (action, value) taken after each
    block (``LiveAnalysis.command``; None: no keys);
    mode: the coaching mode the pipeline starts in (``hipcheck.pipeline.MODES``);
    use_profile: apply the calibration profile of the sensor the link names (``device_calibration``: its mounting,
    sample corrections and neutral, as analyze applies them to the log), and say which in one line; replays: the
    file a simulated link plays (``--sim``), to which no profile is applied (the line says so)."""
    t0 = time.perf_counter()
    latencies: list[float] = []
    sends: list[asyncio.Future] = []
    session = DeviceSession(link, SessionSettings(start_seq=start_seq, passive=passive), record=record, header=header)
    async with session:
        info = session.device_info
        if info is not None:
            name = f" {link.device_id}" if link.device_id else ""
            out(f"sensor{name}: {info['board']} board, {info['imu']}, firmware {info['firmware']}, "
                f"{info['rate_hz']} Hz, battery {battery_words(info['battery_mv'], info['battery_pct'])}")
            if device_alerts_off:
                await session.set_thresholds(enable=())
                out("the sensor's own alerts are off: the host decides and sends VIBRATE")
        t_arrival = 0.0

        undelivered: dict[str, int] = {}  # why a VIBRATE was not delivered -> how often (each reason said once)

        async def send(pattern: str) -> None:
            try:
                await session.vibrate(pattern)
            except Exception as error:  # an alert that cannot be delivered must not stop the recording
                reason = str(error)
                if reason not in undelivered:
                    out(f"  (vibrate {pattern} not delivered: {reason})")
                undelivered[reason] = undelivered.get(reason, 0) + 1

        def vibrate(pattern: str) -> None:
            latencies.append((time.monotonic() - t_arrival) * 1e3)
            sends.append(asyncio.ensure_future(send(pattern)))

        calibration = None
        if use_profile:
            calibration, line = device_calibration(link.device_id, replays=replays,
                                                   replayed=getattr(link, "replayed_file", None))
            out(line)
        analysis = LiveAnalysis(out, vibrate if alerts and not passive else None, policy, mode=mode,
                                calibration=calibration)
        hand_over = None
        if alerts and not passive and info is not None:
            out(analysis.policy.settings.describe())
            hand_over = HandOver(session, analysis.policy, out, device_off=device_alerts_off)
            session.on_event = hand_over.device_event
            hand_over.task = asyncio.ensure_future(hand_over.run())
        battery = BatteryWatch(session, out) if not passive else None  # after HandOver: it chains to its handler
        async for block in session.blocks(until_device_s=seconds):
            t_arrival = time.monotonic()
            result = analysis.update(block)
            while commands:  # the keys pressed since the last block (the window's thread appends)
                action, value = commands.popleft()
                analysis.command(action, value, None if passive else session)
            if observer is not None:
                observer(block=block, result=result, analysis=analysis, session=session)
        analysis.finish()
        if hand_over is not None:
            await hand_over.stop()
        if sends:
            await asyncio.gather(*sends, return_exceptions=True)
        for reason, count in undelivered.items():
            if count > 1:
                out(f"  ({count} vibrations in all not delivered: {reason})")
        battery_end = None if battery is None else await battery.refresh()
    strides, decisions, holds = analysis.results()
    mounting = analysis.pipeline.mounting if analysis.pipeline is not None else None
    side_known = mounting is None or mounting.ok  # as Analysis.side_refused: a hold alone cannot find forward
    return LiveResult(summary=report.summarize(strides, analysis.policy.settings.drop_threshold_deg,
                                                holds if side_known else None),
                      side_known=side_known,
                      alignment=None if analysis.pipeline is None else analysis.pipeline.pelvis.alignment,
                      handover={} if hand_over is None else hand_over.counts(), strides=strides,
                      decisions=decisions, holds=holds, session=session.summary(), vibrations_sent=len(sends),
                      vibrate_latency_ms=latencies, fs_hz=analysis.fs_hz, wall_s=time.perf_counter() - t0,
                      device_info=session.device_info, record_path=None if record is None else str(record),
                      battery=battery_end)


def print_closing(result: LiveResult, out=print) -> None:
    """The closing lines: holds, alerts and VIBRATEs, the session's sample accounting, the summary."""
    s = result.session
    kinds = result.decisions["kind"]
    out("")
    for line in report.holds_table(result.holds, side_known=result.side_known):
        out(line)
    out(f"alerts: {int(np.count_nonzero(kinds == detect.DROP))} drop, "
        f"{int(np.count_nonzero(kinds == detect.SWAY))} sway, {int(np.count_nonzero(kinds == detect.TILT))} tilt; "
        f"{result.vibrations_sent} VIBRATE sent"
        + (f" (host latency, block arrival to command written: median "
           f"{np.median(result.vibrate_latency_ms):.2f} ms, max {max(result.vibrate_latency_ms):.2f} ms)"
           if result.vibrate_latency_ms else ""))
    if any(v for k, v in result.handover.items() if k != "armed"):  # only when the link failed or the sensor alerted
        out(HandOver.closing_line(result.handover))
    out(f"samples: {s['samples_emitted']} in sequence ({s['samples_live']} live, {s['samples_backfilled']} "
        f"backfilled, {s['samples_lost']} lost and marked), {s['holes']} gaps found, {s['reconnects']} reconnects")
    for r in s["lost"]:
        out(f"  lost: seq {r['first_seq']}..{r['first_seq'] + r['n'] - 1} ({r['n']}): {r['reason']}")
    if s.get("link_packets_dropped"):
        out(f"  the host fell behind: {s['link_packets_dropped']} packets dropped at the link's receive queue "
            "(their samples are in the gaps above: backfilled, or lost and marked)")
    if result.battery is not None and result.battery[0]:
        out(f"sensor battery: {battery_words(*result.battery)}"
            + (": low, charge it" if result.battery[1] <= protocol.LOW_BATTERY_PCT else ""))
    if result.record_path:
        out(f"recording: {result.record_path}")
    if result.log_damage is not None:
        out(result.log_damage.line())
    if not result.side_known and len(result.holds) and not result.summary.get("weak_side"):
        out("  the standing leg of a hold cannot be named: the sensor's mounting was not found (no walking seen); "
            "walk a few steps first, or calibrate the mounting")
    out(report.summary_text(result.summary))
    if result.log_damage is not None and result.log_damage.badly_damaged:
        from hipcheck.record import DAMAGE_WARN_FRACTION

        out(f"  caution: the replayed log lost {100 * result.log_damage.lost_fraction:.1f} % of its records (more "
            f"than {100 * DAMAGE_WARN_FRACTION:g} %): these figures rest on part of the session")


async def make_link(options: LinkOptions, seconds: float | None = None):
    """The link that ``options`` name, made inside the running event loop (a BLE backend may live in it); the links
    are imported here, so that a command pulls in only the one it uses. seconds: the device time a --sim trace plays
    (None: all of it)."""
    if options.sim is not None:
        from hipcheck.links.sim import SimLink

        return SimLink(options.sim, seconds=seconds, realtime=options.realtime)
    if options.serial is not None:
        from hipcheck.links.serial import SerialLink

        return SerialLink(options.serial)
    if options.ble is not None:
        from hipcheck.links.ble import BleLink, resolve_backend

        return BleLink(options.ble, backend=await resolve_backend(options.backend))
    from hipcheck.links.replay import ReplayLink

    return ReplayLink(options.replay, realtime=options.realtime)


def run_record(options: LinkOptions, *, output: Path | None = None, seconds: float | None = None,
               alerts: bool = True, policy=None, window: bool = False, use_profile: bool = True,
               out=print) -> LiveResult:
    """``hipcheck record`` and ``hipcheck live``: the live job on the named link, the session kept in ``output``
    (None: not kept), until the link ends or ``seconds`` of device time; then the closing lines. window: with the
    live window (``hipcheck.live_window``; headless when no display can show it); use_profile: the connected
    sensor's calibration profile applied (run_live; False: --no-profile; none to the file --sim plays)."""
    async def job(window=None):
        async with await make_link(options, seconds) as link:
            damage = link.damage if options.replay is not None else None  # the replayed log's account
            if damage is not None:
                out(damage.line())
            result = await run_live(link, record=output, seconds=seconds, alerts=alerts, policy=policy,
                                    device_alerts_off=alerts and not options.passive, passive=options.passive,
                                    start_seq=0 if options.sim is not None else None, out=out,
                                    observer=window and window.observe, commands=window and window.commands,
                                    use_profile=use_profile, replays=options.sim)
            result.log_damage = damage
            return result

    warm_up_pipeline(out)  # before the link opens: a cold compile would starve it
    if window:
        from hipcheck.live_window import run_with_window

        result = run_with_window(lambda window: asyncio.run(job(window)), out=out)
    else:
        result = asyncio.run(job())
    print_closing(result, out)
    return result


def run_connect(options: LinkOptions, *, seconds: float | None = None, out=print) -> None:
    """``hipcheck connect``: connect, print the device's INFO, then the live link figures every second until
    ``seconds`` of wall time pass, the link ends, or Ctrl-C."""
    async def job():
        async with await make_link(options, seconds) as link:
            async with DeviceSession(link, SessionSettings(passive=options.passive)) as session:
                damage = link.damage if options.replay is not None else None  # the replayed log's account
                if damage is not None:
                    out(damage.line())
                info = session.device_info
                if info is not None:
                    out("device: " + ", ".join(f"{k} {v}" for k, v in info.items()))
                    out(f"sensor {link.device_id or '(its name unknown on this link)'}: battery "
                        f"{battery_words(info['battery_mv'], info['battery_pct'])}")
                watch = None if options.passive else BatteryWatch(session, out)
                started = time.monotonic()
                ticks = 0
                while seconds is None or time.monotonic() - started < seconds:
                    await asyncio.sleep(1.0)
                    ticks += 1
                    if watch is not None and ticks % _BATTERY_REFRESH_S == 0:
                        await watch.refresh()
                    status = link.status()
                    out(f"{time.monotonic() - started:6.1f} s  " + _status_line(status, session, watch))
                    if not status.connected and link.ended:
                        break

    asyncio.run(job())


_BATTERY_REFRESH_S = 10  # hipcheck connect asks INFO this often for the battery line (any link: serial has no GATT)


def _status_line(st, session: DeviceSession, watch: BatteryWatch | None = None) -> str:
    """The link's live figures and the session's sample count, for ``hipcheck connect``; the battery as INFO and
    LOW_BATTERY last gave it (V and %), else the BLE Battery Level."""
    reading = None if watch is None else watch.reading
    battery = (battery_words(*reading) if reading and reading[0]
               else "-" if st.battery_pct is None else f"{st.battery_pct} %")
    return (f"connected {st.connected}  packets {st.packets_in}  CRC errors {st.crc_errors}  "
            f"reconnects {st.reconnects}  RSSI {'-' if st.rssi_dbm is None else f'{st.rssi_dbm:.0f} dBm'}  "
            f"battery {battery}  "
            f"samples live {session.stats.samples_live}  holes {len(session.stats.holes)}")
