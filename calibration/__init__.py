"""Calibration procedures for the hipcheck sensor (import name ``hipcheck.calibration``).

Gyroscope bias, accelerometer six-pose fit, magnetometer ellipsoid, mounting alignment and device
profiles live here, one module each, as the signal-core issues add them.
"""
