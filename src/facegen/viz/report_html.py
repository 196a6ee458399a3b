"""The page of the run report (:mod:`facegen.viz.report` reads the runs): its style sheet
and builders that escape every string they are given, so a run named ``<b>`` stays text.

The page must open offline from a single file, so there is nothing external: no fonts,
scripts or style sheets, and every picture is a ``data:`` URI.
"""

from __future__ import annotations

import base64
import contextlib
import html
import json
import os
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from PIL import Image

from facegen._version import __version__
from facegen.config import format_duration
from facegen.errors import FacegenError
from facegen.files import write_text
from facegen.layout import LOSS_PLOT
from facegen.metrics.protocol import FID_MIN_N, PUBLISHED_N
from facegen.viz.report import (
    COLUMNS,
    COLUMNS_BY_KEY,
    FID_COLUMNS,
    PROTOCOL_FIELDS,
    RunSummary,
    best_marks,
    comparison_rows,
    fid_too_few,
    json_object,
    number,
    run_pictures,
    summarize_run,
    unranked_fids,
)

MISSING = "–"

# Pictures are embedded whole; these are what facegen writes (PNG grids and plots, GIFs).
MIME_TYPES = {".png": "image/png", ".gif": "image/gif", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}

# Face grids are small (32 to 128-pixel faces): shown at a whole multiple of their size so
# every face pixel stays a crisp square, up to about this many CSS pixels wide.
FACE_GRID_WIDTH = 560

CSS = """
:root { --ink: #1f2328; --muted: #59636e; --line: #d1d9e0; --panel: #f6f8fa;
        --best: #dafbe1; --best-ink: #116329; --accent: #0969da; }
* { box-sizing: border-box; }
body { margin: 0; background: #fff; color: var(--ink); line-height: 1.5;
       font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
main { max-width: 1280px; margin: 0 auto; padding: 24px 20px 64px; }
h1 { font-size: 1.7em; margin: 0 0 4px; }
h2 { font-size: 1.3em; margin: 40px 0 12px; padding-bottom: 6px;
     border-bottom: 1px solid var(--line); }
h3 { font-size: 1em; margin: 0 0 8px; }
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
code, pre { font: 13px/1.45 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
.muted { color: var(--muted); }
nav { margin: 8px 0 0; display: flex; flex-wrap: wrap; gap: 6px 14px; }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; font-size: 14px; }
th, td { border: 1px solid var(--line); padding: 4px 8px; text-align: right;
         white-space: nowrap; }
th { background: var(--panel); font-weight: 600; white-space: normal; vertical-align: bottom; }
td.text, th.text { text-align: left; }
td.best { background: var(--best); color: var(--best-ink); }
td.missing { color: var(--muted); text-align: center; }
.note { background: var(--panel); border: 1px solid var(--line); border-radius: 6px;
        padding: 8px 12px; margin: 12px 0; max-width: 80ch; }
.warning { background: #fff8c5; border-color: #d4a72c; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px;
           margin: 0 0 12px; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; }
details { margin: 12px 0; }
summary { cursor: pointer; color: var(--accent); }
pre { background: var(--panel); border: 1px solid var(--line); border-radius: 6px;
      padding: 10px 12px; overflow-x: auto; max-height: 480px; }
/* Figures as wide as their pictures, two to a row on a wide screen, one on a phone. */
.figures { display: flex; flex-wrap: wrap; gap: 20px; margin-top: 16px;
           align-items: flex-start; }
figure { margin: 0; border: 1px solid var(--line); border-radius: 6px; padding: 10px;
         background: #fff; flex: 0 1 auto; min-width: 0; max-width: calc(50% - 10px); }
figure.wide { flex-basis: 100%; max-width: 100%; }
@media (max-width: 900px) { figure { max-width: 100%; } }
figcaption { font-weight: 600; margin-bottom: 8px; }
img { display: block; max-width: 100%; height: auto; margin: 0 auto; }
img.faces { image-rendering: pixelated; }
"""


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def data_uri(path: Path) -> str:
    """The file as a ``data:`` URI (its MIME type from the suffix)."""
    mime = MIME_TYPES.get(path.suffix.lower(), "application/octet-stream")
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def figure(title: str, path: Path, *, faces: bool, wide: bool = False) -> str:
    """A captioned picture; ``faces`` shows a face grid enlarged with square pixels."""
    with Image.open(path) as image:
        width, height = image.size
    scale = max(1, FACE_GRID_WIDTH // max(width, 1)) if faces else 1
    # Square pixels only where a grid is enlarged: one shrunk to fit (a wide labelled grid
    # on a small screen) reads better smoothed.
    style = "faces" if scale > 1 else "picture"
    return (
        f"<figure{' class=wide' if wide else ''}><figcaption>{esc(title)}</figcaption>"
        f'<img src="{data_uri(path)}" width="{width * scale}" height="{height * scale}" '
        f'class="{style}" alt="{esc(title)}"></figure>'
    )


def cell(text: str | None, *, best: bool = False, text_cell: bool = False) -> str:
    """One table cell: ``None`` shows as the missing mark; ``best`` is bold and marked."""
    if text is None:
        return f'<td class="missing">{MISSING}</td>'
    classes = " ".join(c for c in ("text" if text_cell else "", "best" if best else "") if c)
    body = f"<strong>{esc(text)}</strong>" if best else esc(text)
    return f'<td class="{classes}">{body}</td>' if classes else f"<td>{body}</td>"


def table(header: Sequence[str], rows: Iterable[str], *, table_id: str = "") -> str:
    """A table from header labels (escaped here) and rows already built from :func:`cell`."""
    head = "".join(
        f'<th{" class=text" if i == 0 else ""} scope="col">{esc(label)}</th>'
        for i, label in enumerate(header)
    )
    ident = f' id="{esc(table_id)}"' if table_id else ""
    body = "".join(f"<tr>{row}</tr>" for row in rows)
    return (
        f'<div class="table-wrap"><table{ident}><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


def facts(pairs: Iterable[tuple[str, str]]) -> str:
    """A definition list of label / value pairs (both escaped)."""
    items = "".join(f"<dt>{esc(label)}</dt><dd>{esc(value)}</dd>" for label, value in pairs)
    return f'<dl class="facts">{items}</dl>'


def page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head>"
        f"<body><main>{body}</main></body></html>\n"
    )


def _format(name: str, value: float) -> str:
    column = COLUMNS_BY_KEY.get(name)
    return column.format(value) if column else f"{value:.4g}"


def _metric_rows(summary: RunSummary) -> list[str]:
    """Rows of a run's own metrics table: every metric it has, known to facegen or not."""
    rows = []
    for name, record in summary.metrics.items():
        value, std = number(record.get("value")), number(record.get("std"))
        text = _format(name, value) if value is not None else None
        if text is not None and std is not None:
            text += f" ± {_format(name, std)}"
        if text is not None and number(record.get("pixel_median")) is not None:
            text += f" (pixel distance {record['pixel_median']:.4g})"
        if text is not None and name in FID_COLUMNS and fid_too_few(record):
            text += f" (not comparable: below {FID_MIN_N:,} faces)"
        protocol = json_object(record, "protocol")
        step = number(record.get("step"))
        n_gen, n_real = (number(protocol.get(key)) for key in ("n_gen", "n_real"))
        rows.append(
            cell(name, text_cell=True)
            + cell(text)
            + "".join(cell(None if n is None else f"{n:,.0f}") for n in (step, n_gen, n_real))
            + cell(None if protocol.get("split") is None else str(protocol["split"]))
            + cell(None if record.get("created") is None else str(record["created"]))
        )
    return rows


def comparison_table(summaries: Sequence[RunSummary]) -> str:
    """The table across runs, the best value of each ranked column bold and marked; an FID
    column that cannot rank these runs shows its values unmarked, and a note says why."""
    rows = comparison_rows(summaries)
    unranked = unranked_fids(summaries)
    marks = {key: best for key, best in best_marks(rows).items() if key not in unranked}
    arrows = {"lower": " ↓", "higher": " ↑", None: ""}
    header = ["run", "model", *(column.label + arrows[column.better] for column in COLUMNS)]
    body = []
    for index, (summary, row) in enumerate(zip(summaries, rows, strict=True)):
        cells = f'<td class="text"><a href="#run-{index + 1}">{esc(summary.name)}</a></td>'
        cells += cell(summary.model, text_cell=True)
        for column in COLUMNS:
            value = row[column.key]
            text = None if value is None else column.format(value)
            if column.key == "kid" and text is not None and row["kid_std"] is not None:
                text += f" ± {column.format(row['kid_std'])}"
            cells += cell(text, best=index in marks.get(column.key, ()))
        body.append(cells)
    note = " ".join(unranked.values())
    note = f'<p class="note warning" id="ranking">{esc(note)}</p>' if note else ""
    return table(header, body, table_id="comparison") + note


def _protocol_text(protocol: dict[str, Any]) -> str:
    counts = [(key, number(protocol[key])) for key in ("n_gen", "n_real")]
    parts = [f"{key} = {n:,.0f}" for key, n in counts if n is not None]
    parts += [
        f"{key} {protocol[key]}" for key in ("split", "size", "crop") if protocol[key] is not None
    ]
    text = " · ".join(esc(part) for part in parts)
    sha1 = protocol["feature_network_sha1"]
    return text + (f" · feature network sha1 <code>{esc(sha1)}</code>" if sha1 else "")


# Reconstruction metrics are measured on the reference faces, not on samples: their
# protocol differs by design and only models with an encoder have them.
RECONSTRUCTION_METRICS = frozenset({"recon_mse", "psnr", "ssim", "recon_fid"})


def _protocols(summary: RunSummary) -> list[dict[str, Any]]:
    """The protocols of a run's generation metrics."""
    return [
        record["protocol"]
        for name, record in summary.metrics.items()
        if isinstance(record.get("protocol"), dict) and name not in RECONSTRUCTION_METRICS
    ]


def protocol_note(summaries: Sequence[RunSummary]) -> str:
    """How the metrics were measured, and a warning where they do not compare with
    published figures or with each other."""
    # Protocols as JSON text: hashable, so runs can be compared as sets of them.
    per_run = [
        {json.dumps({key: p.get(key) for key in PROTOCOL_FIELDS}) for p in _protocols(summary)}
        for summary in summaries
    ]
    per_run = [protocols for protocols in per_run if protocols]
    if not per_run:
        return (
            '<p class="note">No metrics yet: <code>facegen eval RUN --data DATASET</code> '
            "adds them to RUN/metrics.jsonl.</p>"
        )
    protocols = [json.loads(text) for text in sorted(set().union(*per_run))]
    note = "<br>".join(_protocol_text(protocol) for protocol in protocols)
    counts = [n for p in protocols if (n := number(p["n_gen"])) is not None]
    warnings = []
    if counts and min(counts) < PUBLISHED_N:
        ranks = "these numbers rank"
        if "fid" in unranked_fids(summaries):
            ranks = "KID (not FID: see under the table) ranks"
        warnings.append(
            f"Only {min(counts):,.0f} generated faces (published figures use {PUBLISHED_N:,}): "
            f"{ranks} these runs against each other; they are not comparable to published "
            "FID / KID figures."
        )
    elif any(p.get("comparable_to_published") is False for s in summaries for p in _protocols(s)):
        warnings.append("facegen eval marked these numbers not comparable to published figures.")
    if len({frozenset(protocols) for protocols in per_run}) > 1:
        warnings.append("The runs were not all evaluated under one protocol: compare with care.")
    return f'<p class="note"><strong>Protocol:</strong> {note}</p>' + "".join(
        f'<p class="note warning">{esc(warning)}</p>' for warning in warnings
    )


LEGEND = (
    "Bold on green: the best value of its column (↓ lower is better, ↑ higher), marked "
    "where at least two runs have one. Memorization: the median distance from a generated "
    "face to its nearest training image in Inception feature space; larger means further "
    "from the training faces (informational, not ranked). – : not measured."
)


def _run_facts(summary: RunSummary) -> list[tuple[str, str]]:
    config, stats = summary.config, summary.stats
    data = json_object(config, "data")
    pairs = [("model", summary.model)]
    if (parameters := number(config.get("model_parameters"))) is not None:
        pairs.append(("parameters", f"{parameters:,.0f}"))
    if data.get("path"):
        size, count = data.get("size"), number(data.get("count"))
        described = [Path(str(data["path"])).name, f"{size}×{size}" if size else ""]
        described.append(f"{count:,.0f} images" if count is not None else "")
        pairs.append(("data", ", ".join(part for part in described if part)))
    if stats["steps"] is not None:
        trained = f"{stats['steps']:,.0f} steps"
        if stats["seconds"] is not None:
            trained += f" in {format_duration(stats['seconds'])}"
        if stats["images_per_second"] is not None:
            trained += f" ({stats['images_per_second']:,.1f} images/s)"
        pairs.append(("trained", trained))
    if config.get("device"):
        pairs.append(("device", f"{config['device']} ({config.get('precision', '?')})"))
    pairs.append(("folder", str(summary.path)))
    return pairs


def run_section(index: int, summary: RunSummary) -> str:
    """One run: facts, resolved config, metrics and every picture it has."""
    resolved = {key: summary.config.get(key) for key in ("train", "model_config")}
    model = f' <span class="muted">({esc(summary.model)})</span>'
    model = model if summary.model != summary.name else ""
    if summary.metrics:
        header = ["metric", "value", "step", "n_gen", "n_real", "split", "created"]
        metrics = table(header, _metric_rows(summary))
    else:
        metrics = '<p class="muted">No metrics yet (facegen eval).</p>'
    pictures = "".join(
        figure(title, path, faces=faces, wide=path.name == LOSS_PLOT)
        for title, path, faces in run_pictures(summary)
    )
    return (
        f'<section id="run-{index}"><h2>{esc(summary.name)}{model}</h2>'
        + facts(_run_facts(summary))
        + "<details><summary>Resolved config (train and model_config)</summary>"
        + f"<pre>{esc(json.dumps(resolved, indent=2))}</pre></details>"
        + f"<h3>Metrics</h3>{metrics}"
        + f'<div class="figures">{pictures}</div></section>'
    )


def render_report(summaries: Sequence[RunSummary], title: str, stamp: str) -> str:
    """The whole page; ``stamp`` says what made it and when."""
    nav = "".join(
        f'<a href="#run-{index}">{esc(summary.name)}</a>'
        for index, summary in enumerate(summaries, 1)
    )
    body = (
        f"<header><h1>{esc(title)}</h1>"
        f'<p class="muted">{len(summaries)} run(s) · {esc(stamp)}</p>'
        f'<nav><a href="#comparison">comparison</a>{nav}</nav></header>'
        "<h2>Comparison</h2>"
        + comparison_table(summaries)
        + f'<p class="muted">{esc(LEGEND)}</p>'
        + protocol_note(summaries)
        + "".join(run_section(index, s) for index, s in enumerate(summaries, 1))
    )
    return page(title, body)


def default_report_path(runs: Sequence[str | Path]) -> Path:
    """``report.html`` in the folder holding all the runs (``runs/demo`` for its runs)."""
    parents = [os.path.abspath(Path(run).parent) for run in runs]
    common = Path(os.path.commonpath(parents))
    with contextlib.suppress(ValueError):
        common = common.relative_to(Path.cwd())
    return common / "report.html"


def _names(paths: Sequence[Path]) -> list[str]:
    """Folder names, or paths from the common parent where two runs share a folder name."""
    names = [path.name for path in paths]
    if len(set(names)) == len(names):
        return names
    common = Path(os.path.commonpath([os.path.abspath(path) for path in paths]))
    return [str(Path(os.path.abspath(path)).relative_to(common)) for path in paths]


def build_report(
    runs: Sequence[str | Path], out: str | Path, title: str = "facegen report"
) -> Path:
    """Write the report on ``runs`` to ``out`` (atomically) and return its path. Every run
    is read before anything is written: a folder that is not a run is a FacegenError."""
    if not runs:
        raise FacegenError("give at least one run folder")
    paths = list(dict.fromkeys(Path(run) for run in runs))
    summaries = [summarize_run(path, name) for path, name in zip(paths, _names(paths), strict=True)]
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    out = Path(out)
    write_text(out, render_report(summaries, title, f"facegen {__version__}, {created}"))
    return out
