"""Physical constants and sensor scales, defined once for the host side.

The sensor scales live here, not in the wire format's module, because the signal stages use them too (saturation,
plausibility, simulated quantisation) and must not import device I/O; ``hipcheck.protocol`` takes them from here.
"""

import math

import numpy as np

GRAVITY_M_S2 = 9.80665  # standard gravity; the wire format and the simulator use this value
DEG_PER_RAD = 180.0 / math.pi
RAD_PER_DEG = math.pi / 180.0

# The widest range of common MEMS gyroscopes, ±2000 °/s (34.9 rad/s): a real rotation reads within it. The
# plausibility limits of the input checks (hipcheck.inputs) and of the fusion derive from it.
GYR_WIDEST_RANGE_DPS = 2000.0
GYR_WIDEST_RANGE_RAD_S = GYR_WIDEST_RANGE_DPS * RAD_PER_DEG

# Fixed sample scales of the wire format: every sample is sent in these units whatever range the chip is set to.
# They are the widest ranges (±16 g, ±2000 °/s), so that no chip's reading is clipped on the wire.
ACC_FULL_SCALE_G = 16.0
GYR_FULL_SCALE_DPS = GYR_WIDEST_RANGE_DPS
ACC_LSB_M_S2 = ACC_FULL_SCALE_G * GRAVITY_M_S2 / 32768.0  # 1/2048 g per LSB
GYR_LSB_RAD_S = GYR_FULL_SCALE_DPS * RAD_PER_DEG / 32768.0  # 0.06103515625 deg/s per LSB

_INT16 = np.iinfo(np.int16)


def to_raw(values, lsb: float) -> np.ndarray:
    """Physical values to int16 wire integers of step `lsb`: rounded to nearest (ties to even), clipped to int16."""
    return np.clip(np.rint(np.asarray(values, dtype=np.float64) / lsb), _INT16.min, _INT16.max).astype(np.int16)
