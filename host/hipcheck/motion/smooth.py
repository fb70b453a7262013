"""Smooth building blocks with exact time derivatives, for the kinematics.

Every kinematic quantity of the simulator is built from these pieces, each carried as a :class:`Jet`: its value
and its first and second time derivatives at the same instants. Derivatives then come from the chain and product
rules, exactly, on any time grid (jittered or not), so the accelerometer and gyroscope signals are consistent with
the positions and angles to rounding error. All pieces are at least C² (continuous up to the second derivative),
so the specific force never jumps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TWO_PI = 2.0 * np.pi
# Mean over x of Σ_j B(x − j)² for the uniform cubic B-spline: a spline of iid coefficients of variance σ² has
# variance 151/315 σ² on average.
SPLINE_VARIANCE_RATIO = 151.0 / 315.0


@dataclass(frozen=True, slots=True)
class Jet:
    """A signal sampled at some instants, with its first (``d1``) and second (``d2``) time derivatives."""

    value: np.ndarray
    d1: np.ndarray
    d2: np.ndarray

    @staticmethod
    def time(t_s: np.ndarray) -> Jet:
        """Time itself: value t, rate 1, no acceleration."""
        t = np.asarray(t_s, dtype=float)
        return Jet(t, np.ones_like(t), np.zeros_like(t))

    @staticmethod
    def constant(value, like: Jet) -> Jet:
        v = np.broadcast_to(np.asarray(value, dtype=float), like.value.shape).copy()
        return Jet(v, np.zeros_like(v), np.zeros_like(v))

    def __add__(self, other) -> Jet:
        if isinstance(other, Jet):
            return Jet(self.value + other.value, self.d1 + other.d1, self.d2 + other.d2)
        return Jet(self.value + other, self.d1, self.d2)

    __radd__ = __add__

    def __neg__(self) -> Jet:
        return Jet(-self.value, -self.d1, -self.d2)

    def __sub__(self, other) -> Jet:
        return self + (-other)

    def __rsub__(self, other) -> Jet:
        return (-self) + other

    def __mul__(self, other) -> Jet:
        if isinstance(other, Jet):
            return Jet(
                self.value * other.value,
                self.d1 * other.value + self.value * other.d1,
                self.d2 * other.value + 2.0 * self.d1 * other.d1 + self.value * other.d2,
            )
        return Jet(self.value * other, self.d1 * other, self.d2 * other)

    __rmul__ = __mul__

    def column(self, i: int) -> Jet:
        """Component i of a vector jet (N, k)."""
        return Jet(self.value[:, i], self.d1[:, i], self.d2[:, i])

    def compose(self, f: np.ndarray, df: np.ndarray, ddf: np.ndarray) -> Jet:
        """f(self) from f, f', f'' evaluated at self.value (chain rule)."""
        return Jet(f, df * self.d1, ddf * self.d1**2 + df * self.d2)


def stack(jets: list[Jet]) -> Jet:
    """Stack scalar jets (N,) into one vector jet (N, k)."""
    return Jet(
        np.stack([j.value for j in jets], axis=-1),
        np.stack([j.d1 for j in jets], axis=-1),
        np.stack([j.d2 for j in jets], axis=-1),
    )


def sin(x: Jet) -> Jet:
    s, c = np.sin(x.value), np.cos(x.value)
    return x.compose(s, c, -s)


def cos(x: Jet) -> Jet:
    s, c = np.sin(x.value), np.cos(x.value)
    return x.compose(c, -s, -c)


def smoothstep(u: Jet) -> Jet:
    """Quintic smoothstep: 0 for u ≤ 0, 1 for u ≥ 1, 6u⁵ − 15u⁴ + 10u³ between (C², zero rate and
    acceleration at both ends)."""
    x = np.clip(u.value, 0.0, 1.0)
    f = x**3 * (10.0 + x * (-15.0 + 6.0 * x))
    df = 30.0 * x**2 * (1.0 - x) ** 2
    ddf = 60.0 * x * (1.0 - x) * (1.0 - 2.0 * x)
    return u.compose(f, df, ddf)


def step(t: Jet, start_s: float, duration_s: float) -> Jet:
    """A smooth step from 0 to 1 over [start_s, start_s + duration_s]."""
    return smoothstep((t - start_s) * (1.0 / duration_s))


def keyframes(t: Jet, start_value: float, moves: list[tuple[float, float, float]]) -> Jet:
    """A value that starts at start_value and moves smoothly to each target in turn.

    moves: (start_s, duration_s, target) in time order; each move is a smooth step from the previous target.
    """
    out = Jet.constant(start_value, t)
    previous = start_value
    for start_s, duration_s, target in moves:
        out = out + (target - previous) * step(t, start_s, duration_s)
        previous = target
    return out


def bump(u: Jet, a: int = 3, b: int = 5) -> Jet:
    """A skewed bump on [0, 1], zero outside: u^a (1−u)^b scaled to a peak of 1 at u = a / (a + b).

    With a, b ≥ 3 it joins zero with continuous first and second derivatives.
    """
    x = np.clip(u.value, 0.0, 1.0)
    y = 1.0 - x
    u_peak = a / (a + b)
    scale = 1.0 / (u_peak**a * (1.0 - u_peak) ** b)
    p = a - (a + b) * x
    f = x**a * y**b
    df = x ** (a - 1) * y ** (b - 1) * p
    ddf = x ** (a - 2) * y ** (b - 2) * ((a - 1) * y * p - (b - 1) * x * p - (a + b) * x * y)
    return u.compose(scale * f, scale * df, scale * ddf)


def plateau(t: Jet, start_s: float, end_s: float, edge_s: float) -> Jet:
    """1 over [start_s, end_s], 0 well outside, with smooth edges of edge_s centred on start_s and end_s."""
    rise = step(t, start_s - 0.5 * edge_s, edge_s)
    fall = step(t, end_s - 0.5 * edge_s, edge_s)
    return rise - fall


@dataclass(frozen=True)
class Spline:
    """Uniform cubic B-spline s(x) = Σ_j c_j B(x − j), knots at the integers; C² everywhere.

    ``coefficients[i]`` belongs to knot ``first + i``; outside the covered range the end coefficients repeat.
    Coefficients of shape (n, k) give k splines at once (one column each), sharing the basis evaluation.
    """

    coefficients: np.ndarray
    first: int = 0

    def __call__(self, x: Jet) -> Jet:
        shape = x.value.shape
        x = Jet(x.value.ravel(), x.d1.ravel(), x.d2.ravel())
        i = np.floor(x.value).astype(np.int64)
        u = x.value - i
        v = 1.0 - u
        u2, u3 = u * u, u * u * u
        basis = np.stack([v**3, 3.0 * u3 - 6.0 * u2 + 4.0, -3.0 * u3 + 3.0 * u2 + 3.0 * u + 1.0, u3], axis=-1) / 6.0
        dbasis = np.stack([-v * v, 3.0 * u2 - 4.0 * u, -3.0 * u2 + 2.0 * u + 1.0, u2], axis=-1) * 0.5
        ddbasis = np.stack([v, 3.0 * u - 2.0, 1.0 - 3.0 * u, u], axis=-1)
        index = np.clip(i[:, None] + np.arange(-1, 3) - self.first, 0, len(self.coefficients) - 1)
        c = self.coefficients[index]  # (N, 4) or (N, 4, k)
        several = self.coefficients.ndim == 2
        pattern = "nm,nmk->nk" if several else "nm,nm->n"
        f, df, ddf = (np.einsum(pattern, b, c) for b in (basis, dbasis, ddbasis))
        if several:
            x = Jet(x.value[:, None], x.d1[:, None], x.d2[:, None])
        out = x.compose(f, df, ddf)
        out_shape = shape + self.coefficients.shape[1:]
        return Jet(out.value.reshape(out_shape), out.d1.reshape(out_shape), out.d2.reshape(out_shape))


@dataclass(frozen=True)
class BandNoise:
    """Band-limited random signal: a sum of sinusoids with random frequencies in a band and random phases.

    One frequency is drawn in each of ``n`` equal sub-bands, so the power spreads evenly over the band; all
    amplitudes are equal, scaled to the requested RMS. Exact derivatives, any duration.
    """

    freqs_hz: np.ndarray
    phases_rad: np.ndarray
    amplitude: float

    @staticmethod
    def draw(rng: np.random.Generator, rms: float, band_hz: tuple[float, float], n: int = 24) -> BandNoise:
        edges = np.linspace(band_hz[0], band_hz[1], n + 1)
        freqs = rng.uniform(edges[:-1], edges[1:])
        phases = rng.uniform(0.0, TWO_PI, n)
        return BandNoise(freqs, phases, rms * np.sqrt(2.0 / n))

    def __call__(self, t: Jet) -> Jet:
        out = Jet.constant(0.0, t)
        if self.amplitude == 0.0:
            return out
        # A loop over the sinusoids keeps memory at a few arrays of N, whatever the duration.
        for f, p in zip(self.freqs_hz, self.phases_rad):
            out = out + self.amplitude * sin(TWO_PI * f * t + p)
        return out


def integrate(rate: Jet, t_s: np.ndarray, start_value: float = 0.0) -> Jet:
    """The jet of ∫ rate dt from t_s[0], given the jet of the rate on sorted instants t_s.

    The value uses the trapezoid rule with its end correction (Euler–Maclaurin, −h²/12 · Δrate'), fourth-order
    accurate on any, even uneven, grid; the derivatives are the rate's own, exactly.
    """
    h = np.diff(t_s)
    pieces = 0.5 * h * (rate.value[1:] + rate.value[:-1]) - h**2 / 12.0 * (rate.d1[1:] - rate.d1[:-1])
    value = start_value + np.concatenate([[0.0], np.cumsum(pieces)])
    return Jet(value, rate.value, rate.d1)
