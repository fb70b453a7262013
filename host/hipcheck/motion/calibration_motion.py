"""Motions to calibrate from: the mounting step's stand and walk, or stand and forward bend (pelvis kinematics with
exact derivatives).

The mounting step (docs/calibration.md) asks the wearer to stand still on both feet for a few seconds and then walk
straight. :class:`StandWalk` is that: a :class:`~hipcheck.motion.kinematics.Walk` whose starting rest is a quiet stand
with postural sway (the same band and size as :class:`~hipcheck.motion.kinematics.Posture`), or, as the bad input the
step must refuse, a stand on one leg: the weight shifted over the stance foot, the larger sway and pelvic wobble of
single-leg stance (as :class:`~hipcheck.motion.kinematics.Hold`'s defaults), and the free side lower by
``one_leg_drop_deg``; the lifted foot then takes the first step.

:class:`StandBend` is the other way to find forward: after the stand, a slow bend forward from the hips and back
(tilt 0 → bend_deg → 0 with smooth keyframes). The pelvis turns about the hip joints, which lie
``hip_forward_cm`` in front of and ``hip_below_cm`` below the sacral point the sensor sits on, so the sensor also
moves (back and down) as a real sacral clip does. ``twist_deg`` and ``lean_deg`` add a rotation about the vertical
and a side lean in proportion to the bend: the bad bends the step refuses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hipcheck.errors import InvalidValueError
from hipcheck.motion import smooth
from hipcheck.motion.kinematics import PelvisMotion, Walk, WalkSettings
from hipcheck.motion.smooth import BandNoise, Jet
from hipcheck.motion.trace import PHASE_OTHER, Interval
from hipcheck.units import RAD_PER_DEG

__all__ = ["StandWalkSettings", "StandWalk", "StandBendSettings", "StandBend"]

# Standing ends this long before the walk's start: the sway fades out as the first step begins.
_STAND_FADE_S = 0.6


@dataclass(frozen=True)
class StandWalkSettings(WalkSettings):
    """A quiet stand of stand_s, then walking straight for walk_s (gait initiation and stop included), then a rest
    of end_rest_s. duration_s and start_rest_s follow from these. stand_on: 'both', or 'left' / 'right' to stand on
    that leg. Every WalkSettings field applies to the walk (turns=... makes a walk that is not straight)."""

    stand_s: float = 5.0
    walk_s: float = 20.0
    stand_on: str = "both"
    stand_sway_rms_cm: float = 0.3
    stand_angle_sway_rms_deg: float = 0.2
    one_leg_sway_rms_cm: float = 0.8
    one_leg_angle_sway_rms_deg: float = 0.4
    weight_shift_cm: float = 5.0
    one_leg_drop_deg: float = 2.0
    duration_s: float = 0.0  # set from stand_s + walk_s + end_rest_s

    def __post_init__(self):
        if self.stand_on not in ("both", "left", "right"):
            raise InvalidValueError(f"stand_on={self.stand_on!r}: stand on 'both' feet, or on the 'left' or 'right' "
                                    "leg")
        if not self.stand_s >= 1.0:
            raise InvalidValueError(f"stand_s={self.stand_s:g}: the stand lasts at least 1 s")
        object.__setattr__(self, "start_rest_s", float(self.stand_s))
        object.__setattr__(self, "duration_s", float(self.stand_s + self.walk_s + self.end_rest_s))
        super().__post_init__()


@dataclass(frozen=True)
class StandWalk:
    """The walk with its stand: sway noises drawn once."""

    settings: StandWalkSettings
    walk: Walk
    sway: tuple[BandNoise, BandNoise]  # lateral, front-back; unit RMS
    wobble: tuple[BandNoise, BandNoise, BandNoise]  # rotation, obliquity, tilt; unit RMS

    @staticmethod
    def draw(settings: StandWalkSettings, rng: np.random.Generator) -> StandWalk:
        walk = Walk.draw(settings, rng)
        # Single-leg stance sways faster than quiet standing (Hold's band); the band covers both.
        band = (0.05, 2.0) if settings.stand_on != "both" else (0.05, 1.0)
        return StandWalk(settings, walk, tuple(BandNoise.draw(rng, 1.0, band) for _ in range(2)),
                         tuple(BandNoise.draw(rng, 1.0, band) for _ in range(3)))

    def events(self) -> list[tuple[str, str, float]]:
        return self.walk.events()

    def intervals(self) -> list[Interval]:
        side = None if self.settings.stand_on == "both" else self.settings.stand_on
        return [Interval("stand", 0.0, self.settings.stand_s, side)]

    @property
    def phase_times_s(self) -> np.ndarray:
        return self.walk.phase_times_s

    def is_steady(self, start_s: float, end_s: float) -> bool:
        return self.walk.is_steady(start_s, end_s)

    def at(self, t_s: np.ndarray, with_path: bool = True) -> PelvisMotion:
        cfg = self.settings
        m = self.walk.at(t_s, with_path)
        t = Jet.time(t_s)
        standing = 1.0 - smooth.step(t, cfg.stand_s - _STAND_FADE_S, _STAND_FADE_S)
        one_leg = cfg.stand_on != "both"
        sway_cm = cfg.one_leg_sway_rms_cm if one_leg else cfg.stand_sway_rms_cm
        wobble_deg = cfg.one_leg_angle_sway_rms_deg if one_leg else cfg.stand_angle_sway_rms_deg
        toward_stance = 1.0 if cfg.stand_on == "left" else -1.0  # +y is left
        lateral = standing * (0.01 * sway_cm) * self.sway[0](t)
        forward = standing * (0.007 * sway_cm) * self.sway[1](t)
        obliquity_deg = standing * wobble_deg * self.wobble[1](t)
        if one_leg:
            lateral = lateral + standing * (0.01 * toward_stance * cfg.weight_shift_cm)
            # The free side lower: obliquity + = left higher, so standing on the left lowers the right side.
            obliquity_deg = obliquity_deg + standing * (toward_stance * cfg.one_leg_drop_deg)
        d_angles = smooth.stack([standing * wobble_deg * self.wobble[0](t) * RAD_PER_DEG,
                                 obliquity_deg * RAD_PER_DEG,
                                 standing * wobble_deg * self.wobble[2](t) * RAD_PER_DEG])
        # The stand faces the walk's first heading (x): lateral is y, forward is x.
        zero = Jet.constant(0.0, t)
        d_pos = smooth.stack([forward, lateral, zero])
        return PelvisMotion(m.t_s, m.pos_m + d_pos, m.angles_rad + d_angles, m.sway_m + lateral,
                            m.heading_rad, m.phase, m.stride_phase)



@dataclass(frozen=True)
class StandBendSettings:
    """A quiet stand of stand_s, a bend forward from the hips to bend_deg over down_s, held hold_s, back up over
    up_s, then a rest of end_rest_s (duration_s follows)."""

    stand_s: float = 5.0
    bend_deg: float = 40.0
    down_s: float = 2.0
    hold_s: float = 1.0
    up_s: float = 2.0
    end_rest_s: float = 2.0
    twist_deg: float = 0.0
    lean_deg: float = 0.0
    sway_rms_cm: float = 0.3
    angle_sway_rms_deg: float = 0.2
    hip_forward_cm: float = 10.0
    hip_below_cm: float = 8.0
    height_m: float = 1.0
    heading_deg: float = 0.0
    duration_s: float = 0.0  # set from the parts

    def __post_init__(self):
        parts = (self.stand_s, self.down_s, self.up_s)
        if min(parts) <= 0 or self.hold_s < 0 or self.end_rest_s < 0:
            raise InvalidValueError(f"stand_s, down_s, up_s ({', '.join(f'{p:g}' for p in parts)}) must be positive, "
                                    "hold_s and end_rest_s not negative")
        object.__setattr__(self, "duration_s", float(sum(parts) + self.hold_s + self.end_rest_s))


@dataclass(frozen=True)
class StandBend:
    """The stand and bend, with the stand's sway drawn once."""

    settings: StandBendSettings
    sway: tuple[BandNoise, BandNoise]
    wobble: tuple[BandNoise, BandNoise, BandNoise]

    @staticmethod
    def draw(settings: StandBendSettings, rng: np.random.Generator) -> StandBend:
        band = (0.05, 1.0)
        return StandBend(settings, tuple(BandNoise.draw(rng, 1.0, band) for _ in range(2)),
                         tuple(BandNoise.draw(rng, 1.0, band) for _ in range(3)))

    def events(self) -> list:
        return []

    def intervals(self) -> list[Interval]:
        cfg = self.settings
        return [Interval("stand", 0.0, cfg.stand_s),
                Interval("bend", cfg.stand_s, cfg.stand_s + cfg.down_s + cfg.hold_s + cfg.up_s)]

    def at(self, t_s: np.ndarray, with_path: bool = True) -> PelvisMotion:
        cfg = self.settings
        t = Jet.time(t_s)
        bend = smooth.keyframes(t, 0.0, [(cfg.stand_s, cfg.down_s, 1.0),
                                         (cfg.stand_s + cfg.down_s + cfg.hold_s, cfg.up_s, 0.0)])
        a = cfg.angle_sway_rms_deg
        heading = cfg.heading_deg * RAD_PER_DEG
        tilt = (cfg.bend_deg * bend + a * self.wobble[2](t)) * RAD_PER_DEG
        angles = smooth.stack([(cfg.twist_deg * bend + a * self.wobble[0](t)) * RAD_PER_DEG + heading,
                               (cfg.lean_deg * bend + a * self.wobble[1](t)) * RAD_PER_DEG, tilt])
        # The sacral point turns about the hips with the tilt: offset (−forward, 0, +below) from the hip centre.
        back, up = -0.01 * cfg.hip_forward_cm, 0.01 * cfg.hip_below_cm
        c, s = smooth.cos(tilt), smooth.sin(tilt)
        forward = back * c + up * s + 0.007 * cfg.sway_rms_cm * self.sway[1](t)
        lateral = 0.01 * cfg.sway_rms_cm * self.sway[0](t)
        height = (cfg.height_m - up) + up * c - back * s
        ch, sh = np.cos(heading), np.sin(heading)
        pos = smooth.stack([ch * forward - sh * lateral, sh * forward + ch * lateral, height])
        n = len(t_s)
        return PelvisMotion(t.value, pos, angles, lateral, Jet.constant(heading, t),
                            np.full(n, PHASE_OTHER, dtype=np.int8), np.full(n, np.nan))
