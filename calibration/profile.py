"""Device profiles: one JSON file per sensor holding its calibrations, applied by the host and uploaded to the sensor.

A profile lives in ``<config>/profiles/<device id>.json``, where ``<config>`` is ``$HIPCHECK_CONFIG_DIR`` when set,
else the user's configuration folder (``platformdirs.user_config_dir("hipcheck")``: ``~/.config/hipcheck`` on Linux).
The device id is the name the link gives the sensor and the session log keeps in its header (``device_id``): over
BLE its advertised name ``hipcheck-XXXX``, ``sim`` for the simulated sensor, or what ``--device`` says.

The file (docs/calibration.md, "Profiles and the calibrate command")::

    {"profile_version": 1, "device_id": "hipcheck-3F2A", "written_by": "hipcheck 0.3.0",
     "calibrations": {
        "gyro":    {"date": "2026-12-03T06:10:00+00:00", "source": "...", "values": {...}, "quality": {...}},
        "accel":   {...}, "mount": {...}, "neutral": {...}},
     "uploaded": {"date": "...", "crc": 4660}}

``values`` hold what is applied (the names of docs/calibration.md: ``gyro_bias_rad_s``, ``acc_bias_m_s2``,
``acc_matrix``, ``q_sensor_to_pelvis``, ``neutral_standing_tilt_deg``...); ``quality`` the figures that say how good
the estimate was (numbers, strings, booleans, lists of them). Every calibration is optional.

A profile that cannot be trusted is refused with a ``ProfileError`` naming the file and what to do, never used in
part and never replaced by a default in silence: one written by a newer hipcheck (``profile_version`` above
``PROFILE_VERSION``), one that is not JSON, has the wrong types, or holds implausible values (the same bounds as the
sensor's own check, firmware/cal_profile.py and docs/protocol.md, "Calibration profile": a profile the host keeps
must be one the sensor takes). Profiles are written atomically (a temporary file in the same folder, flushed, then
renamed over the old one): a crash leaves the old profile or the new one.

Applying (``apply_profile``): the gyroscope bias and the accelerometer correction act on raw samples as on the
sensor (``gyr - gyro_bias_rad_s``, ``acc_matrix @ (acc - acc_bias_m_s2)``), except on the samples of a session log
the sensor already corrected (flag ACC_CALIBRATED: it held an uploaded profile); the mounting becomes the pipeline's
``alignment``; the neutral standing tilt centres the tilt detector's thresholds, the sitting one (else the
standing one) is the posture mode's neutral, both only with the mount calibration they were measured in. That rule
is ``calibration_of`` (a ``DeviceCalibration``), the one place analyze and review (``for_analysis``) and live and
record (``hipcheck.live``) take it from. Samples that replay a file through the simulated sensor (``live``/``record
--sim FILE``; their log's header names the file, ``replayed_file``) take no profile at all (``replayed_file``): the
file's numbers come from whatever sensor recorded or simulated it, not from the sensor device ``sim`` was calibrated
on.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from hipcheck.errors import InvalidValueError
from hipcheck.protocol import SampleFlag

__all__ = ["PROFILE_VERSION", "KINDS", "ENV_CONFIG_DIR", "ProfileError", "Profile", "Applied", "config_dir",
           "profile_path", "check_device_id", "load_profile", "save_profile", "record_calibration",
           "reset_profile", "profile_from_json", "profile_to_json", "device_blob", "apply_profile", "now_iso",
           "device_ids", "for_analysis", "matrix_fault", "jsonable", "DeviceCalibration", "calibration_of",
           "load_calibration", "NEUTRAL_LEFT_OUT", "replayed_file", "replayed_file_line"]

PROFILE_VERSION = 1
ENV_CONFIG_DIR = "HIPCHECK_CONFIG_DIR"
KINDS = ("gyro", "accel", "mount", "neutral")

# Plausible values: firmware/cal_profile.py (validate) refuses beyond these, so the host keeps nothing beyond them.
GYR_BIAS_MAX_RAD_S = 0.45
ACC_BIAS_MAX_M_S2 = 1.5
SCALE_MIN, SCALE_MAX = 0.9, 1.1
SHAPE_TOL = 0.2  # MᵀM/s² against the identity: ±5 % per axis and 2° of misalignment reach 0.13
QUAT_NORM_TOL = 0.01
TILT_MAX_DEG = 45.0  # a neutral pelvic tilt: people stand within about ±20°, sit within about ±30°
TEMPERATURE_RANGE_C = (-40.0, 85.0)  # the chips' operating range
_DEVICE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
NEUTRAL_NAMES = ("neutral_standing_tilt_deg", "neutral_standing_obliquity_deg", "neutral_sitting_tilt_deg",
                 "neutral_sitting_obliquity_deg")


class ProfileError(InvalidValueError):
    """A profile that cannot be used (newer, corrupted, implausible) or a device id that cannot name one; the
    message says which file and what to do."""


@dataclass
class Profile:
    """The calibrations of one sensor. ``calibrations[kind]`` = {"date", "source", "values", "quality"}."""

    device_id: str
    calibrations: dict = field(default_factory=dict)
    uploaded: dict | None = None  # {"date", "crc"} of the last profile the sensor acknowledged
    path: Path | None = None  # where it was read from or written to

    def values(self, kind: str) -> dict | None:
        entry = self.calibrations.get(kind)
        return None if entry is None else entry["values"]

    def summary(self) -> str:
        """One line: which calibrations, of when."""
        if not self.calibrations:
            return f"device {self.device_id}: no calibration"
        parts = [f"{kind} {self.calibrations[kind]['date'][:16].replace('T', ' ')}" for kind in KINDS
                 if kind in self.calibrations]
        return f"device {self.device_id}: " + ", ".join(parts)


# ------------------------------------------------------------------------------------------------ where, by id

def config_dir() -> Path:
    """The folder holding ``profiles/``: $HIPCHECK_CONFIG_DIR, else the user's configuration folder."""
    env = os.environ.get(ENV_CONFIG_DIR)
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_config_dir("hipcheck"))


def check_device_id(device_id) -> str:
    """The id as a file name may hold it: 1-64 letters, digits, '.', '_' or '-', not starting with '.'."""
    if not isinstance(device_id, str) or not _DEVICE_ID.fullmatch(device_id):
        raise ProfileError(f"device id {device_id!r}: use 1 to 64 letters, digits, '.', '_' or '-' (e.g. "
                           "hipcheck-3F2A)")
    return device_id


def profile_path(device_id: str) -> Path:
    return config_dir() / "profiles" / f"{check_device_id(device_id)}.json"


def now_iso() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


# ------------------------------------------------------------------------------------------------ read, write

def load_profile(device_id: str) -> Profile | None:
    """The sensor's profile, or None when it has none; ProfileError for one that cannot be used."""
    path = profile_path(device_id)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as error:
        raise ProfileError(_fix(path, device_id, f"cannot be read ({error})")) from None
    profile = profile_from_json(text, path=path, device_id=device_id)
    if profile.device_id != device_id:
        raise ProfileError(_fix(path, device_id, f"belongs to device {profile.device_id!r}, not {device_id!r}"))
    return profile


def profile_from_json(text: str, *, path: Path | None = None, device_id: str | None = None) -> Profile:
    """A profile from its JSON text, checked whole (ProfileError naming the first fault and what to do)."""
    where = path if path is not None else Path("<profile>")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ProfileError(_fix(where, device_id, f"is not valid JSON ({error.msg} at line {error.lineno})")) from None
    if not isinstance(data, dict):
        raise ProfileError(_fix(where, device_id, f"holds a JSON {type(data).__name__}, not an object"))
    version = data.get("profile_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ProfileError(_fix(where, device_id, f"has no valid profile_version ({version!r})"))
    if version > PROFILE_VERSION:
        raise ProfileError(f"{where} is a calibration profile of version {version}, written by a newer hipcheck; "
                           f"this one reads version {PROFILE_VERSION}: update hipcheck (pip install -U hipcheck), "
                           "or move the file away and calibrate again")
    try:
        return _check_profile(data, path)
    except _Fault as fault:
        raise ProfileError(_fix(where, device_id, str(fault))) from None


def profile_to_json(profile: Profile) -> str:
    data = {"profile_version": PROFILE_VERSION, "device_id": profile.device_id,
            "written_by": f"hipcheck {_version()}",
            "calibrations": {kind: profile.calibrations[kind] for kind in KINDS if kind in profile.calibrations}}
    if profile.uploaded is not None:
        data["uploaded"] = profile.uploaded
    return json.dumps(data, indent=2) + "\n"


def _version() -> str:
    # from the installed package's metadata, not from hipcheck/__init__ (which imports the API, which imports this)
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("hipcheck")
    except PackageNotFoundError:
        return "unknown"


def save_profile(profile: Profile) -> Path:
    """Write the profile atomically (checked first: what is written can be read back)."""
    text = profile_to_json(profile)
    profile_from_json(text, device_id=profile.device_id)
    path = profile_path(profile.device_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{profile.device_id}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    profile.path = path
    return path


def record_calibration(device_id: str, kind: str, values: dict, quality: dict, source: str) -> Profile:
    """Add (or replace) one calibration in the sensor's profile and save it; returns the profile. A profile that
    cannot be read is refused (ProfileError): nothing is overwritten without the user's say (calibrate reset)."""
    if kind not in KINDS:
        raise ProfileError(f"calibration kind {kind!r}: one of {', '.join(KINDS)}")
    profile = load_profile(device_id) or Profile(device_id)
    old = profile.calibrations.get(kind)
    if kind == "neutral" and old is not None:  # standing and sitting may be calibrated apart: keep the other
        values = {**old["values"], **values}
        quality = {**old["quality"], **quality}
    profile.calibrations[kind] = {"date": now_iso(), "source": str(source), "values": jsonable(values),
                                  "quality": jsonable(quality)}
    if kind in ("gyro", "accel", "mount"):
        profile.uploaded = None  # the sensor holds an older one until the next upload
    save_profile(profile)
    return profile


def reset_profile(device_id: str, kinds=None) -> list[str]:
    """Forget calibrations: all of them (the file is removed, even a corrupted one) or only ``kinds``. Returns the
    kinds forgotten."""
    path = profile_path(device_id)
    if not kinds:
        profile = None
        try:
            profile = load_profile(device_id)
        except ProfileError:
            pass  # a corrupted profile is removed all the same: that is what reset is for
        if not path.exists():
            return []
        path.unlink()
        return list(profile.calibrations) if profile is not None else ["(unreadable profile)"]
    profile = load_profile(device_id)
    if profile is None:
        return []
    gone = [k for k in kinds if profile.calibrations.pop(k, None) is not None]
    if gone:
        if set(gone) & {"gyro", "accel", "mount"}:
            profile.uploaded = None
        save_profile(profile)
    return gone


# ------------------------------------------------------------------------------------------------ checks

class _Fault(ProfileError):  # noqa: N818 - a fault inside the file: re-raised as ProfileError with the remedy
    pass


def _fix(path: Path, device_id: str | None, what: str) -> str:
    reset = f"hipcheck calibrate reset --device {device_id}" if device_id else "hipcheck calibrate reset --device ID"
    return (f"{path} {what}: the calibration profile is refused (nothing of it is used); run `{reset}` and "
            "calibrate again, or put back a copy saved with `hipcheck calibrate export`")


def _check_profile(data: dict, path: Path | None) -> Profile:
    device_id = data.get("device_id")
    if not isinstance(device_id, str) or not _DEVICE_ID.fullmatch(device_id):
        raise _Fault(f"has device_id {device_id!r}, not a device id")
    unknown = set(data) - {"profile_version", "device_id", "written_by", "calibrations", "uploaded"}
    if unknown:
        raise _Fault(f"has unknown fields {sorted(unknown)}")
    cals = data.get("calibrations", {})
    if not isinstance(cals, dict):
        raise _Fault(f"has calibrations of type {type(cals).__name__}, not an object")
    for kind, entry in cals.items():
        if kind not in KINDS:
            raise _Fault(f"has an unknown calibration {kind!r} (known: {', '.join(KINDS)})")
        _check_entry(kind, entry)
    uploaded = data.get("uploaded")
    if uploaded is not None and not (isinstance(uploaded, dict) and _is_date(uploaded.get("date"))
                                     and isinstance(uploaded.get("crc"), int)):
        raise _Fault("has an 'uploaded' that is not {date, crc}")
    return Profile(device_id, {k: cals[k] for k in KINDS if k in cals}, uploaded, path)


def _check_entry(kind: str, entry) -> None:
    if not isinstance(entry, dict) or set(entry) != {"date", "source", "values", "quality"}:
        raise _Fault(f"{kind}: needs exactly date, source, values and quality")
    if not _is_date(entry["date"]):
        raise _Fault(f"{kind}: date {entry['date']!r} is not an ISO 8601 date")
    if not isinstance(entry["source"], str):
        raise _Fault(f"{kind}: source is not a string")
    if not isinstance(entry["values"], dict):
        raise _Fault(f"{kind}: values is not an object")
    quality = entry["quality"]
    if not isinstance(quality, dict) or not all(_is_quality(v) for v in quality.values()):
        raise _Fault(f"{kind}: quality must map names to numbers, strings, booleans or lists of them")
    _VALUE_CHECKS[kind](entry["values"])


def _is_date(value) -> bool:
    if not isinstance(value, str):
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _is_quality(value) -> bool:
    if value is None or isinstance(value, (str, bool)):
        return True
    if isinstance(value, (int, float)):
        return math.isfinite(value)
    if isinstance(value, list):  # a vector, a matrix, a list of names
        return all((_is_quality(v) and not isinstance(v, list))
                   or (isinstance(v, list) and all(_is_number(x) or x is None for x in v)) for v in value)
    return False


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _vector(values: dict, name: str, shape: tuple) -> np.ndarray:
    if name not in values:
        raise _Fault(f"{name} is missing")
    value = values[name]
    ok = _nested_numbers(value, shape)
    if not ok:
        raise _Fault(f"{name} must be {'x'.join(map(str, shape))} finite numbers, not {value!r}")
    return np.array(value, dtype=float)


def _nested_numbers(value, shape: tuple) -> bool:
    if not shape:
        return _is_number(value)
    return (isinstance(value, list) and len(value) == shape[0]
            and all(_nested_numbers(v, shape[1:]) for v in value))


def _check_gyro(values: dict) -> None:
    bias = _vector(values, "gyro_bias_rad_s", (3,))
    if np.any(np.abs(bias) > GYR_BIAS_MAX_RAD_S):
        raise _Fault(f"gyro_bias_rad_s {bias.tolist()} is beyond ±{GYR_BIAS_MAX_RAD_S} rad/s: not a gyroscope bias")
    temperature = values.get("temperature_c")
    if temperature is not None and not (_is_number(temperature)
                                        and TEMPERATURE_RANGE_C[0] <= temperature <= TEMPERATURE_RANGE_C[1]):
        raise _Fault(f"temperature_c {temperature!r}: not a temperature the sensor works at")


def _check_accel(values: dict) -> None:
    bias = _vector(values, "acc_bias_m_s2", (3,))
    if np.any(np.abs(bias) > ACC_BIAS_MAX_M_S2):
        raise _Fault(f"acc_bias_m_s2 {bias.tolist()} is beyond ±{ACC_BIAS_MAX_M_S2} m/s²: not an accelerometer bias")
    why = matrix_fault(_vector(values, "acc_matrix", (3, 3)))
    if why:
        raise _Fault("acc_matrix " + why)


def matrix_fault(m: np.ndarray) -> str:
    """'' when m is a rotation times a scale within the sensor's bounds (firmware/cal_profile.py), else why not."""
    g = m.T @ m
    s2 = float(np.trace(g) / 3)
    if not SCALE_MIN ** 2 <= s2 <= SCALE_MAX ** 2:
        return f"has a scale of {math.sqrt(max(s2, 0.0)):.3g}: not {SCALE_MIN} to {SCALE_MAX}"
    if np.any(np.abs(g / s2 - np.eye(3)) > SHAPE_TOL):
        return f"is not a rotation times a scale (MᵀM/s² differs from the identity by more than {SHAPE_TOL})"
    if np.linalg.det(m) <= 0:
        return f"is a reflection (determinant {np.linalg.det(m):.3g})"
    return ""


def _check_mount(values: dict) -> None:
    q = _vector(values, "q_sensor_to_pelvis", (4,))
    if abs(np.linalg.norm(q) - 1.0) > QUAT_NORM_TOL:
        raise _Fault(f"q_sensor_to_pelvis {q.tolist()} has norm {np.linalg.norm(q):.4f}, not 1: not a rotation")


def _check_neutral(values: dict) -> None:
    if "neutral_standing_tilt_deg" not in values and "neutral_sitting_tilt_deg" not in values:
        raise _Fault("neutral: needs neutral_standing_tilt_deg or neutral_sitting_tilt_deg")
    unknown = set(values) - set(NEUTRAL_NAMES)
    if unknown:
        raise _Fault(f"neutral: unknown values {sorted(unknown)}")
    for name in NEUTRAL_NAMES:
        v = values.get(name)
        if v is not None and not (_is_number(v) and abs(v) <= TILT_MAX_DEG):
            raise _Fault(f"{name} {v!r}: a neutral pelvic angle is a number within ±{TILT_MAX_DEG:g}°")


_VALUE_CHECKS = {"gyro": _check_gyro, "accel": _check_accel, "mount": _check_mount, "neutral": _check_neutral}


def jsonable(value):
    """numpy arrays and scalars as JSON lists and numbers (NaN as None)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [jsonable(v) for v in np.asarray(value, dtype=object).tolist()] if isinstance(value, np.ndarray) \
            else [jsonable(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


# ------------------------------------------------------------------------------------------------ use

def device_blob(profile: Profile) -> bytes:
    """The 79-byte CAL_UPLOAD profile (docs/protocol.md): what the profile holds, and no correction (zero biases,
    the identity matrix and rotation) for what it does not."""
    from hipcheck.protocol import CalibrationProfile, encode_cal_profile

    gyro, accel, mount = (profile.values(k) or {} for k in ("gyro", "accel", "mount"))
    matrix = np.asarray(accel.get("acc_matrix", np.eye(3)), dtype=float)
    return encode_cal_profile(CalibrationProfile(
        gyr_bias_rad_s=tuple(gyro.get("gyro_bias_rad_s", (0.0, 0.0, 0.0))),
        acc_bias_m_s2=tuple(accel.get("acc_bias_m_s2", (0.0, 0.0, 0.0))),
        acc_matrix=tuple(matrix.ravel()),
        q_sensor_to_pelvis=tuple(mount.get("q_sensor_to_pelvis", (1.0, 0.0, 0.0, 0.0)))))


NEUTRAL_LEFT_OUT = "neutral left out: it belongs to a mount calibration the profile no longer holds"


@dataclass(frozen=True)
class DeviceCalibration:
    """What a sensor's profile gives an analysis of that sensor's samples (module docstring, "Applying"), by one rule
    for every command: ``for_analysis`` (analyze, review) and ``hipcheck.live`` (live, record) take it from
    ``calibration_of``."""

    profile: Profile
    alignment: np.ndarray | None  # q_sensor_to_pelvis: the pipeline's pelvis frame (None: found from the walk)
    standing_tilt_deg: float | None  # the neutral standing tilt: the tilt detector's thresholds centre on it
    sitting_tilt_deg: float | None
    neutral_left_out: bool  # the profile holds a neutral but not the mount calibration it was measured in

    @property
    def posture_tilt_deg(self) -> float | None:
        """The posture mode's neutral: the sitting tilt, else the standing one."""
        return self.sitting_tilt_deg if self.sitting_tilt_deg is not None else self.standing_tilt_deg

    @property
    def corrects_samples(self) -> bool:
        return bool(self.profile.values("gyro") or self.profile.values("accel"))

    def used(self) -> str:
        """The calibrations the profile holds, with their dates ("gyro of 2026-12-03, mount of ..."; "empty")."""
        profile = self.profile
        return ", ".join(f"{k} of {profile.calibrations[k]['date'][:10]}" for k in KINDS
                         if k in profile.calibrations) or "empty"

    def correct(self, acc_m_s2, gyr_rad_s, flags=None) -> Applied:
        """The gyroscope and accelerometer corrections on the raw samples (``apply_profile``)."""
        return apply_profile(self.profile, acc_m_s2, gyr_rad_s, flags)

    def centre_tilt_thresholds(self, detector_settings: dict) -> None:
        """The tilt detector's thresholds (``hipcheck.detect`` settings) centred on the neutral standing tilt, in
        place (nothing without one)."""
        standing = self.standing_tilt_deg
        if standing is not None and "tilt_anterior_deg" in detector_settings:
            detector_settings["tilt_anterior_deg"] += standing
            detector_settings["tilt_posterior_deg"] += standing

    def posture_settings(self) -> dict | None:
        """The posture mode's settings for its neutral (None: the profile has none)."""
        neutral = self.posture_tilt_deg
        return None if neutral is None else {"neutral_tilt_deg": neutral}


def calibration_of(profile: Profile) -> DeviceCalibration:
    """The profile as an analysis uses it: the mounting as the pelvis frame, and the neutral only with the mount
    calibration it was measured in (the neutral tilt is an angle of the calibrated pelvis frame: without that frame it
    means nothing)."""
    mount, neutral = profile.values("mount"), profile.values("neutral") or {}
    if not mount:
        return DeviceCalibration(profile, None, None, None, neutral_left_out=bool(neutral))
    return DeviceCalibration(profile, np.asarray(mount["q_sensor_to_pelvis"], dtype=float),
                             neutral.get("neutral_standing_tilt_deg"), neutral.get("neutral_sitting_tilt_deg"),
                             neutral_left_out=False)


def load_calibration(device_id: str) -> DeviceCalibration | None:
    """``calibration_of`` the sensor's profile; None when it has none; ProfileError for one that cannot be used."""
    profile = load_profile(check_device_id(device_id))
    return None if profile is None else calibration_of(profile)


def replayed_file(header) -> str | None:
    """The file a session log's samples replay through the simulated sensor (its header's ``replayed_file``, written
    by ``live``/``record --sim FILE``), or None: the samples are a sensor's own. Such a log takes no device profile,
    whatever its ``device_id`` says (``sim``): the live run that recorded it applied none either."""
    name = header.get("replayed_file") if isinstance(header, dict) else None
    return None if name is None else str(name)


def replayed_file_line(name: str) -> str:
    """The one line that says why a log that replays a file (``replayed_file``) is analysed without a profile."""
    return (f"no calibration profile used: the log replays a file ({name}) through the simulated sensor, not a "
            "calibrated sensor")


@dataclass
class Applied:
    """What a profile did to a recording (``apply_profile``)."""

    acc_m_s2: np.ndarray
    gyr_rad_s: np.ndarray
    alignment: np.ndarray | None  # q_sensor_to_pelvis for the pipeline
    standing_tilt_deg: float | None  # the neutral, as calibration_of keeps it
    sitting_tilt_deg: float | None
    corrected: int  # samples corrected on the host
    by_sensor: int  # samples the sensor had already corrected (left as they are)
    line: str  # what was used, for the person reading the output


def apply_profile(profile: Profile, acc_m_s2, gyr_rad_s, flags=None) -> Applied:
    """The profile on raw samples (module docstring); flags: the session log's per-sample SampleFlag bits (None: a
    CSV, every sample raw). The mounting and the neutral are those of ``calibration_of``."""
    acc = np.array(acc_m_s2, dtype=np.float64)
    gyr = np.array(gyr_rad_s, dtype=np.float64)
    raw = np.ones(len(acc), bool) if flags is None else (np.asarray(flags) & SampleFlag.ACC_CALIBRATED) == 0
    gyro, accel = profile.values("gyro"), profile.values("accel")
    if (gyro or accel) and raw.any():
        if gyro:
            gyr[raw] -= np.asarray(gyro["gyro_bias_rad_s"], dtype=float)
        if accel:
            m = np.asarray(accel["acc_matrix"], dtype=float)
            acc[raw] = (acc[raw] - np.asarray(accel["acc_bias_m_s2"], dtype=float)) @ m.T
    corrected = int(raw.sum()) if (gyro or accel) else 0
    calibration = calibration_of(profile)
    line = f"calibration profile of device {profile.device_id} ({profile.path}): " + calibration.used()
    if gyro or accel:
        line += (f"; {corrected} samples corrected on this computer" if corrected else "")
        if int((~raw).sum()):
            line += f"{';' if corrected else ''} {int((~raw).sum())} already corrected by the sensor"
    if calibration.neutral_left_out:
        line += "; " + NEUTRAL_LEFT_OUT
    return Applied(acc, gyr, calibration.alignment, calibration.standing_tilt_deg, calibration.sitting_tilt_deg,
                   corrected, int((~raw).sum()), line)


def device_ids() -> list[str]:
    """The device ids that have a profile file here, sorted."""
    folder = config_dir() / "profiles"
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.json") if _DEVICE_ID.fullmatch(p.stem))


def for_analysis(recording, detector_settings: dict, mode_arguments: dict, *, axes_given: bool = False):
    """The profile of the sensor that recorded ``recording`` (a ``hipcheck.api.Recording``: a session log names its
    sensor in its header) applied for ``hipcheck analyze``: (acc, gyr, alignment, line). The tilt detector's
    thresholds in ``detector_settings`` are centred on the neutral standing tilt and the posture mode's neutral in
    ``mode_arguments`` set (unless given), in place. line says what was used (None: a CSV, which names no sensor).
    A log that replays a file through the simulated sensor (``replayed_file``) is left as it is. ProfileError when
    the sensor's profile cannot be used."""
    session = getattr(recording, "session", None)
    device_id = None if session is None else session.header.get("device_id")
    unchanged = (recording.acc_m_s2, recording.gyr_rad_s, None)
    replayed = None if session is None else replayed_file(session.header)
    if replayed is not None:  # not the samples of the sensor device_id names: no profile is even read
        return (*unchanged, replayed_file_line(replayed))
    if device_id is None:
        line = None if session is None else ("no calibration profile used: the log does not name its sensor "
                                             "(recorded before device ids, over serial, or its header was lost)")
        return (*unchanged, line)
    calibration = load_calibration(device_id)
    if calibration is None:
        return (*unchanged, f"no calibration profile for device {device_id}: analysed uncalibrated (`hipcheck "
                            "calibrate mount` makes one)")
    if axes_given and calibration.alignment is not None:
        raise ProfileError(f"--axes and the calibration profile of device {device_id} both say how the sensor sits: "
                           "leave out --axes, or give --no-profile to use it")
    rows = session.samples
    applied = calibration.correct(recording.acc_m_s2, recording.gyr_rad_s, rows[~rows["gap"]]["flags"])
    calibration.centre_tilt_thresholds(detector_settings)
    posture = calibration.posture_settings()
    if mode_arguments.get("mode") == "posture" and mode_arguments.get("mode_settings") is None and posture:
        mode_arguments["mode_settings"] = posture
    return applied.acc_m_s2, applied.gyr_rad_s, calibration.alignment, applied.line
