"""The `facegen` command: a thin layer that parses, validates and calls the library.

Each command group lives in its own module (``data``, ``train``, ...) with an
``add_commands(commands)`` that registers its parsers. Heavy modules are imported inside
each command so that `facegen --help` is instant and `data prepare` never loads torch. Input
mistakes end as one line on stderr and exit code 2; nothing a user typed wrong ever shows a
traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from facegen._version import __version__
from facegen.cli import (
    classifier,
    data,
    demo,
    evaluate,
    explore,
    export,
    inception,
    push,
    report,
    train,
)
from facegen.cli.common import Parser
from facegen.errors import FacegenError

COMMAND_GROUPS = (data, train, explore, classifier, evaluate, inception, report, demo, export, push)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="facegen",
        description="Learn human faces from CelebA (or any folder of face photos) and "
        "generate new ones.",
        epilog="Start with: facegen data synth data/synth && facegen data prepare "
        "data/synth data/synth-64",
    )
    parser.add_argument("--version", action="version", version=f"facegen {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=Parser)
    commands.required = True
    for group in COMMAND_GROUPS:
        group.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 failure, 2 bad input, 130 interrupted,
    143 stopped by SIGTERM)."""
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
