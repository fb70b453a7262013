"""``hipcheck review``: recorded sessions reviewed afterwards, as a self-contained HTML report per wearer (figures
embedded, PNGs beside it) and two tables for a study (Parquet: a row per stride, a row per session).

    from hipcheck.review import review
    review(["logs/"], "report.html", jobs=2)                   # or scheduler="tcp://host:8786" (hipcheck[cluster])

Each session is one independent task (``review_session``): its log is read and analysed exactly as ``hipcheck
analyze`` does (``hipcheck.api.read_recording``, ``hipcheck.pipeline.analyze_arrays``, ``hipcheck.api.Result``), so
every number of the report and the tables is that of ``analyze --json`` on the same file; its figures are drawn in
the same task. Tasks run one after the other, in ``jobs`` processes, or on a Dask cluster (``dask.distributed``),
and are gathered in the order of the inputs: the tables do not depend on where or in which order they ran.

Who and when: a session's wearer is ``wearer=`` when given, else the first folder under a folder given as input
(``logs/anna/2026-01-05.hclog`` → ``anna``), else the log header's ``wearer``, else the name of the folder holding
the file. Its date is the log header's ``start_unix_s`` (UTC); a CSV's is its file's modification time.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from hipcheck.alerts import alert_settings
from hipcheck.calibration.profile import for_analysis
from hipcheck.detect import DEFAULT_DROP_THRESHOLD_DEG
from hipcheck.detect import DEFAULT_SETTINGS as DETECTOR_DEFAULTS
from hipcheck.errors import EXIT_DEVICE, HipcheckError, InvalidValueError

FOLDER_PATTERN = "*.hclog"  # what a folder given as input is searched for (recursively)
SESSION_COLUMNS = ("session", "wearer", "date")  # the stride table's first columns
CONNECT_TIMEOUT = "10s"  # how long to try reaching a Dask scheduler


class ClusterError(HipcheckError):
    """The Dask scheduler cannot be reached or the ``cluster`` extra is not installed."""

    exit_code = EXIT_DEVICE


@dataclass(frozen=True)
class Session:
    """One input: its path, its name in the tables and, when the folder layout or the command says, its wearer."""

    path: str
    key: str
    wearer: str | None = None


@dataclass(frozen=True)
class ReviewSettings:
    """How each session is analysed and drawn. detector_settings: the pipeline's (``AlertSettings.
    detector_settings()``; None: ``hipcheck.alerts``' defaults, as analyze); figures: draw each session's figures
    (False: tables only)."""

    detector_settings: dict | None = None
    drop_threshold_deg: float = DEFAULT_DROP_THRESHOLD_DEG
    offline: bool = False
    figures: bool = True
    use_profile: bool = True  # the calibration profile of the sensor a log names, as analyze (False: --no-profile)
    mode: str = "walk"  # what the sessions are of, as analyze --mode: walk, hold, bridge, clamshell (reps)
    dpi: int = 80


@dataclass
class SessionReview:
    """One session reviewed: ``json`` is the object ``hipcheck analyze --json`` prints for it; ``strides``,
    ``decisions``, ``holds``, ``reps`` the tables of ``hipcheck.api.Result``; ``link`` the session's own account of
    its link (None for a CSV); ``figures`` PNG bytes by section. ``error`` is set (and the rest empty) when the
    session could not be analysed."""

    session: Session
    wearer: str
    start: datetime | None
    json: dict = field(default_factory=dict)
    strides: object = None
    decisions: object = None
    holds: object = None
    reps: object = None
    link: dict | None = None
    figures: dict[str, bytes] = field(default_factory=dict)
    seconds: float = 0.0
    error: str = ""
    profile: str = ""  # which calibration profile was used, as analyze says it (hipcheck.calibration.profile)

    @property
    def date(self) -> str:
        return self.start.date().isoformat() if self.start is not None else ""

    def summary_row(self) -> dict:
        """The session's row of the session table: who, when, the input, and the summary of ``analyze --json``."""
        row = {"session": self.session.key, "wearer": self.wearer, "date": self.date, "start": self.start,
               "path": self.session.path, "error": self.error or None}
        if self.json:
            row.update(duration_s=self.json["duration_s"], fs=self.json["fs"],
                       samples_lost=self.json["input"]["samples_lost"])
            row.update({k: v for k, v in self.json["summary"].items() if not isinstance(v, (dict, list))})
            row["decisions"] = len(self.json["decisions"])
            row["holds"] = len(self.json.get("holds", []))
        if self.link:
            row.update(samples_backfilled=self.link.get("samples_backfilled"), holes=self.link.get("holes"))
        return row


def find_sessions(inputs, wearer: str | None = None) -> list[Session]:
    """The sessions named by ``inputs`` (files, or folders searched for ``*.hclog``), in the order given, a folder's
    sorted by path. Raises ``InvalidValueError`` for a missing input or a folder holding no log."""
    sessions: list[Session] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(item.rglob(FOLDER_PATTERN))
            if not found:
                raise InvalidValueError(f"{item}: no session log ({FOLDER_PATTERN}) in this folder or below")
            for path in found:
                relative = path.relative_to(item)
                sessions.append(Session(str(path), relative.as_posix(),
                                        wearer or (relative.parts[0] if len(relative.parts) > 1 else None)))
        elif item.exists():
            sessions.append(Session(str(item), item.name, wearer))
        else:
            raise InvalidValueError(f"{item}: no such file or folder")
    keys = [s.key for s in sessions]
    if len(set(keys)) < len(keys):  # the same name from two folders: the paths as given tell them apart
        sessions = [Session(s.path, s.path, s.wearer) for s in sessions]
    return sessions


def review_session(session: Session, settings: ReviewSettings) -> SessionReview:
    """Read, analyse and draw one session (module docstring): a task of its own, in any process. A session the
    library refuses comes back with ``error`` set; anything else raises."""
    t0 = time.perf_counter()
    try:
        return _review(session, settings, t0)
    except HipcheckError as error:
        return SessionReview(session, session.wearer or Path(session.path).resolve().parent.name, None,
                             error=" ".join(str(error).split()), seconds=time.perf_counter() - t0)


def _review(session: Session, settings: ReviewSettings, t0: float) -> SessionReview:
    from hipcheck.api import Result, analysis_json, read_recording
    from hipcheck.pipeline import analyze_arrays

    recording = read_recording(session.path)
    # As run_analyze (hipcheck.cli) does, call for call, so that the numbers are those of `analyze --json`: the
    # sensor's calibration profile applied (unless use_profile is False), the detectors' settings, the JSON.
    detectors = dict(settings.detector_settings) if settings.detector_settings is not None \
        else alert_settings().detector_settings()
    mode = {"mode": settings.mode, "mode_settings": None, "hold_starts": []}
    acc, gyr, alignment, profile_line = recording.acc_m_s2, recording.gyr_rad_s, None, None
    if settings.use_profile:
        acc, gyr, alignment, profile_line = for_analysis(recording, detectors, mode)
    analysis = analyze_arrays(acc, gyr, recording.fs_hz, offline=settings.offline, alignment=alignment,
                              detector_settings=detectors, **mode)
    result = Result(analysis, recording, settings.mode, settings.drop_threshold_deg)
    header, link = _log_account(recording)
    wearer = session.wearer or header.get("wearer") or Path(session.path).resolve().parent.name
    start = _start(session.path, header)
    strides = result.strides
    for k, (name, value) in enumerate(zip(SESSION_COLUMNS, (session.key, str(wearer), _iso_date(start)))):
        strides.insert(k, name, value)
    out = SessionReview(session, str(wearer), start, analysis_json(analysis, recording, settings.drop_threshold_deg), strides, result.decisions,
                        result.holds, result.reps, link, profile=profile_line or "")
    if settings.figures:
        out.figures = draw_session(result, settings)
    out.seconds = time.perf_counter() - t0
    return out


def _iso_date(start: datetime | None) -> str:
    return start.date().isoformat() if start is not None else ""


def _start(path: str, header: dict) -> datetime | None:
    """When the session started: a log's header, else the file's modification time (UTC)."""
    seconds = header.get("start_unix_s")
    if not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
        seconds = Path(path).stat().st_mtime
    return datetime.fromtimestamp(float(seconds), tz=timezone.utc)


def _log_account(recording) -> tuple[dict, dict | None]:
    """A log's header and its link account: the session's closing counts (its ``end`` NOTE) where the log has them,
    and the samples live, backfilled and lost as the log's samples show them (also for a log cut before its end)."""
    if recording.session is None:
        return {}, None
    from hipcheck.protocol import SampleFlag

    log = recording.session
    rows = log.samples
    backfilled = int(((rows["flags"] & SampleFlag.BACKFILLED) != 0)[~rows["gap"]].sum())
    link = {"samples": int(len(rows)), "samples_received": int((~rows["gap"]).sum()),
            "samples_backfilled_in_log": backfilled, "samples_lost_in_log": int(rows["gap"].sum()),
            "lost_ranges": len(log.lost), "damaged_bytes": int(log.damaged_bytes), "closed": False}
    ends = [note for note in log.notes if note.get("note") == "end"]  # read with the samples: no second pass
    if ends:
        end = ends[-1]
        link["closed"] = True
        link.update({k: v for k, v in end.items() if isinstance(v, (int, float)) and k != "t_host_s"})
        time_map = end.get("time_map")
        if isinstance(time_map, dict):
            link.update({f"time_map_{k}": v for k, v in time_map.items() if isinstance(v, (int, float))})
    return log.header, link


def draw_session(result, settings: ReviewSettings) -> dict[str, bytes]:
    """The session's figures as PNG bytes, by section (``SECTIONS`` of ``hipcheck.review_html``)."""
    from hipcheck import figures
    from hipcheck.protocol import SampleFlag
    from hipcheck.review_html import png_bytes

    thresholds = {**DETECTOR_DEFAULTS, **(settings.detector_settings or {})}
    drawn = {"cycle": figures.cycle_figure(result), "drops": figures.drops_figure(result),
             "sway_tilt": figures.sway_tilt_figure(result, thresholds.get("sway_threshold_cm"),
                                                   thresholds.get("tilt_anterior_deg")),
             "alerts": figures.alerts_figure(result), "holds_reps": figures.holds_reps_figure(result)}
    if result.recording.session is not None:
        drawn["link"] = figures.link_figure(result.recording.session.samples, result.analysis.fs_hz,
                                            int(SampleFlag.BACKFILLED))
    return {name: png_bytes(figure, settings.dpi) for name, figure in drawn.items() if figure is not None}


# ------------------------------------------------------------------------------------------- running the tasks

def run_sessions(sessions: list[Session], settings: ReviewSettings, *, jobs: int = 1, scheduler: str | None = None,
                 progress: bool | None = None) -> list[SessionReview]:
    """Every session's ``review_session``, in the order of ``sessions``: here (jobs 1), in ``jobs`` processes, or as
    a task each on the Dask scheduler at ``scheduler``. progress: a bar on stderr (None: when it is a terminal)."""
    from tqdm import tqdm

    results: list[SessionReview | None] = [None] * len(sessions)
    with tqdm(total=len(sessions), desc="reviewing", unit="session", file=sys.stderr,
              disable=None if progress is None else not progress) as bar:
        def done(index: int, review: SessionReview) -> None:
            results[index] = review
            bar.set_postfix_str(review.session.key[-30:], refresh=False)
            bar.update()

        if scheduler is not None:
            _on_dask(scheduler, sessions, settings, done)
        elif jobs > 1 and len(sessions) > 1:
            _in_processes(jobs, sessions, settings, done)
        else:
            for index, session in enumerate(sessions):
                done(index, review_session(session, settings))
    return results


def _in_processes(jobs: int, sessions, settings, done) -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # spawn: a worker starts clean (no threads or locks inherited) and loads the kernels from numba's cache, which
    # the warm-up in this process filled.
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(review_session, session, settings): k for k, session in enumerate(sessions)}
        for future in as_completed(futures):
            done(futures[future], future.result())


def _on_dask(address: str, sessions, settings, done) -> None:
    try:
        from dask.distributed import Client, as_completed
    except ImportError:
        raise ClusterError("--scheduler needs dask.distributed: pip install 'hipcheck[cluster]'") from None
    try:
        client = Client(address, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError) as error:
        raise ClusterError(f"the Dask scheduler at {address} cannot be reached: {error}") from None
    with client:
        # pure=False: each session is a task of its own even when two inputs are the same file.
        futures = client.map(review_session, sessions, settings=settings, pure=False)
        index = {future.key: k for k, future in enumerate(futures)}
        for future in as_completed(futures):
            done(index[future.key], future.result())


_WARMED: set[bool] = set()  # the offline flags this process has warmed up for: its kernels stay loaded


def warm_up(offline: bool = False) -> float:
    """Run the pipeline over a few seconds of simulated walking so that its numba kernels are compiled, or loaded
    from the cache, before the sessions start (a process pool's workers then load them from the cache); once per
    process. The command's line on a cold cache is hipcheck.compile_notice's. Returns the seconds it took."""
    if offline in _WARMED:
        return 0.0
    from hipcheck.motion import SensorModel, simulate_walk
    from hipcheck.pipeline import analyze_arrays

    trace = simulate_walk(duration_s=8.0, seed=0, sensor=SensorModel.ideal())
    t0 = time.perf_counter()
    analyze_arrays(trace.acc_sensor_m_s2, trace.gyr_sensor_rad_s, trace.fs_hz, offline=offline)
    _WARMED.add(offline)
    return time.perf_counter() - t0


@dataclass
class ReviewOutput:
    """What ``review`` wrote and the two tables (pandas DataFrames)."""

    reports: list[Path]
    figures: list[Path]
    strides_table: Path | None
    sessions_table: Path | None
    strides: object
    sessions: object
    reviews: list[SessionReview]


def gather_tables(reviews: list[SessionReview]):
    """(strides, sessions): a row per stride of every session (``session``, ``wearer``, ``date`` first, then the
    fields of ``hipcheck.api.Result.strides``), and a row per session (``SessionReview.summary_row``)."""
    import pandas

    frames = [r.strides for r in reviews if r.strides is not None and len(r.strides)]
    strides = pandas.concat(frames, ignore_index=True) if frames else pandas.DataFrame(columns=list(SESSION_COLUMNS))
    for name in SESSION_COLUMNS:
        strides[name] = strides[name].astype(str)
    if "side" in strides:
        strides["side"] = pandas.Categorical(strides["side"].astype(str), categories=["left", "right"])
    sessions = pandas.DataFrame([r.summary_row() for r in reviews])
    sessions["start"] = pandas.to_datetime(sessions["start"], utc=True)
    return strides, sessions


def review(inputs, output, *, jobs: int = 1, scheduler: str | None = None, wearer: str | None = None,
           settings: ReviewSettings | None = None, tables: bool = True, progress: bool | None = None,
           out=None) -> ReviewOutput:
    """Review every session of ``inputs`` (module docstring) and write the report ``output`` (one wearer: the
    wearer's report; several: an index linking ``<stem>-<wearer>.html`` beside it), the figures as PNG in
    ``<stem>_figures/`` and, with ``tables``, ``<stem>-strides.parquet`` and ``<stem>-sessions.parquet``.
    Raises ``InvalidValueError`` when no session could be analysed (the first session's reason)."""
    from hipcheck import review_html

    settings = settings or ReviewSettings()
    output = Path(output)
    sessions = find_sessions(inputs, wearer)
    if scheduler is None:
        warm_up(settings.offline)
    reviews = run_sessions(sessions, settings, jobs=jobs, scheduler=scheduler, progress=progress)
    failed = [r for r in reviews if r.error]
    if len(failed) == len(reviews):
        raise InvalidValueError(f"{failed[0].session.path}: {failed[0].error}" +
                                (f" (and {len(failed) - 1} more sessions could not be analysed)"
                                 if len(failed) > 1 else ""))
    for r in failed:
        (out or (lambda line: print(line, file=sys.stderr)))(f"not reviewed: {r.session.path}: {r.error}")
    strides, table = gather_tables(reviews)
    written = review_html.write_reports(output, reviews, table, settings)
    result = ReviewOutput(written.reports, written.figures, None, None, strides, table, reviews)
    if tables:
        result.strides_table = output.with_name(f"{output.stem}-strides.parquet")
        result.sessions_table = output.with_name(f"{output.stem}-sessions.parquet")
        _write_parquet(strides, result.strides_table)
        _write_parquet(table, result.sessions_table)
    return result


def _write_parquet(frame, path: Path) -> None:
    try:
        frame.to_parquet(path, index=False)
    except ImportError as error:  # pandas names the engine it lacks
        raise InvalidValueError(f"{path}: Parquet needs pyarrow ({error}); pip install pyarrow") from None
