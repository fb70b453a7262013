"""Nobody else drives the motor (issue 11, docs/security.md), tested over a real BLE stack with the firmware itself:
the firmware (main.build -> app.App, link_ble.py, bonds.py) in the MicroPython unix port, its emulated stack bridged
to a bumble peripheral whose Security Manager pairs for real (LE Secure Connections, bonding; the keys kept by the
firmware in its emulated flash through MicroPython's secret IRQs), and bleak through its public API on a bumble
central on the other end (tests/support/bleak_bumble.py: BleakClient.pair(), the host's bonds in a JSON key store
as an OS keeps them).

- `hipcheck pair --ble NAME` bonds with a sensor in its pairing window (its first power-on).
- After a reboot of the sensor (same flash), the bonded host is trusted at once (its link encrypted with the bond),
  commands work and the motor moves; again after a cut and a reconnect.
- A stranger's writes to control are refused by the stack with ATT insufficient authentication (the log
  characteristic takes no write at all), nothing reaches the firmware, nothing is notified to it, the motor never
  moves; outside the window it cannot pair: its keys are refused, it is dropped, the flash keeps one bond, and
  `hipcheck pair` says so (exit 69). Held 1 s, the button opens the window and the same stranger pairs."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest
from bleak import BleakClient
from bleak.exc import BleakError

from hipcheck import protocol as p
from hipcheck.cli import main as cli_main
from hipcheck.device import DeviceSession, SessionSettings
from hipcheck.links import within
from hipcheck.links.ble import BleLink, NotPairedError, scan
from hipcheck.links.simboard import SimBoardError, micropython_binary
from hipcheck.protocol import Opcode, Status
from support.bleak_bumble import Air
from support.firmware_peripheral import FirmwarePeripheral

try:
    micropython_binary()
except SimBoardError:
    pytest.skip("the micropython unix port is not installed", allow_module_level=True)

NAME = "hipcheck-4D01"
ADDRESS = "F0:00:00:00:4D:01"  # the same radio across the sensor's reboots
STRANGER = "C0:00:00:00:66:66"
ATT_INSUFFICIENT_AUTHENTICATION = 0x05
ATTACK_76_MIN = bytes.fromhex("22040164ff07") + bytes.fromhex("ff00") * 7
STATE: dict = {}  # the paths the CLI hooks use, and the sensors they started
SENSORS: list[FirmwarePeripheral] = []


def run(coro, timeout_s: float):
    async def bounded():
        return await within(coro, timeout_s)

    return asyncio.run(bounded())


async def first_boot():
    """`--backend test_security_bumble:first_boot`: a new sensor (empty flash: its window open) and the host."""
    air = Air(keystore_path=STATE["host_keys"])
    SENSORS.append(await FirmwarePeripheral(air, STATE["walk"], seconds=30, flash_dir=STATE["flash"],
                                            address=ADDRESS).start())
    return air.backend()


async def stranger_air():
    """`--backend test_security_bumble:stranger_air`: the bonded sensor rebooted, and another computer."""
    air = Air(central_address=STRANGER, keystore_path=STATE["stranger_keys"])
    SENSORS.append(await FirmwarePeripheral(air, STATE["walk"], seconds=30, flash_dir=STATE["flash"],
                                            address=ADDRESS).start())
    return air.backend()


def end_cli_sensors():
    for sensor in SENSORS:  # the CLI's event loop is closed: end the firmware process directly
        if sensor.proc is not None and sensor.proc.returncode is None:
            try:
                os.kill(sensor.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    SENSORS.clear()


@pytest.fixture(scope="module")
def bonded(tmp_path_factory):
    """`hipcheck pair` run once: the sensor's flash holds one bond, the host's key store its keys."""
    base = tmp_path_factory.mktemp("security")
    walk = base / "walk.csv"
    assert cli_main(["simulate", "walk", "--seconds", "34", "-o", str(walk)]) == 0
    STATE.update(walk=walk, flash=base / "flash", host_keys=base / "host-keys.json",
                 stranger_keys=base / "stranger-keys.json")
    STATE["flash"].mkdir()
    try:
        code = cli_main(["pair", "--ble", NAME, "--backend", "test_security_bumble:first_boot"])
    finally:
        end_cli_sensors()
    STATE["pair_code"] = code
    return STATE


def test_hipcheck_pair_bonds_in_the_window_of_the_first_power_on(bonded):
    assert bonded["pair_code"] == 0
    assert (bonded["flash"] / "bonds.bin").read_bytes()[:3] == b"HB\x01"
    assert bonded["host_keys"].exists()


def test_the_bond_survives_a_reboot_and_a_reconnect(bonded):
    async def main():
        air = Air(keystore_path=bonded["host_keys"])
        async with FirmwarePeripheral(air, bonded["walk"], seconds=12, flash_dir=bonded["flash"],
                                      address=ADDRESS) as sensor:
            async with BleLink(NAME, backend=air.backend(), watchdog_s=20, rescan_timeout_s=1.0) as link:
                async with DeviceSession(link, SessionSettings(start_seq=0, reconnect_timeout_s=20)) as session:
                    assert session.device_info["board"] == "sim"
                    assert (await session.vibrate("drop_left")).status == Status.OK
                    await sensor.cut(1.0)  # the link drops; the host reconnects, encrypting with the bond
                    await asyncio.sleep(0.2)
                    rows = [b async for b in session.blocks(until_device_s=6.0)]
                    assert (await session.vibrate("sway")).status == Status.OK
                assert link.status().reconnects == 1 and rows
        assert sensor.errors == [], sensor.errors
        assert sensor.connections == 2 and sensor.att_errors == []
        assert [e[:3] for e in sensor.encryption] == [(1, 0, 1), (1, 0, 1)]  # encrypted, Just Works, bonded
        link_rec = sensor.record["link"]
        assert link_rec["trusted"] == 2 and link_rec["untrusted_writes"] == 0 and link_rec["bond_entries"] == 1
        full = 65535
        assert any(d == full for _, d, _, _ in sensor.record["motor"])  # drop_left reached the motor
        assert not (bonded["flash"] / "bonds.bin.tmp").exists()

    run(main(), 60)


def test_a_stranger_is_refused_hears_nothing_moves_nothing_and_cannot_pair(bonded):
    async def main():
        air = Air(central_address=STRANGER)
        async with FirmwarePeripheral(air, bonded["walk"], seconds=12, flash_dir=bonded["flash"],
                                      address=ADDRESS) as sensor:
            bonds_before = (bonded["flash"] / "bonds.bin").read_bytes()
            backend = air.backend()
            found = await scan(3.0, backend=backend, target=NAME, stop_on_first=True)
            heard: list[bytes] = []
            async with BleakClient(found[0].device, backend=backend.client, mtu=247) as client:
                for uuid in (p.DATA_CHAR_UUID, p.CONTROL_CHAR_UUID, p.LOG_CHAR_UUID):
                    await client.start_notify(uuid, lambda _c, data: heard.append(bytes(data)))
                refused = []
                for packet in (p.encode_command(Opcode.INFO, 1), ATTACK_76_MIN,
                               p.encode_command(Opcode.LOG_ERASE, 2, session_id=p.LOG_ERASE_ALL, confirm=0)):
                    with pytest.raises(BleakError) as error:
                        await client.write_gatt_char(p.CONTROL_CHAR_UUID, packet, response=True)
                    refused.append(str(error.value))
                with pytest.raises(BleakError):  # the log characteristic takes no write at all
                    await client.write_gatt_char(p.LOG_CHAR_UUID, b"\x22\x0b\x03\xff\xff", response=True)
                await asyncio.sleep(2.0)
                assert heard == []  # not a sample, not an ACK
                # outside the window: the pairing itself goes through bumble's SMP, but the firmware refuses to
                # keep the keys and drops the connection at the encryption update
                dropped = asyncio.get_running_loop().create_future()
                client._backend._connection.on("disconnection", lambda _r: dropped.done() or dropped.set_result(1))
                try:
                    await client.pair()
                except BleakError:
                    pass
                await within(dropped, 5.0)
            assert (bonded["flash"] / "bonds.bin").read_bytes() == bonds_before
        assert all("INSUFFICIENT_AUTHENTICATION" in r for r in refused), refused
        ctrl = [h for h, _ in sensor.att_errors]
        assert [c for _, c in sensor.att_errors] == [ATT_INSUFFICIENT_AUTHENTICATION] * 3 and len(set(ctrl)) == 1
        assert all(d == 0 for _, d, _, _ in sensor.record["motor"])  # only the PWM's set-up: the motor never moved
        link_rec = sensor.record["link"]
        assert link_rec["trusted"] == 0 and link_rec["keys_refused"] >= 1 and link_rec["dropped_untrusted"] == 1
        assert sensor.keys_refused == 1 and sensor.record["app"]["haptics"]["on_ms"] == 0

    run(main(), 60)


def test_hipcheck_pair_outside_the_window_says_the_sensor_refused(bonded, capsys):
    try:
        code = cli_main(["pair", "--ble", NAME, "--backend", "test_security_bumble:stranger_air"])
    finally:
        end_cli_sensors()
    err = capsys.readouterr().err
    assert code == 69, err
    assert "did not accept the pairing" in err and "pairing window is closed" in err


def test_an_unpaired_host_gets_a_clear_error(bonded):
    async def main():
        air = Air(central_address=STRANGER)
        async with FirmwarePeripheral(air, bonded["walk"], seconds=8, flash_dir=bonded["flash"], address=ADDRESS):
            async with BleLink(NAME, backend=air.backend(), watchdog_s=None) as link:
                with pytest.raises(NotPairedError) as error:
                    await link.send(p.encode_command(Opcode.INFO, 1))
        assert "not paired" in str(error.value) and f"hipcheck pair --ble {NAME}" in str(error.value)

    run(main(), 40)


def test_the_button_opens_the_window_for_a_new_host(bonded, tmp_path):
    async def main():
        air = Air(central_address=STRANGER, keystore_path=tmp_path / "keys.json")
        async with FirmwarePeripheral(air, bonded["walk"], seconds=12, flash_dir=bonded["flash"], address=ADDRESS,
                                      extra_args=("--press-button-s", "0.2")) as sensor:
            await asyncio.sleep(2.0)  # held 1.5 s from 0.2 s: the window opens after 1 s of it
            async with BleLink(NAME, backend=air.backend(), watchdog_s=None) as link:
                await link.pair()
                async with DeviceSession(link, SessionSettings(start_seq=None)) as session:
                    assert session.device_info["board"] == "sim"
        assert sensor.record["link"]["bond_entries"] == 2 and sensor.record["link"]["trusted"] == 1
        cues = [d for _, d, _, _ in sensor.record["motor"] if d]
        assert cues, "the window's cue (short, short, long) and the bond's (one buzz) played"

    run(main(), 60)
