"""The device's behaviour over any link. main.py builds the role objects and hands them to ``App``, which puts the
firmware's own parts together and runs them:

    sampling.Sampling        each step (every interval_ms): drain the IMU FIFO, calibrate, fuse, ring, alert, log
    transmit.Transmit        after every step and command: ACK/EVENT, live DATA, BACKFILL answers, LOG_CHUNKs
    commands.Commands        every COMMAND -> exactly one ACK
    session_log.SessionLog   the session log on flash: written while running, listed, downloaded, erased
    cal_profile              the calibration profile: uploaded, kept, applied to every sample

The sampling step and the pump allocate nothing per sample on a 64-bit port (``alloc_per_sample`` measures it when
``measure_alloc`` is on); commands, events and log transfers may allocate (they are rare).
"""

import asyncio
import gc

from micropython import const

import cal_profile
import packet
from battery import Monitor
from commands import Commands
from sampling import DeviceClock, Sampling
from session_log import SessionLog
from transmit import Backfill, ControlQueue, Transmit

FW_VERSION = (0, 5, 0)  # 0.5: INFO tells the sensor's name (name_id), the board reads its battery

# INFO state_flags (hipcheck.protocol.StateFlag)
_ST_STREAMING = const(1)
_ST_LOGGING = const(2)
_ST_PROFILE = const(4)
_ST_ALERTS = const(8)


class App:
    """The sensor's behaviour over any link.

    imu: a driver (``read``, ``configure``, ``period_us``, ``lost``, ``imu_id``); link: the link interface
    (firmware/README.md, "Links"); fusion, ring: ``fusion.Fusion``, ``ring.Ring``; haptics, alert, store: optional
    role modules' objects (None: the command answers UNAVAILABLE). ticks_us/ticks_diff: the board clock (default
    ``time``); pace: ``async pace(ms)`` between sampling steps (default ``asyncio.sleep_ms``; the sim board
    advances its virtual clock there). battery: () -> (mv, pct), or None (reported as 0, 0); read every
    battery.POLL_MS by a battery.Monitor (BLE Battery Level, LOW_BATTERY). log: a callable
    taking a message (stderr on the sim board), or None. max_latency_ms: see ``transmit.Transmit``.
    """

    def __init__(self, imu, link, fusion, ring, haptics=None, alert=None, store=None, board_id=0, rate_hz=100,
                 interval_ms=20, ticks_us=None, ticks_diff=None, pace=None, battery=None, autostart=False,
                 measure_alloc=False, log=None, profile_path=None, max_latency_ms=0):
        self.imu = imu
        self.link = link
        self.ring = ring
        self.haptics = haptics
        self.alert = alert
        self.store = store
        self.board_id = board_id
        self.fw_version = FW_VERSION
        self.interval_ms = interval_ms
        self.battery = battery
        self.log = log
        self.profile_path = profile_path
        self.profile = None  # the 79-byte profile in use
        self._pace = pace if pace is not None else asyncio.sleep_ms
        self.running = False
        clock = self.clock = DeviceClock(ticks_us, ticks_diff)
        self.now_us = clock.now_us
        self.session_log = SessionLog(store, clock) if store is not None else None
        self.ctrl = ControlQueue(ring, clock, self.session_log, log)
        self.backfill = Backfill(ring)
        self.sampling = Sampling(imu, fusion, ring, clock, self.ctrl, self.backfill, alert, haptics, self.session_log)
        self.tx = Transmit(link, ring, self.ctrl, self.backfill, self.sampling, clock, self.session_log,
                           max_latency_ms, streaming=autostart)
        self.commands = Commands(self)
        self.measure_alloc = measure_alloc
        self.alloc_bytes = 0
        self.alloc_samples = 0
        link.on_packet = self.commands.on_packet
        # the battery every battery.POLL_MS of sampling: BLE Battery Level, LOW_BATTERY once on the way down
        self.battery_monitor = None if battery is None else Monitor(battery, self._low_battery,
                                                                     getattr(link, "set_battery", None))
        self.set_rate(rate_hz)

    # ------------------------------------------------------------------------------------------------ the parts
    def set_rate(self, rate_hz):
        """(Re)start the IMU at rate_hz; raises ValueError for a rate the chip cannot make."""
        self.sampling.configure(rate_hz)

    def step(self):
        """One sampling step (``Sampling.step``): the samples taken."""
        return self.sampling.step()

    def pump(self):
        """Send what waits (``Transmit.pump``)."""
        self.tx.pump()

    def backlog(self):
        """Samples and packets waiting for the link (the sim board holds its clock while this is large)."""
        return self.tx.backlog()

    def apply_profile(self, blob):
        """Use a 79-byte calibration profile (docs/protocol.md): biases and the acc matrix on every sample from
        now on, the mounting rotation for the alert detector. None: back to raw samples."""
        if blob is None:
            cal = None
            self.profile = None
        else:
            cal, q_sensor_to_pelvis = cal_profile.parse(blob)
            self.profile = bytes(blob)
            if self.alert is not None and hasattr(self.alert, "set_mounting"):
                self.alert.set_mounting(q_sensor_to_pelvis)
        self.sampling.set_calibration(cal)

    def _low_battery(self, mv, pct):
        self.ctrl.event(packet.EV_LOW_BATTERY, mv, pct)
        if self.log:
            self.log("battery low: %d mV, %d %%" % (mv, pct))

    def state_flags(self):
        """INFO state_flags: streaming, logging, profile in use, alerts on."""
        s = 0
        if self.tx.streaming:
            s |= _ST_STREAMING
        if self.session_log is not None and self.session_log.active:
            s |= _ST_LOGGING
        if self.profile is not None:
            s |= _ST_PROFILE
        if self.alert is not None and self.alert.thresholds and self.alert.thresholds[0] & 7:
            s |= _ST_ALERTS  # enabled, running or in stand-by
        return s

    @property
    def rate_hz(self):
        return self.sampling.rate_hz

    @property
    def period_us(self):
        return self.sampling.period_us

    @property
    def samples(self):
        return self.sampling.samples

    @property
    def paused(self):
        """Sampling paused (the sim board at the end of its trace); commands and sending go on."""
        return self.tx.paused

    @paused.setter
    def paused(self, value):
        self.tx.paused = value

    # --------------------------------------------------------------------------------------------------- tasks
    def link_lost(self):
        """The host went (the link's ``connected`` fell): the motor stops whatever it plays (a pattern a host asked
        for must not outlive the host), a pending LOG_ERASE confirmation is forgotten, and an alert detector in
        stand-by (SET_THRESHOLDS bit 3) takes over the alerts."""
        if self.haptics is not None:
            self.haptics.stop()
        self.commands.on_link_lost()
        self._tell_alert(False)

    def link_back(self):
        """A host is connected again: an alert detector in stand-by hands the alerts back to it."""
        self._tell_alert(True)

    def _tell_alert(self, connected):
        if self.alert is not None and hasattr(self.alert, "host_connected"):
            if self.log and self.alert.standby:
                self.log("host %s: the sensor's own alerts %s" % (("back", "off") if connected else ("gone", "on")))
            self.alert.host_connected(connected)

    async def sampler(self):
        """Sampling task: a step and a pump every interval_ms, until stop(); ``link_lost`` when the host goes."""
        pace = self._pace
        measure = self.measure_alloc
        tx = self.tx
        link = self.link
        was_connected = link.connected
        self._tell_alert(was_connected)
        step = self.sampling.step
        pump = tx.pump
        battery = self.battery_monitor
        warm = 50
        while self.running:
            await pace(self.interval_ms)
            if link.connected != was_connected:
                was_connected = not was_connected
                if not was_connected:
                    self.link_lost()
                else:
                    self.link_back()
            if tx.paused:
                pump()
            elif measure:
                a = gc.mem_alloc()
                n = step()
                pump()
                d = gc.mem_alloc() - a
                if warm:
                    warm -= 1  # the first reads set up the drivers' buffers: not counted
                else:
                    if d > 0:  # < 0: a collection ran in between, nothing to learn from this step
                        self.alloc_bytes += d
                    self.alloc_samples += n
            else:
                step()
                pump()
            if battery is not None:  # a reading every battery.POLL_MS; outside the measured step
                battery.tick(self.interval_ms)

    async def run(self, *tasks):
        """Run the link, the sampler and any extra tasks until stop()."""
        self.running = True
        if self.session_log is not None:
            self.session_log.begin(self.clock.seconds())
        t_link = asyncio.create_task(self.link.run())
        own = [asyncio.create_task(self.sampler())]
        for t in tasks:
            own.append(asyncio.create_task(t))
        try:
            while self.running:
                await asyncio.sleep_ms(50)
        finally:
            self.running = False
            for t in own:
                t.cancel()
            t_link.cancel()
            if self.haptics is not None:
                self.haptics.stop()
            if self.session_log is not None:
                self.session_log.end()

    def stop(self):
        self.running = False

    def stats(self):
        s = self.sampling
        return {"samples": s.samples, "next_seq": self.ring.next_seq, "lost_imu": s.lost_imu,
                "lost_tx": self.ctrl.lost_tx, "alerts": s.alerts, "ctrl_dropped": self.ctrl.dropped,
                "alloc_bytes": self.alloc_bytes, "alloc_samples": self.alloc_samples,
                "alloc_per_sample": self.alloc_bytes / self.alloc_samples if self.alloc_samples else None,
                "commands_limited": self.commands.limited, "backfill_sent": self.backfill.sent,
                "backfill_paced": self.backfill.paced,
                "battery": None if self.battery_monitor is None else {
                    "mv": self.battery_monitor.mv, "pct": self.battery_monitor.pct,
                    "events": self.battery_monitor.events, "readings": self.battery_monitor.readings},
                "haptics": None if self.haptics is None else {
                    "capped": self.haptics.capped, "budget_cuts": self.haptics.budget_cuts,
                    "on_ms": self.haptics.on_ms}}
