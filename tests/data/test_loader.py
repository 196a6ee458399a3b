"""The training loader: what a batch holds, its order, flips, shards and errors."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

import facegen.data.loader as loader_module
from facegen.data.loader import (
    BatchLoader,
    LoaderOptions,
    from_uint8,
    load_images,
    to_uint8,
)
from facegen.errors import DataError


def expected_images(data, index: torch.Tensor, flipped: torch.Tensor | None = None):
    """The packed pixels of ``index`` mapped to [-1, 1] (B, 3, S, S), computed independently
    of the loader's conversion."""
    raw = data.images[index.numpy()].astype(np.float32)  # (B, S, S, 3)
    if flipped is not None:
        raw[flipped.numpy()] = raw[flipped.numpy(), :, ::-1]
    return torch.from_numpy(raw / np.float32(127.5) - np.float32(1.0)).permute(0, 3, 1, 2)


def batches(data, epoch: int = 0, start_batch: int = 0, **options) -> list:
    return list(BatchLoader(data, LoaderOptions(**options)).iterate(epoch, start_batch))


def indices(batch_list) -> list[list[int]]:
    return [batch.index.tolist() for batch in batch_list]


def rows_of(batch_list) -> list[int]:
    """All rows of ``batch_list`` in order."""
    return [row for batch in batch_list for row in batch.index.tolist()]


@pytest.mark.parametrize("channels_last", [False, True])
def test_batches_are_float_nchw_in_range_with_the_asked_layout(packed_factory, channels_last):
    data = packed_factory(n=40, size=32)
    got = batches(data, batch_size=4, channels_last=channels_last)
    assert len(got) == 8
    for batch in got:
        assert batch.images.shape == (4, 3, 32, 32)
        assert batch.images.dtype == torch.float32
        assert batch.images.min() >= -1.0 and batch.images.max() <= 1.0
        assert batch.images.is_contiguous(memory_format=torch.channels_last) == channels_last
        assert batch.images.is_contiguous() != channels_last
        assert batch.index.dtype == torch.int64 and batch.index.shape == (4,)
        assert batch.attributes is None and batch.identity is None


@pytest.mark.parametrize("channels_last", [False, True])
def test_values_are_exactly_the_packed_pixels(packed_factory, channels_last):
    data = packed_factory(n=40, size=32)
    for batch in batches(data, batch_size=5, channels_last=channels_last):
        assert torch.equal(batch.images, expected_images(data, batch.index))
        # The fixture writes each row's index into pixel (0, 0, red).
        assert np.array_equal(to_uint8(batch.images)[:, 0, 0, 0], batch.index.numpy() % 256)
        assert np.array_equal(to_uint8(batch.images), data.images[batch.index.numpy()])


def test_to_uint8_inverts_from_uint8_for_every_byte_and_clips():
    pixels = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1).repeat(3, axis=3)
    images = from_uint8(pixels)
    assert images[0, 0, 0, 0] == -1.0 and images[0, 0, 15, 15] == 1.0
    assert np.array_equal(to_uint8(images), pixels)
    assert np.array_equal(to_uint8(images[0]), pixels[0])  # a single (3, S, S) image
    wild = torch.tensor([-3.0, -1.0, 0.0, 1.0, 7.0]).reshape(1, 1, 1, 5).expand(1, 3, 1, 5)
    assert to_uint8(wild)[0, 0, :, 0].tolist() == [0, 0, 128, 255, 255]


def test_from_uint8_rejects_other_dtypes_and_shapes():
    with pytest.raises(ValueError, match="uint8"):
        from_uint8(np.zeros((2, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="uint8"):
        from_uint8(np.zeros((2, 3, 8, 8), np.uint8))


def test_same_seed_and_epoch_give_the_same_batches_bit_for_bit(packed_factory):
    data = packed_factory(n=40)
    first = batches(data, epoch=3, batch_size=4, flip=True, seed=7)
    again = batches(data, epoch=3, batch_size=4, flip=True, seed=7)
    assert indices(first) == indices(again)
    for a, b in zip(first, again, strict=True):
        assert torch.equal(a.images, b.images) and torch.equal(a.flipped, b.flipped)


def test_epochs_and_seeds_change_the_order(packed_factory):
    data = packed_factory(n=40)
    epoch_0 = indices(batches(data, epoch=0, batch_size=4))
    assert epoch_0 != indices(batches(data, epoch=1, batch_size=4))
    assert epoch_0 != indices(batches(data, epoch=0, batch_size=4, seed=1))
    unshuffled = indices(batches(data, epoch=5, batch_size=4, shuffle=False))
    assert [row for batch in unshuffled for row in batch] == data.split_indices("train").tolist()


def test_an_epoch_visits_every_row_of_the_split_once(packed_factory):
    data = packed_factory(n=40)
    seen = rows_of(batches(data, epoch=2, batch_size=5, drop_last=False))
    assert sorted(seen) == data.split_indices("train").tolist()
    assert seen != sorted(seen)


def test_set_epoch_chooses_what_iteration_runs(packed_factory):
    data = packed_factory(n=40)
    loader = BatchLoader(data, LoaderOptions(batch_size=4))
    loader.set_epoch(4)
    assert indices(loader) == indices(loader.iterate(4))
    assert indices(loader) != indices(loader.iterate(0))
    with pytest.raises(ValueError, match="epoch"):
        loader.set_epoch(-1)


@pytest.mark.parametrize("start_batch", [0, 1, 5, 7, 8])
def test_start_batch_is_the_tail_of_the_full_epoch(packed_factory, monkeypatch, start_batch):
    data = packed_factory(n=40)
    full = batches(data, epoch=2, batch_size=4, flip=True)
    reads = []
    real_gather = loader_module._gather
    monkeypatch.setattr(
        loader_module, "_gather", lambda *a, **k: reads.append(1) or real_gather(*a, **k)
    )
    tail = batches(data, epoch=2, start_batch=start_batch, batch_size=4, flip=True)
    assert len(reads) == len(full) - start_batch  # skipped batches are never read
    assert indices(tail) == indices(full)[start_batch:]
    for a, b in zip(tail, full[start_batch:], strict=True):
        assert torch.equal(a.images, b.images)


def test_start_batch_past_the_epoch_is_an_error(packed_factory):
    loader = BatchLoader(packed_factory(n=40), LoaderOptions(batch_size=4))
    with pytest.raises(DataError, match="cannot start at batch 9: an epoch has 8"):
        loader.iterate(0, start_batch=9)


def test_flip_mirrors_exactly_the_images_it_reports(packed_factory):
    data = packed_factory(n=40)
    flipped = batches(data, epoch=1, batch_size=8, flip=True, channels_last=True)
    plain = batches(data, epoch=1, batch_size=8)
    assert indices(flipped) == indices(plain)  # flipping does not change the order
    reported = torch.cat([batch.flipped for batch in flipped])
    assert 0 < reported.sum() < len(reported)
    for batch in flipped:
        assert torch.equal(batch.images, expected_images(data, batch.index, batch.flipped))
    assert not any(batch.flipped.any() for batch in plain)


def test_flips_do_not_depend_on_the_number_of_ranks(packed_factory):
    data = packed_factory(n=40)

    def flips(world_size: int) -> dict[int, bool]:
        found = {}
        for rank in range(world_size):
            got = batches(data, batch_size=3, flip=True, drop_last=False, rank=rank,
                          world_size=world_size)  # fmt: skip
            for batch in got:
                found.update(zip(batch.index.tolist(), batch.flipped.tolist(), strict=True))
        return found

    assert flips(1) == flips(2) == flips(3)


@pytest.mark.parametrize("world_size", [2, 3, 4])
def test_shards_without_drop_last_are_disjoint_and_cover_the_split(packed_factory, world_size):
    data = packed_factory(n=43)
    shards = []
    for rank in range(world_size):
        options = LoaderOptions(
            batch_size=3, split="all", drop_last=False, rank=rank, world_size=world_size
        )
        loader = BatchLoader(data, options)
        got = list(loader.iterate(6))
        assert len(got) == len(loader)
        shards.append(rows_of(got))
    everything = [row for shard in shards for row in shard]
    assert sorted(everything) == list(range(43))  # disjoint and complete
    sizes = [len(shard) for shard in shards]
    assert max(sizes) - min(sizes) <= 1


# The ranks' shares of 43 rows differ (22/21, 15/14/14) and these batch sizes make the
# larger share hold one more full batch: every rank must still take the same number.
@pytest.mark.parametrize(("world_size", "batch_size"), [(2, 11), (3, 5)])
def test_shards_with_drop_last_take_equal_full_batches(packed_factory, world_size, batch_size):
    data = packed_factory(n=43)
    lengths, seen = [], []
    for rank in range(world_size):
        options = LoaderOptions(
            batch_size=batch_size, split="all", rank=rank, world_size=world_size
        )
        loader = BatchLoader(data, options)
        got = list(loader.iterate(1))
        assert len(got) == len(loader)
        assert all(len(batch.index) == batch_size for batch in got)
        lengths.append(len(got))
        seen += rows_of(got)
    assert lengths == [43 // world_size // batch_size] * world_size
    assert len(seen) == len(set(seen))


@pytest.mark.parametrize(("split", "code"), [("train", 0), ("valid", 1), ("test", 2)])
def test_a_split_yields_only_its_own_rows(packed_factory, split, code):
    data = packed_factory(n=60)
    seen = rows_of(batches(data, split=split, batch_size=2, drop_last=False))
    assert (data.partition[seen] == code).all()
    assert sorted(seen) == data.split_indices(split).tolist()


def test_len_counts_batches_with_and_without_drop_last(packed_factory):
    data = packed_factory(n=40)  # 32 training rows
    assert len(BatchLoader(data, LoaderOptions(batch_size=5))) == 6
    assert len(BatchLoader(data, LoaderOptions(batch_size=5, drop_last=False))) == 7
    last = batches(data, batch_size=5, drop_last=False)[-1]
    assert last.images.shape[0] == 2


def test_labels_come_with_the_rows_they_belong_to(packed_factory):
    data = packed_factory(n=40)
    for batch in batches(data, batch_size=4, labels=True):
        rows = batch.index.numpy()
        assert torch.equal(batch.attributes, torch.from_numpy(data.attributes[rows]))
        assert batch.identity.dtype == torch.int64
        assert batch.identity.tolist() == data.identity[rows].tolist()


def test_prefetch_gives_the_same_batches(packed_factory):
    data = packed_factory(n=40)
    direct = batches(data, epoch=1, batch_size=4, flip=True)
    ahead = batches(data, epoch=1, batch_size=4, flip=True, prefetch=2)
    assert indices(ahead) == indices(direct)
    for a, b in zip(ahead, direct, strict=True):
        assert torch.equal(a.images, b.images)


def reader_threads() -> int:
    return sum(thread.name == "facegen-batch-reader" for thread in threading.enumerate())


def test_prefetch_stops_its_thread_when_the_consumer_stops(packed_factory):
    loader = BatchLoader(packed_factory(n=40), LoaderOptions(batch_size=2, prefetch=1))
    iterator = loader.iterate(0)
    next(iterator)
    assert reader_threads() == 1
    iterator.close()
    assert reader_threads() == 0


def test_prefetch_raises_a_reading_error_in_the_consumer(packed_factory, monkeypatch):
    loader = BatchLoader(packed_factory(n=40), LoaderOptions(batch_size=2, prefetch=2))

    def broken(*args, **kwargs):
        raise OSError("disk went away")

    monkeypatch.setattr(loader_module, "_gather", broken)
    with pytest.raises(OSError, match="disk went away"):
        list(loader.iterate(0))
    assert reader_threads() == 0


def test_load_images_uses_the_same_conversion(packed_factory):
    data = packed_factory(n=40)
    rows = [17, 3, 39, 3]
    images = load_images(data, rows, channels_last=True)
    assert images.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(images, expected_images(data, torch.tensor(rows)))
    with pytest.raises(DataError, match="row 40 is outside"):
        load_images(data, [1, 40])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"batch_size": 0}, "batch size must be at least 1"),
        ({"batch_size": 4, "world_size": 0}, "world size must be at least 1"),
        ({"batch_size": 4, "rank": 2, "world_size": 2}, "rank 2 does not fit world size 2"),
        ({"batch_size": 4, "rank": -1}, "rank -1 does not fit world size 1"),
        ({"batch_size": 4, "seed": -1}, "seed must not be negative"),
        ({"batch_size": 4, "prefetch": -1}, "prefetch must not be negative"),
    ],
)
def test_inconsistent_options_are_one_clear_error(options, message):
    with pytest.raises(DataError, match=message):
        LoaderOptions(**options)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"batch_size": 33}, "batch size 33 is larger than the 32 images of the train split"),
        ({"batch_size": 17, "world_size": 2}, "larger than the 16 images per rank of the train"),
        ({"batch_size": 1, "split": "valid", "world_size": 5}, "4 images, fewer than the 5 ranks"),
        ({"batch_size": 1, "split": "nope"}, "unknown split 'nope'"),
    ],
)
def test_options_that_do_not_fit_the_data_are_one_clear_error(packed_factory, options, message):
    data = packed_factory(n=40)
    with pytest.raises(DataError, match=message):
        BatchLoader(data, LoaderOptions(**options))


def test_a_split_without_images_is_an_error(packed_factory):
    data = packed_factory(n=20, partition=np.zeros(20, np.int8))
    with pytest.raises(DataError, match=r"the valid split of .* has no images"):
        BatchLoader(data, LoaderOptions(batch_size=1, split="valid"))
    # Without drop_last a batch may exceed the split: it is simply the whole split.
    got = batches(data, batch_size=50, drop_last=False)
    assert len(got) == 1 and sorted(got[0].index.tolist()) == list(range(20))
