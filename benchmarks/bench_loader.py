"""How fast the training loader is, whether prefetching helps, and whether memory is flat in N.

    python benchmarks/bench_loader.py --n 20000 --size 64 --batch-size 64

Builds packed data sets of random images in a temporary folder (all rows in the train split),
then prints three tables:

1. anonymous memory (RssAnon) before opening and at most while reading, for each
   ``--memory-n``: it should not grow with N (the images stay in the page cache, not in the
   process); measured first, while this process is still small;
2. loader alone: median and mean ms per batch and images/s over ``--epochs`` epochs after a
   warm-up, for plain batches and with flip / channels_last / prefetch;
3. loader beside a training step (a small DCGAN-style discriminator, forward and backward):
   ms per step with one batch reused (no loading at all) and with the loader at several
   prefetch depths, so the loader's real cost per step shows.

Timings on a shared machine are noisy; run it twice before trusting a difference.
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from facegen.data.loader import BatchLoader, LoaderOptions
from facegen.data.packed import PackedWriter, open_packed

CHUNK = 1000  # images generated at a time, so building does not hold N images in RAM


def build(folder: Path, n: int, size: int) -> None:
    """A packed set of ``n`` random images, every row in the train split."""
    folder.mkdir(parents=True)
    writer = PackedWriter(folder, n, size)
    rng = np.random.default_rng(0)
    for start in range(0, n, CHUNK):
        count = min(CHUNK, n - start)
        writer.images[start : start + count] = rng.integers(
            0, 256, size=(count, size, size, 3), dtype=np.uint8
        )
    writer.finish(
        np.ones(n, bool),
        filenames=[f"{i:06d}.png" for i in range(n)],
        attributes=np.zeros((n, 40), np.int8),
        identity=np.full(n, -1, np.int32),
        partition=np.zeros(n, np.int8),
        manifest={"size": size, "source": {"path": "random", "kind": "benchmark"}},
    )


def build_elsewhere(folder: Path, n: int, size: int) -> None:
    """Build in a fresh process so that this one's memory figures stay clean."""
    process = multiprocessing.get_context("spawn").Process(target=build, args=(folder, n, size))
    process.start()
    process.join()
    if process.exitcode != 0:
        raise SystemExit(f"building {folder} failed")


def anonymous_memory_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def time_loader(loader: BatchLoader, epochs: int, warmup: int) -> np.ndarray:
    """Seconds per batch over ``epochs`` epochs, after ``warmup`` batches not counted."""
    for index, _ in enumerate(loader.iterate(epochs)):
        if index + 1 >= warmup:
            break
    durations = []
    for epoch in range(epochs):
        start = time.perf_counter()
        for _ in loader.iterate(epoch):
            now = time.perf_counter()
            durations.append(now - start)
            start = now
    return np.array(durations)


def discriminator(size: int) -> nn.Module:
    """DCGAN-style discriminator at width 32: a stand-in for one training step's compute."""
    layers, channels, side = [], 3, size
    for width in (32, 64, 128, 256):
        layers += [nn.Conv2d(channels, width, 4, 2, 1), nn.LeakyReLU(0.2)]
        channels, side = width, side // 2
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(channels * side * side, 1))


def time_steps(model: nn.Module, batches, steps: int) -> np.ndarray:
    """Seconds per step, taking the next batch included, over ``steps`` batches (after two
    warm-up steps)."""
    iterator = iter(batches)
    for _ in range(2):
        model(next(iterator)).mean().backward()
    durations = []
    for _ in range(steps):
        start = time.perf_counter()
        images = next(iterator)
        model(images).mean().backward()
        durations.append(time.perf_counter() - start)
    if hasattr(iterator, "close"):
        iterator.close()
    return np.array(durations)


def loader_table(data, args) -> None:
    print(f"\n2. loader alone: N={len(data)}, {args.size}x{args.size}, batch {args.batch_size}")
    print(f"{'options':<32} {'median ms/batch':>16} {'mean ms/batch':>14} {'images/s':>9}")
    variants = {
        "plain": {},
        "flip": {"flip": True},
        "channels_last": {"channels_last": True},
        "flip + channels_last": {"flip": True, "channels_last": True},
        "flip + prefetch 1": {"flip": True, "prefetch": 1},
        "flip + prefetch 2": {"flip": True, "prefetch": 2},
    }
    for name, extra in variants.items():
        loader = BatchLoader(data, LoaderOptions(batch_size=args.batch_size, **extra))
        durations = time_loader(loader, args.epochs, warmup=20)
        median, mean = 1000 * np.median(durations), 1000 * durations.mean()
        images_per_second = args.batch_size / np.median(durations)
        print(f"{name:<32} {median:16.2f} {mean:14.2f} {images_per_second:9.0f}")


def step_table(data, args) -> None:
    model = discriminator(args.size)
    options = LoaderOptions(batch_size=args.batch_size, flip=True)
    print(f"\n3. beside a training step ({args.steps} steps, torch threads: "
          f"{torch.get_num_threads()})")  # fmt: skip
    print(f"{'loading':<32} {'median ms/step':>15} {'vs reused':>10} {'mean ms/step':>13}")
    fixed = next(iter(BatchLoader(data, options))).images
    reused = time_steps(model, iter(lambda: fixed, None), args.steps)
    baseline = 1000 * np.median(reused)
    row = f"{'none (one batch reused)':<32} {baseline:15.1f} {'':>10} {1000 * reused.mean():13.1f}"
    print(row)
    for prefetch in (0, 1, 2):
        loader = BatchLoader(data, LoaderOptions(batch_size=args.batch_size, flip=True,
                                                 prefetch=prefetch))  # fmt: skip
        images = (batch.images for batch in loader.iterate(1))
        durations = time_steps(model, images, args.steps)
        median = 1000 * np.median(durations)
        print(f"{f'loader, prefetch {prefetch}':<32} {median:15.1f} {median - baseline:+10.1f} "
              f"{1000 * durations.mean():13.1f}")  # fmt: skip


def memory_table(root: Path, args, built: dict[int, Path]) -> None:
    print(f"\n1. memory while reading {args.memory_batches} batches (flip, prefetch 1)")
    print(f"{'N':>8} {'images MiB':>11} {'labels MiB':>11} {'RssAnon before':>15} "
          f"{'RssAnon max':>12} {'growth':>8}")  # fmt: skip
    for n in args.memory_n:
        folder = built.get(n) or root / f"packed-{n}"
        if n not in built:
            build_elsewhere(folder, n, args.size)
        before = anonymous_memory_mib()
        data = open_packed(folder)
        options = LoaderOptions(batch_size=args.batch_size, flip=True, prefetch=1)
        highest = before
        for index, _ in enumerate(BatchLoader(data, options)):
            highest = max(highest, anonymous_memory_mib())
            if index + 1 >= args.memory_batches:
                break
        image_mib = data.images.nbytes / 2**20
        # Labels are read into memory whole (O(N), a few bytes a row); only images are mapped.
        label_mib = (data.attributes.nbytes + data.identity.nbytes + data.partition.nbytes) / 2**20
        print(f"{n:8d} {image_mib:11.0f} {label_mib:11.1f} {before:15.1f} {highest:12.1f} "
              f"{highest - before:+8.1f}")  # fmt: skip
        del data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--size", type=int, default=64, choices=(32, 64, 128))
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--memory-n", type=int, nargs="*", default=[20000, 100000])
    parser.add_argument("--memory-batches", type=int, default=300)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="facegen-bench-loader-") as temporary:
        root = Path(temporary)
        folder = root / f"packed-{args.n}"
        build_elsewhere(folder, args.n, args.size)
        memory_table(root, args, {args.n: folder})
        data = open_packed(folder)
        loader_table(data, args)
        step_table(data, args)


if __name__ == "__main__":
    main()
