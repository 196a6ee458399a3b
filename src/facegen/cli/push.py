"""`facegen push`: share a trained run on the Hugging Face Hub, with a model card."""

from __future__ import annotations

import argparse


def _cmd_push(args: argparse.Namespace) -> int:
    from facegen.errors import FacegenError
    from facegen.hub import push, require_hub, save_pretrained

    if args.dry_run:
        if not args.out:
            raise FacegenError("--dry-run writes the folder and uploads nothing: give --out DIR")
        from facegen.hub import check_repo_id, open_trained_run

        check_repo_id(args.repo_id)
        saved = save_pretrained(
            open_trained_run(args.run),
            args.out,
            repo_id=args.repo_id,
            license=args.license,
            dataset=args.dataset,
            overwrite=args.overwrite,
        )
        _describe(saved)
        print(
            f"dry run: nothing was uploaded (without --dry-run this folder goes to {args.repo_id})"
        )
        return 0
    require_hub()  # before any work: without the library nothing can be sent
    result = push(
        args.run,
        args.repo_id,
        private=args.private,
        token=args.token,
        revision=args.revision,
        commit_message=args.commit_message,
        license=args.license,
        dataset=args.dataset,
        out=args.out,
        overwrite=args.overwrite,
    )
    _describe(result.saved, kept=args.out is not None)
    branch = f" (branch {result.revision})" if result.revision else ""
    print(f"uploaded to {result.url}{branch}")
    if result.commit_url:
        print(f"commit: {result.commit_url}")
    print(f'open it with: facegen.load_run("hf://{result.repo_id}")')
    return 0


def _describe(saved, kept: bool = True) -> None:
    """What the folder holds, its license and data, in a few lines."""
    total = sum(size for _, size in saved.files)
    where = f" in {saved.path}" if kept else ""
    print(f"model folder{where}: {len(saved.files)} files, {total / 1e6:.2f} MB")
    for name, size in saved.files:
        print(f"  {name}  ({size:,} bytes)")
    licence = saved.license["license"]
    if "license_link" in saved.license:
        licence += f" ({saved.license['license_name']}: {saved.license['license_link']})"
    print(f"data: {saved.dataset}; license: {licence}; samples from the {saved.sampler} sampler")
    if saved.dataset == "celeba":
        print("note: CelebA's terms allow non-commercial research only; the card says so")


def add_commands(commands: argparse._SubParsersAction) -> None:
    push = commands.add_parser(
        "push",
        help="share a run on the Hugging Face Hub (model card included)",
        description="Upload a run to the Hugging Face Hub as REPO_ID (owner/name): its "
        "config.json and model/ (weights, fitted samplers), training log, metrics, a grid "
        "of 16 samples and a model card (README.md) with the Hub's metadata, the metrics "
        "with their protocol, the training command and the data's terms. No checkpoints. "
        "Pushing again updates the repository to match. Open it with "
        "facegen.load_run('hf://owner/name'). Needs pip install 'facegen[hub]' and a token "
        "with write access: HF_TOKEN, a saved login (hf auth login) or --token.",
    )
    push.add_argument("run", metavar="RUN", help="run folder (facegen train --out)")
    push.add_argument("repo_id", metavar="REPO_ID", help="Hub model repository, owner/name")
    push.add_argument(
        "--private",
        action="store_true",
        help="create the repository private (an existing one keeps its visibility)",
    )
    push.add_argument(
        "--token",
        metavar="TOKEN",
        help="Hub token (default: HF_TOKEN, then the saved login; both keep it out of your "
        "shell history)",
    )
    push.add_argument(
        "--revision", metavar="BRANCH", help="push to this branch (created if missing)"
    )
    push.add_argument("--commit-message", metavar="TEXT", help="the commit's message")
    push.add_argument(
        "--license",
        metavar="ID",
        help="the weights' Hub license id (default: 'other' with CelebA's non-commercial "
        "terms for CelebA-trained weights, else mit, facegen's license)",
    )
    # Not argparse choices: facegen.hub.DATASETS holds them, and importing it loads torch
    # into `facegen --help`; an unknown name gets its error, with the names.
    push.add_argument(
        "--dataset",
        metavar="NAME",
        help="what the training images were: celeba, synthetic or other (default: read "
        "from the data set's manifest; synthetic faces packed before facegen marked them "
        "read as celeba: say synthetic)",
    )
    push.add_argument(
        "--out", metavar="DIR", help="also keep the uploaded folder in DIR (default: deleted)"
    )
    push.add_argument("--overwrite", action="store_true", help="replace DIR if it exists")
    push.add_argument(
        "--dry-run",
        action="store_true",
        help="write the folder to --out and stop: nothing is uploaded",
    )
    push.set_defaults(func=_cmd_push)
