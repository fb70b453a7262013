# The unix-port board (firmware/sim): the emulated I2C bus of sim/machine.py with an LSM6DSOX emulator attached at
# 0x6A by the sim's main, and a PWM that records every duty change (the emulated motor). Pin numbers are nominal.
NAME = "sim"
BOARD_ID = 3  # INFO board_id (docs/protocol.md)

I2C_ID = 0
I2C_SDA = 4
I2C_SCL = 5
I2C_FREQ = 400000

IMU = "imu_lsm6ds"  # driver module
IMU_ADDRESS = 0x6A
# Board axes (x anterior, y left, z superior when worn) from chip axes: rows = board axes, columns = chip axes.
AXES = ((1, 0, 0), (0, 1, 0), (0, 0, 1))

MOTOR_PIN = 1
MOTOR_PWM_HZ = 20000
LED_PIN = 2
BUTTON_PIN = 3  # machine.Pin(3).sim_drive(0) presses it
