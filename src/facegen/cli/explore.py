"""`facegen sample | reconstruct | interpolate | traverse | edit | latent-map`: pictures
of what a trained run has learned. Each writes a PNG (and a GIF where asked) and prints
its path; the same --seed gives the same bytes."""

from __future__ import annotations

import argparse
from pathlib import Path

from facegen.cli.common import (
    add_device,
    int_at_least,
    non_negative_int,
    positive_float,
    positive_int,
)
from facegen.errors import FacegenError
from facegen.layout import EXPLORE_FOLDER

int_at_least_two = int_at_least(2)


def _numbers(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected numbers separated by commas, not {text!r}"
        ) from None
    return values


def _out(args: argparse.Namespace, name: str) -> Path:
    """--out, or RUN/explore/NAME; for a model from the Hub (whose folder is the Hugging
    Face cache's), ./explore/OWNER--NAME/NAME."""
    if args.out:
        return Path(args.out)
    if str(args.run).startswith("hf:/"):
        from facegen.hub import parse_hub_address

        repo_id, _ = parse_hub_address(args.run)
        return Path(EXPLORE_FOLDER) / repo_id.replace("/", "--") / name
    return Path(args.run) / EXPLORE_FOLDER / name


def _open(args: argparse.Namespace):
    from facegen.run import load_run

    return load_run(args.run, args.device)


def _cmd_sample(args: argparse.Namespace) -> int:
    from facegen.explore.generate import (
        check_writable_folder,
        sample_faces,
        sample_grid,
        save_faces,
    )
    from facegen.viz.grid import save_png

    if args.individual:
        check_writable_folder(Path(args.individual), args.overwrite)
    run = _open(args)
    faces = sample_faces(
        run,
        args.n,
        seed=args.seed,
        sampler=args.sampler,
        truncation=args.truncation,
        batch_size=args.batch_size,
        progress=not args.quiet,
    )
    out = save_png(sample_grid(faces), _out(args, "samples.png"))
    sampler = args.sampler or run.default_sampler
    print(f"wrote {args.n} faces from the {sampler} sampler (seed {args.seed}) to {out}")
    if args.individual:
        folder = save_faces(faces, args.individual, overwrite=args.overwrite)
        print(f"wrote {args.n} PNGs (000000.png ...) to {folder}")
    return 0


def _cmd_reconstruct(args: argparse.Namespace) -> int:
    from facegen.explore.generate import reconstruct_faces
    from facegen.run import run_data
    from facegen.viz.grid import save_png

    run = _open(args)
    data = run_data(run, args.data)
    result = reconstruct_faces(run, data, split=args.split, n=args.n, seed=args.seed)
    out = save_png(result.picture(), _out(args, "reconstructions.png"))
    print(f"reconstructed {len(result.rows)} {args.split} faces (MSE {result.mse:.4f}): {out}")
    return 0


def _cmd_interpolate(args: argparse.Namespace) -> int:
    from facegen.data.decode import Crop
    from facegen.explore.interpolate import interpolate
    from facegen.viz.grid import save_gif, save_png

    if (args.source is None) != (args.target is None):
        raise FacegenError("--from and --to go together: give both photos, or neither")
    photos = (args.source, args.target) if args.source else None
    crop = Crop.parse(args.crop) if args.crop else None
    run = _open(args)
    walk = interpolate(
        run,
        pairs=args.pairs,
        steps=args.steps,
        method=args.method,
        seed=args.seed,
        sampler=args.sampler,
        photos=photos,
        crop=crop,
        detect_faces=args.detect_faces,
    )
    out = save_png(walk.picture(), _out(args, "interpolation.png"))
    print(f"wrote {len(walk.images)} {args.method} interpolation(s) of {args.steps} steps: {out}")
    if args.gif:
        print(f"animation: {save_gif(walk.frames(), args.gif)}")
    return 0


def _cmd_traverse(args: argparse.Namespace) -> int:
    from facegen.explore.traverse import save_kl_plot, traverse
    from facegen.run import run_data
    from facegen.viz.grid import save_png

    run = _open(args)
    data = run_data(run, args.data) if run.model.has_encoder else None
    count = args.columns
    values = tuple(-args.sd + 2 * args.sd * i / (count - 1) for i in range(count))
    result = traverse(
        run, data, dims=args.dims, values=values, seed=args.seed, progress=not args.quiet
    )
    out = save_png(result.picture(), _out(args, "traversal.png"))
    print(
        f"swept {len(result.dims)} dimensions ({result.ranking}) from -{args.sd:g} to "
        f"+{args.sd:g} sd: {out}"
    )
    if result.kl is not None:
        kl_plot = save_kl_plot(result.kl, out.with_name(f"{out.stem}-kl.png"))
        listing = ", ".join(f"{d}: {float(result.kl[d]):.2f}" for d in result.dims)
        print(f"KL per dimension (nats) {listing}; {result.active} of {len(result.kl)} active")
        print(f"KL of every dimension: {kl_plot}")
    return 0


def _load_classifier(args: argparse.Namespace, data, required: bool):
    """The classifier named by --classifier, else the data set's own, else None."""
    from facegen.classifier import default_classifier_path, load_classifier

    path = Path(args.classifier) if args.classifier else default_classifier_path(data.path)
    if args.classifier or path.exists() or required:
        return load_classifier(path, args.device)
    return None


def _cmd_edit(args: argparse.Namespace) -> int:
    from facegen.data.packed import open_packed
    from facegen.explore.edit import (
        attribute_directions,
        classifier_scores,
        edit_faces,
        save_directions,
    )
    from facegen.viz.grid import save_png

    run = _open(args)
    data = open_packed(args.data)
    for name in args.attribute:
        data.attribute_index(name)  # an unknown name fails before any work
    classifier = _load_classifier(args, data, required=not run.model.has_encoder)
    directions = attribute_directions(
        run,
        data,
        args.attribute,
        seed=args.seed,
        classifier=classifier,
        samples=args.samples,
        progress=not args.quiet,
    )
    saved = save_directions(run, directions)
    edits = edit_faces(
        run,
        list(directions.values()),
        data=data,
        n=args.n,
        strengths=args.strengths,
        seed=args.seed,
    )
    out = save_png(edits.picture(), _out(args, "edits.png"))
    scores = classifier_scores(edits, classifier) if classifier is not None else {}
    for name, direction in directions.items():
        info = direction.info
        if direction.method == "mean-difference":
            how = f"{info['with']:,} faces with it, {info['without']:,} without"
        else:
            how = (
                f"boundary accuracy {info['boundary_accuracy']:.2f} on {info['samples']:,} "
                f"generated faces; classifier test accuracy "
                f"{info['classifier_test_accuracy']:.3f}"
            )
        line = f"{name}: {direction.method} ({how}), separation {direction.separation:.2f} sd"
        if name in scores:
            probabilities = " ".join(f"{p:.2f}" for p in scores[name])
            # For a GAN it is the classifier that found the direction: a consistency check,
            # not an independent one.
            whose = "held-out classifier" if run.model.has_encoder else "classifier"
            line += f"; {whose} P({name}) across strengths: {probabilities}"
        print(line)
    print(f"edits: {out}\ndirections saved in {saved}")
    return 0


def _cmd_latent_map(args: argparse.Namespace) -> int:
    from facegen.data.packed import open_packed
    from facegen.explore.latent_map import latent_map, save_latent_map

    run = _open(args)
    data = open_packed(args.data)
    result = latent_map(
        run,
        data,
        color_by=args.color_by,
        method=args.method,
        split=args.split,
        n=args.n,
        seed=args.seed,
        progress=not args.quiet,
    )
    out = save_latent_map(result, _out(args, f"latent-map-{args.method}.png"))
    print(f"mapped {len(result.points)} {args.split} latents with {args.method}: {out}")
    return 0


def _common(parser: argparse.ArgumentParser, default_out: str, *, seed: bool = True) -> None:
    parser.add_argument("run", metavar="RUN", help="run folder (facegen train --out)")
    parser.add_argument(
        "--out",
        metavar="PNG",
        help=f"picture to write (default RUN/{EXPLORE_FOLDER}/{default_out})",
    )
    if seed:
        parser.add_argument(
            "--seed", type=non_negative_int, default=0, help="which faces (default 0)"
        )
    add_device(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _data_option(parser: argparse.ArgumentParser, required: bool = False) -> None:
    parser.add_argument(
        "--data",
        required=required,
        metavar="DATASET",
        help="packed data set" + ("" if required else " (default: the one RUN was trained on)"),
    )


def add_commands(commands: argparse._SubParsersAction) -> None:
    # Registry names are not offered as argparse choices: reading them would import torch
    # into `facegen --help`. An unknown name gets the registry's one-line error listing them.
    sample = commands.add_parser(
        "sample",
        help="new faces as a grid (and one PNG each)",
        description="Generate new faces: a grid, and with --individual one PNG per face "
        "(000000.png ...), the flat folder FID tools read.",
    )
    _common(sample, "samples.png")
    sample.add_argument("--n", type=positive_int, default=64, help="faces (default 64)")
    sample.add_argument("--individual", metavar="DIR", help="also write one PNG per face here")
    sample.add_argument("--overwrite", action="store_true", help="replace DIR if it exists")
    sample.add_argument(
        "--sampler",
        metavar="NAME",
        help="where latents come from: normal, gmm or flow (default: flow where the run "
        "fitted one, else gmm for an AE, else normal)",
    )
    sample.add_argument(
        "--truncation",
        type=positive_float,
        metavar="T",
        help="draw latent noise within [-T, T]: cleaner, less varied faces (e.g. 1.5)",
    )
    sample.add_argument("--batch-size", type=positive_int, default=64, metavar="B")
    sample.set_defaults(func=_cmd_sample)

    reconstruct = commands.add_parser(
        "reconstruct",
        help="test faces above their reconstructions (AE, VAE)",
        description="Encode and decode faces of a split; originals above reconstructions.",
    )
    _common(reconstruct, "reconstructions.png")
    _data_option(reconstruct)
    reconstruct.add_argument("--split", choices=("train", "valid", "test"), default="test")
    reconstruct.add_argument("--n", type=positive_int, default=16, help="faces (default 16)")
    reconstruct.set_defaults(func=_cmd_reconstruct)

    interpolate = commands.add_parser(
        "interpolate",
        help="walks between random latents, or between two photos",
        description="Decode latents along paths between random pairs, or with --from and "
        "--to between two photos (cropped as data prepare crops; AE and VAE encode them).",
    )
    _common(interpolate, "interpolation.png")
    interpolate.add_argument("--gif", metavar="GIF", help="also write an animation here")
    interpolate.add_argument("--pairs", type=positive_int, default=4, help="paths (default 4)")
    interpolate.add_argument(
        "--steps", type=int_at_least_two, default=10, help="faces per path (default 10)"
    )
    interpolate.add_argument(
        "--method", default="slerp", metavar="NAME", help="slerp (default) or lerp"
    )
    interpolate.add_argument(
        "--sampler", metavar="NAME", help="for random ends: normal, gmm or flow"
    )
    interpolate.add_argument("--from", dest="source", metavar="IMG", help="first photo")
    interpolate.add_argument("--to", dest="target", metavar="IMG", help="second photo")
    interpolate.add_argument(
        "--crop", metavar="CROP", help="crop for the photos (default: the run's data set's)"
    )
    interpolate.add_argument(
        "--detect-faces",
        action="store_true",
        help="find and align the face in each photo first (as data prepare --detect-faces)",
    )
    interpolate.set_defaults(func=_cmd_interpolate)

    traverse = commands.add_parser(
        "traverse",
        help="one row per latent dimension, swept from -3 to +3 sd",
        description="Sweep single latent dimensions around a test face's latent (a "
        "prior sample for GANs). A VAE's rows are its most informative dimensions by KL; "
        "the KL of every dimension is plotted beside the picture (NAME-kl.png).",
    )
    _common(traverse, "traversal.png")
    _data_option(traverse)
    traverse.add_argument("--dims", type=positive_int, metavar="K", help="rows (default 10)")
    traverse.add_argument(
        "--sd", type=positive_float, default=3.0, metavar="S", help="sweep range (default 3)"
    )
    traverse.add_argument(
        "--columns", type=int_at_least_two, default=7, help="values per row (default 7)"
    )
    traverse.set_defaults(func=_cmd_traverse)

    edit = commands.add_parser(
        "edit",
        help="attribute edits (Smiling, Eyeglasses, ...) at several strengths",
        description="Find each attribute's latent direction (models with an encoder: mean "
        "latent with minus without, from the data set's labels; GANs: InterFaceGAN, a "
        "linear boundary on generated faces labelled by `facegen classifier train`), save "
        "it in RUN/model/directions.safetensors and apply it to test faces or samples.",
    )
    _common(edit, "edits.png")
    _data_option(edit, required=True)
    edit.add_argument(
        "--attribute",
        action="append",
        required=True,
        metavar="NAME",
        help="CelebA attribute, repeatable (e.g. --attribute Smiling --attribute Eyeglasses)",
    )
    edit.add_argument("--n", type=positive_int, default=4, help="faces per attribute (default 4)")
    edit.add_argument(
        "--strengths",
        type=_numbers,
        default=(-2.0, -1.0, 0.0, 1.0, 2.0),
        metavar="S,S,...",
        help="in sd along the direction (default -2,-1,0,1,2)",
    )
    edit.add_argument(
        "--classifier",
        metavar="DIR",
        help="attribute classifier (default DATASET/classifier, if there); needed for GANs",
    )
    edit.add_argument(
        "--samples",
        type=positive_int,
        metavar="M",
        default=4000,
        help="GANs: generated faces to fit the boundary on (default 4000)",
    )
    edit.set_defaults(func=_cmd_edit)

    latent = commands.add_parser(
        "latent-map",
        help="the test faces' latents in 2-D, coloured by identity or an attribute",
        description="Project a split's latents to 2-D (PCA or t-SNE) and colour them by "
        "identity or by a CelebA attribute; the title gives a nearest-neighbour score.",
    )
    _common(latent, "latent-map-METHOD.png")
    _data_option(latent, required=True)
    latent.add_argument(
        "--color-by", default="identity", metavar="WHAT", help="identity or an attribute name"
    )
    latent.add_argument("--method", choices=("pca", "tsne"), default="pca")
    latent.add_argument("--split", choices=("train", "valid", "test"), default="test")
    latent.add_argument("--n", type=positive_int, help="at most N faces (default: the split)")
    latent.set_defaults(func=_cmd_latent_map)
