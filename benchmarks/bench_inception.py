"""Inception features on the CPU: today's torch path against the onnxruntime backend.

    python benchmarks/bench_inception.py --n 60 --batch-size 5 10 20 --threads 2 --rounds 3
    python benchmarks/bench_inception.py --images data/celeba-64 --n 200 --threads 1 2 --spin 1 0

Measures ``InceptionFeatures(backend="torch")`` (the frozen TorchScript module fed
channels_last input, the path before the onnxruntime backend existed) against
``InceptionFeatures(backend="onnxruntime")`` (the same network converted to ONNX; the first run
converts it once into facegen's cache; ``facegen inception`` says where) on the
same ``--n`` uint8 images. The whole ``features()`` call is timed, resize to 299 included.

For each ``--threads`` value (torch's threads, and onnxruntime's intra-op threads; torch's also
run the resize for both), each ``--spin`` value (whether onnxruntime's threads spin while
waiting) and each ``--batch-size``, both backends first compute the features once (a warm-up:
the first calls at a new batch size build kernels, and the features give the max abs
difference, which the issue asks at most 1e-4), then run ``--rounds`` timed rounds, taking
turns in alternating order so that a load that comes and goes on a shared machine hits them
alike. One line per setting: median images/s of each, the speed-up (onnxruntime over torch),
the max abs feature difference, and how fast the resize + range change alone runs (a part of
both backends' time). Versions and the load average are printed too: other work on the cores
moves every figure, so run it twice, on an idle machine, before trusting a difference.

Images: ``--images DATA`` takes the first ``--n`` faces of ``--split`` of a packed data set
(``facegen data prepare``; use real CelebA faces for the figures that matter), or faces decoded
from a folder of photos as ``data prepare`` frames them (CelebA's 140 box, at ``--size``);
without it, synthetic faces drawn by ``facegen data synth``'s drawer at ``--size``.

Measured figures: see the README Metrics section.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from facegen.metrics.inception import InceptionFeatures, to_network_input


def load_images(args: argparse.Namespace) -> tuple[np.ndarray, str]:
    """uint8 (N, S, S, 3) images to measure on, and where they came from in words."""
    if args.images is None:
        from facegen.data.celeba import ALIGNED_HEIGHT, ALIGNED_WIDTH
        from facegen.data.decode import CELEBA_CROP, Crop
        from facegen.data.synth import SynthConfig, render_face

        config = SynthConfig(n=args.n, identities=max(1, args.n // 5), seed=0)
        box = Crop(CELEBA_CROP).box(ALIGNED_WIDTH, ALIGNED_HEIGHT)
        faces = [
            render_face(index, config)[0].resize(
                (args.size, args.size), Image.Resampling.BICUBIC, box=box
            )
            for index in range(args.n)
        ]
        return np.stack([np.asarray(face) for face in faces]), "synthetic faces"
    path = Path(args.images)
    if (path / "manifest.json").is_file():
        from facegen.data.packed import open_packed

        data = open_packed(path)
        rows = data.split_indices(args.split)[: args.n]
        return np.asarray(data.images[rows]), f"{path} ({args.split} split)"
    from facegen.data.decode import CELEBA_CROP, Crop, decode_face
    from facegen.data.sources import IMAGE_EXTENSIONS

    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise SystemExit(f"{path} is neither a packed data set nor a folder of photos")
    faces = [decode_face(str(file), args.size, Crop(CELEBA_CROP)) for file in files[: args.n]]
    return np.stack(faces), f"photos in {path}"


def images_per_second(net: InceptionFeatures, images: np.ndarray, batch_size: int) -> float:
    start = time.perf_counter()
    net.features(images, batch_size=batch_size, progress=False)
    return len(images) / (time.perf_counter() - start)


def preprocessing_per_second(images: np.ndarray, batch_size: int) -> float:
    """The resize to 299 and range change alone, as features() runs them."""
    start = time.perf_counter()
    with torch.inference_mode():
        for first in range(0, len(images), batch_size):
            to_network_input(torch.from_numpy(images[first : first + batch_size])).contiguous()
    return len(images) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=60, help="images per timed round")
    parser.add_argument("--batch-size", type=int, nargs="+", default=[10], metavar="B")
    parser.add_argument(
        "--threads", type=int, nargs="+", default=[torch.get_num_threads()], metavar="T"
    )
    parser.add_argument(
        "--spin",
        type=int,
        nargs="+",
        choices=(0, 1),
        default=[1],
        help="onnxruntime's threads spin while waiting (1, its default) or not (0)",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--images", metavar="DATA_OR_DIR", help="packed data set or folder of face photos"
    )
    parser.add_argument("--split", default="test", help="split of a packed --images")
    parser.add_argument("--size", type=int, default=64, help="face side, without --images")
    args = parser.parse_args()

    import onnxruntime

    images, source = load_images(args)
    n, size = len(images), images.shape[1]
    print(
        f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, "
        f"{os.cpu_count()} CPUs; {n} {source}, {size}x{size} -> 299, {args.rounds} rounds"
    )
    torch_net = InceptionFeatures(backend="torch")
    print(f"network {torch_net.path}\nsha1 {torch_net.sha1}")
    print(
        f"\n{'threads':>7} {'spin':>4} {'batch':>5} {'torch':>8} {'onnxrt':>8} "
        f"{'speed-up':>8} {'max abs diff':>12} {'resize':>8}   (images/s, medians)"
    )
    worst = 0.0
    for threads in args.threads:
        torch.set_num_threads(threads)
        for spin in args.spin:
            nets = {
                "torch": torch_net,
                "onnxruntime": InceptionFeatures(
                    backend="onnxruntime", threads=threads, spin=bool(spin)
                ),
            }
            for batch_size in args.batch_size:
                features = {
                    name: net.features(images, batch_size=batch_size, progress=False)
                    for name, net in nets.items()
                }  # the warm-up
                difference = float(np.abs(features["onnxruntime"] - features["torch"]).max())
                worst = max(worst, difference)
                speeds: dict[str, list[float]] = {name: [] for name in nets}
                for round_index in range(args.rounds):
                    order = list(nets) if round_index % 2 == 0 else list(reversed(nets))
                    for name in order:
                        speeds[name].append(images_per_second(nets[name], images, batch_size))
                median = {name: float(np.median(values)) for name, values in speeds.items()}
                resize = preprocessing_per_second(images, batch_size)
                print(
                    f"{threads:>7} {spin:>4} {batch_size:>5} {median['torch']:>8.2f} "
                    f"{median['onnxruntime']:>8.2f} "
                    f"{median['onnxruntime'] / median['torch']:>7.2f}x "
                    f"{difference:>12.2e} {resize:>8.0f}",
                    flush=True,
                )
    print(f"\nlargest max abs feature difference: {worst:.2e} (limit 1e-4)")
    print("load average (1, 5, 15 min): " + " ".join(f"{load:.2f}" for load in os.getloadavg()))


if __name__ == "__main__":
    main()
