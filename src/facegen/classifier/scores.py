"""Scoring a classifier on a held-out split: which attributes it can learn, its accuracy per
attribute next to the majority-class baseline, and the table the CLI prints.

The baseline is the accuracy of always answering the training split's majority class, so a
rare attribute (2% bald faces) has a high one (98%); balanced accuracy, the mean of the
accuracy on the faces that show the attribute and on those that do not, is 50% for that
constant answer and shows whether the rare class is found at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from facegen.batches import map_batches
from facegen.data.loader import load_images
from facegen.data.packed import PackedDataset
from facegen.errors import DataError

if TYPE_CHECKING:
    from facegen.classifier.model import AttributeClassifier

CHUNK = 1024  # rows read from the memory map at a time while scoring


def score_classifier(model: AttributeClassifier, data: PackedDataset) -> dict[str, Any]:
    """Score ``model`` on ``data``'s test split (valid when test is empty): the split, its
    size, the mean scores and the scores per attribute, as ``metrics.json`` holds them.

    >>> score_classifier(load_classifier("data/synth-64/classifier"), open_packed("data/synth-64"))
    """
    split, rows = split_rows(data)
    columns = [data.attribute_index(name) for name in model.attribute_names]
    majority = majority_labels(data.attributes[data.split_indices("train")][:, columns])
    # Logits (N, A) a chunk at a time, so that a large split never sits in memory as floats.
    logits = map_batches(lambda chunk: model.logits(load_images(data, chunk)), rows, CHUNK)
    labels = data.attributes[rows][:, columns]
    scores = score_attributes(logits.numpy(), labels, majority, model.attribute_names)
    return {"split": split, "n_test": len(rows), "mean": mean_scores(scores), "attributes": scores}


def split_rows(data: PackedDataset) -> tuple[str, np.ndarray]:
    """The split a classifier is scored on and its rows: test, or valid if test is empty."""
    for split in ("test", "valid"):
        rows = data.split_indices(split)
        if len(rows):
            return split, rows
    raise DataError(
        f"{data.path} has no test or valid images to score a classifier on: prepare it with "
        "--split all"
    )


def varying_attributes(
    attributes: np.ndarray, names: Sequence[str]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Split ``names`` into those with both +1 and -1 among ``attributes`` (rows, len(names))
    and those without (constant, or unknown everywhere): a classifier can learn only the
    first."""
    has_positive = np.any(attributes > 0, axis=0)
    has_negative = np.any(attributes < 0, axis=0)
    varies = has_positive & has_negative
    kept = tuple(name for name, ok in zip(names, varies, strict=True) if ok)
    skipped = tuple(name for name, ok in zip(names, varies, strict=True) if not ok)
    return kept, skipped


def majority_labels(attributes: np.ndarray) -> np.ndarray:
    """The majority class (+1 or -1) of each column among its known labels; a tie gives -1."""
    positives = np.sum(attributes > 0, axis=0)
    negatives = np.sum(attributes < 0, axis=0)
    return np.where(positives > negatives, 1, -1).astype(np.int8)


def score_attributes(
    logits: np.ndarray, labels: np.ndarray, majority: np.ndarray, names: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """Per attribute: accuracy of ``logits > 0`` against ``labels`` (1 / -1, 0 unknown and
    left out), the ``majority`` baseline, balanced accuracy, and the counts behind them.

    ``logits`` and ``labels`` are (N, A) and ``majority`` (A,), in the order of ``names``.
    An attribute with no known label among the N is scored as ``None``.
    """
    scores: dict[str, dict[str, Any]] = {}
    predicted = np.where(logits > 0, 1, -1)
    for column, name in enumerate(names):
        truth = labels[:, column]
        known = truth != 0
        count = int(known.sum())
        positives = int((truth > 0).sum())
        if count == 0:
            scores[name] = {"accuracy": None, "baseline": None, "balanced_accuracy": None}
            scores[name].update(count=0, positives=0)
            continue
        right = predicted[known, column] == truth[known]
        # The mean of the per-class accuracies over the classes present among the N.
        classes = [truth[known] == label for label in (1, -1)]
        present = [float(right[members].mean()) for members in classes if members.any()]
        scores[name] = {
            "accuracy": float(right.mean()),
            "baseline": float(np.mean(truth[known] == majority[column])),
            "balanced_accuracy": float(np.mean(present)),
            "count": count,
            "positives": positives,
        }
    return scores


def mean_scores(scores: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    """Means of accuracy, baseline and balanced accuracy over the scored attributes."""
    means: dict[str, float | None] = {}
    for key in ("accuracy", "baseline", "balanced_accuracy"):
        values = [s[key] for s in scores.values() if s[key] is not None]
        means[key] = float(np.mean(values)) if values else None
    return means


def format_table(metrics: dict[str, Any]) -> str:
    """The scores of a ``metrics.json`` as a plain-text table, one attribute a line.

    >>> print(format_table(read_metrics("data/synth-64/classifier")))
    attribute             accuracy  majority  balanced  shown
    Smiling                  97.9%     50.9%     97.9%  231/470
    """
    scores: dict[str, dict[str, Any]] = metrics["attributes"]
    width = max([len("attribute"), *map(len, scores)]) + 2
    lines = [f"{'attribute':<{width}}accuracy  majority  balanced  shown"]
    for name, score in scores.items():
        cells = [_percent(score[key]) for key in ("accuracy", "baseline", "balanced_accuracy")]
        shown = f"{score['positives']}/{score['count']}"
        lines.append(f"{name:<{width}}{cells[0]:>8}  {cells[1]:>8}  {cells[2]:>8}  {shown}")
    means = mean_scores(scores)
    cells = [_percent(means[key]) for key in ("accuracy", "baseline", "balanced_accuracy")]
    lines.append(f"{'mean':<{width}}{cells[0]:>8}  {cells[1]:>8}  {cells[2]:>8}")
    return "\n".join(lines)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"
