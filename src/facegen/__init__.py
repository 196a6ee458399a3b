"""facegen: learn human faces from CelebA (or any folder of face photos) and generate new ones.

>>> import facegen
>>> result = facegen.train(facegen.TrainConfig.from_preset("ae-cpu", data="data/synth-64"),
...                        "runs/ae")
>>> run = facegen.load_run("runs/ae")         # or "hf://owner/name" from the Hub
>>> faces = run.sample(16, seed=0)            # (16, 3, 64, 64) in [-1, 1]
>>> records, notes = facegen.evaluate(run, n=2048, metrics=("fid", "kid"))

Importing facegen is light: torch loads when a run is trained, opened or evaluated.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from facegen._version import __version__
from facegen.config import TrainConfig

__all__ = ["TrainConfig", "__version__", "evaluate", "load_run", "train"]

if TYPE_CHECKING:
    from facegen.data.packed import PackedDataset
    from facegen.metrics.evaluate import EvalConfig
    from facegen.run import Run
    from facegen.training.trainer import TrainResult


def load_run(path: str | Path, device: str = "cpu") -> Run:
    """Open a trained run folder, or a model shared on the Hub as ``"hf://owner/name"``,
    for inference (see :func:`facegen.run.load_run`)."""
    from facegen.run import load_run as _load_run

    return _load_run(path, device)


def train(
    config: TrainConfig,
    out: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> TrainResult:
    """Train ``config.model`` on ``config.data`` into the run folder ``out``, as
    ``facegen train`` does (see :func:`facegen.training.trainer.train`)."""
    from facegen.training.trainer import train as _train

    return _train(config, out, resume=resume, overwrite=overwrite, progress=progress)


def evaluate(
    run: Run | str | Path,
    data: PackedDataset | str | Path | None = None,
    config: EvalConfig | None = None,
    *,
    progress: bool = True,
    write: bool = True,
    **fields: Any,
) -> tuple[list[dict[str, Any]], list[str]]:
    """``facegen eval`` as a function: the metrics of ``run`` (a :class:`Run` or a run
    folder) against ``data`` (a packed data set or its folder; default: the one the run
    trained on). ``config`` is an :class:`~facegen.metrics.evaluate.EvalConfig`, or give
    its fields as keywords (``n=2048, metrics=("fid", "kid")``). Returns the records (also
    appended to ``RUN/metrics.jsonl`` unless ``write=False``) and the notes on how far
    they can be compared."""
    from facegen.data.packed import PackedDataset
    from facegen.errors import FacegenError
    from facegen.metrics.evaluate import EvalConfig
    from facegen.metrics.evaluate import evaluate as _evaluate
    from facegen.run import run_data

    if config is not None and fields:
        raise FacegenError("pass either an EvalConfig or its fields as keywords, not both")
    if config is None:
        try:
            config = EvalConfig(**fields)
        except TypeError as error:  # an unknown keyword
            raise FacegenError(f"facegen.evaluate: {error}") from None
    if isinstance(run, (str, Path)):  # a run folder or hf:// name, not a loaded Run
        run = load_run(run, config.device)
    if not isinstance(data, PackedDataset):
        data = run_data(run, data)
    return _evaluate(run, data, config, progress=progress, write=write)
