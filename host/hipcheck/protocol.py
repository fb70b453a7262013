"""hipcheck wire protocol v1, host side: the one definition of the byte layout (see docs/protocol.md)."""

from hipcheck.units import GRAVITY_M_S2, RAD_PER_DEG

PROTOCOL_VERSION = 1

# Fixed wire scales: every sample is sent in these units whatever range the chip is set to.
ACC_FULL_SCALE_G = 16.0
GYR_FULL_SCALE_DPS = 2000.0
ACC_LSB_M_S2 = ACC_FULL_SCALE_G * GRAVITY_M_S2 / 32768.0  # 1/2048 g per LSB
GYR_LSB_RAD_S = GYR_FULL_SCALE_DPS * RAD_PER_DEG / 32768.0  # 0.06103515625 deg/s per LSB
QUAT_FRACTION_BITS = 14  # quaternion components are int16 Q14: 16384 = 1.0
