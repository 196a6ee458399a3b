"""Latent traversals: one latent dimension swept while the others stay put.

For a VAE the rows are the dimensions it actually uses, ranked by their KL divergence from
the prior averaged over test faces (a dimension with KL near 0 carries no information: the
decoder ignores it, "posterior collapse"). For an AE they are ranked by the spread of the
test latents; a GAN's prior is isotropic, so its first dimensions are as good as any.

>>> sweep = traverse(run, data, dims=8, seed=0)
>>> save_png(sweep.picture(), "traverse.png")
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from matplotlib.figure import Figure

from facegen.data.loader import load_images, to_uint8
from facegen.data.packed import PackedDataset, pick_rows
from facegen.errors import FacegenError
from facegen.explore.common import encode_rows
from facegen.losses import kl_per_dimension
from facegen.run import Run, check_data, in_batches
from facegen.viz.grid import labelled_grid
from facegen.viz.plots import save_figure

# Test faces whose latents set the ranking and the spread: enough for stable statistics.
STATISTICS_FACES = 2000
# KL (nats) above which a VAE dimension counts as active (as in Burda et al.'s activity
# criterion, which uses a variance threshold of the same order).
ACTIVE_KL = 0.01


@runtime_checkable
class _Posterior(Protocol):
    """A model with a Gaussian posterior (a VAE): ``isinstance`` checks for the method."""

    def encode_distribution(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...


@dataclass
class Traversal:
    """Faces (K, V, 3, S, S): row k sweeps dimension ``dims[k]`` over ``values`` (in
    standard deviations of that dimension) around the latent ``base``."""

    images: torch.Tensor
    dims: list[int]
    values: list[float]
    base: torch.Tensor  # (D,)
    centre: torch.Tensor  # (D,) what value 0 means per dimension
    spread: torch.Tensor  # (D,) what one standard deviation is per dimension
    kl: torch.Tensor | None  # (D,) a VAE's KL per dimension on test faces, nats
    model: str
    ranking: str  # how the dimensions were chosen

    def picture(self) -> np.ndarray:
        k, v = self.images.shape[:2]
        faces = to_uint8(self.images.flatten(0, 1))
        faces = faces.reshape(k, v, *faces.shape[1:])  # (K, V, S, S, 3)
        if self.kl is not None:
            rows = [f"dim {d}  KL {float(self.kl[d]):.2f}" for d in self.dims]
        else:
            rows = [f"dim {d}" for d in self.dims]
        columns = [f"{value:+g} sd" if value else "0" for value in self.values]
        title = f"{self.model}: {k} dimensions ({self.ranking}) swept in standard deviations"
        return labelled_grid(faces, rows, columns, title=title)

    @property
    def active(self) -> int | None:
        """How many dimensions a VAE uses (KL above :data:`ACTIVE_KL`)."""
        return None if self.kl is None else int((self.kl > ACTIVE_KL).sum())


def save_kl_plot(kl: torch.Tensor, path: str | Path, title: str = "") -> Path:
    """Bars of the KL per latent dimension, sorted, with the active threshold drawn."""
    order = torch.argsort(kl, descending=True)
    values = kl[order].numpy()
    figure = Figure(figsize=(min(10.0, max(5.0, 0.12 * len(values) + 2)), 3.2))
    axis = figure.subplots()
    colours = ["tab:blue" if v > ACTIVE_KL else "tab:gray" for v in values]
    axis.bar(range(len(values)), values, color=colours)
    step = max(1, len(values) // 32)
    axis.set_xticks(range(0, len(values), step), [str(int(d)) for d in order[::step]], fontsize=7)
    axis.set_xlim(-1, len(values))
    axis.axhline(ACTIVE_KL, color="tab:red", linewidth=0.8, linestyle="--")
    axis.set_xlabel("latent dimension (sorted by KL)")
    axis.set_ylabel("KL to N(0, 1), nats")
    active = int((kl > ACTIVE_KL).sum())
    axis.set_title(title or f"{active} of {len(values)} dimensions active (KL > {ACTIVE_KL})")
    figure.tight_layout()
    return save_figure(figure, path)


def _vae_statistics(run: Run, faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(posterior means (N, D), KL per dimension (D,)) of ``faces``."""
    model = run.model
    assert isinstance(model, _Posterior)  # called only for a model with a posterior

    def mu_and_logvar(x: torch.Tensor) -> torch.Tensor:
        return torch.cat(model.encode_distribution(x), dim=1)  # (B, 2D)

    both = in_batches(mu_and_logvar, faces, run.device)
    mu, logvar = both.chunk(2, dim=1)
    return mu, kl_per_dimension(mu, logvar)


def traverse(
    run: Run,
    data: PackedDataset | None = None,
    *,
    dims: int | None = None,
    values: tuple[float, ...] = (-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0),
    split: str = "test",
    seed: int = 0,
    progress: bool = True,
) -> Traversal:
    """Sweep ``dims`` latent dimensions (default: up to 10; a VAE's ranked by KL, an AE's by
    spread) over ``values`` standard deviations. Models with an encoder need ``data``:
    the base latent is a test face's (chosen by ``seed``) and the statistics come from the
    test split; a GAN sweeps around a prior sample from ``seed``."""
    latent_dim = run.model.latent_dim
    count = min(dims or 10, latent_dim)
    kl = None
    if run.model.has_encoder:
        if data is None:
            raise FacegenError(
                f"traversing a {run.name} needs its data set (for the test faces' latents): "
                "pass --data"
            )
        check_data(run, data)
        rows = pick_rows(data, split, STATISTICS_FACES, seed)
        if isinstance(run.model, _Posterior):  # a VAE: rank by KL
            latents, kl = _vae_statistics(run, load_images(data, rows))
            order = torch.argsort(kl, descending=True, stable=True)
            centre, spread = torch.zeros(latent_dim), torch.ones(latent_dim)
        else:
            latents = encode_rows(run, data, rows, progress=progress)
            centre, spread = latents.mean(0), latents.std(0).clamp_min(1e-6)
            order = torch.argsort(spread, descending=True, stable=True)
        base = latents[int(np.random.default_rng(seed).integers(len(latents)))]
    else:
        centre, spread = torch.zeros(latent_dim), torch.ones(latent_dim)
        order = torch.arange(latent_dim)
        base = run.latents(1, seed)[0]
    chosen = [int(d) for d in order[:count]]
    grid = base.repeat(count, len(values), 1)  # (K, V, D)
    for row, d in enumerate(chosen):
        grid[row, :, d] = centre[d] + spread[d] * torch.tensor(values)
    images = run.decode(grid.flatten(0, 1)).unflatten(0, grid.shape[:2])
    ranking = "first" if not run.model.has_encoder else "by spread" if kl is None else "by KL"
    return Traversal(images, chosen, list(values), base, centre, spread, kl, run.name, ranking)
