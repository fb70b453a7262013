"""The alert policy (hipcheck.alerts): m-of-n gating, refractory time, left/right patterns, Training and Tracking,
per-person thresholds from the command line and a profile; and the hand-over to the sensor's own detector when the
link fails, end to end against the real firmware on the sim board (its emulated motor shows the buzzes)."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from hipcheck import cli, detect
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

    def decisions(*options):
        assert cli.main(["analyze", str(path), "--json", *options]) == 0
        return [d for d in json.loads(capsys.readouterr().out)["decisions"] if d["kind"] == "drop"]

    default = decisions()
    assert default and all(d["threshold"] == 6.0 and d["side"] == "right" for d in default)
    assert decisions("--drop-threshold", "9") == []  # an 8° drop stays under a 9° threshold
    profile = tmp_path / "p.json"
    profile.write_text(json.dumps({"drop_threshold_deg": 5.0}))
    assert {d["threshold"] for d in decisions("--profile", str(profile))} == {5.0}


# ------------------------------------------------------------------------------------- hand-over, end to end

# In real time: as fast as possible the sensor's clock runs up to a pipe's worth of data (tens of seconds) ahead of
# what the host has read, so a host would see a fade only after the cut that follows it, and the motor's patterns
# play on the wall clock while the alerts fire on the sensor's.
WALK_S, FADE_AT_S, CUT1, CUT2 = 26.0, 4.0, (7.0, 6.0), (18.0, 4.0)


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


def test_the_sensor_alerts_through_a_cut_after_a_hand_over_and_not_after_a_sudden_one(tmp_path):
    """A weak right hip (9° drops). The link fades at 4 s and is cut from 7 to 13 s: the host hands the alerts over
    while the fade lasts, the sensor's own detector buzzes through the cut, the host takes them back on reconnect.
    A second cut from 18 to 22 s comes without warning: nothing could be handed over, and nothing buzzes."""
    from hipcheck.live import run_live

    trace = simulate_walk(duration_s=WALK_S, seed=1, drop_right_deg=9.0, sensor=SensorModel.realistic(seed=1))
    log = tmp_path / "cut.hclog"
    lines: list[str] = []

    async def job():
        link = FadingSimLink(trace, FADE_AT_S, cuts=[CUT1, CUT2], realtime=True)
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

    def buzzes(cut):  # buzzes that started inside a cut (the first 0.7 s: a host's VIBRATE could still play)
        return starts_s[(starts_s > cut[0] + 0.7) & (starts_s < cut[0] + cut[1])]

    # The sensor's own detector buzzed through the first cut: a 9° drop every stride, its refractory 3 s.
    assert len(buzzes(CUT1)) >= 1, starts_s
    assert names.count("alerts_handed_over") == 1 and names.count("alerts_taken_back") == 1
    handed = notes[names.index("alerts_handed_over")]
    taken = notes[names.index("alerts_taken_back")]
    assert handed["drop_deg"] == 6.0 and handed["refractory_ms"] == 3000 and "lost" in handed["reason"]
    assert names.index("alerts_handed_over") < names.index("link_down") < names.index("alerts_taken_back")
    assert taken["reason"] == "link back after a drop"
    assert any(line.startswith("alerts handed over to the sensor's own detector") for line in lines)
    took = next(i for i, line in enumerate(lines) if line.startswith("alerts taken back from the sensor"))
    assert any("-> VIBRATE drop_right" in line for line in lines[took:])  # the host alerts again
    # The second cut came without warning: the sensor's detector was off, nothing buzzed, and the log says so.
    assert len(buzzes(CUT2)) == 0, starts_s
    assert names.count("alerts_not_handed_over") == 1
    assert result.handover == {"handed_over": 1, "taken_back": 1, "not_handed_over": 1,
                               "sensor_alerts": result.handover["sensor_alerts"]}
