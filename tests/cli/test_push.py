"""`facegen push` as a user meets it: the dry run's folder, the upload (HfApi's network
methods replaced: nothing reaches the Hub), and one line for every mistake."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image

from facegen.cli import main
from facegen.run import load_run

huggingface_hub = pytest.importorskip("huggingface_hub")


def run_cli(capsys, *argv):
    """(exit code, stdout, stderr) of the CLI run in-process."""
    try:
        code = main([str(arg) for arg in argv])
    except SystemExit as stop:  # argparse's usage errors
        code = stop.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_dry_run_writes_the_folder_and_uploads_nothing(celeba_runs, tmp_path, capsys, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("a dry run must not call the Hub")

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", no_network)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", no_network)
    out = tmp_path / "folder"
    code, stdout, err = run_cli(
        capsys, "push", celeba_runs["ae"].path, "alice/faces", "--dry-run", "--out", out
    )
    assert code == 0, err
    assert "model/model.safetensors" in stdout and "README.md" in stdout
    assert "license: other (celeba-non-commercial-research: " in stdout
    assert "nothing was uploaded" in stdout and "non-commercial research only" in stdout
    assert 'facegen.load_run("hf://alice/faces")' in (out / "README.md").read_text()
    assert load_run(out).name == "ae"

    again = ["push", celeba_runs["ae"].path, "alice/faces", "--dry-run", "--out", out]
    code, _, err = run_cli(capsys, *again)
    assert code == 2 and "already exists; pass --overwrite" in err
    code, stdout, _ = run_cli(capsys, *again, "--overwrite", "--dataset", "synthetic")
    assert code == 0 and "data: synthetic; license: mit;" in stdout


def test_push_uploads_and_prints_where(runs32, capsys, monkeypatch):
    sent = {}

    def create_repo(api, repo_id, **kwargs):
        sent["create_repo"] = (repo_id, kwargs, api.token)
        return f"https://huggingface.co/{repo_id}"

    def create_branch(api, repo_id, **kwargs):
        sent["create_branch"] = (repo_id, kwargs)

    def upload_folder(api, **kwargs):
        folder = Path(kwargs["folder_path"])
        sent["files"] = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))
        sent["upload_folder"] = kwargs
        return SimpleNamespace(commit_url="https://huggingface.co/alice/faces/commit/1a2b")

    for name, function in [
        ("create_repo", create_repo),
        ("create_branch", create_branch),
        ("upload_folder", upload_folder),
    ]:
        monkeypatch.setattr(huggingface_hub.HfApi, name, function)
    code, stdout, err = run_cli(
        capsys, "push", runs32["vae"].path, "alice/faces", "--private", "--token", "hf_x",
        "--revision", "v1", "--commit-message", "tiny VAE", "--license", "cc-by-nc-4.0",
    )  # fmt: skip
    assert code == 0, err
    assert sent["create_repo"] == (
        "alice/faces",
        {"private": True, "exist_ok": True, "repo_type": "model"},
        "hf_x",
    )
    assert sent["create_branch"] == (
        "alice/faces",
        {"branch": "v1", "exist_ok": True, "repo_type": "model"},
    )
    upload = sent["upload_folder"]
    assert upload["revision"] == "v1" and upload["commit_message"] == "tiny VAE"
    assert "model/model.safetensors" in sent["files"] and "README.md" in sent["files"]
    assert not any(name.startswith("checkpoints") for name in sent["files"])
    assert "uploaded to https://huggingface.co/alice/faces (branch v1)" in stdout
    assert "commit: https://huggingface.co/alice/faces/commit/1a2b" in stdout
    assert "license: cc-by-nc-4.0;" in stdout
    assert 'open it with: facegen.load_run("hf://alice/faces")' in stdout


def test_a_shared_model_opens_in_the_other_commands(runs32, tmp_path, capsys, monkeypatch):
    folder = runs32["dcgan"].save_pretrained(tmp_path / "shared")
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda repo_id, **_: str(folder))
    out = tmp_path / "faces.png"
    code, stdout, err = run_cli(capsys, "sample", "hf://alice/dcgan", "--n", "4", "--out", out)
    assert code == 0, err
    assert Image.open(out).size[0] > 32 and "wrote 4 faces" in stdout
    # Without --out, not into the Hugging Face cache: ./explore/OWNER--NAME/
    monkeypatch.chdir(tmp_path)
    code, stdout, err = run_cli(capsys, "sample", "hf://alice/dcgan", "--n", "4")
    assert code == 0, err
    assert (tmp_path / "explore" / "alice--dcgan").is_dir()
    assert not (folder / "explore").exists() and not (tmp_path / "hf:").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["alice/faces", "--dry-run"], "--dry-run writes the folder and uploads nothing"),
        (["alice"], "'alice' is not a Hub repository id: give owner/name"),
        (["alice/fa ces"], "is not a Hub repository id"),
        (["alice/faces", "--dataset", "imagenet"], "unknown dataset 'imagenet'"),
        (["alice/faces", "--license", "MIT"], "is not a Hub license id"),
    ],
)
def test_input_mistakes_are_one_line_and_exit_2(runs32, capsys, monkeypatch, argv, message):
    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", pytest.fail)  # never reached
    code, _, err = run_cli(capsys, "push", runs32["ae"].path, *argv)
    assert code == 2 and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_runs_that_cannot_be_shared(runs32, tmp_path, capsys):
    code, _, err = run_cli(capsys, "push", tmp_path / "nothing", "alice/faces")
    assert code == 2 and "does not exist" in err and err.count("\n") == 1
    code, _, err = run_cli(capsys, "push", tmp_path, "alice/faces")
    assert code == 2 and "is not a facegen run" in err
    untrained = tmp_path / "untrained"
    untrained.mkdir()
    shutil.copy(runs32["ae"].path / "config.json", untrained)
    code, _, err = run_cli(capsys, "push", untrained, "alice/faces")
    assert code == 2 and "has no trained model yet" in err and "--resume" in err


def test_without_huggingface_hub_push_names_the_extra(runs32, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import fails as if absent
    code, _, err = run_cli(capsys, "push", runs32["ae"].path, "alice/faces")
    assert code == 2 and "pip install 'facegen[hub]'" in err and err.count("\n") == 1
