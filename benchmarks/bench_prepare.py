"""How fast `data prepare` packs CelebA-format JPEGs, and whether its memory stays flat.

    python benchmarks/bench_prepare.py --n 20000 --workers 1 2

Source images are the built-in synthetic faces (178x218 JPEGs, CelebA layout). To keep
set-up short, --distinct faces are drawn once and hard-linked under new names up to --n:
decoding cost is the same per file and the page cache serves them either way, as it would
after a first pass over real CelebA. Memory is the peak of anonymous memory (RssAnon:
heap, not the memory-mapped output) summed over the main and worker processes, sampled
every 20 ms.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

from facegen.data.celeba import (
    ATTRIBUTE_FILE,
    IDENTITY_FILE,
    IMAGE_FOLDER,
    LANDMARK_FILE,
    PARTITION_FILE,
)
from facegen.data.prepare import PrepareConfig, prepare
from facegen.data.synth import SynthConfig, synthesize


def make_source(root: Path, n: int, distinct: int) -> Path:
    """A CelebA root of ``n`` images, ``distinct`` of them drawn, the rest hard links."""
    faces = root / "faces"
    if not faces.exists():
        synthesize(
            faces,
            SynthConfig(n=distinct, identities=max(1, distinct // 20), seed=0),
            progress=False,
        )
    source = root / f"celeba-{n}"
    if source.exists():
        return source
    (source / IMAGE_FOLDER).mkdir(parents=True)
    drawn = sorted((faces / IMAGE_FOLDER).iterdir())
    for i in range(n):
        os.link(drawn[i % len(drawn)], source / IMAGE_FOLDER / f"{i + 1:06d}.jpg")
    # The annotation files cover the first `distinct` names; the rest read as unknown.
    for name in (ATTRIBUTE_FILE, IDENTITY_FILE, PARTITION_FILE, LANDMARK_FILE):
        shutil.copy(faces / name, source / name)
    return source


def anonymous_kib(pid: int) -> int:
    """RssAnon of ``pid`` and all its descendants, in KiB."""
    total = 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                total += int(line.split()[1])
        for task in Path(f"/proc/{pid}/task").iterdir():
            children = (task / "children").read_text().split()
            total += sum(anonymous_kib(int(child)) for child in children)
    except (FileNotFoundError, ProcessLookupError):
        pass
    return total


def measure(source: Path, out: Path, size: int, workers: int) -> tuple[float, int]:
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, anonymous_kib(os.getpid()))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    data = prepare(
        source, out, PrepareConfig(size=size, workers=workers), overwrite=True, progress=False
    )
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    return len(data) / seconds, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[20000])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--distinct", type=int, default=2000)
    parser.add_argument("--cache", type=Path, default=None, help="keep source images here")
    parser.add_argument("--repeats", type=int, default=2, help="best of this many runs")
    args = parser.parse_args()

    root = args.cache or Path(tempfile.mkdtemp(prefix="bench-prepare-"))
    print(f"cpu cores: {os.cpu_count()}, size {args.size}, source images under {root}")
    print(f"{'images':>8} {'workers':>7} {'images/s':>9} {'peak anon MiB':>14}")
    for n in args.n:
        source = make_source(root, n, min(n, args.distinct))
        # One untimed pass so every run reads from the page cache, as the later ones will.
        prepare(
            source,
            root / "out",
            PrepareConfig(size=args.size, workers=max(args.workers)),
            overwrite=True,
            progress=False,
        )
        for workers in args.workers:
            runs = [measure(source, root / "out", args.size, workers) for _ in range(args.repeats)]
            speed = max(r[0] for r in runs)
            peak = max(r[1] for r in runs)
            print(f"{n:>8} {workers:>7} {speed:>9.0f} {peak / 1024:>14.1f}")
    if args.cache is None:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
