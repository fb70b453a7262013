"""Accelerometer scale, bias and axis misalignment from six or more still poses (an ellipsoid fit).

A still accelerometer reads only gravity: with readings ``a = G f + b`` (G: scale and misalignment, b: bias), the
corrected ``M (a − b)``, M = G⁻¹, has the length g in every pose, so the readings of many poses lie on an ellipsoid.
The fit finds M and b by non-linear least squares on the residuals ``|M (a_i − b)| − g`` over the poses, as in

- I. Frosio, F. Pedersini, N. A. Borghese, "Autocalibration of MEMS accelerometers", IEEE Trans. Instrum. Meas.
  58(6):2034-2041, 2009 (the model and the least-squares fit on static poses), and
- D. Tedaldi, A. Pretto, E. Menegatti, "A robust and easy to implement method for IMU calibration without external
  equipments", IEEE ICRA 2014, pp. 3042-3049 (still intervals found automatically by a variance detector;
  Levenberg-Marquardt on the same residuals).

What we changed: gravity magnitudes cannot tell a rotation of the whole frame (M and R M fit alike), so M needs a
convention. Tedaldi et al. fix it upper-triangular (the corrected x axis on the sensor's x); we take M symmetric,
the one of all R M closest to the identity (the polar decomposition), so the correction turns the frame as little
as possible; the mounting calibration takes up any rotation after it. The still poses are found with the
noise-relative detector of ``hipcheck.calibration.common`` instead of Tedaldi's initial-variance threshold.

The accelerometer's frame so corrected may still be turned from the gyroscope's by the rotational part of the
misalignment (up to a degree or two), which gravity cannot see but the turns between the poses can: the gyroscope
integrated over each turn (its bias, the mean over the still poses, taken off) must carry the corrected gravity of
one pose onto the next's. The rotation C that best does so (Gauss-Newton over the turns, Tedaldi et al.'s gyroscope
step reduced to the frame rotation: the gyroscope's own scale is left as it is) is put in front of M, so the
corrected accelerometer shares the gyroscope's frame, as the fusion assumes: ``acc_matrix = C · M``. Without turns
about at least two axes, or when the turns disagree with the gyroscope by more than ``TURN_RESIDUAL_MAX_DEG`` (a
saturated or uncalibrated gyroscope), C stays the identity and ``gyro_alignment_deg`` is null.

With fewer than ``FULL_MODEL_MIN_POSES`` distinct poses the off-diagonal terms are not determined (the six faces of
a cube give no product of two axes), so M is diagonal: scale and bias only ('scale_bias'); the misalignment of a
consumer part (tenths of a degree to 2°) then changes the scales by less than 0.1 %.

Quality figures: the residuals over the poses (how well the ellipsoid fits) and the standard deviations of bias and
scale from the fit's covariance, σ² (JᵀJ)⁻¹ with σ the larger of the residual scatter and the noise of a pose mean.
``acc_scale`` is rotation-free: row i of G = M⁻¹ is what axis i reads per unit acceleration, and its length is the
axis's scale whatever the convention; ``misalignment_deg`` are the departures from 90° between the rows.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from hipcheck.calibration.common import (
    ACC_NOISE_UG_RTHZ,
    GYR_NOISE_MDPS_RTHZ,
    STILL_NOISE_FACTOR,
    CalibrationRefused,
    check_samples,
    jsonable,
    noise_sd,
    still_runs,
)
from hipcheck.motion.poses import ACCEL_POSES, FACE_POSES, pose_up_sensor
from hipcheck.rotation import matrix_from_quat, quat_from_rotvec, quat_multiply, quat_normalize
from hipcheck.units import DEG_PER_RAD, GRAVITY_M_S2

__all__ = ["AccelCalibration", "estimate_accel", "FULL_MODEL_MIN_POSES"]

FULL_MODEL_MIN_POSES = 9  # 9 parameters: 6 of a symmetric M, 3 of the bias
MIN_POSE_S = 1.0
_EDGE_S = 0.2  # trimmed from each end of a still stretch
SAME_POSE_DEG = 10.0  # two still stretches this close in direction are one pose put down twice
# A face counts as covered by a pose within this angle of it: an edge pose at 45° covers both its faces.
FACE_COVER_DEG = 50.0
NAME_WITHIN_DEG = 20.0  # a pose gets the name of the nearest named pose within this, else 'tilted'
RESIDUAL_MAX_M_S2 = 0.05  # a good fit leaves a few mm/s²; more means a pose was not still or not on its own
TURN_RESIDUAL_MAX_DEG = 5.0  # a 1 % gyroscope scale error leaves ~1° over a half turn
# C must be seen in every direction: its weakest direction moves the turns' residuals by at least this fraction of
# its angle (RMS over the turns). A turn by θ about n sees a frame rotation c by about 2 sin(θ/2) |c × n|-ish, so
# this asks for turns of 20° or more about two different axes.
TURN_MIN_SENSITIVITY = 0.35
SCALE_PLAUSIBLE = (0.8, 1.25)
BIAS_PLAUSIBLE_M_S2 = 2.5  # a quarter of g: no MEMS part is that far off
_NUMBERS = ("no", "one", "two", "three", "four", "five")  # "only three poses"
_REDO = ("put the sensor down still for 2 s on each face (x, y and z up and down) and on a few edges, and redo the "
         "accel step")


@dataclass(frozen=True)
class AccelCalibration:
    """The accelerometer correction ``corrected = acc_matrix @ (raw − acc_bias_m_s2)`` and how it was found."""

    acc_matrix: np.ndarray  # (3, 3) C · M: M symmetric (diagonal for 'scale_bias'), C onto the gyroscope's frame
    acc_bias_m_s2: np.ndarray  # (3,)
    acc_scale: np.ndarray  # (3,) what each axis reads per unit true acceleration along it (1.05: 5 % high)
    misalignment_deg: np.ndarray  # (3,) departures from 90° of the axis pairs x-y, x-z, y-z
    model: str  # 'full' or 'scale_bias'
    poses: tuple[str, ...]  # the distinct poses found, named
    pose_start_s: np.ndarray  # first still stretch of each pose
    pose_s: np.ndarray  # still time of each pose
    residual_rms_m_s2: float  # | |corrected| − g | over the poses
    residual_max_m_s2: float
    bias_sd_m_s2: np.ndarray  # (3,)
    scale_sd: np.ndarray  # (3,)
    gyro_alignment_deg: float = float("nan")  # angle of C; NaN when the turns could not give it
    turn_residual_deg: float = float("nan")  # RMS disagreement of the turns with the gyroscope, after C

    def apply(self, acc_m_s2) -> np.ndarray:
        return (np.asarray(acc_m_s2, dtype=float) - self.acc_bias_m_s2) @ self.acc_matrix.T

    def to_dict(self) -> dict:
        """JSON-ready, the names of docs/calibration.md."""
        return jsonable({"acc_matrix": self.acc_matrix, "acc_bias_m_s2": self.acc_bias_m_s2,
                         "acc_scale": self.acc_scale, "misalignment_deg": self.misalignment_deg, "model": self.model,
                         "poses": list(self.poses), "pose_start_s": self.pose_start_s, "pose_s": self.pose_s,
                         "residual_rms_m_s2": self.residual_rms_m_s2, "residual_max_m_s2": self.residual_max_m_s2,
                         "bias_sd_m_s2": self.bias_sd_m_s2, "scale_sd": self.scale_sd,
                         "gyro_alignment_deg": self.gyro_alignment_deg, "turn_residual_deg": self.turn_residual_deg})


def estimate_accel(acc_m_s2, gyr_rad_s, fs_hz: float, *, min_pose_s: float = MIN_POSE_S, model: str = "auto",
                   acc_noise_ug_rthz: float = ACC_NOISE_UG_RTHZ,
                   gyr_noise_mdps_rthz: float = GYR_NOISE_MDPS_RTHZ) -> AccelCalibration:
    """Scale, bias and misalignment from a recording of the sensor put down still in six or more poses.

    The still poses are found in the recording; at least each face direction (x, y, z up and down) must be covered
    (an edge pose covers its two faces). model: 'auto' (full 3x3 with FULL_MODEL_MIN_POSES distinct poses or more,
    else scale and bias), 'full' or 'scale_bias'. Raises CalibrationRefused (step 'accel') naming the missing poses,
    or when the poses disagree.
    """
    if model not in ("auto", "full", "scale_bias"):
        raise CalibrationRefused(f"model={model!r}: use 'auto', 'full' or 'scale_bias'", "accel")
    acc, gyr = check_samples(acc_m_s2, gyr_rad_s, fs_hz, "accel")
    acc_sd, gyr_sd = noise_sd(fs_hz, acc_noise_ug_rthz, gyr_noise_mdps_rthz)
    runs = still_runs(acc, gyr, fs_hz, STILL_NOISE_FACTOR * acc_sd, STILL_NOISE_FACTOR * gyr_sd,
                      min_pose_s + 2 * _EDGE_S)
    means, starts, lengths = _poses(acc, runs, fs_hz)
    names = tuple(_name(m) for m in means)
    _check_coverage(means, names)
    full = model == "full" or (model == "auto" and len(means) >= FULL_MODEL_MIN_POSES)
    if full and len(means) < FULL_MODEL_MIN_POSES:
        raise CalibrationRefused(f"only {len(means)} distinct poses: the full model needs {FULL_MODEL_MIN_POSES}; "
                                 f"{_REDO}", "accel")
    pose_noise = acc_sd / np.sqrt(np.maximum(lengths * fs_hz, 1.0))
    M, b, cov, residuals = _fit(means, full, pose_noise)
    result = _result(M, b, cov, residuals, full, names, starts, lengths)
    C, alignment_deg, residual_deg = _gyro_alignment(acc, gyr, runs, fs_hz, M, b)
    return dataclasses.replace(result, acc_matrix=C @ M, gyro_alignment_deg=alignment_deg,
                               turn_residual_deg=residual_deg)


def _gyro_alignment(acc, gyr, runs, fs_hz, M, b) -> tuple[np.ndarray, float, float]:
    """C (3, 3) turning the corrected accelerometer frame onto the gyroscope's, its angle and the turns' RMS
    residual (degrees); the identity and NaN when the turns cannot tell."""
    edge = int(round(_EDGE_S * fs_hz))
    parts = [(start + edge, stop - edge) for start, stop in runs]
    still = np.concatenate([np.arange(a, z) for a, z in parts])
    bias = gyr[still].mean(axis=0)
    ups = np.array([M @ (acc[a:z].mean(axis=0) - b) for a, z in parts])
    ups /= np.linalg.norm(ups, axis=1, keepdims=True)
    turns = np.array([_integrated(gyr[z0 - 1:a1 + 1] - bias, fs_hz) for (_, z0), (a1, _) in zip(parts, parts[1:])])
    if len(turns) < 2:
        return np.eye(3), float("nan"), float("nan")
    # Still before and after a turn R (body frame): u_after = Rᵀ u_before, in the gyroscope's frame: C u.
    c = np.zeros(3)
    for _ in range(10):
        r, J = _turn_residuals(c, ups, turns)
        c = c - np.linalg.lstsq(J, r, rcond=None)[0]
    r, J = _turn_residuals(c, ups, turns)
    residual_deg = float(np.sqrt(np.mean(r.reshape(-1, 3) ** 2) * 3) * DEG_PER_RAD)
    weakest = float(np.sqrt(np.linalg.eigvalsh(J.T @ J)[0] / len(turns)))
    if residual_deg > TURN_RESIDUAL_MAX_DEG or weakest < TURN_MIN_SENSITIVITY:
        return np.eye(3), float("nan"), residual_deg
    return matrix_from_quat(quat_from_rotvec(c)), float(np.linalg.norm(c) * DEG_PER_RAD), residual_deg


def _integrated(gyr: np.ndarray, fs_hz: float) -> np.ndarray:
    """R (3, 3) of the rotation the rates (rad/s, body frame) make from their first sample to their last."""
    q = np.array([1.0, 0.0, 0.0, 0.0])
    for step in quat_from_rotvec(0.5 * (gyr[1:] + gyr[:-1]) / fs_hz):
        q = quat_multiply(q, step)
    return matrix_from_quat(quat_normalize(q))


def _turn_residuals(c, ups, turns):
    """Residuals C u_after − Rᵀ C u_before of all turns (flattened) and their Jacobian in c (numerical)."""
    def residuals(c):
        C = matrix_from_quat(quat_from_rotvec(c))
        before, after = ups[:-1] @ C.T, ups[1:] @ C.T
        return (after - np.einsum("kji,kj->ki", turns, before)).ravel()

    r = residuals(c)
    J = np.column_stack([(residuals(c + dc) - r) / 1e-7 for dc in np.eye(3) * 1e-7])
    return r, J


def _poses(acc, runs, fs_hz):
    """Mean reading, first start (s) and total still time (s) of each distinct pose."""
    edge = int(round(_EDGE_S * fs_hz))
    groups: list[list] = []  # [sum, count, first start, direction]
    for start, stop in runs:
        segment = acc[start + edge:stop - edge]
        mean = segment.mean(axis=0)
        direction = mean / np.linalg.norm(mean)
        for group in groups:
            if np.degrees(np.arccos(np.clip(direction @ group[3], -1.0, 1.0))) < SAME_POSE_DEG:
                group[0] = group[0] + segment.sum(axis=0)
                group[1] += len(segment)
                break
        else:
            groups.append([segment.sum(axis=0), len(segment), start / fs_hz, direction])
    means = np.array([g[0] / g[1] for g in groups]).reshape(-1, 3)
    return means, np.array([g[2] for g in groups]), np.array([g[1] / fs_hz for g in groups])


def _name(mean: np.ndarray) -> str:
    direction = mean / np.linalg.norm(mean)
    best = max(ACCEL_POSES, key=lambda name: float(pose_up_sensor(name) @ direction))
    off_deg = np.degrees(np.arccos(np.clip(pose_up_sensor(best) @ direction, -1.0, 1.0)))
    return best if off_deg <= NAME_WITHIN_DEG else "tilted"


def _check_coverage(means: np.ndarray, names: tuple[str, ...]) -> None:
    directions = means / np.linalg.norm(means, axis=1, keepdims=True) if len(means) else np.zeros((0, 3))
    cos_cover = np.cos(np.radians(FACE_COVER_DEG))
    order = ("x up", "y up", "z up", "x down", "y down", "z down")
    missing = [face for face in order if not np.any(directions @ pose_up_sensor(face) >= cos_cover)]
    if not missing:
        return
    if not len(means):
        raise CalibrationRefused(f"no still pose found (the sensor never lay still for {MIN_POSE_S:g} s): {_REDO}",
                                 "accel")
    count = _NUMBERS[len(means)] if len(means) < len(_NUMBERS) else str(len(means))
    found = f" ({', '.join(names)})" if names else ""
    lead = f"only {count} poses{found}:" if len(means) < len(FACE_POSES) else f"{count} poses{found}, but"
    raise CalibrationRefused(f"{lead} missing {', '.join(missing)}: {_REDO}", "accel")


def _fit(means: np.ndarray, full: bool, pose_noise: np.ndarray):
    """Levenberg-Marquardt on r_i = |M (a_i − b)| − g; M symmetric (full) or diagonal. Returns M, b, the
    parameters' covariance and the residuals."""
    g = GRAVITY_M_S2
    p = np.zeros(9 if full else 6)
    p[:3] = g / np.mean(np.linalg.norm(means, axis=1))
    lam = 1e-3
    r, J = _residuals(p, means, full)
    for _ in range(100):
        H = J.T @ J
        step = np.linalg.solve(H + lam * np.diag(np.diag(H)), -J.T @ r)
        r_new, J_new = _residuals(p + step, means, full)
        if r_new @ r_new < r @ r:
            p, r, J, lam = p + step, r_new, J_new, lam * 0.3
            if np.max(np.abs(step)) < 1e-12:
                break
        else:
            lam *= 10.0
            if lam > 1e12:
                break
    dof = len(means) - len(p)
    sigma2 = max(float(r @ r) / dof if dof > 0 else 0.0, float(np.mean(pose_noise**2)))
    cov = sigma2 * np.linalg.pinv(J.T @ J)
    M, b = _unpack(p, full)
    return M, b, cov, r


def _unpack(p: np.ndarray, full: bool) -> tuple[np.ndarray, np.ndarray]:
    M = np.diag(p[:3])
    if full:
        M[0, 1] = M[1, 0] = p[3]
        M[0, 2] = M[2, 0] = p[4]
        M[1, 2] = M[2, 1] = p[5]
    return M, p[-3:]


def _residuals(p, means, full):
    M, b = _unpack(p, full)
    d = means - b
    v = d @ M.T
    norm = np.linalg.norm(v, axis=1)
    u = v / norm[:, None]
    columns = [u[:, 0] * d[:, 0], u[:, 1] * d[:, 1], u[:, 2] * d[:, 2]]
    if full:
        columns += [u[:, 0] * d[:, 1] + u[:, 1] * d[:, 0], u[:, 0] * d[:, 2] + u[:, 2] * d[:, 0],
                    u[:, 1] * d[:, 2] + u[:, 2] * d[:, 1]]
    J = np.column_stack(columns + list((-u @ M).T))
    return norm - GRAVITY_M_S2, J


def _scale_and_misalignment(M: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    G = np.linalg.inv(M)
    scale = np.linalg.norm(G, axis=1)
    rows = G / scale[:, None]
    pairs = ((0, 1), (0, 2), (1, 2))
    misalignment = np.array([90.0 - np.degrees(np.arccos(np.clip(rows[i] @ rows[j], -1.0, 1.0))) for i, j in pairs])
    return scale, misalignment


def _result(M, b, cov, residuals, full, names, starts, lengths) -> AccelCalibration:
    scale, misalignment = _scale_and_misalignment(M)
    low, high = SCALE_PLAUSIBLE
    if np.any(scale < low) or np.any(scale > high) or np.any(np.abs(b) > BIAS_PLAUSIBLE_M_S2):
        raise CalibrationRefused(f"scale {np.round(scale, 3).tolist()} and bias {np.round(b, 2).tolist()} m/s² are no "
                                 "accelerometer's: check the unit (m/s²) and that each pose was still; "
                                 f"{_REDO}", "accel")
    residual_rms = float(np.sqrt(np.mean(residuals**2)))
    worst = int(np.argmax(np.abs(residuals)))
    if residual_rms > RESIDUAL_MAX_M_S2:
        raise CalibrationRefused(f"the poses disagree by {abs(residuals[worst]):.2f} m/s² (the {names[worst]} pose at "
                                 f"{starts[worst]:.1f} s): a pose was not still or the sensor was held; {_REDO}",
                                 "accel")
    # Scale's sd through a numerical Jacobian of the rotation-free scale on the fitted parameters.
    n = cov.shape[0]
    p = np.concatenate([np.diag(M), [M[0, 1], M[0, 2], M[1, 2]] if full else [], b])
    Js = np.empty((3, n))
    for k in range(n):
        dp = np.zeros(n)
        dp[k] = 1e-7
        Js[:, k] = (_scale_and_misalignment(_unpack(p + dp, full)[0])[0] - scale) / 1e-7
    return AccelCalibration(
        acc_matrix=M, acc_bias_m_s2=b, acc_scale=scale, misalignment_deg=misalignment,
        model="full" if full else "scale_bias", poses=names, pose_start_s=starts, pose_s=lengths,
        residual_rms_m_s2=residual_rms, residual_max_m_s2=float(abs(residuals[worst])),
        bias_sd_m_s2=np.sqrt(np.diag(cov)[-3:]), scale_sd=np.sqrt(np.diag(Js @ cov @ Js.T)))
