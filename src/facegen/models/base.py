"""What every facegen model is: one dataclass config in, one interface out.

A model knows nothing of training. It is rebuilt from ``model/config.json`` alone (the
config's fields are its constructor arguments, saved beside its weights), and it exposes
the same small surface whatever it is: ``sample`` always; ``encode``, ``decode`` and
``reconstruct`` where it has an encoder (``decode`` for every model: a GAN's generator is
its decoder). Images are float tensors in [-1, 1], NCHW.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from facegen.errors import FacegenError
from facegen.layout import SIZES
from facegen.settings import Settings


@dataclass
class ModelConfig(Settings):
    """Fields every model shares; each model subclasses it with its own. Checked when made
    (:mod:`facegen.settings`): every field an int, ``image_size`` one facegen has networks
    for, and every other int a size (latents, channels) of at least 1."""

    image_size: int = 64
    latent_dim: int = 128

    def check(self) -> None:
        check_image_size(self.image_size)
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name != "image_size" and isinstance(value, int) and value < 1:
                raise FacegenError(f"{field.name} must be at least 1, not {value}")


def check_image_size(size: int) -> None:
    """Refuse an image side that facegen's networks and packed data sets do not have."""
    if size not in SIZES:
        raise FacegenError(
            f"image size {size} is not supported: choose {', '.join(map(str, SIZES))}"
        )


class FaceModel(nn.Module, ABC):
    """The interface of every registered model.

    Subclasses set ``name`` (their registry key), ``config_class``, ``has_encoder`` and
    ``is_gan``, and implement :meth:`decode` (latents -> images) plus, with an encoder,
    :meth:`encode`. GANs also implement :meth:`make_discriminator`: the critic is built from
    the same config but is not part of the saved inference model.
    """

    name: ClassVar[str]
    config_class: ClassVar[type[ModelConfig]]
    has_encoder: ClassVar[bool] = False
    is_gan: ClassVar[bool] = False
    # Trained against a critic (GANs, and the adversarial autoencoder): make_discriminator.
    has_critic: ClassVar[bool] = False
    # The training objective (facegen.training.objectives) that trains it.
    objective: ClassVar[str]
    # False where samples from N(0, I) mean nothing until a sampler is fitted (a plain AE).
    prior_is_trained: ClassVar[bool] = True

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    @property
    def image_size(self) -> int:
        return self.config.image_size

    def prior(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` latents from N(0, I) on the model's device: (n, latent_dim)."""
        device = next(self.parameters()).device
        # Drawn on the CPU from the given generator, so a seed gives the same faces on any
        # device; latents are tiny, the copy costs nothing.
        z = torch.randn(n, self.latent_dim, generator=generator)
        return z.to(device)

    @torch.no_grad()
    def sample(
        self, n: int, generator: torch.Generator | None = None, *, z: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``n`` new faces (n, 3, S, S) in [-1, 1] from latents ``z`` (default: the prior)."""
        if z is None:
            z = self.prior(n, generator)
        return self.decode(z)

    @abstractmethod
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latents (B, latent_dim) -> images (B, 3, S, S) in [-1, 1]."""

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, S, S) -> latents (B, latent_dim); the mean for a VAE."""
        raise FacegenError(
            f"the {self.name} model has no encoder; models that can encode: "
            + ", ".join(encoder_model_names())
        )

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Images -> their reconstructions (decode of encode)."""
        return self.decode(self.encode(x))

    def make_discriminator(self) -> nn.Module:
        """The critic of a model trained against one: images (B, 3, S, S) -> scores."""
        raise FacegenError(f"the {self.name} model is not trained against a critic")


class GANModel(FaceModel):
    """A GAN's generator: ``forward`` is ``decode`` (DDP trains through ``forward``), and
    the critic comes from :meth:`make_discriminator`."""

    is_gan = True
    has_critic = True
    objective = "gan"

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.decode(z)

    @abstractmethod
    def make_discriminator(self) -> nn.Module:
        """The critic: images (B, 3, S, S) -> scores (B,)."""


def encoder_model_names() -> list[str]:
    from facegen.models import MODELS

    return [name for name in MODELS.names() if MODELS.get(name).has_encoder]
