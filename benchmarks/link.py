"""Throughput, alert latency and host CPU through the emulated BLE link (bleak over bumble, the firmware in MicroPython).

Run: .venv/bin/python benchmarks/link.py [--seconds S] [--json PATH]   (about 1.5 minutes: the latency runs are in
real time). The test support (``tests/support``: a bleak backend on a bumble central, an emulated sensor as a bumble
peripheral whose packets come from the real firmware) is the link; the host side is ``BleLink`` + ``DeviceSession`` +
the streaming ``Pipeline``, as ``hipcheck.live.run_live`` runs them, with a VIBRATE sent on every DROP decision.

Two kinds of run, for MTU 247 (full DATA packets) and MTU 23 (compact packets):
- **as fast as possible** (the sim board's clock waits for nobody): the most the link carries, notifications/s and
  samples/s, and the host CPU % while draining (link only, no pipeline);
- **real time** (100 Hz walk with a weak right hip, ``--drop-right 8``): per DROP alert, the times of
  (a) the notification carrying the sample at which the detector fired (the crossing sample) reaching the host,
  (b) the same sample's *device* time mapped to host time by the session's time map (ping/pong fit),
  (c) the session handing its block to the pipeline, (d) ``link.send`` of the VIBRATE (command written), and
  (e) the emulated sensor's control characteristic receiving the write (bumble peripheral callback).
  End-to-end = e − a (target ≤ 30 ms) and e − b (includes the firmware's 20 ms packet interval); host = d − c
  (block arrival → command written, target ≤ 5 ms) and d − a (notification → command written).
  Host CPU % = ``time.process_time()`` / wall time while streaming with the pipeline.

Caveat: the bumble controllers, the emulated peripheral's GATT server and the simboard reader thread run in this
same process, so the CPU % is an upper bound for the host alone (the firmware itself runs in a subprocess and is not
counted). Everything runs in one event loop and one clock (``time.monotonic``), so times (a), (c), (d), (e) need no
mapping. The link has no radio timing (no connection interval): on a real BLE link add up to one connection
interval (7.5–30 ms) each way.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from support.bleak_bumble import Air  # noqa: E402
from support.emulated_sensor import EmulatedSensor  # noqa: E402

from hipcheck import detect, protocol  # noqa: E402
from hipcheck.live import DROP_PATTERN  # noqa: E402
from hipcheck.device import DeviceSession, SessionSettings  # noqa: E402
from hipcheck.imu_csv import write_imu_csv  # noqa: E402
from hipcheck.links import DATA, within  # noqa: E402
from hipcheck.links.ble import BleLink  # noqa: E402
from hipcheck.motion import simulate_walk  # noqa: E402
from hipcheck.pipeline import Pipeline  # noqa: E402

_COMMAND, _VIBRATE = 0x22, int(protocol.Opcode.VIBRATE)


class TimedSensor(EmulatedSensor):
    """The emulated sensor, noting when each control write reaches its characteristic."""

    def __init__(self, *args, **kwargs):
        self.write_times: dict[bytes, float] = {}
        super().__init__(*args, **kwargs)

    def _on_control_write(self, connection, value: bytes) -> None:
        self.write_times[bytes(value)] = time.monotonic()
        super()._on_control_write(connection, value)


class TimedLink(BleLink):
    """BleLink noting the arrival of every live DATA notification and the moment each VIBRATE is written."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.arrivals: list[tuple[int, int, float]] = []  # (wire seq of the first sample, n samples, host time)
        self.on_vibrate = None  # callback(packet, t) when a VIBRATE goes out

    async def receive(self, timeout_s=None):
        item = await super().receive(timeout_s)
        if item is not None and item.channel == DATA:
            p = item.packet
            if len(p) == 20:  # compact: one sample, seq16 at 0
                self.arrivals.append((int.from_bytes(p[0:2], "little"), 1, item.host_time_s))
            elif p[0] == 0x21 and len(p) >= 33:  # full: seq u32 at 2, n_samples at 1
                self.arrivals.append((int.from_bytes(p[2:6], "little"), p[1], item.host_time_s))
        return item

    async def send(self, packet: bytes) -> None:
        if packet[0] == _COMMAND and packet[1] == _VIBRATE and self.on_vibrate is not None:
            self.on_vibrate(bytes(packet), time.monotonic())
        await super().send(packet)


def make_trace(folder: Path, seconds: float) -> Path:
    trace = simulate_walk(duration_s=seconds + 5, fs_hz=100.0, seed=1, drop_left_deg=4.0, drop_right_deg=8.0)
    path = folder / "walk.csv"
    write_imu_csv(path, trace.t_s, trace.acc_sensor_m_s2, trace.gyr_sensor_rad_s)
    return path


async def throughput(trace: Path, mtu: int, seconds: float) -> dict:
    """The sim board as fast as possible: everything it makes, drained through the link."""
    air = Air()
    async with EmulatedSensor(air, trace, seconds=seconds, mtu=mtu) as sensor:
        async with BleLink(sensor.name, backend=air.backend(), mtu=247, watchdog_s=None) as link:
            first = await link.receive(timeout_s=10.0)
            t0, c0 = time.monotonic(), time.process_time()
            n_notify, n_samples, t_last = 0, 0, t0
            while (item := await link.receive(timeout_s=1.0)) is not None:
                if item.channel == DATA:
                    n_notify += 1
                    n_samples += (item.packet[1] & 0x3F) if mtu > 23 else 1
                    t_last = item.host_time_s
            cpu = time.process_time() - c0  # the quiet second at the end costs next to no CPU
            wall = max(t_last - t0, 1e-3)
            st = link.status()
    assert first is not None
    return {"mtu": st.mtu, "notifications": n_notify, "samples": n_samples, "wall_s": wall,
            "notifications_s": n_notify / wall, "samples_s": n_samples / wall,
            "cpu_pct": 100.0 * cpu / wall}


async def latency(trace: Path, mtu: int, seconds: float) -> dict:
    """Real time, the live pipeline, VIBRATE on every DROP decision: the timings of the module docstring."""
    air = Air()
    records: list[dict] = []
    waiting: deque = deque()  # records whose VIBRATE is not yet written
    sends = []
    async with TimedSensor(air, trace, seconds=seconds + 2, mtu=mtu, realtime=True) as sensor:
        link = TimedLink(sensor.name, backend=air.backend(), mtu=247, watchdog_s=None)

        def on_vibrate(packet: bytes, t: float) -> None:
            if waiting:
                rec = waiting.popleft()
                rec["packet"], rec["t_written"] = packet, t

        link.on_vibrate = on_vibrate
        async with link:
            async with DeviceSession(link, SessionSettings(start_seq=0)) as session:
                await session.set_thresholds(enable=())  # only the host's VIBRATEs reach the motor
                pipeline = None
                # seq and device time of every sample fed to the pipeline, by its sample index (preallocated: a
                # growing concatenation here would add its own milliseconds to the latency being measured)
                fed_seq = np.zeros(int(seconds * 500) + 1000, np.int64)
                fed_t = np.zeros_like(fed_seq)
                c0, w0 = time.process_time(), time.monotonic()
                n_samples = 0
                async for block in session.blocks(until_device_s=seconds):
                    t_block = time.monotonic()
                    if pipeline is None:
                        fs = 1e6 / block.period_us
                        pipeline = Pipeline(fs)
                    valid = block.valid
                    k = int(np.count_nonzero(valid))
                    fed_seq[n_samples:n_samples + k] = block.seq[valid]
                    fed_t[n_samples:n_samples + k] = block.t_device_us[valid]
                    n_samples += k
                    result = pipeline.update(block.acc_m_s2[valid], block.gyr_rad_s[valid])
                    drops = [d for d in result.decisions if int(d["kind"]) == detect.DROP]
                    for d in drops:
                        i = int(d["sample"])  # the sample at which the detector fired
                        seq = int(fed_seq[i])
                        rec = {"seq": seq, "t_block": t_block, "in_block": seq >= int(block.seq[0]),
                               "t_device_host": float(session.time_map.to_host_s(int(fed_t[i])))}
                        records.append(rec)
                        waiting.append(rec)
                        sends.append(asyncio.ensure_future(session.vibrate(DROP_PATTERN[int(d["side"])])))
                cpu_pct = 100.0 * (time.process_time() - c0) / (time.monotonic() - w0)
                wall = time.monotonic() - w0
                await asyncio.gather(*sends, return_exceptions=True)
                await asyncio.sleep(0.2)
        arrivals = link.arrivals
        writes = sensor.write_times
    for rec in records:  # the first notification carrying the crossing sample (live data comes before a backfill)
        rec["t_notify"] = float("nan")
        for s0, n, t in arrivals:
            wire = rec["seq"] % (1 << 16 if mtu == 23 else 1 << 32)
            if s0 <= wire < s0 + n:
                rec["t_notify"] = t
                break
        rec["t_sensor"] = writes.get(rec.get("packet"), float("nan"))
    return {"mtu": mtu, "records": records, "cpu_pct": cpu_pct, "wall_s": wall, "samples": n_samples,
            "notifications": len(arrivals), "session": session.summary()}


async def bounded(coro, timeout_s: float):
    """A run that hangs fails loudly instead of blocking the benchmark."""
    try:
        return await within(coro, timeout_s)
    except asyncio.TimeoutError:
        print(f"benchmarks/link.py: a run took longer than {timeout_s:g} s (hung); left out of the table",
              file=sys.stderr, flush=True)
        return None


def stats(values) -> str:
    v = np.asarray([x for x in values if np.isfinite(x)])
    if not len(v):
        return "—"
    return f"{np.median(v):.1f} / {np.percentile(v, 95):.1f} / {v.max():.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="device time of each real-time run (default 30)")
    parser.add_argument("--fast-seconds", type=float, default=60.0, help="device time of each fast run (default 60)")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="hipcheck-bench-link-"))
    trace = make_trace(folder, max(args.seconds, args.fast_seconds))
    Pipeline(100.0).update(np.zeros((200, 3), np.float32) + [0, 0, 9.81], np.zeros((200, 3), np.float32))  # numba

    rows, out, hung = [], {}, []
    for mtu in (247, 23):
        fast = asyncio.run(bounded(throughput(trace, mtu, args.fast_seconds), args.fast_seconds + 60))
        live = asyncio.run(bounded(latency(trace, mtu, args.seconds), 2 * args.seconds + 60))
        if fast is None or live is None:
            hung.append(f"MTU {mtu} {'fast' if fast is None else 'real-time'} run hung (no end of stream)")
            continue
        out[mtu] = {"fast": fast, "live": {k: v for k, v in live.items() if k != "records"},
                    "alerts": [{k: v for k, v in r.items() if k != "packet"} for r in live["records"]]}
        recs = live["records"]
        ms = lambda a, b: [1e3 * (r[a] - r[b]) for r in recs]  # noqa: E731
        rows.append((mtu, fast, live, recs, {
            "e2e_notify": ms("t_sensor", "t_notify"), "e2e_device": ms("t_sensor", "t_device_host"),
            "host_block": ms("t_written", "t_block"), "host_notify": ms("t_written", "t_notify"),
            "write": ms("t_sensor", "t_written")}))

    print("hipcheck link benchmark: bleak over a bumble central <-> emulated sensor (bumble peripheral, the real "
          f"firmware in the MicroPython unix port); real-time runs {args.seconds:g} s of a walk with --drop-right 8\n")
    print("| MTU | fast: notif/s | fast: samples/s | fast: host CPU % | real time: notif/s | real time: samples/s "
          "| real time: host CPU % (with pipeline) |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for mtu, fast, live, _, _ in rows:
        print(f"| {mtu} | {fast['notifications_s']:.0f} | {fast['samples_s']:.0f} | {fast['cpu_pct']:.0f} "
              f"| {live['notifications'] / live['wall_s']:.1f} | {live['samples'] / live['wall_s']:.1f} "
              f"| {live['cpu_pct']:.1f} |")
    print("\nDROP alert latency, ms, median / 95th percentile / max (target: end to end ≤ 30, host ≤ 5)\n")
    print("| MTU | alerts | end to end: crossing sample's notification → VIBRATE at the sensor | end to end: "
          "crossing sample's device time (mapped) → VIBRATE at the sensor | host: block arrival → VIBRATE written "
          "| host: notification → VIBRATE written | write → sensor |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for mtu, _, _, recs, m in rows:
        print(f"| {mtu} | {len(recs)} | {stats(m['e2e_notify'])} | {stats(m['e2e_device'])} | "
              f"{stats(m['host_block'])} | {stats(m['host_notify'])} | {stats(m['write'])} |")
    for mtu, _, live, recs, _ in rows:
        s = live["session"]
        print(f"\nMTU {mtu}: session {s['samples_emitted']} samples ({s['samples_backfilled']} backfilled, "
              f"{s['samples_lost']} lost), {len(recs)} DROP alerts, "
              f"{sum(1 for r in recs if np.isfinite(r['t_sensor']))} VIBRATE writes seen by the sensor")
    for line in hung:
        print(f"\nNOT MEASURED: {line}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2, default=float)


if __name__ == "__main__":
    main()
