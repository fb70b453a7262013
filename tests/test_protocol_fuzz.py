"""Fuzzing the protocol decoders: bad bytes raise only the documented errors; the deframer never raises and never
yields a packet that was not sent."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hipcheck import protocol as p

VECTOR_DIR = Path(__file__).resolve().parent / "vectors"
VECTORS = {path.stem: json.loads(path.read_text()) for path in sorted(VECTOR_DIR.glob("*.json"))}
PACKETS = {name: (VECTOR_DIR / f"{name}.bin").read_bytes() for name, v in VECTORS.items() if v["kind"] != "FRAME"}
KINDED = {n: b for n, b in PACKETS.items() if VECTORS[n]["kind"] in ("DATA", "COMMAND", "ACK", "EVENT", "LOG_CHUNK")}
DATA = [b for n, b in PACKETS.items() if VECTORS[n]["kind"] == "DATA"]
COMPACT = [b for n, b in PACKETS.items() if VECTORS[n]["kind"] == "COMPACT"]
COMPACT_CONTEXT = dict(seq_reference=100, t_anchor_us=0, seq_anchor=0, period_us=5000)

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def mutated(draw, pool: list[bytes]) -> bytes:
    """A valid packet with a few bytes changed, cut or appended: close enough to pass the first checks."""
    data = bytearray(draw(st.sampled_from(pool)))
    for _ in range(draw(st.integers(0, 3))):
        if data:
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    cut = draw(st.integers(0, len(data)))
    return bytes(data[:cut] if draw(st.booleans()) else data) + draw(st.binary(max_size=3))


any_packet = st.one_of(st.binary(max_size=300), mutated(list(PACKETS.values())))


@FAST
@given(any_packet)
def test_decode_packet_raises_only_protocol_errors(data):
    try:
        obj = p.decode_packet(data)
    except p.ProtocolError:
        return
    assert type(obj) in (p.DataPacket, p.Command, p.Ack, p.Event, p.LogChunk)


@FAST
@given(st.lists(st.one_of(st.binary(max_size=80), mutated(DATA), st.sampled_from(DATA)), max_size=12))
def test_decode_data_packets_strict_and_lenient(packets):
    try:
        strict_samples, _ = p.decode_data_packets(packets, strict=True)
    except p.ProtocolError:
        strict_samples = None
    samples, report = p.decode_data_packets(packets, strict=False)
    good = sorted(set(range(len(packets))) - {s.index for s in report.skipped})
    assert all(isinstance(s.error, p.ProtocolError) for s in report.skipped)
    assert (strict_samples is not None) == (report.skipped == [])
    # Lenient decoding equals decoding only the good packets, each of which decodes on its own.
    alone, _ = p.decode_data_packets([packets[i] for i in good])
    np.testing.assert_array_equal(samples, alone)
    assert len(samples) == sum(len(p.decode_packet(packets[i]).flags) for i in good)


@FAST
@given(st.lists(st.one_of(st.binary(min_size=18, max_size=22), mutated(COMPACT)), max_size=12))
def test_decode_compact_packets_strict_and_lenient(packets):
    try:
        p.decode_compact_packets(packets, strict=True, **COMPACT_CONTEXT)
    except p.ProtocolError:
        pass
    samples, report = p.decode_compact_packets(packets, strict=False, **COMPACT_CONTEXT)
    assert len(samples) + len(report.skipped) == len(packets)
    assert np.isfinite(samples["quat"]).all() and (samples["quat"][:, 0] >= 0).all()


@FAST
@given(st.binary(max_size=600))
def test_cobs_decode_raises_only_framing_errors(data):
    try:
        decoded = p.cobs_decode(data)
    except p.FramingError:
        return
    assert p.cobs_decode(p.cobs_encode(decoded)) == decoded


@FAST
@given(st.binary(max_size=1200))
def test_cobs_round_trip(data):
    encoded = p.cobs_encode(data)
    assert 0 not in encoded and p.cobs_decode(encoded) == data


@FAST
@given(st.lists(st.binary(max_size=700), max_size=8))
def test_deframer_never_raises(chunks):
    deframer = p.Deframer()
    for chunk in chunks:
        for packet in deframer.feed(chunk):
            assert 1 <= len(packet) <= p.MAX_PACKET_LEN
    assert len(deframer._pending) <= p.MAX_ENCODED_FRAME_LEN


@settings(max_examples=200, deadline=None)
@given(seq=st.integers(0, 2**32 - 1), t_us=st.integers(0, 2**32 - 1), period_us=st.integers(1, 65535),
       n=st.integers(1, 23), seed=st.integers(0, 2**32 - 1))
def test_data_round_trip_property(seq, t_us, period_us, n, seed):
    rng = np.random.default_rng(seed)
    fields = dict(quat_q14=rng.integers(-32768, 32768, (n, 4)), acc_raw=rng.integers(-32768, 32768, (n, 3)),
                  gyr_raw=rng.integers(-32768, 32768, (n, 3)), flags=rng.integers(0, 128, n))
    data = p.encode_data(seq, t_us, period_us, **fields)
    packet = p.decode_packet(data)
    assert p.encode_data(**packet._asdict()) == data
    samples, _ = p.decode_data_packets([data])
    assert samples["seq"].tolist() == list(range(seq, seq + n))
    assert samples["t_us"].tolist() == [t_us + i * period_us for i in range(n)]


# Truncating a packet with a fixed layout must raise; a variable tail (log data, upload chunk) may still decode, and
# so may a packet cut to exactly its shorter form without its optional fields (LOG_LIST's with_flags and flags).
@pytest.mark.parametrize("name", PACKETS)
def test_every_truncation_raises_documented_errors(name):
    data, kind = PACKETS[name], VECTORS[name]["kind"]
    has_tail = name in ("log_chunk", "cmd_cal_upload_first", "cmd_cal_upload_last")
    short_form = {"cmd_log_list_flags": 5, "cmd_log_list_flags_bad": 5, "ack_log_list_open": 16, "cmd_info_id": 3,
                  "cmd_info_id_bad": 3, "ack_info_id": 16}.get(name)
    for cut in range(len(data)):
        short = data[:cut]
        if kind == "DATA":
            with pytest.raises(p.TruncatedPacketError):
                p.decode_data_packets([short])
            _, report = p.decode_data_packets([short], strict=False)
            assert isinstance(report.skipped[0].error, p.TruncatedPacketError)
        elif kind == "COMPACT":
            with pytest.raises(p.TruncatedPacketError):
                p.decode_compact_packets([short], **COMPACT_CONTEXT)
        elif kind == "CAL_PROFILE":
            with pytest.raises(p.TruncatedPacketError):
                p.decode_cal_profile(short)
        else:
            try:
                decoded = p.decode_packet(short)
            except p.TruncatedPacketError:
                continue
            if cut == short_form:
                assert not {"with_flags", "flags", "with_id", "name_id"} & set(decoded.fields), decoded
                continue
            assert has_tail, f"{name} cut to {cut} bytes still decodes"


@pytest.mark.parametrize("name", PACKETS)
def test_every_truncated_frame_is_refused(name):
    framed = p.frame(PACKETS[name])
    for cut in range(len(framed) - 1):
        with pytest.raises(p.FramingError):
            p.unframe(framed[:cut])
        deframer = p.Deframer()
        assert deframer.feed(framed[:cut] + b"\x00") == []
        assert deframer.frames_ok == 0 and deframer.bytes_dropped == cut


# ------------------------------------------------------------------------------------- bit flips on the serial line


@st.composite
def damaged_stream(draw):
    packets = draw(st.lists(st.sampled_from(list(KINDED.values())), min_size=1, max_size=10))
    frames = [p.frame(x) for x in packets]
    stream = bytearray(b"".join(frames))
    flips = draw(st.lists(st.tuples(st.integers(0, len(stream) - 1), st.integers(0, 7)), min_size=1, max_size=3,
                          unique_by=lambda f: f))
    chunk_sizes = draw(st.lists(st.integers(1, 300), min_size=1, max_size=20))
    return packets, frames, stream, flips, chunk_sizes


# derandomize: a CRC-16 lets a damaged frame through with probability 2**-16 when the damage goes beyond 3 bits
# (a flipped COBS code byte moves zeros around); a fixed example set keeps that chance from making the test flaky.
@settings(max_examples=300, deadline=None, derandomize=True)
@given(damaged_stream())
def test_bit_flips_never_yield_a_packet_not_sent(case):
    packets, frames, stream, flips, chunk_sizes = case
    for position, bit in flips:
        stream[position] ^= 1 << bit
    stream += b"\x00"  # flush: a flipped final delimiter would otherwise leave the last frame pending
    deframer = p.Deframer()
    out, i, k = [], 0, 0
    while i < len(stream):
        n = chunk_sizes[k % len(chunk_sizes)]
        out += deframer.feed(bytes(stream[i:i + n]))
        i, k = i + n, k + 1

    # A frame arrives iff no flip hit its bytes, its delimiter, or the delimiter before it (which would merge it
    # with the frame before).
    ends = np.cumsum([len(f) for f in frames]) - 1
    starts = np.concatenate(([0], ends[:-1]))  # the previous delimiter; frame 0 starts the stream
    hit = {position for position, _ in flips}
    intact = [j for j in range(len(frames)) if not any(starts[j] <= h <= ends[j] for h in hit)]
    assert out == [packets[j] for j in intact]
    assert deframer.frames_ok == len(intact)
    assert deframer.crc_errors + deframer.cobs_errors + deframer.oversize_dropped >= 1

    sent_data = [packets[j] for j in intact if p.packet_type(packets[j]) == p.PacketType.DATA]
    got_data = [x for x in out if p.packet_type(x) == p.PacketType.DATA]
    got, _ = p.decode_data_packets(got_data)
    expected, _ = p.decode_data_packets(sent_data)
    np.testing.assert_array_equal(got, expected)
