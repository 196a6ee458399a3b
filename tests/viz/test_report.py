"""The HTML report: a row per run, the best values marked (by KID where FID cannot rank),
every picture embedded, strings escaped, damaged metric lines skipped; and `facegen report`
as a user runs it."""

from __future__ import annotations

import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from facegen.cli import main
from facegen.metrics.evaluate import METRICS_FILE
from facegen.viz.grid import save_png
from facegen.viz.report import (
    COLUMNS,
    best_marks,
    read_metrics,
    run_pictures,
    summarize_run,
    training_stats,
)
from facegen.viz.report_html import build_report

SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
PROTOCOL = {
    "n_real": 470, "n_gen": 1000, "split": "test", "size": 32, "crop": "140",
    "feature_network_sha1": SHA1, "sampler": "normal", "seed": 0,
    "facegen_version": "0.1.0", "comparable_to_published": False,
}  # fmt: skip
# Enough faces for FID to rank runs (n >= 2,048 generated and real).
LARGE = {**PROTOCOL, "n_gen": 10_000, "n_real": 5_000}


def copy_runs(runs32, root: Path) -> dict[str, Path]:
    """Copies of the shared tiny runs as training left them (other tests add exploration
    pictures and metrics to the shared runs), which a test may write into."""
    extras = shutil.ignore_patterns("explore", "eval", "metrics.jsonl")
    return {
        name: Path(shutil.copytree(run.path, root / name, ignore=extras))
        for name, run in runs32.items()
    }


def write_metrics(run: Path, lines: list[dict | str], protocol: dict = PROTOCOL) -> None:
    """RUN/metrics.jsonl as `facegen eval` writes it; a str is written as a raw line."""
    text = "".join(
        (line if isinstance(line, str) else json.dumps({"protocol": protocol, **line})) + "\n"
        for line in lines
    )
    (run / METRICS_FILE).write_text(text, encoding="utf-8")


class Page(HTMLParser):
    """What the tests look at in a page: image sources, and the comparison table's header
    and rows as (class, text) cells."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.images: list[str] = []
        self.header: list[str] = []
        self.rows: list[list[tuple[str, str]]] = []
        self._table = self._cell = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        elif tag == "table":
            self._table = attrs.get("id")
        elif self._table == "comparison" and tag == "tr":
            self.rows.append([])
        elif self._table == "comparison" and tag in ("td", "th"):
            self._cell = [attrs.get("class") or "", ""]

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell[1] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._table = None
        elif tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append(tuple(self._cell))
            self._cell = None

    def column(self, label: str) -> dict[str, tuple[str, str]]:
        """The cells of a column by run name."""
        header, *body = self.rows
        index = [text for _, text in header].index(label)
        return {row[0][1]: row[index] for row in body}


@pytest.fixture
def runs(runs32, tmp_path) -> dict[str, Path]:
    return copy_runs(runs32, tmp_path / "runs")


def test_report_has_a_row_per_run_and_embeds_every_picture(runs, tmp_path):
    out = build_report(list(runs.values()), tmp_path / "report.html", title="demo")
    text = out.read_text(encoding="utf-8")
    page = Page(text)
    assert [row[0][1] for row in page.rows[1:]] == ["ae", "vae", "dcgan"]
    assert page.column("model") == {name: ("text", name) for name in runs}
    # Loss curves and samples for each run, reconstructions for the two with an encoder.
    assert len(page.images) == 3 * 2 + 2
    assert all(src.startswith("data:image/png;base64,") for src in page.images)
    assert "http://" not in text and "https://" not in text
    assert text.count("<details>") == 3 and "&quot;model_config&quot;" in text
    steps = page.column("steps")
    assert steps["ae"] == ("", "40") and steps["dcgan"] == ("", "20")


def test_best_values_are_marked_and_missing_ones_shown_as_a_dash(runs, tmp_path):
    write_metrics(runs["ae"], [
        {"metric": "fid", "value": 50.0}, {"metric": "psnr", "value": 20.0},
        {"metric": "precision", "value": 0.5}, {"metric": "memorization", "value": 9.0},
    ], protocol=LARGE)  # fmt: skip
    write_metrics(runs["vae"], [
        {"metric": "fid", "value": 40.0}, {"metric": "psnr", "value": 25.0},
        {"metric": "precision", "value": 0.5}, {"metric": "memorization", "value": 3.0},
        {"metric": "kid", "value": 0.0123, "std": 0.0011},
    ], protocol=LARGE)  # fmt: skip
    write_metrics(runs["dcgan"], [{"metric": "fid", "value": 60.0}], protocol=LARGE)
    page = Page(build_report(list(runs.values()), tmp_path / "r.html").read_text("utf-8"))
    best = {name: cls == "best" for name, (cls, _) in page.column("FID ↓").items()}
    assert best == {"ae": False, "vae": True, "dcgan": False}
    assert page.column("PSNR (dB) ↑")["vae"] == ("best", "25.00")
    assert page.column("PSNR (dB) ↑")["dcgan"] == ("missing", "–")
    # Every value equal, a column with one value, or an informational one: nothing marked
    # (a partial tie marks all the best: test_best_marks_follow_each_columns_direction).
    assert page.column("precision ↑")["ae"][0] == page.column("precision ↑")["vae"][0] == ""
    assert page.column("KID ↓")["vae"] == ("", "0.0123 ± 0.0011")
    assert all(cls != "best" for cls, _ in page.column("memorization").values())
    assert page.column("recall ↑") == {name: ("missing", "–") for name in runs}


def generation_metrics(fid: float, kid: float, recon_fid: float | None = None) -> list[dict]:
    lines = [{"metric": "fid", "value": fid}, {"metric": "kid", "value": kid, "std": 0.001}]
    return lines + ([{"metric": "recon_fid", "value": recon_fid}] if recon_fid else [])


def marked(page: Page, label: str) -> set[str]:
    return {name for name, (cls, _) in page.column(label).items() if cls == "best"}


def test_fid_from_too_few_faces_is_shown_and_best_is_marked_by_kid(runs, tmp_path):
    # As facegen eval writes them at --n 128: FID records say they do not rank.
    small = {**PROTOCOL, "n_gen": 128, "n_real": 128}
    fid_fields = {"ranks": False, "reason": "from 128 faces, fewer than 2,048"}
    for name, (fid, kid) in {"ae": (90.0, 0.05), "vae": (80.0, 0.07)}.items():
        lines = generation_metrics(fid, kid, recon_fid=fid / 2)
        lines[0].update(fid_fields)
        write_metrics(runs[name], lines, protocol=small)
    text = build_report([runs["ae"], runs["vae"]], tmp_path / "r.html").read_text("utf-8")
    page = Page(text)
    assert page.column("FID ↓") == {"ae": ("", "90.00"), "vae": ("", "80.00")}  # unmarked
    assert marked(page, "KID ↓") == {"ae"} and marked(page, "recon. FID ↓") == set()
    assert (
        '<p class="note warning" id="ranking">FID from 128 faces is not comparable (below '
        "2,048, the Inception feature dimension); best is marked by KID. recon. FID from 128 "
        "faces is not comparable either; it is not marked best.</p>"
    ) in text
    assert "KID (not FID: see under the table) ranks these runs" in text
    assert text.count("(not comparable: below 2,048 faces)") == 4  # in each run's own table


def test_fid_from_enough_faces_marks_best_as_before(runs, tmp_path):
    for name, (fid, kid) in {"ae": (90.0, 0.05), "vae": (80.0, 0.07)}.items():
        write_metrics(runs[name], generation_metrics(fid, kid, recon_fid=fid / 2), LARGE)
    text = build_report([runs["ae"], runs["vae"]], tmp_path / "r.html").read_text("utf-8")
    page = Page(text)
    assert marked(page, "FID ↓") == {"vae"} and marked(page, "KID ↓") == {"ae"}
    assert marked(page, "recon. FID ↓") == {"vae"}
    assert 'id="ranking"' not in text and "not comparable:" not in text
    assert "these numbers rank these runs against each other" in text


def test_fids_from_differing_numbers_of_faces_do_not_rank(runs, tmp_path):
    write_metrics(runs["ae"], generation_metrics(90.0, 0.05), LARGE)
    write_metrics(runs["vae"], generation_metrics(80.0, 0.07), {**LARGE, "n_gen": 2048})
    text = build_report([runs["ae"], runs["vae"]], tmp_path / "r.html").read_text("utf-8")
    assert marked(Page(text), "FID ↓") == set() and marked(Page(text), "KID ↓") == {"ae"}
    assert (
        "FID from differing numbers of faces (2,048 and 10,000 generated) is not comparable; "
        "best is marked by KID."
    ) in text


def test_metrics_from_an_older_facegen_still_render_and_rank_by_kid(runs, tmp_path):
    # What facegen 0.1.0 wrote: no ranks or reason fields; comparability comes from the n's.
    old = {"protocol": PROTOCOL, "step": 40, "created": "2024-05-01T10:00:00+00:00"}
    for name, (fid, kid) in {"ae": (90.0, 0.05), "vae": (80.0, 0.07)}.items():
        lines = [{**old, **line} for line in generation_metrics(fid, kid)]
        write_metrics(runs[name], lines + [{"metric": "psnr", "value": 20.0}], protocol={})
    write_metrics(runs["dcgan"], ['{"metric": "fid", "value": 70.0}'])  # no protocol at all
    text = build_report(list(runs.values()), tmp_path / "r.html").read_text("utf-8")
    page = Page(text)
    assert marked(page, "FID ↓") == set() and page.column("FID ↓")["dcgan"] == ("", "70.00")
    assert marked(page, "KID ↓") == {"ae"}
    assert "FID from 470 real faces is not comparable (below 2,048" in text


def test_best_marks_follow_each_columns_direction():
    rows = [
        {"fid": 10.0, "ssim": 0.5, "seconds": 30.0, "memorization": 1.0},
        {"fid": 5.0, "ssim": 0.7, "seconds": None, "memorization": 2.0},
        {"fid": None, "ssim": 0.7, "seconds": 20.0, "memorization": 3.0},
    ]
    marks = best_marks(rows, [c for c in COLUMNS if c.key in rows[0]])
    assert marks == {"fid": {1}, "ssim": {1, 2}, "seconds": {2}}
    assert best_marks([{"fid": 3.0}, {"fid": 3.0}], COLUMNS) == {}  # all equal: none best


def test_training_speed_is_the_mean_over_the_last_half_of_the_log():
    log = [
        {"step": s, "seconds": s / 10, "images_per_second": v}
        for s, v in enumerate([2, 4, 10, 20], 1)
    ]
    assert training_stats(log) == {"steps": 4, "seconds": 0.4, "images_per_second": 15}
    assert training_stats([]) == {"steps": None, "seconds": None, "images_per_second": None}


def test_damaged_metric_lines_are_skipped_with_one_warning(runs, capsys):
    write_metrics(runs["vae"], [
        {"metric": "fid", "value": 100.0}, "{not json", {"metric": "fid", "value": 90.0},
        "[1, 2]", {"value": 3.0}, {"metric": "sharpness", "value": 0.25},
    ])  # fmt: skip
    metrics = read_metrics(runs["vae"])
    assert metrics["fid"]["value"] == 90.0  # the later line wins
    assert list(metrics) == ["fid", "sharpness"]
    warning = capsys.readouterr().err.strip()
    assert len(warning.splitlines()) == 1 and "metrics.jsonl" in warning
    assert warning.endswith("skipped damaged line(s) 2, 4, 5")


def test_unknown_metrics_show_in_the_run_only(runs, tmp_path, capsys):
    write_metrics(runs["vae"], ["garbage", {"metric": "sharpness", "value": 0.25}])
    text = build_report([runs["vae"]], tmp_path / "r.html").read_text("utf-8")
    assert "sharpness" in text and "0.25" in text
    assert all("sharpness" not in text for _, text in Page(text).rows[0])
    assert capsys.readouterr().err.count("warning") == 1


def test_protocol_note_warns_when_n_is_below_published_size(runs, tmp_path):
    write_metrics(runs["ae"], [{"metric": "fid", "value": 50.0}])
    text = build_report([runs["ae"]], tmp_path / "r.html").read_text("utf-8")
    assert SHA1 in text and "n_gen = 1,000" in text and "split test" in text
    assert "not comparable to published" in text
    published = {**PROTOCOL, "n_gen": 50_000, "comparable_to_published": True}
    write_metrics(runs["ae"], [{"metric": "fid", "value": 50.0}], protocol=published)
    text = build_report([runs["ae"]], tmp_path / "r.html").read_text("utf-8")
    assert "n_gen = 50,000" in text and "not comparable to published" not in text
    write_metrics(runs["vae"], [{"metric": "fid", "value": 40.0}])
    text = build_report([runs["ae"], runs["vae"]], tmp_path / "r.html").read_text("utf-8")
    assert "not all evaluated under one protocol" in text


def test_run_names_are_escaped(runs32, tmp_path):
    run = Path(shutil.copytree(runs32["ae"].path, tmp_path / 'a<b>&"c'))
    text = build_report([run], tmp_path / "r.html").read_text("utf-8")
    assert "a&lt;b&gt;&amp;&quot;c" in text and "a<b>" not in text
    assert Page(text).rows[1][0][1] == 'a<b>&"c'


def test_pictures_prefer_the_exploration_ones(runs):
    vae = runs["vae"]
    titles = [title for title, _, _ in run_pictures(summarize_run(vae))]
    assert titles == [
        "Loss curves",
        "Samples at step 40",
        "Reconstructions at step 40 (originals above)",
    ]
    face = np.zeros((8, 8, 3), np.uint8)
    for name in ("reconstructions", "traversal", "traversal-kl", "latent-map-pca"):
        save_png(face, vae / "explore" / f"{name}.png")
    save_png(face, vae / "memorization" / "closest.png")
    memorization = {"metric": "memorization", "value": 3.0, "pixel_median": 0.2}
    write_metrics(vae, [{**memorization, "closest_pairs_png": "memorization/closest.png"}])
    pictures = run_pictures(summarize_run(vae))
    assert [(t, p.name, faces) for t, p, faces in pictures[2:]] == [
        ("Reconstructions", "reconstructions.png", True),
        ("Latent traversal", "traversal.png", True),
        ("KL per latent dimension", "traversal-kl.png", False),
        ("Latent map (PCA)", "latent-map-pca.png", False),
        ("Memorization: closest training images", "closest.png", True),
    ]
    # A picture named outside the run is not embedded.
    write_metrics(vae, [{**memorization, "closest_pairs_png": "../ae/loss.png"}])
    assert len(run_pictures(summarize_run(vae))) == len(pictures) - 1


def test_cli_writes_the_report_beside_the_runs(runs, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = main(["report", "runs/ae", "runs/dcgan", "--title", "Two runs"])
    out = capsys.readouterr().out.strip()
    assert code == 0 and out == str(Path("runs") / "report.html")
    assert "<title>Two runs</title>" in (tmp_path / out).read_text("utf-8")


def test_cli_refuses_a_folder_that_is_not_a_run(runs, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    out = tmp_path / "r.html"
    code = main(["report", str(runs["ae"]), str(tmp_path / "empty"), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "not a facegen run" in err
    assert not out.exists()
