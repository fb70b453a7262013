"""Commands: every COMMAND the link delivers gets exactly one ACK.

Field checks (UNKNOWN_COMMAND, BAD_LENGTH, TOO_LONG, OUT_OF_RANGE, UNSUPPORTED_VERSION) come from
``packet.decode_command``; state-dependent answers (UNAVAILABLE, CRC_ERROR, STORAGE_ERROR, BUSY) from here and the
role objects (haptics, alert, session log, calibration profile). A command that raises is answered BUSY and
logged: a bug must not stop the sensor. Commands may allocate (they are rare).

Limits, whatever the host (docs/protocol.md, "Motor safety" and "Bounded answers"): at most COMMAND_BURST commands
at once and COMMAND_PER_S a second (the others: BUSY, before anything is decoded); VIBRATE at most VIBRATE_BURST at
once and VIBRATE_PER_S a second (BUSY); LOG_ERASE only with the token of an ACK to the same request made less than
ERASE_CONFIRM_MS earlier on the same connection (``on_link_lost`` forgets it).
"""

import time

from micropython import const

import cal_profile
import ident
import packet
from limits import TokenBucket
from packet import (BACKFILL, CAL_UPLOAD, INFO, LOG_DOWNLOAD, LOG_ERASE, LOG_LIST, SET_RATE, SET_THRESHOLDS, START,
                    STOP, TIME_SYNC, VIBRATE)
from sampling import tick_add

_ALL_SESSIONS = const(0xFFFF)
COMMAND_BURST = const(40)
COMMAND_PER_S = const(40)  # a host sends a few a second (pings, an alert's VIBRATE, BACKFILL per hole): 10x that
VIBRATE_BURST = const(4)
VIBRATE_PER_S = const(2)  # an alert a stride is ~1 a second; a new pattern replaces the last, faster is not felt
ERASE_CONFIRM_MS = const(10000)


class Commands:
    """The command handler of an ``app.App`` (its parts: ctrl, tx, sampling, ring, backfill, session_log, haptics,
    alert, imu). ``on_packet`` is the link's callback."""

    def __init__(self, app, ticks_ms=None):
        self.app = app
        self._ticks_ms = ticks_ms if ticks_ms is not None else time.ticks_ms
        self._upload = cal_profile.Upload()
        self._rate = TokenBucket(COMMAND_BURST, COMMAND_PER_S, self._ticks_ms)
        self._vibrate = TokenBucket(VIBRATE_BURST, VIBRATE_PER_S, self._ticks_ms)
        self._erase = None  # LOG_ERASE awaiting its confirmation: (session_id, token, deadline_ms)
        self.limited = 0  # commands answered BUSY by a rate limit

    def on_link_lost(self):
        """The connection went: a LOG_ERASE confirmation must come on the connection that asked, and a download
        under way ends (the next host resumes from its own verified block)."""
        self._erase = None
        if self.app.session_log is not None:
            self.app.session_log.cancel_download()

    def on_packet(self, buf, n):
        """One complete incoming packet (a COMMAND) -> exactly one ACK, then a pump."""
        app = self.app
        if not self._rate.take():
            self.limited += 1
            app.ctrl.ack(buf[1] if n > 1 else 0, buf[2] if n > 2 else 0, packet.BUSY)
            app.pump()
            return
        cmd = bytes(buf[:n])
        status, opcode, token, f = packet.decode_command(cmd)
        if status == packet.OK:
            try:
                self._command(opcode, token, f)
            except Exception as e:  # a bug must not stop the sensor: answer, log, go on
                if app.log:
                    app.log("command 0x%02x failed: %r" % (opcode, e))
                app.ctrl.ack(opcode, token, packet.BUSY)
        else:
            app.ctrl.ack(opcode, token, status)
        app.pump()

    def _command(self, op, token, f):
        app = self.app
        ack = app.ctrl.ack
        ok = packet.OK
        if op == START:
            if not app.tx.streaming:
                app.tx.discard()  # live starts with the next sample
            app.tx.streaming = True
            ack(op, token, ok)
        elif op == STOP:
            app.tx.streaming = False
            ack(op, token, ok)
        elif op == SET_RATE:
            try:
                app.set_rate(f[0])
            except ValueError:
                ack(op, token, packet.OUT_OF_RANGE)  # a rate this chip cannot make (MPU-6886 at 400 Hz)
                return
            ack(op, token, ok)
        elif op == VIBRATE:
            if app.haptics is None:
                ack(op, token, packet.UNAVAILABLE)
            elif not self._vibrate.take():
                self.limited += 1
                ack(op, token, packet.BUSY)
            else:
                ack(op, token, app.haptics.play(f[0], f[1], f[2], f[3]))
        elif op == SET_THRESHOLDS:
            if app.alert is None:
                ack(op, token, packet.UNAVAILABLE)
                return
            ack(op, token, app.alert.set_thresholds(*f))
        elif op == TIME_SYNC:
            now = app.now_us()  # ticks (sampling.DeviceClock): the u32 by clock.wire
            s = app.sampling
            t_next = tick_add(s.t_last, s.period_us) if s.t_last >= 0 else now
            ack(op, token, ok, f[0], app.clock.wire(now), app.ring.next_seq, app.clock.wire(t_next))
        elif op == INFO:
            self._info(token, len(f) > 0 and f[0] == 1)
        elif op == BACKFILL:
            r = app.backfill.start(f[0], f[1])
            if r is None:
                ack(op, token, packet.UNAVAILABLE)
                return
            ack(op, token, ok, r[0], r[1])
        elif op == LOG_ERASE:
            self._log_erase(token, f[0], f[1])
        elif op in (LOG_LIST, LOG_DOWNLOAD):
            self._log_command(op, token, f)
        elif op == CAL_UPLOAD:
            self._cal_upload(token, f)

    def _info(self, token, with_id):
        # with_id: a host that reads name_id (the sensor's identity: ident.name_id); an older host gets the short form
        app = self.app
        mv, pct = app.battery() if app.battery is not None else (0, 0)
        fw = app.fw_version
        fields = (packet.PROTOCOL_VERSION, fw[0], fw[1], fw[2], app.board_id, app.imu.imu_id, app.rate_hz, mv, pct,
                  app.state_flags())
        if with_id:
            fields += (ident.name_id(),)
        app.ctrl.ack(INFO, token, packet.OK, *fields)

    def _log_command(self, op, token, f):
        log = self.app.session_log
        if log is None:
            r = (packet.UNAVAILABLE,)
        elif op == LOG_LIST:
            r = log.list(f[0], len(f) > 1 and f[1] == 1)  # with_flags: a host that reads the entry's flags
        else:
            r = log.download(f[0], f[1])
        self.app.ctrl.ack(op, token, *r)

    def _log_erase(self, token, session_id, confirm):
        # two steps: confirm 0 asks and gets a token; the same request with that token erases
        log = self.app.session_log
        ack = self.app.ctrl.ack
        now = self._ticks_ms()
        pending = self._erase
        self._erase = None
        if log is None or (session_id != _ALL_SESSIONS and log.store.n_blocks(session_id) < 0):
            ack(LOG_ERASE, token, packet.UNAVAILABLE)
        elif confirm == 0:
            t = _random_u32()
            self._erase = (session_id, t, time.ticks_add(now, ERASE_CONFIRM_MS))
            ack(LOG_ERASE, token, packet.OK, t)
        elif pending is None or pending[:2] != (session_id, confirm) or time.ticks_diff(pending[2], now) < 0:
            ack(LOG_ERASE, token, packet.OUT_OF_RANGE)  # no such request, another session, or too late
        else:
            r = log.erase(session_id)
            ack(LOG_ERASE, token, r[0], 0)

    def _cal_upload(self, token, f):
        app = self.app
        status, blob = self._upload.add(f[0], f[1], f[2])
        if status != packet.OK and self._upload.reason and app.log:
            app.log("calibration profile refused: " + self._upload.reason)
        if blob is not None and app.profile_path is not None:
            try:
                cal_profile.save(app.profile_path, blob)
            except OSError:
                status = packet.STORAGE_ERROR
        if blob is not None and status == packet.OK:
            app.apply_profile(blob)
        app.ctrl.ack(CAL_UPLOAD, token, status)


def _random_u32():
    # a confirmation token nobody can guess from the last one: the port's hardware RNG where it has one
    try:
        import os
        b = os.urandom(4)
        v = b[0] | (b[1] << 8) | (b[2] << 16) | (b[3] << 24)
    except (ImportError, AttributeError):
        import random
        v = random.getrandbits(32)
    return v if v else 1
