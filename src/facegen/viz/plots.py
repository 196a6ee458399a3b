"""Plots people read: loss curves, and the one function that saves every facegen figure."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

# Figure, not pyplot: no global state and no window, safe on servers and in threads.
from matplotlib.figure import Figure

from facegen.files import atomic_path

FIGURE_DPI = 100
# Logged values that are settings or speeds, not losses.
NOT_LOSSES = frozenset({"step", "epoch", "images_per_second", "lr", "seconds", "kl_weight"})


def plot_losses(records: Sequence[dict], path: str | Path, title: str = "") -> Path:
    """One panel per logged loss against step (log scale where values span decades)."""
    path = Path(path)
    names = [k for k in records[0] if k not in NOT_LOSSES] if records else []
    columns = min(3, max(1, len(names)))
    rows = max(1, math.ceil(len(names) / columns))
    figure = Figure(figsize=(4.2 * columns, 3.0 * rows))
    axes = figure.subplots(rows, columns, squeeze=False)
    steps = [r["step"] for r in records]
    for axis, name in zip(axes.flat, names, strict=False):
        values = [r.get(name, math.nan) for r in records]
        axis.plot(steps, values, linewidth=1.2)
        positive = [v for v in values if v == v and v > 0]
        if positive and min(positive) > 0 and max(positive) / min(positive) > 100:
            axis.set_yscale("log")
        axis.set_title(name)
        axis.set_xlabel("step")
        axis.grid(alpha=0.3)
    for axis in list(axes.flat)[len(names) :]:
        axis.axis("off")
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return save_figure(figure, path)


def save_figure(figure: Figure, path: str | Path) -> Path:
    """Write a matplotlib figure as a PNG at :data:`FIGURE_DPI`, atomically; returns the path.

    Every facegen figure is saved here. The same figure gives the same bytes on any install:
    matplotlib's PNG would otherwise carry a ``Software`` entry with its version (it writes
    no date in a PNG). Images that are pixels, not plots, go through ``viz.grid.save_png``.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=FIGURE_DPI, metadata={"Software": None})
    return path
