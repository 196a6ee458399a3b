"""Which torch device a command runs on: ``auto`` picks CUDA, then Apple's MPS, then the
CPU; under torchrun each process takes the GPU of its local rank. Below training and runs,
so opening a run for inference never loads the trainer."""

from __future__ import annotations

import os

import torch

from facegen.errors import FacegenError


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank() if is_distributed_env() else 0)
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise FacegenError("--device cuda was asked for, but no CUDA GPU is available")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise FacegenError("--device mps was asked for, but MPS is not available")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank() if is_distributed_env() else 0)
    return device


def is_distributed_env() -> bool:
    """True under torchrun (it sets WORLD_SIZE and RANK for every process)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))
