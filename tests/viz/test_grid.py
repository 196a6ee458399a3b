"""Image grids."""

import numpy as np
import pytest
from PIL import Image

from facegen.viz.grid import image_grid, paired_rows, save_png


def test_grid_places_each_image_in_reading_order():
    images = np.stack([np.full((4, 5, 3), i, np.uint8) for i in range(5)])
    grid = image_grid(images, columns=3, padding=1, background=255)
    assert grid.shape == (2 * 5 + 1, 3 * 6 + 1, 3)
    assert grid[1, 1, 0] == 0 and grid[1, 7, 0] == 1 and grid[1, 13, 0] == 2
    assert grid[6, 1, 0] == 3 and grid[6, 7, 0] == 4
    assert grid[6, 13, 0] == 255  # the empty sixth cell keeps the background
    assert grid[0, 0, 0] == 255  # padding


def test_grid_defaults_to_near_square():
    assert image_grid(np.zeros((64, 8, 8, 3), np.uint8), padding=0).shape == (64, 64, 3)


@pytest.mark.parametrize("bad", [np.zeros((2, 8, 8), np.uint8), np.zeros((2, 8, 8, 3))])
def test_grid_refuses_other_arrays(bad):
    with pytest.raises(ValueError, match="expected uint8 images"):
        image_grid(bad)


def test_save_png_round_trip(tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (10, 12, 3), dtype=np.uint8)
    path = save_png(image, tmp_path / "sub" / "x.png")
    np.testing.assert_array_equal(np.asarray(Image.open(path)), image)
    assert [p.name for p in path.parent.iterdir()] == ["x.png"]


def test_paired_rows_keep_every_face_above_its_partner():
    top = np.arange(5, dtype=np.uint8)[:, None, None, None].repeat(2, 1).repeat(2, 2).repeat(3, 3)
    bottom = top + 100
    pairs = paired_rows(top, bottom, columns=3)
    assert pairs.shape == (4, 3, 2, 2, 3)
    assert (pairs[0, :, 0, 0, 0] == [0, 1, 2]).all() and (
        pairs[1, :, 0, 0, 0] == [100, 101, 102]
    ).all()
    assert (pairs[2, :2, 0, 0, 0] == [3, 4]).all() and (pairs[3, :2, 0, 0, 0] == [103, 104]).all()
    assert (pairs[2:, 2] == 255).all()  # the short last pair is padded with white
