"""The guided calibrations behind ``hipcheck calibrate gyro|accel|mount|neutral`` (the CLI only parses and prints).

Each calibration is a short script of steps (``PROCEDURES``): what the person does, for how long. Against a sensor
(any link of ``hipcheck.links``) the guide prints each step's prompt, waits for Enter (not with
``interactive=False``), counts down, records the step's seconds of samples with a progress line, and at the end runs
the estimator (``hipcheck.calibration``: gyro, accel, mounting, neutral) on the whole recording. The simulated sensor
(``sim=True``) plays a simulated person doing the same script (``hipcheck.motion``: a still sensor, the poses, the
stand and walk, a stand and a sit) through the real firmware on the sim board; its steps follow the script's clock,
so nothing waits for a key. From a recording made earlier (``calibrate_file``) the estimator gets the whole file.

The result goes into the device's profile (``hipcheck.calibration.profile``) with its date and quality figures, and
to the sensor by CAL_UPLOAD (docs/protocol.md), which checks it, keeps it in flash and applies it to every sample
from then on. A gyroscope or accelerometer calibration needs raw samples: the sensor's own correction is switched
off while it records (a profile without them uploaded) and the profile it should hold is uploaded again at the end,
refused or not. Refusals (``CalibrationRefused``) name what to redo; they reach the CLI as one line and exit 1.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hipcheck.calibration import profile as profiles
from hipcheck.errors import DeviceError, InvalidValueError
from hipcheck.protocol import SampleFlag

__all__ = ["Step", "PROCEDURES", "Outcome", "Guide", "calibrate_file", "calibrate_link", "simulated_person",
           "upload_profile", "upload_over_link", "split_estimate", "sim_flash_dir", "format_value",
           "calibrate_session"]

COUNTDOWN_S = 3
SIM_SENSOR_SEED = 7  # the simulated sensor's errors (SensorModel.with_errors): one sensor, calibrated again and again
UPLOAD_TRIES = 3  # a refused chunk (out of order after a lost ACK) restarts the whole upload this many times


@dataclass(frozen=True)
class Step:
    """One thing the person does while the sensor records: ``name``, what to do (``prompt``), for ``seconds``."""

    name: str
    prompt: str
    seconds: float


_POSE_WORDS = {"up": "pointing up", "down": "pointing down"}


def _pose_steps() -> tuple[Step, ...]:
    from hipcheck.motion import ACCEL_POSES

    return tuple(Step(pose, f"lay the sensor still on the table with its {pose} (the axis printed on the case); "
                      "hands off", 3.0) for pose in ACCEL_POSES)


PROCEDURES: dict[str, tuple[Step, ...]] = {
    "gyro": (Step("still", "put the sensor down on a table and leave it: no touching, no bumping the table", 10.0),),
    "mount": (Step("stand", "clip the sensor on over the sacrum; stand upright and still, weight on both feet",
                   5.0),
              Step("walk", "walk straight ahead at your usual pace (no turning) until told to stop", 20.0)),
    "neutral": (Step("standing", "stand relaxed in your usual posture, weight on both feet, and keep still", 5.0),
                Step("sitting", "sit on a chair in your usual upright posture, feet on the floor, and keep still",
                     5.0)),
    # "accel": the poses of hipcheck.motion.ACCEL_POSES, built when asked (``steps``)
}

# What a calibration applies (kept as the profile's values); the rest of its figures are its quality.
VALUE_NAMES = {
    "gyro": ("gyro_bias_rad_s", "temperature_c"),
    "accel": ("acc_matrix", "acc_bias_m_s2", "acc_scale", "misalignment_deg"),
    "mount": ("q_sensor_to_pelvis", "R_sensor_to_pelvis"),
    "neutral": ("neutral_standing_tilt_deg", "neutral_standing_obliquity_deg", "neutral_sitting_tilt_deg",
                "neutral_sitting_obliquity_deg"),
}


def steps(kind: str) -> tuple[Step, ...]:
    if kind == "accel":
        return _pose_steps()
    if kind not in PROCEDURES:
        raise InvalidValueError(f"calibration {kind!r}: one of gyro, accel, mount, neutral")
    return PROCEDURES[kind]


@dataclass
class Outcome:
    """What a calibration found and where it went."""

    kind: str
    estimate: dict  # the estimator's figures, names of docs/calibration.md
    device_id: str | None
    profile: profiles.Profile | None = None  # saved (None: no device id to keep it under)
    uploaded: bool = False  # the sensor acknowledged the new profile
    source: str = ""
    notes: list[str] = field(default_factory=list)

    def json(self) -> dict:
        return {"calibration": self.kind, "device_id": self.device_id, "estimate": self.estimate,
                "profile": None if self.profile is None else str(self.profile.path),
                "uploaded_to_sensor": self.uploaded, "source": self.source, "notes": self.notes}


class Guide:
    """Talks the person through the steps: prompts, Enter when interactive, countdowns, progress."""

    def __init__(self, out=print, interactive: bool = True, read_line=None, sleep=time.sleep):
        self.out = out
        self.interactive = interactive
        self.read_line = read_line if read_line is not None else sys.stdin.readline
        self.sleep = sleep

    def say(self, line: str) -> None:
        self.out(line)

    def ready(self, number: int, total: int, step: Step) -> None:
        self.out(f"step {number}/{total}, {step.name} ({step.seconds:g} s): {step.prompt}")
        if self.interactive:
            self.out("  press Enter when ready")
            self.read_line()

    def countdown(self, wait: bool = True) -> None:
        for n in range(COUNTDOWN_S, 0, -1):
            self.out(f"  {n}...")
            if wait:
                self.sleep(1.0)
        self.out("  recording")

    def progress(self, step: Step, done_s: float) -> None:
        self.out(f"  {step.name}: {min(done_s, step.seconds):4.1f} of {step.seconds:g} s")


# ------------------------------------------------------------------------------------------------ estimating

def estimate(kind: str, acc, gyr, fs_hz: float, *, stand_s: float | None = None, profile=None,
             posture: str = "standing"):
    """Run the estimator of ``kind`` on one recording (SI, sensor frame); returns its calibration object."""
    if kind == "gyro":
        from hipcheck.calibration.gyro import estimate_gyro_bias

        return estimate_gyro_bias(acc, gyr, fs_hz)
    if kind == "accel":
        from hipcheck.calibration.accel import estimate_accel

        return estimate_accel(acc, gyr, fs_hz)
    if kind == "mount":
        from hipcheck.calibration.mounting import estimate_mounting

        return estimate_mounting(acc, gyr, fs_hz, stand_s=stand_s)
    from hipcheck.calibration.common import CalibrationRefused
    from hipcheck.calibration.neutral import estimate_neutral

    mount = None if profile is None else profile.values("mount")
    if mount is None:
        raise CalibrationRefused("the neutral posture is measured in the pelvis frame: calibrate the mounting "
                                 "first (hipcheck calibrate mount), then the neutral", step="neutral")
    return estimate_neutral(acc, gyr, fs_hz, q_sensor_to_pelvis=np.asarray(mount["q_sensor_to_pelvis"]),
                            posture=posture)


def split_estimate(kind: str, figures: dict) -> tuple[dict, dict]:
    """(values, quality): what is applied, and the figures that say how good it is."""
    names = VALUE_NAMES[kind]
    values = {k: v for k, v in figures.items() if k in names and v is not None}
    quality = {k: v for k, v in figures.items() if k not in names}
    return values, quality


def _prepared(kind: str, profile, acc, gyr, flags=None):
    """The samples an estimator takes, each step's input corrected by the steps before it (docs/calibration.md,
    Estimators): raw for gyro, the profile's gyro bias off for accel (refusing samples the sensor corrected), both
    of the profile's corrections for mount and neutral."""
    if kind in ("gyro", "accel"):
        if flags is not None and np.any(np.asarray(flags) & SampleFlag.ACC_CALIBRATED):
            raise InvalidValueError("the sensor had corrected these samples with its calibration profile (flag "
                                    "ACC_CALIBRATED): a gyroscope or accelerometer calibration needs raw samples; "
                                    "calibrate on the sensor itself (it switches its correction off while recording)")
        gyro = profile.values("gyro") if profile is not None and kind == "accel" else None
        bias = np.asarray(gyro["gyro_bias_rad_s"], float) if gyro else np.zeros(3)
        return np.asarray(acc, float), np.asarray(gyr, float) - bias
    if profile is None:
        return np.asarray(acc, float), np.asarray(gyr, float)
    applied = profiles.apply_profile(profile, acc, gyr, flags)
    return applied.acc_m_s2, applied.gyr_rad_s


def _keep(kind: str, device_id: str | None, calibration, source: str, notes: list) -> tuple[dict, object]:
    figures = profiles.jsonable(calibration.to_dict())
    if device_id is None:
        notes.append("not saved: no device id (give --device ID to keep it in that sensor's profile)")
        return figures, None
    values, quality = split_estimate(kind, figures)
    return figures, profiles.record_calibration(device_id, kind, values, quality, source)


# ------------------------------------------------------------------------------------------------ from a file

def calibrate_file(kind: str, path, *, device_id: str | None = None, posture: str = "standing", read_options=None,
                   out=print) -> Outcome:
    """Calibrate from a recording made earlier: an IMU CSV (docs/csv-format.md) or a session log (.hclog), whose
    header names its sensor (``device_id``) unless ``device_id`` says otherwise."""
    from hipcheck.api import read_recording

    recording = read_recording(path, **(read_options or {}))
    flags = None
    replayed = None
    if recording.session is not None:
        rows = recording.session.samples
        flags = rows[~rows["gap"]]["flags"]
        # A log that replays a file through the simulated sensor names device 'sim', but its numbers come from
        # whatever sensor recorded the file: kept only for a device named with --device, as a CSV is.
        replayed = profiles.replayed_file(recording.session.header)
        if replayed is None:
            device_id = device_id or recording.session.header.get("device_id")
    if device_id is not None:
        profiles.check_device_id(device_id)
    profile = profiles.load_profile(device_id) if device_id is not None else None
    acc, gyr = _prepared(kind, profile, recording.acc_m_s2, recording.gyr_rad_s, flags)
    out(f"calibrating {kind} from {path} ({len(acc)} samples at {recording.fs_hz:g} Hz)")
    calibration = estimate(kind, acc, gyr, recording.fs_hz, profile=profile, posture=posture)
    notes: list[str] = []
    if replayed is not None and device_id is None:
        notes.append(f"the log replays a file ({replayed}) through the simulated sensor: it names no sensor of its own")
    figures, saved = _keep(kind, device_id, calibration, f"file {Path(path).name}", notes)
    if saved is not None:
        notes.append("the sensor still holds its previous profile: `hipcheck calibrate upload` sends this one")
    return Outcome(kind, figures, device_id, saved, False, f"file {path}", notes)


# ------------------------------------------------------------------------------------------------ on a sensor

def sim_flash_dir(flash_dir=None) -> Path:
    """The simulated sensor's flash (its profile survives between runs there): flash_dir, else ``sim-sensor`` in
    the profiles' configuration folder."""
    return Path(flash_dir) if flash_dir is not None else profiles.config_dir() / "sim-sensor"


def simulated_person(kind: str, seed: int = 1):
    """(trace, step start times in s and the script's end): the simulated person doing the calibration's script,
    worn by a simulated sensor with the errors a calibration removes (``SensorModel.with_errors``: the same errors for
    every seed's calibrations, as one physical sensor has)."""
    from hipcheck import motion

    sensor = motion.SensorModel.with_errors(seed=SIM_SENSOR_SEED)
    if kind == "gyro":
        trace = motion.simulate_calibration_poses(poses=("z up",), pose_s=PROCEDURES["gyro"][0].seconds, seed=seed,
                                                  sensor=sensor)
        return trace, [0.0, _length_s(trace)]
    if kind == "accel":
        trace = motion.simulate_calibration_poses(seed=seed, sensor=sensor)
        starts = [float(start) for start, _ in _intervals(trace, "pose")]
        return trace, (starts or [0.0]) + [_length_s(trace)]
    if kind == "mount":
        stand, walk = (s.seconds for s in PROCEDURES["mount"])
        trace = motion.simulate_stand_and_walk(stand_s=stand, walk_s=walk, seed=seed, sensor=sensor)
        return trace, [0.0, float(trace.params.get("stand_s", stand)), _length_s(trace)]
    stand = motion.simulate_stand(duration_s=PROCEDURES["neutral"][0].seconds + 1.0, seed=seed, sensor=sensor)
    sit = motion.simulate_sit(duration_s=PROCEDURES["neutral"][1].seconds + 1.0, seed=seed + 1, sensor=sensor)
    joined = _joined(stand, sit)
    return joined, [0.0, len(stand.t_s) / stand.fs_hz, _length_s(joined)]


def _length_s(trace) -> float:
    return len(trace.t_s) / trace.fs_hz


def _intervals(trace, kind: str) -> list:
    """(start_s, end_s) of the truth's intervals of this kind."""
    return [(i.start_s, i.end_s) for i in trace.truth.intervals if i.kind == kind]


@dataclass
class _Joined:
    t_s: np.ndarray
    acc_sensor_m_s2: np.ndarray
    gyr_sensor_rad_s: np.ndarray
    fs_hz: float


def _joined(first, second) -> _Joined:
    # a stand then a sit as one recording (the sit rises from the stand's end: a short transition is fine, the
    # estimator takes the still stretches)
    n = len(first.t_s)
    return _Joined(np.concatenate([first.t_s, second.t_s + n / first.fs_hz]),
                   np.concatenate([first.acc_sensor_m_s2, second.acc_sensor_m_s2]),
                   np.concatenate([first.gyr_sensor_rad_s, second.gyr_sensor_rad_s]), first.fs_hz)


@dataclass
class _Recorded:
    acc: np.ndarray
    gyr: np.ndarray
    flags: np.ndarray
    fs_hz: float
    starts_s: list  # each step's start, seconds from the recording's first sample
    lost: int


async def _collect(session, store: list, state: dict) -> None:
    try:
        async for block in session.blocks():
            store.append(block.samples)
            state["t_us"] = int(block.samples["t_device_us"][-1])
            state["period_us"] = block.period_us
            state["event"].set()
    finally:
        state["ended"] = True
        state["event"].set()


async def _until(state: dict, t_us: int, step: Step, t0_us: int, guide: Guide, timeout_s: float,
                 scripted: bool) -> None:
    """Wait until the device clock reaches t_us, printing progress about once a second of device time. The
    simulated person's script may end a few samples short of it (resampled to the chip's rate): its end is the
    step's end."""
    deadline = time.monotonic() + timeout_s
    shown = -1
    seen = state.get("t_us", -1)
    while state.get("t_us", -1) < t_us:
        if state.get("t_us", -1) != seen:  # samples keep coming: the time limit counts from the newest
            seen = state.get("t_us", -1)
            deadline = time.monotonic() + timeout_s
        if state.get("ended"):
            if scripted and state.get("t_us", -1) >= t_us - 0.5e6:
                return
            raise DeviceError(f"the sensor stopped sending during the {step.name} step: repeat the calibration")
        left = deadline - time.monotonic()
        if left <= 0:
            raise DeviceError(f"no samples from the sensor for {timeout_s:g} s during the {step.name} step: check "
                              "the link and repeat")
        state["event"].clear()
        try:
            await asyncio.wait_for(state["event"].wait(), min(left, 1.0))
        except asyncio.TimeoutError:
            pass
        done = max(0.0, (state.get("t_us", t0_us) - t0_us) / 1e6)
        if int(done) > shown:
            shown = int(done)
            guide.progress(step, done)


async def _in_daemon(fn, *args):
    """fn(*args) in a daemon thread (a person's Enter may never come: Ctrl-C must not wait for it, as it would for
    asyncio.to_thread's pool), while the session's tasks go on."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def settle(result, error) -> None:
        if done.done():
            return
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(result)

    def run() -> None:
        result, error = None, None
        try:
            result = fn(*args)
        except BaseException as e:  # noqa: BLE001 - handed to the waiting coroutine
            error = e
        try:
            loop.call_soon_threadsafe(settle, result, error)
        except RuntimeError:  # the loop is gone (interrupted): nobody waits
            pass

    threading.Thread(target=run, name="calibrate-guide", daemon=True).start()
    return await done


async def _record_steps(session, the_steps, guide: Guide, scripted_starts=None, timeout_s: float = 30.0,
                        first_seq: int | None = None):
    """Record the steps on a running session. scripted_starts: the simulated person's step times (s from the first
    sample): the steps follow them instead of the person's Enter and the countdown. first_seq: samples before it
    are left out (made before the sensor's correction was switched off)."""
    store: list = []
    state = {"event": asyncio.Event()}
    collector = asyncio.create_task(_collect(session, store, state))
    try:
        while "t_us" not in state:  # the first sample fixes the clock
            if state.get("ended"):
                collector.result()
                raise DeviceError("the sensor sent no samples: is it streaming?")
            await asyncio.sleep(0.01)
        t_first = int(store[0]["t_device_us"][0])
        starts_us = []
        for i, step in enumerate(the_steps):
            await _in_daemon(guide.ready, i + 1, len(the_steps), step)
            if scripted_starts is None:
                await _in_daemon(guide.countdown)
                start = state["t_us"]
            else:  # the simulated person keeps to the script's clock, whenever Enter comes
                guide.countdown(wait=False)
                guide.say("  (the simulated person does it)")
                start = t_first + int(scripted_starts[i] * 1e6)
            starts_us.append(start)
            end = start + int(step.seconds * 1e6)
            if scripted_starts is not None and i + 1 < len(the_steps):
                end = max(end, t_first + int(scripted_starts[i + 1] * 1e6))
            if scripted_starts is not None:  # the script's last sample (resampled to the chip's rate) ends it
                end = min(end, t_first + int((scripted_starts[-1] - 0.05) * 1e6))
            await _until(state, end, step, start, guide, timeout_s, scripted_starts is not None)
            guide.say(f"  {step.name}: done")
        t_end = end  # the last step's planned end, not where the last block happened to stop
    finally:
        collector.cancel()
        try:
            await collector
        except (asyncio.CancelledError, Exception):  # noqa: BLE001 - a late session error changes nothing recorded
            pass
    rows = np.concatenate(store)
    rows = rows[(rows["t_device_us"] >= starts_us[0]) & (rows["t_device_us"] <= t_end)
                & (rows["seq"] >= (first_seq if first_seq is not None else -1))]
    good = rows[~rows["gap"]]
    fs = 1e6 / state["period_us"]
    t0 = int(good["t_device_us"][0]) if len(good) else starts_us[0]
    return _Recorded(good["acc_m_s2"].astype(float), good["gyr_rad_s"].astype(float), good["flags"].copy(), fs,
                     [(s - t0) / 1e6 for s in starts_us], int(rows["gap"].sum()))


async def upload_profile(session, profile: profiles.Profile | None, *, without=()) -> None:
    """Send the profile to the sensor by CAL_UPLOAD (``without``: calibrations left out, as none); DeviceError naming
    the refusal when the sensor does not take it."""
    from hipcheck import protocol
    from hipcheck.protocol import Opcode, Status

    shown = profiles.Profile(profile.device_id if profile else "x",
                             {k: v for k, v in (profile.calibrations.items() if profile else ()) if k not in without})
    blob = profiles.device_blob(shown)
    for _ in range(UPLOAD_TRIES):
        status = Status.OK
        for offset in range(0, len(blob), protocol.MAX_CAL_CHUNK_LEN):
            chunk = blob[offset:offset + protocol.MAX_CAL_CHUNK_LEN]
            ack = await session.command(Opcode.CAL_UPLOAD, total_len=len(blob), offset=offset, chunk=chunk)
            status = Status(ack.status)
            if status != Status.OK:
                break
        if status == Status.OK:
            return
        if status != Status.OUT_OF_RANGE or offset + len(chunk) == len(blob):
            break  # a whole profile refused (CRC, version, implausible, flash): trying again changes nothing
    raise DeviceError(f"the sensor refused the calibration profile ({status.name}; docs/protocol.md, CAL_UPLOAD): "
                      "the profile on this computer is kept; try `hipcheck calibrate upload` again")


def calibrate_link(kind: str, link_options=None, *, sim: bool = False, realtime: bool = False,
                   device_id: str | None = None, interactive: bool = True, upload: bool = True, out=print,
                   guide: Guide | None = None, flash_dir=None, seed: int = 1, timeout_s: float = 30.0) -> Outcome:
    """The guided calibration against a sensor: ``link_options`` as ``hipcheck.live.LinkOptions`` (serial, BLE), or
    ``sim``: the simulated person on the sim board (``realtime``: at a person's pace), whose flash is ``flash_dir``
    (``sim_flash_dir``)."""
    guide = guide or Guide(out, interactive)
    return asyncio.run(_calibrate_link(kind, (link_options, sim, realtime), device_id, guide, upload, flash_dir,
                                       seed, timeout_s))


def upload_over_link(link_options=None, *, sim: bool = False, device_id: str | None = None, flash_dir=None,
                     out=print) -> None:
    """``hipcheck calibrate upload``: send the sensor's profile (or device_id's) to it."""
    async def job():
        link, _, _ = await _open_link((link_options, sim, False), None, flash_dir, 1)
        async with link:
            async with DeviceSession(link, SessionSettings()) as session:
                target = device_id or link.device_id
                if target is None:
                    raise InvalidValueError("this link does not tell which sensor it is: give --device ID")
                profile = profiles.load_profile(profiles.check_device_id(target))
                if profile is None:
                    raise InvalidValueError(f"no calibration profile for device {target}: calibrate first")
                await upload_profile(session, profile)
                _mark_uploaded(profile)
                out(f"the sensor took the profile of device {target} ({profile.summary()})")

    from hipcheck.device import DeviceSession, SessionSettings

    asyncio.run(job())


def _mark_uploaded(profile: profiles.Profile) -> None:
    blob = profiles.device_blob(profile)
    profile.uploaded = {"date": profiles.now_iso(), "crc": int.from_bytes(blob[-2:], "little")}
    profiles.save_profile(profile)


def format_value(value) -> str:
    """A figure for a person: numbers to 4 significant digits, vectors and matrices in brackets."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    return str(value)


async def _open_link(which, kind: str | None, flash_dir, seed: int):
    """(link, the simulated person's step starts or None, a function to call at the end). which: (link_options,
    sim, realtime)."""
    link_options, sim, realtime = which
    if not sim:
        from hipcheck.live import make_link

        return await make_link(link_options), None, lambda: None
    from hipcheck.links.sim import SimLink

    flash = sim_flash_dir(flash_dir)
    flash.mkdir(parents=True, exist_ok=True)
    trace, starts = await asyncio.to_thread(simulated_person, kind or "gyro", seed)
    # The sim board's flash: the profile it is sent is kept in profile.bin there and loaded at its next boot. A
    # gyroscope or accelerometer calibration needs raw samples from the first one: the simulated sensor boots
    # without its profile (set aside, and put back unless a new one was stored).
    stored = flash / "profile.bin"
    aside = flash / "profile.bin.aside"
    if kind in ("gyro", "accel") and stored.exists():
        stored.replace(aside)

    def restore() -> None:
        if aside.exists():
            if stored.exists():
                aside.unlink()
            else:
                aside.replace(stored)

    # (its trace and stderr go to a temporary folder: the flash holds the profile only)
    link = SimLink(trace, extra_args=("--profile", str(stored)), realtime=realtime)
    return link, starts, restore


async def _calibrate_link(kind, which, device_id, guide: Guide, upload: bool, flash_dir, seed: int,
                          timeout_s: float) -> Outcome:
    link, scripted, restore = await _open_link(which, kind, flash_dir, seed)
    try:
        return await calibrate_session(kind, link, scripted, device_id, guide, upload, timeout_s)
    finally:
        restore()


async def calibrate_session(kind, link, scripted, device_id, guide: Guide, upload: bool, timeout_s: float):
    """The calibration on an unopened ``link``: scripted, the simulated person's step starts (``simulated_person``)
    or None (the person starts each step); device_id: None for the link's own."""
    from hipcheck.device import DeviceSession, SessionSettings
    from hipcheck.protocol import StateFlag

    async with link:
        # The simulated person's sensor stops sampling at the script's end: no idle probes, so that the session
        # does not take that for the end of the stream and stays open for the upload.
        settings = SessionSettings() if scripted is None else SessionSettings(start_seq=0, idle_probe_s=3600.0)
        async with DeviceSession(link, settings) as session:
            info = session.device_info
            device_id = device_id or link.device_id
            if device_id is None:
                raise InvalidValueError("this link does not tell which sensor it is (a serial port): give --device ID "
                                        "(e.g. the name it advertises over BLE, hipcheck-XXXX)")
            profiles.check_device_id(device_id)
            profile = profiles.load_profile(device_id)
            guide.say(f"sensor {device_id}: {info['board']} board, {info['imu']}, firmware {info['firmware']}; "
                      + (profile.summary() if profile else "no calibration profile yet"))
            suspended = kind in ("gyro", "accel") and bool(info["state_flags"] & StateFlag.PROFILE_LOADED)
            first_seq = None
            if suspended:  # samples made from the next one on are raw (the identity applied)
                await upload_profile(session, profile, without=("gyro", "accel"))
                first_seq = (await session.time_sync())["next_seq"]
                guide.say("the sensor's own correction is off while it records (raw samples)")
            try:
                recorded = await _record_steps(session, steps(kind), guide, scripted, timeout_s, first_seq)
                # in a thread: the session's tasks keep the link alive while the estimator runs
                outcome = await asyncio.to_thread(_estimate_recorded, kind, recorded, device_id, profile, link.name,
                                                  guide)
            except BaseException:
                if suspended:
                    await upload_profile(session, profile)  # back to what it held
                raise
            if upload and outcome.profile is not None and kind != "neutral":
                await upload_profile(session, outcome.profile)
                outcome.uploaded = True
                _mark_uploaded(outcome.profile)
            elif suspended:
                await upload_profile(session, profile)
    return outcome


def _estimate_recorded(kind, recorded: _Recorded, device_id, profile, link_name: str, guide: Guide) -> Outcome:
    notes = [f"{recorded.lost} samples lost on the link were left out"] if recorded.lost else []
    the_steps = steps(kind)
    # gyro, accel: raw samples (the sensor's correction was off, or the identity: flags say nothing then)
    keep_flags = None if kind in ("gyro", "accel") else recorded.flags
    acc, gyr = _prepared(kind, profile, recorded.acc, recorded.gyr, keep_flags)
    guide.say(f"estimating from {len(acc)} samples ({len(acc) / recorded.fs_hz:.1f} s)")
    source = f"{link_name} link"
    if kind == "neutral":
        figures = {}
        bounds = [int(round(s * recorded.fs_hz)) for s in recorded.starts_s] + [len(acc)]
        for i, step in enumerate(the_steps):
            part = slice(bounds[i], bounds[i + 1])
            figures.update(profiles.jsonable(estimate(kind, acc[part], gyr[part], recorded.fs_hz, profile=profile,
                                                      posture=step.name).to_dict()))
        values, quality = split_estimate(kind, figures)
        saved = profiles.record_calibration(device_id, kind, values, quality, source)
        return Outcome(kind, figures, device_id, saved, False, source, notes)
    stand_s = recorded.starts_s[1] if kind == "mount" else None
    calibration = estimate(kind, acc, gyr, recorded.fs_hz, stand_s=stand_s, profile=profile)
    figures, saved = _keep(kind, device_id, calibration, source, notes)
    return Outcome(kind, figures, device_id, saved, False, source, notes)
