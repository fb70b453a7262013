"""The HTML of ``hipcheck review``: a self-contained page per wearer (figures embedded as base64 PNG, the same PNGs
written beside it), and an index when the sessions belong to several wearers.

Every number shown is the JSON value of ``hipcheck analyze --json`` for that session, printed as JSON prints it;
the page also carries, in ``<script type="application/json" id="hipcheck-review">``, each session's summary and its
strides (as ``analyze --json`` lists them, by column) for a program to read back.
"""

from __future__ import annotations

import base64
import functools
import html
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from hipcheck import __version__
from hipcheck.report import summary_text

SECTIONS = {  # figure name -> heading, in the page's order
    "cycle": "Pelvic angles over the gait cycle",
    "drops": "Pelvic drop per stance side",
    "sway_tilt": "Sway and tilt per stride",
    "alerts": "Alerts on a timeline",
    "holds_reps": "Single-leg holds and exercise reps",
    "link": "Link quality",
}
TABLE_COLUMNS = (  # the session table: column of the session table -> heading
    ("date", "date"), ("session", "session"), ("duration_s", "duration (s)"), ("strides", "strides"),
    ("steady_strides", "steady"), ("cadence_spm_median", "cadence (steps/min)"),
    ("drop_right_stance_deg_median", "drop, right stance (°)"), ("drop_left_stance_deg_median", "drop, left stance (°)"),
    ("sway_pp_cm_median", "sway (cm)"), ("tilt_mean_deg_median", "tilt (°)"), ("weak_side", "weak side"),
    ("decisions", "alerts"), ("holds", "holds"), ("samples_lost", "samples lost"),
)
LINK_ROWS = (
    ("samples", "samples emitted (log)"), ("samples_received", "received"),
    ("samples_backfilled_in_log", "backfilled (resent by the sensor)"), ("samples_lost_in_log", "lost"),
    ("lost_ranges", "lost ranges"), ("holes", "holes found live"), ("backfill_requests", "backfill requests"),
    ("bad_packets", "bad packets"), ("reconnects", "reconnects"), ("link_packets_dropped", "packets dropped by the host"),
    ("time_map_rtt_min_ms", "time sync: least round trip (ms)"), ("damaged_bytes", "damaged bytes in the log"),
    ("closed", "log closed by the session"),
)
STYLE = """body{font-family:sans-serif;margin:1.5em;color:#222;max-width:1250px}
table{border-collapse:collapse;font-size:0.85em;margin:0.5em 0}td,th{border:1px solid #ccc;padding:2px 6px;
text-align:right}th{background:#eee}td.t{text-align:left}img{max-width:100%;display:block;margin:0.3em 0}
h2{border-top:2px solid #888;padding-top:0.4em}.err{color:#b00}.note{color:#555;font-size:0.85em}
.key{color:#999;font-size:0.85em}.words{font-family:inherit;font-size:1.05em;white-space:pre-wrap;background:#f4f4f4;padding:0.5em}"""


@functools.cache
def summary_labels() -> dict[str, str]:
    """Each summary figure in words with its unit, for a person: the JSON schema's description of its key (the one
    place the JSON's meanings are written); the key itself follows in grey for the researcher."""
    from hipcheck.api import schema

    properties = schema()["$defs"]["summary"]["properties"]
    return {key: spec["description"] for key, spec in properties.items() if "description" in spec}


@dataclass
class Written:
    reports: list[Path] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "_"


def png_bytes(figure, dpi: int) -> bytes:
    """A matplotlib Figure as PNG bytes (zlib's fastest level: 2 % larger files, a tenth of the encoding time)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, pil_kwargs={"compress_level": 1})
    return buffer.getvalue()


def cell(value) -> str:
    """A value as the JSON prints it (None as a dash), escaped."""
    if value is None or (isinstance(value, float) and value != value):
        return "–"
    return html.escape(value if isinstance(value, str) else json.dumps(value))


def write_reports(output: Path, reviews, sessions, settings) -> Written:
    """The report(s) and the PNGs beside them (module docstring); ``sessions`` is the session table."""
    written = Written()
    folder = output.with_name(f"{output.stem}_figures")
    folder.mkdir(exist_ok=True)
    wearers = list(dict.fromkeys(r.wearer for r in reviews))
    pages = {}
    for wearer in wearers:
        mine = [r for r in reviews if r.wearer == wearer]
        mine.sort(key=lambda r: (r.start is None, r.start or 0, r.session.key))
        table = sessions[sessions["wearer"] == wearer].sort_values(["start", "session"], na_position="last")
        page = output if len(wearers) == 1 else output.with_name(f"{output.stem}-{safe_name(wearer)}.html")
        page.write_text(wearer_page(wearer, mine, table, settings, folder, written), encoding="utf-8")
        pages[wearer] = page
        written.reports.append(page)
    if len(wearers) > 1:
        output.write_text(index_page(pages, sessions), encoding="utf-8")
        written.reports.insert(0, output)
    return written


def _image(png: bytes, path: Path, written: Written, alt: str) -> str:
    path.write_bytes(png)
    written.figures.append(path)
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


def wearer_page(wearer: str, reviews, table, settings, folder: Path, written: Written) -> str:
    from hipcheck.figures import trends_figure

    parts = [f"<h1>hipcheck review: {html.escape(wearer)}</h1>",
             f'<p class="note">{len(reviews)} session(s); hipcheck {__version__}; orientation '
             f'{"offline" if settings.offline else "causal"}; drop threshold {settings.drop_threshold_deg:g}°. '
             "Every number is that of <code>hipcheck analyze --json</code> on the same file: medians over the "
             "steady strides. Signs: drop + = the free side sank while standing on the named side (that side's "
             "hip abductors are weak); tilt + = anterior; obliquity + = left side higher.</p>",
             "<h2>Sessions</h2>", session_table(table)]
    rows = table[table["error"].isna()] if "error" in table else table
    if len(rows) >= 2:
        figure = trends_figure(rows, wearer, settings.drop_threshold_deg)
        parts += ["<h2>Trends across dates</h2>", _image(png_bytes(figure, settings.dpi),
                                                          folder / f"{safe_name(wearer)}-trends.png", written,
                                                          "trends across dates")]
    for r in reviews:
        parts.append(session_section(r, folder, written))
    data = {"hipcheck": __version__, "wearer": wearer,
            "sessions": [{"session": r.session.key, "wearer": r.wearer, "date": r.date,
                          "schema_version": r.json.get("schema_version"), "summary": r.json.get("summary"),
                          "strides": _columns(r.json.get("strides", [])), "error": r.error or None} for r in reviews]}
    embedded = json.dumps(data, allow_nan=False).replace("</", "<\\/")
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>hipcheck review: {html.escape(wearer)}</title><style>{STYLE}</style></head><body>"
            + "\n".join(parts) + f'\n<script type="application/json" id="hipcheck-review">{embedded}</script>'
            + "</body></html>\n")


def _columns(strides: list[dict]) -> dict:
    names = list(strides[0]) if strides else []
    return {name: [s[name] for s in strides] for name in names}


def session_table(table) -> str:
    head = "".join(f"<th>{html.escape(label)}</th>" for _, label in TABLE_COLUMNS)
    body = []
    for row in table.to_dict("records"):
        cells = "".join(f'<td{" class=t" if name in ("date", "session", "weak_side") else ""}>{cell(row.get(name))}</td>'
                        for name, _ in TABLE_COLUMNS)
        body.append(f"<tr>{cells}</tr>")
    return f'<table class="sessions"><tr>{head}</tr>{"".join(body)}</table>'


def session_section(r, folder: Path, written: Written) -> str:
    title = f"{html.escape(r.session.key)} ({r.date or 'no date'})"
    if r.error:
        return f'<h2>{title}</h2><p class="err">not analysed: {html.escape(r.error)}</p>'
    summary = r.json["summary"]
    labels = summary_labels()
    rows = "".join(f'<tr><td class=t>{html.escape(labels.get(k, k))} <span class=key>{html.escape(k)}</span></td>'
                   f'<td data-key="{html.escape(k)}">{cell(v)}</td></tr>'
                   for k, v in summary.items() if not isinstance(v, (dict, list)))
    parts = [f'<h2 id="{html.escape(safe_name(r.session.key))}">{title}</h2>',
             f'<p class="note">{html.escape(r.session.path)}: {r.json["duration_s"]} s at {r.json["fs"]:g} Hz, '
             f'{len(r.json["strides"])} strides, {len(r.json["decisions"])} alerts; reviewed in {r.seconds:.1f} s</p>',
             # the words analyze prints for a person, then every figure under its JSON name (the researcher's)
             f'<pre class="words">{html.escape(summary_text(summary))}</pre>',
             f'<table class="summary">{rows}</table>']
    parts += [f'<p class="note">{html.escape(r.profile)}</p>'] if r.profile else []
    parts += [f'<p class="note">warning: {html.escape(w)}</p>' for w in r.json.get("warnings", [])]
    stem = f"{safe_name(r.wearer)}-{safe_name(r.session.key)}"
    for name, heading in SECTIONS.items():
        if name in r.figures:
            parts += [f"<h3>{heading}</h3>", _image(r.figures[name], folder / f"{stem}-{name}.png", written, heading)]
        if name == "holds_reps":
            parts += [records_table("single-leg holds", r.json.get("holds", [])),
                      records_table("reps", r.json.get("reps", []))]
        if name == "link" and r.link:
            parts.append(link_table(r.link))
    return "\n".join(p for p in parts if p)


def records_table(title: str, records: list[dict]) -> str:
    if not records:
        return ""
    names = list(records[0])
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    body = "".join("<tr>" + "".join(f"<td>{cell(rec[n])}</td>" for n in names) + "</tr>" for rec in records)
    return f"<p>{html.escape(title)}</p><table>{'<tr>' + head + '</tr>'}{body}</table>"


def link_table(link: dict) -> str:
    rows = "".join(f"<tr><td class=t>{html.escape(label)}</td><td>{cell(link[key])}</td></tr>"
                   for key, label in LINK_ROWS if key in link)
    return f'<table class="link">{rows}</table>'


def index_page(pages: dict, sessions) -> str:
    rows = []
    for wearer, page in pages.items():
        mine = sessions[sessions["wearer"] == wearer]
        dates = sorted(d for d in mine["date"] if d)
        rows.append(f'<tr><td class=t><a href="{html.escape(page.name)}">{html.escape(wearer)}</a></td>'
                    f"<td>{len(mine)}</td><td class=t>{html.escape(dates[0] if dates else '')} – "
                    f"{html.escape(dates[-1] if dates else '')}</td></tr>")
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>hipcheck review</title>"
            f"<style>{STYLE}</style></head><body><h1>hipcheck review: {len(pages)} wearers, {len(sessions)} "
            "sessions</h1><table><tr><th>wearer</th><th>sessions</th><th>dates</th></tr>" + "".join(rows)
            + "</table></body></html>\n")
