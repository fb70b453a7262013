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

# Battery sense (hardware/wiring.md): the cell's + (the PowerBoost 500C's BAT pin) through R3 to A0 = GPIO26 (ADC0),
# R4 from there to GND, C1 across R4. Half the cell's 3.0-4.2 V is 1.5-2.1 V, inside the RP2040 ADC's 3.3 V range
# (its reference is the 3.3 V rail: read_u16 over 3300 mV); the pair draws 10 uA from the cell.
BATTERY_ADC_PIN = 26  # A0
BATTERY_DIVIDER = (200000, 200000)  # R3 (cell + to the pin), R4 (the pin to GND), ohms
BATTERY_VREF_MV = 3300


def battery():
    """(mv, pct) of the cell: battery.Cell through the divider (the ADC is made at the first call)."""
    global _cell
    if _cell is None:
        from battery import Cell
        _cell = Cell(BATTERY_ADC_PIN, BATTERY_DIVIDER, BATTERY_VREF_MV)
    return _cell.read()


_cell = None
