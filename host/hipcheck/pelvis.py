"""Sensor→pelvis alignment, pelvic angles (Baker 2001) and level-frame acceleration, streaming.

Frames and signs (docs/angles.md, docs/pipeline.md):

- sensor frame: the device as worn, nominally x anterior, y left, z superior; a real clip differs by up to ~20°.
- pelvis frame: x anterior, y left, z superior, fixed to the pelvis; at the wearer's neutral standing posture it is
  level. ``q_sensor_to_pelvis`` (the *alignment*) maps sensor vectors into it.
- angles ``(rotation, obliquity, tilt)`` in degrees after Baker (2001, "Pelvic angles: a mathematically rigorous
  definition", Gait & Posture 13:1-6), ``R_pelvis_to_earth = Rz(rotation) · Rx(obliquity) · Ry(tilt)``:
  rotation + = pelvis turned to the left (right side forward), taken **relative to the walking direction**;
  obliquity + = left side higher; tilt + = anterior. Obliquity and tilt are zero at neutral standing.
- level frame (``acc_level_m_s2``): z up, x the walking direction (the pelvis heading averaged over the last
  stride), y to its left. Acceleration there is specific force minus gravity: zero at rest.

Automatic alignment (no calibration) for **any mounting** (every rotation of the sensor: backwards, upside down,
90° frames), after Moe-Nilssen (1998, "A new method for evaluating motor control in gait under real-life
environmental conditions. Part 1: The instrument", Clin Biomech 13:320-327: the vertical of a trunk accelerometer
from its static reading) and the AP/ML decomposition of lower-back acceleration (Zijlstra & Hof 2003, "Assessment
of spatio-temporal gait parameters from trunk accelerations during human walking", Gait & Posture 18(2):1-10):

1. **Vertical.** From the longest still period (any sensor axis up; with ``nominal`` only an upright one) before
   walking starts (a later one counts once it is as
   long, or ``stand_keep_s`` = 5 s: a calm moment on one leg is not neutral standing; without a still period,
   quasi-static stance: within 0.6 m/s² of the recent mean for 1.5 s): the mean up direction of the
   orientation input, in sensor coordinates, is the pelvis superior axis of the wearer's neutral posture. The
   orientation is used rather than the raw acceleration so that the alignment matches what it is applied to: an
   accelerometer bias tilts a 6D filter's inclination, and the same bias then cancels (with a bias-free
   orientation, e.g. the simulator's truth, the raw acceleration would leave the bias as a ~1° offset). Without
   such a period, the vertical is the mean orientation over walking (then tilt is relative to the mean walking
   posture, not to standing, and asymmetric drops bias obliquity by about a sixth of their difference; see
   docs/angles.md).
2. **Forward.** During walking, forward (AP) acceleration of the pelvis repeats every step while lateral (ML)
   acceleration repeats every stride, i.e. reverses every step. So the horizontal acceleration's covariance at a
   lag of one step, ``E[a(t) a(t − step)ᵀ]``, is positive along AP and negative along ML: its major axis is the
   walking direction whatever the ratio of AP to ML amplitude (a plain principal-axis fit fails when sway makes
   the two variances equal). The step lag is the peak of the vertical acceleration's autocorrelation, which also
   tells walking from other movement. The covariance is accumulated in a level frame that turns with the sensor
   (the heading of a fixed sensor axis: sensor x, or the more horizontal of y and z when x is within 45° of
   vertical), so turns and the drifting 6D heading do not matter.
2b. **Forward sign.** The covariance gives the AP axis, not which way along it is forward. The phase of AP against
   vertical acceleration does, whatever the mounting: in each step the trunk is braked and lifted over the stance
   foot, then falls and speeds up toward the next contact, so AP acceleration peaks a quarter step before the
   vertical one (forward acceleration peaks around heel strike, where Zijlstra & Hof 2003 find it; the vertical
   during the loading response that follows). The evidence is the cross-covariance
   ``E[a_AP(t − q)·a_V(t)] − E[a_AP(t)·a_V(t − q)]`` with q a quarter of the step lag, over 2·√(var_AP·var_V)
   (1 for a pure quarter-period lead): + along forward. It is decided once, after ``sign_walk_s`` (1.5 s) of
   walking, when at least ``sign_min_evidence`` (0.15) strong; the nine real lower-back recordings of mobgap-lab
   read 0.21-0.64 over their walking, the simulator 0.4-0.7 (any mounting: the figure does not depend on it). Until then the sign the evidence favours is provisional and no side may
   be named (``aligned`` is False); if it never becomes clear, ``mounting`` says so (a refusal, not a guess).
   With ``nominal`` (the axes are known to be ours within ±45°: ``--axes``, or the clip as designed) the sign is
   the one nearest sensor x instead. Left is up × forward (right-handed).
3. **Walking direction.** The pelvis heading averaged over the last stride (two step lags): the stride-periodic
   pelvic rotation averages out, turns and the 6D heading's drift pass (with half a stride of lag).

Output before the alignment is ready: NaN rows until the vertical is known (about 0.75 s into a still start, or
3 s of walking without one). Between then and ``yaw_walk_s`` (1.5 s) of detected walking the forward axis is the
reference axis, levelled (sensor x for a mounting near ours); from then on the walking estimate, refined with
every walking sample. ``aligned`` is True once vertical, forward and its sign come from data (or a given
alignment); ``frame_jump_at`` is the last sample at which the forward axis in use jumped by more than 30° (the
reference axis replaced by the walking estimate, or a provisional sign reversed); ``mounting`` reports it all. All of this is decided sample by sample in one kernel, so the output does not depend on block sizes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from hipcheck.errors import InvalidValueError
from hipcheck.rotation import matrix_from_quat, quat_from_matrix, quat_normalize
from hipcheck.settings import merged_settings
from hipcheck.units import GRAVITY_M_S2

__all__ = ["PelvisTracker", "pelvis_angles", "pelvis_update", "make_settings", "make_state", "DEFAULT_SETTINGS",
           "SETTINGS_DTYPE", "STATE_DTYPE", "Mounting", "mounting_to_dict", "to_pelvis_frame"]

DEFAULT_SETTINGS = {
    "still_dev_m_s2": 0.3,  # a sample is still if acc is within this of its recent mean ...
    "still_min_s": 0.75,  # ... and a still period this long gives the vertical
    "quasi_dev_m_s2": 0.6,  # quasi-static stance: acc within this of its recent mean ...
    "quasi_min_s": 1.5,  # ... for this long gives the vertical while no still period has
    "stand_keep_s": 5.0,  # a later still period replaces the stand once it is as long as the stand, or this long
    "upright_max_deg": 45.0,  # largest angle between sensor z and up for an upright stand (nominal frame only)
    # Walking holds the pelvis within a few degrees of its quiet-standing tilt; sitting tilts it 15-30° back. A
    # still period further than this from the mean walking posture was a seat (or lying), not neutral standing.
    "stand_walk_max_deg": 10.0,
    "still_tau_s": 0.25,  # time constant of the stillness reference (a moving mean of acc)
    # Mean removal before correlating: a gait-initiation surge or a turn's centripetal pull is not a step. The
    # same filter acts on both horizontal axes, so it cannot turn the AP/ML axes.
    "mean_tau_s": 0.5,
    "stats_tau_s": 2.0,  # time constant of the lagged correlations
    "step_min_s": 0.25,  # step-time search range: 0.25-0.9 s is a cadence of 67-240 steps/min
    "step_max_s": 0.9,
    "walk_min_std_m_s2": 0.3,  # vertical acceleration SD needed to call it walking
    "walk_min_corr": 0.4,  # vertical autocorrelation at the step lag (over the variance) needed to call it walking
    "vertical_walk_s": 3.0,  # walking needed for the vertical when there was no still start
    "yaw_walk_s": 1.5,  # walking needed before the forward axis comes from data
    # Any mounting: the forward *sign* comes from the phase of AP against vertical acceleration (module docstring,
    # step 2b). It is decided after this much walking, once the evidence (a correlation, -1..1) is this strong;
    # the real lower-back recordings of mobgap-lab give 0.21-0.64 over their walking, the simulator 0.4-0.7.
    "sign_walk_s": 1.5,
    "sign_min_evidence": 0.15,
    "default_stride_s": 1.1,  # heading-average window before a step time is known
}

SETTINGS_DTYPE = np.dtype([
    ("fs_hz", np.float64),
    ("gravity_m_s2", np.float64),
    ("still_dev_m_s2", np.float64),  # a sample is still if acc is within this of its recent mean
    ("still_min_samples", np.int64),  # a still period at least this long gives the vertical
    ("quasi_dev_m_s2", np.float64),  # quasi-static stance: acc within this of its recent mean ...
    ("quasi_min_samples", np.int64),  # ... for this long gives the vertical when no still period has
    ("stand_keep_samples", np.int64),  # a later still period replaces the stand once as long as it (or this long)
    ("upright_min_cos", np.float64),  # cos of the largest angle between sensor z and up for an upright stand
    ("stand_walk_min_cos", np.float64),  # a stand further than this from the walking posture was not standing
    ("still_alpha", np.float64),  # EMA weight of the stillness reference
    ("mean_alpha", np.float64),  # EMA weight of the mean removed before correlating
    ("stats_alpha", np.float64),  # EMA weight of the lagged correlations
    ("lag_min", np.int64),  # step-time search range, samples
    ("lag_max", np.int64),
    ("walk_min_var_m2_s4", np.float64),  # vertical acceleration variance needed to call it walking
    ("walk_min_corr", np.float64),  # vertical autocorrelation at the step lag needed to call it walking
    ("vertical_walk_samples", np.int64),  # walking needed for the vertical when there was no still start
    ("yaw_walk_samples", np.int64),  # walking needed before the forward axis comes from data
    ("default_stride_samples", np.int64),  # heading-average window before a step time is known
    ("given", np.int8),  # 0 automatic, 1 vertical given, 2 full alignment given
    ("given_up", np.float64, (3,)),  # sensor-frame pelvis superior axis, if given
    ("given_forward", np.float64, (3,)),  # sensor-frame pelvis anterior axis, if given (given == 2)
    ("given_left", np.float64, (3,)),  # sensor-frame pelvis left axis, if given (given == 2)
    # 1: the sensor frame is the pelvis frame within ±45° (our clip as designed, or a file remapped with --axes):
    # the stand must be upright and the forward sign is the one nearest sensor x. 0: any rotation, found from data.
    ("nominal", np.int8),
    ("sign_walk_samples", np.int64),  # walking needed before the forward sign is decided from data
    ("sign_min_evidence", np.float64),  # |forward-sign evidence| needed to decide it
])

_SIN_45 = math.sqrt(0.5)
_COS_30 = math.sqrt(0.75)

VERTICAL_NONE, VERTICAL_STAND, VERTICAL_WALK, VERTICAL_GIVEN = 0, 1, 2, 3
VERTICAL_NAMES = ("none", "stand", "walking", "given")

STATE_DTYPE = np.dtype([
    ("finite_samples", np.int64),  # samples seen with a finite orientation and acceleration
    ("samples", np.int64),  # samples seen, all of them: the stream's sample index
    ("aligned_since", np.int64),  # first sample with the full alignment (forward from walking or given); -1
    # -- stand: still, upright periods before walking (module docstring, step 1)
    ("acc_ema", np.float64, (3,)),  # stillness reference: recent mean of acc_sensor_m_s2 (m/s², sensor frame)
    ("still_run", np.int64),  # samples in the current still run
    ("still_sum", np.float64, (3,)),  # summed up direction (sensor frame) over the current still run
    ("quasi_run", np.int64),  # the same for quasi-static stance
    ("quasi_sum", np.float64, (3,)),
    ("stand_run", np.int64),  # length of the run that gave the stand (0: none)
    ("stand_strict", np.bool_),  # the stand came from a still (not quasi-static) run
    ("stand_sum", np.float64, (3,)),  # summed up direction (sensor frame) over the chosen still period
    ("has_stand", np.bool_),  # stand_sum holds a stand
    ("walked", np.bool_),  # walking seen: the stand is frozen
    # -- walking and its step lag (step 2)
    ("mean_earth", np.float64, (3,)),  # recent mean of the earth-frame acceleration (m/s²), removed before correlating
    ("ring_pos", np.int64),  # next slot of the acceleration ring
    ("vertical_var_m2_s4", np.float64),  # recent variance of the vertical acceleration (its autocorrelation at lag 0)
    ("step_lag", np.int64),  # samples; 0 = unknown
    ("walking", np.bool_),  # walking at the last sample
    ("walk_corr", np.float64),  # vertical autocorrelation at the step lag over the variance, at the last sample
    ("walk_count", np.int64),  # walking samples seen
    # -- AP/ML statistics while walking (step 2)
    ("x_ref", np.float64, (3,)),  # the sensor axis whose heading the AP/ML statistics turn with
    ("has_x_ref", np.bool_),
    # Σ over walking samples of R_sensor_to_earthᵀ·Rz(ψ_ref): the reference-heading frame's x, y, z axes (columns) in
    # sensor coordinates; column 2 is the summed up direction of the walking posture.
    ("ref_axes_sensor_sum", np.float64, (3, 3)),
    # Σ over walking samples of the lag-one-step horizontal covariance in the reference-heading frame: xx, yy, xy
    # (m²/s⁴ per sample).
    ("lag_cov_ref_sum_m2_s4", np.float64, (3,)),
    # Σ of a_h(t − q)·a_v(t) − a_h(t)·a_v(t − q), q a quarter step: horizontal x, y in the reference-heading frame
    # (the forward-sign evidence, step 2b), with the sums that normalise it: Σ horizontal covariance at lag 0
    # (xx, yy, xy) and Σ a_v².
    ("sign_cov_ref_sum_m2_s4", np.float64, (2,)),
    ("hor_cov_ref_sum_m2_s4", np.float64, (3,)),
    ("vertical_sq_sum_m2_s4", np.float64),
    ("sign_decided", np.bool_),  # the forward direction (with its sign) is decided: fwd_dir_ref holds it
    ("fwd_dir_ref", np.float64, (2,)),  # the decided forward direction, unit, in the reference-heading frame
    ("sign_evidence", np.float64),  # forward-sign evidence along the forward axis in use (-1..1; + agrees)
    ("axis_evidence", np.float64),  # (λ_AP − λ_ML) of the lag-one-step covariance over the horizontal variance
    ("frame_jump_at", np.int64),  # last sample at which the forward axis in use jumped by > 30° (-1: never)
    # -- the alignment in use: pelvis axes in sensor coordinates
    ("vertical_source", np.int8),  # VERTICAL_NONE, _STAND, _WALK or _GIVEN
    ("up", np.float64, (3,)),
    ("forward", np.float64, (3,)),
    ("left", np.float64, (3,)),
    ("yaw_from_walk", np.bool_),  # forward comes from walking (else the nominal sensor x, levelled)
    # -- walking direction (step 3)
    ("has_heading", np.bool_),  # heading_rad holds a heading
    ("heading_wrapped", np.float64),  # pelvis heading at the last sample, rad in [-π, π)
    ("heading_rad", np.float64),  # the same, unwrapped
    ("head_pos", np.int64),  # next slot of the heading ring
    ("head_count", np.int64),  # valid headings in the ring
    ("head_window", np.int64),  # headings averaged for the walking direction: one stride (samples)
    ("walk_heading_rad", np.float64),  # walking direction: the heading averaged over the last stride
])


def make_settings(fs_hz: float, *, alignment=None, vertical_sensor=None, nominal: bool = False,
                  **overrides) -> np.ndarray:
    """One settings record (SETTINGS_DTYPE) from DEFAULT_SETTINGS and overrides by name.

    alignment: q_sensor_to_pelvis (w, x, y, z) from a calibration; vertical_sensor: the pelvis superior axis in
    sensor coordinates if only that is known. Neither: the alignment is found automatically. nominal: the sensor
    frame is known to be the pelvis frame within ±45° (axes given): the forward sign is taken nearest sensor x
    instead of from the data, and a stand must be upright.
    """
    cfg = merged_settings("pelvis", DEFAULT_SETTINGS, overrides, fs_hz)
    s = np.zeros(1, SETTINGS_DTYPE)
    s["fs_hz"] = fs_hz
    s["gravity_m_s2"] = GRAVITY_M_S2
    s["still_dev_m_s2"] = cfg["still_dev_m_s2"]
    s["still_min_samples"] = max(2, round(cfg["still_min_s"] * fs_hz))
    s["quasi_dev_m_s2"] = cfg["quasi_dev_m_s2"]
    s["quasi_min_samples"] = max(2, round(cfg["quasi_min_s"] * fs_hz))
    s["stand_keep_samples"] = max(2, round(cfg["stand_keep_s"] * fs_hz))
    # Any mounting: a stand may have any sensor axis up (upside down included).
    s["upright_min_cos"] = math.cos(math.radians(cfg["upright_max_deg"])) if nominal else -2.0
    s["nominal"] = 1 if nominal else 0
    s["sign_walk_samples"] = round(cfg["sign_walk_s"] * fs_hz)
    s["sign_min_evidence"] = cfg["sign_min_evidence"]
    s["stand_walk_min_cos"] = math.cos(math.radians(cfg["stand_walk_max_deg"]))
    s["still_alpha"] = 1.0 / (cfg["still_tau_s"] * fs_hz)
    s["mean_alpha"] = 1.0 / (cfg["mean_tau_s"] * fs_hz)
    s["stats_alpha"] = 1.0 / (cfg["stats_tau_s"] * fs_hz)
    s["lag_min"] = max(2, round(cfg["step_min_s"] * fs_hz))
    s["lag_max"] = max(6, round(cfg["step_max_s"] * fs_hz))
    s["walk_min_var_m2_s4"] = cfg["walk_min_std_m_s2"] ** 2
    s["walk_min_corr"] = cfg["walk_min_corr"]
    s["vertical_walk_samples"] = round(cfg["vertical_walk_s"] * fs_hz)
    s["yaw_walk_samples"] = round(cfg["yaw_walk_s"] * fs_hz)
    s["default_stride_samples"] = round(cfg["default_stride_s"] * fs_hz)
    if not s["lag_min"][0] + 2 <= s["lag_max"][0]:
        raise InvalidValueError(f"step_min_s={cfg['step_min_s']} and step_max_s={cfg['step_max_s']} leave no step "
                                f"time to search at {fs_hz:g} Hz: widen the range")
    if alignment is not None:
        q = quat_normalize(np.asarray(alignment, dtype=float).reshape(4))
        if not np.all(np.isfinite(q)):
            raise InvalidValueError("alignment must be a finite quaternion q_sensor_to_pelvis (w, x, y, z)")
        axes = matrix_from_quat(q)  # rows: pelvis axes in sensor coordinates
        s["given"] = 2
        s["given_forward"], s["given_left"], s["given_up"] = axes[0], axes[1], axes[2]
    elif vertical_sensor is not None:
        up = np.asarray(vertical_sensor, dtype=float).reshape(3)
        if not (np.all(np.isfinite(up)) and np.linalg.norm(up) > 0):
            raise InvalidValueError("vertical_sensor must be a finite non-zero 3-vector (pelvis up in sensor frame)")
        s["given"] = 1
        s["given_up"] = up / np.linalg.norm(up)
    return s


def make_state(settings: np.ndarray) -> np.ndarray:
    """The state record (STATE_DTYPE) at the start of a stream; a given alignment is in use from sample 0."""
    s = settings[0]
    state = np.zeros(1, STATE_DTYPE)
    st = state[0]
    st["aligned_since"] = -1
    st["frame_jump_at"] = -1
    if s["given"] == 2:
        st["aligned_since"] = 0
        st["forward"], st["left"], st["up"] = s["given_forward"], s["given_left"], s["given_up"]
        st["vertical_source"] = VERTICAL_GIVEN
    return state


# ------------------------------------------------------------------------------------------------ numba kernel

# The kernel's helpers are inlined (inline="always"): left as calls they made it about 14 % slower (60 000
# samples, warm cache); inlined, the split costs no measurable time.


@njit(cache=True, inline="always")
def _normalize3(v):
    norm = math.sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2])
    if norm > 0.0:
        v[0] /= norm
        v[1] /= norm
        v[2] /= norm
    return norm


@njit(cache=True, inline="always")
def _wrap(angle_rad):
    """Angle wrapped to [-π, π)."""
    return angle_rad - 2.0 * math.pi * math.floor((angle_rad + math.pi) / (2.0 * math.pi))


@njit(cache=True, inline="always")
def _heading(R, left):
    """Baker rotation (rad) of the pelvis whose left axis is ``left`` (sensor coordinates): atan2(−Y_x, Y_y)."""
    yx = R[0, 0] * left[0] + R[0, 1] * left[1] + R[0, 2] * left[2]
    yy = R[1, 0] * left[0] + R[1, 1] * left[1] + R[1, 2] * left[2]
    return math.atan2(-yx, yy)


@njit(cache=True, inline="always")
def _copy3(dst, src):
    """dst[:] = src for 3-vectors, element by element: numba's slice assignment checks the shapes and compiles the
    formatting of its error message, seconds of every cold start."""
    dst[0], dst[1], dst[2] = src[0], src[1], src[2]


@njit(cache=True, inline="always")
def _cos_between(a, b):
    na = math.sqrt(a[0] * a[0] + a[1] * a[1] + a[2] * a[2])
    nb = math.sqrt(b[0] * b[0] + b[1] * b[1] + b[2] * b[2])
    if na == 0.0 or nb == 0.0:
        return 1.0
    return (a[0] * b[0] + a[1] * b[1] + a[2] * b[2]) / (na * nb)


@njit(cache=True, inline="always")
def _write_nan(angles_pelvis_deg, acc_level_m_s2, i):
    for k in range(3):
        angles_pelvis_deg[i, k] = np.nan
        acc_level_m_s2[i, k] = np.nan


@njit(cache=True, inline="always")
def _sensor_to_earth(q_sensor_to_earth, acc_sensor_m_s2, i, gravity_m_s2, R, acc_earth):
    """R_sensor_to_earth of sample i into R, its earth-frame acceleration minus gravity into acc_earth; False (and
    nothing written) for a non-finite or degenerate sample."""
    qw, qx, qy, qz = q_sensor_to_earth[i, 0], q_sensor_to_earth[i, 1], q_sensor_to_earth[i, 2], \
        q_sensor_to_earth[i, 3]
    f0, f1, f2 = acc_sensor_m_s2[i, 0], acc_sensor_m_s2[i, 1], acc_sensor_m_s2[i, 2]
    qn = math.sqrt(qw * qw + qx * qx + qy * qy + qz * qz)
    if not (math.isfinite(qn) and qn > 0.5 and math.isfinite(f0 + f1 + f2)):
        return False
    qw, qx, qy, qz = qw / qn, qx / qn, qy / qn, qz / qn
    R[0, 0] = 1 - 2 * (qy * qy + qz * qz)
    R[0, 1] = 2 * (qx * qy - qw * qz)
    R[0, 2] = 2 * (qx * qz + qw * qy)
    R[1, 0] = 2 * (qx * qy + qw * qz)
    R[1, 1] = 1 - 2 * (qx * qx + qz * qz)
    R[1, 2] = 2 * (qy * qz - qw * qx)
    R[2, 0] = 2 * (qx * qz - qw * qy)
    R[2, 1] = 2 * (qy * qz + qw * qx)
    R[2, 2] = 1 - 2 * (qx * qx + qy * qy)
    for k in range(3):
        acc_earth[k] = R[k, 0] * f0 + R[k, 1] * f1 + R[k, 2] * f2
    acc_earth[2] -= gravity_m_s2
    return True


@njit(cache=True, inline="always")
def _track_still(s, st, f0, f1, f2, R, acc_earth):
    """Still and quasi-static runs before walking, from acc_sensor_m_s2 (f0, f1, f2): candidates for the stand."""
    if st.finite_samples == 0:
        st.acc_ema[0], st.acc_ema[1], st.acc_ema[2] = f0, f1, f2
        _copy3(st.mean_earth, acc_earth)
    d = math.sqrt((f0 - st.acc_ema[0]) ** 2 + (f1 - st.acc_ema[1]) ** 2 + (f2 - st.acc_ema[2]) ** 2)
    st.acc_ema[0] += s.still_alpha * (f0 - st.acc_ema[0])
    st.acc_ema[1] += s.still_alpha * (f1 - st.acc_ema[1])
    st.acc_ema[2] += s.still_alpha * (f2 - st.acc_ema[2])
    if st.walked or s.given != 0:
        return
    g = s.gravity_m_s2
    fn = math.sqrt(f0 * f0 + f1 * f1 + f2 * f2)
    upright_g = abs(fn - g) < 0.1 * g
    if d < s.still_dev_m_s2 and upright_g:
        # Sum the fusion's up direction in sensor coordinates (the last row of R), not the raw acceleration: the
        # alignment must match the orientation it is applied to.
        st.still_run += 1
        st.still_sum[0] += R[2, 0]
        st.still_sum[1] += R[2, 1]
        st.still_sum[2] += R[2, 2]
    else:
        st.still_run = 0
        st.still_sum[:] = 0.0
    if d < s.quasi_dev_m_s2 and upright_g:
        st.quasi_run += 1
        st.quasi_sum[0] += R[2, 0]
        st.quasi_sum[1] += R[2, 1]
        st.quasi_sum[2] += R[2, 2]
    else:
        st.quasi_run = 0
        st.quasi_sum[:] = 0.0
    _choose_stand(s, st)


@njit(cache=True, inline="always")
def _choose_stand(s, st):
    """The stand is the longest still period so far (a later one counts once it is stand_keep_samples long): a
    short still moment later, e.g. on one leg, is not the neutral posture. Quasi-static stance (postural sway above
    still_dev) gives it only while no still period has, and is replaced by one on the same terms."""
    keep = min(st.stand_run, s.stand_keep_samples)
    if st.still_run >= s.still_min_samples and st.still_run >= keep:
        ss = st.still_sum
        cos_up = ss[2] / math.sqrt(ss[0] * ss[0] + ss[1] * ss[1] + ss[2] * ss[2])
        if cos_up >= s.upright_min_cos:
            _copy3(st.stand_sum, ss)
            st.has_stand = True
            st.stand_strict = True
            st.stand_run = st.still_run
    elif not st.stand_strict and st.quasi_run >= s.quasi_min_samples and st.quasi_run >= keep:
        ss = st.quasi_sum
        cos_up = ss[2] / math.sqrt(ss[0] * ss[0] + ss[1] * ss[1] + ss[2] * ss[2])
        if cos_up >= s.upright_min_cos:
            _copy3(st.stand_sum, ss)
            st.has_stand = True
            st.stand_run = st.quasi_run


@njit(cache=True, inline="always")
def _detect_walking(s, st, ring_acc, vertical_autocorr, acc_earth, dev):
    """Walking and its step lag from the autocorrelation of the vertical acceleration (mean removed, into dev and
    the ring); returns the best lag (0: none)."""
    L = ring_acc.shape[0]
    for k in range(3):
        st.mean_earth[k] += s.mean_alpha * (acc_earth[k] - st.mean_earth[k])
        dev[k] = acc_earth[k] - st.mean_earth[k]
    pos = st.ring_pos
    ring_acc[pos, 0], ring_acc[pos, 1], ring_acc[pos, 2] = dev[0], dev[1], dev[2]
    st.vertical_var_m2_s4 += s.stats_alpha * (dev[2] * dev[2] - st.vertical_var_m2_s4)
    top = min(s.lag_max, st.finite_samples)
    # Lag k pairs with ring row pos - k, wrapped: two plain loops (no branch per lag) let LLVM vectorise them.
    alpha, now = s.stats_alpha, dev[2]
    for k in range(1, min(top, pos) + 1):
        vertical_autocorr[k] += alpha * (now * ring_acc[pos - k, 2] - vertical_autocorr[k])
    for k in range(pos + 1, top + 1):
        vertical_autocorr[k] += alpha * (now * ring_acc[pos - k + L, 2] - vertical_autocorr[k])
    best = _best_step_lag(s, vertical_autocorr, top)
    st.walking = False
    st.walk_corr = 0.0
    if best > 0 and st.vertical_var_m2_s4 > 0.0:
        st.walk_corr = vertical_autocorr[best] / st.vertical_var_m2_s4
        # A periodic step is anti-correlated at half its lag; a one-off movement (a rise) is not.
        st.walking = (st.vertical_var_m2_s4 >= s.walk_min_var_m2_s4 and st.walk_corr >= s.walk_min_corr
                      and vertical_autocorr[best // 2] < 0.0)
    if st.walking:
        st.step_lag = best
    return best


@njit(cache=True, inline="always")
def _best_step_lag(s, r, top):
    """The highest local maximum of the autocorrelation r in the step range, or the shortest lag nearly as high
    (at fast cadences the stride lag can be in range too); 0 if none."""
    best = 0
    highest = -np.inf
    for k in range(s.lag_min + 1, min(s.lag_max, top)):
        here = r[k]
        if here >= r[k - 1] and here >= r[k + 1] and (best == 0 or here > highest):
            best, highest = k, here
    if best > 0:
        for k in range(s.lag_min + 1, best):
            if r[k] >= r[k - 1] and r[k] >= r[k + 1] and r[k] >= 0.85 * r[best]:
                best = k
                break
    return best


@njit(cache=True, inline="always")
def _set_x_ref(s, st, R):
    """The reference axis, levelled by the stand's (or the given, or this sample's) vertical: sensor x in the
    nominal frame; for any mounting the sensor axis furthest from vertical (sensor x may point up, as in mobgap's
    lower-back frame, and a vertical axis has no heading)."""
    if st.has_stand or s.given == 1:
        up = st.stand_sum if s.given == 0 else s.given_up
        u0, u1, u2 = up[0], up[1], up[2]
    else:
        u0, u1, u2 = R[2, 0], R[2, 1], R[2, 2]  # the sensor-frame up of this sample
    norm = math.sqrt(u0 * u0 + u1 * u1 + u2 * u2)
    if norm > 0.0:
        u0, u1, u2 = u0 / norm, u1 / norm, u2 / norm
    axis = 0
    if s.nominal == 0 and abs(u0) > _SIN_45:
        # Sensor x within 45° of vertical: the more horizontal of y and z. Otherwise x, as in the nominal frame, so
        # that the provisional forward before walking decides it is right for a clip worn as designed.
        axis = 1 if abs(u1) <= abs(u2) else 2
    st.x_ref[0], st.x_ref[1], st.x_ref[2] = 0.0, 0.0, 0.0
    st.x_ref[axis] = 1.0
    if st.has_stand or s.given == 1 or s.nominal == 0:
        ua = u0 if axis == 0 else (u1 if axis == 1 else u2)
        st.x_ref[0] -= ua * u0
        st.x_ref[1] -= ua * u1
        st.x_ref[2] -= ua * u2
        _normalize3(st.x_ref)
    st.has_x_ref = True


@njit(cache=True, inline="always")
def _accumulate_ap_ml(s, st, ring_acc, R, dev, step_lag):
    """Add a walking sample to the AP/ML statistics, in the frame that turns with x_ref's heading."""
    st.walked = True
    if not st.has_x_ref:
        _set_x_ref(s, st, R)  # fixed from now on
    xr = st.x_ref
    hx = R[0, 0] * xr[0] + R[0, 1] * xr[1] + R[0, 2] * xr[2]
    hy = R[1, 0] * xr[0] + R[1, 1] * xr[1] + R[1, 2] * xr[2]
    psi_ref = math.atan2(hy, hx)
    c, sn = math.cos(psi_ref), math.sin(psi_ref)
    axes = st.ref_axes_sensor_sum
    for k in range(3):  # Rᵀ times the columns (c, s, 0), (−s, c, 0), (0, 0, 1) of Rz(ψ_ref)
        axes[k, 0] += R[0, k] * c + R[1, k] * sn
        axes[k, 1] += -R[0, k] * sn + R[1, k] * c
        axes[k, 2] += R[2, k]
    st.walk_count += 1
    j = st.ring_pos - step_lag
    if j < 0:
        j += ring_acc.shape[0]
    ax, ay = c * dev[0] + sn * dev[1], -sn * dev[0] + c * dev[1]
    bx, by = c * ring_acc[j, 0] + sn * ring_acc[j, 1], -sn * ring_acc[j, 0] + c * ring_acc[j, 1]
    cov = st.lag_cov_ref_sum_m2_s4
    cov[0] += ax * bx
    cov[1] += ay * by
    cov[2] += 0.5 * (ax * by + ay * bx)
    # Forward-sign evidence (step 2b): horizontal acceleration a quarter step ago against the vertical now, minus
    # horizontal now against vertical a quarter step ago; along AP this is positive (AP leads vertical).
    jq = st.ring_pos - max(1, (step_lag + 2) // 4)
    if jq < 0:
        jq += ring_acc.shape[0]
    qx, qy = c * ring_acc[jq, 0] + sn * ring_acc[jq, 1], -sn * ring_acc[jq, 0] + c * ring_acc[jq, 1]
    st.sign_cov_ref_sum_m2_s4[0] += qx * dev[2] - ax * ring_acc[jq, 2]
    st.sign_cov_ref_sum_m2_s4[1] += qy * dev[2] - ay * ring_acc[jq, 2]
    hor = st.hor_cov_ref_sum_m2_s4
    hor[0] += ax * ax
    hor[1] += ay * ay
    hor[2] += ax * ay
    st.vertical_sq_sum_m2_s4 += dev[2] * dev[2]


@njit(cache=True, inline="always")
def _sign_evidence(st, c, sn):
    """Forward-sign evidence along the horizontal direction (c, sn) of the reference frame: the quarter-step
    cross-covariance over 2·√(var_AP · var_V), so a pure quarter-period lead reads 1 (-1..1)."""
    hor = st.hor_cov_ref_sum_m2_s4
    var_ap = c * c * hor[0] + sn * sn * hor[1] + 2.0 * c * sn * hor[2]
    norm = 2.0 * math.sqrt(max(var_ap, 0.0) * st.vertical_sq_sum_m2_s4)
    if norm <= 0.0:
        return 0.0
    return (st.sign_cov_ref_sum_m2_s4[0] * c + st.sign_cov_ref_sum_m2_s4[1] * sn) / norm


@njit(cache=True, inline="always")
def _forward_in_ref(s, st):
    """The forward direction (cos, sin) in the reference-heading frame: the major axis of the lag-one-step
    covariance (the eigenvector of its largest, AP, eigenvalue), with its sign from the decided direction; until
    that is decided, nearest the reference axis. The sign is decided once: nearest the reference axis in the
    nominal frame, else from the quarter-step evidence once enough walking shows it clearly (step 2b)."""
    cov = st.lag_cov_ref_sum_m2_s4
    theta = 0.5 * math.atan2(2.0 * cov[2], cov[0] - cov[1])
    c, sn = math.cos(theta), math.sin(theta)
    # How clearly the axis stands out: the gap between the lag-one-step eigenvalues over the horizontal variance
    # (1 for a pure AP repeat every step and ML reversal, 0 for no step-periodic structure).
    gap = 2.0 * math.sqrt(0.25 * (cov[0] - cov[1]) ** 2 + cov[2] * cov[2])
    variance = st.hor_cov_ref_sum_m2_s4[0] + st.hor_cov_ref_sum_m2_s4[1]
    st.axis_evidence = min(1.0, gap / variance) if variance > 0.0 else 0.0
    if st.sign_decided and c * st.fwd_dir_ref[0] + sn * st.fwd_dir_ref[1] < 0.0:
        c, sn = -c, -sn
    evidence = _sign_evidence(st, c, sn)
    if not st.sign_decided and s.nominal == 0 and evidence < 0.0:
        # Provisional: the sign the evidence favours so far, so that the frame rarely turns over at the decision.
        c, sn, evidence = -c, -sn, -evidence
    if not st.sign_decided and (s.nominal == 1 or (st.walk_count >= s.sign_walk_samples
                                                    and abs(evidence) >= s.sign_min_evidence)):
        if s.nominal == 0 and evidence < 0.0:
            c, sn, evidence = -c, -sn, -evidence
        st.fwd_dir_ref[0], st.fwd_dir_ref[1] = c, sn
        st.sign_decided = True
    st.sign_evidence = evidence
    return c, sn


@njit(cache=True, inline="always")
def _update_alignment(s, st):
    """Pelvis axes in sensor coordinates from what is known so far (see the module docstring)."""
    if s.given == 2:
        return
    walk_up = st.ref_axes_sensor_sum[:, 2]
    if s.given == 1:
        _copy3(st.up, s.given_up)
        st.vertical_source = VERTICAL_GIVEN
    elif st.has_stand and not (st.walk_count >= s.vertical_walk_samples
                               and _cos_between(st.stand_sum, walk_up) < s.stand_walk_min_cos):
        _copy3(st.up, st.stand_sum)
        st.vertical_source = VERTICAL_STAND
    elif st.walk_count >= s.vertical_walk_samples:
        # No stand, or a "stand" far from the walking posture: it was sitting or lying, not neutral standing.
        _copy3(st.up, walk_up)
        st.vertical_source = VERTICAL_WALK
    else:
        st.vertical_source = VERTICAL_NONE
        return
    # The forward axis in use before this sample (sensor x while there was none), to notice it jump.
    p0, p1, p2 = 1.0, 0.0, 0.0
    if st.vertical_source != VERTICAL_NONE:
        p0, p1, p2 = st.forward[0], st.forward[1], st.forward[2]
    _normalize3(st.up)
    up = st.up
    fwd = st.forward
    st.yaw_from_walk = st.walk_count >= s.yaw_walk_samples
    if st.yaw_from_walk:
        c, sn = _forward_in_ref(s, st)
        for k in range(3):
            fwd[k] = st.ref_axes_sensor_sum[k, 0] * c + st.ref_axes_sensor_sum[k, 1] * sn
    elif st.has_x_ref:
        _copy3(fwd, st.x_ref)
    else:
        fwd[0], fwd[1], fwd[2] = 1.0, 0.0, 0.0
    dot = fwd[0] * up[0] + fwd[1] * up[1] + fwd[2] * up[2]
    for k in range(3):
        fwd[k] -= dot * up[k]
    _normalize3(fwd)
    st.left[0] = up[1] * fwd[2] - up[2] * fwd[1]
    st.left[1] = up[2] * fwd[0] - up[0] * fwd[2]
    st.left[2] = up[0] * fwd[1] - up[1] * fwd[0]
    if p0 * fwd[0] + p1 * fwd[1] + p2 * fwd[2] < _COS_30:
        st.frame_jump_at = st.samples - 1


@njit(cache=True, inline="always")
def _track_heading(st, ring_heading, psi, had_alignment, psi_before):
    """Unwrap the pelvis heading psi (rad) into st.heading_rad."""
    if not st.has_heading:
        st.heading_rad = psi
        st.has_heading = True
    else:
        if had_alignment:
            # The alignment was refined at this sample: move the heading history with it, so that the walking
            # direction (its average) follows at once instead of leaving a step in the rotation for a stride.
            shift = _wrap(psi - psi_before)
            if shift != 0.0:
                st.heading_rad += shift
                st.heading_wrapped = _wrap(st.heading_wrapped + shift)
                for k in range(ring_heading.shape[0]):
                    ring_heading[k] += shift
        st.heading_rad += _wrap(psi - st.heading_wrapped)
    st.heading_wrapped = psi


@njit(cache=True, inline="always")
def _walk_heading(s, st, ring_heading):
    """The walking direction (rad): the heading averaged over the last stride."""
    H = ring_heading.shape[0]
    if st.walking:
        st.head_window = min(2 * st.step_lag, H)
    elif st.head_window == 0:
        st.head_window = min(s.default_stride_samples, H)
    ring_heading[st.head_pos] = st.heading_rad
    st.head_pos = st.head_pos + 1 if st.head_pos + 1 < H else 0
    if st.head_count < H:
        st.head_count += 1
    count = min(st.head_window, st.head_count)
    # The last `count` headings, newest first, relative to the current one (keeps the sum small and exact); two
    # plain loops for the ring's wrap instead of a branch per term.
    now = st.heading_rad
    total = 0.0
    newest = st.head_pos - 1
    for j in range(newest, max(newest - count, -1), -1):
        total += ring_heading[j] - now
    for j in range(H - 1, H - 1 - (count - min(count, st.head_pos)), -1):
        total += ring_heading[j] - now
    walk_heading = st.heading_rad + total / count
    st.walk_heading_rad = walk_heading
    return walk_heading


@njit(cache=True, inline="always")
def _write_angles(s, st, ring_heading, R, acc_earth, had_alignment, psi_before, angles_pelvis_deg, acc_level_m_s2,
                  i):
    """Baker angles of R_pelvis_to_earth = R_sensor_to_earth · R_sensor_to_pelvisᵀ (its columns are the pelvis axes
    in earth coordinates: X anterior, Y left, Z superior), rotation against the walking direction, and the
    acceleration in the level frame of the walking direction, for sample i."""
    xz = R[2, 0] * st.forward[0] + R[2, 1] * st.forward[1] + R[2, 2] * st.forward[2]
    yz = R[2, 0] * st.left[0] + R[2, 1] * st.left[1] + R[2, 2] * st.left[2]
    zz = R[2, 0] * st.up[0] + R[2, 1] * st.up[1] + R[2, 2] * st.up[2]
    obliquity = math.asin(min(1.0, max(-1.0, yz)))
    tilt = math.atan2(-xz, zz)
    _track_heading(st, ring_heading, _heading(R, st.left), had_alignment, psi_before)
    walk_heading = _walk_heading(s, st, ring_heading)
    angles_pelvis_deg[i, 0] = math.degrees(st.heading_rad - walk_heading)
    angles_pelvis_deg[i, 1] = math.degrees(obliquity)
    angles_pelvis_deg[i, 2] = math.degrees(tilt)
    c, sn = math.cos(walk_heading), math.sin(walk_heading)
    acc_level_m_s2[i, 0] = c * acc_earth[0] + sn * acc_earth[1]
    acc_level_m_s2[i, 1] = -sn * acc_earth[0] + c * acc_earth[1]
    acc_level_m_s2[i, 2] = acc_earth[2]


@njit(cache=True, inline="always")
def _is_aligned(s, st):
    """The full alignment is in use: given, or vertical and forward (with its sign) from data."""
    return s.given == 2 or (st.vertical_source != VERTICAL_NONE and st.yaw_from_walk and st.sign_decided)


@njit(cache=True, inline="always")
def _write_axes(s, st, axes_sensor_to_pelvis, i):
    """R_sensor_to_pelvis in use at sample i (the identity while no vertical is known)."""
    if st.vertical_source != VERTICAL_NONE or s.given == 2:
        for k in range(3):
            axes_sensor_to_pelvis[i, 0, k] = st.forward[k]
            axes_sensor_to_pelvis[i, 1, k] = st.left[k]
            axes_sensor_to_pelvis[i, 2, k] = st.up[k]
    else:
        for k in range(3):
            for m in range(3):
                axes_sensor_to_pelvis[i, k, m] = 1.0 if k == m else 0.0


@njit(cache=True)
def pelvis_update(settings, state, ring_acc, vertical_autocorr, ring_heading, q_sensor_to_earth, acc_sensor_m_s2,
                  angles_pelvis_deg, acc_level_m_s2, axes_sensor_to_pelvis):
    """The pelvis stage kernel: one pass over a block, writing angles and level acceleration per sample.

    settings, state: one record each (SETTINGS_DTYPE, STATE_DTYPE). ring_acc (L, 3): recent earth-frame
    acceleration, mean removed (m/s²); vertical_autocorr (L,): autocorrelation of its vertical part per lag
    (m²/s⁴); ring_heading (H,): recent unwrapped pelvis headings (rad). axes_sensor_to_pelvis (n, 3, 3): per
    sample, R_sensor_to_pelvis in use (rows: anterior, left, up in sensor coordinates; the identity while no
    vertical is known). Rows with a non-finite input give NaN outputs and leave the state untouched (but for the
    sample count). Allocates nothing per sample.
    """
    s = settings[0]
    st = state[0]
    R = np.empty((3, 3))
    acc_earth = np.empty(3)
    dev = np.empty(3)
    for i in range(q_sensor_to_earth.shape[0]):
        sample = st.samples
        st.samples += 1
        if not _sensor_to_earth(q_sensor_to_earth, acc_sensor_m_s2, i, s.gravity_m_s2, R, acc_earth):
            _write_nan(angles_pelvis_deg, acc_level_m_s2, i)
            _write_axes(s, st, axes_sensor_to_pelvis, i)
            continue
        _track_still(s, st, acc_sensor_m_s2[i, 0], acc_sensor_m_s2[i, 1], acc_sensor_m_s2[i, 2], R, acc_earth)
        step_lag = _detect_walking(s, st, ring_acc, vertical_autocorr, acc_earth, dev)
        if st.walking and s.given != 2:  # the AP/ML statistics are not needed when the alignment is given
            _accumulate_ap_ml(s, st, ring_acc, R, dev, step_lag)
        st.ring_pos = st.ring_pos + 1 if st.ring_pos + 1 < ring_acc.shape[0] else 0
        st.finite_samples += 1

        had_alignment = st.vertical_source != VERTICAL_NONE or s.given == 2
        psi_before = _heading(R, st.left) if had_alignment else 0.0
        _update_alignment(s, st)
        if st.aligned_since < 0 and _is_aligned(s, st):
            st.aligned_since = sample
        _write_axes(s, st, axes_sensor_to_pelvis, i)
        if st.vertical_source == VERTICAL_NONE and s.given != 2:
            _write_nan(angles_pelvis_deg, acc_level_m_s2, i)
            continue
        _write_angles(s, st, ring_heading, R, acc_earth, had_alignment, psi_before, angles_pelvis_deg,
                      acc_level_m_s2, i)


# ------------------------------------------------------------------------------------------------ the mounting
# What the alignment found (or was given), and whether it can name a side: a wrong side is worse than a refusal.
# ``source``: ``found`` (from the data, any rotation), ``given`` (the sensor frame declared to be the pelvis frame
# within ±45°: our clip as designed, or a file remapped with ``--axes``), ``calibrated`` (q_sensor_to_pelvis from
# hipcheck.calibration.mounting). ``status``: ``ok`` or the reason no side can be named.

SOURCE_FOUND, SOURCE_GIVEN, SOURCE_CALIBRATED = "found", "given", "calibrated"
STATUS_OK = "ok"
STATUS_NO_VERTICAL = "no_vertical"  # neither a stand nor enough walking: up is unknown
STATUS_NO_WALKING = "no_walking"  # too little walking for the forward axis
STATUS_TOO_FEW_STEPS = "too_few_steps"  # the axis is known but too few steps to tell forward from backward
STATUS_AMBIGUOUS = "ambiguous"  # enough walking, but the forward-sign evidence is too weak
STATUS_CONFLICTING = "conflicting"  # the evidence turned against the forward sign decided earlier

_ASK = "pass --axes for the file's axes or calibrate the mounting (hipcheck.calibration.mounting)"


@dataclass(frozen=True)
class Mounting:
    """The mounting in use at the end of a stream.

    q_sensor_to_pelvis: (w, x, y, z), NaN while up is unknown. forward_axis_evidence: how clearly the
    lag-one-step covariance separates AP from ML, (λ_AP − λ_ML) over the horizontal variance (0..1: 1 when AP
    repeats every step and ML reverses; NaN before the axis comes from walking). forward_sign_evidence: the quarter-step cross-covariance of AP against vertical
    acceleration, normalised to -1..1 (+ = the forward in use leads the vertical by a quarter step, as walking
    does); the sign is decided once it reaches ``min_sign_evidence`` after ``sign_walk_s`` of walking.
    """

    q_sensor_to_pelvis: np.ndarray
    source: str
    status: str
    vertical_source: str  # 'none', 'stand', 'walking' or 'given'
    walking_s: float
    forward_axis_evidence: float
    forward_sign_evidence: float
    min_sign_evidence: float
    sign_walk_s: float
    yaw_walk_s: float

    @property
    def ok(self) -> bool:
        """Sides can be named on this mounting."""
        return self.status == STATUS_OK

    @property
    def confidence(self) -> float:
        """One figure 0..1: the weaker of the axis and sign evidence (1 for a calibrated mounting; for given axes
        the axis evidence alone, since the sign was declared)."""
        if self.source == SOURCE_CALIBRATED:
            return 1.0
        figures = [self.forward_axis_evidence]
        if self.source == SOURCE_FOUND:
            figures.append(self.forward_sign_evidence)
        if not all(math.isfinite(f) for f in figures):
            return 0.0
        return float(min(1.0, max(0.0, min(figures))))

    @property
    def reason(self) -> str:
        """Why sides cannot be named, and what to do; empty when they can."""
        walked = f"{self.walking_s:.1f} s of walking found"
        if self.status == STATUS_NO_VERTICAL:
            why = "neither a still stand nor enough walking to find which way is up"
        elif self.status == STATUS_NO_WALKING:
            why = f"{walked}, {self.yaw_walk_s:g} s needed to find which way is forward"
        elif self.status == STATUS_TOO_FEW_STEPS:
            why = f"{walked}, {self.sign_walk_s:g} s needed to tell forward from backward"
        elif self.status == STATUS_AMBIGUOUS:
            why = (f"the walking does not show which way is forward (sign evidence {self.forward_sign_evidence:+.2f},"
                   f" at least ±{self.min_sign_evidence:g} needed)")
        elif self.status == STATUS_CONFLICTING:
            why = (f"the forward direction found early in the walk is contradicted by the rest of it (sign evidence "
                   f"{self.forward_sign_evidence:+.2f})")
        else:
            return ""
        return f"the sensor's mounting cannot be found from this recording: {why}; {_ASK}"


def mounting_to_dict(mounting: Mounting) -> dict:
    """JSON-ready: the ``mounting`` object of ``hipcheck analyze --json`` (NaN becomes None)."""
    def number(value: float, digits: int = 3):
        return round(float(value), digits) if math.isfinite(value) else None

    q = mounting.q_sensor_to_pelvis
    return {
        "q_sensor_to_pelvis": [number(v, 6) for v in q] if np.all(np.isfinite(q)) else None,
        "source": mounting.source,
        "status": mounting.status,
        "confidence": number(mounting.confidence),
        "forward_axis_evidence": number(mounting.forward_axis_evidence),
        "forward_sign_evidence": number(mounting.forward_sign_evidence),
        "vertical_source": mounting.vertical_source,
        "walking_s": number(mounting.walking_s, 2),
        "reason": mounting.reason or None,
    }


def to_pelvis_frame(axes_sensor_to_pelvis: np.ndarray, q_sensor_to_earth: np.ndarray, *vectors_sensor: np.ndarray):
    """Per sample, the orientation of the pelvis frame and sensor-frame vectors turned into it:
    ``(q_pelvis_to_earth, *vectors_pelvis)``. axes_sensor_to_pelvis (n, 3, 3) as ``PelvisTracker.update`` writes
    it. Stages that read a side from a sensor axis (the gait events' lateral acceleration) then read it from the
    pelvis's left axis, whatever the mounting."""
    axes = np.ascontiguousarray(axes_sensor_to_pelvis, dtype=np.float64)
    q_pelvis_to_earth = np.empty((len(axes), 4))
    _pelvis_orientation(axes, np.ascontiguousarray(q_sensor_to_earth, dtype=np.float64), q_pelvis_to_earth)
    turned = [np.einsum("nij,nj->ni", axes_sensor_to_pelvis, v) for v in vectors_sensor]
    return (q_pelvis_to_earth, *turned)


@njit(cache=True)
def _pelvis_orientation(axes_sensor_to_pelvis, q_sensor_to_earth, q_pelvis_to_earth):
    """Per sample q_pelvis_to_earth = q_sensor_to_earth ⊗ conj(q_sensor_to_pelvis), the latter from the axes by
    Shepperd's method as ``hipcheck.rotation.quat_from_matrix`` (w ≥ 0, unit). The axes change at nearly every
    sample while walking refines them: per sample in numpy this was a sixth of an hour's analysis."""
    for i in range(axes_sensor_to_pelvis.shape[0]):
        R = axes_sensor_to_pelvis[i]
        trace = R[0, 0] + R[1, 1] + R[2, 2]
        c0 = 1.0 + trace
        c1 = 1.0 + R[0, 0] - R[1, 1] - R[2, 2]
        c2 = 1.0 - R[0, 0] + R[1, 1] - R[2, 2]
        c3 = 1.0 - R[0, 0] - R[1, 1] + R[2, 2]
        best, top = 0, c0
        if c1 > top:
            best, top = 1, c1
        if c2 > top:
            best, top = 2, c2
        if c3 > top:
            best, top = 3, c3
        sq = 2.0 * math.sqrt(max(top, 1e-300))
        d21, d02, d10 = R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]
        s01, s02, s12 = R[0, 1] + R[1, 0], R[0, 2] + R[2, 0], R[1, 2] + R[2, 1]
        if best == 0:
            w, x, y, z = sq / 4, d21 / sq, d02 / sq, d10 / sq
        elif best == 1:
            w, x, y, z = d21 / sq, sq / 4, s01 / sq, s02 / sq
        elif best == 2:
            w, x, y, z = d02 / sq, s01 / sq, sq / 4, s12 / sq
        else:
            w, x, y, z = d10 / sq, s02 / sq, s12 / sq, sq / 4
        if w < 0.0:
            w, x, y, z = -w, -x, -y, -z
        norm = math.sqrt(w * w + x * x + y * y + z * z)
        # conj(q_sensor_to_pelvis), unit
        w, x, y, z = w / norm, -x / norm, -y / norm, -z / norm
        pw, px, py, pz = q_sensor_to_earth[i, 0], q_sensor_to_earth[i, 1], q_sensor_to_earth[i, 2], \
            q_sensor_to_earth[i, 3]
        q_pelvis_to_earth[i, 0] = pw * w - px * x - py * y - pz * z
        q_pelvis_to_earth[i, 1] = pw * x + px * w + py * z - pz * y
        q_pelvis_to_earth[i, 2] = pw * y - px * z + py * w + pz * x
        q_pelvis_to_earth[i, 3] = pw * z + px * y - py * x + pz * w


# ------------------------------------------------------------------------------------------------ Python faces


class PelvisTracker:
    """Streaming pelvis stage: ``update(q_sensor_to_earth (n, 4), acc_sensor_m_s2 (n, 3))`` →
    ``(angles_pelvis_deg (n, 3) = rotation, obliquity, tilt; acc_level_m_s2 (n, 3))``.

    alignment: ``q_sensor_to_pelvis`` from a calibration (``hipcheck.calibration.mounting``); None = automatic
    (module docstring). vertical_sensor: the pelvis superior axis in sensor coordinates if only that is known
    (a calibration stand); forward then comes from walking. settings: any of DEFAULT_SETTINGS.

    Readable state for plots and tests: ``alignment`` (q_sensor_to_pelvis, NaN until the vertical is known),
    ``aligned``, ``vertical_source`` ('none', 'stand', 'walking', 'given'), ``walking`` (at the last sample),
    ``walking_s`` (walking seen so far), ``step_time_s`` (latest step-lag estimate), ``walk_heading_deg``.
    """

    def __init__(self, fs_hz: float, alignment=None, *, vertical_sensor=None, nominal: bool = False, **settings):
        self.settings = make_settings(fs_hz, alignment=alignment, vertical_sensor=vertical_sensor, nominal=nominal,
                                      **settings)
        self.fs_hz = float(fs_hz)
        self.state = make_state(self.settings)
        L = int(self.settings["lag_max"][0]) + 1
        self._ring_acc = np.zeros((L, 3))
        self._vertical_autocorr = np.zeros(L)
        self._ring_heading = np.zeros(2 * L)

    def update(self, q_sensor_to_earth, acc_sensor_m_s2, axes_out=None) -> tuple[np.ndarray, np.ndarray]:
        """One block; axes_out (n, 3, 3), if given, receives R_sensor_to_pelvis in use per sample (the identity
        while no vertical is known): the pipeline turns the events stage's input into the pelvis frame with it."""
        q = np.ascontiguousarray(q_sensor_to_earth, dtype=np.float64)
        acc = np.ascontiguousarray(acc_sensor_m_s2, dtype=np.float64)
        if q.ndim != 2 or q.shape[1] != 4:
            raise InvalidValueError(f"q_sensor_to_earth has shape {q.shape}: expected (n, 4) quaternions (w, x, y, z)")
        if acc.shape != (len(q), 3):
            raise InvalidValueError(f"acc_sensor_m_s2 has shape {acc.shape}: expected ({len(q)}, 3), one row per "
                                    "quaternion")
        angles = np.empty((len(q), 3))
        acc_level = np.empty((len(q), 3))
        if axes_out is None:
            axes_out = np.empty((len(q), 3, 3))
        elif axes_out.shape != (len(q), 3, 3):
            raise InvalidValueError(f"axes_out has shape {axes_out.shape}: expected ({len(q)}, 3, 3)")
        if len(q):
            pelvis_update(self.settings, self.state, self._ring_acc, self._vertical_autocorr, self._ring_heading, q,
                          acc, angles, acc_level, axes_out)
        return angles, acc_level

    # -- readable state
    @property
    def alignment(self) -> np.ndarray:
        """q_sensor_to_pelvis (4,) in use (NaN until the vertical is known)."""
        st = self.state[0]
        if st["vertical_source"] == VERTICAL_NONE:
            return np.full(4, np.nan)
        return quat_from_matrix(np.stack([st["forward"], st["left"], st["up"]]))

    @property
    def aligned(self) -> bool:
        st = self.state[0]
        if self.settings[0]["given"] == 2:
            return True
        return bool(st["vertical_source"] != VERTICAL_NONE and st["yaw_from_walk"] and st["sign_decided"])

    @property
    def mounting(self) -> Mounting:
        """The mounting in use, how it was found and whether it can name sides (see Mounting)."""
        s, st = self.settings[0], self.state[0]
        source = SOURCE_CALIBRATED if s["given"] == 2 else (SOURCE_GIVEN if s["nominal"] else SOURCE_FOUND)
        walking_s = self.walking_s
        if s["given"] == 2:
            status = STATUS_OK
        elif st["vertical_source"] == VERTICAL_NONE:
            status = STATUS_NO_VERTICAL
        elif walking_s < self.yaw_walk_s:
            status = STATUS_NO_WALKING
        elif not st["sign_decided"]:
            status = STATUS_TOO_FEW_STEPS if st["walk_count"] < s["sign_walk_samples"] else STATUS_AMBIGUOUS
        elif not s["nominal"] and st["sign_evidence"] <= -s["sign_min_evidence"]:
            status = STATUS_CONFLICTING  # the evidence turned against the sign decided early on
        else:
            status = STATUS_OK
        from_data = s["given"] != 2 and st["yaw_from_walk"]
        return Mounting(q_sensor_to_pelvis=self.alignment, source=source, status=status,
                        vertical_source=self.vertical_source, walking_s=walking_s,
                        forward_axis_evidence=float(st["axis_evidence"]) if from_data else float("nan"),
                        forward_sign_evidence=float(st["sign_evidence"]) if from_data else float("nan"),
                        min_sign_evidence=float(s["sign_min_evidence"]),
                        sign_walk_s=float(s["sign_walk_samples"]) / self.fs_hz, yaw_walk_s=self.yaw_walk_s)

    @property
    def aligned_since(self) -> int:
        """Sample index from which the full alignment was in use (-1: not yet). Angles before it used the nominal
        forward axis or no vertical, so strides that start earlier are not measured on the final frame."""
        return int(self.state[0]["aligned_since"])

    @property
    def frame_jump_at(self) -> int:
        """Last sample at which the forward axis in use jumped by more than 30° (-1: never): the walking estimate
        replaced a reference axis far from forward, or a provisional sign reversed. Anything that read a side from
        the frame before it (the gait events' lateral acceleration) is suspect. A clip worn as designed (within
        ~20°) never jumps."""
        return int(self.state[0]["frame_jump_at"])

    @property
    def vertical_source(self) -> str:
        return VERTICAL_NAMES[int(self.state[0]["vertical_source"])]

    @property
    def walking(self) -> bool:
        return bool(self.state[0]["walking"])

    @property
    def walking_s(self) -> float:
        return float(self.state[0]["walk_count"]) / self.fs_hz

    @property
    def yaw_walk_s(self) -> float:
        """Walking needed before the forward axis comes from data (s)."""
        return float(self.settings[0]["yaw_walk_samples"]) / self.fs_hz

    @property
    def step_time_s(self) -> float:
        lag = int(self.state[0]["step_lag"])
        return lag / self.fs_hz if lag else float("nan")

    @property
    def walk_heading_deg(self) -> float:
        return math.degrees(float(self.state[0]["walk_heading_rad"]))


def pelvis_angles(q_sensor_to_earth, acc_sensor_m_s2, fs_hz: float, alignment=None, *,
                  offline: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Whole-array pelvis stage: the same kernel as PelvisTracker, once over the recording.

    offline=False gives exactly what the live tracker gives (NaN before the vertical is known, nominal forward
    until enough walking). offline=True first estimates the alignment over the whole recording, then applies it
    to every sample (for review: no start-up period); it raises ValueError if the recording cannot give one.
    """
    if offline and alignment is None:
        probe = PelvisTracker(fs_hz)
        probe.update(q_sensor_to_earth, acc_sensor_m_s2)
        if not probe.aligned:
            raise InvalidValueError(
                                    f"no alignment from this recording (vertical: {probe.vertical_source}, walking found: "
                                    f"{probe.walking_s:.1f} s of the {probe.yaw_walk_s:.1f} s needed); "
                                    "record a stand and a short walk, or pass alignment= from hipcheck.calibration.mounting")
        alignment = probe.alignment
    return PelvisTracker(fs_hz, alignment).update(q_sensor_to_earth, acc_sensor_m_s2)
