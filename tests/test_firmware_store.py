"""firmware/store.py under the real MicroPython unix port: the session log survives a reset in the middle of a write.

The writer is a micropython process appending a session; the test kills it with SIGKILL at random moments, then
reads the log back both with the firmware (a new process mounts it, as after a reset) and with an independent
reader of the documented block format written here in CPython (zlib.crc32). Every block the writer reported as
committed must be there, intact; at most the block being written is lost; the next session overwrites a torn block.
"""

import os
import random
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

ROOT = Path(__file__).resolve().parents[1]
FIRMWARE = ROOT / "firmware"
MICROPYTHON = shutil.which("micropython", path=str(Path(sys.executable).parent)) or shutil.which("micropython")

pytestmark = pytest.mark.skipif(MICROPYTHON is None, reason="the micropython unix port is not installed")

ENV = dict(os.environ, MICROPYPATH=f"{FIRMWARE / 'sim'}:{FIRMWARE}:.frozen")
BLOCK, PAYLOAD, HEADER = 512, 492, 16



def expected(sid, n):
    """The payload stream of session `sid`: byte j is (sid * 7 + j * 13 + (j >> 8)) & 0xFF, as the writer makes it."""
    j = np.arange(n, dtype=np.int64)
    return ((sid * 7 + j * 13 + (j >> 8)) & 0xFF).astype(np.uint8).tobytes()


WRITER = r"""
import sys, time
from store import Store

class SlowFlash(Store):
    def _between(self):  # a flash program time between a block's body and its CRC: kills land inside a block
        time.sleep_ms(3)

st = SlowFlash(sys.argv[1], max_blocks=int(sys.argv[2]))
print("mounted", st.n_sessions, st.torn, st.bad_blocks)
sid = st.begin(int(sys.argv[3]))
print("session", sid)
sizes = (37, 100, 251, 492, 5)
off = 0
k = 0
last = 0

def report():
    global last
    if st.blocks_written != last:  # each write() or sync() here commits one block at most
        last = st.blocks_written
        print("committed", sid, last, off)

while True:
    n = sizes[k % len(sizes)]
    st.write(bytes(((sid * 7 + j * 13 + (j >> 8)) & 0xFF) for j in range(off, off + n)))
    off += n
    k += 1
    report()
    if k % 9 == 0:
        st.sync()  # a partly filled block: blocks of every length
        report()
    if st.full:
        print("full")
        break
"""

READER = r"""
import sys
from store import Store, StoreError
st = Store(sys.argv[1], max_blocks=int(sys.argv[2]))
print("mounted", st.n_sessions, st.torn, st.bad_blocks)
buf = bytearray(512)
for i in range(st.n_sessions):
    sid, start, n = st.session(i)
    out = bytearray()
    bad = 0
    for b in range(n):
        try:
            length = st.read_block(sid, b, buf)
            out += buf[16:16 + length]
        except StoreError as e:
            bad += 1
            print("error", sid, b, e)
    open(sys.argv[3] + "/s%d.bin" % sid, "wb").write(out)
    print("session", sid, start, n, len(out), bad)
"""


def run_mpy(tmp_path, script, *args, timeout=60):
    path = tmp_path / f"{abs(hash(script))}.py"
    path.write_text(script)
    result = subprocess.run([MICROPYTHON, str(path), *map(str, args)], capture_output=True, text=True,
                            timeout=timeout, env=ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def read_back(tmp_path, log, max_blocks):
    """Mount the log in a new micropython process (as after a reset) and read every session."""
    out_dir = tmp_path / "out"
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir()
    out = run_mpy(tmp_path, READER, log, max_blocks, out_dir)
    lines = [line.split() for line in out.splitlines()]
    mounted = [int(x) for x in lines[0][1:]]
    sessions = {}
    for w in lines[1:]:
        assert w[0] == "session", out  # no read errors
        sid, start, n, size, bad = map(int, w[1:])
        sessions[sid] = dict(start=start, n_blocks=n, data=(out_dir / f"s{sid}.bin").read_bytes(), bad=bad)
    return mounted, sessions


def parse_log(path):
    """Independent reader of the documented format: [(slot, sid, block, length, start_s, crc_ok, payload)] and
    the size of a trailing partial slot."""
    raw = Path(path).read_bytes()
    slots = []
    for slot in range(len(raw) // BLOCK):
        b = raw[slot * BLOCK:(slot + 1) * BLOCK]
        magic, ver, flags, sid, length, block, start_s = struct.unpack_from("<HBBHHII", b, 0)
        crc_ok = zlib.crc32(b[:508]) == struct.unpack_from("<I", b, 508)[0]
        slots.append((slot, magic, ver, sid, block, length, start_s, crc_ok, b[HEADER:HEADER + length],
                      b[HEADER + length:508]))
    return slots, len(raw) % BLOCK


def test_kill_mid_write_loses_at_most_the_block_being_written(tmp_path):
    log = tmp_path / "flash.bin"
    max_blocks = 4000
    rng = random.Random(20240611)
    kept = {}  # sid -> n_blocks after its round (must never change afterwards)
    torn_seen = 0
    report = []
    for round_ in range(8):
        writer = tmp_path / "writer.py"
        writer.write_text(WRITER)
        proc = subprocess.Popen([MICROPYTHON, str(writer), str(log), str(max_blocks), str(1000 + round_)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
        mounted = proc.stdout.readline().split()
        sid = int(proc.stdout.readline().split()[1])
        time.sleep(rng.uniform(0.05, 0.5))
        proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL, err
        # only whole lines: the kill may land in the middle of a print (a loaded machine made "committed 3" of one)
        committed = [line.split() for line in out.split("\n")[:-1] if line.startswith("committed")]
        n_committed = int(committed[-1][2]) if committed else 0
        assert "full" not in out

        size = log.stat().st_size
        slots, partial = parse_log(log)
        mounted_after, sessions = read_back(tmp_path, log, max_blocks)
        torn = mounted_after[1]
        torn_seen += torn
        report.append((round_, sid, n_committed, sessions[sid]["n_blocks"] if sid in sessions else 0, torn,
                       size % BLOCK))
        # The writer mounted the previous round's log: it saw the torn block then.
        assert int(mounted[1]) == len(kept)
        # Every earlier session is exactly as it was.
        for old, n in kept.items():
            assert sessions[old]["n_blocks"] == n
            assert sessions[old]["data"] == expected(old, len(sessions[old]["data"]))
        # This one: every committed block is there; at most one more (killed between its CRC and the print).
        n = sessions[sid]["n_blocks"] if sid in sessions else 0
        assert n_committed <= n <= n_committed + 1, (n_committed, n)
        data = sessions[sid]["data"] if sid in sessions else b""
        assert data == expected(sid, len(data))
        if committed:
            assert len(data) >= int(committed[-1][3]) - PAYLOAD  # the bytes written, less the block in RAM
        kept[sid] = n
        # The independent reader agrees: good blocks in order, then at most one torn slot or a partial one.
        good = [s for s in slots if s[1] == 0x4C48 and s[7]]
        assert len(good) == sum(kept.values())
        assert all(s[9] == bytes(len(s[9])) for s in good)  # payload past `length` is zero
        bad = [s for s in slots if not (s[1] == 0x4C48 and s[7])]
        assert len(bad) + (1 if partial else 0) <= 1
        assert not bad or bad[0][0] == len(slots) - 1  # only the last slot can be torn
        assert torn == (1 if bad or partial else 0)
    print("kill rounds (round, session, committed printed, blocks found, torn, file size % 512):", report)
    print("rounds that left a torn block:", torn_seen)
    assert len(kept) == 8


def test_erase_download_and_damage(tmp_path):
    log = tmp_path / "flash.bin"
    out = run_mpy(tmp_path, r"""
import sys
from store import Store, StoreError, ERASE_ALL
path = sys.argv[1]
st = Store(path, max_blocks=100)
for s in range(4):
    sid = st.begin(100 + s)
    for j in range(3 * (s + 1) * 492 // 100):
        st.write(bytes(((sid * 7 + k * 13 + (k >> 8)) & 0xFF) for k in range(j * 100, j * 100 + 100)))
    st.end()
print("sessions", [st.session(i) for i in range(st.n_sessions)])
print("erase1", st.erase(1), st.erase(9), [st.session(i) for i in range(st.n_sessions)])
# resumable download: chunks from block 2 on, 11 bytes each (MTU 23)
chunks = list((b, o, bytes(m)) for b, o, m in st.chunks(3, 2, 11))
print("chunks", len(chunks), chunks[0][:2], chunks[-1][:2], sum(len(c[2]) for c in chunks))
buf = bytearray(512)
st.read_block(3, 2, buf)
print("block_matches", b"".join(c[2] for c in chunks[:47]) == bytes(buf))
try:
    st.read_block(3, 99, buf)
except StoreError as e:
    print("err", e)
st.close()
# damage: a payload byte of session 2 block 1, and the header of session 3 block 0
f = open(path, "r+b")
st = Store(path, max_blocks=100)
slot_b1 = st._find(2)[2] + 1
slot_h = st._find(3)[2]
st.close()
f.seek(slot_b1 * 512 + 100); f.write(b"\xAA")
f.seek(slot_h * 512); f.write(b"\x00\x00")
f.close()
st = Store(path, max_blocks=100)
print("remount", st.n_sessions, st.bad_blocks, [st.session(i) for i in range(st.n_sessions)])
try:
    st.read_block(2, 1, buf)
except StoreError as e:
    print("crc", e)
print("still_readable", st.read_block(2, 2, buf), st.read_block(3, 1, buf))
print("all", st.erase(ERASE_ALL), st.n_sessions)
st.close()
import os
print("size", os.stat(path)[6])
# a full partition
st = Store(path, max_blocks=3)
st.begin(0)
st.write(bytes(492 * 5))
print("full", st.full, st.blocks_written, st.blocks_lost, st.free_blocks)
""", log)
    lines = {line.split()[0]: line for line in out.splitlines()}
    assert "[(0, 100, 3), (1, 101, 6), (2, 102, 9), (3, 103, 12)]" in lines["sessions"]
    assert lines["erase1"] == "erase1 True False [(0, 100, 3), (2, 102, 9), (3, 103, 12)]"
    # blocks 2..11 of session 3: 10 blocks x 47 chunks (46 x 11 + 6 bytes)
    assert lines["chunks"] == "chunks 470 (2, 0) (11, 506) 5120"
    assert lines["block_matches"] == "block_matches True"
    assert "session 3 has 12 blocks; no block 99" in lines["err"]
    # the header damage splits off block 0 of session 3 as a bad slot; the payload damage shows on reading
    assert lines["remount"].startswith("remount 3 1 ")
    assert "session 2 block 1 is damaged (CRC)" in lines["crc"]
    assert lines["all"] == "all True 0"
    assert lines["size"] == "size 0"
    assert lines["full"] == "full True 3 2 0"


def test_viper_crc_matches_zlib(tmp_path):
    out = run_mpy(tmp_path, r"""
import store
b = bytearray(bytes(range(256)) * 2)
for n in (0, 1, 9, 508):
    view = memoryview(b)[:n]
    print(store.crc32(view), store.crc32(view, False))
print(store.crc32(memoryview(b"123456789"), False))
""")
    b = bytes(range(256)) * 2
    lines = out.split("\n")
    for line, n in zip(lines, (0, 1, 9, 508)):
        assert line.split() == [str(zlib.crc32(b[:n]))] * 2
    assert lines[4] == str(0xCBF43926)  # the CRC-32 check value


def test_a_full_last_block_with_a_bad_crc_is_torn_and_overwritten(tmp_path):
    log = tmp_path / "flash.bin"
    out = run_mpy(tmp_path, r"""
import sys
from store import Store
path = sys.argv[1]
st = Store(path, max_blocks=50)
st.begin(7)
st.write(bytes(range(200)) * 5)  # 1000 bytes: blocks 0, 1 full, 16 bytes in RAM
st.sync()  # block 2: 16 bytes
st.close()
f = open(path, "r+b")
f.seek(2 * 512 + 508)
f.write(b"\x00\x00\x00\x00")  # the last block's CRC never made it
f.close()
st = Store(path, max_blocks=50)
print("mounted", st.torn, st.n_sessions, st.session(0))
sid = st.begin(8)
st.write(b"z" * 10)
st.end()
st.close()
st = Store(path, max_blocks=50)
print("after", st.torn, [st.session(i) for i in range(st.n_sessions)])
import os
print("size", os.stat(path)[6])
""", log)
    lines = out.splitlines()
    assert lines[0] == "mounted 1 1 (0, 7, 2)"
    assert lines[1] == "after 0 [(0, 7, 2), (1, 8, 1)]"
    assert lines[2] == "size 1536"
