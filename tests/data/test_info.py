"""`data info`: the summary a person reads and the preview grid."""

import numpy as np
from PIL import Image

from facegen.data.info import summarize, write_preview


def test_summary_names_counts_splits_and_labels(packed_factory):
    data = packed_factory(n=30, size=32)
    text = summarize(data)
    assert "30 at 32x32" in text
    assert "train 24, valid 3, test 3" in text
    assert "40 CelebA labels" in text


def test_preview_grid_is_written_and_reproducible(packed_factory, tmp_path):
    data = packed_factory(n=30, size=32)
    path = write_preview(data, n=16)
    assert path == data.path / "preview.png"
    grid = np.asarray(Image.open(path))
    assert grid.shape == (4 * 34 + 2, 4 * 34 + 2, 3)
    again = write_preview(data, tmp_path / "again.png", n=16)
    assert again.read_bytes() == path.read_bytes()
    other = write_preview(data, tmp_path / "other.png", n=16, seed=1)
    assert other.read_bytes() != path.read_bytes()
