"""Training configs built from presets in Python, as `facegen train` builds them."""

from __future__ import annotations

import json

import pytest

from facegen.config import TrainConfig, preset_names, read_preset
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


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"stpes": 5}, "changes: unknown field stpes"),
        ({"steps": 0}, "steps must be at least 1, not 0"),
    ],
)
def test_from_preset_refuses_what_train_would(changes, message):
    with pytest.raises(FacegenError, match=message):
        TrainConfig.from_preset("dcgan-64", **changes)
    with pytest.raises(FacegenError, match="unknown preset 'vae-65'"):
        TrainConfig.from_preset("vae-65")


@pytest.mark.parametrize("name", preset_names())
def test_every_shipped_preset_validates_says_why_and_builds_its_model(name):
    config = TrainConfig.from_preset(name, data="data/x")
    assert len(config.description) > 20, "each preset says in one line why it is set so"
    assert config.steps or config.epochs or config.time_budget, "a preset says how long to train"
    model = build_model(config.model, config.model_config)
    assert model.config.image_size == config.model_config["image_size"]
    if name.endswith("-cpu"):  # the CPU family trains "for the time I have" at 64x64
        assert (config.time_budget, config.steps, model.config.image_size) == (600.0, None, 64)
