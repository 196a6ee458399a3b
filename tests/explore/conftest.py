"""Tiny trained runs (32x32, 8 channels) that the exploration tests read but never change."""

from __future__ import annotations

import pytest

from facegen.run import Run, load_run
from facegen.training.trainer import train
from tests.conftest import tiny_config

STEPS = {"ae": 40, "vae": 40, "dcgan": 20}


@pytest.fixture(scope="session")
def runs32(faces32, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """An AE (with its GMM sampler), a VAE and a DCGAN, trained briefly on ``faces32``."""
    root = tmp_path_factory.mktemp("runs")
    runs = {}
    for name, steps in STEPS.items():
        config = tiny_config(name, faces32, steps=steps, sample_every=steps, checkpoint_every=steps)
        train(config, root / name, progress=False)
        runs[name] = load_run(root / name)
    return runs
