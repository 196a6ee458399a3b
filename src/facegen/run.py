"""A run folder, and the model object a notebook gets from it.

Layout (the README's Layout)::

    RUN/config.json                      resolved config, data summary, versions
    RUN/model/config.json                model name and fields
    RUN/model/model.safetensors          inference weights (the EMA where used)
    RUN/model/sampler-gmm.safetensors    latent samplers fitted after training (AE / VAE):
    RUN/model/sampler-flow.safetensors   those the config's ``samplers`` names
    RUN/checkpoints/training-state-STEP.pt
    RUN/log.jsonl   RUN/loss.png   RUN/samples/step-STEP.png (+ recon-step-STEP.png)
    RUN/explore/*.png   RUN/metrics.jsonl   RUN/eval/*.png   (exploration and evaluation)

>>> run = facegen.load_run("runs/vae")
>>> faces = run.sample(16, seed=0)             # (16, 3, 64, 64) in [-1, 1]
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from facegen.batches import map_batches
from facegen.devices import resolve_device
from facegen.errors import FacegenError
from facegen.layout import (  # noqa: F401 (re-exported: the run folder's names)
    EXPLORE_FOLDER,
    LOG_FILE,
    LOSS_PLOT,
    MODEL_FOLDER,
    RUN_CONFIG,
    SAMPLES_FOLDER,
    read_run_config,
)
from facegen.models import load_model
from facegen.models.base import FaceModel
from facegen.sampling import SAMPLERS, LatentSampler, load_sampler, sampler_path

if TYPE_CHECKING:
    from facegen.data.packed import PackedDataset


def sample_grid_path(run: Path, step: int, kind: str = "step") -> Path:
    return run / SAMPLES_FOLDER / f"{kind}-{step:07d}.png"


def preferred_fitted_sampler(
    listed: Sequence[str], fitted: Collection[str], prior_is_trained: bool
) -> str | None:
    """The fitted sampler a run draws from by default, None for none. A model with a
    trained prior (VAE): the flow where fitted, else its prior. An AE: the first of
    ``listed`` (its config's ``samplers``) that was fitted; the aegan presets list ``gmm``
    before ``flow``, whose samples scored behind it in every comparison in docs/quality."""
    if prior_is_trained:
        return "flow" if "flow" in fitted else None
    return next((name for name in listed if name in fitted), None)


@torch.no_grad()
def in_batches(
    function: Callable[[torch.Tensor], torch.Tensor],
    inputs: torch.Tensor,
    device: torch.device | str,
    batch_size: int = 64,
    progress: str | None = None,
) -> torch.Tensor:
    """``function`` over ``inputs`` in batches on ``device``; the result float32 on the CPU.
    ``progress`` names a progress bar (shown only when there is more than one batch)."""

    def on_device(chunk: torch.Tensor) -> torch.Tensor:
        return function(chunk.to(device)).float().cpu()

    return map_batches(on_device, inputs, batch_size, progress=progress)


@dataclass
class Run:
    """A trained run: its model (ready for inference) and what it was trained with."""

    path: Path
    config: dict[str, Any]
    model: FaceModel
    device: torch.device
    _samplers: dict[str, LatentSampler] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return self.model.name

    def sampler(self, name: str = "normal") -> LatentSampler:
        """The latent sampler ``name``: ``normal`` (the prior) or one fitted in the run."""
        if name not in self._samplers:
            sampler_class = SAMPLERS.get(name)
            if sampler_class.needs_fit:
                self._samplers[name] = load_sampler(self.path / MODEL_FOLDER, name)
            else:  # nothing fitted to load: only the options (the latents' size), no state
                options = {"latent_dim": self.model.latent_dim}
                self._samplers[name] = sampler_class.from_state(options, {})
        return self._samplers[name]

    @property
    def sampler_names(self) -> list[str]:
        """The samplers this run can use: the prior, and each fitted one saved in it."""
        return [
            name
            for name in SAMPLERS.names()
            if not SAMPLERS.get(name).needs_fit
            or sampler_path(self.path / MODEL_FOLDER, name).is_file()
        ]

    @property
    def default_sampler(self) -> str:
        """:func:`preferred_fitted_sampler` over what the run saved, else ``normal`` where
        the model's prior is trained (VAE, GANs), else ``gmm``."""
        train = self.config.get("train")
        listed = train.get("samplers") if isinstance(train, dict) else None
        listed = listed or ("flow", "gmm")  # runs saved without it: the flow first
        prior = self.model.prior_is_trained
        chosen = preferred_fitted_sampler(listed, self.sampler_names, prior)
        return chosen or ("normal" if prior else "gmm")

    def latents(
        self,
        n: int,
        seed: int = 0,
        sampler: str | None = None,
        truncation: float | None = None,
    ) -> torch.Tensor:
        """``n`` latents (n, latent_dim) from ``sampler`` (default :attr:`default_sampler`),
        the same for the same seed on any device."""
        generator = torch.Generator().manual_seed(seed)
        return self.sampler(sampler or self.default_sampler).sample(n, generator, truncation)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        seed: int = 0,
        sampler: str | None = None,
        truncation: float | None = None,
        batch_size: int = 64,
        progress: str | None = None,
    ) -> torch.Tensor:
        """``n`` new faces (n, 3, S, S) in [-1, 1] on the CPU, the same for the same seed.
        ``truncation`` t draws the latent noise within [-t, t] (fewer, cleaner faces)."""
        z = self.latents(n, seed, sampler, truncation)  # (n, latent_dim)
        return self.decode(z, batch_size=batch_size, progress=progress)

    def decode(
        self, z: torch.Tensor, batch_size: int = 64, progress: str | None = None
    ) -> torch.Tensor:
        """Latents (N, latent_dim) -> images (N, 3, S, S) in [-1, 1] on the CPU."""
        return in_batches(self.model.decode, z, self.device, batch_size, progress)

    def encode(
        self, images: torch.Tensor, batch_size: int = 64, progress: str | None = None
    ) -> torch.Tensor:
        """Images (N, 3, S, S) in [-1, 1] -> latents (N, latent_dim) on the CPU (a VAE's
        posterior mean); refused with a clear error by models without an encoder."""
        return in_batches(self.model.encode, images, self.device, batch_size, progress)

    @torch.no_grad()
    def reconstruct(self, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        return self.decode(self.encode(images, batch_size), batch_size)

    def save_pretrained(
        self,
        directory: str | Path,
        *,
        repo_id: str | None = None,
        license: str | None = None,
        dataset: str | None = None,
        overwrite: bool = False,
    ) -> Path:
        """Write this run as a folder to share: ``config.json``, ``model/`` (what
        :func:`load_run` reads), the training log and metrics, a sample grid and a model
        card (``README.md``) for the Hugging Face Hub; no checkpoints. ``repo_id``
        (``owner/name``) is where it will be pushed, for the card's examples; ``license``
        a Hub license id for the weights (default: CelebA's terms for CelebA-trained
        weights, else MIT); ``dataset`` (``celeba``, ``synthetic`` or ``other``) says what
        the training data was where the data set's manifest cannot. See
        :func:`facegen.hub.save_pretrained`."""
        from facegen.hub import save_pretrained

        saved = save_pretrained(
            self, directory, repo_id=repo_id, license=license, dataset=dataset, overwrite=overwrite
        )
        return saved.path


def load_run(path: str | Path, device: str | torch.device = "cpu") -> Run:
    """Open a run folder for inference: the model rebuilt from ``model/`` alone.
    ``"hf://owner/name[@revision]"`` opens a model shared on the Hugging Face Hub
    (``facegen push``), downloaded into the Hugging Face cache first (needs
    ``facegen[hub]``; ``HF_HUB_OFFLINE=1`` uses the cached copy). ``device`` is a torch
    device or ``"auto"`` (cuda, mps, then cpu)."""
    if str(path).startswith("hf:/"):
        from facegen.hub import download_run

        path = download_run(path)
    path = Path(path)
    config = read_run_config(path)
    device = resolve_device(str(device))
    model = load_model(path / MODEL_FOLDER, device)
    return Run(path=path, config=config, model=model, device=device)


def check_data(run: Run, data: PackedDataset) -> None:
    """The data set must have the run's image size (its faces go through the model)."""
    if data.size != run.model.image_size:
        raise FacegenError(
            f"{data.path} holds {data.size}x{data.size} images but {run.path} makes "
            f"{run.model.image_size}x{run.model.image_size}: use a data set prepared with "
            f"--size {run.model.image_size}"
        )


def run_data(run: Run, path: str | Path | None = None) -> PackedDataset:
    """The packed data set at ``path``, or else the one ``run`` was trained on."""
    from facegen.data.packed import open_packed  # opening a run for inference never needs it

    if path is not None:
        return open_packed(path)
    trained_on = run.config.get("data", {}).get("path")
    if not trained_on or not Path(trained_on).is_dir():
        raise FacegenError(
            f"{run.path} was trained on {trained_on or 'a data set it does not name'}, which "
            "is not there any more: pass --data DATASET"
        )
    return open_packed(trained_on)
