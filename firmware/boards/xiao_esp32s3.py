# Seeed Studio XIAO ESP32S3 with an LSM6DSOX breakout (e.g. Adafruit 4438) on I2C, and a vibration motor on D0.
# Pins from Seeed's XIAO ESP32S3 pinout (the same as CircuitPython's seeed_xiao_esp32s3 board definition):
# D0 GPIO1, D4 GPIO5 = SDA, D5 GPIO6 = SCL, user LED GPIO21 (active low).
NAME = "xiao-esp32s3"
BOARD_ID = 1  # INFO board_id (docs/protocol.md)

I2C_ID = 0
I2C_SDA = 5  # D4
I2C_SCL = 6  # D5
I2C_FREQ = 400000

IMU = "imu_lsm6ds"  # driver module
IMU_ADDRESS = 0x6A  # breakout default (SA0/DO low); 0x6B when the address jumper is closed
# Board axes (x anterior, y left, z superior when worn) from chip axes: rows = board axes, columns = chip axes.
# Assumed mounting: the breakout flat against the back wall of the clip, parts facing away from the body, its
# silk-screen y arrow pointing up: chip z = posterior, chip y = superior, chip x = right.
# Check it on the bench (firmware/README.md, "Build, flash and check a real board").
AXES = ((0, 0, -1), (-1, 0, 0), (0, 1, 0))

MOTOR_PIN = 1  # D0: gate of the motor's MOSFET (or a driver's IN pin)
MOTOR_PWM_HZ = 20000  # above hearing
LED_PIN = 21
LED_ACTIVE_LOW = True
BUTTON_PIN = 0  # the BOOT button (reads 0 when pressed): held 1 s after boot, it opens the BLE pairing window

# Battery sense (hardware/wiring.md): the cell's + (the BAT+ pad, after the switch) through R3 to D1 = GPIO2
# (ADC1 channel 1: ADC1 works while the radio is on), R4 from there to GND, C1 across R4. Half the cell's 3.0-4.2 V
# is 1.5-2.1 V, inside the 11 dB range of the ESP32-S3's ADC; the pair draws 10 uA from the cell.
BATTERY_ADC_PIN = 2  # D1
BATTERY_DIVIDER = (200000, 200000)  # R3 (cell + to the pin), R4 (the pin to GND), ohms


def battery():
    """(mv, pct) of the cell: battery.Cell through the divider (the ADC is made at the first call)."""
    global _cell
    if _cell is None:
        from battery import Cell
        _cell = Cell(BATTERY_ADC_PIN, BATTERY_DIVIDER)
    return _cell.read()


_cell = None
