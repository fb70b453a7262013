"""Pairing and bonding in the firmware's own BLE transport (firmware/link_ble.py, firmware/bonds.py) under the real
MicroPython unix port, on the emulated stack of firmware/sim/bluetooth.py played by a script (the stack's security:
ATT permissions as NimBLE decides them, the secret IRQs, the encryption update; docs/security.md).

The same promises are held over bumble's real Security Manager with bleak on the other end in
tests/test_security_bumble.py; here each rule is tested alone, fast: an unbonded central's writes are refused with
the ATT error and never reach the firmware, nothing is notified to it; a central that pairs in the window is
trusted and its bond is in the flash file; after a reboot the same central encrypts with its key and is trusted,
another one cannot pair (the key is refused, the connection dropped, the file untouched) until the button opens
the window; a central that is never trusted is dropped; a damaged bonds file is ignored with a reason."""

import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from hipcheck import protocol as p

ROOT = Path(__file__).resolve().parents[1]
FIRMWARE = ROOT / "firmware"
MICROPYTHON = shutil.which("micropython", path=str(Path(sys.executable).parent)) or shutil.which("micropython")

pytestmark = pytest.mark.skipif(MICROPYTHON is None, reason="the micropython unix port is not installed")

ATT_INSUFFICIENT_AUTHENTICATION, ATT_INSUFFICIENT_ENCRYPTION = 0x05, 0x0F

# LinkBle as main wires it (bonds in a file, the window with the sim board's LED and button), and a command handler
# that answers every command with an ACK OK and streams a DATA packet per 20 ms to whoever the link lets it.
HARNESS = r"""
import sys, asyncio, machine
import bluetooth
import packet as P
from bonds import Bonds, Window
from link_ble import LinkBle

sim = bluetooth.sim
sim.configure(script=sys.argv[1], record=sys.argv[2])
bonds_path = sys.argv[3] if sys.argv[3] != "-" else None
press_at_ms = int(sys.argv[4])
bonds = Bonds(bonds_path, 2, log=lambda m: print("LOG", m))
link = LinkBle(fw_version="1.2.3", board="sim", imu="LSM6DSOX", bonds=bonds, trust_wait_ms=800,
               log=lambda m: print("LOG", m))
button = machine.Pin(3, machine.Pin.IN, machine.Pin.PULL_UP)
button.sim_drive(1)
link.window = Window(bonds, None, machine.Pin(2, machine.Pin.OUT), button)
if bonds.empty:
    bonds.open_window()
ack = bytearray(20)
data = bytearray(20)

def on_packet(buf, n):
    st, op, tok, fields = P.decode_command(bytes(buf[:n]))
    print("CMD", op, tok, st)
    link.send_control(ack, P.encode_ack(ack, op, tok, st))

link.on_packet = on_packet

async def stream():
    k = 0
    while True:
        await asyncio.sleep_ms(20)
        data[0] = k & 0xFF
        if link.send(data, 20):  # the link decides who hears it
            k += 1
        if bonds.window_open():
            sim.note("window_open")

async def press():
    if press_at_ms < 0:
        return
    await asyncio.sleep_ms(press_at_ms)
    button.sim_drive(0)
    await asyncio.sleep_ms(1300)
    button.sim_drive(1)

async def main():
    asyncio.create_task(link.run())
    asyncio.create_task(stream())
    asyncio.create_task(press())
    await asyncio.wait_for_ms(sim.finished.wait(), 30000)
    print("STATS", " ".join("%s=%s" % kv for kv in sorted(link.stats().items())))
    print("WINDOW", int(bonds.window_open()), link.window.opened)

asyncio.run(main())
"""


def run(tmp_path, script: str, bonds: Path | None = None, press_at_ms: int = -1):
    (tmp_path / "harness.py").write_text(HARNESS)
    (tmp_path / "central.txt").write_text(script)
    record = tmp_path / "record.bin"
    env = dict(os.environ, MICROPYPATH=f".frozen:{FIRMWARE / 'sim'}:{FIRMWARE}")
    result = subprocess.run([MICROPYTHON, str(tmp_path / "harness.py"), str(tmp_path / "central.txt"), str(record),
                             str(bonds) if bonds else "-", str(press_at_ms)],
                            capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    stats = dict(kv.split("=") for kv in next(l for l in lines if l.startswith("STATS")).split()[1:])
    return lines, parse_record(record.read_bytes()), {k: int(v) for k, v in stats.items()}


def parse_record(data: bytes) -> list[tuple[str, int, int, bytes]]:
    out, o = [], 0
    while o < len(data):
        kind, conn, arg, n = struct.unpack_from("<BHHH", data, o)
        out.append((chr(kind), conn, arg, data[o + 7:o + 7 + n]))
        o += 7 + n
    return out


def value_handle(records, uuid):
    layout = next(r[3] for r in records if r[0] == "S").decode()
    return next(int(f[2]) for f in map(str.split, layout.splitlines()) if f[0] == "C" and f[5] == uuid)


def commands(lines):
    return [tuple(int(x) for x in l.split()[1:]) for l in lines if l.startswith("CMD")]


def of(records, kinds):
    return [r for r in records if r[0] in kinds]


def cmd(name_or_opcode, token=1) -> str:
    return p.encode_command(name_or_opcode, token).hex()


CTRL = p.CONTROL_CHAR_UUID


def test_an_unbonded_central_is_refused_and_hears_nothing_then_pairs_in_the_window(tmp_path):
    bonds = tmp_path / "bonds.bin"
    script = f"""
until adv
connect 0 c0ffee000001
mtu 247
subscribe {p.DATA_CHAR_UUID}
subscribe {CTRL}
write {CTRL} {cmd(p.Opcode.INFO, 1)}
write {CTRL} {p.encode_command(p.Opcode.VIBRATE, 2, intensity_pct=100, repeat=255, steps=[(255, 0)] * 7).hex()}
wait 300
mark paired
pair
write {CTRL} {cmd(p.Opcode.INFO, 3)}
wait 300
end
"""
    lines, records, stats = run(tmp_path, script, bonds)
    split = next(i for i, r in enumerate(records) if r[0] == "M")
    before, after = records[:split], records[split:]
    # Both writes answered by the stack with insufficient authentication (no key for this central), nothing
    # delivered to the firmware, nothing notified to it, not even the data stream.
    ctrl = value_handle(records, CTRL)
    assert [(r[2], r[3][0]) for r in of(before, "Q")] == [(ctrl, ATT_INSUFFICIENT_AUTHENTICATION)] * 2
    assert [r for r in of(before, "W") if r[2] == ctrl] == []
    assert of(before, "N") == []
    # Paired in the window (first power-on: no bond in the file): encrypted, bonded, trusted; the window closes.
    assert [r[3] for r in of(after, "P")] == [bytes((1, 0, 1, 16))]
    assert commands(lines) == [(p.Opcode.INFO, 3, p.Status.OK)]
    assert of(after, "N"), "a trusted central gets the stream"
    assert stats["trusted"] == 1 and stats["bond_entries"] == 1 and stats["untrusted_writes"] == 0
    assert next(l for l in lines if l.startswith("WINDOW")).split()[1] == "0"
    assert bonds.exists() and bonds.read_bytes()[:3] == b"HB\x01"


def test_the_bond_survives_a_reboot_and_another_central_cannot_pair_outside_the_window(tmp_path):
    bonds = tmp_path / "bonds.bin"
    run(tmp_path, "until adv\nconnect 0 c0ffee000001\npair\nwait 50\nend\n", bonds)
    kept = bonds.read_bytes()
    # Reboot with the same flash: the bonded central must encrypt first (insufficient *encryption*: its key is
    # known), then it is trusted. A stranger pairs: the stack's key write is refused (window closed), so the
    # firmware drops it at the encryption update; its write after reconnecting is refused again.
    script = f"""
until adv
connect 0 c0ffee000001
write {CTRL} {cmd(p.Opcode.INFO, 1)}
encrypt
write {CTRL} {cmd(p.Opcode.INFO, 2)}
wait 100
disconnect
until adv
connect 0 c0ffee0000ff
pair
wait 100
until adv
connect 0 c0ffee0000ff
write {CTRL} {cmd(p.Opcode.INFO, 3)}
encrypt
wait 100
end
"""
    lines, records, stats = run(tmp_path, script, bonds)
    assert [r[3][0] for r in of(records, "Q")] == [ATT_INSUFFICIENT_ENCRYPTION, ATT_INSUFFICIENT_AUTHENTICATION]
    assert commands(lines) == [(p.Opcode.INFO, 2, p.Status.OK)]
    assert stats["trusted"] == 1 and stats["keys_refused"] == 1 and stats["dropped_untrusted"] == 1
    assert [r[0] for r in of(records, "CPKD")] == ["C", "P", "D", "C", "P", "K", "D", "C"]
    errors = [r[3].decode() for r in of(records, "X")]
    assert errors == ["encryption failed: no key kept for this central (it must pair)"]
    assert bonds.read_bytes() == kept  # nothing written for the stranger
    assert "LOG pairing window open" not in "\n".join(lines)


def test_the_button_opens_the_window_for_a_new_central(tmp_path):
    bonds = tmp_path / "bonds.bin"
    run(tmp_path, "until adv\nconnect 0 c0ffee000001\npair\nwait 50\nend\n", bonds)
    script = f"""
until adv
until note window_open 5000
connect 0 c0ffee000002
pair
write {CTRL} {cmd(p.Opcode.INFO, 7)}
wait 100
end
"""
    lines, records, stats = run(tmp_path, script, bonds, press_at_ms=100)
    assert commands(lines) == [(p.Opcode.INFO, 7, p.Status.OK)]
    assert stats["trusted"] == 1 and stats["bond_entries"] == 2
    window = next(l for l in lines if l.startswith("WINDOW")).split()
    assert window[1:] == ["0", "1"]  # opened once by the button, closed by the new bond


def test_a_central_never_trusted_is_dropped_and_the_window_times_out(tmp_path):
    # no pairing: the link drops it after trust_wait_ms (800 ms here) so it cannot hold the one connection; the
    # window of the first power-on (2 s here) closes by itself
    script = "until adv\nconnect 0 c0ffee000001\nwait 1500\nuntil adv\nwait 1500\nend\n"
    lines, records, stats = run(tmp_path, script)
    assert [r[0] for r in of(records, "CKD")] == ["C", "K", "D"]
    assert stats["dropped_untrusted"] == 1 and stats["trusted"] == 0
    assert next(l for l in lines if l.startswith("WINDOW")).split()[1] == "0"


def test_a_damaged_bonds_file_is_ignored_with_a_reason(tmp_path):
    bonds = tmp_path / "bonds.bin"
    run(tmp_path, "until adv\nconnect 0 c0ffee000001\npair\nwait 50\nend\n", bonds)
    good = bonds.read_bytes()
    body = good[:-4]
    assert struct.unpack("<I", good[-4:])[0] == zlib.crc32(body)  # the format the module docstring gives
    bonds.write_bytes(good[:-1] + bytes([good[-1] ^ 0xFF]))
    lines, records, stats = run(tmp_path, "until adv\nconnect 0 c0ffee000001\nencrypt\nwait 50\nend\n", bonds)
    assert any("bonds file" in l and "CRC mismatch" in l and "pair again" in l for l in lines), lines
    # booted without bonds: a first power-on again (window open), the old key is gone
    assert stats["bond_entries"] == 0 and stats["trusted"] == 0
    errors = [r[3].decode() for r in of(records, "X")]
    assert errors == ["encryption failed: no key kept for this central (it must pair)"]
