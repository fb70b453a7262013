# Arduino Nano RP2040 Connect: the on-board LSM6DSOX on I2C0 (GPIO12 = A4 = SDA, GPIO13 = A5 = SCL, shared with
# the ATECC608A at 0x60) at 0x6A; a vibration motor on D2 = GPIO25. Pins from Arduino's datasheet (ABX00053) and
# MicroPython's ARDUINO_NANO_RP2040_CONNECT pins.csv; the LED on D13 = GPIO6.
NAME = "nano-rp2040-connect"
BOARD_ID = 2  # INFO board_id (docs/protocol.md)

I2C_ID = 0
I2C_SDA = 12
I2C_SCL = 13
I2C_FREQ = 400000

IMU = "imu_lsm6ds"  # driver module
IMU_ADDRESS = 0x6A
# Board axes (x anterior, y left, z superior when worn) from chip axes: rows = board axes, columns = chip axes.
# Assumed mounting: the board upright in the clip, parts facing away from the body, USB connector down; chip x
# toward the USB connector (inferior), chip z out of the parts side (posterior), chip y = right.
# Check it on the bench (firmware/README.md, "Build, flash and check a real board").
AXES = ((0, 0, -1), (0, -1, 0), (-1, 0, 0))

MOTOR_PIN = 25  # D2: gate of the motor's MOSFET (or a driver's IN pin)
MOTOR_PWM_HZ = 20000  # above hearing
LED_PIN = 6
# No user button on this board (BUTTON_PIN unset): the BLE pairing window opens at the first power-on and over USB
# (main.run(pair=True)).
