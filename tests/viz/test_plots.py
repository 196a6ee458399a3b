"""Loss curves and the figure writer: the same log gives the same loss.png, byte for byte."""

from __future__ import annotations

import math

from matplotlib.figure import Figure
from PIL import Image

from facegen.viz.plots import plot_losses, save_figure


def history(steps: int = 30) -> list[dict]:
    """A log as the trainer writes it: losses, and settings and speeds that are not."""
    return [
        {
            "step": step,
            "epoch": step // 10,
            "loss": 100.0 / step,
            "recon": 2.0 + math.sin(step),
            "kl_weight": min(1.0, step / 10),
            "images_per_second": 50.0 + step,
            "seconds": step * 0.1,
        }
        for step in range(1, steps + 1)
    ]


def test_loss_plot_is_byte_identical_for_the_same_log(tmp_path):
    first = plot_losses(history(), tmp_path / "a" / "loss.png", "vae on synth-64")
    second = plot_losses(history(), tmp_path / "b" / "loss.png", "vae on synth-64")
    assert first.read_bytes() == second.read_bytes()
    # Nothing of the install in the file: matplotlib's version would change the bytes.
    with Image.open(first) as image:
        assert "Software" not in image.info
        assert image.size == (2 * 420, 300)  # a panel each for loss and recon, at 100 dpi
    assert plot_losses(history(31), tmp_path / "c.png").read_bytes() != first.read_bytes()


def test_save_figure_writes_a_png_atomically(tmp_path):
    figure = Figure(figsize=(2, 1))
    figure.add_subplot().plot([0, 1], [1, 0])
    path = save_figure(figure, tmp_path / "sub" / "line.png")
    assert path == tmp_path / "sub" / "line.png"
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == (200, 100)
    assert [p.name for p in path.parent.iterdir()] == ["line.png"]  # no temporary left
