"""Attribute directions (mean difference, InterFaceGAN) and the edits made with them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facegen.classifier import AttributeClassifier, ClassifierConfig, train_classifier
from facegen.errors import FacegenError
from facegen.explore.common import encode_rows
from facegen.explore.edit import (
    attribute_directions,
    classifier_scores,
    edit_faces,
    load_directions,
    save_directions,
)
from tests.conftest import write_packed


class Brightness:
    """A stand-in attribute classifier whose "attribute" is how bright a face is: what the
    InterFaceGAN boundary should find is then known and easy to check."""

    def __init__(self) -> None:
        self.test_accuracy = {"Pale_Skin": 1.0}

    def attribute_logits(self, images: torch.Tensor, name: str) -> torch.Tensor:
        assert name == "Pale_Skin"
        brightness = images.mean(dim=(1, 2, 3))
        return 20 * (brightness - brightness.median())


@pytest.fixture(scope="module")
def classifier32(faces32, tmp_path_factory) -> AttributeClassifier:
    """A tiny attribute classifier trained on the train split of ``faces32`` (the edits
    below are made on test faces it never saw)."""
    config = ClassifierConfig(width=8, steps=100, batch_size=16)
    out = tmp_path_factory.mktemp("classifier") / "classifier"
    return train_classifier(faces32, out, config, progress=False).classifier


def _easy_attribute(data) -> str:
    """An attribute with at least 5 faces on each side in the train split."""
    train = data.split_indices("train")
    for name in ("Eyeglasses", "Wearing_Hat", "Smiling", "Male"):
        column = data.attributes[train, data.attribute_index(name)]
        if (column == 1).sum() >= 5 and (column == -1).sum() >= 5:
            return name
    raise AssertionError("faces32 has no balanced attribute")


def test_mean_difference_is_the_unit_difference_of_class_means(runs32, faces32):
    run, name = runs32["vae"], _easy_attribute(faces32)
    direction = attribute_directions(run, faces32, [name], progress=False)[name]
    rows = faces32.split_indices("train")
    latents = encode_rows(run, faces32, rows, progress=False)
    labels = faces32.attributes[rows, faces32.attribute_index(name)]
    expected = latents[labels == 1].mean(0) - latents[labels == -1].mean(0)
    assert torch.allclose(direction.vector, expected / expected.norm(), atol=1e-5)
    assert direction.vector.norm() == pytest.approx(1, abs=1e-5)
    assert direction.scale == pytest.approx(float((latents @ direction.vector).std()), rel=1e-4)
    assert direction.info["with"] == int((labels == 1).sum())
    assert direction.method == "mean-difference" and direction.separation > 0


def test_edits_at_strength_zero_are_the_unedited_faces(runs32, faces32):
    run, name = runs32["ae"], _easy_attribute(faces32)
    directions = attribute_directions(run, faces32, [name], progress=False)
    edits = edit_faces(run, list(directions.values()), data=faces32, n=3, strengths=(-1, 0, 1))
    assert edits.images.shape == (1, 3, 3, 3, 32, 32)
    test_faces = faces32.images[np.sort(faces32.split_indices("test"))]
    assert len(test_faces) >= 3
    unedited = edits.images[0, :, 1]
    originals = torch.from_numpy(test_faces).permute(0, 3, 1, 2).float() / 127.5 - 1
    matches = [
        min(float((u - o).abs().mean()) for o in run.reconstruct(originals)) for u in unedited
    ]
    assert max(matches) < 1e-5  # each is the reconstruction of a test face
    assert not torch.allclose(edits.images[0, :, 0], edits.images[0, :, 2])
    assert edits.picture().shape[0] > 3 * 64


@pytest.mark.parametrize("model", ["ae", "vae"])
def test_a_direction_moves_a_held_out_classifiers_score_the_right_way(
    runs32, faces32, classifier32, model
):
    run = runs32[model]
    directions = attribute_directions(run, faces32, ["Black_Hair"], progress=False)
    edits = edit_faces(run, list(directions.values()), data=faces32, n=8, strengths=(-2, 0, 2))
    less, unchanged, more = classifier_scores(edits, classifier32)["Black_Hair"]
    assert less < unchanged < more
    assert more - less > 0.4  # measured: 0.87 (AE), 0.81 (VAE) with these tiny runs


def test_interfacegan_with_the_trained_classifier_runs_end_to_end(runs32, faces32, classifier32):
    directions = attribute_directions(
        runs32["dcgan"], faces32, ["Male"], classifier=classifier32, samples=200, progress=False
    )
    info = directions["Male"].info
    assert info["classifier_test_accuracy"] == classifier32.test_accuracy["Male"]
    assert 0 <= info["predicted_with"] <= 1 and 0 <= info["boundary_accuracy"] <= 1


def test_interfacegan_finds_the_direction_a_classifier_scores(runs32, faces32):
    run = runs32["dcgan"]
    directions = attribute_directions(
        run, faces32, ["Pale_Skin"], classifier=Brightness(), samples=600, progress=False
    )
    direction = directions["Pale_Skin"]
    assert direction.method == "interfacegan"
    assert direction.info["boundary_accuracy"] > 0.6  # measured 0.68 (20-step DCGAN); chance 0.5
    assert direction.vector.norm() == pytest.approx(1, abs=1e-5)
    edits = edit_faces(run, [direction], n=6, strengths=(-3, 0, 3), seed=1)
    brightness = edits.images[0].mean(dim=(2, 3, 4))  # (faces, strengths)
    assert (brightness[:, 2] > brightness[:, 0]).all()
    scores = classifier_scores(edits, Brightness())["Pale_Skin"]
    assert scores[0] < scores[1] < scores[2]


def test_a_gan_without_a_classifier_says_how_to_get_one(runs32, faces32):
    with pytest.raises(FacegenError, match="facegen classifier train --data"):
        attribute_directions(runs32["dcgan"], faces32, ["Smiling"], progress=False)


def test_bad_attributes_and_unlabelled_data_are_one_line_errors(runs32, faces32, tmp_path):
    with pytest.raises(FacegenError, match="available: 5_o_Clock_Shadow"):
        attribute_directions(runs32["ae"], faces32, ["Smile"], progress=False)
    data = write_packed(tmp_path / "unlabelled", n=30)
    np.save(data.path / "attributes.npy", np.zeros((30, 40), np.int8))
    from facegen.data.packed import open_packed

    with pytest.raises(FacegenError, match="no attribute labels"):
        attribute_directions(runs32["ae"], open_packed(data.path), ["Smiling"], progress=False)


def test_too_few_labelled_faces_is_refused(runs32, tmp_path):
    data = write_packed(tmp_path / "few", n=30)
    attributes = np.full((30, 40), -1, np.int8)
    attributes[0, 31] = 1  # one smiling face
    np.save(data.path / "attributes.npy", attributes)
    from facegen.data.packed import open_packed

    with pytest.raises(FacegenError, match="1 faces with it"):
        attribute_directions(runs32["ae"], open_packed(data.path), ["Smiling"], progress=False)


def test_directions_are_saved_merged_and_loaded(runs32, faces32):
    run, name = runs32["vae"], _easy_attribute(faces32)
    first = attribute_directions(run, faces32, [name], progress=False)
    save_directions(run, first)
    second = attribute_directions(run, faces32, ["Male"], progress=False)
    save_directions(run, second)
    loaded = load_directions(run)
    assert {name, "Male"} <= set(loaded)  # other tests may have saved more in this run
    assert torch.equal(loaded[name].vector, first[name].vector)
    assert loaded[name].scale == first[name].scale
    assert loaded["Male"].info == second["Male"].info
