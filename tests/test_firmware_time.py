"""Device time across the wraps, on the sim board (the firmware in the MicroPython unix port).

A 32-bit port's small ints hold -2^30 .. 2^30 - 1, and µs since boot pass 2^30 after 17.9 min; the wire's u32 wraps
at 2^32 (71.6 min). The firmware keeps time as ticks (µs modulo 2^30) and their wraps (``sampling.DeviceClock``),
so that nothing it holds outgrows a small int. The unix port is 64-bit (its small ints hold 2^62, so an allocation
would not show here): the sim board starts the device clock just below each wrap (``--t0-us``) and reads, between
steps, every int the clock, the sampling step, the ring and the sending parts hold (``--check-small-ints``). Then:

- every one of them stayed within a 32-bit port's small ints, while the clock and the newest sample's time went up
  to the top of the range and wrapped;
- the live DATA, decoded by the host's own decoders (the batch ``protocol.decode_data_packets`` and the live
  session's packet-by-packet ``WireDecoder``), has device times that go on by exactly one period across the wrap;
  each ALERT EVENT carries its sample's time and each TIME_SYNC pong the time of the next sample; the session log,
  converted as ``hipcheck sync`` converts it, has the live times;
- the step and pump allocate nothing per sample or per alert (192 B in all: the haptics player, made once).
"""

import ast
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from hipcheck import protocol
from hipcheck.cli import main as cli_main
from hipcheck.device.logblocks import blocks_to_hclog, read_blocks
from hipcheck.device.period import PeriodLearner
from hipcheck.device.wire import WireDecoder, nearest
from hipcheck.links.simboard import SimBoard
from hipcheck.protocol import EventCode, Opcode
from hipcheck.sessionfile import read_session_log

ROOT = Path(__file__).resolve().parents[1]
MICROPYTHON = shutil.which("micropython", path=str(Path(sys.executable).parent)) or shutil.which("micropython")
pytestmark = pytest.mark.skipif(MICROPYTHON is None, reason="micropython unix port not installed")

SECONDS = 12.0
BEFORE_WRAP_US = 6_000_000  # the clock starts this long before the wrap
PERIOD_US = 9600  # LSM6DSOX "104 Hz"
SMALL = 1 << 30  # a 32-bit port's small ints: -2^30 .. 2^30 - 1
U32 = 1 << 32


@pytest.fixture(scope="module")
def walk_csv(tmp_path_factory):
    out = tmp_path_factory.mktemp("time") / "walk.csv"
    assert cli_main(["simulate", "walk", "--drop-right", "8", "--seconds", str(SECONDS + 2), "-o", str(out)]) == 0
    return out


def _run(walk_csv, workdir, t0_us):
    """The sim board from device time t0_us: live packets, events, pongs taken while it ran, the record, the log."""
    pongs = []
    with SimBoard(walk_csv, seconds=SECONDS, workdir=workdir,
                  extra_args=("--t0-us", t0_us, "--check-small-ints")) as sb:
        for k in range(1, 6):  # pongs spread over the run
            sb.wait_samples(k * 250)
            pongs.append(sb.command(Opcode.TIME_SYNC, host_token=k, timeout_s=30).fields)
        last = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # until sampling has paused at SECONDS and every sample came
            f = sb.command(Opcode.TIME_SYNC, host_token=99, timeout_s=30).fields
            state = (f["next_seq"], sb.live_next_seq)
            if state == last and state[0] == state[1]:
                break
            last = state
            time.sleep(0.05)
        else:
            raise AssertionError("the sim board did not finish")
    record = json.loads(sb.record_path.read_text())
    return sb, pongs, record


@pytest.fixture(scope="module", params=[("small_int", SMALL), ("u32", U32)], ids=lambda p: p[0])
def wrapped(request, walk_csv, tmp_path_factory):
    name, boundary = request.param
    t0 = boundary - BEFORE_WRAP_US
    sb, pongs, record = _run(walk_csv, tmp_path_factory.mktemp(f"wrap-{name}"), t0)
    return {"boundary": boundary, "t0": t0, "sb": sb, "pongs": pongs, "record": record}


def _samples(sb):
    samples, report = protocol.decode_data_packets(sb.data_packets)
    assert report.skipped == []
    return samples


def test_every_int_the_time_keeping_holds_stays_a_small_int(wrapped):
    record = wrapped["record"]
    seen = record["small_ints"]
    over = {k: v for k, v in seen.items() if v >= SMALL}
    assert over == {}, f"beyond a 32-bit port's small ints: {over}"
    # the check saw the time at the top of the range, and the wrap
    assert seen["clock.tick"] >= SMALL - 30_000 and seen["sampling.t_last"] >= SMALL - 30_000, seen
    wraps = wrapped["boundary"] >> 30
    assert record["clock"]["wraps"] == wraps
    assert record["clock"]["tick"] == pytest.approx(SECONDS * 1e6 - BEFORE_WRAP_US, abs=100_000)
    # and what it read: every part, the time attributes among them
    for key in ("clock.tick", "clock.wraps", "sampling.t_last", "sampling.period_us", "ring.next_seq",
                "tx.max_latency_us", "ctrl.n", "backfill.tokens"):
        assert key in seen


def test_live_device_times_go_on_by_one_period_across_the_wrap(wrapped):
    sb, t0, boundary = wrapped["sb"], wrapped["t0"], wrapped["boundary"]
    samples = _samples(sb)
    seq, t = samples["seq"], samples["t_us"]
    assert np.array_equal(seq, np.arange(len(seq))) and len(seq) > 0.95 * SECONDS * 1e6 / PERIOD_US
    assert t0 <= t[0] < t0 + 200_000
    assert t[0] < boundary < t[-1]  # unwrapped: past the boundary, not back to 0
    d = np.diff(t)
    assert np.all(d > 0)
    assert np.all(d[200:] == PERIOD_US), np.unique(d[200:])  # the first reads settle the phase, then exact steps
    # the live session's decoder, packet by packet, gives the same
    wire = WireDecoder(PeriodLearner())
    live = np.concatenate([wire.decode(pkt, None) for pkt in sb.data_packets])
    assert np.array_equal(live["seq"], seq) and np.array_equal(live["t_us"], t)


def test_alerts_and_pongs_carry_their_samples_times_across_the_wrap(wrapped):
    sb, boundary = wrapped["sb"], wrapped["boundary"]
    samples = _samples(sb)
    t_of = dict(zip(samples["seq"].tolist(), samples["t_us"].tolist()))
    alerts = [e for e in sb.events if e.code == EventCode.ALERT]
    assert len(alerts) >= 5
    for e in alerts:
        assert e.t_us == t_of[e.seq] % U32, e
    times = [t_of[e.seq] for e in alerts]
    assert min(times) < boundary < max(times)  # alerts on both sides of the wrap
    checked = 0
    for f in wrapped["pongs"]:
        t_next = t_of.get(f["next_seq"])
        if t_next is None or f["next_seq"] < 10:
            continue
        assert f["next_t_us"] == t_next % U32, f  # the time the next sample got
        assert abs(nearest(t_next, f["device_t_us"]) - t_next) < 50_000, f  # the device time at the ping
        checked += 1
    assert checked >= 4


def test_the_session_log_has_the_live_times(wrapped, tmp_path):
    sb = wrapped["sb"]
    blocks = read_blocks(sb.log_path)
    account = blocks_to_hclog(blocks, tmp_path / "s.hclog", {"device": None})
    assert account["damaged_blocks"] == [] and account["lost_samples"] == 0
    logged = read_session_log(tmp_path / "s.hclog").samples
    live = _samples(sb)
    n = min(len(logged), len(live))
    assert n > 0.95 * len(live)
    assert np.array_equal(logged["seq"][:n], live["seq"][:n])
    assert np.array_equal(logged["t_device_us"][:n], live["t_us"][:n])


def test_step_and_pump_allocate_nothing_per_sample_or_alert_across_the_wrap(wrapped):
    app = wrapped["record"]["app"]
    assert app["alerts"] >= 5 and app["alloc_samples"] > 900, app
    # one-time costs only, as on a run from 0: the haptics player made at the first alert (192 B)
    assert app["alloc_bytes"] <= 256, app


@pytest.mark.parametrize("boundary", [SMALL, U32], ids=["small_int", "u32"])
def test_a_device_session_across_the_wrap_has_every_sample_in_time_order(walk_csv, boundary):
    # the host's whole live path (hipcheck.device: decoding, reassembly, backfill of 1 % dropped packets, time
    # sync) on the firmware started before the wrap
    import asyncio

    from hipcheck.device import DeviceSession, SessionSettings
    from hipcheck.links.sim import SimLink

    t0 = boundary - BEFORE_WRAP_US
    link = SimLink(walk_csv, seconds=SECONDS, drop_data=0.01, seed=5, extra_args=("--t0-us", t0))

    async def main():
        async with link:
            async with DeviceSession(link, SessionSettings(start_seq=0)) as session:
                blocks = [b.samples async for b in session.blocks()]
                pong = await session.time_sync()
        return session, np.concatenate(blocks), pong

    session, rows, pong = asyncio.run(main())
    assert link.dropped_injected >= 2 and session.stats.samples_backfilled > 0
    assert np.array_equal(rows["seq"], np.arange(len(rows))) and not rows["gap"].any()
    t = rows["t_device_us"]
    assert t0 <= t[0] and t[0] < boundary < t[-1]
    assert np.all(np.diff(t) > 0) and np.all(np.diff(t)[200:] == PERIOD_US)
    assert 0 <= pong["device_t_us"] - t[-1] < 1_000_000  # the pong unwrapped past the wrap too


# --------------------------------------------------------------------------------- the parts, without emulators

# The firmware's parts as main.build wires them (fusion, ring, alert with the config's thresholds, haptics, session
# log, transmit), fed by a stand-in driver that hands over 2 samples of a weak-right walk (wire scales) per 20 ms
# step, on a board clock that wraps at 2^30 µs as a 32-bit port's time.ticks_us does. Nothing else runs in the
# measured step: no I2C emulator (whose ns arithmetic would make big ints on a 32-bit build), the motor records into
# preallocated arrays, the link copies each packet into one preallocated buffer. So the same script measures the
# firmware alone on a 32-bit build of the unix port too (run_parts(..., binary=...); firmware/README.md, "Device
# time", has the figures: 0 B there as here, where the firmware before ticks took 72 B/sample past 2^30).
PARTS_SCRIPT = r"""import sys, gc, asyncio, time, machine
from array import array

import config
import main
from sampling import tick_add, tick_diff

data = open(sys.argv[1], "rb").read()
n_in = int(sys.argv[2])
t0 = int(sys.argv[3])
log_path = sys.argv[4]
acc_in = array("h", data[:6 * n_in])
gyr_in = array("h", data[6 * n_in:12 * n_in])
STEPS = 600  # 12 s
PER_STEP = 2  # samples per 20 ms step at 100 Hz


class Imu:
    # the driver interface over the walk's samples: PER_STEP samples a read, the next read none
    imu_id = 1
    name = "walk"
    lost = 0
    overflows = 0

    def __init__(self):
        self.period_us = 10000
        self.pos = 0
        self.due = 0

    def configure(self, rate_hz, *args, **kw):
        self.period_us = 1000000 // rate_hz

    def read(self, acc, gyr):
        n = self.due
        self.due = 0
        for k in range(3 * n):
            acc[k] = acc_in[3 * self.pos + k]
            gyr[k] = gyr_in[3 * self.pos + k]
        self.pos += n
        return n


class Motor(machine.PWM):
    def __init__(self, *args, **kw):
        self.n_changes = 0
        self.duties = array("i", bytes(4 * 512))
        super().__init__(*args, **kw)

    def _log(self):
        if self.n_changes < 512:
            self.duties[self.n_changes] = self._duty
        self.n_changes += 1


class Link:
    # every packet into one buffer, its length into another: no allocation per packet
    connected = True
    mtu = 247

    def __init__(self):
        self.buf = bytearray(200000)
        self.lens = array("H", bytes(2 * 4000))
        self.n = 0
        self.used = 0
        self.on_packet = None

    def send(self, buf, n):
        u = self.used
        for j in range(n):  # a slice of buf would be a new memoryview
            self.buf[u + j] = buf[j]
        self.used = u + n
        self.lens[self.n] = n
        self.n += 1
        return True

    async def run(self):
        pass


board_t = array("i", [0])  # the board's microsecond ticks, wrapping at 2^30


def ticks_us():
    return board_t[0]


machine.PWM = Motor
imu = Imu()
link = Link()
cfg = config.check({"board": "sim", "rate_hz": 100, "autostart": True, "log_path": log_path, "profile_path": None},
                   "parts")
app = main.build(cfg=cfg, board=config.board(cfg), link=link, imu=imu, ticks_us=ticks_us, ticks_diff=tick_diff)
app.clock.start_at(t0)
PARTS = ("clock", "sampling", "tx", "ctrl", "backfill", "ring", "session_log")
seen = {}
out = array("i", [0] * 4)  # bytes allocated, samples measured, steps measured, collections seen


def check():
    for part in PARTS:
        obj = getattr(app, part)
        for name in dir(obj):
            if not name.startswith("__"):
                v = getattr(obj, name, None)
                if type(v) is int:
                    m = v if v >= 0 else -v - 1
                    key = part + "." + name
                    if m > seen.get(key, -1):
                        seen[key] = m


async def run():
    app.running = True
    app.session_log.begin(app.clock.seconds())
    step = app.sampling.step
    pump = app.tx.pump
    for i in range(STEPS):
        board_t[0] = tick_add(board_t[0], 20000)
        imu.due = PER_STEP
        warm = i < 50 or app.sampling.alerts == 0  # until the first alert has made the haptics player (once)
        a = gc.mem_alloc()
        n = step()
        pump()
        d = gc.mem_alloc() - a
        if not warm:
            if d < 0:
                out[3] += 1  # a collection ran: nothing to learn from this step
            else:
                out[0] += d
                out[1] += n
                out[2] += 1
        check()
        await asyncio.sleep_ms(0)
    app.session_log.end()


asyncio.run(run())
print("alloc", out[0], "samples", out[1], "steps", out[2], "collections", out[3], "alerts", app.sampling.alerts,
      "tick", app.clock.tick, "wraps", app.clock.wraps)
print("seen", " ".join("%s=%d" % kv for kv in seen.items()))
u = 0
for j in range(link.n):
    m = link.lens[j]
    print("pkt", bytes(link.buf[u:u + m]).hex())
    u += m
"""


def run_parts(tmp_path, weak_right, t0_us, binary=None):
    """PARTS_SCRIPT from device time t0_us on the unix port (binary: another build of it); the parsed output."""
    from hipcheck import protocol as p

    _, acc, gyr, _ = p.to_wire(weak_right.truth.q_sensor_to_earth, weak_right.acc_sensor_m_s2,
                               weak_right.gyr_sensor_rad_s)
    n = len(acc)
    (tmp_path / "in.bin").write_bytes(acc.astype("<i2").tobytes() + gyr.astype("<i2").tobytes())
    script = tmp_path / "parts.py"
    script.write_text(PARTS_SCRIPT)
    env = dict(os.environ, MICROPYPATH=f"{ROOT / 'firmware' / 'sim'}:{ROOT / 'firmware'}:.frozen")
    r = subprocess.run([binary or MICROPYTHON, str(script), str(tmp_path / "in.bin"), str(n), str(t0_us),
                        str(tmp_path / "log.bin")], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    lines = [line.split() for line in r.stdout.splitlines()]
    head = next(w for w in lines if w[0] == "alloc")
    res = {head[i]: int(head[i + 1]) for i in range(0, len(head), 2)}
    res["seen"] = {k: int(v) for k, v in (x.split("=") for x in next(w for w in lines if w[0] == "seen")[1:])}
    res["packets"] = [bytes.fromhex(w[1]) for w in lines if w[0] == "pkt"]
    return res


@pytest.fixture(scope="module")
def weak_right():
    from hipcheck.motion import SensorModel, simulate_walk

    return simulate_walk(duration_s=13, seed=1, sensor=SensorModel.realistic(seed=1), drop_right_deg=9)


@pytest.mark.parametrize("boundary", [U32], ids=["u32"])  # the tick wraps (2^30) and the wire's u32 together
def test_the_parts_across_the_wrap_hold_small_ints_allocate_nothing_and_decode(tmp_path, weak_right, boundary):
    t0 = boundary - BEFORE_WRAP_US
    res = run_parts(tmp_path, weak_right, t0)
    print({k: v for k, v in res.items() if k not in ("seen", "packets")})
    # (a) every int the parts hold stayed a 32-bit port's small int, with the time at the top of the range
    assert {k: v for k, v in res["seen"].items() if v >= SMALL} == {}
    assert res["seen"]["clock.tick"] >= SMALL - 20_000 and res["seen"]["sampling.t_last"] >= SMALL - 20_000
    assert res["wraps"] == boundary >> 30 and res["tick"] == 600 * 20_000 - BEFORE_WRAP_US
    # (c) nothing allocated per sample or per alert
    assert res["alerts"] >= 5 and res["samples"] > 900
    assert res["alloc"] == 0, res
    # (b) the host decodes times going on by exactly the period across the wrap, alerts at their samples' times
    data = [pk for pk in res["packets"] if protocol.packet_type(pk) == protocol.PacketType.DATA]
    samples, _ = protocol.decode_data_packets(data)
    t = samples["t_us"]
    assert np.array_equal(samples["seq"], np.arange(len(t))) and t[0] < boundary < t[-1]
    assert np.all(np.diff(t) == 10_000) and t0 < t[0] < t0 + 40_000
    t_of = dict(zip(samples["seq"].tolist(), t.tolist()))
    alerts = [protocol.decode_packet(pk) for pk in res["packets"] if protocol.packet_type(pk) == protocol.PacketType.EVENT]
    alerts = [e for e in alerts if e.code == EventCode.ALERT]
    assert len(alerts) == res["alerts"] and min(t_of[e.seq] for e in alerts) < boundary < max(t_of[e.seq] for e in alerts)
    assert all(e.t_us == t_of[e.seq] % U32 for e in alerts)


# ------------------------------------------------------------------------------------------- the code itself

# The functions run per sample or per alert, in plain (not viper) MicroPython. A 32-bit port makes a big int of any
# constant beyond its small ints (0xFFFFFFFF, 2^30), and every operation with one allocates: such a constant must not
# appear there. Viper code is left out: its ints are machine words.
HOT = {
    "sampling.py": ["tick_add", "tick_diff", "DeviceClock.now_us", "DeviceClock.wraps_of", "Sampling.step"],
    "ring.py": ["Ring.append", "Ring.next_seq", "Ring.unsent", "Ring.take_lost", "Ring.encode_next",
                "Ring.encode_compact_next", "Ring.unsent_slot"],
    "alert.py": ["Alert.dispatch"],
    "transmit.py": ["ControlQueue.alert", "ControlQueue.drain", "ControlQueue._slot", "Transmit.pump",
                    "Transmit._hold", "Transmit._pump_live"],
    "packet.py": ["encode_alert", "_time_high16"],
    "session_log.py": ["SessionLog.write_samples"],
    "haptics.py": ["Haptics.alert", "Haptics.play", "Haptics._cancel", "Haptics._enter", "Haptics._player",
                   "_wake"],
}


def _functions(tree):
    out = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            out[node.name] = node
        elif isinstance(node, ast.ClassDef):
            for sub in node.body:
                if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    out[f"{node.name}.{sub.name}"] = sub
    return out


def _module_ints(tree):
    # module-level NAME = <int> or NAME = const(<int>)
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            v = node.value
            if isinstance(v, ast.Call) and getattr(v.func, "id", None) == "const" and v.args:
                v = v.args[0]
            try:
                value = ast.literal_eval(v)
            except ValueError:
                continue
            if isinstance(value, int):
                out[node.targets[0].id] = value
    return out


def _big_ints(path, names):
    tree = ast.parse(path.read_text())
    ints = _module_ints(tree)
    functions = _functions(tree)
    found = []
    for name in names:
        fn = functions[name]
        assert not any(getattr(d, "attr", None) == "viper" for d in fn.decorator_list), f"{name} is viper"
        for node in ast.walk(fn):
            value = None
            if isinstance(node, ast.Constant) and type(node.value) is int:
                value = node.value
            elif isinstance(node, ast.Name) and node.id in ints:
                value = ints[node.id]
            if value is not None and not -SMALL <= value < SMALL:
                found.append(f"{path.name}::{name} line {node.lineno}: {value:#x}")
    return found


def test_no_big_int_constant_on_the_hot_path():
    found = []
    for module, names in HOT.items():
        found += _big_ints(ROOT / "firmware" / module, names)
    assert found == []


def test_the_big_int_check_can_fail(tmp_path):
    src = tmp_path / "m.py"
    src.write_text("from micropython import const\n_U32 = const(0xFFFFFFFF)\n_OK = const(0x3FFFFFFF)\n\n"
                   "def f(t):\n    return t & _U32\n\n\ndef g(t):\n    return (t + 1) & _OK\n\n\n"
                   "class C:\n    def h(self, t):\n        return t - 0x40000000\n")
    assert _big_ints(src, ["g"]) == []
    assert _big_ints(src, ["f", "C.h"]) == ["m.py::f line 6: 0xffffffff", "m.py::C.h line 15: 0x40000000"]
