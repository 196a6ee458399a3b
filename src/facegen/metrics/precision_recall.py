"""Improved precision and recall (Kynkäänniemi et al. 2019) from feature arrays.

Each set's manifold is the union of balls around its points, each ball reaching the point's
k-th nearest neighbour within the same set (k = 3 in the paper). Precision is the share of
generated points inside the real manifold (are the samples realistic?), recall the share
of real points inside the generated manifold (is the variety covered?). As in the
reference code (NVlabs stylegan2-ada ``metrics/precision_recall.py``) the k-th neighbour
distance counts the point itself as the 0-th, a point on a ball's boundary is inside, and
distances are float32.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from facegen.batches import row_slices
from facegen.metrics.neighbours import check_feature_sets, k_nearest, reference_blocks, rows_block


class PrecisionRecall(NamedTuple):
    precision: float
    recall: float


def precision_recall(
    real: np.ndarray | torch.Tensor,
    generated: np.ndarray | torch.Tensor,
    *,
    k: int = 3,
    batch_size: int = 1000,
    device: str | torch.device = "cpu",
) -> PrecisionRecall:
    """Precision and recall of ``generated`` features (M, D) against ``real`` ones (N, D).

    >>> precision, recall = precision_recall(real_features, generated_features)
    """
    check_feature_sets(real, generated)
    if min(len(real), len(generated)) <= k:
        raise ValueError(f"precision/recall with k={k} need more than {k} points in each set")
    real_matrix = rows_block(real, slice(None), device)
    # Distances do not change under a shift; centring keeps float32 cancellation small.
    center = real_matrix.mean(0)
    real_matrix = real_matrix - center
    generated_matrix = rows_block(generated, slice(None), device) - center
    real_radii = _kth_neighbour_distance(real_matrix, k, batch_size)
    generated_radii = _kth_neighbour_distance(generated_matrix, k, batch_size)
    return _coverage(generated_matrix, real_matrix, generated_radii, real_radii, batch_size)


def _kth_neighbour_distance(points: torch.Tensor, k: int, batch_size: int) -> torch.Tensor:
    """Each point's distance (N,) to its k-th nearest neighbour in its own set."""
    # The set against itself: column 0 is each point's distance to itself.
    distances, _ = k_nearest(points, points, k + 1, batch_size, center=torch.zeros_like(points[0]))
    return distances[:, k].to(points.device)


def _coverage(
    generated: torch.Tensor,
    real: torch.Tensor,
    generated_radii: torch.Tensor,
    real_radii: torch.Tensor,
    batch_size: int,
) -> PrecisionRecall:
    """The share of generated points inside some real ball and of real points inside some
    generated ball, both read off one pass over the generated-to-real distances."""
    generated_inside = torch.zeros(len(generated), dtype=torch.bool, device=generated.device)
    real_inside = torch.zeros(len(real), dtype=torch.bool, device=real.device)
    for start, block in reference_blocks(real, batch_size, torch.zeros_like(real[0])):
        columns = slice(start, start + len(block))
        for rows in row_slices(len(generated), batch_size):
            distances = torch.cdist(generated[rows], block)  # (generated rows, real columns)
            generated_inside[rows] |= (distances <= real_radii[columns]).any(dim=1)
            real_inside[columns] |= (distances <= generated_radii[rows, None]).any(dim=0)
    return PrecisionRecall(
        generated_inside.sum().item() / len(generated), real_inside.sum().item() / len(real)
    )
