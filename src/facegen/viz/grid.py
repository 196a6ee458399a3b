"""Tiling images into one picture (torchvision's make_grid, without torchvision)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image

from facegen.files import atomic_path


def image_grid(
    images: np.ndarray, columns: int | None = None, padding: int = 2, background: int = 255
) -> np.ndarray:
    """Tile uint8 images [N, H, W, 3] into one [rows*(H+p)+p, columns*(W+p)+p, 3] image.

    ``columns`` defaults to a near-square layout.

    >>> image_grid(np.zeros((64, 32, 32, 3), np.uint8)).shape
    (274, 274, 3)
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[3] != 3 or images.dtype != np.uint8:
        raise ValueError(f"expected uint8 images [N, H, W, 3], got {images.dtype} {images.shape}")
    n, height, width, _ = images.shape
    if n == 0:
        raise ValueError("no images to tile")
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    grid = np.full(
        (rows * (height + padding) + padding, columns * (width + padding) + padding, 3),
        background,
        dtype=np.uint8,
    )
    for i, image in enumerate(images):
        top = padding + (i // columns) * (height + padding)
        left = padding + (i % columns) * (width + padding)
        grid[top : top + height, left : left + width] = image
    return grid


def save_png(image: np.ndarray, path: str | Path) -> Path:
    """Write a uint8 [H, W, 3] image as PNG, atomically; returns the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        Image.fromarray(np.asarray(image, dtype=np.uint8)).save(tmp, format="PNG")
    return path
