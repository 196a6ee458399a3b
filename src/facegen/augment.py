"""Differentiable augmentation for GAN training on few faces (DiffAugment, Zhao et al. 2020).

With a few hundred training faces a GAN's critic memorises them within a few thousand steps
and the generator's signal collapses. Augmenting every image the critic sees, real and
generated alike and in both phases, keeps the critic from memorising while leaving the
target distribution unchanged: the generator is never asked to produce augmented faces,
because the same random transformations are applied to its output, and gradients flow back
through them to the generator. The three policies of the paper, written for images in
[-1, 1] (B, 3, H, W):

- ``color``: per image, brightness shift in [-0.5, 0.5) (on a [0, 1] scale), saturation
  scale in [0, 2), contrast scale in [0.5, 1.5);
- ``translation``: per image, an integer shift of up to 1/8 of the side each way, filling
  with zeros (mid grey);
- ``cutout``: per image, a square of half the side at a random place, set to zero.

Randomness comes from the caller's ``torch.Generator`` (on the CPU), so a seeded training step
augments the same way on every device and on resume.

>>> augment = Augmentation.parse("color,translation,cutout")
>>> augmented = augment(images, generator)  # same shape, differentiable in ``images``
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from facegen.registry import Registry

Transform = Callable[[torch.Tensor, torch.Generator], torch.Tensor]
TRANSFORMS: Registry[Transform] = Registry("augmentation")
TRANSLATION_RATIO = 1 / 8
CUTOUT_RATIO = 1 / 2


def _uniform(n: int, low: float, high: float, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """(n, 1, 1, 1) uniform numbers in [low, high), drawn on the CPU, on x's device/dtype."""
    values = low + (high - low) * torch.rand(n, 1, 1, 1, generator=g)
    return values.to(device=x.device, dtype=x.dtype)


@TRANSFORMS.register("color")
def color(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    n = x.shape[0]
    x = x + 2 * _uniform(n, -0.5, 0.5, x, g)  # brightness: [-1, 1] spans twice [0, 1]
    gray = x.mean(dim=1, keepdim=True)
    x = (x - gray) * _uniform(n, 0.0, 2.0, x, g) + gray  # saturation
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * _uniform(n, 0.5, 1.5, x, g) + mean  # contrast


@TRANSFORMS.register("translation")
def translation(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    n, _, height, width = x.shape
    pad = max(1, round(min(height, width) * TRANSLATION_RATIO))
    shifts = torch.randint(-pad, pad + 1, (2, n, 1, 1), generator=g).to(x.device)
    rows = torch.arange(height, device=x.device).view(1, height, 1) + pad + shifts[0]
    cols = torch.arange(width, device=x.device).view(1, 1, width) + pad + shifts[1]
    # One gather over the padded pixels (its backward a scatter-add): 2.5x faster with the
    # backward than indexing padded[batch, rows, cols], whose backward is an index_put.
    padded = F.pad(x, (pad, pad, pad, pad)).permute(0, 2, 3, 1).flatten(1, 2)  # (B, Hp*Wp, C)
    index = rows * (width + 2 * pad) + cols  # (B, H, W) into the flattened padded side
    index = index.view(n, height * width, 1).expand(n, height * width, padded.shape[2])
    return padded.gather(1, index).view(n, height, width, -1).permute(0, 3, 1, 2)  # (B,C,H,W)


@TRANSFORMS.register("cutout")
def cutout(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    n, _, height, width = x.shape
    cut_h, cut_w = round(height * CUTOUT_RATIO), round(width * CUTOUT_RATIO)
    # Centres anywhere on the image, so a square can hang over an edge (as in the paper).
    top = torch.randint(0, height + 1 - cut_h % 2, (n, 1, 1), generator=g) - cut_h // 2
    left = torch.randint(0, width + 1 - cut_w % 2, (n, 1, 1), generator=g) - cut_w // 2
    rows = torch.arange(height).view(1, height, 1)
    cols = torch.arange(width).view(1, 1, width)
    inside = (rows >= top) & (rows < top + cut_h) & (cols >= left) & (cols < left + cut_w)
    keep = (~inside).unsqueeze(1).to(device=x.device, dtype=x.dtype)  # (B, 1, H, W)
    return x * keep


class Augmentation:
    """A fixed sequence of transforms, applied in the order named."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names
        self.transforms = [TRANSFORMS.get(name) for name in names]

    @classmethod
    def parse(cls, text: str) -> Augmentation:
        """``"color,translation,cutout"`` (spaces allowed); ``""`` is no augmentation."""
        return cls(tuple(part.strip() for part in text.split(",") if part.strip()))

    def __bool__(self) -> bool:
        return bool(self.transforms)

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        if not self.transforms:
            return x
        # The critic gets the memory layout it was given (channels_last on the fast paths).
        layout = (
            torch.channels_last
            if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
            else torch.contiguous_format
        )
        for transform in self.transforms:
            x = transform(x, g)
        return x.contiguous(memory_format=layout)
