"""The one batching helper: slices that cover every row once, in order, and a mapped result
that is exactly the one-piece result (so no caller's output depends on its batch size)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facegen.batches import map_batches, row_slices


@pytest.mark.parametrize(("count", "batch_size"), [(10, 3), (9, 3), (2, 5), (1, 1), (0, 4)])
def test_row_slices_cover_every_row_once_in_order(count, batch_size):
    slices = list(row_slices(count, batch_size))
    covered = [row for part in slices for row in range(count)[part]]
    assert covered == list(range(count))
    assert all(len(range(count)[part]) == batch_size for part in slices[:-1])
    assert len(slices) == -(-count // batch_size)


def test_a_batch_size_below_one_is_refused():
    with pytest.raises(ValueError, match="batch_size must be positive, got 0"):
        row_slices(10, 0)


def test_map_batches_equals_torch_split_bit_for_bit():
    x = torch.randn(23, 5, generator=torch.Generator().manual_seed(0))
    weight = torch.randn(5, 7, generator=torch.Generator().manual_seed(1))
    seen: list[int] = []

    def layer(part: torch.Tensor) -> torch.Tensor:
        seen.append(len(part))
        return torch.tanh(part @ weight)

    expected = torch.cat([torch.tanh(part @ weight) for part in x.split(4)])
    assert torch.equal(map_batches(layer, x, 4), expected)
    assert seen == [4, 4, 4, 4, 4, 3]


def test_map_batches_over_row_indices_reads_one_batch_at_a_time():
    table = np.arange(50).reshape(25, 2)
    rows = np.array([3, 1, 4, 15, 9, 2, 6])
    read: list[list[int]] = []

    def load(chunk: np.ndarray) -> torch.Tensor:
        read.append(chunk.tolist())
        return torch.from_numpy(table[chunk])

    assert torch.equal(map_batches(load, rows, 3), torch.from_numpy(table[rows]))
    assert read == [[3, 1, 4], [15, 9, 2], [6]]


def test_no_rows_give_the_empty_result_of_the_right_shape():
    result = map_batches(lambda part: part.float() @ torch.ones(3, 2), torch.empty(0, 3), 8)
    assert result.shape == (0, 2)


def test_the_progress_bar_is_named_and_only_shown_for_several_batches(capsys):
    map_batches(lambda part: part, torch.arange(6), 2, progress="encoding")
    assert "encoding" in capsys.readouterr().err
    map_batches(lambda part: part, torch.arange(6), 6, progress="encoding")  # one batch
    map_batches(lambda part: part, torch.arange(6), 2)  # no name: no bar
    assert capsys.readouterr().err == ""
