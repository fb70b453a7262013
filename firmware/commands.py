"""Commands: every COMMAND the link delivers gets exactly one ACK.

Field checks (UNKNOWN_COMMAND, BAD_LENGTH, TOO_LONG, OUT_OF_RANGE, UNSUPPORTED_VERSION) come from
``packet.decode_command``; state-dependent answers (UNAVAILABLE, CRC_ERROR, STORAGE_ERROR, BUSY) from here and the
role objects (haptics, alert, session log, calibration profile). A command that raises is answered BUSY and
logged: a bug must not stop the sensor. Commands may allocate (they are rare).
"""

from micropython import const

import cal_profile
import packet
from packet import (BACKFILL, CAL_UPLOAD, INFO, LOG_DOWNLOAD, LOG_ERASE, LOG_LIST, SET_RATE, SET_THRESHOLDS, START,
                    STOP, TIME_SYNC, VIBRATE)

_U32 = const(0xFFFFFFFF)


class Commands:
    """The command handler of an ``app.App`` (its parts: ctrl, tx, sampling, ring, backfill, session_log, haptics,
    alert, imu). ``on_packet`` is the link's callback."""

    def __init__(self, app):
        self.app = app
        self._upload = cal_profile.Upload()

    def on_packet(self, buf, n):
        """One complete incoming packet (a COMMAND) -> exactly one ACK, then a pump."""
        app = self.app
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
                return
            ack(op, token, app.haptics.play(f[0], f[1], f[2], f[3]))
        elif op == SET_THRESHOLDS:
            if app.alert is None:
                ack(op, token, packet.UNAVAILABLE)
                return
            ack(op, token, app.alert.set_thresholds(*f))
        elif op == TIME_SYNC:
            now = app.now_us()
            s = app.sampling
            t_next = s.t_last + s.period_us if s.t_last >= 0 else now
            ack(op, token, ok, f[0], now & _U32, app.ring.next_seq, t_next & _U32)
        elif op == INFO:
            self._info(token)
        elif op == BACKFILL:
            r = app.backfill.start(f[0], f[1])
            if r is None:
                ack(op, token, packet.UNAVAILABLE)
                return
            ack(op, token, ok, r[0], r[1])
        elif op in (LOG_LIST, LOG_DOWNLOAD, LOG_ERASE):
            self._log_command(op, token, f)
        elif op == CAL_UPLOAD:
            self._cal_upload(token, f)

    def _info(self, token):
        app = self.app
        mv, pct = app.battery() if app.battery is not None else (0, 0)
        fw = app.fw_version
        app.ctrl.ack(INFO, token, packet.OK, packet.PROTOCOL_VERSION, fw[0], fw[1], fw[2], app.board_id,
                     app.imu.imu_id, app.rate_hz, mv, pct, app.state_flags())

    def _log_command(self, op, token, f):
        log = self.app.session_log
        if log is None:
            r = (packet.UNAVAILABLE,)
        elif op == LOG_LIST:
            r = log.list(f[0])
        elif op == LOG_DOWNLOAD:
            r = log.download(f[0], f[1])
        else:
            r = log.erase(f[0])
        self.app.ctrl.ack(op, token, *r)

    def _cal_upload(self, token, f):
        app = self.app
        status, blob = self._upload.add(f[0], f[1], f[2])
        if blob is not None and app.profile_path is not None:
            try:
                cal_profile.save(app.profile_path, blob)
            except OSError:
                status = packet.STORAGE_ERROR
        if blob is not None and status == packet.OK:
            app.apply_profile(blob)
        app.ctrl.ack(CAL_UPLOAD, token, status)
