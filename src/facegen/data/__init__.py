"""Data: the built-in synthetic faces, the CelebA reader, packed data sets and the loader.

The light parts are importable from here; the training loader (which needs torch) lives in
:mod:`facegen.data.loader`.

>>> from facegen.data import SynthConfig, synthesize, PrepareConfig, prepare, open_packed
"""

from facegen.data.packed import PackedDataset, open_packed
from facegen.data.prepare import PrepareConfig, prepare
from facegen.data.sources import ImageSource, open_source
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
