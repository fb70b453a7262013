"""Protocol v1 throughput: decode of full-form (MTU 247) and compact (MTU 23) DATA packets, serial deframing.

Run: .venv/bin/python benchmarks/protocol.py [n_samples]   (default 1 000 000). Prints a table; asserts nothing.
"""

from __future__ import annotations

import sys

import numpy as np

from _timing import best_of

from hipcheck import protocol as p


def synthetic_walk(n: int, fs_hz: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Wire integers with realistic magnitudes (so zero bytes, and COBS blocks, are as frequent as in use)."""
    rng = np.random.default_rng(0)
    t_s = np.arange(n) / fs_hz
    roll = np.radians(4.0) * np.sin(2 * np.pi * 0.9 * t_s)
    pitch = np.radians(8.0) + np.radians(2.0) * np.sin(2 * np.pi * 1.8 * t_s)
    quat = np.stack([np.cos(roll / 2) * np.cos(pitch / 2), np.sin(roll / 2) * np.cos(pitch / 2),
                     np.cos(roll / 2) * np.sin(pitch / 2), -np.sin(roll / 2) * np.sin(pitch / 2)], axis=1)
    acc = np.stack([9.81 * np.sin(pitch), -9.81 * np.sin(roll), 9.81 + 2.5 * np.sin(2 * np.pi * 1.8 * t_s)], axis=1)
    gyr = np.gradient(np.stack([roll, pitch, 0.05 * roll], axis=1), axis=0) * fs_hz
    quat_q14, acc_raw, gyr_raw, flags = p.to_wire(quat, acc + rng.normal(0, 0.05, acc.shape),
                                                  gyr + rng.normal(0, 0.005, gyr.shape))
    return quat_q14, acc_raw, gyr_raw, flags | np.uint8(p.SampleFlag.GYR_BIAS_CALIBRATED | p.SampleFlag.ACC_CALIBRATED)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    period_us = 5000
    quat_q14, acc_raw, gyr_raw, flags = synthetic_walk(n, 1e6 / period_us)
    spp = p.samples_per_packet(247)
    rows = []

    t_enc, full = best_of(1, lambda: p.encode_data_packets(2**32 - 1000, 2**32 - 5_000_000, period_us, quat_q14,
                                                           acc_raw, gyr_raw, flags, samples_per_packet=spp))
    rows.append(("encode full (MTU 247, 11/packet)", t_enc, n, len(full), sum(map(len, full))))
    t_dec, (samples, _) = best_of(3, lambda: p.decode_data_packets(full))
    assert len(samples) == n
    rows.append(("decode_data_packets full", t_dec, n, len(full), sum(map(len, full))))

    t_enc, compact = best_of(1, lambda: p.encode_compact_packets(2**16 - 1000, quat_q14, acc_raw, gyr_raw))
    rows.append(("encode compact (MTU 23, 1/packet)", t_enc, n, len(compact), 20 * len(compact)))
    t_dec, (samples_c, _) = best_of(3, lambda: p.decode_compact_packets(
        compact, seq_reference=2**16 - 1000, t_anchor_us=0, seq_anchor=0, period_us=period_us))
    assert len(samples_c) == n
    rows.append(("decode_compact_packets", t_dec, n, len(compact), 20 * len(compact)))

    t_frame, stream = best_of(1, lambda: b"".join(map(p.frame, full)))
    rows.append(("frame (COBS + CRC) full packets", t_frame, n, len(full), len(stream)))

    def deframe() -> list[bytes]:
        deframer = p.Deframer()
        out = []
        for i in range(0, len(stream), 4096):  # serial reads of 4 KiB
            out += deframer.feed(stream[i:i + 4096])
        return out

    t_deframe, packets = best_of(3, deframe)
    assert packets == full
    rows.append(("Deframer.feed (4 KiB chunks)", t_deframe, n, len(full), len(stream)))
    t_all, _ = best_of(3, lambda: p.decode_data_packets(deframe()))
    rows.append(("deframe + decode full", t_all, n, len(full), len(stream)))

    print(f"hipcheck protocol v1, {n:,} samples at {1e6 / period_us:.0f} Hz, best of 3 (encode: 1 run)\n")
    print(f"| {'step':<34} | {'time ms':>8} | {'M samples/s':>11} | {'k packets/s':>11} | {'MB/s':>7} |")
    print(f"| {'-' * 34} | {'-' * 8}:| {'-' * 11}:| {'-' * 11}:| {'-' * 7}:|")
    for name, t, n_samples, n_packets, n_bytes in rows:
        print(f"| {name:<34} | {t * 1e3:8.1f} | {n_samples / t / 1e6:11.2f} | {n_packets / t / 1e3:11.1f} "
              f"| {n_bytes / t / 1e6:7.1f} |")
    hours = n * period_us / 1e6 / 3600
    print(f"\n{n:,} samples = {hours:.2f} h at {1e6 / period_us:.0f} Hz; serial stream {len(stream) / 1e6:.1f} MB "
          f"({len(stream) / sum(map(len, full)) - 1:.1%} framing overhead)")


if __name__ == "__main__":
    main()
