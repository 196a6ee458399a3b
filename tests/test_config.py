"""Training configs built from presets in Python, as `facegen train` builds them."""

from __future__ import annotations

import json

import pytest

from facegen.cli import main
from facegen.config import TrainConfig, preset_names, read_preset, resolve_for_run, resolve_run
from facegen.errors import FacegenError
from facegen.models import build_model


def test_from_preset_keeps_the_preset_and_merges_model_fields():
    preset = read_preset("vae-64")
    config = TrainConfig.from_preset(
        "vae-64", data="data/x", steps=50, model_config={"latent_dim": 32}
    )
    assert (config.model, config.data, config.steps) == ("vae", "data/x", 50)
    assert (config.lr, config.betas) == (preset["lr"], tuple(preset["betas"]))
    assert config.kl_warmup_steps == preset["kl_warmup_steps"]  # not the dataclass default
    assert config.model_config == {**preset["model_config"], "latent_dim": 32}
    assert TrainConfig().lr != preset["lr"]  # what TrainConfig(model="vae") alone would lose


def test_from_preset_takes_a_json_file_and_can_clear_the_length(tmp_path):
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"model": "ae", "steps": 100, "model_config": {"width": 8}}))
    config = TrainConfig.from_preset(str(path), steps=None, time_budget=60.0)
    assert (config.model, config.steps, config.time_budget) == ("ae", None, 60.0)
    assert config.model_config == {"width": 8}
    # A mistake in a file names the file; a model's fields wait for the model (--model).
    path.write_text(json.dumps({"steps": "100", "gan_loss": "hinge"}))
    with pytest.raises(FacegenError, match=f"^{path}: steps must be an int or null, not '100'$"):
        read_preset(str(path))
    path.write_text(json.dumps({"steps": 100, "gan_loss": "hinge"}))
    assert TrainConfig.from_preset(str(path), model="sngan").gan_loss == "hinge"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"stpes": 5}, r"unknown TrainConfig field: stpes \(did you mean steps\?\)"),
        ({"steps": 0}, "steps must be at least 1, not 0"),
    ],
)
def test_from_preset_refuses_what_train_would(changes, message):
    with pytest.raises(FacegenError, match=message):
        TrainConfig.from_preset("dcgan-64", **changes)
    with pytest.raises(FacegenError, match="unknown preset 'vae-65'"):
        TrainConfig.from_preset("vae-65")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        # The three mistakes of issue 17: each was a traceback or silently accepted.
        ({"batch_size": "abc"}, "batch_size must be an int, not 'abc'"),
        ({"model_config": {"latent_dim": 12.5}}, "latent_dim must be an int, not 12.5"),
        ({"gan_loss": "hinge"}, "gan_loss is used only by dcgan and sngan, not by vae: leave"),
        ({"d_steps": 5}, "d_steps is used only by dcgan and sngan, not by vae"),
        ({"lr_d": 1e-3}, "lr_d is used only by aegan, dcgan and sngan, not by vae"),
        ({"adv_weight": 0.1}, "adv_weight is used only by aegan, not by vae"),
        ({"preset": "sngan-32", "kl_warmup_steps": 9}, "kl_warmup_steps is used only by vae"),
        ({"preset": "dcgan-32", "reconstruction": "bce"}, "reconstruction is used only by ae, aeg"),
        ({"reconstruction": "l1"}, "reconstruction must be one of bce, mse, not 'l1'"),
        ({"betas": [0.9]}, "betas must be a list of 2 numbers, not [0.9]"),
        ({"device": "cuda:x"}, "device must be one of auto, cpu, cuda, mps (or cuda:N)"),
    ],
)
def test_types_values_and_the_fields_a_model_uses_are_checked(changes, message):
    changes = {"preset": "vae-32", **changes}
    with pytest.raises(FacegenError) as caught:
        resolve_run(**changes)
    assert str(caught.value).startswith(message)


def test_objective_fields_at_their_default_or_on_their_own_models_are_fine():
    TrainConfig.from_preset("vae-32", gan_loss="nonsaturating", d_steps=1, adv_weight=0.5)
    config = TrainConfig.from_preset("sngan-32", d_steps=5, gan_loss="hinge", lr_d=1e-3)
    assert (config.d_steps, config.lr_d) == (5, 1e-3)
    assert TrainConfig.from_preset("aegan-32", lr_d=1e-3, fm_weight=0.0).fm_weight == 0.0


@pytest.mark.parametrize("name", preset_names())
def test_every_shipped_preset_validates_says_why_and_builds_its_model(name):
    config = TrainConfig.from_preset(name, data="data/x")
    # What a run saves (every field at its value) reads back as the same config.
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert len(config.description) > 20, "each preset says in one line why it is set so"
    assert config.steps or config.epochs or config.time_budget, "a preset says how long to train"
    model = build_model(config.model, config.model_config)
    assert model.config.image_size == config.model_config["image_size"]
    if name.endswith("-cpu"):  # the CPU family trains "for the time I have" at 64x64
        assert (config.time_budget, config.steps, model.config.image_size) == (600.0, None, 64)


def test_a_notebook_resolves_a_run_as_the_command_line_does(packed_factory, tmp_path, capsys):
    data = str(packed_factory(size=32).path)
    # No preset named: MODEL-SIZE from the data set; a time budget alone replaces its length.
    config = resolve_run(model="ae", data=data, time_budget=60.0, model_config={"width": 8})
    assert config.description == read_preset("ae-32")["description"]
    assert (config.steps, config.time_budget, config.model_config["width"]) == (None, 60.0, 8)
    argv = ["train", "--model", "ae", "--data", data, "--out", str(tmp_path / "r")]
    assert main([*argv, "--time-budget", "60", "--set", "model.width=8", "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert json.loads(printed[: printed.rindex("}") + 1])["train"] == config.to_dict()
    # Epochs replace the preset's steps; a time budget with steps keeps both (first to end).
    assert TrainConfig.from_preset("vae-32", epochs=2).steps is None
    both = TrainConfig.from_preset("ae-cpu", steps=50)
    assert (both.steps, both.time_budget) == (50, 600.0)
    with pytest.raises(FacegenError, match="give --steps or --epochs, not both"):
        TrainConfig.from_preset("vae-32", steps=5, epochs=2)


def saved_run(folder, config: TrainConfig, **train_changes):
    """A run folder holding only its config.json, as training writes it."""
    folder.mkdir()
    train = {**config.to_dict(), **train_changes}
    model_config = {"image_size": 32, **config.model_config}
    (folder / "config.json").write_text(json.dumps({"train": train, "model_config": model_config}))
    return folder


def test_resume_takes_the_saved_config_and_refuses_only_a_difference(tmp_path):
    started = TrainConfig.from_preset("vae-32", data="data/a", steps=100, batch_size=16)
    run = saved_run(tmp_path / "run", started)
    # A whole config (what train(config, out, resume=True) gets) gives its length, data and
    # tracker; the rest is the saved run's.
    changed = started.replace(steps=300, log="tensorboard", batch_size=32)
    resumed = resolve_for_run(changed, run, resume=True)
    assert resumed == started.replace(steps=300, log="tensorboard")
    # Fields given one by one: the length, data and tracker may change, the rest must match.
    again = resolve_run(out=run, resume=True, time_budget=60.0, data="data/b", batch_size=16)
    assert again == started.replace(time_budget=60.0, data="data/b")
    # ... and the device: a run moved to a GPU machine goes on there.
    assert resolve_run(out=run, resume=True, device="cuda").device == "cuda"
    with pytest.raises(FacegenError) as caught:
        resolve_run(out=run, resume=True, batch_size=32)
    assert str(caught.value) == (
        "--resume: batch_size is 16 in the saved run, not 32; drop the flag or start a new run"
    )
    with pytest.raises(FacegenError, match="model.image_size is 32 in the saved run, not 64"):
        resolve_run(out=run, resume=True, model_config={"image_size": 64})
    with pytest.raises(FacegenError, match="^--resume: kl_weight is 1.0 in the saved run, not 0.5"):
        resolve_run(out=run, resume=True, kl_weight=0.5)
    with pytest.raises(FacegenError, match="^cannot resume: .*nope does not exist$"):
        resolve_run(out=tmp_path / "nope", resume=True)


def test_an_older_run_with_a_field_its_model_never_read_still_resumes(tmp_path):
    started = TrainConfig.from_preset("ae-32", data="data/a", steps=10)
    # Older facegen saved --set d_steps=5 on an AE without a word; it changed nothing.
    run = saved_run(tmp_path / "run", started, d_steps=5, kl_weight=0.1)
    assert resolve_run(out=run, resume=True, steps=20) == started.replace(steps=20)
