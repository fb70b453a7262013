"""The device's tasks: sampling, sending, commands. main.py builds the parts and hands them to ``App``.

Sampling (``step``, every ``interval_ms``): drain the IMU FIFO (driver ``read``) in batches, apply the calibration
profile, fuse (``fusion``), append to the sample ring (``ring``; it numbers the samples), feed the on-device alert
detector and the session log. Samples the FIFO lost advance the sequence number and are announced by a
BUFFER_OVERRUN event (source IMU_FIFO), as are samples the ring overwrote before they could be sent (TX_RING).
Device time is the board's microsecond clock extended to 32 bits; each sample's time follows the driver's true
``period_us`` from the previous one, re-anchored to the read time when the clocks drift apart.

Sending (``pump``, after every step and every command): control packets first (ACK, EVENT, from a small queue),
then live DATA packets (as many samples per packet as the link's MTU allows, from the ring), then a BACKFILL answer,
then LOG_CHUNKs. ``link.send`` returning False is back-pressure: the packet stays in this module and is tried
again at the next pump; the ring keeps sampling meanwhile.

Commands (``on_packet``): every COMMAND gets exactly one ACK. Field checks come from ``packet.decode_command``;
state-dependent answers (UNAVAILABLE, CRC_ERROR, STORAGE_ERROR, BUSY) from here.

The sampling step and the pump allocate nothing per sample on a 64-bit port (``alloc_per_sample`` measures it when
``measure_alloc`` is on); commands, events and log transfers may allocate (they are rare).
"""

import struct

import asyncio
import gc
import micropython
from micropython import const

import packet
from packet import (BACKFILL, CAL_UPLOAD, INFO, LOG_DOWNLOAD, LOG_ERASE, LOG_LIST, SET_RATE, SET_THRESHOLDS, START,
                    STOP, TIME_SYNC, VIBRATE)

FW_VERSION = (0, 4, 0)
_U32 = const(0xFFFFFFFF)
_BATCH = const(32)  # samples per driver read (the drivers read bursts of up to 32)
_CTRL_SLOTS = const(16)  # ACK/EVENT packets waiting for the link
_CTRL_LEN = const(20)  # every control packet fits the 20-byte payload of the minimum MTU
_BACKFILL_BURST = const(4)  # backfill packets per pump, so that live data and commands go on meanwhile
_BACKFILL_BURST_COMPACT = const(8)  # at MTU 23 (one sample a packet): 400 samples/s, 4x live at 100 Hz
_LOG_BURST = const(4)

# INFO state_flags (hipcheck.protocol.StateFlag)
_ST_STREAMING = const(1)
_ST_LOGGING = const(2)
_ST_PROFILE = const(4)
_ST_ALERTS = const(8)

# BUFFER_OVERRUN sources
_SRC_IMU_FIFO = const(0)
_SRC_TX_RING = const(1)
_SRC_LOG = const(2)

# Wire scales (docs/protocol.md) for the calibration profile
_GYR_LSB_RAD_S = 2000.0 * 3.141592653589793 / 180.0 / 32768.0
_ACC_LSB_M_S2 = 9.80665 / 2048.0
_CAL_Q = const(13)  # acc_matrix in Q13 (|entries| <= 2: products stay below 2^31 on 32-bit ports)


class App:
    """The sensor's behaviour over any link.

    imu: a driver (``read``, ``configure``, ``period_us``, ``lost``, ``imu_id``); link: the link interface
    (firmware/README.md, "Links"); fusion, ring: ``fusion.Fusion``, ``ring.Ring``; haptics, alert, store: optional
    role modules' objects (None: the command answers UNAVAILABLE). ticks_us/ticks_diff: the board clock (default
    ``time``); pace: ``async pace(ms)`` between sampling steps (default ``asyncio.sleep_ms``; the sim board
    advances its virtual clock there). battery: () -> (mv, pct), or None (reported as 0, 0).
    """

    def __init__(self, imu, link, fusion, ring, haptics=None, alert=None, store=None, board_id=0, rate_hz=100,
                 interval_ms=20, ticks_us=None, ticks_diff=None, pace=None, battery=None, autostart=False,
                 measure_alloc=False, log=None, profile_path=None, max_latency_ms=0):
        import time
        self.imu = imu
        self.link = link
        self.fusion = fusion
        self.ring = ring
        self.haptics = haptics
        self.alert = alert
        self.store = store
        self.board_id = board_id
        self.interval_ms = interval_ms
        self._ticks = ticks_us if ticks_us is not None else time.ticks_us
        self._diff = ticks_diff if ticks_diff is not None else time.ticks_diff
        self._pace = pace if pace is not None else asyncio.sleep_ms
        self._battery = battery
        self._log = log  # a callable taking a message (stderr on the sim board), or None
        self.streaming = autostart
        self.logging = False  # a session is being logged to store (begun by run())
        self.profile_path = profile_path
        self._lbuf = bytearray(packet.DATA_HEADER_LEN + packet.WIRE_SAMPLE_LEN * packet.MAX_SAMPLES_PER_PACKET)
        self.running = False
        self.paused = False  # sampling paused (the sim board at the end of its trace); commands and sending go on
        # batch buffers: one driver read
        self._acc = _h(3 * _BATCH)
        self._gyr = _h(3 * _BATCH)
        self._quat = _h(4 * _BATCH)
        self._flags = bytearray(_BATCH)
        self._zero = (_h(4 * _BATCH), _h(3 * _BATCH), _h(3 * _BATCH), bytearray(_BATCH))  # gap placeholders
        # device clock, extended to a never-wrapping int (u32 on the wire)
        self._t_prev = self._ticks()
        self._t_dev = 0
        self._t_last = -1  # device time of the newest sample; -1: re-anchor at the next read
        # transmit
        self._tx = bytearray(packet.MAX_PACKET_LEN)
        self._tx_n = 0  # a packet in _tx the link refused: sent before anything else of its kind
        self._ctrl = bytearray(_CTRL_SLOTS * _CTRL_LEN)
        self._ctrl_len = bytearray(_CTRL_SLOTS)
        self._ctrl_mv = [memoryview(self._ctrl)[i * _CTRL_LEN:(i + 1) * _CTRL_LEN] for i in range(_CTRL_SLOTS)]
        self._ctrl_head = 0
        self._ctrl_n = 0
        self.ctrl_dropped = 0
        self.dropped_packets = 0
        self._txl_first = 0
        self._txl_n = 0
        self._mtu = 0
        self._spp = 0
        # longest a live sample waits for a fuller packet, beyond the interval it waits for its step. 0: every step
        # sends what it read, so a sample leaves within one interval and a host-side alert can meet 30 ms end to end
        self.max_latency_us = max_latency_ms * 1000
        self._bf_seq = 0
        self._bf_left = 0
        self._dl = None  # log download in progress: [session_id, block, offset, n_blocks]
        self._dl_read = -1  # the block in _blk
        self._blk = bytearray(512) if store is None else bytearray(_block_size(store))
        # calibration profile
        self._cal_buf = bytearray(packet.CAL_PROFILE_LEN)
        self._cal_got = 0
        self._cal = None  # array('h'): acc bias, gyr bias (LSB), acc matrix Q13
        self.profile = None  # the 79-byte profile in use
        # counters
        self.samples = 0
        self.lost_imu = 0
        self.lost_tx = 0
        self.alerts = 0
        self.measure_alloc = measure_alloc
        self.alloc_bytes = 0
        self.alloc_samples = 0
        self.rate_hz = 0
        self.period_us = 0
        # DATA on send; ACK/EVENT and LOG_CHUNK on their own channel where the link has one (BLE characteristics)
        self._send_ctrl = getattr(link, "send_control", link.send)
        self._send_log = getattr(link, "send_log", link.send)
        self._tx_ch = 0  # channel of the refused packet in _tx: 0 data, 1 log
        link.on_packet = self.on_packet
        self.set_rate(rate_hz)

    # ------------------------------------------------------------------------------------------------ sampling
    def set_rate(self, rate_hz):
        """(Re)start the IMU at rate_hz; raises ValueError for a rate the chip cannot make."""
        if self.period_us:
            self.step()  # what the FIFO holds at the old rate
        self.imu.configure(rate_hz)
        self.rate_hz = rate_hz
        self.period_us = self.imu.period_us
        self.fusion.configure(rate_hz, acc_calibrated=self._cal is not None)
        if self.alert is not None:
            self.alert.configure(rate_hz)
        self._t_last = -1

    def now_us(self):
        """Device time in µs since boot (never wraps here; u32 on the wire)."""
        t = self._ticks()
        self._t_dev += self._diff(t, self._t_prev)
        self._t_prev = t
        return self._t_dev

    def step(self):
        """Drain the FIFO: calibrate, fuse, ring, alert, log. Returns the samples taken. No allocation."""
        imu = self.imu
        acc = self._acc
        gyr = self._gyr
        quat = self._quat
        flags = self._flags
        period = self.period_us
        total = 0
        while True:
            n = imu.read(acc, gyr)
            now = self.now_us()
            lost = imu.lost
            if lost:
                self._gap(lost, now)
            if n == 0:
                break
            # time of the newest sample: the previous one plus n periods, kept within one period before the read
            t = self._t_last
            if t < 0:
                t = now
            else:
                t += n * period
                err = now - t
                if err < 0:
                    t = now
                elif n < _BATCH and err > period:
                    t += (err - (period >> 1)) >> 3  # the chip's clock is slower than the board's: follow
            self._t_last = t
            if self._cal is not None:
                _calibrate(acc, gyr, n, self._cal)
            self.fusion.update(acc, gyr, quat, flags, n)
            self.ring.append(quat, acc, gyr, flags, n, t, period)
            if self.alert is not None:
                self._alert(n, t)
            if self.logging:
                self._log_batch(n, t)
            total += n
            if n < _BATCH:
                break
        self.samples += total
        lost = self.ring.take_lost()
        if lost:
            self._tx_lost(lost)
        return total

    def _tx_lost(self, lost):
        # samples the ring overwrote before the link took them (a long disconnect): one BUFFER_OVERRUN for the
        # whole run of them, sent when the link is back (pump)
        self.lost_tx += lost
        first = (self.ring.next_seq - self.ring.unsent - lost) & _U32
        if self._txl_n == 0:
            self._txl_first = first
        self._txl_n += lost

    def _log_batch(self, n, t_last):
        # the session log holds the samples as DATA packets (and the events as EVENT packets): see README
        period = self.period_us
        seq = self.ring.next_seq - n
        t = t_last - (n - 1) * period
        buf = self._lbuf
        k = 0
        while k < n:
            m = n - k
            if m > packet.MAX_SAMPLES_PER_PACKET:
                m = packet.MAX_SAMPLES_PER_PACKET
            L = packet.encode_data(buf, seq + k, t + k * period, period, self._quat, self._acc, self._gyr,
                                   self._flags, k, m, 0)
            self.store.write(buf, L)
            k += m

    def _gap(self, lost, now):
        # samples the FIFO lost: their seq numbers pass by unused (ring slots with period 0, never sent)
        ring = self.ring
        first = ring.next_seq
        self.lost_imu += lost
        if self._t_last >= 0:
            self._t_last += lost * self.period_us
        if lost >= ring.capacity:
            stale = ring.unsent
            ring.reset((first + lost) & _U32)
            self._bf_left = 0
            if stale:  # unsent samples dropped with the ring's content
                self.lost_tx += stale
                if self._txl_n == 0:
                    self._txl_first = (first - stale) & _U32
                self._txl_n += stale
        else:
            zq, za, zg, zf = self._zero
            left = lost
            while left:
                k = left if left < _BATCH else _BATCH
                ring.append(zq, za, zg, zf, k, now, 0)
                left -= k
        self._overrun(_SRC_IMU_FIFO, first, lost)

    def _overrun(self, source, first, n):
        while n > 0:
            k = n if n < 0xFFFF else 0xFFFF
            self.event(packet.EV_BUFFER_OVERRUN, source, first, k)
            first = (first + k) & _U32
            n -= k

    def _alert(self, n, t_last):
        alert = self.alert
        k = alert.update(self._quat, self._acc, self._flags, n)
        if k:
            self._alerts(k, n, t_last)

    def _alerts(self, k, n, t_last):
        # rare: allocation is fine here
        seq0 = self.ring.next_seq - n
        t0 = t_last - (n - 1) * self.period_us
        for j in range(k):
            kind, side, value, index = self.alert.event(j)
            self.alerts += 1
            self.event(packet.EV_ALERT, kind, side, value, t_us=t0 + index * self.period_us,
                       seq=(seq0 + index) & _U32)
            if self.haptics is not None:
                self.haptics.alert(kind, side)

    # ------------------------------------------------------------------------------------------------- sending
    def event(self, code, *fields, t_us=None, seq=None):
        """Queue an EVENT (sent before data at the next pump)."""
        if t_us is None:
            t_us = self.now_us()
        if seq is None:
            seq = (self.ring.next_seq - 1) & _U32
        i = self._ctrl_slot()
        if i >= 0:
            n = self._ctrl_len[i] = packet.encode_event(self._ctrl_mv[i], code, t_us & _U32, seq, *fields)
            if self.logging:
                self.store.write(self._ctrl_mv[i], n)

    def ack(self, opcode, token, status, *fields):
        """Queue the ACK of a command."""
        i = self._ctrl_slot()
        if i >= 0:
            self._ctrl_len[i] = packet.encode_ack(self._ctrl_mv[i], opcode, token, status, *fields)

    def _ctrl_slot(self):
        if self._ctrl_n == _CTRL_SLOTS:
            self.ctrl_dropped += 1
            if self._log:
                self._log("control queue full: a control packet is dropped")
            return -1
        i = (self._ctrl_head + self._ctrl_n) % _CTRL_SLOTS
        self._ctrl_n += 1
        return i

    def backlog(self):
        """Samples and packets waiting for the link (the sim board holds its clock while this is large)."""
        return self.ring.unsent + self._ctrl_n + (1 if self._tx_n else 0) + self._bf_left

    def pump(self):
        """Send what waits, in order of priority, until the link refuses (back-pressure) or nothing is left:
        control packets, a refused packet, live DATA, a BACKFILL answer, LOG_CHUNKs. No allocation."""
        link = self.link
        if not self.streaming:
            self._discard()
        if not link.connected:
            return
        if self._txl_n and self._ctrl_n < _CTRL_SLOTS:
            self._overrun(_SRC_TX_RING, self._txl_first, self._txl_n)  # announced once the link is back
            self._txl_n = 0
        send = self._send_ctrl
        while self._ctrl_n:
            i = self._ctrl_head
            if not send(self._ctrl_mv[i], self._ctrl_len[i]):
                return
            self._ctrl_head = (i + 1) % _CTRL_SLOTS
            self._ctrl_n -= 1
        tx = self._tx
        if link.mtu != self._mtu:
            self._mtu = link.mtu
            self._spp = packet.samples_per_packet(link.mtu)
            if self._tx_n > self._mtu - 3:
                self._tx_n = 0  # encoded for a larger MTU: those samples come back by BACKFILL
                self.dropped_packets += 1
        if self._tx_n:
            if not (self._send_log if self._tx_ch else link.send)(tx, self._tx_n):
                return
            self._tx_n = 0
        spp = self._spp
        ring = self.ring
        if self.streaming and self._hold(ring):
            while True:
                if spp:
                    n = ring.encode_next(tx, spp)
                    if n and not (tx[10] | tx[11]):
                        continue  # placeholders of an IMU FIFO gap (period 0): announced lost, never sent
                elif ring.unsent and ring.period_us[_slot_of_next(ring)] == 0:
                    ring.encode_compact_next(tx)
                    continue
                else:
                    n = ring.encode_compact_next(tx)
                if n == 0:
                    break
                if not link.send(tx, n):
                    self._tx_n = n
                    self._tx_ch = 0
                    return
        burst = _BACKFILL_BURST if spp else _BACKFILL_BURST_COMPACT
        while self._bf_left > 0 and burst:
            if spp:
                n, k = ring.encode_backfill(tx, self._bf_seq, self._bf_left if self._bf_left < spp else spp)
                if k and not (tx[10] | tx[11]):
                    n = 0  # placeholders of an IMU FIFO gap (period 0): never sent
            else:
                n, k = ring.encode_backfill_compact(tx, self._bf_seq)
            if k == 0:
                self._bf_left = 0  # overwritten since the ACK: the host sees the gap and asks again
                break
            self._bf_seq = (self._bf_seq + k) & _U32
            self._bf_left -= k
            if n == 0:
                continue
            burst -= 1
            if not link.send(tx, n):
                self._tx_n = n
                self._tx_ch = 0
                return
        if self._dl is not None:
            self._pump_log()

    def _hold(self, ring):
        # True: send live now. Fewer samples than a full packet wait up to max_latency_us (fuller packets: fewer
        # notifications and frames), counted from the oldest unsent sample's time
        unsent = ring.unsent
        if unsent == 0:
            return False
        if unsent >= self._spp or self.paused:
            return True
        age = self.now_us() - (self._t_last - (unsent - 1) * self.period_us)
        return age >= self.max_latency_us

    def _discard(self):
        # not streaming: live samples are not sent (they stay in the ring for BACKFILL)
        ring = self.ring
        tx = self._tx
        while ring.unsent:
            ring.encode_next(tx, packet.MAX_SAMPLES_PER_PACKET)

    def _pump_log(self):
        # LOG_DOWNLOAD answer: the session's raw blocks (store.BLOCK_SIZE bytes: header, payload, CRC) as
        # LOG_CHUNKs of up to MTU - 3 - 9 bytes each
        dl = self._dl
        tx = self._tx
        room = self._mtu - 3 - 9
        if room > packet.MAX_PACKET_LEN - 9:
            room = packet.MAX_PACKET_LEN - 9
        burst = _LOG_BURST
        blk = self._blk
        while burst:
            sid, block, offset, n_blocks = dl
            if block >= n_blocks:
                self._dl = None
                return
            if self._dl_read != block:
                try:
                    self.store.read_block(sid, block, blk)
                except OSError:  # damaged or erased meanwhile: the host sees the missing block by its number
                    dl[1] = block + 1
                    continue
                self._dl_read = block
            m = len(blk) - offset
            if m > room:
                m = room
            n = packet.encode_log_chunk(tx, sid, block, offset, memoryview(blk)[offset:offset + m])
            if offset + m >= len(blk):
                dl[1] = block + 1
                dl[2] = 0
            else:
                dl[2] = offset + m
            if not self._send_log(tx, n):
                self._tx_n = n
                self._tx_ch = 1
                return
            burst -= 1

    # ------------------------------------------------------------------------------------------------ commands
    def on_packet(self, buf, n):
        """The link's callback: one complete incoming packet (a COMMAND) -> exactly one ACK."""
        cmd = bytes(buf[:n])
        status, opcode, token, f = packet.decode_command(cmd)
        if status == packet.OK:
            try:
                self._command(opcode, token, f)
            except Exception as e:  # a bug must not stop the sensor: answer, log, go on
                if self._log:
                    self._log("command 0x%02x failed: %r" % (opcode, e))
                self.ack(opcode, token, packet.BUSY)
        else:
            self.ack(opcode, token, status)
        self.pump()

    def _command(self, op, token, f):
        ok = packet.OK
        if op == START:
            if not self.streaming:
                self._discard()  # live starts with the next sample
            self.streaming = True
            self.ack(op, token, ok)
        elif op == STOP:
            self.streaming = False
            self.ack(op, token, ok)
        elif op == SET_RATE:
            try:
                self.set_rate(f[0])
            except ValueError:
                self.ack(op, token, packet.OUT_OF_RANGE)  # a rate this chip cannot make (MPU-6886 at 400 Hz)
                return
            self.ack(op, token, ok)
        elif op == VIBRATE:
            if self.haptics is None:
                self.ack(op, token, packet.UNAVAILABLE)
                return
            self.ack(op, token, self.haptics.play(f[0], f[1], f[2], f[3]))
        elif op == SET_THRESHOLDS:
            if self.alert is None:
                self.ack(op, token, packet.UNAVAILABLE)
                return
            self.ack(op, token, self.alert.set_thresholds(*f))
        elif op == TIME_SYNC:
            now = self.now_us()
            t_next = self._t_last + self.period_us if self._t_last >= 0 else now
            self.ack(op, token, ok, f[0], now & _U32, self.ring.next_seq, t_next & _U32)
        elif op == INFO:
            mv, pct = self._battery() if self._battery is not None else (0, 0)
            self.ack(op, token, ok, packet.PROTOCOL_VERSION, FW_VERSION[0], FW_VERSION[1], FW_VERSION[2],
                     self.board_id, self.imu.imu_id, self.rate_hz, mv, pct, self.state_flags())
        elif op == BACKFILL:
            r = self.ring.backfill(f[0], f[1])
            if r is None:
                self.ack(op, token, packet.UNAVAILABLE)
                return
            self._bf_seq, self._bf_left = r
            self.ack(op, token, ok, r[0], r[1])
        elif op in (LOG_LIST, LOG_DOWNLOAD, LOG_ERASE):
            self._log_command(op, token, f)
        elif op == CAL_UPLOAD:
            self._cal_upload(token, f)

    def state_flags(self):
        s = 0
        if self.streaming:
            s |= _ST_STREAMING
        if self.logging:
            s |= _ST_LOGGING
        if self.profile is not None:
            s |= _ST_PROFILE
        if self.alert is not None and self.alert.thresholds and self.alert.thresholds[0]:
            s |= _ST_ALERTS
        return s

    def _log_command(self, op, token, f):
        store = self.store
        if store is None:
            self.ack(op, token, packet.UNAVAILABLE)
            return
        if op == LOG_LIST:
            e = store.session(f[0])
            if e is None:
                self.ack(op, token, packet.UNAVAILABLE)
                return
            self.ack(op, token, packet.OK, store.n_sessions, e[0], e[1], e[2])
        elif op == LOG_DOWNLOAD:
            n_blocks = store.n_blocks(f[0])
            if n_blocks < 0:
                self.ack(op, token, packet.UNAVAILABLE)
                return
            self._dl = [f[0], f[1], 0, n_blocks]  # session, block, offset, blocks
            self._dl_read = -1
            self.ack(op, token, packet.OK, n_blocks)
        else:
            if self._dl is not None:
                self.ack(op, token, packet.BUSY)  # erase during a download
                return
            try:
                found = store.erase(f[0])
            except OSError as e:
                # the session being written cannot be erased (StoreError, an OSError): BUSY; else the flash failed
                status = packet.BUSY if type(e).__name__ == "StoreError" else packet.STORAGE_ERROR
                self.ack(op, token, status)
                return
            if self.logging and store.session_id < 0:
                store.begin(self.now_us() // 1000000)  # erase-all ended the session being written: a new one
            self.ack(op, token, packet.OK if found else packet.UNAVAILABLE)

    def _cal_upload(self, token, f):
        total, offset, chunk = f
        if offset == 0:
            self._cal_got = 0
        if offset != self._cal_got:
            self.ack(CAL_UPLOAD, token, packet.OUT_OF_RANGE)
            return
        end = offset + len(chunk)
        self._cal_buf[offset:end] = chunk
        self._cal_got = end
        if end < total:
            self.ack(CAL_UPLOAD, token, packet.OK)
            return
        blob = bytes(self._cal_buf)
        self._cal_got = 0
        if packet.crc16_ccitt(blob, 77) != blob[77] | (blob[78] << 8):
            self.ack(CAL_UPLOAD, token, packet.CRC_ERROR)
            return
        if blob[0] != 1:
            self.ack(CAL_UPLOAD, token, packet.UNSUPPORTED_VERSION)
            return
        if self.profile_path is not None:
            try:
                _save(self.profile_path, blob)
            except OSError:
                self.ack(CAL_UPLOAD, token, packet.STORAGE_ERROR)
                return
        self.apply_profile(blob)
        self.ack(CAL_UPLOAD, token, packet.OK)

    def apply_profile(self, blob):
        """Use a 79-byte calibration profile (docs/protocol.md): biases and the acc matrix on every sample from
        now on, the mounting rotation for the alert detector. None: back to raw samples."""
        if blob is None:
            self._cal = None
            self.profile = None
        else:
            v = struct.unpack_from("<B3f3f9f4f", blob, 0)
            gb = v[1:4]
            ab = v[4:7]
            m = v[7:16]
            cal = _h(15)
            for i in range(3):
                cal[i] = _round(ab[i] / _ACC_LSB_M_S2)
                cal[3 + i] = _round(gb[i] / _GYR_LSB_RAD_S)
            for i in range(9):
                x = m[i]
                x = 2.0 if x > 2.0 else (-2.0 if x < -2.0 else x)
                cal[6 + i] = _round(x * (1 << _CAL_Q))
            self._cal = cal
            self.profile = bytes(blob)
            if self.alert is not None and hasattr(self.alert, "set_mounting"):
                self.alert.set_mounting(v[16:20])
        self.fusion.configure(self.rate_hz, acc_calibrated=self._cal is not None)

    # --------------------------------------------------------------------------------------------------- tasks
    async def sampler(self):
        """Sampling task: a step and a pump every interval_ms, until stop()."""
        pace = self._pace
        measure = self.measure_alloc
        warm = 50
        while self.running:
            await pace(self.interval_ms)
            if self.paused:
                self.pump()
            elif measure:
                a = gc.mem_alloc()
                n = self.step()
                self.pump()
                d = gc.mem_alloc() - a
                if warm:
                    warm -= 1  # the first reads set up the drivers' buffers: not counted
                else:
                    if d > 0:  # < 0: a collection ran in between, nothing to learn from this step
                        self.alloc_bytes += d
                    self.alloc_samples += n
            else:
                self.step()
                self.pump()

    async def run(self, *tasks):
        """Run the link, the sampler and any extra tasks until stop()."""
        self.running = True
        if self.store is not None:
            self.store.begin(self.now_us() // 1000000)
            self.logging = True
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
            if self.store is not None:
                self.logging = False
                self.store.close()

    def stop(self):
        self.running = False

    def stats(self):
        return {"samples": self.samples, "next_seq": self.ring.next_seq, "lost_imu": self.lost_imu,
                "lost_tx": self.lost_tx, "alerts": self.alerts, "ctrl_dropped": self.ctrl_dropped,
                "alloc_bytes": self.alloc_bytes, "alloc_samples": self.alloc_samples,
                "alloc_per_sample": self.alloc_bytes / self.alloc_samples if self.alloc_samples else None}


def _save(path, blob):
    # write then rename: a reset leaves the old profile or the new one, never half of one
    import os
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(blob)
    os.rename(tmp, path)


def load_profile(path):
    """The calibration profile kept at path, or None (none uploaded, or damaged: CRC or version wrong)."""
    try:
        with open(path, "rb") as f:
            blob = f.read()
    except OSError:
        return None
    if len(blob) != packet.CAL_PROFILE_LEN or blob[0] != 1:
        return None
    if packet.crc16_ccitt(blob, 77) != blob[77] | (blob[78] << 8):
        return None
    return blob


def _block_size(store):
    import store as mod
    return mod.BLOCK_SIZE


def _h(n):
    from array import array
    return array("h", bytes(2 * n))


def _round(x):
    return int(x + 0.5) if x >= 0 else -int(-x + 0.5)


def _slot_of_next(ring):
    # the slot of the oldest unsent sample (compact path only)
    s = ring.next_seq - ring.unsent
    k = ring.slot(s & _U32)
    return k if k >= 0 else 0


@micropython.viper
def _calibrate(acc, gyr, n: int, cal):
    # gyr -= gyr bias; acc = M (acc - acc bias), M in Q13 (cal: int16 acc bias 3, gyr bias 3, M 9). A sample with
    # a saturated axis (|v| >= 32767) keeps its raw values: saturation must stay visible on the wire.
    pa = ptr16(acc)
    pg = ptr16(gyr)
    pc = ptr16(cal)
    i = 0
    while i < n:
        j = 3 * i
        x = (int(pa[j]) ^ 0x8000) - 0x8000
        y = (int(pa[j + 1]) ^ 0x8000) - 0x8000
        z = (int(pa[j + 2]) ^ 0x8000) - 0x8000
        if x < 32767 and x > -32767 and y < 32767 and y > -32767 and z < 32767 and z > -32767:
            x -= (int(pc[0]) ^ 0x8000) - 0x8000
            y -= (int(pc[1]) ^ 0x8000) - 0x8000
            z -= (int(pc[2]) ^ 0x8000) - 0x8000
            r = 0
            while r < 3:
                m = 6 + 3 * r
                o = (((int(pc[m]) ^ 0x8000) - 0x8000) * x + ((int(pc[m + 1]) ^ 0x8000) - 0x8000) * y
                     + ((int(pc[m + 2]) ^ 0x8000) - 0x8000) * z + 4096) >> 13
                if o > 32766:
                    o = 32766
                elif o < -32766:
                    o = -32766
                pa[j + r] = o
                r += 1
        k = 0
        while k < 3:
            v = (int(pg[j + k]) ^ 0x8000) - 0x8000
            if v < 32767 and v > -32767:
                v -= (int(pc[3 + k]) ^ 0x8000) - 0x8000
                if v > 32766:
                    v = 32766
                elif v < -32766:
                    v = -32766
                pg[j + k] = v
            k += 1
        i += 1
