"""``vae``: a convolutional VAE (Kingma & Welling 2014) in the style of PyTorch-VAE's
VanillaVAE: the :mod:`~facegen.models.ae` encoder and decoder, with two linear heads for
the posterior's mean and log-variance.

The loss (reconstruction plus beta-weighted KL) belongs to the trainer; ``forward`` returns
what it needs: the reconstruction logits of a reparameterised sample, ``mu`` and ``logvar``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from facegen.models import MODELS
from facegen.models.ae import AE, AEConfig, AutoencoderOutput

# exp(logvar) overflows float32 past logvar ~ 88 (inf, then NaN gradients), and an early,
# diverging encoder can get there; below -30 the variance (1e-13) is zero for all purposes.
# The same range as the Stable Diffusion autoencoder's DiagonalGaussianDistribution. Outside
# it the clamp passes no gradient; a working VAE's logvar stays far inside.
LOGVAR_MIN, LOGVAR_MAX = -30.0, 20.0


@dataclass
class VAEConfig(AEConfig):
    """The AE's fields: ``width`` is the channels of the first encoder stage."""


@MODELS.register("vae")
class VAE(AE):
    """The AE plus a log-variance head: ``to_latent`` gives the posterior mean ``mu``,
    ``to_logvar`` its log-variance, and ``encode`` (the AE's) returns ``mu``."""

    name = "vae"
    config_class = VAEConfig
    objective = "vae"
    prior_is_trained = True  # the KL term trains the latents towards N(0, I)
    config: VAEConfig

    def __init__(self, config: VAEConfig) -> None:
        super().__init__(config)
        self.to_logvar = nn.Linear(self.encoder.out_features, config.latent_dim)

    def encode_distribution(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images -> (mu, logvar) of q(z | x), each (B, latent_dim), in float32 even under
        autocast (the KL is a sum of exps: bfloat16 would lose it), logvar clamped."""
        h = self.encoder(x)  # (B, C * 16)
        mu = self.to_latent(h).float()  # (B, D)
        logvar = self.to_logvar(h).float().clamp(LOGVAR_MIN, LOGVAR_MAX)  # (B, D)
        return mu, logvar

    def forward(
        self, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> AutoencoderOutput:
        """Images -> (reconstruction logits (B, 3, S, S), mu, logvar), as the AE's forward
        but decoding ``z = mu + exp(logvar / 2) * noise`` (the reparameterisation trick)."""
        mu, logvar = self.encode_distribution(x)
        # Noise from a CPU generator, then moved: a seed gives the same noise on any device.
        noise = torch.randn(mu.shape, generator=generator).to(mu.device)  # (B, D)
        z = mu + torch.exp(0.5 * logvar) * noise  # (B, D)
        return AutoencoderOutput(self.decode_logits(z), mu, logvar)
