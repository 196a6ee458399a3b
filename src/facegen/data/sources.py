"""Where images come from: CelebA in any of its three layouts, its zip read in place, or
any folder (or zip) of images.

:func:`open_source` looks at a path once, lists its images and reads whatever annotation
files lie beside them. Worker processes then read image bytes through the small picklable
:class:`ImageReader`, which keeps one open zip file per process.
"""

from __future__ import annotations

import os
import re
import zipfile
import zlib
from dataclasses import dataclass, field
from functools import cache
from io import BytesIO
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import numpy as np

from facegen.data.celeba import (
    ANNOTATION_KINDS,
    ATTRIBUTE_NAMES,
    IMAGE_FOLDER,
    LANDMARK_NAMES,
    SYNTH_MARKER,
    AnnotationTable,
    parse_annotations,
)
from facegen.errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
CELEBA_NAME = re.compile(r"^\d{6}\.jpg$")
# The official Google Drive copy keeps annotations under Anno/ and Eval/.
ANNOTATION_FOLDERS = ("", "Anno", "Eval")
# Sources without partitions are split by a hash of the file name, in CelebA's proportions.
ASSIGNED_SPLIT_PER_MILLE = (803, 901)  # < 803 train, < 901 valid, else test


@dataclass(frozen=True)
class ImageReader:
    """Opens a source's images by name; picklable, so worker processes can use it."""

    folder: str | None = None  # images are files under this folder
    zip_path: str | None = None  # or members of this zip under ``prefix``
    prefix: str = ""

    def open(self, name: str) -> BinaryIO | str:
        if self.zip_path is None:
            return os.path.join(self.folder or "", name)
        return BytesIO(_open_zip(self.zip_path).read(self.prefix + name))


@cache
def _open_zip(path: str) -> zipfile.ZipFile:
    # One handle per process, kept open: reopening a 200k-member zip re-reads its index.
    return zipfile.ZipFile(path)


@dataclass
class ImageSource:
    """A listed source: image names in a stable order and their annotations, row-aligned."""

    # celeba, celeba-zip, celeba-kaggle, synthetic (`facegen data synth`), folder, folder-zip
    kind: str
    location: Path
    reader: ImageReader
    filenames: list[str]
    celeba_like: bool  # aligned 178x218 CelebA faces: the CelebA crop applies by default
    attributes: np.ndarray  # (N, 40) int8, 0 unknown
    identity: np.ndarray  # (N,) int32, -1 unknown
    partition: np.ndarray  # (N,) int8, always known (assigned when no file says)
    landmarks: np.ndarray  # (N, 10) int32, -1 unknown
    annotation_files: dict[str, str | None] = field(default_factory=dict)
    partition_assigned: bool = False

    def __len__(self) -> int:
        return len(self.filenames)


def open_source(path: str | Path) -> ImageSource:
    """List the images of a CelebA root, CelebA zip, or any folder or zip of images.

    >>> source = open_source("~/data/celeba")   # img_align_celeba/ + annotation files
    >>> source.kind, len(source)
    ('celeba', 202599)
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"{path} does not exist")
    if path.is_file():
        if not zipfile.is_zipfile(path):
            raise DataError(f"{path} is neither a folder nor a zip file of images")
        return _zip_source(path, annotation_dirs=[path.parent])
    root, image_dir = _find_celeba_images(path)
    if image_dir is not None:
        kind = "celeba-kaggle" if image_dir.parent.name == IMAGE_FOLDER else "celeba"
        if (root / SYNTH_MARKER).is_file():
            kind = "synthetic"  # `facegen data synth`: CelebA's layout, drawn faces
        names = sorted(_list_images(image_dir, recursive=False))
        annotations = _annotation_texts_on_disk([root, image_dir.parent])
        return _build(kind, path, ImageReader(folder=str(image_dir)), names, True, annotations)
    for candidate in (path / f"{IMAGE_FOLDER}.zip", path / "Img" / f"{IMAGE_FOLDER}.zip"):
        if candidate.is_file():
            return _zip_source(candidate, annotation_dirs=[path, candidate.parent])
    names = sorted(_list_images(path, recursive=True))
    celeba_like = bool(names) and all(CELEBA_NAME.match(name) for name in names)
    annotations = _annotation_texts_on_disk([path, path.parent] if celeba_like else [path])
    return _build("folder", path, ImageReader(folder=str(path)), names, celeba_like, annotations)


def _find_celeba_images(path: Path) -> tuple[Path, Path | None]:
    """The data root and the folder of aligned images, if ``path`` has the CelebA layout."""
    if path.name == IMAGE_FOLDER:
        # The user pointed at the image folder itself (or the Kaggle copy's outer one).
        nested = path / IMAGE_FOLDER
        if nested.is_dir():
            return path.parent, nested
        root = path.parent.parent if path.parent.name == IMAGE_FOLDER else path.parent
        return root, path
    for image_dir in (
        path / IMAGE_FOLDER / IMAGE_FOLDER,
        path / IMAGE_FOLDER,
        path / "Img" / IMAGE_FOLDER,
    ):
        if image_dir.is_dir():
            return path, image_dir
    return path, None


def _is_image_name(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    # macOS leaves ._name resource files beside images, in folders and zips alike.
    return base.lower().endswith(IMAGE_EXTENSIONS) and not base.startswith(".")


def _list_images(folder: Path, *, recursive: bool) -> list[str]:
    """Image names relative to ``folder`` (POSIX separators), hidden entries skipped."""
    if not recursive:
        with os.scandir(folder) as entries:
            return [e.name for e in entries if _is_image_name(e.name) and e.is_file()]
    names = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and d != "__MACOSX"]
        relative = Path(dirpath).relative_to(folder)
        for name in filenames:
            if _is_image_name(name):
                names.append((relative / name).as_posix())
    return names


def _zip_source(zip_path: Path, annotation_dirs: list[Path]) -> ImageSource:
    try:
        archive = _open_zip(str(zip_path))
        members = [info.filename for info in archive.infolist() if not info.is_dir()]
    except (OSError, zipfile.BadZipFile) as error:
        raise DataError(f"{zip_path} is not a readable zip file: {error}") from None
    members = [m for m in members if not m.startswith("__MACOSX/")]
    images = [m for m in members if _is_image_name(m)]
    # The CelebA zip (and the Kaggle archive) keep images in an img_align_celeba/ folder.
    prefixes = {m.rsplit("/", 1)[0] + "/" for m in images if "/" in m}
    celeba_prefixes = sorted(
        (p for p in prefixes if PurePosixPath(p).name == IMAGE_FOLDER), key=len, reverse=True
    )
    texts = _annotation_texts_on_disk(annotation_dirs)
    for member in members:
        base = member.rsplit("/", 1)[-1]
        for key, kind in ANNOTATION_KINDS.items():
            if base in (kind.text_name, kind.csv_name) and key not in texts:
                texts[key] = (
                    _decode_text(archive.read(member)),
                    f"{zip_path}:{member}",
                    base.endswith(".csv"),
                )
    if celeba_prefixes:
        prefix = celeba_prefixes[0]
        names = sorted(
            m[len(prefix) :] for m in images if m.startswith(prefix) and "/" not in m[len(prefix) :]
        )
        layout = "celeba-kaggle" if prefix.count(IMAGE_FOLDER) > 1 else "celeba-zip"
        reader = ImageReader(zip_path=str(zip_path), prefix=prefix)
        return _build(layout, zip_path, reader, names, True, texts)
    names = sorted(images)
    celeba_like = bool(names) and all(CELEBA_NAME.match(n.rsplit("/", 1)[-1]) for n in names)
    reader = ImageReader(zip_path=str(zip_path))
    return _build("folder-zip", zip_path, reader, names, celeba_like, texts)


def _decode_text(data: bytes) -> str:
    return data.decode("utf-8-sig", errors="replace")


def _annotation_texts_on_disk(roots: list[Path]) -> dict[str, tuple[str, str, bool]]:
    """Annotation file texts found under ``roots`` (and their Anno/, Eval/ folders):
    ``{key: (text, origin, is_csv)}``; the first place that has a file wins."""
    found: dict[str, tuple[str, str, bool]] = {}
    for root in roots:
        for folder in ANNOTATION_FOLDERS:
            for key, kind in ANNOTATION_KINDS.items():
                for name in (kind.text_name, kind.csv_name):
                    if not name:
                        continue
                    file = root / folder / name
                    if key not in found and file.is_file():
                        found[key] = (
                            _decode_text(file.read_bytes()),
                            str(file),
                            name.endswith(".csv"),
                        )
    return found


def _build(
    kind: str,
    location: Path,
    reader: ImageReader,
    names: list[str],
    celeba_like: bool,
    texts: dict[str, tuple[str, str, bool]],
) -> ImageSource:
    if not names:
        raise DataError(
            f"{location} contains no images (looked for {' '.join(IMAGE_EXTENSIONS)}"
            f"{'' if kind.startswith('celeba') else ', recursively'})"
        )
    tables: dict[str, AnnotationTable] = {
        key: parse_annotations(text, ANNOTATION_KINDS[key], origin, csv=is_csv)
        for key, (text, origin, is_csv) in texts.items()
    }
    n = len(names)

    def column(key: str, width: int, fill: int) -> np.ndarray:
        if key not in tables:
            return np.full((n, width), fill, dtype=np.int32)
        return tables[key].aligned(names, fill)

    partition = column("partition", 1, -1)[:, 0]
    assigned = partition < 0
    if assigned.any():
        partition[assigned] = [_assigned_split(name) for name in np.asarray(names)[assigned]]
    return ImageSource(
        kind=kind,
        location=location,
        reader=reader,
        filenames=names,
        celeba_like=celeba_like,
        attributes=column("attributes", len(ATTRIBUTE_NAMES), 0).astype(np.int8),
        identity=column("identity", 1, -1)[:, 0],
        partition=partition.astype(np.int8),
        landmarks=column("landmarks", len(LANDMARK_NAMES), -1),
        annotation_files={
            key: tables[key].origin if key in tables else None for key in ANNOTATION_KINDS
        },
        partition_assigned=bool(assigned.any()),
    )


def _assigned_split(name: str) -> int:
    """A stable split for a file with no partition: the same name always lands alike."""
    bucket = zlib.crc32(name.encode("utf-8")) % 1000
    return (
        0
        if bucket < ASSIGNED_SPLIT_PER_MILLE[0]
        else 1
        if bucket < ASSIGNED_SPLIT_PER_MILLE[1]
        else 2
    )
