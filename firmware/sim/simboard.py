# The sim board: runs the firmware (main.build -> app.App) in the unix port on emulated hardware.
#
#   MICROPYPATH=firmware/sim:firmware micropython firmware/sim/simboard.py TRACE [options]
#
# TRACE is a chip motion trace (hipcheck.motion.chip_trace); the emulated IMU (--chip) plays it into its FIFO, the
# emulated motor (machine.PWM) records every duty change, and the link is stdio (COBS + CRC frames on stdout,
# commands on stdin). Streaming starts at boot. hipcheck.links.simboard on the host drives this; see firmware/README.md,
# "Sim board".
#
# Time: by default virtual and as fast as the CPU and the host allow: each sampling step advances the sim clock by
# one interval, but only while the link keeps up (the clock holds while packets wait), so nothing is lost however
# slowly the host reads. --realtime follows the wall clock instead. After --seconds of device time sampling pauses;
# the firmware keeps answering commands until stdin ends, then writes --record (JSON: motor events, link and app
# counters, allocation per sample) and exits. --log FILE keeps the session log (store.py) in FILE, --profile FILE
# the uploaded calibration profile; --no-alerts starts with every on-device alert disabled. --link serial runs
# link_serial.Link on the same stdin/stdout instead of link_stdio (the USB-serial transport itself, e.g. with both
# streams on a pty master so that the host talks to it through the slave tty; then the run also ends when the
# host closes the tty, a hang-up on stdin). The link's counters go into the record either way.
#
# --link ble runs the firmware's own BLE transport (link_ble.LinkBle, as main builds it for BLE boards) on the
# emulated stack of sim/bluetooth.py, bridged: stdin is the stack's line script (what a central does: connect,
# mtu, subscribe, write, disconnect, free, ...) and its binary record (what the firmware puts on the air: GATT
# layout, advertising, notifications) is streamed to --ble-record PATH (default '-': stdout). The run ends when
# stdin does. It implies --realtime: a virtual clock makes no sense against a real-time radio on the other end.
# --bonds FILE keeps the BLE bonds in FILE (the emulated flash: a reboot with the same file keeps them; default: in
# RAM, a first power-on every time); --pair opens the pairing window at boot (main.run(pair=True), as over USB);
# --pair-window-s S sets how long the window stays open; --press-button-s S presses the board's button (held
# 1.5 s) S seconds after boot.
#
# --t0-us N starts the device clock at N µs (sampling.DeviceClock.start_at: a board up for a while, e.g. just below
# 2^30 µs, where a 32-bit port's small ints end, or 2^32, where the wire's u32 wraps); the sim clock the emulated
# chip runs on still starts at 0, and --seconds counts from there. --check-small-ints reads, between steps, every
# int held by the clock, the sampling step, the ring and the sending parts, and puts each one's largest magnitude
# in the record ("small_ints": |v|, or -v - 1 for a negative v: a 32-bit port's small ints need it below 2^30).
#
# --radio PATH (stdio and serial links; e.g. /dev/fd/N, a pipe the host passes): the radio between host and sensor.
# Each byte read there is the connection's new state as the sensor's BLE stack would report it: b"d" the host is
# gone (out of range: the supervision timeout), b"u" a host connected again. In between the link reads not
# connected to the app (it stops the motor, a stand-by alert detector takes over, nothing is sent) while the
# stream itself stays open; without --radio the stream's end is the only disconnect.
import json
import sys
import time
from array import array

if ".frozen" not in sys.path:
    sys.path.append(".frozen")  # MICROPYPATH replaces the default path, which holds the frozen asyncio
import asyncio  # noqa: E402
import machine

CHIPS = {  # name: (emulator module, class, WHO_AM_I, driver module, I2C address)
    "LSM6DSOX": ("emu_lsm6ds", "Lsm6dsEmu", 0x6C, "imu_lsm6ds", 0x6A),
    "LSM6DS3TR-C": ("emu_lsm6ds", "Lsm6dsEmu", 0x6A, "imu_lsm6ds", 0x6A),
    "MPU-6050": ("emu_mpu6050", "MpuEmu", 0x68, "imu_mpu6050", 0x68),
    "MPU-6886": ("emu_mpu6050", "MpuEmu", 0x19, "imu_mpu6050", 0x68),
}
USAGE = ("usage: simboard.py TRACE [--chip LSM6DSOX|LSM6DS3TR-C|MPU-6050|MPU-6886] [--rate HZ] [--seconds S] "
         "[--realtime] [--interval-ms MS] [--record FILE.json] [--log FILE] [--profile FILE] [--no-autostart] "
         "[--no-alerts] [--link stdio|serial|ble] [--mtu N] [--ble-record PATH|-] [--bonds FILE] [--pair] "
         "[--pair-window-s S] [--press-button-s S] [--radio PATH] [--t0-us N] [--check-small-ints]")

_pwms = []
_MOTOR_EVENTS = 8192  # duty changes kept per PWM (a 60 s run of alerts makes a few hundred)


class _RecordingPWM(machine.PWM):
    # every PWM the firmware makes is kept, so that the motor record can be written at the end; each event also
    # gets the wall-clock time, since patterns play in real time while the sim clock may run faster. The events go
    # into preallocated arrays, not machine.PWM's list of tuples: an alert starts its pattern inside the measured
    # sampling step, and the emulator's own allocation would count as the firmware's
    def __init__(self, *args, **kw):
        self.n_events = 0
        self._rec = [array("q", bytes(8 * _MOTOR_EVENTS)) for _ in range(4)]  # sim t_us, duty, freq, wall t_us
        super().__init__(*args, **kw)
        _pwms.append(self)

    def _log(self):
        k = self.n_events
        if k < _MOTOR_EVENTS:
            r = self._rec
            r[0][k] = machine.clock.ticks_us()
            r[1][k] = self._duty
            r[2][k] = self._freq
            r[3][k] = time.ticks_diff(time.ticks_us(), _T0_US)
        self.n_events = k + 1

    def duty_u16(self, value=None):
        # as machine.PWM's (a change is logged, and the first setting), with the count of events kept here
        if value is None:
            return self._duty
        if not 0 <= value <= 65535:
            raise ValueError("duty_u16 must be 0..65535")
        if value != self._duty or not self.n_events:
            self._duty = value
            self._log()

    def record(self):
        """[[t_sim_us, duty_u16, freq, t_wall_us], ...]: the events kept."""
        r = self._rec
        return [[r[0][k], r[1][k], r[2][k], r[3][k]] for k in range(min(self.n_events, _MOTOR_EVENTS))]


_T0_US = time.ticks_us()


def _err(msg):
    sys.stderr.write("simboard: %s\n" % msg)


def parse(argv):
    opts = {"trace": None, "chip": "LSM6DSOX", "rate": 100, "seconds": None, "realtime": False, "interval_ms": 20,
            "record": None, "autostart": True, "log": None, "profile": None, "alerts": True, "link": "stdio",
            "mtu": 247, "ble_record": "-", "bonds": None, "pair": False, "pair_window_s": 120,
            "press_button_s": None, "radio": None, "t0_us": 0, "check_small_ints": False}
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("--chip", "--rate", "--seconds", "--interval-ms", "--record", "--log", "--profile", "--link", "--mtu",
                 "--ble-record", "--bonds", "--pair-window-s", "--press-button-s", "--radio", "--t0-us"):
            if i + 1 >= len(argv):
                raise ValueError("%s needs a value\n%s" % (a, USAGE))
            v = argv[i + 1]
            i += 2
            if a == "--chip":
                if v not in CHIPS:
                    raise ValueError("--chip %s: one of %s" % (v, ", ".join(CHIPS)))
                opts["chip"] = v
            elif a == "--rate":
                opts["rate"] = int(v)
            elif a == "--seconds":
                opts["seconds"] = float(v)
            elif a == "--interval-ms":
                opts["interval_ms"] = int(v)
            elif a == "--t0-us":
                opts["t0_us"] = int(v)
            elif a == "--pair-window-s":
                opts["pair_window_s"] = int(v)
            elif a == "--press-button-s":
                opts["press_button_s"] = float(v)
            elif a == "--mtu":
                opts["mtu"] = int(v)  # pack DATA as on a BLE connection with this ATT MTU (23: the compact form)
            elif a == "--link":
                if v not in ("stdio", "serial", "ble"):
                    raise ValueError("--link %s: one of stdio, serial, ble" % v)
                opts["link"] = v
            else:
                opts[a[2:].replace("-", "_")] = v
            continue
        if a == "--realtime":
            opts["realtime"] = True
        elif a == "--pair":
            opts["pair"] = True
        elif a == "--no-autostart":
            opts["autostart"] = False
        elif a == "--no-alerts":
            opts["alerts"] = False
        elif a == "--check-small-ints":
            opts["check_small_ints"] = True
        elif a.startswith("-"):
            raise ValueError("unknown option %s\n%s" % (a, USAGE))
        elif opts["trace"] is None:
            opts["trace"] = a
        else:
            raise ValueError("one trace only\n%s" % USAGE)
        i += 1
    if opts["trace"] is None:
        raise ValueError(USAGE)
    if opts["link"] == "ble":
        opts["realtime"] = True
    return opts


def sim_board(chip):
    """boards/sim.py with the driver and address of the emulated chip (the trace decides the chip)."""
    import config
    board = config.board({"board": "sim"})
    board.IMU = CHIPS[chip][3]
    board.IMU_ADDRESS = CHIPS[chip][4]
    return board


def battery_option(argv):
    """--battery MAH:PCT[:MA]: the emulated cell (machine.battery: capacity, state of charge at boot, the board's own
    current in mA; default 350 mAh, 100 %, 35.9 mA); --battery-record PATH: the cell at the end, as JSON (its
    voltage, charge, what the motor took), written as the process exits. The other arguments are returned."""
    rest = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("--battery", "--battery-record"):
            if i + 1 >= len(argv):
                raise ValueError("%s needs a value" % a)
            v = argv[i + 1]
            i += 2
            if a == "--battery-record":
                sys.atexit(lambda path=v: _write_json(path, machine.battery.summary()))
                continue
            f = [float(x) for x in v.split(":")]
            if len(f) not in (2, 3) or f[0] <= 0 or not 0 <= f[1] <= 100:
                raise ValueError("--battery %s: MAH:PCT[:MA], a capacity > 0 and a charge of 0-100 %%" % v)
            b = machine.battery
            b.configure(**({"base_ua": int(f[2] * 1000)} if len(f) == 3 else {}))
            b.capacity_uc = int(f[0] * 3600000)  # µC: a fraction of a mAh (a cell a test empties) is kept
            b.charge_uc = int(f[0] * 36000 * f[1])
            continue
        rest.append(a)
        i += 1
    return rest


def _write_json(path, obj):
    with open(path, "w") as f:
        f.write(json.dumps(obj))


def make_link(kind, mtu=247, chip="LSM6DSOX", ble_record="-", bonds=None, pair_window_s=120):
    """The link on this process's stdin/stdout: link_stdio, or link_serial itself (the streams are already set up
    by whoever started the process, e.g. a pty master: raw=False leaves their terminal settings alone), or
    link_ble on the bridged emulated stack (script on stdin, record to ble_record; bonds: the bonds file)."""
    if kind == "ble":
        import bluetooth
        import link_ble
        from app import FW_VERSION
        from bonds import Bonds
        rec = sys.stdout.buffer if ble_record == "-" else ble_record
        bluetooth.sim.configure(script="-", record=rec)
        # as main._link builds it for a BLE board; mtu: what the firmware offers in the MTU exchange
        return link_ble.LinkBle(fw_version="%d.%d.%d" % FW_VERSION, board="sim", imu=chip, mtu=mtu,
                                bonds=Bonds(bonds, pair_window_s, log=_err), log=_err)
    if kind == "serial":
        import link_serial
        return link_serial.Link(inp=sys.stdin.buffer, out=sys.stdout.buffer, mtu=mtu, raw=False)
    import link_stdio
    return link_stdio.Link(mtu)


def link_stats(link, kind):
    d = link.stats()
    if kind == "ble":  # and the emulated stack's own counters
        import bluetooth
        s = bluetooth.sim
        d["stack"] = {"notifies": s.notifies, "enomem": s.enomem, "truncated": s.truncated,
                      "irq_errors": s.irq_errors}
    return d


class RadioLink:
    """--radio: a stdio or serial link behind a radio that can lose the host. ``connected`` is the app's view (the
    stream open and the radio up); the stream's own state (``stream.connected``) ends the run."""

    def __init__(self, stream):
        self.stream = stream
        self.radio_up = True

    @property
    def connected(self):
        return self.radio_up and self.stream.connected

    @property
    def mtu(self):
        return self.stream.mtu

    @property
    def on_packet(self):
        return self.stream.on_packet

    @on_packet.setter
    def on_packet(self, callback):
        self.stream.on_packet = callback

    def send(self, buf, n):
        return self.radio_up and self.stream.send(buf, n)

    send_control = send
    send_log = send

    def run(self):
        return self.stream.run()

    def stats(self):
        return self.stream.stats()


async def radio(path, link):
    """Follow the radio's state bytes at PATH (see --radio) until the host closes its end."""
    import select
    f = open(path, "rb")
    poll = select.poll()
    poll.register(f, select.POLLIN)
    while True:
        for ev in poll.ipoll(0):
            if ev[1] & select.POLLIN:
                b = f.read(1)
                if not b:
                    return
                if b == b"d" or b == b"u":
                    link.radio_up = b == b"u"
            elif ev[1] & (select.POLLHUP | select.POLLERR):
                return
        await asyncio.sleep_ms(20)


_CHECKED = ("clock", "sampling", "tx", "ctrl", "backfill", "ring", "session_log")


def check_small_ints(app, seen):
    """--check-small-ints: the largest magnitude of every int attribute (properties included) of the parts that keep
    time and run per sample, into seen["part.name"]; -v - 1 for a negative v, so that < 2^30 means a small int on a
    32-bit port. Allocates (dir, the keys): call it between steps, outside the measured step."""
    for part in _CHECKED:
        obj = getattr(app, part, None)
        if obj is None:
            continue
        for name in dir(obj):
            if name.startswith("__"):
                continue
            v = getattr(obj, name, None)
            if type(v) is int:
                key = part + "." + name
                m = v if v >= 0 else -v - 1
                if m > seen.get(key, -1):
                    seen[key] = m


def write_record(path, o, app, link, emu, wall_s, small_ints):
    """--record: the run's JSON (motor events, app and link counters, speed, the device clock at the end)."""
    rec = {"chip": o["chip"], "rate_hz": app.rate_hz, "period_us": app.period_us,
           "sim_s": machine.clock.ticks_us() / 1e6, "wall_s": wall_s,
           "samples_per_s": app.samples / wall_s if wall_s > 0 else None,
           "app": app.stats(), "link": link_stats(link, o["link"]), "imu_samples_produced": emu.samples_produced,
           "motor": [e for p in _pwms for e in p.record()],
           "motor_events_dropped": sum(max(0, p.n_events - _MOTOR_EVENTS) for p in _pwms),
           "clock": {"tick": app.clock.tick, "wraps": app.clock.wraps}}
    if small_ints is not None:
        rec["small_ints"] = small_ints
    with open(path, "w") as f:
        f.write(json.dumps(rec))


async def press_button(link, after_s):
    """--press-button-s: the board's button (the pairing window's pin) held 1.5 s, after_s seconds after boot."""
    await asyncio.sleep_ms(int(after_s * 1000))
    button = link.window.button
    button.sim_drive(0)
    await asyncio.sleep_ms(1500)
    button.sim_drive(1)


def main(argv):
    try:
        argv = battery_option(argv)
        o = parse(argv)
    except ValueError as e:
        _err(str(e))
        return 2
    machine.PWM = _RecordingPWM
    clock = machine.clock
    if o["realtime"]:
        clock.real()
    else:
        clock.virtual(0)
    mod, cls, who, _, address = CHIPS[o["chip"]]
    from emu_common import MotionTrace
    emu_mod = __import__(mod)
    try:
        trace = MotionTrace(o["trace"])
        emu = getattr(emu_mod, cls)(trace, chip=who, address=address)
    except (OSError, ValueError) as e:
        _err("trace %s: %s" % (o["trace"], e))
        return 2
    machine.detach()
    machine.attach(emu)

    import main as firmware
    link = stream = make_link(o["link"], o["mtu"], o["chip"], o["ble_record"], o["bonds"], o["pair_window_s"])
    if o["radio"] is not None and o["link"] != "ble":
        link = RadioLink(stream)
    end_us = None if o["seconds"] is None else int(o["seconds"] * 1000000)
    state = {"app": None, "wall0": time.ticks_ms(), "wall_end": None}

    small_ints = {} if o["check_small_ints"] else None

    async def pace(ms):
        app = state["app"]
        if small_ints is not None:
            check_small_ints(app, small_ints)
        if end_us is not None and clock.ticks_us() >= end_us:
            if state["wall_end"] is None:
                state["wall_end"] = time.ticks_ms()
                app.paused = True
            await asyncio.sleep_ms(ms)
            return
        if o["realtime"]:
            await asyncio.sleep_ms(ms)
            return
        while app.running and app.backlog() > 64:  # the host is behind: hold the clock until it reads
            app.pump()  # a BACKFILL answer counts in the backlog too: keep sending while the clock holds
            await asyncio.sleep_ms(1)
        dt = ms * 1000
        if end_us is not None and clock.ticks_us() + dt > end_us:
            dt = end_us - clock.ticks_us()
        clock.advance_us(dt)
        await asyncio.sleep_ms(0)

    hangup = None
    if o["link"] == "serial":
        # a pty or tty never reads end of file: its other side closing (the host closing the port) is a hang-up
        import select
        hangup = select.poll()
        hangup.register(sys.stdin.buffer, select.POLLIN)

    def hung_up():
        if hangup is not None:
            for ev in hangup.ipoll(0):
                return ev[1] & (select.POLLHUP | select.POLLERR)
        return False

    async def watch():
        if o["press_button_s"] is not None:
            asyncio.create_task(press_button(state["app"].link, o["press_button_s"]))
        if o["link"] == "ble":
            import bluetooth
            await bluetooth.sim.finished.wait()  # the bridge closed stdin (the script's end)
        else:
            while stream.connected and not hung_up():
                await asyncio.sleep_ms(20)
        state["app"].stop()

    import config
    try:
        cfg = config.check({"board": "sim", "link": o["link"], "rate_hz": o["rate"], "autostart": o["autostart"],
                            "log_path": o["log"], "profile_path": o["profile"],
                            "alert": {} if o["alerts"] else {"enable": []}}, "simboard options")
        app = firmware.build(cfg=cfg, board=sim_board(o["chip"]), link=link, ticks_us=clock.ticks_us, pace=pace,
                             interval_ms=o["interval_ms"], measure_alloc=True, log=_err, pair=o["pair"])
    except (OSError, ValueError) as e:
        _err("the firmware did not start: %s" % e)
        return 1
    if o["t0_us"]:
        app.clock.start_at(o["t0_us"])
    state["app"] = app
    asyncio.run(app.run(watch(), *(() if link is stream else (radio(o["radio"], link),))))
    app.pump()
    wall_end = state["wall_end"] if state["wall_end"] is not None else time.ticks_ms()
    wall_s = time.ticks_diff(wall_end, state["wall0"]) / 1000
    if o["record"]:
        write_record(o["record"], o, app, link, emu, wall_s, small_ints)
    return 0


try:
    _rc = main(sys.argv[1:])
except Exception as _e:  # stdout carries frames only: the traceback goes to stderr
    sys.print_exception(_e, sys.stderr)
    _rc = 1
sys.exit(_rc)
