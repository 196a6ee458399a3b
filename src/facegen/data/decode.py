"""Decode one image into a square RGB face crop: the single place where crops are made.

`data prepare` runs it in worker processes, and later commands (an uploaded photo, an
interpolation between two real faces) call it so that their faces are framed exactly like
the packed data set's. It imports only NumPy and Pillow, so worker processes start fast;
OpenCV is loaded only when faces are to be detected.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps

from facegen.data.align import NoFaceError, align_face
from facegen.data.celeba import ALIGNED_HEIGHT, ALIGNED_WIDTH
from facegen.errors import first_line

# The WAE / RAE / pythae protocol for CelebA: the centred 140x140 box of the 178x218 image.
CELEBA_CROP = 140
# Transparent pixels are laid on white, as a photo on paper.
BACKGROUND = (255, 255, 255)


@dataclass(frozen=True)
class Crop:
    """Which square of an image becomes the face.

    ``side`` is the box side in pixels of the 178-pixel-wide aligned CelebA geometry; it
    scales with the image's width, so a half-size copy of CelebA gives the same faces.
    ``side=None`` means the largest centred square ("full").

    >>> Crop.parse("140").box(178, 218)
    (19.0, 39.0, 159.0, 179.0)
    """

    side: int | None

    @classmethod
    def parse(cls, text: str | int) -> Crop:
        """``"full"`` or a positive integer box side (``"140"`` is CelebA's default)."""
        if str(text) == "full":
            return cls(None)
        try:
            side = int(text)
        except ValueError:
            raise ValueError(f"crop must be 'full' or a box side in pixels, not {text!r}") from None
        if side <= 0:
            raise ValueError(f"crop side must be positive, not {side}")
        return cls(side)

    def __str__(self) -> str:
        return "full" if self.side is None else str(self.side)

    def box(self, width: int, height: int) -> tuple[float, float, float, float]:
        """The centred square (left, top, right, bottom) in the image's own pixels."""
        if self.side is None:
            side = float(min(width, height))
        else:
            side = min(self.side * width / ALIGNED_WIDTH, float(width), float(height))
        left = (width - side) / 2
        top = (height - side) / 2
        return (left, top, left + side, top + side)

    def aligned_box(self) -> tuple[float, float, float, float]:
        """The box on the 178x218 aligned geometry (for the manifest)."""
        return self.box(ALIGNED_WIDTH, ALIGNED_HEIGHT)


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode as RGB: grayscale replicated, CMYK converted, alpha laid on white."""
    if image.mode == "RGB":
        return image
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*BACKGROUND, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit grayscale: keep the top 8 bits instead of clipping everything to white.
        array = np.asarray(image, dtype=np.uint32) >> 8
        return Image.fromarray(array.astype(np.uint8), "L").convert("RGB")
    return image.convert("RGB")


def decode_face(
    source: str | BinaryIO, size: int, crop: Crop, *, detect_faces: bool = False
) -> np.ndarray:
    """Read an image file and return its face crop as uint8 [size, size, 3].

    JPEGs are decoded at 1/2, 1/4 or 1/8 scale when the crop still keeps at least ``size``
    pixels: the decoder then does a fraction of the work (benchmarks/: about 3
    pixel levels of difference). With ``detect_faces`` the photo is decoded at full size,
    its largest face is found and warped into CelebA's aligned 178x218 geometry
    (:func:`facegen.data.align.align_face`), and ``crop`` applies to that. Raises
    ``OSError`` / ``ValueError`` for files that are not images or are damaged, and
    :class:`facegen.data.align.NoFaceError` (a ``ValueError``) when no face is found.

    >>> decode_face("upload.jpg", 64, Crop(140), detect_faces=True).shape
    (64, 64, 3)
    """
    with Image.open(source) as image:
        if detect_faces:
            return _decode_aligned(image, size, crop)
        width, height = image.size
        left, top, right, bottom = crop.box(width, height)
        if image.format == "JPEG":
            reduction = 1
            while reduction < 8 and (right - left) / (reduction * 2) >= size:
                reduction *= 2
            if reduction > 1:
                image.draft("RGB", (-(-width // reduction), -(-height // reduction)))
                scale = image.size[0] / width
                left, top, right, bottom = left * scale, top * scale, right * scale, bottom * scale
        rgb = to_rgb(image)
        face = rgb.resize((size, size), Image.Resampling.BICUBIC, box=(left, top, right, bottom))
        return np.asarray(face, dtype=np.uint8)


def _decode_aligned(image: Image.Image, size: int, crop: Crop) -> np.ndarray:
    # Phone photos store their orientation in EXIF: a sideways face is no face to the
    # detector, so turn the pixels upright first.
    aligned = align_face(to_rgb(ImageOps.exif_transpose(image)))
    if aligned is None:
        raise NoFaceError()
    face = aligned.resize((size, size), Image.Resampling.BICUBIC, box=crop.box(*aligned.size))
    return np.asarray(face, dtype=np.uint8)


def describe_error(error: BaseException) -> str:
    """A short reason for a file that could not be decoded, for the manifest."""
    text = first_line(error)
    if "cannot identify image file" in text:
        return "not an image (or an image format Pillow cannot read)"
    if "truncated" in text:
        return "truncated image"
    return text
