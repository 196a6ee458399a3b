"""Tiny runs for training tests: synthetic faces at 32x32 and models 8 channels wide."""

from __future__ import annotations

from pathlib import Path

import pytest

from facegen.config import TrainConfig
from facegen.data.packed import PackedDataset
from facegen.data.prepare import PrepareConfig, prepare
from facegen.data.synth import SynthConfig, synthesize

TINY_MODELS = {
    "ae": {"latent_dim": 16, "width": 8},
    "vae": {"latent_dim": 16, "width": 8},
    "dcgan": {"latent_dim": 16, "g_width": 8, "d_width": 8},
    "sngan": {"latent_dim": 16, "g_width": 8, "d_width": 8},
}
TINY_TRAINING = {
    "ae": {"lr": 2e-3, "betas": (0.9, 0.999)},
    "vae": {"lr": 2e-3, "betas": (0.9, 0.999), "kl_warmup_steps": 5},
    "dcgan": {"lr": 2e-4, "betas": (0.5, 0.999)},
    "sngan": {
        "lr": 2e-4,
        "lr_d": 4e-4,
        "betas": (0.0, 0.9),
        "gan_loss": "hinge",
        "ema_decay": 0.99,
    },
}


@pytest.fixture(scope="session")
def faces32(tmp_path_factory: pytest.TempPathFactory) -> PackedDataset:
    """96 synthetic faces of 12 people, packed at 32x32."""
    root = tmp_path_factory.mktemp("faces")
    synthesize(root / "synth", SynthConfig(n=96, identities=12, seed=3), workers=1, progress=False)
    return prepare(
        root / "synth", root / "packed", PrepareConfig(size=32, workers=1), progress=False
    )


def tiny_config(name: str, data: PackedDataset | Path, **changes) -> TrainConfig:
    values = {
        "model": name,
        "model_config": dict(TINY_MODELS[name]),
        "data": str(getattr(data, "path", data)),
        "steps": 6,
        "batch_size": 8,
        "log_every": 2,
        "sample_every": 3,
        "checkpoint_every": 3,
        "keep_checkpoints": 2,
        "sample_count": 16,
        "sampler_components": 3,
        "sampler_images": 64,
        **TINY_TRAINING[name],
    }
    values.update(changes)
    return TrainConfig(**values)
