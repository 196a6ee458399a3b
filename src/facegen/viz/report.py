"""`facegen report`: one self-contained HTML page comparing trained runs.

Per run: its resolved config, loss curves, latest samples, the exploration pictures that
exist and its metrics; across runs: a table with the best value of each column marked.
Metrics come from ``RUN/metrics.jsonl`` (written by ``facegen eval``), one JSON object per
line, a later line superseding an earlier one for the same metric.

An FID column is not marked where its values cannot rank the runs: any from fewer than
:data:`~facegen.metrics.evaluate.FID_MIN_N` faces, or from differing numbers of faces
(KID then marks the best generator). Comparability comes from the n's each record's
protocol stores, so records from versions of facegen older than the ``ranks`` field count.

The page itself is :mod:`facegen.viz.report_html` (``build_report``), built on this
module's data; this one loads no torch.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facegen.config import format_duration
from facegen.files import json_lines
from facegen.layout import (
    EXPLORE_FOLDER,
    LOG_FILE,
    LOSS_PLOT,
    METRICS_FILE,
    SAMPLES_FOLDER,
    read_run_config,
)
from facegen.metrics.protocol import FID_MIN_N, fid_faces_text, fid_ranks

# What makes two runs' metrics comparable. Not the sampler: each model generates its own way
# (an AE through its fitted mixture), and that is part of what is compared.
PROTOCOL_FIELDS = ("n_gen", "n_real", "split", "size", "crop", "feature_network_sha1")


@dataclass(frozen=True)
class Column:
    """A numeric column of the comparison table. ``better`` is ``"lower"`` or ``"higher"``;
    ``None`` marks an informational column whose best value is never marked."""

    key: str
    label: str
    better: str | None
    format: Callable[[float], str]


COLUMNS = (
    Column("steps", "steps", None, lambda v: f"{v:,.0f}"),
    Column("seconds", "training time", "lower", format_duration),
    Column("images_per_second", "images/s", "higher", lambda v: f"{v:,.1f}"),
    Column("fid", "FID", "lower", lambda v: f"{v:.2f}"),
    Column("kid", "KID", "lower", lambda v: f"{v:.4f}"),
    Column("precision", "precision", "higher", lambda v: f"{v:.3f}"),
    Column("recall", "recall", "higher", lambda v: f"{v:.3f}"),
    Column("recon_mse", "recon. MSE", "lower", lambda v: f"{v:.4g}"),
    Column("psnr", "PSNR (dB)", "higher", lambda v: f"{v:.2f}"),
    Column("ssim", "SSIM", "higher", lambda v: f"{v:.3f}"),
    Column("recon_fid", "recon. FID", "lower", lambda v: f"{v:.2f}"),
    Column("memorization", "memorization", None, lambda v: f"{v:.4g}"),
)
COLUMNS_BY_KEY = {column.key: column for column in COLUMNS}


def number(value: Any) -> float | None:
    """``value`` as a finite float, else None (a missing, textual or NaN value)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def json_object(record: dict[str, Any], key: str) -> dict[str, Any]:
    """``record[key]`` where it is a JSON object, else {} (missing, null or another value)."""
    value = record.get(key)
    return value if isinstance(value, dict) else {}


def read_metrics(run: str | Path) -> dict[str, dict]:
    """The latest record of each metric in ``RUN/metrics.jsonl`` ({} when there is none).
    Damaged lines (not JSON, or no metric name) are skipped with one warning on stderr."""
    path = Path(run) / METRICS_FILE
    if not path.is_file():
        return {}
    records, damaged = json_lines(path)
    metrics: dict[str, dict] = {}
    for line_number, record in records:
        if isinstance(record.get("metric"), str):
            metrics[record["metric"]] = record  # a later line supersedes an earlier one
        else:
            damaged.append(line_number)
    if damaged:
        lines = ", ".join(str(n) for n in sorted(damaged))
        print(f"facegen: warning: {path}: skipped damaged line(s) {lines}", file=sys.stderr)
    return metrics


def training_stats(log: Sequence[dict]) -> dict[str, float | None]:
    """Steps and seconds trained (the last log record) and the training speed: the mean
    images/s over the last half of the records, past the slow first steps."""
    last = log[-1] if log else {}
    speeds = [v for v in (number(r.get("images_per_second")) for r in log) if v is not None]
    tail = speeds[len(speeds) // 2 :]
    return {
        "steps": number(last.get("step")),
        "seconds": number(last.get("seconds")),
        "images_per_second": sum(tail) / len(tail) if tail else None,
    }


@dataclass
class RunSummary:
    """What the report shows of one run folder."""

    path: Path
    name: str
    config: dict[str, Any]
    metrics: dict[str, dict]
    stats: dict[str, float | None]

    @property
    def model(self) -> str:
        return str(self.config.get("model", "?"))


def summarize_run(run: str | Path, name: str | None = None) -> RunSummary:
    """Read a run folder (a FacegenError if it is not one) for the report."""
    path = Path(run)
    config = read_run_config(path)
    log_path = path / LOG_FILE
    log = [r for _, r in json_lines(log_path)[0]]
    return RunSummary(path, name or path.name, config, read_metrics(path), training_stats(log))


def comparison_rows(summaries: Sequence[RunSummary]) -> list[dict[str, float | None]]:
    """One row per run: the value of every column in :data:`COLUMNS` (None where missing),
    plus ``kid_std``."""
    rows = []
    for summary in summaries:
        row = dict(summary.stats)
        for key in COLUMNS_BY_KEY.keys() - row.keys():
            row[key] = number(summary.metrics.get(key, {}).get("value"))
        row["kid_std"] = number(summary.metrics.get("kid", {}).get("std"))
        rows.append(row)
    return rows


def best_marks(
    rows: Sequence[dict[str, float | None]], columns: Sequence[Column] = COLUMNS
) -> dict[str, set[int]]:
    """For each ranked column, the indices of the rows holding its best value (all of them
    on a tie). A column is ranked only when at least two runs have a value in it and the
    values are not all equal."""
    marks = {}
    for column in columns:
        if column.better is None:
            continue
        values = {
            i: value for i, row in enumerate(rows) if (value := row.get(column.key)) is not None
        }
        if len(values) < 2 or len(set(values.values())) == 1:
            continue  # one value, or all equal: nothing is best
        best = (min if column.better == "lower" else max)(values.values())
        marks[column.key] = {i for i, value in values.items() if value == best}
    return marks


# The Fréchet distances, and what marks the best value where one cannot.
FID_COLUMNS = {"fid": "best is marked by KID", "recon_fid": "it is not marked best"}


def face_counts(record: dict) -> tuple[int | None, int | None]:
    """(n_gen, n_real) of a metric record's protocol, None where it is not stored."""
    protocol = json_object(record, "protocol")
    n_gen, n_real = (number(protocol.get(key)) for key in ("n_gen", "n_real"))
    return (None if n_gen is None else int(n_gen), None if n_real is None else int(n_real))


def fid_too_few(record: dict) -> bool:
    """Whether an FID record came from too few faces to rank runs: eval said so (``"ranks":
    false``), or, for a record without that field, its protocol's n's say so."""
    if record.get("ranks") is False:
        return True
    n_gen, n_real = face_counts(record)
    known = [n for n in (n_gen, n_real) if n is not None]
    return bool(known) and not fid_ranks(min(known), min(known))


def _counts_text(counts: set[tuple[int | None, int | None]]) -> str:
    """Differing (n_gen, n_real) pairs in words: "2,048 and 10,000 generated"."""
    for index, kind in ((0, "generated"), (1, "real")):
        values = {pair[index] for pair in counts}
        if len(values) > 1:
            known = [f"{n:,}" for n in sorted(n for n in values if n is not None)]
            known += ["unknown"] if None in values else []
            return f"{', '.join(known[:-1])} and {known[-1]} {kind}"
    return "differing"  # not reached: the pairs differ in one of them


def unranked_fids(summaries: Sequence[RunSummary]) -> dict[str, str]:
    """The FID columns whose best value must not be marked, each with the sentence the page
    shows saying why: a value from fewer than FID_MIN_N faces (rank-deficient covariances,
    a bias that depends on the model) or values from differing numbers of faces (FID's bias
    depends on n) make the column's order meaningless. Only columns with values from two
    runs or more: with one, nothing is marked anyway (the run's own table says why)."""
    reasons: dict[str, str] = {}
    why = f"(below {FID_MIN_N:,}, the Inception feature dimension)"
    for key, instead in FID_COLUMNS.items():
        records = [
            s.metrics[key]
            for s in summaries
            if key in s.metrics and number(s.metrics[key].get("value")) is not None
        ]
        if len(records) < 2:
            continue
        label = COLUMNS_BY_KEY[key].label
        few = [face_counts(record) for record in records if fid_too_few(record)]
        # A count that is not stored is taken to be the other one (an old hand-made record).
        known = [(g or r, r or g) for g, r in few if g or r]
        if known:
            faces = fid_faces_text(*min(known, key=min))  # type: ignore[arg-type]
            reasons[key] = f"{label} from {faces} is not comparable {why}; {instead}."
            why = "either"  # said once is enough
        elif few:
            reasons[key] = f"facegen eval marked {label} not comparable; {instead}."
        elif len(counts := {face_counts(record) for record in records}) > 1:
            reasons[key] = (
                f"{label} from differing numbers of faces ({_counts_text(counts)}) is not "
                f"comparable; {instead}."
            )
    return reasons


def _latest(folder: Path, prefix: str) -> tuple[int, Path | None]:
    """The highest step and its ``PREFIX-STEP.png`` in ``folder`` ((0, None): none)."""
    steps = {}
    for path in folder.glob(f"{prefix}-*.png"):
        step = path.stem[len(prefix) + 1 :]
        if step.isdigit():
            steps[int(step)] = path
    return (max(steps), steps[max(steps)]) if steps else (0, None)


def run_pictures(summary: RunSummary) -> list[tuple[str, Path, bool]]:
    """(title, path, is a face grid) of every picture of the run that exists, in page order."""
    run, explore = summary.path, summary.path / EXPLORE_FOLDER
    samples_step, samples = _latest(run / SAMPLES_FOLDER, "step")
    recon_step, recon = _latest(run / SAMPLES_FOLDER, "recon-step")
    recon_title = f"Reconstructions at step {recon_step:,} (originals above)"
    if (explore / "reconstructions.png").is_file():
        recon, recon_title = explore / "reconstructions.png", "Reconstructions"
    pairs = summary.metrics.get("memorization", {}).get("closest_pairs_png")
    candidates = [
        ("Loss curves", run / LOSS_PLOT, False),
        (f"Samples at step {samples_step:,}", samples, True),
        ("Samples (facegen sample)", explore / "samples.png", True),
        (recon_title, recon, True),
        ("Interpolation", explore / "interpolation.png", True),
        ("Latent traversal", explore / "traversal.png", True),
        ("KL per latent dimension", explore / "traversal-kl.png", False),
        ("Attribute edits", explore / "edits.png", True),
    ]
    for path in sorted(explore.glob("latent-map-*.png")):
        method = path.stem.removeprefix("latent-map-")
        candidates.append((f"Latent map ({method.upper()})", path, False))
    if isinstance(pairs, str) and (run / pairs).resolve().is_relative_to(run.resolve()):
        candidates.append(("Memorization: closest training images", run / pairs, True))
    return [(t, p, faces) for t, p, faces in candidates if p is not None and p.is_file()]
