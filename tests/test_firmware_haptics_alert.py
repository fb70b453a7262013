"""firmware/haptics.py and firmware/alert.py under the real MicroPython unix port.

Haptics: patterns played on the sim board's PWM (sim/machine.py records every duty change with its time), VIBRATE
commands decoded by firmware/packet.py, replacement of a running pattern, the built-in alert patterns.
Alert: simulated walks (hipcheck.motion) fed as wire-scale samples with the true orientation quantised to Q14, and
through the firmware's own fusion: a weak right hip (drop_right_deg=9) fires right-stance drop alerts on every
stride, a healthy walk (4/4 deg) none; a wide sway fires SWAY; zero bytes allocated per sample.
"""

import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from hipcheck import protocol as p
from hipcheck.motion import SensorModel, simulate_walk

ROOT = Path(__file__).resolve().parents[1]
FIRMWARE = ROOT / "firmware"
VECTORS = ROOT / "tests" / "vectors"
MICROPYTHON = shutil.which("micropython", path=str(Path(sys.executable).parent)) or shutil.which("micropython")

pytestmark = pytest.mark.skipif(MICROPYTHON is None, reason="the micropython unix port is not installed")

# ".frozen" keeps the unix port's frozen asyncio importable when MICROPYPATH is set.
ENV = dict(os.environ, MICROPYPATH=f"{FIRMWARE / 'sim'}:{FIRMWARE}:.frozen")


def run_mpy(tmp_path, script, *args, timeout=120):
    path = tmp_path / "script.py"
    path.write_text(script)
    result = subprocess.run([MICROPYTHON, str(path), *map(str, args)], capture_output=True, text=True,
                            timeout=timeout, env=ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


# ------------------------------------------------------------------------------------------------------ haptics

HAPTICS_SCRIPT = r"""
import asyncio, sys, machine
from machine import PWM, Pin
from haptics import Haptics, PATTERNS
from packet import decode_command, VIBRATE
machine.clock.real()  # PWM events carry real time (us since this call), as the asyncio sleeps do
pwm = PWM(Pin(1), freq=20000, duty_u16=0)
h = Haptics(pwm)
vec = sys.argv[1]

def mark(name):
    print("mark", name, machine.clock.ticks_us())

async def main():
    # The VIBRATE vectors through the firmware's command decoder.
    for name in ("cmd_vibrate_1_step", "cmd_vibrate_7_steps", "cmd_vibrate_8_steps"):
        st, op, token, f = decode_command(open(vec + "/" + name + ".bin", "rb").read())
        print("decoded", name, st, op == VIBRATE, f[0], f[1], f[2], len(f[3]))
        if name == "cmd_vibrate_8_steps":
            print("status_8", h.play(f[0], f[1], f[2], f[3]))
    print("status_bad", h.play(101, 0, 1, b"\x01\x00"), h.play(50, 0, 0, b""), h.play(50, 0, 2, b"\x01"))
    # A pattern: 50% for 2 x (on 60, off 40, on 30), repeat 1.
    mark("p1")
    print("status_p1", h.play(50, 1, 2, b"\x06\x04\x03\x00"))
    await asyncio.sleep_ms(450)
    print("playing_after_p1", int(h.playing))
    # A long pattern replaced after 100 ms by sway.
    mark("p2")
    h.play_pattern("drop_left")
    await asyncio.sleep_ms(100)
    mark("p3")
    h.alert(2, 0)
    await asyncio.sleep_ms(600)
    print("playing_after_p3", int(h.playing))
    mark("p4")
    h.alert(1, 2)  # drop right: two long buzzes
    await asyncio.sleep_ms(50)
    h.stop()
    mark("stopped")
    await asyncio.sleep_ms(100)

asyncio.run(main())
for t, duty, freq in pwm.events:
    print("pwm", t, duty, freq)
"""


@pytest.fixture(scope="module")
def haptics_run(tmp_path_factory):
    out = run_mpy(tmp_path_factory.mktemp("haptics"), HAPTICS_SCRIPT, VECTORS)
    lines = [line.split() for line in out.splitlines()]
    marks = {w[1]: int(w[2]) for w in lines if w[0] == "mark"}
    pwm = [(int(w[1]), int(w[2])) for w in lines if w[0] == "pwm"]
    info = {w[0]: w[1:] for w in lines if w[0] not in ("mark", "pwm")}
    decoded = {w[1]: w[2:] for w in lines if w[0] == "decoded"}
    return marks, pwm, info, decoded


def _window(pwm, t0, t1):
    return [(t, d) for t, d in pwm if t0 <= t < t1]


def test_vibrate_commands_and_refusals(haptics_run):
    _, _, info, decoded = haptics_run
    assert decoded["cmd_vibrate_1_step"] == ["0", "True", "100", "0", "1", "2"]
    assert decoded["cmd_vibrate_7_steps"] == ["0", "True", "80", "2", "7", "14"]
    assert decoded["cmd_vibrate_8_steps"][0] == str(p.Status.TOO_LONG)
    assert info["status_8"] == [str(p.Status.TOO_LONG)]
    assert info["status_bad"] == [str(p.Status.OUT_OF_RANGE), str(p.Status.OUT_OF_RANGE), str(p.Status.BAD_LENGTH)]
    assert info["status_p1"] == ["0"]


def test_pattern_steps_and_timing(haptics_run):
    marks, pwm, info, _ = haptics_run
    events = _window(pwm, marks["p1"], marks["p2"])
    half = 50 * 65535 // 100
    # on 60, off 40, on 30 (no off: runs into the repeat's first on), on 60 more, off 40, on 30, off.
    assert [d for _, d in events] == [half, 0, half, 0, half, 0]
    t = [e[0] - marks["p1"] for e in events]
    want_ms = [0, 60, 100, 190, 230, 260]
    assert np.allclose(np.array(t) / 1000, want_ms, atol=15), t  # deadlines from the start: no drift
    assert info["playing_after_p1"] == ["0"]


def test_new_pattern_replaces_running_one(haptics_run):
    marks, pwm, info, _ = haptics_run
    full = 65535
    sway = 80 * 65535 // 100
    before = _window(pwm, marks["p2"], marks["p3"])
    assert [d for _, d in before] == [full]  # drop_left: one 400 ms buzz, cut short
    after = _window(pwm, marks["p3"], marks["p4"])
    assert [d for _, d in after] == [sway, 0] * 3  # sway: three 80 ms buzzes
    assert (after[0][0] - marks["p3"]) < 15000  # straight to the new pattern, no off gap of the old one
    on = [(after[i + 1][0] - after[i][0]) / 1000 for i in range(0, 6, 2)]
    assert np.allclose(on, 80, atol=15), on
    assert info["playing_after_p3"] == ["0"]


def test_stop_turns_the_motor_off(haptics_run):
    marks, pwm, _, _ = haptics_run
    events = _window(pwm, marks["p4"], 1 << 62)
    assert [d for _, d in events] == [65535, 0]
    assert events[-1][0] - marks["stopped"] < 5000
    assert pwm[-1][1] == 0



# The player idle: it must sleep (a wearable's battery), and still time a pattern that comes after a long idle
# stretch exactly, without allocating. The motor records into preallocated arrays (its list of tuples would
# allocate and count here).
IDLE_SCRIPT = r"""import asyncio, gc, time, machine
from array import array
from haptics import Haptics


class Motor(machine.PWM):
    def __init__(self, pin):
        self.n = 0
        self.duties = array("i", bytes(4 * 64))
        self.times = array("i", bytes(4 * 64))
        super().__init__(pin, freq=20000, duty_u16=0)

    def _log(self):
        if self.n < 64:
            self.duties[self.n] = self._duty
            self.times[self.n] = time.ticks_ms()
        self.n += 1


motor = Motor(machine.Pin(1))
h = Haptics(motor)
out = array("i", [0] * 8)


async def main():
    h.play_pattern("sway")  # makes the player; 480 ms
    await asyncio.sleep_ms(700)
    w0 = h.wakeups
    await asyncio.sleep_ms(10000)  # idle
    out[0] = h.wakeups - w0
    gc.collect()
    a0 = gc.mem_alloc()
    w0 = h.wakeups
    n0 = motor.n
    out[2] = time.ticks_ms()
    h.play_pattern("drop_right")  # 250 on, 150 off, 250 on: the player wakes for it at once
    await asyncio.sleep_ms(450)
    h.alert(2, 0)  # sway replaces it in its second buzz (three 80 ms buzzes)
    await asyncio.sleep_ms(700)
    out[1] = gc.mem_alloc() - a0
    out[3] = h.wakeups - w0
    out[4] = n0


asyncio.run(main())
print("idle_wakeups", out[0], "alloc", out[1], "pattern_wakeups", out[3], "t0", out[2])
print("motor", *[motor.duties[j] for j in range(out[4], min(motor.n, 64))])
print("motor_ms", *[motor.times[j] - out[2] for j in range(out[4], min(motor.n, 64))])
"""


def test_the_idle_player_sleeps_and_wakes_for_the_next_pattern(tmp_path):
    out = run_mpy(tmp_path, IDLE_SCRIPT)
    lines = {w[0]: w[1:] for w in (line.split() for line in out.splitlines())}
    head = lines["idle_wakeups"]
    idle, alloc, during = int(head[0]), int(head[2]), int(head[4])
    print(f"player wake-ups: {idle} in 10 s idle, {during} for two patterns (1 s); {alloc} B")
    # 10 s idle: a wake-up every IDLE_MS (5 s), where a 10 ms poll woke 1000 times
    assert idle <= 3, idle
    # the patterns after it: timed from their start, nothing allocated, woken per step and per new pattern only
    assert alloc == 0
    duties = [int(x) for x in lines["motor"]]
    t = [int(x) for x in lines["motor_ms"]]
    sway = 80 * 65535 // 100
    # (this Motor logs every setting: the end of a pattern sets 0 again after its last off step)
    assert duties[:9] == [65535, 0, 65535] + [sway, 0] * 3 and not any(duties[9:]), duties
    assert np.allclose(t[:3], [0, 250, 400], atol=15), t
    assert np.allclose(t[3] - 450, 0, atol=15) and np.allclose(np.diff(t[3:9]), 80, atol=15), t
    assert during <= 14, during  # one per step's end and per new pattern: 10 (a 10 ms poll: about 100)

# -------------------------------------------------------------------------------------------------------- alert

ALERT_SCRIPT = r"""
import sys, gc, time
from array import array
from alert import Alert
data = open(sys.argv[1], "rb").read()
rate = int(sys.argv[2])
mode = sys.argv[3]
n = int(sys.argv[4])
acc = array("h", data[:6 * n])
if mode == "fusion":
    from fusion import Fusion
    gyr = array("h", data[6 * n:12 * n])
    quat = array("h", bytes(8 * n))
    flags = bytearray(n)
    f = Fusion(rate)
else:
    quat = array("h", data[6 * n:14 * n])
    flags = bytearray(n)
a = Alert(rate)
if len(sys.argv) > 5:
    print("status", a.set_thresholds(*[int(x) for x in sys.argv[5].split(",")]))
B = 10  # a FIFO read
alloc = 0
for i in range(0, n, B):
    m = min(B, n - i)
    if mode == "fusion":
        f.update(acc, gyr, quat, flags, m, i)
    ready = a.reference_ready
    a0 = gc.mem_alloc()
    k = a.update(quat, acc, flags, m, i)
    if ready:  # the reference is computed once (floats); every other block must allocate nothing
        alloc += gc.mem_alloc() - a0
    for j in range(k):
        print("event", *a.event(j))
print("alloc", alloc)
# Time: the detector alone on the recording again (state carried on), no measurement inside the loop.
t0 = time.ticks_us()
for i in range(0, n - B, B):
    a.update(quat, acc, flags, B, i)
print("us_per_sample", time.ticks_diff(time.ticks_us(), t0) / (n - B))
print("reference", int(a.reference_ready), *a.reference[0])
print("lost", a.events_lost)
"""


def alert_run(tmp_path, trace, mode="truth", thresholds=None):
    quat_q14, acc_raw, gyr_raw, _ = p.to_wire(trace.truth.q_sensor_to_earth, trace.acc_sensor_m_s2,
                                              trace.gyr_sensor_rad_s)
    second = gyr_raw if mode == "fusion" else quat_q14
    (tmp_path / "in.bin").write_bytes(acc_raw.astype("<i2").tobytes() + second.astype("<i2").tobytes())
    args = [tmp_path / "in.bin", int(trace.fs_hz), mode, len(acc_raw)]
    if thresholds is not None:
        args.append(",".join(map(str, thresholds)))
    out = run_mpy(tmp_path, ALERT_SCRIPT, *args)
    events = [tuple(int(x) for x in line.split()[1:]) for line in out.splitlines() if line.startswith("event")]
    info = {line.split()[0]: line.split()[1:] for line in out.splitlines() if not line.startswith("event")}
    return events, info


def walk(**kw):
    return simulate_walk(duration_s=40, seed=kw.pop("seed", 1), sensor=SensorModel.realistic(seed=1), **kw)


def stance_samples(trace, side):
    code = {"right": p.Side.RIGHT, "left": p.Side.LEFT}[side]
    from hipcheck.motion import PHASE_LEFT_SINGLE_SUPPORT, PHASE_RIGHT_SINGLE_SUPPORT
    phase = PHASE_RIGHT_SINGLE_SUPPORT if code == p.Side.RIGHT else PHASE_LEFT_SINGLE_SUPPORT
    return trace.truth.phase == phase


@pytest.fixture(scope="module")
def weak_right():
    return walk(drop_right_deg=9)


@pytest.fixture(scope="module")
def healthy():
    return walk()


@pytest.mark.parametrize("mode", ["truth", "fusion"])
def test_weak_right_walk_fires_right_stance_drops(tmp_path, weak_right, mode):
    events, info = alert_run(tmp_path, weak_right, mode)
    assert info["reference"][0] == "1"
    drops = [e for e in events if e[0] == p.AlertKind.DROP]
    assert drops and all(e[1] == p.Side.RIGHT for e in drops), events
    right_stance = stance_samples(weak_right, "right")
    assert all(right_stance[e[3]] for e in drops), "a drop alert outside right single support"
    strides = len(weak_right.truth.strides)
    assert len(drops) >= strides - 2, (len(drops), strides)  # refractory 1 s < a stride (1.09 s)
    values_deg = np.array([e[2] for e in drops]) / 100
    assert np.all((values_deg >= 6.0) & (values_deg < 9.5)), values_deg  # at the crossing of 6 deg
    assert not [e for e in events if e[0] != p.AlertKind.DROP]
    print(f"{mode}: {len(drops)} right-stance drop alerts on {strides} strides; "
          f"{info['us_per_sample'][0]} us/sample, alloc {info['alloc'][0]} B")


@pytest.mark.parametrize("mode", ["truth", "fusion"])
def test_healthy_walk_fires_nothing(tmp_path, healthy, mode):
    events, info = alert_run(tmp_path, healthy, mode)
    assert info["reference"][0] == "1"
    assert events == []


def test_weak_left_walk_names_the_left_stance(tmp_path):
    trace = walk(drop_left_deg=8, seed=2)
    events, _ = alert_run(tmp_path, trace, "fusion")
    assert events and all(e[:2] == (p.AlertKind.DROP, p.Side.LEFT) for e in events), events
    left_stance = stance_samples(trace, "left")
    assert all(left_stance[e[3]] for e in events)


def test_wide_sway_fires_sway_alert(tmp_path):
    trace = walk(sway_cm=9, seed=3)
    events, _ = alert_run(tmp_path, trace, "fusion")
    sway = [e for e in events if e[0] == p.AlertKind.SWAY]
    assert sway and not [e for e in events if e[0] != p.AlertKind.SWAY], events
    assert all(e[1] == p.Side.NONE and 75 <= e[2] <= 105 for e in sway), sway  # mm, true 90
    assert len(sway) == 1  # hysteresis: once per stretch of wide strides (as the host's SWAY)


def test_zero_allocation_per_sample(tmp_path, weak_right):
    _, info = alert_run(tmp_path, weak_right, "truth")
    assert int(info["alloc"][0]) == 0
    assert float(info["us_per_sample"][0]) < 20  # generous: 2 shared cores; measured ~0.6 us


def test_thresholds_from_the_host(tmp_path, weak_right):
    # SET_THRESHOLDS fields: drop 10 deg > the 9 deg drop: nothing.
    events, info = alert_run(tmp_path, weak_right, "truth", (7, 1000, 60, 1250, 10, 1500))
    assert info["status"] == ["0"] and events == []
    # drop alerts off
    events, _ = alert_run(tmp_path, weak_right, "truth", (2, 600, 60, 800, 25, 1000))
    assert events == []
    # refractory 3 s: about one alert per 3 s
    events, _ = alert_run(tmp_path, weak_right, "truth", (1, 600, 60, 800, 25, 3000))
    t_s = np.array([e[3] for e in events]) / weak_right.fs_hz
    assert len(events) >= 8 and np.all(np.diff(t_s) >= 3.0), t_s


def test_bad_thresholds_are_refused(tmp_path):
    out = run_mpy(tmp_path, r"""
from alert import Alert
a = Alert(100)
print(a.set_thresholds(16, 600, 60, 800, 25, 1000), a.set_thresholds(1, 600, 60, 800, 101, 1000),
      a.set_thresholds(3, 500, 60, 1250, 10, 1500), a.thresholds)
""")
    assert out.split()[:3] == [str(p.Status.OUT_OF_RANGE), str(p.Status.OUT_OF_RANGE), "0"]
    assert "(3, 500, 60, 1250, 10, 1500)" in out


DISPATCH_SCRIPT = r"""
import sys, asyncio, machine
from array import array
from machine import PWM, Pin
from alert import Alert
from haptics import Haptics
from ring import Ring
from sampling import DeviceClock
from transmit import ControlQueue
data = open(sys.argv[1], "rb").read()
n = int(sys.argv[2])
acc = array("h", data[:6 * n]); quat = array("h", data[6 * n:14 * n]); flags = bytearray(n)
machine.clock.real()
pwm = PWM(Pin(1), freq=20000, duty_u16=0)
h = Haptics(pwm)
a = Alert(100)
ctrl = ControlQueue(Ring(64), DeviceClock())
sent = []

async def main():
    for i in range(0, n, 10):
        k = a.update(quat, acc, flags, 10, i)
        if k:
            a.dispatch(k, 1000 + i, 5000000 + i * 10000, 10000, ctrl, h, i)
            ctrl.drain(lambda buf, m: sent.append(bytes(buf[:m])) or True)
            await asyncio.sleep_ms(700)
            return

asyncio.run(main())
for pkt in sent:
    print("sent", pkt.hex())
print("duties", *[d for t, d, f in pwm.events])
"""


def test_alert_sends_event_and_buzzes(tmp_path, weak_right):
    quat_q14, acc_raw, _, _ = p.to_wire(weak_right.truth.q_sensor_to_earth, weak_right.acc_sensor_m_s2,
                                        weak_right.gyr_sensor_rad_s)
    (tmp_path / "in.bin").write_bytes(acc_raw.astype("<i2").tobytes() + quat_q14.astype("<i2").tobytes())
    out = run_mpy(tmp_path, DISPATCH_SCRIPT, tmp_path / "in.bin", len(acc_raw))
    sent = [bytes.fromhex(line.split()[1]) for line in out.splitlines() if line.startswith("sent")]
    assert len(sent) == 1
    event = p.decode_packet(sent[0])  # the host's decoder reads the device's EVENT
    assert event.code == p.EventCode.ALERT
    assert event.fields["alert_kind"] == p.AlertKind.DROP and event.fields["side"] == p.Side.RIGHT
    assert 600 <= event.fields["value"] <= 950
    assert event.seq >= 1000 and event.t_us == 5000000 + (event.seq - 1000) * 10000
    duties = [int(x) for x in out.split("duties")[1].split()]
    assert duties == [0, 65535, 0, 65535, 0]  # drop right: two long buzzes


# An alert's whole device path (detector -> EVENT in the control queue -> sent; pattern on the motor, its later
# steps played by the haptics player) for every alert of a weak-right walk, with gc.mem_alloc() read around all of
# it: asyncio runs between the FIFO reads, and HOLD_MS after each alert lets its pattern's player step on.
ALERT_ALLOC_SCRIPT = r"""import sys, gc, asyncio, time, machine
from array import array
from alert import Alert
from haptics import Haptics
from ring import Ring
from sampling import DeviceClock
from transmit import ControlQueue

data = open(sys.argv[1], "rb").read()
n = int(sys.argv[2])
acc = array("h", data[:6 * n])
quat = array("h", data[6 * n:14 * n])
flags = bytearray(n)
B = 10  # samples per FIFO read, as the sampler takes them
HOLD_MS = 300  # after an alert: its pattern plays (on, off, replaced by the next one)


class Motor(machine.PWM):
    # the sim board's PWM, its changes kept in preallocated arrays: the emulator's own list of tuples would
    # allocate per change, and this measures the firmware
    def __init__(self, pin):
        self.n_changes = 0
        self.duties = array("i", bytes(4 * 4096))
        self.times = array("i", bytes(4 * 4096))
        super().__init__(pin, freq=20000, duty_u16=0)

    def _log(self):
        if self.n_changes < 4096:
            self.duties[self.n_changes] = self._duty
            self.times[self.n_changes] = time.ticks_ms()
        self.n_changes += 1


motor = Motor(machine.Pin(1))
h = Haptics(motor)
ring = Ring(64)
clock = DeviceClock()
ctrl = ControlQueue(ring, clock)
a = Alert(100)
out = bytearray(20 * 256)  # every EVENT the queue sends, 20 bytes a slot
lens = bytearray(256)
sent = array("i", [0])
measured = array("i", [0, 0, 0, 0])  # bytes allocated, samples, alerts, collections seen


def send(buf, m):
    k = sent[0]
    if k < 256:
        for j in range(m):  # a slice of buf would be a new memoryview
            out[20 * k + j] = buf[j]
        lens[k] = m
    sent[0] = k + 1
    return True


async def main():
    first = True
    a0 = 0
    for i in range(0, n - B + 1, B):
        k = a.update(quat, acc, flags, B, i)
        if k:
            a.dispatch(k, 1000 + i, 5000000 + i * 9600, 9600, ctrl, h, i)
        ctrl.drain(send)
        if k and first:
            # the first alert made the haptics player, once: measured from here on
            first = False
            await asyncio.sleep_ms(HOLD_MS)
            gc.collect()
            a0 = gc.mem_alloc()
            start = i + B
            continue
        if k:
            measured[2] += k
            await asyncio.sleep_ms(HOLD_MS)
        else:
            await asyncio.sleep_ms(0)
    await asyncio.sleep_ms(900)  # the last pattern plays to its end
    a1 = gc.mem_alloc()
    measured[0] = a1 - a0
    measured[1] = n - start


asyncio.run(main())
print("alloc", measured[0], "samples", measured[1], "alerts_measured", measured[2], "playing", int(h.playing))
print("motor", motor.n_changes, *[motor.duties[j] for j in range(min(motor.n_changes, 4096))])
print("motor_ms", *[motor.times[j] for j in range(min(motor.n_changes, 4096))])
for j in range(min(sent[0], 256)):
    print("sent", bytes(out[20 * j:20 * j + lens[j]]).hex())
"""


def test_alert_path_allocates_nothing_per_alert(tmp_path, weak_right):
    quat_q14, acc_raw, _, _ = p.to_wire(weak_right.truth.q_sensor_to_earth, weak_right.acc_sensor_m_s2,
                                        weak_right.gyr_sensor_rad_s)
    n = 2000  # 20 s: about 15 alerts, each held HOLD_MS (0.3 s) in real time
    (tmp_path / "in.bin").write_bytes(acc_raw[:n].astype("<i2").tobytes() + quat_q14[:n].astype("<i2").tobytes())
    out = run_mpy(tmp_path, ALERT_ALLOC_SCRIPT, tmp_path / "in.bin", n)
    lines = [line.split() for line in out.splitlines()]
    head = next(w for w in lines if w[0] == "alloc")
    alloc, samples, alerts, playing = int(head[1]), int(head[3]), int(head[5]), int(head[7])
    # after the first alert (which made the haptics player, once): nothing at all, whatever number of alerts
    assert alerts >= 10 and samples >= 1500, (alerts, samples)
    assert alloc == 0, f"{alloc} bytes allocated over {alerts} alerts and {samples} samples"
    assert playing == 0
    # the wire: every EVENT is the host's own encoding of its fields, byte for byte
    sent = [bytes.fromhex(w[1]) for w in lines if w[0] == "sent"]
    assert len(sent) == alerts + 1
    for raw in sent:
        ev = p.decode_packet(raw)
        assert ev.code == p.EventCode.ALERT and ev.fields["alert_kind"] == p.AlertKind.DROP
        assert ev.fields["side"] == p.Side.RIGHT
        assert ev.t_us == 5000000 + (ev.seq - 1000) * 9600
        assert raw == p.encode_event(p.EventCode.ALERT, ev.t_us, ev.seq, **ev.fields)
    # the motor: each alert's drop_right pattern started at once and stepped on by the player (250 ms on, then
    # off), and the last one played whole: 250 on, 150 off, 250 on, off
    motor = next(w for w in lines if w[0] == "motor")
    n_changes, duties = int(motor[1]), [int(x) for x in motor[2:]]
    times = [int(x) for x in next(w for w in lines if w[0] == "motor_ms")[1:]]
    assert n_changes == len(duties) >= 2 * (alerts + 1)
    assert duties[-4:] == [65535, 0, 65535, 0]
    assert np.allclose(np.diff(times[-4:]), [250, 150, 250], atol=15), times[-4:]
    on = [times[i + 1] - times[i] for i in range(len(duties) - 1) if duties[i] == 65535]
    assert np.allclose(on, 250, atol=15), on
