"""Runs for the demo's tests: copies of the shared tiny runs, with attribute directions."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from facegen.explore.edit import DIRECTIONS_FILE, AttributeDirection, save_directions
from facegen.run import Run, load_run

# Directions the tests give each run (random unit vectors: the demo only moves along them).
DIRECTIONS = {"vae": ("Eyeglasses", "Smiling"), "dcgan": ("Black_Hair",), "ae": ()}


def unit_direction(attribute: str, latent_dim: int, seed: int) -> AttributeDirection:
    vector = torch.randn(latent_dim, generator=torch.Generator().manual_seed(seed))
    return AttributeDirection(attribute, vector / vector.norm(), 0.5, "mean-difference")


@pytest.fixture
def demo_runs(runs32, tmp_path: Path) -> dict[str, Run]:
    """ae, vae and dcgan as training left them, plus the directions in DIRECTIONS."""
    ignore = shutil.ignore_patterns("explore", "eval", "metrics.jsonl", DIRECTIONS_FILE)
    runs = {}
    for name, run in runs32.items():
        copy = load_run(shutil.copytree(run.path, tmp_path / "runs" / name, ignore=ignore))
        directions = {
            attribute: unit_direction(attribute, copy.model.latent_dim, seed)
            for seed, attribute in enumerate(DIRECTIONS[name])
        }
        if directions:
            save_directions(copy, directions)
        runs[name] = copy
    return runs


@pytest.fixture
def face_photos(faces32) -> list[Path]:
    """The 178x218 synthetic CelebA-layout JPEGs the tiny runs were trained from."""
    return sorted((Path(faces32.path).parent / "synth" / "img_align_celeba").glob("*.jpg"))
