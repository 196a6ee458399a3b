"""The `facegen` command: a thin layer that parses, validates and calls the library.

Heavy modules are imported inside each command so that `facegen --help` is instant and
`data prepare` never loads torch. Input mistakes end as one line on stderr and exit code 2;
nothing a user typed wrong ever shows a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Sequence

from facegen import __version__
from facegen.errors import FacegenError


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line naming the command and pointing at --help."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _int_at_least(minimum: int):
    """An argparse type: a whole number no smaller than ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, not {value}")
        return value

    return parse


_positive_int = _int_at_least(1)
_non_negative_int = _int_at_least(0)


def _add_common(parser: argparse.ArgumentParser, *, workers: bool = True) -> None:
    if workers:
        parser.add_argument(
            "--workers",
            type=_positive_int,
            default=None,
            metavar="K",
            help=f"worker processes (default: all {os.cpu_count()} cores)",
        )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _cmd_data_synth(args: argparse.Namespace) -> int:
    from facegen.data.synth import SynthConfig, synthesize

    config = SynthConfig(n=args.n, identities=args.identities, seed=args.seed)
    out = synthesize(
        args.out, config, workers=args.workers, overwrite=args.overwrite, progress=not args.quiet
    )
    print(f"wrote {config.n:,} faces of {config.identities:,} identities in CelebA layout to {out}")
    print(f"next: facegen data prepare {out} {out}-64")
    return 0


def _cmd_data_prepare(args: argparse.Namespace) -> int:
    from facegen.data.prepare import PrepareConfig, prepare

    config = PrepareConfig(
        size=args.size,
        crop=args.crop,
        identities=args.identities,
        split=args.split,
        limit=args.limit,
        workers=args.workers,
    )
    data = prepare(args.src, args.out, config, overwrite=args.overwrite, progress=not args.quiet)
    manifest = data.manifest
    splits = ", ".join(f"{k} {v:,}" for k, v in manifest["splits"].items())
    print(
        f"packed {len(data):,} images at {data.size}x{data.size} (crop {manifest['crop']}) "
        f"into {data.path} [{splits}] in {manifest['seconds']:.1f} s"
    )
    skipped = manifest["skipped_count"]
    if skipped:
        first = manifest["skipped"][0]
        print(
            f"skipped {skipped:,} unreadable file{'s' * (skipped > 1)} "
            f"(first: {first['file']}: {first['reason']}); all are named in "
            f"{data.path / 'manifest.json'}"
        )
    print(f"next: facegen data info {data.path}")
    return 0


def _cmd_data_info(args: argparse.Namespace) -> int:
    from facegen.data.info import summarize, write_preview
    from facegen.data.packed import open_packed

    data = open_packed(args.data)
    print(summarize(data))
    grid = write_preview(data, args.grid, n=args.n, seed=args.seed)
    print(f"preview grid     {grid}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from facegen.config import TrainConfig, parse_override, read_preset, resolve
    from facegen.data.packed import open_packed
    from facegen.models import build_model
    from facegen.training.trainer import model_config_for, resolve_for_run, train

    overrides = {
        "model": args.model,
        "data": args.data,
        "steps": args.steps,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "device": args.device,
        "precision": args.precision,
        "lr": args.lr,
        "compile": args.compile or None,
        "channels_last": False if args.no_channels_last else None,
    }
    sets = [parse_override(text) for text in args.set]
    if args.resume:
        if args.config or args.model or sets:
            raise FacegenError(
                "--resume continues a run with its own config: drop --config, "
                "--model and --set (only --steps/--epochs/--data may change)"
            )
        config = resolve_for_run(
            TrainConfig(steps=args.steps, epochs=args.epochs, data=args.data or ""),
            args.out,
            resume=True,
        )
    else:
        if not args.data:
            raise FacegenError("--data is required: a folder made by facegen data prepare")
        preset: dict = {}
        if args.config:
            preset = read_preset(args.config)
            if args.model and preset.get("model", args.model) != args.model:
                raise FacegenError(
                    f"--model {args.model} contradicts the preset's model {preset.get('model')!r}"
                )
        else:
            name = f"{args.model or 'vae'}-{open_packed(args.data).size}"
            with contextlib.suppress(FacegenError):
                preset = read_preset(name)
        config = resolve(preset, overrides, sets)
    if args.dry_run:
        model = build_model(config.model, model_config_for(config, open_packed(config.data)))
        parameters = sum(p.numel() for p in model.parameters())
        print(
            json.dumps(
                {
                    "train": config.to_dict(),
                    "model_config": model.config.to_dict(),
                    "model_parameters": parameters,
                },
                indent=2,
            )
        )
        print(f"dry run: nothing was written (the run would go to {args.out})")
        return 0
    result = train(
        config, args.out, resume=args.resume, overwrite=args.overwrite, progress=not args.quiet
    )
    minutes, seconds = divmod(int(result.seconds), 60)
    how = f"{result.precision} on {result.device}"
    if result.rank != 0:
        return 130 if result.interrupted else 0
    if result.interrupted:
        print(
            f"interrupted at step {result.step} of {result.total_steps} ({how}); saved. "
            f"Continue with: facegen train --resume --out {result.run}"
        )
        return 130
    print(f"trained {config.model} for {result.step} steps in {minutes}m{seconds:02d}s ({how})")
    print(f"run folder: {result.run}  (samples/, loss.png, model/, log.jsonl)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="facegen",
        description="Learn human faces from CelebA (or any folder of face photos) and "
        "generate new ones.",
        epilog="Start with: facegen data synth data/synth && facegen data prepare "
        "data/synth data/synth-64",
    )
    parser.add_argument("--version", action="version", version=f"facegen {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    data = commands.add_parser(
        "data",
        help="make, pack and inspect data sets",
        description="Make, pack and inspect "
        "data sets: the built-in synthetic faces, CelebA, or any folder of face photos.",
    )
    data_commands = data.add_subparsers(
        title="data commands", metavar="COMMAND", parser_class=_Parser
    )
    data_commands.required = True

    synth = data_commands.add_parser(
        "synth",
        help="write the built-in synthetic faces in CelebA's layout",
        description="Draw procedural faces (identities with stable traits, per-image "
        "expression, glasses, hats, pose, lighting) and write them in the official CelebA "
        "layout: img_align_celeba/*.jpg at 178x218 plus the four annotation files. "
        "Deterministic from --seed.",
    )
    synth.add_argument("out", metavar="OUT", help="folder to create")
    synth.add_argument("--n", type=_positive_int, default=5000, help="images (default 5000)")
    synth.add_argument("--identities", type=_positive_int, default=200, help="people (default 200)")
    synth.add_argument("--seed", type=_non_negative_int, default=0, help="random seed (default 0)")
    synth.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    _add_common(synth)
    synth.set_defaults(func=_cmd_data_synth)

    prepare = data_commands.add_parser(
        "prepare",
        help="crop, resize and pack images into a data set for training",
        description="Pack SRC into OUT: a folder with images.npy (uint8, memory-mapped), "
        "labels and manifest.json. SRC is a CelebA root (official folder, Kaggle copy), "
        "CelebA's img_align_celeba.zip (read in place), or any folder or zip of images "
        "(.jpg .jpeg .png .webp .bmp, recursively). Unreadable images are skipped and named "
        "in the manifest.",
    )
    prepare.add_argument("src", metavar="SRC", help="CelebA root or zip, or a folder of images")
    prepare.add_argument("out", metavar="OUT", help="packed data set folder to create")
    prepare.add_argument(
        "--size", type=int, choices=(32, 64, 128), default=64, help="image side (default 64)"
    )
    prepare.add_argument(
        "--crop",
        default=None,
        metavar="CROP",
        help="'full' (largest centred square) or a centred box side in pixels of the 178x218 "
        "CelebA geometry, scaled with the image (default: 140 for CelebA, full otherwise)",
    )
    prepare.add_argument(
        "--identities",
        type=_positive_int,
        default=None,
        metavar="N",
        help="keep only the N identities with the most images (the seed project uses 50)",
    )
    prepare.add_argument(
        "--split",
        choices=("train", "valid", "test", "all"),
        default="all",
        help="keep one partition (default all, partitions kept)",
    )
    prepare.add_argument(
        "--limit", type=_positive_int, default=None, metavar="N", help="keep the first N images"
    )
    prepare.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    _add_common(prepare)
    prepare.set_defaults(func=_cmd_data_prepare)

    info = data_commands.add_parser(
        "info",
        help="summarise a packed data set and write a preview grid",
        description="Print what a packed data set holds and write a grid of its images.",
    )
    info.add_argument("data", metavar="DATA", help="packed data set folder")
    info.add_argument(
        "--grid",
        default=None,
        metavar="PNG",
        help="where to write the grid (default DATA/preview.png)",
    )
    info.add_argument("--n", type=_positive_int, default=64, help="images in the grid (default 64)")
    info.add_argument("--seed", type=_non_negative_int, default=0, help="which images (default 0)")
    info.set_defaults(func=_cmd_data_info)
    _add_train(commands)
    return parser


def _add_train(commands: argparse._SubParsersAction) -> None:
    from facegen.config import DEVICES, PRECISIONS

    train = commands.add_parser(
        "train",
        help="train a model on a packed data set",
        description="Train an autoencoder, VAE or GAN into a run folder (config.json, "
        "model/, checkpoints/, log.jsonl, samples/, loss.png). Settings come from a preset "
        "(default: MODEL-SIZE, e.g. vae-64), then these flags, then --set. Ctrl-C saves and "
        "stops; --resume continues exactly. Under torchrun --nproc_per_node=N it trains "
        "with DistributedDataParallel.",
    )
    train.add_argument("--out", required=True, metavar="RUN", help="run folder")
    train.add_argument("--data", metavar="DATA", help="packed data set (facegen data prepare)")
    train.add_argument("--model", help="ae, vae, dcgan or sngan (default: the preset's, or vae)")
    train.add_argument("--config", metavar="PRESET", help="preset name (vae-64) or JSON file")
    length = train.add_mutually_exclusive_group()
    length.add_argument("--steps", type=_positive_int, help="optimisation steps")
    length.add_argument("--epochs", type=float, help="passes over the training split")
    train.add_argument("--batch-size", type=_positive_int, metavar="B")
    train.add_argument("--seed", type=_non_negative_int)
    train.add_argument("--lr", type=float, help="learning rate (GANs: the generator's)")
    train.add_argument("--device", choices=DEVICES, help="default auto: cuda, mps, then cpu")
    train.add_argument(
        "--precision",
        choices=PRECISIONS,
        help="auto: bf16 on GPUs and CPUs that support it (AVX512-BF16/AMX), else fp32",
    )
    train.add_argument("--compile", action="store_true", help="torch.compile the model")
    train.add_argument(
        "--no-channels-last", action="store_true", help="keep the default memory layout"
    )
    train.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any config field, e.g. --set kl_weight=0.5 --set model.latent_dim=64",
    )
    train.add_argument("--resume", action="store_true", help="continue RUN from its checkpoint")
    train.add_argument("--overwrite", action="store_true", help="replace RUN if it exists")
    train.add_argument("--dry-run", action="store_true", help="print the config, write nothing")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(func=_cmd_train)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 failure, 2 bad input, 130 interrupted)."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except FacegenError as error:
        print(f"facegen: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("facegen: interrupted; nothing half-written was left behind", file=sys.stderr)
        return 130
    except OSError as error:
        # Disk full, permission denied, ...: the system's words, without a traceback.
        print(f"facegen: error: {error}", file=sys.stderr)
        return 1
