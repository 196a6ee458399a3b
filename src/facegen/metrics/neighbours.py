"""Euclidean nearest neighbours between large sets, in blocks: memorization (the distance of
each generated face to its closest training image, in pixels or in feature space) and the
k-NN radii of precision and recall.

Rows are flattened, so uint8 images (N, S, S, 3) and features (N, D) both work; distances
are in the units of the inputs (0..255 pixel values, raw feature values). The reference set
is read one block at a time, so a memory-mapped training set is never converted to float
as a whole; the query set is converted once. Distance blocks are ``batch_size`` squared.

Distances are computed as ||q||^2 + ||r||^2 - 2 q.r in float32 (``torch.cdist``'s matrix
product route, as in the reference precision/recall code). Both sets are first centred on
the reference mean, which keeps the norms, and so the cancellation, small; the distance to
the neighbour that is found is then recomputed exactly in float64, so an exact copy reports
0. Near-ties closer than float32 round-off may pick either neighbour.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import numpy as np
import torch

from facegen.batches import row_slices


class LazyRows(Protocol):
    """Rows read only when indexed (a view of some rows of a memory map): all the search
    uses of an array is its shape, its length and indexing it."""

    @property
    def shape(self) -> tuple[int, ...]: ...

    @property
    def ndim(self) -> int: ...

    def __len__(self) -> int: ...

    def __getitem__(self, which: int | slice | np.ndarray) -> np.ndarray: ...


# (N, ...) numpy (a memory map is fine), torch, or rows read when indexed
Rows = np.ndarray | torch.Tensor | LazyRows


def nearest_neighbours(
    queries: Rows,
    references: Rows,
    batch_size: int = 1000,
    *,
    device: str | torch.device = "cpu",
) -> tuple[np.ndarray, np.ndarray]:
    """For each query row, the Euclidean distance to its nearest reference row (float64) and
    that row's index (int64).

    >>> distances, indices = nearest_neighbours(generated_uint8, train_images_uint8)
    """
    _check_rows(queries, references)
    center = mean_row(references, batch_size, device=device)
    query_matrix = rows_block(queries, slice(None), device) - center
    _, indices = k_nearest(query_matrix, references, 1, batch_size, center=center)
    indices = indices[:, 0]
    distances = torch.empty(len(queries), dtype=torch.float64)
    for part in row_slices(len(queries), batch_size):
        # Exact: the plain difference of the original values, in float64.
        query = rows_block(queries, part, device, torch.float64)
        nearest = rows_block(references, indices[part].numpy(), device, torch.float64)
        distances[part] = (query - nearest).norm(dim=1).cpu()
    return distances.numpy(), indices.numpy()


def k_nearest(
    queries: torch.Tensor,
    references: Rows,
    k: int,
    batch_size: int,
    *,
    center: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` smallest float32 distances (N, k), ascending, from each row of ``queries``
    (float32 (N, D), already centred) to the rows of ``references`` (centred here on
    ``center``), and their reference indices (N, k) on the CPU. A set against itself
    includes each row's zero distance to itself."""
    count = len(queries)
    best_distances = torch.empty(count, 0, device=queries.device)
    best_indices = torch.empty(count, 0, dtype=torch.long, device=queries.device)
    for start, block in reference_blocks(references, batch_size, center):
        kept = min(k, best_distances.shape[1] + len(block))
        new_distances = torch.empty(count, kept, device=queries.device)
        new_indices = torch.empty(count, kept, dtype=torch.long, device=queries.device)
        block_indices = torch.arange(start, start + len(block), device=queries.device)
        for rows in row_slices(count, batch_size):
            distances = torch.cat([best_distances[rows], torch.cdist(queries[rows], block)], 1)
            indices = torch.cat([best_indices[rows], block_indices.expand(len(distances), -1)], 1)
            top, position = distances.topk(kept, dim=1, largest=False)  # ascending
            new_distances[rows] = top
            new_indices[rows] = indices.gather(1, position)
        best_distances, best_indices = new_distances, new_indices
    return best_distances.cpu(), best_indices.cpu()


def reference_blocks(
    references: Rows, batch_size: int, center: torch.Tensor
) -> Iterator[tuple[int, torch.Tensor]]:
    """(first row, float32 block (b, D) centred on ``center``) over ``references``."""
    for rows in row_slices(len(references), batch_size):
        yield rows.start, rows_block(references, rows, center.device) - center


def rows_block(
    rows: Rows,
    which: slice | np.ndarray,
    device: str | torch.device,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """``rows[which]`` flattened to (b, D) in ``dtype`` on ``device``."""
    part = rows[which]
    # np.array copies: a slice of a read-only memory map cannot back a tensor.
    part = part.detach() if isinstance(part, torch.Tensor) else torch.from_numpy(np.array(part))
    return part.to(device).flatten(1).to(dtype)


def mean_row(rows: Rows, batch_size: int, *, device: str | torch.device) -> torch.Tensor:
    """The mean row (D,) in float32, summed block by block in float64."""
    total = torch.zeros((), dtype=torch.float64, device=device)  # broadcast to (D,)
    for part in row_slices(len(rows), batch_size):
        total = total + rows_block(rows, part, device, torch.float64).sum(0)
    return (total / len(rows)).float()


def _check_rows(queries: Rows, references: Rows) -> None:
    if len(queries) == 0 or len(references) == 0:
        raise ValueError("nearest neighbours need at least one query and one reference")
    if tuple(queries.shape[1:]) != tuple(references.shape[1:]):
        raise ValueError(
            f"queries {tuple(queries.shape)} and references {tuple(references.shape)} "
            "have different row shapes"
        )


def check_feature_sets(real: Rows, generated: Rows) -> None:
    """Raise unless both are feature arrays (N, D) and (M, D) of the same width."""
    if real.ndim != 2 or generated.ndim != 2 or real.shape[1] != generated.shape[1]:
        raise ValueError(
            f"expected features (N, D) and (M, D), got {tuple(real.shape)}, "
            f"{tuple(generated.shape)}"
        )
