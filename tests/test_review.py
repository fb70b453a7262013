"""``hipcheck review``: the report's numbers are those of ``analyze --json``; a folder reviewed on a Dask cluster or
in two processes gives the tables of the one-process review, row for row; the report opened in headless Chromium
shows its figures (the screenshot is checked for the plots' colours)."""

import json
import re
import shutil
import subprocess
from datetime import datetime, timezone
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas
import pytest

from hipcheck import protocol, review as review_module
from hipcheck.cli import main
from hipcheck.motion import simulate_walk
from hipcheck.record import LogWriter

PNG_COPY = Path("/work/notes/png/review_report.png")  # the screenshot, kept for a person to look at
WEARERS = ("anna", "ben")
SESSIONS_PER_WEARER = 10
DAY_S = 86400.0
TAB_RED, TAB_BLUE = (214, 39, 40), (31, 119, 180)  # matplotlib's tab:red and tab:blue: the two sides' curves


def write_log(path: Path, seed: int, start_unix_s: float, drop_right_deg: float) -> None:
    """A short session log as a recording host writes it: full-form DATA packets of a simulated walk (10 samples
    each, 0.1 s apart on the host clock), and the closing NOTE with the session's counts."""
    trace = simulate_walk(duration_s=8.0, seed=seed, drop_right_deg=drop_right_deg)
    quat, acc, gyr, flags = protocol.to_wire(trace.truth.q_sensor_to_earth, trace.acc_sensor_m_s2,
                                             trace.gyr_sensor_rad_s)
    period_us = int(round(1e6 / trace.fs_hz))
    packets = protocol.encode_data_packets(0, 0, period_us, quat, acc, gyr, flags, samples_per_packet=10)
    with LogWriter(path, {"link": "test", "device": None, "start_unix_s": start_unix_s}, sync_interval_s=1e9) as log:
        for k, packet in enumerate(packets):
            log.packet("data", packet, 100.0 + 0.1 * k)
        log.note("end", 100.0 + 0.1 * len(packets), samples_emitted=len(trace.t_s), samples_backfilled=0, holes=0)


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    """20 short logs of two wearers (a folder each), a session a day; anna's weak right hip improves."""
    root = tmp_path_factory.mktemp("archive")
    start = datetime(2026, 11, 2, 9, 30, tzinfo=timezone.utc).timestamp()
    for w, wearer in enumerate(WEARERS):
        (root / wearer).mkdir()
        for day in range(SESSIONS_PER_WEARER):
            drop = 10.0 - 0.5 * day if wearer == "anna" else 5.0
            write_log(root / wearer / f"day{day:02d}.hclog", 100 * w + day, start + day * DAY_S, drop)
    return root


class _Cells(HTMLParser):
    """The text of every ``<td data-key=...>`` (the summary tables) and the embedded JSON."""

    def __init__(self):
        super().__init__()
        self.summary: list[tuple[str, str]] = []
        self.embedded = ""
        self._key = self._script = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self._key = attrs.get("data-key") if tag == "td" else None
        self._script = tag == "script" and attrs.get("id") == "hipcheck-review"

    def handle_data(self, data):
        if self._key is not None:
            self.summary.append((self._key, data))
            self._key = None
        elif self._script:
            self.embedded += data


def _json_of(argv, capsys) -> dict:
    capsys.readouterr()
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        if shutil.which(name):
            return shutil.which(name)
    pytest.fail("headless Chromium is needed to look at the report: apt-get install chromium (.ci/run does)")


def screenshot(html: Path, png: Path) -> np.ndarray:
    """The report as headless Chromium draws it, 1200 px wide and 4000 px tall, as an RGB array."""
    from PIL import Image

    profile = html.parent / "chromium-profile"
    command = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               f"--user-data-dir={profile}", f"--screenshot={png}", "--window-size=1200,4000", html.as_uri()]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=html.parent)
    assert png.exists(), done.stderr[-2000:]
    return np.asarray(Image.open(png).convert("RGB")).astype(int)


def _near(image: np.ndarray, colour: tuple[int, int, int], tolerance: int = 12) -> int:
    return int(np.all(np.abs(image - np.array(colour)) <= tolerance, axis=2).sum())


def test_demo_log_analyze_and_review_agree_and_the_report_shows_its_figures(tmp_path, capsys):
    """The acceptance: `hipcheck demo --headless --record d.hclog`, `hipcheck analyze d.hclog --json`, `hipcheck
    review d.hclog -o r.html`: the same strides and summary in the JSON, the report (shown and embedded) and its
    Parquet tables; the report, opened in headless Chromium, shows the figures."""
    log, report = tmp_path / "d.hclog", tmp_path / "r.html"
    assert main(["demo", "--headless", "--seconds", "10", "--record", str(log)]) == 0
    found = _json_of(["analyze", str(log), "--json"], capsys)
    assert main(["review", str(log), "-o", str(report), "--progress"]) == 0
    err = capsys.readouterr().err
    assert "reviewing" in err and "100%" in err  # the progress bar

    page = _Cells()
    page.feed(report.read_text(encoding="utf-8"))
    words = report.read_text(encoding="utf-8")
    assert "weak side: right (hip abductors" in words and "pelvic drop (median):" in words  # what analyze prints
    shown = dict(page.summary)
    scalars = {k: v for k, v in found["summary"].items() if not isinstance(v, (dict, list))}
    assert shown == {k: "–" if v is None else (v if isinstance(v, str) else json.dumps(v)) for k, v in scalars.items()}
    embedded = json.loads(page.embedded)["sessions"]
    assert len(embedded) == 1 and embedded[0]["summary"] == found["summary"]
    assert [dict(zip(embedded[0]["strides"], row)) for row in zip(*embedded[0]["strides"].values())] == \
        found["strides"]
    assert len(found["strides"]) >= 6

    strides = pandas.read_parquet(tmp_path / "r-strides.parquet")
    assert len(strides) == len(found["strides"]) and set(strides["session"]) == {"d.hclog"}
    for name in ("start_sample", "t_s", "side", "drop_right_stance_deg", "drop_left_stance_deg", "sway_pp_cm",
                 "tilt_mean_deg", "aligned"):
        column = [s[name] for s in found["strides"]]
        got = strides[name].tolist()
        assert [round(v, 4) if isinstance(v, float) else v for v in got] == column, name
    sessions = pandas.read_parquet(tmp_path / "r-sessions.parquet")
    for key, value in scalars.items():
        assert (None if pandas.isna(sessions.loc[0, key]) else sessions.loc[0, key]) == value, key
    figures = sorted(p.name.rsplit("-", 1)[1] for p in (tmp_path / "r_figures").glob("*.png"))
    assert figures == ["alerts.png", "cycle.png", "drops.png", "link.png", "sway_tilt.png"]
    if "export" in _commands():  # another command of the same acceptance: its strides agree too
        _export_agrees(log, tmp_path, found, capsys)

    image = screenshot(report, tmp_path / "shot.png")
    if PNG_COPY.parent.exists():
        shutil.copyfile(tmp_path / "shot.png", PNG_COPY)
    assert image.shape == (4000, 1200, 3) and image.std() > 20  # not a blank page
    # Both sides' curves drawn (the weak right side in red, left in blue) in the upper half, where the figures are.
    assert _near(image[:2000], TAB_RED) > 500 and _near(image[:2000], TAB_BLUE) > 500


def _commands() -> set:
    import argparse

    from hipcheck.cli import build_parser

    return set(next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices)


def _export_agrees(log: Path, tmp_path: Path, found: dict, capsys) -> None:
    out = tmp_path / "export"
    assert main(["export", str(log), "--format", "parquet", "-o", str(out)]) == 0
    strides = pandas.read_parquet(next(out.rglob("*strides*.parquet")))
    for name in ("start_sample", "end_sample", "side"):
        assert [str(v) if name == "side" else int(v) for v in strides[name]] == [s[name] for s in found["strides"]]


def test_a_folder_on_dask_and_in_two_processes_gives_the_one_process_tables(archive, tmp_path, capsys):
    """20 logs of two wearers: the one-process review, the review on a Dask LocalCluster (each session a task) and
    `--jobs 2` give the same tables, row for row; a report per wearer with the trends across dates."""
    from dask.distributed import LocalCluster

    one = review_module.review([archive], tmp_path / "one.html", settings=review_module.ReviewSettings(figures=False))
    assert len(one.sessions) == 2 * SESSIONS_PER_WEARER and not one.sessions["error"].notna().any()
    assert len(one.strides) > 5 * len(one.sessions)
    assert list(one.strides.columns[:3]) == ["session", "wearer", "date"]
    anna = one.sessions[one.sessions["wearer"] == "anna"]
    assert anna["date"].tolist() == [f"2026-11-{2 + d:02d}" for d in range(SESSIONS_PER_WEARER)]
    # anna's right-stance drop follows her recovery from 10° towards 5.5°
    assert anna["drop_right_stance_deg_median"].iloc[0] > anna["drop_right_stance_deg_median"].iloc[-1] + 2.5

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        assert main(["review", str(archive), "-o", str(tmp_path / "dask.html"), "--no-figures",
                     "--scheduler", cluster.scheduler_address]) == 0
    assert main(["review", str(archive), "-o", str(tmp_path / "jobs.html"), "--no-figures", "--jobs", "2"]) == 0
    for name in ("dask", "jobs"):
        for table, expected in (("strides", one.strides), ("sessions", one.sessions)):
            got = pandas.read_parquet(tmp_path / f"{name}-{table}.parquet")
            pandas.testing.assert_frame_equal(got, pandas.read_parquet(tmp_path / f"one-{table}.parquet"),
                                              check_exact=True, obj=f"{name} {table}")
            assert len(got) == len(expected)
    index = (tmp_path / "jobs.html").read_text()
    assert 'href="jobs-anna.html"' in index and 'href="jobs-ben.html"' in index
    for wearer in WEARERS:
        page = (tmp_path / f"jobs-{wearer}.html").read_text()
        assert "Trends across dates" in page and page.count('<tr><td class=t>2026-11-') == SESSIONS_PER_WEARER
        assert (tmp_path / "jobs_figures" / f"{wearer}-trends.png").exists()


def test_a_scheduler_that_is_not_there_exits_69_on_one_line(archive, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(review_module, "CONNECT_TIMEOUT", "1s")
    capsys.readouterr()
    code = main(["review", str(archive / "anna" / "day00.hclog"), "-o", str(tmp_path / "r.html"),
                 "--scheduler", "tcp://127.0.0.1:9"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 69 and len(err) == 1 and err[0].startswith("hipcheck review: the Dask scheduler at tcp://127")


def test_a_session_that_cannot_be_read_is_listed_and_the_rest_reviewed(archive, tmp_path, capsys):
    bad = tmp_path / "bad.hclog"
    bad.write_bytes(b"not a log at all")
    done = review_module.review([archive / "ben" / "day00.hclog", bad], tmp_path / "r.html", wearer="ben",
                                settings=review_module.ReviewSettings(figures=False), out=print)
    assert done.sessions["error"].notna().tolist() == [False, True]
    assert f"not reviewed: {bad}:" in capsys.readouterr().out
    assert "not analysed:" in (tmp_path / "r.html").read_text()


def test_link_quality_counts_the_backfilled_and_the_lost_samples(tmp_path):
    """A log whose packets 20-24 came late (backfilled) and whose samples 500-539 were given up (gap_lost): the
    link account counts them and its figure is drawn; a log without the session's closing NOTE is said not closed."""
    trace = simulate_walk(duration_s=8.0, seed=4, drop_right_deg=8.0)
    quat, acc, gyr, flags = protocol.to_wire(trace.truth.q_sensor_to_earth, trace.acc_sensor_m_s2,
                                             trace.gyr_sensor_rad_s)
    packets = protocol.encode_data_packets(0, 0, 10_000, quat, acc, gyr, flags, samples_per_packet=10)
    resent = protocol.encode_data_packets(200, 2_000_000, 10_000, quat[200:250], acc[200:250], gyr[200:250],
                                          flags[200:250] | np.uint8(protocol.SampleFlag.BACKFILLED),
                                          samples_per_packet=10)
    path = tmp_path / "lossy.hclog"
    with LogWriter(path, {"link": "test", "device": None}) as log:
        for k, packet in enumerate(packets):
            if not (20 <= k < 25 or 50 <= k < 54):
                log.packet("data", packet, 0.1 * k)
            if k == 35:
                for again in resent:
                    log.packet("data", again, 0.1 * k)
            if k == 60:
                log.note("gap_lost", 0.1 * k, first_seq=500, n=40, reason="backfill failed")
    done = review_module.review_session(review_module.Session(str(path), path.name), review_module.ReviewSettings())
    assert not done.error
    assert {k: done.link[k] for k in ("samples", "samples_backfilled_in_log", "samples_lost_in_log", "closed")} == \
        {"samples": len(packets) * 10, "samples_backfilled_in_log": 50, "samples_lost_in_log": 40, "closed": False}
    assert done.json["input"]["samples_lost"] == 40 and "link" in done.figures


def test_bridges_are_reviewed_with_their_reps_as_analyze_mode_bridge_lists_them(tmp_path, capsys):
    """--mode bridge: the reps table of the report is the JSON's reps of `analyze --mode bridge`, and drawn."""
    from hipcheck.imu_csv import write_imu_csv
    from hipcheck.motion import simulate_bridge

    trace = simulate_bridge(reps=4)
    path = tmp_path / "bridge.csv"
    write_imu_csv(path, trace.t_s, trace.acc_sensor_m_s2, trace.gyr_sensor_rad_s)
    found = _json_of(["analyze", str(path), "--json", "--mode", "bridge"], capsys)
    assert main(["review", str(path), "-o", str(tmp_path / "r.html"), "--mode", "bridge"]) == 0
    page = (tmp_path / "r.html").read_text()
    rows = re.findall(r"<tr>(.*?)</tr>", page.split("<p>reps</p>")[1].split("</table>")[0])
    names = re.findall(r"<th>(.*?)</th>", rows[0])
    shown = [re.findall(r"<td>(.*?)</td>", row) for row in rows[1:]]
    assert len(found["reps"]) == len(shown) == 4
    for name in ("start_sample", "range_deg", "up_s", "down_s"):
        assert [json.loads(row[names.index(name)]) for row in shown] == [r[name] for r in found["reps"]], name
    assert (tmp_path / "r_figures" / f"{tmp_path.name}-bridge.csv-holds_reps.png").exists()
