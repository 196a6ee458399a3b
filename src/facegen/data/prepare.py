"""`facegen data prepare`: decode, crop and resize a source once into a packed data set.

Decoding runs in worker processes that write straight into the memory-mapped output, so
memory stays flat whatever the number of images; the folder is built under a temporary
name and renamed at the end, so an interrupted prepare leaves nothing behind.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from io import BytesIO
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image

from facegen._version import __version__
from facegen.data.align import NO_FACE
from facegen.data.celeba import ATTRIBUTE_NAMES
from facegen.data.decode import CELEBA_CROP, Crop, decode_face, describe_error
from facegen.data.packed import (
    SIZES,
    SPLITS,
    PackedDataset,
    PackedWriter,
    open_images_for_writing,
    open_packed,
    split_counts,
)
from facegen.data.sources import ImageReader, ImageSource, open_source
from facegen.errors import DataError, FacegenError
from facegen.files import atomic_directory
from facegen.progress import progress_bar

# Images per worker task: small enough for a live progress bar, large enough that task
# overhead stays well under 1% of decoding time.
CHUNK = 128
# The manifest names at most this many skipped files (all are counted).
MAX_SKIPPED_LISTED = 10_000


@dataclass(frozen=True)
class PrepareConfig:
    """How to pack a source. ``crop=None`` picks CelebA's centred 140 box for CelebA
    sources and the largest centred square for other images. ``detect_faces`` finds each
    photo's largest face and warps it into CelebA's aligned geometry first (photos with no
    face are skipped), so then the 140 box is the default for every source."""

    size: int = 64
    crop: str | None = None
    identities: int | None = None
    split: str = "all"
    limit: int | None = None
    workers: int | None = None
    detect_faces: bool = False

    def validate(self) -> None:
        if self.size not in SIZES:
            choices = ", ".join(map(str, SIZES))
            raise DataError(f"unsupported size {self.size}: choose one of {choices}")
        if self.split not in SPLITS:
            raise DataError(f"unknown split {self.split!r}: choose one of {', '.join(SPLITS)}")
        for name in ("identities", "limit", "workers"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise DataError(f"{name} must be at least 1, not {value}")
        if self.crop is not None:
            try:
                Crop.parse(self.crop)
            except ValueError as error:
                raise DataError(str(error)) from None

    def crop_for(self, source: ImageSource) -> Crop:
        if self.crop is not None:
            return Crop.parse(self.crop)
        # Detected faces are framed like CelebA's aligned images, whatever the source, so
        # CelebA's box frames them the same way; "full" would keep the aligned frame's
        # margins, mostly hair, shoulders and repeated border pixels.
        if self.detect_faces or source.celeba_like:
            return Crop(CELEBA_CROP)
        return Crop(None)


def select_rows(source: ImageSource, config: PrepareConfig) -> np.ndarray:
    """Rows of ``source`` to pack, in source order: identity subset, then split, then limit."""
    rows = np.arange(len(source))
    if config.identities is not None:
        known = source.identity[source.identity >= 0]
        if known.size == 0:
            raise DataError(
                f"{source.location} has no identity annotations (identity_CelebA.txt), "
                "which --identities needs"
            )
        ids, counts = np.unique(known, return_counts=True)
        if config.identities > len(ids):
            raise DataError(
                f"--identities {config.identities} asks for more identities than the "
                f"{len(ids)} in {source.location}"
            )
        # Most images first; ties go to the smaller identity number, so the choice is stable.
        chosen = ids[np.lexsort((ids, -counts))[: config.identities]]
        rows = rows[np.isin(source.identity, chosen)]
    if config.split != "all":
        split_id = SPLITS.index(config.split)
        rows = rows[source.partition[rows] == split_id]
        if rows.size == 0:
            raise DataError(f"no images of {source.location} are in the {config.split} split")
    if config.limit is not None:
        rows = rows[: config.limit]
    return rows


def prepare(
    src: str | Path,
    out: str | Path,
    config: PrepareConfig | None = None,
    *,
    overwrite: bool = False,
    progress: bool = True,
) -> PackedDataset:
    """Pack ``src`` (CelebA folder or zip, or any folder of images) into ``out``.

    >>> data = prepare("~/data/celeba", "data/celeba-64", PrepareConfig(size=64))
    >>> data.images.shape
    (202599, 64, 64, 3)
    """
    config = config or PrepareConfig()
    config.validate()
    out = Path(out)
    if out.exists() and not overwrite:
        raise FacegenError(f"{out} already exists; pass --overwrite to replace it")
    if config.detect_faces:
        # One clear line here, not one traceback per worker process.
        from facegen.data.align import check_detector

        check_detector()
    started = time.perf_counter()
    source = open_source(src)
    crop = config.crop_for(source)
    rows = select_rows(source, config)
    names = [source.filenames[i] for i in rows]
    workers = max(1, min(config.workers or os.cpu_count() or 1, -(-len(rows) // CHUNK)))

    with atomic_directory(out, overwrite=overwrite) as folder:
        writer = PackedWriter(folder, len(rows), config.size)
        decoding = _Decoding(source.reader, config.size, crop, config.detect_faces)
        failures = _decode_all(folder, decoding, names, workers, progress)
        no_face = sum(reason == NO_FACE for reason in failures.values())
        if failures and no_face == len(rows):
            raise DataError(f"no face found in any of the {len(rows)} images in {source.location}")
        if len(failures) == len(rows):
            first = next(iter(failures.items()))
            raise DataError(
                f"none of the {len(rows)} images in {source.location} could be read "
                f"(first: {first[0]}: {first[1]})"
            )
        keep = np.ones(len(rows), dtype=bool)
        keep[list(failures)] = False
        partition = source.partition[rows]
        identity = source.identity[rows]
        skipped = [{"file": names[i], "reason": reason} for i, reason in sorted(failures.items())]
        manifest = {
            "facegen_version": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "source": {
                "path": str(Path(src).expanduser().resolve()),
                "kind": source.kind,
                "images_found": len(source),
                "annotation_files": source.annotation_files,
                "partition": "assigned from a hash of the file name"
                if source.partition_assigned
                else "from the annotation file",
            },
            "size": config.size,
            "crop": str(crop),
            "crop_box_aligned": [round(v, 2) for v in crop.aligned_box()],
            "splits": split_counts(partition[keep]),
            "identities": int(np.unique(identity[keep][identity[keep] >= 0]).size),
            "attribute_names": list(ATTRIBUTE_NAMES),
            "attributes_known": bool(np.any(source.attributes[rows][keep] != 0)),
            "detect_faces": config.detect_faces,
            "skipped_count": len(skipped),
            "no_face_count": no_face,
            "skipped": skipped[:MAX_SKIPPED_LISTED],
            "arguments": {**asdict(config), "crop": str(crop), "workers": workers},
            "seconds": round(time.perf_counter() - started, 2),
        }
        writer.finish(
            keep,
            filenames=names,
            attributes=source.attributes[rows],
            identity=identity,
            partition=partition,
            manifest=manifest,
        )
    return open_packed(out)


@dataclass(frozen=True)
class _Decoding:
    """How every image is decoded: picklable, handed to each worker process once."""

    reader: ImageReader
    size: int
    crop: Crop
    detect_faces: bool


def _decode_all(
    folder: Path, decoding: _Decoding, names: list[str], workers: int, progress: bool
) -> dict[int, str]:
    """Decode ``names`` into rows 0..N-1 of the image file in ``folder``; return the rows
    that failed with their reasons."""
    items = list(enumerate(names))
    tasks = [items[i : i + CHUNK] for i in range(0, len(items), CHUNK)]
    failures: dict[int, str] = {}
    bar = progress_bar(
        total=len(names), desc="packing", unit="img", disable=not progress, smoothing=0.1
    )
    with bar:
        if workers == 1:
            global _worker
            _init_worker(str(folder), decoding)
            try:
                for done, failed in map(_decode_chunk, tasks):
                    failures.update(failed)
                    bar.update(done)
            finally:
                _worker = None
            return failures
        # spawn, not fork: the parent may hold threads (the progress bar's) and open zip
        # handles whose shared file offsets would race between forked children.
        context = multiprocessing.get_context("spawn")
        init_args = (str(folder), decoding)
        with context.Pool(workers, initializer=_init_worker, initargs=init_args) as pool:
            for done, failed in pool.imap_unordered(_decode_chunk, tasks):
                failures.update(failed)
                bar.update(done)
    return failures


@dataclass
class _Worker:
    """What one decoding process holds: the output opened once, and how to decode."""

    images: np.ndarray
    decoding: _Decoding


_worker: _Worker | None = None


def _init_worker(folder: str, decoding: _Decoding) -> None:
    global _worker
    if multiprocessing.parent_process() is not None:
        # Ctrl-C reaches the whole process group: let the parent alone handle it (it stops
        # the pool and removes the temporary folder) instead of every worker printing a
        # traceback.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if decoding.detect_faces:
            from facegen.data.align import opencv

            # Each worker is one core's worth of work: OpenCV's own threads would only
            # contend with the other workers.
            opencv().setNumThreads(1)
    _worker = _Worker(open_images_for_writing(folder), decoding)


# Threads per process that read a chunk's files ahead of its decoding. On a cold page cache
# the waits for the disk, not the decoding, set the pace; threads overlap them
# (benchmarks/bench_prepare.py --cold).
READ_AHEAD_THREADS = 8
_read_ahead: ThreadPoolExecutor | None = None


def _read_file(path: str) -> BytesIO | OSError:
    try:
        with open(path, "rb") as file:
            return BytesIO(file.read())
    except OSError as error:  # reported for its row, like a file that does not decode
        return error


def _opened(reader: ImageReader, names: list[str]) -> Iterator[BinaryIO | str | OSError]:
    """The sources of ``names`` in order: files read ahead by a few threads, zip members
    as the reader gives them."""
    global _read_ahead
    if reader.zip_path is not None:
        return (reader.open(name) for name in names)
    if _read_ahead is None:
        _read_ahead = ThreadPoolExecutor(READ_AHEAD_THREADS, thread_name_prefix="read-ahead")
    paths = [str(reader.open(name)) for name in names]
    return _read_ahead.map(_read_file, paths)


def _decode_chunk(items: list[tuple[int, str]]) -> tuple[int, dict[int, str]]:
    assert _worker is not None, "_init_worker runs first"
    decoding = _worker.decoding
    failed: dict[int, str] = {}
    sources = _opened(decoding.reader, [name for _, name in items])
    for (row, _), source in zip(items, sources, strict=True):
        try:
            if isinstance(source, OSError):
                raise source
            _worker.images[row] = decode_face(
                source,
                decoding.size,
                decoding.crop,
                detect_faces=decoding.detect_faces,
            )
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
            failed[row] = describe_error(error)
    # No flush: the mapping is shared, so the parent sees these pages through the page cache.
    return len(items), failed
