"""Wire protocol v1, host side: vectors, round trips, unwrapping, compact form, framing, errors."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import numpy as np
import pytest

from hipcheck import protocol as p
from hipcheck.protocol import EventCode, Opcode, SampleFlag, Status
from hipcheck.units import ACC_LSB_M_S2, GRAVITY_M_S2, GYR_LSB_RAD_S

ROOT = Path(__file__).resolve().parents[1]
VECTOR_DIR = ROOT / "tests" / "vectors"
VECTORS = {path.stem: json.loads(path.read_text()) for path in sorted(VECTOR_DIR.glob("*.json"))}


def vector_bytes(name: str) -> bytes:
    return (VECTOR_DIR / f"{name}.bin").read_bytes()


def encoder_kwargs(fields: dict) -> dict:
    """Vector fields to encoder keyword arguments: strings in vectors are bytes in hex."""
    return {k: bytes.fromhex(v) if isinstance(v, str) else v for k, v in fields.items()}


def encode_vector(vector: dict) -> bytes:
    fields = encoder_kwargs(vector["fields"])
    match vector["kind"]:
        case "DATA":
            return p.encode_data(**fields)
        case "COMPACT":
            return p.encode_compact(**fields)
        case "COMMAND":
            return p.encode_command(**fields)
        case "ACK":
            return p.encode_ack(**fields)
        case "EVENT":
            return p.encode_event(**fields)
        case "LOG_CHUNK":
            return p.encode_log_chunk(**fields)
        case "FRAME":
            return p.frame(fields["packet"])
        case "CAL_PROFILE":
            return p.encode_cal_profile(p.CalibrationProfile(**fields))
    raise AssertionError(f"unknown vector kind {vector['kind']}")


def as_json(value):
    """Decoded values in the vectors' JSON form: enums by name, bytes as hex, tuples as lists."""
    if hasattr(value, "name") and isinstance(value, int):
        return value.name
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, (list, tuple)):
        return [as_json(v) for v in value]
    if isinstance(value, dict):
        return {k: as_json(v) for k, v in value.items()}
    return value


def random_wire_samples(rng: np.random.Generator, n: int):
    quat = rng.normal(size=(n, 4))
    quat /= np.linalg.norm(quat, axis=1, keepdims=True)
    acc = rng.normal(0.0, 30.0, size=(n, 3))
    gyr = rng.normal(0.0, 5.0, size=(n, 3))
    quat_q14, acc_raw, gyr_raw, flags = p.to_wire(quat, acc, gyr)
    flags |= rng.integers(0, 0x80, n, dtype=np.uint8) & 0x7C  # calibration/rest/init/backfill bits
    return quat_q14, acc_raw, gyr_raw, flags


# ------------------------------------------------------------------------------------------------------ vectors


def test_vectors_present():
    kinds = {v["kind"] for v in VECTORS.values()}
    assert kinds == {"DATA", "COMPACT", "COMMAND", "ACK", "EVENT", "LOG_CHUNK", "FRAME", "CAL_PROFILE"}
    opcodes = {v["fields"]["opcode"] for v in VECTORS.values() if v["kind"] == "COMMAND"}
    assert opcodes == set(Opcode)
    codes = {v["fields"]["code"] for v in VECTORS.values() if v["kind"] == "EVENT"}
    assert codes == set(EventCode)


@pytest.mark.parametrize("name", VECTORS)
def test_vector_bin_matches_hex(name):
    assert vector_bytes(name).hex() == VECTORS[name]["hex"]


@pytest.mark.parametrize("name", VECTORS)
def test_encoder_reproduces_vector(name):
    assert encode_vector(VECTORS[name]) == vector_bytes(name)


@pytest.mark.parametrize("name", [n for n, v in VECTORS.items() if v["kind"] in ("DATA", "COMPACT")])
def test_decoder_yields_vector_samples(name):
    vector = VECTORS[name]
    if vector["kind"] == "DATA":
        samples, report = p.decode_data_packets([vector_bytes(name)])
    else:
        samples, report = p.decode_compact_packets([vector_bytes(name)], **vector["decode_context"])
    assert report.skipped == []
    decoded = vector["decoded"]
    for key in ("seq", "t_us", "flags"):
        assert samples[key].tolist() == decoded[key], key
    for key in ("quat", "acc_m_s2", "gyr_rad_s"):
        np.testing.assert_allclose(samples[key], np.array(decoded[key], dtype=np.float32), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", [n for n, v in VECTORS.items()
                                  if v["kind"] in ("COMMAND", "ACK", "EVENT", "LOG_CHUNK")])
def test_decoder_yields_vector_control(name):
    vector = VECTORS[name]
    obj = p.decode_packet(vector_bytes(name))
    assert {"type": type(obj).__name__, **as_json(obj._asdict())} == vector["decoded"]
    if vector["kind"] == "COMMAND":
        assert p.command_status(vector_bytes(name)).name == vector["device_status"]


@pytest.mark.parametrize("name", [n for n, v in VECTORS.items() if v["kind"] == "FRAME"])
def test_frame_vectors_unframe(name):
    data = vector_bytes(name)
    assert data.endswith(b"\x00") and 0 not in data[:-1]
    assert p.unframe(data).hex() == VECTORS[name]["decoded"]["packet"]
    deframer = p.Deframer()
    assert deframer.feed(data) == [bytes.fromhex(VECTORS[name]["decoded"]["packet"])]


def test_cal_profile_vector_decodes():
    profile = p.decode_cal_profile(vector_bytes("cal_profile"))
    decoded = VECTORS["cal_profile"]["decoded"]
    for key, values in profile._asdict().items():
        assert list(values) == decoded[key]


def test_docs_examples_are_the_vectors():
    """Every worked example in docs/protocol.md quotes its vector's bytes exactly."""
    text = (ROOT / "docs" / "protocol.md").read_text()
    examples = re.findall(r"`tests/vectors/(\w+)\.bin`[^`]*?```(?:text)?\n([0-9a-f \n]+)```", text)
    assert len(examples) >= 12
    for name, hex_text in examples:
        assert bytes.fromhex(hex_text.replace("\n", " ")) == vector_bytes(name), name
    documented = {name for name, _ in examples}
    for kind in ("DATA", "COMPACT", "COMMAND", "ACK", "EVENT", "LOG_CHUNK", "FRAME", "CAL_PROFILE"):
        assert any(VECTORS[name]["kind"] == kind for name in documented), kind


# -------------------------------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("name", [n for n, v in VECTORS.items()
                                  if v["kind"] in ("COMMAND", "ACK", "EVENT", "LOG_CHUNK")])
def test_control_round_trip(name):
    data = vector_bytes(name)
    obj = p.decode_packet(data)
    match obj:
        case p.Command(opcode, token, fields):
            again = p.encode_command(opcode, token, **fields)
        case p.Ack(opcode, token, status, fields):
            again = p.encode_ack(opcode, token, status, **fields)
        case p.Event(code, t_us, seq, fields):
            again = p.encode_event(code, t_us, seq, **fields)
        case p.LogChunk():
            again = p.encode_log_chunk(*obj)
    assert again == data


def test_every_layout_round_trips_and_fits_min_payload():
    """Every command, OK-ack and event payload round-trips at its field maxima and fits 20 bytes."""
    def max_fields(layout: p.Layout) -> dict:
        fields = {}
        for fmt, name in zip(layout.fmt, layout.names):
            if name != layout.count:
                fields[name] = {"B": 0xFF, "H": 0xFFFF, "I": 0xFFFFFFFF, "h": -0x8000}[fmt]
        if layout.tail == "steps":
            fields["steps"] = [(0xFF, 0xFF)] * p.MAX_VIBRATE_STEPS
        elif layout.tail:
            fields[layout.tail] = b"\xab" * p.MAX_CAL_CHUNK_LEN
        return fields

    for opcode, layout in p.COMMAND_LAYOUTS.items():
        data = p.encode_command(opcode, 0xFF, **max_fields(layout))
        assert len(data) <= p.MIN_PAYLOAD_LEN, opcode
        assert p.decode_packet(data) == p.Command(opcode, 0xFF, p.decode_packet(data).fields)
        assert p.encode_command(*p.decode_packet(data)[:2], **p.decode_packet(data).fields) == data
    for opcode, layout in p.ACK_LAYOUTS.items():
        fields = max_fields(layout)
        data = p.encode_ack(opcode, 7, Status.OK, **fields)
        assert len(data) <= p.MIN_PAYLOAD_LEN, opcode
        assert p.decode_packet(data) == p.Ack(opcode, 7, Status.OK, fields)
    for code, layout in p.EVENT_LAYOUTS.items():
        fields = max_fields(layout)
        data = p.encode_event(code, 2**32 - 1, 2**32 - 1, **fields)
        assert len(data) <= p.MIN_PAYLOAD_LEN, code
        assert p.decode_packet(data) == p.Event(code, 2**32 - 1, 2**32 - 1, fields)
    assert len(p.encode_command(Opcode.VIBRATE, 0, intensity_pct=1, repeat=0, steps=[(1, 1)] * 7)) == 20
    assert len(p.encode_command(Opcode.CAL_UPLOAD, 0, total_len=79, offset=0, chunk=bytes(13))) == 20


def test_data_round_trip_random():
    rng = np.random.default_rng(1)
    for n in (1, 2, 11, 23):
        q, a, g, f = random_wire_samples(rng, n)
        data = p.encode_data(2**32 - 3, 2**32 - 10, 2500, q, a, g, f)
        assert len(data) == p.data_packet_len(n)
        packet = p.decode_packet(data)
        assert packet.seq == 2**32 - 3 and packet.t_us == 2**32 - 10 and packet.period_us == 2500
        for got, sent in zip(packet[3:], (q, a, g, f)):
            np.testing.assert_array_equal(got, sent)
        assert p.encode_data(**packet._asdict()) == data


def test_decoded_physical_values():
    quat = [[1.0, 0.0, 0.0, 0.0], [0.5, -0.5, 0.5, -0.5]]
    acc = [[0.0, 0.0, GRAVITY_M_S2], [-2 * GRAVITY_M_S2, 0.1, 0.0]]
    gyr = [[0.0, np.radians(90.0), 0.0], [-1.0, 0.0, 0.0]]
    samples, _ = p.decode_data_packets([p.encode_data(0, 0, 10_000, *p.to_wire(quat, acc, gyr))])
    np.testing.assert_allclose(samples["quat"], quat, atol=1 / 16384)
    np.testing.assert_allclose(samples["acc_m_s2"], acc, atol=ACC_LSB_M_S2 / 2 * 1.001)
    np.testing.assert_allclose(samples["gyr_rad_s"], gyr, atol=GYR_LSB_RAD_S / 2 * 1.001)
    assert p.to_wire(quat, acc, gyr)[1][0, 2] == 2048  # 1 g = 2048 LSB


def test_encode_data_packets_matches_single_encoder():
    rng = np.random.default_rng(2)
    q, a, g, f = random_wire_samples(rng, 25)
    packets = p.encode_data_packets(2**32 - 12, 2**32 - 50_000, 5000, q, a, g, f, samples_per_packet=11)
    assert [len(x) for x in packets] == [p.data_packet_len(11)] * 2 + [p.data_packet_len(3)]
    for k, packet in enumerate(packets):
        i = 11 * k
        j = min(i + 11, 25)
        assert packet == p.encode_data(2**32 - 12 + i, 2**32 - 50_000 + i * 5000, 5000, q[i:j], a[i:j], g[i:j], f[i:j])


def test_compact_round_trip_random():
    rng = np.random.default_rng(3)
    q, a, g, _ = random_wire_samples(rng, 500)
    packets = p.encode_compact_packets(65_000, q, a, g)
    assert all(len(x) == 20 for x in packets)
    assert packets[7] == p.encode_compact(65_007, q[7], a[7], g[7])
    samples, report = p.decode_compact_packets(packets, seq_reference=64_990, t_anchor_us=1_000_000,
                                               seq_anchor=65_000, period_us=5000)
    assert report.skipped == [] and report.last_seq == 65_499
    np.testing.assert_array_equal(samples["seq"], 65_000 + np.arange(500))
    np.testing.assert_array_equal(samples["t_us"], 1_000_000 + 5000 * np.arange(500))
    np.testing.assert_allclose(samples["acc_m_s2"], a * ACC_LSB_M_S2, rtol=1e-6)
    np.testing.assert_allclose(samples["gyr_rad_s"], g * GYR_LSB_RAD_S, rtol=1e-6)


def test_all_packet_kinds_round_trip_through_serial():
    packets = [vector_bytes(n) for n, v in VECTORS.items() if v["kind"] in ("DATA", "COMMAND", "ACK", "EVENT",
                                                                           "LOG_CHUNK")]
    stream = b"".join(p.frame(x) for x in packets)
    deframer = p.Deframer()
    assert deframer.feed(stream) == packets
    assert deframer.frames_ok == len(packets) and deframer.bytes_dropped == 0


# ------------------------------------------------------------------------------------------------ unwrapping


def _stream(seq0: int, t0_us: int, period_us: int, n_packets: int, spp: int = 4) -> list[bytes]:
    rng = np.random.default_rng(4)
    return p.encode_data_packets(seq0, t0_us, period_us, *random_wire_samples(rng, n_packets * spp),
                                 samples_per_packet=spp)


def test_seq_and_time_unwrap_across_2_32():
    packets = _stream(2**32 - 10, 2**32 - 30_000, 10_000, 6)
    samples, report = p.decode_data_packets(packets)
    np.testing.assert_array_equal(samples["seq"], 2**32 - 10 + np.arange(24))
    np.testing.assert_array_equal(samples["t_us"], 2**32 - 30_000 + 10_000 * np.arange(24))
    assert report.last_seq == 2**32 + 13


def test_time_unwraps_over_gap_longer_than_wrap():
    """Three hours (2.5 wraps of t_us) between two packets: the seq*period prediction bridges it."""
    period_us = 5000
    gap_samples = 3 * 3600 * 1_000_000 // period_us
    first = _stream(100, 2**32 - 7000, period_us, 1)
    later = _stream(100 + gap_samples, (2**32 - 7000 + gap_samples * period_us + 1234) % 2**32, period_us, 1)
    samples, _ = p.decode_data_packets(first + later)
    assert samples["seq"][4] == 100 + gap_samples
    assert samples["t_us"][4] == 2**32 - 7000 + gap_samples * period_us + 1234  # 1.2 ms of clock drift kept


def test_unwrap_chained_calls_equal_one_call():
    packets = _stream(2**32 - 50, 2**32 - 100_000, 2500, 40)
    whole, _ = p.decode_data_packets(packets)
    parts, ref = [], {}
    for i in range(0, 40, 7):
        samples, report = p.decode_data_packets(packets[i:i + 7], **ref)
        parts.append(samples)
        ref = dict(seq_reference=report.last_seq, t_reference_us=report.last_t_us)
    np.testing.assert_array_equal(np.concatenate(parts), whole)


def test_unwrap_with_reference_past_several_wraps():
    packets = _stream(5, 1000, 2500, 2)
    samples, _ = p.decode_data_packets(packets, seq_reference=3 * 2**32 + 2, t_reference_us=7 * 2**32 + 900)
    assert samples["seq"][0] == 3 * 2**32 + 5
    assert samples["t_us"][0] == 7 * 2**32 + 1000


def test_backfilled_packet_between_live_packets_unwraps():
    live = _stream(2**32 + 100, 0, 10_000, 3)  # seq taken mod 2**32: 100...
    old = _stream(2**32 - 20, 2**32 - 1_200_000, 10_000, 1)
    samples, _ = p.decode_data_packets([live[0], old[0], live[1]], seq_reference=2**32 + 90)
    assert samples["seq"][:4].tolist() == [2**32 + 100 + i for i in range(4)]
    assert samples["seq"][4:8].tolist() == [2**32 - 20 + i for i in range(4)]
    assert samples["seq"][8] == 2**32 + 104
    assert samples["t_us"][8] - samples["t_us"][0] == 40_000


def test_mixed_packet_lengths_keep_packet_order():
    rng = np.random.default_rng(5)
    packets, expected_seq = [], []
    seq = 0
    for n in (3, 11, 1, 11, 5, 3):
        packets.append(p.encode_data(seq, seq * 1000, 1000, *random_wire_samples(rng, n)))
        expected_seq += range(seq, seq + n)
        seq += n
    samples, report = p.decode_data_packets(packets)
    assert samples["seq"].tolist() == expected_seq
    assert samples["t_us"].tolist() == [s * 1000 for s in expected_seq]
    assert report.n_samples == seq


def test_compact_seq_unwrap_across_16_bits():
    rng = np.random.default_rng(6)
    q, a, g, _ = random_wire_samples(rng, 10)
    packets = p.encode_compact_packets(0x2_FFFB, q, a, g)
    keep = [0, 1, 2, 5, 6, 9]  # some lost
    samples, _ = p.decode_compact_packets([packets[i] for i in keep], seq_reference=0x2_FFF0, t_anchor_us=0,
                                          seq_anchor=0x2_FFF0, period_us=1000)
    assert samples["seq"].tolist() == [0x2_FFFB + i for i in keep]
    assert samples["t_us"].tolist() == [(0x2_FFFB + i - 0x2_FFF0) * 1000 for i in keep]


# ------------------------------------------------------------------------------------------------ compact form


def test_compact_w_reconstruction_and_sign():
    rng = np.random.default_rng(7)
    quat = rng.normal(size=(2000, 4))
    quat /= np.linalg.norm(quat, axis=1, keepdims=True)
    q14, a, g, _ = p.to_wire(quat, np.zeros((2000, 3)), np.zeros((2000, 3)))
    samples, _ = p.decode_compact_packets(p.encode_compact_packets(0, q14, a, g), seq_reference=0,
                                          t_anchor_us=0, seq_anchor=0, period_us=1)
    assert (samples["quat"][:, 0] >= 0).all()
    same_rotation = np.where(quat[:, :1] < 0, -quat, quat)
    # w is derived from three rounded components: its error grows as w -> 0, bounded by ~sqrt(3/16384)/...
    np.testing.assert_allclose(samples["quat"][:, 1:], same_rotation[:, 1:], atol=0.5 / 16384 + 1e-7)
    w_err = np.abs(samples["quat"][:, 0] - same_rotation[:, 0])
    assert np.median(w_err) < 1e-4 and w_err.max() < 0.02
    np.testing.assert_allclose(np.linalg.norm(samples["quat"], axis=1), 1.0, atol=2e-4)


def test_compact_negates_quaternion_with_negative_w():
    plus = p.encode_compact(1, [16000, 1000, -2000, 3000], [0, 0, 0], [0, 0, 0])
    minus = p.encode_compact(1, [-16000, -1000, 2000, -3000], [0, 0, 0], [0, 0, 0])
    assert plus == minus
    assert plus[2:8] == np.array([1000, -2000, 3000], "<i2").tobytes()


def test_compact_quaternion_longer_than_one_is_rejected():
    data = np.zeros(1, p.COMPACT_SAMPLE_DTYPE)
    data["quat_xyz_q14"] = [16384, 300, 0]
    with pytest.raises(p.BadFieldError, match="compact packet 0: quaternion"):
        p.decode_compact_packets([data.tobytes()], seq_reference=0, t_anchor_us=0, seq_anchor=0, period_us=1)
    data["quat_xyz_q14"] = [16384, 1, 0]  # rounding: still accepted, w = 0
    samples, _ = p.decode_compact_packets([data.tobytes()], seq_reference=0, t_anchor_us=0, seq_anchor=0,
                                          period_us=1)
    assert samples["quat"][0, 0] == 0.0


def test_compact_saturation_flags_from_values():
    packets = [p.encode_compact(0, [16384, 0, 0, 0], [32767, 0, 0], [0, 0, 0]),
               p.encode_compact(1, [16384, 0, 0, 0], [0, -32767, 0], [0, 0, -32768]),
               p.encode_compact(2, [16384, 0, 0, 0], [32766, 0, 0], [-32766, 0, 0])]
    samples, _ = p.decode_compact_packets(packets, seq_reference=0, t_anchor_us=0, seq_anchor=0, period_us=1)
    assert samples["flags"].tolist() == [1, 3, 0]


# ------------------------------------------------------------------------------------------ batching, to_wire


@pytest.mark.parametrize("mtu, expected", [(23, 0), (35, 0), (36, 1), (185, 8), (247, 11), (517, 23)])
def test_samples_per_packet(mtu, expected):
    assert p.samples_per_packet(mtu) == expected


def test_samples_per_packet_is_the_most_that_fits():
    for mtu in range(36, 518):
        n = p.samples_per_packet(mtu)
        assert p.data_packet_len(n) <= mtu - 3 < p.data_packet_len(n + 1)
    with pytest.raises(ValueError, match="below the BLE minimum"):
        p.samples_per_packet(22)


def test_full_data_packet_is_never_20_bytes():
    assert p.COMPACT_PACKET_LEN not in {p.data_packet_len(n) for n in range(1, 256)}


def test_to_wire_rounds_and_sets_saturation_flags():
    acc = [[0.0, 0.0, 9.80665], [16.5 * 9.80665, 0.0, 0.0], [0.0, -16.0 * 9.80665, 0.0], [0.0, 0.0, 15.99 * 9.80665]]
    gyr = [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [np.radians(-2100.0), 0.0, 0.0], [0.0, np.radians(1999.0), 0.0]]
    quat = [[1.0, 0.0, 0.0, 0.0]] * 4
    q14, acc_raw, gyr_raw, flags = p.to_wire(quat, acc, gyr)
    assert q14.dtype == np.int16 and q14[0].tolist() == [16384, 0, 0, 0]
    assert acc_raw[:, :].tolist()[1][0] == 32767 and acc_raw[2, 1] == -32768 and gyr_raw[2, 0] == -32768
    assert flags.tolist() == [0, SampleFlag.ACC_SATURATED, SampleFlag.ACC_SATURATED | SampleFlag.GYR_SATURATED, 0]
    assert p.to_wire([1.0, 0, 0, 0], [0, 0, 0], [0, 0, 0])[3] == 0  # one sample without a leading axis


def test_to_wire_refuses_nan():
    with pytest.raises(p.BadFieldError, match="acc_m_s2 holds NaN"):
        p.to_wire([[1.0, 0, 0, 0]], [[np.nan, 0, 0]], [[0, 0, 0]])


def test_encoders_refuse_out_of_range_values():
    one = ([[16384, 0, 0, 0]], [[0, 0, 0]], [[0, 0, 0]])
    with pytest.raises(p.BadFieldError, match="reserved"):
        p.encode_data(0, 0, 1000, *one, [0x80])
    with pytest.raises(p.BadFieldError, match="period_us 0"):
        p.encode_data(0, 0, 0, *one, [0])
    with pytest.raises(p.BadFieldError, match="acc_raw must lie"):
        p.encode_data(0, 0, 1000, [[16384, 0, 0, 0]], [[40000, 0, 0]], [[0, 0, 0]], [0])
    with pytest.raises(p.BadFieldError, match="24 samples, a DATA packet holds 1 to 23"):
        p.encode_data(0, 0, 1000, [[16384, 0, 0, 0]] * 24, [[0, 0, 0]] * 24, [[0, 0, 0]] * 24, [0] * 24)
    with pytest.raises(p.BadFieldError, match="integers"):
        p.encode_data(0, 0, 1000, [[1.0, 0, 0, 0]], [[0, 0, 0]], [[0, 0, 0]], [0])
    with pytest.raises(p.BadFieldError, match="rate_hz"):
        p.encode_command(Opcode.SET_RATE, 1)
    with pytest.raises(p.BadFieldError, match="SET_RATE command"):
        p.encode_command(Opcode.SET_RATE, 1, rate_hz=70_000)
    with pytest.raises(p.BadFieldError, match="not a v1 Opcode"):
        p.encode_command(0x42, 1)
    with pytest.raises(p.BadFieldError, match="takes fields"):
        p.encode_ack(Opcode.TIME_SYNC, 1, Status.BUSY, host_token=1)
    with pytest.raises(p.BadFieldError):
        p.encode_log_chunk(1, 2, 3, 5)  # an int is not bytes


# --------------------------------------------------------------------------------------------- decode errors


def test_unknown_version_raises():
    data = bytearray(vector_bytes("cmd_start"))
    data[0] = (2 << 5) | 2
    with pytest.raises(p.UnknownVersionError, match="kind byte 0x42 carries protocol version 2"):
        p.decode_packet(bytes(data))
    with pytest.raises(p.UnknownVersionError, match="packet 1: kind byte 0x01"):
        p.decode_data_packets([vector_bytes("data_1_sample"), b"\x01" + vector_bytes("data_1_sample")[1:]])


@pytest.mark.parametrize("kind", [0x20, 0x26, 0x3F])
def test_unknown_packet_type_raises(kind):
    with pytest.raises(p.UnknownPacketTypeError, match=f"kind byte 0x{kind:02x} names packet type"):
        p.decode_packet(bytes([kind, 1, 2, 3]))


def test_non_data_packet_to_data_decoder_raises():
    with pytest.raises(p.UnknownPacketTypeError, match="packet 0: kind byte 0x23 is ACK, not DATA"):
        p.decode_data_packets([vector_bytes("ack_start_ok")])


def test_data_length_errors_name_the_packet():
    good = vector_bytes("data_11_samples")
    with pytest.raises(p.TruncatedPacketError, match=r"packet 2: 200 bytes, but n_samples = 11 needs 243"):
        p.decode_data_packets([good, good, good[:200]])
    with pytest.raises(p.BadLengthError, match="packet 1: 244 bytes"):
        p.decode_data_packets([good, good + b"\x00"])
    with pytest.raises(p.TruncatedPacketError, match="shorter than the 12-byte DATA header"):
        p.decode_packet(good[:7])
    with pytest.raises(p.TruncatedPacketError, match="empty"):
        p.decode_packet(b"")
    assert issubclass(p.TruncatedPacketError, p.BadLengthError)
    assert issubclass(p.ProtocolError, ValueError)


def test_data_field_errors():
    good = bytearray(vector_bytes("data_1_sample"))
    zero_n = bytes(good[:1]) + b"\x00" + bytes(good[2:12])
    with pytest.raises(p.BadFieldError, match="n_samples is 0"):
        p.decode_data_packets([zero_n])
    zero_period = bytes(good[:10]) + b"\x00\x00" + bytes(good[12:])
    with pytest.raises(p.BadFieldError, match="period_us is 0"):
        p.decode_data_packets([zero_period])
    reserved = bytes(good[:-1]) + bytes([good[-1] | 0x80])
    with pytest.raises(p.BadFieldError, match="sample 0 has reserved flag bit 7"):
        p.decode_packet(reserved)


def test_non_strict_decode_skips_and_reports():
    good = vector_bytes("data_11_samples")
    one = vector_bytes("data_1_sample")
    packets = [good, b"", good[:100], one, b"\x41" + good[1:], vector_bytes("ack_start_ok"), good + b"x", one]
    samples, report = p.decode_data_packets(packets, strict=False)
    assert report.n_packets == 8 and report.n_samples == len(samples) == 13
    assert [(s.index, type(s.error)) for s in report.skipped] == [
        (1, p.TruncatedPacketError), (2, p.TruncatedPacketError), (4, p.UnknownVersionError),
        (5, p.UnknownPacketTypeError), (6, p.BadLengthError)]
    assert "packet 6" in str(report.skipped[-1].error)


def test_compact_length_errors():
    good = vector_bytes("compact_basic")
    ctx = VECTORS["compact_basic"]["decode_context"]
    with pytest.raises(p.TruncatedPacketError, match="compact packet 1: 19 bytes"):
        p.decode_compact_packets([good, good[:19]], **ctx)
    with pytest.raises(p.BadLengthError, match="compact packet 0: 33 bytes"):
        p.decode_compact_packets([vector_bytes("data_1_sample")], **ctx)
    samples, report = p.decode_compact_packets([good, good[:3], good], strict=False, **ctx)
    assert len(samples) == 2 and [s.index for s in report.skipped] == [1]


def test_control_decode_errors():
    with pytest.raises(p.BadFieldError, match="66 is not a v1 Opcode"):
        p.decode_packet(bytes([0x22, 0x42, 1]))
    with pytest.raises(p.TruncatedPacketError, match="TIME_SYNC command: 2 payload bytes, needs 4"):
        p.decode_packet(vector_bytes("cmd_time_sync")[:-2])
    with pytest.raises(p.BadLengthError, match="START command: 1 unexpected bytes"):
        p.decode_packet(vector_bytes("cmd_start") + b"\x00")
    with pytest.raises(p.TruncatedPacketError, match="n_steps = 7 needs 14 bytes"):
        p.decode_packet(vector_bytes("cmd_vibrate_7_steps")[:-1])
    with pytest.raises(p.BadFieldError, match="12 is not a v1 Status"):
        p.decode_packet(bytes([0x23, 1, 1, 12]))
    with pytest.raises(p.BadLengthError, match="ACK SET_RATE OUT_OF_RANGE"):
        p.decode_packet(vector_bytes("ack_set_rate_out_of_range") + b"\x01")
    with pytest.raises(p.BadFieldError, match="9 is not a v1 EventCode"):
        p.decode_packet(bytes([0x24, 9]) + bytes(8))
    with pytest.raises(p.TruncatedPacketError, match="LOG_CHUNK"):
        p.decode_packet(bytes([0x25, 1, 0]))


def test_command_status():
    def status(opcode, **fields):
        return p.command_status(p.encode_command(opcode, 1, **fields))

    assert status(Opcode.SET_RATE, rate_hz=400) == Status.OK
    assert status(Opcode.SET_RATE, rate_hz=401) == Status.OUT_OF_RANGE
    assert status(Opcode.VIBRATE, intensity_pct=101, repeat=0, steps=[(1, 1)]) == Status.OUT_OF_RANGE
    assert status(Opcode.VIBRATE, intensity_pct=100, repeat=0, steps=[]) == Status.OUT_OF_RANGE
    assert status(Opcode.VIBRATE, intensity_pct=100, repeat=0, steps=[(1, 1)] * 8) == Status.TOO_LONG
    assert status(Opcode.SET_THRESHOLDS, enable_mask=16, drop_cdeg=1, sway_mm=1, tilt_cdeg=1, hysteresis_pct=0,
                  refractory_ms=0) == Status.OUT_OF_RANGE
    assert status(Opcode.CAL_UPLOAD, total_len=80, offset=0, chunk=b"x") == Status.BAD_LENGTH
    assert status(Opcode.CAL_UPLOAD, total_len=79, offset=78, chunk=b"xy") == Status.OUT_OF_RANGE
    assert p.command_status(bytes([0x22, 0x42, 1])) == Status.UNKNOWN_COMMAND
    assert p.command_status(bytes([0x42, 0x01, 1])) == Status.UNSUPPORTED_VERSION
    assert p.command_status(bytes([0x22, 0x03, 1, 0x64])) == Status.BAD_LENGTH
    assert p.command_status(vector_bytes("ack_start_ok")) == Status.UNKNOWN_COMMAND


def test_cal_profile_upload_reassembles():
    blob = vector_bytes("cal_profile")
    assert len(blob) == p.CAL_PROFILE_LEN == 79
    commands = [p.decode_packet(c) for c in p.cal_upload_commands(blob, first_token=250)]
    assert [c.token for c in commands] == [250, 251, 252, 253, 254, 255, 0]
    assert all(len(p.encode_command(c.opcode, c.token, **c.fields)) <= 20 for c in commands)
    assert b"".join(c.fields["chunk"] for c in commands) == blob
    assert all(p.command_status(p.encode_command(c.opcode, c.token, **c.fields)) == Status.OK for c in commands)
    with pytest.raises(p.BadFieldError, match="CRC"):
        p.decode_cal_profile(blob[:10] + bytes([blob[10] ^ 1]) + blob[11:])
    with pytest.raises(p.TruncatedPacketError):
        p.decode_cal_profile(blob[:-1])


# ------------------------------------------------------------------------------------------------ CRC and COBS


def crc16_bitwise(data: bytes) -> int:
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021 if crc & 0x8000 else crc << 1) & 0xFFFF
    return crc


def test_crc_check_value_and_reference():
    assert p.crc16_ccitt(b"123456789") == 0x29B1
    assert p.crc16_ccitt(b"") == 0xFFFF
    rng = random.Random(8)
    for n in (1, 2, 17, 300):
        data = bytes(rng.randrange(256) for _ in range(n))
        assert p.crc16_ccitt(data) == crc16_bitwise(data)


@pytest.mark.parametrize("data, encoded", [
    (b"", b"\x01"),
    (b"\x00", b"\x01\x01"),
    (b"\x00\x00", b"\x01\x01\x01"),
    (b"\x11\x22\x00\x33", b"\x03\x11\x22\x02\x33"),
    (b"\x11\x00\x00\x00", b"\x02\x11\x01\x01\x01"),
    (bytes(range(1, 255)), b"\xff" + bytes(range(1, 255))),  # 254 non-zero: no block after the full one
    (bytes(range(1, 256)), b"\xff" + bytes(range(1, 255)) + b"\x02\xff"),
    (bytes(range(0, 255)), b"\x01\xff" + bytes(range(1, 255))),
    (bytes(range(2, 256)) + b"\x00", b"\xff" + bytes(range(2, 256)) + b"\x01\x01"),
])
def test_cobs_known_encodings(data, encoded):
    assert p.cobs_encode(data) == encoded
    assert p.cobs_decode(encoded) == data


@pytest.mark.parametrize("n", [0, 1, 253, 254, 255, 256, 508, 510])
@pytest.mark.parametrize("fill", ["zeros", "nonzero", "mixed"])
def test_cobs_round_trip_edges(n, fill):
    data = {"zeros": bytes(n), "nonzero": bytes(i % 255 + 1 for i in range(n)),
            "mixed": bytes(i % 7 for i in range(n))}[fill]
    encoded = p.cobs_encode(data)
    assert 0 not in encoded
    assert len(encoded) <= len(data) + len(data) // 254 + 1
    assert p.cobs_decode(encoded) == data


def test_cobs_decode_errors():
    with pytest.raises(p.FramingError, match="empty"):
        p.cobs_decode(b"")
    with pytest.raises(p.FramingError, match="0x00 at byte 2"):
        p.cobs_decode(b"\x03\x11\x00")
    with pytest.raises(p.FramingError, match="runs 2 bytes past the end"):
        p.cobs_decode(b"\x05\x11\x22")
    with pytest.raises(p.FramingError, match="0x00 at byte 0"):
        p.cobs_decode(b"\x00")


def test_frame_and_unframe():
    packet = vector_bytes("data_11_samples")
    framed = p.frame(packet)
    assert framed.endswith(b"\x00") and 0 not in framed[:-1]
    assert p.unframe(framed) == packet
    damaged = bytearray(framed)
    damaged[40] ^= 0x04
    with pytest.raises(p.FramingError):
        p.unframe(bytes(damaged))
    with pytest.raises(p.BadLengthError):
        p.frame(bytes(511))
    with pytest.raises(p.BadLengthError):
        p.frame(b"")
    assert p.unframe(p.frame(b"\x25" + bytes(509))) == b"\x25" + bytes(509)


# ---------------------------------------------------------------------------------------------------- Deframer


def _frames() -> tuple[list[bytes], bytes]:
    packets = [vector_bytes(n) for n in ("data_1_sample", "ack_time_sync", "data_11_samples", "event_alert",
                                         "log_chunk", "cmd_start")]
    packets.append(bytes.fromhex(VECTORS["frame_log_chunk_300"]["decoded"]["packet"]))
    return packets, b"".join(p.frame(x) for x in packets)


def test_deframer_one_byte_at_a_time():
    packets, stream = _frames()
    deframer = p.Deframer()
    out = [x for i in range(len(stream)) for x in deframer.feed(stream[i:i + 1])]
    assert out == packets and deframer.frames_ok == len(packets)


def test_deframer_random_chunks():
    packets, stream = _frames()
    rng = random.Random(9)
    for _ in range(20):
        deframer = p.Deframer()
        out, i = [], 0
        while i < len(stream):
            n = rng.randint(1, 200)
            out += deframer.feed(memoryview(stream)[i:i + n])
            i += n
        assert out == packets


def test_deframer_garbage_prefix_loses_only_the_first_frame():
    """Garbage runs into the first frame (no delimiter between them): that frame is lost, the rest arrive."""
    packets, stream = _frames()
    deframer = p.Deframer()
    garbage = bytes([0x13, 0x37, 0xFF, 0x42, 0x99])
    assert deframer.feed(garbage + stream) == packets[1:]
    assert deframer.cobs_errors + deframer.crc_errors == 1
    assert deframer.bytes_dropped == len(garbage) + len(p.frame(packets[0])) - 1
    # A delimiter after the garbage (a sender's idle 0x00 on connect) saves the first frame too.
    deframer = p.Deframer()
    assert deframer.feed(garbage + b"\x00" + stream) == packets and deframer.bytes_dropped == len(garbage)


def test_deframer_garbage_within_a_frame_loses_only_that_frame():
    packets, _ = _frames()
    frames = [p.frame(x) for x in packets]
    frames[2] = frames[2][:30] + b"\x55\x66\x77" + frames[2][30:]
    deframer = p.Deframer()
    assert deframer.feed(b"".join(frames)) == packets[:2] + packets[3:]
    assert deframer.frames_ok == len(packets) - 1
    assert deframer.crc_errors + deframer.cobs_errors == 1
    assert deframer.bytes_dropped == len(frames[2]) - 1


def test_deframer_zero_inside_frame_splits_it_and_loses_it():
    packets, _ = _frames()
    frames = [p.frame(x) for x in packets]
    frames[2] = frames[2][:30] + b"\x00" + frames[2][31:]
    deframer = p.Deframer()
    assert deframer.feed(b"".join(frames)) == packets[:2] + packets[3:]
    assert deframer.crc_errors + deframer.cobs_errors == 2


def test_deframer_drops_oversize_runs_and_resyncs():
    packets, stream = _frames()
    deframer = p.Deframer()
    out = deframer.feed(b"\x07" * 2000)
    out += deframer.feed(b"\x07" * 100 + b"\x00" + stream)
    assert out == packets
    assert deframer.oversize_dropped == 1 and deframer.bytes_dropped == 2100
    # A frame decoding past 512 bytes is dropped too, even if its encoding fits the run limit.
    too_long = p.cobs_encode(bytes(513)) + b"\x00"
    assert len(too_long) <= p.MAX_ENCODED_FRAME_LEN + 1
    assert deframer.feed(too_long) == [] and deframer.oversize_dropped == 2


def test_deframer_ignores_idle_delimiters():
    packets, stream = _frames()
    deframer = p.Deframer()
    assert deframer.feed(b"\x00\x00" + stream.replace(b"\x00", b"\x00\x00")) == packets
    assert deframer.bytes_dropped == 0 and deframer.cobs_errors == 0


def test_data_layout_matches_the_documented_byte_table():
    """Built by hand from the table in docs/protocol.md with struct, independently of the numpy dtypes."""
    import struct

    quat, acc, gyr, flags = (16384, -1, 2, -3), (0, 100, 2048), (-32768, 32767, 5), 0b0000_1100
    by_hand = struct.pack("<BBIIH", 0x21, 1, 0x01020304, 0xFFFFFFF0, 10_000) + struct.pack(
        "<4h3h3hB", *quat, *acc, *gyr, flags
    )
    assert len(by_hand) == 12 + 21
    assert p.encode_data(0x01020304, 0xFFFFFFF0, 10_000, [quat], [acc], [gyr], [flags]) == by_hand
    compact_by_hand = struct.pack("<H3h3h3h", 0xBEEF, *quat[1:], *acc, *gyr)
    assert p.encode_compact(0x1234BEEF, (16383, *quat[1:]), acc, gyr) == compact_by_hand
    command_by_hand = struct.pack("<BBBBBB", 0x22, 0x04, 9, 80, 1, 2) + bytes([10, 5, 20, 0])
    assert p.encode_command(p.Opcode.VIBRATE, 9, intensity_pct=80, repeat=1, steps=[(10, 5), (20, 0)]) == command_by_hand
