"""The emulated sensor *is* the firmware: firmware/main.py's App and its own BLE transport (link_ble.py on MicroPython's
bluetooth.BLE API) run in the MicroPython unix port, their stack (firmware/sim/bluetooth.py) bridged to a bumble
peripheral (tests/support/firmware_peripheral.py); bleak's public API, through BleLink's backend parameter on a bumble
central, is on the other end. The GATT server, advertising, notifications (with the stack's ENOMEM back-off) and
command handling all come from the firmware. Real time throughout (a radio on the other end). The firmware takes
commands from a bonded host only (docs/security.md): each test pairs first, in the window of the sensor's first
power-on, and the reconnection after a cut is encrypted with that bond."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from hipcheck.cli import main as cli_main
from hipcheck.device import DeviceSession, SessionSettings
from hipcheck.links import within
from hipcheck.links.ble import BleLink, scan
from hipcheck.protocol import Status
from hipcheck.links.simboard import SimBoardError, micropython_binary
from support.bleak_bumble import Air
from support.firmware_peripheral import FirmwarePeripheral

try:
    micropython_binary()
except SimBoardError:
    pytest.skip("the micropython unix port is not installed", allow_module_level=True)


@pytest.fixture(scope="module")
def walk_csv(tmp_path_factory):
    out = tmp_path_factory.mktemp("fwble") / "walk.csv"
    assert cli_main(["simulate", "walk", "--seconds", "14", "-o", str(out)]) == 0
    return out


def run(coro, timeout_s: float):
    async def bounded():
        return await within(coro, timeout_s)  # a hang fails the test instead of the run

    return asyncio.run(bounded())


def test_scan_finds_the_firmwares_own_advertisement(walk_csv):
    async def main():
        air = Air()
        async with FirmwarePeripheral(air, walk_csv, seconds=2) as sensor:
            assert sensor.name == "hipcheck-4D01"  # link_ble: the last two bytes of machine.unique_id()
            found = await scan(1.5, backend=air.backend())
            assert [(f.name, f.address) for f in found] == [(sensor.name, sensor.address)]
            # scan() keeps advertisements with our service UUID only: it came from the firmware's payload
        assert sensor.errors == [] and sensor.connections == 0

    run(main(), 30)


def test_walk_streams_whole_through_the_firmwares_gatt_server_and_commands_are_acked(walk_csv):
    async def main():
        air = Air()
        async with FirmwarePeripheral(air, walk_csv, seconds=10, buffers=4) as sensor:
            async with BleLink(sensor.name, backend=air.backend(), mtu=247, watchdog_s=None) as link:
                await link.pair()
                st = link.status()
                assert st.connected and st.mtu == 247 and st.address == sensor.address
                # read from the firmware's battery characteristic: the full emulated cell (sim/machine.py) through
                # the firmware's ADC and discharge curve, less the sag while the pairing cue runs the motor
                assert 98 <= st.battery_pct <= 100
                t0 = time.monotonic()
                async with DeviceSession(link, SessionSettings(start_seq=0)) as session:
                    info = session.device_info
                    assert info["board"] == "sim" and info["imu"] == "LSM6DSOX" and info["rate_hz"] == 100
                    rows = [b.samples async for b in session.blocks()]
                    wall_s = time.monotonic() - t0
                    ack = await session.vibrate()
                    assert ack.status == Status.OK
                samples = np.concatenate(rows)
                assert not samples["gap"].any()
                assert np.array_equal(samples["seq"], np.arange(len(samples)))  # every sequence number
                assert len(samples) >= 10 * 104 - 20
                # nothing notified before the central subscribed (link_ble waits for its first command), so
                # nothing had to be backfilled
                assert sensor.unsubscribed == 0 and session.stats.holes == []
        assert sensor.errors == [], sensor.errors
        assert sensor.connections == 1 and sensor.writes  # the commands went through the firmware's control char
        link_rec = sensor.record["link"]
        assert link_rec["connections"] == 1 and link_rec["tx_errors"] == 0 and link_rec["refused"] == 0
        assert len(sensor.record["motor"]) >= 2  # the VIBRATE pattern reached the emulated motor
        alloc = sensor.record["app"]["alloc_per_sample"]
        # sampling, link_ble's notify and the stack's record: next to nothing (link_ble makes one memoryview per
        # new (buffer, length), and the latency-bound packets come in many lengths)
        assert alloc is not None and alloc < 1.0
        print(f"\nfirmware over bumble: {sensor.notified} notifications, {len(samples)} samples in {wall_s:.1f} s "
              f"({sensor.notified / wall_s:.0f} notifications/s, {sensor.unsubscribed} before the subscription); "
              f"stack ENOMEM {sensor.enomem}, "
              f"link back-off deferrals {link_rec['deferred']}, backfilled {session.stats.samples_backfilled}, "
              f"{alloc:.2f} bytes allocated per sample")

    run(main(), 45)


def test_cut_mid_walk_the_firmware_readvertises_the_link_reconnects_and_nothing_is_missing(walk_csv):
    async def main():
        air = Air()
        # two notify buffers: the firmware's burst after the reconnect meets ENOMEM and backs off
        async with FirmwarePeripheral(air, walk_csv, seconds=9, buffers=2) as sensor:
            async with BleLink(sensor.name, backend=air.backend(), watchdog_s=20, rescan_timeout_s=1.0) as link:
                await link.pair()
                async with DeviceSession(link, SessionSettings(start_seq=0, reconnect_timeout_s=20)) as session:

                    async def cutter():
                        await asyncio.sleep(2.0)
                        await sensor.cut(3.0)

                    task = asyncio.create_task(cutter())
                    rows = [b.samples async for b in session.blocks(until_device_s=8.0)]
                    await task
                st = link.status()
                assert st.reconnects == 1 and st.connected and sensor.connections == 2
                samples = np.concatenate(rows)
                assert not samples["gap"].any(), session.lost
                assert np.array_equal(samples["seq"], np.arange(len(samples)))  # every sequence number
                assert len(samples) >= 8 * 104 - 10
        assert sensor.errors == [], sensor.errors
        link_rec = sensor.record["link"]
        assert link_rec["connections"] == 2 and link_rec["tx_errors"] == 0
        print(f"\ncut: {sensor.notified} notifications ({sensor.unsubscribed} unsubscribed, {sensor.dropped} "
              f"with no connection), stack ENOMEM {sensor.enomem}, back-off deferrals "
              f"{link_rec['deferred']}, backfilled {session.stats.samples_backfilled}, holes {session.stats.holes}, "
              f"link gaps {link.gaps()}")

    run(main(), 40)
