"""`hipcheck demo`: the simulated sensor (real firmware, MicroPython unix port) through the session and the live
pipeline, alerts back to the emulated motor, a summary naming the weak side."""

import re

import pytest

from hipcheck import cli
from hipcheck.calibration import profile as profiles
from hipcheck.record import LogReader, log_samples
from hipcheck.links.simboard import SimBoardError, micropython_binary

try:
    micropython_binary()
except SimBoardError as error:  # pragma: no cover
    pytest.skip(str(error), allow_module_level=True)


def run(capsys, *args):
    code = cli.main(["demo", *args])
    return code, capsys.readouterr().out


def test_demo_finds_the_right_stance_weakness_and_vibrates(capsys, tmp_path, monkeypatch):
    # a profile of the sensor `calibrate --sim` calibrates: the demo's person wears another simulated sensor, so
    # neither the live run nor a later analyze of its log may apply it
    monkeypatch.setenv(profiles.ENV_CONFIG_DIR, str(tmp_path / "config"))
    profiles.record_calibration("sim", "gyro", {"gyro_bias_rad_s": [0.1, -0.1, 0.1]}, {}, "t")
    log = tmp_path / "demo.hclog"
    code, out = run(capsys, "--headless", "--seconds", "30", "--record", str(log))
    assert code == 0, out
    assert "weak side: right" in out
    assert "ALERT pelvic drop while standing on the right leg" in out
    assert "ALERT pelvic drop while standing on the left leg" not in out
    motor = int(re.search(r"emulated motor: (\d+) vibrations started", out).group(1))
    assert motor >= 1
    assert "0 lost and marked" in out
    assert len(re.findall(r"stride .* cadence", out)) >= 20  # a line per stride
    samples = log_samples(log)
    assert len(samples) >= 3100 and (samples["seq"] == range(len(samples))).all()
    assert LogReader(log).header["demo"]["activity"] == "walk"
    assert LogReader(log).header["device_id"] == "sim-demo"
    assert cli.main(["analyze", str(log)]) == 0
    err = capsys.readouterr().err
    assert "no calibration profile for device sim-demo" in err and "profile of device sim " not in err


def test_healthy_walk_fires_no_drop_alert_and_names_no_weak_side(capsys, tmp_path):
    code, out = run(capsys, "--headless", "--seconds", "30", "--drop-right", "4", "--drop-left", "4",
                    "--record", str(tmp_path / "healthy.hclog"))
    assert code == 0, out
    assert "ALERT pelvic drop" not in out
    assert "weak side: none" in out
    assert "emulated motor: 0 vibrations started" in out


def test_demo_refuses_bad_options(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["demo", "--headless", "--seconds", "2"])
    assert exit_.value.code == 2
    assert "--seconds" in capsys.readouterr().err
