"""`facegen data info`: what a packed data set holds, in words and in a picture."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facegen.data.packed import PackedDataset, split_counts
from facegen.viz.grid import image_grid, save_png

PREVIEW_FILE = "preview.png"


def summarize(data: PackedDataset) -> str:
    """A few lines a person reads: count, size, crop, splits, labels, source, skips."""
    m = data.manifest
    source = m.get("source", {})
    # Counts come from the arrays themselves, not from what the manifest claims.
    splits = split_counts(data.partition)
    identities = int(np.unique(data.identity[data.identity >= 0]).size)
    lines = [
        f"packed data set  {data.path}",
        f"images           {len(data):,} at {data.size}x{data.size} (crop {m.get('crop', '?')})",
        "splits           " + ", ".join(f"{k} {v:,}" for k, v in splits.items()),
        f"identities       {identities:,}"
        + ("" if data.has_identities else " (no identity labels)"),
        "attributes       "
        + (f"{len(data.attribute_names)} CelebA labels" if data.has_attributes else "none"),
        f"source           {source.get('path', '?')} ({source.get('kind', '?')}, "
        f"partition {source.get('partition', '?')})",
        f"skipped files    {m.get('skipped_count', 0):,}",
    ]
    for entry in m.get("skipped", [])[:5]:
        lines.append(f"                 {entry['file']}: {entry['reason']}")
    if m.get("skipped_count", 0) > 5:
        lines.append(f"                 ... the full list is in {data.path / 'manifest.json'}")
    lines.append(f"made by          facegen {m.get('facegen_version', '?')} on {m.get('created')}")
    if data.has_attributes:
        share = (data.attributes == 1).mean(axis=0)
        common = np.argsort(-share)[:6]
        lines.append(
            "most common      "
            + ", ".join(f"{data.attribute_names[i]} {share[i]:.0%}" for i in common)
        )
    return "\n".join(lines)


def write_preview(
    data: PackedDataset, path: str | Path | None = None, n: int = 64, seed: int = 0
) -> Path:
    """A grid of ``n`` images drawn at random (from ``seed``) from the data set."""
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(data), size=min(n, len(data)), replace=False))
    return save_png(image_grid(np.asarray(data.images[rows])), path or data.path / PREVIEW_FILE)
