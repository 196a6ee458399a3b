"""`facegen classifier train | info`."""

from __future__ import annotations

import argparse
from pathlib import Path

from facegen.cli.common import Parser, add_device, non_negative_int, positive_float, positive_int


def _cmd_classifier_train(args: argparse.Namespace) -> int:
    from facegen.classifier import ClassifierConfig, train_classifier

    given = {
        "width": args.width,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "seed": args.seed,
        "device": args.device,
        "precision": args.precision,
    }
    config = ClassifierConfig(**{key: value for key, value in given.items() if value is not None})
    result = train_classifier(
        args.data, args.out, config, overwrite=args.overwrite, progress=not args.quiet
    )
    minutes, seconds = divmod(round(result.seconds), 60)
    names = result.classifier.attribute_names
    size = result.classifier.image_size
    print(
        f"trained a {size}x{size} classifier on {len(names)} attributes for {config.steps} "
        f"steps in {minutes}m{seconds:02d}s ({result.precision} on {result.device})"
    )
    _print_scores(result.metrics)
    print(f"classifier folder: {result.path}")
    return 0


def _cmd_classifier_info(args: argparse.Namespace) -> int:
    from facegen.classifier.saved import read_metrics

    metrics = read_metrics(args.classifier)
    size = metrics.get("image_size")
    print(
        f"{args.classifier}: a {size}x{size} classifier on {len(metrics['attributes'])} "
        f"attributes, trained {metrics.get('steps')} steps on {metrics.get('data')}"
    )
    _print_scores(metrics)
    return 0


def _print_scores(metrics: dict) -> None:
    from facegen.classifier.scores import format_table

    skipped = metrics.get("skipped") or []
    if skipped:
        print(
            f"skipped {len(skipped)} attribute{'s' * (len(skipped) > 1)} that the train "
            f"split never shows both ways: {', '.join(skipped)}"
        )
    split = metrics["split"]
    why = " (the test split is empty)" if split != "test" else ""
    print(f"scored on the {split} split{why}: {metrics['n_test']} faces")
    print(format_table(metrics))


def add_commands(commands: argparse._SubParsersAction) -> None:
    from facegen.config import PRECISIONS

    classifier = commands.add_parser(
        "classifier",
        help="train and inspect attribute classifiers",
        description="A small CNN that labels faces with CelebA attributes (one logit each): "
        "it scores generated faces and checks attribute edits.",
    )
    classifier_commands = classifier.add_subparsers(
        title="classifier commands", metavar="COMMAND", parser_class=Parser
    )
    classifier_commands.required = True

    train = classifier_commands.add_parser(
        "train",
        help="train a classifier on a packed data set's attributes",
        description="Train on the train split of a packed data set, score on its test split "
        "(accuracy per attribute next to the majority-class baseline), and save the folder "
        "(config.json, model.safetensors, metrics.json). Attributes that the train split "
        "never shows both ways are skipped.",
    )
    train.add_argument(
        "--data", required=True, metavar="DATA", help="packed data set (facegen data prepare)"
    )
    train.add_argument(
        "--out", type=Path, metavar="DIR", help="classifier folder (default: DATA/classifier)"
    )
    train.add_argument("--steps", type=positive_int, metavar="N", help="default 1500")
    train.add_argument("--batch-size", type=positive_int, metavar="B", help="default 64")
    train.add_argument(
        "--width", type=positive_int, metavar="W", help="channels of the first stage (32)"
    )
    train.add_argument("--lr", type=positive_float, help="peak learning rate (default 0.002)")
    train.add_argument("--seed", type=non_negative_int, metavar="S", help="default 0")
    add_device(train)
    train.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="auto: bf16 on GPUs and CPUs that support it (AVX512-BF16/AMX), else fp32",
    )
    train.add_argument("--overwrite", action="store_true", help="replace DIR if it exists")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(func=_cmd_classifier_train)

    info = classifier_commands.add_parser(
        "info",
        help="print a trained classifier's scores",
        description="Print the held-out accuracy per attribute of a classifier folder next "
        "to the majority-class baseline.",
    )
    info.add_argument("classifier", type=Path, metavar="DIR", help="classifier folder")
    info.set_defaults(func=_cmd_classifier_info)
