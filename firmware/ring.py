"""Ring buffer of the most recent samples, addressable by sequence number: the store that live DATA packets and
BACKFILL answers are both encoded from (packet.encode_data reads its arrays directly, wrapping at the end).

Per sample it keeps the wire values (quat 4 x i16, acc 3 x i16, gyr 3 x i16, flags u8), the device time t_us
(u32) and the period (u16): 27 bytes. The default capacity of 3200 samples (86 KB) holds 32 s at 100 Hz, 16 s at
200 Hz and 8 s at 400 Hz (the highest rate); pass capacity = seconds x rate for more where RAM allows.

Sequence numbers count samples (u32, wrapping); the ring keeps the next one to be written, so a sample's seq
names its slot for as long as it is held. Appending allocates nothing (viper); seq arithmetic in the BACKFILL
path is plain Python (it runs once per command).
"""

import micropython
from micropython import const
from array import array
from packet import BACKFILLED, encode_compact, encode_data

DEFAULT_CAPACITY = const(3200)
_U32 = 0xFFFFFFFF

# _st (array 'i'): next seq (u32 bits), head (next slot), count held, unsent (samples not yet sent live), lost
# (samples overwritten before they were sent live, since the last take_lost()).
_NEXT = const(0)
_HEAD = const(1)
_COUNT = const(2)
_UNSENT = const(3)
_LOST = const(4)


class Ring:
    def __init__(self, capacity=DEFAULT_CAPACITY, seq=0):
        self.capacity = capacity
        self.quat = array("h", bytes(8 * capacity))
        self.acc = array("h", bytes(6 * capacity))
        self.gyr = array("h", bytes(6 * capacity))
        self.flags = bytearray(capacity)
        self.t_us = array("I", bytes(4 * capacity))
        self.period_us = array("H", bytes(2 * capacity))
        self._st = array("i", [0] * 5)
        self.reset(seq)

    def reset(self, seq=0):
        """Forget every sample; the next one appended gets sequence number seq."""
        st = self._st
        for i in range(5):
            st[i] = 0
        _set_u32(st, _NEXT, seq)

    def append(self, quat, acc, gyr, flags, n, t_last_us, period_us, start=0, t_hi=0):
        """Take n samples from the batch arrays (positions start ..), the last one taken at device time
        t_hi * 2^30 + t_last_us (a tick and its wraps, sampling.DeviceClock; or t_hi 0 and the whole time), the
        others period_us apart before it. No allocation."""
        _append(self._st, self.quat, self.acc, self.gyr, self.flags, self.t_us, self.period_us,
                quat, acc, gyr, flags, n, start, t_last_us, period_us, t_hi)

    # -- state (Python ints; these allocate on a 32-bit port when seq >= 2^30)
    @property
    def next_seq(self):
        """Sequence number the next appended sample gets (TIME_SYNC's next_seq). Below 2^30 (the first 31 days
        at 400 Hz) a small int made with no big-int operation, so the sampling step may read it."""
        v = self._st[_NEXT]
        return v if v >= 0 else _u32(v)

    @property
    def count(self):
        return self._st[_COUNT]

    @property
    def oldest_seq(self):
        return (self.next_seq - self._st[_COUNT]) & _U32

    @property
    def unsent(self):
        return self._st[_UNSENT]

    def unsent_slot(self):
        """Array position of the oldest unsent sample (the next live one; meaningful while ``unsent``). No
        big-int operation, unlike ``slot``: the live compact path asks it per packet."""
        st = self._st
        i = st[_HEAD] - st[_UNSENT]
        return i + self.capacity if i < 0 else i

    def take_lost(self):
        """Samples overwritten before they were sent live since the last call (a BUFFER_OVERRUN event, source
        TX_RING: first lost seq = the oldest unsent seq minus this number), and zero the counter."""
        n = self._st[_LOST]
        self._st[_LOST] = 0
        return n

    def slot(self, seq):
        """Array position of sample seq, or -1 if it is not held (never written, or overwritten)."""
        back = (self.next_seq - seq) & _U32  # 1 = the newest
        if back == 0 or back > self._st[_COUNT]:
            return -1
        return (self._st[_HEAD] - back) % self.capacity

    def backfill(self, from_seq, max_samples):
        """Answer to BACKFILL: (first_seq, count) of the held samples in [from_seq, from_seq + max_samples),
        first_seq > from_seq when the oldest part fell out; None when none of them is held (ACK UNAVAILABLE)."""
        held = self._st[_COUNT]
        age = (self.next_seq - from_seq) & _U32  # samples from from_seq to the newest, inclusive
        if age == 0 or age > 0x7FFFFFFF or max_samples <= 0:
            return None  # from_seq not produced yet
        skip = age - held if age > held else 0  # the part that fell out
        count = min(max_samples - skip, age - skip)
        if count <= 0:
            return None
        return (from_seq + skip) & _U32, count

    def encode_next(self, buf, max_n):
        """The oldest unsent samples (at most max_n, all of one period: a packet never spans a rate change) as a
        DATA packet into buf, marked sent; returns its length, 0 when nothing waits. No allocation (on a 32-bit
        port seq >= 2^30, after 31 days at 400 Hz, is boxed once per packet)."""
        st = self._st
        unsent = st[_UNSENT]
        if unsent == 0:
            return 0
        slot = st[_HEAD] - unsent
        if slot < 0:
            slot += self.capacity
        n = _run(self.period_us, slot, min(unsent, max_n))
        st[_UNSENT] = unsent - n
        rt = self.t_us  # the u32 time read as 30 + 2 bits: never a big int
        return encode_data(buf, st[_NEXT] - unsent, _tick_at(rt, slot), _wraps_at(rt, slot), self.period_us[slot],
                           self.quat, self.acc, self.gyr, self.flags, slot, n, 0)

    def encode_compact_next(self, buf):
        """The oldest unsent sample as a compact packet (MTU 23) into buf, marked sent; 20, or 0 if none."""
        st = self._st
        unsent = st[_UNSENT]
        if unsent == 0:
            return 0
        slot = st[_HEAD] - unsent
        if slot < 0:
            slot += self.capacity
        st[_UNSENT] = unsent - 1
        return encode_compact(buf, st[_NEXT] - unsent, self.quat, self.acc, self.gyr, slot)

    def encode_backfill(self, buf, seq, max_n):
        """Samples seq .. (at most max_n, one period) as a DATA packet with BACKFILLED set; returns
        (length, n) or (0, 0) when seq is not held. Loop with seq += n for a whole BACKFILL answer."""
        slot = self.slot(seq)
        if slot < 0:
            return 0, 0
        newer = (self.next_seq - seq) & _U32
        n = _run(self.period_us, slot, min(newer, max_n))
        rt = self.t_us
        return encode_data(buf, seq, _tick_at(rt, slot), _wraps_at(rt, slot), self.period_us[slot], self.quat,
                           self.acc, self.gyr, self.flags, slot, n, BACKFILLED), n

    def encode_backfill_compact(self, buf, seq):
        """Sample seq as a compact packet (MTU 23: no room for a full one, and no flag byte; the host knows a
        backfilled sample by its seq, older than the live edge). Returns (20, 1); (0, 1) for an IMU FIFO gap's
        placeholder, which is never sent; (0, 0) when seq is not held."""
        slot = self.slot(seq)
        if slot < 0:
            return 0, 0
        if self.period_us[slot] == 0:
            return 0, 1
        return encode_compact(buf, seq, self.quat, self.acc, self.gyr, slot), 1


def _set_u32(st, i, v):
    v &= _U32
    st[i] = v - (1 << 32) if v > 0x7FFFFFFF else v


def _u32(v):
    # v's residue modulo 2^32 (a big int on a 32-bit port: seq >= 2^31 only)
    return v & _U32


@micropython.viper
def _tick_at(rt, slot: int) -> int:
    # the low 30 bits of a stored time (packet.encode_data's t_us)
    return int(ptr32(rt)[slot]) & 0x3FFFFFFF


@micropython.viper
def _wraps_at(rt, slot: int) -> int:
    # its top 2 bits (encode_data's t_hi)
    return (int(ptr32(rt)[slot]) >> 30) & 3


@micropython.viper
def _append(st, rq, ra, rg, rf, rt, rp, quat, acc, gyr, flags, n: int, start: int, t_last: int, period: int,
            t_hi: int):
    t_last += t_hi << 30  # machine words: the u32 wraps on store
    s = ptr32(st)
    q16 = ptr16(rq)
    a16 = ptr16(ra)
    g16 = ptr16(rg)
    f8 = ptr8(rf)
    t32 = ptr32(rt)
    p16 = ptr16(rp)
    bq = ptr16(quat)
    ba = ptr16(acc)
    bg = ptr16(gyr)
    bf = ptr8(flags)
    cap = int(len(rf))
    head = int(s[1])
    count = int(s[2])
    unsent = int(s[3])
    k = 0
    while k < n:
        i = start + k
        q16[head * 4] = bq[i * 4]
        q16[head * 4 + 1] = bq[i * 4 + 1]
        q16[head * 4 + 2] = bq[i * 4 + 2]
        q16[head * 4 + 3] = bq[i * 4 + 3]
        a16[head * 3] = ba[i * 3]
        a16[head * 3 + 1] = ba[i * 3 + 1]
        a16[head * 3 + 2] = ba[i * 3 + 2]
        g16[head * 3] = bg[i * 3]
        g16[head * 3 + 1] = bg[i * 3 + 1]
        g16[head * 3 + 2] = bg[i * 3 + 2]
        f8[head] = bf[i]
        t32[head] = t_last - (n - 1 - k) * period
        p16[head] = period
        head += 1
        if head >= cap:
            head = 0
        if count < cap:
            count += 1
        if unsent < cap:
            unsent += 1
        else:
            s[4] = int(s[4]) + 1  # the oldest unsent sample was overwritten
        k += 1
    s[0] = int(s[0]) + n  # u32 bits: wraps on store
    s[1] = head
    s[2] = count
    s[3] = unsent


@micropython.viper
def _run(rp, slot: int, max_n: int) -> int:
    # How many samples from slot on (at most max_n, wrapping) share the period of the first.
    p16 = ptr16(rp)
    cap = int(len(rp))
    period = int(p16[slot])
    k = 1
    i = slot + 1
    while k < max_n:
        if i >= cap:
            i -= cap
        if int(p16[i]) != period:
            break
        k += 1
        i += 1
    return k
