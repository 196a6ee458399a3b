"""facegen's one-command GPU check: does every GPU path run, how fast, in how much memory.

    python benchmarks/gpu_check.py                          # on a GPU machine, 8 minutes at most
    python benchmarks/gpu_check.py --device cpu --tiny      # anywhere: the same plan, shrunk
    python benchmarks/gpu_check.py --data64 data/celeba-64 --data128 data/celeba-128 \\
        --json gpu-check.json --work /tmp/gpu-check         # your data; keep runs and logs
    python benchmarks/gpu_check.py --plan                   # the checks in order; runs nothing

Each check is one subprocess of the `facegen` CLI (run through this file so that it can
report ``torch.cuda.max_memory_allocated``), with its own timeout, so a crash or a hang in
one is reported and the others still run. The whole check keeps to ``--budget`` seconds
(default 480): a check that no longer fits is not started and is shown as ``skipped:
budget``. Checks run in order of how much they prove, so the ones skipped first are the
repeats (compiling every preset, torchrun of every preset). ``--jobs 2`` runs two checks
at once to fit more in the budget (their rows then say they shared the machine).
``--presets``, ``--checks`` and ``--set [PRESET:]KEY=VALUE`` narrow or change the plan.
Ctrl-C stops the running check and prints the table so far. The exit code is 1 if any
check FAILED (130 if interrupted, 2 for bad arguments or no GPU), else 0. Without
``--work`` everything is written to a temporary folder, deleted when every check passed
and kept (its path printed) otherwise.

The rows (``--plan`` lists them in the order they run):

- ``environment``: torch, CUDA, the GPUs, the default precision (bf16 on GPUs that have it,
  else fp16), onnxruntime's providers.
- ``data synth`` / ``data prepare 64`` / ``data prepare 128``: a small data set drawn with
  `facegen data synth` and packed at both sizes in ``--work`` (skipped for a size given
  with ``--data64`` / ``--data128``). images/s: images written per second.
- ``train PRESET``: `facegen train --config PRESET --steps 200` for every GPU preset (ae,
  vae, aegan, dcgan, sngan at 64 and 128; the -cpu and -32 presets are for CPUs), in the
  preset's default precision. images/s: training speed from log.jsonl after the first log
  window (which holds the warm-up); peak GPU: ``torch.cuda.max_memory_allocated``.
- ``torchrun PRESET``: the same training under ``torchrun --standalone``: 2 processes with
  NCCL on 2+ GPUs (DistributedDataParallel), 1 process on one GPU. facegen turns DDP on only
  when torchrun starts several processes (WORLD_SIZE > 1), so on one GPU the row proves the
  launch, not DDP (the detail column says which), and only the first preset runs: the
  others are ``skipped: 1 GPU``. With ``--device cpu`` facegen picks gloo (it follows the
  device) and 2 processes run DDP on the CPU.
- ``eval RUN``: `facegen eval` on 2,000 generated faces with every metric, against real
  faces of the data set the check trained on (its test split if it holds 2,000 faces, else
  its train split). Below 2,048 faces FID is not comparable between runs (facegen says so);
  the row proves the path and its speed, not a score. images/s: generated faces scored per
  second, start-up and the real faces' features included. As always, eval caches the real
  faces' features beside the data set (also a ``--data64`` / ``--data128`` one).
- ``export RUN``: `facegen export` to ONNX (run back on onnxruntime's CPU provider and
  matched against PyTorch within 1e-4 before the file is written).
- ``onnxruntime CUDA RUN``: the exported file on onnxruntime's CUDA provider (onnxruntime-gpu),
  its output matched against the CPU provider's; "CUDA provider not installed" when the
  installed onnxruntime has none (not a failure). With ``--device cpu`` the CPU provider.
- ``train PRESET compiled``: the training with ``--compile`` (torch.compile; on a CPU it
  needs g++). The row fails if the run did not compile.

What "ok" proves: the command exited 0 and did what the row says (every step trained and
logged, compile or the process count really used, the export's file written and matched,
the eval's metrics written), on this machine, with these versions. It says nothing about
sample quality. FAILED shows where (the last logged training step, or the command) and the
first line of the error; the full output is in ``WORK/logs/``. With ``--tiny`` everything is
shrunk to run in a minute or two on a laptop (a few dozen faces, 8-channel models, 4
steps, eval on 16 faces; compile and torchrun for one preset): its speeds and memory mean
nothing, only that each path runs.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve()
MODELS = ("ae", "vae", "aegan", "dcgan", "sngan")
SIZES = (64, 128)
GPU_PRESETS = tuple(f"{model}-{size}" for size in SIZES for model in MODELS)
# What eval and export prefer at each size: a VAE at 64 (reconstruction metrics, an
# encoder), GANs at 128 (no encoder: the other code paths).
EVAL_PREFERRED = {64: "vae", 128: "dcgan"}
EXPORT_PREFERRED = {64: "vae", 128: "sngan"}
ONNX_TOLERANCE = 1e-2  # CUDA kernels (TF32 convolutions) against the CPU provider's float32

# --tiny: the sizes of the test suite's tiny runs (tests/conftest.py), as --set overrides.
TINY_MODEL_SETS = {
    "ae": ("model.latent_dim=16", "model.width=8"),
    "vae": ("model.latent_dim=16", "model.width=8"),
    "aegan": ("model.latent_dim=16", "model.width=8", "model.d_width=8", "model.d_layers=2"),
    "dcgan": ("model.latent_dim=16", "model.g_width=8", "model.d_width=8"),
    "sngan": ("model.latent_dim=16", "model.g_width=8", "model.d_width=8"),
}
TINY_TRAIN_SETS = ("log_every=2", "sample_count=4", "sampler_images=64", "sampler_components=3")


@dataclass(frozen=True)
class Scale:
    """How big the check is: full on a GPU, or --tiny."""

    faces: int
    identities: int
    steps: int
    batch_size: int | None  # None: the preset's
    eval_n: int
    onnx_batch: int
    estimates: dict[str, float]  # seconds a check of each kind is expected to take
    timeouts: dict[str, float]  # seconds after which it is stopped and FAILED


FULL = Scale(
    faces=2600,  # about 2,100 in the train split: 2,000 real faces for eval
    identities=100,
    steps=200,
    batch_size=None,
    eval_n=2000,
    onnx_batch=64,
    # Guesses until the first check of a kind and size has run; then what it took.
    estimates={
        "data": 15,
        "train": 20,
        "torchrun": 30,
        "compile": 60,
        "eval": 45,
        "export": 20,
        "onnx": 10,
    },
    timeouts={
        "environment": 120,
        "data": 180,
        "train": 300,
        "torchrun": 300,
        "compile": 420,
        "eval": 300,
        "export": 180,
        "onnx": 120,
    },
)
TINY = Scale(
    faces=60,
    identities=6,
    steps=4,
    batch_size=8,
    eval_n=16,
    onnx_batch=4,
    estimates={
        "data": 4,
        "train": 10,
        "torchrun": 20,
        "compile": 45,
        "eval": 25,
        "export": 12,
        "onnx": 5,
    },
    timeouts={
        "environment": 120,
        "data": 120,
        "train": 180,
        "torchrun": 240,
        "compile": 420,
        "eval": 300,
        "export": 180,
        "onnx": 120,
    },
)
KINDS = ("train", "torchrun", "eval", "export", "onnx", "compile")


@dataclass
class Check:
    """One row of the table: what it runs, and what came of it."""

    key: str  # unique, also the log file's name: "train-ae-64"
    name: str  # what the table shows: "train ae-64"
    kind: str  # environment, data, train, compile, torchrun, eval, export, onnx
    size: int | None = None
    preset: str | None = None
    needs: tuple[str, ...] = ()  # keys of checks that must be ok first
    status: str = "not run"  # ok, FAILED, skipped: ..., interrupted, CUDA provider not installed
    seconds: float | None = None
    images_per_second: float | None = None
    peak_gpu_bytes: int | None = None
    where: str = ""  # FAILED: the training step or the command
    error: str = ""  # FAILED: the first line of the error
    detail: str = ""
    beside: int = 0  # the most other checks that ran at the same time (--jobs)
    ddp_only: bool = False  # worth running only where it runs DDP (2+ GPUs, or the CPU)
    command: list[str] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.status not in ("not run", "running")


@dataclass
class Running:
    check: Check
    process: subprocess.Popen
    started: float
    limit: float  # seconds
    budget_cut: bool  # the limit is what is left of the budget, not the check's own timeout
    logs: tuple[Path, Path]


class GpuCheck:
    """Plans the checks, runs them as subprocesses within the budget, and keeps the table."""

    def __init__(self, args: argparse.Namespace, *, dry: bool = False) -> None:
        self.args = args
        self.scale = TINY if args.tiny else FULL
        self.steps = args.steps or self.scale.steps
        self.eval_n = args.eval_n or self.scale.eval_n
        self.device = args.device
        self.started = time.monotonic()
        self.temporary = args.work is None
        if dry:
            self.work = Path(args.work or "WORK").resolve()
        else:
            self.work = Path(args.work or tempfile.mkdtemp(prefix="facegen-gpu-check-")).resolve()
        self.logs = self.work / "logs"
        if not dry:
            self.logs.mkdir(parents=True, exist_ok=True)
        self.environment: dict[str, Any] = {}
        self.notes: list[str] = []
        self.measured: dict[tuple[str, int | None], float] = {}
        self.data = {64: args.data64, 128: args.data128}
        self.sets = _parse_sets(args.set)
        self.checks = self.plan()

    # -------------------------------------------------------------------------- the plan

    def plan(self) -> list[Check]:
        presets = self.args.presets
        kinds = set(self.args.checks)
        tiny = self.args.tiny
        sizes = sorted({_preset_size(p) for p in presets})
        checks = [Check("environment", "environment", "environment")]
        data_key = {}
        if any(self.data.get(size) is None for size in sizes):
            checks.append(
                Check(
                    "data-synth",
                    f"data synth {self.scale.faces:,} faces",
                    "data",
                    needs=("environment",),
                )
            )
        for size in sizes:
            given = self.data.get(size)
            key = f"data-{size}"
            name = f"data {size} (given)" if given else f"data prepare {size}"
            needs = ("environment",) if given else ("environment", "data-synth")
            checks.append(Check(key, name, "data", size=size, needs=needs))
            data_key[size] = key

        def train(preset: str, kind: str) -> Check:
            size = _preset_size(preset)
            name = {"train": f"train {preset}", "compile": f"train {preset} compiled"}.get(
                kind, f"torchrun {preset}"
            )
            return Check(f"{kind}-{preset}", name, kind, size, preset, needs=(data_key[size],))

        def preferred(size: int, model: str) -> str | None:
            at_size = [p for p in presets if _preset_size(p) == size]
            if not at_size:
                return None
            return f"{model}-{size}" if f"{model}-{size}" in at_size else at_size[0]

        def evaluation(preset: str) -> Check:
            return Check(
                f"eval-{preset}",
                f"eval {preset} n={self.eval_n:,}",
                "eval",
                _preset_size(preset),
                preset,
                needs=(f"train-{preset}",),
            )

        def export(preset: str) -> list[Check]:
            provider = "CUDA" if self.device == "cuda" else "CPU"
            size = _preset_size(preset)
            rows = []
            if "export" in kinds:
                rows.append(
                    Check(
                        f"export-{preset}",
                        f"export {preset} onnx",
                        "export",
                        size,
                        preset,
                        needs=(f"train-{preset}",),
                    )
                )
            if "onnx" in kinds:
                rows.append(
                    Check(
                        f"onnx-{preset}",
                        f"onnxruntime {provider} {preset}",
                        "onnx",
                        size,
                        preset,
                        needs=(f"export-{preset}",),
                    )
                )
            return rows

        first, rest = presets[:1], presets[1:]
        later: list[Check] = []
        if "train" in kinds:
            checks += [train(p, "train") for p in presets]
        if "torchrun" in kinds:
            checks += [train(p, "torchrun") for p in first]
            if not tiny:
                later += [train(p, "torchrun") for p in rest]
                for check in later:
                    check.ddp_only = True
        small = preferred(sizes[0], EVAL_PREFERRED[sizes[0]])
        if "eval" in kinds and small:
            checks.append(evaluation(small))
        if {"export", "onnx"} & kinds:
            for size in sizes if not tiny else sizes[:1]:
                if target := preferred(size, EXPORT_PREFERRED[size]):
                    checks += export(target)
        if "compile" in kinds:
            checks += [train(p, "compile") for p in (first if tiny else presets)]
        checks += later
        large = preferred(sizes[-1], EVAL_PREFERRED[sizes[-1]]) if len(sizes) > 1 else None
        if "eval" in kinds and not tiny and large:
            checks.append(evaluation(large))
        return checks

    # ---------------------------------------------------------------------- running them

    def remaining(self) -> float:
        return self.args.budget - (time.monotonic() - self.started)

    def estimate(self, check: Check) -> float:
        if check.kind == "environment":
            return 0.0
        guess = self.scale.estimates[check.kind]
        return self.measured.get((check.kind, check.size), guess)

    def run(self) -> int:
        """Run every check; returns the exit code. Ctrl-C stops what runs and returns 130."""
        running: list[Running] = []
        interrupted = False
        try:
            pending = list(self.checks)
            while pending or running:
                for job in list(running):
                    if self._poll(job):
                        running.remove(job)
                        self.report_progress(job.check)
                while pending and len(running) < self.args.jobs:
                    check = next((c for c in pending if self._ready(c)), None)
                    if check is None:
                        break
                    pending.remove(check)
                    if job := self._start(check):
                        running.append(job)
                    else:
                        self.report_progress(check)
                for job in running:  # how many others it shared the machine with
                    job.check.beside = max(job.check.beside, len(running) - 1)
                if running:
                    time.sleep(0.1)
        except KeyboardInterrupt:
            interrupted = True
            for job in running:
                _stop(job.process)
                job.check.status = "interrupted"
                job.check.seconds = time.monotonic() - job.started
            print("\ninterrupted: the running check was stopped", flush=True)
        return self.finish(interrupted)

    def _ready(self, check: Check) -> bool:
        by_key = {c.key: c for c in self.checks}
        return all(by_key[key].finished for key in check.needs if key in by_key)

    def _start(self, check: Check) -> Running | None:
        """Start ``check``, or settle it at once (a dependency failed, no budget left)."""
        by_key = {c.key: c for c in self.checks}
        missing = [key for key in check.needs if key not in by_key]
        if missing:
            check.status = f"skipped: needs {missing[0]}, which --checks left out"
            return None
        failed = [by_key[key] for key in check.needs if by_key[key].status != "ok"]
        if failed:
            budget = failed[0].status == "skipped: budget"  # skipped for the same reason
            check.status = "skipped: budget" if budget else f"skipped: needs {failed[0].name}"
            return None
        if check.kind == "data" and self.data.get(check.size):
            self._given_data(check)
            return None
        if check.ddp_only and self.processes() == 1:
            check.status = "skipped: 1 GPU"
            check.detail = "one process would repeat the train row; with 2+ GPUs it runs DDP"
            return None
        remaining = self.remaining()
        if self.estimate(check) > remaining or remaining < 1:
            check.status = "skipped: budget"
            return None
        try:
            check.command = self.command(check)
        except Exception as error:  # e.g. a given data set that cannot be opened
            self._fail(check, f"{type(error).__name__}: {error}")
            return None
        timeout = self.scale.timeouts[check.kind]
        out = self.logs / f"{check.key}.out"
        err = self.logs / f"{check.key}.err"
        self._clean_results(check)
        with open(out, "wb") as stdout, open(err, "wb") as stderr:
            # A session of its own: Ctrl-C reaches this script only, which then stops the
            # whole group (torchrun and its workers too).
            process = subprocess.Popen(
                check.command,
                stdout=stdout,
                stderr=stderr,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        check.status = "running"
        print(f"[{self.elapsed():5.0f}s] {check.name} ...", flush=True)
        return Running(
            check,
            process,
            time.monotonic(),
            min(timeout, remaining),
            remaining < timeout,
            (out, err),
        )

    def _poll(self, job: Running) -> bool:
        """Settle ``job`` if it ended or ran out of time; True once it is settled."""
        seconds = time.monotonic() - job.started
        returncode = job.process.poll()
        if returncode is None and seconds < job.limit:
            return False
        check = job.check
        check.seconds = seconds
        out, err = (path.read_text(encoding="utf-8", errors="replace") for path in job.logs)
        if returncode is None:
            _stop(job.process)
            if job.budget_cut:
                check.status = "skipped: budget"
                check.detail = f"stopped after {seconds:.0f} s: the budget ran out"
            else:
                self._fail(check, f"timed out after {seconds:.0f} s (its limit)")
            return True
        check.peak_gpu_bytes = self._peak(check)
        if returncode != 0:
            self._fail(check, first_error_line(err + "\n" + out, returncode))
            return True
        try:
            self.settle(check, out)
        except CheckFailed as error:
            self._fail(check, str(error))
        except Exception as error:  # what it left behind is not what facegen writes
            self._fail(check, f"its results could not be read: {type(error).__name__}: {error}")
        if check.status == "ok":
            key = (check.kind, check.size)
            self.measured[key] = max(self.measured.get(key, 0.0), seconds)
        return True

    def _fail(self, check: Check, error: str) -> None:
        check.status = "FAILED"
        check.error = error
        check.where = self._where(check)

    def _where(self, check: Check) -> str:
        """Where a check failed: the last training step it logged, or its command."""
        if check.kind in ("train", "compile", "torchrun"):
            records = _log_records(self.run_folder(check))
            return f"step {records[-1]['step']}" if records else "start-up (no step logged)"
        return {
            "environment": "torch",
            "data": "facegen data",
            "eval": "facegen eval",
            "export": "facegen export",
            "onnx": "onnxruntime",
        }[check.kind]

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def report_progress(self, check: Check) -> None:
        took = f" ({check.seconds:.1f} s)" if check.seconds is not None else ""
        status = check.status if check.status != "FAILED" else f"FAILED: {check.error}"
        print(f"[{self.elapsed():5.0f}s] {check.name}: {status}{took}", flush=True)

    # -------------------------------------------------------------------------- commands

    def run_folder(self, check: Check) -> Path:
        suffix = {"compile": "-compiled", "torchrun": "-torchrun"}.get(check.kind, "")
        return self.work / "runs" / f"{check.preset}{suffix}"

    def data_path(self, size: int) -> Path:
        given = self.data.get(size)
        return Path(given).resolve() if given else self.work / f"data-{size}"

    def peak_file(self, check: Check) -> Path:
        return self.logs / f"{check.key}.peak"

    def command(self, check: Check) -> list[str]:
        python = sys.executable
        facegen = [python, str(SCRIPT), "_facegen", str(self.peak_file(check))]
        scale = self.scale
        if check.kind == "environment":
            return [python, str(SCRIPT), "_probe", str(self.logs / "environment.json"), self.device]
        if check.kind == "data" and check.size is None:
            return [
                *facegen,
                "data",
                "synth",
                str(self.work / "synth"),
                *("--n", str(scale.faces), "--identities", str(scale.identities)),
                *("--seed", "0", "--overwrite", "--quiet"),
            ]
        if check.kind == "data":
            return [
                *facegen,
                *("data", "prepare", str(self.work / "synth"), str(self.data_path(check.size))),
                *("--size", str(check.size), "--overwrite", "--quiet"),
            ]
        if check.kind in ("train", "compile", "torchrun"):
            train = self.train_arguments(check)
            if check.kind != "torchrun":
                return [*facegen, *train]
            launcher = [python, "-m", "torch.distributed.run", "--standalone"]
            return [*launcher, f"--nproc_per_node={self.processes()}", *facegen[1:], *train]
        run = self.work / "runs" / str(check.preset)
        if check.kind == "eval":
            split = self.eval_split(check.size)
            return [
                *facegen,
                *("eval", str(run), "--n", str(self.eval_n), "--split", split),
                *("--device", self.device, "--quiet"),
            ]
        if check.kind == "export":
            return [*facegen, "export", str(run), "--out", str(self.onnx_file(check))]
        provider = "CUDAExecutionProvider" if self.device == "cuda" else "CPUExecutionProvider"
        return [
            *(python, str(SCRIPT), "_onnx", str(self.onnx_file(check)), provider),
            *(str(self.logs / f"{check.key}.json"), str(scale.onnx_batch)),
        ]

    def train_arguments(self, check: Check) -> list[str]:
        preset = str(check.preset)
        arguments = [
            *("train", "--config", preset, "--data", str(self.data_path(int(check.size or 0)))),
            *("--out", str(self.run_folder(check)), "--steps", str(self.steps)),
            *("--device", self.device, "--quiet", "--overwrite"),
        ]
        if check.kind == "compile":
            arguments.append("--compile")
        if self.scale.batch_size:
            arguments += ["--batch-size", str(self.scale.batch_size)]
        sets: list[str] = []
        if self.args.tiny:
            sets += [*TINY_MODEL_SETS[_preset_model(preset)], *TINY_TRAIN_SETS]
        sets += [value for target, value in self.sets if target in (None, preset)]
        for value in sets:
            arguments += ["--set", value]
        return arguments

    def processes(self) -> int:
        if self.device == "cpu":
            return 2
        return max(1, min(2, int(self.environment.get("gpus", 1))))

    def eval_split(self, size: int | None) -> str:
        """The test split where it holds ``eval_n`` faces (real CelebA), else the train split
        (the small synthetic set: its test split has a few hundred)."""
        from facegen.data.packed import open_packed

        data = open_packed(self.data_path(int(size or 0)))
        return "test" if len(data.split_indices("test")) >= self.eval_n else "train"

    def onnx_file(self, check: Check) -> Path:
        return self.work / "runs" / str(check.preset) / "export" / "generator.onnx"

    def _clean_results(self, check: Check) -> None:
        for path in self.logs.glob(f"{check.key}.peak*"):
            path.unlink()
        (self.logs / f"{check.key}.json").unlink(missing_ok=True)

    def _peak(self, check: Check) -> int | None:
        """The largest ``torch.cuda.max_memory_allocated`` any of its processes reported."""
        peaks = []
        for path in self.logs.glob(f"{check.key}.peak*"):
            with contextlib.suppress(ValueError, OSError):
                value = json.loads(path.read_text(encoding="utf-8")).get("peak_bytes")
                if value is not None:
                    peaks.append(int(value))
        return max(peaks) if peaks else None

    # ------------------------------------------------------------ what each result means

    def settle(self, check: Check, stdout: str) -> None:
        """Read what a check that exited 0 left behind; raise CheckFailed if it is not what
        the row claims. It is ok unless it settled on a status of its own."""
        getattr(self, f"_settle_{check.kind}")(check, stdout)
        if check.status == "running":
            check.status = "ok"

    def _settle_environment(self, check: Check, stdout: str) -> None:
        info = json.loads((self.logs / "environment.json").read_text(encoding="utf-8"))
        self.environment = info
        if info.get("problem"):
            raise CheckFailed(info["problem"])
        check.detail = info["summary"]

    def _given_data(self, check: Check) -> None:
        from facegen.data.packed import open_packed
        from facegen.errors import FacegenError

        path = self.data_path(int(check.size or 0))
        try:
            data = open_packed(path)
        except FacegenError as error:
            check.status, check.where, check.error = "FAILED", "facegen data", str(error)
            return
        if data.size != check.size:
            check.status, check.where = "FAILED", "facegen data"
            check.error = f"{path} holds {data.size}x{data.size} images, not {check.size}"
            return
        check.status = "ok"
        check.detail = f"{path}: {len(data):,} images"

    def _settle_data(self, check: Check, stdout: str) -> None:
        seconds = check.seconds or 1.0
        if check.size is None:
            check.images_per_second = self.scale.faces / seconds
            check.detail = f"{self.scale.identities} identities, CelebA's layout"
            return
        from facegen.data.packed import open_packed

        data = open_packed(self.data_path(check.size))
        check.images_per_second = len(data) / seconds
        splits = ", ".join(f"{k} {v:,}" for k, v in data.manifest.get("splits", {}).items())
        check.detail = f"{len(data):,} images ({splits})"

    def _settle_train(self, check: Check, stdout: str) -> None:
        run = self.run_folder(check)
        records = _log_records(run)
        summary = json.loads((run / "config.json").read_text(encoding="utf-8"))
        last = records[-1]["step"] if records else 0
        if last != self.steps:
            raise CheckFailed(f"the run ended at step {last}, not {self.steps}")
        check.images_per_second = steady_images_per_second(records)
        world = int(summary.get("world_size", 1))
        parts = [str(summary.get("precision")), f"batch {summary['train']['batch_size']}"]
        if check.kind == "compile":
            if not summary.get("compiled"):
                raise CheckFailed("the run trained without torch.compile (see its log)")
            parts.append("torch.compile")
        if check.kind == "torchrun":
            expected = self.processes()
            if world != expected:
                raise CheckFailed(f"world size {world}, not the {expected} processes started")
            if world > 1:
                backend = "NCCL" if self.device == "cuda" else "gloo"
                parts.append(f"DDP over {world} processes, {backend}")
            else:
                parts.append("1 process: no DDP (facegen uses it when WORLD_SIZE > 1)")
        check.detail = ", ".join(parts)

    _settle_compile = _settle_train
    _settle_torchrun = _settle_train

    def _settle_eval(self, check: Check, stdout: str) -> None:
        records = _metrics_records(self.work / "runs" / str(check.preset))
        by_metric = {record["metric"]: record for record in records}
        if "fid" not in by_metric or "kid" not in by_metric:
            raise CheckFailed("no fid and kid lines were written to metrics.jsonl")
        fid, kid = by_metric["fid"], by_metric["kid"]
        protocol = fid.get("protocol", {})
        if protocol.get("n_gen") != self.eval_n:
            raise CheckFailed(f"scored {protocol.get('n_gen')} faces, not {self.eval_n}")
        check.images_per_second = self.eval_n / (check.seconds or 1.0)
        comparable = "" if fid.get("ranks", True) else " (not comparable)"
        check.detail = (
            f"fid {fid['value']:.1f}{comparable}, kid {kid['value']:.4f}, "
            f"{len(records)} metrics, {protocol.get('n_real')} real faces of "
            f"{protocol.get('split')}"
        )
        if fid.get("ranks") is False and fid.get("reason"):
            self._note(f"eval: FID {fid['reason']}")

    def _settle_export(self, check: Check, stdout: str) -> None:
        path = self.onnx_file(check)
        if not path.is_file():
            raise CheckFailed(f"facegen export exited 0 but wrote no {path.name}")
        matched = next((line for line in stdout.splitlines() if "matches PyTorch" in line), "")
        difference = matched.rsplit("difference", 1)[-1].strip() if matched else "?"
        check.detail = f"{path.stat().st_size / 1e6:.1f} MB, max abs difference {difference}"

    def _settle_onnx(self, check: Check, stdout: str) -> None:
        result = json.loads((self.logs / f"{check.key}.json").read_text(encoding="utf-8"))
        if result.get("missing"):
            check.detail = f"onnxruntime {result['onnxruntime']}: {', '.join(result['available'])}"
            check.status = "CUDA provider not installed"
            return
        check.images_per_second = result["images_per_second"]
        check.detail = (
            f"batch {result['batch']}, max abs difference from the CPU provider "
            f"{result['max_abs_diff']:.2g}"
        )

    def _note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    # ----------------------------------------------------------------------- the outcome

    def finish(self, interrupted: bool) -> int:
        for check in self.checks:
            if not check.finished:
                check.status = "not run: interrupted" if interrupted else "skipped: budget"
        failed = [c for c in self.checks if c.status == "FAILED"]
        ran = any(c.kind == "torchrun" and c.status == "ok" for c in self.checks)
        if self.device == "cpu" and ran:
            self._note(
                "torchrun with --device cpu: facegen picks gloo when the device is the CPU "
                "(NCCL needs GPUs); on a GPU the same rows run NCCL"
            )
        if self.device == "cuda" and ran and self.processes() == 1:
            self._note(
                "one GPU: torchrun ran 1 process, and facegen wraps DDP (and starts NCCL) "
                "only when WORLD_SIZE > 1, so the torchrun rows prove the launch, not DDP"
            )
        if self.args.tiny:
            self._note(
                f"--tiny: 8-channel models, {self.steps} steps, eval on {self.eval_n} faces: "
                "the rows prove that each path runs; their speeds, memory and scores mean "
                "nothing (FID is not comparable below 2,048 faces)"
            )
        if self.args.jobs > 1:
            self._note(f"up to {self.args.jobs} checks ran at once: images/s are contended")
        print()
        print(format_table(self.checks, self.notes))
        seconds = self.elapsed()
        print(
            f"{len(self.checks)} checks in {seconds:.0f} s (budget {self.args.budget:.0f} s): "
            f"{sum(c.status == 'ok' for c in self.checks)} ok, {len(failed)} FAILED"
        )
        if self.args.json:
            from facegen.files import write_json

            write_json(
                self.args.json,
                {
                    "device": self.device,
                    "environment": self.environment,
                    "tiny": self.args.tiny,
                    "steps": self.steps,
                    "eval_n": self.eval_n,
                    "budget_s": self.args.budget,
                    "seconds": round(seconds, 1),
                    "interrupted": interrupted,
                    "failed": len(failed),
                    "checks": [_row(check) for check in self.checks],
                    "notes": self.notes,
                },
            )
            print(f"wrote {self.args.json}")
        if self.temporary and not failed and not interrupted:
            shutil.rmtree(self.work, ignore_errors=True)
        else:
            print(f"runs and logs: {self.work} (logs/CHECK.err holds each check's errors)")
        if interrupted:
            return 130
        return 1 if failed else 0


class CheckFailed(Exception):
    """A check exited 0 but did not do what its row claims."""


# ------------------------------------------------------------------------------- helpers


def _preset_size(preset: str) -> int:
    return int(preset.rsplit("-", 1)[1])


def _preset_model(preset: str) -> str:
    from facegen.config import read_preset

    return str(read_preset(preset).get("model", preset.rsplit("-", 1)[0]))


def _parse_sets(values: Sequence[str]) -> list[tuple[str | None, str]]:
    """``--set [PRESET:]KEY=VALUE``: (PRESET or None for every preset, KEY=VALUE)."""
    parsed = []
    for value in values:
        target, _, rest = value.partition(":")
        if rest and "=" not in target:
            parsed.append((target, rest))
        else:
            parsed.append((None, value))
    return parsed


def _log_records(run: Path) -> list[dict]:
    from facegen.files import json_lines

    return [record for _, record in json_lines(run / "log.jsonl")[0] if "step" in record]


def _metrics_records(run: Path) -> list[dict]:
    from facegen.files import json_lines

    return [record for _, record in json_lines(run / "metrics.jsonl")[0]]


def steady_images_per_second(records: list[dict]) -> float | None:
    """Training images/s over the log windows after the first (the warm-up and compiling
    fall in it): total images over total time, each window weighted by its steps."""
    rows = [(r["step"], r["images_per_second"]) for r in records if r.get("images_per_second")]
    if not rows:
        return None
    windows = [(step - before, rate) for (before, _), (step, rate) in itertools.pairwise(rows)]
    if not windows:
        return float(rows[0][1])
    steps = sum(count for count, _ in windows)
    return steps / sum(count / rate for count, rate in windows)


def first_error_line(text: str, returncode: int) -> str:
    """The line that says what went wrong: facegen's one-line error, else the exception of
    the first traceback (a chained or torchrun-wrapped error comes after its cause), else
    the last line written, else how the process ended."""
    lines = [line.rstrip() for line in text.splitlines()]
    for line in lines:
        if re.match(r"^[\w .-]+: error: ", line):
            return line.strip()
    if "Traceback (most recent call last):" in lines:
        start = lines.index("Traceback (most recent call last):") + 1
        for line in lines[start:]:
            if line and not line.startswith((" ", "\t")):
                return line.strip()
    if returncode < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-returncode).name}"
    written = [line.strip() for line in lines if line.strip()]
    return written[-1] if written else f"exit code {returncode}"


def _stop(process: subprocess.Popen) -> None:
    """End a check's process group (it runs in a session of its own): SIGTERM, then SIGKILL
    after 5 s; then any process it started in a session of its own (torchrun's workers)
    that is still there."""
    family = _descendants(process.pid)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=5.0)
            break
        except subprocess.TimeoutExpired:
            continue
    for pid in family:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def _descendants(pid: int) -> list[int]:
    """The processes below ``pid``, from /proc (none where there is no /proc)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, queue = [], [pid]
    while queue:
        for child in parents.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


def _row(check: Check) -> dict[str, Any]:
    row = asdict(check)
    if row["seconds"] is not None:
        row["seconds"] = round(row["seconds"], 2)
    if row["images_per_second"] is not None:
        row["images_per_second"] = round(row["images_per_second"], 1)
    return row


def _bytes(value: int | None) -> str:
    if value is None:
        return "-"
    if value >= 2**30:
        return f"{value / 2**30:.2f} GiB"
    return f"{value / 2**20:.0f} MiB"


def status_text(check: Check, width: int = 160) -> str:
    """The table's last column: the status, then the detail or where and why it failed."""
    if check.status == "FAILED":
        text = f"FAILED at {check.where}: {check.error}"
    else:
        text = check.status + (f"  {check.detail}" if check.detail else "")
        if check.beside:
            text += f" (beside {check.beside} other check{'s' * (check.beside > 1)})"
    return text if len(text) <= width else text[: width - 3] + "..."


def format_plan(check: GpuCheck) -> str:
    """What ``--plan`` prints: the checks in the order they run, with the seconds each is
    expected to take (a guess until one of its kind has run) and its timeout."""
    width = max(len(c.name) for c in check.checks)
    lines = [f"{'check':<{width}}  {'expected':>8}  {'timeout':>7}  needs"]
    total = 0.0
    for c in check.checks:
        expected = check.estimate(c)
        total += expected
        timeout = check.scale.timeouts[c.kind]
        needs = ", ".join(c.needs) + ("; runs only with 2+ GPUs" if c.ddp_only else "")
        lines.append(f"{c.name:<{width}}  {expected:>7.0f}s  {timeout:>6.0f}s  {needs}")
    lines.append(
        f"{len(check.checks)} checks, about {total:.0f} s one at a time against a budget of "
        f"{check.args.budget:.0f} s: the last ones are skipped if it runs out"
    )
    return "\n".join(lines)


def format_table(checks: Sequence[Check], notes: Sequence[str] = ()) -> str:
    name_width = max(len("check"), *(len(check.name) for check in checks))
    header = f"{'check':<{name_width}}  {'images/s':>9}  {'peak GPU':>9}  {'time':>7}  status"
    lines = [header, "-" * len(header)]
    for check in checks:
        rate = f"{check.images_per_second:.1f}" if check.images_per_second else "-"
        took = f"{check.seconds:.1f}s" if check.seconds is not None else "-"
        lines.append(
            f"{check.name:<{name_width}}  {rate:>9}  {_bytes(check.peak_gpu_bytes):>9}  "
            f"{took:>7}  {status_text(check)}"
        )
    lines += [f"note: {note}" for note in notes]
    return "\n".join(lines)


# ---------------------------------------------------------------------- the subprocesses


def _child_facegen(argv: list[str]) -> int:
    """``_facegen PEAK ARGS...``: `facegen ARGS...`, then the peak GPU memory this process
    allocated written to PEAK (one file per torchrun rank)."""
    peak, arguments = argv[0], argv[1:]
    from facegen.cli import main

    try:
        return main(arguments)
    finally:
        torch = sys.modules.get("torch")
        value = None
        if torch is not None and torch.cuda.is_initialized():
            value = int(torch.cuda.max_memory_allocated(torch.cuda.current_device()))
        rank = os.environ.get("RANK", "0")
        Path(f"{peak}.rank{rank}").write_text(json.dumps({"peak_bytes": value}) + "\n")


def _child_probe(argv: list[str]) -> int:
    """``_probe OUT DEVICE``: what this machine offers facegen, as JSON in OUT."""
    out, device_name = argv
    import torch

    from facegen.training.machine import compile_unavailable, resolve_precision

    info: dict[str, Any] = {"torch": torch.__version__, "cuda": torch.version.cuda}
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
        info["onnx_providers"] = onnxruntime.get_available_providers()
    except ImportError:
        info["onnxruntime"] = None
    if device_name == "cuda":
        if not torch.cuda.is_available():
            info["problem"] = (
                f"no CUDA GPU is visible to torch {torch.__version__} (a CPU build, or no "
                "driver): run it on a GPU machine, or try it with --device cpu --tiny"
            )
        else:
            names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
            info["gpus"] = len(names)
            info["gpu_names"] = names
            device = torch.device("cuda", 0)
            info["precision"] = resolve_precision("auto", device)
            info["summary"] = (
                f"torch {torch.__version__}, CUDA {torch.version.cuda}, {len(names)} x "
                f"{names[0]}, default precision {info['precision']}"
            )
    else:
        device = torch.device("cpu")
        info["gpus"] = 0
        info["precision"] = resolve_precision("auto", device)
        info["compile"] = compile_unavailable(device) or "available"
        info["summary"] = (
            f"torch {torch.__version__}, CPU ({os.cpu_count()} cores), default precision "
            f"{info['precision']}, torch.compile: {info['compile']}"
        )
    if "summary" in info:
        providers = info.get("onnx_providers")
        info["summary"] += (
            f", onnxruntime {info['onnxruntime']} ({', '.join(providers)})"
            if providers
            else ", no onnxruntime"
        )
    Path(out).write_text(json.dumps(info, indent=2) + "\n")
    return 0


def _child_onnx(argv: list[str]) -> int:
    """``_onnx FILE PROVIDER OUT BATCH``: run an exported generator on an onnxruntime
    provider, time it and match it against the CPU provider; JSON in OUT."""
    path, provider, out, batch_text = argv
    batch = int(batch_text)
    import numpy as np
    import onnxruntime

    result: dict[str, Any] = {
        "onnxruntime": onnxruntime.__version__,
        "available": onnxruntime.get_available_providers(),
        "provider": provider,
        "batch": batch,
    }
    if provider not in result["available"]:
        result["missing"] = True
        Path(out).write_text(json.dumps(result) + "\n")
        return 0
    if provider == "CUDAExecutionProvider" and hasattr(onnxruntime, "preload_dlls"):
        onnxruntime.preload_dlls()  # CUDA and cuDNN from the pip packages torch brought
    session = onnxruntime.InferenceSession(path, providers=[provider])
    used = session.get_providers()[0]
    if used != provider:
        print(
            f"gpu_check: error: onnxruntime did not start {provider} and fell back to {used} "
            "(its warnings above say why: usually CUDA or cuDNN libraries it cannot find)",
            file=sys.stderr,
        )
        return 1
    name = session.get_inputs()[0].name
    latent_dim = session.get_inputs()[0].shape[1]
    z = np.random.default_rng(0).standard_normal((batch, latent_dim), dtype=np.float32)
    for _ in range(3):  # the provider builds its kernels on the first calls
        images = session.run(None, {name: z})[0]
    runs, began = 0, time.perf_counter()
    while runs < 5 or (time.perf_counter() - began < 1.0 and runs < 200):
        images = session.run(None, {name: z})[0]
        runs += 1
    result["images_per_second"] = runs * batch / (time.perf_counter() - began)
    reference = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    difference = float(np.abs(images - reference.run(None, {name: z})[0]).max())
    result["max_abs_diff"] = difference
    if not difference <= ONNX_TOLERANCE:
        print(
            f"gpu_check: error: {provider} differs from the CPU provider by {difference:.3g} "
            f"(limit {ONNX_TOLERANCE:g})",
            file=sys.stderr,
        )
        return 1
    Path(out).write_text(json.dumps(result) + "\n")
    return 0


CHILDREN = {"_facegen": _child_facegen, "_probe": _child_probe, "_onnx": _child_onnx}


# ------------------------------------------------------------------------------- the CLI


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gpu_check.py",
        description="Run every facegen GPU path once (train every GPU preset, compiled and "
        "under torchrun, eval, ONNX export) and print one table. See the module docstring.",
    )
    parser.add_argument(
        "--device",
        choices=("cuda", "cpu"),
        default="cuda",
        help="cuda (default), or cpu to try the check anywhere (with --tiny)",
    )
    parser.add_argument(
        "--tiny", action="store_true", help="shrink everything: it proves the paths, not speed"
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=480.0,
        metavar="SECONDS",
        help="total seconds; checks that no longer fit are skipped (default 480)",
    )
    parser.add_argument("--work", metavar="DIR", help="data, runs and logs (default: a temp dir)")
    parser.add_argument("--data64", metavar="DATA", help="a packed 64x64 data set to use")
    parser.add_argument("--data128", metavar="DATA", help="a packed 128x128 data set to use")
    parser.add_argument("--json", metavar="PATH", help="also write the table as JSON")
    parser.add_argument(
        "--presets",
        type=_preset_list,
        default=list(GPU_PRESETS),
        metavar="LIST",
        help=f"comma-separated presets (default all {len(GPU_PRESETS)} GPU presets)",
    )
    parser.add_argument(
        "--checks",
        type=_kind_list,
        default=list(KINDS),
        metavar="LIST",
        help=f"comma-separated kinds of check (default {','.join(KINDS)})",
    )
    parser.add_argument("--steps", type=int, metavar="N", help="training steps (default 200)")
    parser.add_argument("--eval-n", type=int, metavar="N", help="faces eval scores (2000)")
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="K",
        help="checks run at once (default 1; more fits more in the budget, but contends)",
    )
    parser.add_argument(
        "--plan", action="store_true", help="print the checks in order and run nothing"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="[PRESET:]KEY=VALUE",
        help="an extra facegen train --set, for every preset or for PRESET only",
    )
    return parser


def _names(text: str, known: Sequence[str], what: str) -> list[str]:
    """A comma-separated list of names, each one of ``known``; argparse's error otherwise."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"{what} {', '.join(unknown) or text!r}; choose from {', '.join(known)}"
        )
    return names


def _preset_list(text: str) -> list[str]:
    return _names(text, GPU_PRESETS, "not a GPU preset:")


def _kind_list(text: str) -> list[str]:
    return _names(text, KINDS, "unknown check")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in CHILDREN:
        return CHILDREN[argv[0]](argv[1:])
    args = build_parser().parse_args(argv)
    if args.jobs < 1 or args.budget <= 0:
        build_parser().error("--jobs and --budget must be positive")

    def terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    unknown = sorted({t for t, _ in _parse_sets(args.set) if t is not None} - set(args.presets))
    if unknown:
        build_parser().error(f"--set for {unknown[0]}, which is not among --presets")
    if args.plan:
        print(format_plan(GpuCheck(args, dry=True)))
        return 0
    signal.signal(signal.SIGTERM, terminate)  # a killed check run reports like Ctrl-C
    check = GpuCheck(args)
    code = check.run()
    environment = check.checks[0]
    if environment.status == "FAILED" and "no CUDA GPU" in environment.error:
        print(f"gpu_check: error: {environment.error}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    raise SystemExit(main())
