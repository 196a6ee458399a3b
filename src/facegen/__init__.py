"""facegen: learn human faces from CelebA (or any folder of face photos) and generate new ones.

>>> import facegen
>>> run = facegen.load_run("runs/vae")
>>> faces = run.sample(16, seed=0)   # (16, 3, 64, 64) in [-1, 1]
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    from facegen.run import Run


def load_run(path, device="cpu") -> Run:
    """Open a trained run folder for inference (see :func:`facegen.run.load_run`)."""
    from facegen.run import load_run as _load_run  # torch loads only when a run is opened

    return _load_run(path, device)
