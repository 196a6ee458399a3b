"""The `facegen` command as a user meets it: help, the data commands, and one clear line
for every input mistake."""

import json
import re
import subprocess
import sys

import pytest

from facegen import __version__
from facegen.cli import main
from facegen.config import preset_names


def run(capsys, *argv):
    """Run the CLI in-process; returns (exit code, stdout, stderr)."""
    try:
        code = main(list(argv))
    except SystemExit as stop:  # argparse's help, version and usage errors
        code = stop.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    "argv",
    [[], ["data"], ["data", "synth"], ["data", "prepare"], ["data", "info"]],
)
def test_every_command_has_help(capsys, argv):
    code, out, _ = run(capsys, *argv, "--help")
    assert code == 0 and out.startswith("usage: facegen")
    assert len(out.splitlines()) > 5


def test_train_help_lists_the_shipped_presets(capsys):
    out = "".join(run(capsys, "train", "--help")[1].split())  # argparse wraps (at hyphens too)
    listed = re.search(r"shippedpreset\(([^)]*)\)", out)
    assert listed and listed.group(1).split(",") == preset_names()


def test_eval_and_report_help_say_below_which_n_fid_does_not_rank(capsys):
    from facegen.metrics.evaluate import FID_MIN_N

    # The help loads without torch, so the number is written out there: it must not drift.
    out = " ".join(run(capsys, "eval", "--help")[1].split())
    assert f"Below {FID_MIN_N:,} faces" in out and "KID ranks them" in out
    out = " ".join(run(capsys, "report", "--help")[1].split())
    assert f"faces, {FID_MIN_N:,} or more" in out and "KID marks the best" in out


def test_version(capsys):
    assert run(capsys, "--version")[1].strip() == f"facegen {__version__}"


def test_prepare_then_info(capsys, celeba_root, tmp_path):
    out = tmp_path / "packed"
    code, stdout, _ = run(
        capsys,
        "data",
        "prepare",
        str(celeba_root),
        str(out),
        "--size",
        "32",
        "--workers",
        "1",
        "--quiet",
    )
    assert code == 0
    assert "packed 30 images at 32x32 (crop 140)" in stdout
    assert f"next: facegen data info {out}" in stdout
    code, stdout, _ = run(capsys, "data", "info", str(out))
    assert code == 0 and "train 24, valid 3, test 3" in stdout
    assert f"preview grid     {out / 'preview.png'}" in stdout and (out / "preview.png").exists()


def test_synth_then_prepare_the_built_in_faces(capsys, tmp_path):
    synth = tmp_path / "synth"
    code, stdout, _ = run(
        capsys,
        "data",
        "synth",
        str(synth),
        "--n",
        "12",
        "--identities",
        "3",
        "--workers",
        "1",
        "--quiet",
    )
    assert code == 0 and "wrote 12 faces of 3 identities in CelebA layout" in stdout
    assert len(list((synth / "img_align_celeba").glob("*.jpg"))) == 12
    code, _, err = run(capsys, "data", "synth", str(synth), "--n", "12", "--identities", "3")
    assert code == 2 and "already exists; pass --overwrite" in err
    code, stdout, _ = run(
        capsys, "data", "prepare", str(synth), str(tmp_path / "p"), "--identities", "2", "--quiet"
    )
    assert code == 0 and "(crop 140)" in stdout


def test_prepare_reports_skipped_files(capsys, celeba_root, tmp_path):
    (celeba_root / "img_align_celeba" / "000002.jpg").write_bytes(b"nope")
    code, stdout, _ = run(
        capsys,
        "data",
        "prepare",
        str(celeba_root),
        str(tmp_path / "p"),
        "--workers",
        "1",
        "--quiet",
    )
    assert code == 0 and "skipped 1 unreadable file (first: 000002.jpg: not an image" in stdout


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["data", "prepare", "{tmp}/missing", "{tmp}/out"], "does not exist"),
        (["data", "prepare", "{src}", "{src}"], "already exists; pass --overwrite"),
        (["data", "prepare", "{src}", "{tmp}/out", "--size", "48"], "invalid choice: 48"),
        (["data", "prepare", "{src}", "{tmp}/out", "--identities", "0"], "must be at least 1"),
        (["data", "prepare", "{src}", "{tmp}/out", "--identities", "9"], "more identities"),
        (["data", "prepare", "{src}", "{tmp}/out", "--limit", "ten"], "expected a whole number"),
        (["data", "prepare", "{src}", "{tmp}/out", "--crop", "big"], "crop must be 'full'"),
        (["data", "info", "{src}"], "is not a packed data set (no manifest.json)"),
        (["data", "info", "{tmp}/missing"], "does not exist"),
        (["data", "synth", "{tmp}/s", "--n", "-5"], "must be at least 1"),
        (["data", "unknown"], "invalid choice: 'unknown'"),
    ],
)
def test_input_mistakes_are_one_line_and_exit_2(capsys, celeba_root, tmp_path, argv, message):
    argv = [a.format(tmp=tmp_path, src=celeba_root) for a in argv]
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_a_real_process_gets_no_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "facegen", "data", "prepare", str(tmp_path), str(tmp_path / "o")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"facegen: error: {tmp_path} contains no images "
        "(looked for .jpg .jpeg .png .webp .bmp, recursively)"
    )


@pytest.fixture(scope="module")
def tiny_packed(tmp_path_factory):
    from tests.conftest import write_packed

    return write_packed(tmp_path_factory.mktemp("cli") / "packed", n=40, size=32)


def test_train_dry_run_prints_the_resolved_config(capsys, tiny_packed, tmp_path):
    code, stdout, _ = run(
        capsys,
        "train",
        "--model",
        "dcgan",
        "--data",
        str(tiny_packed.path),
        "--out",
        str(tmp_path / "r"),
        "--steps",
        "7",
        "--set",
        "model.g_width=8",
        "--set",
        "d_steps=2",
        "--dry-run",
    )
    assert code == 0 and "nothing was written" in stdout
    resolved = json.loads(stdout[: stdout.rindex("}") + 1])
    assert resolved["train"]["model"] == "dcgan" and resolved["train"]["steps"] == 7
    assert resolved["train"]["d_steps"] == 2 and resolved["model_config"]["g_width"] == 8
    assert resolved["train"]["description"].startswith("Classic DCGAN at 32px")  # dcgan-32
    assert not (tmp_path / "r").exists()


def test_train_then_resume_from_the_command_line(capsys, tiny_packed, tmp_path):
    out = str(tmp_path / "r")
    common = ["--data", str(tiny_packed.path), "--out", out, "--quiet"]
    tiny = ["--set", "model.width=8", "--set", "model.latent_dim=8", "--batch-size", "8"]
    code, stdout, _ = run(capsys, "train", "--model", "ae", *common, "--steps", "3", *tiny)
    assert code == 0 and "trained ae for 3 steps" in stdout
    code, stdout, _ = run(capsys, "train", "--resume", *common, "--steps", "5")
    assert code == 0 and "trained ae for 5 steps" in stdout
    # The command that started the run, given again with --resume and a new length; flags
    # equal to the saved run's (the seed, the preset's lr) are fine too.
    start = ["train", "--model", "ae", *common, *tiny, "--seed", "0", "--lr", "0.001"]
    code, stdout, err = run(capsys, *start, "--steps", "7", "--resume")
    assert code == 0 and "trained ae for 7 steps" in stdout, err


def test_resume_refuses_only_a_flag_that_differs_from_the_saved_run(capsys, tiny_packed, tmp_path):
    out = tmp_path / "r"
    start = ["train", "--config", "ae-32", "--data", str(tiny_packed.path), "--out", str(out)]
    start += ["--set", "model.width=8", "--set", "model.latent_dim=8", "--batch-size", "8"]
    assert run(capsys, *start, "--steps", "2", "--quiet")[0] == 0
    saved = (out / "config.json").read_text()
    dry = run(capsys, *start, "--steps", "4", "--resume", "--dry-run")
    assert dry[0] == 0, dry[2]
    assert json.loads(dry[1][: dry[1].rindex("}") + 1])["train"]["steps"] == 4
    for flags, line in [
        (["--batch-size", "4"], "batch_size is 8 in the saved run, not 4; drop the flag"),
        (["--set", "model.width=16"], "model.width is 8 in the saved run, not 16; drop the flag"),
        (["--model", "vae"], "model is 'ae' in the saved run, not 'vae'; drop the flag"),
        (["--set", "lr=0.5"], "lr is 0.001 in the saved run, not 0.5; drop the flag"),
    ]:
        code, stdout, err = run(capsys, *start, *flags, "--steps", "4", "--resume")
        assert code == 2 and stdout == "", err
        assert err == f"facegen: error: --resume: {line} or start a new run\n"
    # A preset's fields count as given: another preset is refused, naming it.
    code, _, err = run(capsys, *start[:2], "ae-64", *start[3:], "--resume", "--steps", "4")
    assert code == 2 and "(from --config ae-64); drop --config ae-64 or start a new run" in err
    assert (out / "config.json").read_text() == saved  # nothing was touched


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--model", "gan"], "unknown model 'gan'"),
        (["--config", "nope-64"], "unknown preset 'nope-64'; choose one of: ae-128"),
        (["--config", "dcgan-32", "--model", "vae"], "contradicts the preset's model 'dcgan'"),
        (["--resume", "--config", "vae-32"], "cannot resume: "),
        (["--set", "nonsense"], "--set takes key=value"),
        (
            ["--set", "kl_weigth=2"],
            "unknown TrainConfig field: kl_weigth (did you mean kl_weight?)",
        ),
        (["--set", "model.depth=3"], "unknown VAEConfig field: depth"),
        (["--model", "ae", "--batch-size", "0"], "must be at least 1"),
        (["--model", "ae", "--precision", "fp16", "--device", "cpu"], "fp16 training needs a GPU"),
        (["--model", "ae", "--device", "cuda"], "no CUDA GPU is available"),
        # Types are checked before anything is built or trained.
        (["--set", "batch_size=abc"], "batch_size must be an int, not 'abc'"),
        (["--set", "model.latent_dim=12.5"], "latent_dim must be an int, not 12.5"),
        (["--set", "flip=yes"], "flip must be true or false, not 'yes'"),
        # A field the model's training never reads is refused, naming the models that do.
        (
            ["--set", "gan_loss=hinge", "--set", "d_steps=5"],
            "gan_loss is used only by dcgan and sngan, not by vae",
        ),
        (["--model", "dcgan", "--set", "kl_weight=0.5"], "kl_weight is used only by vae"),
    ],
)
def test_train_input_mistakes(capsys, tiny_packed, tmp_path, argv, message):
    code, _, err = run(
        capsys,
        "train",
        "--data",
        str(tiny_packed.path),
        "--out",
        str(tmp_path / "r"),
        "--steps",
        "1",
        *argv,
    )
    assert code == 2, err
    assert message in err and len(err.strip().splitlines()) == 1


def test_prepare_detect_faces_reports_photos_without_a_face(capsys, tmp_path):
    pytest.importorskip("cv2")
    from tests.data.test_align import write_photos

    write_photos(tmp_path / "photos", faces=2, walls=2)
    (tmp_path / "photos" / "broken.jpg").write_bytes(b"nope")
    argv = ["data", "prepare", str(tmp_path / "photos"), str(tmp_path / "p"), "--detect-faces"]
    code, stdout, _ = run(capsys, *argv, "--size", "32", "--workers", "1", "--quiet")
    assert code == 0
    assert "packed 2 images at 32x32 (crop 140)" in stdout
    manifest = tmp_path / "p" / "manifest.json"
    assert (
        f"skipped 2 photos with no face found (first: wall_0.jpg); all are named in {manifest}"
        in stdout
    )
    assert "skipped 1 unreadable file (first: broken.jpg: not an image" in stdout


def test_detect_faces_without_opencv_is_one_line_and_exit_2(
    capsys, celeba_root, tmp_path, monkeypatch
):
    monkeypatch.setitem(sys.modules, "cv2", None)  # `import cv2` now raises ImportError
    argv = ["data", "prepare", str(celeba_root), str(tmp_path / "out"), "--detect-faces"]
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert err == "facegen: error: --detect-faces needs OpenCV: pip install 'facegen[detect]'\n"
    assert not (tmp_path / "out").exists()
