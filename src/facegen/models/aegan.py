"""``aegan``: the autoencoder whose decoder is also trained against a patch critic.

A plain autoencoder trained on pixel errors reconstructs the average of what a latent could
mean: soft skin, smeared hair, mushy eyes, because a blurry guess costs less squared error
than a sharp one in the wrong place. The recipe that makes modern image autoencoders sharp
(VQGAN, Esser et al. 2021; the encoders of latent diffusion) keeps the reconstruction loss
and adds a small convolutional critic that judges *patches* of the output: a blurred patch
is easy to tell from a real one whatever it depicts, so the decoder is pushed towards
plausible texture without being asked to copy pixels it cannot know. The training side (the
critic phase, the hinge loss, the adaptive weight, feature matching, the warm-up) lives in
:class:`facegen.training.objectives.AdversarialAutoencoderObjective`; this module builds the
networks.

The model is the :class:`~facegen.models.ae.AE` (same encoder, decoder and saved weights);
only training differs, and the critic is not part of the saved inference model. Like the
AE, it generates through a sampler fitted on its training latents (``gmm`` or ``flow``).

Critic: ``d_layers`` stride-2 4x4 convolutions from ``d_width`` channels (doubling), each
followed by LeakyReLU(0.2), then a 3x3 convolution to one score per patch: at 64x64 with 3
layers, an 8x8 map of scores whose receptive fields are 38 pixels wide. Every layer is
spectrally normalised (no BatchNorm: real faces and reconstructions go through it as one
batch, whose statistics would mix the two, and feature matching compares a face with its
own reconstruction, which batch statistics would blur). At ``d_width`` 32 it costs about a
fifth of the autoencoder's forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from facegen.errors import FacegenError
from facegen.models import MODELS
from facegen.models.ae import AE, AEConfig
from facegen.models.blocks import stage_count


@dataclass
class AEGANConfig(AEConfig):
    """The AE's fields, plus the critic's: ``d_width`` channels in its first layer and
    ``d_layers`` stride-2 layers (each halves the side; at most the AE's stage count)."""

    d_width: int = 32
    d_layers: int = 3

    def check(self) -> None:
        super().check()
        if self.d_layers > stage_count(self.image_size):
            raise FacegenError(
                f"d_layers {self.d_layers} is too many for {self.image_size}x"
                f"{self.image_size} images: at most {stage_count(self.image_size)}"
            )


class PatchCritic(nn.Module):
    """Images (B, 3, S, S) -> patch scores (B, 1, P, P), P = S / 2**layers; with
    ``features=True`` also the activations after each stride-2 layer (for feature matching)."""

    def __init__(self, width: int, layers: int) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        channels = 3
        for index in range(layers):
            out = width * 2**index
            blocks.append(
                nn.Sequential(spectral_norm(nn.Conv2d(channels, out, 4, 2, 1)), nn.LeakyReLU(0.2))
            )
            channels = out
        self.blocks = nn.ModuleList(blocks)
        self.head = spectral_norm(nn.Conv2d(channels, 1, 3, 1, 1))

    def forward(
        self, x: torch.Tensor, features: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        activations = []
        for block in self.blocks:
            x = block(x)
            activations.append(x)
        scores = self.head(x)  # (B, 1, P, P)
        return (scores, activations) if features else scores


@MODELS.register("aegan")
class AEGAN(AE):
    """The AE trained with a patch critic (see the module docstring); inference is the AE's."""

    name = "aegan"
    config_class = AEGANConfig
    objective = "aegan"
    has_critic = True
    config: AEGANConfig

    def make_discriminator(self) -> nn.Module:
        return PatchCritic(self.config.d_width, self.config.d_layers)
