"""The alert policy: which of the pipeline's decisions reach the wearer's motor, and who alerts when the link fails.

The detectors (``hipcheck.detect``) say when a value crosses its threshold; the policy decides whether that buzzes:

- **Thresholds per person**: literature defaults, then the wearer's profile (a JSON file), then the command line
  (``--drop-threshold``, ``--sway-threshold``, ``--tilt-threshold``); or a **personal baseline** (``--baseline``:
  the detectors' BASELINE mode, mean + 3 SD of the first 20 steady strides). ``AlertSettings.detector_settings()``
  is what the pipeline's detectors get, so the thresholds the policy prints are the ones that decide.
- **m of the last n strides**: a drop buzzes only when at least ``m`` of the last ``n`` single supports on that leg
  (this one included) went over the threshold; sway and tilt likewise over the last ``n`` strides. One stumble is
  not a habit.
- **Refractory time** per alert (drop left, drop right, sway, tilt) and a least gap between any two buzzes (the
  sensor takes VIBRATE at most twice a second, docs/protocol.md "Motor safety").
- **Distinct patterns**: a long buzz for a drop while standing on the left leg, two short ones for the right leg,
  a triple tick for sway, long-short for tilt (``hipcheck.device.PATTERNS``, the firmware's ``haptics.PATTERNS``).
- **Training** (buzz) or **Tracking** (record only: every decision is kept and printed, nothing vibrates).

Defaults and their sources (the thresholds' sources are in ``hipcheck.detect``'s docstring):

- drop 6° (Perry & Burnfield 2010; Whittle 2007; Bramah et al. 2018, Am J Sports Med 46:3023–3031), sway 6 cm peak
  to peak (Saunders, Inman & Eberhart 1953, J Bone Joint Surg Am 35:543–558), tilt ±8° from neutral standing
  (Kadaba et al. 1989, J Orthop Res 7:849–860).
- 2 of the last 3 strides: "bandwidth" feedback — feedback only when the error is outside a band — and feedback on
  fewer than all trials both improve what is retained without feedback (Sherwood 1988, Percept Mot Skills
  66:535–542; Winstein & Schmidt 1990, J Exp Psychol Learn Mem Cogn 16:677–691). Gait retraining with real-time
  feedback on pelvic drop faded its feedback the same way (Willy, Scholz & Davis 2012, Clin Biomech 27:1045–1051).
- refractory 3 s per alert: about three strides, so a wearer correcting the fault feels one cue, not one per step.

**Hand-over.** The sensor has its own detector (firmware/alert.py, SET_THRESHOLDS) that runs with no host. While
the host alerts it must not run (two detectors would double every buzz), so the host keeps it in **stand-by**
(SET_THRESHOLDS bit 3: armed with the policy's thresholds, it runs only while no host is connected; sent when the
session starts and whenever the thresholds change). A cut without warning is then handed over by the firmware
itself, which switches the armed detector on when it loses the host and off when a host is back; the host logs
both hand-overs (it knows of the drop and of the reconnect). ``LinkWatch`` also tells from the session's figures
when the link is failing — lost packets piling up (``holes_n`` holes within ``holes_window_s``) or a BLE signal
under ``rssi_dbm`` — and ``HandOver`` then switches the sensor's detector on outright while the link still carries
the command; the host stops buzzing once the sensor has acknowledged. On reconnect (or ``clean_s`` without a lost
packet) the host puts it back in stand-by and takes the alerts back. A command whose ACK was lost leaves the
sensor's state unknown: it is sent again once the link is up, and the latest wish wins (one task sends them in
order, so a hand-over queued in a cut can never land after the take-back). docs/alerts.md.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import deque
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np

from hipcheck import detect, protocol
from hipcheck.device.commands import threshold_fields
from hipcheck.errors import HipcheckError, InvalidValueError
from hipcheck.gait import LEFT, RIGHT

__all__ = ["TRAINING", "TRACKING", "AlertSettings", "alert_settings", "load_profile", "AlertPolicy", "Verdict",
           "LinkWatch", "HandOver", "PATTERN_OF", "device_alert_words"]

TRAINING = "training"  # buzz
TRACKING = "tracking"  # record only

# (kind, side) -> the firmware's pattern (hipcheck.device.PATTERNS); DROP's side is the stance side.
PATTERN_OF = {(detect.DROP, LEFT): "drop_left", (detect.DROP, RIGHT): "drop_right",
              (detect.SWAY, detect.NONE): "sway", (detect.TILT, detect.NONE): "tilt"}
# Channels of the refractory time and the stride history.
_DROP_LEFT, _DROP_RIGHT, _SWAY, _TILT = "drop_left", "drop_right", "sway", "tilt"

# The sensor's accepted ranges for SET_THRESHOLDS (docs/protocol.md): drop 1–30°, sway 10–300 mm, tilt 1–45°,
# refractory 500–60 000 ms.
_DEVICE_RANGES = {"drop_deg": (1.0, 30.0), "sway_mm": (10, 300), "tilt_deg": (1.0, 45.0),
                  "refractory_ms": (500, 60000)}


@dataclass(frozen=True)
class AlertSettings:
    """One wearer's alert settings (module docstring); every field has a default from the literature."""

    drop_threshold_deg: float = detect.DEFAULT_DROP_THRESHOLD_DEG  # the free side sinks this far below level
    sway_threshold_cm: float = 6.0  # side-to-side excursion of the pelvis per stride, peak to peak
    tilt_threshold_deg: float = 8.0  # mean tilt per stride this far from neutral standing, either way
    baseline: bool = False  # thresholds from the wearer's own first steady strides instead (detect.BASELINE)
    m_strides: int = 2  # buzz when at least m ...
    n_strides: int = 3  # ... of the last n strides (single supports for a drop) were over
    refractory_s: float = 3.0  # least time between two buzzes of one alert (drop left, drop right, sway, tilt)
    min_gap_s: float = 0.5  # least time between any two buzzes (the sensor takes 2 VIBRATE a second)
    mode: str = TRAINING  # TRAINING (buzz) or TRACKING (record only)
    handover: bool = True  # hand the alerts to the sensor's own detector when the link fails

    def __post_init__(self):
        for name, low, high in (("drop_threshold_deg", 1.0, 30.0), ("sway_threshold_cm", 1.0, 30.0),
                                ("tilt_threshold_deg", 1.0, 45.0), ("refractory_s", 0.5, 60.0),
                                ("min_gap_s", 0.5, 60.0)):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and low <= value <= high):
                raise InvalidValueError(f"alert setting {name}={value!r}: give {low:g} to {high:g}")
        if not (isinstance(self.n_strides, int) and isinstance(self.m_strides, int)
                and 1 <= self.m_strides <= self.n_strides <= 20):
            raise InvalidValueError(f"alert setting m of n = {self.m_strides!r} of {self.n_strides!r}: give whole "
                                    "numbers with 1 <= m <= n <= 20")
        if self.mode not in (TRAINING, TRACKING):
            raise InvalidValueError(f"alert mode {self.mode!r}: use {TRAINING} (vibrate) or {TRACKING} (record only)")

    def detector_settings(self) -> dict:
        """The pipeline's detector settings (``hipcheck.detect.Detectors``) for these thresholds."""
        return {"mode": detect.BASELINE if self.baseline else detect.FIXED,
                "drop_threshold_deg": self.drop_threshold_deg, "sway_threshold_cm": self.sway_threshold_cm,
                "tilt_anterior_deg": self.tilt_threshold_deg, "tilt_posterior_deg": -self.tilt_threshold_deg}

    def describe(self) -> str:
        """One line for a person: the thresholds and how alerts are given."""
        if self.baseline:
            what = "thresholds from the wearer's own first 20 steady strides (personal baseline)"
        else:
            what = (f"thresholds: pelvic drop {self.drop_threshold_deg:.1f}°, sway {self.sway_threshold_cm:.1f} cm, "
                    f"tilt ±{self.tilt_threshold_deg:.1f}° from neutral")
        how = (f"vibrates when {self.m_strides} of the last {self.n_strides} strides are over, at most every "
               f"{self.refractory_s:.1f} s per alert" if self.mode == TRAINING else "tracking: recorded, no vibration")
        return f"alerts: {what}; {how}"


_PROFILE_KEYS = {f.name for f in fields(AlertSettings)}


def load_profile(path) -> dict:
    """The alert settings in a wearer's profile: a JSON object with any of ``AlertSettings``' fields, at its top
    or under ``"alerts"`` (other top-level keys, such as ``"name"``, are the profile's own)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except OSError as error:
        raise InvalidValueError(f"profile {path}: cannot be read ({error.strerror})") from None
    except ValueError as error:
        raise InvalidValueError(f"profile {path}: not JSON ({error})") from None
    if not isinstance(data, dict):
        raise InvalidValueError(f"profile {path}: a JSON object is expected, e.g. {{\"drop_threshold_deg\": 7}}")
    section = data.get("alerts", data)
    if not isinstance(section, dict):
        raise InvalidValueError(f"profile {path}: \"alerts\" must be an object")
    unknown = sorted(k for k in section if k not in _PROFILE_KEYS and section is not data)
    if unknown:
        raise InvalidValueError(f"profile {path}: unknown alert settings {unknown}; known: {sorted(_PROFILE_KEYS)}")
    return {k: v for k, v in section.items() if k in _PROFILE_KEYS}


def alert_settings(profile=None, **given) -> AlertSettings:
    """Defaults, then the profile (a path, see ``load_profile``), then ``given`` (the command line; None = not
    given)."""
    values = load_profile(profile) if profile is not None else {}
    values.update({k: v for k, v in given.items() if v is not None})
    try:
        return AlertSettings(**values)
    except TypeError as error:
        raise InvalidValueError(f"alert settings: {error}") from None


class Verdict(NamedTuple):
    """What the policy made of one decision: the pattern to play (None: nothing) and why, in words."""

    pattern: str | None
    why: str


class AlertPolicy:
    """The alert policy (module docstring). Synchronous: the live job calls ``see_strides`` with each call's
    strides and the detectors' thresholds, then ``decide`` with each decision, and plays what it returns.

    Readable state: ``owner`` ("host", or "sensor" while the sensor's own detector has the alerts),
    ``thresholds`` (the detectors' thresholds in use), ``buzzes`` (sample, pattern) of each one sent,
    ``sensor_periods`` ([from, to] on the host's clock, to None while it lasts: when the sensor had the alerts; a
    decision on a sample measured then is the sensor's, even when it reaches the host later, as the samples held
    through a cut do).
    """

    def __init__(self, settings: AlertSettings | None = None, fs_hz: float = 100.0):
        self.settings = settings if settings is not None else AlertSettings()
        self.fs_hz = float(fs_hz)
        n = self.settings.n_strides
        # Per channel: (sample, over) of the last strides; drops keyed by the sample of the drop's peak.
        self._history = {c: deque(maxlen=n + 2) for c in (_DROP_LEFT, _DROP_RIGHT, _SWAY, _TILT)}
        self._last_peak = {LEFT: -1, RIGHT: -1}
        self._last_buzz = {}  # channel -> sample
        self._last_any = None
        self.owner = "host"
        self.thresholds = {"drop_left_stance_deg": self.settings.drop_threshold_deg,
                           "drop_right_stance_deg": self.settings.drop_threshold_deg,
                           "sway_pp_cm": self.settings.sway_threshold_cm,
                           "tilt_anterior_deg": self.settings.tilt_threshold_deg,
                           "tilt_posterior_deg": -self.settings.tilt_threshold_deg}
        self.buzzes: list[tuple[int, str]] = []
        self.sensor_periods: list[list] = []

    def sensor_took(self, at_s: float) -> None:
        """The sensor's own detector has the alerts from at_s (the host's time.monotonic clock)."""
        self.owner = "sensor"
        if not self.sensor_periods or self.sensor_periods[-1][1] is not None:
            self.sensor_periods.append([at_s, None])

    def host_took(self, at_s: float) -> None:
        """The host has the alerts again from at_s."""
        self.owner = "host"
        if self.sensor_periods and self.sensor_periods[-1][1] is None:
            self.sensor_periods[-1][1] = at_s

    def _sensor_had(self, t_host_s: float) -> bool:
        return any(a <= t_host_s and (b is None or t_host_s < b) for a, b in self.sensor_periods[-8:])

    def see_strides(self, strides: np.ndarray, thresholds: dict | None = None) -> None:
        """The strides the stride stage completed (STRIDE_DTYPE), judged against ``thresholds`` (the detectors'
        ``thresholds``; None: the ones already known). Each single support counts once (strides overlap)."""
        if thresholds is not None:
            self.thresholds = dict(thresholds)
        thr = self.thresholds
        for stride in strides:
            for side, channel in ((LEFT, _DROP_LEFT), (RIGHT, _DROP_RIGHT)):
                name = "left" if side == LEFT else "right"
                peak, drop = int(stride[f"drop_{name}_stance_sample"]), float(stride[f"drop_{name}_stance_deg"])
                if peak > self._last_peak[side] and math.isfinite(drop):
                    self._last_peak[side] = peak
                    self._history[channel].append((peak, drop >= thr[f"drop_{name}_stance_deg"]))
            end = int(stride["end_sample"])
            sway, tilt = float(stride["sway_pp_cm"]), float(stride["tilt_mean_deg"])
            if math.isfinite(sway):
                self._history[_SWAY].append((end, sway >= thr["sway_pp_cm"]))
            if math.isfinite(tilt):
                self._history[_TILT].append((end, tilt >= thr["tilt_anterior_deg"]
                                             or tilt <= thr["tilt_posterior_deg"]))

    def decide(self, decision: np.void, t_host_s: float = float("nan")) -> Verdict:
        """One detector decision (DECISION_DTYPE): the pattern to play now, or None and why not. t_host_s: when
        its sample was measured, on the host's clock (NaN: not known)."""
        kind, side, sample = int(decision["kind"]), int(decision["side"]), int(decision["sample"])
        pattern = PATTERN_OF.get((kind, side))
        if pattern is None:
            return Verdict(None, "recorded")  # DROP_STRIDE: the per-stride confirmation, never a buzz
        s = self.settings
        if s.mode == TRACKING:
            return Verdict(None, "tracking: recorded only")
        if self.owner == "sensor":
            return Verdict(None, "the sensor's own detector has the alerts")
        if self._sensor_had(t_host_s):
            return Verdict(None, "measured while the sensor's own detector had the alerts")
        channel = pattern if kind == detect.DROP else (_SWAY if kind == detect.SWAY else _TILT)
        over, seen = self._count(channel, kind, sample)
        if over < s.m_strides:
            return Verdict(None, f"{over} of the last {seen} strides over, {s.m_strides} needed")
        last = self._last_buzz.get(channel)
        if last is not None and sample - last < s.refractory_s * self.fs_hz:
            return Verdict(None, f"{(sample - last) / self.fs_hz:.1f} s after the last, refractory "
                                 f"{s.refractory_s:.1f} s")
        if self._last_any is not None and sample - self._last_any < s.min_gap_s * self.fs_hz:
            return Verdict(None, "too soon after another alert's vibration")
        self._last_buzz[channel] = self._last_any = sample
        self.buzzes.append((sample, pattern))
        return Verdict(pattern, f"{over} of the last {seen} strides over")

    def _count(self, channel: str, kind: int, sample: int) -> tuple[int, int]:
        """(strides over, strides counted) among the last n, the one this decision belongs to included."""
        n = self.settings.n_strides
        if kind == detect.DROP:
            # The per-sample drop fires during its single support, before the stride stage has reported it: the
            # earlier single supports of that leg (peaks more than half a stride back) plus this one, which is over.
            before = [over for peak, over in self._history[channel] if peak < sample - 0.5 * self.fs_hz][-(n - 1):] \
                if n > 1 else []
            return sum(before) + 1, len(before) + 1
        window = [over for end, over in self._history[channel] if end <= sample][-n:]
        return sum(window), len(window)

    def device_thresholds(self) -> dict:
        """SET_THRESHOLDS' arguments (``DeviceSession.set_thresholds``) for the thresholds in use: one drop
        threshold for both legs on the sensor (the lower of the two, so that neither leg goes unwatched), tilt
        either way (the lower of the two), clipped to the ranges the sensor accepts."""
        thr, s = self.thresholds, self.settings
        drop = min(thr["drop_left_stance_deg"], thr["drop_right_stance_deg"])
        drop = drop if math.isfinite(drop) else s.drop_threshold_deg  # a baseline still being learnt
        sway_cm = thr["sway_pp_cm"] if math.isfinite(thr["sway_pp_cm"]) else s.sway_threshold_cm
        tilt = min(thr["tilt_anterior_deg"], -thr["tilt_posterior_deg"])
        tilt = tilt if math.isfinite(tilt) and tilt > 0 else s.tilt_threshold_deg
        hysteresis_deg = detect.DEFAULT_SETTINGS["drop_hysteresis_deg"]
        values = {"drop_deg": round(drop, 2), "sway_mm": round(sway_cm * 10), "tilt_deg": round(tilt, 2),
                  "refractory_ms": round(s.refractory_s * 1000)}
        for name, (low, high) in _DEVICE_RANGES.items():
            values[name] = min(max(values[name], low), high)
        values["hysteresis_pct"] = min(100, round(100 * hysteresis_deg / values["drop_deg"]))
        values["enable"] = ("drop", "sway", "tilt")
        return values


class LinkWatch:
    """Whether the link is up, failing or down, from the session's figures polled now and then (synchronous).

    ``update(now_s, connected, holes, reconnects, rssi_dbm)`` -> "up", "failing" or "down": failing when
    ``holes_n`` holes opened within ``holes_window_s`` or the signal is under ``rssi_dbm``; it stays failing until
    ``clean_s`` pass without either, and a reconnect starts afresh ("up"). ``why`` says what made it fail.
    Quiet data alone is not counted: a sensor at the end of its recording is quiet too, and a link that really
    went quiet is soon reported down.
    """

    def __init__(self, *, holes_n: int = 2, holes_window_s: float = 2.0, rssi_dbm: float = -85.0,
                 clean_s: float = 5.0):
        self.holes_n, self.holes_window_s = holes_n, holes_window_s
        self.rssi_dbm, self.clean_s = rssi_dbm, clean_s
        self._holes: deque = deque()
        self._holes_seen: int | None = None
        self._reconnects_seen: int | None = None
        self._bad_at: float | None = None
        self.why = ""

    def update(self, now_s: float, connected: bool, holes: int, reconnects: int,
               rssi_dbm: float | None = None) -> str:
        if self._holes_seen is None:
            self._holes_seen, self._reconnects_seen = holes, reconnects
        for _ in range(holes - self._holes_seen):
            self._holes.append(now_s)
        self._holes_seen = holes
        if reconnects != self._reconnects_seen:  # back after a drop: judged afresh from now on
            self._reconnects_seen = reconnects
            self._holes.clear()
            self._bad_at = None
        while self._holes and self._holes[0] < now_s - self.holes_window_s:
            self._holes.popleft()
        if not connected:
            self.why = "the link is down"
            return "down"
        bad = None
        if len(self._holes) >= self.holes_n:
            bad = f"{len(self._holes)} stretches of data lost within {self.holes_window_s:g} s"
        elif rssi_dbm is not None and rssi_dbm < self.rssi_dbm:
            bad = f"signal {rssi_dbm:.0f} dBm"
        if bad is not None:
            self._bad_at, self.why = now_s, bad
        if self._bad_at is not None and now_s - self._bad_at < self.clean_s:
            return "failing"
        self._bad_at = None
        return "up"


def device_alert_words(kind: int, side: int, value: int) -> str:
    """An ALERT event of the sensor's own detector in words (docs/protocol.md: value in 0.01° for a drop or a
    tilt, mm for sway; side 1 left stance, 2 right stance)."""
    if kind == protocol.AlertKind.DROP:
        leg = {1: "left", 2: "right"}.get(side, "unknown")
        return f"pelvic drop while standing on the {leg} leg: {value / 100:.1f}°"
    if kind == protocol.AlertKind.SWAY:
        return f"hip sway, side to side per stride: {value / 10:.1f} cm"
    return f"pelvic tilt away from neutral: {abs(value) / 100:.1f}°"


class HandOver:
    """The task that keeps the sensor's own detector ready for a cut, gives it the alerts while the link fails and
    takes them back (module docstring). ``await HandOver(session, policy, out).run()`` beside the session's blocks.

    The sensor's detector is in one of three states (``sensor_has``): "off", "standby" (armed: it runs only while
    no host is connected, SET_THRESHOLDS bit 3) or "sensor" (running now, sent during a fade); None while a command
    is unanswered. With the link up the host keeps it in stand-by with the policy's thresholds (re-sent when they
    change), so a cut without warning is handed over by the firmware itself. Each change of hands writes a NOTE in
    the session log and a line through ``out``: ``alerts_armed``, ``alerts_handed_over`` (a fade, or a cut the
    armed detector covers), ``alerts_taken_back``, ``alerts_not_handed_over`` (a cut the sensor was not armed
    for). ``device_off``: the sensor's detector is known to be off at the start."""

    def __init__(self, session, policy: AlertPolicy, out: Callable[[str], None], *, watch: LinkWatch | None = None,
                 device_off: bool = True, poll_s: float = 0.05, clock: Callable[[], float] | None = None):
        self.session, self.policy, self.out = session, policy, out
        self.watch = watch if watch is not None else LinkWatch()
        self.sensor_has = "off" if device_off else None  # what the sensor last acknowledged; None: unknown
        self.poll_s = poll_s
        self.clock = clock if clock is not None else time.monotonic
        self.armed = 0  # stand-by commands acknowledged with new thresholds
        self.handed_over = 0
        self.taken_back = 0
        self.not_handed_over = 0
        self.sensor_alerts = 0  # ALERT events from the sensor's own detector that reached the host
        self.sensor_alerts_late = 0  # ... of them, sent while the sensor had the alerts (they come on reconnect)
        self.task: asyncio.Future | None = None  # run(), once the caller has started it
        self._missed = False  # this drop has been dealt with
        self._dropped = False  # the link dropped since the sensor took the alerts
        self._armed_with: dict | None = None  # the thresholds of the last stand-by acknowledged
        self.standby_refused = False  # the sensor refused stand-by (a firmware before it): kept off instead
        self._retry_at = 0.0  # after a command that failed: not again before this (clock)

    def counts(self) -> dict:
        return {"armed": self.armed, "handed_over": self.handed_over, "taken_back": self.taken_back,
                "not_handed_over": self.not_handed_over, "sensor_alerts": self.sensor_alerts,
                "sensor_alerts_late": self.sensor_alerts_late}

    @staticmethod
    def closing_line(counts: dict) -> str:
        """The closing line for a person, from ``counts()``."""
        line = (f"alerts handed over to the sensor's own detector {counts['handed_over']} times, taken back "
                f"{counts['taken_back']} times; {counts['sensor_alerts']} alerts of the sensor's own detector "
                f"reached the host ({counts.get('sensor_alerts_late', 0)} of them from a cut, delivered on "
                "reconnect; the wearer felt them when they fired)")
        if counts["not_handed_over"]:
            line += f"; {counts['not_handed_over']} drops came when the sensor was not armed (no hand-over)"
        return line

    def device_event(self, event) -> None:
        """The session's event callback: an ALERT of the sensor's own detector is counted and printed (one sent
        while the link was down arrives on reconnect, and says so)."""
        if event.code != protocol.EventCode.ALERT:
            return
        self.sensor_alerts += 1
        late = self.policy.owner == "sensor" and self._dropped
        self.sensor_alerts_late += late
        f = event.fields
        self.out(f"{event.t_us / 1e6:7.2f} s  sensor's own ALERT " + device_alert_words(
            f["alert_kind"], f["side"], f["value"]) + ("  (during the cut: sent on reconnect)" if late else ""))

    async def stop(self) -> None:
        """Stop ``task``; the sensor's detector stays as it was last told."""
        if self.task is not None and not self.task.done():
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    def wanted(self, state: str) -> str | None:
        """What the sensor's detector should be in this link state: "off", "standby" or "sensor"."""
        s = self.policy.settings
        if s.mode == TRACKING or not s.handover:
            return "off"
        if state == "failing":
            return "sensor"
        if state == "up":
            return "off" if self.standby_refused else "standby"
        return self.sensor_has  # down: nothing can be sent

    async def run(self) -> None:
        session = self.session
        while True:
            await asyncio.sleep(self.poll_s)
            now = self.clock()
            status = session.link.status()
            state = self.watch.update(now, status.connected, len(session.stats.holes), session.stats.reconnects,
                                      status.rssi_dbm)
            if state == "down" and session.link.ended:
                return  # the end of the stream, not a failing link
            if state == "down":
                self._link_down()
                continue
            self._missed = False
            want = self.wanted(state)
            if status.connected and now >= self._retry_at and self._should_tell(want):
                await self._tell(want, self.watch.why)

    def _should_tell(self, want: str) -> bool:
        if want != self.sensor_has:
            return True
        # in stand-by already: again after a cut (to take the alerts back) or with thresholds that changed
        return want == "standby" and (self.policy.owner == "sensor" or self._shown() != self._armed_with)

    def _shown(self) -> dict:
        return {k: v for k, v in self.policy.device_thresholds().items() if k != "enable"}

    def _link_down(self) -> None:
        """The link is down: the armed detector has the alerts now (logged), or they could not be handed over."""
        if self._missed:
            return
        self._missed = True
        self._dropped = self.policy.owner == "sensor" or self.sensor_has == "standby"
        if self.policy.owner == "sensor" or self.wanted("failing") != "sensor":
            return  # handed over during the fade already, or the host keeps them by choice
        recording = self.session.recording
        if self.sensor_has == "standby":
            self.policy.sensor_took(self.clock())
            self.handed_over += 1
            recording.note("alerts_handed_over", reason="the link dropped: the sensor's armed detector took over",
                           armed=True, **self._armed_with)
            self.out("the link dropped: the sensor's own detector, armed for this, has the alerts (pelvic drop "
                     f"{self._armed_with['drop_deg']:.1f}°, sway {self._armed_with['sway_mm'] / 10:.1f} cm, "
                     f"tilt ±{self._armed_with['tilt_deg']:.1f}°)")
            return
        self.not_handed_over += 1
        unknown = self.sensor_has is None  # told, but its answer was lost in the drop
        recording.note("alerts_not_handed_over", reason=self.watch.why, sensor_told=unknown)
        self.out("the link dropped while the sensor was being told to alert on its own: whether it does is known "
                 "when the link is back" if unknown else
                 "the link dropped while the sensor's own detector was not armed: alerts resume when it is back")

    async def _tell(self, want: str, why: str) -> None:
        """SET_THRESHOLDS for ``want``; the policy's owner changes only once the sensor has acknowledged."""
        thresholds = self.policy.device_thresholds()
        enable = {"off": (), "standby": (*thresholds["enable"], "standby"), "sensor": thresholds["enable"]}[want]
        fields = threshold_fields(**{**thresholds, "enable": enable})
        self.sensor_has = None  # until the ACK: a command lost in a cut leaves the sensor's state unknown
        try:
            # One try: after a drop the wish may have changed; the loop decides afresh instead of a stale retry.
            ack = await self.session.command(protocol.Opcode.SET_THRESHOLDS, tries=1, **fields)
        except HipcheckError as error:
            self.session.recording.note("alerts_hand_over_failed", to=want, error=str(error))
            self._retry_at = self.clock() + 1.0
            return
        if ack.status != protocol.Status.OK:
            self.session.recording.note("alerts_hand_over_failed", to=want,
                                        error=f"SET_THRESHOLDS refused: {protocol.Status(ack.status).name}")
            self._retry_at = self.clock() + 1.0
            if want == "standby" and ack.status == protocol.Status.OUT_OF_RANGE and not self.standby_refused:
                self.standby_refused = True  # a firmware without stand-by: its detector stays off instead
                self.out("the sensor does not know stand-by (update its firmware): a cut without warning cannot "
                         "be handed over to it")
            return
        self.sensor_has = want
        shown = {k: v for k, v in thresholds.items() if k != "enable"}
        was = self.policy.owner
        if want == "sensor":
            if was != "sensor":
                self._hand_over(why, shown)
            return
        self.policy.host_took(self.clock())
        if was == "sensor":
            self._take_back(armed=want == "standby")
        if want == "standby" and shown != self._armed_with:
            self._armed_with = shown
            self.armed += 1
            self.session.recording.note("alerts_armed", **shown)
            self.out("the sensor's own detector is armed: it alerts if the link drops (pelvic drop "
                     f"{shown['drop_deg']:.1f}°, sway {shown['sway_mm'] / 10:.1f} cm, "
                     f"tilt ±{shown['tilt_deg']:.1f}°); the host alerts while it is connected")

    def _hand_over(self, why: str, shown: dict) -> None:
        self.policy.sensor_took(self.clock())
        self._dropped = False
        self.handed_over += 1
        self.session.recording.note("alerts_handed_over", reason=why, **shown)
        self.out(f"alerts handed over to the sensor's own detector ({why}): pelvic drop {shown['drop_deg']:.1f}°, "
                 f"sway {shown['sway_mm'] / 10:.1f} cm, tilt ±{shown['tilt_deg']:.1f}°")

    def _take_back(self, armed: bool) -> None:
        self.taken_back += 1
        reason = "link back after a drop" if self._dropped else "link steady again"
        self._dropped = False
        self.session.recording.note("alerts_taken_back", reason=reason, sensor_armed=armed)
        self.out(f"alerts taken back from the sensor ({reason}): the host alerts"
                 + ("; the sensor's own detector stays armed for the next drop" if armed else
                    ", the sensor's detector is off"))
