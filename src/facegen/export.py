"""Export a run's generator (or encoder) as a file that runs without facegen: ONNX (for
onnxruntime and other runtimes) or TorchScript (``torch.jit.load``).

The batch axis stays dynamic. Every export is run back in its own runtime and compared with
PyTorch at batch sizes other than the one it was traced at, so a file that is written is a
file that works. What the file needs to be fed (latent size and distribution, value range)
travels inside it: ONNX ``metadata_props``, or ``facegen.json`` among TorchScript's extra
files.

>>> result = export(facegen.load_run("runs/vae"))   # runs/vae/export/generator.onnx
>>> result.max_abs_diff < 1e-4
True
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import io
import json
import logging
import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from facegen._version import __version__
from facegen.errors import FacegenError
from facegen.files import atomic_path
from facegen.layout import EXPORT_FOLDER, MODEL_FOLDER
from facegen.models.base import FaceModel, encoder_model_names
from facegen.registry import Registry, choose
from facegen.run import Run
from facegen.sampling import sampler_path

TOLERANCE = 1e-4
# Traced at one batch size, checked at others: a batch size baked into the graph fails.
TRACE_BATCH_SIZE = 2
VERIFY_BATCH_SIZES = (1, 5)
INSTALL_HINT = "pip install 'facegen[export]'"


@dataclass(frozen=True)
class Part:
    """A piece of a model that can be exported: one tensor in, one tensor out."""

    name: str
    method: str  # the FaceModel method it runs: "decode" or "encode"
    input_name: str
    output_name: str

    def input_shape(self, model: FaceModel) -> tuple[int, ...]:
        """One example's input shape (the batch axis comes in front)."""
        size = model.image_size
        return (model.latent_dim,) if self.method == "decode" else (3, size, size)

    def output_shape(self, model: FaceModel) -> tuple[int, ...]:
        size = model.image_size
        return (3, size, size) if self.method == "decode" else (model.latent_dim,)


GENERATOR = Part("generator", "decode", input_name="z", output_name="images")
ENCODER = Part("encoder", "encode", input_name="images", output_name="z")

# A model has these two parts and no others (export branches on them): a dict, not a registry.
PARTS: dict[str, Part] = {
    "generator": GENERATOR,
    "decoder": GENERATOR,  # what an AE or VAE calls its generator
    "encoder": ENCODER,
}


class PartModule(nn.Module):
    """``model.decode`` or ``model.encode`` as a module's ``forward``: what exporters trace."""

    def __init__(self, model: FaceModel, part: Part) -> None:
        super().__init__()
        self.model = model
        self.method = part.method

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return getattr(self.model, self.method)(inputs)


class ExportFormat(ABC):
    """A file format in :data:`FORMATS`: writes a traced part, and loads it back to run."""

    name: ClassVar[str]
    suffix: ClassVar[str]
    title: ClassVar[str]  # the format's name in messages
    requirements: ClassVar[tuple[str, ...]] = ()  # modules beyond torch, from facegen[export]
    has_opset: ClassVar[bool] = False  # whether ``opset`` means anything to it

    def check_installed(self) -> None:
        """A one-line error naming what to install if a required module is missing."""
        missing = []
        for module in self.requirements:
            try:
                importlib.import_module(module)
            except ImportError:
                missing.append(module)
        if missing:
            raise FacegenError(
                f"{self.title} export needs {', '.join(self.requirements)} "
                f"({', '.join(missing)} missing): {INSTALL_HINT}"
            )

    @abstractmethod
    def write(
        self,
        module: PartModule,
        example: torch.Tensor,
        part: Part,
        path: Path,
        metadata: dict[str, str],
        opset: int | None,
    ) -> int | None:
        """Write ``module`` traced on ``example`` to ``path``; returns the ONNX opset used."""

    @abstractmethod
    def load(self, path: Path, part: Part) -> Callable[[torch.Tensor], torch.Tensor]:
        """The written file as a function of CPU tensors, run by its own runtime."""


# A registry: a new file format is a subclass above and one line below, nothing else.
FORMATS: Registry[ExportFormat] = Registry("export format")


@contextlib.contextmanager
def quiet_exporter() -> Iterator[None]:
    """Silence the exporters' progress prints, log lines and deprecation warnings: the
    user sees facegen's summary. Errors still propagate as exceptions."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "onnxscript")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


class OnnxFormat(ExportFormat):
    """ONNX through torch's dynamo exporter (``torch.export`` + onnxscript), checked with
    onnxruntime on the CPU."""

    name = "onnx"
    suffix = ".onnx"
    title = "ONNX"
    has_opset = True
    requirements = ("onnx", "onnxscript", "onnxruntime")

    def write(
        self,
        module: PartModule,
        example: torch.Tensor,
        part: Part,
        path: Path,
        metadata: dict[str, str],
        opset: int | None,
    ) -> int | None:
        batch = torch.export.Dim("batch")
        with quiet_exporter():
            program = torch.onnx.export(
                module,
                (example,),
                dynamo=True,
                input_names=[part.input_name],
                output_names=[part.output_name],
                dynamic_shapes=({0: batch},),
                opset_version=opset,
                verbose=False,
                report=False,
            )
        assert program is not None  # the dynamo exporter always returns its program
        used = program.model.opset_imports[""]
        if opset is not None and used != opset:
            # The exporter falls back to its own opset when it cannot convert; say so
            # rather than hand over a file that is not what was asked for.
            raise FacegenError(
                f"the exporter could not convert to ONNX opset {opset} (it made {used}); "
                "try another opset or leave it out"
            )
        program.model.metadata_props.update(metadata)
        program.model.doc_string = metadata["facegen.description"]
        # One self-contained file: external weights would be named after the temporary
        # file, and facegen models are far below ONNX's 2 GB limit.
        program.save(path, external_data=False)
        return used

    def load(self, path: Path, part: Part) -> Callable[[torch.Tensor], torch.Tensor]:
        import onnxruntime

        try:
            session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own types, e.g. an opset too new
            # Its messages are long and lead with C++ locations; the reason comes last.
            reason = " ".join(str(error).split()).rstrip(".").split(". ")[-1][-200:]
            raise FacegenError(
                f"onnxruntime {onnxruntime.__version__} cannot run the exported file "
                f"({reason}); nothing was written"
            ) from None

        def run(inputs: torch.Tensor) -> torch.Tensor:
            outputs = session.run([part.output_name], {part.input_name: inputs.numpy()})
            return torch.from_numpy(outputs[0])

        return run


class TorchScriptFormat(ExportFormat):
    """TorchScript by tracing, loaded with ``torch.jit.load`` from Python or C++ (libtorch).
    ``torch.jit.trace`` is deprecated in torch 2.13, but it is what libtorch loads."""

    name = "torchscript"
    suffix = ".pt"
    title = "TorchScript"
    metadata_file = "facegen.json"

    def write(
        self,
        module: PartModule,
        example: torch.Tensor,
        part: Part,
        path: Path,
        metadata: dict[str, str],
        opset: int | None,
    ) -> int | None:
        with quiet_exporter(), torch.no_grad():
            # check_trace would trace a second time; export's verification is stricter
            # (other batch sizes, the saved file). Freezing inlines the weights the part
            # uses (an AE's decoder file leaves out its encoder) and folds BatchNorm.
            traced = torch.jit.freeze(torch.jit.trace(module, example, check_trace=False))
            extra_files = {self.metadata_file: json.dumps(metadata)}
            torch.jit.save(traced, str(path), _extra_files=extra_files)
        return None

    def load(self, path: Path, part: Part) -> Callable[[torch.Tensor], torch.Tensor]:
        with quiet_exporter():
            loaded = torch.jit.load(str(path), map_location="cpu")
        return lambda inputs: loaded(inputs).detach()


FORMATS.register("onnx")(OnnxFormat())
FORMATS.register("torchscript")(TorchScriptFormat())


@dataclass
class ExportResult:
    """What :func:`export` wrote; shapes put ``"N"`` for the dynamic batch axis."""

    path: Path
    format: str
    part: str
    model: str
    input_name: str
    input_shape: tuple[int | str, ...]
    output_name: str
    output_shape: tuple[int | str, ...]
    opset: int | None  # ONNX only
    max_abs_diff: float | None  # None when not verified
    verified_batch_sizes: tuple[int, ...]
    seconds: float
    metadata: dict[str, str]
    note: str | None  # something the user must know to use the file (an AE's latents)

    @property
    def size_bytes(self) -> int:
        return self.path.stat().st_size


def latent_source(run: Run) -> str:
    """Where the generator's latents should come from, in words."""
    name = run.default_sampler
    if name == "normal":
        return "N(0, I)"
    prior = "N(0, I) also works" if run.model.prior_is_trained else "N(0, I) decodes to poor faces"
    return (
        f"the {name} sampler fitted on the {run.name}'s training latents "
        f"({MODEL_FOLDER}/{sampler_path('', name).name} in the run folder); {prior}"
    )


def file_metadata(run: Run, part: Part) -> dict[str, str]:
    """The facts a user of the file needs, as ONNX metadata (strings only)."""
    model = run.model
    size, latent_dim = model.image_size, model.latent_dim
    images = f"float32 (N, 3, {size}, {size}) RGB in [-1, 1]"
    latents = f"float32 (N, {latent_dim})"
    if part is GENERATOR:
        inputs, outputs = f"{latents} from {latent_source(run)}", images
        what = f"{run.name} generator: latents {part.input_name} -> images {part.output_name}"
    else:
        posterior = ", the posterior mean" if model.prior_is_trained else ""
        inputs, outputs = images, f"{latents}{posterior}"
        what = f"{run.name} encoder: images {part.input_name} -> latents {part.output_name}"
    return {
        "facegen.version": __version__,
        "facegen.model": run.name,
        "facegen.part": part.name,
        "facegen.model_config": json.dumps(model.config.to_dict()),
        "facegen.latent_dim": str(latent_dim),
        "facegen.image_size": str(size),
        "facegen.value_range": "[-1, 1]",
        "facegen.input": f"{part.input_name}: {inputs}",
        "facegen.output": f"{part.output_name}: {outputs}",
        "facegen.latents": latent_source(run),
        "facegen.description": f"facegen {__version__} {what}; input {inputs}; "
        f"output {outputs}. Map images to pixels with (x + 1) * 127.5.",
    }


def export(
    run: Run,
    out: str | Path | None = None,
    *,
    format: str = "onnx",
    part: str = "generator",
    opset: int | None = None,
    verify: bool = True,
) -> ExportResult:
    """Write ``run``'s ``part`` (``generator``/``decoder`` or ``encoder``) as ``format``
    (``onnx`` or ``torchscript``) to ``out`` (default ``RUN/export/<part>.onnx`` or
    ``.pt``), atomically; with ``verify``, run the file back and require it to match
    PyTorch within 1e-4 at batch sizes 1 and 5 (it is traced at 2)."""
    start = time.perf_counter()
    chosen_part, chosen_format = choose(PARTS, part, "part"), FORMATS.get(format)
    if chosen_part is ENCODER and not run.model.has_encoder:
        raise FacegenError(
            f"the {run.name} model has no encoder to export; models that can encode: "
            + ", ".join(encoder_model_names())
        )
    if opset is not None and not chosen_format.has_opset:
        raise FacegenError(f"an opset is an ONNX setting; {chosen_format.title} files have none")
    chosen_format.check_installed()
    path = Path(out) if out else default_path(run, chosen_part, chosen_format)

    # A CPU copy in eval mode (BatchNorm uses its running statistics): the file does not
    # depend on the run's device, and float32 CPU results are an exact reference (CUDA's
    # TF32 convolutions could differ from them by more than the tolerance).
    model = copy.deepcopy(run.model).cpu().eval()
    module = PartModule(model, chosen_part).eval()
    generator = torch.Generator().manual_seed(0)
    metadata = file_metadata(run, chosen_part)
    example = example_inputs(model, chosen_part, TRACE_BATCH_SIZE, generator)
    max_abs_diff = None
    # Verified under its temporary name: a file that fails the check is never left behind.
    with atomic_path(path) as tmp:
        used_opset = chosen_format.write(module, example, chosen_part, tmp, metadata, opset)
        if verify:
            max_abs_diff = verify_file(chosen_format, tmp, module, chosen_part, generator)

    note = None
    if chosen_part is GENERATOR and not model.prior_is_trained:
        note = f"the {run.name} decoder expects latents from {latent_source(run)}"
    return ExportResult(
        path=path,
        format=chosen_format.name,
        part=chosen_part.name,
        model=run.name,
        input_name=chosen_part.input_name,
        input_shape=("N", *chosen_part.input_shape(model)),
        output_name=chosen_part.output_name,
        output_shape=("N", *chosen_part.output_shape(model)),
        opset=used_opset,
        max_abs_diff=max_abs_diff,
        verified_batch_sizes=VERIFY_BATCH_SIZES if verify else (),
        seconds=time.perf_counter() - start,
        metadata=metadata,
        note=note,
    )


def default_path(run: Run, part: Part, file_format: ExportFormat) -> Path:
    """``RUN/export/<part>.onnx`` (or ``.pt``)."""
    return run.path / EXPORT_FOLDER / f"{part.name}{file_format.suffix}"


def example_inputs(
    model: FaceModel, part: Part, n: int, generator: torch.Generator
) -> torch.Tensor:
    """``n`` inputs for ``part``: latents from N(0, I), or faces the model decodes from them
    (pictures in the range the encoder was trained on)."""
    z = torch.randn(n, model.latent_dim, generator=generator)  # (n, latent_dim)
    if part is GENERATOR:
        return z
    with torch.no_grad():
        return model.decode(z)  # (n, 3, S, S)


def verify_file(
    file_format: ExportFormat,
    path: Path,
    module: PartModule,
    part: Part,
    generator: torch.Generator,
) -> float:
    """The largest absolute difference between the written file, run by its own runtime,
    and PyTorch over :data:`VERIFY_BATCH_SIZES`; more than :data:`TOLERANCE` is an error."""
    run_file = file_format.load(path, part)
    max_abs_diff = 0.0
    for n in VERIFY_BATCH_SIZES:
        inputs = example_inputs(module.model, part, n, generator)
        with torch.no_grad():
            expected = module(inputs)
        actual = run_file(inputs)
        if actual.shape != expected.shape:
            raise FacegenError(
                f"the exported {part.name} gives shape {tuple(actual.shape)} for a batch of "
                f"{n}, PyTorch {tuple(expected.shape)}; nothing was written",
                exit_code=1,
            )
        max_abs_diff = max(max_abs_diff, (actual - expected).abs().max().item())
    if not max_abs_diff <= TOLERANCE:  # also catches NaN
        raise FacegenError(
            f"the exported {part.name} differs from PyTorch by up to {max_abs_diff:.3g} "
            f"(limit {TOLERANCE:g}); nothing was written",
            exit_code=1,
        )
    return max_abs_diff
