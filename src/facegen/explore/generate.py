"""New faces and reconstructions: the two pictures every run is first judged by.

>>> run = facegen.load_run("runs/vae")
>>> faces = sample_faces(run, 64, seed=0)                  # (64, 3, 64, 64) in [-1, 1]
>>> save_faces(faces, "samples/")                          # 000000.png ... for FID tools
>>> pairs = reconstruct_faces(run, open_packed("data/synth-64"), n=16)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from facegen.data.loader import load_images, to_uint8
from facegen.data.packed import PackedDataset, pick_rows
from facegen.errors import FacegenError
from facegen.explore.common import require_encoder
from facegen.files import atomic_directory
from facegen.run import Run, check_data
from facegen.viz.grid import image_grid, labelled_grid, paired_rows


def sample_faces(
    run: Run,
    n: int,
    *,
    seed: int = 0,
    sampler: str | None = None,
    truncation: float | None = None,
    batch_size: int = 64,
    progress: bool = True,
) -> torch.Tensor:
    """``n`` new faces (n, 3, S, S) in [-1, 1] from ``sampler`` (default: the run's own,
    ``flow`` where fitted, else ``gmm`` for an AE, ``normal`` otherwise); the same seed
    gives the same faces."""
    if n < 1:
        raise FacegenError(f"the number of faces must be at least 1, not {n}")
    return run.sample(
        n, seed, sampler, truncation, batch_size, progress="sampling" if progress else None
    )


def sample_grid(faces: torch.Tensor) -> np.ndarray:
    """Faces as one near-square uint8 grid."""
    return image_grid(to_uint8(faces))


def save_faces(faces: torch.Tensor, folder: str | Path, *, overwrite: bool = False) -> Path:
    """One PNG per face, ``000000.png`` ... in a flat folder (what FID tools read). The
    folder appears whole or not at all; an existing one is replaced only with ``overwrite``,
    so a folder never mixes faces of two runs."""
    folder = Path(folder)
    check_writable_folder(folder, overwrite)
    pixels = to_uint8(faces)
    with atomic_directory(folder, overwrite=overwrite) as tmp:
        for i, face in enumerate(pixels):
            Image.fromarray(face).save(tmp / f"{i:06d}.png", format="PNG")
    return folder


def check_writable_folder(folder: Path, overwrite: bool) -> None:
    """Fail before any work when ``folder`` exists and may not be replaced."""
    if folder.exists() and not overwrite:
        raise FacegenError(f"{folder} already exists; pass --overwrite to replace it")
    if folder.exists() and not folder.is_dir():
        raise FacegenError(f"{folder} exists and is not a folder")


@dataclass
class Reconstructions:
    """Test faces and what the model makes of them."""

    rows: np.ndarray  # (N,) rows of the data set
    originals: torch.Tensor  # (N, 3, S, S) in [-1, 1]
    reconstructions: torch.Tensor  # (N, 3, S, S) in [-1, 1]

    @property
    def mse(self) -> float:
        """Mean squared error per pixel on the [-1, 1] scale."""
        return float((self.originals - self.reconstructions).pow(2).mean())

    def picture(self, columns: int | None = None) -> np.ndarray:
        """Originals above their reconstructions, in pairs of rows of ``columns`` faces."""
        n = len(self.rows)
        pairs = paired_rows(
            to_uint8(self.originals), to_uint8(self.reconstructions), columns or min(n, 8)
        )
        labels = ["original", "reconstruction"] * (len(pairs) // 2)
        title = f"{n} test faces, reconstruction MSE {self.mse:.4f} (pixels in [-1, 1])"
        return labelled_grid(pairs, labels, title=title)


def reconstruct_faces(
    run: Run,
    data: PackedDataset,
    *,
    split: str = "test",
    n: int = 16,
    seed: int = 0,
    batch_size: int = 64,
) -> Reconstructions:
    """``n`` faces of ``split`` (chosen by ``seed``) and their reconstructions."""
    require_encoder(run, "reconstruct")
    check_data(run, data)
    rows = pick_rows(data, split, n, seed)
    originals = load_images(data, rows)
    return Reconstructions(rows, originals, run.reconstruct(originals, batch_size))
