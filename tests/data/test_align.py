"""Face detection and alignment: faces pasted into larger photos at known places, sizes and
rolls come back framed like CelebA's aligned images, and photos with no face are refused."""

import importlib.util
import io
import math
import sys

import numpy as np
import pytest
from PIL import Image

from facegen.data import align
from facegen.data.align import (
    FaceAlignment,
    NoFaceError,
    align_face,
    find_face,
    warp_aligned,
)
from facegen.data.decode import Crop, decode_face
from facegen.data.synth import SynthConfig, render_face
from facegen.errors import DataError

requires_opencv = pytest.mark.skipif(
    importlib.util.find_spec("cv2") is None, reason="needs OpenCV: pip install 'facegen[detect]'"
)

# Synthetic faces (sharp ones, seed 0) whose eyes the cascade finds at every paste below.
FACES = (9, 19, 35)
CELEBA_EYES = np.array([(69.0, 111.0), (108.0, 111.0)])
CROP = (slice(39, 179), slice(19, 159))  # CelebA's centred 140 box, rows then columns


@pytest.fixture(scope="module")
def faces() -> dict[int, tuple[Image.Image, np.ndarray]]:
    """Synthetic aligned faces by index: the 178x218 image and its eye landmarks (2, 2)."""
    config = SynthConfig(n=40, identities=10, seed=0)
    drawn = {}
    for index in FACES:
        image, _, _, landmarks = render_face(index, config)
        drawn[index] = (image, landmarks[:4].reshape(2, 2).astype(float))
    return drawn


def background(kind: str, width: int = 400, height: int = 320) -> np.ndarray:
    if kind == "noise":  # per-pixel noise: no face-sized texture for the cascade to mistake
        rng = np.random.default_rng(0)
        return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    y, x = np.mgrid[0:height, 0:width]
    ramp = ((x / width + y / height) / 2)[..., None]
    return (np.array([40, 90, 160]) * (1 - ramp) + np.array([220, 200, 120]) * ramp).astype(
        np.uint8
    )


def paste(
    face: Image.Image, scale: float, degrees: float, centre: tuple[float, float], kind: str
) -> tuple[Image.Image, np.ndarray]:
    """``face`` scaled and turned about its eye midpoint, which lands on ``centre`` of a
    400x320 ``kind`` background; returns the photo and the 2x3 map from the face's
    aligned coordinates to the photo's."""
    import cv2

    c, s = scale * math.cos(math.radians(degrees)), scale * math.sin(math.radians(degrees))
    linear = np.array([[c, -s], [s, c]])
    to_photo = np.column_stack([linear, np.array(centre) - linear @ [88.5, 111.0]])
    # OpenCV samples pixel centres at integers; the map works on pixel edges.
    centred = to_photo.copy()
    centred[:, 2] += linear @ [0.5, 0.5] - 0.5
    photo = background(kind)
    cv2.warpAffine(
        np.asarray(face),
        centred,
        (photo.shape[1], photo.shape[0]),
        dst=photo,
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_TRANSPARENT,
    )
    return Image.fromarray(photo), to_photo


def map_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


def roll(points: np.ndarray) -> float:
    """The tilt of the line from the first eye to the second, in degrees."""
    dx, dy = points[1] - points[0]
    return math.degrees(math.atan2(dy, dx))


def mean_difference(a: Image.Image, b: Image.Image) -> float:
    a_pixels = np.asarray(a, dtype=float)[CROP]
    b_pixels = np.asarray(b, dtype=float)[CROP]
    return float(np.abs(a_pixels - b_pixels).mean())


PASTES = [  # scale, roll in degrees, eye midpoint in the photo, background
    (0.6, -10, (90, 110), "gradient"),
    (0.8, 7, (300, 200), "noise"),
    (1.0, 0, (200, 150), "noise"),
    (1.0, 10, (160, 170), "gradient"),
    (1.5, -6, (210, 140), "gradient"),
    (2.0, 4, (200, 130), "noise"),
]


@requires_opencv
@pytest.mark.parametrize("index", FACES)
@pytest.mark.parametrize(("scale", "degrees", "centre", "kind"), PASTES)
def test_pasted_faces_come_back_level_and_framed_like_celeba(
    faces, index, scale, degrees, centre, kind
):
    face, eyes = faces[index]
    photo, to_photo = paste(face, scale, degrees, centre, kind)
    found = find_face(photo)
    assert found is not None and found.eyes is not None
    # The face's own eyes, followed through the paste and the alignment, land on CelebA's
    # mean eye positions and level, whatever the paste's size and roll.
    aligned_eyes = found.to_aligned(map_points(to_photo, eyes))
    assert np.abs(aligned_eyes - CELEBA_EYES).max() < 4
    assert abs(roll(aligned_eyes)) < 2.5
    assert abs(found.roll_degrees - degrees - roll(eyes)) < 2.5
    # In pixels: the same face as aligning the unpasted original (a 3-pixel shift of these
    # faces alone gives 8 to 10).
    assert mean_difference(align_face(photo), align_face(face)) < 10


@requires_opencv
@pytest.mark.parametrize("index", FACES)
def test_an_aligned_face_stays_where_it_is(faces, index):
    face, eyes = faces[index]
    found = find_face(face)
    assert found is not None and found.eyes is not None
    assert np.abs(found.to_aligned(eyes) - CELEBA_EYES).max() < 4
    assert mean_difference(warp_aligned(face, found), face) < 15


@requires_opencv
@pytest.mark.parametrize(("scale", "centre"), [(0.7, (120, 140)), (1.6, (220, 150))])
def test_without_eyes_the_face_box_alone_places_the_face(faces, monkeypatch, scale, centre):
    monkeypatch.setattr(align, "_eye_pair", lambda *args: None)
    face, eyes = faces[FACES[0]]
    photo, to_photo = paste(face, scale, 0, centre, "gradient")
    found = find_face(photo)
    assert found is not None and found.eyes is None and found.roll_degrees == 0
    aligned_eyes = found.to_aligned(map_points(to_photo, eyes))
    assert np.abs(aligned_eyes.mean(axis=0) - CELEBA_EYES.mean(axis=0)).max() < 5
    assert 0.85 < math.dist(*aligned_eyes) / math.dist(*CELEBA_EYES) < 1.15


@requires_opencv
@pytest.mark.parametrize("kind", ["gradient", "noise"])
def test_a_photo_without_a_face_gives_none(kind):
    photo = Image.fromarray(background(kind))
    assert find_face(photo) is None and align_face(photo) is None
    buffer = io.BytesIO()
    photo.save(buffer, format="PNG")
    buffer.seek(0)
    with pytest.raises(NoFaceError, match="no face found"):
        decode_face(buffer, 64, Crop(140), detect_faces=True)


@requires_opencv
def test_decode_face_frames_a_detected_face_like_the_celeba_crop(faces):
    face, _ = faces[FACES[0]]
    photo, _ = paste(face, 1.4, 8, (200, 150), "gradient")
    buffer = io.BytesIO()
    photo.save(buffer, format="JPEG", quality=95)
    buffer.seek(0)
    detected = decode_face(buffer, 64, Crop(140), detect_faces=True).astype(float)
    expected = np.asarray(
        align_face(face).resize((64, 64), Image.Resampling.BICUBIC, box=(19, 39, 159, 179))
    ).astype(float)
    assert detected.shape == (64, 64, 3)
    assert np.abs(detected - expected).mean() < 12


@requires_opencv
def test_photos_turned_by_their_exif_orientation_are_turned_upright_first(faces):
    face, _ = faces[FACES[0]]
    photo, _ = paste(face, 1.0, 0, (200, 150), "gradient")
    # Stored sideways, with the tag that says "turn 90 degrees clockwise to view".
    sideways = photo.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    sideways.save(buffer, format="JPEG", quality=95, exif=exif)
    buffer.seek(0)
    assert decode_face(buffer, 32, Crop(140), detect_faces=True).shape == (32, 32, 3)


@requires_opencv
def test_warp_is_exact_for_the_identity_and_repeats_edge_pixels_outside():
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (218, 178, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    identity = FaceAlignment((0, 0, 100), None, np.array([[1.0, 0, 0], [0, 1.0, 0]]))
    np.testing.assert_array_equal(np.asarray(warp_aligned(image, identity)), pixels)
    # Shift the photo 10 pixels right: the frame's first 10 columns lie outside it and
    # repeat its first column, as CelebA's aligned images do at their borders.
    shifted = FaceAlignment((0, 0, 100), None, np.array([[1.0, 0, 10], [0, 1.0, 0]]))
    warped = np.asarray(warp_aligned(image, shifted))
    np.testing.assert_array_equal(warped[:, 10:], pixels[:, :-10])
    np.testing.assert_array_equal(warped[:, :10], np.repeat(pixels[:, :1], 10, axis=1))


@requires_opencv
def test_a_large_photo_is_averaged_down_not_aliased():
    # Fine stripes, 1 pixel wide, shrunk 4x: averaging gives flat grey, sampling gives
    # stripes of full contrast.
    stripes = np.zeros((872, 712, 3), dtype=np.uint8)
    stripes[:, ::2] = 255
    shrink = FaceAlignment((0, 0, 400), None, np.array([[0.25, 0, 0], [0, 0.25, 0]]))
    warped = np.asarray(warp_aligned(Image.fromarray(stripes), shrink)).astype(float)
    assert np.abs(warped - 127.5).max() < 4


def test_missing_opencv_is_one_line_saying_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)  # `import cv2` now raises ImportError
    with pytest.raises(DataError) as error:
        align.check_detector()
    assert str(error.value) == "--detect-faces needs OpenCV: pip install 'facegen[detect]'"


def write_photos(folder, *, faces: int = 2, walls: int = 1) -> list[str]:
    """A folder of users' photos: ``faces`` synthetic faces pasted at different sizes and
    rolls (face_0.jpg ...), and ``walls`` photos with no face (wall_0.jpg ...)."""
    folder.mkdir(parents=True, exist_ok=True)
    config = SynthConfig(n=40, identities=10, seed=0)
    names = []
    for i in range(faces):
        face = render_face(FACES[i % len(FACES)], config)[0]
        photo, _ = paste(face, 0.8 + 0.4 * i, (-7, 6)[i % 2], (200, 150), "gradient")
        photo.save(folder / f"face_{i}.jpg", quality=95)
        names.append(f"face_{i}.jpg")
    for i in range(walls):
        Image.fromarray(background("gradient")).save(folder / f"wall_{i}.jpg", quality=95)
        names.append(f"wall_{i}.jpg")
    return names
