"""Exported generators on the CPU: export time, file size, max abs difference from PyTorch,
and images per second in onnxruntime against eager PyTorch.

    python benchmarks/bench_export.py --size 64 --batch-size 64 --repeats 5 --threads 2
    python benchmarks/bench_export.py --models dcgan --format torchscript

Each model is built with its default config at ``--size`` (random weights: speed and
numerics do not depend on training) and exported with :func:`facegen.export.export`, which
also checks the file against PyTorch. Then each runtime generates ``--batch-size`` faces
``--repeats`` times after two warm-up batches (oneDNN and onnxruntime build their kernels on
the first calls); the median is reported. The runtimes take turns batch by batch, so a load
that comes and goes on a shared machine hits them alike.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import onnxruntime
import torch

from facegen.export import export
from facegen.models import MODELS, build_model
from facegen.models.base import FaceModel
from facegen.run import Run


def onnx_runner(path: Path, threads: int) -> Callable[[np.ndarray], np.ndarray]:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda z: session.run(None, {"z": z})[0]


def torchscript_runner(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    module = torch.jit.load(str(path))
    return lambda z: module(torch.from_numpy(z)).numpy()


@torch.no_grad()
def decode(model: FaceModel, z: torch.Tensor) -> torch.Tensor:
    return model.decode(z)


def median_seconds(functions: list[Callable[[], object]], repeats: int) -> list[float]:
    """Median seconds per call of each function, called in turn ``repeats`` times."""
    for function in functions:
        for _ in range(2):
            function()
    times: list[list[float]] = [[] for _ in functions]
    for _ in range(repeats):
        for function, record in zip(functions, times, strict=True):
            start = time.perf_counter()
            function()
            record.append(time.perf_counter() - start)
    return [float(np.median(record)) for record in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=MODELS.names())
    parser.add_argument("--size", type=int, default=64, choices=(32, 64, 128))
    parser.add_argument("--format", default="onnx", choices=("onnx", "torchscript"))
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"{args.format} generators at {args.size}x{args.size}, batch {args.batch_size}, "
        f"{args.threads} threads; images/s are medians of {args.repeats} batches"
    )
    print(
        f"{'model':<8} {'export s':>9} {'file MB':>8} {'max diff':>9} "
        f"{'torch img/s':>12} {args.format + ' img/s':>16} {'ratio':>6}"
    )
    with tempfile.TemporaryDirectory() as folder:
        for name in args.models:
            torch.manual_seed(0)
            model = build_model(name, {"image_size": args.size}).eval()
            # export() reads only the model and the folder from a Run.
            run = Run(path=Path(folder) / name, config={}, model=model, device=torch.device("cpu"))
            result = export(run, format=args.format)
            if args.format == "onnx":
                run_file = onnx_runner(result.path, args.threads)
            else:
                run_file = torchscript_runner(result.path)
            z = torch.randn(args.batch_size, model.latent_dim)  # (B, latent_dim)
            eager, exported = median_seconds(
                [partial(decode, model, z), partial(run_file, z.numpy())], args.repeats
            )
            print(
                f"{name:<8} {result.seconds:9.1f} "
                f"{result.size_bytes / 1e6:8.2f} {result.max_abs_diff:9.1e} "
                f"{args.batch_size / eager:12.0f} {args.batch_size / exported:16.0f} "
                f"{eager / exported:6.2f}"
            )


if __name__ == "__main__":
    main()
