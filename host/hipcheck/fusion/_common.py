"""What the causal and the offline filter share: input arrays, the gyroscope step, and small quaternion products.

Quaternions are (w, x, y, z) scalars here, not arrays, so that numba keeps them in registers; ``hipcheck.rotation``
holds the array forms for the rest of the library.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from hipcheck.errors import InvalidValueError
from hipcheck.filters import butter2_coefficients


def as_samples(name: str, x, n: int | None = None) -> np.ndarray:
    """(n, 3) float64 C-contiguous view (or copy if it must), with a clear error otherwise."""
    a = np.ascontiguousarray(x, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != 3:
        raise InvalidValueError(f"{name}: expected shape (n, 3), got {a.shape}")
    if n is not None and a.shape[0] != n:
        raise InvalidValueError(f"{name}: {a.shape[0]} samples, but the accelerometer has {n}; pass blocks of equal "
                                "length")
    return a


def refuse_magnetometer(mag) -> None:
    if mag is not None:
        raise InvalidValueError("hipcheck.fusion is 6D (accelerometer + gyroscope) for now: pass mag_sensor_uT=None;"
                                " the heading of its output is arbitrary and drifts slowly")


def lowpass_coefficients(tau_s: float, dt_s: float, c_out: np.ndarray) -> None:
    """The paper's accelerometer low-pass: second-order Butterworth of cut-off √2/(2π·tau), capped below Nyquist,
    at the sample period dt_s; coefficients for hipcheck.filters into c_out (3,)."""
    fc_hz = math.sqrt(2.0) / (2.0 * math.pi * tau_s)
    butter2_coefficients(min(fc_hz * dt_s, 0.49), c_out)


@njit(cache=True, inline="always")
def gyro_valid(gx: float, gy: float, gz: float, limit: float) -> bool:
    """A gyro sample fit to integrate: finite, and within ±limit on every axis."""
    return abs(gx) < limit and abs(gy) < limit and abs(gz) < limit  # false for NaN too


@njit(cache=True, inline="always")
def gyro_step(g0: float, g1: float, g2: float, g3: float, tx: float, ty: float,
              tz: float) -> tuple[float, float, float, float]:
    """q ⊗ exp(θ/2) for the rotation vector θ = (tx, ty, tz) of one gyro sample (rad), not renormalised: the series
    of cos(|θ|/2) and sin(|θ|/2)/|θ| to |θ|⁴, exact to 1e-12 for |θ| < 0.1 rad (2000 °/s at 400 Hz is 0.087)."""
    t2 = tx * tx + ty * ty + tz * tz
    c = 1.0 - t2 * (0.125 - t2 * (1.0 / 384.0))
    sk = 0.5 - t2 * (1.0 / 48.0 - t2 * (1.0 / 3840.0))
    dx, dy, dz = sk * tx, sk * ty, sk * tz
    return (g0 * c - g1 * dx - g2 * dy - g3 * dz,
            g0 * dx + g1 * c + g2 * dz - g3 * dy,
            g0 * dy - g1 * dz + g2 * c + g3 * dx,
            g0 * dz + g1 * dy - g2 * dx + g3 * c)


@njit(cache=True, inline="always")
def swing_to_up(ax: float, ay: float, az: float) -> tuple[float, float, float, float]:
    """The smallest rotation that turns the unit vector (ax, ay, az) onto +z (axis a × z), as (w, x, y, z)."""
    if az > -0.999999:
        w = 1.0 + az
        k = 1.0 / math.sqrt(2.0 * w)  # |(1 + az, ay, -ax, 0)|² = 2(1 + az) for a unit vector
        return w * k, ay * k, -ax * k, 0.0
    return 0.0, 1.0, 0.0, 0.0  # upside down: any horizontal axis will do


@njit(cache=True, inline="always")
def rotate(w: float, x: float, y: float, z: float, vx: float, vy: float,
           vz: float) -> tuple[float, float, float]:
    """The vector v turned by the unit quaternion q: v + 2w(u×v) + 2u×(u×v), u = (x, y, z)."""
    tx = 2.0 * (y * vz - z * vy)
    ty = 2.0 * (z * vx - x * vz)
    tz = 2.0 * (x * vy - y * vx)
    return (vx + w * tx + y * tz - z * ty,
            vy + w * ty + z * tx - x * tz,
            vz + w * tz + x * ty - y * tx)


@njit(cache=True, inline="always")
def multiply(a0: float, a1: float, a2: float, a3: float, b0: float, b1: float, b2: float,
             b3: float) -> tuple[float, float, float, float]:
    """a ⊗ b."""
    return (a0 * b0 - a1 * b1 - a2 * b2 - a3 * b3,
            a0 * b1 + a1 * b0 + a2 * b3 - a3 * b2,
            a0 * b2 - a1 * b3 + a2 * b0 + a3 * b1,
            a0 * b3 + a1 * b2 - a2 * b1 + a3 * b0)


@njit(cache=True, inline="always")
def swing_times(c0: float, c1: float, c2: float, b0: float, b1: float, b2: float,
                b3: float) -> tuple[float, float, float, float]:
    """c ⊗ b for a c without z part (a swing from swing_to_up): the three terms of c3 left out."""
    return (c0 * b0 - c1 * b1 - c2 * b2,
            c0 * b1 + c1 * b0 + c2 * b3,
            c0 * b2 - c1 * b3 + c2 * b0,
            c0 * b3 + c1 * b2 - c2 * b1)


@njit(cache=True, inline="always")
def turned_ahead(o0: float, o1: float, o2: float, o3: float, lx: float, ly: float,
                 lz: float) -> tuple[float, float, float, float]:
    """o ⊗ (1, l), renormalised: o turned by the small angle 2|l| (first order; the output lead)."""
    p0 = o0 - o1 * lx - o2 * ly - o3 * lz
    p1 = o0 * lx + o1 + o2 * lz - o3 * ly
    p2 = o0 * ly - o1 * lz + o2 + o3 * lx
    p3 = o0 * lz + o1 * ly - o2 * lx + o3
    f = 1.0 / math.sqrt(p0 * p0 + p1 * p1 + p2 * p2 + p3 * p3)
    return p0 * f, p1 * f, p2 * f, p3 * f
