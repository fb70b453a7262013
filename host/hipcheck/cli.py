"""The ``hipcheck`` command line: the parser, one function per command, and the one place where errors end.

Read it in three parts: the parser (a small function per command; the link options and the input options are
defined once), ``main`` (every failure becomes one line on stderr and an exit code), and the commands, grouped by
job: on files (simulate, orient, analyze), on the simulated board (simboard, demo), on a sensor (record, live,
connect, scan, flash). Heavy modules are imported inside the commands, so that ``hipcheck --help`` answers at once.

Exit codes (``hipcheck.errors``, docs/cli.md): 0 done; 1 the input was refused (a file, a recording, a value);
2 the command line was wrong; 69 a device or link could not be reached or was lost; 70 an unexpected internal
error (one line, and the traceback in a log file); 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import tempfile
import time
import traceback
from contextlib import contextmanager
from pathlib import Path

from hipcheck import __version__
from hipcheck.outputs import check_folder_of, check_output_file
from hipcheck.errors import (EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_OK, EXIT_REFUSED, EXIT_USAGE, HipcheckError,
                             InvalidValueError)

ACTIVITIES = ("walk", "hold", "stand", "sit", "sit-to-stand", "bridge", "clamshell")
REP_ACTIVITIES = ("bridge", "clamshell")  # their duration follows from --reps
# The commands that run the signal kernels (numba): a notice on a cold cache (hipcheck.compile_notice).
COMPILING_COMMANDS = ("analyze", "orient", "export", "import", "demo", "live", "record", "review")

# Plausible bounds for the simulator's options; beyond them the result would not be a human pelvis.
_BOUNDS = {
    "seconds": (1.0, 24 * 3600.0),
    "fs": (10.0, 2000.0),
    "drop_left": (-15.0, 25.0),
    "drop_right": (-15.0, 25.0),
    "sway_cm": (0.0, 30.0),
    "tilt_deg": (-45.0, 45.0),
    "reps": (1, 200),
    "up_s": (0.2, 10.0),
    "down_s": (0.2, 20.0),
    "drop_deg": (0.0, 20.0),
    "roll_back_deg": (0.0, 60.0),
}


# ---------------------------------------------------------------------------------------------------------- parser

class _Parser(argparse.ArgumentParser):
    """argparse with a usage error on one line, as every other failure, pointing at the command's --help."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The parser; each command's own parser is its ``parser`` default, handed to its run function."""
    parser = _Parser(
        prog="hipcheck",
        description="Pelvic drop, hip sway and pelvic tilt from one IMU clipped over the sacrum.",
        epilog="Exit codes: 0 done, 1 input refused, 2 usage, 69 device or link unavailable, 70 internal error "
        "(traceback in a log file), 130 interrupted. docs/cli.md",
    )
    parser.add_argument("--version", action="version", version=f"hipcheck {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    for add in (_add_simulate, _add_orient, _add_analyze, _add_flash, _add_simboard, _add_demo, _add_record,
                _add_connect, _add_live, _add_scan, _add_pair, _add_review):
        add(commands)
    _add_export(commands)
    _add_sync(commands)
    _add_import(commands)
    _add_calibrate(commands)
    return parser


def _add_simulate(commands) -> None:
    simulate = commands.add_parser(
        "simulate",
        help="simulate an activity and write the IMU trace (generic CSV) and its truth (JSON)",
        description="Simulate pelvis motion and the IMU signals a sacral sensor would record, through a realistic "
        "sensor model. Writes FILE.csv (docs/csv-format.md) and FILE.truth.json (docs/motion.md) and prints a "
        "summary of the truth.",
    )
    simulate.add_argument("activity", choices=ACTIVITIES)
    simulate.add_argument("-o", "--output", required=True, type=Path, metavar="FILE.csv", help="where to write")
    _add_force_option(simulate)
    simulate.add_argument("--seconds", type=float, help="duration in s (default 60; bridge, clamshell: as the reps need)")
    simulate.add_argument("--fs", type=float, default=100.0, help="sample rate in Hz (default 100)")
    simulate.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    simulate.add_argument(
        "--drop-left", type=float, metavar="DEG",
        help="walk/hold: pelvic drop during LEFT stance, in degrees: the right side sinks this far below level "
        "(walk default 4, healthy; larger = weak left hip abductors). For hold: a hold on the left leg.",
    )
    simulate.add_argument(
        "--drop-right", type=float, metavar="DEG",
        help="walk/hold: pelvic drop during RIGHT stance: the left side sinks this far (walk default 4). "
        "For hold: a hold on the right leg.",
    )
    simulate.add_argument("--sway-cm", type=float, metavar="CM", help="walk: side-to-side sway, peak to peak")
    simulate.add_argument("--tilt-deg", type=float, metavar="DEG", help="mean pelvic tilt, + = anterior")
    simulate.add_argument("--side", choices=("left", "right"), help="hold: the stance leg (default right)")
    simulate.add_argument("--ideal", action="store_true", help="no sensor errors (noise, bias, quantisation...)")
    simulate.add_argument("--json", action="store_true", help="print the summary as JSON")
    _add_rep_options(simulate)
    simulate.set_defaults(run=run_simulate, parser=simulate)


def _add_rep_options(simulate) -> None:
    reps = simulate.add_argument_group("bridge and clamshell")
    reps.add_argument("--reps", type=int, help="repetitions (default 10)")
    reps.add_argument("--up-s", type=float, metavar="S", help="time to lift, s (default 1)")
    reps.add_argument("--down-s", type=float, metavar="S", help="time to lower, s (default 3)")
    reps.add_argument("--drop-side", choices=("left", "right"), help="bridge: this side sinks at the top (the cheat)")
    reps.add_argument("--drop-deg", type=float, metavar="DEG", help="bridge: by this much (default 5)")
    reps.add_argument("--worn", choices=("thigh", "pelvis"), help="clamshell: where the sensor is (default thigh)")
    reps.add_argument("--roll-back-deg", type=float, metavar="DEG",
                      help="clamshell: the pelvis rolls back this far with each opening (the cheat; default 0)")


def _add_orient(commands) -> None:
    orient = commands.add_parser(
        "orient",
        help="orientation of a sensor from an IMU CSV file",
        description="Estimate the sensor's orientation (6D: accelerometer and gyroscope) and write t,qw,qx,qy,qz: "
        "the quaternion that maps the sensor frame into an earth frame with z up (heading arbitrary).",
    )
    orient.add_argument("input", type=Path, metavar="FILE",
                        help="generic IMU CSV (docs/csv-format.md) or session log (.hclog)")
    orient.add_argument("-o", "--output", required=True, type=Path, metavar="OUT.csv", help="where to write")
    _add_force_option(orient)
    orient.add_argument("--offline", action="store_true",
                        help="use the whole recording (non-causal filter, for review); default: causal, as live")
    _add_input_options(orient)
    orient.set_defaults(run=run_orient, parser=orient)


def _add_analyze(commands) -> None:
    analyze = commands.add_parser(
        "analyze",
        help="gait events, per-stride pelvic metrics, alerts and single-leg holds from an IMU CSV file",
        description="Analyse a recording of a sensor worn over the sacrum: initial and final contacts with side, "
        "per-stride pelvic drop (named by the stance side), sway, tilt and rotation, the detectors' decisions and "
        "single-leg holds. Sensor axes: x anterior, y left, z superior (remap others with --axes).",
    )
    analyze.add_argument("input", type=Path, metavar="FILE",
                         help="generic IMU CSV (docs/csv-format.md) or session log (.hclog)")
    analyze.add_argument("--json", action="store_true",
                         help="print one JSON object instead of text (schema: hipcheck/schema/analysis-v1.json)")
    analyze.add_argument("--offline", action="store_true",
                         help="orientation from the non-causal filter (review); default: causal, as the live alerts")
    _add_input_options(analyze)
    _add_alert_options(analyze, live=False)
    _add_mode_options(analyze)
    analyze.add_argument("--no-profile", action="store_true", help="leave out the calibration profile of the "
                         "sensor the log names (default: used, and said; docs/calibration.md)")
    analyze.set_defaults(run=run_analyze, parser=analyze)


def _add_review(commands) -> None:
    review = commands.add_parser(
        "review",
        help="review recorded sessions afterwards: an HTML report per wearer with figures, and Parquet tables",
        description="Analyse each session log (as `analyze` does: the same numbers as `analyze --json`) and write "
        "a self-contained HTML report: the pelvic angles over the gait cycle per side (mean ± SD), pelvic drop per "
        "stance side, sway and tilt per stride, alerts on a timeline, holds and reps, link quality, and trends across "
        "dates for a wearer with several sessions. PNGs go beside it, and a row per stride and per session into "
        "Parquet tables (docs/review.md).",
    )
    review.add_argument("inputs", type=Path, nargs="+", metavar="LOG|DIR",
                        help="session logs (.hclog; a CSV in the generic format too) or folders searched for *.hclog "
                        "(a subfolder per wearer: DIR/WEARER/…)")
    review.add_argument("-o", "--output", type=Path, required=True, metavar="REPORT.html",
                        help="the report; several wearers: an index linking REPORT-WEARER.html beside it")
    where = review.add_mutually_exclusive_group()
    where.add_argument("--jobs", type=int, default=1, metavar="N", help="review in N processes (default 1)")
    where.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                       help="run each session as a task on this Dask scheduler (pip install 'hipcheck[cluster]')")
    review.add_argument("--wearer", help="the wearer of every session given (default: from the folders or the log)")
    review.add_argument("--offline", action="store_true",
                        help="orientation from the non-causal filter; default: causal, as `analyze`")
    review.add_argument("--no-figures", dest="figures", action="store_false",
                        help="no per-session figures (tables, summaries and trends only: faster for an archive)")
    review.add_argument("--no-tables", dest="tables", action="store_false", help="no Parquet tables")
    review.add_argument("--mode", choices=("walk", "hold", "bridge", "clamshell"), default="walk",
                        help="what the sessions are of, as analyze --mode (default walk; bridge and clamshell list "
                        "the reps)")
    review.add_argument("--no-profile", dest="use_profile", action="store_false",
                        help="leave out the calibration profile of the sensor each log names (as analyze)")
    review.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="a progress bar on stderr (default: when stderr is a terminal)")
    _add_force_option(review)
    _add_alert_options(review, live=False)
    review.set_defaults(run=run_review, parser=review)


def _add_mode_options(analyze) -> None:
    analyze.add_argument("--mode", choices=("walk", "hold", "posture", "bridge", "clamshell"), default="walk",
                         help="the exercise recorded (default walk): posture alerts on the tilt against "
                         "--neutral-tilt; bridge (sensor at the front of the belt) and clamshell (on the top thigh) "
                         "list the reps. Those three read the sensor's axes (after --axes) as the body's")
    analyze.add_argument("--neutral-tilt", type=float, metavar="DEG",
                         help="posture: the wearer's neutral pelvic tilt, + = anterior (default 0)")
    analyze.add_argument("--hold-start", type=float, action="append", metavar="S",
                         help="hold: the user started a hold at this time in s (the key; repeat for more); double "
                         "taps on the sensor are found in the data")


def _add_alert_options(parser: argparse.ArgumentParser, live: bool = True) -> None:
    """The wearer's alert settings (hipcheck.alerts, docs/alerts.md): thresholds, profile, baseline; on a live
    job also the mode, the m-of-n gating and the refractory time."""
    group = parser.add_argument_group(
        "alerts", "defaults from the gait literature (docs/alerts.md); a --profile overrides them, these options "
        "override both")
    group.add_argument("--profile", type=Path, metavar="FILE.json", help="the wearer's profile: alert settings in "
                       "JSON, e.g. {\"drop_threshold_deg\": 7, \"m_strides\": 2, \"n_strides\": 3}")
    group.add_argument("--drop-threshold", type=float, metavar="DEG", help="pelvic drop that alerts: the free side "
                       "sinking this far below level while standing on the other leg (default 6)")
    group.add_argument("--sway-threshold", type=float, metavar="CM",
                       help="side-to-side sway of the pelvis per stride, peak to peak (default 6)")
    group.add_argument("--tilt-threshold", type=float, metavar="DEG",
                       help="mean pelvic tilt per stride this far forward or back of neutral standing (default 8)")
    group.add_argument("--baseline", action="store_true", default=None,
                       help="thresholds from the wearer's own first 20 steady strides (mean + 3 SD)")
    if live:
        group.add_argument("--alert-mode", choices=("training", "tracking"),
                           help="training: vibrate (default); tracking: record and print only")
        group.add_argument("--strides", metavar="M/N",
                           help="vibrate when M of the last N strides are over the threshold (default 2/3)")
        group.add_argument("--refractory", type=float, metavar="S",
                           help="least time between two vibrations of one alert, s (default 3)")


def _alert_settings(args: argparse.Namespace, parser: argparse.ArgumentParser):
    """The AlertSettings the command line and the --profile give (hipcheck.alerts.alert_settings)."""
    from hipcheck.alerts import alert_settings

    given = {"drop_threshold_deg": args.drop_threshold, "sway_threshold_cm": args.sway_threshold,
             "tilt_threshold_deg": args.tilt_threshold, "baseline": args.baseline,
             "mode": getattr(args, "alert_mode", None), "refractory_s": getattr(args, "refractory", None)}
    strides = getattr(args, "strides", None)
    if strides is not None:
        m, _, n = strides.partition("/")
        if not (m.isdigit() and n.isdigit()):
            parser.error(f"--strides {strides}: give M/N, e.g. 2/3")
        given["m_strides"], given["n_strides"] = int(m), int(n)
    return alert_settings(args.profile, **given)


def _add_input_options(parser: argparse.ArgumentParser) -> None:
    """How to read an IMU CSV written by another sensor: its rate, units and axes (orient, analyze)."""
    from hipcheck.imu_csv import ACC_UNITS, GYR_UNITS, TIME_UNITS

    parser.add_argument("--fs", type=float, metavar="HZ", help="sample rate (default: from the time column)")
    parser.add_argument("--time-unit", choices=tuple(TIME_UNITS),
                        help="unit of the CSV's time column (default: recognised from the sample period)")
    parser.add_argument("--acc-unit", choices=tuple(ACC_UNITS), default="m/s2", help="accelerometer unit")
    parser.add_argument("--gyr-unit", choices=tuple(GYR_UNITS), default="rad/s", help="gyroscope unit")
    parser.add_argument("--axes", metavar="SPEC",
                        help="map the file's axes onto ours (x anterior, y left, z superior), e.g. 'z,-y,x'")


def _add_export(commands) -> None:
    export = commands.add_parser(
        "export",
        help="the analysis of a recording as tables: samples, orientation, angles, contacts, strides, decisions, "
        "holds, reps (CSV or Parquet)",
        description="Analyse a recording as `analyze` does and write one file per table into a folder, with the "
        "dtypes of docs/export.md (pandas reads each back with them).",
    )
    export.add_argument("input", type=Path, metavar="FILE", help="session log (.hclog) or generic IMU CSV")
    export.add_argument("--format", choices=("csv", "parquet"), default="csv", help="file format (default csv)")
    export.add_argument("-o", "--output", type=Path, metavar="DIR",
                        help="folder for the tables (made if missing; default: FILE's name with -export, beside it)")
    _add_force_option(export)
    export.add_argument("--offline", action="store_true",
                        help="orientation from the non-causal filter (review); default: causal, as the live alerts")
    _add_input_options(export)
    _add_alert_options(export, live=False)
    _add_mode_options(export)
    export.add_argument("--no-profile", action="store_true", help="leave out the calibration profile of the "
                        "sensor the log names (default: used, as analyze does)")
    export.set_defaults(run=run_export, parser=export)


def _add_import(commands) -> None:
    from hipcheck.imu_csv import ACC_UNITS, GYR_UNITS, TIME_UNITS

    imp = commands.add_parser(
        "import",
        help="a CSV from another sensor (other column names and units, Movella DOT, MetaMotion) as a session log",
        description="Turn a CSV into a session log (.hclog) that analyze, review and --replay read: the generic "
        "format with other column names and units (--columns, --acc-unit, --gyr-unit, --time-unit), a Movella DOT "
        "export or MetaMotion MetaBase files (recognised from their headers). docs/import.md",
    )
    imp.add_argument("input", type=Path, nargs="+", metavar="FILE.csv",
                     help="the CSV; for MetaMotion the accelerometer's and the gyroscope's files (or one, the other "
                     "found beside it)")
    imp.add_argument("-o", "--output", type=Path, required=True, metavar="FILE.hclog", help="the log to write")
    _add_force_option(imp)
    imp.add_argument("--format", choices=("auto", "generic", "movella-dot", "metamotion"), default="auto",
                     help="what the file is (default: recognised from its header)")
    imp.add_argument("--columns", metavar="MAP", help="our column names onto the file's, e.g. "
                     "t=Time,acc_x=AccX,acc_y=AccY,acc_z=AccZ,gyr_x=GyrX,gyr_y=GyrY,gyr_z=GyrZ")
    imp.add_argument("--acc-unit", choices=tuple(ACC_UNITS), help="accelerometer unit (default: the format's; "
                     "generic m/s2)")
    imp.add_argument("--gyr-unit", choices=tuple(GYR_UNITS), help="gyroscope unit (default: the format's; generic "
                     "rad/s)")
    imp.add_argument("--time-unit", choices=tuple(TIME_UNITS), help="unit of the time column (default: the "
                     "format's, or recognised from the sample period)")
    imp.add_argument("--axes", metavar="SPEC", help="map the file's axes onto ours, e.g. 'z,-y,x'")
    imp.add_argument("--fs", type=float, metavar="HZ", help="sample rate (default: from the time column)")
    imp.set_defaults(run=run_import, parser=imp)


def _add_flash(commands) -> None:
    flash = commands.add_parser(
        "flash",
        help="compile the firmware for a board and copy it (with its config.json) over USB with mpremote",
        description="Compile every firmware module with mpy-cross for the board's architecture (xtensawin for the "
        "ESP32-S3, armv6m for the RP2040), write config.json for the board and copy both to it with mpremote. "
        "The board must already run MicroPython (v1.23 or newer, .mpy version 6.3).",
    )
    flash.add_argument("--port", metavar="PORT",
                       help="the board's serial port, e.g. /dev/ttyACM0 or COM3 (`mpremote connect list`)")
    flash.add_argument("--board", required=True, metavar="NAME", help="xiao-esp32s3 or nano-rp2040-connect")
    flash.add_argument("--dry-run", action="store_true", help="print the commands, run none of them")
    flash.add_argument("--build-dir", type=Path, metavar="DIR", help="where the .mpy files go (default: a temp dir)")
    flash.add_argument("--firmware", type=Path, metavar="DIR", help="the firmware folder (default: the repo's)")
    flash.set_defaults(run=run_flash, parser=flash)


def _add_simboard(commands) -> None:
    simboard = commands.add_parser(
        "simboard",
        help="play an IMU CSV through the real firmware on the emulated board and decode what it sends",
        description="Convert FILE.csv into the emulated IMU's trace, run the firmware (MicroPython unix port, "
        "firmware/sim/simboard.py) on it with the stdio link, decode every packet with hipcheck.protocol and print "
        "a summary: samples, sequence gaps, alerts, motor, speed, allocation per sample.",
    )
    simboard.add_argument("input", type=Path, metavar="FILE.csv", help="generic IMU CSV (docs/csv-format.md)")
    simboard.add_argument("--realtime", action="store_true",
                          help="follow the wall clock (default: as fast as possible)")
    simboard.add_argument("--seconds", type=float, metavar="S", help="device time to run (default: the whole trace)")
    simboard.add_argument("--chip", default="LSM6DSOX", choices=("LSM6DSOX", "LSM6DS3TR-C", "MPU-6050", "MPU-6886"),
                          help="the emulated IMU (default LSM6DSOX)")
    simboard.add_argument("--rate", type=int, default=100, choices=(25, 50, 100, 200, 400), help="sample rate, Hz")
    simboard.add_argument("-o", "--output", type=Path, metavar="OUT.npy",
                          help="save the decoded samples (numpy SAMPLE_DTYPE array)")
    _add_force_option(simboard)
    simboard.add_argument("--json", action="store_true", help="print the summary as JSON")
    simboard.set_defaults(run=run_simboard, parser=simboard)


def _add_demo(commands) -> None:
    demo = commands.add_parser(
        "demo",
        help="the whole system without hardware: the simulated sensor (real firmware) on a walk, live analysis, "
        "alerts sent back to its motor, a recording and a summary",
        description="Simulate a walk (default 60 s with a weak right hip: --drop-right 8), play it through the real "
        "firmware in the MicroPython unix port (the simulated sensor), receive its packets like a real sensor's "
        "(backfill, time sync, recording), run the live pipeline, send VIBRATE back when a detector fires, print a "
        "line per stride and a summary naming the weak side. Drops are named by the stance side.",
    )
    demo.add_argument("--seconds", type=float, default=60.0, help="duration of the walk in s (default 60)")
    demo.add_argument("--drop-left", type=float, metavar="DEG",
                      help="pelvic drop during LEFT stance (the right side sinks), degrees (walk default 4)")
    demo.add_argument("--drop-right", type=float, metavar="DEG",
                      help="pelvic drop during RIGHT stance (the left side sinks), degrees (walk default 8)")
    demo.add_argument("--activity", choices=("walk", "hold"), default="walk",
                      help="walk (default) or a single-leg hold")
    demo.add_argument("--headless", action="store_true",
                      help="no live window; as fast as possible (the same findings as in real time)")
    pace = demo.add_mutually_exclusive_group()
    pace.add_argument("--realtime", dest="realtime", action="store_true", default=None,
                      help="run at the pace of a real walk (default without --headless)")
    pace.add_argument("--fast", dest="realtime", action="store_false", help="as fast as possible")
    demo.add_argument("--record", type=Path, metavar="FILE.hclog",
                      help="where to keep the session log (default: hipcheck-demo/session.hclog in the temp folder)")
    demo.add_argument("--seed", type=int, default=1, help="random seed of the simulated walk (default 1)")
    _add_force_option(demo)
    _add_alert_options(demo)
    demo.set_defaults(run=run_demo, parser=demo)


def _add_record(commands) -> None:
    record = commands.add_parser(
        "record",
        help="record a sensor headless, with alerts: --sim TRACE, --serial PORT, --ble NAME|ADDRESS or --replay LOG",
        description="Connect to a sensor, record every packet in a crash-safe log (backfilling gaps), run the live "
        "pipeline and send VIBRATE when a detector fires; Ctrl-C ends it. Prints a line per stride and a summary.",
    )
    _add_link_options(record, seconds_help="stop after this much device time")
    record.add_argument("-o", "--output", type=Path, required=True, metavar="FILE.hclog", help="the log to write")
    _add_force_option(record)
    record.add_argument("--no-alerts", action="store_true", help="record only: no VIBRATE")
    _add_no_profile_option(record)
    _add_alert_options(record)
    record.set_defaults(run=run_record, parser=record)


def _add_live(commands) -> None:
    live = commands.add_parser(
        "live",
        help="the live pipeline on a sensor: a line per stride, alerts sent back, a summary",
        description="The live pipeline on a sensor: a line per stride, alerts sent back, a summary, and the live "
        "window (angles over the last 10 s, drop bars per step, sway per stride, alerts, link figures, the mode panel; "
        "keys: space pause, m mark, n neutral, c mode, q close) unless --headless or no display can show it.",
    )
    _add_link_options(live, seconds_help="stop after this much device time")
    live.add_argument("-o", "--output", type=Path, metavar="FILE.hclog",
                      help="also keep the session log (default: none)")
    _add_force_option(live)
    live.add_argument("--no-alerts", action="store_true", help="no VIBRATE sent back")
    live.add_argument("--headless", action="store_true", help="no live window: lines only")
    _add_no_profile_option(live)
    _add_alert_options(live)
    live.set_defaults(run=run_live, parser=live)


def _add_no_profile_option(parser: argparse.ArgumentParser) -> None:
    """live and record: the connected sensor's calibration profile is applied as analyze applies it to a log."""
    parser.add_argument("--no-profile", action="store_true", help="leave out the calibration profile of the "
                        "connected sensor (default: its mounting and corrections used, and said; docs/calibration.md)")


def _add_connect(commands) -> None:
    what = "connect to a sensor and print its INFO and live link figures every second"
    connect = commands.add_parser("connect", help=what, description=what.capitalize() + ".")
    _add_link_options(connect, seconds_help="stop after this much wall time")
    connect.set_defaults(run=run_connect, parser=connect)


def _add_link_options(parser: argparse.ArgumentParser, seconds_help: str) -> None:
    """The sensor to talk to, exactly one of the links of hipcheck.links, and how long (record, live, connect)."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--sim", type=Path, metavar="TRACE", help="the simulated sensor on an IMU CSV")
    source.add_argument("--serial", metavar="PORT", help="a sensor on USB serial, e.g. /dev/ttyACM0")
    source.add_argument("--ble", metavar="NAME|ADDRESS", help="a sensor over Bluetooth LE")
    source.add_argument("--replay", type=Path, metavar="LOG", help="a recorded session log")
    _add_backend_option(parser)
    parser.add_argument("--seconds", type=float, metavar="S", help=seconds_help)
    parser.add_argument("--realtime", action="store_true", help="--sim / --replay at real-time pace")


def _add_scan(commands) -> None:
    scan = commands.add_parser(
        "scan",
        help="list the hipcheck sensors in BLE range",
        description="Scan for BLE devices advertising the hipcheck service and list them with name, address and "
        "signal strength (RSSI, dBm), strongest first. Devices without the service are not listed, whatever their "
        "name.",
    )
    scan.add_argument("--seconds", type=float, default=5.0, metavar="S", help="how long to scan (default 5)")
    scan.add_argument("--json", action="store_true", help="print the list as JSON")
    _add_backend_option(scan)
    scan.set_defaults(run=run_scan, parser=scan)


def _add_pair(commands) -> None:
    pair = commands.add_parser(
        "pair",
        help="bond this computer with a sensor over BLE (once, in the sensor's pairing window)",
        description="Pair and bond with a sensor (LE Secure Connections) so that it takes commands from this computer. "
        "The sensor accepts a new host only in its pairing window: 2 minutes after its button is held 1 s (the "
        "motor buzzes short-short-long), after its first power-on, or after main.run(pair=True) over USB. "
        "docs/security.md",
    )
    pair.add_argument("--ble", required=True, metavar="NAME|ADDRESS", help="the sensor, e.g. hipcheck-3F2A")
    _add_backend_option(pair)
    pair.set_defaults(run=run_pair, parser=pair)


def _add_sync(commands) -> None:
    sync = commands.add_parser(
        "sync",
        help="copy the sensor's flash session logs to a folder: resumable, every block CRC-checked",
        description="Copy every session logged on the sensor's flash into DIR: each block checked (CRC-32, session, "
        "number), a partial copy kept as NAME.part and continued from its last verified block on the next run, a "
        "whole one as NAME.blocks (the flash's bytes) and NAME.hclog (for analyze and every reader of logs). Nothing "
        "is erased unless --erase, and then only sessions whose whole copy was verified. docs/sync.md",
    )
    source = sync.add_mutually_exclusive_group(required=True)
    source.add_argument("--sim", type=Path, metavar="FLASH",
                        help="the simulated sensor with this emulated flash file (made when missing)")
    source.add_argument("--serial", metavar="PORT", help="a sensor on USB serial, e.g. /dev/ttyACM0")
    source.add_argument("--ble", metavar="NAME|ADDRESS", help="a sensor over Bluetooth LE (paired: hipcheck pair)")
    sync.add_argument("--sim-trace", type=Path, metavar="FILE.csv",
                      help="--sim: the IMU CSV the simulated sensor plays while it is synced (default: lying still)")
    sync.add_argument("-o", "--output", type=Path, default=Path("."), metavar="DIR",
                      help="the folder for the copies (default: the current one)")
    sync.add_argument("--erase", action="store_true",
                      help="erase each session on the sensor once its whole copy is verified")
    _add_backend_option(sync)
    sync.set_defaults(run=run_sync, parser=sync)


def _add_calibrate(commands) -> None:
    calibrate = commands.add_parser(
        "calibrate",
        help="calibrate a sensor (gyro, accel, mount, neutral) and keep its profile: show, export, reset, upload",
        description="Guided calibrations (prompts, countdowns, progress) against a sensor or the simulated one, or "
        "from a recording made earlier. The result goes into the sensor's profile on this computer (one JSON per "
        "device id; `hipcheck analyze` of its logs uses it) and to the sensor itself (CAL_UPLOAD). "
        "docs/calibration.md",
    )
    actions = calibrate.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    for kind, what in (("gyro", "gyroscope bias: the sensor lies still on a table for 10 s"),
                       ("accel", "accelerometer scale, bias and misalignment: the sensor laid still in 12 poses"),
                       ("mount", "how the sensor sits on the pelvis: a quiet stand, then 20 s of straight walking"),
                       ("neutral", "the wearer's neutral pelvic tilt: standing relaxed, then sitting")):
        step = actions.add_parser(kind, help=what, description=what.capitalize() + ". docs/calibration.md")
        source = step.add_mutually_exclusive_group(required=True)
        source.add_argument("--sim", action="store_true",
                            help="the simulated sensor (real firmware on the sim board) worn by a simulated person")
        source.add_argument("--serial", metavar="PORT", help="a sensor on USB serial (it names itself; firmware before 0.5: give --device too)")
        source.add_argument("--ble", metavar="NAME|ADDRESS", help="a sensor over Bluetooth LE")
        source.add_argument("--from", dest="from_file", type=Path, metavar="FILE",
                            help="a recording made earlier: IMU CSV or session log (.hclog)")
        _add_backend_option(step)
        step.add_argument("--device", metavar="ID", help="the sensor's id for its profile (default: what the link "
                          "or the log says: hipcheck-XXXX over BLE, sim)")
        step.add_argument("--non-interactive", action="store_true", help="no waiting for Enter, for scripts")
        step.add_argument("--json", action="store_true", help="print the estimate and its quality figures as JSON")
        step.add_argument("--no-upload", action="store_true", help="keep the profile here; do not send it")
        step.add_argument("--sim-flash", type=Path, metavar="DIR",
                          help="--sim: the simulated sensor's flash folder (default: sim-sensor in the config folder)")
        step.add_argument("--realtime", action="store_true", help="--sim at the pace of a real person")
        _add_input_options(step)  # --from: a CSV of another sensor, its rate, units and axes
        if kind == "neutral":
            step.add_argument("--posture", choices=("standing", "sitting"), default="standing",
                              help="--from: the posture the recording holds (default standing)")
        step.set_defaults(run=run_calibrate, parser=step)
    show = actions.add_parser("show", help="the profiles kept on this computer (or one)")
    show.add_argument("--device", metavar="ID", help="one sensor's profile")
    show.add_argument("--json", action="store_true", help="as JSON")
    export = actions.add_parser("export", help="write a sensor's profile (JSON) to a file or stdout")
    export.add_argument("--device", metavar="ID", required=True)
    export.add_argument("-o", "--output", type=Path, metavar="FILE.json", help="where (default: stdout)")
    _add_force_option(export)
    reset = actions.add_parser("reset", help="forget a sensor's calibrations (all, or --only some)")
    reset.add_argument("--device", metavar="ID", required=True)
    reset.add_argument("--only", choices=("gyro", "accel", "mount", "neutral"), action="append",
                       help="forget only this calibration (repeat for more)")
    upload = actions.add_parser("upload", help="send a sensor's profile to it (CAL_UPLOAD)")
    source = upload.add_mutually_exclusive_group(required=True)
    source.add_argument("--sim", action="store_true", help="the simulated sensor")
    source.add_argument("--serial", metavar="PORT", help="a sensor on USB serial (it names itself; firmware before 0.5: give --device too)")
    source.add_argument("--ble", metavar="NAME|ADDRESS", help="a sensor over Bluetooth LE")
    upload.add_argument("--device", metavar="ID", help="the profile to send (default: the sensor's own)")
    upload.add_argument("--sim-flash", type=Path, metavar="DIR", help="--sim: the simulated sensor's flash folder")
    _add_backend_option(upload)
    for parser in (show, export, reset, upload):
        parser.set_defaults(run=run_calibrate, parser=parser)


def _add_force_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--force", action="store_true", help="overwrite the output file if it exists")


def _add_backend_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", metavar="MODULE:NAME",
                        help="a bleak backend other than the platform's: NAME is a BleBackend (scanner, client) or an "
                        "(async) function returning one, called inside the command's event loop (tests, emulators)")


# ------------------------------------------------------------------------------------------- main: the error root

def main(argv: list[str] | None = None) -> int:
    """Run one command. A usage error exits 2 (argparse); any other failure prints one line on stderr,
    ``hipcheck COMMAND: message``, and returns its exit code (module docstring)."""
    args, unknown = build_parser().parse_known_args(argv)
    if unknown:  # told by the command's own parser, which names the command
        args.parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        # A cold numba cache makes these wait: say why (hipcheck.compile_notice); only as the `hipcheck` command
        # (main() called from Python, as tests do, leaves the process alone).
        if argv is None and args.command in COMPILING_COMMANDS:
            from hipcheck.compile_notice import announce_compiles

            announce_compiles(args.command)
        return args.run(args, args.parser)
    except KeyboardInterrupt:
        print(f"hipcheck {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the output went to a pager or `head` that closed early: not an error
        sys.stderr.close()
        return EXIT_OK
    except Exception as error:  # the one place where errors end; each kind gets its line and code in _explain
        message, code = _explain(error, sys.argv[1:] if argv is None else argv)
        print(f"hipcheck {args.command}: {message}", file=sys.stderr)
        return code


def _explain(error: Exception, argv: list[str]) -> tuple[str, int]:
    """One line and the exit code for an error that ended a command."""
    if isinstance(error, HipcheckError):
        return _one_line(str(error)), error.exit_code
    if isinstance(error, OSError) and error.filename is not None:  # a file the user named is missing or unreadable
        return f"{error.filename}: {error.strerror or error}", EXIT_REFUSED
    log = _write_crash_log(error, argv)
    where = f"the full traceback is in {log}" if log is not None else "no log could be written"
    return (f"unexpected error {type(error).__name__}: {_one_line(str(error))[:300]}; {where} "
            "(please attach it to a bug report)", EXIT_INTERNAL)


def _one_line(message: str) -> str:
    return "; ".join(line.strip() for line in message.splitlines() if line.strip())


def crash_log_folders() -> list[Path]:
    """Where the traceback of an unexpected error goes, in order of preference: the user's cache folder
    ($XDG_CACHE_HOME/hipcheck or ~/.cache/hipcheck), then the temp folder."""
    cache = os.environ.get("XDG_CACHE_HOME")
    cache_dir = Path(cache) if cache and os.path.isabs(cache) else Path(os.path.expanduser("~")) / ".cache"
    return [cache_dir / "hipcheck", Path(tempfile.gettempdir()) / "hipcheck"]


def _write_crash_log(error: Exception, argv: list[str]) -> Path | None:
    text = (f"hipcheck {__version__}, Python {platform.python_version()}, {platform.platform()}\n"
            f"command: hipcheck {shlex.join(argv)}\n\n" + "".join(traceback.format_exception(error)))
    name = f"crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    for folder in crash_log_folders():
        try:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(text)
            return folder / name
        except OSError:
            continue
    return None


# ------------------------------------------------------------------------------------------ commands on files

def run_simulate(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from hipcheck import motion
    from hipcheck.errors import InvalidValueError
    from hipcheck.imu_csv import write_imu_csv

    _check_bounds(args, parser)
    kwargs = _activity_kwargs(args, parser)
    if args.output.suffix.lower() != ".csv":
        parser.error(f"the output {args.output} should end in .csv (the truth goes beside it as .truth.json)")
    _check_output(args.output, parser, args.force)
    _check_output(args.output.with_name(args.output.stem + ".truth.json"), parser, args.force)
    simulate = {
        "walk": motion.simulate_walk,
        "hold": motion.simulate_hold,
        "stand": motion.simulate_stand,
        "sit": motion.simulate_sit,
        "sit-to-stand": motion.simulate_sit_to_stand,
        "bridge": motion.simulate_bridge,
        "clamshell": motion.simulate_clamshell,
    }[args.activity]
    sensor = motion.SensorModel.ideal() if args.ideal else motion.SensorModel.realistic(seed=args.seed)
    if args.activity in REP_ACTIVITIES and not args.ideal:
        sensor = None  # the simulator's preset, worn at the front of the belt or on the thigh
    seconds = args.seconds if args.seconds is not None else None if args.activity in REP_ACTIVITIES else 60.0
    started = time.perf_counter()
    if seconds is not None and seconds > 600:
        print(f"simulating {seconds:.0f} s of {args.activity}...", file=sys.stderr, flush=True)
    try:
        trace = simulate(duration_s=seconds, fs_hz=args.fs, seed=args.seed, sensor=sensor, **kwargs)
    except InvalidValueError as error:  # options the simulator cannot honour together, e.g. a walk too short
        parser.error(str(error))
    write_imu_csv(args.output, trace.t_s, trace.acc_sensor_m_s2, trace.gyr_sensor_rad_s)
    truth_path = args.output.with_name(args.output.stem + ".truth.json")
    truth_path.write_text(json.dumps(trace.truth_dict(), separators=(",", ":")))
    elapsed_s = time.perf_counter() - started

    summary = trace.summary()
    if args.json:
        print(json.dumps({"csv": str(args.output), "truth": str(truth_path), **summary}, indent=2))
    else:
        print(_format_summary(args.activity, summary, len(trace.t_s), args.output, truth_path, elapsed_s))
    return 0


def _check_bounds(args: argparse.Namespace, parser: argparse.ArgumentParser, names=tuple(_BOUNDS)) -> None:
    """The simulator's options within _BOUNDS (a usage error otherwise)."""
    for name in names:
        value, (low, high) = getattr(args, name), _BOUNDS[name]
        if value is not None and not low <= value <= high:
            parser.error(f"--{name.replace('_', '-')} {value:g} is out of range; use {low:g} to {high:g}")


def _activity_kwargs(args: argparse.Namespace, parser: argparse.ArgumentParser) -> dict:
    """Map CLI options onto the simulator's keyword arguments, refusing options that do not apply."""
    allowed = {
        "walk": {"drop_left", "drop_right", "sway_cm", "tilt_deg"},
        "hold": {"drop_left", "drop_right", "tilt_deg", "side"},
        "stand": {"tilt_deg"},
        "sit": {"tilt_deg"},
        "sit-to-stand": set(),
        "bridge": {"reps", "up_s", "down_s", "drop_side", "drop_deg"},
        "clamshell": {"reps", "up_s", "down_s", "worn", "roll_back_deg"},
    }[args.activity]
    for name in ("drop_left", "drop_right", "sway_cm", "tilt_deg", "side", "reps", "up_s", "down_s", "drop_side",
                 "drop_deg", "worn", "roll_back_deg"):
        if getattr(args, name) is not None and name not in allowed:
            parser.error(f"--{name.replace('_', '-')} does not apply to {args.activity}")

    kwargs: dict = {}
    if args.tilt_deg is not None:
        kwargs["tilt_mean_deg"] = args.tilt_deg
    if args.activity == "walk":
        for option, keyword in (("drop_left", "drop_left_deg"), ("drop_right", "drop_right_deg"),
                                ("sway_cm", "sway_cm")):
            if getattr(args, option) is not None:
                kwargs[keyword] = getattr(args, option)
    elif args.activity == "hold":
        # A drop is named by the stance side, as in walking: --drop-right 6 is a hold on the right leg.
        if args.drop_left is not None and args.drop_right is not None:
            parser.error("a hold stands on one leg: give --drop-left or --drop-right, not both")
        stance_from_drop = "left" if args.drop_left is not None else "right" if args.drop_right is not None else None
        if args.side and stance_from_drop and args.side != stance_from_drop:
            parser.error(f"--side {args.side} contradicts --drop-{stance_from_drop} (a drop names the stance side)")
        kwargs["side"] = args.side or stance_from_drop or "right"
        drop = args.drop_left if args.drop_left is not None else args.drop_right
        if drop is not None:
            kwargs["drop_deg"] = drop
    for name in ("reps", "up_s", "down_s", "drop_side", "drop_deg", "worn", "roll_back_deg"):
        if args.activity in REP_ACTIVITIES and getattr(args, name) is not None:
            kwargs[name] = getattr(args, name)
    return kwargs


def _format_summary(activity: str, summary: dict, n_samples: int, csv_path: Path, truth_path: Path,
                    elapsed_s: float) -> str:
    lines = [f"simulated {activity}: {n_samples} samples in {elapsed_s:.2f} s; its ground truth:"]
    for key, value in summary.items():
        lines.append(f"  {key}: {value:.2f}" if isinstance(value, float) else f"  {key}: {value}")
    if "drop_right_stance_deg_mean" in summary:
        lines.append("  (drops are named by the stance side: drop_right_stance = the left side sinking while on the "
                     "right leg)")
    lines.append(f"wrote {csv_path} (IMU trace, docs/csv-format.md) and {truth_path} (truth, docs/motion.md)")
    return "\n".join(lines)


def run_orient(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import numpy as np

    from hipcheck.fusion import orient
    from hipcheck.inputs import check_imu

    if args.output.suffix.lower() != ".csv":
        parser.error(f"the output {args.output} should end in .csv")
    _check_output(args.output, parser, args.force, inputs=(args.input,))
    recording = _read_input(args)
    with _about(args.input):
        report = check_imu(recording.acc_m_s2, recording.gyr_rad_s, recording.fs_hz)
    for warning in recording.notes + report.warnings():
        print(f"hipcheck orient: warning: {warning}", file=sys.stderr)
    quat = orient(recording.acc_m_s2, recording.gyr_rad_s, recording.fs_hz, offline=args.offline)
    rows, left_out = _orientations_to_write(recording.acc_m_s2, recording.gyr_rad_s, quat)
    if not rows.any():
        raise InvalidValueError(f"{args.input}: no orientation could be estimated ({left_out}); nothing written")
    table = np.column_stack([recording.t_s, quat])[rows]
    np.savetxt(args.output, table, delimiter=",", header="t,qw,qx,qy,qz", comments="", fmt="%.9g")
    print(f"wrote {len(table)} orientations ({'offline' if args.offline else 'causal'} filter) to {args.output}"
          + (f"; {left_out}" if left_out else ""), file=sys.stderr)
    return 0


def _orientations_to_write(acc, gyr, quat):
    """Which rows of orient's output are results, and what the others were: a sample with no data (NaN in the file,
    or inside a time gap) has only the orientation held from before it, and a NaN quaternion is no estimate."""
    import numpy as np

    no_data = ~(np.all(np.isfinite(acc), axis=1) & np.all(np.isfinite(gyr), axis=1))
    no_estimate = ~np.all(np.isfinite(quat), axis=1) & ~no_data
    parts = [f"{n} {what}" for n, what in ((int(no_data.sum()), "samples with no data (NaN or inf, or in a time gap)"),
                                            (int(no_estimate.sum()), "samples the filter gave no estimate for"))
             if n]
    return ~(no_data | no_estimate), ("not written: " + ", ".join(parts)) if parts else ""


def run_analyze(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from hipcheck import report
    from hipcheck.api import analysis_json
    from hipcheck.pipeline import analyze_arrays

    recording = _read_input(args)
    detectors = _alert_settings(args, parser).detector_settings()
    mode = _mode_arguments(args, parser, recording.fs_hz)
    acc, gyr, alignment = _device_profile(args, recording, detectors, mode)
    with _about(args.input):
        # --axes declares the file's frame to be ours: the forward sign is then taken from it, not from the data.
        analysis = analyze_arrays(acc, gyr, recording.fs_hz, offline=args.offline, alignment=alignment,
                                  detector_settings=detectors, axes_given=args.axes is not None, **mode)
    # the weak side is named against the drop threshold the alerts use (--drop-threshold, --profile)
    result = analysis_json(analysis, recording, detectors["drop_threshold_deg"])
    print(json.dumps(result) if args.json else report.analysis_text(result, analysis.strides, str(args.input)))
    return 0


def run_review(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from hipcheck.review import ReviewSettings, review

    if args.output.suffix.lower() not in (".html", ".htm"):
        parser.error(f"the report {args.output} should end in .html")
    if args.jobs < 1:
        parser.error(f"--jobs {args.jobs}: give 1 or more")
    _check_output(args.output, parser, args.force, inputs=tuple(args.inputs))
    alerts = _alert_settings(args, parser)
    settings = ReviewSettings(detector_settings=alerts.detector_settings(), drop_threshold_deg=alerts.drop_threshold_deg,
                              offline=args.offline, figures=args.figures, use_profile=args.use_profile,
                              mode=args.mode)
    done = review(args.inputs, args.output, jobs=args.jobs, scheduler=args.scheduler, wearer=args.wearer,
                  settings=settings, tables=args.tables, progress=args.progress)
    failed = sum(1 for r in done.reviews if r.error)
    print(f"{len(done.reviews) - failed} session(s) reviewed" + (f", {failed} not analysed" if failed else "")
          + f": {', '.join(map(str, done.reports))}; {len(done.figures)} figures in {args.output.stem}_figures/"
          + (f"; tables {done.strides_table.name}, {done.sessions_table.name}" if done.strides_table else ""))
    return 0


def _device_profile(args: argparse.Namespace, recording, detectors: dict, mode: dict):
    """(acc, gyr, alignment): the recording with the calibration profile of the sensor its log names applied
    (hipcheck.calibration.profile.for_analysis; --no-profile: as recorded); says which profile on stderr."""
    if args.no_profile:
        return recording.acc_m_s2, recording.gyr_rad_s, None
    from hipcheck.calibration.profile import for_analysis

    acc, gyr, alignment, line = for_analysis(recording, detectors, mode, axes_given=args.axes is not None)
    if line:
        print(f"hipcheck {args.command}: {line}", file=sys.stderr)
    return acc, gyr, alignment


def _mode_arguments(args: argparse.Namespace, parser: argparse.ArgumentParser, fs_hz: float) -> dict:
    """analyze's coaching mode and its settings for hipcheck.pipeline.analyze_arrays."""
    if args.neutral_tilt is not None and args.mode != "posture":
        parser.error("--neutral-tilt applies to --mode posture")
    if args.hold_start and args.mode != "hold":
        parser.error("--hold-start applies to --mode hold")
    settings = {"neutral_tilt_deg": args.neutral_tilt} if args.neutral_tilt is not None else None
    starts = [round(t_s * fs_hz) for t_s in args.hold_start or ()]
    return {"mode": args.mode, "mode_settings": settings, "hold_starts": starts}


def _read_input(args: argparse.Namespace):
    """The input (a CSV or a session log) in SI units and our axes (an error naming the file when it cannot be
    used); a log gives its samples in sequence order with the lost ones left out, as the live job did."""
    from hipcheck.api import read_recording

    return read_recording(args.input, acc_unit=args.acc_unit, gyr_unit=args.gyr_unit, axes=args.axes, fs_hz=args.fs,
                          time_unit=args.time_unit)


@contextmanager
def _about(path: Path):
    """A recording the signal checks refuse: the message names the file."""
    from hipcheck.inputs import InputError

    try:
        yield
    except InputError as error:
        raise InputError(f"{path}: {error}") from error


def _check_folder(output: Path | None, parser: argparse.ArgumentParser) -> None:
    """An output whose folder is missing is a file problem (exit 1, like a missing input), found before any work."""
    if output is not None:
        check_folder_of(output)


def _check_output(output: Path | None, parser: argparse.ArgumentParser, force: bool,
                  inputs: tuple[Path | None, ...] = ()) -> None:
    """An output, checked before any work (hipcheck.outputs: its folder exists, it is none of the inputs, an
    existing file is replaced only with --force)."""
    if output is not None:
        check_output_file(output, force=force, inputs=inputs)


def run_export(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from hipcheck.api import Result
    from hipcheck.export import check_output_dir, export_tables, write_tables
    from hipcheck.pipeline import analyze_arrays

    output = args.output or args.input.with_name(args.input.stem + "-export")
    check_output_dir(output, args.format, force=args.force, inputs=(args.input,))
    recording = _read_input(args)
    detectors = _alert_settings(args, parser).detector_settings()
    mode = _mode_arguments(args, parser, recording.fs_hz)
    acc, gyr, alignment = _device_profile(args, recording, detectors, mode)  # as analyze: the same numbers
    with _about(args.input):
        analysis = analyze_arrays(acc, gyr, recording.fs_hz, offline=args.offline, alignment=alignment,
                                  detector_settings=detectors, axes_given=args.axes is not None, **mode)
    tables = export_tables(Result(analysis, recording, args.mode))
    paths = write_tables(tables, output, args.format, force=args.force, inputs=(args.input,))
    for name, path in paths.items():
        print(f"{path}: {len(tables[name])} rows")
    return 0


def run_import(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from hipcheck.import_csv import check_output, write_session_log
    from hipcheck.vendor_csv import read_foreign_csv

    output = check_output(args.output, args.input, force=args.force)
    foreign = read_foreign_csv(args.input, kind=args.format, columns=args.columns, acc_unit=args.acc_unit,
                               gyr_unit=args.gyr_unit, time_unit=args.time_unit, axes=args.axes, fs_hz=args.fs)
    for note in foreign.recording.notes:
        print(f"hipcheck import: note: {note}", file=sys.stderr)
    print(write_session_log(foreign, output).line())
    return 0


# ------------------------------------------------------------------------------- commands on the simulated board

def run_simboard(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from hipcheck.links.simboard import run_simboard as simboard

    if args.seconds is not None and not args.seconds > 0:
        parser.error(f"--seconds {args.seconds}: give a positive duration")
    _check_output(args.output, parser, args.force, inputs=(args.input,))
    result = simboard(args.input, chip=args.chip, rate_hz=args.rate, seconds=args.seconds, realtime=args.realtime)
    if args.output is not None:
        import numpy as np

        np.save(args.output, result.samples)
    summary = result.summary()
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        for key, value in summary.items():
            print(f"{key:24s} {value}")
    if summary["seq_gaps"]:
        print(f"hipcheck simboard: the firmware's stream had {len(summary['seq_gaps'])} sequence gaps", file=sys.stderr)
        return EXIT_REFUSED
    return 0


def run_demo(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from hipcheck.alerts import AlertPolicy
    from hipcheck.demo import run_demo as demo

    if not 10.0 <= args.seconds <= 3600.0:
        parser.error(f"--seconds {args.seconds:g}: give 10 to 3600 s (a walk needs a few strides)")
    _check_bounds(args, parser, ("drop_left", "drop_right"))
    _check_output(args.record, parser, args.force)
    demo(seconds=args.seconds, drop_left=args.drop_left, drop_right=args.drop_right, activity=args.activity,
         headless=args.headless, realtime=args.realtime, record=args.record, seed=args.seed,
         policy=AlertPolicy(_alert_settings(args, parser)),
         out=_print)
    return 0


# ------------------------------------------------------------------------------------------ commands on a sensor

def run_record(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from hipcheck.alerts import AlertPolicy
    from hipcheck.live import run_record as record

    options = _link_options(args, parser, args.output)
    record(options, output=args.output, seconds=args.seconds, alerts=not args.no_alerts,
           policy=AlertPolicy(_alert_settings(args, parser)), use_profile=not args.no_profile, out=_print)
    return 0


def run_live(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from hipcheck.alerts import AlertPolicy
    from hipcheck.live import run_record as record

    options = _link_options(args, parser, args.output)
    record(options, output=args.output, seconds=args.seconds, alerts=not args.no_alerts,
           policy=AlertPolicy(_alert_settings(args, parser)), window=not args.headless,
           use_profile=not args.no_profile, out=_print)
    return 0


def run_connect(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from hipcheck.live import run_connect as connect

    connect(_link_options(args, parser), seconds=args.seconds, out=_print)
    return 0


def _link_options(args: argparse.Namespace, parser: argparse.ArgumentParser, output: Path | None = None):
    """The link options of record, live and connect (and the log to write), checked before anything opens; a --sim
    or --replay file that cannot be read is refused here, not after the pipeline's warm-up."""
    from hipcheck.live import LinkOptions

    if args.seconds is not None and not args.seconds > 0:
        parser.error(f"--seconds {args.seconds}: give a positive duration")
    _check_output(output, parser, output is not None and args.force, inputs=(args.sim, args.replay))
    if args.backend is not None and args.ble is None:
        parser.error("--backend applies to --ble only")
    for path in (args.sim, args.replay):
        if path is not None:
            with open(path, "rb"):  # OSError names the file: exit 1
                pass
    return LinkOptions(sim=args.sim, serial=args.serial, ble=args.ble, replay=args.replay,
                       backend=_load_backend(args.backend, parser), realtime=args.realtime)


def _load_backend(spec: str | None, parser: argparse.ArgumentParser):
    """--backend loaded at once: a typo is a usage error, not a failure after connecting."""
    if spec is None:
        return None
    from hipcheck.errors import InvalidValueError
    from hipcheck.links.ble import load_backend

    try:
        return load_backend(spec)
    except InvalidValueError as error:
        parser.error(str(error))


def run_scan(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import asyncio

    from hipcheck.links.ble import resolve_backend, scan

    if not 0 < args.seconds <= 600:
        parser.error(f"--seconds {args.seconds:g}: scan for more than 0 and at most 600 s")
    backend = _load_backend(args.backend, parser)

    async def go():
        return await scan(args.seconds, backend=await resolve_backend(backend))

    found = asyncio.run(go())
    if args.json:
        print(json.dumps([{"name": f.name, "address": f.address, "rssi_dbm": f.rssi_dbm} for f in found], indent=2))
    elif not found:
        print(f"no hipcheck sensor found in {args.seconds:g} s (is it on, charged, in range and not connected to "
              "another host?)")
    else:
        print(f"{'name':<16} {'address':<20} {'RSSI dBm':>8}")
        for f in found:
            print(f"{f.name or '?':<16} {f.address:<20} {'' if f.rssi_dbm is None else f.rssi_dbm:>8}")
    return 0


def run_pair(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import asyncio

    from hipcheck.links.ble import pair_sensor, resolve_backend

    backend = _load_backend(args.backend, parser)

    async def go():
        return await pair_sensor(args.ble, backend=await resolve_backend(backend))

    info = asyncio.run(go())
    print(f"paired with {args.ble} (firmware {info['fw_major']}.{info['fw_minor']}.{info['fw_patch']}): it takes "
          "commands from this computer now")
    return 0


def run_sync(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import asyncio

    from hipcheck.device.logsync import LogSync, check_synced, progress_printer, report_lines
    from hipcheck.live import LinkOptions, make_link

    if args.sim_trace is not None and args.sim is None:
        parser.error("--sim-trace applies to --sim only")
    if args.backend is not None and args.ble is None:
        parser.error("--backend applies to --ble only")
    if args.output.exists() and not args.output.is_dir():
        parser.error(f"-o {args.output}: a file; give a folder")
    if args.sim is not None and not args.sim.parent.is_dir():
        raise InvalidValueError(f"--sim: the folder {args.sim.parent} does not exist: create it or give another path")
    backend = _load_backend(args.backend, parser)

    async def go():
        if args.sim is not None:
            link = _sim_sync_link(args.sim, args.sim_trace)
        else:
            link = await make_link(LinkOptions(serial=args.serial, ble=args.ble, backend=backend))
        async with link:
            return await LogSync(link, args.output, erase=args.erase, progress=progress_printer(_print)).run()

    reports = asyncio.run(go())
    for line in report_lines(reports):
        _print(line)
    check_synced(reports)  # damaged blocks: one line and exit 1, after the copies are written
    return 0


def _sim_sync_link(flash: Path, trace: Path | None):
    """The sim board in real time on the emulated flash file ``flash``, playing ``trace`` (default: lying still)."""
    from types import SimpleNamespace

    import numpy as np

    from hipcheck.imu_csv import read_imu_csv
    from hipcheck.links.sim import SimLink

    if trace is None:
        t = np.arange(10 * 104) / 104.0
        trace = SimpleNamespace(t_s=t, acc_sensor_m_s2=np.tile([0.0, 0.0, 9.80665], (len(t), 1)),
                                gyr_sensor_rad_s=np.zeros((len(t), 3)))
    else:
        read_imu_csv(trace)  # refused here, with the file named, before the board starts
    return SimLink(trace, realtime=True, extra_args=("--log", str(flash)))


def run_flash(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from hipcheck.flash import flash

    flash(args.board, args.port, dry_run=args.dry_run, build_dir=args.build_dir, firmware_dir=args.firmware)
    return 0


def run_calibrate(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """``hipcheck calibrate``: the guided steps live in hipcheck.calibration.procedures, the profiles in
    hipcheck.calibration.profile; this prints."""
    from hipcheck.calibration import procedures, profile

    if args.action in ("show", "export", "reset"):
        return _calibrate_profiles(args, parser, profile)
    if args.action == "upload":
        procedures.upload_over_link(_calibrate_link_options(args, parser), sim=args.sim, device_id=args.device,
                                    flash_dir=args.sim_flash, out=_print)
        return 0
    read = {"acc_unit": args.acc_unit, "gyr_unit": args.gyr_unit, "axes": args.axes, "fs_hz": args.fs,
            "time_unit": args.time_unit}
    if args.from_file is not None:
        for option in ("sim_flash", "realtime"):
            if getattr(args, option):
                parser.error(f"--{option.replace('_', '-')} applies to --sim")
        outcome = procedures.calibrate_file(args.action, args.from_file, device_id=args.device,
                                            posture=getattr(args, "posture", "standing"), read_options=read,
                                            out=_print if not args.json else _stderr)
    elif read != {"acc_unit": "m/s2", "gyr_unit": "rad/s", "axes": None, "fs_hz": None, "time_unit": None}:
        parser.error("--fs, --time-unit, --acc-unit, --gyr-unit and --axes apply to --from (a sensor sends SI units)")
    else:
        outcome = procedures.calibrate_link(args.action, _calibrate_link_options(args, parser), sim=args.sim,
                                            realtime=args.realtime, device_id=args.device,
                                            interactive=not args.non_interactive,
                                            upload=not args.no_upload, flash_dir=args.sim_flash,
                                            out=_print if not args.json else _stderr)
    if args.json:
        print(json.dumps(outcome.json(), indent=2))
        return 0
    for key, value in outcome.estimate.items():
        print(f"  {key}: {procedures.format_value(value)}")
    for note in outcome.notes:
        print(f"note: {note}")
    if outcome.profile is not None:
        print(f"saved in {outcome.profile.path}" + ("; the sensor took it (CAL_UPLOAD)" if outcome.uploaded else ""))
    return 0


def _calibrate_link_options(args: argparse.Namespace, parser: argparse.ArgumentParser):
    """The LinkOptions of --serial or --ble (None for --sim: the procedures start the simulated sensor)."""
    from hipcheck.live import LinkOptions

    if args.backend is not None and args.ble is None:
        parser.error("--backend applies to --ble only")
    if args.sim_flash is not None and not args.sim:
        parser.error("--sim-flash applies to --sim")
    if getattr(args, "realtime", False) and not args.sim:
        parser.error("--realtime applies to --sim")
    if args.sim:
        return None
    return LinkOptions(serial=args.serial, ble=args.ble, backend=_load_backend(args.backend, parser))


def _calibrate_profiles(args: argparse.Namespace, parser: argparse.ArgumentParser, profile) -> int:
    """calibrate show, export, reset: the profiles on this computer."""
    from hipcheck.calibration.procedures import format_value

    if args.action == "reset":
        gone = profile.reset_profile(args.device, args.only)
        print(f"device {args.device}: forgot " + (", ".join(gone) if gone else "nothing (no such calibration)")
              + "; the sensor keeps what it holds until `hipcheck calibrate upload`")
        return 0
    if args.action == "export":
        found = profile.load_profile(args.device)
        if found is None:
            raise InvalidValueError(f"no calibration profile for device {args.device} (hipcheck calibrate show "
                                    "lists them)")
        _check_output(args.output, parser, args.force)
        text = profile.profile_to_json(found)
        if args.output is None:
            sys.stdout.write(text)
        else:
            args.output.write_text(text)
            print(f"wrote {args.output}", file=sys.stderr)
        return 0
    ids = [args.device] if args.device else profile.device_ids()
    found = [p for p in (profile.load_profile(i) for i in ids) if p is not None]
    if args.device and not found:
        raise InvalidValueError(f"no calibration profile for device {args.device} in {profile.config_dir()}")
    if args.json:
        print(json.dumps([json.loads(profile.profile_to_json(p)) for p in found], indent=2))
    elif not found:
        print(f"no calibration profiles in {profile.config_dir() / 'profiles'}")
    for p in [] if args.json else found:
        print(f"{p.summary()}  ({p.path})")
        print(f"  on the sensor since {p.uploaded['date'][:16].replace('T', ' ')}" if p.uploaded else
              "  not on the sensor yet (hipcheck calibrate upload)")
        for kind, entry in p.calibrations.items():
            print(f"  {kind}: " + ", ".join(f"{k} {format_value(v)}" for k, v in entry["values"].items()))
    return 0


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)  # --json: stdout holds the JSON alone


def _print(line: str) -> None:
    print(line, flush=True)  # flushed: a live job's lines must show as they happen, also through a pipe


if __name__ == "__main__":
    sys.exit(main())
