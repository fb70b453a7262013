"""Orientation of the sensor (sensor → earth, z up) from its accelerometer and gyroscope.

- ``causal``: the live filter (``Fusion``, ``fusion_update``), one sample at a time, block-size invariant.
- ``offline``: the non-causal variant for review (``orient_offline``), which uses the whole recording.
- ``orient`` (here): either of them over a whole recording, after a check of its units.
"""

import numpy as np

from hipcheck.fusion._common import as_samples, refuse_magnetometer
from hipcheck.fusion.causal import (DEFAULT_SETTINGS, FLAG_ACC_INVALID, FLAG_ACC_REJECTED, FLAG_AT_REST,
                                    FLAG_GYR_INVALID, FLAG_INITIALISING, FLAG_TURNING, SETTINGS_DTYPE, STATE_DTYPE,
                                    Fusion, fusion_update, make_settings, make_state)
from hipcheck.fusion.offline import DEFAULT_SETTINGS as OFFLINE_DEFAULT_SETTINGS
from hipcheck.fusion.offline import orient_offline, smoothed_bias
from hipcheck.inputs import InputError, unit_problem

__all__ = ["SETTINGS_DTYPE", "STATE_DTYPE", "DEFAULT_SETTINGS", "OFFLINE_DEFAULT_SETTINGS", "FLAG_GYR_INVALID",
           "FLAG_ACC_INVALID", "FLAG_ACC_REJECTED", "FLAG_AT_REST", "FLAG_INITIALISING", "FLAG_TURNING",
           "make_settings", "make_state", "fusion_update", "Fusion", "orient", "orient_offline", "smoothed_bias"]


def orient(acc_m_s2, gyr_rad_s, fs_hz: float, mag_uT=None, offline: bool = False, **settings) -> np.ndarray:
    """q_sensor_to_earth (n, 4), earth z up, of a whole recording; acc (n, 3) m/s², gyr (n, 3) rad/s.

    offline=False: the causal filter (what a live session sees). offline=True: the non-causal variant for review
    (``hipcheck.fusion.offline``), which uses the whole recording. settings: keyword overrides of DEFAULT_SETTINGS
    (and, offline, of OFFLINE_DEFAULT_SETTINGS).
    """
    refuse_magnetometer(mag_uT)
    acc = as_samples("acc_m_s2", acc_m_s2)
    gyr = as_samples("gyr_rad_s", gyr_rad_s, len(acc))
    # Data in g or °/s would give a filter that never trusts its accelerometer, or spins: refuse it with a hint.
    problem = unit_problem(acc, gyr)
    if problem:
        raise InputError(problem)
    if offline:
        return orient_offline(acc, gyr, fs_hz, **settings)
    return Fusion(fs_hz, **settings).update(acc, gyr)
