"""``sngan``: a ResNet GAN with a spectrally normalised critic (SNGAN, Miyato et al. 2018),
the GAN to pick today for 64x64 faces on a CPU budget.

Why this design: DCGAN's critic is unconstrained, so its training swings between mode
collapse and divergence unless its hyper-parameters are just right. Spectral normalisation
bounds every layer of the critic to Lipschitz constant 1 (one power-iteration step per
forward pass, almost free); with the hinge loss, a ResNet generator and Adam(2e-4, betas
(0, 0.9)) it trains stably (the paper's ResNet runs take 5 critic steps per generator
step; SAGAN's alternative is one step with a 4x larger critic learning rate). This recipe,
with BigGAN's block layout, is the standard strong baseline for 64x64 and 128x128 CelebA
in the literature (Mimicry's SNGAN-64 and -128; Kurach et al. 2019 found spectral
normalisation among the most reliable choices on CelebA-HQ). The hinge loss, the critic
schedule and the generator EMA are the trainer's business; this module builds networks.

Generator: z -> linear -> a 4x4 map -> residual up-blocks (BatchNorm, ReLU, nearest 2x
upsample, 3x3 conv, BatchNorm, ReLU, 3x3 conv, plus a 1x1-conv shortcut; BigGAN's block
without class conditioning) -> BatchNorm, ReLU, 3x3 conv, tanh. Widths halve per block
down to ``g_width`` at full resolution (Mimicry's SNGAN-64 is g_width 64: 1024 ... 64).

Critic: residual down-blocks (ReLU, 3x3 conv, ReLU, 3x3 conv, 2x2 average pool, plus an
average-pool + 1x1-conv shortcut; the first block skips the leading ReLU since it sees
pixels), widths doubling from ``d_width``, then ReLU, a sum over positions, and a linear
layer to one score (Mimicry's SNGAN-64 adds a block at 4x4; left out for cost). Every conv
and the linear layer is spectrally normalised; no BatchNorm in the critic (it would break
the Lipschitz bound and mix the samples of a batch).

The default widths (16 and 16) are chosen for cost: one training image (critic forward and
backward on real and fake, generator forward and backward) costs 1.8 GFLOP against the
classic 64-filter DCGAN's 2.5, and about DCGAN's CPU time in float32 and less with
channels_last + bfloat16. Cost grows with the square of the widths, and widths that are not
multiples of 16 run poorly on CPU kernels: 24 costs well beyond its FLOPs. The measured
times are in the README (Training, **Speed**); ``benchmarks/bench_models.py`` measures them
(``--models sngan --set g_width=24 --set d_width=24`` for other widths). On a GPU, take 64
and 64 (Mimicry's SNGAN-64).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from facegen.models import MODELS
from facegen.models.base import GANModel, ModelConfig
from facegen.models.blocks import BASE_SIDE, doubling_widths, stage_count, stage_widths

MAX_WIDTH_MULTIPLE = 16
RELU_GAIN = math.sqrt(2)


@dataclass
class SNGANConfig(ModelConfig):
    """``g_width``: the generator's channels at full resolution (doubling per block toward
    the 4x4 map); ``d_width``: the critic's channels in its first block (doubling per
    block); both capped at 16x."""

    image_size: int = 64
    latent_dim: int = 128
    g_width: int = 16
    d_width: int = 16


def glorot(layer: nn.Conv2d | nn.Linear, gain: float = 1.0) -> None:
    """SNGAN's initialisation (as in its reference code): Glorot-uniform weights, with gain
    sqrt(2) on the residual branches' 3x3 convs (ReLUs follow them), 1 elsewhere; zero bias."""
    nn.init.xavier_uniform_(layer.weight, gain)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)


class GeneratorBlock(nn.Module):
    """(B, C_in, H, W) -> (B, C_out, 2H, 2W)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, 1, 1, bias=False)  # BN follows
        self.norm2 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1)
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1)
        glorot(self.conv1, RELU_GAIN)
        glorot(self.conv2, RELU_GAIN)
        glorot(self.shortcut)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.interpolate(F.relu(self.norm1(x)), scale_factor=2.0, mode="nearest")
        h = self.conv2(F.relu(self.norm2(self.conv1(h))))  # (B, C_out, 2H, 2W)
        # A 1x1 conv commutes with nearest upsampling: convolving first is 4x cheaper.
        skip = F.interpolate(self.shortcut(x), scale_factor=2.0, mode="nearest")
        return h + skip


class DiscriminatorBlock(nn.Module):
    """(B, C_in, H, W) -> (B, C_out, H/2, W/2), every layer spectrally normalised."""

    def __init__(self, in_channels: int, out_channels: int, *, first: bool) -> None:
        super().__init__()
        self.first = first  # sees pixels: a ReLU would throw away the negative half
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, 1, 1)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1)
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1)
        glorot(self.conv1, RELU_GAIN)
        glorot(self.conv2, RELU_GAIN)
        glorot(self.shortcut)
        for layer in (self.conv1, self.conv2, self.shortcut):
            spectral_norm(layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x if self.first else F.relu(x)
        h = self.conv2(F.relu(self.conv1(h)))  # (B, C_out, H, W)
        h = F.avg_pool2d(h, 2)  # (B, C_out, H/2, W/2)
        # Average pooling and a 1x1 conv commute: pooling first is 4x cheaper.
        return h + self.shortcut(F.avg_pool2d(x, 2))


class SNGANDiscriminator(nn.Module):
    """Images (B, 3, S, S) -> unbounded scores (B,), for the hinge loss."""

    def __init__(self, config: SNGANConfig) -> None:
        super().__init__()
        widths = stage_widths(config.image_size, config.d_width, MAX_WIDTH_MULTIPLE)
        channels = [3, *widths]
        self.blocks = nn.Sequential(
            *(
                DiscriminatorBlock(cin, cout, first=index == 0)
                for index, (cin, cout) in enumerate(pairwise(channels))
            )
        )
        self.score = nn.Linear(widths[-1], 1)
        glorot(self.score)
        spectral_norm(self.score)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.blocks(x))  # (B, C, 4, 4)
        # A sum over positions, not a mean, as in SNGAN's reference critic.
        return self.score(h.sum(dim=(2, 3))).flatten()  # (B,)


@MODELS.register("sngan")
class SNGAN(GANModel):
    """The ResNet generator; ``make_discriminator()`` builds the spectral-norm critic."""

    name = "sngan"
    config_class = SNGANConfig
    config: SNGANConfig

    def __init__(self, config: SNGANConfig) -> None:
        super().__init__(config)
        count = stage_count(config.image_size) + 1  # a width per resolution, S down to 4x4
        widths = doubling_widths(config.g_width, count, MAX_WIDTH_MULTIPLE)[::-1]
        self.top = widths[0]  # channels of the 4x4 map
        self.project = nn.Linear(config.latent_dim, self.top * BASE_SIDE * BASE_SIDE)
        self.blocks = nn.Sequential(*(GeneratorBlock(cin, cout) for cin, cout in pairwise(widths)))
        self.norm = nn.BatchNorm2d(widths[-1])
        self.to_rgb = nn.Conv2d(widths[-1], 3, 3, 1, 1)
        glorot(self.project)
        glorot(self.to_rgb)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        h = self.project(z).view(-1, self.top, BASE_SIDE, BASE_SIDE)  # (B, C, 4, 4)
        h = self.blocks(h)  # (B, g_width, S, S)
        return torch.tanh(self.to_rgb(F.relu(self.norm(h))))  # (B, 3, S, S) in [-1, 1]

    def make_discriminator(self) -> SNGANDiscriminator:
        return SNGANDiscriminator(self.config)
