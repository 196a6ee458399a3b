"""Losses: small callables chosen by name.

Scale, for the VAE (a common bug elsewhere hides a mismatch behind a tiny ad-hoc KL
weight): the reconstruction term is summed over all pixels of an image and the KL term over
all latent dimensions of it, both averaged over the batch. That is the negative ELBO per
image, so ``kl_weight = 1`` is the true VAE objective and beta keeps its meaning from the
beta-VAE paper whatever the image size. With ``mse`` the sum of squared errors on [-1, 1]
pixels is the Gaussian log-likelihood with variance 1/2 (up to a constant); with ``bce``
pixels are read as Bernoulli probabilities (x + 1) / 2 of the decoder's logits.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

import torch
import torch.nn.functional as F

from facegen.registry import Registry

# (decoder logits before tanh, target images in [-1, 1]) -> loss per image, batch mean
ReconstructionLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
RECONSTRUCTION_LOSSES: Registry[ReconstructionLoss] = Registry("reconstruction loss")


@RECONSTRUCTION_LOSSES.register("mse")
def summed_squared_error(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    error = (torch.tanh(logits.float()) - target.float()).pow(2)  # (B, C, H, W)
    return error.flatten(1).sum(1).mean()


@RECONSTRUCTION_LOSSES.register("bce")
def summed_binary_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    # tanh(a) = 2 * sigmoid(2a) - 1: the Bernoulli logit of a pixel is twice the pre-tanh value.
    probability = (target.float() + 1) / 2
    loss = F.binary_cross_entropy_with_logits(2 * logits.float(), probability, reduction="none")
    return loss.flatten(1).sum(1).mean()


def _kl_terms(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per image and latent dimension: (B, D)."""
    mu, logvar = mu.float(), logvar.float()
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar)


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """The KL summed over latent dimensions, batch mean."""
    return _kl_terms(mu, logvar).sum(1).mean()


def kl_per_dimension(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """The same KL, per latent dimension (D,): which dimensions the VAE actually uses."""
    return _kl_terms(mu, logvar).mean(0)


# GAN losses. Scores are raw logits / critic values (B,). The discriminator's loss is split
# into its real and fake halves so each half can run its own forward and backward pass:
# BatchNorm critics (DCGAN) then see all-real and all-fake batches, as in the reference
# DCGAN, and DDP sees one forward per backward.
class GANLoss(ABC):
    @abstractmethod
    def discriminator_real(self, real: torch.Tensor) -> torch.Tensor:
        """The discriminator's loss on real images' scores."""

    @abstractmethod
    def discriminator_fake(self, fake: torch.Tensor) -> torch.Tensor:
        """The discriminator's loss on generated images' scores."""

    @abstractmethod
    def generator(self, fake: torch.Tensor) -> torch.Tensor:
        """The generator's loss on generated images' scores."""


GAN_LOSSES: Registry[type[GANLoss]] = Registry("GAN loss")


@GAN_LOSSES.register("nonsaturating")
class NonSaturatingLoss(GANLoss):
    """The original GAN loss with the generator's non-saturating form (DCGAN)."""

    def discriminator_real(self, real: torch.Tensor) -> torch.Tensor:
        return F.softplus(-real.float()).mean()  # -log sigmoid(real)

    def discriminator_fake(self, fake: torch.Tensor) -> torch.Tensor:
        return F.softplus(fake.float()).mean()  # -log(1 - sigmoid(fake))

    def generator(self, fake: torch.Tensor) -> torch.Tensor:
        return F.softplus(-fake.float()).mean()


@GAN_LOSSES.register("hinge")
class HingeLoss(GANLoss):
    """Hinge loss (Lim & Ye 2017; SNGAN, SAGAN, BigGAN)."""

    def discriminator_real(self, real: torch.Tensor) -> torch.Tensor:
        return F.relu(1 - real.float()).mean()

    def discriminator_fake(self, fake: torch.Tensor) -> torch.Tensor:
        return F.relu(1 + fake.float()).mean()

    def generator(self, fake: torch.Tensor) -> torch.Tensor:
        return -fake.float().mean()
