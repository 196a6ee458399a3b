"""DiffAugment: what each transform does to a face, seeding, gradients, and config errors."""

from __future__ import annotations

import pytest
import torch

from facegen.augment import TRANSFORMS, Augmentation, color, cutout, translation
from facegen.config import TrainConfig
from facegen.errors import FacegenError


def faces(n: int = 6, side: int = 32) -> torch.Tensor:
    return torch.rand(n, 3, side, side, generator=torch.Generator().manual_seed(0)) * 2 - 1


def seeded(seed: int = 1) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("name", TRANSFORMS.names())
def test_each_transform_keeps_shape_is_seeded_and_passes_gradients(name):
    x = faces().requires_grad_(True)
    transform = TRANSFORMS.get(name)
    y = transform(x, seeded(1))
    assert y.shape == x.shape and y.dtype == x.dtype
    assert torch.equal(y, transform(x, seeded(1)))
    assert not torch.equal(y, transform(x, seeded(2)))
    y.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_translation_shifts_each_face_by_at_most_an_eighth_filling_with_zero():
    x = faces(8, 32) + 2  # never zero, so the fill is recognisable
    y = translation(x, seeded(3))
    for before, after in zip(x, y, strict=True):
        matches = []
        for dy in range(-4, 5):
            for dx in range(-4, 5):
                expected = torch.zeros_like(before)
                src = before[:, max(0, dy) : 32 + min(0, dy), max(0, dx) : 32 + min(0, dx)]
                expected[:, max(0, -dy) : 32 + min(0, -dy), max(0, -dx) : 32 + min(0, -dx)] = src
                if torch.equal(after, expected):
                    matches.append((dy, dx))
        assert len(matches) == 1, matches


@pytest.mark.parametrize("channels_last", [False, True])
def test_translation_backward_is_the_shift_back(channels_last):
    x = faces(8, 32)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    weights = torch.rand(8, 3, 32, 32, generator=seeded(7))
    y = translation(x, seeded(3))
    (y * weights).sum().backward()
    # A linear map: <T x, w> = <x, T* w> for its adjoint T*, which backward computes.
    assert torch.allclose((y * weights).sum(), (x * x.grad).sum(), rtol=1e-5)
    kept = x.grad != 0  # each pixel moves to at most one place, so its gradient is one weight
    assert torch.isin(x.grad[kept], weights).all()


def test_cutout_zeroes_one_square_of_at_most_half_the_side_and_keeps_the_rest():
    x = faces(16, 32) + 2
    y = cutout(x, seeded(4))
    for before, after in zip(x, y, strict=True):
        zero = after[0] == 0  # (H, W)
        assert torch.equal(zero, (after == 0).all(dim=0))
        assert torch.equal(after[:, ~zero], before[:, ~zero])
        rows, cols = zero.any(dim=1).nonzero(), zero.any(dim=0).nonzero()
        assert 0 < len(rows) <= 16 and 0 < len(cols) <= 16
        assert zero.sum() == len(rows) * len(cols)  # one solid rectangle
        assert rows.max() - rows.min() + 1 == len(rows)


def test_color_is_one_affine_change_per_face():
    x = faces(4, 16)
    y = color(x, seeded(5))
    for before, after in zip(x, y, strict=True):
        # brightness, then saturation about the grey level, then contrast about the mean:
        # each pixel is a fixed linear function of its own RGB values plus a constant
        a = torch.cat([before.reshape(3, -1).T, torch.ones(16 * 16, 1)], dim=1)
        solution = torch.linalg.lstsq(a, after.reshape(3, -1).T).solution
        assert torch.allclose(a @ solution, after.reshape(3, -1).T, atol=1e-5)
    assert not torch.allclose(x, y)


def test_augmentation_applies_names_in_order_and_keeps_channels_last():
    x = faces().contiguous(memory_format=torch.channels_last)
    augment = Augmentation.parse(" color , translation,cutout ")
    assert augment.names == ("color", "translation", "cutout") and augment
    y = augment(x, seeded(6))
    g = seeded(6)
    assert torch.equal(y, cutout(translation(color(x, g), g), g))
    assert y.is_contiguous(memory_format=torch.channels_last)
    assert not Augmentation.parse("")


def test_unknown_augmentation_is_refused_by_the_config():
    with pytest.raises(FacegenError, match="unknown augmentation 'flip'; choose one of: color"):
        TrainConfig(model="sngan", augment="color,flip").validate()
