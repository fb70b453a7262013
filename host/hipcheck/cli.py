"""The ``hipcheck`` command line.

Bad options exit with code 2 and a message that says what was wrong; a file that cannot be read exits with code 1.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from hipcheck import __version__

ACTIVITIES = ("walk", "hold", "stand", "sit", "sit-to-stand")

# Plausible bounds for the simulator's options; beyond them the result would not be a human pelvis.
_BOUNDS = {
    "seconds": (1.0, 24 * 3600.0),
    "fs": (10.0, 2000.0),
    "drop_left": (-15.0, 25.0),
    "drop_right": (-15.0, 25.0),
    "sway_cm": (0.0, 30.0),
    "tilt_deg": (-45.0, 45.0),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hipcheck",
        description="Pelvic drop, hip sway and pelvic tilt from one IMU clipped over the sacrum.",
    )
    parser.add_argument("--version", action="version", version=f"hipcheck {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    simulate = commands.add_parser(
        "simulate",
        help="simulate an activity and write the IMU trace (generic CSV) and its truth (JSON)",
        description="Simulate pelvis motion and the IMU signals a sacral sensor would record, through a realistic "
        "sensor model. Writes FILE.csv (docs/csv-format.md) and FILE.truth.json (docs/motion.md) and prints a "
        "summary of the truth.",
    )
    simulate.add_argument("activity", choices=ACTIVITIES)
    simulate.add_argument("-o", "--output", required=True, type=Path, metavar="FILE.csv", help="where to write")
    simulate.add_argument("--seconds", type=float, default=60.0, help="duration in s (default 60)")
    simulate.add_argument("--fs", type=float, default=100.0, help="sample rate in Hz (default 100)")
    simulate.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    simulate.add_argument(
        "--drop-left",
        type=float,
        metavar="DEG",
        help="walk/hold: pelvic drop during LEFT stance, in degrees: the right side sinks this far below level "
        "(walk default 4, healthy; larger = weak left hip abductors). For hold: a hold on the left leg.",
    )
    simulate.add_argument(
        "--drop-right",
        type=float,
        metavar="DEG",
        help="walk/hold: pelvic drop during RIGHT stance: the left side sinks this far (walk default 4). "
        "For hold: a hold on the right leg.",
    )
    simulate.add_argument("--sway-cm", type=float, metavar="CM", help="walk: side-to-side sway, peak to peak")
    simulate.add_argument("--tilt-deg", type=float, metavar="DEG", help="mean pelvic tilt, + = anterior")
    simulate.add_argument("--side", choices=("left", "right"), help="hold: the stance leg (default right)")
    simulate.add_argument("--ideal", action="store_true", help="no sensor errors (noise, bias, quantisation...)")
    simulate.add_argument("--json", action="store_true", help="print the summary as JSON")
    simulate.set_defaults(run=run_simulate)

    orient = commands.add_parser(
        "orient",
        help="orientation of a sensor from an IMU CSV file",
        description="Estimate the sensor's orientation (6D: accelerometer and gyroscope) and write t,qw,qx,qy,qz: "
        "the quaternion that maps the sensor frame into an earth frame with z up (heading arbitrary).",
    )
    orient.add_argument("input", type=Path, metavar="FILE.csv", help="generic IMU CSV (docs/csv-format.md)")
    orient.add_argument("-o", "--output", required=True, type=Path, metavar="OUT.csv", help="where to write")
    orient.add_argument("--offline", action="store_true",
                        help="use the whole recording (non-causal filter, for review); default: causal, as live")
    _add_input_options(orient)
    orient.set_defaults(run=run_orient)

    analyze = commands.add_parser(
        "analyze",
        help="gait events, per-stride pelvic metrics, alerts and single-leg holds from an IMU CSV file",
        description="Analyse a recording of a sensor worn over the sacrum: initial and final contacts with side, "
        "per-stride pelvic drop (named by the stance side), sway, tilt and rotation, the detectors' decisions and "
        "single-leg holds. Sensor axes: x anterior, y left, z superior (remap others with --axes).",
    )
    analyze.add_argument("input", type=Path, metavar="FILE.csv", help="generic IMU CSV (docs/csv-format.md)")
    analyze.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    analyze.add_argument("--offline", action="store_true",
                         help="orientation from the non-causal filter (review); default: causal, as the live alerts")
    _add_input_options(analyze)
    analyze.set_defaults(run=run_analyze)

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
    flash.set_defaults(run=run_flash)

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
    simboard.add_argument("--json", action="store_true", help="print the summary as JSON")
    simboard.set_defaults(run=run_simboard)

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
                      help="no live plot; as fast as possible (the same findings as in real time)")
    pace = demo.add_mutually_exclusive_group()
    pace.add_argument("--realtime", dest="realtime", action="store_true", default=None,
                      help="run at the pace of a real walk (default without --headless)")
    pace.add_argument("--fast", dest="realtime", action="store_false", help="as fast as possible")
    demo.add_argument("--record", type=Path, metavar="FILE.hclog",
                      help="where to keep the session log (default: hipcheck-demo/session.hclog in the temp folder)")
    demo.add_argument("--seed", type=int, default=1, help="random seed of the simulated walk (default 1)")
    demo.set_defaults(run=run_demo)

    record = commands.add_parser(
        "record",
        help="record a sensor headless, with alerts: --sim TRACE, --serial PORT, --ble NAME|ADDRESS or --replay LOG",
        description="Connect to a sensor, record every packet in a crash-safe log (backfilling gaps), run the live "
        "pipeline and send VIBRATE when a detector fires; Ctrl-C ends it. Prints a line per stride and a summary.",
    )
    _add_link_options(record)
    record.add_argument("-o", "--output", type=Path, required=True, metavar="FILE.hclog", help="the log to write")
    record.add_argument("--seconds", type=float, metavar="S", help="stop after this much device time")
    record.add_argument("--realtime", action="store_true", help="--sim / --replay at real-time pace")
    record.add_argument("--no-alerts", action="store_true", help="record only: no VIBRATE")
    record.set_defaults(run=run_record)

    for name, what in (("connect", "connect to a sensor and print its INFO and live link figures every second"),
                       ("live", "the live pipeline on a sensor: a line per stride, alerts sent back, a summary")):
        sub = commands.add_parser(name, help=what, description=what[0].upper() + what[1:] + ". The live plot does "
                                  "not exist yet: live runs headless." if name == "live" else what.capitalize() + ".")
        _add_link_options(sub)
        sub.add_argument("--seconds", type=float, metavar="S",
                         help="stop after this long (connect: wall time; live: device time)")
        sub.add_argument("--realtime", action="store_true", help="--sim / --replay at real-time pace")
        if name == "live":
            sub.add_argument("-o", "--output", type=Path, metavar="FILE.hclog",
                             help="also keep the session log (default: none)")
            sub.add_argument("--no-alerts", action="store_true", help="no VIBRATE sent back")
        sub.set_defaults(run=run_connect if name == "connect" else run_live_command)

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
    scan.set_defaults(run=run_scan)
    return parser


def _add_link_options(parser: argparse.ArgumentParser) -> None:
    """The sensor to talk to, exactly one: the links of hipcheck.links (record, connect, live)."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--sim", type=Path, metavar="TRACE", help="the simulated sensor on an IMU CSV")
    source.add_argument("--serial", metavar="PORT", help="a sensor on USB serial, e.g. /dev/ttyACM0")
    source.add_argument("--ble", metavar="NAME|ADDRESS", help="a sensor over Bluetooth LE")
    source.add_argument("--replay", type=Path, metavar="LOG", help="a recorded session log")
    _add_backend_option(parser)


def _add_backend_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", metavar="MODULE:NAME",
                        help="a bleak backend other than the platform's: NAME is a BleBackend (scanner, client) or an "
                        "(async) function returning one, called inside the command's event loop (tests, emulators)")


def _load_backend(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """--backend checked at once (a typo is a usage error, not a failure after connecting)."""
    args.backend_factory = None
    if getattr(args, "backend", None):
        from hipcheck.links.ble import load_backend

        if getattr(args, "ble", True) is None:
            parser.error("--backend applies to --ble only")
        try:
            args.backend_factory = load_backend(args.backend)
        except ValueError as error:
            parser.error(str(error))


def _add_input_options(parser: argparse.ArgumentParser) -> None:
    from hipcheck.imu_csv import ACC_UNITS, GYR_UNITS

    parser.add_argument("--fs", type=float, metavar="HZ", help="sample rate (default: from the time column)")
    parser.add_argument("--acc-unit", choices=tuple(ACC_UNITS), default="m/s2", help="accelerometer unit")
    parser.add_argument("--gyr-unit", choices=tuple(GYR_UNITS), default="rad/s", help="gyroscope unit")
    parser.add_argument("--axes", metavar="SPEC",
                        help="map the file's axes onto ours (x anterior, y left, z superior), e.g. 'z,-y,x'")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args, parser)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the output went to a pager or `head` that closed early: not an error
        sys.stderr.close()
        return 0


def run_simulate(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from hipcheck import motion
    from hipcheck.imu_csv import write_imu_csv

    _check_bounds(args, parser)
    kwargs = _activity_kwargs(args, parser)
    if args.output.suffix.lower() != ".csv":
        parser.error(f"the output {args.output} should end in .csv (the truth goes beside it as .truth.json)")
    if not args.output.parent.exists():
        parser.error(f"the folder {args.output.parent} does not exist")

    simulate = {
        "walk": motion.simulate_walk,
        "hold": motion.simulate_hold,
        "stand": motion.simulate_stand,
        "sit": motion.simulate_sit,
        "sit-to-stand": motion.simulate_sit_to_stand,
    }[args.activity]
    sensor = motion.SensorModel.ideal() if args.ideal else motion.SensorModel.realistic(seed=args.seed)
    started = time.perf_counter()
    if args.seconds > 600:
        print(f"simulating {args.seconds:.0f} s of {args.activity}...", file=sys.stderr, flush=True)
    try:
        trace = simulate(duration_s=args.seconds, fs_hz=args.fs, seed=args.seed, sensor=sensor, **kwargs)
    except ValueError as error:  # settings the simulator cannot honour, e.g. a walk too short for two strides
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


def _read_input(args: argparse.Namespace):
    """The input CSV in SI units and our axes; exits 1 with the reader's message when it cannot be used."""
    from hipcheck.imu_csv import ImuCsvError, read_imu_csv

    try:
        return read_imu_csv(args.input, acc_unit=args.acc_unit, gyr_unit=args.gyr_unit, axes=args.axes,
                            fs_hz=args.fs)
    except ImuCsvError as error:
        print(f"hipcheck: {error}", file=sys.stderr)
        return None


def run_orient(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import numpy as np

    from hipcheck.fusion import orient
    from hipcheck.inputs import InputError, check_imu

    if args.output.suffix.lower() != ".csv":
        parser.error(f"the output {args.output} should end in .csv")
    recording = _read_input(args)
    if recording is None:
        return 1
    try:
        report = check_imu(recording.acc_m_s2, recording.gyr_rad_s, recording.fs_hz)
    except InputError as error:
        print(f"hipcheck: {args.input}: {error}", file=sys.stderr)
        return 1
    for warning in report.warnings():
        print(f"hipcheck: warning: {warning}", file=sys.stderr)
    quat = orient(recording.acc_m_s2, recording.gyr_rad_s, recording.fs_hz, offline=args.offline)
    table = np.column_stack([recording.t_s, quat])
    np.savetxt(args.output, table, delimiter=",", header="t,qw,qx,qy,qz", comments="", fmt="%.9g")
    print(f"wrote {len(quat)} orientations ({'offline' if args.offline else 'causal'} filter) to {args.output}",
          file=sys.stderr)
    return 0


def run_analyze(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from hipcheck import detect, report
    from hipcheck.inputs import InputError
    from hipcheck.pipeline import analyze

    recording = _read_input(args)
    if recording is None:
        return 1
    try:
        analysis = analyze(recording.acc_m_s2, recording.gyr_rad_s, recording.fs_hz, offline=args.offline)
    except InputError as error:
        print(f"hipcheck: {args.input}: {error}", file=sys.stderr)
        return 1
    threshold = detect.DEFAULT_DROP_THRESHOLD_DEG
    result = report.analysis_to_dict(analysis, threshold, detect.DECISION_NAMES, detect.HOLD_NAMES)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{args.input}: {result['duration_s']} s at {result['fs']:g} Hz, {len(result['initial_contacts'])} "
          f"initial contacts")
    for stride in analysis.strides:
        print(report.stride_line(stride, analysis.fs_hz))
    for decision in result["decisions"]:
        side = "" if decision["side"] in (None, "none") else f" {decision['side']}"
        print(f"{decision['t_s']:7.2f} s  alert: {decision['kind']}{side} {decision['value']:.1f} "
              f"(threshold {decision['threshold']:g})")
    for hold in result.get("holds", []):
        print(f"hold: {hold}")
    for warning in result["warnings"]:
        print(f"warning: {warning}")
    print(report.summary_text(result["summary"]))
    return 0


def run_simboard(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from hipcheck.imu_csv import ImuCsvError
    from hipcheck.links.simboard import SimBoardError, run_simboard as simboard

    if args.seconds is not None and not args.seconds > 0:
        parser.error(f"--seconds {args.seconds}: give a positive duration")
    try:
        result = simboard(args.input, chip=args.chip, rate_hz=args.rate, seconds=args.seconds,
                          realtime=args.realtime)
    except (ImuCsvError, SimBoardError, ValueError) as error:
        print(f"hipcheck simboard: {error}", file=sys.stderr)
        return 1
    if args.output is not None:
        import numpy as np
        np.save(args.output, result.samples)
    summary = result.summary()
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        for key, value in summary.items():
            print(f"{key:24s} {value}")
    return 0 if not summary["seq_gaps"] else 1


def run_demo(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from hipcheck.demo import motor_vibrations, run_demo as demo
    from hipcheck.device import SessionError
    from hipcheck.links import LinkError

    if not 10.0 <= args.seconds <= 3600.0:
        parser.error(f"--seconds {args.seconds:g}: give 10 to 3600 s (a walk needs a few strides)")
    for name in ("drop_left", "drop_right"):
        value = getattr(args, name)
        if value is not None and not _BOUNDS[name][0] <= value <= _BOUNDS[name][1]:
            parser.error(f"--{name.replace('_', '-')} {value:g} is out of range; use {_BOUNDS[name][0]:g} to "
                         f"{_BOUNDS[name][1]:g}")
    try:
        _, link = demo(seconds=args.seconds, drop_left=args.drop_left, drop_right=args.drop_right,
                       activity=args.activity, headless=args.headless, realtime=args.realtime,
                       record=args.record, seed=args.seed, out=lambda line: print(line, flush=True))
    except (SessionError, LinkError, ValueError) as error:
        print(f"hipcheck demo: {error}", file=sys.stderr)
        return 1
    return 0 if link.record is not None else 1


def run_record(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from hipcheck import demo

    return _run_link_command(args, parser, demo.run_record)


def _run_link_command(args: argparse.Namespace, parser: argparse.ArgumentParser, job) -> int:
    """record, connect and live: options checked, then the job; a link or session failure is one clear line."""
    from hipcheck.device import SessionError
    from hipcheck.links import LinkError

    if args.seconds is not None and not args.seconds > 0:
        parser.error(f"--seconds {args.seconds}: give a positive duration")
    output = getattr(args, "output", None)
    if output is not None and not output.parent.exists():
        parser.error(f"the folder {output.parent} does not exist")
    _load_backend(args, parser)
    try:
        return job(args, out=lambda line: print(line, flush=True))
    except (SessionError, LinkError, RuntimeError, OSError) as error:
        print(f"hipcheck {args.command}: {error}", file=sys.stderr)
        return 1


def run_flash(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from hipcheck.flash import FlashError, FlashUsageError, flash

    try:
        flash(args.board, args.port, dry_run=args.dry_run, build_dir=args.build_dir, firmware_dir=args.firmware)
    except FlashError as error:
        print(f"hipcheck flash: {error}", file=sys.stderr)
        return 2 if isinstance(error, FlashUsageError) else 1
    return 0


def _check_bounds(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    for name, (low, high) in _BOUNDS.items():
        value = getattr(args, name)
        if value is None:
            continue
        if not low <= value <= high:
            option = "--" + name.replace("_", "-")
            parser.error(f"{option} {value:g} is out of range; use {low:g} to {high:g}")


def _activity_kwargs(args: argparse.Namespace, parser: argparse.ArgumentParser) -> dict:
    """Map CLI options onto the simulator's keyword arguments, refusing options that do not apply."""
    allowed = {
        "walk": {"drop_left", "drop_right", "sway_cm", "tilt_deg"},
        "hold": {"drop_left", "drop_right", "tilt_deg", "side"},
        "stand": {"tilt_deg"},
        "sit": {"tilt_deg"},
        "sit-to-stand": set(),
    }[args.activity]
    for name in ("drop_left", "drop_right", "sway_cm", "tilt_deg", "side"):
        if getattr(args, name) is not None and name not in allowed:
            parser.error(f"--{name.replace('_', '-')} does not apply to {args.activity}")

    kwargs: dict = {}
    if args.activity == "walk":
        if args.drop_left is not None:
            kwargs["drop_left_deg"] = args.drop_left
        if args.drop_right is not None:
            kwargs["drop_right_deg"] = args.drop_right
        if args.sway_cm is not None:
            kwargs["sway_cm"] = args.sway_cm
        if args.tilt_deg is not None:
            kwargs["tilt_mean_deg"] = args.tilt_deg
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
        if args.tilt_deg is not None:
            kwargs["tilt_mean_deg"] = args.tilt_deg
    elif args.tilt_deg is not None:
        kwargs["tilt_mean_deg"] = args.tilt_deg
    return kwargs


def _format_summary(activity: str, summary: dict, n_samples: int, csv_path: Path, truth_path: Path, elapsed_s: float) -> str:
    lines = [f"simulated {activity}: {n_samples} samples in {elapsed_s:.2f} s; its ground truth:"]
    for key, value in summary.items():
        lines.append(f"  {key}: {value:.2f}" if isinstance(value, float) else f"  {key}: {value}")
    lines.append("  (drops are named by the stance side: drop_right_stance = the left side sinking while on the right leg)"
                 if "drop_right_stance_deg_mean" in summary else "")
    lines.append(f"wrote {csv_path} (IMU trace, docs/csv-format.md) and {truth_path} (truth, docs/motion.md)")
    return "\n".join(line for line in lines if line)


def run_scan(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import asyncio

    from hipcheck.links import LinkError
    from hipcheck.links.ble import resolve_backend, scan

    if not 0 < args.seconds <= 600:
        parser.error(f"--seconds {args.seconds:g}: scan for more than 0 and at most 600 s")
    _load_backend(args, parser)

    async def go():
        return await scan(args.seconds, backend=await resolve_backend(args.backend_factory))

    try:
        found = asyncio.run(go())
    except LinkError as error:
        print(f"hipcheck scan: {error}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps([{"name": f.name, "address": f.address, "rssi_dbm": f.rssi_dbm} for f in found], indent=2))
        return 0
    if not found:
        print(f"no hipcheck sensor found in {args.seconds:g} s (is it on, charged, in range and not connected to "
              "another host?)")
        return 0
    print(f"{'name':<16} {'address':<20} {'RSSI dBm':>8}")
    for f in found:
        rssi = "" if f.rssi_dbm is None else str(f.rssi_dbm)
        print(f"{f.name or '?':<16} {f.address:<20} {rssi:>8}")
    return 0


def run_connect(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from hipcheck import demo

    return _run_link_command(args, parser, demo.run_connect)


def run_live_command(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from hipcheck import demo

    print("hipcheck live: the live plot does not exist yet; running headless", file=sys.stderr)
    return _run_link_command(args, parser, demo.run_record)


if __name__ == "__main__":
    sys.exit(main())
