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

Automatic alignment (no calibration), after Moe-Nilssen (1998, "A new method for evaluating motor control in gait
under real-life environmental conditions. Part 1: The instrument", Clin Biomech 13:320-327: the vertical of a trunk
accelerometer from its static reading) and the usual AP/ML decomposition of lower-back acceleration
(Zijlstra & Hof 2003, Gait & Posture 18(2):1-10):

1. **Vertical.** From the longest still, upright period before walking starts (a later one counts once it is as
   long, or ``stand_keep_s`` = 5 s: a calm moment on one leg is not neutral standing; without a still period,
   quasi-static stance: within 0.6 m/s² of the recent mean for 1.5 s): the mean up direction of the
   orientation input, in sensor coordinates, is the pelvis superior axis of the wearer's neutral posture. The
   orientation is used rather than the raw acceleration so that the alignment matches what it is applied to: an
   accelerometer bias tilts a 6D filter's inclination, and the same bias then cancels (with a bias-free
   orientation, e.g. the simulator's truth, the raw acceleration would leave the bias as a ~1° offset). Without such a period, the vertical is the mean orientation over walking (then tilt is relative to
   the mean walking posture, not to standing, and asymmetric drops bias obliquity by about a sixth of their
   difference; see docs/angles.md).
2. **Forward.** During walking, forward (AP) acceleration of the pelvis repeats every step while lateral (ML)
   acceleration repeats every stride, i.e. reverses every step. So the horizontal acceleration's covariance at a
   lag of one step, ``E[a(t) a(t − step)ᵀ]``, is positive along AP and negative along ML: its major axis is the
   walking direction whatever the ratio of AP to ML amplitude (a plain principal-axis fit fails when sway makes
   the two variances equal). The step lag is the peak of the vertical acceleration's autocorrelation, which also
   tells walking from other movement. The covariance is accumulated in a level frame that turns with the sensor
   (the heading of a fixed sensor axis), so turns and the drifting 6D heading do not matter; the axis's sign is
   chosen nearest the sensor's nominal x (mountings are within ~20° of nominal, far inside ±90°).
3. **Walking direction.** The pelvis heading averaged over the last stride (two step lags): the stride-periodic
   pelvic rotation averages out, turns and the 6D heading's drift pass (with half a stride of lag).

Output before the alignment is ready: NaN rows until the vertical is known (about 0.75 s into a still start, or
3 s of walking without one). Between then and ``yaw_walk_s`` (1.5 s) of detected walking the forward axis is the
nominal one (the sensor x axis, levelled); from then on the walking estimate, refined with every walking sample.
``aligned`` is True once both come from data (or a given alignment). All of this is decided sample by sample in one
kernel, so the output does not depend on block sizes.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from hipcheck.errors import InvalidValueError
from hipcheck.rotation import quat_from_matrix, matrix_from_quat, quat_normalize
from hipcheck.units import GRAVITY_M_S2



__all__ = ["PelvisTracker", "pelvis_angles", "SETTINGS_DTYPE", "STATE_DTYPE"]

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
    ("still_alpha", np.float64),  # EMA weight of the stillness reference (0.25 s)
    ("mean_alpha", np.float64),  # EMA weight of the mean removed before correlating (0.5 s)
    ("stats_alpha", np.float64),  # EMA weight of the lagged correlations (2 s)
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
])

VERTICAL_NONE, VERTICAL_STAND, VERTICAL_WALK, VERTICAL_GIVEN = 0, 1, 2, 3
VERTICAL_NAMES = ("none", "stand", "walking", "given")

STATE_DTYPE = np.dtype([
    ("n", np.int64),  # samples seen (finite ones)
    ("samples", np.int64),  # samples seen, all of them: the stream's sample index
    ("aligned_since", np.int64),  # first sample with the full alignment (forward from walking or given); -1
    ("acc_ema", np.float64, (3,)),  # stillness reference, sensor frame
    ("still_run", np.int64),
    ("still_sum", np.float64, (3,)),  # the same over the current still run
    ("quasi_run", np.int64),  # the same for quasi-static stance
    ("quasi_sum", np.float64, (3,)),
    ("stand_run", np.int64),  # length of the run that gave the stand (0: none)
    ("stand_strict", np.bool_),  # the stand came from a still (not quasi-static) run
    ("stand_sum", np.float64, (3,)),  # summed up direction (sensor frame) over the chosen still period
    ("has_stand", np.bool_),
    ("walked", np.bool_),  # walking seen: the stand is frozen
    ("mean_earth", np.float64, (3,)),
    ("ring_pos", np.int64),
    ("rzz0", np.float64),
    ("step_lag", np.int64),  # samples; 0 = unknown
    ("walking", np.bool_),
    ("walk_corr", np.float64),
    ("walk_count", np.int64),
    ("x_ref", np.float64, (3,)),  # the sensor axis whose heading the AP/ML statistics turn with
    ("has_x_ref", np.bool_),
    ("P", np.float64, (3, 3)),  # Σ R_sensor_to_earthᵀ Rz(ψ_ref): reference-heading frame axes in sensor coords
    ("M", np.float64, (3,)),  # Σ lag-one-step horizontal covariance in the reference frame: xx, yy, xy
    ("vertical_source", np.int8),
    ("up", np.float64, (3,)),  # current alignment: pelvis axes in sensor coordinates
    ("forward", np.float64, (3,)),
    ("left", np.float64, (3,)),
    ("yaw_from_walk", np.bool_),
    ("has_heading", np.bool_),
    ("heading_wrapped", np.float64),  # rad
    ("heading_rad", np.float64),  # unwrapped pelvis heading
    ("head_pos", np.int64),
    ("head_count", np.int64),
    ("head_window", np.int64),
    ("walk_heading_rad", np.float64),
])


@njit(cache=True)
def _normalize3(v):
    norm = math.sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2])
    if norm > 0.0:
        v[0] /= norm
        v[1] /= norm
        v[2] /= norm
    return norm


@njit(cache=True)
def _wrap(angle_rad):
    """Angle wrapped to [-π, π)."""
    return angle_rad - 2.0 * math.pi * math.floor((angle_rad + math.pi) / (2.0 * math.pi))


@njit(cache=True)
def _heading(R, left):
    """Baker rotation (rad) of the pelvis whose left axis is ``left`` (sensor coordinates): atan2(−Y_x, Y_y)."""
    yx = R[0, 0] * left[0] + R[0, 1] * left[1] + R[0, 2] * left[2]
    yy = R[1, 0] * left[0] + R[1, 1] * left[1] + R[1, 2] * left[2]
    return math.atan2(-yx, yy)


@njit(cache=True)
def _cos_between(a, b):
    na = math.sqrt(a[0] * a[0] + a[1] * a[1] + a[2] * a[2])
    nb = math.sqrt(b[0] * b[0] + b[1] * b[1] + b[2] * b[2])
    if na == 0.0 or nb == 0.0:
        return 1.0
    return (a[0] * b[0] + a[1] * b[1] + a[2] * b[2]) / (na * nb)


@njit(cache=True)
def _update_alignment(settings, st):
    """Pelvis axes in sensor coordinates from what is known so far (see the module docstring)."""
    if settings.given == 2:
        return
    if settings.given == 1:
        st.up[:] = settings.given_up
        st.vertical_source = VERTICAL_GIVEN
    elif st.has_stand and not (st.walk_count >= settings.vertical_walk_samples
                               and _cos_between(st.stand_sum, st.P[:, 2]) < settings.stand_walk_min_cos):
        st.up[:] = st.stand_sum
        st.vertical_source = VERTICAL_STAND
    elif st.walk_count >= settings.vertical_walk_samples:
        # No stand, or a "stand" far from the walking posture: it was sitting or lying, not neutral standing.
        st.up[:] = st.P[:, 2]
        st.vertical_source = VERTICAL_WALK
    else:
        st.vertical_source = VERTICAL_NONE
        return
    _normalize3(st.up)
    up = st.up
    fwd = st.forward
    st.yaw_from_walk = st.walk_count >= settings.yaw_walk_samples
    if st.yaw_from_walk:
        # Major axis of the lag-one-step covariance: the eigenvector of its largest (AP, positive) eigenvalue,
        # taken with cos ≥ 0, i.e. on the side of the reference axis (nominal forward).
        theta = 0.5 * math.atan2(2.0 * st.M[2], st.M[0] - st.M[1])
        c, s = math.cos(theta), math.sin(theta)
        for k in range(3):
            fwd[k] = st.P[k, 0] * c + st.P[k, 1] * s
    elif st.has_x_ref:
        fwd[:] = st.x_ref
    else:
        fwd[0], fwd[1], fwd[2] = 1.0, 0.0, 0.0
    dot = fwd[0] * up[0] + fwd[1] * up[1] + fwd[2] * up[2]
    for k in range(3):
        fwd[k] -= dot * up[k]
    _normalize3(fwd)
    st.left[0] = up[1] * fwd[2] - up[2] * fwd[1]
    st.left[1] = up[2] * fwd[0] - up[0] * fwd[2]
    st.left[2] = up[0] * fwd[1] - up[1] * fwd[0]


@njit(cache=True)
def pelvis_update(settings, state, ring_acc, rzz, ring_heading, q_sensor_to_earth, acc_sensor_m_s2,
                  angles_pelvis_deg, acc_level_m_s2):
    """The pelvis stage kernel: one pass over a block, writing angles and level acceleration per sample.

    settings, state: one record each (SETTINGS_DTYPE, STATE_DTYPE). ring_acc (L, 3): recent earth-frame
    acceleration, mean removed; rzz (L,): vertical autocorrelation per lag; ring_heading (H,): recent unwrapped
    pelvis headings. Rows with a non-finite input give NaN outputs and leave the state untouched.
    """
    s = settings[0]
    st = state[0]
    L = ring_acc.shape[0]
    H = ring_heading.shape[0]
    g = s.gravity_m_s2
    R = np.empty((3, 3))
    a_earth = np.empty(3)
    dev = np.empty(3)
    for i in range(q_sensor_to_earth.shape[0]):
        sample = st.samples
        st.samples += 1
        qw, qx, qy, qz = q_sensor_to_earth[i, 0], q_sensor_to_earth[i, 1], q_sensor_to_earth[i, 2], \
            q_sensor_to_earth[i, 3]
        f0, f1, f2 = acc_sensor_m_s2[i, 0], acc_sensor_m_s2[i, 1], acc_sensor_m_s2[i, 2]
        qn = math.sqrt(qw * qw + qx * qx + qy * qy + qz * qz)
        if not (math.isfinite(qn) and qn > 0.5 and math.isfinite(f0 + f1 + f2)):
            for k in range(3):
                angles_pelvis_deg[i, k] = np.nan
                acc_level_m_s2[i, k] = np.nan
            continue
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
            a_earth[k] = R[k, 0] * f0 + R[k, 1] * f1 + R[k, 2] * f2
        a_earth[2] -= g
        first = st.n == 0

        # -- still, upright periods before walking: candidates for the vertical
        if first:
            st.acc_ema[0], st.acc_ema[1], st.acc_ema[2] = f0, f1, f2
            st.mean_earth[:] = a_earth
        d = math.sqrt((f0 - st.acc_ema[0]) ** 2 + (f1 - st.acc_ema[1]) ** 2 + (f2 - st.acc_ema[2]) ** 2)
        st.acc_ema[0] += s.still_alpha * (f0 - st.acc_ema[0])
        st.acc_ema[1] += s.still_alpha * (f1 - st.acc_ema[1])
        st.acc_ema[2] += s.still_alpha * (f2 - st.acc_ema[2])
        if not st.walked and s.given == 0:
            fn = math.sqrt(f0 * f0 + f1 * f1 + f2 * f2)
            upright_g = abs(fn - g) < 0.1 * g
            if d < s.still_dev_m_s2 and upright_g:
                # Sum the fusion's up direction in sensor coordinates (the last row of R), not the raw
                # acceleration: the alignment must match the orientation it is applied to.
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
            # The stand is the longest still period so far (a later one counts once it is stand_keep_samples
            # long): a short still moment later, e.g. on one leg, is not the neutral posture. Quasi-static stance
            # (postural sway above still_dev) gives it only while no still period has, and is replaced by one on
            # the same terms.
            keep = min(st.stand_run, s.stand_keep_samples)
            if st.still_run >= s.still_min_samples and st.still_run >= keep:
                ss = st.still_sum
                cos_up = ss[2] / math.sqrt(ss[0] * ss[0] + ss[1] * ss[1] + ss[2] * ss[2])
                if cos_up >= s.upright_min_cos:
                    st.stand_sum[:] = ss
                    st.has_stand = True
                    st.stand_strict = True
                    st.stand_run = st.still_run
            elif not st.stand_strict and st.quasi_run >= s.quasi_min_samples and st.quasi_run >= keep:
                ss = st.quasi_sum
                cos_up = ss[2] / math.sqrt(ss[0] * ss[0] + ss[1] * ss[1] + ss[2] * ss[2])
                if cos_up >= s.upright_min_cos:
                    st.stand_sum[:] = ss
                    st.has_stand = True
                    st.stand_run = st.quasi_run

        # -- walking and its step lag: autocorrelation of vertical acceleration (mean removed)
        for k in range(3):
            st.mean_earth[k] += s.mean_alpha * (a_earth[k] - st.mean_earth[k])
            dev[k] = a_earth[k] - st.mean_earth[k]
        pos = st.ring_pos
        ring_acc[pos, 0], ring_acc[pos, 1], ring_acc[pos, 2] = dev[0], dev[1], dev[2]
        st.rzz0 += s.stats_alpha * (dev[2] * dev[2] - st.rzz0)
        top = min(s.lag_max, st.n)
        for k in range(1, top + 1):
            j = pos - k
            if j < 0:
                j += L
            rzz[k] += s.stats_alpha * (dev[2] * ring_acc[j, 2] - rzz[k])
        best = 0
        for k in range(s.lag_min + 1, min(s.lag_max, top)):
            if rzz[k] >= rzz[k - 1] and rzz[k] >= rzz[k + 1] and (best == 0 or rzz[k] > rzz[best]):
                best = k
        # Prefer the shortest lag nearly as good: at fast cadences the stride lag can be in range too.
        if best > 0:
            for k in range(s.lag_min + 1, best):
                if rzz[k] >= rzz[k - 1] and rzz[k] >= rzz[k + 1] and rzz[k] >= 0.85 * rzz[best]:
                    best = k
                    break
        st.walking = False
        st.walk_corr = 0.0
        if best > 0 and st.rzz0 > 0.0:
            st.walk_corr = rzz[best] / st.rzz0
            # A periodic step is anti-correlated at half its lag; a one-off movement (a rise) is not.
            st.walking = (st.rzz0 >= s.walk_min_var_m2_s4 and st.walk_corr >= s.walk_min_corr
                          and rzz[best // 2] < 0.0)
        if st.walking:
            st.step_lag = best

        # -- AP/ML statistics while walking (skipped when the alignment is given)
        if st.walking and s.given != 2:
            st.walked = True
            if not st.has_x_ref:
                # The reference axis: sensor x, levelled by the stand's vertical if there is one. Fixed from now.
                st.x_ref[0], st.x_ref[1], st.x_ref[2] = 1.0, 0.0, 0.0
                if st.has_stand or s.given == 1:
                    up0 = st.stand_sum.copy() if s.given == 0 else s.given_up.copy()
                    _normalize3(up0)
                    for k in range(3):
                        st.x_ref[k] -= up0[0] * up0[k]
                    _normalize3(st.x_ref)
                st.has_x_ref = True
            xr = st.x_ref
            hx = R[0, 0] * xr[0] + R[0, 1] * xr[1] + R[0, 2] * xr[2]
            hy = R[1, 0] * xr[0] + R[1, 1] * xr[1] + R[1, 2] * xr[2]
            psi_ref = math.atan2(hy, hx)
            c, sn = math.cos(psi_ref), math.sin(psi_ref)
            for k in range(3):  # Rᵀ times the columns (c, s, 0), (−s, c, 0), (0, 0, 1) of Rz(ψ_ref)
                st.P[k, 0] += R[0, k] * c + R[1, k] * sn
                st.P[k, 1] += -R[0, k] * sn + R[1, k] * c
                st.P[k, 2] += R[2, k]
            st.walk_count += 1
            j = pos - best
            if j < 0:
                j += L
            ax, ay = c * dev[0] + sn * dev[1], -sn * dev[0] + c * dev[1]
            bx, by = c * ring_acc[j, 0] + sn * ring_acc[j, 1], -sn * ring_acc[j, 0] + c * ring_acc[j, 1]
            st.M[0] += ax * bx
            st.M[1] += ay * by
            st.M[2] += 0.5 * (ax * by + ay * bx)
        st.ring_pos = pos + 1 if pos + 1 < L else 0
        st.n += 1

        had_alignment = st.vertical_source != VERTICAL_NONE or s.given == 2
        psi_before = _heading(R, st.left) if had_alignment else 0.0
        _update_alignment(s, st)
        if st.aligned_since < 0 and (s.given == 2 or (st.vertical_source != VERTICAL_NONE and st.yaw_from_walk)):
            st.aligned_since = sample
        if st.vertical_source == VERTICAL_NONE and s.given != 2:
            for k in range(3):
                angles_pelvis_deg[i, k] = np.nan
                acc_level_m_s2[i, k] = np.nan
            continue

        # -- Baker angles of R_pelvis_to_earth = R_sensor_to_earth · R_sensor_to_pelvisᵀ: its columns are the
        # pelvis axes in earth coordinates (X anterior, Y left, Z superior).
        xz = R[2, 0] * st.forward[0] + R[2, 1] * st.forward[1] + R[2, 2] * st.forward[2]
        yz = R[2, 0] * st.left[0] + R[2, 1] * st.left[1] + R[2, 2] * st.left[2]
        zz = R[2, 0] * st.up[0] + R[2, 1] * st.up[1] + R[2, 2] * st.up[2]
        obliquity = math.asin(min(1.0, max(-1.0, yz)))
        tilt = math.atan2(-xz, zz)
        psi = _heading(R, st.left)
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
                    for k in range(H):
                        ring_heading[k] += shift
            st.heading_rad += _wrap(psi - st.heading_wrapped)
        st.heading_wrapped = psi

        # -- walking direction: the heading averaged over the last stride
        if st.walking:
            st.head_window = min(2 * st.step_lag, H)
        elif st.head_window == 0:
            st.head_window = min(s.default_stride_samples, H)
        ring_heading[st.head_pos] = st.heading_rad
        st.head_pos = st.head_pos + 1 if st.head_pos + 1 < H else 0
        if st.head_count < H:
            st.head_count += 1
        count = min(st.head_window, st.head_count)
        total = 0.0
        for k in range(1, count + 1):
            j = st.head_pos - k
            if j < 0:
                j += H
            total += ring_heading[j] - st.heading_rad  # relative: keeps the sum small and exact
        walk_heading = st.heading_rad + total / count
        st.walk_heading_rad = walk_heading

        angles_pelvis_deg[i, 0] = math.degrees(st.heading_rad - walk_heading)
        angles_pelvis_deg[i, 1] = math.degrees(obliquity)
        angles_pelvis_deg[i, 2] = math.degrees(tilt)
        c, sn = math.cos(walk_heading), math.sin(walk_heading)
        acc_level_m_s2[i, 0] = c * a_earth[0] + sn * a_earth[1]
        acc_level_m_s2[i, 1] = -sn * a_earth[0] + c * a_earth[1]
        acc_level_m_s2[i, 2] = a_earth[2]


class PelvisTracker:
    """Streaming pelvis stage: ``update(q_sensor_to_earth (n, 4), acc_sensor_m_s2 (n, 3))`` →
    ``(angles_pelvis_deg (n, 3) = rotation, obliquity, tilt; acc_level_m_s2 (n, 3))``.

    alignment: ``q_sensor_to_pelvis`` from a calibration (``hipcheck.calibration.mounting``); None = automatic
    (module docstring). vertical_sensor: the pelvis superior axis in sensor coordinates if only that is known
    (a calibration stand); forward then comes from walking.

    Readable state for plots and tests: ``alignment`` (q_sensor_to_pelvis, NaN until the vertical is known),
    ``aligned``, ``vertical_source`` ('none', 'stand', 'walking', 'given'), ``walking`` (at the last sample),
    ``walking_s`` (walking seen so far), ``step_time_s`` (latest step-lag estimate), ``walk_heading_deg``.
    """

    def __init__(self, fs_hz: float, alignment=None, *, vertical_sensor=None, yaw_walk_s: float = 1.5,
                 vertical_walk_s: float = 3.0, stand_keep_s: float = 5.0):
        if not (np.isfinite(fs_hz) and fs_hz > 0):
            raise InvalidValueError(f"fs_hz={fs_hz}: the sample rate must be a positive number of Hz")
        self.fs_hz = float(fs_hz)
        s = np.zeros(1, SETTINGS_DTYPE)
        s["fs_hz"] = fs_hz
        s["gravity_m_s2"] = GRAVITY_M_S2
        s["still_dev_m_s2"] = 0.3
        s["still_min_samples"] = max(2, round(0.75 * fs_hz))
        s["quasi_dev_m_s2"] = 0.6
        s["quasi_min_samples"] = max(2, round(1.5 * fs_hz))
        s["stand_keep_samples"] = max(2, round(stand_keep_s * fs_hz))
        s["upright_min_cos"] = math.cos(math.radians(45.0))
        # Walking holds the pelvis within a few degrees of its quiet-standing tilt; sitting tilts it 15-30° back. A
        # still period more than 10° from the mean walking posture was a seat (or lying), not neutral standing.
        s["stand_walk_min_cos"] = math.cos(math.radians(10.0))
        s["still_alpha"] = 1.0 / (0.25 * fs_hz)
        # Mean removal before correlating: a gait-initiation surge or a turn's centripetal pull is not a step. The
        # same filter acts on both horizontal axes, so it cannot turn the AP/ML axes.
        s["mean_alpha"] = 1.0 / (0.5 * fs_hz)
        s["stats_alpha"] = 1.0 / (2.0 * fs_hz)
        s["lag_min"] = max(2, round(0.25 * fs_hz))  # step times 0.25-0.9 s: cadence 67-240 steps/min
        s["lag_max"] = max(6, round(0.9 * fs_hz))
        s["walk_min_var_m2_s4"] = 0.3 ** 2
        s["walk_min_corr"] = 0.4
        s["vertical_walk_samples"] = round(vertical_walk_s * fs_hz)
        s["yaw_walk_samples"] = round(yaw_walk_s * fs_hz)
        s["default_stride_samples"] = round(1.1 * fs_hz)
        if alignment is not None:
            q = quat_normalize(np.asarray(alignment, dtype=float).reshape(4))
            if not np.all(np.isfinite(q)):
                raise InvalidValueError("alignment must be a finite quaternion q_sensor_to_pelvis (w, x, y, z)")
            A = matrix_from_quat(q)  # rows: pelvis axes in sensor coordinates
            s["given"] = 2
            s["given_up"] = A[2]
            s["given_forward"] = A[0]
        elif vertical_sensor is not None:
            up = np.asarray(vertical_sensor, dtype=float).reshape(3)
            if not (np.all(np.isfinite(up)) and np.linalg.norm(up) > 0):
                raise InvalidValueError("vertical_sensor must be a finite non-zero 3-vector (pelvis up in sensor frame)")
            s["given"] = 1
            s["given_up"] = up / np.linalg.norm(up)
        self._settings = s
        self._state = np.zeros(1, STATE_DTYPE)
        self._state["aligned_since"] = 0 if alignment is not None else -1
        if alignment is not None:
            st = self._state[0]
            A = matrix_from_quat(quat_normalize(np.asarray(alignment, dtype=float)))
            st["forward"], st["left"], st["up"] = A[0], A[1], A[2]
            st["vertical_source"] = VERTICAL_GIVEN
        L = int(s["lag_max"][0]) + 1
        self._ring_acc = np.zeros((L, 3))
        self._rzz = np.zeros(L)
        self._ring_heading = np.zeros(2 * L)

    def update(self, q_sensor_to_earth, acc_sensor_m_s2) -> tuple[np.ndarray, np.ndarray]:
        q = np.ascontiguousarray(q_sensor_to_earth, dtype=np.float64)
        acc = np.ascontiguousarray(acc_sensor_m_s2, dtype=np.float64)
        if q.ndim != 2 or q.shape[1] != 4:
            raise InvalidValueError(f"q_sensor_to_earth has shape {q.shape}: expected (n, 4) quaternions (w, x, y, z)")
        if acc.shape != (len(q), 3):
            raise InvalidValueError(f"acc_sensor_m_s2 has shape {acc.shape}: expected ({len(q)}, 3), one row per "
                             "quaternion")
        angles = np.empty((len(q), 3))
        acc_level = np.empty((len(q), 3))
        if len(q):
            pelvis_update(self._settings, self._state, self._ring_acc, self._rzz, self._ring_heading, q, acc,
                          angles, acc_level)
        return angles, acc_level

    # -- readable state
    @property
    def alignment(self) -> np.ndarray:
        """q_sensor_to_pelvis (4,) in use (NaN until the vertical is known)."""
        st = self._state[0]
        if st["vertical_source"] == VERTICAL_NONE:
            return np.full(4, np.nan)
        return quat_from_matrix(np.stack([st["forward"], st["left"], st["up"]]))

    @property
    def aligned(self) -> bool:
        st = self._state[0]
        if self._settings[0]["given"] == 2:
            return True
        return bool(st["vertical_source"] != VERTICAL_NONE and st["yaw_from_walk"])

    @property
    def aligned_since(self) -> int:
        """Sample index from which the full alignment was in use (-1: not yet). Angles before it used the nominal
        forward axis or no vertical, so strides that start earlier are not measured on the final frame."""
        return int(self._state[0]["aligned_since"])

    @property
    def vertical_source(self) -> str:
        return VERTICAL_NAMES[int(self._state[0]["vertical_source"])]

    @property
    def walking(self) -> bool:
        return bool(self._state[0]["walking"])

    @property
    def walking_s(self) -> float:
        return float(self._state[0]["walk_count"]) / self.fs_hz

    @property
    def step_time_s(self) -> float:
        lag = int(self._state[0]["step_lag"])
        return lag / self.fs_hz if lag else float("nan")

    @property
    def walk_heading_deg(self) -> float:
        return math.degrees(float(self._state[0]["walk_heading_rad"]))

    @property
    def ap_ml_covariance(self) -> np.ndarray:
        """Lag-one-step covariance (xx, yy, xy) summed over walking, in the reference heading frame (m²/s⁴·samples).

        Its major eigenvalue is AP (positive), its minor ML (negative) when the walking is ordinary."""
        return self._state[0]["M"].copy()


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
                f"{probe.walking_s:.1f} s of the {probe._settings[0]['yaw_walk_samples'] / fs_hz:.1f} s needed); "
                "record a stand and a short walk, or pass alignment= from hipcheck.calibration.mounting")
        alignment = probe.alignment
    return PelvisTracker(fs_hz, alignment).update(q_sensor_to_earth, acc_sensor_m_s2)
