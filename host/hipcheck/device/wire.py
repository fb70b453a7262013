"""DATA packets into samples with whole sequence numbers and device times.

On the wire seq and t_us are u32 (the compact form: a u16 seq and no time) and wrap; the session numbers samples
with unbounded integers. Each packet is unwrapped to the candidate nearest the last packet decoded (``ref``), and
pong fields the same way. The compact form is timed by the ``PeriodLearner``'s anchor and period, and a compact
sample behind the live edge is a BACKFILL answer (it has no flag byte to say so). No event loop: the session calls
``decode`` for each DATA packet.
"""

from __future__ import annotations

import numpy as np

from hipcheck import protocol
from hipcheck.device.period import PeriodLearner
from hipcheck.protocol import SampleFlag

HALF_U32 = 1 << 31


def nearest(reference: int, wire: int) -> int:
    """The integer ≡ wire (mod 2^32) nearest reference."""
    return reference + ((wire - reference + HALF_U32) % protocol.U32_MODULUS - HALF_U32)


def forward(reference: int, wire: int) -> int:
    """The integer ≡ wire (mod 2^32) at or after reference (less than 2^32 after it)."""
    return reference + (wire - reference) % protocol.U32_MODULUS


def signed32(x: np.ndarray) -> np.ndarray:
    """x (int64) as the residue mod 2^32 in [-2^31, 2^31)."""
    return (x + HALF_U32) % protocol.U32_MODULUS - HALF_U32


def unwrap_packets(ref: tuple[int | None, int | None], seq_wire: np.ndarray, t_wire: np.ndarray, n: np.ndarray,
                   period_us: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first seq and t_us of each of a run of good full-form packets (header fields, int64 arrays), unwrapped
    exactly as ``WireDecoder.decode`` unwraps them one after the other from ``ref``: each seq nearest the previous
    packet's last sample, each time nearest the previous packet's last time plus (seq step) · its own period. The
    step from one packet to the next depends on the wire values only (the unwrapped values are ≡ wire), so the run
    is a cumulative sum."""
    m = n[:-1] - 1  # last sample of the previous packet, relative to its first
    jump = signed32(seq_wire[1:] - seq_wire[:-1] - m)  # seq step from the previous packet's last sample
    t_pred = m * period_us[:-1] + jump * period_us[1:]
    t_step = t_pred + signed32(t_wire[1:] - t_wire[:-1] - t_pred)
    ref_seq, ref_t = ref
    if ref_seq is None:
        s0, t0 = int(seq_wire[0]), int(t_wire[0])
    else:
        s0 = nearest(ref_seq, int(seq_wire[0]))
        t0 = nearest(ref_t + (s0 - ref_seq) * int(period_us[0]), int(t_wire[0]))
    seq_first = s0 + np.concatenate(([0], np.cumsum(m + jump)))
    t_first = t0 + np.concatenate(([0], np.cumsum(t_step)))
    return seq_first.astype(np.int64), t_first.astype(np.int64)


class WireDecoder:
    """DATA packets → ``protocol.SAMPLE_DTYPE`` samples, unwrapped (module docstring)."""

    def __init__(self, period: PeriodLearner):
        self.period = period
        self.ref: tuple[int | None, int | None] = (None, None)  # (seq, t_us) of the newest packet decoded

    def waits(self, packet: bytes) -> bool:
        """A compact packet that cannot be timed yet (its period is being learnt)."""
        return len(packet) == protocol.COMPACT_PACKET_LEN and not self.period.ready

    def seq(self, wire: int) -> int:
        """A wire seq (u32) unwrapped near the newest packet's."""
        ref = self.ref[0]
        return nearest(0 if ref is None else ref, wire)

    def time(self, wire: int, seq_wire: int) -> int:
        """A wire device time (u32 µs) of sample seq_wire, unwrapped near the time that sample should have."""
        ref_seq, ref_t = self.ref
        if ref_seq is None:
            return int(wire)
        return nearest(ref_t + (self.seq(seq_wire) - ref_seq) * (self.period.period_us or 0), wire)

    def pong(self, fields: dict) -> dict:
        """A TIME_SYNC ACK's fields, unwrapped: device_t_us (when the ping arrived), next_seq, next_t_us."""
        seq_wire = fields["next_seq"]
        return {"device_t_us": self.time(fields["device_t_us"], seq_wire), "next_seq": self.seq(seq_wire),
                "next_t_us": self.time(fields["next_t_us"], seq_wire)}

    def decode(self, packet: bytes, live_next: int | None) -> np.ndarray:
        """One DATA packet (full or compact; a full one is never 20 bytes, docs/protocol.md) → samples; raises
        ``protocol.ProtocolError`` on bad bytes. live_next: one past the newest live sample, None before any."""
        ref_seq, ref_t = self.ref
        if len(packet) == protocol.COMPACT_PACKET_LEN:
            anchor_seq, anchor_t = self.period.anchor
            samples, rep = protocol.decode_compact_packets(
                [packet], seq_reference=ref_seq if ref_seq is not None else anchor_seq, t_anchor_us=anchor_t,
                seq_anchor=anchor_seq, period_us=self.period.period_us)
            if live_next is not None:
                samples["flags"][samples["seq"] < live_next] |= np.uint8(SampleFlag.BACKFILLED)
        else:
            samples, rep = protocol.decode_data_packets([packet], seq_reference=ref_seq, t_reference_us=ref_t)
            self.period.take_data_period(int.from_bytes(packet[10:12], "little"))
        self.ref = (rep.last_seq, rep.last_t_us)
        return samples
