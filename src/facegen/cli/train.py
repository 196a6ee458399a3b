"""`facegen train`."""

from __future__ import annotations

import argparse
import json

from facegen.cli.common import non_negative_int, positive_int
from facegen.errors import FacegenError


def _duration(text: str) -> float:
    from facegen.config import parse_duration

    try:
        return parse_duration(text)
    except FacegenError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _cmd_train(args: argparse.Namespace) -> int:
    from facegen.config import (
        TrainConfig,
        format_duration,
        parse_override,
        resolve_run,
        with_sets,
    )
    from facegen.data.packed import open_packed
    from facegen.models import build_model
    from facegen.training.trainer import model_config_for, train

    flags = {
        "model": args.model,
        "data": args.data,
        "steps": args.steps,
        "epochs": args.epochs,
        "time_budget": args.time_budget,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "device": args.device,
        "precision": args.precision,
        "lr": args.lr,
        "compile": args.compile or None,
        "channels_last": False if args.no_channels_last else None,
        "log": args.log,
    }
    given = {key: value for key, value in flags.items() if value is not None}
    changes = with_sets(given, [parse_override(text) for text in args.set])
    TrainConfig.refuse_unknown(changes)  # before they become keywords: --set out=x is a typo
    if not args.resume and not args.data:
        raise FacegenError("--data is required: a folder made by facegen data prepare")
    # The rules (which preset, what --time-budget replaces, what --resume may change) are
    # facegen.config's, the same for a notebook.
    config = resolve_run(preset=args.config, out=args.out, resume=args.resume, **changes)
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
        return result.exit_code
    if result.interrupted:
        print(
            f"interrupted at step {result.step} of {result.total_steps} ({how}); saved. "
            f"Continue with: facegen train --resume --out {result.run}"
        )
        return result.exit_code  # 130 after Ctrl-C, 143 after SIGTERM
    if result.time_budget_spent:
        how = f"time budget {format_duration(config.time_budget or 0)} spent; {how}"
    print(f"trained {config.model} for {result.step} steps in {minutes}m{seconds:02d}s ({how})")
    print(f"run folder: {result.run}  (samples/, loss.png, model/, log.jsonl)")
    if config.log == "tensorboard":
        print(f"see it in TensorBoard: tensorboard --logdir {result.run.parent}")
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:
    from facegen.config import DEVICES, PRECISIONS, preset_names
    from facegen.tracking import TRACKERS

    train = commands.add_parser(
        "train",
        help="train a model on a packed data set",
        description="Train an autoencoder, VAE or GAN into a run folder (config.json, "
        "model/, checkpoints/, log.jsonl, samples/, loss.png). Settings come from a preset "
        "(default: MODEL-SIZE, e.g. vae-64), then these flags, then --set. Ctrl-C or SIGTERM "
        "saves and stops (exit 130 / 143); --resume continues exactly. Under torchrun "
        "--nproc_per_node=N it trains with DistributedDataParallel.",
    )
    train.add_argument("--out", required=True, metavar="RUN", help="run folder")
    train.add_argument("--data", metavar="DATA", help="packed data set (facegen data prepare)")
    train.add_argument(
        "--model", help="ae, vae, aegan, dcgan or sngan (default: the preset's, or vae)"
    )
    train.add_argument(
        "--config",
        metavar="PRESET",
        help=f"a shipped preset ({', '.join(preset_names())}) or a JSON file",
    )
    length = train.add_mutually_exclusive_group()
    length.add_argument("--steps", type=positive_int, help="optimisation steps")
    length.add_argument("--epochs", type=float, help="passes over the training split")
    train.add_argument(
        "--time-budget",
        type=_duration,
        metavar="TIME",
        help="stop cleanly when this much training time is spent (600, 90s, 10m, 1.5h); "
        "alone it replaces the preset's length, with --steps/--epochs the first to end wins",
    )
    train.add_argument("--batch-size", type=positive_int, metavar="B")
    train.add_argument("--seed", type=non_negative_int)
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
    train.add_argument(
        "--log",
        choices=TRACKERS.names(),
        help="also track the run in a dashboard: tensorboard writes RUN/tensorboard/ (see "
        "it with tensorboard --logdir runs/; needs facegen[tensorboard]); default none. With "
        "--resume it turns tracking on for the rest of the run",
    )
    train.add_argument(
        "--resume",
        action="store_true",
        help="continue RUN from its checkpoint with its saved config: add it to the command "
        "that started the run, or give only --out; --steps/--epochs/--time-budget/--data/--log/"
        "--device may change, any other flag must equal the saved value",
    )
    train.add_argument("--overwrite", action="store_true", help="replace RUN if it exists")
    train.add_argument("--dry-run", action="store_true", help="print the config, write nothing")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(func=_cmd_train)
