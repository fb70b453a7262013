"""Pelvis kinematics for the simulated activities, with exact derivatives.

Each activity has a settings dataclass (what the user asks for, with defaults) and a model built from the settings
and a random generator (the per-stride and postural randomness, drawn once). A model is evaluated at any instants
with ``model.at(t_s)``, giving a :class:`PelvisMotion`: position and Baker angles of the pelvis as jets (value,
first and second time derivative), built from the smooth pieces in :mod:`hipcheck.motion.smooth`.

Frames: earth z up, x the initial walking direction, y left. The tracked point is the sacral point the sensor sits
on. Angles (rotation, obliquity, tilt) follow Baker (2001): rotation + = pelvis turned left (right side forward),
obliquity + = left side higher, tilt + = anterior, all relative to the wearer's neutral standing posture.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hipcheck.errors import InvalidValueError
from hipcheck.motion import smooth
from hipcheck.motion.smooth import SPLINE_VARIANCE_RATIO, TWO_PI, BandNoise, Jet, Spline
from hipcheck.motion.trace import (
    PHASE_DOUBLE_SUPPORT,
    PHASE_LEFT_SINGLE_SUPPORT,
    PHASE_OTHER,
    PHASE_RIGHT_SINGLE_SUPPORT,
    Interval,
)
from hipcheck.units import RAD_PER_DEG

# Gait timing within a stride that starts at right initial contact (phase 0): left final contact at 0.1, left
# initial contact at 0.5, right final contact at 0.6. Stance is 60 % of the stride, each double support 10 %.
LEFT_FC_PHASE = 0.1
LEFT_IC_PHASE = 0.5
RIGHT_FC_PHASE = 0.6
SINGLE_SUPPORT_PHASES = 0.4
# Events are reported, and the phase code set, while the bout envelope is at least this: steps smaller than a
# quarter of the steady amplitude are weight shifts rather than steps.
EVENT_ENVELOPE_MIN = 0.25
# The per-stride amplitude factors of a walk (the drops have their own, per step).
AMPLITUDE_NAMES = ("sway", "bounce", "tilt", "rotation", "speed")


@dataclass(frozen=True)
class PelvisMotion:
    """Pelvis kinematics at instants t_s.

    pos_m: (N, 3) jet of the sacral point in the earth frame (value m, d1 m/s, d2 m/s², gravity not included).
    angles_rad: (N, 3) jet of the Baker angles (rotation, obliquity, tilt); rotation is continuous (not wrapped).
    sway_m: lateral displacement from the walking path or standing spot, + = left.
    heading_rad: direction of the path (+ = turned left); rotation − heading is the pelvis's own rotation.
    phase: PHASE_* code per instant; stride_phase: fraction of the stride since right initial contact, NaN when
    not walking.
    """

    t_s: np.ndarray
    pos_m: Jet
    angles_rad: Jet
    sway_m: Jet
    heading_rad: Jet
    phase: np.ndarray
    stride_phase: np.ndarray


def _posture_motion(t: Jet, sway_m: Jet, forward_m: Jet, height_m: Jet, angles_deg: list[Jet], heading_rad: float,
                    phase: np.ndarray) -> PelvisMotion:
    """Motion of a pelvis that stays on one spot: displacements in the heading frame, angles in degrees."""
    c, s = np.cos(heading_rad), np.sin(heading_rad)
    pos = smooth.stack([c * forward_m - s * sway_m, s * forward_m + c * sway_m, height_m])
    rotation = angles_deg[0] * RAD_PER_DEG + heading_rad
    angles = smooth.stack([rotation, angles_deg[1] * RAD_PER_DEG, angles_deg[2] * RAD_PER_DEG])
    n = len(t.value)
    return PelvisMotion(t.value, pos, angles, sway_m, Jet.constant(heading_rad, t), phase, np.full(n, np.nan))


# --------------------------------------------------------------------------------------------------- walking


@dataclass(frozen=True)
class WalkSettings:
    """A walking bout: rest, gait initiation, steady walking (with turns), stop, rest.

    Drops are named by the STANCE side, as the clinic names the weak hip: drop_right_deg = 8 means that during
    right single support the LEFT side of the pelvis sinks to 8° below level (obliquity −8° at its peak: weak right
    hip abductors); during left single support the right side sinks by drop_left_deg (obliquity +drop_left_deg).
    The drop is a smooth bump inside single support, peaking at 37.5 % of it; the pelvis is level in double support.

    Other shapes per stride (phase 0 = right initial contact): lateral sway toward the stance side, extreme at
    phase 0.3 (right) and 0.8 (left), sway_cm peak to peak; vertical bounce bounce_cm peak to peak, lowest at
    phase 0.05 and 0.55 (double support); forward speed fastest there, ± speed_variation_frac; tilt around
    tilt_mean_deg (+ = anterior, relative to neutral standing), tilt_range_deg peak to peak, two cycles per stride,
    most anterior at phase 0.45 and 0.95; rotation rotation_range_deg peak to peak, one cycle, right side most
    forward (rotation +) at right initial contact. At each initial contact the sacrum dips by impact_mm over
    impact_s (the heel-strike transient seen in lower-back acceleration).

    Variability: stride times vary with coefficient of variation stride_time_cv, amplitudes (drops per step, the
    other ranges per stride, smoothly) with amplitude_cv. Set both to 0 for exact, repeatable strides.
    turns: (time_s, angle_deg, duration_s) heading changes, + = to the left, each a smooth step.
    """

    duration_s: float = 60.0
    speed_m_s: float = 1.3
    cadence_spm: float = 110.0
    stride_time_cv: float = 0.02
    amplitude_cv: float = 0.02
    drop_left_deg: float = 4.0
    drop_right_deg: float = 4.0
    tilt_mean_deg: float = 0.0
    tilt_range_deg: float = 3.0
    rotation_range_deg: float = 8.0
    sway_cm: float = 4.0
    bounce_cm: float = 3.0
    speed_variation_frac: float = 0.08
    impact_mm: float = 2.0
    impact_s: float = 0.12
    turns: tuple[tuple[float, float, float], ...] = ()
    start_rest_s: float = 1.5
    start_ramp_s: float = 1.2
    stop_ramp_s: float = 0.8
    end_rest_s: float = 1.0
    height_m: float = 1.0

    def __post_init__(self):
        object.__setattr__(self, "turns", tuple(tuple(float(v) for v in turn) for turn in self.turns))
        shortest = self.start_rest_s + self.start_ramp_s + self.stop_ramp_s + self.end_rest_s + 2 * self.stride_s
        if self.duration_s < shortest:
            raise InvalidValueError(f"duration_s={self.duration_s:g} is too short for a walk: use at least {shortest:.1f} s "
                             f"(rest, gait initiation, two strides, stop, rest)")
        if not 30.0 <= self.cadence_spm <= 200.0:
            raise InvalidValueError(f"cadence_spm={self.cadence_spm:g} is not a walking cadence; use 30 to 200 steps/min")
        for turn in self.turns:
            if len(turn) != 3 or turn[2] <= 0:
                raise InvalidValueError(f"turn {turn} should be (time_s, angle_deg, duration_s) with duration_s > 0")

    @property
    def stride_s(self) -> float:
        return 120.0 / self.cadence_spm  # a stride is two steps

    @property
    def walk_start_s(self) -> float:
        return self.start_rest_s

    @property
    def stop_start_s(self) -> float:
        return self.duration_s - self.end_rest_s - self.stop_ramp_s


@dataclass(frozen=True)
class Walk:
    """The walking model: settings plus the random draws (phase wander, amplitude factors)."""

    settings: WalkSettings
    phase_wander: Spline  # stride-phase offset, in strides, as a function of nominal strides
    amplitude: Spline  # factors around 1 of AMPLITUDE_NAMES (one column each), as functions of stride phase
    drop_right_deg: np.ndarray  # per stride, indexed from first_stride
    drop_left_deg: np.ndarray
    first_stride: int
    phase_times_s: np.ndarray = field(init=False)  # (strides, 5): instants of phases k, k+.1, k+.5, k+.6, k+1

    def __post_init__(self):
        object.__setattr__(self, "phase_times_s", self._phase_times())

    @staticmethod
    def draw(settings: WalkSettings, rng: np.random.Generator) -> Walk:
        cfg = settings
        # Knots span the recording in nominal strides, with a margin for the phase wander.
        first = int(np.floor(-(cfg.start_rest_s + cfg.start_ramp_s) / cfg.stride_s)) - 10
        n = int(np.ceil(cfg.duration_s / cfg.stride_s)) + 10 - first
        # Stride time T_k ≈ T0 (1 − Δw) where Δw, the wander's change over a stride, is a spline of the random
        # walk's steps: scale the steps so that Δw, and so T_k / T0, has the requested CV.
        steps = rng.normal(0.0, cfg.stride_time_cv / np.sqrt(SPLINE_VARIANCE_RATIO), n)
        random_walk = np.cumsum(steps)
        wander = Spline(random_walk - random_walk[-first], first)  # zero wander near the first step
        coefficient_sd = cfg.amplitude_cv / np.sqrt(SPLINE_VARIANCE_RATIO)
        amplitude = Spline(1.0 + rng.normal(0.0, coefficient_sd, (n, len(AMPLITUDE_NAMES))), first)
        drop_right = cfg.drop_right_deg * (1.0 + rng.normal(0.0, cfg.amplitude_cv, n))
        drop_left = cfg.drop_left_deg * (1.0 + rng.normal(0.0, cfg.amplitude_cv, n))
        return Walk(cfg, wander, amplitude, drop_right, drop_left, first)

    # -- time base

    @property
    def reference_s(self) -> float:
        """The instant of stride phase 0 (the first right initial contact), before phase wander."""
        return self.settings.start_rest_s + 0.6 * self.settings.start_ramp_s

    def stride_phase(self, t: Jet) -> Jet:
        """Strides since the first right initial contact: integer at each right initial contact."""
        x = (t - self.reference_s) * (1.0 / self.settings.stride_s)
        return x + self.phase_wander(x)

    def envelope(self, t: Jet) -> Jet:
        """0 at rest, 1 in steady walking: scales speed and every gait oscillation (initiation and stop)."""
        cfg = self.settings
        return smooth.step(t, cfg.walk_start_s, cfg.start_ramp_s) - smooth.step(t, cfg.stop_start_s, cfg.stop_ramp_s)

    def heading(self, t: Jet) -> Jet:
        heading = Jet.constant(0.0, t)
        for start_s, angle_deg, duration_s in self.settings.turns:
            heading = heading + angle_deg * RAD_PER_DEG * smooth.step(t, start_s, duration_s)
        return heading

    def time_of_phase(self, phase: np.ndarray) -> np.ndarray:
        """Instants at which the stride phase reaches the given values (Newton on the monotonic phase)."""
        phase = np.asarray(phase, dtype=float)
        t = self.reference_s + phase * self.settings.stride_s
        for _ in range(20):
            p = self.stride_phase(Jet.time(t))
            step = (p.value - phase) / p.d1
            t = t - step
            if np.all(np.abs(step) < 1e-12):
                break
        return t

    def _phase_times(self) -> np.ndarray:
        """(strides, 5) instants of phases k + (0, .1, .5, .6, 1) for each complete stride inside the bout."""
        cfg = self.settings
        p0 = self.stride_phase(Jet.time(np.array([0.0, cfg.duration_s]))).value
        k = np.arange(int(np.floor(p0[0])), int(np.ceil(p0[1])) + 1)
        offsets = np.array([0.0, LEFT_FC_PHASE, LEFT_IC_PHASE, RIGHT_FC_PHASE, 1.0])
        times = self.time_of_phase(k[:, None] + offsets[None, :])
        envelope = self.envelope(Jet.time(times.ravel())).value.reshape(times.shape)
        # The envelope rises, holds, falls: a stride whose two ends pass the threshold passes it throughout.
        inside = (envelope[:, 0] >= EVENT_ENVELOPE_MIN) & (envelope[:, 4] >= EVENT_ENVELOPE_MIN)
        inside &= (times[:, 0] >= 0.0) & (times[:, 4] <= cfg.duration_s)
        return times[inside]

    def events(self) -> list[tuple[str, str, float]]:
        """(kind, side, t_s) of every contact inside the bout, in time order (starts and ends with a right IC)."""
        out: list[tuple[str, str, float]] = []
        kinds = (("IC", "right"), ("FC", "left"), ("IC", "left"), ("FC", "right"))
        for row in self.phase_times_s:
            out.extend((kind, side, float(t)) for (kind, side), t in zip(kinds, row[:4]))
        if len(self.phase_times_s):
            out.append(("IC", "right", float(self.phase_times_s[-1, 4])))
        return out

    def intervals(self) -> list[Interval]:
        return []

    def is_steady(self, start_s: float, end_s: float) -> bool:
        cfg = self.settings
        return start_s >= cfg.walk_start_s + cfg.start_ramp_s and end_s <= cfg.stop_start_s

    # -- kinematics

    def at(self, t_s: np.ndarray, with_path: bool = True) -> PelvisMotion:
        """Pelvis motion at instants t_s; with_path=False skips the forward path (for scattered instants)."""
        cfg = self.settings
        t = Jet.time(t_s)
        phi = self.stride_phase(t)
        envelope = self.envelope(t)
        factors = self.amplitude(phi)
        amp = {name: factors.column(j) for j, name in enumerate(AMPLITUDE_NAMES)}

        obliquity_deg = envelope * self._drops(phi)
        tilt_shape = smooth.cos(TWO_PI * 2.0 * (phi - 0.45))
        tilt_deg = envelope * (cfg.tilt_mean_deg + 0.5 * cfg.tilt_range_deg * amp["tilt"] * tilt_shape)
        own_rotation_deg = envelope * (0.5 * cfg.rotation_range_deg) * amp["rotation"] * smooth.cos(TWO_PI * phi)
        heading = self.heading(t)
        rotation = heading + own_rotation_deg * RAD_PER_DEG
        angles = smooth.stack([rotation, obliquity_deg * RAD_PER_DEG, tilt_deg * RAD_PER_DEG])

        # Toward the stance side: most to the right (−y) at phase 0.3, to the left at 0.8.
        sway = envelope * (-0.005 * cfg.sway_cm) * amp["sway"] * smooth.cos(TWO_PI * (phi - 0.3))
        bounce = (-0.005 * cfg.bounce_cm) * amp["bounce"] * smooth.cos(TWO_PI * 2.0 * (phi - 0.05))
        height = cfg.height_m + envelope * (bounce - 0.001 * cfg.impact_mm * self._impacts(phi))
        cos_h, sin_h = smooth.cos(heading), smooth.sin(heading)
        if with_path:
            speed_shape = smooth.cos(TWO_PI * 2.0 * (phi - 0.05))
            speed = envelope * cfg.speed_m_s * (1.0 + cfg.speed_variation_frac * amp["speed"] * speed_shape)
            path_x = smooth.integrate(speed * cos_h, t.value)
            path_y = smooth.integrate(speed * sin_h, t.value)
        else:
            path_x = path_y = Jet.constant(np.nan, t)
        pos = smooth.stack([path_x - sway * sin_h, path_y + sway * cos_h, height])
        phase, stride_phase = self._phase_codes(t.value, phi.value)
        return PelvisMotion(t.value, pos, angles, sway, heading, phase, stride_phase)

    def _drops(self, phi: Jet) -> Jet:
        """Obliquity (deg) from the drop bumps: −drop_right in right single support, +drop_left in left."""
        k = np.floor(phi.value)
        i = np.clip(k.astype(np.int64) - self.first_stride, 0, len(self.drop_right_deg) - 1)
        right = smooth.bump((phi - (k + LEFT_FC_PHASE)) * (1.0 / SINGLE_SUPPORT_PHASES))
        left = smooth.bump((phi - (k + RIGHT_FC_PHASE)) * (1.0 / SINGLE_SUPPORT_PHASES))
        return right * (-self.drop_right_deg[i]) + left * self.drop_left_deg[i]

    def _impacts(self, phi: Jet) -> Jet:
        """A short bump starting at each initial contact (phase k and k + 0.5), peak 1."""
        k = np.floor(phi.value)
        width = self.settings.impact_s / self.settings.stride_s
        # Exponents 4 and 6: joins smooth to the third derivative, so the jerk stays finite and physical.
        right = smooth.bump((phi - k) * (1.0 / width), 4, 6)
        left = smooth.bump((phi - (k + LEFT_IC_PHASE)) * (1.0 / width), 4, 6)
        return right + left

    def _phase_codes(self, t_s: np.ndarray, phi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        frac = phi - np.floor(phi)
        phase = np.full(len(t_s), PHASE_DOUBLE_SUPPORT, dtype=np.int8)
        phase[(frac >= LEFT_FC_PHASE) & (frac < LEFT_IC_PHASE)] = PHASE_RIGHT_SINGLE_SUPPORT
        phase[frac >= RIGHT_FC_PHASE] = PHASE_LEFT_SINGLE_SUPPORT
        if len(self.phase_times_s):
            walking = (t_s >= self.phase_times_s[0, 0]) & (t_s < self.phase_times_s[-1, 4])
        else:
            walking = np.zeros(len(t_s), dtype=bool)
        phase[~walking] = PHASE_OTHER
        return phase, np.where(walking, frac, np.nan)


# --------------------------------------------------------------------------------------------- single-leg hold

_TAP_S = 0.04  # a finger's tap on the sensor


@dataclass(frozen=True)
class HoldSettings:
    """A single-leg hold: two-leg stance, lift-off, hold on the ``side`` leg, lower, two-leg stance.

    lift_s: when the free foot leaves the ground (default 3 s, or a fifth of a shorter recording); hold_s: how
    long it stays up (default: until as long before the end as lift_s is after the start). drop_deg: the free
    side's drop, + = sinks below level, − = hikes (obliquity −drop_deg on a right-leg hold, +drop_deg on a
    left-leg hold). The pelvis shifts weight_shift_cm toward the stance side at lift-off. tilt_drift_deg: tilt
    change (+ = anterior) reached smoothly by the time lowering begins. drop_onset_s: the free side is level until
    this instant of the hold and then drops by drop_deg over transition_s (a hold that gives way late); None: the
    drop comes with the lift-off. touchdowns: instants (s)
    at which the free foot touches down for touchdown_s; the pelvis then returns touchdown_depth of the way to
    level and half of the weight shift. Sway: band-limited random (0.1–2 Hz) lateral displacement of
    sway_rms_cm RMS on one leg (baseline_sway_rms_cm on two), 0.6 of that front to back, and angle wobble of
    angle_sway_rms_deg RMS on each angle. taps: instants (s) of a finger tapping the sensor (a double tap, the
    user's start: two about 0.25 s apart), each pressing the pelvis point in by tap_depth_mm over 40 ms.
    """

    duration_s: float = 30.0
    side: str = "right"
    lift_s: float | None = None
    hold_s: float | None = None
    drop_deg: float = 0.0
    drop_onset_s: float | None = None
    tilt_mean_deg: float = 0.0
    tilt_drift_deg: float = 0.0
    sway_rms_cm: float = 0.8
    baseline_sway_rms_cm: float = 0.25
    angle_sway_rms_deg: float = 0.4
    weight_shift_cm: float = 5.0
    touchdowns: tuple[float, ...] = ()
    touchdown_s: float = 0.4
    touchdown_depth: float = 0.8
    taps: tuple[float, ...] = ()
    tap_depth_mm: float = 1.0
    transition_s: float = 0.5
    height_m: float = 1.0
    heading_deg: float = 0.0

    def __post_init__(self):
        if self.side not in ("left", "right"):
            raise InvalidValueError(f"side={self.side!r}: the stance leg is 'left' or 'right'")
        if self.lift_s is None:
            object.__setattr__(self, "lift_s", min(3.0, 0.2 * self.duration_s))
        if self.hold_s is None:
            object.__setattr__(self, "hold_s", self.duration_s - 2.0 * self.lift_s)
        object.__setattr__(self, "touchdowns", tuple(float(t) for t in self.touchdowns))
        object.__setattr__(self, "taps", tuple(float(t) for t in self.taps))
        if self.lift_s < self.transition_s or self.hold_s < 2 * self.transition_s:
            raise InvalidValueError(f"duration_s={self.duration_s:g}, lift_s={self.lift_s:g}, hold_s={self.hold_s:g} leave no "
                             f"room for a hold: lift after {self.transition_s:g} s and hold at least "
                             f"{2 * self.transition_s:g} s (by default a hold needs duration_s ≥ 2.5 s)")
        if self.lower_s + self.transition_s > self.duration_s:
            raise InvalidValueError(f"the hold ends at {self.lower_s:g} s, too close to duration_s={self.duration_s:g}: "
                             f"leave {self.transition_s:g} s to lower the foot")
        if self.drop_onset_s is not None and not self.lift_s + self.transition_s <= self.drop_onset_s \
                <= self.lower_s - self.transition_s:
            raise InvalidValueError(f"drop_onset_s={self.drop_onset_s:g} is not inside the hold ({self.lift_s:g} s to "
                                    f"{self.lower_s:g} s, a transition away from lift-off and lowering)")
        for t in self.touchdowns:
            if not self.lift_s + self.transition_s <= t <= self.lower_s - self.touchdown_s - self.transition_s:
                raise InvalidValueError(f"touchdown at {t:g} s is not inside the hold "
                                 f"({self.lift_s:g} s to {self.lower_s:g} s, away from lift-off and lowering)")

    @property
    def lower_s(self) -> float:
        return self.lift_s + self.hold_s


@dataclass(frozen=True)
class Hold:
    settings: HoldSettings
    sway_ml: BandNoise
    sway_ap: BandNoise
    wobble: tuple[BandNoise, BandNoise, BandNoise]  # rotation, obliquity, tilt, each of unit RMS

    @staticmethod
    def draw(settings: HoldSettings, rng: np.random.Generator) -> Hold:
        band = (0.1, 2.0)
        return Hold(
            settings,
            BandNoise.draw(rng, 1.0, band),
            BandNoise.draw(rng, 1.0, band),
            tuple(BandNoise.draw(rng, 1.0, band) for _ in range(3)),
        )

    def events(self) -> list:
        return []

    def intervals(self) -> list[Interval]:
        cfg = self.settings
        out = [Interval("hold", cfg.lift_s, cfg.lower_s, cfg.side)]
        out += [Interval("touchdown", t, t + cfg.touchdown_s, cfg.side) for t in cfg.touchdowns]
        return out

    def at(self, t_s: np.ndarray, with_path: bool = True) -> PelvisMotion:
        cfg = self.settings
        t = Jet.time(t_s)
        # Lift-off and lowering are centred on lift_s and lower_s; touchdowns likewise with short edges.
        on_one_leg = smooth.plateau(t, cfg.lift_s, cfg.lower_s, cfg.transition_s)
        foot_down = Jet.constant(0.0, t)
        for start_s in cfg.touchdowns:
            foot_down = foot_down + smooth.plateau(t, start_s, start_s + cfg.touchdown_s, 0.2)
        loaded = on_one_leg * (1.0 - cfg.touchdown_depth * foot_down)
        toward_stance = 1.0 if cfg.side == "left" else -1.0  # +y is left

        # The free side sinking by drop_deg raises the stance side: obliquity + = left higher.
        obliquity = toward_stance * cfg.drop_deg * loaded
        if cfg.drop_onset_s is not None:
            obliquity = obliquity * smooth.step(t, cfg.drop_onset_s - 0.5 * cfg.transition_s, cfg.transition_s)
        # The drift is complete when lowering begins.
        drift = cfg.tilt_drift_deg * smooth.step(t, cfg.lift_s, cfg.hold_s - 0.5 * cfg.transition_s) * on_one_leg
        sway_gain = cfg.baseline_sway_rms_cm + (cfg.sway_rms_cm - cfg.baseline_sway_rms_cm) * on_one_leg
        wobble_gain = cfg.angle_sway_rms_deg * (0.3 + 0.7 * on_one_leg)
        shift = toward_stance * 0.01 * cfg.weight_shift_cm * on_one_leg * (1.0 - 0.5 * foot_down)
        sway = shift + 0.01 * sway_gain * self.sway_ml(t)
        forward = 0.006 * sway_gain * self.sway_ap(t)
        for tap_s in cfg.taps:  # a finger pressing the sensor in by tap_depth_mm for 40 ms
            forward = forward - 0.001 * cfg.tap_depth_mm * smooth.bump((t - tap_s) * (1.0 / _TAP_S), 3, 3)
        angles = [
            wobble_gain * self.wobble[0](t),
            obliquity + wobble_gain * self.wobble[1](t),
            cfg.tilt_mean_deg + drift + wobble_gain * self.wobble[2](t),
        ]
        phase = np.full(len(t_s), PHASE_OTHER, dtype=np.int8)
        single = (t_s >= cfg.lift_s) & (t_s < cfg.lower_s)
        for start_s in cfg.touchdowns:
            single &= ~((t_s >= start_s) & (t_s < start_s + cfg.touchdown_s))
        phase[single] = PHASE_LEFT_SINGLE_SUPPORT if cfg.side == "left" else PHASE_RIGHT_SINGLE_SUPPORT
        height = Jet.constant(cfg.height_m, t)
        return _posture_motion(t, sway, forward, height, angles, cfg.heading_deg * RAD_PER_DEG, phase)


# -------------------------------------------------------------------------------------- standing and sitting


@dataclass(frozen=True)
class StandSettings:
    """Quiet standing: a posture (tilt + = anterior, obliquity + = left higher) with small postural sway.

    sway_rms_cm: lateral sway RMS (0.7 of it front to back), angle_sway_rms_deg on each angle, band-limited
    random in 0.05–1 Hz. Both 0 gives a pelvis exactly at rest.
    """

    duration_s: float = 30.0
    tilt_mean_deg: float = 0.0
    obliquity_deg: float = 0.0
    sway_rms_cm: float = 0.3
    angle_sway_rms_deg: float = 0.2
    height_m: float = 1.0
    heading_deg: float = 0.0


@dataclass(frozen=True)
class SitSettings(StandSettings):
    """Sitting: the pelvis tilted back (posterior tilt, −15° from neutral standing by default), small movements."""

    tilt_mean_deg: float = -15.0
    sway_rms_cm: float = 0.2
    angle_sway_rms_deg: float = 0.5
    height_m: float = 0.55


@dataclass(frozen=True)
class Posture:
    """Standing or sitting still, with postural sway."""

    settings: StandSettings
    sway: tuple[BandNoise, BandNoise]  # lateral, front-back; unit RMS
    wobble: tuple[BandNoise, BandNoise, BandNoise]

    @staticmethod
    def draw(settings: StandSettings, rng: np.random.Generator) -> Posture:
        band = (0.05, 1.0)
        return Posture(settings, tuple(BandNoise.draw(rng, 1.0, band) for _ in range(2)),
                       tuple(BandNoise.draw(rng, 1.0, band) for _ in range(3)))

    def events(self) -> list:
        return []

    def intervals(self) -> list[Interval]:
        return []

    def at(self, t_s: np.ndarray, with_path: bool = True) -> PelvisMotion:
        cfg = self.settings
        t = Jet.time(t_s)
        sway = 0.01 * cfg.sway_rms_cm * self.sway[0](t)
        forward = 0.007 * cfg.sway_rms_cm * self.sway[1](t)
        a = cfg.angle_sway_rms_deg
        angles = [a * self.wobble[0](t), cfg.obliquity_deg + a * self.wobble[1](t),
                  cfg.tilt_mean_deg + a * self.wobble[2](t)]
        phase = np.full(len(t_s), PHASE_OTHER, dtype=np.int8)
        height = Jet.constant(cfg.height_m, t)
        return _posture_motion(t, sway, forward, height, angles, cfg.heading_deg * RAD_PER_DEG, phase)


# --------------------------------------------------------------------------------------------- sit to stand


@dataclass(frozen=True)
class SitToStandSettings:
    """Sit-to-stand repetitions: from sitting, an anterior tilt surge, then the rise; sitting down in between.

    Each rise: the pelvis tilts from sit_tilt_deg toward surge_tilt_deg over surge_s (flexion momentum), then
    rises by rise_m and moves forward by forward_m over rise_s while the tilt returns to stand_tilt_deg. Between
    repetitions: stand stand_s, sit down over sit_down_s (a smaller forward tilt, then back to sit_tilt_deg), sit
    sit_s. The last rise is followed by standing to the end. reps: how many rises (default: as many as fit).
    """

    duration_s: float = 12.0
    reps: int | None = None
    first_rise_s: float = 2.0
    sit_tilt_deg: float = -15.0
    surge_tilt_deg: float = 10.0
    stand_tilt_deg: float = 0.0
    rise_m: float = 0.45
    forward_m: float = 0.2
    surge_s: float = 0.6
    rise_s: float = 1.0
    stand_s: float = 2.0
    sit_down_s: float = 1.5
    sit_s: float = 2.0
    sit_height_m: float = 0.55
    sway_rms_cm: float = 0.2
    angle_sway_rms_deg: float = 0.3
    heading_deg: float = 0.0

    def __post_init__(self):
        rise_and_settle_s = self.surge_s + self.rise_s + 0.5
        if self.reps is None:
            room = self.duration_s - self.first_rise_s - rise_and_settle_s
            object.__setattr__(self, "reps", max(1, int(np.floor(room / self.cycle_s)) + 1))
        if self.reps < 1:
            raise InvalidValueError(f"reps={self.reps}: do at least one sit-to-stand")
        end = self.rise_start_s(self.reps - 1) + rise_and_settle_s
        if end > self.duration_s:
            raise InvalidValueError(f"{self.reps} sit-to-stand repetitions need duration_s ≥ {end:.1f} s")

    @property
    def cycle_s(self) -> float:
        return self.surge_s + self.rise_s + self.stand_s + self.sit_down_s + self.sit_s

    def rise_start_s(self, rep: int) -> float:
        return self.first_rise_s + rep * self.cycle_s


@dataclass(frozen=True)
class SitToStand:
    settings: SitToStandSettings
    posture: Posture  # postural sway on top of the transitions

    @staticmethod
    def draw(settings: SitToStandSettings, rng: np.random.Generator) -> SitToStand:
        still = StandSettings(duration_s=settings.duration_s, sway_rms_cm=settings.sway_rms_cm,
                              angle_sway_rms_deg=settings.angle_sway_rms_deg, height_m=0.0)
        return SitToStand(settings, Posture.draw(still, rng))

    def events(self) -> list:
        return []

    def intervals(self) -> list[Interval]:
        cfg = self.settings
        out = []
        for rep in range(cfg.reps):
            start = cfg.rise_start_s(rep)
            out.append(Interval("rise", start, start + cfg.surge_s + cfg.rise_s))
            if rep < cfg.reps - 1:
                sit_down = start + cfg.surge_s + cfg.rise_s + cfg.stand_s
                out.append(Interval("sit_down", sit_down, sit_down + cfg.sit_down_s))
        return out

    def at(self, t_s: np.ndarray, with_path: bool = True) -> PelvisMotion:
        cfg = self.settings
        t = Jet.time(t_s)
        tilt_moves, height_moves, forward_moves = [], [], []
        for rep in range(cfg.reps):
            start = cfg.rise_start_s(rep)
            rise = start + 0.6 * cfg.surge_s  # seat-off comes late in the surge
            tilt_moves += [(start, cfg.surge_s, cfg.surge_tilt_deg),
                           (start + cfg.surge_s, cfg.rise_s, cfg.stand_tilt_deg)]
            height_moves.append((rise, cfg.rise_s, cfg.sit_height_m + cfg.rise_m))
            forward_moves.append((start + 0.3 * cfg.surge_s, cfg.rise_s, cfg.forward_m))
            if rep < cfg.reps - 1:
                down = start + cfg.surge_s + cfg.rise_s + cfg.stand_s
                half = 0.5 * cfg.sit_down_s
                lean = cfg.stand_tilt_deg + 0.5 * (cfg.surge_tilt_deg - cfg.stand_tilt_deg)
                tilt_moves += [(down, half, lean), (down + half, half, cfg.sit_tilt_deg)]
                height_moves.append((down + 0.2 * cfg.sit_down_s, 0.8 * cfg.sit_down_s, cfg.sit_height_m))
                forward_moves.append((down + 0.2 * cfg.sit_down_s, 0.8 * cfg.sit_down_s, 0.0))
        still = self.posture.at(t_s)
        tilt = smooth.keyframes(t, cfg.sit_tilt_deg, tilt_moves)
        height = smooth.keyframes(t, cfg.sit_height_m, height_moves)
        forward = smooth.keyframes(t, 0.0, forward_moves)
        heading = cfg.heading_deg * RAD_PER_DEG
        c, s = np.cos(heading), np.sin(heading)
        sway = still.sway_m
        # The posture model's own displacement is in its heading (0) frame: re-express along ours.
        ahead = forward + still.pos_m.column(0)
        pos = smooth.stack([c * ahead - s * sway, s * ahead + c * sway, height])
        wobble = still.angles_rad
        angles = smooth.stack([wobble.column(0) + heading, wobble.column(1), wobble.column(2) + tilt * RAD_PER_DEG])
        phase = np.full(len(t_s), PHASE_OTHER, dtype=np.int8)
        return PelvisMotion(t.value, pos, angles, sway, Jet.constant(heading, t), phase, np.full(len(t_s), np.nan))


# ---------------------------------------------------------------------------------- floor exercises (repetitions)


@dataclass(frozen=True)
class RepSettings:
    """Repetitions lying down: rest, lift over up_s, stay top_s, lower over down_s, rest rest_s, from first_s on.

    The simulated frame is the segment the sensor is worn on, lying with its long (cranial) axis horizontal: Baker
    tilt −90° (supine), obliquity then the roll about the long axis (+ = the segment's left side higher).
    duration_s: None for as long as the reps need plus rest_s. Movements are minimum-jerk smooth steps.
    """

    reps: int = 10
    duration_s: float | None = None
    first_s: float = 2.0
    up_s: float = 1.0
    top_s: float = 1.0
    down_s: float = 3.0
    rest_s: float = 1.5
    range_deg: float = 25.0
    angle_sway_rms_deg: float = 0.3
    heading_deg: float = 0.0
    height_m: float = 0.15

    def __post_init__(self):
        if self.reps < 1 or min(self.up_s, self.down_s) <= 0 or min(self.top_s, self.rest_s, self.first_s) < 0:
            raise InvalidValueError(f"reps={self.reps}, up_s={self.up_s:g}, down_s={self.down_s:g}: at least one rep "
                                    "with positive up and down times (top_s, rest_s, first_s not negative)")
        need = self.rep_start_s(self.reps)
        if self.duration_s is None:
            object.__setattr__(self, "duration_s", need + self.rest_s)
        elif self.duration_s < need:
            raise InvalidValueError(f"{self.reps} reps need duration_s ≥ {need:.1f} s")

    @property
    def cycle_s(self) -> float:
        return self.up_s + self.top_s + self.down_s + self.rest_s

    def rep_start_s(self, rep: int) -> float:
        return self.first_s + rep * self.cycle_s


@dataclass(frozen=True)
class BridgeSettings(RepSettings):
    """Bridges, sensor on the belt at the front, lying on the back: each rep the pelvis rises by rise_cm and turns
    posteriorly by range_deg (the tilt goes from −90° toward −90° − range_deg). drop_side: 'left' or 'right' — that
    side sinks by drop_deg at the top (the weak side's hip extensors), None: level."""

    range_deg: float = 25.0
    rise_cm: float = 15.0
    drop_side: str | None = None
    drop_deg: float = 5.0

    def __post_init__(self):
        super().__post_init__()
        if self.drop_side not in (None, "left", "right"):
            raise InvalidValueError(f"drop_side={self.drop_side!r}: 'left', 'right' or None")


@dataclass(frozen=True)
class ClamshellSettings(RepSettings):
    """Clamshells lying on the side, knees bent. worn='thigh' (outside of the top thigh above the knee): the
    segment rolls by range_deg (the opening) each rep; worn='pelvis': the pelvis should stay still and rolls
    only by roll_back_deg (the pelvis rolling back, the cheat); on the thigh the roll-back adds to the opening."""

    range_deg: float = 40.0
    worn: str = "thigh"
    roll_back_deg: float = 0.0

    def __post_init__(self):
        super().__post_init__()
        if self.worn not in ("thigh", "pelvis"):
            raise InvalidValueError(f"worn={self.worn!r}: 'thigh' or 'pelvis'")


@dataclass(frozen=True)
class Reps:
    """Bridges or clamshells: a rep profile 0 → 1 → 0 per repetition, mapped onto the segment's angles."""

    settings: RepSettings
    wobble: tuple[BandNoise, BandNoise, BandNoise]

    @staticmethod
    def draw(settings: RepSettings, rng: np.random.Generator) -> Reps:
        return Reps(settings, tuple(BandNoise.draw(rng, 1.0, (0.05, 1.0)) for _ in range(3)))

    def events(self) -> list:
        return []

    def intervals(self) -> list[Interval]:
        cfg = self.settings
        out = []
        side = getattr(cfg, "drop_side", None)
        for rep in range(cfg.reps):
            start = cfg.rep_start_s(rep)
            top = start + cfg.up_s
            out += [Interval("rep", start, top + cfg.top_s + cfg.down_s, side), Interval("up", start, top),
                    Interval("down", top + cfg.top_s, top + cfg.top_s + cfg.down_s)]
        return out

    def profile(self, t: Jet) -> Jet:
        cfg = self.settings
        moves = []
        for rep in range(cfg.reps):
            start = cfg.rep_start_s(rep)
            moves += [(start, cfg.up_s, 1.0), (start + cfg.up_s + cfg.top_s, cfg.down_s, 0.0)]
        return smooth.keyframes(t, 0.0, moves)

    def at(self, t_s: np.ndarray, with_path: bool = True) -> PelvisMotion:
        cfg = self.settings
        t = Jet.time(t_s)
        p = self.profile(t)
        a = cfg.angle_sway_rms_deg
        tilt = Jet.constant(-90.0, t) + a * self.wobble[2](t)
        obliquity = a * self.wobble[1](t)
        height = Jet.constant(cfg.height_m, t)
        if isinstance(cfg, BridgeSettings):
            tilt = tilt - cfg.range_deg * p
            if cfg.drop_side is not None:  # obliquity + = left side higher
                obliquity = obliquity + (1.0 if cfg.drop_side == "right" else -1.0) * cfg.drop_deg * p
            height = height + 0.01 * cfg.rise_cm * p
        else:
            roll = cfg.roll_back_deg + (cfg.range_deg if cfg.worn == "thigh" else 0.0)
            obliquity = obliquity + roll * p
        angles = [a * self.wobble[0](t), obliquity, tilt]
        zero = Jet.constant(0.0, t)
        phase = np.full(len(t_s), PHASE_OTHER, dtype=np.int8)
        return _posture_motion(t, zero, zero, height, angles, cfg.heading_deg * RAD_PER_DEG, phase)
