"""Interpolation: the paths' maths, and walks between latents and between photos."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from facegen.errors import FacegenError
from facegen.explore.interpolate import interpolate, lerp, slerp
from facegen.viz.grid import save_gif

T = torch.linspace(0, 1, 9)


@pytest.mark.parametrize("walk", [lerp, slerp])
def test_paths_start_and_end_exactly_at_the_ends(walk):
    a, b = torch.randn(3, 16), torch.randn(3, 16)
    path = walk(a, b, T)
    assert path.shape == (3, 9, 16)
    assert torch.equal(path[:, 0], a)
    assert torch.equal(path[:, -1], b)


def test_slerp_moves_evenly_along_the_great_circle():
    a, b = torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 3.0]])
    path = slerp(a, b, T)[0].double()
    angles = torch.atan2(path[:, 1], path[:, 0])
    assert torch.allclose(angles, T.double() * torch.pi / 2, atol=1e-6)
    assert torch.allclose(path.norm(dim=1), 2 + T.double(), atol=1e-6)  # norm goes 2 -> 3


def test_slerp_keeps_the_norm_that_lerp_loses_midway():
    a, b = torch.randn(200, 128), torch.randn(200, 128)
    middle = torch.tensor([0.5])
    assert slerp(a, b, middle).norm(dim=2).mean() > 1.3 * lerp(a, b, middle).norm(dim=2).mean()


def test_slerp_between_parallel_latents_is_a_finite_line():
    a = torch.tensor([[1.0, 2.0, 3.0]])
    path = slerp(a, 2 * a, T)
    assert torch.isfinite(path).all()
    assert torch.allclose(path, lerp(a, 2 * a, T), atol=1e-6)


@pytest.mark.parametrize("model", ["vae", "dcgan"])
def test_walk_ends_are_the_ends_own_faces(runs32, model):
    run = runs32[model]
    walk = interpolate(run, pairs=3, steps=5, method="slerp", seed=2)
    assert walk.images.shape == (3, 5, 3, 32, 32)
    ends = run.latents(6, seed=2)
    assert torch.equal(walk.latents[:, 0], ends[0::2])
    assert torch.equal(walk.latents[:, -1], ends[1::2])
    # Decoded in a batch of another size, so equal up to the float sums' order.
    assert torch.allclose(walk.images[:, 0], run.decode(ends[0::2]), atol=1e-5)
    assert torch.allclose(walk.images[:, -1], run.decode(ends[1::2]), atol=1e-5)
    assert torch.equal(walk.images, interpolate(run, pairs=3, steps=5, seed=2).images)


def test_picture_and_gif(runs32, tmp_path):
    walk = interpolate(runs32["dcgan"], pairs=2, steps=4, method="lerp")
    picture = walk.picture()
    assert picture.shape[1] > 4 * 64 and picture.shape[0] > 2 * 64
    frames = walk.frames()
    assert frames.shape == (4, 34 + 2, 2 * 34 + 2, 3)
    with Image.open(save_gif(frames, tmp_path / "walk.gif")) as gif:
        assert gif.n_frames == 6  # forth and back: 0 1 2 3 2 1
        assert gif.info["loop"] == 0


def _photo(path, face: np.ndarray) -> str:
    canvas = np.full((218, 178, 3), 128, np.uint8)
    canvas[39:179, 19:159] = np.asarray(Image.fromarray(face).resize((140, 140)))
    Image.fromarray(canvas).save(path)
    return str(path)


def test_walk_between_two_photos_encodes_their_crops(runs32, faces32, tmp_path):
    run = runs32["ae"]
    first = _photo(tmp_path / "a.png", faces32.images[0])
    second = _photo(tmp_path / "b.jpg", faces32.images[1])
    walk = interpolate(run, steps=4, photos=(first, second))
    assert walk.images.shape == (1, 4, 3, 32, 32)
    assert walk.photos.shape == (2, 3, 32, 32)
    # The photo is framed as data prepare frames CelebA: its crop is close to the face.
    original = torch.from_numpy(faces32.images[0].astype(np.float32) / 127.5 - 1).permute(2, 0, 1)
    assert (walk.photos[0] - original).abs().mean() < 0.08
    assert torch.allclose(walk.images[0, 0], run.reconstruct(walk.photos[:1])[0], atol=1e-5)
    assert walk.picture().shape[1] > 6 * 64  # photo, 4 steps, photo


def test_photos_need_an_encoder_and_a_readable_file(runs32, tmp_path):
    junk = tmp_path / "notes.jpg"
    junk.write_text("not an image")
    with pytest.raises(FacegenError, match="Models that can: ae, aegan, vae"):
        interpolate(runs32["dcgan"], photos=(junk, junk))
    with pytest.raises(FacegenError, match="could not be read as an image"):
        interpolate(runs32["vae"], photos=(junk, junk))
    with pytest.raises(FacegenError, match="does not exist"):
        interpolate(runs32["vae"], photos=(tmp_path / "missing.jpg", junk))
    with pytest.raises(FacegenError, match="unknown interpolation method 'cubic'; .*: lerp, slerp"):
        interpolate(runs32["vae"], method="cubic")
