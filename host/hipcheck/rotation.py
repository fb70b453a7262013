"""Quaternion and rotation helpers, vectorised over any leading axes (numpy only).

Conventions, used throughout hipcheck:

- Quaternions are ``(w, x, y, z)``, scalar first, Hamilton product.
- ``q_a_to_b`` rotates a vector from frame a into frame b: ``v_b = q ⊗ (0, v_a) ⊗ q*``; likewise a matrix
  ``R_a_to_b @ v_a = v_b``. Chaining: ``q_a_to_c = q_b_to_c ⊗ q_a_to_b``.
- Pelvic angles follow Baker (2001, "Pelvic angles: a mathematically rigorous definition", Gait & Posture
  13:1-6): rotation, then obliquity, then tilt, intrinsic z, x', y'':
  ``R_pelvis_to_earth = Rz(rotation) · Rx(obliquity) · Ry(tilt)``, with the earth frame z up and the pelvis frame
  x anterior, y left, z superior. Signs: rotation + = pelvis turned to the left (right side forward);
  obliquity + = left side higher; tilt + = anterior tilt (superior axis tipped forward).
  Angle triples are ordered ``(rotation, obliquity, tilt)``.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "quat_multiply",
    "quat_conjugate",
    "quat_normalize",
    "quat_rotate",
    "matrix_from_quat",
    "quat_from_matrix",
    "quat_from_rotvec",
    "rotvec_from_quat",
    "quat_angle_rad",
    "quat_from_angles",
    "matrix_from_angles",
    "angles_from_matrix",
    "angles_from_quat",
    "body_rate_from_angle_rates",
    "orientation_error_earth",
    "inclination_error_rad",
    "heading_error_rad",
]


def quat_multiply(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Hamilton product ``p ⊗ q`` of quaternions of shape (..., 4); broadcasts."""
    p = np.asarray(p, dtype=float)
    q = np.asarray(q, dtype=float)
    pw, px, py, pz = np.moveaxis(p, -1, 0)
    qw, qx, qy, qz = np.moveaxis(q, -1, 0)
    return np.stack(
        [
            pw * qw - px * qx - py * qy - pz * qz,
            pw * qx + px * qw + py * qz - pz * qy,
            pw * qy - px * qz + py * qw + pz * qx,
            pw * qz + px * qy - py * qx + pz * qw,
        ],
        axis=-1,
    )


def quat_conjugate(q: np.ndarray) -> np.ndarray:
    """Conjugate (the inverse of a unit quaternion): ``q_b_to_a = quat_conjugate(q_a_to_b)``."""
    q = np.asarray(q, dtype=float)
    return q * np.array([1.0, -1.0, -1.0, -1.0])


def quat_normalize(q: np.ndarray) -> np.ndarray:
    """Scale to unit norm."""
    q = np.asarray(q, dtype=float)
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def quat_rotate(q_a_to_b: np.ndarray, v_a: np.ndarray) -> np.ndarray:
    """Rotate vectors (..., 3) from frame a into frame b; q must be unit."""
    q = np.asarray(q_a_to_b, dtype=float)
    v = np.asarray(v_a, dtype=float)
    w = q[..., :1]
    u = q[..., 1:]
    # v' = v + 2w (u × v) + 2 u × (u × v): the expanded sandwich product, cheaper than two products.
    t = 2.0 * np.cross(u, v)
    return v + w * t + np.cross(u, t)


def matrix_from_quat(q_a_to_b: np.ndarray) -> np.ndarray:
    """Rotation matrix R_a_to_b (..., 3, 3) of unit quaternions (..., 4)."""
    w, x, y, z = np.moveaxis(np.asarray(q_a_to_b, dtype=float), -1, 0)
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], axis=-1),
            np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], axis=-1),
            np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], axis=-1),
        ],
        axis=-2,
    )


def quat_from_matrix(R_a_to_b: np.ndarray) -> np.ndarray:
    """Unit quaternion (..., 4) with w ≥ 0 of rotation matrices (..., 3, 3).

    Shepperd's method: builds the quaternion from whichever of w, x, y, z is largest, so that no division
    by a small number happens near 180° rotations.
    """
    R = np.asarray(R_a_to_b, dtype=float)
    m00, m11, m22 = R[..., 0, 0], R[..., 1, 1], R[..., 2, 2]
    trace = m00 + m11 + m22
    # Four times the square of each component; the largest gives the best-conditioned formula.
    candidates = np.stack([1 + trace, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], axis=-1)
    best = np.argmax(candidates, axis=-1)
    s = 2.0 * np.sqrt(np.maximum(np.take_along_axis(candidates, best[..., None], axis=-1)[..., 0], 1e-300))
    d21 = R[..., 2, 1] - R[..., 1, 2]
    d02 = R[..., 0, 2] - R[..., 2, 0]
    d10 = R[..., 1, 0] - R[..., 0, 1]
    s01 = R[..., 0, 1] + R[..., 1, 0]
    s02 = R[..., 0, 2] + R[..., 2, 0]
    s12 = R[..., 1, 2] + R[..., 2, 1]
    by_w = np.stack([s / 4, d21 / s, d02 / s, d10 / s], axis=-1)
    by_x = np.stack([d21 / s, s / 4, s01 / s, s02 / s], axis=-1)
    by_y = np.stack([d02 / s, s01 / s, s / 4, s12 / s], axis=-1)
    by_z = np.stack([d10 / s, s02 / s, s12 / s, s / 4], axis=-1)
    q = np.choose(best[..., None], [by_w, by_x, by_y, by_z])
    q = np.where(q[..., :1] < 0, -q, q)
    return quat_normalize(q)


def quat_from_rotvec(rotvec_rad: np.ndarray) -> np.ndarray:
    """Quaternion exponential: rotation by |v| rad about v/|v| (..., 3) → (..., 4). Exact also for tiny angles."""
    v = np.asarray(rotvec_rad, dtype=float)
    angle = np.linalg.norm(v, axis=-1, keepdims=True)
    half = 0.5 * angle
    # sin(half)/angle, with its series near zero so that tiny rotations stay exact.
    small = angle < 1e-4
    safe = np.where(small, 1.0, angle)
    k = np.where(small, 0.5 - angle**2 / 48.0, np.sin(half) / safe)
    return np.concatenate([np.cos(half), k * v], axis=-1)


def rotvec_from_quat(q: np.ndarray) -> np.ndarray:
    """Quaternion logarithm: rotation vector (rad, ..., 3) of unit quaternions, angle in [0, π]."""
    q = np.asarray(q, dtype=float)
    q = np.where(q[..., :1] < 0, -q, q)  # q and -q are the same rotation; take the short way
    sin_half = np.linalg.norm(q[..., 1:], axis=-1, keepdims=True)
    angle = 2.0 * np.arctan2(sin_half, q[..., :1])
    small = sin_half < 1e-12
    k = np.where(small, 2.0, angle / np.where(small, 1.0, sin_half))
    return k * q[..., 1:]


def quat_angle_rad(q: np.ndarray) -> np.ndarray:
    """Rotation angle (rad, in [0, π]) of unit quaternions; for an error quaternion, the angle between two."""
    q = np.asarray(q, dtype=float)
    return 2.0 * np.arctan2(np.linalg.norm(q[..., 1:], axis=-1), np.abs(q[..., 0]))


def quat_from_angles(angles_rad: np.ndarray) -> np.ndarray:
    """q_pelvis_to_earth (..., 4) from Baker angles (..., 3) = (rotation, obliquity, tilt) in rad."""
    a = np.asarray(angles_rad, dtype=float)
    half = 0.5 * a
    c = np.cos(half)
    s = np.sin(half)
    zero = np.zeros_like(c[..., 0])
    qz = np.stack([c[..., 0], zero, zero, s[..., 0]], axis=-1)
    qx = np.stack([c[..., 1], s[..., 1], zero, zero], axis=-1)
    qy = np.stack([c[..., 2], zero, s[..., 2], zero], axis=-1)
    return quat_multiply(quat_multiply(qz, qx), qy)


def matrix_from_angles(angles_rad: np.ndarray) -> np.ndarray:
    """R_pelvis_to_earth = Rz(rotation) · Rx(obliquity) · Ry(tilt), shape (..., 3, 3)."""
    a = np.asarray(angles_rad, dtype=float)
    cz, cx, cy = np.moveaxis(np.cos(a), -1, 0)
    sz, sx, sy = np.moveaxis(np.sin(a), -1, 0)
    return np.stack(
        [
            np.stack([cz * cy - sz * sx * sy, -sz * cx, cz * sy + sz * sx * cy], axis=-1),
            np.stack([sz * cy + cz * sx * sy, cz * cx, sz * sy - cz * sx * cy], axis=-1),
            np.stack([-cx * sy, sx, cx * cy], axis=-1),
        ],
        axis=-2,
    )


def angles_from_matrix(R_pelvis_to_earth: np.ndarray) -> np.ndarray:
    """Baker angles (..., 3) = (rotation, obliquity, tilt) in rad from R_pelvis_to_earth.

    Rotation and tilt are in (-π, π], obliquity in [-π/2, π/2]; the decomposition is singular only at
    obliquity ±90° (pelvis on its side), where rotation and tilt are not separable.
    """
    R = np.asarray(R_pelvis_to_earth, dtype=float)
    obliquity = np.arcsin(np.clip(R[..., 2, 1], -1.0, 1.0))
    tilt = np.arctan2(-R[..., 2, 0], R[..., 2, 2])
    rotation = np.arctan2(-R[..., 0, 1], R[..., 1, 1])
    return np.stack([rotation, obliquity, tilt], axis=-1)


def angles_from_quat(q_pelvis_to_earth: np.ndarray) -> np.ndarray:
    """Baker angles (..., 3) = (rotation, obliquity, tilt) in rad from q_pelvis_to_earth; see angles_from_matrix."""
    return angles_from_matrix(matrix_from_quat(q_pelvis_to_earth))


def body_rate_from_angle_rates(angles_rad: np.ndarray, angle_rates_rad_s: np.ndarray) -> np.ndarray:
    """Angular velocity of the pelvis in the pelvis frame (rad/s, (..., 3)) from Baker angles and their rates.

    ω_pelvis = vee(Rᵀ Ṙ) for R = Rz(ψ) Rx(φ) Ry(θ), (ψ, φ, θ) = (rotation, obliquity, tilt):
    ω = ψ̇ (−sin θ cos φ, sin φ, cos θ cos φ) + φ̇ (cos θ, 0, sin θ) + θ̇ (0, 1, 0).
    """
    a = np.asarray(angles_rad, dtype=float)
    r = np.asarray(angle_rates_rad_s, dtype=float)
    obliquity, tilt = a[..., 1], a[..., 2]
    d_rot, d_obl, d_tilt = r[..., 0], r[..., 1], r[..., 2]
    cos_obl = np.cos(obliquity)
    return np.stack(
        [
            -d_rot * np.sin(tilt) * cos_obl + d_obl * np.cos(tilt),
            d_rot * np.sin(obliquity) + d_tilt,
            d_rot * np.cos(tilt) * cos_obl + d_obl * np.sin(tilt),
        ],
        axis=-1,
    )


def orientation_error_earth(q_est_to_earth: np.ndarray, q_ref_to_earth: np.ndarray) -> np.ndarray:
    """Error quaternion in the earth frame, q_e = q_est ⊗ q_ref⁻¹ (..., 4): the rotation that takes the reference
    orientation to the estimate, expressed in earth coordinates (BROAD's definition: Laidig et al. 2021, Data
    6(7):72). NaN where either input is NaN."""
    return quat_multiply(q_est_to_earth, quat_conjugate(q_ref_to_earth))


def inclination_error_rad(q_est_to_earth: np.ndarray, q_ref_to_earth: np.ndarray) -> np.ndarray:
    """Inclination (tilt) part of the orientation error, rad in [0, π]: 2·acos(√(w² + z²)) of q_e.

    What is left of the error after its rotation about the vertical (earth z, which must point up in both); this
    is the only fair measure of a 6D filter, whose heading is arbitrary. Unit quaternions expected."""
    q = orientation_error_earth(q_est_to_earth, q_ref_to_earth)
    return 2.0 * np.arccos(np.clip(np.sqrt(q[..., 0] ** 2 + q[..., 3] ** 2), 0.0, 1.0))


def heading_error_rad(q_est_to_earth: np.ndarray, q_ref_to_earth: np.ndarray) -> np.ndarray:
    """Heading part of the orientation error, rad in (-π, π]: 2·atan2(z, w) of q_e, the rotation about the
    vertical (+ = estimate turned counter-clockwise seen from above)."""
    q = orientation_error_earth(q_est_to_earth, q_ref_to_earth)
    angle = 2.0 * np.arctan2(q[..., 3], q[..., 0])
    return np.where(angle > np.pi, angle - 2.0 * np.pi, np.where(angle <= -np.pi, angle + 2.0 * np.pi, angle))
