"""`data prepare`: packing, crops, subsets, splits, skips, and never a half-written folder."""

import importlib
import importlib.util
import json
import shutil
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facegen.data.celeba import IDENTITY_FILE
from facegen.data.prepare import PrepareConfig, prepare
from facegen.errors import DataError, FacegenError
from tests.conftest import BOX_RGB, index_to_green, make_celeba

# The module, not the function facegen.data exports under the same name.
prepare_module = importlib.import_module("facegen.data.prepare")


def leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


def test_packs_celeba_in_order_with_labels(celeba_root, tmp_path):
    data = prepare(celeba_root, tmp_path / "out", PrepareConfig(size=32, workers=2), progress=False)
    assert data.images.shape == (30, 32, 32, 3) and data.images.dtype == np.uint8
    assert data.filenames == [f"{i:06d}.jpg" for i in range(1, 31)]
    centre = data.images[:, 16, 16].astype(int)
    assert np.abs(centre[:, 0] - BOX_RGB[0]).max() < 8
    greens = np.array([index_to_green(i) for i in range(30)])
    assert np.abs(centre[:, 1] - greens).max() < 8  # row i holds image i
    assert data.identity.tolist() == (1 + np.arange(30) % 5).tolist()
    assert set(np.unique(data.attributes)) == {-1, 1}
    m = data.manifest
    assert m["splits"] == {"train": 24, "valid": 3, "test": 3}
    assert m["crop"] == "140" and m["crop_box_aligned"] == [19.0, 39.0, 159.0, 179.0]
    assert m["source"]["kind"] == "celeba" and m["skipped_count"] == 0
    assert m["identities"] == 5 and m["attributes_known"]
    assert leftovers(tmp_path) == []


def test_one_worker_and_two_workers_write_the_same_bytes(celeba_root, tmp_path):
    one = prepare(celeba_root, tmp_path / "a", PrepareConfig(workers=1), progress=False)
    two = prepare(celeba_root, tmp_path / "b", PrepareConfig(workers=2), progress=False)
    np.testing.assert_array_equal(one.images, two.images)


def test_half_size_celeba_gives_the_same_faces(tmp_path):
    make_celeba(tmp_path / "full", 10)
    make_celeba(tmp_path / "half", 10, width=89, height=109)
    full = prepare(tmp_path / "full", tmp_path / "a", PrepareConfig(workers=1), progress=False)
    half = prepare(tmp_path / "half", tmp_path / "b", PrepareConfig(workers=1), progress=False)
    assert np.abs(full.images.astype(int) - half.images.astype(int)).mean() < 3


def test_identity_subset_keeps_those_with_most_images(tmp_path):
    identities = np.repeat([7, 3, 5, 1, 2, 9], [9, 8, 6, 4, 2, 1])
    make_celeba(tmp_path / "c", 30, identities=identities)
    data = prepare(
        tmp_path / "c", tmp_path / "out", PrepareConfig(identities=2, workers=1), progress=False
    )
    assert len(data) == 17 and set(data.identity.tolist()) == {7, 3}
    assert data.manifest["identities"] == 2
    with pytest.raises(DataError, match="--identities 7 asks for more identities than the 6"):
        prepare(tmp_path / "c", tmp_path / "x", PrepareConfig(identities=7), progress=False)


def test_identity_ties_are_broken_by_identity_number(tmp_path):
    make_celeba(tmp_path / "c", 12, identities=np.repeat([4, 2, 6], 4))
    data = prepare(
        tmp_path / "c", tmp_path / "out", PrepareConfig(identities=2, workers=1), progress=False
    )
    assert set(data.identity.tolist()) == {2, 4}


def test_identities_need_identity_labels(celeba_root, tmp_path):
    (celeba_root / IDENTITY_FILE).unlink()
    with pytest.raises(DataError, match="no identity annotations"):
        prepare(celeba_root, tmp_path / "out", PrepareConfig(identities=2), progress=False)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("split", "count"), [("train", 24), ("valid", 3), ("test", 3)])
def test_one_split(celeba_root, tmp_path, split, count):
    data = prepare(
        celeba_root, tmp_path / "out", PrepareConfig(split=split, workers=1), progress=False
    )
    assert len(data) == count and len(data.split_indices(split)) == count


def test_limit_keeps_the_first_images(celeba_root, tmp_path):
    data = prepare(celeba_root, tmp_path / "out", PrepareConfig(limit=7, workers=1), progress=False)
    assert data.filenames == [f"{i:06d}.jpg" for i in range(1, 8)]


def test_unreadable_files_are_skipped_counted_and_named(celeba_root, tmp_path):
    folder = celeba_root / "img_align_celeba"
    (folder / "000004.jpg").write_bytes(b"<html>not a jpeg</html>")
    data = (folder / "000009.jpg").read_bytes()
    (folder / "000009.jpg").write_bytes(data[: len(data) // 3])
    (folder / "000020.jpg").write_bytes(b"")
    out = prepare(celeba_root, tmp_path / "out", PrepareConfig(workers=2), progress=False)
    assert len(out) == 27
    assert "000004.jpg" not in out.filenames and "000005.jpg" in out.filenames
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["skipped_count"] == 3
    reasons = {entry["file"]: entry["reason"] for entry in manifest["skipped"]}
    assert reasons["000004.jpg"].startswith("not an image")
    assert reasons["000009.jpg"] == "truncated image"
    assert set(reasons) == {"000004.jpg", "000009.jpg", "000020.jpg"}
    # The labels stay with their images after the skipped rows are dropped.
    row = out.filenames.index("000021.jpg")
    assert out.identity[row] == 1 + 20 % 5
    assert abs(int(out.images[row, 16, 16, 1]) - index_to_green(20)) < 8


def test_grey_cmyk_and_transparent_images_are_packed(tmp_path):
    src = tmp_path / "mixed"
    src.mkdir()
    Image.new("L", (50, 50), 90).save(src / "grey.png")
    Image.new("CMYK", (50, 50), (0, 255, 255, 0)).save(src / "cmyk.jpg")
    Image.new("RGBA", (50, 50), (0, 0, 255, 255)).save(src / "rgba.png")
    data = prepare(src, tmp_path / "out", PrepareConfig(size=32, workers=1), progress=False)
    assert len(data) == 3 and data.manifest["crop"] == "full"
    colours = {name: data.images[i, 16, 16].tolist() for i, name in enumerate(data.filenames)}
    assert colours["grey.png"] == [90, 90, 90] and colours["rgba.png"] == [0, 0, 255]
    assert colours["cmyk.jpg"][0] > 200 and colours["cmyk.jpg"][1] < 40


def test_zip_source_with_two_workers(tmp_path):
    names = make_celeba(tmp_path / "flat", 20)
    root = tmp_path / "zipped"
    root.mkdir()
    with zipfile.ZipFile(root / "img_align_celeba.zip", "w") as archive:
        for name in names:
            archive.write(tmp_path / "flat" / "img_align_celeba" / name, f"img_align_celeba/{name}")
    from_zip = prepare(root, tmp_path / "a", PrepareConfig(workers=2), progress=False)
    from_folder = prepare(
        tmp_path / "flat", tmp_path / "b", PrepareConfig(workers=1), progress=False
    )
    np.testing.assert_array_equal(from_zip.images, from_folder.images)
    assert from_zip.manifest["source"]["kind"] == "celeba-zip"


def test_existing_out_is_refused_unless_overwrite(celeba_root, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(FacegenError, match="already exists; pass --overwrite"):
        prepare(celeba_root, out, PrepareConfig(workers=1), progress=False)
    assert (out / "keep.txt").exists()
    prepare(celeba_root, out, PrepareConfig(workers=1), overwrite=True, progress=False)
    assert not (out / "keep.txt").exists() and (out / "images.npy").exists()
    assert leftovers(tmp_path) == []


def test_nothing_is_left_when_every_image_is_unreadable(tmp_path):
    src = tmp_path / "bad"
    src.mkdir()
    for i in range(3):
        (src / f"{i}.jpg").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"none of the 3 images .* could be read"):
        prepare(src, tmp_path / "out", PrepareConfig(workers=1), progress=False)
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []


def test_an_interrupted_prepare_leaves_nothing_and_keeps_the_old_data(
    celeba_root, tmp_path, monkeypatch
):
    out = tmp_path / "out"
    old = prepare(celeba_root, out, PrepareConfig(limit=5, workers=1), progress=False)
    calls = []
    real = prepare_module.decode_face

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 10:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(prepare_module, "decode_face", interrupted)
    with pytest.raises(KeyboardInterrupt):
        prepare(celeba_root, out, PrepareConfig(workers=1), overwrite=True, progress=False)
    assert len(np.load(out / "images.npy", mmap_mode="r")) == len(old) == 5
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (PrepareConfig(size=48), "unsupported size 48"),
        (PrepareConfig(split="holdout"), "unknown split 'holdout'"),
        (PrepareConfig(crop="wide"), "crop must be 'full' or a box side"),
        (PrepareConfig(limit=0), "limit must be at least 1"),
    ],
)
def test_bad_options_are_refused_before_any_work(celeba_root, tmp_path, config, message):
    with pytest.raises(DataError, match=message):
        prepare(celeba_root, tmp_path / "out", config, progress=False)
    assert not (tmp_path / "out").exists()


def test_an_empty_split_is_refused(tmp_path):
    make_celeba(tmp_path / "c", 10, partitions=np.zeros(10, int))
    with pytest.raises(DataError, match=r"no images of .* are in the test split"):
        prepare(tmp_path / "c", tmp_path / "out", PrepareConfig(split="test"), progress=False)


def test_a_source_folder_that_moved_still_reads(celeba_root, tmp_path):
    moved = tmp_path / "elsewhere"
    shutil.move(celeba_root, moved)
    assert len(prepare(moved, tmp_path / "out", PrepareConfig(workers=1), progress=False)) == 30


@pytest.mark.skipif(importlib.util.find_spec("cv2") is None, reason="needs OpenCV")
def test_detect_faces_packs_aligned_faces_and_names_photos_without_one(tmp_path):
    from facegen.data.decode import Crop, decode_face
    from tests.data.test_align import write_photos

    write_photos(tmp_path / "photos")
    config = PrepareConfig(size=32, workers=1, detect_faces=True)
    data = prepare(tmp_path / "photos", tmp_path / "out", config, progress=False)
    assert data.filenames == ["face_0.jpg", "face_1.jpg"]
    m = data.manifest
    assert m["detect_faces"] is True and m["arguments"]["detect_faces"] is True
    assert m["crop"] == "140"  # detected faces are in CelebA's aligned geometry
    assert m["skipped"] == [{"file": "wall_0.jpg", "reason": "no face found"}]
    assert m["skipped_count"] == m["no_face_count"] == 1
    for row, name in enumerate(data.filenames):
        face = decode_face(str(tmp_path / "photos" / name), 32, Crop(140), detect_faces=True)
        np.testing.assert_array_equal(data.images[row], face)
    # Without detection the same folder packs every photo, framed as it is.
    plain = prepare(
        tmp_path / "photos", tmp_path / "plain", PrepareConfig(size=32, workers=1), progress=False
    )
    assert len(plain) == 3 and plain.manifest["crop"] == "full"
    assert plain.manifest["detect_faces"] is False and plain.manifest["no_face_count"] == 0


@pytest.mark.skipif(importlib.util.find_spec("cv2") is None, reason="needs OpenCV")
def test_detect_faces_refuses_a_folder_without_any_face(tmp_path):
    from tests.data.test_align import write_photos

    write_photos(tmp_path / "walls", faces=0, walls=2)
    config = PrepareConfig(workers=1, detect_faces=True)
    with pytest.raises(DataError, match=r"no face found in any of the 2 images in .*walls"):
        prepare(tmp_path / "walls", tmp_path / "out", config, progress=False)
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []


def test_detect_faces_without_opencv_fails_before_any_work(celeba_root, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)  # `import cv2` now raises ImportError
    config = PrepareConfig(workers=2, detect_faces=True)
    with pytest.raises(DataError, match=r"^--detect-faces needs OpenCV: pip install"):
        prepare(celeba_root, tmp_path / "out", config, progress=False)
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(importlib.util.find_spec("cv2") is None, reason="needs OpenCV")
def test_detect_faces_in_worker_processes_gives_the_same_bytes(tmp_path, monkeypatch):
    from tests.data.test_align import write_photos

    monkeypatch.setattr(prepare_module, "CHUNK", 2)  # five photos, yet two workers
    write_photos(tmp_path / "photos", faces=3, walls=2)
    one = PrepareConfig(size=32, workers=1, detect_faces=True)
    two = PrepareConfig(size=32, workers=2, detect_faces=True)
    a = prepare(tmp_path / "photos", tmp_path / "a", one, progress=False)
    b = prepare(tmp_path / "photos", tmp_path / "b", two, progress=False)
    np.testing.assert_array_equal(a.images, b.images)
    assert b.manifest["arguments"]["workers"] == 2
    assert len(b) == 3 and b.manifest["no_face_count"] == 2
