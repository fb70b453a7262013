"""Building a stage's settings: the defaults, the caller's overrides by name, and the checks every stage shares."""

from __future__ import annotations

import math
import numbers

from hipcheck.errors import InvalidTypeError, InvalidValueError


def check_rate(fs_hz: float, error: type[Exception] = InvalidValueError) -> None:
    """Refuse a sample rate that is not a finite positive number of Hz, with ``error`` (a subclass of
    InvalidValueError where a caller has its own, e.g. a calibration's)."""
    if not (isinstance(fs_hz, numbers.Real) and math.isfinite(fs_hz) and fs_hz > 0):
        raise error(f"fs_hz={fs_hz}: the sample rate must be a positive number of Hz")


def merged_settings(what: str, defaults: dict, overrides: dict, fs_hz: float) -> dict:
    """defaults updated by overrides; an unknown name or a sample rate that is not a positive number is refused
    with a message naming the stage (``what``) and its settings."""
    unknown = sorted(set(overrides) - set(defaults))
    if unknown:
        raise InvalidTypeError(f"unknown {what} setting(s) {', '.join(unknown)}; the settings are: "
                               f"{', '.join(defaults)}")
    check_rate(fs_hz)
    return {**defaults, **overrides}
