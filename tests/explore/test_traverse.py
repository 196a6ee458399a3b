"""Latent traversals: which dimensions, what moves, and the KL picture."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from facegen.errors import FacegenError
from facegen.explore.traverse import save_kl_plot, traverse
from facegen.losses import kl_per_dimension

VALUES = (-2.0, 0.0, 2.0)


def test_a_vae_sweeps_its_highest_kl_dimensions(runs32, faces32):
    run = runs32["vae"]
    result = traverse(run, faces32, dims=4, values=VALUES, seed=1, progress=False)
    assert result.images.shape == (4, 3, 3, 32, 32)
    assert result.kl.shape == (run.model.latent_dim,)
    assert result.dims == torch.argsort(result.kl, descending=True)[:4].tolist()
    mu, logvar = run.model.encode_distribution(
        torch.from_numpy(faces32.images[faces32.split_indices("test")]).permute(0, 3, 1, 2) / 127.5
        - 1
    )
    assert torch.allclose(result.kl, kl_per_dimension(mu, logvar), atol=1e-4)
    assert 0 <= result.active <= run.model.latent_dim


def test_each_row_moves_one_dimension_only(runs32, faces32):
    result = traverse(runs32["ae"], faces32, dims=3, values=VALUES, progress=False)
    run = runs32["ae"]
    for row, d in enumerate(result.dims):
        z = result.base.repeat(len(VALUES), 1)
        z[:, d] = result.centre[d] + result.spread[d] * torch.tensor(VALUES)
        assert torch.allclose(result.images[row], run.decode(z), atol=1e-5)
    # An AE ranks its dimensions by how widely the test latents spread along them.
    assert result.spread[result.dims[0]] >= result.spread[result.dims[-1]]
    assert result.kl is None and result.ranking == "by spread"


def test_a_gan_sweeps_around_a_prior_sample_without_data(runs32):
    run = runs32["dcgan"]
    result = traverse(run, dims=2, values=VALUES, seed=3)
    assert result.dims == [0, 1]
    assert torch.equal(result.base, run.latents(1, seed=3)[0])
    assert torch.equal(result.images, traverse(run, dims=2, values=VALUES, seed=3).images)


def test_an_encoder_needs_the_data_set(runs32):
    with pytest.raises(FacegenError, match="--data"):
        traverse(runs32["vae"])


def test_pictures_are_labelled_and_the_kl_plot_is_written(runs32, faces32, tmp_path):
    result = traverse(runs32["vae"], faces32, dims=2, values=VALUES, progress=False)
    picture = result.picture()
    assert picture.shape[0] > 2 * 64 and picture.shape[1] > 3 * 64 + 40  # room for labels
    path = save_kl_plot(result.kl, tmp_path / "kl.png")
    with Image.open(path) as image:
        assert image.size[0] >= 500
    assert save_kl_plot(result.kl, tmp_path / "again.png").read_bytes() == path.read_bytes()
