"""hipcheck: pelvic drop, hip sway and pelvic tilt from one IMU clipped over the sacrum."""

__version__ = "0.1.0"
