"""The data out: an analysed recording as one file per table, CSV or Parquet, with the dtypes of docs/export.md.

``export_tables(result)`` gives the tables as pandas DataFrames: ``samples`` (the samples as read, SI units, the
sensor frame), ``orientation`` (the sensor-to-earth quaternion the pipeline used), ``angles`` (pelvic rotation,
obliquity, tilt), and the tables of ``hipcheck.Result`` (``contacts``, ``strides``, ``decisions``, ``holds``,
``reps``) as they are. ``write_tables`` writes them into a folder; ``read_table`` reads one back with its dtypes.

Every table starts with the sample index its row belongs to and ``t_s`` = that index over the rate, as the JSON and
``hipcheck.Result`` count them (for a log with lost samples, analysed samples are counted, lost ones left out).
Categorical columns (sides, kinds, flags) are pandas categoricals with a fixed list of categories: Parquet keeps
them as such; CSV holds their names, and ``csv_dtypes(table)`` is what ``pandas.read_csv(..., dtype=)`` needs to give
them back, with every other column's dtype too (an empty table has no values to infer them from).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hipcheck.api import Result
from hipcheck.detect import KIND_NAMES as DECISION_KINDS
from hipcheck.detect import SIDE_NAMES as DECISION_SIDES
from hipcheck.errors import InvalidValueError
from hipcheck.outputs import check_folder_of, same_file
from hipcheck.exercises import FLAG_NAMES
from hipcheck.gait import SIDE_NAMES, STRIDE_DTYPE
from hipcheck.hold import HOLD_DTYPE
from hipcheck.exercises import REP_DTYPE
from hipcheck.imu_csv import ACC_COLUMNS, GYR_COLUMNS

TABLES = ("samples", "orientation", "angles", "contacts", "strides", "decisions", "holds", "reps")
FORMATS = {"csv": ".csv", "parquet": ".parquet"}
QUATERNION_COLUMNS = ("qw", "qx", "qy", "qz")
# hipcheck.pipeline.Analysis.angles_pelvis_deg's columns, in order (docs/angles.md for the signs).
ANGLE_COLUMNS = ("rotation_deg", "obliquity_deg", "tilt_deg")
CONTACT_KINDS = ("initial", "final")


def _records_dtypes(dtype: np.dtype, categories: dict[str, tuple]) -> dict:
    """The dtypes of a Result table built from a record dtype (``Result._table``): the records' fields, t_s after
    the first (the sample the row belongs to), named fields as categoricals."""
    out = {}
    for index, name in enumerate(dtype.names):
        out[name] = ("category", categories[name]) if name in categories else dtype[name].name
        if index == 0:
            out["t_s"] = "float64"
    return out


def table_dtypes() -> dict[str, dict]:
    """Per table, column -> dtype name (``"int64"``, ``"float64"``, ``"bool"``, ...) or ``("category", names)``:
    the documented dtypes (docs/export.md), in column order."""
    per_sample = {"sample": "int64", "t_s": "float64"}
    return {
        "samples": {**per_sample, "t_input_s": "float64", **{c: "float64" for c in ACC_COLUMNS + GYR_COLUMNS}},
        "orientation": {**per_sample, **{c: "float64" for c in QUATERNION_COLUMNS}},
        "angles": {**per_sample, **{c: "float64" for c in ANGLE_COLUMNS}},
        "contacts": {**per_sample, "kind": ("category", CONTACT_KINDS), "side": ("category", SIDE_NAMES)},
        "strides": _records_dtypes(STRIDE_DTYPE, {"side": SIDE_NAMES}),
        "decisions": {**per_sample, "kind": ("category", DECISION_KINDS), "side": ("category", DECISION_SIDES),
                      "value": "float64", "threshold": "float64"},
        "holds": _records_dtypes(HOLD_DTYPE, {"side": DECISION_SIDES}),
        "reps": _records_dtypes(REP_DTYPE, {"flag": FLAG_NAMES}),
    }


def csv_dtypes(table: str) -> dict:
    """``dtype=`` for ``pandas.read_csv`` of an exported CSV table: its documented dtypes."""
    import pandas

    return {name: pandas.CategoricalDtype(list(d[1])) if isinstance(d, tuple) else d
            for name, d in table_dtypes()[table].items()}


def export_tables(result: Result) -> dict:
    """The tables of an analysed recording (module docstring), as pandas DataFrames in TABLES order."""
    import pandas

    analysis, recording = result.analysis, result.recording
    n = len(analysis.q_sensor_to_earth)
    sample = np.arange(n, dtype=np.int64)
    t_s = sample / analysis.fs_hz
    per_sample = {"sample": sample, "t_s": t_s}
    t_input = (np.asarray(recording.t_s, dtype=np.float64) if recording.t_s is not None and len(recording.t_s) == n
               else np.full(n, np.nan))
    samples = {**per_sample, "t_input_s": t_input}
    samples.update({c: recording.acc_m_s2[:, i] for i, c in enumerate(ACC_COLUMNS)})
    samples.update({c: recording.gyr_rad_s[:, i] for i, c in enumerate(GYR_COLUMNS)})
    tables = {
        "samples": pandas.DataFrame(samples),
        "orientation": pandas.DataFrame({**per_sample, **{c: analysis.q_sensor_to_earth[:, i]
                                                           for i, c in enumerate(QUATERNION_COLUMNS)}}),
        "angles": pandas.DataFrame({**per_sample, **{c: analysis.angles_pelvis_deg[:, i]
                                                      for i, c in enumerate(ANGLE_COLUMNS)}}),
        "contacts": result.contacts, "strides": result.strides, "decisions": result.decisions,
        "holds": result.holds, "reps": result.reps,
    }
    return {name: _with_dtypes(tables[name], name) for name in TABLES}


def _with_dtypes(frame, table: str):
    """The frame with exactly the documented columns and dtypes: a change in the records that the documentation
    does not follow fails here (and in tests/test_export.py) instead of shipping undocumented columns."""
    wanted = csv_dtypes(table)
    if list(frame.columns) != list(wanted):
        raise InvalidValueError(f"the {table} table has columns {list(frame.columns)}, not the documented "
                                f"{list(wanted)} (hipcheck.export.table_dtypes)")
    return frame.astype(wanted)


def output_paths(out_dir: Path, fmt: str) -> dict[str, Path]:
    """Where each table goes: ``DIR/<table>.csv`` or ``.parquet``."""
    if fmt not in FORMATS:
        raise InvalidValueError(f"format {fmt!r}: one of {', '.join(FORMATS)}")
    return {name: Path(out_dir) / f"{name}{FORMATS[fmt]}" for name in TABLES}


def check_output_dir(out_dir: Path, fmt: str, *, force: bool, inputs: tuple = ()) -> dict[str, Path]:
    """The output files, checked before any work: the folder is a folder (made if missing, its parent must exist);
    no input is one of the files (refused even with force: writing would destroy what is read); a file that is there
    already is replaced only with ``force``."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InvalidValueError(f"{out_dir} is a file; -o takes a folder for the tables")
    if not out_dir.exists():
        check_folder_of(out_dir)
    paths = output_paths(out_dir, fmt)
    for source in inputs:
        for path in paths.values():
            if same_file(source, path):
                raise InvalidValueError(f"{path} is also the input: writing it would destroy what is read; "
                                        "give another folder")
    there = [p.name for p in paths.values() if p.exists()]
    if there and not force:
        raise InvalidValueError(f"{out_dir} already holds {', '.join(there)}; pass --force to overwrite them, or "
                                "give another folder")
    return paths


def write_tables(tables: dict, out_dir: Path, fmt: str, *, force: bool = False, inputs: tuple = ()) -> dict:
    """Write each table to ``out_dir`` (``check_output_dir`` first); returns table -> path."""
    paths = check_output_dir(out_dir, fmt, force=force, inputs=inputs)
    if fmt == "parquet":
        _require_pyarrow()
    Path(out_dir).mkdir(exist_ok=True)
    for name, frame in tables.items():
        if fmt == "csv":
            frame.to_csv(paths[name], index=False)
        else:
            frame.to_parquet(paths[name], index=False, engine="pyarrow")
    return paths


def read_table(path) -> object:
    """An exported table read back with its documented dtypes (floats read back to the bit)."""
    import pandas

    path = Path(path)
    if path.suffix == ".parquet":
        _require_pyarrow()
        # An empty categorical comes back from Parquet without its categories: they are set again.
        return pandas.read_parquet(path, engine="pyarrow").astype(csv_dtypes(path.stem))
    return pandas.read_csv(path, dtype=csv_dtypes(path.stem))


def _require_pyarrow() -> None:
    try:
        import pyarrow  # noqa: F401
    except ImportError as error:
        raise InvalidValueError(f"Parquet needs pyarrow, which cannot be imported ({error}): pip install pyarrow, or "
                                "export --format csv") from None
