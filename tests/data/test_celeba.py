"""The CelebA annotation formats: official .txt (with CRLF), Kaggle .csv, damaged lines."""

from pathlib import Path

import numpy as np
import pytest

from facegen.data.celeba import (
    ANNOTATION_KINDS,
    ATTRIBUTE_FILE,
    ATTRIBUTE_NAMES,
    IDENTITY_FILE,
    LANDMARK_FILE,
    LANDMARK_NAMES,
    PARTITION_FILE,
    parse_annotations,
    write_annotations,
)
from facegen.errors import DataError

ATTRS = ANNOTATION_KINDS["attributes"]
PARTITION = ANNOTATION_KINDS["partition"]
IDENTITY = ANNOTATION_KINDS["identity"]
LANDMARKS = ANNOTATION_KINDS["landmarks"]


def official_attribute_text(rows: dict[str, list[int]], newline: str = "\n") -> str:
    lines = [str(len(rows)), " ".join(ATTRIBUTE_NAMES) + " "]
    lines += [name + " " + " ".join(f"{v:2d}" for v in values) for name, values in rows.items()]
    return newline.join(lines) + newline


def test_forty_attribute_names_in_file_order():
    assert len(ATTRIBUTE_NAMES) == 40
    assert ATTRIBUTE_NAMES[0] == "5_o_Clock_Shadow" and ATTRIBUTE_NAMES[-1] == "Young"
    assert ATTRIBUTE_NAMES.index("Smiling") == 31 and ATTRIBUTE_NAMES.index("Male") == 20


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_official_attribute_file_with_runs_of_spaces(newline):
    values = [1 if i % 3 == 0 else -1 for i in range(40)]
    text = official_attribute_text({"000001.jpg": values, "000002.jpg": [-1] * 40}, newline)
    table = parse_annotations(text, ATTRS, "list_attr_celeba.txt", csv=False)
    assert table.filenames == ["000001.jpg", "000002.jpg"]
    assert table.values.shape == (2, 40)
    assert table.values[0].tolist() == values
    assert (table.values[1] == -1).all()


def test_kaggle_csv_with_columns_in_another_order_and_a_bom():
    shuffled = list(reversed(ATTRIBUTE_NAMES))
    row = [1 if name in ("Smiling", "Male") else -1 for name in shuffled]
    text = "\ufeffimage_id," + ",".join(shuffled) + "\r\n000007.jpg," + ",".join(map(str, row))
    table = parse_annotations(text, ATTRS, "list_attr_celeba.csv", csv=True)
    got = dict(zip(ATTRIBUTE_NAMES, table.values[0].tolist(), strict=True))
    assert got["Smiling"] == 1 and got["Male"] == 1 and got["Young"] == -1


def test_partition_and_identity_files_have_no_header():
    partition = parse_annotations("000001.jpg 0\n000002.jpg 2\n", PARTITION, "p", csv=False)
    assert partition.values[:, 0].tolist() == [0, 2]
    identity = parse_annotations("000001.jpg 2880\r\n000002.jpg 12\r\n", IDENTITY, "i", csv=False)
    assert identity.values[:, 0].tolist() == [2880, 12]
    csv = parse_annotations("image_id,partition\n000001.jpg,1\n", PARTITION, "p.csv", csv=True)
    assert csv.values[:, 0].tolist() == [1]


def test_landmarks_txt_and_csv_agree():
    points = [69, 109, 106, 113, 77, 142, 73, 152, 108, 154]
    txt = "1\n" + " ".join(LANDMARK_NAMES) + "\n000001.jpg    " + "  ".join(map(str, points))
    csv = "image_id," + ",".join(LANDMARK_NAMES) + "\n000001.jpg," + ",".join(map(str, points))
    a = parse_annotations(txt, LANDMARKS, "l.txt", csv=False)
    b = parse_annotations(csv, LANDMARKS, "l.csv", csv=True)
    assert a.values.tolist() == b.values.tolist() == [points]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("000002.jpg " + " ".join(["1"] * 39), "expected a file name and 40 values, not 39"),
        ("000002.jpg " + " ".join(["1"] * 39 + ["x"]), "values must be integers"),
        ("000002.jpg " + " ".join(["1"] * 39 + ["7"]), "values must be -1 or 0 or 1"),
    ],
)
def test_damaged_attribute_line_names_file_and_line(line, reason):
    text = official_attribute_text({"000001.jpg": [1] * 40}) + line + "\n"
    with pytest.raises(DataError) as error:
        parse_annotations(text, ATTRS, "list_attr_celeba.txt", csv=False)
    assert str(error.value).startswith(f"list_attr_celeba.txt line 4: {reason}")


def test_header_without_the_forty_names_is_refused():
    text = "1\nSmiling Male\n000001.jpg 1 1\n"
    with pytest.raises(DataError, match="line 2: the header does not name the 40"):
        parse_annotations(text, ATTRS, "list_attr_celeba.txt", csv=False)


def test_bad_partition_value_is_refused():
    with pytest.raises(DataError, match="line 2: values must be 0 or 1 or 2"):
        parse_annotations("000001.jpg 0\n000002.jpg 3\n", PARTITION, "p", csv=False)


def test_aligned_matches_base_names_and_fills_the_missing():
    table = parse_annotations("000001.jpg 5\n000003.jpg 7\n", IDENTITY, "i", csv=False)
    got = table.aligned(["sub/000003.jpg", "000002.jpg", "000001.jpg"], fill=-1)
    assert got[:, 0].tolist() == [7, -1, 5]


def test_written_annotations_read_back(tmp_path: Path):
    rng = np.random.default_rng(0)
    names = [f"{i:06d}.jpg" for i in range(1, 6)]
    attributes = rng.choice([-1, 1], size=(5, 40))
    identities = np.array([3, 1, 3, 2, 9])
    partitions = np.array([0, 0, 1, 2, 0])
    landmarks = rng.integers(0, 178, size=(5, 10))
    write_annotations(
        tmp_path,
        names,
        attributes=attributes,
        identities=identities,
        partitions=partitions,
        landmarks=landmarks,
    )
    for file, kind, expected in [
        (ATTRIBUTE_FILE, ATTRS, attributes),
        (IDENTITY_FILE, IDENTITY, identities[:, None]),
        (PARTITION_FILE, PARTITION, partitions[:, None]),
        (LANDMARK_FILE, LANDMARKS, landmarks),
    ]:
        table = parse_annotations((tmp_path / file).read_text(), kind, file, csv=False)
        assert table.filenames == names
        np.testing.assert_array_equal(table.values, expected)
    first_lines = (tmp_path / ATTRIBUTE_FILE).read_text().splitlines()[:2]
    assert first_lines[0] == "5" and first_lines[1].split() == list(ATTRIBUTE_NAMES)
