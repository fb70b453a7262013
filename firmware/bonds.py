"""BLE bonds: the keys of the hosts this sensor is paired with, kept in flash, and the pairing window.

MicroPython's ``bluetooth`` hands the stack's secrets to the firmware (docs: "Pairing and bonding"):
``_IRQ_SET_SECRET`` (sec_type, key, value) keeps one (value None: forget it) and answers whether it was kept,
``_IRQ_GET_SECRET`` (sec_type, index, key) reads one back, by key or, with key None, the index'th of a type.
``Bonds`` answers both from a small file (a temp file renamed over it: a reset leaves the old file or the new one)
so a bond survives a reboot. The bytes are the stack's own; the file does not look inside them.

The pairing window: a new key (or a changed or forgotten one) is kept only while the window is open. It opens for
``window_s`` after a deliberate act: the board's button held for 1 s, the first power-on (no bond kept yet), or
``open_window()`` over USB (``main.run(pair=True)``: physical access). It closes after the first new bond, or when
its time is up. Outside it the stack's write of a key is refused, which link_ble.py turns into a dropped connection:
a central that pairs outside the window is never trusted. While open, the motor plays the ``pairing`` cue once and
the LED blinks; a new bond plays ``paired``.

File: b"HB", version 1 u8, entry count u8, then per entry sec_type u8, key length u8, value length u16 (little
endian), key, value; then the CRC-32 (zlib's) of everything before it, u32. A file that does not read back whole
is ignored with a logged reason (the sensor boots without bonds: the hosts pair again).
"""

import struct
import time

from micropython import const

_MAGIC = b"HB\x01"
_SEC_OUR = const(1)
_SEC_PEER = const(2)
MAX_ENTRIES = const(8)  # our and the peer's keys for 4 hosts; the oldest host goes first
MAX_KEY = const(64)
MAX_VALUE = const(1024)
WINDOW_S = const(120)  # long enough to start `hipcheck pair` after pressing the button
_HOLD_MS = const(1000)  # the button held this long opens the window
_POLL_MS = const(100)


class Bonds:
    """The secrets store (module docstring). path None: kept in RAM only. ``log``: a callable taking a message."""

    def __init__(self, path=None, window_s=WINDOW_S, ticks_ms=None, log=None):
        self.path = path
        self.window_s = window_s
        self._ticks = ticks_ms if ticks_ms is not None else time.ticks_ms
        self._log = log
        self.entries = []  # [sec_type, key, value], oldest first
        self._until = None  # pairing window deadline (ticks_ms), None: closed
        self.on_window = None  # callable(opened: bool), set by Window
        self.refused = 0  # keys refused with the window closed
        self.reason = self._load()

    # ------------------------------------------------------------------------------------------- the window
    def window_open(self):
        if self._until is not None and time.ticks_diff(self._until, self._ticks()) <= 0:
            self.close_window()
        return self._until is not None

    def open_window(self, seconds=None):
        """Allow pairing for `seconds` (default window_s) from now."""
        self._until = time.ticks_add(self._ticks(), 1000 * (self.window_s if seconds is None else seconds))
        if self._log:
            self._log("pairing window open for %d s" % (self.window_s if seconds is None else seconds))
        if self.on_window is not None:
            self.on_window(True)

    def close_window(self):
        if self._until is None:
            return
        self._until = None
        if self.on_window is not None:
            self.on_window(False)

    @property
    def empty(self):
        """No host bonded (the first power-on)."""
        return not self.entries

    # ------------------------------------------------------------------------------- the stack's secrets
    def get(self, sec_type, index, key):
        """_IRQ_GET_SECRET: the value for (sec_type, key), or the index'th value of sec_type when key is None."""
        if key is not None:
            key = bytes(key)  # the stack's memoryview, valid only during the IRQ
        i = 0
        for e in self.entries:
            if e[0] != sec_type:
                continue
            if key is None:
                if i == index:
                    return e[2]
                i += 1
            elif e[1] == key:
                return e[2]
        return None

    def set(self, sec_type, key, value):
        """_IRQ_SET_SECRET: True when kept (or forgotten, value None). Refused with the window closed, for a
        type other than our and the peer's keys (CCCDs are not kept: the host subscribes on every connection),
        for oversized entries and when the flash write fails."""
        key = bytes(key)
        if sec_type not in (_SEC_OUR, _SEC_PEER) or len(key) > MAX_KEY:
            return False
        if not self.window_open():
            self.refused += 1
            if self._log:
                self._log("bonds: a pairing was refused: the pairing window is closed (hold the button 1 s)")
            return False
        old = [e for e in self.entries if e[0] == sec_type and e[1] == key]
        entries = [e for e in self.entries if e not in old]
        if value is not None:
            value = bytes(value)
            if len(value) > MAX_VALUE:
                return False
            while len(entries) >= MAX_ENTRIES:
                oldest = entries[0][1]
                entries = [e for e in entries if e[1] != oldest]  # every key of the oldest host
            entries.append([sec_type, key, value])
        elif not old:
            return False
        try:
            self._save(entries)
        except OSError as e:
            if self._log:
                self._log("bonds: flash write failed (%r): the key is not kept" % (e,))
            return False
        self.entries = entries
        return True

    # -------------------------------------------------------------------------------------------- the file
    def _save(self, entries):
        if self.path is None:
            return
        import os
        from store import crc32
        out = bytearray(_MAGIC)
        out.append(len(entries))
        for t, k, v in entries:
            out += struct.pack("<BBH", t, len(k), len(v))
            out += k
            out += v
        out += struct.pack("<I", crc32(memoryview(out)))
        tmp = self.path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(out)
        os.rename(tmp, self.path)

    def _load(self):
        # None when loaded (or no file yet); else why the file was ignored
        if self.path is None:
            return None
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except OSError:
            return None
        try:
            self.entries = _parse(data)
            return None
        except ValueError as e:
            self.entries = []
            reason = "bonds file %s ignored: %s; the hosts must pair again" % (self.path, e)
            if self._log:
                self._log(reason)
            return reason


def _parse(data):
    from store import crc32
    n = len(data)
    if n < 8 or data[:3] != _MAGIC:
        raise ValueError("not a bonds file")
    if crc32(memoryview(data)[:n - 4]) != struct.unpack_from("<I", data, n - 4)[0]:
        raise ValueError("CRC mismatch")
    entries = []
    o = 4
    for _ in range(data[3]):
        if o + 4 > n - 4:
            raise ValueError("truncated")
        t, kl, vl = struct.unpack_from("<BBH", data, o)
        o += 4
        if o + kl + vl > n - 4 or kl > MAX_KEY or vl > MAX_VALUE:
            raise ValueError("entry %d does not fit" % len(entries))
        entries.append([t, bytes(data[o:o + kl]), bytes(data[o + kl:o + kl + vl])])
        o += kl + vl
    if o != n - 4 or len(entries) > MAX_ENTRIES:
        raise ValueError("%d bytes after the entries" % (n - 4 - o))
    return entries


class Window:
    """The pairing window's cues and button (module docstring): ``run()`` is its task. bonds: ``Bonds``;
    haptics: plays the cues (or None); led, button: ``machine.Pin`` (or None; the button reads 0 when pressed);
    led_on: the LED pin's level that lights it."""

    def __init__(self, bonds, haptics=None, led=None, button=None, led_on=1):
        self.bonds = bonds
        self.haptics = haptics
        self.led = led
        self.button = button
        self._on = led_on
        self.opened = 0
        bonds.on_window = self._changed

    def _changed(self, opened):
        if opened:
            self.opened += 1
            if self.haptics is not None:
                self.haptics.cue("pairing")
        elif self.led is not None:
            self.led.value(1 - self._on)

    def paired(self):
        """A host bonded: the cue, and the window closes (one new host per deliberate act)."""
        if self.haptics is not None:
            self.haptics.cue("paired")
        self.bonds.close_window()

    async def run(self):
        import asyncio
        held = 0
        tick = 0
        while True:
            await asyncio.sleep_ms(_POLL_MS)
            tick += 1
            if self.button is not None:
                held = held + _POLL_MS if self.button.value() == 0 else 0
                if held >= _HOLD_MS:
                    held = -0x3FFFFFFF  # once per press: released first
                    self.bonds.open_window()
            if self.bonds.window_open() and self.led is not None:
                self.led.value(self._on if tick & 2 else 1 - self._on)  # 2.5 Hz
