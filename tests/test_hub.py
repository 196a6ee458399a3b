"""Sharing on the Hugging Face Hub: the saved folder opens as a run and matches it, the
card says what the model is and under which terms, the training command resolves back
to the run's config, and the Hub calls get the right arguments.

Nothing here reaches the Hub: ``snapshot_download`` and ``HfApi``'s ``create_repo``,
``create_branch`` and ``upload_folder`` are replaced, and what they receive is checked.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from facegen import hub
from facegen.cli import main
from facegen.config import TrainConfig
from facegen.data.loader import to_uint8
from facegen.data.prepare import PrepareConfig, prepare
from facegen.errors import FacegenError
from facegen.run import load_run
from facegen.viz.grid import image_grid, upscale
from tests.conftest import celeba_image, tiny_config

huggingface_hub = pytest.importorskip("huggingface_hub")

REPO = "alice/facegen-ae-tiny"


@pytest.fixture
def copy_run(runs32, tmp_path):
    """A private copy of a shared tiny run, for tests that change files in it."""

    def make(name: str) -> Path:
        return Path(shutil.copytree(runs32[name].path, tmp_path / f"run-{name}"))

    return make


def card_metadata(folder: Path) -> dict:
    """The card's front matter as the Hub's own library reads it."""
    return huggingface_hub.ModelCard.load(folder / hub.CARD_FILE).data.to_dict()


def card_text(folder: Path) -> str:
    """The card's body with its lines joined, for phrase checks across wrapped text."""
    return " ".join((folder / hub.CARD_FILE).read_text(encoding="utf-8").split())


def set_data_path(run: Path, data: Path | str) -> None:
    """Point a copied run's config at another data set (what its card reads)."""
    config = json.loads((run / "config.json").read_text())
    config["data"]["path"] = str(data)
    (run / "config.json").write_text(json.dumps(config))


def metric_record(metric: str, value: float, n_gen: int, n_real: int, step: int, **extra):
    """One line as `facegen eval` writes it (facegen.metrics.evaluate)."""
    protocol = {
        "n_real": n_real,
        "n_gen": n_gen,
        "split": "test",
        "size": 32,
        "crop": "140",
        "data": "/somewhere/packed",
        "feature_network_sha1": "a16e4d89c0ecbc17a915dd76ea9e41211aa82562",
        "sampler": "gmm",
        "truncation": None,
        "seed": 0,
        "facegen_version": "0.1.0",
        "comparable_to_published": n_gen >= 50_000,
    }
    return {"metric": metric, "value": value, **extra, "protocol": protocol, "step": step}


def write_metrics(run: Path, records: list[dict]) -> None:
    lines = "".join(json.dumps(record) + "\n" for record in records)
    (run / "metrics.jsonl").write_text(lines)


def last_step(run: Path) -> int:
    lines = (run / "log.jsonl").read_text().splitlines()
    return json.loads(lines[-1])["step"]


# --- save_pretrained and load_run ---------------------------------------------------------


def test_saved_folder_opens_as_the_same_model_without_training_state(runs32, tmp_path):
    run = runs32["ae"]
    out = run.save_pretrained(tmp_path / "shared", repo_id=REPO)
    files = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert files == {
        "README.md",
        "samples.png",
        "config.json",
        "log.jsonl",
        "loss.png",
        "model/config.json",
        "model/model.safetensors",
        "model/sampler-gmm.safetensors",
    }
    assert (run.path / "checkpoints").is_dir()  # the run had training state; it stayed behind

    shared = load_run(out)
    assert shared.name == "ae"
    # The config as trained, but the machine's folders are not shared: only their names.
    assert shared.config == hub.shareable_config(run.config)
    assert shared.config["train"] == {
        **run.config["train"],
        "data": Path(run.config["train"]["data"]).name,
    }
    assert shared.config["data"]["path"] == Path(run.config["data"]["path"]).name
    assert str(run.path.parent.parent) not in (out / "config.json").read_text()
    assert shared.sampler_names == run.sampler_names and shared.default_sampler == "gmm"
    assert torch.equal(shared.sample(5, seed=3), run.sample(5, seed=3))
    prior = {"seed": 3, "sampler": "normal"}
    assert torch.equal(shared.sample(5, **prior), run.sample(5, **prior))

    # The card's grid is run.sample(16, seed=0), enlarged by whole pixels.
    expected = image_grid(upscale(to_uint8(run.sample(16, seed=0)), hub.GRID_MIN_SIDE))
    assert np.array_equal(np.asarray(Image.open(out / "samples.png")), expected)


def test_save_pretrained_of_a_saved_folder_is_the_same_model(runs32, tmp_path):
    first = runs32["dcgan"].save_pretrained(tmp_path / "one")
    second = load_run(first).save_pretrained(tmp_path / "two", dataset="synthetic")
    assert torch.equal(load_run(second).sample(4, seed=1), runs32["dcgan"].sample(4, seed=1))
    # The copy names its data set but not where it was: what it was is said by dataset=.
    assert card_metadata(second)["license"] == "mit"


def test_save_pretrained_refuses_to_overwrite_or_to_replace_the_run(runs32, tmp_path):
    run = runs32["vae"]
    out = tmp_path / "shared"
    out.mkdir()
    (out / "old.txt").write_text("keep me")
    with pytest.raises(FacegenError, match="already exists; pass --overwrite"):
        run.save_pretrained(out)
    assert (out / "old.txt").read_text() == "keep me"
    run.save_pretrained(out, overwrite=True)
    assert not (out / "old.txt").exists() and (out / "README.md").is_file()
    with pytest.raises(FacegenError, match="holds the run itself"):
        run.save_pretrained(run.path, overwrite=True)
    with pytest.raises(FacegenError, match="holds the run itself"):
        run.save_pretrained(run.path.parent, overwrite=True)
    with pytest.raises(FacegenError, match="not a Hub repository id"):
        run.save_pretrained(tmp_path / "other", repo_id="no-owner")
    assert not (tmp_path / "other").exists()


# --- the card ------------------------------------------------------------------------------


def test_card_front_matter_is_what_the_hub_reads(celeba_runs, runs32, tmp_path):
    out = celeba_runs["ae"].save_pretrained(tmp_path / "shared", repo_id=REPO)
    assert card_metadata(out) == {
        "library_name": "facegen",
        "license": "other",
        "license_name": hub.CELEBA_LICENSE_NAME,
        "license_link": hub.CELEBA_TERMS_URL,
        "datasets": ["celeba"],
        "pipeline_tag": "unconditional-image-generation",
        "tags": ["facegen", "faces", "autoencoder", "pytorch"],
    }
    # facegen's synthetic faces (CelebA's layout, drawn faces) say so in their manifest.
    synthetic = runs32["ae"].save_pretrained(tmp_path / "synthetic", repo_id=REPO)
    assert card_metadata(synthetic)["license"] == "mit"
    assert "datasets" not in card_metadata(synthetic)


def test_card_says_what_the_model_is_and_how_to_use_it(celeba_runs, tmp_path):
    run = celeba_runs["ae"]
    out = run.save_pretrained(tmp_path / "shared", repo_id=REPO)
    text = card_text(out)
    config = run.config
    assert "# Autoencoder for 32x32 faces, trained on CelebA" in text
    assert f"| parameters | {config['model_parameters']:,} |" in text
    assert "| image size | 32x32 RGB" in text
    assert f"| training images | {config['data']['train_images']:,} " in text
    assert f"| steps | {last_step(run.path)} |" in text
    assert f"| device | {config['device']} |" in text
    assert f"| precision | {config['precision']} |" in text
    assert "| samplers | `gmm` (default), `normal` |" in text
    assert "![16 faces drawn by this model](samples.png)" in text
    assert "pip install 'facegen[hub]'" in text
    assert f'run = facegen.load_run("hf://{REPO}")' in text
    assert "faces = run.sample(16, seed=0)" in text
    assert f"facegen sample hf://{REPO} --n 64 --seed 0 --out faces.png" in text
    # CelebA's terms, and why the weights' license is not facegen's MIT.
    assert "**non-commercial research purposes only**" in text
    assert f"<{hub.CELEBA_TERMS_URL}>" in text
    assert "that license does not extend to these weights" in text
    # No local paths of whoever trained it.
    assert str(run.path) not in text and config["data"]["path"] not in text
    # Without a repository id the examples say where one goes.
    plain = card_text(run.save_pretrained(tmp_path / "plain"))
    assert 'facegen.load_run("hf://OWNER/NAME")' in plain and "`facegen push`" in plain


def test_card_of_an_unevaluated_run_says_how_to_evaluate_it(runs32, tmp_path):
    text = card_text(runs32["dcgan"].save_pretrained(tmp_path / "shared"))
    assert "This model has not been evaluated." in text and "facegen eval RUN" in text


def test_metrics_from_few_faces_say_fid_is_not_comparable_and_kid_ranks(copy_run, tmp_path):
    run = copy_run("ae")
    step = last_step(run)
    write_metrics(
        run,
        [
            metric_record("fid", 212.5, 128, 128, step, ranks=False, reason="few"),
            metric_record("kid", 0.1234, 128, 128, step, std=0.01, ranks=True, reason="kid"),
            metric_record("precision", 0.25, 128, 128, step, k=3),
        ],
    )
    text = card_text(load_run(run).save_pretrained(tmp_path / "shared"))
    assert "| metric | value | n generated | n real | split | sampler |" in text
    assert "| FID | 212.50 (not comparable) | 128 | 128 | test | `gmm` |" in text
    assert "| KID | 0.1234 ± 0.0100 (ranks in FID's place) | 128 | 128 | test | `gmm` |" in text
    assert "| precision | 0.250 | 128 | 128 | test | `gmm` |" in text
    assert "**FID here is not comparable with other models' FIDs.**" in text
    assert "It comes from 128 faces, fewer than 2,048" in text
    assert "Below 2,048 generated faces facegen ranks models by KID" in text
    assert "KID is this model's ranking figure" in text
    assert "test split of the data set it was trained on" not in text  # another data path
    assert "Published FIDs use 50,000 generated faces" in text
    assert "`default_1.pt`, sha1 `a16e4d89c0ec`" in text


def test_metrics_from_enough_faces_rank_and_old_steps_are_left_out(copy_run, tmp_path):
    run = copy_run("vae")
    step = last_step(run)
    config = json.loads((run / "config.json").read_text())
    records = [  # evaluated at an earlier step, trained on, evaluated again
        metric_record("fid", 99.0, 10_000, 2_048, step - 10, ranks=True),
        metric_record("recon_mse", 0.015, 2_048, 2_048, step - 10),
        metric_record("fid", 40.0, 10_000, 2_048, step, ranks=True),
        metric_record("kid", 0.02, 10_000, 2_048, step, std=0.001, ranks=True),
    ]
    for record in records:
        record["protocol"]["data"] = config["data"]["path"]
    write_metrics(run, records)
    text = card_text(load_run(run).save_pretrained(tmp_path / "shared"))
    assert "| FID | 40.00 | 10,000 | 2,048 | test | `gmm` |" in text
    assert "99.00" not in text and "recon. MSE" not in text
    assert f"Results from step {step - 10} are left out" in text
    assert "not comparable with other models' FIDs" not in text
    assert "FID from at least 2,048 faces a side ranks models evaluated the same way" in text
    assert "test split of the data set it was trained on" in text


@pytest.mark.slow
def test_card_shows_what_facegen_eval_wrote(copy_run, faces32, tmp_path):
    from facegen.metrics.evaluate import EvalConfig, evaluate

    run = load_run(copy_run("ae"))
    config = EvalConfig(n=8, metrics=("fid", "kid", "recon", "memorization"))
    records, _ = evaluate(run, faces32, config, progress=False)
    text = card_text(run.save_pretrained(tmp_path / "shared"))
    values = {r["metric"]: r for r in records}
    assert f"| FID | {values['fid']['value']:.2f} (not comparable) | 8 | 8 | test | `gmm` |" in text
    assert f"| recon. FID | {values['recon_fid']['value']:.2f} (not comparable) | 8 | 8 |" in text
    assert "| SSIM |" in text and "| memorization |" in text and "(unseen test faces:" in text
    assert "It comes from 8 faces, fewer than 2,048" in text
    assert "KID is this model's ranking figure" in text
    shared = (tmp_path / "shared" / "metrics.jsonl").read_text()
    assert shared == (run.path / "metrics.jsonl").read_text()


# --- what the data was, and the license ----------------------------------------------------


def test_synthetic_data_gets_mit_and_no_celeba_terms(runs32, tmp_path):
    out = runs32["vae"].save_pretrained(tmp_path / "shared", dataset="synthetic")
    metadata = card_metadata(out)
    assert metadata["license"] == "mit" and "datasets" not in metadata
    assert "license_link" not in metadata
    text = card_text(out)
    assert "non-commercial" not in text and "facegen data synth" in text


def test_a_data_set_that_is_not_celeba_defaults_to_mit(copy_run, packed_factory, tmp_path):
    run = copy_run("dcgan")
    set_data_path(run, packed_factory(size=32).path)  # a packed set of another kind
    out = load_run(run).save_pretrained(tmp_path / "shared")
    assert card_metadata(out)["license"] == "mit" and "datasets" not in card_metadata(out)
    assert "a folder of face photos" in card_text(out)


@pytest.mark.parametrize(("names", "dataset"), [("celeba", "celeba"), ("own", "other")])
def test_a_plain_folder_of_celeba_files_reads_as_celeba(copy_run, tmp_path, names, dataset):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(10):
        name = f"{i + 1:06d}.jpg" if names == "celeba" else f"holiday-{i}.jpg"
        celeba_image(i).save(photos / name)
    data = prepare(photos, tmp_path / "packed", PrepareConfig(size=32, workers=1), progress=False)
    assert data.manifest["source"]["kind"] == "folder"
    run = copy_run("dcgan")
    set_data_path(run, data.path)
    assert hub.data_origin(load_run(run)).dataset == dataset


def test_licenses_given_and_refused(copy_run, celeba_runs, tmp_path):
    run = celeba_runs["dcgan"]
    out = run.save_pretrained(tmp_path / "nc", license="cc-by-nc-4.0")
    assert card_metadata(out)["license"] == "cc-by-nc-4.0"
    assert "CelebA's terms apply to these weights in any case" in card_text(out)
    with pytest.raises(FacegenError, match="not a Hub license id"):
        run.save_pretrained(tmp_path / "bad", license="MIT License")
    with pytest.raises(FacegenError, match="--license other needs a license name"):
        run.save_pretrained(tmp_path / "bad", license="other", dataset="other")
    with pytest.raises(FacegenError, match="unknown dataset 'imagenet'; choose celeba"):
        run.save_pretrained(tmp_path / "bad", dataset="imagenet")
    # The data set is gone: the license cannot be inferred, so it must be said.
    moved = copy_run("dcgan")
    set_data_path(moved, tmp_path / "gone")
    with pytest.raises(FacegenError, match="cannot tell what .* with --dataset celeba"):
        load_run(moved).save_pretrained(tmp_path / "bad")
    assert not (tmp_path / "bad").exists()
    out = load_run(moved).save_pretrained(tmp_path / "said", dataset="celeba")
    assert card_metadata(out)["license"] == "other"
    assert "it was named when the model was saved (celeba)" in card_text(out)


# --- the training command ---------------------------------------------------------------


def resolved_by_cli(command: str, data: Path, capsys) -> dict:
    """What `facegen train ... --dry-run` resolves ``command`` (from a card) to."""
    args = shlex.split(command)
    assert args[:2] == ["facegen", "train"]
    args = args[1:]
    args[args.index("--data") + 1] = str(data)
    assert main([*args, "--dry-run"]) == 0
    out = capsys.readouterr().out
    return json.loads(out[: out.rindex("}") + 1])


def comparable(train: dict, size: int) -> dict:
    """A train config with the data path dropped and the image size that training fills in."""
    values = {k: v for k, v in train.items() if k not in ("data", "description")}
    values["model_config"] = {"image_size": size, **train["model_config"]}
    return values


@pytest.mark.parametrize(
    "config",
    [
        pytest.param(lambda data: tiny_config("ae", data, steps=40), id="tiny-ae"),
        pytest.param(
            lambda data: TrainConfig.from_preset("ae-cpu", data=str(data), time_budget=300.0),
            id="ae-cpu-5m",
        ),
        pytest.param(
            lambda data: TrainConfig.from_preset(
                "ae-cpu", data=str(data), time_budget=90.5, steps=700, augment="color"
            ),
            id="budget-and-steps",
        ),
        pytest.param(  # --time-budget alone would drop the preset's steps: they are repeated
            lambda data: TrainConfig.from_preset("dcgan-64", data=str(data), time_budget=120.0),
            id="budget-with-the-presets-steps",
        ),
        pytest.param(
            lambda data: TrainConfig.from_preset(
                "dcgan-64", data=str(data), steps=None, epochs=2.5, samplers=("gmm", "flow")
            ),
            id="epochs-instead-of-steps",
        ),
        pytest.param(
            lambda data: TrainConfig.from_preset(
                "vae-64", data=str(data), reconstruction="bce", device="cpu", betas=(0.8, 0.99)
            ),
            id="vae-changes",
        ),
    ],
)
def test_training_command_resolves_back_to_the_runs_config(config, packed_factory, capsys):
    data = packed_factory(size=64, n=20).path
    saved = config(data).to_dict()
    command = hub._shell(hub.training_command(saved, 64, "data/faces", "runs/x"))
    assert command.startswith("facegen train --config ") or " --model " in command
    resolved = resolved_by_cli(command, data, capsys)
    assert comparable(resolved["train"], 64) == comparable(saved, 64)


def test_training_command_of_a_tiny_run_in_its_card(celeba_runs, faces32, tmp_path, capsys):
    run = celeba_runs["vae"]
    text = (run.save_pretrained(tmp_path / "shared") / hub.CARD_FILE).read_text()
    block = text.split("## Training", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    prepare_line, train_line = block.strip().splitlines()
    data = f"data/{Path(run.config['data']['path']).name}"
    assert prepare_line == f"facegen data prepare path/to/celeba {data} --size 32 --crop 140"
    resolved = resolved_by_cli(train_line, faces32.path, capsys)
    assert comparable(resolved["train"], 32) == comparable(run.config["train"], 32)
    assert resolved["model_config"] == run.config["model_config"]


# --- hf:// addresses and the download ------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("hf://alice/faces", ("alice/faces", None)),
        ("hf://alice/faces@v1.0", ("alice/faces", "v1.0")),
        ("hf://Org_1/my.model-2@refs/pr/3", ("Org_1/my.model-2", "refs/pr/3")),
        (str(Path("hf://alice/faces")), ("alice/faces", None)),  # what Path makes of it
    ],
)
def test_hub_addresses(address, expected):
    assert hub.parse_hub_address(address) == expected


@pytest.mark.parametrize(
    "address",
    ["hf://alice", "hf://alice/faces/extra", "hf://alice/fa ces", "hf://-alice/faces",
     "hf://alice/faces@", "hf://alice/fa--ces", "hf://alice/faces.git", "hf://"],
)  # fmt: skip
def test_bad_hub_addresses_are_one_line(address):
    with pytest.raises(FacegenError) as error:
        load_run(address)
    assert "\n" not in str(error.value) and "hf://owner/name" in str(error.value)


def test_load_run_downloads_through_snapshot_download(runs32, tmp_path, monkeypatch):
    shared = runs32["ae"].save_pretrained(tmp_path / "shared")
    calls = []

    def snapshot_download(repo_id, **kwargs):
        calls.append((repo_id, kwargs))
        return str(shared)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    run = load_run("hf://alice/faces@v2")
    assert run.path == shared
    assert torch.equal(run.sample(3, seed=2), runs32["ae"].sample(3, seed=2))
    repo_id, kwargs = calls[0]
    assert repo_id == "alice/faces" and kwargs["revision"] == "v2"
    assert kwargs["repo_type"] == "model" and kwargs["library_name"] == "facegen"
    # No cache_dir, local_dir or local_files_only: the HF cache and HF_HUB_OFFLINE decide.
    assert not {"cache_dir", "local_dir", "local_files_only"} & kwargs.keys()
    import facegen

    facegen.load_run("hf://alice/faces")
    assert calls[1][0] == "alice/faces" and calls[1][1]["revision"] is None


def hub_error(name: str, message: str) -> Exception:
    """One of huggingface_hub's errors without an HTTP response (their constructors differ
    between versions; ``except`` only looks at the class)."""
    cls = getattr(huggingface_hub.utils, name)
    error = cls.__new__(cls)
    error.args = (message,)
    return error


@pytest.mark.parametrize(
    ("error", "message"),
    [
        ("RepositoryNotFoundError", "no such model on the Hub, or it is private"),
        ("GatedRepoError", "is gated: accept its conditions"),
        ("RevisionNotFoundError", "the repository has no revision"),
        ("LocalEntryNotFoundError", "not in the local Hugging Face cache"),
        ("HfHubHTTPError", "could not download hf://alice/faces@v9: 500 Server Error"),
    ],
)
def test_download_errors_are_one_line(monkeypatch, error, message):
    def snapshot_download(repo_id, **kwargs):
        raise hub_error(error, "500 Server Error\n\nRequest id: 123")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    with pytest.raises(FacegenError, match=message) as caught:
        load_run("hf://alice/faces@v9")
    assert "\n" not in str(caught.value)


def test_a_repository_that_is_not_a_facegen_model(monkeypatch, tmp_path):
    (tmp_path / "config.json").write_text("{}")  # a transformers model, say: no model/
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda repo_id, **_: str(tmp_path))
    with pytest.raises(FacegenError, match="is not a facegen model"):
        load_run("hf://alice/bert")


def test_without_huggingface_hub_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import fails as if absent
    with pytest.raises(FacegenError, match=r"pip install 'facegen\[hub\]'"):
        load_run("hf://alice/faces")


@pytest.mark.slow
def test_offline_without_a_cached_copy_is_one_line(tmp_path):
    """The real library, HF_HUB_OFFLINE=1 and an empty cache: no network is touched."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    env.pop("HF_HUB_CACHE", None)
    done = subprocess.run(
        [sys.executable, "-m", "facegen", "sample", "hf://alice/not-cached", "--out", "x.png"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr.count("\n") == 1 and "not in the local Hugging Face cache" in done.stderr
    assert not (tmp_path / "x.png").exists()


# --- push ---------------------------------------------------------------------------------


class HubCalls:
    """Stands in for HfApi's network methods, recording what they were given and the
    folder as it was at upload time."""

    def __init__(self, monkeypatch, fail: Exception | None = None) -> None:
        self.calls: list[tuple[str, dict]] = []
        self.uploaded: dict[str, bytes] = {}
        self.tokens: list[str | None] = []
        self.fail = fail
        calls = self

        def create_repo(api, repo_id, **kwargs):
            calls.tokens.append(api.token)
            calls.calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))
            return f"https://huggingface.co/{repo_id}"

        def create_branch(api, repo_id, **kwargs):
            calls.calls.append(("create_branch", {"repo_id": repo_id, **kwargs}))

        def upload_folder(api, **kwargs):
            calls.calls.append(("upload_folder", kwargs))
            if calls.fail is not None:
                raise calls.fail
            folder = Path(kwargs["folder_path"])
            calls.uploaded = {
                p.relative_to(folder).as_posix(): p.read_bytes()
                for p in folder.rglob("*")
                if p.is_file()
            }
            # What matters of the CommitInfo it returns.
            url = f"https://huggingface.co/{kwargs['repo_id']}/commit/abc123"
            return SimpleNamespace(commit_url=url, oid="abc123")

        for name, function in [
            ("create_repo", create_repo),
            ("create_branch", create_branch),
            ("upload_folder", upload_folder),
        ]:
            monkeypatch.setattr(huggingface_hub.HfApi, name, function)

    def named(self, name: str) -> list[dict]:
        return [kwargs for call, kwargs in self.calls if call == name]


def test_push_creates_the_repo_and_uploads_the_saved_folder(celeba_runs, monkeypatch):
    calls = HubCalls(monkeypatch)
    result = hub.push(celeba_runs["ae"].path, REPO, private=True, token="hf_secret")
    assert calls.named("create_repo") == [
        {"repo_id": REPO, "private": True, "exist_ok": True, "repo_type": "model"}
    ]
    assert calls.tokens == ["hf_secret"] and not calls.named("create_branch")
    (upload,) = calls.named("upload_folder")
    assert upload["repo_id"] == REPO and upload["repo_type"] == "model"
    assert upload["revision"] is None and upload["delete_patterns"] == "*"
    assert upload["commit_message"] == "Upload facegen ae (celeba data)"
    assert set(calls.uploaded) == {name for name, _ in result.saved.files}
    assert "model/model.safetensors" in calls.uploaded
    assert not any(name.startswith(("checkpoints/", "samples/")) for name in calls.uploaded)
    card = calls.uploaded["README.md"].decode()
    assert f'facegen.load_run("hf://{REPO}")' in card and "library_name: facegen" in card
    assert not Path(upload["folder_path"]).exists()  # the temporary folder is gone
    assert result.url == f"https://huggingface.co/{REPO}"
    assert result.commit_url.endswith("/commit/abc123")


def test_push_to_a_branch_keeps_the_folder_where_asked(runs32, monkeypatch, tmp_path):
    calls = HubCalls(monkeypatch)
    out = tmp_path / "kept"
    run = runs32["vae"]
    hub.push(run, REPO, revision="tiny", commit_message="first try", out=out, dataset="synthetic")
    assert calls.named("create_branch") == [
        {"repo_id": REPO, "branch": "tiny", "exist_ok": True, "repo_type": "model"}
    ]
    (upload,) = calls.named("upload_folder")
    assert upload["revision"] == "tiny" and upload["commit_message"] == "first try"
    assert Path(upload["folder_path"]) == out and (out / "README.md").is_file()
    assert calls.tokens == [None]  # no token given: huggingface_hub uses HF_TOKEN or the login
    assert torch.equal(load_run(out).sample(2, seed=0), run.sample(2, seed=0))


def test_push_failures_are_one_line(runs32, monkeypatch, tmp_path):
    HubCalls(monkeypatch, fail=hub_error("HfHubHTTPError", "401 Client Error: Unauthorized\nx"))
    with pytest.raises(FacegenError, match=f"could not upload to {REPO}: 401 Client Error") as e:
        hub.push(runs32["ae"], REPO)
    assert e.value.exit_code == 1 and "\n" not in str(e.value)
    with pytest.raises(FacegenError, match="not a Hub repository id"):
        hub.push(runs32["ae"], "alice/faces/extra")
    with pytest.raises(FacegenError, match="is not a facegen run"):
        hub.push(tmp_path, REPO)
    untrained = tmp_path / "untrained"
    untrained.mkdir()
    shutil.copy(runs32["ae"].path / "config.json", untrained / "config.json")
    with pytest.raises(FacegenError, match="has no trained model yet"):
        hub.push(untrained, REPO)
