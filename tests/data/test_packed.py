"""The packed format: what the reader accepts, and one clear line for what it refuses."""

import json

import numpy as np
import pytest

from facegen.data.packed import PackedWriter, open_packed
from facegen.errors import DataError


def test_split_indices_and_attribute_lookup(packed_factory):
    data = packed_factory(n=20)
    assert data.split_indices("all").tolist() == list(range(20))
    assert data.split_indices("valid").tolist() == [8, 18]
    assert data.attribute_index("Smiling") == 31
    with pytest.raises(DataError, match="unknown attribute 'Smiling2'; available: 5_o_Clock"):
        data.attribute_index("Smiling2")
    with pytest.raises(DataError, match="unknown split 'dev'"):
        data.split_indices("dev")


def test_images_are_memory_mapped(packed_factory):
    data = packed_factory(n=10)
    assert isinstance(data.images, np.memmap)


def test_rows_dropped_at_finish_shrink_the_file(tmp_path):
    writer = PackedWriter(tmp_path, 50, 32)
    writer.images[:] = np.arange(50, dtype=np.uint8)[:, None, None, None]
    keep = np.ones(50, bool)
    keep[[0, 7, 49]] = False
    writer.finish(
        keep,
        filenames=[str(i) for i in range(50)],
        attributes=np.zeros((50, 40)),
        identity=np.arange(50),
        partition=np.zeros(50),
        manifest={},
    )
    data = open_packed(tmp_path)
    assert len(data) == 47 and data.images[:, 0, 0, 0].tolist() == np.flatnonzero(keep).tolist()
    assert data.identity.tolist() == np.flatnonzero(keep).tolist()
    header_and_rows = (tmp_path / "images.npy").stat().st_size
    assert header_and_rows == 128 + 47 * 32 * 32 * 3  # no dead rows left on disk


def test_missing_and_foreign_folders_are_refused(tmp_path):
    with pytest.raises(DataError, match="does not exist; make one with: facegen data prepare"):
        open_packed(tmp_path / "nope")
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match=r"not a packed data set \(not a folder\)"):
        open_packed(tmp_path / "file")
    with pytest.raises(DataError, match=r"not a packed data set \(no manifest\.json\)"):
        open_packed(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(DataError, match=r"manifest\.json is damaged"):
        open_packed(tmp_path)
    (tmp_path / "manifest.json").write_text('{"format": "something-else"}')
    with pytest.raises(DataError, match="is not facegen's"):
        open_packed(tmp_path)


def test_other_format_version_asks_to_prepare_again(packed_factory):
    data = packed_factory(n=10)
    manifest = json.loads((data.path / "manifest.json").read_text())
    manifest["format_version"] = 99
    (data.path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError, match="version 99; this facegen reads version 1"):
        open_packed(data.path)


def test_missing_or_mismatched_arrays_are_named(packed_factory):
    data = packed_factory(n=10)
    np.save(data.path / "identity.npy", np.zeros(9, np.int32))
    with pytest.raises(DataError, match=r"identity.npy has shape \(9,\), expected \(10,\)"):
        open_packed(data.path)
    (data.path / "partition.npy").unlink()
    with pytest.raises(DataError, match=r"incomplete: partition\.npy is missing"):
        open_packed(data.path)
    (data.path / "images.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(DataError, match=r"images\.npy is damaged"):
        open_packed(data.path)


def test_packed_data_is_a_map_style_torch_dataset(packed_factory):
    torch = pytest.importorskip("torch")
    from facegen.data.loader import to_uint8

    data = packed_factory(n=20, size=32)
    image, labels = data[3]
    assert image.dtype == torch.float32 and image.shape == (3, 32, 32)
    assert image.min() >= -1 and image.max() <= 1
    # the training mapping: back to the stored bytes exactly
    assert np.array_equal(to_uint8(image[None])[0], data.images[3])
    assert labels["attributes"].dtype == torch.int8
    assert labels["attributes"].tolist() == data.attributes[3].tolist()
    assert int(labels["identity"]) == int(data.identity[3])
    assert np.array_equal(to_uint8(data[-1][0][None])[0], data.images[19])

    train = data.subset("train")
    assert len(train) == len(data.split_indices("train"))
    loader = torch.utils.data.DataLoader(train, batch_size=4, shuffle=False)
    images, batch_labels = next(iter(loader))
    assert images.shape == (4, 3, 32, 32)
    assert batch_labels["attributes"].shape == (4, 40)
    assert batch_labels["identity"].tolist() == data.identity[train.indices[:4]].tolist()

    with pytest.raises(IndexError, match="row 20 is outside"):
        data[20]
    with pytest.raises(TypeError, match="indexed by an int"):
        data["3"]
