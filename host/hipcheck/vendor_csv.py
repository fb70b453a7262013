"""CSV files from other sensors and apps, read into the generic recording (``hipcheck.imu_csv.ImuRecording``).

Three kinds (docs/import.md says where each format description came from):

- ``generic``: a header row naming the columns, ``--columns`` mapping our names onto the file's
  (``t=Time,acc_x=AccX,...``) where they differ, units from ``acc_unit``/``gyr_unit``/``time_unit`` (the time unit
  recognised from the sample period when not given), as docs/csv-format.md;
- ``movella-dot``: the Movella (formerly Xsens) DOT app's CSV export: lines about the recording, then a header
  ``PacketCounter,SampleTimeFine,...,Acc_X,Acc_Y,Acc_Z,Gyr_X,Gyr_Y,Gyr_Z,...``; ``SampleTimeFine`` is the sensor's
  clock in µs (an unsigned 32-bit count: it wraps every 71.6 min, unwrapped here), ``Acc`` in m/s², ``Gyr`` in °/s;
- ``metamotion``: MbientLab MetaBase's CSVs of a MetaMotion sensor: one file per sensor, each with
  ``epoc (ms),timestamp (±hh:mm),elapsed (s),x-axis (g),...`` (accelerometer) or ``... x-axis (deg/s)`` (gyroscope).
  The two are sampled on their own clocks: the gyroscope is interpolated linearly onto the accelerometer's instants,
  over the span both cover.

Whatever the kind, the same checks as a generic CSV follow: the time column must be finite and increase; gaps and
rate changes go through ``hipcheck.timing.regrid``; the units are checked by physics (``hipcheck.inputs.unit_problem``)
so that a wrong ``--acc-unit``/``--gyr-unit`` is refused with the option that fixes it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hipcheck.errors import InvalidValueError
from hipcheck.imu_csv import (ACC_COLUMNS, ACC_UNITS, DETECTABLE_RATE_HZ, GYR_COLUMNS, GYR_UNITS, TIME_COLUMN,
                              TIME_UNITS, ImuRecording, parse_axes)
from hipcheck.inputs import unit_problem
from hipcheck.timing import regrid, time_unit_from_period

FORMATS = ("auto", "generic", "movella-dot", "metamotion")
OUR_COLUMNS = (TIME_COLUMN, *ACC_COLUMNS, *GYR_COLUMNS)
DOT_COLUMNS = {TIME_COLUMN: "SampleTimeFine", "acc_x": "Acc_X", "acc_y": "Acc_Y", "acc_z": "Acc_Z",
               "gyr_x": "Gyr_X", "gyr_y": "Gyr_Y", "gyr_z": "Gyr_Z"}
DOT_UNITS = ("m/s2", "deg/s", "us")  # acc, gyr, time
DOT_CLOCK_WRAP = 2 ** 32  # SampleTimeFine is a uint32 count of µs
METAMOTION_TIME = "epoc (ms)"
METAMOTION_AXES = ("x-axis", "y-axis", "z-axis")
METAMOTION_UNITS = ("g", "deg/s", "ms")
# How many lines a header may sit below the top of a file (the DOT app writes a few lines about the recording).
HEADER_SEARCH_LINES = 50


class VendorCsvError(InvalidValueError):
    """The file cannot be read as a recording of a known kind; the message says what was found and what to do."""


@dataclass
class ForeignRecording:
    """A recording read from another sensor's CSV: the samples (``ImuRecording``, SI units, our axes), the kind
    it was read as, the files, and the wall-clock time of its first sample when the file says (else None)."""

    recording: ImuRecording
    format: str
    sources: list[str]
    start_unix_s: float | None = None


def parse_columns(spec: str | None) -> dict[str, str]:
    """``t=Time,acc_x=AccX,...`` as {our name: the file's name}; our names are those of docs/csv-format.md."""
    if spec is None or not spec.strip():
        return {}
    mapping = {}
    for part in spec.split(","):
        ours, sep, theirs = part.partition("=")
        ours, theirs = ours.strip().lower(), theirs.strip()
        if not sep or not theirs:
            raise VendorCsvError(f"--columns {spec!r}: {part.strip()!r} is not NAME=COLUMN (e.g. t=Time,acc_x=AccX)")
        if ours not in OUR_COLUMNS:
            raise VendorCsvError(f"--columns: {ours!r} is none of ours ({', '.join(OUR_COLUMNS)})")
        if ours in mapping:
            raise VendorCsvError(f"--columns names {ours} twice")
        mapping[ours] = theirs
    return mapping


def read_foreign_csv(paths, *, kind: str = "auto", columns: str | None = None, acc_unit: str | None = None,
                     gyr_unit: str | None = None, time_unit: str | None = None, axes: str | None = None,
                     fs_hz: float | None = None) -> ForeignRecording:
    """Read ``paths`` (one file; for MetaMotion the accelerometer's and the gyroscope's, or one of them with the
    other found beside it) as ``kind`` (``auto``: recognised from the header). Units given here override the
    kind's own (the physics check still refuses a wrong one)."""
    paths = [Path(p) for p in paths]
    if kind not in FORMATS:
        raise VendorCsvError(f"format {kind!r}: one of {', '.join(FORMATS)}")
    for unit, table, option in ((acc_unit, ACC_UNITS, "--acc-unit"), (gyr_unit, GYR_UNITS, "--gyr-unit"),
                                (time_unit, TIME_UNITS, "--time-unit")):
        if unit is not None and unit not in table:
            raise VendorCsvError(f"unknown unit {unit!r} for {option}; use one of {', '.join(table)}")
    mapping = parse_columns(columns)
    lines = _head_lines(paths[0])
    if kind == "auto":
        kind = "generic" if mapping else _recognise(paths[0], lines)
    if kind == "metamotion":
        t, acc, gyr, sources, start = _read_metamotion(paths)
        units = METAMOTION_UNITS
    else:
        if len(paths) != 1:
            raise VendorCsvError(f"{kind} takes one file; {len(paths)} given")
        columns_of = DOT_COLUMNS if kind == "movella-dot" else {c: mapping.get(c, c) for c in OUR_COLUMNS}
        header_row = _header_row(paths[0], lines, columns_of[TIME_COLUMN], kind)
        table = _read_columns(paths[0], header_row, [columns_of[c] for c in OUR_COLUMNS], kind)
        t, acc, gyr, sources, start = table[:, 0], table[:, 1:4], table[:, 4:7], [str(paths[0])], None
        units = DOT_UNITS if kind == "movella-dot" else ("m/s2", "rad/s", None)
        if kind == "movella-dot":
            t = _unwrap_clock(t, DOT_CLOCK_WRAP)
    acc_unit = acc_unit or units[0]
    gyr_unit = gyr_unit or units[1]
    time_unit = time_unit or units[2]
    recording = _to_recording(sources[0], t, acc, gyr, acc_unit, gyr_unit, time_unit, axes, fs_hz)
    return ForeignRecording(recording, kind, sources, start)


def _head_lines(path: Path) -> list[str]:
    try:
        with open(path, encoding="utf-8-sig", errors="replace") as file:
            return [line.rstrip("\r\n") for _, line in zip(range(HEADER_SEARCH_LINES), file)]
    except FileNotFoundError:
        raise VendorCsvError(f"{path}: no such file") from None
    except OSError as error:
        raise VendorCsvError(f"{path}: cannot be read ({error.strerror or error})") from None


def _recognise(path: Path, lines: list[str]) -> str:
    for line in lines:
        cells = [c.strip() for c in line.split(",")]
        if "PacketCounter" in cells and {"SampleTimeFine", "Acc_X", "Gyr_X"} <= set(cells):
            return "movella-dot"
        if cells and cells[0].lower() == METAMOTION_TIME:
            return "metamotion"
        if {c.lower() for c in OUR_COLUMNS} <= {c.lower() for c in cells}:
            return "generic"
    if any("PacketCounter" in line for line in lines):
        raise VendorCsvError(f"{path}: a Movella DOT export without Acc_X..Z and Gyr_X..Z: export it again with "
                             "the calibrated acceleration and angular velocity ('Custom mode' with Acc and Gyr)")
    raise VendorCsvError(f"{path}: not a CSV hipcheck recognises (a Movella DOT export, a MetaMotion MetaBase file, "
                         "or the generic format of docs/csv-format.md); name its columns with --columns "
                         "t=TIME,acc_x=..,acc_y=..,acc_z=..,gyr_x=..,gyr_y=..,gyr_z=.. and give --acc-unit, --gyr-unit")


def _header_row(path: Path, lines: list[str], time_name: str, kind: str) -> int:
    for row, line in enumerate(lines):
        if time_name.lower() in (c.strip().lower() for c in line.split(",")):
            return row
    raise VendorCsvError(f"{path}: no header naming {time_name!r} in its first {HEADER_SEARCH_LINES} lines "
                         f"(read as {kind}); name the columns with --columns")


def _read_columns(path: Path, header_row: int, names: list[str], kind: str) -> np.ndarray:
    """The named columns (matched without regard to case or spaces) as float64, rows in file order."""
    import pandas

    try:
        frame = pandas.read_csv(path, skiprows=header_row, skipinitialspace=True, encoding="utf-8-sig",
                                dtype=str, keep_default_na=False)
    except (ValueError, pandas.errors.ParserError, UnicodeDecodeError) as error:
        raise VendorCsvError(f"{path}: cannot be read as CSV ({str(error).splitlines()[0]})") from None
    found = {str(c).strip().lower(): c for c in frame.columns}
    missing = [n for n in names if n.strip().lower() not in found]
    if missing:
        raise VendorCsvError(f"{path}: (read as {kind}) the header lacks {', '.join(missing)}; it has "
                             f"{', '.join(map(str, frame.columns))}. Map the columns with --columns t=..,acc_x=..")
    out = np.empty((len(frame), len(names)))
    for j, name in enumerate(names):
        column = frame[found[name.strip().lower()]]
        values = pandas.to_numeric(column.str.strip(), errors="coerce").to_numpy(dtype=np.float64)
        bad = np.flatnonzero(np.isnan(values) & ~column.str.strip().str.lower().isin(("nan", "")).to_numpy())
        if len(bad):
            raise VendorCsvError(f"{path}: line {header_row + bad[0] + 2}, column {name!r}: "
                                 f"{column.iloc[bad[0]]!r} is not a number")
        out[:, j] = values
    if len(out) < 2:
        raise VendorCsvError(f"{path}: holds {len(out)} sample(s); a recording needs at least two")
    return out


def _unwrap_clock(t: np.ndarray, modulus: int) -> np.ndarray:
    """A counter that wraps at ``modulus`` made monotonic (a step back by more than half the range is a wrap)."""
    steps = np.diff(t)
    wraps = np.concatenate([[0.0], np.cumsum(np.where(steps < -modulus / 2, modulus, 0.0))])
    return t + wraps


def _read_metamotion(paths: list[Path]):
    """(t, acc, gyr, sources, start_unix_s) from MetaBase's accelerometer and gyroscope files."""
    if len(paths) == 1:
        paths = [paths[0], _metamotion_sibling(paths[0])]
    if len(paths) != 2:
        raise VendorCsvError(f"a MetaMotion recording is two MetaBase files (accelerometer, gyroscope); "
                             f"{len(paths)} given")
    tables = {}
    for path in paths:
        lines = _head_lines(path)
        header = [c.strip() for c in lines[0].split(",")] if lines else []
        unit = _metamotion_unit(path, header)
        table = _read_columns(path, 0, [METAMOTION_TIME] + [f"{a} ({unit})" for a in METAMOTION_AXES], "metamotion")
        if unit in tables:
            raise VendorCsvError(f"{path} and {tables[unit][0]} are both {unit} files; give the accelerometer's "
                                 "and the gyroscope's")
        tables[unit] = (path, table)
    (acc_path, acc), (gyr_path, gyr) = tables["g"], tables["deg/s"]
    for path, table in ((acc_path, acc), (gyr_path, gyr)):
        if np.any(np.diff(table[:, 0]) <= 0):
            bad = int(np.flatnonzero(np.diff(table[:, 0]) <= 0)[0])
            raise VendorCsvError(f"{path}: line {bad + 3}: 'epoc (ms)' does not increase")
    # The two sensors run on their own schedules: the gyroscope is read at the accelerometer's instants.
    inside = (acc[:, 0] >= gyr[0, 0]) & (acc[:, 0] <= gyr[-1, 0])
    if inside.sum() < 2:
        raise VendorCsvError(f"{acc_path} and {gyr_path} do not overlap in time ('epoc (ms)'): not one recording")
    t = acc[inside, 0]
    gyr_at = np.column_stack([np.interp(t, gyr[:, 0], gyr[:, k]) for k in (1, 2, 3)])
    return t, acc[inside, 1:4], gyr_at, [str(acc_path), str(gyr_path)], float(t[0]) / 1000.0


def _metamotion_unit(path: Path, header: list[str]) -> str:
    if not header or header[0].lower() != METAMOTION_TIME:
        raise VendorCsvError(f"{path}: not a MetaBase CSV (its first column is not {METAMOTION_TIME!r})")
    for unit in ("g", "deg/s"):
        if f"x-axis ({unit})" in header:
            return unit
    raise VendorCsvError(f"{path}: a MetaBase CSV of neither the accelerometer (x-axis (g)) nor the gyroscope "
                         "(x-axis (deg/s))")


def _metamotion_sibling(path: Path) -> Path:
    """MetaBase names a session's files alike but for the sensor: ..._Accelerometer_... and ..._Gyroscope_..."""
    name = path.name
    for this, other in (("Accelerometer", "Gyroscope"), ("Gyroscope", "Accelerometer")):
        if this in name:
            stem = re.escape(name.split(this)[0])
            found = sorted(p for p in path.parent.glob(f"*{other}*.csv") if re.match(stem, p.name))
            if found:
                return found[0]
            raise VendorCsvError(f"{path}: its {other.lower()} file ({name.split(this)[0]}{other}...csv) is not "
                                 "beside it; give both files")
    raise VendorCsvError(f"{path}: a MetaMotion recording needs the accelerometer's and the gyroscope's files: give "
                         "both")


def _to_recording(source: str, t: np.ndarray, acc: np.ndarray, gyr: np.ndarray, acc_unit: str, gyr_unit: str,
                  time_unit: str | None, axes: str | None, fs_hz: float | None) -> ImuRecording:
    """The same checks and conversions as a generic CSV (hipcheck.imu_csv.read_imu_csv)."""
    if not np.all(np.isfinite(t)):
        raise VendorCsvError(f"{source}: sample {int(np.flatnonzero(~np.isfinite(t))[0]) + 1}: the time is not a "
                             "number")
    steps = np.diff(t)
    if np.any(steps <= 0):
        bad = int(np.flatnonzero(steps <= 0)[0])
        raise VendorCsvError(f"{source}: sample {bad + 2}: time goes from {t[bad]:.10g} to {t[bad + 1]:.10g}; it "
                             "must increase from sample to sample")
    notes = []
    if time_unit is None:
        time_unit = time_unit_from_period(float(np.median(steps)), DETECTABLE_RATE_HZ)
        if time_unit is None:
            raise VendorCsvError(f"{source}: the time column steps by {np.median(steps):.6g} per sample: no sample "
                                 "period in s, ms or µs; pass --time-unit s|ms|us")
        if time_unit != "s":
            notes.append(f"the time column was read in {time_unit}; pass --time-unit to override")
    t_s = (t - t[0]) * TIME_UNITS[time_unit]
    rotation = parse_axes(axes)
    values = np.concatenate([acc, gyr], axis=1)
    values[np.isinf(values)] = np.nan
    acc_si = values[:, :3] @ rotation.T * ACC_UNITS[acc_unit]
    gyr_si = values[:, 3:] @ rotation.T * GYR_UNITS[gyr_unit]
    grid = regrid(t_s, acc_si, gyr_si)
    if grid.refusal:
        raise VendorCsvError(f"{source}: {grid.refusal}")
    fs = fs_hz if fs_hz is not None else grid.fs_hz
    low, high = DETECTABLE_RATE_HZ
    if not (math.isfinite(fs) and low <= fs <= high):
        raise VendorCsvError(f"{source}: the time column read in {time_unit} gives {fs:.4g} Hz, no sensor's rate "
                             f"({low:g}-{high:g} Hz): check --time-unit")
    problem = unit_problem(grid.acc, grid.gyr, acc_unit, gyr_unit, fs)
    if problem:
        raise VendorCsvError(f"{source}: {problem}")
    return ImuRecording(grid.t_s, grid.acc, grid.gyr, None, float(fs), source, time_unit, notes + grid.notes,
                        grid.observed)
