"""The device session through SimLink and the real firmware (MicroPython unix port): every sample arrives in
sequence order, gaps are found and backfilled, a dropped link reconnects and backfills, what the device cannot
serve is marked, commands are acknowledged, device time maps to host time, and the recording survives SIGKILL."""

import asyncio
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from hipcheck.device import CommandError, DeviceSession, SessionSettings
from hipcheck.imu_csv import write_imu_csv
from hipcheck.links.sim import SimLink
from hipcheck.motion import simulate_walk
from hipcheck.protocol import SampleFlag, Status
from hipcheck.record import LogReader, RecordType, log_samples
from hipcheck.links.simboard import SimBoardError, micropython_binary

try:
    micropython_binary()
except SimBoardError as error:  # pragma: no cover
    pytest.skip(str(error), allow_module_level=True)


@pytest.fixture(scope="module")
def walk_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("walk") / "walk.csv"
    trace = simulate_walk(duration_s=60.0, fs_hz=100.0, seed=2, drop_right_deg=8.0)
    write_imu_csv(path, trace.t_s, trace.acc_sensor_m_s2, trace.gyr_sensor_rad_s)
    return path


def run_session(link, record=None, during=None, **settings):
    """Open the link, run a session to the end of the stream; returns (session, rows, during's result)."""
    async def main():
        async with link:
            async with DeviceSession(link, SessionSettings(start_seq=0, **settings), record=record) as session:
                extra = await during(session) if during is not None else None
                blocks = [b.samples async for b in session.blocks()]
        return session, np.concatenate(blocks), extra
    return asyncio.run(main())


def assert_in_sequence(rows):
    assert rows["seq"][0] == 0
    assert np.all(np.diff(rows["seq"]) == 1), "blocks are not in sequence order or skip a number"


def test_zero_loss_every_sample_in_order_and_commands_acknowledged(walk_csv, tmp_path):
    log = tmp_path / "s.hclog"

    async def commands(session):
        info = session.device_info
        assert (info["board"], info["imu"], info["rate_hz"], info["streaming"]) == ("sim", "LSM6DSOX", 100, True)
        assert (await session.vibrate("drop_right")).status == Status.OK
        assert (await session.set_thresholds(drop_deg=7.0, enable=("drop",))).status == Status.OK
        with pytest.raises(CommandError) as refused:
            await session.vibrate((101, 0, ((10, 0),)))  # intensity over 100 %
        assert refused.value.status == Status.OUT_OF_RANGE
        pong = await session.time_sync()
        return pong

    link = SimLink(walk_csv, seconds=30)
    session, rows, pong = run_session(link, record=log, during=commands)
    n = int(30 * 1e6 / 9600)  # LSM6DSOX at "100 Hz": 9600 µs
    assert_in_sequence(rows)
    assert abs(len(rows) - n) <= 2
    assert not rows["gap"].any() and session.lost == []
    assert session.stats.holes == [] and session.stats.samples_backfilled == 0
    assert session.stream_over
    assert np.all(np.diff(rows["t_device_us"]) > 0)
    assert pong["rtt_s"] < 0.5
    # the log: header with the device, every sample, the commands
    reader = LogReader(log)
    assert reader.header["device"]["board"] == "sim" and reader.header["link"] == "sim"
    assert reader.complete
    assert np.array_equal(log_samples(log)["seq"], rows["seq"])
    assert sum(r.type == RecordType.COMMAND for r in reader) >= 5
    assert motor_on(link) >= 1  # the VIBRATE reached the emulated motor


def motor_on(link):
    return int(np.count_nonzero(link.motor[:, 1] > 0)) if len(link.motor) else 0


def test_one_percent_of_data_packets_dropped_every_gap_backfilled(walk_csv, tmp_path):
    log = tmp_path / "drop.hclog"
    link = SimLink(walk_csv, seconds=40, drop_data=0.01, seed=5)
    session, rows, _ = run_session(link, record=log)
    assert link.dropped_injected >= 2
    assert_in_sequence(rows)
    assert not rows["gap"].any() and session.lost == [], (session.lost, session.stats.holes)
    holes = session.stats.holes
    assert 1 <= len(holes) <= link.dropped_injected  # two drops in a row make one hole
    assert session.stats.samples_backfilled == sum(n for _, n in holes)  # each hole filled, nothing else
    assert np.any(rows["flags"] & SampleFlag.BACKFILLED)
    recorded = log_samples(log)["seq"]
    assert np.array_equal(recorded, np.arange(rows["seq"][-1] + 1)), "the recording misses sequence numbers"


def test_link_cut_reconnects_and_backfills(walk_csv, tmp_path):
    log = tmp_path / "cut.hclog"
    link = SimLink(walk_csv, seconds=30, cuts=[(8.0, 4.0)])
    session, rows, _ = run_session(link, record=log)
    assert session.stats.reconnects == 1 and link.status().reconnects == 1
    assert link.dropped_cut > 30
    assert_in_sequence(rows)
    assert not rows["gap"].any() and session.lost == []
    assert session.stats.samples_backfilled >= 4 * 104 - 30
    assert np.array_equal(log_samples(log)["seq"], rows["seq"])
    notes = [n["note"] for n in LogReader(log).notes()]
    assert "link_down" in notes and "reconnected" in notes


def test_gap_older_than_the_ring_is_marked_not_papered_over(walk_csv):
    # 40 s away: the ring (3200 samples, 30.7 s at 104 Hz) cannot serve the oldest part of the hole
    link = SimLink(walk_csv, seconds=60, cuts=[(3.0, 40.0)])
    session, rows, _ = run_session(link)
    assert_in_sequence(rows)
    gap = rows["gap"]
    assert 500 < gap.sum() < 4200
    assert np.isnan(rows["acc_m_s2"][gap]).all() and np.isnan(rows["quat"][gap]).all()
    assert np.isfinite(rows["acc_m_s2"][~gap]).all()
    assert np.all(np.diff(rows["t_device_us"]) > 0)  # marked rows carry the time they would have had
    reasons = {r.reason for r in session.lost}
    assert any("ring" in r or "UNAVAILABLE" in r for r in reasons), reasons
    assert sum(r.n for r in session.lost) == gap.sum()
    # what the ring still held came back: up to its 3200 samples, fewer the further the device ran on (as fast as
    # possible) before the backfill request reached it; a loaded 2-process run got 1872 back
    assert session.stats.samples_backfilled > 1000


def test_time_map_in_real_time_within_a_few_ms(walk_csv):
    link = SimLink(walk_csv, seconds=5, realtime=True)
    arrivals = []

    async def main():
        async with link:
            async with DeviceSession(link, SessionSettings(start_seq=0, sync_interval_s=0.25)) as session:
                async for block in session.blocks():
                    arrivals.append((time.monotonic(), block.samples.copy()))
        return session

    session = asyncio.run(main())
    tm = session.time_map
    summary = tm.summary()
    assert summary["exchanges"] >= 10
    assert abs(tm.slope - 1.0) < 2e-3, summary  # the sim's clock is the host's monotonic clock
    assert summary["residual_rms_ms"] < 3.0, summary
    # each sample was taken before it reached the host, and not long before (the firmware batches <= 60 ms)
    lag = np.concatenate([t - b["t_host_s"] for t, b in arrivals if len(b) and not b["gap"].any()])
    assert lag.min() > -0.003, lag.min()
    assert np.median(lag) < 0.15, np.median(lag)


def test_sigkill_while_recording_leaves_a_readable_log(walk_csv, tmp_path):
    log = tmp_path / "killed.hclog"
    hipcheck = [sys.executable, "-m", "hipcheck", "record", "--sim", str(walk_csv), "-o", str(log), "--realtime",
                "--no-alerts"]
    proc = subprocess.Popen(hipcheck, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (not log.exists() or log.stat().st_size < 20_000):
            time.sleep(0.1)
        assert log.exists() and log.stat().st_size >= 20_000, proc.stderr.read1().decode() if proc.poll() else ""
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the firmware subprocess too
        except ProcessLookupError:
            pass
    # a torn last record as a crash mid-write leaves it
    with open(log, "ab") as f:
        f.write(b"\x40\x00\x00\x00\x02" + b"\x00" * 20)
    reader = LogReader(log)
    records = list(reader)
    assert reader.header["device"]["board"] == "sim"
    assert reader.tail_bytes == 25
    samples = log_samples(log)
    assert len(samples) > 100
    assert np.all(np.diff(samples["seq"]) == 1) and samples["seq"][0] == 0
    assert records[-1].type in {t.value for t in RecordType}


def test_set_rate_mid_session_keeps_every_sample_and_the_new_period(walk_csv):
    """SET_RATE 200 Hz after a few seconds: the numbering goes on without a hole, blocks carry the chip's new true
    period (LSM6DSOX: 4800 µs at "200 Hz") after a few settling samples, and device time never steps back; a rate
    the chip cannot make is refused."""
    async def change_rate(session):
        await asyncio.sleep(0.1)
        assert (await session.set_rate(200)).status == Status.OK
        with pytest.raises(CommandError) as refused:
            await session.set_rate(150)
        assert refused.value.status == Status.OUT_OF_RANGE

    link = SimLink(walk_csv, seconds=12)
    session, rows, _ = run_session(link, during=change_rate)
    assert_in_sequence(rows)
    assert not rows["gap"].any() and session.lost == []
    dt = np.diff(rows["t_device_us"])
    assert np.all(dt > 0)
    settling = np.count_nonzero((dt != 9600) & (dt != 4800))  # the first reads after the change re-anchor the time
    assert settling <= 4
    # (how far the fast simulation ran before the change depends on the machine's load: at least 1 s at the new
    # rate, and once it is there the old period never comes back)
    assert dt[0] == 9600 and dt[-1] == 4800 and np.count_nonzero(dt == 4800) > 200
    assert not np.any(dt[np.argmax(dt == 4800):] == 9600)
