"""What the exploration tools share: refusing models without an encoder, and encoding
faces in batches (checking a run against a data set lives in :mod:`facegen.run`, choosing
faces from a split in :mod:`facegen.data.packed`)."""

from __future__ import annotations

import numpy as np
import torch

from facegen.batches import map_batches
from facegen.data.loader import load_images
from facegen.data.packed import PackedDataset
from facegen.errors import FacegenError
from facegen.models.base import encoder_model_names
from facegen.run import Run, check_data


def require_encoder(run: Run, what: str) -> None:
    """Refuse ``what`` (e.g. "reconstruct") for a model without an encoder, naming those
    that have one."""
    if not run.model.has_encoder:
        raise FacegenError(
            f"{what} needs a model with an encoder; {run.path} is a {run.name}. Models that "
            f"can: {', '.join(encoder_model_names())}"
        )


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
