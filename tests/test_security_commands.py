"""The attacks of issue 11 as tests, against the firmware itself (main.build -> app.App in the MicroPython unix port on
the sim board; docs/security.md): whatever a host sends, the motor has a cap per pattern, a duty budget and stops
when the host goes, commands are rate-limited, uploads are checked before anything is written and a bad profile in
flash cannot stop the boot, BACKFILL answers are bounded.

Most run over the stdio link (a cable: trusted, so the command gets through and the device's own limits are what
is tested); the disconnect test runs the BLE transport on the emulated stack (a script plays a bonded central)."""

import json
import math
import os
import re
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hipcheck import protocol as p
from hipcheck.cli import main as cli_main
from hipcheck.links.simboard import SimBoard, firmware_command, prepare_trace
from hipcheck.protocol import Opcode, StateFlag, Status

ROOT = Path(__file__).resolve().parents[1]
FIRMWARE = ROOT / "firmware"
MICROPYTHON = shutil.which("micropython", path=str(Path(sys.executable).parent)) or shutil.which("micropython")
pytestmark = pytest.mark.skipif(MICROPYTHON is None, reason="the micropython unix port is not installed")

# The firmware's numbers (firmware/haptics.py, firmware/commands.py), as docs/protocol.md gives them.
MAX_PATTERN_MS = 4000
BUDGET_MS, BUDGET_REFILL_MS_PER_S = 12000, 200
VIBRATE_BURST, VIBRATE_PER_S = 4, 2
COMMAND_BURST, COMMAND_PER_S = 40, 40
RING = 3200
FULL = 65535

# Issue 11: one 20-byte VIBRATE, 100 % for 7 steps of 2.55 s, played 256 times: 76 minutes.
ATTACK_76_MIN = bytes.fromhex("22040164ff07") + bytes.fromhex("ff00") * 7


@pytest.fixture(scope="module")
def walk_csv(tmp_path_factory):
    out = tmp_path_factory.mktemp("secwalk") / "walk.csv"
    assert cli_main(["simulate", "walk", "--seconds", "42", "-o", str(out)]) == 0
    return out


def raw(sb, packet: bytes):
    time.sleep(1 / COMMAND_PER_S)  # a host's pace: the device's command rate limit is not what is tested here
    sb.send_packet(packet)
    return sb.wait_ack(packet[2])


def motor_after(result, t_wall_us):
    """(wall us, duty) of the motor's changes from its first start after t_wall_us on."""
    changes = [(int(w), int(d)) for _, d, _, w in result.motor if w >= t_wall_us]
    while changes and changes[0][1] == 0:
        changes.pop(0)
    return changes


def wall_us(sb) -> int:
    return int((time.perf_counter() - sb._t0) * 1e6)


def test_the_76_minute_vibrate_is_cut_to_the_cap(walk_csv, tmp_path):
    sb = SimBoard(walk_csv, seconds=2, workdir=tmp_path, log=False)
    with sb:
        sb.wait_samples(100)
        t0 = wall_us(sb) - 200_000  # the firmware's clock started a little after ours: a margin
        assert raw(sb, ATTACK_76_MIN).status == Status.OK  # accepted, and cut: it plays its first 4 s
        time.sleep(MAX_PATTERN_MS / 1000 + 0.8)
        result = sb.finish()
    changes = motor_after(result, t0)
    assert [d for _, d in changes] == [FULL, 0], changes
    on_ms = (changes[1][0] - changes[0][0]) / 1000
    assert MAX_PATTERN_MS - 30 <= on_ms <= MAX_PATTERN_MS + 60, on_ms
    assert result.record["app"]["haptics"]["capped"] == 1


def test_a_flood_of_vibrate_is_rate_limited(walk_csv, tmp_path):
    sb = SimBoard(walk_csv, seconds=2, workdir=tmp_path, log=False)
    with sb:
        sb.wait_samples(100)
        t0 = time.perf_counter()
        tokens = [(i % 250) + 1 for i in range(500)]
        # 500 one-step VIBRATEs of 100 ms in a row, as fast as the pipe takes them
        sb.send_raw(b"".join(p.frame(p.encode_command(Opcode.VIBRATE, t, intensity_pct=100, repeat=0,
                                                      steps=[(10, 0)])) for t in tokens))
        sb.wait_for(lambda s: sum(a.opcode == Opcode.VIBRATE for a in s.acks) >= 500, 30, "500 ACKs")
        elapsed_s = time.perf_counter() - t0
        time.sleep(1.5)  # the command budget refills (finish() pings)
        result = sb.finish()
    statuses = [a.status for a in result.acks if a.opcode == Opcode.VIBRATE]
    ok = statuses.count(Status.OK)
    assert len(statuses) == 500 and set(statuses) <= {Status.OK, Status.BUSY}  # one ACK each, none lost
    assert 1 <= ok <= VIBRATE_BURST + math.ceil(VIBRATE_PER_S * elapsed_s) + 1, (ok, elapsed_s)
    assert result.record["app"]["commands_limited"] == 500 - ok
    starts = sum(1 for i in range(1, len(result.motor)) if result.motor[i, 1] and not result.motor[i - 1, 1])
    assert starts <= ok


DUTY_SCRIPT = r"""
import asyncio, machine
from machine import PWM, Pin
from haptics import Haptics, MAX_PATTERN_MS, BUDGET_MS, BUDGET_REFILL_MS_PER_S
from limits import TokenBucket
machine.clock.real()
print("constants", MAX_PATTERN_MS, BUDGET_MS, BUDGET_REFILL_MS_PER_S)
pwm = PWM(Pin(1), freq=20000, duty_u16=0)
h = Haptics(pwm, budget=TokenBucket(500, 10))  # a small budget: 500 ms, refilled at 10 ms per s

async def main():
    print("first", h.play(100, 0, 1, b"\x64\x00"))  # 1 s asked, 500 ms in the budget
    await asyncio.sleep_ms(520)
    print("cut", h.budget_cuts, h.on_ms)
    print("empty", h.play(100, 0, 1, b"\x0a\x00"))  # ~5 ms left: BUSY
    await asyncio.sleep_ms(2000)
    print("later", h.play(100, 0, 1, b"\x0a\x00"))  # ~25 ms refilled: 100 ms asked, 25 played
    await asyncio.sleep_ms(300)
    print("total", h.on_ms)

asyncio.run(main())
for t, duty, freq in pwm.events:
    print("pwm", t, duty)
"""


def test_the_duty_budget_bounds_motor_time_whoever_asks(tmp_path):
    script = tmp_path / "duty.py"
    script.write_text(DUTY_SCRIPT)
    env = dict(os.environ, MICROPYPATH=f"{FIRMWARE / 'sim'}:{FIRMWARE}:.frozen")
    out = subprocess.run([MICROPYTHON, str(script)], capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    info = {w[0]: w[1:] for w in map(str.split, out.stdout.splitlines()) if w[0] != "pwm"}
    pwm = [(int(w[1]), int(w[2])) for w in map(str.split, out.stdout.splitlines()) if w[0] == "pwm"]
    assert info["constants"] == [str(MAX_PATTERN_MS), str(BUDGET_MS), str(BUDGET_REFILL_MS_PER_S)]
    assert info["first"] == ["0"]
    assert info["cut"][0] == "1" and 495 <= int(info["cut"][1]) <= 500  # 1 s asked, the budget's 500 ms played
    on = [(pwm[i + 1][0] - pwm[i][0]) / 1000 for i in range(len(pwm) - 1) if pwm[i][1] and not pwm[i + 1][1]]
    assert 490 <= on[0] <= 530, on
    assert info["empty"] == [str(Status.BUSY)] and info["later"] == ["0"]
    assert 515 <= int(info["total"][0]) <= 500 + 26  # the budget plus what 2.5 s refilled


def test_the_motor_stops_when_the_host_disconnects(walk_csv, tmp_path):
    trace = tmp_path / "trace.hct"
    prepare_trace(walk_csv, trace)
    vibrate = bytes.fromhex("2204015aff07") + bytes.fromhex("ff00") * 7  # 90 %: told apart from the cues (100 %)
    script = f"""
until adv
connect 0 c0ffee000001
mtu 247
subscribe {p.CONTROL_CHAR_UUID}
pair
wait 200
write {p.CONTROL_CHAR_UUID} {vibrate.hex()}
wait 600
disconnect
wait 500
end
"""
    record = tmp_path / "record.json"
    args, env = firmware_command(trace, "--link", "ble", "--seconds", "30", "--record", record,
                                 "--ble-record", tmp_path / "ble.bin")
    result = subprocess.run(args, input=script.encode(), capture_output=True, timeout=60, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    rec = json.loads(record.read_text())
    duty_90 = 90 * FULL // 100
    motor = [(w, d) for _, d, _, w in rec["motor"]]
    start = next(i for i, (_, d) in enumerate(motor) if d == duty_90)
    after = motor[start:]
    assert [d for _, d in after] == [duty_90, 0], after  # on, then off for good
    on_ms = (after[1][0] - after[0][0]) / 1000
    assert 580 <= on_ms <= 700, on_ms  # the 600 ms until the disconnect, and at most a sampling step more


def test_thresholds_that_would_buzz_all_the_time_are_refused(walk_csv, tmp_path):
    sb = SimBoard(walk_csv, seconds=2, workdir=tmp_path, log=False)
    with sb:
        sb.wait_samples(100)
        zero = sb.command(Opcode.SET_THRESHOLDS, enable_mask=7, drop_cdeg=0, sway_mm=0, tilt_cdeg=0,
                          hysteresis_pct=0, refractory_ms=0)
        fast = sb.command(Opcode.SET_THRESHOLDS, enable_mask=1, drop_cdeg=600, sway_mm=60, tilt_cdeg=800,
                          hysteresis_pct=25, refractory_ms=100)
        info = sb.command(Opcode.INFO)
        ok = sb.command(Opcode.SET_THRESHOLDS, enable_mask=1, drop_cdeg=600, sway_mm=60, tilt_cdeg=800,
                        hysteresis_pct=25, refractory_ms=500)
        sb.finish()
    assert zero.status == Status.OUT_OF_RANGE and fast.status == Status.OUT_OF_RANGE
    assert info.fields["state_flags"] & StateFlag.ALERTS_ENABLED  # the config's thresholds still hold
    assert ok.status == Status.OK


def profile(gyr=(0.001, -0.002, 0.0005), acc=(0.05, -0.03, 0.1), matrix=(1.008, 0.002, 0, -0.002, 0.996, 0, 0, 0,
                                                                        1.004), q=(0.5, 0.5, -0.5, 0.5)) -> bytes:
    body = struct.pack("<B3f3f9f4f", 1, *gyr, *acc, *matrix, *q)
    return body + struct.pack("<H", p.crc16_ccitt(body))


BAD_PROFILES = {
    "nan acc bias": profile(acc=(float("nan"), 0, 0)),
    "inf gyro bias": profile(gyr=(0, float("inf"), 0)),
    "zero matrix": profile(matrix=(0,) * 9),
    "absurd gyro bias": profile(gyr=(100.0, 0, 0)),
    "absurd acc bias": profile(acc=(0, 0, 9.8)),
    "scale x 3": profile(matrix=(3, 0, 0, 0, 3, 0, 0, 0, 3)),
    "a reflection": profile(matrix=(-1, 0, 0, 0, 1, 0, 0, 0, 1)),
    "shear": profile(matrix=(1, 0.5, 0, 0, 1, 0, 0, 0, 1)),
    "quaternion of norm 2": profile(q=(2, 0, 0, 0)),
}
REASONS = {"nan acc bias": "acc_bias_m_s2 holds nan: not a finite number",
           "inf gyro bias": "gyr_bias_rad_s holds inf: not a finite number",
           "zero matrix": "acc_matrix has a scale of 0", "absurd gyro bias": "gyr_bias_rad_s[0] = 100",
           "absurd acc bias": "acc_bias_m_s2[2] = 9.8", "scale x 3": "acc_matrix has a scale of 3",
           "a reflection": "acc_matrix is a reflection",
           "shear": "acc_matrix is not a rotation times a scale",
           "quaternion of norm 2": "q_sensor_to_pelvis has norm 2"}


def test_implausible_calibration_uploads_are_refused_before_anything_is_written(walk_csv, tmp_path):
    sb = SimBoard(walk_csv, seconds=3, workdir=tmp_path, log=False)
    answers = {}
    with sb:
        sb.wait_samples(100)
        for k, (name, blob) in enumerate(BAD_PROFILES.items()):
            acks = [raw(sb, c) for c in p.cal_upload_commands(blob, 100 + 7 * k)]
            answers[name] = [a.status for a in acks]
            assert not sb.profile_path.exists(), name  # nothing written
        good = [raw(sb, c).status for c in p.cal_upload_commands(profile(), 20)]
        written = sb.profile_path.read_bytes()
        info = sb.command(Opcode.INFO)
        result = sb.finish()
    for name, statuses in answers.items():
        assert statuses == [Status.OK] * 6 + [Status.OUT_OF_RANGE], (name, statuses)
    assert good == [Status.OK] * 7 and written == profile()
    assert info.fields["state_flags"] & StateFlag.PROFILE_LOADED
    for name, reason in REASONS.items():
        assert f"calibration profile refused: {reason}" in result.stderr, (name, result.stderr)
    assert result.seq_gaps() == []  # streaming went on throughout


@pytest.mark.parametrize("case", ["nan acc bias", "zero matrix", "garbage", "truncated"])
def test_a_bad_profile_in_flash_is_ignored_at_boot_with_the_reason_logged(walk_csv, tmp_path, case):
    blob = {"garbage": bytes(range(79)), "truncated": profile()[:40]}.get(case) or BAD_PROFILES[case]
    (tmp_path / "profile.bin").write_bytes(blob)
    sb = SimBoard(walk_csv, seconds=2, workdir=tmp_path, log=False)
    with sb:
        sb.wait_samples(150)  # it booted and streams
        info = sb.command(Opcode.INFO)
        result = sb.finish()
    assert not info.fields["state_flags"] & StateFlag.PROFILE_LOADED
    why = {"garbage": "CRC mismatch", "truncated": "40 bytes, not 79"}.get(case) or REASONS[case]
    line = next(l for l in result.stderr.splitlines() if "calibration profile" in l)
    assert re.search(r"calibration profile .*profile\.bin ignored: .*; running uncalibrated", line), line
    assert why in line, line


def test_backfill_answers_are_bounded(walk_csv, tmp_path):
    sb = SimBoard(walk_csv, seconds=40, workdir=tmp_path, log=False)
    with sb:
        sb.wait_samples(40 * 104 - 20)  # the ring is full: it holds the last 3200 samples
        seq0 = sb.command(Opcode.TIME_SYNC, host_token=1).fields["next_seq"]
        acks = []
        for token in range(1, 21):  # issue 11: 20 requests of 9 bytes, each for as much as the field allows
            acks.append(sb.command(Opcode.BACKFILL, token=token, from_seq=0, max_samples=0xFFFF))
        time.sleep(1.0)
        taken = sb.command(Opcode.TIME_SYNC, host_token=2).fields["next_seq"] - seq0
        result = sb.finish()
    assert all(a.status == Status.OK and a.fields["count"] <= RING for a in acks)  # one ring per request at most
    sent = result.record["app"]["backfill_sent"]
    assert len(result.backfilled) == sent
    # one ring at once, then 2 samples per sample taken (sampling stops at the trace's end, 40 s)
    assert sent <= RING + 2 * taken, (sent, taken)
    assert taken < 100
    assert result.record["app"]["backfill_paced"] > 0


def test_log_erase_needs_the_token_of_its_own_request(walk_csv, tmp_path):
    sb = SimBoard(walk_csv, seconds=8, workdir=tmp_path)  # with the session log
    with sb:
        sb.wait_samples(250)
        before = sb.command(Opcode.LOG_LIST, index=0)
        asked = sb.command(Opcode.LOG_ERASE, session_id=p.LOG_ERASE_ALL, confirm=0)
        still = sb.command(Opcode.LOG_LIST, index=0)
        guessed = sb.command(Opcode.LOG_ERASE, session_id=p.LOG_ERASE_ALL, confirm=asked.fields["confirm"] ^ 1)
        replayed = sb.command(Opcode.LOG_ERASE, session_id=p.LOG_ERASE_ALL, confirm=asked.fields["confirm"])
        other = sb.command(Opcode.LOG_ERASE, session_id=p.LOG_ERASE_ALL, confirm=0)
        wrong_session = sb.command(Opcode.LOG_ERASE, session_id=before.fields["session_id"],
                                   confirm=other.fields["confirm"])
        missing = sb.command(Opcode.LOG_ERASE, session_id=0x4242, confirm=0)
        again = sb.command(Opcode.LOG_ERASE, session_id=p.LOG_ERASE_ALL, confirm=0)
        erased = sb.command(Opcode.LOG_ERASE, session_id=p.LOG_ERASE_ALL, confirm=again.fields["confirm"])
        sb.wait_samples(sb.live_samples + 200)  # the new session gets its first blocks
        after = sb.command(Opcode.LOG_LIST, index=0)
        sb.finish()
    assert asked.status == Status.OK and asked.fields["confirm"] != 0  # a token: nothing erased yet
    same = ("n_sessions", "session_id", "start_time_s")  # (the session being written grows meanwhile)
    assert [still.fields[k] for k in same] == [before.fields[k] for k in same]
    # a wrong token, the right one once it was spent, a token for another session: refused, nothing erased
    assert (guessed.status, replayed.status, wrong_session.status) == (Status.OUT_OF_RANGE,) * 3
    assert missing.status == Status.UNAVAILABLE
    assert again.fields["confirm"] not in (0, asked.fields["confirm"], other.fields["confirm"])
    assert erased.status == Status.OK and erased.fields["confirm"] == 0
    # erasing everything while logging starts a new session: only it is listed now
    assert after.fields["n_sessions"] == 1 and after.fields["start_time_s"] > before.fields["start_time_s"]


def test_the_documented_numbers_are_the_firmwares():
    """docs/protocol.md ("Motor safety") gives the numbers the firmware keeps: read both and hold them together."""
    def constant(path, name):
        return int(re.search(rf"^{name} = const\((\d+)\)", (FIRMWARE / path).read_text(), re.M).group(1))

    firmware = {"pattern": constant("haptics.py", "MAX_PATTERN_MS"), "budget": constant("haptics.py", "BUDGET_MS"),
                "refill": constant("haptics.py", "BUDGET_REFILL_MS_PER_S"),
                "vib_burst": constant("commands.py", "VIBRATE_BURST"),
                "vib_rate": constant("commands.py", "VIBRATE_PER_S"),
                "cmd_burst": constant("commands.py", "COMMAND_BURST"),
                "cmd_rate": constant("commands.py", "COMMAND_PER_S")}
    assert firmware == {"pattern": MAX_PATTERN_MS, "budget": BUDGET_MS, "refill": BUDGET_REFILL_MS_PER_S,
                        "vib_burst": VIBRATE_BURST, "vib_rate": VIBRATE_PER_S, "cmd_burst": COMMAND_BURST,
                        "cmd_rate": COMMAND_PER_S}
    doc = (ROOT / "docs" / "protocol.md").read_text()
    section = doc[doc.index("### Motor safety"):doc.index("### Bounded answers")]
    assert f"| one pattern's length | {MAX_PATTERN_MS // 1000} s" in section
    assert f"{BUDGET_MS // 1000} s of motor-on in any minute (a bucket of {BUDGET_MS:,} ms refilled at " \
           f"{BUDGET_REFILL_MS_PER_S} ms/s".replace(",", " ") in section
    assert f"| VIBRATE rate | {VIBRATE_BURST} at once, then {VIBRATE_PER_S} a second |" in section
    assert f"| all commands | {COMMAND_BURST} at once, then {COMMAND_PER_S} a second |" in section
    assert BUDGET_REFILL_MS_PER_S * 60 == BUDGET_MS  # "12 s in any minute"
