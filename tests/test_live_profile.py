"""`hipcheck live` and `hipcheck record` apply the calibration profile of the sensor the link names (hipcheck.live,
device_calibration) as `hipcheck analyze` applies it to that sensor's logs: on a log of the simulated sensor (the
firmware in the unix port, device id "sim") worn with a known mounting and replayed, a single-leg hold (no walking, so
no mounting can be found from the data) names its standing leg only with the profile's mounting; --no-profile leaves
it out; the live figures equal analyze's of the log. `--sim FILE` replays a file, not the calibrated sensor: no
profile is applied to it, nor later to the log it records (its header names the file, `replayed_file`), by analyze,
export or live --replay."""

from __future__ import annotations

import asyncio
import contextlib
import io

import numpy as np
import pytest

from hipcheck.calibration import profile as profiles
from hipcheck.cli import main
from hipcheck.gait import RIGHT
from hipcheck.imu_csv import write_imu_csv
from hipcheck.live import LinkOptions, LiveAnalysis, device_calibration, run_record
from hipcheck.motion import SensorModel, simulate_hold
from hipcheck.record import LogReader

GYRO_BIAS = (0.02, -0.015, 0.01)  # rad/s: the simulated chip's, which the profile's gyro calibration knows
SENSOR = SensorModel.realistic(seed=6, mounting_rpy_deg=(8.0, -20.0, 12.0), gyr_bias_rad_s=GYRO_BIAS)


@pytest.fixture(scope="module")
def hold_trace():
    """A 14 s right-leg hold (weak right hip: the free side drops 7°), worn with SENSOR's mounting."""
    return simulate_hold(duration_s=14.0, fs_hz=100.0, seed=2, side="right", drop_deg=7.0, sensor=SENSOR)


@pytest.fixture(scope="module")
def hold_csv(hold_trace, tmp_path_factory):
    """The hold as a file (``--sim FILE`` replays it)."""
    path = tmp_path_factory.mktemp("hold") / "hold.csv"
    write_imu_csv(path, hold_trace.t_s, hold_trace.acc_sensor_m_s2, hold_trace.gyr_sensor_rad_s)
    return path


@pytest.fixture
def sim_profile(tmp_path, monkeypatch):
    """The profile of device "sim" on this computer: SENSOR's mounting and gyroscope bias."""
    monkeypatch.setenv(profiles.ENV_CONFIG_DIR, str(tmp_path / "config"))
    profiles.record_calibration("sim", "gyro", {"gyro_bias_rad_s": list(GYRO_BIAS)}, {}, "test")
    return profiles.record_calibration("sim", "mount", {"q_sensor_to_pelvis": [float(v) for v in
                                                                               SENSOR.q_sensor_to_pelvis]}, {}, "test")


def _cli(argv):
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(argv)
    return code, stdout.getvalue(), stderr.getvalue()


@pytest.fixture(scope="module")
def hold_log(hold_trace, tmp_path_factory):
    """The hold as the simulated sensor itself records it (its own samples, as the demo's person or calibrate
    --sim's; not a file it replays): a session log that names device "sim" and no replayed file."""
    from hipcheck.device import DeviceSession, SessionSettings
    from hipcheck.links.sim import SimLink

    log = tmp_path_factory.mktemp("log") / "hold.hclog"

    async def record():
        async with SimLink(hold_trace) as link:
            async with DeviceSession(link, SessionSettings(start_seq=0), record=log) as session:
                async for _ in session.blocks():
                    pass

    asyncio.run(record())
    return log


def test_sim_replays_a_file_and_applies_no_profile_now_or_to_its_log(hold_csv, sim_profile, tmp_path):
    """record --sim FILE with a profile of device "sim" on this computer: none is applied to the file replayed (its
    sensor is not the one calibrated), one line says so, and the hold's leg is not named (no mounting known). Its
    log names the file; analyze, export and live --replay of that log apply no profile either and say why in one
    line, and analyze's decisions and holds are the live run's, bit for bit; a recording of the replay keeps the
    file's name."""
    from hipcheck.api import analyze
    from hipcheck.calibration.profile import replayed_file_line

    lines = []
    log = tmp_path / "hold.hclog"
    result = run_record(LinkOptions(sim=hold_csv), output=log, out=lines.append)
    said = [line for line in lines if "calibration profile" in line]
    assert said == ["no calibration profile used: --sim replays a file (hold.csv), not a calibrated sensor; live "
                    "analysis uncalibrated"], lines
    assert result.alignment is None or not np.allclose(result.alignment, SENSOR.q_sensor_to_pelvis, atol=1e-3)
    assert not result.side_known and len(result.holds) == 1 and result.summary["weak_side"] is None, result.summary
    assert any("unknown leg" in line for line in lines)
    header = LogReader(log).header
    assert (header["device_id"], header["replayed_file"]) == ("sim", "hold.csv")
    why = "no calibration profile used: the log replays a file (hold.csv) through the simulated sensor, not a " \
          "calibrated sensor"
    assert replayed_file_line("hold.csv") == why
    # analyze of the log: the same one line on stderr, no profile, the live run's decisions and holds
    code, out, err = _cli(["analyze", str(log)])
    assert code == 0 and err.splitlines() == [f"hipcheck analyze: {why}"], (code, err)
    offline = analyze(log)
    assert offline.analysis.alignment is None or not np.allclose(offline.analysis.alignment,
                                                                 SENSOR.q_sensor_to_pelvis, atol=1e-3)
    np.testing.assert_array_equal(offline.analysis.decisions, result.decisions)
    np.testing.assert_array_equal(offline.analysis.holds, result.holds)
    code, out, err = _cli(["export", str(log), "-o", str(tmp_path / "tables")])
    assert code == 0 and err.splitlines() == [f"hipcheck export: {why}"], (code, err)
    # live --replay of the log: the same line, the same figures; its own recording still names the file
    lines = []
    again = tmp_path / "again.hclog"
    replayed = run_record(LinkOptions(replay=log), output=again, out=lines.append)
    assert [line for line in lines if "calibration profile" in line] == [why], lines
    np.testing.assert_array_equal(replayed.decisions, result.decisions)
    np.testing.assert_array_equal(replayed.holds, result.holds)
    assert LogReader(again).header["replayed_file"] == "hold.csv"


def test_replay_uses_the_profiles_mounting_and_matches_analyze(hold_log, sim_profile):
    """live --replay of a log that names device "sim": one line names the profile applied; the pipeline's pelvis
    frame is the profile's mounting, the hold's standing leg (right) is named, and analyze of the log (the same
    profile) gives the same hold. The log is the simulated sensor's own (no replayed file): the profile applies."""
    from hipcheck.api import analyze

    header = LogReader(hold_log).header
    assert header["device_id"] == "sim" and "replayed_file" not in header, header
    lines = []
    result = run_record(LinkOptions(replay=hold_log), out=lines.append)
    said = [line for line in lines if "calibration profile" in line]
    assert said == [f"calibration profile of device sim ({sim_profile.path}) applied: gyro of "
                    f"{sim_profile.calibrations['gyro']['date'][:10]}, mount of "
                    f"{sim_profile.calibrations['mount']['date'][:10]}; the pelvis frame is its mounting"], lines
    np.testing.assert_allclose(result.alignment, SENSOR.q_sensor_to_pelvis, atol=1e-12)
    assert result.side_known and len(result.holds) == 1 and result.holds["side"][0] == RIGHT, result.holds
    assert result.summary["weak_side"] == "right"
    offline = analyze(hold_log)  # the log names device "sim": analyze applies the same profile
    np.testing.assert_allclose(offline.analysis.alignment, SENSOR.q_sensor_to_pelvis, atol=1e-12)
    np.testing.assert_array_equal(offline.analysis.holds, result.holds)
    np.testing.assert_array_equal(offline.analysis.decisions, result.decisions)


def test_no_profile_and_no_profile_file(hold_log, sim_profile, tmp_path, monkeypatch):
    """live --no-profile: nothing applied and nothing said, the mounting is not found from a hold and its leg is
    not named (as before); without a profile for the device, one line says so; a profile that cannot be used
    refuses the command."""
    code, out, err = _cli(["live", "--replay", str(hold_log), "--headless", "--no-profile"])
    assert code == 0, err
    assert "calibration profile" not in out
    assert "the standing leg of a hold cannot be named" in out and "unknown leg" in out
    code, out, err = _cli(["live", "--replay", str(hold_log), "--headless"])
    assert code == 0, err
    assert f"calibration profile of device sim ({sim_profile.path}) applied" in out and "right leg" in out
    monkeypatch.setenv(profiles.ENV_CONFIG_DIR, str(tmp_path / "empty"))
    code, out, err = _cli(["record", "--replay", str(hold_log), "-o", str(tmp_path / "x.hclog")])
    assert code == 0, err
    assert "no calibration profile for device sim: live analysis uncalibrated" in out
    assert "unknown leg" in out
    # a profile that cannot be used is refused (one line naming it, exit 1), as analyze refuses it
    broken = tmp_path / "empty" / "profiles" / "sim.json"
    broken.parent.mkdir(parents=True)
    broken.write_text("{")
    code, out, err = _cli(["live", "--replay", str(hold_log), "--headless"])
    assert code == 1 and len(err.strip().splitlines()) == 1 and str(broken) in err, (code, err)


def test_the_profiles_neutral_centres_the_tilt_thresholds_and_the_posture_mode(sim_profile):
    """The neutral of the profile (measured in its mount calibration's frame) as analyze uses it: the tilt
    detector's thresholds either side of the standing tilt, the posture mode's neutral the sitting tilt."""
    from hipcheck.device.reassembly import BLOCK_DTYPE, SampleBlock

    profiles.record_calibration("sim", "neutral", {"neutral_standing_tilt_deg": 3.0,
                                                   "neutral_sitting_tilt_deg": -9.0}, {}, "test")
    calibration, line = device_calibration("sim")
    assert calibration.standing_tilt_deg == 3.0 and calibration.posture_tilt_deg == -9.0 and "neutral of" in line
    rows = np.zeros(10, BLOCK_DTYPE)
    rows["acc_m_s2"][:, 2] = 9.81
    analysis = LiveAnalysis(lambda line: None, mode="posture", calibration=calibration)
    analysis.update(SampleBlock(rows, 10_000))
    thresholds = analysis.pipeline.detectors.thresholds
    assert (thresholds["tilt_anterior_deg"], thresholds["tilt_posterior_deg"]) == (11.0, -5.0)
    assert analysis.pipeline.posture.settings["neutral_tilt_deg"][0] == -9.0
    np.testing.assert_allclose(analysis.pipeline.pelvis.alignment, SENSOR.q_sensor_to_pelvis)


@pytest.mark.parametrize("kinds", [("mount", "standing", "sitting"), ("mount", "standing"), ("gyro", "mount"),
                                   ("gyro", "standing", "sitting"), ("gyro",)])
def test_live_and_analyze_take_a_profile_by_one_rule(sim_profile, kinds):
    """live (device_calibration -> LiveAnalysis) and analyze (for_analysis) use the same pelvis frame, tilt
    thresholds and posture neutral of a profile, and both leave out a neutral whose mount calibration is gone."""
    from hipcheck.device.reassembly import BLOCK_DTYPE, SampleBlock

    profiles.reset_profile("sim")
    if "gyro" in kinds:
        profiles.record_calibration("sim", "gyro", {"gyro_bias_rad_s": list(GYRO_BIAS)}, {}, "test")
    if "mount" in kinds:
        profiles.record_calibration("sim", "mount", {"q_sensor_to_pelvis": [float(v) for v in
                                                                          SENSOR.q_sensor_to_pelvis]}, {}, "test")
    neutral = {"neutral_standing_tilt_deg": 3.0} if "standing" in kinds else {}
    neutral.update({"neutral_sitting_tilt_deg": -9.0} if "sitting" in kinds else {})
    if neutral:
        profiles.record_calibration("sim", "neutral", neutral, {}, "test")

    class Session:
        header = {"device_id": "sim"}
        samples = np.zeros(10, [("flags", np.uint8), ("gap", bool)])

    class Recording:
        acc_m_s2, gyr_rad_s, session = np.tile([0.0, 0.0, 9.81], (10, 1)), np.zeros((10, 3)), Session()

    calibration, live_line = device_calibration("sim")
    rows = np.zeros(10, BLOCK_DTYPE)
    rows["acc_m_s2"][:, 2] = 9.81
    live = LiveAnalysis(lambda line: None, mode="posture", calibration=calibration)
    live.update(SampleBlock(rows, 10_000))
    settings = live.policy.settings.detector_settings()
    mode = {"mode": "posture", "mode_settings": None}
    acc, gyr, alignment, line = profiles.for_analysis(Recording(), settings, mode)
    thresholds = live.pipeline.detectors.thresholds
    assert (thresholds["tilt_anterior_deg"], thresholds["tilt_posterior_deg"]) == \
        (settings["tilt_anterior_deg"], settings["tilt_posterior_deg"])
    shift = 3.0 if "mount" in kinds and "standing" in kinds else 0.0
    defaults = live.policy.settings.detector_settings()
    assert settings["tilt_anterior_deg"] == defaults["tilt_anterior_deg"] + shift
    posture = live.pipeline.posture.settings["neutral_tilt_deg"][0]
    if "mount" in kinds and neutral:
        assert mode["mode_settings"] == {"neutral_tilt_deg": posture} == {"neutral_tilt_deg": -9.0 if "sitting" in
                                                                           kinds else 3.0}
    else:
        assert mode["mode_settings"] is None and calibration.posture_tilt_deg is None
    if "mount" in kinds:
        np.testing.assert_allclose(alignment, live.pipeline.pelvis.alignment, atol=1e-12)  # the pipeline normalises
        np.testing.assert_allclose(alignment, SENSOR.q_sensor_to_pelvis)
    else:
        assert alignment is None and calibration.alignment is None
    left_out = bool(neutral) and "mount" not in kinds
    assert ("neutral left out" in line) == ("neutral left out" in live_line) == left_out, (line, live_line)
    np.testing.assert_array_equal(gyr[0], -np.asarray(GYRO_BIAS) if "gyro" in kinds else np.zeros(3))
