"""The notebook API (``hipcheck.analyze``), session logs as input, and the versioned JSON of ``analyze --json``:
every form of one recording gives the same strides; a log gives the strides its live session found; every JSON
output validates against host/hipcheck/schema/analysis-v1.json (checked with the ``jsonschema`` package)."""

import json
import shutil
from pathlib import Path

import jsonschema
import numpy as np
import pandas
import pytest

import hipcheck
from hipcheck import protocol
from hipcheck.api import SCHEMA_VERSION, schema
from hipcheck.cli import main
from hipcheck.device import LostRange
from hipcheck.exercises import POSTURE_DTYPE, REP_DTYPE
from hipcheck.gait import STRIDE_DTYPE
from hipcheck.hold import HOLD_DTYPE
from hipcheck.imu_csv import read_imu_csv, write_imu_csv
from hipcheck.motion import simulate_bridge, simulate_hold, simulate_stand, simulate_walk
from hipcheck.protocol import SampleFlag
from hipcheck.record import LogWriter
from hipcheck.sessionfile import read_session_log

PNG_COPY = Path("/work/notes/png/api_plot.png")  # where the figure is kept for a person to look at
PERIOD_US = 10_000
PACKET = 10  # samples per DATA packet of the hand-made log
LOST = (1000, 10)  # seq range the hand-made log's session marked lost


@pytest.fixture(scope="module")
def walk_csv(tmp_path_factory) -> Path:
    trace = simulate_walk(duration_s=20.0, seed=3, drop_right_deg=8.0)
    path = tmp_path_factory.mktemp("api") / "walk.csv"
    write_imu_csv(path, trace.t_s, trace.acc_sensor_m_s2, trace.gyr_sensor_rad_s)
    return path


def _wire_packets(acc, gyr, seq0: int, backfilled: bool = False, per_packet: int = PACKET) -> list[bytes]:
    quat = np.tile([1.0, 0.0, 0.0, 0.0], (len(acc), 1))
    q14, acc_raw, gyr_raw, flags = protocol.to_wire(quat, acc, gyr)
    if backfilled:
        flags = flags | np.uint8(SampleFlag.BACKFILLED)
    return protocol.encode_data_packets(seq0, seq0 * PERIOD_US, PERIOD_US, q14, acc_raw, gyr_raw, flags,
                                        samples_per_packet=per_packet)


@pytest.fixture(scope="module")
def hand_log(tmp_path_factory):
    """A session log as a session writes it: packets 30-32 missed live and backfilled 10 packets later; packet 100
    missed, marked lost (a gap_lost NOTE), and its backfill arriving after that decision (dropped, as live)."""
    trace = simulate_walk(duration_s=20.0, seed=5, drop_right_deg=8.0)
    acc, gyr = trace.acc_sensor_m_s2, trace.gyr_sensor_rad_s
    path = tmp_path_factory.mktemp("api") / "hand.hclog"
    n_packets = len(acc) // PACKET
    with LogWriter(path, {"link": "test", "device": None}) as log:
        def send(i, t, backfilled=False):
            rows = slice(i * PACKET, (i + 1) * PACKET)
            log.packet("data", _wire_packets(acc[rows], gyr[rows], i * PACKET, backfilled)[0], t)

        for i in range(n_packets):
            t = i * PACKET * PERIOD_US * 1e-6
            if i not in (30, 31, 32, LOST[0] // PACKET):
                send(i, t)
            if i == 42:
                for j in (30, 31, 32):
                    send(j, t, backfilled=True)
            if i == 110:
                log.note("gap_lost", t, first_seq=LOST[0], n=LOST[1], reason="backfill failed")
                send(LOST[0] // PACKET, t, backfilled=True)  # too late: the session had given up on it
    # The samples the live session analysed: all of them in order, but the lost packet, as they came off the wire.
    keep = np.ones(n_packets * PACKET, bool)
    keep[LOST[0]:LOST[0] + LOST[1]] = False
    samples, _ = protocol.decode_data_packets(_wire_packets(acc[:n_packets * PACKET], gyr[:n_packets * PACKET], 0),
                                              strict=True)
    return path, samples[keep]


def test_arrays_dataframe_and_csv_path_give_the_same_strides(walk_csv):
    csv = read_imu_csv(walk_csv)
    by_path = hipcheck.analyze(walk_csv)
    forms = {
        "read_csv, fs=100": hipcheck.analyze(pandas.read_csv(walk_csv), fs=100),
        "read_csv, fs from t": hipcheck.analyze(pandas.read_csv(walk_csv)),
        "(acc, gyr)": hipcheck.analyze((csv.acc_m_s2, csv.gyr_rad_s), fs=100),
        "(n, 6)": hipcheck.analyze(np.hstack([csv.acc_m_s2, csv.gyr_rad_s]), fs=100.0),
    }
    assert len(by_path.strides) >= 10 and by_path.summary["weak_side"] == "right"
    for name, result in forms.items():
        pandas.testing.assert_frame_equal(result.strides, by_path.strides, check_exact=True, obj=name)
        assert result.summary == by_path.summary, name
    assert by_path.analysis.fs_hz == 100.0  # the rate of a time column carries no float noise


def test_tables_name_sides_and_kinds_and_time_the_records(walk_csv):
    result = hipcheck.analyze(walk_csv, drop_threshold_deg=5.0)
    strides, contacts, decisions = result.strides, result.contacts, result.decisions
    assert list(strides.columns) == ["start_sample", "t_s", *STRIDE_DTYPE.names[1:]]
    assert set(strides["side"]) == {"left", "right"}
    assert set(contacts["kind"]) == {"initial", "final"}
    np.testing.assert_allclose(contacts["t_s"], contacts["sample"] / 100.0)
    assert len(decisions) and set(decisions["kind"]) <= {"drop", "sway", "tilt", "drop_stride"}
    assert set(decisions.loc[decisions["kind"] == "drop", "side"]) == {"right"}  # the weak side's stance
    assert (decisions.loc[decisions["kind"] == "drop", "threshold"] == 5.0).all()
    assert list(result.holds.columns) == ["start_sample", "t_s", *HOLD_DTYPE.names[1:]] and not len(result.holds)


def test_a_hold_in_hold_mode(tmp_path):
    trace = simulate_hold(duration_s=20.0, seed=2, side="left")
    result = hipcheck.analyze((trace.acc_sensor_m_s2, trace.gyr_sensor_rad_s), fs=trace.fs_hz, mode="hold")
    assert len(result.holds) == 1 and result.holds["side"][0] == "left"
    assert result.summary["holds"] == 1 and result.summary["holds_left_stance"] == 1
    assert result.summary["hold_time_s_median"] == pytest.approx(result.holds["hold_time_s"][0], abs=1e-3)
    figure = result.plot()  # obliquity and tilt with the hold shaded, its drop and duration; no side named
    assert len(figure.axes) == 4 and len(figure.axes[0].patches) == 1
    assert figure.get_suptitle().startswith("no side can be named") == bool(result.analysis.side_refused)


def test_bridges_in_bridge_mode():
    """The rep counter's reps as a table, its settings and the detectors' taken by name, and its figure."""
    trace = simulate_bridge(seed=1)
    data = (trace.acc_sensor_m_s2, trace.gyr_sensor_rad_s)
    result = hipcheck.analyze(data, fs=trace.fs_hz, mode="bridge", drop_threshold_deg=5.0)
    truth = [i for i in trace.truth.intervals if i.kind == "rep"]
    assert len(result.reps) == len(truth) == result.summary["reps"] >= 5
    assert set(result.reps["flag"]) == {"none"} and result.summary["flagged"]["left side dropped"] == 0
    np.testing.assert_allclose(result.reps["t_s"], result.reps["start_sample"] / trace.fs_hz)
    assert len(hipcheck.analyze(data, fs=trace.fs_hz, mode="bridge", min_range_deg=60.0).reps) == 0
    with pytest.raises(hipcheck.InvalidTypeError, match="min_rnge_deg"):
        hipcheck.analyze(data, fs=trace.fs_hz, mode="bridge", min_rnge_deg=6.0)
    figure = result.plot()
    assert len(figure.axes[0].patches) == len(result.reps)
    np.testing.assert_allclose([p.get_height() for p in figure.axes[1].patches], result.reps["range_deg"])


def test_bad_input_is_refused_with_a_hipcheck_error(walk_csv):
    frame = pandas.read_csv(walk_csv)
    with pytest.raises(hipcheck.InvalidValueError, match="give the sample rate"):
        hipcheck.analyze(np.zeros((500, 6)))
    with pytest.raises(hipcheck.InvalidValueError, match="lacks gyr_z"):
        hipcheck.analyze(frame.drop(columns="gyr_z"))
    with pytest.raises(hipcheck.InvalidTypeError, match="not list"):
        hipcheck.analyze([1, 2, 3])
    with pytest.raises(hipcheck.InvalidValueError, match="mode 'run'"):
        hipcheck.analyze(frame, mode="run")
    with pytest.raises(hipcheck.InvalidTypeError, match="drop_treshold_deg"):
        hipcheck.analyze(frame, drop_treshold_deg=5)


def test_a_log_is_read_as_the_session_reassembled_it(hand_log):
    path, samples = hand_log
    log = read_session_log(path)
    assert log.fs_hz == 100.0
    np.testing.assert_array_equal(log.seq, samples["seq"])  # backfill in its place, the lost packet left out
    np.testing.assert_array_equal(log.acc_m_s2, samples["acc_m_s2"].astype(np.float64))
    assert log.lost == [LostRange(LOST[0], LOST[1], "backfill failed")] and log.n_lost == LOST[1]
    assert np.all(np.diff(log.t_s) > 0) and log.damaged_bytes == 0


def test_a_log_path_gives_the_strides_of_its_samples_as_arrays(hand_log):
    path, samples = hand_log
    by_log = hipcheck.analyze(path)
    arrays = (samples["acc_m_s2"].astype(np.float64), samples["gyr_rad_s"].astype(np.float64))
    pandas.testing.assert_frame_equal(by_log.strides, hipcheck.analyze(arrays, fs=100).strides, check_exact=True)
    assert len(by_log.strides) >= 10
    out = by_log.json()["input"]
    assert out == {"format": "hclog", "path": str(path), "samples_lost": LOST[1], "damaged_bytes": 0,
                   "lost": [{"first_seq": LOST[0], "n": LOST[1], "reason": "backfill failed"}]}


def test_a_hole_the_log_never_filled_is_lost_at_its_end(hand_log, tmp_path):
    """A recorder killed before a backfill came: the hole is marked lost and the rest analysed."""
    path, _ = hand_log
    cut = tmp_path / "cut.hclog"
    data = path.read_bytes()
    cut.write_bytes(data[:len(data) * 2 // 10])  # before the backfill of packets 30-32, mid-record
    log = read_session_log(cut)
    assert log.damaged_bytes > 0 and "cut short" in log.damage_line
    found = hipcheck.analyze(cut).json()
    assert found["input"]["damage"] == log.damage_line and jsonschema.Draft202012Validator(schema()).is_valid(found)
    assert [(r.first_seq, r.n) for r in log.lost] == [(300, 30)] and log.lost[0].reason == "not in the recording"


def _json_of(argv, capsys) -> dict:
    capsys.readouterr()
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_the_demo_log_gives_the_strides_the_live_session_found(tmp_path, capsys):
    """`hipcheck demo --headless --record d.hclog`, then `hipcheck analyze d.hclog --json`: the strides the live
    job found on the simulated sensor, to the bit (through hipcheck.analyze) and in the JSON; figures drawn."""
    from hipcheck.demo import run_demo
    from hipcheck.report import record_to_dict

    record = tmp_path / "d.hclog"
    live, _ = run_demo(seconds=15.0, headless=True, record=record, out=lambda line: None)
    result = hipcheck.analyze(record)
    assert len(live.strides) >= 6
    np.testing.assert_array_equal(result.analysis.strides, live.strides)
    found = _json_of(["analyze", str(record), "--json"], capsys)
    jsonschema.validate(found, schema())
    expected = [record_to_dict(s, {"side": ("left", "right")}) | {"t_s": round(int(s["start_sample"]) / live.fs_hz, 4)}
                for s in live.strides]
    assert found["strides"] == expected and found == result.json()
    assert found["fs"] == live.fs_hz and found["input"]["format"] == "hclog"

    figure = result.plot(tmp_path / "plot.png")
    line = figure.axes[0].lines[0]
    np.testing.assert_array_equal(line.get_ydata(), result.analysis.angles_pelvis_deg[:, 1])
    assert len(figure.axes) == 6 and (tmp_path / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if PNG_COPY.parent.exists():
        shutil.copyfile(tmp_path / "plot.png", PNG_COPY)


def test_the_demo_command_and_analyze_json_agree(tmp_path, capsys):
    """The acceptance commands as typed: each stride line the demo printed live is a stride of the JSON, in order,
    and the demo's summary counts the JSON's strides."""
    from hipcheck.report import stride_line

    record = tmp_path / "d.hclog"
    capsys.readouterr()
    assert main(["demo", "--headless", "--seconds", "15", "--record", str(record)]) == 0
    printed = capsys.readouterr().out.splitlines()
    found = _json_of(["analyze", str(record), "--json"], capsys)
    analysis = hipcheck.analyze(record).analysis
    lines = [stride_line(s, analysis.fs_hz) for s in analysis.strides]
    assert len(lines) == len(found["strides"]) >= 6
    assert [line for line in printed if line in lines] == lines
    assert f"{len(lines)} strides ({found['summary']['steady_strides']} steady)" in printed


def test_orient_reads_a_log(hand_log, tmp_path, capsys):
    path, samples = hand_log
    out = tmp_path / "q.csv"
    assert main(["orient", str(path), "-o", str(out)]) == 0
    table = np.loadtxt(out, delimiter=",", skiprows=1)
    assert len(table) == len(samples)
    np.testing.assert_allclose(table[:, 0], (samples["t_us"] - samples["t_us"][0]) * 1e-6, atol=1e-9)


def test_every_json_output_follows_the_schema(walk_csv, hand_log, tmp_path, capsys):
    hold, stand, bridge = tmp_path / "hold.csv", tmp_path / "stand.csv", tmp_path / "bridge.csv"
    for trace, path in ((simulate_hold(duration_s=20.0, seed=1), hold), (simulate_stand(duration_s=6.0), stand),
                        (simulate_bridge(seed=2), bridge)):
        write_imu_csv(path, trace.t_s, trace.acc_sensor_m_s2, trace.gyr_sensor_rad_s)
    validator = jsonschema.Draft202012Validator(schema())
    outputs = {
        "walk": _json_of(["analyze", str(walk_csv), "--json"], capsys),
        "walk, offline": _json_of(["analyze", str(walk_csv), "--json", "--offline"], capsys),
        "hold": _json_of(["analyze", str(hold), "--json"], capsys),
        "side refused": _json_of(["analyze", str(stand), "--json"], capsys),
        "hclog": _json_of(["analyze", str(hand_log[0]), "--json"], capsys),
        "bridge": _json_of(["analyze", str(bridge), "--json", "--mode", "bridge"], capsys),
        "posture": _json_of(["analyze", str(stand), "--json", "--mode", "posture", "--neutral-tilt", "-15"], capsys),
        "API, thresholds": hipcheck.analyze(walk_csv, drop_threshold_deg=5.0).json(),
    }
    assert outputs["hold"].get("holds") and outputs["side refused"]["summary"].get("side_refused")
    assert outputs["walk"]["decisions"] or outputs["API, thresholds"]["decisions"]
    assert outputs["bridge"]["reps"] and "posture_alerts" in outputs["posture"]
    for name, found in outputs.items():
        assert found["schema_version"] == SCHEMA_VERSION, name
        errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(found)]
        assert errors == [], (name, errors[:5])


def test_the_schema_refuses_what_it_should(walk_csv):
    good = hipcheck.analyze(walk_csv).json()
    validator = jsonschema.Draft202012Validator(schema())
    assert validator.is_valid(good)
    broken = [
        {k: v for k, v in good.items() if k != "schema_version"},
        good | {"schema_version": "2.0"},
        good | {"strides": [good["strides"][0] | {"side": "middle"}]},
        good | {"strides": [{k: v for k, v in good["strides"][0].items() if k != "drop_right_stance_deg"}]},
        good | {"surprise": 1},
    ]
    assert not any(validator.is_valid(b) for b in broken)


def test_the_schema_names_every_record_field():
    """A field added to a record without the schema knowing fails here: bump the schema's minor version."""
    defs = schema()["$defs"]
    assert set(defs["stride"]["properties"]) == set(STRIDE_DTYPE.names) | {"t_s"}
    assert set(defs["hold"]["properties"]) == set(HOLD_DTYPE.names)
    assert set(defs["rep"]["properties"]) == set(REP_DTYPE.names) | {"t_s"}
    assert set(defs["posture_alert"]["properties"]) == set(POSTURE_DTYPE.names) | {"t_s"}
    jsonschema.Draft202012Validator.check_schema(schema())


def test_the_schema_ships_with_the_package():
    root = Path(__file__).resolve().parents[1]
    text = (root / "pyproject.toml").read_text()
    assert '"schema/*.json"' in text
    assert (Path(hipcheck.__file__).parent / "schema" / "analysis-v1.json").exists()

