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

# Battery sense: the emulated cell of sim/machine.py (machine.battery: drains with the sim clock and the motor's
# duty) behind the same divider as the real builds, on an emulated 12-bit ADC at this pin.
BATTERY_ADC_PIN = 6
BATTERY_DIVIDER = (200000, 200000)  # ohms: cell + to the pin, the pin to GND


def battery():
    """(mv, pct) of the emulated cell through the divider and ADC."""
    global _cell
    if _cell is None:
        import machine
        from battery import Cell
        machine.battery.wire(BATTERY_ADC_PIN, *BATTERY_DIVIDER)  # the emulated cell behind this divider
        _cell = Cell(BATTERY_ADC_PIN, BATTERY_DIVIDER)
    return _cell.read()


_cell = None
