"""`facegen train`: one plain function that runs any registered model to a run folder.

The loop is the same for every model; what a step does lives in its objective. Only rank 0
writes. Every file is written atomically; Ctrl-C or SIGTERM (what ``timeout``, SLURM,
Kubernetes and systemd send) finishes the current step on every rank, saves and exits (130,
143); a NaN, inf or exploding loss stops the run naming the step, keeping the last good
checkpoint.
A resumed run continues exactly: the data order is a function of (seed, epoch), the noise of
each step a function of (seed, rank, step), and the rest comes back from the checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from facegen._version import __version__
from facegen.batches import map_batches
from facegen.config import TrainConfig, format_duration, resolve_for_run
from facegen.data.loader import BatchLoader, LoaderOptions, load_images, to_uint8
from facegen.data.packed import PackedDataset, open_packed
from facegen.devices import resolve_device
from facegen.errors import FacegenError, first_line
from facegen.files import json_lines, write_json, write_text
from facegen.models import build_model, save_model
from facegen.models.base import FaceModel
from facegen.progress import progress_bar
from facegen.run import (
    LOG_FILE,
    LOSS_PLOT,
    MODEL_FOLDER,
    RUN_CONFIG,
    in_batches,
    preferred_fitted_sampler,
    read_run_config,
    sample_grid_path,
)
from facegen.sampling import SAMPLERS, LatentSampler, save_sampler
from facegen.tracking import Tracker, check_tracker, open_tracker
from facegen.training.checkpoint import list_checkpoints, load_training_state, save_training_state
from facegen.training.failures import (  # noqa: F401 (TrainingError: re-exported)
    TrainingError,
    bad_losses,
    loss_went_bad,
)
from facegen.training.machine import (
    Distributed,
    Precision,
    compile_unavailable,
    init_distributed,
    resolve_precision,
    shutdown_distributed,
)
from facegen.training.objectives import OBJECTIVES, Objective
from facegen.viz.grid import image_grid, paired_rows, save_png
from facegen.viz.plots import plot_losses

if TYPE_CHECKING:
    from tqdm import tqdm

RECONSTRUCTION_COUNT = 32
# Training images encoded at once to fit the samplers at the end of a run.
SAMPLER_FIT_BATCH = 256


@dataclass
class TrainResult:
    run: Path
    model: FaceModel  # the inference model (the EMA where used), ready to sample
    step: int
    total_steps: int | None  # None: only the time budget bounded the run
    interrupted: bool
    seconds: float
    precision: str
    device: str
    rank: int = 0  # under torchrun, only rank 0 should report
    time_budget_spent: bool = False  # it ended because --time-budget ran out
    stop_signal: int | None = None  # what stopped an interrupted run: SIGINT, SIGTERM

    @property
    def exit_code(self) -> int:
        """The process status this run ends with: 0, or for a run a signal stopped (and
        saved) the conventional 128 + its number: 130 for Ctrl-C, 143 for SIGTERM."""
        if not self.interrupted:
            return 0
        return 128 + (self.stop_signal or signal.SIGINT)


def model_config_for(config: TrainConfig, data: PackedDataset) -> dict[str, Any]:
    values = dict(config.model_config)
    size = values.setdefault("image_size", data.size)
    if size != data.size:
        raise FacegenError(
            f"the model is set for {size}x{size} images but {data.path} holds "
            f"{data.size}x{data.size}: pick a preset for {data.size} (e.g. "
            f"--config {config.model}-{data.size}) or pack the data at {size}"
        )
    return values


def train(
    config: TrainConfig,
    out: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> TrainResult:
    """Train ``config.model`` on ``config.data`` into the run folder ``out``.

    >>> train(TrainConfig(model="vae", data="data/synth-64", steps=2000), "runs/vae")
    """
    out = Path(out)
    if resume and not out.exists():
        raise FacegenError(f"cannot resume: {out} does not exist")
    if not resume and out.exists() and any(out.iterdir()) and not overwrite:
        raise FacegenError(
            f"{out} already exists; pass --resume to continue it or --overwrite to start again"
        )
    config = resolve_for_run(config, out, resume=resume)
    config.validate()
    if not config.data:
        raise FacegenError("no data set: pass --data (a folder made by facegen data prepare)")
    check_tracker(config.log)  # on every rank, before anything starts
    device = resolve_device(config.device)
    distributed = init_distributed(device)
    try:
        # What _train opens to last the run (the tracker) is closed here, even on errors.
        with contextlib.ExitStack() as closing:
            return _train(config, out, device, distributed, resume, overwrite, progress, closing)
    finally:
        shutdown_distributed()


def _train(
    config: TrainConfig,
    out: Path,
    device: torch.device,
    distributed: Distributed,
    resume: bool,
    overwrite: bool,
    progress: bool,
    closing: contextlib.ExitStack,
) -> TrainResult:
    """Set up, restore, open the run folder, loop, finish: each part a function below."""
    parts = _build(config, device, distributed)
    start_step, seconds_before = 0, 0.0
    history: list[dict] = []
    if resume:
        start_step, seconds_before, history = _restore(
            out, parts.objective, parts.data, parts.total_steps, config.time_budget
        )
    compiled = _compile_choice(config, device, distributed, progress)
    parts.objective.prepare(device, compile=compiled)

    summary = _run_summary(
        config, parts.model, parts.data, parts.precision, device, distributed, compiled
    )
    _open_run_folder(out, summary, history, distributed, resume=resume, overwrite=overwrite)
    tracker = closing.enter_context(
        open_tracker(config.log if distributed.is_main else "none", out, start_step)
    )
    tracker.hparams(summary)
    session = _Session(
        config, out, parts.objective, parts.data, device, distributed, parts.precision.name, tracker
    )
    session.history = history
    loop = _Loop(config, parts, session, distributed, device, _Clock(seconds_before))
    bar = progress_bar(
        total=parts.total_steps,
        initial=start_step,
        desc=f"train {config.model}",
        unit="step",
        disable=not (progress and distributed.is_main),
        dynamic_ncols=True,
    )
    with _StopOnSignal() as stop:
        with bar:
            end = loop.run(start_step, bar, stop)
        stop.quit_at_once()  # nothing is left to stop after: a signal now quits at once
        seconds = loop.clock.seconds()
        parts.objective.sync_buffers()
        if not end.interrupted:
            session.fit_sampler(progress)
        session.write_pictures(end.step)
        session.save(end.step, seconds)
    return TrainResult(
        out,
        parts.objective.inference_model().eval(),
        end.step,
        parts.total_steps,
        end.interrupted,
        seconds,
        parts.precision.name,
        str(device),
        distributed.rank,
        end.budget_spent,
        end.stop_signal,
    )


@dataclass
class _Parts:
    """What a run trains with, built from its config: the same on every rank."""

    precision: Precision
    data: PackedDataset
    model: FaceModel
    objective: Objective
    loader: BatchLoader  # this rank's share of each batch
    total_steps: int | None  # None: only the time budget bounds the run


def _build(config: TrainConfig, device: torch.device, distributed: Distributed) -> _Parts:
    precision = Precision(resolve_precision(config.precision, device), device)
    data = open_packed(config.data)
    model_values = model_config_for(config, data)
    torch.manual_seed(config.seed)  # the same initial weights on every rank
    model = build_model(config.model, model_values)
    objective = OBJECTIVES.get(model.objective)(model, config, precision, distributed)

    if config.batch_size % distributed.world_size:
        raise FacegenError(
            f"batch size {config.batch_size} does not split over {distributed.world_size} "
            "processes: use a multiple of the process count"
        )
    loader = BatchLoader(
        data,
        LoaderOptions(
            batch_size=config.batch_size // distributed.world_size,
            split="train",
            flip=config.flip,
            seed=config.seed,
            rank=distributed.rank,
            world_size=distributed.world_size,
            channels_last=config.channels_last,
        ),
        device=device,
    )
    total_steps: int | None = None
    if config.steps is not None:
        total_steps = config.steps
    elif config.epochs is not None:
        total_steps = math.ceil(config.epochs * len(loader))
    elif config.time_budget is None:
        raise FacegenError(
            "how long? pass --steps N, --epochs E or --time-budget 10m (or set one in the preset)"
        )
    for module in objective.modules.values():
        module.to(device)
    return _Parts(precision, data, model, objective, loader, total_steps)


def _compile_choice(
    config: TrainConfig, device: torch.device, distributed: Distributed, progress: bool
) -> bool:
    """Whether the run uses torch.compile: as configured, unless no compiler is there."""
    if not config.compile:
        return False
    if problem := compile_unavailable(device):
        # A speed-up, not a result: train without it rather than fail.
        if distributed.is_main:
            print(f"note: {problem}; training without torch.compile", file=sys.stderr)
        return False
    if progress and distributed.is_main:
        print("torch.compile builds the model in the first steps (cached for later runs)")
    return True


def _open_run_folder(
    out: Path,
    summary: dict[str, Any],
    history: list[dict],
    distributed: Distributed,
    *,
    resume: bool,
    overwrite: bool,
) -> None:
    """Rank 0 makes the run folder (afresh for ``overwrite``) and writes config.json and
    the log up to the checkpoint; the other ranks wait for it."""
    if distributed.is_main:
        if not resume:
            if out.exists() and overwrite:
                shutil.rmtree(out)
            out.mkdir(parents=True, exist_ok=True)
        write_json(out / RUN_CONFIG, summary)
        # A resumed run forgets what was logged after its checkpoint: those steps run again.
        write_text(out / LOG_FILE, "".join(json.dumps(r) + "\n" for r in history))
    distributed.barrier()


class _Clock:
    """The run's training time: what the sessions before this one spent (saved in the
    checkpoint), plus this one's so far."""

    def __init__(self, seconds_before: float) -> None:
        self.seconds_before = seconds_before
        self.started = time.perf_counter()

    def seconds(self) -> float:
        return self.seconds_before + time.perf_counter() - self.started


@dataclass
class _Ending:
    """Where and why the loop stopped."""

    step: int
    interrupted: bool = False  # a signal stopped it before its last step
    budget_spent: bool = False
    stop_signal: int | None = None  # the signal, agreed by all ranks


@dataclass
class _Loop:
    """The steps of one run, from its start (or checkpoint) to the step where it stops:
    its last, the time budget's end, or a signal's."""

    config: TrainConfig
    parts: _Parts
    session: _Session
    distributed: Distributed
    device: torch.device
    clock: _Clock

    def run(self, step: int, bar: tqdm, stop: _StopOnSignal) -> _Ending:
        config, loader, total = self.config, self.parts.loader, self.parts.total_steps
        distributed, device = self.distributed, self.device
        window = _Window()
        batches: Iterator | None = None
        while total is None or step < total:
            epoch, index = divmod(step, len(loader))
            if batches is None:
                batches = loader.iterate(epoch, start_batch=index)
            batch = next(batches, None)
            if batch is None:
                batches = None
                continue
            values = self._step(batch.images, step)
            step += 1
            _check_losses(values, step, config.max_loss, self.session.out, distributed, device)
            window.add(values, batch.images.shape[0] * distributed.world_size)
            elapsed = self.clock.seconds()
            out_of_time = config.time_budget is not None and elapsed >= config.time_budget
            # One collective per step: every rank stops at the same step, whoever asked.
            finishing = distributed.any(stop.requested or out_of_time, device)
            more = not finishing and (total is None or step < total)
            if step % config.log_every == 0 or not more:
                record = window.flush(step, epoch, elapsed)
                record.update(distributed.mean(record.pop("losses"), device))
                self.session.log(record)
                bar.set_postfix(_postfix(record), refresh=False)
            bar.update(1)
            if more:
                self._milestones(step, window)
            if finishing:
                return self._ending(step, out_of_time, stop)
        return _Ending(step)

    def _step(self, images: torch.Tensor, step: int) -> dict[str, float]:
        """One optimisation step (index ``step``): the schedule's place, the step's noise,
        the objective; returns the values to log."""
        config, objective = self.config, self.parts.objective
        objective.model.train()
        if config.lr_decay or objective.uses_progress:
            spent = self.clock.seconds()
            if config.time_budget is not None and self.distributed.enabled:  # ranks agree
                spent = self.distributed.mean({"spent": spent}, self.device)["spent"]
            objective.progress = _progress(config, step, self.parts.total_steps, spent)
            if config.lr_decay:
                objective.scale_learning_rates(_lr_scale(config, objective.progress))
        noise = _step_generator(config.seed, self.distributed, step)
        logged = objective.step(images, step, noise)
        return {name: float(value) for name, value in logged.items()}

    def _milestones(self, step: int, window: _Window) -> None:
        """Sample grids and checkpoints along the way (the loss window paused meanwhile);
        the last step's are written when the run finishes."""
        sample = step % self.config.sample_every == 0
        save = step % self.config.checkpoint_every == 0
        if not (sample or save):
            return
        with window.paused():
            if sample:
                self.session.write_pictures(step)
            if save:
                self.session.save(step, self.clock.seconds())

    def _ending(self, step: int, out_of_time: bool, stop: _StopOnSignal) -> _Ending:
        # A spent budget is a normal end (sampler fitted, as after the last step); the
        # ranks agree on it, and on the signal that stopped them, before anyone acts on it.
        budget_spent = self.distributed.any(out_of_time, self.device)
        total = self.parts.total_steps
        if budget_spent or (total is not None and step >= total):
            return _Ending(step, budget_spent=budget_spent)
        signum = int(self.distributed.max(stop.signum or 0, self.device))
        return _Ending(step, interrupted=True, stop_signal=signum)


# ----------------------------------------------------------------------------- helpers


def _progress(config: TrainConfig, step: int, total_steps: int | None, seconds: float) -> float:
    """How far the run is before ``step``, 0 to 1: in steps or in the time budget,
    whichever is further on."""
    done = step / total_steps if total_steps else 0.0
    if config.time_budget is not None:
        done = max(done, seconds / config.time_budget)
    return min(1.0, done)


def _lr_scale(config: TrainConfig, progress: float) -> float:
    """The learning-rate factor at ``progress``: 1, then a straight line to 0 over the last
    ``lr_decay`` of the run."""
    return min(1.0, max(0.0, (1.0 - progress) / config.lr_decay))


def _step_generator(seed: int, distributed: Distributed, step: int) -> torch.Generator:
    """The noise of one step on one rank, from (seed, rank, step) alone: nothing to save,
    and a resumed run draws exactly what the uninterrupted run drew."""
    key = np.random.SeedSequence([seed, distributed.rank, step]).generate_state(2, np.uint64)
    return torch.Generator().manual_seed(int(key[0] >> np.uint64(1)))


def _check_losses(
    values: dict[str, float],
    step: int,
    limit: float,
    out: Path,
    distributed: Distributed,
    device: torch.device,
) -> None:
    bad = bad_losses(values, limit)
    if distributed.any(bool(bad), device):
        saved = list_checkpoints(out)
        kept = f"the last good checkpoint is {saved[-1][1]}" if saved else "no checkpoint yet"
        raise loss_went_bad(step, bad, f"training stopped and {kept}", "resume with --resume")


def _restore(
    out: Path,
    objective: Objective,
    data: PackedDataset,
    total_steps: int | None,
    time_budget: float | None,
) -> tuple[int, float, list[dict]]:
    checkpoints = list_checkpoints(out)
    if not checkpoints:
        raise FacegenError(f"cannot resume: {out} has no checkpoint yet")
    step, path = checkpoints[-1]
    state = load_training_state(path)
    expected = read_run_config(out).get("data", {})
    if expected.get("train_images") not in (None, len(data.split_indices("train"))) or (
        expected.get("size") not in (None, data.size)
    ):
        raise FacegenError(
            f"{data.path} is not the data set this run was trained on "
            f"({expected.get('train_images')} training images at {expected.get('size')}px, "
            f"now {len(data.split_indices('train'))} at {data.size}px)"
        )
    try:
        objective.load_state_dict(state)
    except (KeyError, RuntimeError) as error:
        raise FacegenError(
            f"{path} does not match this run's model config: {first_line(error)}"
        ) from None
    if total_steps is not None and step >= total_steps:
        raise FacegenError(
            f"{out} already reached step {step}; pass a larger --steps to train further"
        )
    seconds = float(state.get("seconds", 0.0))
    if time_budget is not None and seconds >= time_budget:
        raise FacegenError(
            f"{out} already trained {format_duration(seconds)} of its "
            f"{format_duration(time_budget)} budget; pass a larger --time-budget"
        )
    logged = json_lines(out / LOG_FILE)[0]
    history = [record for _, record in logged if record.get("step", 0) <= step]
    return step, seconds, history


def _run_summary(
    config: TrainConfig,
    model: FaceModel,
    data: PackedDataset,
    precision: Precision,
    device: torch.device,
    distributed: Distributed,
    compiled: bool,
) -> dict[str, Any]:
    parameters = sum(p.numel() for p in model.parameters())
    return {
        "train": config.to_dict(),
        "model": model.name,
        "model_config": model.config.to_dict(),
        "model_parameters": parameters,
        "data": {
            "path": str(Path(config.data).resolve()),
            "size": data.size,
            "crop": data.manifest.get("crop"),
            "count": len(data),
            "train_images": len(data.split_indices("train")),
            "splits": data.manifest.get("splits"),
            "source": data.manifest.get("source", {}).get("path"),
        },
        "device": str(device),
        "precision": precision.name,
        "compiled": compiled,  # train.compile, unless no compiler was found
        "world_size": distributed.world_size,
        "facegen_version": __version__,
        "torch_version": torch.__version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _postfix(record: dict) -> dict[str, str]:
    shown = {k: f"{v:.4g}" for k, v in record.items() if k not in ("step", "epoch", "seconds")}
    shown["img/s"] = shown.pop("images_per_second", "?")
    return shown


class _Window:
    """Losses and speed since the last log line; time spent sampling and saving is paused
    out, so images/s is the training speed."""

    sums: dict[str, float]
    steps: int
    images: int
    started: float
    paused_seconds: float

    def __init__(self) -> None:
        self._restart()

    def _restart(self) -> None:
        """Empty the window: the next log line covers the steps from here on."""
        self.sums, self.steps, self.images = {}, 0, 0
        self.started, self.paused_seconds = time.perf_counter(), 0.0

    def add(self, values: dict[str, float], images: int) -> None:
        for name, value in values.items():
            self.sums[name] = self.sums.get(name, 0.0) + value
        self.steps += 1
        self.images += images

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        began = time.perf_counter()
        try:
            yield
        finally:
            self.paused_seconds += time.perf_counter() - began

    def flush(self, step: int, epoch: int, seconds: float) -> dict[str, Any]:
        elapsed = time.perf_counter() - self.started - self.paused_seconds
        record = {
            "step": step,
            "epoch": epoch,
            "losses": {name: total / self.steps for name, total in self.sums.items()},
            "images_per_second": round(self.images / max(elapsed, 1e-9), 2),
            "seconds": round(seconds, 2),
        }
        self._restart()
        return record


class _StopOnSignal:
    """Ctrl-C (SIGINT) and SIGTERM, which ``timeout``, SLURM, Kubernetes and systemd send to
    stop a job: the first asks the loop to stop after the current step, and the run saves;
    a second one, or any once the loop is over (while the run finishes and saves), quits at
    once. Quitting raises KeyboardInterrupt for Ctrl-C, as Python would, and ``SystemExit``
    with 128 + the number (143) for SIGTERM: either way the stack unwinds, so no file is left
    half-written (every write is atomic), and the process ends with the status a shell
    expects of that signal."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signum: int | None = None  # the signal that asked to stop, if one did
        self._at_once = False
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def quit_at_once(self) -> None:
        """From here on there is no step to stop after: any signal quits at once."""
        self._at_once = True

    def __enter__(self) -> _StopOnSignal:
        if threading.current_thread() is threading.main_thread():  # only it may set handlers
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if self.requested or self._at_once:
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            print(f"\n{name}: quitting at once; nothing half-written is left", file=sys.stderr)
            raise SystemExit(128 + signum)
        self.signum = signum
        if signum == signal.SIGINT:
            message = "stopping after this step and saving (Ctrl-C again to quit at once)"
        else:
            message = f"{name}: stopping after this step and saving (another signal quits at once)"
        print(f"\n{message}", file=sys.stderr)

    def __exit__(self, *exc: object) -> None:
        for signum, previous in self._previous.items():
            if previous is not None:  # None: a handler not set from Python, nothing to restore
                signal.signal(signum, previous)


class _Session:
    """Everything rank 0 writes during a run: log, pictures, weights, checkpoints; the log
    and pictures also go to the tracker (a no-op unless ``config.log`` names one)."""

    def __init__(
        self,
        config: TrainConfig,
        out: Path,
        objective: Objective,
        data: PackedDataset,
        device: torch.device,
        distributed: Distributed,
        precision: str,
        tracker: Tracker,
    ) -> None:
        self.config, self.out, self.objective = config, out, objective
        self.data, self.device, self.distributed = data, device, distributed
        self.precision, self.tracker = precision, tracker
        self.history: list[dict] = []
        self._fitted_sampler: LatentSampler | None = None
        model = objective.model
        # Fixed latents and faces, so the grids of one run show the same faces improving.
        self.fixed_z = model.prior(config.sample_count, torch.Generator().manual_seed(config.seed))
        self.fixed_images = None
        if model.has_encoder:
            rows = _reference_rows(data, RECONSTRUCTION_COUNT)
            self.fixed_images = load_images(data, rows, device=device)

    def log(self, record: dict) -> None:
        self.history.append(record)
        if self.distributed.is_main:
            path = self.out / LOG_FILE
            with open(path, "a", encoding="utf-8") as log:
                log.write(json.dumps(record) + "\n")
            self.tracker.scalars(record["step"], self._tracked(record))

    def _tracked(self, record: dict) -> dict[str, float]:
        """A log record under the tracker's tags: the objective's values as ``loss/NAME``,
        ``speed/images_per_second``, ``progress/epoch`` and ``progress/seconds``, and each
        optimiser's current learning rate as ``lr/NAME``."""
        bookkeeping = {"step", "epoch", "seconds", "images_per_second"}
        values = {f"loss/{k}": v for k, v in record.items() if k not in bookkeeping}
        values["speed/images_per_second"] = record["images_per_second"]
        values["progress/epoch"] = record["epoch"]
        values["progress/seconds"] = record["seconds"]
        for name, optimizer in self.objective.optimizers.items():
            values[f"lr/{name}"] = optimizer.param_groups[0]["lr"]
        return values

    @torch.no_grad()
    def write_pictures(self, step: int) -> None:
        if not self.distributed.is_main:
            return
        model = self.objective.inference_model()
        was_training = model.training
        model.eval()
        try:
            if model.prior_is_trained or self._fitted_sampler is not None:
                z = self.fixed_z
                if self._fitted_sampler is not None:
                    generator = torch.Generator().manual_seed(self.config.seed)
                    z = self._fitted_sampler.sample(self.config.sample_count, generator)
                faces = in_batches(model.decode, z, self.device)
                grid = image_grid(to_uint8(faces))
                save_png(grid, sample_grid_path(self.out, step))
                self.tracker.images(step, "samples", grid)
            if self.fixed_images is not None:
                latents = in_batches(model.encode, self.fixed_images, self.device)
                recon = in_batches(model.decode, latents, self.device)
                grid = _pairs_grid(self.fixed_images, recon)
                save_png(grid, sample_grid_path(self.out, step, "recon-step"))
                self.tracker.images(step, "reconstructions", grid)
        finally:
            model.train(was_training)
        if self.history:
            title = f"{self.config.model} on {Path(self.config.data).name}"
            plot_losses(self.history, self.out / LOSS_PLOT, title)

    def fit_sampler(self, progress: bool) -> None:
        """Fit each of ``config.samplers`` on the training latents (models with an encoder;
        the latents encoded once) and save them in model/. A sampler whose ``too_few`` says
        the latents are too few for it is left out with a note (the GMM is fitted where
        nothing else is left). The last sample grid uses the preferred one: the flow where
        fitted, else the GMM."""
        model = self.objective.inference_model()
        if not (model.has_encoder and self.distributed.is_main and self.config.samplers):
            return
        rows = _reference_rows(self.data, self.config.sampler_images, split="train")
        was_training = model.training
        model.eval()
        with torch.no_grad():
            latents = map_batches(  # (N, latent_dim)
                lambda chunk: (
                    model.encode(load_images(self.data, chunk, device=self.device)).float().cpu()
                ),
                rows,
                SAMPLER_FIT_BATCH,
            )
        model.train(was_training)
        # The config's say in a sampler's options; the rest keep their defaults.
        options = {"gmm": {"components": min(self.config.sampler_components, len(latents))}}
        names = list(self.config.samplers)
        for name in self.config.samplers:
            reason = SAMPLERS.get(name).too_few(*latents.shape)
            if reason is not None:
                names.remove(name)
                instead = "the GMM instead" if not names else f"only {', '.join(names)}"
                print(f"note: {reason}; fitting {instead}", file=sys.stderr)
        fitted: dict[str, LatentSampler] = {}
        for name in names or ["gmm"]:
            sampler = SAMPLERS.get(name)(**options.get(name, {}))
            # Each from the run's seed: adding a sampler to the list changes no other one.
            generator = torch.Generator().manual_seed(self.config.seed)
            fitted[name] = sampler.fit(latents, generator, progress=progress)
            save_sampler(sampler, self.out / MODEL_FOLDER)
        # The last grid draws from the run's default sampler; a VAE without a flow, whose
        # default is its prior, from the first fitted.
        listed, prior = self.config.samplers, model.prior_is_trained
        preferred = preferred_fitted_sampler(listed, fitted, prior) or next(iter(fitted))
        self._fitted_sampler = fitted[preferred]

    def save(self, step: int, seconds: float) -> None:
        if self.distributed.is_main:
            state = {"seconds": seconds, **self.objective.state_dict()}
            save_training_state(self.out, step, state, self.config.keep_checkpoints)
            save_model(self.objective.inference_model(), self.out / MODEL_FOLDER)
        self.distributed.barrier()


def _reference_rows(data: PackedDataset, count: int, split: str = "test") -> np.ndarray:
    """The first ``count`` rows of ``split`` (falling back to others if it is empty)."""
    for name in (split, "valid", "test", "train"):
        rows = data.split_indices(name)
        if len(rows):
            return rows[:count]
    return np.arange(min(count, len(data)))


def _pairs_grid(originals: torch.Tensor, reconstructions: torch.Tensor) -> np.ndarray:
    """Rows of 8 originals, each above its 8 reconstructions."""
    pairs = paired_rows(to_uint8(originals), to_uint8(reconstructions), columns=8)
    return image_grid(pairs.reshape(-1, *pairs.shape[2:]), columns=8)
