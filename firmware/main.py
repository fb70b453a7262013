"""hipcheck firmware entry point: wires the modules together for the board named in config.json; nothing else.

What the device does lives in app.py (and the parts App puts together); pins, bus and IMU choice in boards/*.py;
settings in config.json (config.py). ``build(**overrides)`` returns the wired ``App`` without running it (the sim
board and tests pass their clock, pacing and link); ``run()`` is what the board executes at boot.
"""

import asyncio


def build(cfg=None, board=None, link=None, imu=None, **app_kw):
    import machine

    from app import App
    from cal_profile import load as load_profile
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
    if link is None:
        link = _link(cfg, board, imu)
    rate_hz = cfg.get("rate_hz", 100)
    haptics = _haptics(board)
    alert = _alert(cfg, rate_hz)
    store = _store(board, cfg)
    app = App(imu, link, Fusion(rate_hz), Ring(cfg.get("ring_samples", 3200)), haptics=haptics, alert=alert,
              store=store, board_id=board.BOARD_ID, rate_hz=rate_hz, battery=getattr(board, "battery", None),
              autostart=cfg.get("autostart", False), profile_path=cfg.get("profile_path", "/profile.bin"), **app_kw)
    profile = load_profile(app.profile_path) if app.profile_path else None
    if profile is not None:
        app.apply_profile(profile)
    return app


def _driver(name):
    # boards name the driver module (imu_lsm6ds, imu_mpu6050)
    if name not in ("imu_lsm6ds", "imu_mpu6050"):
        raise ValueError("board IMU %r: imu_lsm6ds or imu_mpu6050" % (name,))
    return __import__(name)


def _link(cfg, board, imu):
    kind = cfg.get("link", "ble")
    if kind == "ble":
        import link_ble
        from app import FW_VERSION
        return link_ble.LinkBle(fw_version="%d.%d.%d" % FW_VERSION, board=board.NAME, imu=imu.name)
    if kind == "serial":
        import link_serial
        return link_serial.Link(path=cfg.get("serial_path"), inp=getattr(board, "serial", None),
                                out=getattr(board, "serial", None))
    if kind == "stdio":
        import link_stdio
        return link_stdio.Link()
    raise ValueError("config link %r: one of ble, serial, stdio" % (kind,))


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


def run(**overrides):
    app = build(**overrides)
    asyncio.run(app.run())
    return app


if __name__ == "__main__":
    run()
