"""Data: the built-in synthetic faces, the CelebA reader, packed data sets and the loader.

The light parts are importable from here. The synthetic-face drawer loads only when
``SynthConfig`` or ``synthesize`` is first used, and the training loader (which needs
torch) lives in :mod:`facegen.data.loader`.

>>> from facegen.data import SynthConfig, synthesize, PrepareConfig, prepare, open_packed
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from facegen.data.packed import PackedDataset, open_packed
from facegen.data.prepare import PrepareConfig, prepare
from facegen.data.sources import ImageSource, open_source

if TYPE_CHECKING:
    from facegen.data.synth import SynthConfig, synthesize

__all__ = [
    "ImageSource",
    "PackedDataset",
    "PrepareConfig",
    "SynthConfig",
    "open_packed",
    "open_source",
    "prepare",
    "synthesize",
]


def __getattr__(name: str) -> Any:
    if name in ("SynthConfig", "synthesize"):
        from facegen.data import synth

        return getattr(synth, name)
    raise AttributeError(f"module 'facegen.data' has no attribute {name!r}")
