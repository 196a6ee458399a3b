"""``ae``: a convolutional autoencoder, images -> a linear latent -> images.

Encoder: stride-2 4x4 convolutions + BatchNorm + LeakyReLU(0.2), widths ``width`` doubling
per stage (capped at 16x), then one linear layer to the latent. Decoder: its mirror (see
:class:`~facegen.models.blocks.ConvDecoder`). At 64x64 the stages are 32, 64, 128, 256
channels down to a 4x4 map; 128x128 adds a 512 stage, 32x32 drops the 256 one.

Sampling from N(0, I) works but an AE's latents are not shaped like that prior; a sampler
fitted on the latents (a GMM) is the way to get faces from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from facegen.models import MODELS
from facegen.models.base import FaceModel, ModelConfig
from facegen.models.blocks import ConvDecoder, ConvEncoder, stage_widths

MAX_WIDTH_MULTIPLE = 16  # 32 -> 512 channels at 128x128, the widest stage


class AutoencoderOutput(NamedTuple):
    """What every autoencoder's ``forward(x, generator)`` returns (AE, VAE, AEGAN): the
    training objectives read it, and DDP trains through ``forward``."""

    logits: torch.Tensor  # (B, 3, S, S): the reconstruction before tanh, what a loss needs
    mu: torch.Tensor  # (B, latent_dim): the latents (a VAE's posterior mean, float32)
    logvar: torch.Tensor | None  # (B, latent_dim): a VAE's posterior log-variance; AE: None


@dataclass
class AEConfig(ModelConfig):
    """``width``: channels of the first (full-resolution) encoder stage."""

    image_size: int = 64
    latent_dim: int = 128
    width: int = 32


@MODELS.register("ae")
class AE(FaceModel):
    """Convolutional autoencoder.

    ``forward(x)`` returns an :class:`AutoencoderOutput`, whose ``logits`` (the
    reconstruction before tanh) are what a loss needs; ``reconstruct(x)`` returns images.
    """

    name = "ae"
    config_class = AEConfig
    has_encoder = True
    objective = "autoencoder"
    prior_is_trained = False  # nothing pulls the latents towards N(0, I): fit a sampler
    config: AEConfig

    def __init__(self, config: AEConfig) -> None:
        super().__init__(config)
        widths = stage_widths(config.image_size, config.width, MAX_WIDTH_MULTIPLE)
        self.encoder = ConvEncoder(widths)
        self.to_latent = nn.Linear(self.encoder.out_features, config.latent_dim)
        self.decoder = ConvDecoder(config.latent_dim, widths)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.to_latent(self.encoder(x))  # (B, latent_dim)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        """Latents (B, latent_dim) -> pre-tanh outputs (B, 3, S, S).

        ``tanh(l) == 2 * sigmoid(2 * l) - 1``, so a Bernoulli (BCE) loss on pixels mapped
        to [0, 1] is ``binary_cross_entropy_with_logits(2 * l, (x + 1) / 2)``.
        """
        return self.decoder(z)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.decode_logits(z))  # (B, 3, S, S) in [-1, 1]

    def forward(
        self, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> AutoencoderOutput:
        """Images -> (reconstruction logits, latents, None). ``generator`` is unused: an AE
        draws no noise; it is there so that every autoencoder is called alike."""
        z = self.encode(x)  # (B, latent_dim)
        return AutoencoderOutput(self.decode_logits(z), z, None)
