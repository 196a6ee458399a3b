"""Fixtures shared across the test suite."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from facegen.data.packed import PackedDataset, PackedWriter, open_packed


def write_packed(
    folder: Path, n: int = 40, size: int = 32, *, seed: int = 0, partition: np.ndarray | None = None
) -> PackedDataset:
    """A small packed data set of random images whose pixel (0, 0, 0) encodes the row index
    (mod 256), so tests can tell which rows a batch holds."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    writer = PackedWriter(folder, n, size)
    images = rng.integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)
    images[:, 0, 0, 0] = np.arange(n) % 256
    writer.images[:] = images
    if partition is None:
        partition = np.array([0, 0, 0, 0, 0, 0, 0, 0, 1, 2] * (n // 10 + 1))[:n]
    writer.finish(
        np.ones(n, bool),
        filenames=[f"{i + 1:06d}.jpg" for i in range(n)],
        attributes=rng.choice(np.array([-1, 1], np.int8), size=(n, 40)),
        identity=np.arange(n, dtype=np.int32) % 7,
        partition=partition,
        manifest={"size": size, "source": {"path": "test", "kind": "test"}},
    )
    return open_packed(folder)


@pytest.fixture
def packed_factory(tmp_path: Path) -> Callable[..., PackedDataset]:
    """Make small packed data sets: ``packed_factory(n=40, size=32)``."""
    counter = iter(range(1_000_000))

    def make(**kwargs) -> PackedDataset:
        return write_packed(tmp_path / f"packed-{next(counter)}", **kwargs)

    return make
