# What the I2C IMU drivers share: the error they raise, finding a chip by WHO_AM_I, register access and the board's
# axis map. Each driver (imu_lsm6ds.py, imu_mpu6050.py) subclasses I2cImu. Interface: firmware/README.md, "Drivers".
from array import array


class ImuError(OSError):
    """The IMU is missing (no ACK) or is not a chip this driver knows."""


def axis_map(axes):
    """array('i') [src, sign] per output axis of a 3x3 signed permutation matrix (rows: board axes, columns: chip
    axes; out = axes . chip). None is the identity."""
    m = array("i", (0, 0, 1, 0, 2, 0))  # sign stored as a flag (1: negate): viper reads ptr32 unsigned
    if axes is None:
        return m
    used = [False, False, False]
    for r in range(3):
        row = axes[r]
        nz = [c for c in range(3) if row[c] != 0]
        if len(row) != 3 or len(nz) != 1 or row[nz[0]] not in (1, -1) or used[nz[0]]:
            raise ValueError("axes must be a 3x3 signed permutation matrix (one +1 or -1 per row and column), "
                             "got %r" % (axes,))
        used[nz[0]] = True
        m[2 * r] = nz[0]
        m[2 * r + 1] = 1 if row[nz[0]] < 0 else 0
    return m


class I2cImu:
    """A chip found on an I2C bus by its WHO_AM_I register, with one-byte register access and an axis map."""

    def _find(self, i2c, address, addresses, who_reg, known, pin):
        """Set self.address and self.whoami from the first of `addresses` (or `address`) whose WHO_AM_I (register
        `who_reg`) is in `known` ({value: name}); else ImuError naming what was found. `pin`: the address pin."""
        self._i2c = i2c
        self._b1 = bytearray(1)
        self.whoami = None
        self.address = None
        err = None
        bad = None
        for a in (addresses if address is None else (address,)):
            try:
                i2c.readfrom_mem_into(a, who_reg, self._b1)
            except OSError as e:
                err = e
                continue
            if self._b1[0] in known:
                self.address = a
                self.whoami = self._b1[0]
                return
            bad = (a, self._b1[0])
        if bad is not None:
            raise ImuError("chip at I2C address 0x%02x answers WHO_AM_I (reg 0x%02x) = 0x%02x: not %s"
                           % (bad[0], who_reg, bad[1], " or ".join("%s (0x%02x)" % (known[k], k) for k in known)))
        raise ImuError("no IMU answers at I2C address %s (%r): check wiring, power and the %s pin"
                       % (" or ".join("0x%02x" % a for a in addresses) if address is None else "0x%02x" % address,
                          err, pin))

    def set_axes(self, axes):
        """Board axes from chip axes: a 3x3 signed permutation (boards/*.py give it), or None for the identity."""
        m = axis_map(axes)
        for i in range(6):
            self._map[i] = m[i]

    def _w(self, reg, value):
        self._b1[0] = value
        self._i2c.writeto_mem(self.address, reg, self._b1)

    def _r(self, reg):
        self._i2c.readfrom_mem_into(self.address, reg, self._b1)
        return self._b1[0]
