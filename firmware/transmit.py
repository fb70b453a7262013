"""Sending: what waits for the link, in order of priority, under the link's back-pressure.

``Transmit.pump`` runs after every sampling step and every command: control packets first (ACK, EVENT, from
``ControlQueue``), then a packet the link refused last time, then live DATA (as many samples per packet as the
link's MTU allows, from the ring; the compact form at MTU 23), then a BACKFILL answer (``Backfill``), then
LOG_CHUNKs (``session_log.SessionLog.pump``). ``send`` returning False is back-pressure: the packet stays here
and is tried again at the next pump; the ring keeps sampling meanwhile. The pump allocates nothing per sample.
"""

from micropython import const

import packet
from sampling import tick_diff

_U32 = const(0xFFFFFFFF)
_CTRL_SLOTS = const(16)  # ACK/EVENT packets waiting for the link
_CTRL_LEN = const(20)  # every control packet fits the 20-byte payload of the minimum MTU
_BACKFILL_BURST = const(4)  # backfill packets per pump, so that live data and commands go on meanwhile
_BACKFILL_BURST_COMPACT = const(8)  # at MTU 23 (one sample a packet): 400 samples/s, 4x live at 100 Hz
_SRC_TX_RING = const(1)  # BUFFER_OVERRUN source
# BACKFILL answers draw at most one ring at once and then 2 samples per sample sampled: a flood of requests can
# never more than triple the traffic of the live stream (docs/protocol.md, "Bounded answers")
_BACKFILL_PER_SAMPLE = const(2)


class ControlQueue:
    """ACK and EVENT packets waiting for the link, in preallocated 20-byte slots, and the samples the ring lost
    before the link took them (announced by one BUFFER_OVERRUN once the link is back).

    ring: for an event's default seq (the newest sample); clock: ``sampling.DeviceClock``; session_log: EVENTs are
    logged while it is active; log: a callable taking a message, or None.
    """

    def __init__(self, ring, clock, session_log=None, log=None):
        self.ring = ring
        self._clock = clock
        self.session_log = session_log
        self._log = log
        self._buf = bytearray(_CTRL_SLOTS * _CTRL_LEN)
        self._len = bytearray(_CTRL_SLOTS)
        self._mv = [memoryview(self._buf)[i * _CTRL_LEN:(i + 1) * _CTRL_LEN] for i in range(_CTRL_SLOTS)]
        self._head = 0
        self.n = 0  # packets waiting
        self.dropped = 0
        self.lost_tx = 0
        self._lost_first = 0
        self.unannounced = 0  # lost samples not announced yet

    def event(self, code, *fields, t_us=None, seq=None, t_hi=0):
        """Queue an EVENT (sent before data at the next pump); at device time t_hi * 2^30 + t_us (as
        packet.encode_event), now when t_us is None."""
        if t_us is None:
            t_us = self._clock.now_us()
            t_hi = self._clock.wraps
        if seq is None:
            seq = (self.ring.next_seq - 1) & _U32
        i = self._slot()
        if i >= 0:
            n = self._len[i] = packet.encode_event(self._mv[i], code, t_us, seq, *fields, t_hi=t_hi)
            log = self.session_log
            if log is not None and log.active:
                log.write(self._mv[i], n)

    def alert(self, kind, side, value, t_us, seq, t_hi=0):
        """Queue an ALERT EVENT of sample seq at device time t_hi * 2^30 + t_us (``alert.Alert.dispatch``; as
        packet.encode_alert); logged like any event. Allocates nothing: no tuple of fields, no big int, the packet
        is encoded in its slot."""
        i = self._slot()
        if i >= 0:
            n = self._len[i] = packet.encode_alert(self._mv[i], t_us, seq, kind, side, value, t_hi)
            log = self.session_log
            if log is not None and log.active:
                log.write(self._mv[i], n)

    def ack(self, opcode, token, status, *fields):
        """Queue the ACK of a command."""
        i = self._slot()
        if i >= 0:
            self._len[i] = packet.encode_ack(self._mv[i], opcode, token, status, *fields)

    def overrun(self, source, first, n):
        """BUFFER_OVERRUN events for n samples from seq first (several when n exceeds the field's u16)."""
        while n > 0:
            k = n if n < 0xFFFF else 0xFFFF
            self.event(packet.EV_BUFFER_OVERRUN, source, first, k)
            first = (first + k) & _U32
            n -= k

    def tx_lost(self, first, n):
        """n samples from seq first left the ring before the link took them: one announcement for the whole run."""
        self.lost_tx += n
        if self.unannounced == 0:
            self._lost_first = first & _U32
        self.unannounced += n

    def announce_lost(self):
        """Queue the announcement of the lost run, if any (the link is back) and there is room."""
        if self.unannounced and self.n < _CTRL_SLOTS:
            self.overrun(_SRC_TX_RING, self._lost_first, self.unannounced)
            self.unannounced = 0

    def drain(self, send):
        """Send the queued packets in order; False when send refused one (it stays first in the queue)."""
        while self.n:
            i = self._head
            if not send(self._mv[i], self._len[i]):
                return False
            self._head = (i + 1) % _CTRL_SLOTS
            self.n -= 1
        return True

    def _slot(self):
        if self.n == _CTRL_SLOTS:
            self.dropped += 1
            if self._log:
                self._log("control queue full: a control packet is dropped")
            return -1
        i = (self._head + self.n) % _CTRL_SLOTS
        self.n += 1
        return i


class Backfill:
    """The BACKFILL answer being sent: samples ``seq`` .. ``seq + left - 1`` from the ring, a burst per pump.

    Paced by a bucket of samples (``tokens``): it holds one ring (``ring.capacity``) and gains
    _BACKFILL_PER_SAMPLE per sample the ring takes; a packet waits while the bucket is empty. A request asks for at
    most one ring anyway (``ring.backfill``). Counters: ``sent`` (samples sent), ``paced`` (pumps that waited)."""

    def __init__(self, ring):
        self.ring = ring
        self.seq = 0
        self.left = 0
        self.tokens = ring.capacity
        self._seen = ring.next_seq
        self.sent = 0
        self.paced = 0

    def start(self, from_seq, max_samples):
        """The command's answer: (first_seq, count) of what will be sent, or None when none of it is held."""
        r = self.ring.backfill(from_seq, max_samples)
        if r is not None:
            self.seq, self.left = r
        return r

    def cancel(self):
        self.left = 0

    def _refill(self):
        nxt = self.ring.next_seq
        d = (nxt - self._seen) & _U32
        if d:
            self._seen = nxt
            cap = self.ring.capacity
            t = self.tokens + _BACKFILL_PER_SAMPLE * (d if d < cap else cap)
            self.tokens = t if t < cap else cap

    def pump(self, tx, link, spp):
        """Send up to a burst of packets, encoded in tx, on link (spp samples per packet, 0: compact form).
        Returns the length of a packet the link refused (it stays in tx), else 0."""
        ring = self.ring
        burst = _BACKFILL_BURST if spp else _BACKFILL_BURST_COMPACT
        self._refill()
        while self.left > 0 and burst:
            room = self.tokens
            if room <= 0:
                self.paced += 1
                break
            if spp:
                m = self.left if self.left < spp else spp
                n, k = ring.encode_backfill(tx, self.seq, m if m < room else room)
                if k and not (tx[10] | tx[11]):
                    n = 0  # placeholders of an IMU FIFO gap (period 0): never sent
            else:
                n, k = ring.encode_backfill_compact(tx, self.seq)
            if k == 0:
                self.left = 0  # overwritten since the ACK: the host sees the gap and asks again
                break
            self.seq = (self.seq + k) & _U32
            self.left -= k
            if n == 0:
                continue
            self.tokens -= k
            self.sent += k
            burst -= 1
            if not link.send(tx, n):
                return n
        return 0


class Transmit:
    """The pump over a link (firmware/README.md, "Links"): DATA on ``send``; ACK/EVENT on ``send_control`` and
    LOG_CHUNK on ``send_log`` where the link has them (BLE characteristics), else on ``send``.

    ring, ctrl, backfill: the sample ring, ``ControlQueue``, ``Backfill``; sampling: ``sampling.Sampling`` (the
    newest sample's time); clock: ``sampling.DeviceClock``; session_log: for LOG_DOWNLOAD answers, or None.
    max_latency_ms: longest a live sample waits for a fuller packet, beyond the interval it waits for its step.
    0: every step sends what it read, so a sample leaves within one interval and a host-side alert can meet 30 ms
    end to end. ``streaming``: live DATA is sent (START/STOP); ``paused``: sampling has stopped, send what waits.
    """

    def __init__(self, link, ring, ctrl, backfill, sampling, clock, session_log=None, max_latency_ms=0,
                 streaming=False):
        self.link = link
        self.ring = ring
        self.ctrl = ctrl
        self.backfill = backfill
        self.sampling = sampling
        self._now_us = clock.now_us
        self.session_log = session_log
        self.max_latency_us = max_latency_ms * 1000
        self.streaming = streaming
        self.paused = False
        self.dropped_packets = 0
        self._tx = bytearray(packet.MAX_PACKET_LEN)
        self._tx_n = 0  # a packet in _tx the link refused: sent before anything else of its kind
        self._tx_ch = 0  # its channel: 0 data, 1 log
        self._mtu = 0
        self._spp = 0
        self._send_ctrl = getattr(link, "send_control", link.send)
        self._send_log = getattr(link, "send_log", link.send)

    def backlog(self):
        """Samples and packets waiting for the link (a BACKFILL answer waiting for its budget is not: it waits for
        samples to be taken)."""
        bf = self.backfill
        return self.ring.unsent + self.ctrl.n + (1 if self._tx_n else 0) + (bf.left if bf.tokens > 0 else 0)

    def pump(self):
        """Send what waits, in order of priority, until the link refuses (back-pressure) or nothing is left:
        control packets, a refused packet, live DATA, a BACKFILL answer, LOG_CHUNKs. No allocation."""
        link = self.link
        if not self.streaming:
            self.discard()
        if not link.connected:
            return
        # each part is called only when it has work: the pump runs every step, and a call costs on a board
        ctrl = self.ctrl
        if ctrl.unannounced:
            ctrl.announce_lost()
        if ctrl.n and not ctrl.drain(self._send_ctrl):
            return
        tx = self._tx
        if link.mtu != self._mtu:
            self._set_mtu(link.mtu)
        if self._tx_n:
            if not (self._send_log if self._tx_ch else link.send)(tx, self._tx_n):
                return
            self._tx_n = 0
        if self.streaming and self._hold():
            n = self._pump_live(tx)
            if n:
                self._tx_n = n
                self._tx_ch = 0
                return
        if self.backfill.left > 0:
            n = self.backfill.pump(tx, link, self._spp)
            if n:
                self._tx_n = n
                self._tx_ch = 0
                return
        if self.session_log is not None and self.session_log.downloading is not None:
            n = self.session_log.pump(tx, self._mtu, self._send_log)
            if n:
                self._tx_n = n
                self._tx_ch = 1

    def discard(self):
        """Not streaming: live samples are not sent (they stay in the ring for BACKFILL)."""
        ring = self.ring
        tx = self._tx
        while ring.unsent:
            ring.encode_next(tx, packet.MAX_SAMPLES_PER_PACKET)

    def _set_mtu(self, mtu):
        self._mtu = mtu
        self._spp = packet.samples_per_packet(mtu)
        if self._tx_n > mtu - 3:
            self._tx_n = 0  # encoded for a larger MTU: those samples come back by BACKFILL
            self.dropped_packets += 1

    def _hold(self):
        # True: send live now. Fewer samples than a full packet wait up to max_latency_us (fuller packets: fewer
        # notifications and frames), counted from the oldest unsent sample's time
        unsent = self.ring.unsent
        if unsent == 0:
            return False
        if unsent >= self._spp or self.paused:
            return True
        s = self.sampling
        age = tick_diff(self._now_us(), s.t_last) + (unsent - 1) * s.period_us
        return age >= self.max_latency_us

    def _pump_live(self, tx):
        # live DATA until the ring has no unsent sample (0) or the link refuses a packet (its length)
        link = self.link
        ring = self.ring
        spp = self._spp
        while True:
            if spp:
                n = ring.encode_next(tx, spp)
                if n and not (tx[10] | tx[11]):
                    continue  # placeholders of an IMU FIFO gap (period 0): announced lost, never sent
            elif ring.unsent and ring.period_us[ring.unsent_slot()] == 0:
                ring.encode_compact_next(tx)
                continue
            else:
                n = ring.encode_compact_next(tx)
            if n == 0:
                return 0
            if not link.send(tx, n):
                return n

