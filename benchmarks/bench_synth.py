"""How fast `data synth` draws and writes faces.

    python benchmarks/bench_synth.py --n 2000 --workers 2

Times ``synthesize`` end to end (process start-up, drawing, JPEG encoding, annotation
files, the final rename) into a temporary folder that is deleted afterwards.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from facegen.data.synth import SynthConfig, synthesize


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="images to draw (default 2000)")
    parser.add_argument("--identities", type=int, default=100, help="people (default 100)")
    parser.add_argument("--workers", type=int, nargs="+", default=[2], help="worker counts to time")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    config = SynthConfig(n=args.n, identities=args.identities, seed=args.seed)
    for workers in args.workers:
        with tempfile.TemporaryDirectory(prefix="bench-synth-") as tmp:
            start = time.perf_counter()
            synthesize(Path(tmp) / "faces", config, workers=workers, progress=False)
            seconds = time.perf_counter() - start
        images_per_second = config.n / seconds
        print(
            f"workers={workers} n={config.n}: {seconds:.1f} s, {images_per_second:.0f} images/s, "
            f"{images_per_second * 60:,.0f} images/minute"
        )


if __name__ == "__main__":
    main()
