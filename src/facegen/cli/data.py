"""`facegen data synth | prepare | info`."""

from __future__ import annotations

import argparse

from facegen.cli.common import Parser, add_common, non_negative_int, positive_int


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
    from facegen.data.align import NO_FACE
    from facegen.data.prepare import PrepareConfig, prepare

    config = PrepareConfig(
        size=args.size,
        crop=args.crop,
        identities=args.identities,
        split=args.split,
        limit=args.limit,
        workers=args.workers,
        detect_faces=args.detect_faces,
    )
    data = prepare(args.src, args.out, config, overwrite=args.overwrite, progress=not args.quiet)
    manifest = data.manifest
    splits = ", ".join(f"{k} {v:,}" for k, v in manifest["splits"].items())
    print(
        f"packed {len(data):,} images at {data.size}x{data.size} (crop {manifest['crop']}) "
        f"into {data.path} [{splits}] in {manifest['seconds']:.1f} s"
    )
    no_face = manifest.get("no_face_count", 0)
    unreadable = manifest["skipped_count"] - no_face
    listed = data.path / "manifest.json"
    if no_face:
        first = next((s for s in manifest["skipped"] if s["reason"] == NO_FACE), None)
        example = f" (first: {first['file']})" if first else ""
        print(
            f"skipped {no_face:,} photo{'s' * (no_face > 1)} with no face found{example}; "
            f"all are named in {listed}"
        )
    if unreadable:
        first = next((s for s in manifest["skipped"] if s["reason"] != NO_FACE), None)
        example = f" (first: {first['file']}: {first['reason']})" if first else ""
        print(
            f"skipped {unreadable:,} unreadable file{'s' * (unreadable > 1)}{example}; "
            f"all are named in {listed}"
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


def add_commands(commands: argparse._SubParsersAction) -> None:
    data = commands.add_parser(
        "data",
        help="make, pack and inspect data sets",
        description="Make, pack and inspect "
        "data sets: the built-in synthetic faces, CelebA, or any folder of face photos.",
    )
    data_commands = data.add_subparsers(
        title="data commands", metavar="COMMAND", parser_class=Parser
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
    synth.add_argument("--n", type=positive_int, default=5000, help="images (default 5000)")
    synth.add_argument("--identities", type=positive_int, default=200, help="people (default 200)")
    synth.add_argument("--seed", type=non_negative_int, default=0, help="random seed (default 0)")
    synth.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    add_common(synth)
    synth.set_defaults(func=_cmd_data_synth)

    prepare = data_commands.add_parser(
        "prepare",
        help="crop, resize and pack images into a data set for training",
        description="Pack SRC into OUT: a folder with images.npy (uint8, memory-mapped), "
        "labels and manifest.json. SRC is a CelebA root (official folder, Kaggle copy), "
        "CelebA's img_align_celeba.zip (read in place), or any folder or zip of images "
        "(.jpg .jpeg .png .webp .bmp, recursively). Unreadable images are skipped and named "
        "in the manifest. For your own photos, add --detect-faces.",
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
        "CelebA geometry, scaled with the image (default: 140 for CelebA or with "
        "--detect-faces, full otherwise)",
    )
    prepare.add_argument(
        "--detect-faces",
        action="store_true",
        help="find the largest face in each photo, level its eyes and frame it like "
        "CelebA's aligned images before cropping; photos with no face are skipped and named "
        "in the manifest (needs OpenCV: pip install 'facegen[detect]')",
    )
    prepare.add_argument(
        "--identities",
        type=positive_int,
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
        "--limit", type=positive_int, default=None, metavar="N", help="keep the first N images"
    )
    prepare.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    add_common(prepare)
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
    info.add_argument("--n", type=positive_int, default=64, help="images in the grid (default 64)")
    info.add_argument("--seed", type=non_negative_int, default=0, help="which images (default 0)")
    info.set_defaults(func=_cmd_data_info)
