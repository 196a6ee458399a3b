"""Sampling, per-face PNGs and reconstructions on tiny trained runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from facegen.errors import FacegenError
from facegen.explore.generate import reconstruct_faces, sample_faces, sample_grid, save_faces
from tests.conftest import write_packed


@pytest.mark.parametrize("model", ["ae", "vae", "dcgan"])
def test_samples_have_the_run_size_and_follow_the_seed(runs32, model):
    run = runs32[model]
    faces = sample_faces(run, 6, seed=4, progress=False)
    assert faces.shape == (6, 3, 32, 32)
    assert faces.min() >= -1 and faces.max() <= 1
    assert torch.equal(faces, sample_faces(run, 6, seed=4, progress=False))
    assert not torch.equal(faces, sample_faces(run, 6, seed=5, progress=False))


def test_an_autoencoder_samples_from_its_fitted_mixture_by_default(runs32):
    run = runs32["ae"]
    assert run.default_sampler == "gmm"
    assert torch.equal(
        sample_faces(run, 4, seed=1, progress=False),
        sample_faces(run, 4, seed=1, sampler="gmm", progress=False),
    )
    assert runs32["vae"].default_sampler == "normal"


def test_truncation_keeps_latents_inside_the_bound(runs32):
    run = runs32["dcgan"]
    assert run.latents(500, seed=0, truncation=0.5).abs().max() <= 0.5
    truncated = sample_faces(run, 4, seed=0, truncation=0.5, progress=False)
    assert not torch.equal(truncated, sample_faces(run, 4, seed=0, progress=False))


def test_a_gan_has_no_fitted_sampler_to_draw_from(runs32):
    with pytest.raises(FacegenError, match="no gmm sampler"):
        sample_faces(runs32["dcgan"], 4, sampler="gmm", progress=False)


def test_grid_and_individual_pngs(runs32, tmp_path):
    faces = sample_faces(runs32["vae"], 5, progress=False)
    assert sample_grid(faces).shape == (2 * 34 + 2, 3 * 34 + 2, 3)  # 2 rows of 3
    folder = save_faces(faces, tmp_path / "faces")
    names = sorted(p.name for p in folder.iterdir())
    assert names == [f"{i:06d}.png" for i in range(5)]
    with Image.open(folder / "000003.png") as image:
        assert image.size == (32, 32)
        assert image.mode == "RGB"
    with pytest.raises(FacegenError, match="--overwrite"):
        save_faces(faces, folder)
    save_faces(faces[:2], folder, overwrite=True)
    assert len(list(folder.iterdir())) == 2  # replaced whole, never mixed


def test_reconstructions_pair_test_faces_with_their_decodes(runs32, faces32):
    run = runs32["ae"]
    result = reconstruct_faces(run, faces32, n=5, seed=0)
    assert result.originals.shape == result.reconstructions.shape == (5, 3, 32, 32)
    assert set(result.rows) <= set(faces32.split_indices("test"))
    assert torch.allclose(result.reconstructions, run.reconstruct(result.originals))
    picture = result.picture(columns=4)
    assert picture.shape[0] > 4 * 64  # two pairs of rows, enlarged to 64 pixels
    assert 0 < result.mse < 1


def test_reconstruct_refuses_a_gan_and_a_data_set_of_another_size(runs32, tmp_path):
    with pytest.raises(FacegenError, match="Models that can: ae, aegan, vae"):
        reconstruct_faces(runs32["dcgan"], write_packed(tmp_path / "d32", size=32))
    with pytest.raises(FacegenError, match="--size 32"):
        reconstruct_faces(runs32["vae"], write_packed(tmp_path / "d64", size=64))


def test_an_empty_split_is_named(runs32, tmp_path):
    data = write_packed(tmp_path / "train-only", n=10, partition=np.zeros(10, np.int8))
    with pytest.raises(FacegenError, match="no images in the test split"):
        reconstruct_faces(runs32["ae"], data)
