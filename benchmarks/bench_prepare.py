"""How fast `data prepare` packs CelebA-format JPEGs, and whether its memory stays flat.

    python benchmarks/bench_prepare.py --n 20000 --workers 1 2
    python benchmarks/bench_prepare.py --n 2000 --detect-faces   # with and without detection
    python benchmarks/bench_prepare.py --source data/celeba --workers 2 [--cold]  # real files

Two speeds per setting: ``prepare()`` called in this process, and ``command``: the whole
`facegen data prepare SRC OUT` as a user runs it (a new Python process: start-up, listing,
workers, compaction and manifest included), timed from outside. ``--source`` packs a real
folder (e.g. CelebA's aligned 178x218 JPEGs) instead of synthetic faces; ``--cold`` (Linux,
root) drops the page cache before each command run, so its files are read from disk as on
a first pass.

Source images are the built-in synthetic faces (178x218 JPEGs, CelebA layout). To keep
set-up short, --distinct faces are drawn once and hard-linked under new names up to --n:
decoding cost is the same per file and the page cache serves them either way, as it would
after a first pass over real CelebA. Memory is the peak of anonymous memory (RssAnon:
heap, not the memory-mapped output) summed over the main and worker processes, sampled
every 20 ms. With --detect-faces each setting also runs with face detection and alignment
(`data prepare --detect-faces`), which needs OpenCV.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
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


def measure(config: PrepareConfig, source: Path, out: Path) -> tuple[float, int]:
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
    data = prepare(source, out, config, overwrite=True, progress=False)
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    # Every image decoded counts, packed or skipped (no face found, with --detect-faces).
    return (len(data) + data.manifest["skipped_count"]) / seconds, peak


def command_speed(source: Path, out: Path, size: int, workers: int, cold: bool) -> float:
    """Images per second of `facegen data prepare` as a user runs it, start-up included."""
    if cold:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    argv = [sys.executable, "-m", "facegen", "data", "prepare", str(source), str(out)]
    argv += ["--size", str(size), "--workers", str(workers), "--overwrite", "--quiet"]
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    manifest = json.loads((out / "manifest.json").read_text())
    return (manifest["count"] + manifest["skipped_count"]) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[20000])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--distinct", type=int, default=2000)
    parser.add_argument("--cache", type=Path, default=None, help="keep source images here")
    parser.add_argument("--repeats", type=int, default=2, help="best of this many runs")
    parser.add_argument(
        "--detect-faces", action="store_true", help="also time face detection and alignment"
    )
    parser.add_argument("--source", type=Path, help="pack this folder instead of synthetic faces")
    parser.add_argument(
        "--cold", action="store_true", help="drop the page cache before each command run (root)"
    )
    args = parser.parse_args()
    detection = (False, True) if args.detect_faces else (False,)

    root = args.cache or Path(tempfile.mkdtemp(prefix="bench-prepare-"))
    print(f"cpu cores: {os.cpu_count()}, size {args.size}, source images under {root}")
    print(
        f"{'images':>8} {'workers':>7} {'detect':>6} {'images/s':>9} {'command':>8} "
        f"{'peak anon MiB':>14}"
    )
    for n in [None] if args.source else args.n:
        source = args.source or make_source(root, n, min(n, args.distinct))
        # One untimed pass so every run reads from the page cache, as the later ones will.
        prepare(
            source,
            root / "out",
            PrepareConfig(size=args.size, workers=max(args.workers)),
            overwrite=True,
            progress=False,
        )
        for workers in args.workers:
            for detect_faces in detection:
                config = PrepareConfig(size=args.size, workers=workers, detect_faces=detect_faces)
                runs = [measure(config, source, root / "out") for _ in range(args.repeats)]
                speed = max(r[0] for r in runs)
                peak = max(r[1] for r in runs)
                label = "yes" if detect_faces else "no"
                command = "-"
                if not detect_faces:
                    times = [
                        command_speed(source, root / "out", args.size, workers, args.cold)
                        for _ in range(args.repeats)
                    ]
                    command = f"{max(times):.0f}"
                count = json.loads((root / "out" / "manifest.json").read_text())["count"]
                print(
                    f"{n or count:>8} {workers:>7} {label:>6} {speed:>9.0f} {command:>8} "
                    f"{peak / 1024:>14.1f}"
                )
    if args.cache is None:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
