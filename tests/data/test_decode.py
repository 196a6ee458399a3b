"""Crops and colour modes: the one place faces are framed."""

import io

import numpy as np
import pytest
from PIL import Image

from facegen.data.decode import Crop, decode_face, describe_error
from tests.conftest import BACKGROUND_RGB, BOX_RGB, celeba_image


def jpeg(image: Image.Image, quality: int = 95) -> io.BytesIO:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    return buffer


def test_celeba_crop_box_on_the_aligned_geometry():
    assert Crop.parse("140").box(178, 218) == (19.0, 39.0, 159.0, 179.0)
    assert Crop.parse(140).box(89, 109) == (9.5, 19.5, 79.5, 89.5)  # scales with the source
    assert Crop.parse("full").box(178, 218) == (0.0, 20.0, 178.0, 198.0)
    assert Crop.parse("500").box(178, 218) == (0.0, 20.0, 178.0, 198.0)  # clipped to the image
    assert str(Crop.parse("full")) == "full" and str(Crop.parse("120")) == "120"


@pytest.mark.parametrize("text", ["0", "-3", "wide", "1.5"])
def test_bad_crops_are_refused(text):
    with pytest.raises(ValueError, match="crop"):
        Crop.parse(text)


@pytest.mark.parametrize("size", [32, 64, 128])
def test_default_crop_is_exactly_the_coloured_box(size):
    buffer = io.BytesIO()
    celeba_image(7).save(buffer, format="PNG")  # lossless: only the crop can move colours
    face = decode_face(buffer, size, Crop(140)).astype(int)
    assert face.shape == (size, size, 3)
    box = np.array([BOX_RGB[0], 70, BOX_RGB[2]])
    # Inside, exactly the box; only the resize filter's reach touches the outer two pixels,
    # and a box shifted by a single source pixel would show background there.
    assert np.abs(face[2:-2, 2:-2] - box).max() == 0
    assert np.abs(face - box).mean() < 3


def test_a_wider_crop_shows_the_background_around_the_box():
    face = decode_face(jpeg(celeba_image(0)), 64, Crop(170)).astype(int)
    assert np.abs(face[0, 0] - np.array(BACKGROUND_RGB)).max() < 12
    assert np.abs(face[32, 32] - np.array([*BOX_RGB[:1], 0, BOX_RGB[2]])).max() < 12


def test_half_size_copy_gives_the_same_face():
    full = decode_face(jpeg(celeba_image(3)), 64, Crop(140)).astype(int)
    half = decode_face(jpeg(celeba_image(3, 89, 109)), 64, Crop(140)).astype(int)
    assert np.abs(full - half).mean() < 3


def test_jpeg_draft_decoding_stays_close_to_full_decoding():
    rng = np.random.default_rng(0)
    # Smooth random content, like a photo: draft decoding differs by a few levels only.
    small = rng.integers(0, 256, size=(28, 23, 3), dtype=np.uint8)
    image = Image.fromarray(small).resize((178, 218), Image.Resampling.BICUBIC)
    drafted = decode_face(jpeg(image), 64, Crop(140)).astype(int)
    plain = np.asarray(
        image.resize((64, 64), Image.Resampling.BICUBIC, box=(19, 39, 159, 179))
    ).astype(int)
    assert np.abs(drafted - plain).mean() < 4


@pytest.mark.parametrize("mode", ["L", "CMYK", "RGBA", "LA", "P", "I;16"])
def test_every_colour_mode_becomes_rgb(mode):
    base = Image.new("RGB", (60, 60), (120, 120, 120))
    if mode == "I;16":
        image = Image.new("I;16", (60, 60), 120 * 256)
    elif mode == "P":
        image = base.quantize(colors=2)  # an exact palette: plain convert("P") dithers
    else:
        image = base.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format="TIFF" if mode in ("CMYK", "I;16") else "PNG")
    buffer.seek(0)
    face = decode_face(buffer, 32, Crop(None))
    assert face.shape == (32, 32, 3) and face.dtype == np.uint8
    assert np.abs(face.astype(int) - 120).max() <= 3


def test_transparent_pixels_are_laid_on_white():
    image = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    buffer.seek(0)
    assert (decode_face(buffer, 32, Crop(None)) == 255).all()


def test_damaged_files_raise_errors_with_short_reasons():
    with pytest.raises(OSError) as error:
        decode_face(io.BytesIO(b"this is not a picture"), 64, Crop(140))
    assert describe_error(error.value).startswith("not an image")
    data = jpeg(celeba_image(1)).getvalue()
    with pytest.raises(OSError) as error:
        decode_face(io.BytesIO(data[: len(data) // 2]), 64, Crop(140))
    assert describe_error(error.value) == "truncated image"
