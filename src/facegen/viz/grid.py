"""Tiling images into one picture (torchvision's make_grid, without torchvision), with
labels where a person needs them, and GIFs."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

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


# Label text: Pillow's bundled font at a size that stays readable beside 64-pixel faces.
LABEL_SIZE = 13
LABEL_COLOUR = (40, 40, 40)


def _font(size: int = LABEL_SIZE) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def upscale(images: np.ndarray, min_side: int) -> np.ndarray:
    """uint8 images [..., H, W, 3] repeated by a whole factor (nearest neighbour, so pixels
    stay honest) until they are at least ``min_side`` pixels high."""
    factor = max(1, -(-min_side // images.shape[-3]))
    if factor == 1:
        return images
    return images.repeat(factor, axis=-3).repeat(factor, axis=-2)


def labelled_grid(
    images: np.ndarray,
    row_labels: Sequence[str] | None = None,
    column_labels: Sequence[str] | None = None,
    title: str | None = None,
    *,
    min_side: int = 64,
    padding: int = 2,
) -> np.ndarray:
    """Tile uint8 images [R, C, H, W, 3] as R rows of C, with a label left of each row, one
    above each column and an optional title; faces smaller than ``min_side`` are enlarged.

    Labels use Pillow's bundled font, which has Latin letters only (write "sd", not sigma).

    >>> labelled_grid(np.zeros((2, 5, 64, 64, 3), np.uint8), ["a", "b"], list("12345")).shape[2]
    3
    """
    images = np.asarray(images)
    if images.ndim != 5 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(
            f"expected uint8 images [R, C, H, W, 3], got {images.dtype} {images.shape}"
        )
    rows, columns = images.shape[:2]
    for labels, count, what in ((row_labels, rows, "row"), (column_labels, columns, "column")):
        if labels is not None and len(labels) != count:
            raise ValueError(f"{len(labels)} {what} labels for {count} {what}s")
    images = upscale(images, min_side)
    body = image_grid(images.reshape(-1, *images.shape[2:]), columns=columns, padding=padding)
    font = _font()
    draw_probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))

    def text_width(text: str) -> int:
        return int(draw_probe.textlength(text, font=font))

    line = LABEL_SIZE + 6
    left = max((text_width(t) for t in row_labels), default=0) + 10 if row_labels else 0
    top = (line if column_labels else 0) + (line + 4 if title else 0)
    width = left + body.shape[1]
    if title:
        width = max(width, text_width(title) + 12)
    canvas = Image.new("RGB", (width, top + body.shape[0]), (255, 255, 255))
    canvas.paste(Image.fromarray(body), (left, top))
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((6, 4), title, fill=LABEL_COLOUR, font=font)
    cell_height, cell_width = images.shape[2] + padding, images.shape[3] + padding
    for i, text in enumerate(column_labels or ()):
        centre = left + padding + i * cell_width + images.shape[3] / 2
        draw.text((centre, top - 3), text, fill=LABEL_COLOUR, font=font, anchor="ms")
    for i, text in enumerate(row_labels or ()):
        middle = top + padding + i * cell_height + images.shape[2] / 2
        draw.text((left - 6, middle), text, fill=LABEL_COLOUR, font=font, anchor="rm")
    return np.asarray(canvas)


def save_gif(frames: np.ndarray, path: str | Path, *, seconds_per_frame: float = 0.1) -> Path:
    """Write uint8 frames [T, H, W, 3] as a looping GIF that plays forth and back, atomically.
    Faces have few colours per frame, so the GIF palette (256 colours) costs little."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or not len(frames):
        raise ValueError(f"expected uint8 frames [T, H, W, 3], got {frames.dtype} {frames.shape}")
    sequence = [Image.fromarray(f) for f in np.concatenate([frames, frames[-2:0:-1]])]
    path = Path(path)
    with atomic_path(path) as tmp:
        sequence[0].save(
            tmp,
            format="GIF",
            save_all=True,
            append_images=sequence[1:],
            duration=round(seconds_per_frame * 1000),
            loop=0,
        )
    return path


def paired_rows(top: np.ndarray, bottom: np.ndarray, columns: int) -> np.ndarray:
    """uint8 images [N, H, W, 3] in pairs of rows (``columns`` of ``top`` above the same
    ``columns`` of ``bottom``) as [2 * ceil(N / columns), columns, H, W, 3]; a short last
    pair is padded with white, so every face stays above its partner."""
    if top.shape != bottom.shape:
        raise ValueError(f"paired images differ in shape: {top.shape} and {bottom.shape}")
    rows = -(-len(top) // columns)
    padded = np.full((2, rows * columns, *top.shape[1:]), 255, np.uint8)
    padded[0, : len(top)], padded[1, : len(bottom)] = top, bottom
    pairs = padded.reshape(2, rows, columns, *top.shape[1:])  # (2, R, C, H, W, 3)
    return pairs.transpose(1, 0, *range(2, pairs.ndim)).reshape(2 * rows, columns, *top.shape[1:])
