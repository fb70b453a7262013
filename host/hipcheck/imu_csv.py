"""The generic IMU CSV format (docs/csv-format.md): how recordings from other sensors come in.

A header row names the columns; ``t`` is in seconds, ``acc_x,acc_y,acc_z`` in m/s², ``gyr_x,gyr_y,gyr_z`` in rad/s and
the optional ``mag_x,mag_y,mag_z`` in µT. Other units and axis orders are read through options, so a file is used as
it was exported and nobody edits numbers by hand.

The time column is checked as a clock: its unit (s, ms or µs) is recognised from the sample period, and time gaps
and changes of rate are found. A recording with gaps or several rates is put on one grid at the nominal rate
(``timing``): short gaps and other-rate stretches are interpolated, long gaps are left as missing samples (NaN) that
split it into segments, and every such change is said in ``ImuRecording.notes``.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hipcheck.errors import InvalidValueError
from hipcheck.inputs import unit_problem
from hipcheck.timing import TIME_UNIT_SECONDS, regrid, time_unit_from_period
from hipcheck.units import GRAVITY_M_S2, RAD_PER_DEG

TIME_COLUMN = "t"
ACC_COLUMNS = ("acc_x", "acc_y", "acc_z")
GYR_COLUMNS = ("gyr_x", "gyr_y", "gyr_z")
MAG_COLUMNS = ("mag_x", "mag_y", "mag_z")

ACC_UNITS = {"m/s2": 1.0, "g": GRAVITY_M_S2}
GYR_UNITS = {"rad/s": 1.0, "deg/s": RAD_PER_DEG}
MAG_UNITS = {"uT": 1.0, "nT": 1e-3, "gauss": 100.0}
TIME_UNITS = TIME_UNIT_SECONDS
# A sample period is read as seconds when it gives 5-5000 Hz, else as ms, else as µs: the three ranges meet end to
# end, so each period has one reading; a rate outside 5-5000 Hz must be declared with --time-unit.
DETECTABLE_RATE_HZ = (5.0, 5000.0)


class ImuCsvError(InvalidValueError):
    """The file cannot be read as an IMU recording; the message says what is wrong and what to do."""


@dataclass
class ImuRecording:
    """One recording in SI units and the sensor frame chosen by the axis mapping.

    ``fs_hz`` is the nominal sample rate: given by the caller, else the median of the sample intervals.
    """

    t_s: np.ndarray
    acc_m_s2: np.ndarray
    gyr_rad_s: np.ndarray
    mag_uT: np.ndarray | None
    fs_hz: float
    source: str = ""
    time_unit: str = "s"  # the unit the time column was read in (given or recognised)
    notes: list[str] = field(default_factory=list)  # what was found in the time column and done about it
    observed: np.ndarray | None = None  # per row: False inside a long time gap (the row is NaN); None: all observed

    def __len__(self) -> int:
        return len(self.t_s)


def parse_axes(spec: str | None) -> np.ndarray:
    """Turn an axis mapping such as ``"x,-z,y"`` into a 3×3 matrix M with ``v_ours = M @ v_file``.

    Entry i names the file axis, with its sign, that becomes our axis i. The mapping must be a proper rotation: a mirror
    image (an odd number of sign flips and swaps) would turn every angle the wrong way round, so it is refused.
    """
    if spec is None or spec.strip() == "":
        return np.eye(3)
    parts = [p.strip().lower() for p in spec.split(",")]
    if len(parts) != 3:
        raise ImuCsvError(f"axis mapping {spec!r} must name three axes, e.g. 'x,-z,y'")
    matrix = np.zeros((3, 3))
    for row, part in enumerate(parts):
        sign = -1.0 if part.startswith("-") else 1.0
        name = part.lstrip("+-")
        if name not in ("x", "y", "z"):
            raise ImuCsvError(f"axis mapping {spec!r}: {part!r} is not one of x, y, z with an optional sign")
        matrix[row, "xyz".index(name)] = sign
    if sorted(abs(matrix).argmax(axis=1)) != [0, 1, 2]:
        raise ImuCsvError(f"axis mapping {spec!r} uses a file axis twice: each of x, y, z must appear once")
    if np.linalg.det(matrix) < 0:
        raise ImuCsvError(
            f"axis mapping {spec!r} is a mirror image (left-handed): flip the sign of one axis to make it a rotation"
        )
    return matrix


def read_imu_csv(
    path: str | Path,
    *,
    acc_unit: str = "m/s2",
    gyr_unit: str = "rad/s",
    mag_unit: str = "uT",
    axes: str | None = None,
    fs_hz: float | None = None,
    check_units: bool = True,
    time_unit: str | None = None,
) -> ImuRecording:
    """Read a generic IMU CSV file into SI units.

    ``axes`` maps the file's axes onto ours (see ``parse_axes``); it applies to all three sensors. With ``check_units``
    the magnitudes are checked against gravity and the range of real gyroscopes, and the gyroscope against the
    accelerometer's inclination (``hipcheck.inputs.unit_problem``), so that a file in g or °/s read with the default
    units fails with a hint instead of giving silently wrong angles. ``time_unit`` (s, ms, us) is recognised from
    the sample period when not given; gaps and rate changes are handled by ``hipcheck.timing.regrid``.
    """
    path = Path(path)
    acc_scale = _unit_scale(acc_unit, ACC_UNITS, "--acc-unit")
    gyr_scale = _unit_scale(gyr_unit, GYR_UNITS, "--gyr-unit")
    mag_scale = _unit_scale(mag_unit, MAG_UNITS, "--mag-unit")
    rotation = parse_axes(axes)
    if time_unit is not None:
        _unit_scale(time_unit, TIME_UNITS, "--time-unit")
    if fs_hz is not None and not (math.isfinite(fs_hz) and fs_hz > 0):
        raise ImuCsvError(f"sample rate {fs_hz} Hz is not a positive number")

    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ImuCsvError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ImuCsvError(f"{path}: cannot be read as text ({error})") from None

    header_line, _, body = text.partition("\n")
    columns = [c.strip().lower() for c in header_line.split(",")]
    wanted = (TIME_COLUMN, *ACC_COLUMNS, *GYR_COLUMNS)
    missing = [c for c in wanted if c not in columns]
    if missing:
        raise ImuCsvError(
            f"{path}: the header lacks {', '.join(missing)}; found {', '.join(columns) or 'nothing'}. "
            f"The first line must name the columns: {','.join(wanted)}[,{','.join(MAG_COLUMNS)}]"
        )
    has_mag = all(c in columns for c in MAG_COLUMNS)
    used = list(wanted) + (list(MAG_COLUMNS) if has_mag else [])
    indices = [columns.index(c) for c in used]

    if not body.strip():
        raise ImuCsvError(f"{path}: holds no samples after the header line")
    table = _fast_table(body, indices, len(columns))
    if table is None:
        try:
            table = np.loadtxt(io.StringIO(body), delimiter=",", usecols=indices, ndmin=2, dtype=np.float64)
        except ValueError:
            raise ImuCsvError(f"{path}: {_describe_bad_line(body, indices)}") from None
    if len(table) < 2:
        raise ImuCsvError(f"{path}: holds {len(table)} sample(s); a recording needs at least two")

    t_s, time_unit, notes = _time_in_seconds(path, table[:, 0].copy(), time_unit)

    # An infinite reading is a flaw, not a value: kept as missing (NaN) so that no arithmetic warns on it; the input
    # checks count it (hipcheck.inputs.InputReport).
    infinite_rows = np.any(np.isinf(table[:, 1:]), axis=1)
    if infinite_rows.any():
        notes.append(f"{int(infinite_rows.sum())} samples hold an infinite value (inf): read as missing")
        table[:, 1:][np.isinf(table[:, 1:])] = np.nan
    acc = _to_ours(table[:, 1:4], rotation, acc_scale)
    gyr = _to_ours(table[:, 4:7], rotation, gyr_scale)
    mag = _to_ours(table[:, 7:10], rotation, mag_scale) if has_mag else None
    grid = regrid(t_s, acc, gyr, mag)
    if grid.refusal:
        raise ImuCsvError(f"{path}: {grid.refusal}")
    notes.extend(grid.notes)
    nominal_fs_hz = fs_hz if fs_hz is not None else grid.fs_hz
    low, high = DETECTABLE_RATE_HZ
    if fs_hz is None and not low <= nominal_fs_hz <= high:  # only a declared --time-unit gets here
        raise ImuCsvError(f"{path}: the time column read in {time_unit} gives {nominal_fs_hz:.4g} Hz, no sensor's "
                          f"rate ({low:g}-{high:g} Hz): check --time-unit, or give the rate with --fs")
    if check_units:
        _check_units(path, grid.acc, grid.gyr, acc_unit, gyr_unit, nominal_fs_hz)
    return ImuRecording(grid.t_s, grid.acc, grid.gyr, grid.mag, float(nominal_fs_hz), str(path), time_unit, notes,
                        grid.observed)


def _fast_table(body: str, indices: list[int], n_columns: int) -> np.ndarray | None:
    """The used columns as float64, read by pandas' C parser (a third of np.loadtxt's time, the same values), or
    None where it cannot vouch for the same result as np.loadtxt: a field that is not a plain number (NaN text,
    blank, a comment), a row with another number of fields. np.loadtxt then reads the file and names the line."""
    import pandas

    try:
        frame = pandas.read_csv(io.StringIO(body), header=None, na_filter=False, engine="c")
    except (ValueError, pandas.errors.ParserError):
        return None
    if frame.shape[1] != n_columns or any(frame.dtypes.iloc[k].kind not in "fi" for k in indices):
        return None
    table = frame.iloc[:, indices].to_numpy(dtype=np.float64)
    return None if np.isnan(table).any() else table  # NaN here is a short row pandas filled in


def _to_ours(values: np.ndarray, rotation: np.ndarray, scale: float) -> np.ndarray:
    """A sensor's columns in our axes and SI units (no product where the axes and unit are ours already)."""
    if not np.array_equal(rotation, np.eye(3)):
        values = values @ rotation.T
    return values * scale if scale != 1.0 else np.ascontiguousarray(values)


def write_imu_csv(
    path: str | Path,
    t_s: np.ndarray,
    acc_m_s2: np.ndarray,
    gyr_rad_s: np.ndarray,
    mag_uT: np.ndarray | None = None,
) -> None:
    """Write a recording in the generic CSV format, SI units, enough digits to read back what was written."""
    columns = [t_s[:, None], acc_m_s2, gyr_rad_s] + ([mag_uT] if mag_uT is not None else [])
    table = np.hstack(columns)
    header = ",".join((TIME_COLUMN, *ACC_COLUMNS, *GYR_COLUMNS, *(MAG_COLUMNS if mag_uT is not None else ())))
    formats = ["%.6f"] + ["%.9g"] * (table.shape[1] - 1)
    np.savetxt(path, table, delimiter=",", header=header, comments="", fmt=formats)


def _time_in_seconds(path: Path, t: np.ndarray, time_unit: str | None) -> tuple[np.ndarray, str, list[str]]:
    """The time column in s, the unit it was read in (given, or recognised from the sample period) and a note when
    that unit is not s; refused when it is not finite, does not increase or fits no unit."""
    t_s = t
    if not np.all(np.isfinite(t_s)):
        bad = int(np.flatnonzero(~np.isfinite(t_s))[0])
        raise ImuCsvError(f"{path}: line {bad + 2}: the time column is not a finite number")
    steps = np.diff(t_s)
    if np.any(steps <= 0):
        bad = int(np.flatnonzero(steps <= 0)[0])
        raise ImuCsvError(
            f"{path}: line {bad + 3}: time goes from {t_s[bad]} to {t_s[bad + 1]}; it must increase from line to line"
        )
    notes = []
    if time_unit is None:
        time_unit = time_unit_from_period(float(np.median(steps)), DETECTABLE_RATE_HZ)
        if time_unit is None:
            low, high = DETECTABLE_RATE_HZ
            raise ImuCsvError(
                f"{path}: the time column steps by {np.median(steps):.6g} per sample, which is no sample period of "
                f"{low:g}-{high:g} Hz in s, ms or µs; pass --time-unit s|ms|us (and --fs if the rate is outside)")
        if time_unit != "s":
            notes.append(f"the time column was read in {time_unit} (a sample period of "
                         f"{np.median(steps):.4g} {time_unit}); pass --time-unit to override")
    return t_s * TIME_UNITS[time_unit], time_unit, notes


def _describe_bad_line(body: str, indices: list[int]) -> str:
    """Find the first data line numpy refused, to name it (only runs on the error path)."""
    for number, line in enumerate(body.splitlines(), start=2):
        if not line.strip():
            continue
        cells = line.split(",")
        if len(cells) <= max(indices):
            return f"line {number} has {len(cells)} values; the header names more columns"
        for index in indices:
            try:
                float(cells[index])
            except ValueError:
                return f"line {number}, column {index + 1}: {cells[index].strip()!r} is not a number"
    return "a data line could not be read as numbers"


def _unit_scale(unit: str, table: dict[str, float], option: str) -> float:
    try:
        return table[unit]
    except KeyError:
        raise ImuCsvError(f"unknown unit {unit!r} for {option}; use one of {', '.join(table)}") from None


def _check_units(path: Path, acc: np.ndarray, gyr: np.ndarray, acc_unit: str, gyr_unit: str, fs_hz: float) -> None:
    problem = unit_problem(acc, gyr, acc_unit, gyr_unit, fs_hz)
    if problem:
        raise ImuCsvError(f"{path}: {problem}")
