"""The attribute classifier as its users meet it: trained on the synthetic faces, saved and
loaded back, asked for logits, refused with one clear line, and driven from the CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facegen.classifier import (
    AttributeClassifier,
    ClassifierConfig,
    ClassifierResult,
    default_classifier_path,
    load_classifier,
    train_classifier,
)
from facegen.cli import main
from facegen.data.loader import load_images
from facegen.data.packed import ATTRIBUTES_FILE, PackedDataset, open_packed
from facegen.errors import DataError, FacegenError
from facegen.training.trainer import TrainingError
from tests.conftest import write_packed

# 100 steps of batch 16 at width 8: well under a second on 2 CPU cores.
TINY = {"width": 8, "steps": 100, "batch_size": 16, "warmup_steps": 10}
# Attributes that faces32's train split never shows both ways (synth writes them all -1, or
# its 12 people happen not to vary in them).
CONSTANT_IN_FACES32 = (
    "5_o_Clock_Shadow",
    "Attractive",
    "Bushy_Eyebrows",
    "High_Cheekbones",
    "Pointy_Nose",
    "Sideburns",
)


@pytest.fixture(scope="module")
def trained(faces32: PackedDataset, tmp_path_factory: pytest.TempPathFactory) -> ClassifierResult:
    out = tmp_path_factory.mktemp("classifier") / "classifier"
    return train_classifier(faces32, out, ClassifierConfig(**TINY), progress=False)


def test_saves_a_folder_that_loads_back_with_the_same_logits(trained, faces32):
    assert {p.name for p in trained.path.iterdir()} == {
        "config.json",
        "model.safetensors",
        "metrics.json",
    }
    loaded = load_classifier(trained.path)
    assert not loaded.training
    assert loaded.attribute_names == trained.classifier.attribute_names
    assert loaded.image_size == 32
    assert loaded.test_accuracy == trained.classifier.test_accuracy
    assert set(loaded.test_accuracy) == set(loaded.attribute_names)
    images = load_images(faces32, faces32.split_indices("test"))
    expected = trained.classifier.logits(images)
    assert expected.shape == (len(images), len(loaded.attribute_names))
    assert expected.dtype == torch.float32 and expected.device.type == "cpu"
    assert torch.equal(loaded.logits(images), expected)
    on_auto = load_classifier(trained.path, "auto")  # what the CLI's --device default passes
    assert next(on_auto.parameters()).device.type in ("cpu", "cuda", "mps")


def test_metrics_record_the_protocol(trained, faces32):
    metrics = trained.metrics
    assert metrics["split"] == trained.split == "test"
    assert metrics["n_test"] == len(faces32.split_indices("test"))
    assert metrics["steps"] == TINY["steps"] and metrics["seconds"] > 0
    assert "facegen_version" in metrics
    smiling = metrics["attributes"]["Smiling"]
    assert set(smiling) == {"accuracy", "baseline", "balanced_accuracy", "count", "positives"}
    assert 0 <= smiling["accuracy"] <= 1 and 0.5 <= smiling["baseline"] <= 1


def test_the_same_seed_gives_the_same_weights(trained, faces32, tmp_path):
    again = train_classifier(faces32, tmp_path / "again", ClassifierConfig(**TINY), progress=False)
    first, second = trained.classifier.state_dict(), again.classifier.state_dict()
    assert all(torch.equal(first[key], second[key]) for key in first)
    other = train_classifier(
        faces32, tmp_path / "other", ClassifierConfig(**TINY, seed=1), progress=False
    )
    assert not torch.equal(first["head.weight"], other.classifier.state_dict()["head.weight"])


def test_it_learns_attributes_a_32px_face_shows(trained):
    # Hair colour and sex are drawn boldly by the synthetic generator; on faces32's 15 test
    # faces every seed tried scores 93-100% on both against majority baselines of 53-60%.
    for name in ("Black_Hair", "Male"):
        assert trained.test_accuracy[name] >= trained.baseline[name] + 0.2, name


def test_constant_attributes_are_skipped(trained):
    assert trained.skipped == CONSTANT_IN_FACES32
    assert trained.metrics["skipped"] == list(CONSTANT_IN_FACES32)
    names = trained.classifier.attribute_names
    assert not set(names) & set(CONSTANT_IN_FACES32) and len(names) == 40 - 6


def test_attribute_logits_and_the_names_it_refuses(trained, faces32):
    classifier = trained.classifier
    images = load_images(faces32, faces32.split_indices("test"))
    column = classifier.attribute_names.index("Smiling")
    smiling = classifier.attribute_logits(images, "Smiling")
    assert torch.equal(smiling, classifier.logits(images)[:, column])
    for name, words in (("Not_A_Thing", "unknown attribute"), ("Attractive", "not trained on")):
        with pytest.raises(FacegenError, match=words) as caught:
            classifier.attribute_logits(images, name)
        message = str(caught.value)
        assert "\n" not in message and "Smiling" in message and "Wearing_Hat" in message


def test_a_chosen_subset_of_attributes(faces32, tmp_path):
    config = ClassifierConfig(**{**TINY, "steps": 5}, attribute_names=("Smiling", "Male"))
    result = train_classifier(faces32, tmp_path / "two", config, progress=False)
    assert result.classifier.attribute_names == ("Smiling", "Male") and result.skipped == ()
    assert list(result.metrics["attributes"]) == ["Smiling", "Male"]
    config = config.replace(attribute_names=("Smiling", "Attractive"))
    with pytest.raises(DataError, match="cannot learn Attractive"):
        train_classifier(faces32, tmp_path / "bad", config, progress=False)


def test_images_of_another_size_are_refused(trained):
    with pytest.raises(FacegenError, match="reads 32x32 images, not 64x64"):
        trained.classifier.logits(torch.zeros(2, 3, 64, 64))
    with pytest.raises(FacegenError, match="expected float images"):
        trained.classifier.logits(torch.zeros(2, 32, 32, 3, dtype=torch.uint8))


def test_logits_do_not_depend_on_the_batch_or_the_device_of_the_input(trained, faces32):
    images = load_images(faces32, faces32.split_indices("train")[:40])
    whole = trained.classifier.logits(images)
    assert torch.allclose(trained.classifier.logits(images, batch_size=7), whole, atol=1e-5)


@pytest.mark.parametrize("size", [32, 64, 128])
def test_the_network_scales_with_the_image_size(size):
    config = ClassifierConfig(image_size=size, width=4, attribute_names=("Smiling", "Male"))
    model = AttributeClassifier(config).eval()
    assert model(torch.zeros(3, 3, size, size)).shape == (3, 2)


def test_an_existing_folder_is_refused_unless_overwritten(trained, faces32, tmp_path):
    with pytest.raises(FacegenError, match="already exists; pass --overwrite"):
        train_classifier(faces32, trained.path, ClassifierConfig(**TINY), progress=False)
    out = tmp_path / "classifier"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    config = ClassifierConfig(**{**TINY, "steps": 5})
    train_classifier(faces32, out, config, overwrite=True, progress=False)
    assert not (out / "stale.txt").exists() and load_classifier(out).image_size == 32


def test_a_data_set_without_labels_is_one_line(tmp_path):
    data = write_packed(tmp_path / "unlabelled")
    np.save(data.path / ATTRIBUTES_FILE, np.zeros_like(data.attributes))
    with pytest.raises(DataError, match="no attribute labels") as caught:
        train_classifier(open_packed(data.path), tmp_path / "out", progress=False)
    assert "\n" not in str(caught.value) and not (tmp_path / "out").exists()


def test_a_loss_gone_bad_stops_training_as_the_trainer_does(faces32, tmp_path, monkeypatch):
    """The classifier's NaN is the trainer's TrainingError: the step, exit code 1, no folder."""
    import facegen.classifier.train as classifier_train

    def nan_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return logits.sum() * float("nan")

    monkeypatch.setattr(classifier_train, "_masked_bce", nan_loss)
    config = ClassifierConfig(**{**TINY, "steps": 25})
    with pytest.raises(TrainingError, match=r"loss went bad at step 10 \(loss = nan\)") as caught:
        train_classifier(faces32, tmp_path / "out", config, progress=False)
    assert caught.value.exit_code == 1 and "--lr" in str(caught.value)
    assert not (tmp_path / "out").exists()


def test_an_empty_test_split_falls_back_to_valid(tmp_path):
    data = write_packed(tmp_path / "packed", n=40, partition=np.array([0] * 32 + [1] * 8))
    config = ClassifierConfig(width=4, steps=3, batch_size=8)
    result = train_classifier(data, tmp_path / "out", config, progress=False)
    assert result.split == result.metrics["split"] == "valid" and result.metrics["n_test"] == 8


def test_a_config_for_another_size_is_refused(faces32, tmp_path):
    with pytest.raises(FacegenError, match="set for 64x64 images"):
        train_classifier(faces32, tmp_path / "c", ClassifierConfig(image_size=64), progress=False)
    with pytest.raises(FacegenError, match="image size 48 is not supported"):
        ClassifierConfig(image_size=48).validate()


def test_loading_a_missing_or_damaged_folder_says_how_to_train(trained, tmp_path):
    with pytest.raises(FacegenError, match="facegen classifier train --data") as caught:
        load_classifier(default_classifier_path(tmp_path / "data"))
    assert str(caught.value).endswith(f"--data {tmp_path / 'data'}")
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    for path in trained.path.iterdir():
        (damaged / path.name).write_bytes(path.read_bytes())
    (damaged / "model.safetensors").write_bytes(b"not weights")
    with pytest.raises(FacegenError, match="model.safetensors is damaged") as caught:
        load_classifier(damaged)
    assert "\n" not in str(caught.value)
    (damaged / "config.json").write_text("{")
    with pytest.raises(FacegenError, match="config.json is damaged"):
        load_classifier(damaged)


# ----------------------------------------------------------------------------------- CLI


def run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as stop:  # argparse's usage errors
        code = stop.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_train_prints_the_table_then_info_prints_it_again(capsys, faces32, tmp_path):
    out = tmp_path / "classifier"
    options = ["--width", "8", "--steps", "60", "--batch-size", "16", "--quiet"]
    code, stdout, stderr = run(
        capsys, "classifier", "train", "--data", str(faces32.path), "--out", str(out), *options
    )
    assert code == 0, stderr
    assert "trained a 32x32 classifier on 34 attributes for 60 steps" in stdout
    assert "skipped 6 attributes" in stdout and "scored on the test split: 15 faces" in stdout
    assert "accuracy  majority  balanced" in stdout
    assert any(line.startswith("Black_Hair ") for line in stdout.splitlines())
    assert stdout.rstrip().endswith(f"classifier folder: {out}")
    table = stdout[stdout.index("attribute ") : stdout.index("classifier folder")]
    code, stdout, _ = run(capsys, "classifier", "info", str(out))
    assert code == 0 and table in stdout


@pytest.mark.parametrize(
    "argv",
    [
        ["classifier", "train", "--data", "/no/such/data"],
        ["classifier", "train", "--data", "x", "--steps", "0"],
        ["classifier", "info", "/no/such/classifier"],
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(capsys, argv):
    code, stdout, stderr = run(capsys, *argv)
    assert code == 2 and stdout == ""
    assert len(stderr.strip().splitlines()) == 1


def test_cli_help_states_the_config_defaults(capsys):
    code, stdout, _ = run(capsys, "classifier", "train", "--help")
    assert code == 0 and "--overwrite" in stdout and "DATA/classifier" in stdout
    # The help names the defaults without importing torch; they must be ClassifierConfig's.
    defaults = ClassifierConfig()
    text = " ".join(stdout.split())
    for shown in (
        f"--steps N default {defaults.steps}",
        f"--batch-size B default {defaults.batch_size}",
        f"first stage ({defaults.width})",
        f"(default {defaults.lr})",
        f"--seed S default {defaults.seed}",
    ):
        assert shown in text
