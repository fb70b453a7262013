"""Regenerate the protocol v1 test vectors: `.venv/bin/python tests/vectors/make_vectors.py`.

Deterministic: integer inputs are fixed here (motion-like samples come from closed-form formulas rounded once),
so running it again rewrites identical files. Each vector is NAME.bin (the exact bytes) and NAME.json (kind,
description, encoder inputs as integers, what the host decoder yields, hex). See README.md.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np

from hipcheck import protocol as p
from hipcheck.protocol import EventCode, Opcode, SampleFlag, Status
from hipcheck.units import GRAVITY_M_S2

HERE = Path(__file__).resolve().parent
CALIBRATED = SampleFlag.GYR_BIAS_CALIBRATED | SampleFlag.ACC_CALIBRATED


def walking_samples(n: int, fs_hz: float, t0_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Wire integers for a pelvis-like motion: obliquity and tilt swinging at step frequency, vertical bounce."""
    quat, acc, gyr = [], [], []
    for i in range(n):
        t = t0_s + i / fs_hz
        roll = math.radians(4.0) * math.sin(2 * math.pi * 0.9 * t)
        pitch = math.radians(8.0) + math.radians(2.0) * math.sin(2 * math.pi * 1.8 * t)
        cr, sr, cp, sp = math.cos(roll / 2), math.sin(roll / 2), math.cos(pitch / 2), math.sin(pitch / 2)
        quat.append((cr * cp, sr * cp, cr * sp, -sr * sp))
        bounce = 2.5 * math.sin(2 * math.pi * 1.8 * t)
        acc.append((GRAVITY_M_S2 * math.sin(pitch) + 0.4 * math.cos(2 * math.pi * 1.8 * t),
                    -GRAVITY_M_S2 * math.sin(roll),
                    GRAVITY_M_S2 * math.cos(roll) * math.cos(pitch) + bounce))
        gyr.append((math.radians(4.0) * 2 * math.pi * 0.9 * math.cos(2 * math.pi * 0.9 * t),
                    math.radians(2.0) * 2 * math.pi * 1.8 * math.cos(2 * math.pi * 1.8 * t),
                    0.05 * math.sin(2 * math.pi * 0.9 * t)))
    quat_q14, acc_raw, gyr_raw, _ = p.to_wire(quat, acc, gyr)
    return quat_q14, acc_raw, gyr_raw


def jsonable(value):
    """Integers, floats and lists as JSON; bytes as hex strings; enums by value."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (np.floating, float)):
        return float(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    raise TypeError(f"cannot write {value!r} to a vector")


def decoded_samples(samples: np.ndarray) -> dict:
    return {name: jsonable(samples[name]) for name in p.SAMPLE_DTYPE.names}


def decoded_control(obj) -> dict:
    """A decoded control packet as JSON: enum-valued header fields by name."""
    out = {"type": type(obj).__name__}
    for name, value in obj._asdict().items():
        out[name] = value.name if hasattr(value, "name") else jsonable(value)
    return out


VECTORS: dict[str, dict] = {}


def add(name: str, kind: str, description: str, fields: dict, data: bytes, decoded: dict, **extra) -> None:
    VECTORS[name] = {"name": name, "kind": kind, "description": description, "fields": jsonable(fields),
                     **extra, "decoded": decoded, "hex": data.hex()}


def add_data(name: str, description: str, seq: int, t_us: int, period_us: int, quat_q14, acc_raw, gyr_raw,
             flags) -> None:
    fields = dict(seq=seq, t_us=t_us, period_us=period_us, quat_q14=quat_q14, acc_raw=acc_raw, gyr_raw=gyr_raw,
                  flags=flags)
    data = p.encode_data(**fields)
    samples, _ = p.decode_data_packets([data])
    add(name, "DATA", description, fields, data, decoded_samples(samples))


def add_compact(name: str, description: str, seq: int, quat_q14, acc_raw, gyr_raw, context: dict) -> None:
    fields = dict(seq=seq, quat_q14=quat_q14, acc_raw=acc_raw, gyr_raw=gyr_raw)
    data = p.encode_compact(**fields)
    samples, _ = p.decode_compact_packets([data], **context)
    add(name, "COMPACT", description, fields, data, decoded_samples(samples), decode_context=context)


def add_control(name: str, description: str, encoder, fields: dict) -> bytes:
    kind = {p.encode_command: "COMMAND", p.encode_ack: "ACK", p.encode_event: "EVENT",
            p.encode_log_chunk: "LOG_CHUNK"}[encoder]
    data = encoder(**fields)
    extra = {"device_status": p.command_status(data).name} if kind == "COMMAND" else {}
    add(name, kind, description, fields, data, decoded_control(p.decode_packet(data)), **extra)
    return data


def add_frame(name: str, description: str, packet: bytes) -> None:
    add(name, "FRAME", description, {"packet": packet}, p.frame(packet), {"packet": packet.hex()})


def nonzero_bytes(n: int, start: int = 0) -> bytes:
    return bytes((start + i) % 255 + 1 for i in range(n))


def build() -> None:
    # ---- DATA, full form
    q, a, g = walking_samples(1, 100.0, 0.0)
    add_data("data_1_sample", "one sample at 100 Hz, calibrated and at rest (MTU 36-56 holds one sample)",
             seq=1000, t_us=123_456_789, period_us=10_000, quat_q14=q, acc_raw=a, gyr_raw=g,
             flags=[CALIBRATED | SampleFlag.AT_REST])

    q, a, g = walking_samples(11, 200.0, 0.3)
    a[5] = (32767, a[5][1], a[5][2])  # a heel strike past 16 g
    g[8] = (g[8][0], -32768, g[8][2])
    flags = [CALIBRATED] * 11
    flags[5] |= SampleFlag.ACC_SATURATED
    flags[8] |= SampleFlag.GYR_SATURATED
    add_data("data_11_samples", "a full MTU-247 batch at 200 Hz while walking; sample 5 acc and sample 8 gyr "
             "saturated", seq=0x0001_2345, t_us=1_000_000_000, period_us=5000, quat_q14=q, acc_raw=a, gyr_raw=g,
             flags=flags)

    q, a, g = walking_samples(5, 400.0, 1.0)
    add_data("data_wrap", "400 Hz, seq and t_us both wrap inside the packet: decoded seq and t_us run past 2**32",
             seq=0xFFFF_FFFE, t_us=0xFFFF_FFFF - 4999, period_us=2500, quat_q14=q, acc_raw=a, gyr_raw=g,
             flags=[CALIBRATED] * 5)

    q, a, g = walking_samples(2, 25.0, 2.0)
    add_data("data_backfilled", "two samples at 25 Hz resent from the ring buffer after a BACKFILL command",
             seq=52_000, t_us=2_080_000_000, period_us=40_000, quat_q14=q, acc_raw=a, gyr_raw=g,
             flags=[CALIBRATED | SampleFlag.BACKFILLED] * 2)

    # ---- DATA, compact form (MTU 23)
    q, a, g = walking_samples(1, 100.0, 0.5)
    context = dict(seq_reference=69_990, t_anchor_us=5_000_000, seq_anchor=69_000, period_us=10_000)
    add_compact("compact_basic", "compact sample, w > 0 sent as is; time from the anchor: "
                "t = 5000000 + (70000 - 69000) * 10000", seq=70_000, quat_q14=q[0], acc_raw=a[0], gyr_raw=g[0],
                context=context)
    add_compact("compact_negative_w", "quaternion given with w < 0: the encoder negates it, the host derives w > 0",
                seq=70_001, quat_q14=[-q[0][0], -q[0][1], -q[0][2], -q[0][3]], acc_raw=a[0], gyr_raw=g[0],
                context=context)
    add_compact("compact_wrap16", "seq 0x1FFFF (seq16 0xFFFF) decoded against reference 0x20003: nearest "
                "candidate lies before the 16-bit wrap", seq=0x1_FFFF, quat_q14=q[0], acc_raw=a[0], gyr_raw=g[0],
                context=dict(seq_reference=0x2_0003, t_anchor_us=0, seq_anchor=0x2_0000, period_us=2500))
    add_compact("compact_saturated", "acc x at +32767 and gyr z at -32768: the host sets both saturation flags",
                seq=12, quat_q14=q[0], acc_raw=[32767, a[0][1], a[0][2]], gyr_raw=[g[0][0], g[0][1], -32768],
                context=dict(seq_reference=0, t_anchor_us=1_000, seq_anchor=0, period_us=5000))

    # ---- COMMAND: every opcode
    cmd = p.encode_command
    add_control("cmd_start", "START streaming", cmd, dict(opcode=Opcode.START, token=1))
    add_control("cmd_stop", "STOP streaming", cmd, dict(opcode=Opcode.STOP, token=2))
    add_control("cmd_set_rate", "SET_RATE 200 Hz", cmd, dict(opcode=Opcode.SET_RATE, token=3, rate_hz=200))
    add_control("cmd_set_rate_unsupported", "SET_RATE 30 Hz: well formed, the device answers OUT_OF_RANGE", cmd,
                dict(opcode=Opcode.SET_RATE, token=4, rate_hz=30))
    add_control("cmd_vibrate_7_steps", "VIBRATE with the most steps that fit 20 bytes", cmd,
                dict(opcode=Opcode.VIBRATE, token=5, intensity_pct=80, repeat=2,
                     steps=[(10, 5), (20, 5), (30, 10), (5, 5), (5, 5), (40, 20), (100, 0)]))
    add_control("cmd_vibrate_1_step", "VIBRATE one 150 ms buzz", cmd,
                dict(opcode=Opcode.VIBRATE, token=6, intensity_pct=100, repeat=0, steps=[(15, 0)]))
    add_control("cmd_vibrate_8_steps", "VIBRATE with 8 steps (22 bytes): the device answers TOO_LONG", cmd,
                dict(opcode=Opcode.VIBRATE, token=7, intensity_pct=50, repeat=1, steps=[(10, 10)] * 8))
    add_control("cmd_set_thresholds", "SET_THRESHOLDS drop 5.00 deg, sway 60 mm, tilt 12.50 deg, 10 % hysteresis, "
                "1.5 s refractory", cmd,
                dict(opcode=Opcode.SET_THRESHOLDS, token=8, enable_mask=0b111, drop_cdeg=500, sway_mm=60,
                     tilt_cdeg=1250, hysteresis_pct=10, refractory_ms=1500))
    add_control("cmd_set_thresholds_standby", "SET_THRESHOLDS in stand-by (bit 3): drop, sway and tilt armed to run "
                "only while no host is connected; drop 6.00 deg, sway 60 mm, tilt 8.00 deg, 33 % hysteresis, 3 s "
                "refractory", cmd,
                dict(opcode=Opcode.SET_THRESHOLDS, token=21, enable_mask=0b1111, drop_cdeg=600, sway_mm=60,
                     tilt_cdeg=800, hysteresis_pct=33, refractory_ms=3000))
    add_control("cmd_time_sync", "TIME_SYNC ping", cmd, dict(opcode=Opcode.TIME_SYNC, token=9, host_token=0xDEADBEEF))
    add_control("cmd_info", "INFO (the short form: no with_id, the ACK has no name_id)", cmd,
                dict(opcode=Opcode.INFO, token=10))
    add_control("cmd_info_id", "INFO with_id 1: the ACK carries name_id, the sensor's identity", cmd,
                dict(opcode=Opcode.INFO, token=18, with_id=1))
    add_control("cmd_info_id_bad", "INFO with_id 2: not defined, refused", cmd,
                dict(opcode=Opcode.INFO, token=19, with_id=2))
    add_control("cmd_backfill", "BACKFILL from seq 74565, at most 3000 samples", cmd,
                dict(opcode=Opcode.BACKFILL, token=11, from_seq=74_565, max_samples=3000))
    add_control("cmd_log_list", "LOG_LIST entry 2 (the short form: no with_flags, the ACK has no flags byte)", cmd,
                dict(opcode=Opcode.LOG_LIST, token=12, index=2))
    add_control("cmd_log_list_flags", "LOG_LIST entry 4, with_flags 1: the ACK carries the entry's flags", cmd,
                dict(opcode=Opcode.LOG_LIST, token=16, index=4, with_flags=1))
    add_control("cmd_log_list_flags_bad", "LOG_LIST with_flags 2: not defined, refused", cmd,
                dict(opcode=Opcode.LOG_LIST, token=17, index=0, with_flags=2))
    add_control("cmd_log_download", "LOG_DOWNLOAD session 7 resuming at block 130", cmd,
                dict(opcode=Opcode.LOG_DOWNLOAD, token=13, session_id=7, from_block=130))
    add_control("cmd_log_erase_all", "LOG_ERASE all sessions, first step: confirm 0 asks for a token", cmd,
                dict(opcode=Opcode.LOG_ERASE, token=14, session_id=p.LOG_ERASE_ALL, confirm=0))
    add_control("cmd_log_erase_confirm", "LOG_ERASE all sessions, second step: the token of the first ACK erases",
                cmd, dict(opcode=Opcode.LOG_ERASE, token=15, session_id=p.LOG_ERASE_ALL, confirm=0x5EC0DE42))
    profile = p.CalibrationProfile(gyr_bias_rad_s=(0.001953125, -0.0009765625, 0.00048828125),
                                   acc_bias_m_s2=(0.0625, -0.03125, 0.125),
                                   acc_matrix=(1.0078125, 0.001953125, 0.0, -0.001953125, 0.99609375, 0.0,
                                               0.0, 0.0, 1.00390625),
                                   q_sensor_to_pelvis=(0.5, 0.5, -0.5, 0.5))
    blob = p.encode_cal_profile(profile)
    add("cal_profile", "CAL_PROFILE", "calibration profile blob (79 bytes) uploaded in CAL_UPLOAD chunks",
        profile._asdict(), blob, {"type": "CalibrationProfile", **jsonable(profile._asdict())})
    chunks = [p.decode_packet(c) for c in p.cal_upload_commands(blob, first_token=20)]
    for name, i in (("cmd_cal_upload_first", 0), ("cmd_cal_upload_last", len(chunks) - 1)):
        add_control(name, f"CAL_UPLOAD chunk {i + 1} of {len(chunks)} of the cal_profile vector", cmd,
                    dict(opcode=Opcode.CAL_UPLOAD, token=chunks[i].token, **chunks[i].fields))

    # ---- ACK
    ack = p.encode_ack
    add_control("ack_start_ok", "START acknowledged", ack, dict(opcode=Opcode.START, token=1, status=Status.OK))
    ack_time_sync = add_control(
        "ack_time_sync", "TIME_SYNC pong: device time at reception, the next sample's seq and its time", ack,
        dict(opcode=Opcode.TIME_SYNC, token=9, status=Status.OK, host_token=0xDEADBEEF, device_t_us=3_000_000_123,
             next_seq=600_123, next_t_us=3_000_005_000))
    add_control("ack_info", "INFO: v1, firmware 0.3.1, xiao-esp32s3, LSM6DSOX, 100 Hz, 3.95 V 87 %, streaming with "
                "profile and alerts", ack,
                dict(opcode=Opcode.INFO, token=10, status=Status.OK, proto_version=1, fw_major=0, fw_minor=3,
                     fw_patch=1, board_id=1, imu_id=1, rate_hz=100, battery_mv=3950, battery_pct=87,
                     state_flags=p.StateFlag.STREAMING | p.StateFlag.PROFILE_LOADED | p.StateFlag.ALERTS_ENABLED))
    add_control("ack_info_id", "INFO asked with_id: the same, from the sensor named hipcheck-4D01 (name_id 0x4D01)",
                ack, dict(opcode=Opcode.INFO, token=18, status=Status.OK, proto_version=1, fw_major=0, fw_minor=4,
                          fw_patch=0, board_id=3, imu_id=1, rate_hz=100, battery_mv=3450, battery_pct=23,
                          state_flags=p.StateFlag.STREAMING, name_id=0x4D01))
    add_control("ack_backfill", "BACKFILL accepted: 2400 samples from 74565 follow as DATA with flag bit 6", ack,
                dict(opcode=Opcode.BACKFILL, token=11, status=Status.OK, first_seq=74_565, count=2400))
    add_control("ack_log_list", "LOG_LIST entry 2 of 5", ack,
                dict(opcode=Opcode.LOG_LIST, token=12, status=Status.OK, n_sessions=5, session_id=7,
                     start_time_s=86_400, n_blocks=412))
    add_control("ack_log_list_open", "LOG_LIST entry 4 of 5 asked with_flags: the session being written (OPEN)",
                ack, dict(opcode=Opcode.LOG_LIST, token=16, status=Status.OK, n_sessions=5, session_id=9,
                          start_time_s=90_061, n_blocks=37, flags=p.LogEntryFlag.OPEN))
    add_control("ack_log_download", "LOG_DOWNLOAD accepted: the session has 412 blocks", ack,
                dict(opcode=Opcode.LOG_DOWNLOAD, token=13, status=Status.OK, n_blocks=412))
    add_control("ack_log_erase_token", "LOG_ERASE asked: nothing erased yet; send it again with this token", ack,
                dict(opcode=Opcode.LOG_ERASE, token=14, status=Status.OK, confirm=0x5EC0DE42))
    add_control("ack_set_rate_out_of_range", "SET_RATE 30 Hz refused", ack,
                dict(opcode=Opcode.SET_RATE, token=4, status=Status.OUT_OF_RANGE))
    add_control("ack_backfill_unavailable", "BACKFILL range no longer in the device buffer", ack,
                dict(opcode=Opcode.BACKFILL, token=11, status=Status.UNAVAILABLE))
    add_control("ack_unknown_command", "opcode 0x42 is not a v1 command", ack,
                dict(opcode=0x42, token=99, status=Status.UNKNOWN_COMMAND))

    # ---- EVENT
    ev = p.encode_event
    add_control("event_button", "long button press", ev,
                dict(code=EventCode.BUTTON, t_us=4_000_000, seq=400, press=p.ButtonPress.LONG))
    add_control("event_alert", "on-device drop alert: right side dropped 6.25 deg", ev,
                dict(code=EventCode.ALERT, t_us=12_345_678, seq=1234, alert_kind=p.AlertKind.DROP,
                     side=p.Side.RIGHT, value=625))
    add_control("event_low_battery", "battery at 3.45 V, 8 %", ev,
                dict(code=EventCode.LOW_BATTERY, t_us=4_294_000_000, seq=429_400, battery_mv=3450, battery_pct=8))
    add_control("event_buffer_overrun", "transmit ring overran: 250 samples from 1000000 are lost for good", ev,
                dict(code=EventCode.BUFFER_OVERRUN, t_us=50_000_000, seq=1_000_250, source=p.OverrunSource.TX_RING,
                     first_lost_seq=1_000_000, n_lost=250))

    # ---- LOG_CHUNK
    add_control("log_chunk", "log session 7, block 130, bytes 128-159", p.encode_log_chunk,
                dict(session_id=7, block=130, offset=128, data=bytes(range(0x40, 0x60))))

    # ---- serial frames
    add_frame("frame_data_1_sample", "serial frame of data_1_sample: zeros inside the packet",
              bytes.fromhex(VECTORS["data_1_sample"]["hex"]))
    add_frame("frame_ack_time_sync", "serial frame of ack_time_sync", ack_time_sync)
    add_frame("frame_log_chunk_300", "LOG_CHUNK with a run of 300 non-zero bytes: COBS code 0xFF blocks",
              p.encode_log_chunk(session_id=0x0201, block=0x06050403, offset=0x0807, data=nonzero_bytes(300, 8)))
    # Packet + CRC exactly 254 non-zero bytes: one full 0xFF block and no empty block after it (canonical COBS).
    for last in range(1, 256):
        packet = p.encode_log_chunk(session_id=0x0201, block=0x06050403, offset=0x0807,
                                    data=nonzero_bytes(242, 8) + bytes([last]))
        if 0 not in packet + p.crc16_ccitt(packet).to_bytes(2, "little"):
            break
    assert len(packet) == 252
    add_frame("frame_254_nonzero", "packet + CRC are 254 non-zero bytes: encoded as 0xFF + 254 bytes, nothing "
              "after the full block", packet)


def to_json(vector: dict) -> str:
    text = json.dumps(vector, indent=1)
    # One line per innermost list of numbers, so an 11-sample packet reads as 11 rows.
    return re.sub(r"\[\s+([^\[\]{}\"]*?)\s+\]", lambda m: "[" + re.sub(r"\s+", " ", m.group(1)) + "]", text) + "\n"


def main() -> None:
    build()
    for old in HERE.glob("*.bin"):
        old.unlink()
    for old in HERE.glob("*.json"):
        old.unlink()
    for name, vector in VECTORS.items():
        (HERE / f"{name}.bin").write_bytes(bytes.fromhex(vector["hex"]))
        (HERE / f"{name}.json").write_text(to_json(vector))
    print(f"wrote {len(VECTORS)} vectors to {HERE}")


if __name__ == "__main__":
    main()
