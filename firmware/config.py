"""config.json: which board, the sample rate and the on-device alert thresholds; checked before anything starts.

    {"board": "xiao-esp32s3", "rate_hz": 100,
     "alert": {"enable": ["drop", "sway"], "drop_deg": 6.0, "sway_mm": 60, "tilt_deg": 8.0,
               "hysteresis_pct": 25, "refractory_ms": 1000}}

Every key is optional except "board"; missing ones take DEFAULTS. Optional wiring keys (read by main.py): "link"
(ble, serial, stdio), "ring_samples", "autostart", "log_path" (null or "": no log), "log_blocks", "profile_path",
"serial_path", "bonds_path" (the BLE bonds, default /bonds.bin), "pair_window_s" (how long the pairing window stays
open, default 120). An unknown board, an unknown key or a value out of range raises ConfigError naming the key, the
value and what would do. The checked config also holds "alert_thresholds", the SET_THRESHOLDS fields derived
from "alert". Plain Python (no MicroPython-only imports), so the host's `hipcheck flash` checks a config with
this same code before it copies it.

    cfg = config.load("config.json")     # dict, defaults filled in
    board = config.board(cfg)            # boards/<name>.py
    alert.set_thresholds(*config.alert_thresholds(cfg))
"""

import json

BOARDS = {"xiao-esp32s3": "xiao_esp32s3", "nano-rp2040-connect": "nano_rp2040_connect", "sim": "sim"}
RATES_HZ = (25, 50, 100, 200, 400)
ALERT_KINDS = ("drop", "sway", "tilt")  # enable_mask bits 0, 1, 2 (SET_THRESHOLDS)

# (low, high, unit) per alert setting; the protocol's fields are u16 in 0.01 deg / mm / ms. SET_THRESHOLDS is held
# to the same ranges (alert.py). Refractory at least 500 ms: an alert is a buzz of up to 650 ms, and a sensor that
# buzzes back to back is felt as one long buzz (docs/protocol.md, "Motor safety").
ALERT_RANGES = {
    "drop_deg": (1.0, 30.0, "deg"),
    "sway_mm": (10, 300, "mm"),
    "tilt_deg": (1.0, 45.0, "deg"),
    "hysteresis_pct": (0, 100, "%"),
    "refractory_ms": (500, 60000, "ms"),
}

LINKS = ("ble", "serial", "stdio")
# Optional keys: (check, what to use); the value is kept as given.
_OPTIONAL = {
    "link": (lambda v: v in LINKS, "one of ble, serial, stdio"),
    "ring_samples": (lambda v: _is_int(v) and 100 <= v <= 20000, "a whole number of samples, 100 to 20000"),
    "autostart": (lambda v: isinstance(v, bool), "true or false"),
    "log_path": (lambda v: v is None or isinstance(v, str), "a file path, or null for no log"),
    "log_blocks": (lambda v: _is_int(v) and 16 <= v <= 65535, "a whole number of 512-byte blocks, 16 to 65535"),
    "profile_path": (lambda v: v is None or isinstance(v, str), "a file path, or null"),
    "serial_path": (lambda v: v is None or isinstance(v, str), "a device path, or null"),
    "bonds_path": (lambda v: isinstance(v, str) and v != "", "a file path (the BLE bonds)"),
    "pair_window_s": (lambda v: _is_int(v) and 10 <= v <= 600, "a whole number of seconds, 10 to 600"),
}

DEFAULTS = {
    "rate_hz": 100,
    "alert": {"enable": ["drop", "sway"], "drop_deg": 6.0, "sway_mm": 60, "tilt_deg": 8.0, "hysteresis_pct": 25,
              "refractory_ms": 1000},
}


class ConfigError(ValueError):
    pass


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _number(where, key, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError("%s: %s must be a number, not %r" % (where, key, value))
    return value


def check(cfg, where="config.json"):
    """A config dict -> the same with defaults filled in; ConfigError on anything wrong."""
    if not isinstance(cfg, dict):
        raise ConfigError("%s: expected a JSON object like {\"board\": \"sim\", ...}, got %r" % (where, cfg))
    for key in cfg:
        if key in _OPTIONAL:
            ok, what = _OPTIONAL[key]
            if not ok(cfg[key]):
                raise ConfigError("%s: %s %r: use %s" % (where, key, cfg[key], what))
        elif key == "alert_thresholds":
            raise ConfigError("%s: alert_thresholds is derived from \"alert\"; set alert.drop_deg etc. instead"
                              % where)
        elif key not in ("board", "rate_hz", "alert"):
            raise ConfigError("%s: unknown key %r; known keys: board, rate_hz, alert, %s"
                              % (where, key, ", ".join(sorted(_OPTIONAL))))
    if "board" not in cfg:
        raise ConfigError("%s: no \"board\"; set it to one of %s" % (where, ", ".join(sorted(BOARDS))))
    board = cfg["board"]
    if board not in BOARDS:
        raise ConfigError("%s: unknown board %r; known boards: %s" % (where, board, ", ".join(sorted(BOARDS))))
    rate = cfg.get("rate_hz", DEFAULTS["rate_hz"])
    if isinstance(rate, bool) or rate not in RATES_HZ:
        raise ConfigError("%s: rate_hz %r is not supported; use one of %s"
                          % (where, rate, ", ".join(str(r) for r in RATES_HZ)))
    alert = dict(DEFAULTS["alert"])
    given = cfg.get("alert", {})
    if not isinstance(given, dict):
        raise ConfigError("%s: alert must be an object like {\"drop_deg\": 6.0}, got %r" % (where, given))
    for key, value in given.items():
        if key == "enable":
            if not isinstance(value, list) or any(k not in ALERT_KINDS for k in value):
                raise ConfigError("%s: alert.enable %r: give a list of %s" % (where, value, ", ".join(ALERT_KINDS)))
        elif key in ALERT_RANGES:
            low, high, unit = ALERT_RANGES[key]
            _number(where, "alert." + key, value)
            if not low <= value <= high:
                raise ConfigError("%s: alert.%s %r %s is out of range; use %s to %s %s"
                                  % (where, key, value, unit, low, high, unit))
            if isinstance(low, int) and not isinstance(value, int) and value != int(value):
                raise ConfigError("%s: alert.%s %r: use a whole number of %s" % (where, key, value, unit))
        else:
            raise ConfigError("%s: unknown key alert.%s; known: enable, %s"
                              % (where, key, ", ".join(sorted(ALERT_RANGES))))
        alert[key] = value
    out = {}
    for key in _OPTIONAL:
        if key in cfg:
            out[key] = cfg[key]
    out["board"] = board
    out["rate_hz"] = rate
    out["alert"] = alert
    out["alert_thresholds"] = alert_thresholds(out)
    return out


def load(path="config.json"):
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        raise ConfigError("%s not found: copy one with `hipcheck flash` or write {\"board\": \"sim\"}" % path)
    try:
        cfg = json.loads(text)
    except ValueError as e:
        raise ConfigError("%s is not valid JSON (%s)" % (path, e))
    return check(cfg, path)


def board(cfg):
    """The boards/<name>.py module of the config's board."""
    name = BOARDS[cfg["board"]]
    return __import__("boards." + name, None, None, ("NAME",))


board_module = board


def alert_thresholds(cfg):
    """The SET_THRESHOLDS fields: (enable_mask, drop_cdeg, sway_mm, tilt_cdeg, hysteresis_pct, refractory_ms)."""
    a = cfg["alert"]
    mask = 0
    for i, kind in enumerate(ALERT_KINDS):
        if kind in a["enable"]:
            mask |= 1 << i
    return (mask, int(a["drop_deg"] * 100 + 0.5), int(a["sway_mm"]), int(a["tilt_deg"] * 100 + 0.5),
            int(a["hysteresis_pct"]), int(a["refractory_ms"]))
