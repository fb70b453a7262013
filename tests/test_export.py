"""`hipcheck export`: one file per table, CSV or Parquet, that pandas reads back with the dtypes of docs/export.md and
the values of ``hipcheck.analyze``'s Result for the same input; the strides of an exported log are those of
`analyze --json`; outputs are never overwritten without --force and never the input."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas
import pytest

import hipcheck
from hipcheck.errors import InvalidValueError
from hipcheck.export import TABLES, check_output_dir, csv_dtypes, export_tables, table_dtypes, write_tables
from hipcheck.imu_csv import write_imu_csv
from hipcheck.motion import simulate_walk

DOCS = Path(__file__).resolve().parents[1] / "docs" / "export.md"


def _hipcheck(*argv, cwd):
    script = Path(sys.executable).with_name("hipcheck")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "hipcheck"]
    return subprocess.run(command + [str(a) for a in argv], capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def walk(tmp_path_factory):
    trace = simulate_walk(duration_s=15.0, seed=4, drop_right_deg=8.0)
    path = tmp_path_factory.mktemp("export") / "walk.csv"
    write_imu_csv(path, trace.t_s, trace.acc_sensor_m_s2, trace.gyr_sensor_rad_s)
    return path, hipcheck.analyze(path)


def _expected(result, name):
    """The table as hipcheck.Result gives it (the three per-sample tables from its arrays)."""
    if name in ("contacts", "strides", "decisions", "holds", "reps"):
        return getattr(result, name)
    analysis, recording = result.analysis, result.recording
    n = len(analysis.q_sensor_to_earth)
    columns = {"sample": np.arange(n), "t_s": np.arange(n) / analysis.fs_hz}
    if name == "samples":
        columns |= {"t_input_s": recording.t_s, **{f"acc_{a}": recording.acc_m_s2[:, i] for i, a in enumerate("xyz")},
                    **{f"gyr_{a}": recording.gyr_rad_s[:, i] for i, a in enumerate("xyz")}}
    elif name == "orientation":
        columns |= {f"q{a}": analysis.q_sensor_to_earth[:, i] for i, a in enumerate("wxyz")}
    else:
        columns |= {c: analysis.angles_pelvis_deg[:, i]
                    for i, c in enumerate(("rotation_deg", "obliquity_deg", "tilt_deg"))}
    return pandas.DataFrame(columns)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_pandas_reads_each_table_back_with_the_documented_dtypes_and_the_results_values(walk, fmt, tmp_path):
    path, result = walk
    paths = write_tables(export_tables(result), tmp_path / "out", fmt)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(f"{t}.{fmt}" for t in TABLES)
    for name in TABLES:
        if fmt == "csv":  # plain pandas, the dtypes of docs/export.md
            frame = pandas.read_csv(paths[name], dtype=csv_dtypes(name))
        else:
            frame = pandas.read_parquet(paths[name])
        expected = _expected(result, name)
        documented = csv_dtypes(name)
        assert list(frame.columns) == list(documented), name
        for column, dtype in documented.items():
            if fmt == "parquet" and len(frame) == 0 and isinstance(dtype, pandas.CategoricalDtype):
                continue  # Parquet keeps no categories of an empty column (docs/export.md); read_table restores them
            assert frame[column].dtype == dtype, (name, column, frame[column].dtype, dtype)
        if len(frame):
            pandas.testing.assert_frame_equal(frame, expected.astype(documented), check_exact=True, obj=name)
    assert len(result.strides) >= 8 and result.summary["weak_side"] == "right"


def test_docs_list_every_column_with_its_dtype():
    text = DOCS.read_text()
    for name, dtypes in table_dtypes().items():
        section = text.split(f"### `{name}`")[1].split("###")[0]
        rows = re.findall(r"^\| `([a-z_0-9]+)` \| ([^|]+) \|", section, flags=re.M)
        documented = {column: kind.strip() for column, kind in rows}
        written = {c: (f"category {list(d[1])}" if isinstance(d, tuple) else d) for c, d in dtypes.items()}
        assert list(documented) == list(written), name
        for column, kind in written.items():
            if kind.startswith("category"):
                assert documented[column].startswith("category"), (name, column)
                for category in dtypes[column][1]:
                    assert f"`{category}`" in documented[column], (name, column, category)
            else:
                assert documented[column] == f"`{kind}`", (name, column, documented[column])


def test_existing_files_need_force_and_the_input_is_never_an_output(walk, tmp_path):
    _, result = walk
    tables = export_tables(result)
    out = tmp_path / "out"
    write_tables(tables, out, "csv")
    with pytest.raises(InvalidValueError, match="already holds samples.csv.*--force"):
        write_tables(tables, out, "csv")
    write_tables(tables, out, "csv", force=True)
    write_tables(tables, out, "parquet")  # other names: no collision
    with pytest.raises(InvalidValueError, match="is also the input"):
        check_output_dir(out, "csv", force=True, inputs=(out / "strides.csv",))
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(InvalidValueError, match="is a file"):
        check_output_dir(tmp_path / "a-file", "csv", force=True)
    with pytest.raises(InvalidValueError, match="does not exist"):
        check_output_dir(tmp_path / "no" / "such", "csv", force=False)


def test_export_of_a_log_gives_the_strides_of_analyze_json(walk, tmp_path):
    """The acceptance's chain on a session log: analyze --json and export --format parquet (default folder)."""
    path, _ = walk
    log = tmp_path / "d.hclog"
    done = _hipcheck("import", path, "-o", log, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    done = _hipcheck("export", log, "--format", "parquet", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"{tmp_path / 'd-export' / 'strides.parquet'}: " in done.stdout
    analyzed = _hipcheck("analyze", log, "--json", cwd=tmp_path)
    assert analyzed.returncode == 0, analyzed.stderr
    strides = json.loads(analyzed.stdout)["strides"]
    exported = pandas.read_parquet(tmp_path / "d-export" / "strides.parquet")
    assert len(exported) == len(strides) >= 8
    assert exported["start_sample"].tolist() == [s["start_sample"] for s in strides]
    assert exported["side"].astype(str).tolist() == [s["side"] for s in strides]
    in_json = np.array([np.nan if s["drop_right_stance_deg"] is None else s["drop_right_stance_deg"] for s in strides])
    np.testing.assert_allclose(exported["drop_right_stance_deg"], in_json, atol=1e-4, equal_nan=True)  # JSON: 4 dp
    again = _hipcheck("export", log, "--format", "parquet", cwd=tmp_path)
    assert again.returncode == 1 and "--force" in again.stderr and len(again.stderr.splitlines()) == 1
