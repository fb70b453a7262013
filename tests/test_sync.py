"""``hipcheck sync`` (issue 13, deliver 1): the sensor's flash session logs copied, every block checked, resumable
from the last verified block, erased only after a verified copy.

The sensor is the real firmware on the sim board (MicroPython unix port): a walk is recorded onto its emulated
flash (``firmware/store.py``'s file), then ``hipcheck sync --sim FLASH`` boots the firmware again on that flash and
copies it over the stdio link. The flash file is read here with an independent reader of the documented block
format (struct + zlib), so "byte-identical" compares against what lies on the flash, not against the firmware's own
account. The state machine (``SessionCopy``) and the converter (``blocks_to_hclog``) are also driven directly with
blocks built here: a stale chunk, a lost chunk, a damaged block, another session's old copy.
"""

from __future__ import annotations

import asyncio
import os
import select
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

import hipcheck
from hipcheck import protocol
from hipcheck.device.logblocks import BLOCK_SIZE, blocks_to_hclog, check_block
from hipcheck.device.logsync import (FlashDamageError, FlashSession, LogSync, SessionCopy, check_synced,
                                     report_lines)
from hipcheck.imu_csv import write_imu_csv
from hipcheck.links import within
from hipcheck.links.sim import SimLink
from hipcheck.links.simboard import SimBoard
from hipcheck.motion import simulate_walk
from hipcheck.protocol import LogChunk
from hipcheck.record import LogReader
from hipcheck.sessionfile import read_session_log

pytestmark = pytest.mark.skipif(shutil.which("micropython", path=str(Path(sys.executable).parent)) is None
                                and shutil.which("micropython") is None,
                                reason="the micropython unix port is not installed")

HEADER = struct.Struct("<HBBHHII")
WALK_S = 20.0


def flash_sessions(path) -> dict[int, bytes]:
    """The documented block format read independently: session id -> its slots' bytes in file order."""
    raw = Path(path).read_bytes()
    out: dict[int, bytes] = {}
    for i in range(len(raw) // BLOCK_SIZE):
        block = raw[i * BLOCK_SIZE:(i + 1) * BLOCK_SIZE]
        magic, _, _, sid, _, _, _ = HEADER.unpack_from(block)
        if magic == 0x4C48:
            out[sid] = out.get(sid, b"") + block
    return out


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """A 20-s walk (right hip weak) recorded by the firmware onto its emulated flash: (flash file, the samples it
    streamed live meanwhile)."""
    folder = tmp_path_factory.mktemp("sync")
    trace = simulate_walk(duration_s=WALK_S, seed=3, drop_right_deg=8.0)
    csv = folder / "walk.csv"
    write_imu_csv(csv, trace.t_s, trace.acc_sensor_m_s2, trace.gyr_sensor_rad_s)
    with SimBoard(csv, workdir=folder / "board") as board:
        result = board.finish()
    flash = folder / "flash.bin"
    shutil.copy(folder / "board" / "log.bin", flash)
    return flash, result.samples, csv


def hipcheck_cmd() -> list[str]:
    script = Path(sys.executable).with_name("hipcheck")
    return [str(script)] if script.exists() else [sys.executable, "-m", "hipcheck"]


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


def sync_killed_half_way(flash: Path, out: Path, name: str) -> tuple[int, str, int]:
    """``hipcheck sync --sim`` whose sim board (the sensor) is killed with SIGKILL once a progress line shows 20-80 %
    of session ``name`` verified: (exit code, stderr, blocks verified at the kill)."""
    proc = subprocess.Popen(hipcheck_cmd() + ["sync", "--sim", str(flash), "-o", str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    killed_at = None
    deadline = time.monotonic() + 60
    try:
        while killed_at is None and time.monotonic() < deadline:
            if not select.select([proc.stdout], [], [], 1.0)[0]:
                continue
            line = proc.stdout.readline()
            if not line:
                break
            if line.startswith(f"{name}: ") and "blocks verified" in line:
                done, total = (int(x) for x in line.split()[1].split("/"))
                if 0.2 * total <= done <= 0.8 * total:
                    boards = [c for c in children(proc.pid) if b"simboard.py" in
                              Path(f"/proc/{c}/cmdline").read_bytes()]
                    assert len(boards) == 1, boards
                    os.kill(boards[0], signal.SIGKILL)  # the sensor goes: link dropped mid-download
                    killed_at = done
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert killed_at is not None, "the download was never seen between 20 % and 80 %"
    return proc.returncode, err, killed_at


def run_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run(hipcheck_cmd() + list(args), capture_output=True, text=True, timeout=120)


# ---------------------------------------------------------------------------------------------- the acceptance

def test_a_sync_cut_half_way_resumes_to_a_byte_identical_copy_erased_only_after(recorded, tmp_path, monkeypatch):
    monkeypatch.setenv("HIPCHECK_CONFIG_DIR", str(tmp_path / "config"))  # no calibration profile of this machine
    flash0, streamed, _ = recorded
    flash = tmp_path / "flash.bin"
    shutil.copy(flash0, flash)
    on_flash = flash_sessions(flash)[0]
    n_blocks = len(on_flash) // BLOCK_SIZE
    out = tmp_path / "copies"
    name = "session-00000-0"

    code, err, killed_at = sync_killed_half_way(flash, out, name)
    assert code == 69, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "run hipcheck sync again" in lines[0] and f"{name}.part" in lines[0], err
    part = (out / f"{name}.part").read_bytes()
    assert len(part) % BLOCK_SIZE == 0 and killed_at * BLOCK_SIZE <= len(part) < len(on_flash)
    assert part == on_flash[:len(part)]  # every block kept is the flash's, verified
    assert not (out / f"{name}.blocks").exists() and not (out / f"{name}.hclog").exists()
    assert flash_sessions(flash)[0] == on_flash, "the interrupted sync touched the session on the flash"

    done = run_cli("sync", "--sim", str(flash), "-o", str(out), "--erase")
    assert done.returncode == 0, done.stderr
    kept = len(part) // BLOCK_SIZE
    assert f"{name}: {n_blocks} blocks, {n_blocks - kept} new blocks" in done.stdout  # resumed, not started over
    assert f"{name}: 0/" not in done.stdout
    assert (out / f"{name}.blocks").read_bytes() == on_flash  # byte-identical to the emulated flash
    assert not (out / f"{name}.part").exists()
    assert 0 not in flash_sessions(flash), "--erase after the verified copy left the session on the flash"
    assert "erased on the sensor" in done.stdout.split(f"{name}: {n_blocks} blocks")[1].splitlines()[0]

    # the copy as a session log: the samples the firmware streamed live while it recorded, all of them
    log = read_session_log(out / f"{name}.hclog")
    assert log.n_lost == 0 and LogReader(out / f"{name}.hclog").damage.ended
    assert log.header["device_id"] == "sim" and log.header["device"]["board"] == "sim"
    common, in_log, in_stream = np.intersect1d(log.seq, streamed["seq"], return_indices=True)
    assert len(common) >= 0.99 * len(streamed) and len(log) >= len(streamed) - 30
    np.testing.assert_array_equal(log.acc_m_s2[in_log], streamed["acc_m_s2"][in_stream].astype(np.float64))
    np.testing.assert_array_equal(log.gyr_rad_s[in_log], streamed["gyr_rad_s"][in_stream].astype(np.float64))
    # and hipcheck analyze reads it: the walk's strides, its weak right hip (8° of drop simulated)
    summary = hipcheck.analyze(out / f"{name}.hclog").summary  # what analyze --json prints as its summary
    print(f"\nsync cut half-way: {n_blocks} blocks on the flash, the sensor killed at {killed_at} verified, "
          f"{kept} kept in the .part, {n_blocks - kept} new on the rerun; {len(log)} samples in the .hclog; "
          f"analyze: {summary['strides']} strides, drop right {summary['drop_right_stance_deg_median']:.1f}°")
    assert summary["strides"] >= 10 and summary["weak_side"] == "right", summary
    assert 6.0 <= summary["drop_right_stance_deg_median"] <= 10.0, summary


def test_a_corrupted_block_is_reported_and_kept_on_the_sensor(recorded, tmp_path):
    flash0, _, csv = recorded
    flash = tmp_path / "flash.bin"
    shutil.copy(flash0, flash)
    raw = bytearray(flash.read_bytes())
    raw[7 * BLOCK_SIZE + 200] ^= 0x10  # one flipped bit in the payload of block 7 of session 0
    flash.write_bytes(bytes(raw))
    on_flash = flash_sessions(flash)[0]

    async def go():
        async with SimLink(csv, extra_args=("--log", str(flash))) as link:
            return await within(LogSync(link, tmp_path / "c", erase=True).run(), 60)

    reports = asyncio.run(go())
    assert reports[0].damaged == [7] and not reports[0].erased and "kept on the sensor" in reports[0].note
    assert "damaged on the sensor's flash: blocks [7]" in report_lines(reports)[0]
    with pytest.raises(FlashDamageError, match=r"session-00000-0 blocks \[7\].*kept on the sensor"):
        check_synced(reports)  # hipcheck sync: this line, exit 1, after the copies are written
    assert flash_sessions(flash)[0] == on_flash, "a session with a damaged block was erased"
    copy = (tmp_path / "c" / "session-00000-0.blocks").read_bytes()
    assert copy == on_flash  # kept as it lies on the flash, flipped bit and all
    assert check_block(copy[7 * BLOCK_SIZE:8 * BLOCK_SIZE]) == "CRC-32 mismatch"
    log = read_session_log(tmp_path / "c" / "session-00000-0.hclog")
    assert 10 <= log.n_lost <= 46  # the samples of that block (about 23) marked lost, none invented
    assert any("damaged on the sensor's flash (blocks 7)" in r.reason for r in log.lost)


def test_a_link_cut_during_the_copy_is_resumed_in_the_same_run(recorded, tmp_path, monkeypatch):
    """The link drops (the sim link's cut: everything the firmware sends is lost for 0.3 s) right after block 20 is
    verified; the sync reopens it and asks again from the last verified block. The firmware's sampling step and pump
    (the download's chunks and block reads included) allocated nothing meanwhile."""
    flash0, _, csv = recorded
    flash = tmp_path / "flash.bin"
    shutil.copy(flash0, flash)
    on_flash = flash_sessions(flash)[0]
    # alerts off: the first alert makes the haptics player (192 B, once), which this exact 0 would count
    link = SimLink(csv, alerts=False, extra_args=("--log", str(flash)))
    append = SessionCopy._append

    def append_then_cut(copy, raw):
        append(copy, raw)
        if copy.entry.session_id == 0 and copy.verified == 20:
            link.cut(0.3)

    monkeypatch.setattr(SessionCopy, "_append", append_then_cut)

    async def go():
        async with link:
            sync = LogSync(link, tmp_path)
            reports = await within(sync.run(), 60)
        return reports, sync, link

    reports, sync, link = asyncio.run(go())
    assert sync.stats.reconnects == 1 and link.dropped_cut > 0
    assert (tmp_path / "session-00000-0.blocks").read_bytes() == on_flash
    assert reports[0].new_blocks == len(on_flash) // BLOCK_SIZE and not reports[0].damaged
    app = link.record["app"]
    assert app["alloc_samples"] > 300 and app["alloc_bytes"] == 0, app


# ---------------------------------------------------------------------------------------------- the parts

def make_block(sid: int, block: int, payload: bytes, start_s: int = 0) -> bytes:
    head = HEADER.pack(0x4C48, 1, 0, sid, len(payload), block, start_s) + payload + bytes(492 - len(payload))
    return head + struct.pack("<I", zlib.crc32(head))


def chunks(raw: bytes, sid: int, block: int, size: int = 235) -> list[LogChunk]:
    return [LogChunk(sid, block, o, raw[o:o + size]) for o in range(0, BLOCK_SIZE, size)]


def walk_blocks(sid: int = 3, n_samples: int = 600) -> list[bytes]:
    """A logged session as the firmware writes it: DATA packets of 23 samples, packed into blocks back to back."""
    rng = np.random.default_rng(1)
    quat = np.tile([1.0, 0, 0, 0], (n_samples, 1))
    acc = rng.normal(0, 2, (n_samples, 3)) + [0, 0, 9.81]
    gyr = rng.normal(0, 0.5, (n_samples, 3))
    q14, acc_raw, gyr_raw, flags = protocol.to_wire(quat, acc, gyr)
    stream = b"".join(protocol.encode_data_packets(100, 5_000_000, 10_000, q14, acc_raw, gyr_raw, flags,
                                                   samples_per_packet=23))
    return [make_block(sid, i, stream[o:o + 492]) for i, o in enumerate(range(0, len(stream), 492))]


def feed(copy: SessionCopy, items) -> list:
    return [a for a in (copy.take(c) for c in items) if a is not None]


def test_session_copy_ignores_stale_chunks_and_asks_again_for_a_lost_one(tmp_path):
    blocks = walk_blocks()
    entry = FlashSession(3, 0, len(blocks))
    copy = SessionCopy(tmp_path, entry)
    assert copy.open() == 0
    assert copy.request() == 0 and copy.asked(len(blocks)) is None
    # one stale chunk of an earlier request right after the ACK: ignored
    assert feed(copy, [chunks(blocks[5], 3, 5)[1]] + chunks(blocks[0], 3, 0) + chunks(blocks[1], 3, 1)) == []
    assert copy.verified == 2
    lost = chunks(blocks[2], 3, 2)
    asks = feed(copy, [lost[0], lost[2]] + chunks(blocks[3], 3, 3))  # the middle chunk of block 2 lost
    assert asks == [2] and copy.verified == 2
    assert copy.asked(len(blocks)) is None
    for _ in range(5):  # a silent link: asked again each time, never taken for a damaged block
        assert copy.stalled() == 2 and copy.asked(len(blocks)) is None
    assert copy.stalls == 5 and copy.damaged == [] and copy.verified == 2
    for k in range(2, len(blocks)):
        assert feed(copy, chunks(blocks[k], 3, k, size=11)) == []  # any chunk size (MTU 23: 11 bytes)
    assert copy.complete and copy.finish({}) is not None
    assert (tmp_path / f"{entry.name}.blocks").read_bytes() == b"".join(blocks)


def test_a_damaged_block_is_kept_only_when_it_comes_twice_alike(tmp_path):
    blocks = walk_blocks()
    bad = bytearray(blocks[4])
    bad[300] ^= 1
    copy = SessionCopy(tmp_path, FlashSession(3, 0, 6), tries=3)
    copy.open()
    copy.request()
    copy.asked(6)
    assert feed(copy, [c for k in range(4) for c in chunks(blocks[k], 3, k)]) == []
    assert feed(copy, chunks(bytes(bad), 3, 4)) == [4]  # first failed copy: asked again
    copy.asked(6)
    other = bytearray(bad)
    other[301] ^= 1
    assert feed(copy, chunks(bytes(other), 3, 4)) == [4]  # another failed copy, not the same bytes: again
    copy.asked(6)
    assert feed(copy, chunks(bytes(other), 3, 4)) == []  # the same bytes twice: damage on the flash, kept
    assert copy.damaged == [4] and copy.verified == 5
    copy.close()
    again = SessionCopy(tmp_path, FlashSession(3, 0, 6))
    assert again.open() == 5 and again.damaged == [4]  # a last block kept damaged is not asked for to be met


def test_a_rerun_meets_its_last_block_again_or_moves_another_sessions_copy_aside(tmp_path):
    blocks = walk_blocks()
    entry = FlashSession(3, 0, len(blocks))
    first = SessionCopy(tmp_path, entry)
    first.open()
    first.request()
    first.asked(len(blocks))
    feed(first, [c for k in range(10) for c in chunks(blocks[k], 3, k)])
    first.close()
    with open(tmp_path / f"{entry.name}.part", "ab") as f:
        f.write(blocks[10][:100])  # a write cut by a kill: dropped on the next run
    again = SessionCopy(tmp_path, entry)
    assert again.open() == 9  # the last kept block is asked for again, to be met byte for byte
    again.request()
    again.asked(len(blocks))
    for k in range(9, len(blocks)):
        feed(again, chunks(blocks[k], 3, k))
    assert again.complete and again.verified - again.had == len(blocks) - 10
    again.finish({})
    assert (tmp_path / f"{entry.name}.blocks").read_bytes() == b"".join(blocks)
    # the ids restarted (an erase of everything): a new session 3 meets the old copy's last block differently
    newer = walk_blocks(n_samples=900)  # other samples, more blocks
    other = SessionCopy(tmp_path, FlashSession(3, 0, len(newer)))
    last = other.open()
    other.request()
    other.asked(len(newer))
    assert feed(other, chunks(newer[last], 3, last)) == [0]  # a good block, not ours: start over from block 0
    assert other.replaced and other.replaced[0].read_bytes() == b"".join(blocks)


def test_the_hclog_of_a_session_with_a_damaged_block_marks_its_samples_lost(tmp_path):
    blocks = walk_blocks(n_samples=600)
    damaged = bytearray(blocks[3])
    damaged[100] ^= 0xFF
    blocks[3] = bytes(damaged)
    account = blocks_to_hclog(blocks, tmp_path / "s.hclog", {"device": None})
    assert account["damaged_blocks"] == [3]
    log = read_session_log(tmp_path / "s.hclog")
    samples = log.samples
    assert samples["seq"][0] == 100 and samples["seq"][-1] == 699  # every sample has its row
    lost = samples["seq"][samples["gap"]]
    # block 3 holds bytes 1476..1967 of the stream: samples whose packets touch it are lost, the rest are there
    assert 20 <= len(lost) <= 69 and np.all(np.diff(lost) == 1)
    assert account["lost_samples"] == len(lost) and account["samples"] == 600 - len(lost)


def test_sync_over_ble_through_the_firmwares_own_gatt_server(recorded, tmp_path):
    """The same copy over BLE: the firmware's link_ble notifies the chunks on its log characteristic, bleak (on a
    bumble central, paired) receives them through BleLink; MTU 185: chunks of 173 bytes, three per block."""
    from hipcheck.links.ble import BleLink
    from support.bleak_bumble import Air
    from support.firmware_peripheral import FirmwarePeripheral

    flash0, _, csv = recorded
    flash = tmp_path / "flash.bin"
    shutil.copy(flash0, flash)
    on_flash = flash_sessions(flash)[0]

    async def go():
        air = Air()
        async with FirmwarePeripheral(air, csv, seconds=3, extra_args=("--log", str(flash))) as sensor:
            async with BleLink(sensor.name, backend=air.backend(), mtu=185, watchdog_s=None) as link:
                await link.pair()
                return await LogSync(link, tmp_path / "ble").run(), sensor

    reports, sensor = asyncio.run(asyncio.wait_for(go(), 90))
    assert (tmp_path / "ble" / "session-00000-0.blocks").read_bytes() == on_flash
    assert reports[0].new_blocks == len(on_flash) // BLOCK_SIZE and not reports[0].damaged
    assert sensor.errors == [], sensor.errors


def test_sync_over_usb_serial_on_a_real_pty(recorded, tmp_path):
    """The same copy over the serial link: the firmware's own link_serial on a pty's master, SerialLink on its
    slave tty (COBS + CRC-16 frames, as over USB)."""
    from hipcheck.links.serial import SerialLink
    from hipcheck.links.simboard import firmware_command, prepare_trace

    flash0, _, csv = recorded
    flash = tmp_path / "flash.bin"
    shutil.copy(flash0, flash)
    on_flash = flash_sessions(flash)[0]
    trace = tmp_path / "trace.hct"
    prepare_trace(csv, trace)
    args, env = firmware_command(trace, "--link", "serial", "--seconds", "3", "--no-alerts", "--log", flash)
    master, slave = os.openpty()
    proc = subprocess.Popen(args, stdin=master, stdout=master, stderr=subprocess.DEVNULL, env=env, cwd=tmp_path)

    async def go():
        async with SerialLink(os.ttyname(slave)) as link:
            return await within(LogSync(link, tmp_path / "serial").run(), 60)

    try:
        reports = asyncio.run(go())
    finally:
        proc.kill()
        proc.wait(timeout=5)
        os.close(master)
        os.close(slave)
    assert (tmp_path / "serial" / "session-00000-0.blocks").read_bytes() == on_flash
    assert reports[0].new_blocks == len(on_flash) // BLOCK_SIZE and not reports[0].damaged


def test_two_syncs_into_one_folder_are_refused(tmp_path):
    import fcntl

    from hipcheck.device.logsync import FolderBusyError

    class Untouched(SimLink):
        async def open(self):
            raise AssertionError("the link was opened although the folder is busy")

    with open(tmp_path / ".hipcheck-sync.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a first sync holds it
        with pytest.raises(FolderBusyError, match="another hipcheck sync is writing into"):
            asyncio.run(LogSync(Untouched("unused.csv"), tmp_path).run())


# ------------------------------------------------------------------------------------ a session still being recorded

async def _sync_while_recording(csv, flash: Path, out: Path, *, erase: bool, settle_s: float = 1.0):
    """Boot the firmware on ``flash`` in real time (it opens a new session at boot and records the walk into it),
    let it record ``settle_s``, then sync into ``out`` while it goes on recording."""
    async with SimLink(csv, realtime=True, extra_args=("--log", str(flash))) as link:
        await asyncio.sleep(settle_s)  # the new session's first blocks are on the flash: it is listed
        sync = LogSync(link, out, erase=erase)
        return await within(sync.run(), 60)


def test_a_session_still_recording_is_copied_as_far_as_it_goes_never_erased_and_continued_next_time(recorded,
                                                                                                   tmp_path):
    flash0, _, csv = recorded
    flash = tmp_path / "flash.bin"
    shutil.copy(flash0, flash)
    closed = flash_sessions(flash)[0]
    out = tmp_path / "copies"

    # First sync: session 0 (recorded earlier, closed) and session 1 (the one the sensor writes now)
    reports = asyncio.run(_sync_while_recording(csv, flash, out, erase=True))
    by_id = {r.session_id: r for r in reports}
    assert sorted(by_id) == [0, 1], reports
    assert by_id[0].open is False and by_id[0].erased
    recording = by_id[1]
    assert recording.open is True and not recording.erased and recording.new_blocks >= 1
    assert recording.note == "not erased: the sensor is still recording it"
    lines = report_lines(reports)
    line = next(x for x in lines if x.startswith(recording.name + ":"))
    assert ("still being recorded on the sensor: copied and verified as far as it goes, the next sync continues it"
            in line and "erased on the sensor" not in line), line
    assert "still being recorded" not in next(x for x in lines if x.startswith(by_id[0].name + ":"))
    assert (out / f"{by_id[0].name}.blocks").read_bytes() == closed
    # what was there is copied, verified, byte for byte; the sensor kept recording after the copy
    on_flash = flash_sessions(flash)
    assert 0 not in on_flash, "the verified closed session was not erased"
    copied = (out / f"{recording.name}.blocks").read_bytes()
    assert len(copied) == recording.n_blocks * BLOCK_SIZE
    assert len(on_flash[1]) > len(copied) and on_flash[1][:len(copied)] == copied
    log = read_session_log(out / f"{recording.name}.hclog")  # what is there reads as a session log already
    assert len(log) > 0 and log.n_lost == 0

    # Second sync: the sensor rebooted, so session 1 is closed now (and session 2 open): it is continued from its
    # copy (its last block met again, nothing moved aside), whole, and erased; session 2 is not
    whole = on_flash[1]
    reports = asyncio.run(_sync_while_recording(csv, flash, out, erase=True))
    by_id = {r.session_id: r for r in reports}
    assert sorted(by_id) == [1, 2], reports
    again = by_id[1]
    assert again.open is False and again.erased and again.note == ""
    assert again.new_blocks == len(whole) // BLOCK_SIZE - len(copied) // BLOCK_SIZE
    assert (out / f"{again.name}.blocks").read_bytes() == whole
    assert by_id[2].open is True and not by_id[2].erased
    assert 2 in flash_sessions(flash) and 1 not in flash_sessions(flash)
    print(f"\nsession still recording: {len(copied) // BLOCK_SIZE} blocks copied while it grew to "
          f"{len(whole) // BLOCK_SIZE}; the next sync added {again.new_blocks} and erased it")


def test_sync_with_firmware_from_before_the_open_flag(recorded, tmp_path, monkeypatch):
    """Firmware whose LOG_LIST has no flags (the real firmware with its LOG_LIST as before: index only, so the
    6-byte form is BAD_LENGTH): the sync asks again in the short form, copies everything, says nothing about open
    sessions, and the sensor still refuses to erase the one it writes (BUSY)."""
    flash0, _, csv = recorded
    old = tmp_path / "firmware"
    shutil.copytree(Path(__file__).resolve().parents[1] / "firmware", old)
    packet = old / "packet.py"
    text = packet.read_text()
    for new, before in (('LOG_LIST: ("<HB", ("index", "with_flags")),', 'LOG_LIST: ("<H", ("index",)),'),
                        ("COMMAND_OPTIONAL = {LOG_LIST: 1, INFO: 1}", "COMMAND_OPTIONAL = {INFO: 1}")):
        assert new in text
        text = text.replace(new, before)
    packet.write_text(text)
    monkeypatch.setenv("HIPCHECK_FIRMWARE", str(old))
    flash = tmp_path / "flash.bin"
    shutil.copy(flash0, flash)
    closed = flash_sessions(flash)[0]
    reports = asyncio.run(_sync_while_recording(csv, flash, tmp_path / "copies", erase=True))
    by_id = {r.session_id: r for r in reports}
    assert sorted(by_id) == [0, 1] and all(r.open is None for r in reports), reports
    assert by_id[0].erased and (tmp_path / "copies" / f"{by_id[0].name}.blocks").read_bytes() == closed
    assert not by_id[1].erased and "recording it now" in by_id[1].note
    assert not any("still being recorded" in line for line in report_lines(reports))


def test_a_sim_sync_while_replaying_a_file_names_it_and_its_copy_takes_no_profile(recorded, tmp_path, monkeypatch):
    """`sync --sim FLASH --sim-trace FILE`: the copy's header names the file the simulated sensor replays (as a
    live session's log does), so a later analyze applies no profile of device 'sim' to it, and says why."""
    from hipcheck.calibration import profile as profiles

    monkeypatch.setenv(profiles.ENV_CONFIG_DIR, str(tmp_path / "config"))
    profiles.record_calibration("sim", "gyro", {"gyro_bias_rad_s": [0.1, -0.1, 0.1]}, {}, "t")
    flash0, _, csv = recorded
    flash = tmp_path / "flash.bin"
    shutil.copy(flash0, flash)
    done = run_cli("sync", "--sim", str(flash), "--sim-trace", str(csv), "-o", str(tmp_path / "copies"))
    assert done.returncode == 0, done.stderr
    copies = sorted((tmp_path / "copies").glob("*.hclog"))
    assert copies and LogReader(copies[0]).header["replayed_file"] == csv.name
    analysed = run_cli("analyze", str(copies[0]))
    assert analysed.returncode == 0, analysed.stderr
    assert f"the log replays a file ({csv.name})" in analysed.stderr and "profile of device sim " not in analysed.stderr
