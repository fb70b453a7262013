"""The second-order Butterworth filter shared by the signal stages (fusion: low-pass; hold: low- and high-pass).

Bilinear transform with prewarping, in the state-variable form of Simper (2013, "Linear trapezoidal integrated
state variable filter", Cytomic technical paper): the same response as the direct-form biquad, but its second
state is the low-pass output itself, so that a low-pass starts (or restarts) at a given value without a transient
(state = (0, value)), and one state gives the low-pass and the high-pass alike. Coefficients c (3,) come from
``butter2_coefficients``; a filter's state is a float64 array (2,), zero for a filter at rest at 0.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["butter2_coefficients", "butter2_lowpass", "butter2_highpass"]

_K = math.sqrt(2.0)  # 1/Q of a Butterworth pair of poles


@njit(cache=True)
def butter2_coefficients(fc_per_sample: float, c_out: np.ndarray) -> None:
    """Coefficients into c_out (3,) for the cut-off fc_per_sample = f_c / f_s (below 0.5)."""
    g = math.tan(math.pi * fc_per_sample)
    a1 = 1.0 / (1.0 + g * (g + math.sqrt(2.0)))
    c_out[0], c_out[1], c_out[2] = a1, g * a1, g * g * a1


@njit(cache=True, inline="always")
def butter2_lowpass(x: float, c: np.ndarray, state: np.ndarray) -> float:
    """One sample through the low-pass; state (2,) updated in place."""
    v3 = x - state[1]
    v1 = c[0] * state[0] + c[1] * v3
    v2 = state[1] + c[1] * state[0] + c[2] * v3
    state[0] = 2.0 * v1 - state[0]
    state[1] = 2.0 * v2 - state[1]
    return v2


@njit(cache=True, inline="always")
def butter2_highpass(x: float, c: np.ndarray, state: np.ndarray) -> float:
    """One sample through the high-pass (input less the low-pass and √2 × the band-pass); state (2,) in place."""
    v3 = x - state[1]
    v1 = c[0] * state[0] + c[1] * v3
    v2 = state[1] + c[1] * state[0] + c[2] * v3
    state[0] = 2.0 * v1 - state[0]
    state[1] = 2.0 * v2 - state[1]
    return x - _K * v1 - v2
