"""The exploration commands as a user runs them: files written, paths printed, the same
seed giving the same bytes, and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from facegen.cli import main


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        return image.size


def test_sample_writes_a_grid_and_one_png_per_face(runs32, tmp_path, capsys):
    run = runs32["vae"].path
    code, out, _ = _run(
        capsys, "sample", run, "--n", 6, "--out", tmp_path / "a.png",
        "--individual", tmp_path / "faces", "--quiet",
    )  # fmt: skip
    assert code == 0
    assert str(tmp_path / "a.png") in out and str(tmp_path / "faces") in out
    assert _size(tmp_path / "a.png") == (3 * 34 + 2, 2 * 34 + 2)
    assert len(list((tmp_path / "faces").glob("*.png"))) == 6
    _run(capsys, "sample", run, "--n", 6, "--out", tmp_path / "b.png", "--quiet")
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    _run(capsys, "sample", run, "--n", 6, "--seed", 1, "--out", tmp_path / "c.png", "--quiet")
    assert (tmp_path / "a.png").read_bytes() != (tmp_path / "c.png").read_bytes()
    code, _, err = _run(
        capsys, "sample", run, "--n", 2, "--individual", tmp_path / "faces", "--quiet"
    )
    assert code == 2 and "--overwrite" in err and len(err.strip().splitlines()) == 1


def test_default_outputs_go_into_the_run(runs32, capsys):
    run = runs32["ae"].path
    code, out, _ = _run(capsys, "sample", run, "--n", 4, "--quiet")
    assert code == 0 and (run / "explore" / "samples.png").is_file()
    assert "gmm sampler" in out


@pytest.mark.parametrize(
    ("command", "extra"),
    [
        ("reconstruct", ["--n", "4"]),
        ("interpolate", ["--pairs", "2", "--steps", "4"]),
        ("traverse", ["--dims", "3", "--columns", "5"]),
        ("latent-map", ["--method", "pca"]),
        ("edit", ["--attribute", "Smiling", "--n", "2"]),
    ],
)
def test_every_command_writes_the_same_png_for_the_same_seed(
    runs32, faces32, tmp_path, capsys, command, extra
):
    run = runs32["vae"].path
    data = [] if command in ("reconstruct", "interpolate", "traverse") else ["--data", faces32.path]
    pictures = []
    for name in ("first.png", "second.png"):
        code, out, err = _run(
            capsys, command, run, *data, *extra, "--out", tmp_path / name, "--quiet"
        )
        assert code == 0, err
        assert str(tmp_path / name) in out
        pictures.append((tmp_path / name).read_bytes())
    assert pictures[0] == pictures[1]
    assert min(_size(tmp_path / "first.png")) >= 64


def test_interpolate_writes_a_gif(runs32, tmp_path, capsys):
    code, out, _ = _run(
        capsys, "interpolate", runs32["dcgan"].path, "--steps", 3, "--pairs", 2,
        "--out", tmp_path / "i.png", "--gif", tmp_path / "i.gif",
    )  # fmt: skip
    assert code == 0 and str(tmp_path / "i.gif") in out
    with Image.open(tmp_path / "i.gif") as gif:
        assert gif.n_frames == 4


def test_traverse_of_a_vae_writes_the_kl_plot_beside_it(runs32, tmp_path, capsys):
    code, out, _ = _run(
        capsys, "traverse", runs32["vae"].path, "--dims", 2, "--out", tmp_path / "t.png"
    )
    assert code == 0
    assert (tmp_path / "t-kl.png").is_file() and "KL per dimension" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["reconstruct", "{dcgan}"], "Models that can: ae, aegan, vae"),
        (["latent-map", "{dcgan}", "--data", "{data}"], "Models that can: ae, aegan, vae"),
        (["edit", "{vae}", "--data", "{data}", "--attribute", "Smile"], "available: 5_o"),
        (["latent-map", "{vae}", "--data", "{data}", "--color-by", "Smile"], "available: 5_o"),
        (["edit", "{dcgan}", "--data", "{data}", "--attribute", "Smiling"], "classifier train"),
        (["sample", "{dcgan}", "--sampler", "gmm"], "no gmm sampler"),
        (["sample", "{vae}", "--sampler", "best"], "unknown sampler 'best'"),
        (["interpolate", "{vae}", "--from", "{data}/manifest.json"], "--from and --to go"),
        (["interpolate", "{vae}", "--method", "cubic"], "unknown interpolation method"),
        (["sample", "{missing}"], "does not exist"),
        (["sample", "{vae}", "--truncation", "0"], "must be positive"),
        (["traverse", "{vae}", "--columns", "1"], "at least 2"),
    ],
)
def test_mistakes_are_one_line_errors(runs32, faces32, tmp_path, capsys, argv, message):
    names = {
        "dcgan": runs32["dcgan"].path,
        "vae": runs32["vae"].path,
        "data": faces32.path,
        "missing": tmp_path / "nothing",
    }
    try:
        code = main([part.format(**names) for part in argv])
    except SystemExit as exit:  # argparse's own refusals
        code = exit.code
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err
