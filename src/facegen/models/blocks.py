"""Building blocks shared by the models: how many stages a size needs, and the convolutional
encoder and decoder that the AE and the VAE both use.

Every architecture halves (or doubles) the resolution once per stage between the image and
a 4x4 feature map, so a size S has ``log2(S / 4)`` stages: 3 at 32, 4 at 64, 5 at 128.
"""

from __future__ import annotations

import torch
from torch import nn

from facegen.errors import FacegenError

BASE_SIDE = 4  # side of the smallest feature map, where the latent is read or written


def stage_count(image_size: int) -> int:
    """Number of 2x resampling stages between ``image_size`` and the 4x4 base map."""
    stages = (image_size // BASE_SIDE).bit_length() - 1
    if image_size < 2 * BASE_SIDE or BASE_SIDE * 2**stages != image_size:
        raise FacegenError(f"image size {image_size} is not 4 times a power of two")
    return stages


def stage_widths(image_size: int, width: int, max_multiple: int) -> list[int]:
    """Channels of each stage from the image side down: ``width`` doubling per stage, capped
    at ``max_multiple * width``.

    >>> stage_widths(128, 64, 8)
    [64, 128, 256, 512, 512]
    """
    return doubling_widths(width, stage_count(image_size), max_multiple)


def doubling_widths(width: int, count: int, max_multiple: int) -> list[int]:
    """``count`` channel widths doubling from ``width``, capped at ``max_multiple * width``:
    :func:`stage_widths`, for a network with another number of stages (SNGAN's generator
    has one width more, for the 4x4 map it starts from).

    >>> doubling_widths(16, 6, 16)
    [16, 32, 64, 128, 256, 256]
    """
    return [width * min(2**index, max_multiple) for index in range(count)]


class ConvEncoder(nn.Module):
    """Images (B, 3, S, S) -> features (B, widths[-1] * 4 * 4): stride-2 4x4 convolutions,
    each followed by BatchNorm and LeakyReLU(0.2).

    A 4x4 kernel with stride 2 covers every input pixel exactly twice per axis (3x3 covers
    some once and some twice), the DCGAN choice; no bias because BatchNorm follows.
    """

    def __init__(self, widths: list[int]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for width in widths:
            layers += [
                nn.Conv2d(channels, width, 4, 2, 1, bias=False),
                nn.BatchNorm2d(width),
                nn.LeakyReLU(0.2),
            ]
            channels = width
        self.layers = nn.Sequential(*layers)
        self.out_features = channels * BASE_SIDE * BASE_SIDE

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.layers(x)  # (B, C, 4, 4)
        # flatten copies a channels_last map into (C, H, W) order, so the linear heads see
        # the same features whatever the memory format.
        return h.flatten(1)  # (B, C * 16)


class ConvDecoder(nn.Module):
    """Latents (B, latent_dim) -> logits (B, 3, S, S), the mirror of :class:`ConvEncoder`.

    A linear layer makes the 4x4 map; each stage doubles the side with a 4x4 stride-2
    transposed convolution + BatchNorm + ReLU, and a 3x3 convolution at full resolution
    makes the 3 output channels. Transposed 4x4/2 rather than nearest-upsample + 3x3 conv:
    the kernel is a multiple of the stride, so every output pixel gets the same number of
    taps (no built-in checkerboard), and it costs 16 instead of 36 multiply-adds per
    input pixel and channel pair, which matters on a CPU. The last stage keeps its width
    (instead of jumping straight to 3 channels) so that the output conv mixes features at
    full resolution, as in PyTorch-VAE's VanillaVAE.
    """

    def __init__(self, latent_dim: int, widths: list[int]) -> None:
        super().__init__()
        top = widths[-1]
        self.top = top
        self.project = nn.Linear(latent_dim, top * BASE_SIDE * BASE_SIDE)
        layers: list[nn.Module] = [nn.BatchNorm2d(top), nn.ReLU()]
        outputs = [*reversed(widths[:-1]), widths[0]]
        channels = top
        for width in outputs:
            layers += [
                nn.ConvTranspose2d(channels, width, 4, 2, 1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(),
            ]
            channels = width
        layers.append(nn.Conv2d(channels, 3, 3, 1, 1))
        self.layers = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.project(z).view(-1, self.top, BASE_SIDE, BASE_SIDE)  # (B, C, 4, 4)
        return self.layers(h)  # (B, 3, S, S), unbounded: tanh makes images
