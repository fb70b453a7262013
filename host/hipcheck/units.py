"""Physical constants, defined once for the host side."""

import math

GRAVITY_M_S2 = 9.80665  # standard gravity; the wire format and the simulator use this value
DEG_PER_RAD = 180.0 / math.pi
RAD_PER_DEG = math.pi / 180.0
