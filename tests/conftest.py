"""Fixtures shared across the test suite."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from facegen.config import TrainConfig
from facegen.data.celeba import IMAGE_FOLDER, write_annotations
from facegen.data.packed import PackedDataset, PackedWriter, open_packed
from facegen.data.prepare import PrepareConfig, prepare
from facegen.data.synth import SynthConfig, synthesize
from facegen.run import Run, load_run
from facegen.training.trainer import train


def write_packed(
    folder: Path, n: int = 40, size: int = 32, *, seed: int = 0, partition: np.ndarray | None = None
) -> PackedDataset:
    """A small packed data set of random images whose pixel (0, 0, 0) encodes the row index
    (mod 256), so tests can tell which rows a batch holds."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    writer = PackedWriter(folder, n, size)
    images = rng.integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)
    images[:, 0, 0, 0] = np.arange(n) % 256
    writer.images[:] = images
    if partition is None:
        partition = np.array([0, 0, 0, 0, 0, 0, 0, 0, 1, 2] * (n // 10 + 1))[:n]
    writer.finish(
        np.ones(n, bool),
        filenames=[f"{i + 1:06d}.jpg" for i in range(n)],
        attributes=rng.choice(np.array([-1, 1], np.int8), size=(n, 40)),
        identity=np.arange(n, dtype=np.int32) % 7,
        partition=partition,
        manifest={"size": size, "source": {"path": "test", "kind": "test"}},
    )
    return open_packed(folder)


@pytest.fixture(autouse=True, scope="session")
def private_cache(tmp_path_factory: pytest.TempPathFactory):
    """Converted networks (the ONNX Inception file) go to a folder of the test session,
    never into the user's ~/.cache: the first test that needs one converts it once."""
    patch = pytest.MonkeyPatch()
    patch.setenv("FACEGEN_CACHE_DIR", str(tmp_path_factory.mktemp("facegen-cache")))
    yield
    patch.undo()


@pytest.fixture
def packed_factory(tmp_path: Path) -> Callable[..., PackedDataset]:
    """Make small packed data sets: ``packed_factory(n=40, size=32)``."""
    counter = iter(range(1_000_000))

    def make(**kwargs) -> PackedDataset:
        return write_packed(tmp_path / f"packed-{next(counter)}", **kwargs)

    return make


# A box colour tests can find after cropping: CelebA's default crop is exactly this box.
BOX_RGB = (200, 40, 40)
BACKGROUND_RGB = (30, 60, 200)


def celeba_image(index: int, width: int = 178, height: int = 218) -> Image.Image:
    """A CelebA-shaped test image: blue background, a red box exactly on the centred 140
    crop (scaled with the width), and ``index`` written in the box's green channel."""
    scale = width / 178
    image = Image.new("RGB", (width, height), BACKGROUND_RGB)
    side = 140 * scale
    left, top = (width - side) / 2, (height - side) / 2
    colour = (BOX_RGB[0], index_to_green(index), BOX_RGB[2])
    ImageDraw.Draw(image).rectangle(
        (round(left), round(top), round(left + side) - 1, round(top + side) - 1), fill=colour
    )
    return image


def index_to_green(index: int) -> int:
    return (index * 10) % 250


def make_celeba(
    root: Path,
    n: int = 30,
    *,
    width: int = 178,
    height: int = 218,
    identities: np.ndarray | None = None,
    partitions: np.ndarray | None = None,
    annotations: bool = True,
) -> list[str]:
    """Write a small data set in the official CelebA layout under ``root``; returns names."""
    folder = root / IMAGE_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"{i + 1:06d}.jpg" for i in range(n)]
    for i, name in enumerate(names):
        celeba_image(i, width, height).save(folder / name, quality=95)
    if annotations:
        rng = np.random.default_rng(n)
        write_annotations(
            root,
            names,
            attributes=rng.choice(np.array([-1, 1]), size=(n, 40)),
            identities=identities if identities is not None else 1 + np.arange(n) % 5,
            partitions=partitions
            if partitions is not None
            else np.array([0, 0, 0, 0, 0, 0, 0, 0, 1, 2] * (n // 10 + 1))[:n],
            landmarks=np.tile([69, 111, 108, 111, 88, 134, 72, 152, 106, 152], (n, 1)),
        )
    return names


@pytest.fixture
def celeba_root(tmp_path: Path) -> Path:
    """A 30-image CelebA root in the official layout, with all four annotation files."""
    root = tmp_path / "celeba"
    make_celeba(root)
    return root


# Tiny runs for training and exploration tests: synthetic faces at 32x32, models 8 channels wide.
TINY_MODELS = {
    "ae": {"latent_dim": 16, "width": 8},
    "vae": {"latent_dim": 16, "width": 8},
    "aegan": {"latent_dim": 16, "width": 8, "d_width": 8, "d_layers": 2},
    "dcgan": {"latent_dim": 16, "g_width": 8, "d_width": 8},
    "sngan": {"latent_dim": 16, "g_width": 8, "d_width": 8},
}
TINY_TRAINING = {
    "ae": {"lr": 2e-3, "betas": (0.9, 0.999)},
    "vae": {"lr": 2e-3, "betas": (0.9, 0.999), "kl_warmup_steps": 5},
    # The critic from the first step, so a resume with another length continues exactly.
    "aegan": {"lr": 2e-3, "betas": (0.9, 0.999), "adv_start": 0.0},
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


RUN_STEPS = {"ae": 40, "vae": 40, "dcgan": 20}


@pytest.fixture(scope="session")
def runs32(faces32, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """An AE (with its GMM sampler), a VAE and a DCGAN, trained briefly on ``faces32``.
    Tests may write pictures and attribute directions into them, never retrain them."""
    root = tmp_path_factory.mktemp("runs")
    runs = {}
    for name, steps in RUN_STEPS.items():
        config = tiny_config(name, faces32, steps=steps, sample_every=steps, checkpoint_every=steps)
        train(config, root / name, progress=False)
        runs[name] = load_run(root / name)
    return runs


@pytest.fixture(scope="session")
def celeba_runs(runs32, faces32, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """The tiny runs as if their faces were CelebA's: copies of ``runs32`` trained on a copy
    of ``faces32`` whose manifest names a CelebA source (the synthetic faces' own manifest
    says ``synthetic``), for what depends on where the data came from (a model card)."""
    root = tmp_path_factory.mktemp("celeba-runs")
    data = Path(shutil.copytree(faces32.path, root / "packed"))
    manifest = json.loads((data / "manifest.json").read_text())
    manifest["source"]["kind"] = "celeba"
    (data / "manifest.json").write_text(json.dumps(manifest))
    runs = {}
    for name, run in runs32.items():
        folder = Path(shutil.copytree(run.path, root / name))
        config = json.loads((folder / "config.json").read_text())
        config["data"]["path"] = str(data)
        (folder / "config.json").write_text(json.dumps(config))
        runs[name] = load_run(folder)
    return runs
