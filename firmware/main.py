"""hipcheck firmware entry point: wires the modules together for the board named in config.json; nothing else.

What the device does lives in app.py (and the parts App puts together); pins, bus and IMU choice in boards/*.py;
settings in config.json (config.py). ``build(**overrides)`` returns the wired ``App`` without running it (the sim
board and tests pass their clock, pacing and link); ``run()`` is what the board executes at boot.

Nothing read from flash can stop the boot: a calibration profile that fails validation is ignored with the reason
logged (the sensor runs uncalibrated), and so is a damaged bonds file (the hosts pair again). Over USB,
``main.run(pair=True)`` (after Ctrl-C in ``mpremote``: physical access) boots with the BLE pairing window open.
"""

import asyncio


def build(cfg=None, board=None, link=None, imu=None, pair=False, **app_kw):
    import machine

    from app import App
    from fusion import Fusion
    from ring import Ring

    if cfg is None or board is None:
        import config
        if cfg is None:
            cfg = config.load()
        if board is None:
            board = config.board(cfg)
    ticks_us = app_kw.get("ticks_us")
    if imu is None:
        i2c = machine.I2C(board.I2C_ID, scl=machine.Pin(board.I2C_SCL), sda=machine.Pin(board.I2C_SDA),
                          freq=board.I2C_FREQ)
        imu = _driver(board.IMU).Imu(i2c, address=getattr(board, "IMU_ADDRESS", None), axes=board.AXES,
                                     ticks_us=ticks_us)
    log = app_kw.get("log") or _console
    app_kw["log"] = log
    haptics = _haptics(board)
    if link is None:
        link = _link(cfg, board, imu, log)
    if getattr(link, "bonds", None) is not None:
        _pairing_window(link, board, haptics, pair)
    rate_hz = cfg.get("rate_hz", 100)
    alert = _alert(cfg, rate_hz)
    store = _store(board, cfg)
    app = App(imu, link, Fusion(rate_hz), Ring(cfg.get("ring_samples", 3200)), haptics=haptics, alert=alert,
              store=store, board_id=board.BOARD_ID, rate_hz=rate_hz, battery=getattr(board, "battery", None),
              autostart=cfg.get("autostart", False), profile_path=cfg.get("profile_path", "/profile.bin"), **app_kw)
    _load_profile(app, log)
    return app


def _console(message):
    print(message)


def _load_profile(app, log):
    # a profile the device may not use is ignored, never fatal: the sensor boots uncalibrated
    from cal_profile import load
    if not app.profile_path:
        return
    profile, reason = load(app.profile_path)
    if reason is not None:
        log("calibration profile %s ignored: %s; running uncalibrated" % (app.profile_path, reason))
    if profile is None:
        return
    try:
        app.apply_profile(profile)
    except Exception as e:  # validated, so a bug: still no reason not to boot
        log("calibration profile %s could not be applied (%r); running uncalibrated" % (app.profile_path, e))
        app.apply_profile(None)


def _driver(name):
    # boards name the driver module (imu_lsm6ds, imu_mpu6050)
    if name not in ("imu_lsm6ds", "imu_mpu6050"):
        raise ValueError("board IMU %r: imu_lsm6ds or imu_mpu6050" % (name,))
    return __import__(name)


def _link(cfg, board, imu, log):
    kind = cfg.get("link", "ble")
    if kind == "ble":
        import link_ble
        from app import FW_VERSION
        from bonds import Bonds
        bonds = Bonds(cfg.get("bonds_path", "/bonds.bin"), cfg.get("pair_window_s", 120), log=log)
        return link_ble.LinkBle(fw_version="%d.%d.%d" % FW_VERSION, board=board.NAME, imu=imu.name, bonds=bonds,
                                log=log)
    if kind == "serial":
        import link_serial
        return link_serial.Link(path=cfg.get("serial_path"), inp=getattr(board, "serial", None),
                                out=getattr(board, "serial", None))
    if kind == "stdio":
        import link_stdio
        return link_stdio.Link()
    raise ValueError("config link %r: one of ble, serial, stdio" % (kind,))


def _pairing_window(link, board, haptics, pair):
    # the window's cues (motor, LED) and button; open now at the first power-on or when asked over USB
    import machine
    from bonds import Window
    led = getattr(board, "LED_PIN", None)
    button = getattr(board, "BUTTON_PIN", None)
    link.window = Window(link.bonds, haptics, machine.Pin(led, machine.Pin.OUT) if led is not None else None,
                         machine.Pin(button, machine.Pin.IN, machine.Pin.PULL_UP) if button is not None else None,
                         0 if getattr(board, "LED_ACTIVE_LOW", False) else 1)
    if pair or link.bonds.empty:
        link.bonds.open_window()


def _haptics(board):
    pin = getattr(board, "MOTOR_PIN", None)
    if pin is None:
        return None
    import machine
    from haptics import Haptics
    pwm = machine.PWM(machine.Pin(pin), freq=getattr(board, "MOTOR_PWM_HZ", 200), duty_u16=0)
    return Haptics(pwm, getattr(board, "MOTOR_MAX_PCT", 100))


def _alert(cfg, rate_hz):
    from alert import Alert
    a = Alert(rate_hz)
    t = cfg.get("alert_thresholds")
    if t is not None:
        a.set_thresholds(*t)
    return a


def _store(board, cfg):
    path = cfg.get("log_path", "/log.bin")
    if not path:
        return None  # logging off
    from store import Store
    return Store(path, max_blocks=cfg.get("log_blocks", 2048))


def run(pair=False, **overrides):
    """Boot: build and run. pair=True opens the BLE pairing window at once (over USB: physical access)."""
    app = build(pair=pair, **overrides)
    asyncio.run(app.run())
    return app


if __name__ == "__main__":
    run()
