"""Calibration procedures for the hipcheck sensor (import name ``hipcheck.calibration``).

One estimator per module, one call shape (``estimate_X(acc_m_s2, gyr_rad_s, fs_hz, **settings)`` returning a
small frozen result with its quality figures and ``to_dict()``), each refusing a recording it cannot trust with a
``CalibrationRefused`` whose message says what to redo (docs/calibration.md):

- ``gyro``: the gyroscope bias from a still period;
- ``accel``: accelerometer scale, bias and axis misalignment from six or more still poses;
- ``mounting``: the sensor → pelvis rotation from a quiet stand and a short walk or a forward bend;
- ``neutral``: the wearer's neutral pelvic tilt standing and sitting;
- ``common``: the refusal and the stillness check they share;
- ``profile`` and ``procedures``: the device profiles that hold them and the guided steps of ``hipcheck calibrate``.
"""

from hipcheck.calibration.accel import AccelCalibration, estimate_accel
from hipcheck.calibration.common import CHIP_NOISE, CalibrationRefused
from hipcheck.calibration.gyro import GyroCalibration, estimate_gyro_bias
from hipcheck.calibration.mounting import MountingCalibration, MountingError, estimate_mounting
from hipcheck.calibration.neutral import NeutralCalibration, estimate_neutral

__all__ = ["CalibrationRefused", "CHIP_NOISE", "GyroCalibration", "estimate_gyro_bias", "AccelCalibration", "estimate_accel",
           "MountingError", "MountingCalibration", "estimate_mounting", "NeutralCalibration", "estimate_neutral"]
