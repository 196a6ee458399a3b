"""Working through many rows a batch at a time: the one place facegen cuts rows into batches.

Batches keep memory bounded: a CelebA split is read from its memory map and converted to
floats one batch at a time, a distance matrix is (batch, N) rather than (N, N), and a model
sees at most ``batch_size`` images at once. Two helpers, one cut:

- :func:`row_slices` gives the slices, for loops that do more with each batch than map it:
  write into a preallocated result, accumulate a sum or a count, walk two sets at once;
- :func:`map_batches` maps a function over those slices of a tensor, an array (a memory
  map is fine) or an array of row indices, and concatenates what it returns, with an
  optional progress bar.

:func:`facegen.run.in_batches` is :func:`map_batches` for a model on a device.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch

from facegen.progress import progress_bar


def row_slices(count: int, batch_size: int) -> Iterator[slice]:
    """Consecutive slices of ``batch_size`` rows covering ``count`` rows; the last may be
    shorter (slicing clips it), and 0 rows give none.

    >>> list(row_slices(5, 2))
    [slice(0, 2, None), slice(2, 4, None), slice(4, 6, None)]
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    return (slice(start, start + batch_size) for start in range(0, count, batch_size))


def map_batches(
    function: Callable[[Any], torch.Tensor],
    rows: Any,
    batch_size: int,
    *,
    progress: str | None = None,
) -> torch.Tensor:
    """``torch.cat`` of ``function(rows[s])`` over :func:`row_slices` of ``rows`` (anything
    with ``len`` and slicing: a tensor, a numpy array or memory map, row indices).

    No rows give ``function`` of the empty batch, as ``torch.split`` does, so the result
    keeps its shape (0, ...). ``progress`` names a progress bar, shown only when there is
    more than one batch.

    >>> map_batches(lambda part: part * 2, torch.arange(5), 2)
    tensor([0, 2, 4, 6, 8])
    """
    parts = list(row_slices(len(rows), batch_size)) or [slice(0, 0)]
    bar = progress_bar(
        parts, desc=progress, unit="batch", disable=progress is None or len(parts) < 2
    )
    return torch.cat([function(rows[part]) for part in bar])
