"""`facegen export`: a run's generator (or encoder) as an ONNX or TorchScript file that runs
without facegen, checked against PyTorch before it is written."""

from __future__ import annotations

import argparse

from facegen.cli.common import positive_int


def _shape(shape: tuple[int | str, ...]) -> str:
    return "(" + ", ".join(map(str, shape)) + ")"


def _cmd_export(args: argparse.Namespace) -> int:
    from facegen.export import export
    from facegen.run import load_run

    # Always exported from a CPU copy of the model, so a --device option would change
    # nothing: the file is the same whichever device the run is opened on.
    run = load_run(args.run, "cpu")
    result = export(run, args.out, format=args.format, part=args.part, opset=args.opset)
    opset = f" opset {result.opset}" if result.opset is not None else ""
    print(
        f"wrote the {result.model} {result.part} as {result.format}{opset} to {result.path} "
        f"({result.size_bytes / 1e6:.2f} MB, {result.seconds:.1f} s)"
    )
    print(f"  input  {result.input_name}: float32 {_shape(result.input_shape)}")
    print(f"  output {result.output_name}: float32 {_shape(result.output_shape)}")
    sizes = " and ".join(map(str, result.verified_batch_sizes))
    print(
        f"matches PyTorch at batch sizes {sizes}: max abs difference "
        f"{result.max_abs_diff:.2g} (limit 1e-4)"
    )
    if result.note:
        print(f"note: {result.note}")
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:
    # Part and format names are not argparse choices: reading them from facegen.export would
    # import torch into `facegen --help`; an unknown name gets export's one-line error.
    export = commands.add_parser(
        "export",
        help="the generator (or encoder) as an ONNX or TorchScript file",
        description="Write a run's generator (GANs) or decoder (AE, VAE), or with --part "
        "encoder its encoder, as a file that runs without facegen: ONNX for onnxruntime "
        "(pip install 'facegen[export]') or TorchScript for torch.jit.load. The batch "
        "axis is dynamic; the file is run back and must match PyTorch within 1e-4 before "
        "it is written. Generator: z float32 (N, latent_dim) -> images float32 "
        "(N, 3, S, S) in [-1, 1]; encoder: the reverse (a VAE's posterior mean). What to "
        "feed it is stored in the file's metadata.",
    )
    export.add_argument("run", metavar="RUN", help="run folder (facegen train --out)")
    export.add_argument(
        "--format", default="onnx", metavar="NAME", help="onnx (default) or torchscript"
    )
    export.add_argument(
        "--part",
        default="generator",
        metavar="NAME",
        help="generator (default; decoder is the same) or encoder (AE, VAE)",
    )
    export.add_argument(
        "--out",
        metavar="PATH",
        help="file to write (default RUN/export/PART.onnx, or PART.pt for torchscript)",
    )
    export.add_argument(
        "--opset",
        type=positive_int,
        metavar="N",
        help="ONNX operator set version (default: the exporter's own)",
    )
    export.set_defaults(func=_cmd_export)
