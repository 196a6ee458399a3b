"""Training batches from a packed data set: float tensors in [-1, 1], NCHW.

The images are already decoded (``images.npy``, memory-mapped), so a batch is a gather of
rows plus one conversion; no worker processes are needed. The order of an epoch is a pure
function of ``(seed, epoch)``, so a resumed run sees exactly the batches it would have seen,
and every rank of a distributed run computes the same permutation and takes its own part.

>>> loader = BatchLoader(open_packed("data/celeba-64"), LoaderOptions(batch_size=64, flip=True))
>>> for batch in loader.iterate(epoch=3, start_batch=120):
...     batch.images.shape  # torch.Size([64, 3, 64, 64])

This module also owns the pixel conversion both ways (:func:`from_uint8`, :func:`to_uint8`),
so evaluation, sampling and image grids all use the same mapping.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from facegen.data.packed import PackedDataset
from facegen.errors import DataError

# uint8 v <-> float v / 127.5 - 1: 0 and 255 map exactly to -1 and 1, and the round trip
# through to_uint8 gives every byte back unchanged.
PIXEL_SCALE = 127.5


@dataclass(frozen=True)
class LoaderOptions:
    """What a :class:`BatchLoader` yields; checked on construction.

    ``drop_last`` keeps only full batches and gives every rank the same number of them (DDP
    needs equal step counts); without it the ranks' parts of an epoch cover the split exactly
    once. ``labels`` adds attributes and identities to each batch. ``prefetch`` is how many
    batches a background thread reads ahead; 0 (read in the calling thread) is the default
    because a batch costs well under a millisecond and, on a 2-core machine, the thread
    slowed training steps more than it saved (benchmarks/bench_loader.py). It may pay off
    with a cold page cache (a disk read) or beside a GPU.
    """

    batch_size: int
    split: str = "train"
    shuffle: bool = True
    flip: bool = False
    drop_last: bool = True
    seed: int = 0
    rank: int = 0
    world_size: int = 1
    channels_last: bool = False
    labels: bool = False
    prefetch: int = 0

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise DataError(f"batch size must be at least 1, got {self.batch_size}")
        if self.world_size < 1:
            raise DataError(f"world size must be at least 1, got {self.world_size}")
        if not 0 <= self.rank < self.world_size:
            raise DataError(
                f"rank {self.rank} does not fit world size {self.world_size} "
                f"(expected 0 <= rank < {self.world_size})"
            )
        if self.seed < 0:
            raise DataError(f"seed must not be negative, got {self.seed}")
        if self.prefetch < 0:
            raise DataError(f"prefetch must not be negative, got {self.prefetch}")


@dataclass(frozen=True)
class Batch:
    """One batch; ``images`` and the labels are on the loader's device, the rest on CPU."""

    images: torch.Tensor  # (B, 3, S, S) float32 in [-1, 1]
    index: torch.Tensor  # (B,) int64 rows of the packed data set
    flipped: torch.Tensor  # (B,) bool, True where the image was mirrored left-right
    attributes: torch.Tensor | None = None  # (B, 40) int8 (1 / -1, 0 unknown), with labels
    identity: torch.Tensor | None = None  # (B,) int64 (-1 unknown), with labels


class BatchLoader:
    """Batches of one split of a packed data set, in an order fixed by ``(seed, epoch)``.

    ``len(loader)`` is the number of batches per epoch for this rank. Iterating the loader
    runs the epoch set by :meth:`set_epoch`; :meth:`iterate` can also start part-way through
    an epoch without reading the batches it skips.
    """

    def __init__(
        self,
        data: PackedDataset,
        options: LoaderOptions,
        device: str | torch.device = "cpu",
    ) -> None:
        self.data = data
        self.options = options
        self.device = _resolve_device(device)
        self.epoch = 0
        self._images = np.asarray(data.images)  # plain ndarray view: no memmap subclass cost
        self._rows = data.split_indices(options.split)  # (M,) ascending
        count, ranks, size = len(self._rows), options.world_size, options.batch_size
        where = f"the {options.split} split of {data.path}"
        if count == 0:
            raise DataError(f"{where} has no images")
        if count < ranks:
            raise DataError(f"{where} has {count} images, fewer than the {ranks} ranks")
        if options.drop_last and size > count // ranks:
            share = f"the {count} images" if ranks == 1 else f"the {count // ranks} images per rank"
            raise DataError(f"batch size {size} is larger than {share} of {where}")

    def __len__(self) -> int:
        per_rank = len(range(self.options.rank, len(self._rows), self.options.world_size))
        if self.options.drop_last:
            # The smallest rank's share, so that every rank takes the same number of steps.
            return len(self._rows) // self.options.world_size // self.options.batch_size
        return -(-per_rank // self.options.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        return self.iterate(self.epoch)

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch that iterating the loader runs (as ``DistributedSampler``)."""
        self.epoch = _check_epoch(epoch)

    def order(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """This rank's rows for ``epoch`` in batch order and whether each is flipped.

        Both are (len(self) * batch_size,) at most; only index arrays, no images are read.
        """
        options = self.options
        perm_seed, flip_seed = np.random.SeedSequence([options.seed, _check_epoch(epoch)]).spawn(2)
        count = len(self._rows)
        if options.shuffle:
            positions = np.random.default_rng(perm_seed).permutation(count)
        else:
            positions = np.arange(count)
        # Strided shards: disjoint, sizes within one of each other, and with one rank the
        # shard is the permutation itself.
        positions = positions[options.rank :: options.world_size]
        if options.drop_last:
            positions = positions[: len(self) * options.batch_size]
        if options.flip:
            # One draw per row of the split, so whether a row is flipped in an epoch does not
            # depend on the order, the number of ranks or the batch size.
            flips = np.random.default_rng(flip_seed).random(count) < 0.5
            flipped = flips[positions]
        else:
            flipped = np.zeros(len(positions), dtype=bool)
        return self._rows[positions], flipped

    def iterate(self, epoch: int | None = None, start_batch: int = 0) -> Iterator[Batch]:
        """The batches of ``epoch`` (default: the one set by :meth:`set_epoch`) from batch
        ``start_batch`` on; batch k here is batch k of the full epoch, bit for bit."""
        epoch = self.epoch if epoch is None else epoch
        batches = len(self)
        if not 0 <= start_batch <= batches:
            raise DataError(f"cannot start at batch {start_batch}: an epoch has {batches}")
        rows, flipped = self.order(epoch)
        size = self.options.batch_size
        spans = ((k * size, (k + 1) * size) for k in range(start_batch, batches))
        produced = (self._read(rows[a:b], flipped[a:b]) for a, b in spans)
        if self.options.prefetch:
            return _read_ahead(produced, self.options.prefetch)
        return produced

    def _read(self, rows: np.ndarray, flipped: np.ndarray) -> Batch:
        pixels = _gather(self._images, rows, pin=self.device.type == "cuda")
        images = from_uint8(pixels, device=self.device, channels_last=self.options.channels_last)
        flipped_rows = np.flatnonzero(flipped)
        if len(flipped_rows):
            which = torch.from_numpy(flipped_rows).to(self.device)
            images[which] = images[which].flip(-1)
        attributes = identity = None
        if self.options.labels:
            attributes = torch.from_numpy(self.data.attributes[rows]).to(self.device)
            identity = torch.from_numpy(self.data.identity[rows].astype(np.int64)).to(self.device)
        return Batch(
            images=images,
            index=torch.from_numpy(rows),
            flipped=torch.from_numpy(flipped),
            attributes=attributes,
            identity=identity,
        )


def load_images(
    data: PackedDataset,
    rows: Sequence[int] | np.ndarray,
    *,
    device: str | torch.device = "cpu",
    channels_last: bool = False,
) -> torch.Tensor:
    """Rows of a packed data set as a float batch, converted as the loader converts them.

    >>> load_images(data, data.split_indices("test")[:16]).shape
    torch.Size([16, 3, 64, 64])
    """
    rows = np.asarray(rows, dtype=np.int64).reshape(-1)
    outside = rows[(rows < 0) | (rows >= len(data))]
    if len(outside):
        raise DataError(f"row {outside[0]} is outside {data.path}, which has {len(data)} rows")
    device = _resolve_device(device)
    pixels = _gather(np.asarray(data.images), rows, pin=device.type == "cuda")
    return from_uint8(pixels, device=device, channels_last=channels_last)


def from_uint8(
    pixels: np.ndarray | torch.Tensor,
    *,
    device: str | torch.device | None = None,
    channels_last: bool = False,
) -> torch.Tensor:
    """uint8 images (B, S, S, 3) -> float32 (B, 3, S, S) in [-1, 1] on ``device``.

    The bytes travel to the device first (four times smaller than floats; a pinned tensor
    is copied without blocking) and are converted there.
    """
    pixels = torch.as_tensor(pixels)
    if pixels.dtype != torch.uint8 or pixels.ndim != 4 or pixels.shape[3] != 3:
        raise ValueError(f"expected uint8 images (B, S, S, 3), got {pixels.dtype} {pixels.shape}")
    if device is not None:
        pixels = pixels.to(device, non_blocking=pixels.is_pinned())
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    # (B, S, S, 3) -> (B, 3, S, S): the permuted view already has channels-last strides, and
    # float() keeps them, so only the contiguous layout pays for a (byte-sized) transpose.
    images = pixels.permute(0, 3, 1, 2).contiguous(memory_format=memory_format)
    return images.float().div_(PIXEL_SCALE).sub_(1.0)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """float images in [-1, 1], (B, 3, S, S) or (3, S, S) -> uint8 (B, S, S, 3) or (S, S, 3)
    on the CPU; values outside [-1, 1] are clipped. The inverse of :func:`from_uint8`."""
    if images.ndim not in (3, 4) or images.shape[-3] != 3:
        raise ValueError(f"expected images (B, 3, S, S) or (3, S, S), got {tuple(images.shape)}")
    pixels = (images.detach().float().clamp(-1.0, 1.0) + 1.0).mul_(PIXEL_SCALE).round_()
    pixels = pixels.to(torch.uint8).movedim(-3, -1)  # (..., S, S, 3)
    return np.ascontiguousarray(pixels.cpu().numpy())


def _gather(images: np.ndarray, rows: np.ndarray, *, pin: bool) -> np.ndarray | torch.Tensor:
    """``images[rows]`` (B, S, S, 3), read from the memory map in ascending row order (kinder
    to the page cache and the disk) and put back in the order of ``rows``. With ``pin`` the
    result is a pinned tensor, ready for a non-blocking copy to the GPU."""
    shape = (len(rows), *images.shape[1:])
    if pin:
        pinned = torch.empty(shape, dtype=torch.uint8, pin_memory=True)
        out = pinned.numpy()
    else:
        out = np.empty(shape, dtype=np.uint8)
    ascending = np.argsort(rows, kind="stable")
    out[ascending] = images[rows[ascending]]
    return pinned if pin else out


_END = object()


def _read_ahead(batches: Iterable[Batch], depth: int) -> Iterator[Batch]:
    """Produce ``batches`` in a background thread, up to ``depth`` ahead of the consumer.

    Reading and converting mostly release the GIL, so they can overlap a training step; an
    error in the thread is raised in the consumer, and a consumer that stops early stops it.
    """
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item: object) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.05)
                return True
            except queue.Full:
                pass
        return False

    def work() -> None:
        try:
            for batch in batches:
                if not offer(batch):
                    return
            offer(_END)
        except BaseException as error:  # handed to the consumer, which raises it
            offer(error)

    thread = threading.Thread(target=work, name="facegen-batch-reader", daemon=True)
    thread.start()
    try:
        while True:
            item = ready.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


def _resolve_device(device: str | torch.device) -> torch.device:
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        # Pin the index now: a reader thread's "current device" is not the caller's.
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def _check_epoch(epoch: int) -> int:
    if epoch < 0:
        raise ValueError(f"epoch must not be negative, got {epoch}")
    return int(epoch)
