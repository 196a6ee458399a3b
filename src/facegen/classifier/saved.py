"""The saved form of a classifier: a folder of ``config.json`` + ``model.safetensors`` (the
same pair as every facegen model) and ``metrics.json`` (its held-out scores), written as one
atomic folder and read back by :func:`load_classifier` alone.

By default it lives inside the data set it was trained on (``DATA/classifier``), since it
describes that data set's labels and images of that size.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from facegen._version import __version__
from facegen.classifier.model import AttributeClassifier, ClassifierConfig
from facegen.devices import resolve_device
from facegen.errors import FacegenError
from facegen.files import atomic_directory, write_json
from facegen.models import CONFIG_FILE, WEIGHTS_FILE, load_weights

FOLDER_NAME = "classifier"
METRICS_FILE = "metrics.json"
FORMAT_NAME = "facegen-attribute-classifier"


def default_classifier_path(data_path: str | Path) -> Path:
    """Where a data set's classifier goes unless told otherwise: ``DATA/classifier``."""
    return Path(data_path) / FOLDER_NAME


def train_hint(path: Path) -> str:
    """How to make the classifier that ``path`` should hold."""
    if path.name == FOLDER_NAME:
        return f"train one with: facegen classifier train --data {path.parent}"
    return f"train one with: facegen classifier train --data DATA --out {path}"


def save_classifier(
    model: AttributeClassifier, metrics: dict[str, Any], out: str | Path, *, overwrite: bool
) -> Path:
    """Write the classifier folder ``out`` in one piece; an existing one is replaced only
    with ``overwrite`` and only once the new folder is complete."""
    out = Path(out)
    state = {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    with atomic_directory(out, overwrite=overwrite) as tmp:
        save_file(state, str(tmp / WEIGHTS_FILE), metadata={"facegen_version": __version__})
        write_json(
            tmp / CONFIG_FILE,
            {
                "format": FORMAT_NAME,
                "config": model.config.to_dict(),
                "facegen_version": __version__,
            },
        )
        write_json(tmp / METRICS_FILE, metrics)
    return out


def read_metrics(path: str | Path) -> dict[str, Any]:
    """A classifier folder's ``metrics.json``; a missing or damaged one says how to train."""
    path = Path(path)
    _check_folder(path)
    metrics = _read_json(path, METRICS_FILE)
    if not isinstance(metrics.get("attributes"), dict):
        raise FacegenError(f"{path / METRICS_FILE} is damaged (no attribute scores)")
    return metrics


def load_classifier(path: str | Path, device: str | torch.device = "cpu") -> AttributeClassifier:
    """Rebuild a saved classifier in eval mode on ``device`` (or "auto"), with
    ``test_accuracy`` set.

    >>> classifier = load_classifier("data/synth-64/classifier")
    >>> classifier.attribute_names[:2], classifier.test_accuracy["Smiling"]
    (('5_o_Clock_Shadow', 'Arched_Eyebrows'), 0.979)
    """
    path = Path(path)
    _check_folder(path)
    saved = _read_json(path, CONFIG_FILE)
    if saved.get("format") != FORMAT_NAME:
        raise FacegenError(f"{path} is not an attribute classifier; {train_hint(path)}")
    try:
        config = ClassifierConfig.from_dict(saved["config"])
        model = AttributeClassifier(config)
    except (KeyError, TypeError, FacegenError) as error:
        raise FacegenError(f"{path / CONFIG_FILE} is damaged: {error}") from None
    load_weights(model, path, train_hint(path))
    metrics = read_metrics(path)
    model.test_accuracy = {
        name: float(score["accuracy"])
        for name, score in metrics["attributes"].items()
        if score.get("accuracy") is not None
    }
    return model.to(resolve_device(str(device))).eval()


def _check_folder(path: Path) -> None:
    if not path.exists():
        raise FacegenError(f"no classifier at {path}; {train_hint(path)}")
    if not path.is_dir():
        raise FacegenError(f"{path} is not a classifier folder; {train_hint(path)}")


def _read_json(path: Path, name: str) -> dict[str, Any]:
    try:
        values = json.loads((path / name).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FacegenError(
            f"{path} holds no classifier ({name} is missing); {train_hint(path)}"
        ) from None
    except (OSError, ValueError) as error:
        raise FacegenError(f"{path / name} is damaged: {error}; {train_hint(path)}") from None
    if not isinstance(values, dict):
        raise FacegenError(f"{path / name} is damaged (not a JSON object); {train_hint(path)}")
    return values
