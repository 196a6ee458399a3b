"""The training run's one config: defaults < preset file < command-line overrides.

A preset is a JSON file of :class:`TrainConfig` fields (``model_config`` holds the model's
own fields). Presets ship inside the package (``facegen/configs/NAME.json``) so that an
installed facegen has them; ``--config`` takes a preset name or a path. The resolved config
is written to the run as ``config.json`` and read back by ``--resume`` and ``load_run``.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from facegen.errors import FacegenError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda", "mps")


@dataclass
class TrainConfig:
    """Everything that decides a training run, and nothing that depends on the machine it
    runs on except ``device`` and ``precision`` (both resolved at run time when ``auto``)."""

    model: str = "vae"
    model_config: dict[str, Any] = field(default_factory=dict)
    description: str = ""  # a preset's one line on why it is set as it is
    # Data and length
    data: str = ""
    steps: int | None = None
    epochs: float | None = None
    # Seconds of training (the loop's wall-clock, summed over resumes): the run ends as if
    # its last step had come when they are spent. With steps or epochs, the first to end.
    time_budget: float | None = None
    batch_size: int = 64
    flip: bool = True
    seed: int = 0
    # Machine
    device: str = "auto"
    precision: str = "auto"
    channels_last: bool = True
    compile: bool = False
    # Optimisation
    lr: float = 2e-4
    lr_d: float | None = None  # GAN discriminator; None means lr
    betas: tuple[float, float] = (0.5, 0.999)
    weight_decay: float = 0.0
    # Learning rates fall linearly to 0 over this last fraction of the run (its steps or its
    # time budget, whichever ends first); 0 keeps them constant. Resuming with a longer
    # length stretches the schedule, so the rates rise again.
    lr_decay: float = 0.0
    # Objectives: reconstruction and KL for AE / VAE, adversarial loss for GANs
    reconstruction: str = "mse"
    kl_weight: float = 1.0
    kl_warmup_steps: int = 0
    gan_loss: str = "nonsaturating"
    d_steps: int = 1
    # GANs: DiffAugment policies for every image the critic sees ("color,translation,cutout")
    augment: str = ""
    ema_decay: float | None = None  # EMA of the model's weights, used for samples and saving
    # Adversarial autoencoders (aegan): the decoder also plays against a patch critic once
    # this fraction of the run (steps or time budget, as lr_decay) has gone; the critic's
    # pull on it is scaled by the ratio of the reconstruction and adversarial gradient norms
    # at the decoder's last layer (VQGAN's adaptive weight) times adv_weight; fm_weight
    # adds L1 between the critic's features of each face and of its reconstruction.
    adv_start: float = 0.3
    adv_weight: float = 0.5
    fm_weight: float = 1.0
    # Bookkeeping
    log_every: int = 10
    sample_every: int = 250
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    sample_count: int = 64
    # Latent samplers fitted on training latents at the end (models with an encoder)
    samplers: tuple[str, ...] = ("gmm",)
    sampler_components: int = 10  # the GMM's components
    sampler_images: int = 10_000
    max_loss: float = 1e8  # a loss above this (or NaN / inf) stops the run
    # Experiment tracking besides log.jsonl: "none" or "tensorboard" (RUN/tensorboard/);
    # see facegen.training.tracking. It changes nothing in the training itself.
    log: str = "none"

    def validate(self) -> None:
        checks = [
            (self.batch_size >= 1, f"batch size must be at least 1, not {self.batch_size}"),
            (self.steps is None or self.steps >= 1, f"steps must be at least 1, not {self.steps}"),
            (self.epochs is None or self.epochs > 0, f"epochs must be positive, not {self.epochs}"),
            (
                self.time_budget is None or self.time_budget > 0,
                f"time_budget must be positive seconds, not {self.time_budget}",
            ),
            (self.seed >= 0, f"seed must not be negative, not {self.seed}"),
            (self.precision in PRECISIONS, f"precision must be one of {', '.join(PRECISIONS)}"),
            (
                self.device in DEVICES or self.device.startswith("cuda:"),
                f"device must be one of {', '.join(DEVICES)} (or cuda:N), not {self.device!r}",
            ),
            (self.lr > 0 and (self.lr_d is None or self.lr_d > 0), "learning rates must be > 0"),
            (0 <= self.lr_decay <= 1, f"lr_decay must be in [0, 1], not {self.lr_decay}"),
            (
                len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
                f"betas must be two numbers in [0, 1), not {self.betas}",
            ),
            (self.kl_weight >= 0 and self.kl_warmup_steps >= 0, "kl_weight and warm-up >= 0"),
            (self.d_steps >= 1, f"d_steps must be at least 1, not {self.d_steps}"),
            (self.ema_decay is None or 0 < self.ema_decay < 1, "ema_decay must be in (0, 1)"),
            (0 <= self.adv_start < 1, f"adv_start must be in [0, 1), not {self.adv_start}"),
            (
                self.adv_weight >= 0 and self.fm_weight >= 0,
                "adv_weight and fm_weight must not be negative",
            ),
            (
                min(self.log_every, self.sample_every, self.checkpoint_every) >= 1,
                "log_every, sample_every and checkpoint_every must be at least 1",
            ),
            (self.keep_checkpoints >= 1, "keep_checkpoints must be at least 1"),
            (self.sample_count >= 1, "sample_count must be at least 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise FacegenError(message)
        from facegen.augment import Augmentation  # imports torch: not at `facegen --help`

        Augmentation.parse(self.augment)  # an unknown name is refused here, with the choices
        from facegen.sampling import SAMPLERS

        fitted = [name for name in SAMPLERS if SAMPLERS.get(name).needs_fit]
        for name in self.samplers:
            if name not in fitted:
                raise FacegenError(
                    f"samplers: {name!r} is not a sampler fitted after training; "
                    f"choose from: {', '.join(fitted)}"
                )
        from facegen.training.tracking import TRACKERS

        if not isinstance(self.log, str) or self.log not in TRACKERS:
            raise FacegenError(f"log must be one of {', '.join(TRACKERS)}, not {self.log!r}")
        if self.steps is not None and self.epochs is not None:
            raise FacegenError("give --steps or --epochs, not both")

    def to_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        values["betas"] = list(self.betas)
        values["samplers"] = list(self.samplers)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any], origin: str = "config") -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise FacegenError(
                f"{origin}: unknown field{'s' * (len(unknown) > 1)} {', '.join(unknown)}"
            )
        values = dict(values)
        if isinstance(values.get("samplers"), str):  # --set samplers=gmm,flow
            values["samplers"] = [part.strip() for part in values["samplers"].split(",")]
        for name in ("betas", "samplers"):
            if name in values:
                values[name] = tuple(values[name])
        return cls(**values)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_preset(cls, name_or_path: str, **changes: Any) -> TrainConfig:
        """A shipped preset (``vae-64``, as `facegen train` picks for a VAE on 64x64 data)
        or a JSON file, with ``changes``; ``model_config`` changes are merged into the
        preset's model fields instead of replacing them all.

        >>> TrainConfig.from_preset("vae-64", data="data/synth-64", steps=500,
        ...                         model_config={"latent_dim": 64})
        """
        values = read_preset(name_or_path)
        model_config = {**values.get("model_config", {}), **changes.pop("model_config", {})}
        config = cls.from_dict({**values, **changes, "model_config": model_config}, "changes")
        config.validate()
        return config


def preset_names() -> list[str]:
    folder = resources.files("facegen") / "configs"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".json"))


def read_preset(name_or_path: str) -> dict[str, Any]:
    """A preset's fields, from a file path or a shipped preset name (``vae-64``)."""
    path = Path(name_or_path)
    if path.suffix == ".json" or path.exists():
        if not path.is_file():
            raise FacegenError(f"config file {path} does not exist")
        text, origin = path.read_text(encoding="utf-8"), str(path)
    else:
        shipped = resources.files("facegen") / "configs" / f"{name_or_path}.json"
        if not shipped.is_file():
            raise FacegenError(
                f"unknown preset {name_or_path!r}; choose one of: {', '.join(preset_names())}"
            )
        text, origin = shipped.read_text(encoding="utf-8"), f"preset {name_or_path}"
    try:
        values = json.loads(text)
    except ValueError as error:
        raise FacegenError(f"{origin} is not valid JSON: {error}") from None
    if not isinstance(values, dict):
        raise FacegenError(f"{origin} must hold a JSON object of config fields")
    TrainConfig.from_dict(values, origin)  # refuse unknown fields now, naming the file
    return values


def parse_override(text: str) -> tuple[str, Any]:
    """``--set key=value``: ``model.width=48`` sets a model field; values are JSON where they
    parse as JSON (numbers, true/false, null, lists) and strings otherwise."""
    if "=" not in text:
        raise FacegenError(f"--set takes key=value, not {text!r}")
    key, raw = text.split("=", 1)
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return key.strip(), value


def resolve(
    preset: dict[str, Any], overrides: dict[str, Any], sets: list[tuple[str, Any]]
) -> TrainConfig:
    """defaults < preset < explicit flags (``overrides``, None = not given) < ``--set``."""
    values = dict(preset)
    values["model_config"] = dict(preset.get("model_config", {}))
    values.update({k: v for k, v in overrides.items() if v is not None})
    for key, value in sets:
        if key.startswith("model."):
            values["model_config"][key.removeprefix("model.")] = value
        else:
            values[key] = value
    config = TrainConfig.from_dict(values, "--set")
    config.validate()
    return config


_DURATION_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0}


def parse_duration(text: str) -> float:
    """Seconds in ``"600"``, ``"90s"``, ``"10m"``, ``"1.5h"`` or ``"1h30m"``.

    >>> parse_duration("1h30m")
    5400.0
    """
    cleaned = str(text).strip().lower().replace(" ", "")
    parts = re.fullmatch(r"((?:\d+(?:\.\d*)?|\.\d+)[hms]?)+", cleaned or "x")
    if parts is None:
        raise FacegenError(f"a duration looks like 600, 90s, 10m, 1.5h or 1h30m, not {text!r}")
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d*)?|\.\d+)([hms]?)", cleaned):
        total += float(number) * _DURATION_UNITS[unit or "s"]
    if total <= 0:
        raise FacegenError(f"a duration must be positive, not {text!r}")
    return total


def format_duration(seconds: float) -> str:
    """``5400`` -> ``"1h30m00s"``, ``75`` -> ``"1m15s"``."""
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
