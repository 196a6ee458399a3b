"""Latent maps: a split's faces encoded, projected to 2-D and coloured by an attribute or by
identity, with a number that says how much the picture shows.

The number is the leave-one-out k-nearest-neighbour accuracy of the label in the full
latent space (Euclidean distance on the latents as the encoder gives them, a VAE's
posterior means, so dimensions the model does not use weigh nothing), next to the accuracy
of always answering the most common label. With the 50-identity subset, a good encoder
puts each person's faces together: identity accuracy far above that baseline.

>>> result = latent_map(load_run("runs/vae"), open_packed("data/synth-64"), color_by="Smiling")
>>> save_latent_map(result, "map.png")
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.figure import Figure

from facegen.batches import row_slices
from facegen.data.packed import PackedDataset, pick_rows
from facegen.errors import DataError, FacegenError
from facegen.explore.common import encode_rows, require_encoder
from facegen.registry import choose
from facegen.run import Run, check_data
from facegen.viz.plots import save_figure

IDENTITY = "identity"
NEIGHBOURS = 5
KNN_ROWS = 1024  # points whose neighbours are found at once: a (KNN_ROWS, N) distance matrix
# Identities drawn in their own colour (tab20 has 20); the rest are drawn small and grey.
COLOURED_IDENTITIES = 20
UNKNOWN_GREY = "#bdbdbd"
OTHER_GREY = "#9e9e9e"
HAS_COLOUR = "#d62728"
LACKS_COLOUR = "#1f77b4"


@dataclass(frozen=True)
class Projection:
    """A way to draw latents (N, D) in 2-D: ``project(latents, seed) -> (N, 2)``.
    ``default_n`` caps the points when the caller gives no ``n`` (None: all of them)."""

    project: Callable[[np.ndarray, int], np.ndarray]
    axis_label: str
    default_n: int | None = None


def pca_2d(latents: np.ndarray, seed: int = 0) -> np.ndarray:
    """The latents on their first two principal axes (N, 2). Each axis is turned so that
    its largest loading is positive (sklearn's convention): the picture does not flip
    between runs or machines. ``seed`` is unused; PCA draws nothing."""
    centred = latents - latents.mean(axis=0)
    _, _, axes = np.linalg.svd(centred, full_matrices=False)  # (min(N, D), D)
    axes = axes[:2]
    signs = np.sign(axes[np.arange(len(axes)), np.abs(axes).argmax(axis=1)])
    axes = axes * np.where(signs == 0, 1.0, signs)[:, None]
    points = np.zeros((len(latents), 2))
    points[:, : len(axes)] = centred @ axes.T  # fewer than 2 axes: the rest stays 0
    return points


def tsne_2d(latents: np.ndarray, seed: int = 0) -> np.ndarray:
    """t-SNE of the latents (N, 2), PCA-initialised, from ``seed``. Perplexity is 30,
    lowered to (N - 1) / 3 for small N (t-SNE needs it well below N)."""
    # Imported here: scikit-learn takes seconds to load and only t-SNE needs it.
    from sklearn.manifold import TSNE

    n = len(latents)
    if n < 3:
        raise FacegenError(f"t-SNE needs at least 3 faces, got {n}: use --method pca")
    perplexity = float(np.clip((n - 1) / 3, 1.0, 30.0))
    tsne = TSNE(
        n_components=2, perplexity=perplexity, init="pca", random_state=seed, learning_rate="auto"
    )
    return tsne.fit_transform(latents).astype(np.float64)


# The two the CLI offers (--method pca|tsne, argparse choices): a dict, not a registry.
PROJECTIONS: dict[str, Projection] = {
    "pca": Projection(pca_2d, "principal axis"),
    # Barnes-Hut t-SNE takes about half a minute for 2,000 points on 2 cores and grows faster
    # than N; a random 2,000 of a CelebA-sized split already shows the clusters.
    "tsne": Projection(tsne_2d, "t-SNE axis", default_n=2000),
}


def knn_accuracy(
    latents: np.ndarray | torch.Tensor, labels: np.ndarray, k: int = NEIGHBOURS
) -> float:
    """Leave-one-out ``k``-nearest-neighbour accuracy of ``labels`` (N,) from ``latents``
    (N, D), Euclidean. A vote tie goes to the tied label with the nearest member; ``k`` is
    cut to N - 1. NaN for fewer than 2 points.

    >>> knn_accuracy(np.array([[0.0], [0.1], [5.0], [5.1]]), np.array([0, 0, 1, 1]), k=1)
    1.0
    """
    x = torch.as_tensor(np.asarray(latents), dtype=torch.float64)  # (N, D)
    label_of = torch.as_tensor(np.asarray(labels))  # (N,)
    n = len(x)
    k = min(k, n - 1)
    if k < 1:
        return float("nan")
    squared = (x * x).sum(dim=1)
    correct = 0
    # Row chunks keep the distance matrix at (chunk, N): a CelebA test split has 20k faces.
    for rows in row_slices(n, KNN_ROWS):
        chunk = x[rows]
        distances = squared[rows, None] + squared[None] - 2 * chunk @ x.T
        within = torch.arange(len(chunk))
        distances[within, rows.start + within] = np.inf  # each point is not its own neighbour
        nearest = distances.topk(k, dim=1, largest=False).indices  # (chunk, k), nearest first
        votes = label_of[nearest]  # (chunk, k)
        # Each neighbour's label count among the k; argmax picks the nearest of the winners.
        counts = (votes[:, :, None] == votes[:, None, :]).sum(dim=2)
        predicted = votes[within, counts.argmax(dim=1)]
        correct += int((predicted == label_of[rows]).sum())
    return correct / n


def majority_share(labels: np.ndarray) -> float:
    """The accuracy of always answering the most common label (chance level); NaN if empty."""
    if len(labels) == 0:
        return float("nan")
    _, counts = np.unique(labels, return_counts=True)
    return float(counts.max() / len(labels))


@dataclass
class LatentMap:
    """A split's faces in 2-D. ``labels`` are attribute values (1 / -1, 0 unknown) or
    identities (-1 unknown); ``score`` is the leave-one-out ``k``-NN accuracy of the label in
    the full latent space over the ``scored`` faces whose label is known, ``baseline`` the
    most common label's share of them."""

    points: np.ndarray  # (N, 2) float64
    rows: np.ndarray  # (N,) data set rows
    latents: np.ndarray  # (N, D) float32
    labels: np.ndarray  # (N,) int
    color_by: str
    method: str
    model: str
    split: str
    score: float
    baseline: float
    k: int
    scored: int

    @property
    def known(self) -> np.ndarray:
        """(N,) bool: the faces whose label is known."""
        return _known(self.labels, self.color_by)


def _known(labels: np.ndarray, color_by: str) -> np.ndarray:
    # Unknown is -1 for identities but 0 for attributes, where -1 means "has not".
    return labels >= 0 if color_by == IDENTITY else labels != 0


def _labels(data: PackedDataset, color_by: str) -> np.ndarray:
    """The label of every row of ``data`` for ``color_by``; a data set without them is an
    error that says so."""
    if color_by == IDENTITY:
        if not data.has_identities:
            raise DataError(
                f"{data.path} has no identities (it was packed without identity_CelebA.txt): "
                "color by an attribute instead"
            )
        return np.asarray(data.identity)
    try:
        column = data.attribute_index(color_by)
    except DataError as error:
        raise DataError(f"{error}; or {IDENTITY}") from None
    if not data.has_attributes:
        raise DataError(
            f"{data.path} has no attribute labels (it was packed without list_attr_celeba.txt): "
            f"color by {IDENTITY} instead"
        )
    return np.asarray(data.attributes[:, column])


def latent_map(
    run: Run,
    data: PackedDataset,
    *,
    color_by: str = IDENTITY,
    method: str = "pca",
    split: str = "test",
    n: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> LatentMap:
    """Encode ``split`` of ``data`` with ``run``'s encoder and project the latents to 2-D
    with ``method`` (see :data:`PROJECTIONS`), labelled by ``color_by``: ``identity`` or an
    attribute name. ``n`` faces are drawn from ``seed``; ``None`` takes the method's
    default: every face for pca, at most 2,000 for tsne. The same arguments give the same
    map.

    >>> latent_map(run, data, color_by="Smiling", method="tsne").score
    """
    require_encoder(run, "latent-map")
    check_data(run, data)
    projection = choose(PROJECTIONS, method, "projection")
    if n is not None and n < 1:
        raise FacegenError(f"n must be at least 1, not {n}")
    all_labels = _labels(data, color_by)
    rows = pick_rows(data, split, projection.default_n if n is None else n, seed)
    latents = encode_rows(run, data, rows, progress=progress).numpy()  # (N, D)
    labels = all_labels[rows].astype(np.int64)
    points = projection.project(latents.astype(np.float64), seed)  # (N, 2)

    known = _known(labels, color_by)
    scored = int(known.sum())
    return LatentMap(
        points=points,
        rows=rows,
        latents=latents,
        labels=labels,
        color_by=color_by,
        method=method,
        model=run.name,
        split=split,
        score=knn_accuracy(latents[known], labels[known], NEIGHBOURS),
        baseline=majority_share(labels[known]),
        k=max(0, min(NEIGHBOURS, scored - 1)),
        scored=scored,
    )


def _score_line(result: LatentMap) -> str:
    what = IDENTITY if result.color_by == IDENTITY else result.color_by
    if result.scored < 2:
        return f"too few faces with a known {what} to score ({result.scored})"
    return (
        f"{result.k}-NN {what} accuracy in latent space {result.score:.2f} "
        f"(chance {result.baseline:.2f}, {result.scored} labelled)"
    )


def _marker_size(n: int) -> float:
    # Big dots for a handful of faces, small ones for thousands, so clusters stay visible.
    return float(np.clip(6000 / max(n, 1), 5, 60))


def _draw_attribute(axis, result: LatentMap, size: float) -> None:
    name = result.color_by
    for value, colour, label in (
        (0, UNKNOWN_GREY, "unknown"),
        (-1, LACKS_COLOUR, f"not {name}"),
        (1, HAS_COLOUR, name),
    ):
        chosen = result.labels == value
        if chosen.any():
            points = result.points[chosen]
            axis.scatter(
                points[:, 0], points[:, 1], s=size, c=colour, alpha=0.75, linewidths=0,
                label=f"{label} ({int(chosen.sum())})",
            )  # fmt: skip
    axis.legend(loc="best", fontsize=8, markerscale=max(1.0, 30 / size) ** 0.5)


def _draw_identities(axis, result: LatentMap, size: float) -> None:
    known = result.known
    identities, counts = np.unique(result.labels[known], return_counts=True)
    # Most faces first; among equal counts the smaller identity, so the choice is stable.
    order = np.lexsort((identities, -counts))
    coloured = identities[order[:COLOURED_IDENTITIES]]
    is_coloured = np.isin(result.labels, coloured) & known
    others = known & ~is_coloured
    if others.any():
        points = result.points[others]
        label = f"{len(identities) - len(coloured)} other identities ({int(others.sum())})"
        axis.scatter(
            points[:, 0], points[:, 1], s=size / 3, c=OTHER_GREY, alpha=0.5, linewidths=0,
            label=label,
        )  # fmt: skip
    if (~known).any():
        points = result.points[~known]
        axis.scatter(
            points[:, 0], points[:, 1], s=size / 3, c=UNKNOWN_GREY, alpha=0.5, linewidths=0,
            label=f"unknown identity ({int((~known).sum())})",
        )  # fmt: skip
    # tab20 lists each hue dark then light: the dark ten first keeps a few people apart.
    tab20 = colormaps["tab20"]
    colours = [tab20(i) for i in (*range(0, 20, 2), *range(1, 20, 2))]  # RGBA, alpha 1
    for i, identity in enumerate(coloured):
        points = result.points[result.labels == identity]
        axis.scatter(
            points[:, 0], points[:, 1], s=size, color=colours[i % len(colours)], alpha=0.85,
            linewidths=0, label=f"id {identity}",
        )  # fmt: skip
    axis.legend(
        loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False,
        title=f"top {len(coloured)} identities", title_fontsize=8,
        markerscale=max(1.0, 30 / size) ** 0.5,
    )  # fmt: skip


def save_latent_map(result: LatentMap, path: str | Path, title: str | None = None) -> Path:
    """Write ``result`` as a PNG scatter (7x6 inches, 100 dpi): attributes in two colours,
    identities as the 20 with most faces in their own colours and the rest grey. ``title``
    replaces the first title line; the second always gives the k-NN score against chance.
    The same result gives the same bytes."""
    projection = choose(PROJECTIONS, result.method, "projection")
    figure = Figure(figsize=(7, 6))
    axis = figure.add_subplot()
    size = _marker_size(len(result.points))
    if result.color_by == IDENTITY:
        _draw_identities(axis, result, size)
    else:
        _draw_attribute(axis, result, size)
    heading = title or (
        f"{result.model} latents, {result.method}, {result.split} split, N={len(result.points)}"
    )
    axis.set_title(f"{heading}\n{_score_line(result)}", fontsize=10)
    axis.set_xlabel(f"{projection.axis_label} 1")
    axis.set_ylabel(f"{projection.axis_label} 2")
    axis.grid(alpha=0.25)
    figure.tight_layout()
    return save_figure(figure, path)
