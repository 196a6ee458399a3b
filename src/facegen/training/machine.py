"""Where training runs and at what precision: device choice, autocast, distributed set-up.

Kept simple on purpose: users train on GPUs, we test on 2 CPU cores. ``auto`` picks CUDA,
then Apple's MPS, then the CPU; mixed precision is bfloat16 where the hardware does it
natively (CUDA with bf16 support, CPUs with AVX512-BF16 or AMX), float16 with a gradient
scaler on older GPUs, and float32 elsewhere. Master weights always stay float32.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from facegen.devices import is_distributed_env
from facegen.errors import FacegenError


def cpu_has_fast_bf16() -> bool:
    """AVX512-BF16 or AMX: bf16 matrix work faster than float32's (``benchmarks/bench_models.py``
    measures it: its cl+bf16 column against fp32)."""
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def resolve_precision(name: str, device: torch.device) -> str:
    if name != "auto":
        if name == "fp16" and device.type == "cpu":
            raise FacegenError("fp16 training needs a GPU; use --precision bf16 or fp32 on CPU")
        return name
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device.type == "cpu" and cpu_has_fast_bf16():
        return "bf16"
    return "fp32"


def compile_unavailable(device: torch.device) -> str | None:
    """Why ``torch.compile`` cannot run on ``device`` here, or None if nothing is known
    against it. On the CPU, Inductor writes C++ and builds it with ``$CXX`` (default g++;
    clang++ on macOS, cl on Windows); without that compiler the first step would fail deep
    inside torch."""
    if device.type != "cpu":
        return None
    default = {"darwin": "clang++", "win32": "cl"}.get(sys.platform, "g++")
    compiler = os.environ.get("CXX") or default
    if shutil.which(compiler) is None:
        return f"torch.compile on the CPU needs a C++ compiler ({compiler}; set CXX for another)"
    return None


@dataclass(frozen=True)
class Precision:
    """Autocast for forward passes; a gradient scaler only for float16."""

    name: str  # fp32, bf16 or fp16
    device: torch.device

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        if self.name == "fp32":
            yield
            return
        dtype = torch.bfloat16 if self.name == "bf16" else torch.float16
        with torch.autocast(self.device.type, dtype=dtype):
            yield

    def make_scaler(self) -> torch.amp.GradScaler | None:
        return torch.amp.GradScaler(self.device.type) if self.name == "fp16" else None


class GradScaling:
    """Backward passes and optimiser steps at a :class:`Precision`, for every training loop:
    through float16's gradient scaler (it scales the loss so that small gradients survive,
    skips a step whose gradients overflowed, and adjusts its scale once per training step),
    plain for fp32 and bf16. Its state belongs in a checkpoint: ``{}`` without a scaler."""

    def __init__(self, precision: Precision) -> None:
        self.scaler = precision.make_scaler()

    def backward(self, loss: torch.Tensor) -> None:
        (loss if self.scaler is None else self.scaler.scale(loss)).backward()

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """``optimizer.step()``, unscaling its gradients first under float16."""
        if self.scaler is None:
            optimizer.step()
        else:
            self.scaler.step(optimizer)

    def update(self) -> None:
        """Once per training step, after every optimiser's step."""
        if self.scaler is not None:
            self.scaler.update()

    def state_dict(self) -> dict[str, Any]:
        return self.scaler.state_dict() if self.scaler is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)


# ------------------------------------------------------------------------- distributed


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Only rank 0 writes files and prints."""
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def any(self, flag: bool, device: torch.device) -> bool:
        """True if ``flag`` is true on any rank (a signal or a bad loss on one stops all)."""
        if not self.enabled:
            return flag
        return self.max(1.0 if flag else 0.0, device) > 0

    def max(self, value: float, device: torch.device) -> float:
        """The largest ``value`` over ranks (the signal that stopped a run, wherever it
        arrived, so that every rank ends with the same exit code)."""
        if not self.enabled:
            return value
        tensor = torch.tensor([float(value)], device=device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return float(tensor.item())

    def mean(self, values: dict[str, float], device: torch.device) -> dict[str, float]:
        """The mean of each logged value over ranks."""
        if not self.enabled or not values:
            return values
        keys = sorted(values)
        tensor = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
        dist.all_reduce(tensor)
        return {k: float(v) / self.world_size for k, v in zip(keys, tensor.tolist(), strict=True)}


def init_distributed(device: torch.device) -> Distributed:
    """Join the process group torchrun set up (NCCL on GPUs, gloo on CPU), or run alone."""
    if not is_distributed_env():
        return Distributed()
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=datetime.timedelta(minutes=10))
    return Distributed(rank=dist.get_rank(), world_size=dist.get_world_size())


def shutdown_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
