"""`facegen report RUN [RUN ...]`: one HTML page comparing runs, which opens offline."""

from __future__ import annotations

import argparse


def _cmd_report(args: argparse.Namespace) -> int:
    from facegen.viz.report_html import build_report, default_report_path

    out = args.out or default_report_path(args.runs)
    print(build_report(args.runs, out, title=args.title))
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:
    report = commands.add_parser(
        "report",
        help="one HTML page comparing runs (metrics, losses, pictures)",
        description="Write a self-contained HTML page (pictures embedded, nothing fetched) "
        "with, per run, its config, loss curves, latest samples, exploration pictures and "
        "metrics (facegen eval), and a table comparing the runs with each column's best "
        "value marked: FID's only where every run's came from the same number of faces, "
        "2,048 or more (the Inception feature dimension); otherwise KID marks the best "
        "generator. Prints the page's path.",
    )
    report.add_argument("runs", nargs="+", metavar="RUN", help="run folders (facegen train --out)")
    report.add_argument(
        "--out",
        metavar="HTML",
        help="page to write (default: report.html in the folder holding the runs)",
    )
    report.add_argument("--title", default="facegen report", help="the page's title")
    report.set_defaults(func=_cmd_report)
