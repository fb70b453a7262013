"""`hipcheck calibrate` end to end (issue 14, acceptance): the mount calibration against the firmware sim board (the
real firmware in MicroPython's unix port, worn by a simulated person standing then walking) lands in the device's
profile on this computer and on the emulated sensor (CAL_UPLOAD acknowledged, kept in its emulated flash), survives
the sensor's reboot (the firmware loads it at boot: INFO says a profile is loaded, the samples come corrected), and
`hipcheck analyze` of a log that sensor recorded uses it (and says so; --no-profile leaves it out)."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from hipcheck import motion, protocol
from hipcheck.calibration import procedures
from hipcheck.calibration import profile as profiles
from hipcheck.cli import main
from hipcheck.device import DeviceSession, SessionSettings
from hipcheck.links.sim import SimLink
from hipcheck.links.simboard import SimBoard
from hipcheck.protocol import Opcode, SampleFlag, StateFlag, Status
from hipcheck.rotation import quat_conjugate, quat_multiply


def _angle_deg(q1, q2) -> float:
    d = quat_multiply(quat_conjugate(np.asarray(q1, float)), np.asarray(q2, float))
    return float(np.degrees(2 * np.arccos(min(1.0, abs(d[0])))))


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    """`hipcheck calibrate mount --sim --non-interactive --json` run once: (config dir, flash dir, JSON, profile)."""
    config = tmp_path_factory.mktemp("config")
    flash = tmp_path_factory.mktemp("flash")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(profiles.ENV_CONFIG_DIR, str(config))
        out = _run(mp, ["calibrate", "mount", "--sim", "--non-interactive", "--json", "--sim-flash", str(flash)])
        saved = profiles.load_profile("sim")
    return config, flash, out, saved


def _run(mp, argv):
    import contextlib
    import io

    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(argv)
    return code, stdout.getvalue(), stderr.getvalue()


def test_mount_calibration_lands_in_the_profile_and_on_the_sensor(calibrated):
    _, flash, (code, stdout, stderr), saved = calibrated
    assert code == 0, stderr
    result = json.loads(stdout)
    assert result["calibration"] == "mount" and result["device_id"] == "sim"
    assert result["uploaded_to_sensor"] is True  # every CAL_UPLOAD chunk acknowledged OK
    estimate = result["estimate"]
    for name in ("R_sensor_to_pelvis", "q_sensor_to_pelvis", "method", "stand_s", "walking_s", "steps"):
        assert name in estimate, name
    # the guide spoke: prompts of both steps and progress
    assert "step 1/2, stand" in stderr and "step 2/2, walk" in stderr and "walk: done" in stderr
    # the profile on this computer: the estimate, dated, with its quality figures; marked as uploaded
    mount = saved.calibrations["mount"]
    assert np.allclose(mount["values"]["q_sensor_to_pelvis"], estimate["q_sensor_to_pelvis"])
    assert mount["quality"]["walking_s"] == estimate["walking_s"] and mount["date"].startswith("20")
    assert saved.uploaded is not None
    # the emulated sensor's flash holds the very profile (79 bytes, as the host encodes it)
    blob = (flash / "profile.bin").read_bytes()
    assert blob == profiles.device_blob(saved)
    on_sensor = protocol.decode_cal_profile(blob)
    assert np.allclose(on_sensor.q_sensor_to_pelvis, estimate["q_sensor_to_pelvis"], atol=1e-6)
    # and it is the simulated sensor's true mounting, through the firmware and the link
    truth = motion.simulate_stand(duration_s=1.0,
                                  sensor=motion.SensorModel.with_errors(seed=procedures.SIM_SENSOR_SEED))
    assert _angle_deg(estimate["q_sensor_to_pelvis"], truth.truth.q_sensor_to_pelvis) < 1.5


def test_the_profile_survives_the_sensors_reboot(calibrated, tmp_path):
    _, flash, _, saved = calibrated
    trace = motion.simulate_stand(duration_s=3.0, sensor=motion.SensorModel.with_errors(seed=3))
    csv = tmp_path / "stand.csv"
    from hipcheck.imu_csv import write_imu_csv

    write_imu_csv(csv, trace.t_s, trace.acc_sensor_m_s2, trace.gyr_sensor_rad_s)
    # The sim board booted again on the same flash (its profile.bin): the firmware's boot loads and checks it.
    with SimBoard(csv, workdir=flash, seconds=2.0) as board:
        info = board.command(Opcode.INFO)
        assert info.status == Status.OK
        assert info.fields["state_flags"] & StateFlag.PROFILE_LOADED
        result = board.finish()
    assert "ignored" not in result.stderr, result.stderr
    assert len(result.samples) and np.all(result.samples["flags"] & SampleFlag.ACC_CALIBRATED)
    assert (flash / "profile.bin").read_bytes() == profiles.device_blob(saved)


@pytest.fixture(scope="module")
def sensor_log(calibrated, tmp_path_factory):
    """A walk recorded from the same simulated sensor (device 'sim') into a session log by the device session."""
    folder = tmp_path_factory.mktemp("log")
    trace = motion.simulate_walk(duration_s=16.0, seed=4,
                                 sensor=motion.SensorModel.with_errors(seed=procedures.SIM_SENSOR_SEED))
    path = folder / "walk.hclog"

    async def record():
        async with SimLink(trace, workdir=folder / "sim") as link:
            async with DeviceSession(link, SessionSettings(start_seq=0), record=path) as session:
                async for _ in session.blocks():
                    pass

    asyncio.run(record())
    return path, trace


def test_analyze_of_the_sensors_log_uses_its_profile(calibrated, sensor_log):
    config, _, _, saved = calibrated
    path, trace = sensor_log
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(profiles.ENV_CONFIG_DIR, str(config))
        code, stdout, stderr = _run(mp, ["analyze", str(path), "--json"])
        assert code == 0, stderr
        used = json.loads(stdout)
        code, stdout, stderr_off = _run(mp, ["analyze", str(path), "--json", "--no-profile"])
        assert code == 0, stderr_off
        plain = json.loads(stdout)
        import hipcheck

        in_notebook = hipcheck.analyze(path).json()  # the API does as the command does
    q = saved.values("mount")["q_sensor_to_pelvis"]
    from hipcheck.links.replay import ReplayLink
    from hipcheck.record import LogReader

    assert LogReader(path).header["device_id"] == "sim"  # the session wrote the sensor's name into its log

    async def replayed():
        async with ReplayLink(path) as link:
            return link.device_id

    assert asyncio.run(replayed()) == "sim"  # and a replay of it (record --replay) names the same sensor
    assert "calibration profile of device sim" in stderr and str(saved.path) in stderr
    assert np.allclose(used["alignment_q_sensor_to_pelvis"], q, atol=1e-5)
    assert in_notebook["strides"] == used["strides"]
    assert in_notebook["alignment_q_sensor_to_pelvis"] == used["alignment_q_sensor_to_pelvis"]
    assert "calibration profile" not in stderr_off
    # without it the mounting is found from the walk: another (close) rotation, not the profile's
    assert not np.allclose(plain["alignment_q_sensor_to_pelvis"], q, atol=1e-5)
    assert _angle_deg(used["alignment_q_sensor_to_pelvis"], trace.truth.q_sensor_to_pelvis) < 1.5


def test_a_sensor_paced_by_the_person_its_own_correction_off_while_it_records(tmp_path, monkeypatch):
    """The path of a real sensor (the person starts each step: prompt, Enter, countdown, progress), on a sim board
    that boots holding a wrong gyro bias: the guide switches the sensor's correction off, records raw samples (the
    bias estimated through the firmware is the simulated sensor's true one within 0.05 °/s, not the wrong profile's
    residue), and the sensor ends up holding the new profile."""
    monkeypatch.setenv(profiles.ENV_CONFIG_DIR, str(tmp_path / "config"))
    sensor = motion.SensorModel.with_errors(seed=procedures.SIM_SENSOR_SEED)
    flash = tmp_path / "flash"
    flash.mkdir()
    old = profiles.record_calibration("sim", "gyro", {"gyro_bias_rad_s": [0.1, -0.1, 0.1]}, {}, "t")
    (flash / "profile.bin").write_bytes(profiles.device_blob(old))
    still = motion.simulate_calibration_poses(poses=("z up",), pose_s=90.0, sensor=sensor, seed=3)
    link = SimLink(still, workdir=flash, extra_args=("--profile", str(flash / "profile.bin")))
    lines, pressed, slept = [], [], []
    guide = procedures.Guide(lines.append, interactive=True, read_line=lambda: pressed.append(1) or "\n",
                             sleep=slept.append)
    outcome = asyncio.run(procedures.calibrate_session("gyro", link, None, None, guide, True, 30.0))
    assert "the sensor's own correction is off while it records (raw samples)" in lines
    # the guide: the prompt, Enter, a countdown of 3 s, progress about once a second of device time, done
    at = lines.index("  press Enter when ready")
    assert lines[at - 1].startswith("step 1/1, still (10 s): put the sensor down on a table")
    assert lines[at + 1: at + 5] == ["  3...", "  2...", "  1...", "  recording"]
    assert pressed == [1] and slept == [1.0, 1.0, 1.0]
    progress = [line for line in lines if line.startswith("  still: ") and line.endswith(" of 10 s")]
    assert len(progress) >= 9 and progress[-1] == "  still: 10.0 of 10 s" and "  still: done" in lines
    assert np.allclose(outcome.estimate["gyro_bias_rad_s"], sensor.gyr_bias_rad_s, atol=np.radians(0.05))
    assert outcome.uploaded
    on_sensor = protocol.decode_cal_profile((flash / "profile.bin").read_bytes())
    assert np.allclose(on_sensor.gyr_bias_rad_s, outcome.estimate["gyro_bias_rad_s"], atol=1e-6)
