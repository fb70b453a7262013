# Shared parts of the IMU emulators: the motion trace (file format in host/hipcheck/motion/chip_trace.py) and
# allocation-free byte helpers, so that a driver's "no allocation per read" test measures the driver, not us.
import struct
from array import array

import micropython

_MAGIC = b"HCT1"


class MotionTrace:
    """Raw int16 samples (acc x, y, z, gyr x, y, z in the chip's LSB) with their period; sample(t_ns) holds the
    latest trace sample at that time and wraps around at the end."""

    def __init__(self, data, gyr_lsb_udps=None):
        if isinstance(data, str):
            with open(data, "rb") as f:
                data = f.read()
        if len(data) < 16 or bytes(data[:4]) != _MAGIC:
            raise ValueError("not a chip motion trace (no HCT1 header): write it with hipcheck.motion.chip_trace")
        _, self.period_ns, self.gyr_lsb_udps, self.n = struct.unpack_from("<4sIII", data, 0)
        if len(data) != 16 + 12 * self.n or self.n == 0 or self.period_ns == 0:
            raise ValueError("chip motion trace is truncated or empty")
        if gyr_lsb_udps is not None and gyr_lsb_udps != self.gyr_lsb_udps:
            raise ValueError("motion trace made for a gyro LSB of %d udps, this chip has %d: write it for this chip"
                             % (self.gyr_lsb_udps, gyr_lsb_udps))
        self.raw = array("h", bytes(data[16:]))  # raw copy of the little-endian int16s

    @classmethod
    def still(cls, gyr_lsb_udps, acc=(0, 0, 2048), gyr=(0, 0, 0)):
        """A one-sample trace: the chip lying flat and still (z up reads +1 g)."""
        head = struct.pack("<4sIII", _MAGIC, 1000000, gyr_lsb_udps, 1)
        return cls(head + struct.pack("<6h", acc[0], acc[1], acc[2], gyr[0], gyr[1], gyr[2]))

    def index(self, t_ns):
        return (t_ns // self.period_ns) % self.n


def trace_and_clock(trace, clock, gyr_lsb_udps, scale_name):
    """The MotionTrace an emulator plays (a still one if none is given; refused if made for another gyro scale) and
    its clock (the machine module's by default)."""
    if clock is None:
        import machine
        clock = machine.clock
    if trace is None:
        trace = MotionTrace.still(gyr_lsb_udps)
    elif not isinstance(trace, MotionTrace):
        trace = MotionTrace(trace, gyr_lsb_udps)
    elif trace.gyr_lsb_udps != gyr_lsb_udps:
        raise ValueError("motion trace is not at the %s gyro scale" % scale_name)
    return trace, clock


@micropython.viper
def put_le(dst: ptr8, off: int, src: ptr16, si: int, swap: int):
    # three int16 from src[si..si+2] into dst[off..off+5], little-endian (swap=0) or big-endian (swap=1)
    for k in range(3):
        v = src[si + k]
        if swap:
            dst[off + 2 * k] = (v >> 8) & 0xFF
            dst[off + 2 * k + 1] = v & 0xFF
        else:
            dst[off + 2 * k] = v & 0xFF
            dst[off + 2 * k + 1] = (v >> 8) & 0xFF


@micropython.viper
def copy_bytes(dst: ptr8, di: int, src: ptr8, si: int, n: int):
    for k in range(n):
        dst[di + k] = src[si + k]


@micropython.viper
def ring_out(dst: ptr8, di: int, ring: ptr8, head: int, size: int, n: int) -> int:
    # pop n bytes from a byte ring of `size` starting at head into dst[di:]; returns the new head
    for k in range(n):
        dst[di + k] = ring[head]
        head += 1
        if head == size:
            head = 0
    return head
