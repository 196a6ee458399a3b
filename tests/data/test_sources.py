"""Finding images and annotations in every layout users have: official folder, Drive copy,
zip in place, Kaggle, the image folder itself, any folder or zip of images."""

import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facegen.data.celeba import ATTRIBUTE_FILE, IDENTITY_FILE, LANDMARK_FILE, PARTITION_FILE
from facegen.data.sources import open_source
from facegen.errors import DataError
from tests.conftest import make_celeba


def read_all(source, name):
    handle = source.reader.open(name)
    return Image.open(handle).size


def to_kaggle_csv(root: Path) -> None:
    """Turn the official .txt annotations into the Kaggle copy's CSVs (no identities)."""
    for txt, csv, header in [
        (ATTRIBUTE_FILE, "list_attr_celeba.csv", True),
        (PARTITION_FILE, "list_eval_partition.csv", False),
        (LANDMARK_FILE, "list_landmarks_align_celeba.csv", True),
    ]:
        lines = (root / txt).read_text().splitlines()
        if header:
            columns, rows = lines[1].split(), lines[2:]
        else:
            columns, rows = ["partition"], lines
        out = ["image_id," + ",".join(columns)] + [",".join(r.split()) for r in rows]
        (root / csv).write_text("\r\n".join(out) + "\r\n")
        (root / txt).unlink()
    (root / IDENTITY_FILE).unlink()


def test_official_folder(celeba_root):
    source = open_source(celeba_root)
    assert source.kind == "celeba" and source.celeba_like
    assert source.filenames[:2] == ["000001.jpg", "000002.jpg"] and len(source) == 30
    assert set(np.unique(source.attributes)) == {-1, 1}
    assert source.identity.tolist() == (1 + np.arange(30) % 5).tolist()
    assert source.partition[:10].tolist() == [0] * 8 + [1, 2]
    assert source.landmarks[0].tolist() == [69, 111, 108, 111, 88, 134, 72, 152, 106, 152]
    assert not source.partition_assigned
    assert read_all(source, "000003.jpg") == (178, 218)


def test_pointing_at_the_image_folder_finds_annotations_in_its_parent(celeba_root):
    source = open_source(celeba_root / "img_align_celeba")
    assert source.kind == "celeba" and source.annotation_files["identity"] is not None


def test_google_drive_layout_with_anno_and_eval_folders(tmp_path):
    flat = tmp_path / "flat"
    make_celeba(flat, 12)
    root = tmp_path / "CelebA"
    (root / "Img").mkdir(parents=True)
    shutil.move(flat / "img_align_celeba", root / "Img" / "img_align_celeba")
    for name, folder in [
        (ATTRIBUTE_FILE, "Anno"),
        (IDENTITY_FILE, "Anno"),
        (LANDMARK_FILE, "Anno"),
        (PARTITION_FILE, "Eval"),
    ]:
        (root / folder).mkdir(exist_ok=True)
        # CRLF line ends, as in copies that passed through Windows.
        text = (flat / name).read_text().replace("\n", "\r\n")
        (root / folder / name).write_bytes(text.encode())
    source = open_source(root)
    assert len(source) == 12 and all(source.annotation_files.values())
    assert source.identity.tolist() == (1 + np.arange(12) % 5).tolist()


def test_official_zip_is_read_in_place(tmp_path):
    flat = tmp_path / "flat"
    names = make_celeba(flat, 12)
    root = tmp_path / "celeba"
    root.mkdir()
    with zipfile.ZipFile(root / "img_align_celeba.zip", "w") as archive:
        for name in names:
            archive.write(flat / "img_align_celeba" / name, f"img_align_celeba/{name}")
    for file in (ATTRIBUTE_FILE, IDENTITY_FILE, PARTITION_FILE, LANDMARK_FILE):
        shutil.copy(flat / file, root / file)
    for path in (root, root / "img_align_celeba.zip"):
        source = open_source(path)
        assert source.kind == "celeba-zip" and source.filenames == names
        assert source.annotation_files["identity"] == str(root / IDENTITY_FILE)
        assert read_all(source, names[-1]) == (178, 218)
    assert not (root / "img_align_celeba").exists()  # nothing was extracted


def test_kaggle_folder_with_csv_annotations(tmp_path):
    flat = tmp_path / "flat"
    names = make_celeba(flat, 12)
    expected = open_source(flat)
    root = tmp_path / "kaggle"
    (root / "img_align_celeba").mkdir(parents=True)
    shutil.move(flat / "img_align_celeba", root / "img_align_celeba" / "img_align_celeba")
    to_kaggle_csv(flat)
    for csv in flat.glob("*.csv"):
        shutil.copy(csv, root / csv.name)
    source = open_source(root)
    assert source.kind == "celeba-kaggle" and source.filenames == names
    np.testing.assert_array_equal(source.attributes, expected.attributes)
    np.testing.assert_array_equal(source.partition, expected.partition)
    np.testing.assert_array_equal(source.landmarks, expected.landmarks)
    assert (source.identity == -1).all() and source.annotation_files["identity"] is None


def test_kaggle_archive_zip_with_csvs_inside(tmp_path):
    flat = tmp_path / "flat"
    names = make_celeba(flat, 8)
    expected = open_source(flat)
    to_kaggle_csv(flat)
    archive_path = tmp_path / "archive.zip"
    with zipfile.ZipFile(archive_path, "w") as archive:
        for name in names:
            image = flat / "img_align_celeba" / name
            archive.write(image, f"img_align_celeba/img_align_celeba/{name}")
        for csv in flat.glob("*.csv"):
            archive.write(csv, csv.name)
        archive.writestr("__MACOSX/img_align_celeba/._000001.jpg", b"junk")
    source = open_source(archive_path)
    assert source.kind == "celeba-kaggle" and source.filenames == names
    np.testing.assert_array_equal(source.attributes, expected.attributes)
    assert source.annotation_files["attributes"].endswith("archive.zip:list_attr_celeba.csv")


def test_any_folder_of_images_recursively(tmp_path):
    root = tmp_path / "photos"
    (root / "b" / "deeper").mkdir(parents=True)
    (root / ".cache").mkdir()
    image = Image.new("RGB", (40, 30), (10, 200, 10))
    image.save(root / "z.png")
    image.save(root / "b" / "a.JPG")
    image.save(root / "b" / "deeper" / "c.webp")
    image.save(root / "b" / "d.bmp")
    image.save(root / ".cache" / "hidden.jpg")
    image.save(root / "b" / "._resource.jpg", format="PNG")
    (root / "notes.txt").write_text("not an image")
    source = open_source(root)
    assert source.kind == "folder" and not source.celeba_like
    assert source.filenames == ["b/a.JPG", "b/d.bmp", "b/deeper/c.webp", "z.png"]
    assert (source.attributes == 0).all() and (source.identity == -1).all()
    assert source.partition_assigned and set(source.partition.tolist()) <= {0, 1, 2}
    assert read_all(source, "b/deeper/c.webp") == (40, 30)
    # The split a file lands in depends on its name only.
    again = open_source(root)
    np.testing.assert_array_equal(again.partition, source.partition)


def test_assigned_splits_follow_celeba_proportions(tmp_path):
    root = tmp_path / "many"
    root.mkdir()
    for i in range(2000):
        (root / f"face_{i}.png").touch()
    partition = open_source(root).partition
    shares = np.bincount(partition, minlength=3) / len(partition)
    np.testing.assert_allclose(shares, [0.803, 0.098, 0.099], atol=0.03)


def test_half_size_celeba_named_folder_is_read_as_celeba(tmp_path):
    make_celeba(tmp_path / "half", 6, width=89, height=109, annotations=False)
    source = open_source(tmp_path / "half" / "img_align_celeba")
    assert source.celeba_like and source.kind == "celeba"
    folder = tmp_path / "celebA"  # the dev set's folder: CelebA names, no annotations
    shutil.move(tmp_path / "half" / "img_align_celeba", folder)
    source = open_source(folder)
    assert source.kind == "folder" and source.celeba_like and source.partition_assigned


def test_missing_annotation_files_leave_fields_unknown(tmp_path):
    make_celeba(tmp_path / "c", 10)
    (tmp_path / "c" / IDENTITY_FILE).unlink()
    (tmp_path / "c" / PARTITION_FILE).unlink()
    source = open_source(tmp_path / "c")
    assert (source.identity == -1).all() and source.partition_assigned
    assert set(np.unique(source.attributes)) == {-1, 1}


def test_an_image_without_annotation_row_gets_unknowns(tmp_path):
    make_celeba(tmp_path / "c", 10)
    Image.new("RGB", (178, 218)).save(tmp_path / "c" / "img_align_celeba" / "000011.jpg")
    source = open_source(tmp_path / "c")
    assert len(source) == 11
    assert (source.attributes[10] == 0).all() and source.identity[10] == -1


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: None, "does not exist"),
        (lambda p: p.mkdir(), "contains no images"),
        (lambda p: (p.mkdir(), (p / "readme.txt").write_text("x")), "contains no images"),
        (lambda p: p.write_text("hello"), "neither a folder nor a zip file"),
        (lambda p: zipfile.ZipFile(p, "w").writestr("a.txt", "x"), "contains no images"),
    ],
)
def test_sources_without_images_are_refused(tmp_path, make, message):
    path = tmp_path / "src"
    make(path)
    with pytest.raises(DataError, match=message):
        open_source(path)


def test_a_damaged_annotation_line_is_refused_with_its_place(tmp_path):
    make_celeba(tmp_path / "c", 10)
    file = tmp_path / "c" / IDENTITY_FILE
    lines = file.read_text().splitlines()
    lines[4] = "000005.jpg"
    file.write_text("\n".join(lines))
    with pytest.raises(DataError, match=r"identity_CelebA.txt line 5: expected a file name"):
        open_source(tmp_path / "c")
