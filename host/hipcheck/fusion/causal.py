"""Orientation of the sensor from accelerometer and gyroscope: a VQF-class filter in numba, causal, for live use.

Based on Laidig & Seel (2023), "VQF: Highly accurate IMU orientation estimation with bias estimation and magnetic
disturbance rejection", Information Fusion 91:187-204. Written from the paper, not from its code. As in the paper:

- **Strapdown integration** of the bias-corrected gyroscope into ``q_sensor_to_inertial`` (an "almost inertial"
  frame I that only drifts as slowly as the gyroscope's residual bias allows).
- **Inclination correction in I**: the accelerometer, rotated into I, is low-pass filtered there (second-order
  Butterworth, time constant ``tau_acc_s``, cut-off √2/(2π·tau)); ``q_inertial_to_earth`` is then turned so that
  this filtered gravity points straight up. Filtering in I rather than in the sensor frame removes the lag that a
  low-pass in the sensor frame would add during rotation: only the slow drift of I is filtered.
- **Rest detection**: gyroscope and accelerometer stay close to their own low-pass (``rest_tau_s``) for
  ``rest_min_s``.
- **Gyroscope bias** by a 3-state Kalman filter: at rest from the low-pass gyroscope, in motion from the
  inclination corrections (a constant bias makes I drift, which the corrections undo; the measurement model uses
  the low-pass filtered rotation matrix because the corrections come through the same low-pass). The noise
  parameters are the paper's: each sigma is the standard deviation the estimate converges to, and the
  measurement variances follow from it and the process noise (w = p²/v + p, the steady state of a scalar
  Kalman filter), which keeps the behaviour independent of the sample rate. The process noise v is the paper's:
  the variance grows by (0.1 °/s)² (``bias_drift_sigma_rad_s``) in ``bias_forgetting_s`` (100 s), so the motion
  estimate forgets with a time constant of about (bias_sigma_motion / bias_drift_sigma)² · 100 s = 100 s, and the
  forward acceleration of a gait initiation hardly moves it.

What we changed:

- **Two rates** (the usual structure of strapdown algorithms, Savage 1998, "Strapdown inertial navigation
  integration algorithm design", J. Guid. Control Dyn. 21(1)): gyroscope integration, output and the accumulation of
  window means run for every sample; the low-pass filters, the inclination correction, rest detection and the bias
  Kalman filter run once per window of ``window_samples`` samples (``correction_rate_hz``, 50 Hz by default) on the
  window means. The window mean is the anti-aliasing pre-filter of that slower rate; every filter it feeds has its
  cut-off below 0.5 Hz, so this changes the estimate by far less than its error and makes the filter fast
  (target ≥ 10 M samples/s on one core). Windows are counted from the start of the stream, so a recording fed
  whole or in blocks of any size gives bit-identical output.
- Rest detection compares each sample with the low-pass value of the previous window (the paper: of the same
  sample), and the lp-filtered gyroscope must lie within ``bias_clip_rad_s``.
- Gyroscope integration uses a 4th-order series of the quaternion exponential (|ω|·Ts < 0.2 rad in practice: error
  < 1e-9) and a first-order renormalisation, so no trigonometry and no square root per sample.
- Robust input: a sample with a non-finite gyroscope value holds the orientation (no integration); a non-finite,
  saturated (any axis at ``acc_saturation_m_s2``) or implausible accelerometer sample (norm farther than
  ``acc_reject_m_s2`` from gravity) is left out of the inclination and rest filters. Each case is flagged per
  sample (``FLAG_*``) and counted. The norm check is off by default: during translation it keeps the samples
  whose free acceleration happens to be horizontal (norm ≈ g) and so biases the inclination (on BROAD's fast
  translation trial a 5 m/s² gate raised the error from 0.5° to 50°); saturation is always checked.
- ``output_lead_s`` (default 0) turns the output ahead by the current rate to compensate a known sensor latency.
- The first valid accelerometer sample sets the inclination at once; the low-pass filters start as the running mean
  of their input for ``acc_warmup_s`` (= tau) while the sensor stays still (then continue as Butterworth from that
  value), so the estimate settles in about one time constant instead of drifting in from a guess. The first
  window that is not still ends the warm-up early: a running mean follows any acceleration within 1/n (a
  first-order filter with the time since start as its time constant): a walk begun 1.5 s after switching on
  would tilt a full-length mean by 3° (as it tilts VQF, which averages for tau regardless); ended at the first
  motion, 1.8°, as after a long rest. The motion bias update runs during the warm-up too (as in the paper):
  skipping it would see only the recovery half of a gait-initiation transient and pull the bias one way.
- **Turn gate** (``turn_rate_rad_s``, off by default): a walker's turn adds the centripetal acceleration ω×v (about
  1 m/s² for 2-3 s) which the inclination low-pass takes for gravity: 2-3° of obliquity or tilt after each turn,
  decaying with tau_acc. While the window-rate angular rate about the earth's vertical, low-passed
  (``turn_tau_s``), exceeds the threshold, the accelerometer is left out of the inclination and bias steps and the
  gyroscope carries the orientation alone (accurate over a few seconds), as VQF and x-io Fusion leave out disturbed
  measurements; after ``turn_max_s`` the correction resumes regardless. It costs nothing per sample (the window's
  rotation comes from q_sensor_to_inertial at its start and end). For a body-worn sensor while walking (20 °/s:
  gait's yaw oscillation averages out in the low-pass and never reaches it on the simulator); not for hand-held
  motion, where on BROAD any gate raised the error manyfold (20 °/s: 0.76° → 3.3°).
- 6D only: a magnetometer is refused with a clear error (heading is arbitrary and drifts slowly).

Frames: ``q_sensor_to_earth`` (w, x, y, z), earth z up, heading arbitrary (the I frame starts at the sensor's first
heading). See ``hipcheck.fusion.offline`` for the non-causal variant used in review.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from hipcheck.errors import InvalidValueError
from hipcheck.filters import butter2_lowpass
from hipcheck.fusion._common import (as_samples, gyro_step, gyro_valid, lowpass_coefficients, multiply,
                                     refuse_magnetometer, rotate, swing_times, swing_to_up, turned_ahead)
from hipcheck.settings import merged_settings
from hipcheck.units import ACC_FULL_SCALE_G, GRAVITY_M_S2, GYR_WIDEST_RANGE_RAD_S, RAD_PER_DEG

__all__ = [
    "SETTINGS_DTYPE",
    "STATE_DTYPE",
    "DEFAULT_SETTINGS",
    "FLAG_GYR_INVALID",
    "FLAG_ACC_INVALID",
    "FLAG_ACC_REJECTED",
    "FLAG_AT_REST",
    "FLAG_INITIALISING",
    "FLAG_TURNING",
    "make_settings",
    "make_state",
    "fusion_update",
    "acc_problem",
    "Fusion",
]

# Per-sample flags (uint8, OR-ed).
FLAG_GYR_INVALID = 1  # gyroscope sample not finite: orientation held
FLAG_ACC_INVALID = 2  # accelerometer sample not finite: left out
FLAG_ACC_REJECTED = 4  # accelerometer saturated or its norm implausible: left out of the inclination
FLAG_AT_REST = 8  # rest detected (bias taken from the still gyroscope)
FLAG_INITIALISING = 16  # inclination not yet set, or its low-pass still in its first time constant
FLAG_TURNING = 32  # turning about the vertical faster than turn_rate_rad_s: accelerometer correction paused

# User settings and their defaults. Those of the paper keep its values (Laidig & Seel 2023, Table 1).
DEFAULT_SETTINGS = dict(
    tau_acc_s=3.0,  # time constant of the accelerometer low-pass in the almost-inertial frame
    acc_warmup_s=3.0,  # the acc low-pass starts as the running mean of its input for this long, while still
    correction_rate_hz=50.0,  # rate of the correction/bias/rest step (windows of fs/rate samples)
    rest_tau_s=0.5,  # low-pass of the rest detector
    rest_min_s=1.5,  # stillness needed before rest is declared
    rest_gyr_th_rad_s=2.0 * RAD_PER_DEG,  # max deviation of the gyroscope from its low-pass at rest
    rest_acc_th_m_s2=0.5,  # max deviation of the accelerometer from its low-pass at rest
    bias_sigma_init_rad_s=0.5 * RAD_PER_DEG,  # prior uncertainty of the gyroscope bias (and its ceiling)
    bias_forgetting_s=100.0,  # time in which the bias variance grows by bias_drift_sigma² without information
    bias_drift_sigma_rad_s=0.1 * RAD_PER_DEG,  # how far the bias may drift in bias_forgetting_s (process noise)
    bias_sigma_motion_rad_s=0.1 * RAD_PER_DEG,  # uncertainty the estimate converges to in motion
    bias_sigma_rest_rad_s=0.03 * RAD_PER_DEG,  # ... at rest
    bias_vertical_forgetting=1e-4,  # pulls the unobservable vertical bias component slowly to zero in motion
    bias_clip_rad_s=2.0 * RAD_PER_DEG,  # bias estimate and its per-step disagreement are clipped to ±this
    motion_bias_est=True,
    rest_bias_est=True,
    acc_saturation_m_s2=0.98 * ACC_FULL_SCALE_G * GRAVITY_M_S2,  # any axis at or beyond: saturated, rejected
    # A gyro reading beyond twice the widest MEMS range is a glitch, not a rotation: held like NaN. Twice, a wide
    # margin: no real rotation is held, not even one read by the rare chips of ±4000 °/s.
    gyr_plausible_rad_s=2.0 * GYR_WIDEST_RANGE_RAD_S,
    acc_reject_m_s2=math.inf,  # reject a sample whose norm differs from gravity by more (inf: never)
    gravity_m_s2=GRAVITY_M_S2,
    # Latency compensation: the output is turned ahead by the current angular rate times this (s), to make up for
    # the sensor's internal filter delay or a known timing offset. 0: none. (On BROAD, half a sample, 1.75 ms,
    # lowers every filter's error by a quarter: see benchmarks/fusion.py; not a default, since it is a property
    # of that recording set, not of the filter.)
    output_lead_s=0.0,
    # Turn gate: while the low-passed (turn_tau_s) angular rate about the earth's vertical exceeds this, the
    # accelerometer neither feeds the inclination low-pass nor corrects it (nor the bias): gyroscope only. inf: off.
    # A walker's turn lasts a few seconds; a longer one (walking in circles, a sensor spun by hand) gets its
    # correction back after turn_max_s, centripetal tilt and all, rather than drifting on the gyroscope alone.
    # Off by default: for a body-worn sensor while walking (the pipeline turns it on); on BROAD's hand-held trials,
    # with rotations of 100-400 °/s for many seconds, any gate raises the error manyfold.
    turn_rate_rad_s=math.inf,
    turn_tau_s=0.5,
    turn_max_s=5.0,
)

SETTINGS_DTYPE = np.dtype([(name, np.bool_ if isinstance(v, bool) else np.float64)
                           for name, v in DEFAULT_SETTINGS.items()] + [
    # Derived in make_settings; the kernel reads only these and the flags above.
    ("fs_hz", np.float64),
    ("dt_s", np.float64),  # sample period
    ("window_samples", np.int64),
    ("dt_window_s", np.float64),
    ("acc_lp_c", np.float64, 3),  # Butterworth coefficients (hipcheck.filters) at the window rate, tau_acc_s
    ("acc_lp_warmup_windows", np.int64),
    ("rest_lp_c", np.float64, 3),
    ("rest_lp_warmup_windows", np.int64),
    ("rest_min_windows", np.int64),
    ("bias_p0", np.float64),  # prior variance, (rad/s)²
    ("bias_v", np.float64),  # process noise per window
    ("bias_w_motion", np.float64),
    ("bias_w_rest", np.float64),
    ("acc_norm_min2", np.float64),  # accepted range of |acc|², (m/s²)²
    ("acc_norm_max2", np.float64),
    ("turn_lp_alpha", np.float64),  # first-order low-pass of the vertical rate, per window
    ("turn_max_windows", np.int64),
])

# Low-pass channels of the accelerometer path (same filter, same warm-up): the accelerometer in I (0..2), the
# rotation matrix R_sensor_to_earth (3..11, row-major) and R·bias_hat, x and y (12, 13), for the bias measurement.
_N_LP = 14
_LP_ACC, _LP_R, _LP_RB = 0, 3, 12

STATE_DTYPE = np.dtype([
    ("q_sensor_to_inertial", np.float64, 4),  # gyroscope strapdown
    ("q_inertial_to_earth", np.float64, 4),  # inclination correction
    ("bias_rad_s", np.float64, 3),  # gyroscope bias estimate, sensor frame
    ("bias_p", np.float64, (3, 3)),  # its covariance, (rad/s)²
    ("lp_state", np.float64, (_N_LP, 2)),  # Butterworth states (hipcheck.filters)
    ("lp_out", np.float64, _N_LP),
    ("lp_windows", np.int64),  # windows fed to the accelerometer-path low-pass (warm-up counter)
    ("rest_lp_state", np.float64, (6, 2)),  # gyroscope (0..2) and accelerometer (3..5), sensor frame
    ("rest_gyr_lp_rad_s", np.float64, 3),
    ("rest_acc_lp_m_s2", np.float64, 3),
    ("rest_lp_windows", np.int64),
    ("rest_windows", np.int64),  # consecutive still windows
    ("at_rest", np.bool_),
    ("initialised", np.bool_),  # inclination set from a first valid accelerometer sample
    # Accumulators of the current window (sums over its samples).
    ("window_phase", np.int64),  # samples of the current window seen so far
    ("sum_acc_inertial", np.float64, 3),
    ("n_acc", np.int64),
    ("sum_qq", np.float64, 9),  # xx yy zz xy xz yz wx wy wz of q_sensor_to_earth (over the n_acc samples)
    ("sum_gyr", np.float64, 3),
    ("sum_acc", np.float64, 3),
    ("n_rest", np.int64),
    ("max_dev_gyr2", np.float64),  # largest squared deviation from the rest low-pass in this window
    ("max_dev_acc2", np.float64),
    # Scratch of the slow step (no meaning between calls; kept here so that the kernel allocates nothing).
    ("r_mean", np.float64, 9),  # mean R_sensor_to_earth of the last window, row-major
    ("kf_h", np.float64, (3, 3)),
    ("kf_e", np.float64, 3),
    ("kf_w", np.float64, 3),
    ("kf_work", np.float64, (4, 3, 3)),
    # What the last window did, for plots and tests.
    ("acc_earth", np.float64, 3),  # filtered gravity direction in earth before its correction (unit)
    # Turn gate.
    ("q_window_start", np.float64, 4),  # q_sensor_to_inertial at the start of the current window
    ("turn_rate_rad_s", np.float64),  # low-passed angular rate about the earth's vertical (+ = counter-clockwise)
    ("turning", np.bool_),
    ("turn_windows", np.int64),  # consecutive windows above the threshold
    ("n_turn_windows", np.int64),  # windows whose accelerometer was left out for a turn
    # Counters.
    ("n_samples", np.int64),
    ("n_gyr_invalid", np.int64),
    ("n_acc_invalid", np.int64),
    ("n_acc_rejected", np.int64),
])


def make_settings(fs_hz: float, **settings) -> np.ndarray:
    """One settings record (shape (1,), SETTINGS_DTYPE) for a sample rate; keyword overrides of DEFAULT_SETTINGS."""
    values = merged_settings("fusion", DEFAULT_SETTINGS, settings, fs_hz)
    for name in ("tau_acc_s", "acc_warmup_s", "correction_rate_hz", "rest_tau_s", "bias_sigma_init_rad_s",
                 "bias_forgetting_s", "bias_drift_sigma_rad_s",
                 "bias_sigma_motion_rad_s", "bias_sigma_rest_rad_s", "bias_vertical_forgetting", "gravity_m_s2",
                 "turn_rate_rad_s", "turn_tau_s"):
        if not values[name] > 0:
            raise InvalidValueError(f"{name}={values[name]}: must be positive")
    s = np.zeros(1, SETTINGS_DTYPE)
    r = s[0]
    for name, v in values.items():
        r[name] = v
    dt_s = 1.0 / fs_hz
    n_win = max(1, int(round(fs_hz / values["correction_rate_hz"])))
    dt_win = n_win * dt_s
    r["fs_hz"], r["dt_s"], r["window_samples"], r["dt_window_s"] = fs_hz, dt_s, n_win, dt_win
    lowpass_coefficients(values["tau_acc_s"], dt_win, r["acc_lp_c"])
    r["acc_lp_warmup_windows"] = max(1, int(math.ceil(values["acc_warmup_s"] / dt_win)))
    lowpass_coefficients(values["rest_tau_s"], dt_win, r["rest_lp_c"])
    r["rest_lp_warmup_windows"] = max(1, int(math.ceil(values["rest_tau_s"] / dt_win)))
    r["rest_min_windows"] = max(1, int(math.ceil(values["rest_min_s"] / dt_win)))
    p0 = values["bias_sigma_init_rad_s"] ** 2
    # Process noise: the variance grows by bias_drift_sigma² in bias_forgetting_s (the paper: (0.1 °/s)² in 100 s).
    v = values["bias_drift_sigma_rad_s"] ** 2 * dt_win / values["bias_forgetting_s"]
    r["bias_p0"], r["bias_v"] = p0, v
    # Variance that makes the scalar Kalman filter settle at sigma² (steady state: w = p²/v + p).
    for key, sigma in (("bias_w_motion", values["bias_sigma_motion_rad_s"]),
                       ("bias_w_rest", values["bias_sigma_rest_rad_s"])):
        r[key] = sigma**4 / v + sigma**2
    g = values["gravity_m_s2"]
    dev = values["acc_reject_m_s2"]
    r["acc_norm_min2"] = max(g - dev, 0.0) ** 2 if math.isfinite(dev) else 0.0
    r["acc_norm_max2"] = (g + dev) ** 2 if math.isfinite(dev) else math.inf
    r["turn_lp_alpha"] = 1.0 - math.exp(-dt_win / values["turn_tau_s"])
    r["turn_max_windows"] = max(0, int(round(values["turn_max_s"] / dt_win)))
    return s


def make_state(settings: np.ndarray) -> np.ndarray:
    """A fresh state record (shape (1,), STATE_DTYPE): identity orientation, zero bias with its prior variance."""
    st = np.zeros(1, STATE_DTYPE)
    r = st[0]
    r["q_sensor_to_inertial"] = (1.0, 0.0, 0.0, 0.0)
    r["q_inertial_to_earth"] = (1.0, 0.0, 0.0, 0.0)
    r["q_window_start"] = (1.0, 0.0, 0.0, 0.0)
    r["bias_p"] = np.eye(3) * settings[0]["bias_p0"]
    r["acc_earth"] = (0.0, 0.0, 1.0)
    return st


@njit(cache=True, inline="always")
def acc_problem(ax: float, ay: float, az: float, saturation: float, norm_min2: float, norm_max2: float) -> int:
    """0 for an accelerometer sample fit for the inclination; else FLAG_ACC_INVALID (not finite) or
    FLAG_ACC_REJECTED (an axis at ``saturation`` or beyond, or |a|² outside [norm_min2, norm_max2])."""
    na2 = ax * ax + ay * ay + az * az
    if na2 - na2 != 0.0:
        return FLAG_ACC_INVALID
    if max(abs(ax), abs(ay), abs(az)) >= saturation or na2 < norm_min2 or na2 > norm_max2:
        return FLAG_ACC_REJECTED
    return 0


@njit(cache=True, inline="always")
def _lp_warm(x: float, n_fed: int, n_warmup: int, c: np.ndarray, state: np.ndarray, out: float) -> float:
    """Low-pass with warm-up: the running mean of the first n_warmup inputs (n_fed counts this one), then the
    Butterworth filter started in its steady state at that mean."""
    if n_fed <= n_warmup:
        y = out + (x - out) / n_fed
        if n_fed == n_warmup:
            state[0] = 0.0
            state[1] = y
        return y
    return butter2_lowpass(x, c, state)


@njit(cache=True)
def fusion_update(settings, state, acc_sensor_m_s2, gyr_sensor_rad_s, quat_out, flags_out, bias_out,
                  bias_var_out) -> None:
    """Run the filter over n samples; writes q_sensor_to_earth (n, 4) to quat_out. Allocates nothing.

    settings, state: one-record arrays (SETTINGS_DTYPE, STATE_DTYPE); state is updated in place, so calling this
    on consecutive blocks equals one call on the whole recording, bit for bit. acc (n, 3) m/s², gyr (n, 3) rad/s,
    float64. Traces for plots and for the offline smoother: flags_out (n,) uint8 gets the FLAG_* of each sample,
    bias_out (n, 3) the bias estimate in use at each sample (rad/s), bias_var_out (n, 3) its variance (diagonal,
    (rad/s)²); pass arrays of length 0 to skip any of them.
    """
    # Per sample here: strapdown integration, output, the window's sums; per window: _end_window. The per-sample
    # code stays in this loop, with no helper that takes an array (nor a per-window call that takes one): numba
    # counts references at such calls, which made the filter 5-15 % slower.
    s, st = settings[0], state[0]
    acc, gyr = acc_sensor_m_s2, gyr_sensor_rad_s
    dt, gyr_limit, n_win = s.dt_s, s.gyr_plausible_rad_s, s.window_samples
    sat, norm_min2, norm_max2 = s.acc_saturation_m_s2, s.acc_norm_min2, s.acc_norm_max2
    lead = s.output_lead_s != 0.0
    lead_half = 0.5 * s.output_lead_s / dt  # times θ = (ω - b)·dt gives half the lead angle
    write_flags, write_bias, write_var = flags_out.shape[0] > 0, bias_out.shape[0] > 0, bias_var_out.shape[0] > 0
    p = st.bias_p
    # Hot state in locals (tuples of float64, kept in registers); written back at window ends and on return.
    g, initialised, slow_flags = _get4(st.q_sensor_to_inertial), st.initialised, _slow_flags(s, st)
    e, b, lg, la, s_acc, s_gyr, s_acc_sensor, qq, n_acc, n_rest, max_dg2, max_da2, phase = _get_window(st)

    for k in range(acc.shape[0]):
        flag = slow_flags
        gx, gy, gz = gyr[k, 0], gyr[k, 1], gyr[k, 2]
        gyr_ok = gyro_valid(gx, gy, gz, gyr_limit)
        lx = ly = lz = 0.0
        if gyr_ok:  # q_sensor_to_inertial ← q ⊗ exp(θ/2), θ = (ω - b)·dt
            tx, ty, tz = (gx - b[0]) * dt, (gy - b[1]) * dt, (gz - b[2]) * dt
            g = _integrate(g[0], g[1], g[2], g[3], tx, ty, tz)
            lx, ly, lz = tx * lead_half, ty * lead_half, tz * lead_half
        else:
            flag |= FLAG_GYR_INVALID
            st.n_gyr_invalid += 1

        ax, ay, az = acc[k, 0], acc[k, 1], acc[k, 2]
        problem = acc_problem(ax, ay, az, sat, norm_min2, norm_max2)
        if problem == 0:
            v = rotate(g[0], g[1], g[2], g[3], ax, ay, az)  # the accelerometer in I
            if not initialised:  # first valid sample: inclination from it alone (heading of the sensor kept)
                inv_norm = 1.0 / math.sqrt(ax * ax + ay * ay + az * az)
                e = swing_to_up(v[0] * inv_norm, v[1] * inv_norm, v[2] * inv_norm)
                initialised = True
                flag |= FLAG_INITIALISING
            s_acc = (s_acc[0] + v[0], s_acc[1] + v[1], s_acc[2] + v[2])
            n_acc += 1
        else:
            flag |= problem
            _count_acc_problem(st, problem)

        o0, o1, o2, o3 = multiply(e[0], e[1], e[2], e[3], g[0], g[1], g[2], g[3])  # q_sensor_to_earth
        if lead:
            quat_out[k, 0], quat_out[k, 1], quat_out[k, 2], quat_out[k, 3] = turned_ahead(o0, o1, o2, o3, lx, ly, lz)
        else:
            quat_out[k, 0], quat_out[k, 1], quat_out[k, 2], quat_out[k, 3] = o0, o1, o2, o3
        if problem == 0:  # the window's mean rotation matrix, over the same samples as its mean acceleration
            qq = _add_products(qq, o0, o1, o2, o3)
        if gyr_ok and problem != FLAG_ACC_INVALID:  # rest detector: sums for the low-pass, largest deviation
            s_gyr = (s_gyr[0] + gx, s_gyr[1] + gy, s_gyr[2] + gz)
            s_acc_sensor = (s_acc_sensor[0] + ax, s_acc_sensor[1] + ay, s_acc_sensor[2] + az)
            n_rest += 1
            max_dg2 = max(max_dg2, (gx - lg[0]) ** 2 + (gy - lg[1]) ** 2 + (gz - lg[2]) ** 2)
            max_da2 = max(max_da2, (ax - la[0]) ** 2 + (ay - la[1]) ** 2 + (az - la[2]) ** 2)
        if write_flags:
            flags_out[k] = flag
        if write_bias:
            bias_out[k, 0], bias_out[k, 1], bias_out[k, 2] = b[0], b[1], b[2]
        if write_var:
            bias_var_out[k, 0], bias_var_out[k, 1], bias_var_out[k, 2] = p[0, 0], p[1, 1], p[2, 2]

        phase += 1
        if phase == n_win:  # slow step: the window handed over through the state record; take back what changed
            _put_window(st, g, e, s_acc, s_gyr, s_acc_sensor, qq, n_acc, n_rest, max_dg2, max_da2, phase,
                        initialised)
            _end_window(s, st)
            e, b, lg, la, s_acc, s_gyr, s_acc_sensor, qq, n_acc, n_rest, max_dg2, max_da2, phase = _get_window(st)
            slow_flags = _slow_flags(s, st)

    _put_window(st, g, e, s_acc, s_gyr, s_acc_sensor, qq, n_acc, n_rest, max_dg2, max_da2, phase, initialised)
    st.n_samples += acc.shape[0]


@njit(cache=True, inline="always")
def _get_window(st):
    """The state fusion_update keeps in locals that the slow step may change: orientation I→E, bias, the rest
    detector's low-pass, and the window's sums so far."""
    return (_get4(st.q_inertial_to_earth), _get3(st.bias_rad_s), _get3(st.rest_gyr_lp_rad_s),
            _get3(st.rest_acc_lp_m_s2), _get3(st.sum_acc_inertial), _get3(st.sum_gyr), _get3(st.sum_acc),
            _get9(st.sum_qq), st.n_acc, st.n_rest, st.max_dev_gyr2, st.max_dev_acc2, st.window_phase)


@njit(cache=True, inline="always")
def _put_window(st, g, e, s_acc, s_gyr, s_acc_sensor, qq, n_acc, n_rest, max_dg2, max_da2, phase,
                initialised) -> None:
    """The locals of fusion_update back into the state record."""
    _put4(st.q_sensor_to_inertial, g)
    _put4(st.q_inertial_to_earth, e)
    _put3(st.sum_acc_inertial, s_acc)
    _put3(st.sum_gyr, s_gyr)
    _put3(st.sum_acc, s_acc_sensor)
    _put9(st.sum_qq, qq)
    st.n_acc, st.n_rest, st.max_dev_gyr2, st.max_dev_acc2 = n_acc, n_rest, max_dg2, max_da2
    st.window_phase = phase
    st.initialised = initialised


@njit(cache=True, inline="always")
def _count_acc_problem(st, problem: int) -> None:
    if problem == FLAG_ACC_INVALID:
        st.n_acc_invalid += 1
    else:
        st.n_acc_rejected += 1


@njit(cache=True, inline="always")
def _integrate(g0: float, g1: float, g2: float, g3: float, tx: float, ty: float,
               tz: float) -> tuple[float, float, float, float]:
    """q ⊗ exp(θ/2) with a first-order renormalisation (no square root per sample)."""
    h0, h1, h2, h3 = gyro_step(g0, g1, g2, g3, tx, ty, tz)
    f = 1.5 - 0.5 * (h0 * h0 + h1 * h1 + h2 * h2 + h3 * h3)
    return h0 * f, h1 * f, h2 * f, h3 * f


@njit(cache=True, inline="always")
def _add_products(qq, o0, o1, o2, o3):
    """qq + the products of o's components that R(o) is linear in (xx yy zz xy xz yz wx wy wz)."""
    return (qq[0] + o1 * o1, qq[1] + o2 * o2, qq[2] + o3 * o3, qq[3] + o1 * o2, qq[4] + o1 * o3,
            qq[5] + o2 * o3, qq[6] + o0 * o1, qq[7] + o0 * o2, qq[8] + o0 * o3)


@njit(cache=True, inline="always")
def _slow_flags(s, st) -> int:
    """Flags that hold for a whole window: rest, turning, and inclination not yet settled."""
    flag = 0
    if st.at_rest:
        flag |= FLAG_AT_REST
    if not st.initialised or st.lp_windows < s.acc_lp_warmup_windows:
        flag |= FLAG_INITIALISING
    if st.turning:
        flag |= FLAG_TURNING
    return flag


@njit(cache=True)
def _start_window(st) -> None:
    """Empty the sums of the window that begins."""
    for i in range(3):
        st.sum_acc_inertial[i] = st.sum_gyr[i] = st.sum_acc[i] = 0.0
    for i in range(9):
        st.sum_qq[i] = 0.0
    st.n_acc = st.n_rest = st.window_phase = 0
    st.max_dev_gyr2 = st.max_dev_acc2 = 0.0


@njit(cache=True)
def _end_window(s, st) -> None:
    """The slow step, once per window: rest detection, turn gate, inclination correction, bias update; then
    the sums of the next window start empty. (Its steps are inlined: called apart, they cost 2-3 % of the whole
    filter's time with the default window of 2-6 samples.)"""
    moving = _rest_step(s, st)
    if s.turn_rate_rad_s < math.inf:
        _turn_step(s, st)
    for i in range(4):
        st.q_window_start[i] = st.q_sensor_to_inertial[i]
    measured, ex, ey = False, 0.0, 0.0
    if st.n_acc > 0 and st.initialised and not st.turning:
        n_fed = _feed_lowpass(s, st, moving)
        measured, ex, ey = _correct_inclination(s, st, n_fed)
    _bias_step(s, st, measured, ex, ey)
    _start_window(st)


@njit(cache=True, inline="always")
def _rest_step(s, st) -> bool:
    """Rest detection on the sensor-frame signals: the window means feed the low-pass; each sample was compared
    with the previous window's low-pass. Sets at_rest; returns whether the sensor moved in this window."""
    moving = False
    if st.n_rest > 0:
        inv = 1.0 / st.n_rest
        st.rest_lp_windows += 1
        for i in range(3):
            st.rest_gyr_lp_rad_s[i] = _lp_warm(st.sum_gyr[i] * inv, st.rest_lp_windows, s.rest_lp_warmup_windows,
                                               s.rest_lp_c, st.rest_lp_state[i], st.rest_gyr_lp_rad_s[i])
            st.rest_acc_lp_m_s2[i] = _lp_warm(st.sum_acc[i] * inv, st.rest_lp_windows, s.rest_lp_warmup_windows,
                                              s.rest_lp_c, st.rest_lp_state[3 + i], st.rest_acc_lp_m_s2[i])
        g = st.rest_gyr_lp_rad_s
        # Counted from the first window: during warm-up the low-pass is the running mean, a fair reference already.
        still = (st.max_dev_gyr2 < s.rest_gyr_th_rad_s**2 and st.max_dev_acc2 < s.rest_acc_th_m_s2**2
                 and abs(g[0]) < s.bias_clip_rad_s and abs(g[1]) < s.bias_clip_rad_s
                 and abs(g[2]) < s.bias_clip_rad_s)
        st.rest_windows = st.rest_windows + 1 if still else 0
        # Moving, judged against a low-pass reference of at least one earlier window.
        moving = not still and st.rest_lp_windows >= 2
    else:
        st.rest_windows = 0  # no valid sample in the window: cannot claim stillness
    st.at_rest = st.rest_windows >= s.rest_min_windows
    return moving


@njit(cache=True, inline="always")
def _turn_step(s, st) -> None:
    """Turn gate: the rotation of the window in I (q_end ⊗ q_start⁻¹, its vector part ≈ half the rotation
    vector), turned into E; its vertical part per unit time, low-passed. A walker's turn (45-60 °/s for 2-3 s) adds
    a centripetal acceleration ω×v (~1 m/s²) that the low-pass would take for a tilt; the gyroscope alone is
    accurate over such a turn, so the accelerometer is left out while it lasts. Only the mean rate of the window
    enters, so gait's yaw oscillation (±5° per stride) mostly averages out in the low-pass."""
    q1, q0 = st.q_sensor_to_inertial, st.q_window_start
    # vector part of q1 ⊗ conj(q0)
    dx = -q1[0] * q0[1] + q1[1] * q0[0] - q1[2] * q0[3] + q1[3] * q0[2]
    dy = -q1[0] * q0[2] + q1[1] * q0[3] + q1[2] * q0[0] - q1[3] * q0[1]
    dz = -q1[0] * q0[3] - q1[1] * q0[2] + q1[2] * q0[1] + q1[3] * q0[0]
    qa = st.q_inertial_to_earth
    w, ux, uy, uz = qa[0], qa[1], qa[2], qa[3]
    # z component of R(q_inertial_to_earth)·d
    vz = (2.0 * (ux * uz - w * uy)) * dx + (2.0 * (uy * uz + w * ux)) * dy + (1.0 - 2.0 * (ux * ux + uy * uy)) * dz
    st.turn_rate_rad_s += s.turn_lp_alpha * (2.0 * vz / s.dt_window_s - st.turn_rate_rad_s)
    st.turn_windows = st.turn_windows + 1 if abs(st.turn_rate_rad_s) > s.turn_rate_rad_s else 0
    st.turning = 0 < st.turn_windows <= s.turn_max_windows
    if st.turning:
        st.n_turn_windows += 1


@njit(cache=True, inline="always")
def _feed_lowpass(s, st, moving: bool) -> int:
    """The window's means into the accelerometer-path low-pass (in I: the accelerometer, R_sensor_to_earth and
    R·bias_hat); returns the number of windows it has been fed."""
    c, nw = s.acc_lp_c, s.acc_lp_warmup_windows
    lo = st.lp_out
    if moving and 1 <= st.lp_windows < nw:
        # The running mean of the warm-up is the best estimate while the sensor is still, but it follows any
        # acceleration within 1/n (a first-order filter of time constant "time since start"): a walk begun
        # during the warm-up would tilt it by degrees. Motion ends the warm-up: the Butterworth continues from
        # the mean so far, in its steady state.
        for i in range(_N_LP):
            st.lp_state[i, 0] = 0.0
            st.lp_state[i, 1] = lo[i]
        st.lp_windows = nw
    st.lp_windows += 1
    n_fed = st.lp_windows
    inv = 1.0 / st.n_acc
    for i in range(3):
        lo[_LP_ACC + i] = _lp_warm(st.sum_acc_inertial[i] * inv, n_fed, nw, c, st.lp_state[_LP_ACC + i],
                                   lo[_LP_ACC + i])
    # Mean R_sensor_to_earth of the window from the mean products of its quaternions (R is linear in them).
    q = st.sum_qq
    xx, yy, zz, xy, xz, yz = q[0] * inv, q[1] * inv, q[2] * inv, q[3] * inv, q[4] * inv, q[5] * inv
    wx, wy, wz = q[6] * inv, q[7] * inv, q[8] * inv
    rm = st.r_mean
    rm[0], rm[1], rm[2] = 1.0 - 2.0 * (yy + zz), 2.0 * (xy - wz), 2.0 * (xz + wy)
    rm[3], rm[4], rm[5] = 2.0 * (xy + wz), 1.0 - 2.0 * (xx + zz), 2.0 * (yz - wx)
    rm[6], rm[7], rm[8] = 2.0 * (xz - wy), 2.0 * (yz + wx), 1.0 - 2.0 * (xx + yy)
    for i in range(9):
        lo[_LP_R + i] = _lp_warm(rm[i], n_fed, nw, c, st.lp_state[_LP_R + i], lo[_LP_R + i])
    bias = st.bias_rad_s
    for i in range(2):
        rb = rm[3 * i] * bias[0] + rm[3 * i + 1] * bias[1] + rm[3 * i + 2] * bias[2]
        lo[_LP_RB + i] = _lp_warm(rb, n_fed, nw, c, st.lp_state[_LP_RB + i], lo[_LP_RB + i])
    return n_fed


@njit(cache=True, inline="always")
def _correct_inclination(s, st, n_fed: int) -> tuple[bool, float, float]:
    """Turn I→E so that the filtered gravity points up. Returns the motion measurement of the bias (measured, ex,
    ey): the part of this correction that the current bias estimate does not explain."""
    lo = st.lp_out
    qa = st.q_inertial_to_earth
    w, ux, uy, uz = qa[0], qa[1], qa[2], qa[3]
    ax, ay, az = rotate(w, ux, uy, uz, lo[_LP_ACC], lo[_LP_ACC + 1], lo[_LP_ACC + 2])  # filtered gravity in E
    norm = math.sqrt(ax * ax + ay * ay + az * az)
    if not norm > 0.0:
        return False, 0.0, 0.0
    ax, ay, az = ax / norm, ay / norm, az / norm
    st.acc_earth[0], st.acc_earth[1], st.acc_earth[2] = ax, ay, az
    c0, c1, c2, _ = swing_to_up(ax, ay, az)
    n0, n1, n2, n3 = swing_times(c0, c1, c2, w, ux, uy, uz)  # q_inertial_to_earth ← correction ⊗ itself
    k = 1.0 / math.sqrt(n0 * n0 + n1 * n1 + n2 * n2 + n3 * n3)
    qa[0], qa[1], qa[2], qa[3] = n0 * k, n1 * k, n2 * k, n3 * k
    if n_fed <= 1:  # the first window has no correction yet
        return False, 0.0, 0.0
    # A bias b turns E at R·b; the corrections undo it: lp(R)·b = -ω_corr + lp(R·b_hat), with
    # ω_corr = (ay, -ax, 0)/dt the correction's rotation vector per unit time.
    bias, dt_win = st.bias_rad_s, s.dt_window_s
    ex = -ay / dt_win + lo[_LP_RB] - (lo[_LP_R] * bias[0] + lo[_LP_R + 1] * bias[1] + lo[_LP_R + 2] * bias[2])
    ey = ax / dt_win + lo[_LP_RB + 1] - (lo[_LP_R + 3] * bias[0] + lo[_LP_R + 4] * bias[1] + lo[_LP_R + 5] * bias[2])
    return True, ex, ey


@njit(cache=True, inline="always")
def _bias_step(s, st, measured: bool, ex: float, ey: float) -> None:
    """Gyroscope bias: Kalman filter, state = bias (sensor frame), covariance bias_p, measurement e = y - H·b_hat:
    at rest the low-pass gyroscope, in motion the inclination correction (ex, ey)."""
    p, bias = st.bias_p, st.bias_rad_s
    for i in range(3):
        if p[i, i] < s.bias_p0:  # uncertainty grows with time, up to its prior
            p[i, i] += s.bias_v
    h, e, w_diag = st.kf_h, st.kf_e, st.kf_w
    if st.at_rest and s.rest_bias_est:
        for i in range(3):
            for j in range(3):
                h[i, j] = 1.0 if i == j else 0.0
            e[i] = st.rest_gyr_lp_rad_s[i] - bias[i]
            w_diag[i] = s.bias_w_rest
    elif measured and s.motion_bias_est:
        for i in range(3):
            for j in range(3):
                h[i, j] = st.lp_out[_LP_R + 3 * i + j]
        e[0], e[1] = ex, ey
        # Pseudo-measurement "vertical bias component = 0", very uncertain: it only keeps that unobservable
        # component (and its variance) from wandering.
        e[2] = -(h[2, 0] * bias[0] + h[2, 1] * bias[1] + h[2, 2] * bias[2])
        w_diag[0] = w_diag[1] = s.bias_w_motion
        w_diag[2] = s.bias_w_motion / s.bias_vertical_forgetting
    else:
        return
    _kalman_update(p, bias, h, e, w_diag, s.bias_clip_rad_s, st.kf_work)


@njit(cache=True)
def _kalman_update(p, x, h, e, w_diag, clip, work) -> None:
    """x += K·clip(e), P -= K·H·P with K = P·Hᵀ·(H·P·Hᵀ + W)⁻¹; 3 states, 3 measurements, W diagonal.

    work is (4, 3, 3) scratch; nothing is allocated."""
    pht, s_mat, s_inv, kg = work[0], work[1], work[2], work[3]
    for i in range(3):
        e[i] = min(max(e[i], -clip), clip)
        for j in range(3):
            pht[i, j] = p[i, 0] * h[j, 0] + p[i, 1] * h[j, 1] + p[i, 2] * h[j, 2]
    for i in range(3):
        for j in range(3):
            s_mat[i, j] = h[i, 0] * pht[0, j] + h[i, 1] * pht[1, j] + h[i, 2] * pht[2, j]
        s_mat[i, i] += w_diag[i]
    _inv3(s_mat, s_inv)
    for i in range(3):
        for j in range(3):
            kg[i, j] = pht[i, 0] * s_inv[0, j] + pht[i, 1] * s_inv[1, j] + pht[i, 2] * s_inv[2, j]
    for i in range(3):
        x[i] = min(max(x[i] + kg[i, 0] * e[0] + kg[i, 1] * e[1] + kg[i, 2] * e[2], -clip), clip)
    # P -= K (H P) = K (P Hᵀ)ᵀ; symmetric by construction, averaged against round-off
    for i in range(3):
        for j in range(3):
            s_mat[i, j] = kg[i, 0] * pht[j, 0] + kg[i, 1] * pht[j, 1] + kg[i, 2] * pht[j, 2]
    for i in range(3):
        for j in range(i, 3):
            d = 0.5 * (s_mat[i, j] + s_mat[j, i])
            p[i, j] -= d
            if j != i:
                p[j, i] = p[i, j]


@njit(cache=True)
def _inv3(m, out) -> None:
    """Inverse of a 3x3 matrix by its adjugate (symmetric positive definite here), written to out."""
    out[0, 0] = m[1, 1] * m[2, 2] - m[1, 2] * m[2, 1]
    out[0, 1] = m[0, 2] * m[2, 1] - m[0, 1] * m[2, 2]
    out[0, 2] = m[0, 1] * m[1, 2] - m[0, 2] * m[1, 1]
    out[1, 0] = m[1, 2] * m[2, 0] - m[1, 0] * m[2, 2]
    out[1, 1] = m[0, 0] * m[2, 2] - m[0, 2] * m[2, 0]
    out[1, 2] = m[0, 2] * m[1, 0] - m[0, 0] * m[1, 2]
    out[2, 0] = m[1, 0] * m[2, 1] - m[1, 1] * m[2, 0]
    out[2, 1] = m[0, 1] * m[2, 0] - m[0, 0] * m[2, 1]
    out[2, 2] = m[0, 0] * m[1, 1] - m[0, 1] * m[1, 0]
    inv_det = 1.0 / (m[0, 0] * out[0, 0] + m[0, 1] * out[1, 0] + m[0, 2] * out[2, 0])
    for i in range(3):
        for j in range(3):
            out[i, j] *= inv_det


@njit(cache=True, inline="always")
def _get3(a):
    return a[0], a[1], a[2]


@njit(cache=True, inline="always")
def _get4(a):
    return a[0], a[1], a[2], a[3]


@njit(cache=True, inline="always")
def _get9(a):
    return a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8]


@njit(cache=True, inline="always")
def _put3(a, t) -> None:
    a[0], a[1], a[2] = t[0], t[1], t[2]


@njit(cache=True, inline="always")
def _put4(a, t) -> None:
    a[0], a[1], a[2], a[3] = t[0], t[1], t[2], t[3]


@njit(cache=True, inline="always")
def _put9(a, t) -> None:
    a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8] = t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], t[8]


_NO_FLAGS = np.empty(0, np.uint8)
_NO_TRACE = np.empty((0, 3))


class Fusion:
    """Causal orientation filter for live blocks (and whole arrays): see the module docstring.

        fusion = Fusion(fs_hz=100.0)            # keyword overrides of DEFAULT_SETTINGS, e.g. tau_acc_s=3.0
        q_sensor_to_earth = fusion.update(acc_sensor_m_s2, gyr_sensor_rad_s)   # (n, 4), per block
        fusion.bias_rad_s, fusion.at_rest, fusion.flags                         # why it did what it did

    Blocks of any size give the same result as one call on the whole recording, bit for bit.
    """

    def __init__(self, fs_hz: float, **settings):
        self.settings = make_settings(fs_hz, **settings)
        self.state = make_state(self.settings)
        self.flags = _NO_FLAGS  # FLAG_* per sample of the last block (uint8)
        self.bias_trace_rad_s = _NO_TRACE  # bias in use per sample of the last block, if trace=True

    @property
    def fs_hz(self) -> float:
        return float(self.settings[0]["fs_hz"])

    def reset(self) -> None:
        """Forget everything (orientation, bias, rest); settings are kept."""
        self.state = make_state(self.settings)

    def update(self, acc_sensor_m_s2, gyr_sensor_rad_s, mag_sensor_uT=None, *, out: np.ndarray | None = None,
               trace: bool = False) -> np.ndarray:
        """Feed a block of n samples; returns q_sensor_to_earth (n, 4) (written into ``out`` if given).

        Also sets ``self.flags`` (n,) and, with trace=True, ``self.bias_trace_rad_s`` (n, 3)."""
        refuse_magnetometer(mag_sensor_uT)
        acc = as_samples("acc_sensor_m_s2", acc_sensor_m_s2)
        gyr = as_samples("gyr_sensor_rad_s", gyr_sensor_rad_s, len(acc))
        n = len(acc)
        if out is None:
            out = np.empty((n, 4))
        elif out.shape != (n, 4) or out.dtype != np.float64 or not out.flags.c_contiguous:
            raise InvalidValueError(f"out: expected a C-contiguous float64 array of shape {(n, 4)}, got {out.dtype} "
                             f"{out.shape}")
        if len(self.flags) != n:
            self.flags = np.empty(n, np.uint8)
        bias_trace = _NO_TRACE
        if trace:
            if len(self.bias_trace_rad_s) != n:
                self.bias_trace_rad_s = np.empty((n, 3))
            bias_trace = self.bias_trace_rad_s
        fusion_update(self.settings, self.state, acc, gyr, out, self.flags, bias_trace, _NO_TRACE)
        return out

    # Internal states, for the live plot and tests.
    @property
    def bias_rad_s(self) -> np.ndarray:
        """Gyroscope bias estimate (3,), sensor frame, rad/s (a copy)."""
        return self.state[0]["bias_rad_s"].copy()

    @property
    def bias_sigma_rad_s(self) -> np.ndarray:
        """Standard deviation of the bias estimate per sensor axis (3,), rad/s."""
        return np.sqrt(np.diag(self.state[0]["bias_p"]))

    @property
    def at_rest(self) -> bool:
        return bool(self.state[0]["at_rest"])

    @property
    def initialised(self) -> bool:
        """Inclination set from the accelerometer (and its low-pass past its first time constant)."""
        r = self.state[0]
        return bool(r["initialised"]) and r["lp_windows"] >= self.settings[0]["acc_lp_warmup_windows"]

    @property
    def acc_earth(self) -> np.ndarray:
        """Direction of the filtered gravity in the earth frame before the last correction (unit, (3,))."""
        return self.state[0]["acc_earth"].copy()

    @property
    def turning(self) -> bool:
        """The turn gate holds the accelerometer out (turn_rate_rad_s)."""
        return bool(self.state[0]["turning"])

    @property
    def turn_rate_deg_s(self) -> float:
        """Low-passed angular rate about the earth's vertical, °/s (+ = counter-clockwise); 0 with the gate off."""
        return math.degrees(self.state[0]["turn_rate_rad_s"])

    @property
    def counts(self) -> dict:
        """Samples seen, and those with an invalid gyroscope, invalid or rejected accelerometer."""
        r = self.state[0]
        return {k: int(r[k]) for k in ("n_samples", "n_gyr_invalid", "n_acc_invalid", "n_acc_rejected",
                                       "n_turn_windows")}
