"""Training an attribute classifier on a packed data set's train split, scoring it on the
test split, and saving it as one folder.

Multi-label logistic regression on top of the CNN: one binary cross-entropy per attribute,
with the unknown labels (0) left out of the loss. AdamW with a short linear warm-up and a
cosine decay to zero, which gets the most out of a short CPU budget.

>>> result = train_classifier("data/synth-64")      # writes data/synth-64/classifier
>>> result.test_accuracy["Eyeglasses"], result.baseline["Eyeglasses"]
(0.99, 0.84)
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F
from tqdm import tqdm

from facegen._version import __version__
from facegen.classifier.model import AttributeClassifier, ClassifierConfig
from facegen.classifier.saved import default_classifier_path, save_classifier
from facegen.classifier.scores import score_classifier, split_rows, varying_attributes
from facegen.data.loader import Batch, BatchLoader, LoaderOptions
from facegen.data.packed import PackedDataset, open_packed
from facegen.devices import resolve_device
from facegen.errors import DataError, FacegenError
from facegen.progress import progress_bar
from facegen.training.failures import bad_losses, loss_went_bad
from facegen.training.machine import GradScaling, Precision, resolve_precision

LOG_EVERY = 10


@dataclass
class ClassifierResult:
    """What :func:`train_classifier` made: the folder, the classifier, and its scores."""

    path: Path
    classifier: AttributeClassifier  # in eval mode, on the device it trained on
    metrics: dict[str, Any]  # as written to metrics.json
    skipped: tuple[str, ...]  # attributes left out: not both values in the train split
    split: str  # where it was scored: test, or valid when the test split is empty
    seconds: float
    device: str
    precision: str

    @property
    def test_accuracy(self) -> dict[str, float | None]:
        return {name: s["accuracy"] for name, s in self.metrics["attributes"].items()}

    @property
    def baseline(self) -> dict[str, float | None]:
        return {name: s["baseline"] for name, s in self.metrics["attributes"].items()}

    @property
    def balanced_accuracy(self) -> dict[str, float | None]:
        return {name: s["balanced_accuracy"] for name, s in self.metrics["attributes"].items()}


def train_classifier(
    data: PackedDataset | str | Path,
    out: str | Path | None = None,
    config: ClassifierConfig | None = None,
    *,
    overwrite: bool = False,
    progress: bool = True,
) -> ClassifierResult:
    """Train a classifier on ``data``'s train split into the folder ``out`` (default
    ``DATA/classifier``) and score it on the test split (valid when test is empty).

    >>> train_classifier("data/synth-64", config=ClassifierConfig(steps=500, width=16))
    """
    started = time.perf_counter()
    config = config or ClassifierConfig()
    config.validate()
    data = data if isinstance(data, PackedDataset) else open_packed(data)
    out = Path(out) if out is not None else default_classifier_path(data.path)
    if out.exists() and not overwrite:
        raise FacegenError(f"{out} already exists; pass --overwrite to replace it")
    config, skipped = resolve_config(config, data)
    split_rows(data)  # refuse a data set with nothing to score on before training
    device = resolve_device(config.device)
    precision = Precision(resolve_precision(config.precision, device), device)

    model = _fit(config, data, device, precision, progress)
    scores = score_classifier(model, data)
    seconds = time.perf_counter() - started
    metrics = {
        **scores,
        "steps": config.steps,
        "seconds": round(seconds, 2),
        "device": str(device),
        "precision": precision.name,
        "data": str(Path(data.path).resolve()),
        "image_size": config.image_size,
        "skipped": list(skipped),
        "facegen_version": __version__,
        "torch_version": torch.__version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    save_classifier(model, metrics, out, overwrite=overwrite)
    model.test_accuracy = {
        name: score["accuracy"]
        for name, score in scores["attributes"].items()
        if score["accuracy"] is not None
    }
    return ClassifierResult(
        out, model, metrics, skipped, scores["split"], seconds, str(device), precision.name
    )


def resolve_config(
    config: ClassifierConfig, data: PackedDataset
) -> tuple[ClassifierConfig, tuple[str, ...]]:
    """``config`` with its image size and attributes taken from ``data``, and the names of
    the attributes left out because the train split does not show both of their values
    (none when ``config`` names its attributes: naming one of those is an error)."""
    if config.image_size not in (None, data.size):
        raise FacegenError(
            f"the classifier is set for {config.image_size}x{config.image_size} images but "
            f"{data.path} holds {data.size}x{data.size}"
        )
    train_labels = data.attributes[data.split_indices("train")]
    if not np.any(train_labels != 0):
        raise DataError(
            f"{data.path} has no attribute labels in its train split (it was packed from a "
            "source without list_attr_celeba.txt); a classifier needs CelebA-style attributes"
        )
    varying, constant = varying_attributes(train_labels, data.attribute_names)
    if not varying:
        raise DataError(f"no attribute of {data.path} takes both values in its train split")
    if config.attribute_names is None:
        return config.replace(image_size=data.size, attribute_names=varying), constant
    unlearnable = [name for name in config.attribute_names if name in constant]
    if unlearnable:
        raise DataError(
            f"a classifier cannot learn {', '.join(unlearnable)}: the train split of "
            f"{data.path} does not show both values"
        )
    return config.replace(image_size=data.size), ()


def _fit(
    config: ClassifierConfig,
    data: PackedDataset,
    device: torch.device,
    precision: Precision,
    progress: bool,
) -> AttributeClassifier:
    """The training loop; returns the classifier in eval mode."""
    # Seed only this block: the same seed gives the same weights, and the caller's global
    # random state is left as it was.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = AttributeClassifier(config)
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    # torch's overloads of Module.to leave out its documented memory_format
    model = model.to(device, memory_format=memory_format).train()  # type: ignore[call-overload]
    loader = BatchLoader(
        data,
        LoaderOptions(
            batch_size=config.batch_size,
            split="train",
            flip=config.flip,
            seed=config.seed,
            channels_last=config.channels_last,
            labels=True,
        ),
        device=device,
    )
    columns = torch.tensor([data.attribute_index(n) for n in model.attribute_names], device=device)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, _warmup_cosine(config))
    scaling = GradScaling(precision)
    bar = progress_bar(
        total=config.steps, desc="train classifier", unit="step", disable=not progress
    )
    window: list[torch.Tensor] = []  # losses since the last check, kept on the device
    with bar:
        for step, batch in enumerate(_endless(loader, config.steps), start=1):
            assert batch.attributes is not None  # the loader was asked for labels
            labels = batch.attributes.index_select(1, columns)  # (B, A) int8
            with precision.autocast():
                logits = model(batch.images)  # (B, A)
            loss = _masked_bce(logits.float(), labels)
            optimizer.zero_grad(set_to_none=True)
            scaling.backward(loss)
            scaling.step(optimizer)
            scaling.update()
            schedule.step()
            window.append(loss.detach())
            if step % LOG_EVERY == 0 or step == config.steps:
                _check_loss(float(torch.stack(window).mean()), step, bar)
                window = []
            bar.update(1)
    return model.eval()


def _endless(loader: BatchLoader, steps: int) -> Iterator[Batch]:
    """``steps`` batches, epoch after epoch."""
    step = 0
    for epoch in itertools.count():
        for batch in loader.iterate(epoch):
            if step == steps:
                return
            step += 1
            yield batch


def _masked_bce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy over the known labels (1 / -1) only; 0 means unknown."""
    known = labels != 0
    targets = (labels > 0).float()
    losses = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")  # (B, A)
    return (losses * known).sum() / known.sum().clamp(min=1)


def _warmup_cosine(config: ClassifierConfig) -> Callable[[int], float]:
    """The learning-rate factor at each step: linear warm-up, then cosine down to zero."""
    warmup = min(config.warmup_steps, config.steps // 2)
    decay = max(config.steps - warmup, 1)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * min(step - warmup, decay) / decay))

    return factor


def _check_loss(loss: float, step: int, bar: tqdm) -> None:
    if bad := bad_losses({"loss": loss}):
        raise loss_went_bad(step, bad, "training stopped and nothing was written")
    bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
