"""A simulated trace as the raw register values an IMU chip would output: the motion file of the firmware emulators.

The IMU emulators in ``firmware/sim`` (``emu_lsm6ds``, ``emu_mpu6050``) play such a file into their FIFO, one
trace sample per chip sample, on the virtual clock of the simulated ``machine`` module. The file holds what the chip's
ADC would give at ±16 g and ±2000 °/s, so the firmware driver's scaling to the wire format is tested too::

    from hipcheck.motion import SensorModel, simulate_walk
    from hipcheck.motion.chip_trace import chip_rate_hz, write_chip_trace
    trace = simulate_walk(duration_s=10, fs_hz=chip_rate_hz("LSM6DSOX", 100), sensor=SensorModel.ideal())
    write_chip_trace(trace, "walk.lsm6", "LSM6DSOX")

File layout (little-endian), read by ``firmware/sim/emu_common.py``:

| offset | type | field |
| ---: | --- | --- |
| 0 | 4 bytes | magic ``b"HCT1"`` |
| 4 | u32 | ``period_ns``: the trace's sample period (1e9 / fs_hz, rounded) |
| 8 | u32 | ``gyr_lsb_udps``: µ°/s per gyro LSB (70000 for the LSM6 family, 60976 for the MPU family) |
| 12 | u32 | ``n_samples`` |
| 16 | n × 6 × i16 | per sample: acc x, y, z then gyr x, y, z in the chip's LSB, sensor (chip) axes |

The accelerometer scale is 2048 LSB/g (±16 g) for all four chips. Values are rounded to the nearest LSB and clipped
to the int16 range, as the chip's output saturates.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from hipcheck.errors import InvalidValueError
from hipcheck.units import GRAVITY_M_S2, RAD_PER_DEG

MAGIC = b"HCT1"
HEADER = struct.Struct("<4sIII")

ACC_LSB_PER_G = 2048  # ±16 g on LSM6DSOX, LSM6DS3TR-C (0.488 mg/LSB), MPU-6050, MPU-6886 (2048 LSB/g)
# µ°/s per LSB at ±2000 °/s: LSM6DSOX / LSM6DS3TR-C 70 mdps/LSB; MPU-6050 / MPU-6886 16.4 LSB/(°/s).
GYR_LSB_UDPS = {"LSM6DSOX": 70000, "LSM6DS3TR-C": 70000, "MPU-6050": 60976, "MPU-6886": 60976}

# The LSM6 chips run on a 6.667 kHz base clock: the "26/52/104/208/416 Hz" rates are 6666.7 Hz / 2^k, periods
# 38400 / 19200 / 9600 / 4800 / 2400 µs. The MPUs divide 1 kHz (or 8 kHz for 400 Hz on the MPU-6050) exactly.
_LSM6_PERIOD_US = {25: 38400, 50: 19200, 100: 9600, 200: 4800, 400: 2400}


def chip_rate_hz(chip: str, rate_hz: int) -> float:
    """The sample rate the chip really runs at when the firmware is asked for ``rate_hz`` (nominal 25…400 Hz)."""
    _check_chip(chip)
    if chip.startswith("LSM6"):
        if rate_hz not in _LSM6_PERIOD_US:
            raise InvalidValueError(f"{chip} rates are 25, 50, 100, 200, 400 Hz, not {rate_hz}")
        return 1e6 / _LSM6_PERIOD_US[rate_hz]
    return float(rate_hz)


def chip_trace_bytes(trace, chip: str) -> bytes:
    """The motion file for ``chip`` ('LSM6DSOX', 'LSM6DS3TR-C', 'MPU-6050' or 'MPU-6886') from a simulator Trace.

    The samples are taken in order, one per chip sample: simulate at ``chip_rate_hz(chip, rate)`` for a one-to-one
    replay (the emulator holds each trace sample over its period when the rates differ).
    """
    _check_chip(chip)
    acc = np.asarray(trace.acc_sensor_m_s2, dtype=np.float64)
    gyr = np.asarray(trace.gyr_sensor_rad_s, dtype=np.float64)
    if acc.ndim != 2 or acc.shape[1] != 3 or gyr.shape != acc.shape:
        raise InvalidValueError(f"expected (N, 3) acc and gyr arrays, got {acc.shape} and {gyr.shape}")
    if not (np.isfinite(acc).all() and np.isfinite(gyr).all()):
        raise InvalidValueError("the trace holds NaN or infinite samples: a chip cannot output them")
    lsb_udps = GYR_LSB_UDPS[chip]
    acc_raw = acc / GRAVITY_M_S2 * ACC_LSB_PER_G
    gyr_raw = gyr / RAD_PER_DEG * 1e6 / lsb_udps
    raw = np.concatenate([acc_raw, gyr_raw], axis=1)
    raw = np.clip(np.rint(raw), -32768, 32767).astype("<i2")
    period_ns = int(round(1e9 / float(trace.fs_hz)))
    return HEADER.pack(MAGIC, period_ns, lsb_udps, len(raw)) + raw.tobytes()


def write_chip_trace(trace, path, chip: str) -> Path:
    """Write :func:`chip_trace_bytes` to ``path``; returns the path."""
    path = Path(path)
    path.write_bytes(chip_trace_bytes(trace, chip))
    return path


def read_chip_trace(data: bytes) -> tuple[float, int, np.ndarray]:
    """(fs_hz, gyr_lsb_udps, raw int16 array (N, 6)) of a motion file's bytes; for tests and inspection."""
    if len(data) < HEADER.size or data[:4] != MAGIC:
        raise InvalidValueError("not a chip motion trace: the file does not start with b'HCT1'")
    _, period_ns, lsb_udps, n = HEADER.unpack_from(data)
    if len(data) != HEADER.size + 12 * n:
        raise InvalidValueError(f"truncated chip trace: header says {n} samples, file holds {(len(data) - 16) / 12:g}")
    raw = np.frombuffer(data, dtype="<i2", offset=HEADER.size).reshape(n, 6)
    return 1e9 / period_ns, lsb_udps, raw


def _check_chip(chip: str) -> None:
    if chip not in GYR_LSB_UDPS:
        raise InvalidValueError(f"unknown chip {chip!r}: one of {', '.join(GYR_LSB_UDPS)}")
