"""The demo's requests as plain calls: pictures, determinism, bounds and the messages a
page shows for bad input."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from facegen.data.loader import to_uint8
from facegen.demo.studio import MAX_FACES, Studio
from facegen.errors import FacegenError
from facegen.explore.interpolate import read_photo, run_crop
from facegen.run import load_run


@pytest.fixture
def studio(demo_runs):
    studio = Studio(list(demo_runs.values()))
    yield studio
    studio.close()


def test_runs_are_named_by_folder_and_load_what_each_has(studio):
    assert studio.names == ["ae", "vae", "dcgan"]
    assert studio.samplers("ae")[0] == "gmm"  # an AE's prior means nothing: its GMM first
    assert studio.samplers("vae")[0] == "normal"
    assert studio.attributes("vae") == ["Eyeglasses", "Smiling"]
    assert studio.attributes("ae") == []
    assert "vae making 32x32 faces from 16 latents" in studio.describe("vae")
    with pytest.raises(FacegenError, match="unknown run 'gan'; this demo serves: ae, vae, dcgan"):
        studio.run("gan")


def test_two_runs_with_one_folder_name_are_told_apart(demo_runs, tmp_path):
    other = load_run(shutil.copytree(demo_runs["vae"].path, tmp_path / "other" / "vae"))
    studio = Studio([demo_runs["vae"], other])
    assert studio.names == ["vae", str(other.path)]


def test_sample_is_a_grid_that_depends_on_the_seed_alone(studio):
    first = studio.sample("vae", seed=4, count=6)
    assert first.dtype == np.uint8 and first.ndim == 3 and first.shape[2] == 3
    np.testing.assert_array_equal(studio.sample("vae", seed=4, count=6), first)
    assert not np.array_equal(studio.sample("vae", seed=5, count=6), first)
    truncated = studio.sample("dcgan", seed=4, count=6, truncation=0.5)
    assert not np.array_equal(studio.sample("dcgan", seed=4, count=6), truncated)
    assert studio.sample("ae", seed=0, count=1, sampler="normal").shape == (132, 132, 3)  # padded


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"count": 0}, "count must be a whole number from 1 to 64, not 0"),
        ({"count": MAX_FACES + 1}, "count must be a whole number from 1 to 64"),
        ({"count": 2.5}, "count must be a whole number"),
        ({"seed": -1}, "seed must be a whole number from 0 to 2,147,483,647"),
        ({"seed": "x"}, "seed must be a whole number, not 'x'"),
        ({"truncation": 3.5}, "truncation must be between 0 and 3"),
        ({"truncation": float("nan")}, "truncation must be between 0 and 3"),
        ({"sampler": "gmm"}, "dcgan has no 'gmm' sampler; it has: normal"),
    ],
)
def test_sample_refuses_what_the_page_would_not_send(studio, changes, message):
    values = {"seed": 0, "count": 4, "sampler": None, "truncation": 0.0, **changes}
    with pytest.raises(FacegenError, match=message):
        studio.sample("dcgan", **values)


def test_interpolation_walks_from_one_seed_to_the_other(studio):
    run = studio.run("vae")
    face_a, strip, gif = studio.interpolation("vae", seeds=(1, 2), mix=0.0)
    face_b, strip_b, _ = studio.interpolation("vae", seeds=(1, 2), mix=1.0)
    ends = to_uint8(run.decode(torch.cat([run.latents(1, 1), run.latents(1, 2)])))
    # The faces at mix 0 and 1 are the ends themselves, enlarged by a whole factor.
    np.testing.assert_array_equal(face_a[::4, ::4], ends[0])
    np.testing.assert_array_equal(face_b[::4, ::4], ends[1])
    np.testing.assert_array_equal(strip, strip_b)  # the mix moves only the single face
    with Image.open(gif) as animation:
        assert animation.n_frames == 2 * 10 - 2  # forth and back
        assert animation.size == (128, 128)
    middle, _, _ = studio.interpolation("vae", seeds=(1, 2), mix=0.5)
    assert not np.array_equal(middle, face_a) and not np.array_equal(middle, face_b)
    with pytest.raises(FacegenError, match="mix must be between 0 and 1"):
        studio.interpolation("vae", seeds=(1, 2), mix=1.5)


def test_interpolation_from_photos_starts_at_the_photo_encoding(studio, face_photos):
    run = studio.run("vae")
    photo = str(face_photos[0])
    face, _, _ = studio.interpolation(
        "vae", photos=(photo, None), seeds=(0, 2), detect_faces=False, mix=0.0
    )
    image = read_photo(photo, 32, run_crop(run))
    expected = to_uint8(run.decode(run.encode(image[None])))[0]
    np.testing.assert_array_equal(face[::4, ::4], expected)
    with pytest.raises(FacegenError, match="needs a model with an encoder"):
        studio.interpolation("dcgan", photos=(photo, photo), detect_faces=False)


def test_move_adds_strength_times_scale_along_each_direction(studio, demo_runs):
    z = torch.randn(3, 16, generator=torch.Generator().manual_seed(0))
    moved, moves = studio.move("vae", z, {"Smiling": 2.0, "Eyeglasses": 0.0})
    smiling = studio._directions["vae"]["Smiling"]
    torch.testing.assert_close(moved, z + 2.0 * 0.5 * smiling.vector)
    assert moves == {"Smiling": 2.0}
    with pytest.raises(FacegenError, match="Smiling must be between -3 and 3, not 3.5"):
        studio.move("vae", z, {"Smiling": 3.5})
    with pytest.raises(FacegenError, match="vae has no Bald direction; it has: Eyeglasses, Sm"):
        studio.move("vae", z, {"Bald": 1.0})


def faces_in(picture: np.ndarray, count: int, side: int = 128, padding: int = 2) -> list:
    """The ``count`` faces of a one-row labelled picture, left to right."""
    top = picture.shape[0] - side - padding
    lefts = [padding + i * (side + padding) for i in range(count)]
    return [picture[top : top + side, left : left + side] for left in lefts]


def test_edit_changes_the_face_only_when_a_slider_moves(studio, face_photos):
    run = studio.run("vae")
    before, after = faces_in(studio.edit("vae", {"Smiling": 0.0}, seed=3), 2)
    seed_face = to_uint8(run.decode(run.latents(1, 3)))[0]
    np.testing.assert_array_equal(before[::4, ::4], seed_face)
    np.testing.assert_array_equal(after, before)
    before_moved, moved = faces_in(studio.edit("vae", {"Smiling": 2.5}, seed=3), 2)
    np.testing.assert_array_equal(before_moved, before)
    assert np.abs(moved.astype(int) - before.astype(int)).mean() > 1
    photo = str(face_photos[1])
    shown, encoded, edited = faces_in(
        studio.edit("vae", {"Eyeglasses": -1}, photo=photo, detect_faces=False), 3
    )
    np.testing.assert_array_equal(shown[::4, ::4], to_uint8(read_photo(photo, 32, run_crop(run))))
    assert not np.array_equal(encoded, edited)
    with pytest.raises(FacegenError, match="has no attribute directions yet; make some with: "):
        studio.edit("ae", {}, seed=0)


def test_reconstruct_shows_the_photo_and_its_reconstruction(studio, face_photos):
    picture = studio.reconstruct("ae", str(face_photos[2]), detect_faces=False)
    assert picture.dtype == np.uint8 and picture.shape[1] > 2 * 128
    with pytest.raises(FacegenError, match="upload a photo first"):
        studio.reconstruct("ae", None)
    with pytest.raises(FacegenError, match="reconstructing a photo needs a model with an encoder"):
        studio.reconstruct("dcgan", str(face_photos[2]))


def test_bad_uploads_get_one_line_messages(studio, tmp_path, monkeypatch):
    text = tmp_path / "notes.jpg"
    text.write_text("not a photo")
    with pytest.raises(FacegenError, match="notes.jpg is not an image Pillow can read"):
        studio.reconstruct("vae", str(text))
    with pytest.raises(FacegenError, match="the upload went missing"):
        studio.reconstruct("vae", str(tmp_path / "gone.png"))
    blank = tmp_path / "wall.png"
    Image.new("RGB", (300, 240), (120, 130, 140)).save(blank)
    with pytest.raises(FacegenError, match="no face found in wall.png"):
        studio.reconstruct("vae", str(blank), detect_faces=True)
    monkeypatch.setattr("facegen.demo.studio.MAX_PHOTO_PIXELS", 300 * 240 - 1)
    with pytest.raises(FacegenError, match="wall.png has 0 megapixels; the demo takes photos up"):
        studio.reconstruct("vae", str(blank), detect_faces=False)


def test_a_found_face_is_aligned_before_the_crop(studio, face_photos, tmp_path):
    """A face pasted into a larger photo comes back framed like the data set's faces."""
    source = Image.open(face_photos[3]).convert("RGB")
    canvas = Image.new("RGB", (500, 420), (90, 140, 90))
    canvas.paste(source, (230, 120))
    pasted = tmp_path / "pasted.png"
    canvas.save(pasted)
    run = studio.run("vae")
    aligned = studio.photo("vae", str(pasted), detect_faces=True).image
    original = read_photo(face_photos[3], 32, run_crop(run))
    assert (aligned - original).abs().mean() < 0.15  # [-1, 1] scale: about 5% of the range
