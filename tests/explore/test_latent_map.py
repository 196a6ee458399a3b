"""Latent maps: one point per face, both projections, reproducible pictures, clear refusals
and a k-NN score that means what it says."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from facegen.data.packed import ATTRIBUTES_FILE, IDENTITY_FILE, open_packed
from facegen.errors import DataError, FacegenError
from facegen.explore.latent_map import (
    PROJECTIONS,
    knn_accuracy,
    latent_map,
    majority_share,
    save_latent_map,
)
from tests.conftest import write_packed


@pytest.mark.parametrize("model", ["ae", "vae"])
def test_one_point_per_test_image(runs32, faces32, model):
    result = latent_map(runs32[model], faces32, progress=False)
    test_rows = faces32.split_indices("test")
    np.testing.assert_array_equal(result.rows, test_rows)
    assert result.points.shape == (len(test_rows), 2)
    assert result.latents.shape == (len(test_rows), runs32[model].model.latent_dim)
    np.testing.assert_array_equal(result.labels, faces32.identity[test_rows])
    assert result.model == model and result.color_by == "identity" and result.method == "pca"


@pytest.mark.parametrize("method", sorted(PROJECTIONS))
def test_every_projection_gives_finite_points(runs32, faces32, method):
    result = latent_map(runs32["vae"], faces32, method=method, progress=False)
    assert result.points.shape == (len(faces32.split_indices("test")), 2)
    assert np.isfinite(result.points).all()
    assert result.points.std(axis=0).min() > 0  # spread out, not collapsed on a point


def test_same_seed_gives_identical_png_bytes(runs32, faces32, tmp_path):
    first, second = (
        save_latent_map(
            latent_map(runs32["vae"], faces32, method="tsne", seed=5, progress=False),
            tmp_path / name,
        )
        for name in ("a.png", "b.png")
    )
    assert first.read_bytes() == second.read_bytes()
    assert Image.open(first).size == (700, 600)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png"]  # no temp left


def test_color_by_attribute(runs32, faces32, tmp_path):
    result = latent_map(runs32["ae"], faces32, color_by="Smiling", progress=False)
    column = faces32.attribute_index("Smiling")
    np.testing.assert_array_equal(result.labels, faces32.attributes[result.rows, column])
    assert set(result.labels) == {-1, 1}  # faces32's test split has both
    assert result.scored == len(result.rows) and result.k == 5
    assert 0 <= result.score <= 1
    assert result.baseline == majority_share(result.labels)
    assert Image.open(save_latent_map(result, tmp_path / "smiling.png")).format == "PNG"


def test_unknown_labels_are_drawn_but_not_scored(runs32, faces32, tmp_path):
    identity = np.array(faces32.identity)
    test_rows = faces32.split_indices("test")
    identity[test_rows[:4]] = -1
    data = dataclasses.replace(faces32, identity=identity)
    result = latent_map(runs32["vae"], data, progress=False)
    assert len(result.points) == len(test_rows)
    assert result.scored == len(test_rows) - 4
    assert not result.known[:4].any() and result.known[4:].all()
    save_latent_map(result, tmp_path / "map.png", title="partly labelled")


def test_n_draws_a_reproducible_subset(runs32, faces32):
    first = latent_map(runs32["vae"], faces32, n=6, seed=1, progress=False)
    again = latent_map(runs32["vae"], faces32, n=6, seed=1, progress=False)
    assert len(first.rows) == 6 and set(first.rows) <= set(faces32.split_indices("test"))
    np.testing.assert_array_equal(first.rows, again.rows)
    np.testing.assert_array_equal(first.points, again.points)


def test_n_must_be_positive(runs32, faces32):
    with pytest.raises(FacegenError, match="n must be at least 1"):
        latent_map(runs32["vae"], faces32, n=0, progress=False)


def test_unknown_attribute_lists_the_available_ones(runs32, faces32):
    with pytest.raises(DataError, match="unknown attribute 'Smiles'.*Smiling.*identity"):
        latent_map(runs32["vae"], faces32, color_by="Smiles", progress=False)


def test_unknown_method_lists_the_known_ones(runs32, faces32):
    with pytest.raises(FacegenError, match="^unknown projection 'umap'; choose one of: pca, tsne$"):
        latent_map(runs32["vae"], faces32, method="umap", progress=False)


def test_a_gan_is_refused_naming_the_models_that_can(runs32, faces32):
    with pytest.raises(
        FacegenError, match="latent-map needs a model with an encoder.*ae, aegan, vae"
    ):
        latent_map(runs32["dcgan"], faces32, progress=False)


def test_a_data_set_of_another_size_is_refused(runs32, packed_factory):
    with pytest.raises(FacegenError, match="--size 32"):
        latent_map(runs32["vae"], packed_factory(n=20, size=64), progress=False)


@pytest.mark.parametrize(
    ("color_by", "message"),
    [("identity", "has no identities"), ("Smiling", "has no attribute labels")],
)
def test_a_data_set_without_labels_says_so(runs32, tmp_path, color_by, message):
    folder = tmp_path / "unlabelled"
    write_packed(folder, n=20, size=32)
    np.save(folder / ATTRIBUTES_FILE, np.zeros((20, 40), np.int8))
    np.save(folder / IDENTITY_FILE, np.full(20, -1, np.int32))
    with pytest.raises(DataError, match=message):
        latent_map(runs32["vae"], open_packed(folder), color_by=color_by, progress=False)


def test_knn_accuracy_on_planted_clusters():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 10)
    centres = rng.normal(size=(4, 8)) * 100
    latents = centres[labels] + rng.normal(size=(40, 8))
    assert knn_accuracy(latents, labels) == 1.0
    assert majority_share(labels) == 0.25
    # Labels unrelated to the latents score near chance.
    assert knn_accuracy(latents, rng.permutation(labels)) < 0.6


def test_knn_leaves_each_point_out_and_breaks_ties_by_the_nearest():
    # Left out of its own vote, point 2 has point 1 (label 7) nearest: 3 of 4 right, not 4.
    latents = np.array([[0.0], [1.0], [3.0], [10.0]])
    assert knn_accuracy(latents, np.array([7, 7, 8, 8]), k=1) == 0.75
    # Points 0 and 2 each see one vote per label; the nearer neighbour (point 1) decides,
    # whichever label value is larger, and it is always wrong here.
    latents = np.array([[0.0], [1.0], [3.0]])
    assert knn_accuracy(latents, np.array([5, 6, 5]), k=2) == 0.0
    assert knn_accuracy(latents, np.array([6, 5, 6]), k=2) == 0.0
    assert np.isnan(knn_accuracy(np.zeros((1, 3)), np.array([1])))


def test_importing_does_not_load_scikit_learn():
    code = "import sys, facegen.explore.latent_map; print('sklearn' in sys.modules)"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert output.stdout.strip() == "False", output.stderr
