"""Attribute edits: move a face along the latent direction of a CelebA attribute.

Models with an encoder get the direction from labelled faces: the mean latent of training
faces with the attribute minus the mean of those without (as in Larsen et al. 2016 and
White 2016's "attribute vectors"). A GAN has no encoder, so its direction is found as
InterFaceGAN does (Shen et al. 2020): generate faces, label them with an attribute
classifier trained on the data set (:mod:`facegen.classifier`), and fit a linear boundary
between the most and least likely faces in latent space; its unit normal is the direction.

Strengths are in standard deviations of the latents along the direction, so +1 moves a
face by one typical spread of the attribute's axis whatever the model.

>>> directions = attribute_directions(run, data, ["Smiling", "Eyeglasses"])
>>> edits = edit_faces(run, list(directions.values()), data=data, n=4)
>>> save_png(edits.picture(), "edit.png")
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from facegen._version import __version__
from facegen.data.loader import load_images, to_uint8
from facegen.data.packed import PackedDataset, pick_rows
from facegen.errors import FacegenError
from facegen.explore.common import encode_rows
from facegen.files import atomic_path
from facegen.run import MODEL_FOLDER, Run, check_data
from facegen.viz.grid import labelled_grid

DIRECTIONS_FILE = "directions.safetensors"
METADATA_KEY = "facegen_directions"
STRENGTHS = (-2.0, -1.0, 0.0, 1.0, 2.0)
# Fewer labelled faces than this on either side gives a direction that is mostly noise.
MIN_FACES = 5
# InterFaceGAN fits its boundary on the generated faces the classifier is surest about:
# this fraction at each end of the score ranking (the middle is ambiguous).
BOUNDARY_FRACTION = 0.3


@dataclass
class AttributeDirection:
    """A unit latent direction (D,) along which ``attribute`` grows, and how it was found."""

    attribute: str
    vector: torch.Tensor  # (D,) unit length
    scale: float  # standard deviation of the latents along ``vector``
    method: str  # "mean-difference" or "interfacegan"
    info: dict[str, Any] = field(default_factory=dict)  # counts, accuracies, sources

    @property
    def separation(self) -> float:
        """How far apart the faces with and without the attribute lie, in ``scale`` units."""
        return float(self.info.get("separation", float("nan")))


def _require_labels(data: PackedDataset, attributes: Sequence[str]) -> list[int]:
    if not attributes:
        raise FacegenError("name at least one attribute, e.g. --attribute Smiling")
    if not data.has_attributes:
        raise FacegenError(
            f"{data.path} has no attribute labels (its source had no list_attr_celeba.txt); "
            "attribute edits need CelebA labels"
        )
    return [data.attribute_index(name) for name in attributes]


def attribute_directions(
    run: Run,
    data: PackedDataset,
    attributes: Sequence[str],
    *,
    split: str = "train",
    n: int = 5000,
    seed: int = 0,
    classifier: Any = None,
    samples: int = 4000,
    progress: bool = True,
) -> dict[str, AttributeDirection]:
    """The latent direction of each of ``attributes``. Encoders: from ``n`` labelled faces
    of ``split``; GANs: from ``samples`` generated faces labelled by ``classifier`` (an
    :class:`~facegen.classifier.AttributeClassifier`)."""
    columns = _require_labels(data, attributes)
    check_data(run, data)
    if run.model.has_encoder:
        rows = pick_rows(data, split, n, seed)
        latents = encode_rows(run, data, rows, progress=progress)  # (N, D)
        labels = data.attributes[rows][:, columns]  # (N, A)
        return {
            name: _mean_difference(name, latents, labels[:, i], data, split)
            for i, name in enumerate(attributes)
        }
    if classifier is None:
        raise FacegenError(
            f"a {run.name} has no encoder: its attribute directions come from generated faces "
            f"labelled by a classifier; train one with: facegen classifier train --data "
            f"{data.path}"
        )
    latents = run.latents(samples, seed)  # (M, D), the prior the GAN was trained on
    images = run.decode(latents, progress="generating" if progress else None)
    directions = {}
    for name in attributes:
        scores = classifier.attribute_logits(images, name)  # (M,)
        directions[name] = _boundary_normal(name, latents, scores, seed)
        directions[name].info["classifier_test_accuracy"] = classifier.test_accuracy.get(name)
    return directions


def _mean_difference(
    name: str, latents: torch.Tensor, labels: np.ndarray, data: PackedDataset, split: str
) -> AttributeDirection:
    positive, negative = labels == 1, labels == -1
    counts = int(positive.sum()), int(negative.sum())
    if min(counts) < MIN_FACES:
        raise FacegenError(
            f"{name}: {counts[0]} faces with it and {counts[1]} without in the {split} split "
            f"of {data.path}; a direction needs at least {MIN_FACES} of each"
        )
    difference = latents[positive].mean(0) - latents[negative].mean(0)  # (D,)
    unit = difference / difference.norm().clamp_min(1e-12)
    scale = float((latents @ unit).std().clamp_min(1e-12))
    info = {
        "with": counts[0],
        "without": counts[1],
        "separation": float(difference.norm()) / scale,
        "data": str(data.path),
        "split": split,
    }
    return AttributeDirection(name, unit, scale, "mean-difference", info)


def _boundary_normal(
    name: str, latents: torch.Tensor, scores: torch.Tensor, seed: int
) -> AttributeDirection:
    """InterFaceGAN: a linear SVM between the top and bottom :data:`BOUNDARY_FRACTION` of
    faces by classifier score; accuracy measured on a fifth of them held out."""
    from sklearn.svm import LinearSVC

    order = torch.argsort(scores)
    take = max(MIN_FACES, int(len(scores) * BOUNDARY_FRACTION))
    if 2 * take > len(scores):
        raise FacegenError(f"{len(scores)} generated faces are too few for a boundary")
    chosen = torch.cat([order[:take], order[-take:]])
    x = latents[chosen].double().numpy()
    y = np.r_[np.zeros(take), np.ones(take)]
    held_out = np.random.default_rng(seed).random(len(y)) < 0.2
    svm = LinearSVC(C=1.0, max_iter=5000, random_state=seed).fit(x[~held_out], y[~held_out])
    accuracy = float(svm.score(x[held_out], y[held_out])) if held_out.any() else float("nan")
    normal = torch.from_numpy(svm.coef_[0]).float()
    unit = normal / normal.norm().clamp_min(1e-12)
    projections = latents @ unit
    separation = float(projections[order[-take:]].mean() - projections[order[:take]].mean())
    info = {
        "samples": len(scores),
        "predicted_with": float((scores > 0).float().mean()),
        "boundary_accuracy": accuracy,
        "separation": separation / float(projections.std()),
    }
    return AttributeDirection(name, unit, float(projections.std()), "interfacegan", info)


@dataclass
class Edits:
    """Faces (A, N, V, 3, S, S): attribute a applied to face n at strength ``strengths[v]``."""

    images: torch.Tensor
    attributes: list[str]
    strengths: list[float]
    source: str  # "test faces" or "samples"

    def picture(self) -> np.ndarray:
        a, n, v = self.images.shape[:3]
        faces = to_uint8(self.images.flatten(0, 2))
        faces = faces.reshape(a * n, v, *faces.shape[1:])  # (A*N, V, S, S, 3)
        rows = [name for name in self.attributes for _ in range(n)]
        columns = [f"{s:+g} sd" if s else "0" for s in self.strengths]
        title = f"attribute edits on {n} {self.source} (strength in sd along the direction)"
        return labelled_grid(faces, rows, columns, title=title)


def edit_faces(
    run: Run,
    directions: Sequence[AttributeDirection],
    *,
    data: PackedDataset | None = None,
    n: int = 4,
    strengths: Sequence[float] = STRENGTHS,
    split: str = "test",
    seed: int = 0,
) -> Edits:
    """Each direction applied at each strength to ``n`` faces: test faces of ``data``
    (models with an encoder) or samples from ``seed`` (GANs)."""
    if run.model.has_encoder:
        if data is None:
            raise FacegenError(f"editing with a {run.name} needs test faces: pass --data")
        check_data(run, data)
        base = run.encode(load_images(data, pick_rows(data, split, n, seed)))  # (N, D)
        source = f"{split} faces"
    else:
        base = run.latents(n, seed)
        source = "samples"
    steps = torch.tensor(list(strengths), dtype=base.dtype)  # (V,)
    moved = torch.stack(
        [
            base[:, None] + (d.scale * steps)[None, :, None] * d.vector[None, None]
            for d in directions
        ]
    )  # (A, N, V, D)
    images = run.decode(moved.flatten(0, 2)).unflatten(0, moved.shape[:3])
    return Edits(images, [d.attribute for d in directions], list(strengths), source)


def directions_path(run: Run | Path) -> Path:
    folder = Path(run) if isinstance(run, (str, Path)) else run.path
    return folder / MODEL_FOLDER / DIRECTIONS_FILE


def save_directions(run: Run, directions: dict[str, AttributeDirection]) -> Path:
    """Add ``directions`` to the run's ``model/directions.safetensors`` (replacing those of
    the same attributes), atomically; the demo's sliders read them from there."""
    kept = load_directions(run) if directions_path(run).is_file() else {}
    kept.update(directions)
    header = {
        name: {k: v for k, v in asdict(d).items() if k != "vector"} for name, d in kept.items()
    }
    path = directions_path(run)
    tensors = {name: d.vector.float().contiguous() for name, d in kept.items()}
    metadata = {METADATA_KEY: json.dumps(header), "facegen_version": __version__}
    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata=metadata)
    return path


def load_directions(run: Run | Path) -> dict[str, AttributeDirection]:
    """The attribute directions saved in a run (empty if none were found yet)."""
    path = directions_path(run)
    if not path.is_file():
        return {}
    try:
        with safe_open(path, framework="pt") as file:
            header = json.loads(file.metadata()[METADATA_KEY])
            return {
                name: AttributeDirection(vector=file.get_tensor(name), **fields)
                for name, fields in header.items()
            }
    except (SafetensorError, OSError, ValueError, KeyError, TypeError) as error:
        raise FacegenError(f"{path} is damaged ({error}); delete it and run facegen edit") from None


def classifier_scores(edits: Edits, classifier: Any) -> dict[str, list[float]]:
    """For each attribute, the classifier's mean probability of it at each strength: an
    independent check that an edit does what its name says (it should rise left to right)."""
    scores = {}
    for i, name in enumerate(edits.attributes):
        faces = edits.images[i]  # (N, V, 3, S, S)
        logits = classifier.attribute_logits(faces.flatten(0, 1), name).view(faces.shape[:2])
        scores[name] = [float(p) for p in torch.sigmoid(logits).mean(0)]
    return scores
