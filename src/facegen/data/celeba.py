"""CelebA as users have it: the official folder, its zip, and the Kaggle copy.

The file formats (the README's Getting CelebA) are read and written here and nowhere else: the
reader below and the synthetic data set's writer share them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facegen.errors import DataError
from facegen.files import write_text

# The 40 attributes, in the order of list_attr_celeba.txt.
ATTRIBUTE_NAMES: tuple[str, ...] = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs",
    "Big_Lips", "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair",
    "Bushy_Eyebrows", "Chubby", "Double_Chin", "Eyeglasses", "Goatee", "Gray_Hair",
    "Heavy_Makeup", "High_Cheekbones", "Male", "Mouth_Slightly_Open", "Mustache",
    "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline",
    "Rosy_Cheeks", "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings",
    "Wearing_Hat", "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young",
)  # fmt: skip
LANDMARK_NAMES: tuple[str, ...] = (
    "lefteye_x", "lefteye_y", "righteye_x", "righteye_y", "nose_x", "nose_y",
    "leftmouth_x", "leftmouth_y", "rightmouth_x", "rightmouth_y",
)  # fmt: skip

# The aligned images' geometry; crops are defined on it and scale with the source.
ALIGNED_WIDTH = 178
ALIGNED_HEIGHT = 218

IMAGE_FOLDER = "img_align_celeba"
# Written by `facegen data synth` beside the images: the faces are drawn, not CelebA's.
SYNTH_MARKER = "facegen-synth.json"
ATTRIBUTE_FILE = "list_attr_celeba.txt"
IDENTITY_FILE = "identity_CelebA.txt"
PARTITION_FILE = "list_eval_partition.txt"
LANDMARK_FILE = "list_landmarks_align_celeba.txt"

PARTITION_NAMES: tuple[str, ...] = ("train", "valid", "test")


def write_annotations(
    root: str | Path,
    filenames: Sequence[str],
    *,
    attributes: np.ndarray,
    identities: np.ndarray,
    partitions: np.ndarray,
    landmarks: np.ndarray,
) -> None:
    """Write the four official annotation files for ``filenames`` into ``root``.

    ``attributes`` is int [N, 40] of 1 / -1, ``identities`` int [N], ``partitions`` int [N]
    (0 train, 1 valid, 2 test), ``landmarks`` int [N, 10] in LANDMARK_NAMES order. The
    layout matches the official files byte for byte in spirit: a count line and a header
    line for attributes and landmarks, none for identities and partitions.
    """
    root = Path(root)
    n = len(filenames)
    if not (len(attributes) == len(identities) == len(partitions) == len(landmarks) == n):
        raise ValueError("annotation arrays must all have one row per file name")
    attr_lines = [str(n), " ".join(ATTRIBUTE_NAMES) + " "]
    attr_lines += [
        name + " " + " ".join(f"{int(v):2d}" for v in row)
        for name, row in zip(filenames, attributes, strict=True)
    ]
    landmark_lines = [str(n), " ".join(LANDMARK_NAMES)]
    landmark_lines += [
        f"{name:<10}" + "".join(f"{int(v):5d}" for v in row)
        for name, row in zip(filenames, landmarks, strict=True)
    ]
    identity_lines = [f"{name} {int(i)}" for name, i in zip(filenames, identities, strict=True)]
    partition_lines = [f"{name} {int(p)}" for name, p in zip(filenames, partitions, strict=True)]
    write_text(root / ATTRIBUTE_FILE, "\n".join(attr_lines) + "\n")
    write_text(root / LANDMARK_FILE, "\n".join(landmark_lines) + "\n")
    write_text(root / IDENTITY_FILE, "\n".join(identity_lines) + "\n")
    write_text(root / PARTITION_FILE, "\n".join(partition_lines) + "\n")


@dataclass(frozen=True)
class AnnotationKind:
    """How one annotation file is named and laid out."""

    key: str  # attributes, identity, partition, landmarks
    text_name: str  # the official .txt name
    csv_name: str | None  # the Kaggle copy's .csv name
    columns: tuple[str, ...]
    has_header: bool  # official .txt: a count line and a line of column names
    allowed: frozenset[int] | None  # permitted values, None for any integer


ANNOTATION_KINDS: dict[str, AnnotationKind] = {
    kind.key: kind
    for kind in (
        AnnotationKind("attributes", ATTRIBUTE_FILE, "list_attr_celeba.csv", ATTRIBUTE_NAMES,
                       True, frozenset({-1, 0, 1})),
        AnnotationKind("identity", IDENTITY_FILE, None, ("identity",), False, None),
        AnnotationKind("partition", PARTITION_FILE, "list_eval_partition.csv", ("partition",),
                       False, frozenset({0, 1, 2})),
        AnnotationKind("landmarks", LANDMARK_FILE, "list_landmarks_align_celeba.csv",
                       LANDMARK_NAMES, True, None),
    )
}  # fmt: skip


@dataclass
class AnnotationTable:
    """One annotation file: a row of integers per image file name."""

    kind: AnnotationKind
    origin: str  # where it was read from, for messages and the manifest
    filenames: list[str]
    values: np.ndarray  # (M, len(kind.columns)) int32, columns in kind.columns order

    def aligned(self, filenames: Sequence[str], fill: int) -> np.ndarray:
        """Rows for ``filenames`` (matched on the base name), ``fill`` where a file has none."""
        row_of = {name: i for i, name in enumerate(self.filenames)}
        out = np.full((len(filenames), self.values.shape[1]), fill, dtype=np.int32)
        for i, name in enumerate(filenames):
            row = row_of.get(name.rsplit("/", 1)[-1])
            if row is not None:
                out[i] = self.values[row]
        return out


def parse_annotations(
    text: str, kind: AnnotationKind, origin: str, *, csv: bool
) -> AnnotationTable:
    """Parse an official .txt (runs of spaces, optional count and header lines) or a Kaggle
    .csv (``image_id`` header). CRLF line ends and a byte-order mark are fine; a damaged
    line raises :class:`DataError` naming the file and the line."""
    lines = text.lstrip("\ufeff").splitlines()
    numbered = [(number, line) for number, line in enumerate(lines, 1) if line.strip()]
    split = (lambda line: [t.strip() for t in line.split(",")]) if csv else str.split
    columns = kind.columns
    order = list(range(len(columns)))
    if csv or kind.has_header:
        if not csv and numbered and numbered[0][1].strip().isdigit():
            numbered = numbered[1:]  # the count line
        if not numbered:
            raise DataError(f"{origin} is empty")
        header_number, header_line = numbered[0]
        header = split(header_line)
        if csv:
            header = header[1:]  # image_id
        if kind.has_header or len(header) == len(columns):
            missing = [c for c in columns if c not in header]
            if missing or len(header) != len(columns):
                raise DataError(
                    f"{origin} line {header_number}: the header does not name the "
                    f"{len(columns)} expected columns (missing: {', '.join(missing) or 'none'})"
                )
            order = [header.index(c) for c in columns]
        numbered = numbered[1:]
    filenames: list[str] = []
    values = np.empty((len(numbered), len(columns)), dtype=np.int32)
    for row, (number, line) in enumerate(numbered):
        tokens = split(line)
        try:
            numbers = _parse_row(tokens, kind)
        except ValueError as error:
            raise DataError(f"{origin} line {number}: {error}: {line.strip()[:80]!r}") from None
        filenames.append(tokens[0])
        values[row] = [numbers[i] for i in order]
    return AnnotationTable(kind=kind, origin=origin, filenames=filenames, values=values)


def _parse_row(tokens: list[str], kind: AnnotationKind) -> list[int]:
    if len(tokens) != len(kind.columns) + 1:
        raise ValueError(
            f"expected a file name and {len(kind.columns)} values, not {len(tokens) - 1}"
        )
    try:
        numbers = [int(token) for token in tokens[1:]]
    except ValueError:
        raise ValueError("values must be integers") from None
    if kind.allowed is not None and not kind.allowed.issuperset(numbers):
        raise ValueError("values must be " + " or ".join(str(v) for v in sorted(kind.allowed)))
    return numbers
