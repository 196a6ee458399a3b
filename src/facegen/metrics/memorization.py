"""Memorization: are generated faces new, or copies of training images?

For each generated face, the distance to its nearest training image, in Inception feature
space and in pixels. On its own a distance means little, so the same is measured for real
faces the model never saw (the test split): a model that copies has generated faces much
closer to the training set than unseen real faces are. The closest pairs are drawn so a
person can judge them.

Pixel distances are reported as root-mean-square differences in grey levels (0..255) per
value, so 0 is an exact copy and a few levels is a near copy.

>>> result = memorization(generated, train, generated_features, train_features,
...                       test_uint8=test, test_features=test_features)
>>> result.feature_median, result.pixel_median, result.closest_pairs()
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from facegen.metrics.neighbours import Rows, nearest_neighbours
from facegen.viz.grid import labelled_grid
from facegen.viz.plots import save_figure


@dataclass
class Memorization:
    """Nearest training images of generated (and, as a baseline, test) faces."""

    feature_distance: np.ndarray  # (M,) generated -> nearest train, feature space
    pixel_distance: np.ndarray  # (M,) generated -> nearest train, RMS grey levels
    pixel_index: np.ndarray  # (M,) which train image is nearest in pixels
    test_feature_distance: np.ndarray | None = None  # (T,) test -> train, the baseline
    test_pixel_distance: np.ndarray | None = None

    @property
    def feature_median(self) -> float:
        return float(np.median(self.feature_distance))

    @property
    def pixel_median(self) -> float:
        return float(np.median(self.pixel_distance))

    def summary(self) -> dict[str, float | None]:
        """The figures a metrics line records."""

        def median(values: np.ndarray | None) -> float | None:
            return None if values is None else float(np.median(values))

        return {
            "pixel_median": self.pixel_median,
            "pixel_min": float(self.pixel_distance.min()),
            "test_median": median(self.test_feature_distance),
            "pixel_test_median": median(self.test_pixel_distance),
            "exact_copies": int((self.pixel_distance < 0.5).sum()),
        }

    def closest_pairs(self, generated: np.ndarray, train: Rows, count: int = 8) -> np.ndarray:
        """The ``count`` generated faces closest (in pixels) to a training image, above
        those images, labelled with the distance: a uint8 picture."""
        order = np.argsort(self.pixel_distance, kind="stable")[:count]
        top = np.stack([generated[i] for i in order])
        bottom = np.stack([np.asarray(train[self.pixel_index[i]]) for i in order])
        labels = [f"{self.pixel_distance[i]:.1f}" for i in order]
        title = "closest generated faces (top) and their nearest training images; RMS grey levels"
        return labelled_grid(np.stack([top, bottom]), ["generated", "training"], labels, title)


def memorization(
    generated: np.ndarray,
    train: Rows,
    generated_features: np.ndarray,
    train_features: np.ndarray,
    *,
    test: np.ndarray | None = None,
    test_features: np.ndarray | None = None,
    device: str = "cpu",
) -> Memorization:
    """Nearest-training-image distances of uint8 ``generated`` faces (M, S, S, 3) against
    ``train`` (N, S, S, 3; a memory map is fine) in pixels, and of their features against
    ``train_features`` (a subset of the training set may be used there: features cost)."""
    values = math.prod(generated.shape[1:])
    pixel, index = nearest_neighbours(generated, train, device=device)
    feature, _ = nearest_neighbours(generated_features, train_features, device=device)
    result = Memorization(feature, pixel / math.sqrt(values), index)
    if test is not None and test_features is not None:
        test_pixel, _ = nearest_neighbours(test, train, device=device)
        result.test_pixel_distance = test_pixel / math.sqrt(values)
        result.test_feature_distance, _ = nearest_neighbours(
            test_features, train_features, device=device
        )
    return result


def save_distance_plot(result: Memorization, path: str | Path, title: str = "") -> Path:
    """Histograms of nearest-training distances, generated against unseen test faces, in
    feature space and in pixels: generated faces far left of the test faces are copies."""
    figure = Figure(figsize=(10, 3.4))
    axes = figure.subplots(1, 2)
    panels = [
        ("Inception feature distance", result.feature_distance, result.test_feature_distance),
        ("pixel distance (RMS grey levels)", result.pixel_distance, result.test_pixel_distance),
    ]
    for axis, (label, generated, test) in zip(axes, panels, strict=True):
        pooled = generated if test is None else np.concatenate([generated, test])
        bins = np.linspace(0, float(pooled.max()) * 1.02 + 1e-9, 40)
        axis.hist(
            generated, bins=bins, alpha=0.7, label=f"generated (median {np.median(generated):.1f})"
        )
        if test is not None:
            axis.hist(
                test, bins=bins, alpha=0.6, label=f"test faces (median {np.median(test):.1f})"
            )
        axis.set_xlabel(f"{label} to the nearest training image")
        axis.set_ylabel("faces")
        axis.legend(fontsize=8)
        axis.grid(alpha=0.3)
    figure.suptitle(title or "distance to the nearest training image")
    figure.tight_layout()
    return save_figure(figure, path)
