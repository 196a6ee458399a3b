"""``dcgan``: the classic DCGAN (Radford et al. 2016), as in pytorch/examples' dcgan.

Generator: z as a (B, nz, 1, 1) map -> a 4x4 transposed convolution to 8w channels, then
stride-2 4x4 transposed convolutions halving the width and doubling the side, BatchNorm and
ReLU after each, and a last one to 3 channels with tanh. Discriminator: its mirror, stride-2
4x4 convolutions with LeakyReLU(0.2) (no BatchNorm on the first, which sees raw pixels) and
a 4x4 convolution to one logit. No biases (BatchNorm follows), no sigmoid (the loss takes
logits). At 64x64 the widths are 8w, 4w, 2w, w; each size step adds or removes one stage,
capped at 8w. Weights start from N(0, 0.02), BatchNorm scales from N(1, 0.02), as the paper
prescribes; drawn from the global RNG, so ``torch.manual_seed`` fixes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import torch
from torch import nn

from facegen.models import MODELS
from facegen.models.base import GANModel, ModelConfig
from facegen.models.blocks import stage_widths

MAX_WIDTH_MULTIPLE = 8


@dataclass
class DCGANConfig(ModelConfig):
    """``g_width`` / ``d_width``: channels of the generator's last hidden stage and of the
    discriminator's first (both at half the image side)."""

    image_size: int = 64
    latent_dim: int = 100
    g_width: int = 64
    d_width: int = 64


def init_dcgan_weights(module: nn.Module) -> None:
    """The DCGAN initialisation, for ``module.apply``."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class DCGANDiscriminator(nn.Module):
    """Images (B, 3, S, S) -> logits (B,)."""

    def __init__(self, config: DCGANConfig) -> None:
        super().__init__()
        widths = stage_widths(config.image_size, config.d_width, MAX_WIDTH_MULTIPLE)
        layers: list[nn.Module] = [nn.Conv2d(3, widths[0], 4, 2, 1, bias=False), nn.LeakyReLU(0.2)]
        for channels, width in pairwise(widths):
            layers += [
                nn.Conv2d(channels, width, 4, 2, 1, bias=False),
                nn.BatchNorm2d(width),
                nn.LeakyReLU(0.2),
            ]
        layers.append(nn.Conv2d(widths[-1], 1, 4, 1, 0, bias=False))  # 4x4 map -> 1x1
        self.layers = nn.Sequential(*layers)
        self.apply(init_dcgan_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x).flatten()  # (B, 1, 1, 1) -> (B,)


@MODELS.register("dcgan")
class DCGAN(GANModel):
    """The DCGAN generator; ``make_discriminator()`` builds its critic."""

    name = "dcgan"
    config_class = DCGANConfig
    config: DCGANConfig

    def __init__(self, config: DCGANConfig) -> None:
        super().__init__(config)
        widths = stage_widths(config.image_size, config.g_width, MAX_WIDTH_MULTIPLE)
        top = widths[-1]
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(config.latent_dim, top, 4, 1, 0, bias=False),  # 1x1 -> 4x4
            nn.BatchNorm2d(top),
            nn.ReLU(),
        ]
        for channels, width in pairwise(reversed(widths)):
            layers += [
                nn.ConvTranspose2d(channels, width, 4, 2, 1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(),
            ]
        layers += [nn.ConvTranspose2d(widths[0], 3, 4, 2, 1, bias=False), nn.Tanh()]
        self.layers = nn.Sequential(*layers)
        self.apply(init_dcgan_weights)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.layers(z.view(-1, self.latent_dim, 1, 1))  # (B, 3, S, S) in [-1, 1]

    def make_discriminator(self) -> DCGANDiscriminator:
        return DCGANDiscriminator(self.config)
