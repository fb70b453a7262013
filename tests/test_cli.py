"""The command line as a user meets it: the installed `hipcheck` script, its outputs and its errors."""

import json
import subprocess
import sys

import numpy as np
import pytest

from hipcheck import __version__
from hipcheck.imu_csv import read_imu_csv


def run(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "hipcheck", *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )


def test_version():
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"hipcheck {__version__}"


def test_simulate_walk_writes_trace_and_truth(tmp_path):
    out = tmp_path / "walk.csv"
    result = run("simulate", "walk", "--seconds", "20", "--drop-right", "8", "--seed", "3", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stdout

    rec = read_imu_csv(out)
    assert rec.fs_hz == pytest.approx(100.0, rel=0.01)
    assert 19.0 < rec.t_s[-1] - rec.t_s[0] < 20.5
    # A sacral sensor mostly reads gravity: the median magnitude is near 1 g.
    assert np.median(np.linalg.norm(rec.acc_m_s2, axis=1)) == pytest.approx(9.81, abs=0.3)

    truth = json.loads(out.with_name("walk.truth.json").read_text())
    assert truth["activity"] == "walk"
    obliquity = np.asarray(truth["angles_pelvis_deg"])[:, 1]
    # Right stance drops the left side to -8 deg (obliquity + = left side higher); left stance lifts it to +4.
    assert obliquity.min() == pytest.approx(-8.0, abs=1.0)
    assert obliquity.max() == pytest.approx(4.0, abs=1.0)


def test_simulate_json_summary_is_parseable(tmp_path):
    result = run("simulate", "hold", "--seconds", "20", "--drop-left", "5", "--json", "-o", str(tmp_path / "h.csv"))
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["csv"].endswith("h.csv")
    assert (tmp_path / "h.truth.json").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["simulate", "jog", "-o", "x.csv"], "invalid choice"),
        (["simulate", "walk"], "required"),
        (["simulate", "walk", "--seconds", "-3", "-o", "x.csv"], "--seconds -3 is out of range"),
        (["simulate", "walk", "--fs", "1", "-o", "x.csv"], "--fs 1 is out of range"),
        (["simulate", "walk", "--drop-right", "abc", "-o", "x.csv"], "invalid float value"),
        (["simulate", "stand", "--drop-right", "8", "-o", "x.csv"], "does not apply to stand"),
        (["simulate", "hold", "--drop-right", "8", "--drop-left", "3", "-o", "x.csv"], "not both"),
        (["simulate", "hold", "--side", "left", "--drop-right", "8", "-o", "x.csv"], "contradicts"),
        (["simulate", "walk", "-o", "x.txt"], "should end in .csv"),
        ([], "required"),
    ],
)
def test_bad_options_exit_2_with_a_message(tmp_path, args, message):
    result = run(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert not (tmp_path / "x.csv").exists()


def test_an_output_into_a_missing_folder_is_a_file_problem(tmp_path):
    result = run("simulate", "walk", "-o", "no/such/folder/x.csv", cwd=tmp_path)
    assert result.returncode == 1
    assert "does not exist: create it" in result.stderr and "Traceback" not in result.stderr


def test_demo_keeps_an_existing_log_unless_forced(tmp_path):
    log = tmp_path / "d.hclog"
    log.write_bytes(b"keep me")
    result = run("demo", "--headless", "--seconds", "10", "--record", str(log), cwd=tmp_path)
    assert result.returncode == 1 and "pass --force" in result.stderr
    assert log.read_bytes() == b"keep me"


def test_too_short_walk_is_a_usage_error(tmp_path):
    result = run("simulate", "walk", "--seconds", "3", "-o", str(tmp_path / "x.csv"))
    assert result.returncode == 2
    assert "too short for a walk" in result.stderr
