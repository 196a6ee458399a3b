"""CelebA as users have it: the official folder, its zip, and the Kaggle copy.

The file formats (DESIGN.md section 2) are read and written here and nowhere else: the
reader below and the synthetic data set's writer share them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

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
