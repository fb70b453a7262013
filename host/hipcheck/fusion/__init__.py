"""Orientation of the sensor (sensor → earth, z up) from its accelerometer and gyroscope.

- ``causal``: the live filter (``Fusion``, ``fusion_update``), one sample at a time, block-size invariant.
- ``offline``: the non-causal variant for review (``orient_offline``), which uses the whole recording.
"""

from hipcheck.fusion.causal import (DEFAULTS, FLAG_ACC_INVALID, FLAG_ACC_REJECTED, FLAG_AT_REST, FLAG_GYR_INVALID,
                                    FLAG_INITIALISING, FLAG_TURNING, SETTINGS_DTYPE, STATE_DTYPE, Fusion,
                                    fusion_update, make_settings, make_state, orient)
from hipcheck.fusion.offline import OFFLINE_DEFAULTS, orient_offline, smoothed_bias

__all__ = ["SETTINGS_DTYPE", "STATE_DTYPE", "DEFAULTS", "OFFLINE_DEFAULTS", "FLAG_GYR_INVALID", "FLAG_ACC_INVALID",
           "FLAG_ACC_REJECTED", "FLAG_AT_REST", "FLAG_INITIALISING", "FLAG_TURNING", "make_settings", "make_state",
           "fusion_update", "Fusion", "orient", "orient_offline", "smoothed_bias"]
