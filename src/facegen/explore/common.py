"""What the exploration tools share: checking a run against a data set, choosing faces
from a split, and encoding them in batches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from facegen.batches import map_batches
from facegen.data.loader import load_images
from facegen.data.packed import PackedDataset, open_packed
from facegen.errors import FacegenError
from facegen.models.base import encoder_model_names
from facegen.run import Run


def require_encoder(run: Run, what: str) -> None:
    """Refuse ``what`` (e.g. "reconstruct") for a model without an encoder, naming those
    that have one."""
    if not run.model.has_encoder:
        raise FacegenError(
            f"{what} needs a model with an encoder; {run.path} is a {run.name}. Models that "
            f"can: {', '.join(encoder_model_names())}"
        )


def check_data(run: Run, data: PackedDataset) -> None:
    """The data set must have the run's image size (its faces go through the model)."""
    if data.size != run.model.image_size:
        raise FacegenError(
            f"{data.path} holds {data.size}x{data.size} images but {run.path} makes "
            f"{run.model.image_size}x{run.model.image_size}: use a data set prepared with "
            f"--size {run.model.image_size}"
        )


def pick_rows(data: PackedDataset, split: str, n: int | None, seed: int) -> np.ndarray:
    """``n`` rows of ``split`` drawn without replacement from ``seed`` (all rows for
    ``None``), ascending; an empty split is an error naming it."""
    rows = data.split_indices(split)
    if len(rows) == 0:
        raise FacegenError(f"{data.path} has no images in the {split} split")
    if n is None or n >= len(rows):
        return rows
    chosen = np.random.default_rng(seed).choice(len(rows), size=n, replace=False)
    return rows[np.sort(chosen)]


def encode_rows(
    run: Run, data: PackedDataset, rows: np.ndarray, *, batch_size: int = 256, progress: bool = True
) -> torch.Tensor:
    """Latents (N, latent_dim) of ``rows``; images are read one batch at a time, so a whole
    CelebA split never sits in memory as floats."""
    require_encoder(run, "encoding faces")
    check_data(run, data)
    return map_batches(
        lambda chunk: run.encode(load_images(data, chunk), batch_size),
        rows,
        batch_size,
        progress="encoding" if progress else None,
    )


def run_data(run: Run, path: str | Path | None = None) -> PackedDataset:
    """The packed data set at ``path``, or else the one ``run`` was trained on."""
    if path is not None:
        return open_packed(path)
    trained_on = run.config.get("data", {}).get("path")
    if not trained_on or not Path(trained_on).is_dir():
        raise FacegenError(
            f"{run.path} was trained on {trained_on or 'a data set it does not name'}, which "
            "is not there any more: pass --data DATASET"
        )
    return open_packed(trained_on)
