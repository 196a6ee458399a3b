"""What every command shares: the parser class, argument types and common options."""

from __future__ import annotations

import argparse
import os
from typing import NoReturn


class Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line naming the command and pointing at --help."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def int_at_least(minimum: int):
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


def positive_float(text: str) -> float:
    """An argparse type: a number greater than 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, not {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {text}")
    return value


positive_int = int_at_least(1)
non_negative_int = int_at_least(0)


def add_common(parser: argparse.ArgumentParser, *, workers: bool = True) -> None:
    if workers:
        parser.add_argument(
            "--workers",
            type=positive_int,
            default=None,
            metavar="K",
            help=f"worker processes (default: all {os.cpu_count()} cores)",
        )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def add_device(parser: argparse.ArgumentParser) -> None:
    from facegen.config import DEVICES

    parser.add_argument(
        "--device", choices=DEVICES, default="auto", help="default auto: cuda, mps, then cpu"
    )
