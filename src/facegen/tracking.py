"""Experiment tracking: what a training run shows in a dashboard besides its own files.

``log.jsonl`` stays the record the report and ``load_run`` read; a tracker is a second,
optional copy for live dashboards and for comparing runs side by side. It gets every
logged value, the sample and reconstruction grids at each milestone, and the run's
resolved config. Backends are chosen by name (``TrainConfig.log``, ``--log``):

- ``none`` (the default): the base :class:`Tracker`, which writes nothing;
- ``tensorboard``: event files in ``RUN/tensorboard/`` (``tensorboard --logdir runs/``).

Another backend (W&B, MLflow) is a :class:`Tracker` subclass registered in ``TRACKERS``.
Only rank 0 tracks; the trainer gives the other ranks ``none``. A resumed run re-runs the
steps after its checkpoint, so a backend opened with ``start_step`` forgets what it had
recorded after that step, as ``log.jsonl`` does.

This module loads no backend library until a backend is opened, so the CLI can list the
names in ``--help`` without importing torch or tensorboard.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from facegen.errors import FacegenError
from facegen.files import atomic_path
from facegen.layout import TENSORBOARD_FOLDER
from facegen.registry import Registry

if TYPE_CHECKING:
    import numpy as np

TRACKERS: Registry[type[Tracker]] = Registry("tracker")


@TRACKERS.register("none")
class Tracker:
    """The interface every backend implements; this base records nothing.

    ``run`` is the run folder (a backend keeps its files in a folder of its own inside
    it); ``start_step`` is the step training starts after: 0 for a new run, the checkpoint's
    step for a resumed one (anything a backend recorded after it is about to run again).
    """

    def __init__(self, run: Path, start_step: int = 0) -> None:
        self.run = Path(run)
        self.start_step = start_step

    @classmethod
    def check_available(cls) -> None:
        """Raise a one-line :class:`FacegenError` if this backend cannot run here (its
        package is missing), before any training starts."""

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        """Record ``values`` (tag -> number, e.g. ``loss/recon``) at ``step``."""

    def images(self, step: int, name: str, image: np.ndarray) -> None:
        """Record one uint8 (H, W, 3) picture (a grid of faces) as ``name`` at ``step``."""

    def hparams(self, config: Mapping[str, Any]) -> None:
        """Record the run's resolved config (nested mappings allowed), once per start: a
        resumed run records its own (its length may have changed) in place of the old."""

    def close(self) -> None:
        """Write out anything pending and release the backend's files."""

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_tracker(name: str) -> None:
    """Refuse an unknown backend name or one whose package is missing, in one line."""
    TRACKERS.get(name).check_available()


def open_tracker(name: str, run: Path, start_step: int = 0) -> Tracker:
    """The backend called ``name`` for the run folder ``run`` (see :class:`Tracker`)."""
    backend = TRACKERS.get(name)
    backend.check_available()
    return backend(run, start_step)


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, float | str]:
    """Nested settings as one level of dotted names (``train.lr``, ``data.size``) holding
    numbers or strings, the values hyperparameter tables take: lists and booleans become
    their JSON text, ``None`` is left out."""
    flat: dict[str, float | str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        elif value is None:
            continue
        elif isinstance(value, bool) or not isinstance(value, (int, float, str)):
            flat[name] = json.dumps(value)
        else:
            flat[name] = value
    return flat


@TRACKERS.register("tensorboard")
class TensorBoardTracker(Tracker):
    """TensorBoard event files in ``RUN/tensorboard/``, through ``torch.utils.tensorboard``.

    Every call is flushed at once, so a live TensorBoard shows each log line as it comes
    and a crash loses nothing already logged. The config goes in twice: as hyperparameters
    (the HParams tab compares runs; only the session's own start record is written, so
    TensorBoard builds the table from every run under ``--logdir``) and as JSON text
    (``config``). Resuming cuts the folder's event files back to the checkpoint's step and
    drops their config records (the resumed run writes its own, as it rewrites
    config.json), so the files hold each step once whatever reads them; the new file also
    starts with ``purge_step``, TensorBoard's own restart marker, so that a TensorBoard
    already running forgets the re-run steps it had shown.
    """

    CONFIG_TAG = "config"

    def __init__(self, run: Path, start_step: int = 0) -> None:
        super().__init__(run, start_step)
        from torch.utils.tensorboard import SummaryWriter

        self.folder = self.run / TENSORBOARD_FOLDER
        if start_step > 0 and self.folder.is_dir():
            _forget_after(self.folder, start_step, self._config_tags())
        self._writer = SummaryWriter(
            str(self.folder), purge_step=start_step + 1 if start_step > 0 else None
        )

    @classmethod
    def check_available(cls) -> None:
        try:
            import tensorboard  # noqa: F401  (torch.utils.tensorboard needs it)
            from torch.utils.tensorboard import SummaryWriter  # noqa: F401
        except ImportError:
            raise FacegenError(
                "--log tensorboard needs the tensorboard package: "
                "pip install 'facegen[tensorboard]'"
            ) from None

    @classmethod
    def _config_tags(cls) -> set[str]:
        from tensorboard.plugins.hparams.metadata import SESSION_START_INFO_TAG

        return {SESSION_START_INFO_TAG, f"{cls.CONFIG_TAG}/text_summary"}

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        for tag, value in values.items():
            self._writer.add_scalar(tag, value, step)
        self._writer.flush()

    def images(self, step: int, name: str, image: np.ndarray) -> None:
        self._writer.add_image(name, image, step, dataformats="HWC")
        self._writer.flush()

    def hparams(self, config: Mapping[str, Any]) -> None:
        from torch.utils.tensorboard.summary import hparams

        _, session_start, _ = hparams(flatten(config), {})
        file_writer = self._writer.file_writer
        assert file_writer is not None  # SummaryWriter opens it on creation
        file_writer.add_summary(session_start, 0)
        text = json.dumps(config, indent=2)
        # Indented four spaces: a code block in TensorBoard's markdown.
        block = "\n".join(f"    {line}" for line in text.splitlines())
        self._writer.add_text(self.CONFIG_TAG, block, 0)
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


def _forget_after(folder: Path, step: int, dropped_tags: set[str]) -> None:
    """Cut each event file in ``folder`` back to its events at or before ``step``, and
    drop the events whose values are all under ``dropped_tags``. Each file is rewritten
    under its own name (atomically), so the files keep their order."""
    from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.summary.writer.record_writer import RecordWriter

    for path in event_files(folder):
        records = list(RawEventFileLoader(str(path)).Load())
        kept = [raw for raw in records if _keep(Event.FromString(raw), step, dropped_tags)]
        if len(kept) == len(records):
            continue
        with atomic_path(path) as tmp, open(tmp, "wb") as file:
            writer = RecordWriter(file)
            for raw in kept:
                writer.write(raw)


def _keep(event: Any, step: int, dropped_tags: set[str]) -> bool:
    if event.step > step:
        return False
    tags = [value.tag for value in event.summary.value]
    return not (tags and all(tag in dropped_tags for tag in tags))


def event_files(folder: Path) -> Iterator[Path]:
    """The TensorBoard event files in ``folder``, in the order TensorBoard reads them."""
    return iter(sorted(Path(folder).glob("*tfevents*")))
