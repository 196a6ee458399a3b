"""The packed data set: the folder `facegen data prepare` writes and training reads.

Layout (the README's Layout)::

    images.npy       uint8 [N, S, S, 3], memory-mapped on open so RAM stays flat in N
    attributes.npy   int8  [N, 40]  (1 / -1, 0 unknown)
    identity.npy     int32 [N]      (-1 unknown)
    partition.npy    int8  [N]      (0 train, 1 valid, 2 test)
    filenames.txt    the source name of each row
    manifest.json    format version, source, size, crop, counts, attribute names, skips, ...

This module owns the format: :class:`PackedWriter` writes it, :func:`open_packed` reads
and checks it. Nothing else touches these files by name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, cast

import numpy as np

from facegen.data.celeba import ATTRIBUTE_NAMES, PARTITION_NAMES
from facegen.errors import DataError
from facegen.files import write_json, write_text
from facegen.layout import SIZES

FORMAT_NAME = "facegen-packed"
FORMAT_VERSION = 1

IMAGES_FILE = "images.npy"
ATTRIBUTES_FILE = "attributes.npy"
IDENTITY_FILE = "identity.npy"
PARTITION_FILE = "partition.npy"
FILENAMES_FILE = "filenames.txt"
MANIFEST_FILE = "manifest.json"
SPLITS: tuple[str, ...] = (*PARTITION_NAMES, "all")


def split_counts(partition: np.ndarray) -> dict[str, int]:
    """Rows per split, e.g. ``{"train": 8030, "valid": 980, "test": 990}``."""
    counts = np.bincount(partition.astype(np.int64), minlength=len(PARTITION_NAMES))
    return {name: int(counts[i]) for i, name in enumerate(PARTITION_NAMES)}


class PackedWriter:
    """Fills a packed data set in ``folder`` (normally a temporary one, see
    :func:`facegen.files.atomic_directory`).

    Images go straight to a memory-mapped ``images.npy`` of ``capacity`` rows, so writing
    never holds more than a batch in RAM; worker processes may open it too with
    :func:`open_images_for_writing`. Rows are then compacted and the file shrunk in
    :meth:`finish` when some sources could not be read.
    """

    def __init__(self, folder: str | Path, capacity: int, size: int) -> None:
        if size not in SIZES:
            raise DataError(f"unsupported size {size}: choose one of {', '.join(map(str, SIZES))}")
        self.folder = Path(folder)
        self.capacity = capacity
        self.size = size
        self.images = np.lib.format.open_memmap(
            self.folder / IMAGES_FILE, mode="w+", dtype=np.uint8, shape=(capacity, size, size, 3)
        )

    def finish(
        self,
        keep: np.ndarray,
        *,
        filenames: list[str],
        attributes: np.ndarray,
        identity: np.ndarray,
        partition: np.ndarray,
        manifest: dict[str, Any],
    ) -> None:
        """Keep the rows where ``keep`` is true (in order) and write the label files and the
        manifest. The label arrays and ``filenames`` have ``capacity`` rows."""
        keep = np.asarray(keep, dtype=bool)
        rows = np.flatnonzero(keep)
        n = len(rows)
        if n < self.capacity:
            # Move the kept rows down over the holes in chunks, then cut the file: memory
            # stays flat and no second copy of the images is ever written.
            chunk = 1024
            for start in range(0, n, chunk):
                src = rows[start : start + chunk]
                if src[0] != start or src[-1] != start + len(src) - 1:
                    self.images[start : start + len(src)] = self.images[src]
        self.images.flush()
        del self.images
        _shrink_npy_rows(self.folder / IMAGES_FILE, n)

        np.save(self.folder / ATTRIBUTES_FILE, np.asarray(attributes, np.int8)[keep])
        np.save(self.folder / IDENTITY_FILE, np.asarray(identity, np.int32)[keep])
        np.save(self.folder / PARTITION_FILE, np.asarray(partition, np.int8)[keep])
        kept_names = [name for name, k in zip(filenames, keep, strict=True) if k]
        write_text(self.folder / FILENAMES_FILE, "".join(name + "\n" for name in kept_names))
        write_json(
            self.folder / MANIFEST_FILE,
            {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "count": n, **manifest},
        )


def open_images_for_writing(folder: str | Path) -> np.memmap:
    """Open a :class:`PackedWriter`'s image file from another process."""
    return np.load(Path(folder) / IMAGES_FILE, mmap_mode="r+")


def _shrink_npy_rows(path: Path, rows: int) -> None:
    """Rewrite a .npy header to ``rows`` rows in place and truncate the data after them.

    The new header is never longer than the old one (fewer digits at most), so it is padded
    with spaces to the same length, which the .npy format allows.
    """
    with open(path, "r+b") as f:
        version = np.lib.format.read_magic(f)
        read_header = (
            np.lib.format.read_array_header_1_0
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0
        )
        shape, fortran_order, dtype = read_header(f)
        data_offset = f.tell()
        if shape[0] == rows:
            return
        new_shape = (rows, *shape[1:])
        header = repr(
            {
                "descr": np.lib.format.dtype_to_descr(dtype),
                "fortran_order": fortran_order,
                "shape": new_shape,
            }
        )
        prefix_length = 8 + (2 if version == (1, 0) else 4)  # magic + version, header length
        header_length = data_offset - prefix_length
        header_bytes = header.encode("latin1").ljust(header_length - 1) + b"\n"
        f.seek(prefix_length)
        f.write(header_bytes)
        f.truncate(data_offset + rows * int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize)


@dataclass
class PackedDataset:
    """A packed data set opened for reading; ``images`` is memory-mapped.

    >>> data = open_packed("data/synth-64")
    >>> data.images[data.split_indices("test")[:16]].shape
    (16, 64, 64, 3)

    It is also a map-style data set in PyTorch's sense (``len`` and integer indexing), so
    a ``torch.utils.data.DataLoader``, Lightning or accelerate can read it directly; torch
    is imported at the first item, never by opening the data set:

    >>> image, labels = data[0]  # float32 (3, S, S) in [-1, 1]; {"attributes", "identity"}
    >>> loader = torch.utils.data.DataLoader(data.subset("train"), batch_size=64, shuffle=True)

    facegen's own training uses :class:`facegen.data.loader.BatchLoader` instead (whole
    batches gathered from the memory map, an order that resumes exactly, flips, DDP parts).
    """

    path: Path
    manifest: dict[str, Any]
    images: np.ndarray  # (N, S, S, 3) uint8, memory-mapped
    attributes: np.ndarray  # (N, 40) int8
    identity: np.ndarray  # (N,) int32
    partition: np.ndarray  # (N,) int8
    attribute_names: tuple[str, ...] = field(default=ATTRIBUTE_NAMES)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Any, dict[str, Any]]:
        """Row ``index`` as ``(image, labels)``: the image a float32 tensor (3, S, S) in
        [-1, 1] (the training mapping, :func:`facegen.data.loader.from_uint8`), the labels
        ``{"attributes": int8 tensor (40,) of 1 / -1 / 0 unknown, "identity": int64 tensor
        (), -1 unknown}``. Negative indices count from the end, as for a list."""
        import torch

        from facegen.data.loader import from_uint8

        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"a packed data set is indexed by an int, not {type(index).__name__}")
        if not -len(self) <= index < len(self):
            raise IndexError(f"row {index} is outside {self.path} ({len(self)} images)")
        image = from_uint8(np.array(self.images[index : index + 1 or None]))[0]  # a copy
        labels = {
            "attributes": torch.from_numpy(np.array(self.attributes[index], dtype=np.int8)),
            "identity": torch.tensor(int(self.identity[index]), dtype=torch.int64),
        }
        return image, labels

    def subset(self, split: str) -> Any:
        """The rows of ``split`` as a ``torch.utils.data.Subset`` of this data set."""
        from torch.utils.data import Dataset, Subset

        # A map-style data set by duck typing (__getitem__, __len__): all Subset relies on.
        return Subset(cast("Dataset[Any]", self), self.split_indices(split).tolist())

    @property
    def size(self) -> int:
        return int(self.images.shape[1])

    @cached_property
    def filenames(self) -> list[str]:
        text = (self.path / FILENAMES_FILE).read_text(encoding="utf-8")
        return text.splitlines()

    @property
    def has_attributes(self) -> bool:
        return bool(np.any(self.attributes != 0))

    @property
    def has_identities(self) -> bool:
        return bool(np.any(self.identity >= 0))

    def split_indices(self, split: str) -> np.ndarray:
        """Row indices of ``split`` (train, valid, test or all), ascending."""
        if split == "all":
            return np.arange(len(self))
        if split not in PARTITION_NAMES:
            raise DataError(f"unknown split {split!r}: choose one of {', '.join(SPLITS)}")
        return np.flatnonzero(self.partition == PARTITION_NAMES.index(split))

    def attribute_index(self, name: str) -> int:
        """Column of attribute ``name``; an unknown name lists the available ones."""
        if name not in self.attribute_names:
            raise DataError(
                f"unknown attribute {name!r}; available: {', '.join(self.attribute_names)}"
            )
        return self.attribute_names.index(name)


def open_packed(path: str | Path) -> PackedDataset:
    """Open and check a packed data set; anything else gives one clear :class:`DataError`."""
    path = Path(path)
    hint = "make one with: facegen data prepare SRC OUT"
    if not path.exists():
        raise DataError(f"{path} does not exist; {hint}")
    if not path.is_dir():
        raise DataError(f"{path} is not a packed data set (not a folder); {hint}")
    manifest_path = path / MANIFEST_FILE
    if not manifest_path.is_file():
        raise DataError(f"{path} is not a packed data set (no {MANIFEST_FILE}); {hint}")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise DataError(f"{manifest_path} is damaged: {error}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise DataError(f"{path} is not a packed data set ({MANIFEST_FILE} is not facegen's)")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise DataError(
            f"{path} has packed format version {version}; this facegen reads version "
            f"{FORMAT_VERSION}: prepare it again with this version"
        )
    arrays = {}
    for name in (IMAGES_FILE, ATTRIBUTES_FILE, IDENTITY_FILE, PARTITION_FILE):
        try:
            arrays[name] = np.load(path / name, mmap_mode="r" if name == IMAGES_FILE else None)
        except FileNotFoundError:
            raise DataError(f"{path} is incomplete: {name} is missing") from None
        except (OSError, ValueError) as error:
            raise DataError(f"{path / name} is damaged: {error}") from None
    images = arrays[IMAGES_FILE]
    n = manifest.get("count")
    if images.ndim != 4 or images.shape[3] != 3 or images.shape[1] != images.shape[2]:
        raise DataError(f"{path / IMAGES_FILE} has shape {images.shape}, expected [N, S, S, 3]")
    if images.dtype != np.uint8 or len(images) != n:
        raise DataError(f"{path / IMAGES_FILE} does not match the manifest ({n} uint8 images)")
    expected = {
        ATTRIBUTES_FILE: (n, len(ATTRIBUTE_NAMES)),
        IDENTITY_FILE: (n,),
        PARTITION_FILE: (n,),
    }
    for name, shape in expected.items():
        if arrays[name].shape != shape:
            raise DataError(f"{path / name} has shape {arrays[name].shape}, expected {shape}")
    names = tuple(manifest.get("attribute_names") or ATTRIBUTE_NAMES)
    return PackedDataset(
        path=path,
        manifest=manifest,
        images=images,
        attributes=arrays[ATTRIBUTES_FILE],
        identity=arrays[IDENTITY_FILE],
        partition=arrays[PARTITION_FILE],
        attribute_names=names,
    )


def pick_rows(data: PackedDataset, split: str, n: int | None, seed: int) -> np.ndarray:
    """``n`` rows of ``split`` drawn without replacement from ``seed`` (all rows for
    ``None``), ascending; an empty split is an error naming it."""
    rows = data.split_indices(split)
    if len(rows) == 0:
        raise DataError(f"{data.path} has no images in the {split} split")
    if n is None or n >= len(rows):
        return rows
    chosen = np.random.default_rng(seed).choice(len(rows), size=n, replace=False)
    return rows[np.sort(chosen)]
