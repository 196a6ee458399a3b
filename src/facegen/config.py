"""The training run's one config: defaults < preset file < command-line overrides.

A preset is a JSON file of :class:`TrainConfig` fields (``model_config`` holds the model's
own fields). Presets ship inside the package (``facegen/configs/NAME.json``) so that an
installed facegen has them; ``--config`` takes a preset name or a path. The resolved config
is written to the run as ``config.json`` and read back by ``--resume`` and ``load_run``.

The rules that turn a command into a run's config live here, in :func:`resolve_run`, for
`facegen train` and notebooks alike: which preset (``MODEL-SIZE`` from the data set), what
a given length replaces, and what ``--resume`` may change (:data:`RESUMABLE`).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from facegen.errors import FacegenError
from facegen.settings import Settings, default_of, rule_of, setting, show

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda", "mps")


# The training objectives (facegen.training.objectives) that read each objective-specific
# field; a field set on a model whose objective never reads it is refused (TrainConfig.check).
AUTOENCODERS = ("autoencoder", "vae", "aegan")
CRITICS = ("gan", "aegan")


def _reconstruction_losses() -> list[str]:
    from facegen.losses import RECONSTRUCTION_LOSSES  # imports torch: only when checking

    return RECONSTRUCTION_LOSSES.names()


def _gan_losses() -> list[str]:
    from facegen.losses import GAN_LOSSES

    return GAN_LOSSES.names()


def _trackers() -> list[str]:
    from facegen.tracking import TRACKERS

    return TRACKERS.names()


@dataclass
class TrainConfig(Settings):
    """Everything that decides a training run, and nothing that depends on the machine it
    runs on except ``device`` and ``precision`` (both resolved at run time when ``auto``).

    Checked whenever one is made (:mod:`facegen.settings`): types, each field's bounds,
    and the fields that only some models' training reads (``used_by``: the objectives that
    read it; set to anything but its default for another model, it is refused)."""

    model: str = "vae"
    model_config: dict[str, Any] = dataclasses.field(default_factory=dict)
    description: str = ""  # a preset's one line on why it is set as it is
    # Data and length
    data: str = ""
    steps: int | None = setting(None, at_least=1)
    epochs: float | None = setting(None, above=0)
    # Seconds of training (the loop's wall-clock, summed over resumes): the run ends as if
    # its last step had come when they are spent. With steps or epochs, the first to end.
    time_budget: float | None = setting(None, above=0)
    batch_size: int = setting(64, at_least=1)
    flip: bool = True
    seed: int = setting(0, at_least=0)
    # Machine
    device: str = "auto"
    precision: str = setting("auto", choices=PRECISIONS)
    channels_last: bool = True
    compile: bool = False
    # Optimisation
    lr: float = setting(2e-4, above=0)
    lr_d: float | None = setting(None, above=0, used_by=CRITICS)  # the critic's; None: lr
    betas: tuple[float, float] = setting((0.5, 0.999), at_least=0, below=1)
    weight_decay: float = setting(0.0, at_least=0)
    # Learning rates fall linearly to 0 over this last fraction of the run (its steps or its
    # time budget, whichever ends first); 0 keeps them constant. Resuming with a longer
    # length stretches the schedule, so the rates rise again.
    lr_decay: float = setting(0.0, at_least=0, at_most=1)
    # Objectives: reconstruction and KL for AE / VAE, adversarial loss for GANs
    reconstruction: str = setting("mse", choices=_reconstruction_losses, used_by=AUTOENCODERS)
    kl_weight: float = setting(1.0, at_least=0, used_by=("vae",))
    kl_warmup_steps: int = setting(0, at_least=0, used_by=("vae",))
    gan_loss: str = setting("nonsaturating", choices=_gan_losses, used_by=("gan",))
    d_steps: int = setting(1, at_least=1, used_by=("gan",))
    # GANs: DiffAugment policies for every image the critic sees ("color,translation,cutout")
    augment: str = ""
    # EMA of the model's weights, used for samples and saving
    ema_decay: float | None = setting(None, above=0, below=1)
    # Adversarial autoencoders (aegan): the decoder also plays against a patch critic once
    # this fraction of the run (steps or time budget, as lr_decay) has gone; the critic's
    # pull on it is scaled by the ratio of the reconstruction and adversarial gradient norms
    # at the decoder's last layer (VQGAN's adaptive weight) times adv_weight; fm_weight
    # adds L1 between the critic's features of each face and of its reconstruction.
    adv_start: float = setting(0.3, at_least=0, below=1, used_by=("aegan",))
    adv_weight: float = setting(0.5, at_least=0, used_by=("aegan",))
    fm_weight: float = setting(1.0, at_least=0, used_by=("aegan",))
    # Bookkeeping
    log_every: int = setting(10, at_least=1)
    sample_every: int = setting(250, at_least=1)
    checkpoint_every: int = setting(500, at_least=1)
    keep_checkpoints: int = setting(3, at_least=1)
    sample_count: int = setting(64, at_least=1)
    # Latent samplers fitted on training latents at the end (models with an encoder)
    samplers: tuple[str, ...] = ("gmm",)
    sampler_components: int = setting(10, at_least=1)  # the GMM's components
    sampler_images: int = setting(10_000, at_least=1)
    max_loss: float = setting(1e8, above=0)  # a loss above this (or NaN / inf) stops the run
    # Experiment tracking besides log.jsonl: "none" or "tensorboard" (RUN/tensorboard/);
    # see facegen.tracking. It changes nothing in the training itself.
    log: str = setting("none", choices=_trackers)

    def check(self) -> None:
        """The rules across fields: the model and its own fields, one of steps and epochs,
        names looked up elsewhere (device, augmentations, samplers), and the fields that
        only some models' training reads."""
        from facegen.models import MODELS  # imports torch: only once a config is made

        model_class = MODELS.get(self.model)  # an unknown name lists the known ones
        model_class.config_class.from_dict(self.model_config)
        if self.steps is not None and self.epochs is not None:
            raise FacegenError("give --steps or --epochs, not both")
        check_device(self.device)
        from facegen.augment import Augmentation

        Augmentation.parse(self.augment)  # an unknown name is refused here, with the choices
        from facegen.sampling import SAMPLERS

        fitted = [name for name in SAMPLERS if SAMPLERS.get(name).needs_fit]
        for name in self.samplers:
            if name not in fitted:
                raise FacegenError(
                    f"samplers: {name!r} is not a sampler fitted after training; "
                    f"choose from: {', '.join(fitted)}"
                )
        for field in dataclasses.fields(self):
            used_by = rule_of(field).used_by
            if not used_by or model_class.objective in used_by:
                continue
            if getattr(self, field.name) != default_of(field):
                users = [name for name in MODELS.names() if MODELS.get(name).objective in used_by]
                used = f"{field.name} is used only by {_and(users)}, not by {self.model}"
                raise FacegenError(f"{used}: leave it out")

    @classmethod
    def from_saved(cls, values: Mapping[str, Any], origin: str) -> TrainConfig:
        """A run's saved ``train`` config (``RUN/config.json``). Fields its model's training
        never read are put back to their defaults first: older facegen accepted them
        without a word, and they changed nothing in the run."""
        values = dict(values)
        from facegen.models import MODELS

        model = values.get("model", cls.model)
        if isinstance(model, str) and model in MODELS:
            objective = MODELS.get(model).objective
            for field in dataclasses.fields(cls):
                if rule_of(field).used_by and objective not in rule_of(field).used_by:
                    values.pop(field.name, None)
        return cls.from_dict(values, origin)

    @classmethod
    def from_preset(cls, name_or_path: str, **changes: Any) -> TrainConfig:
        """A shipped preset (``vae-64``, as `facegen train` picks for a VAE on 64x64 data)
        or a JSON file, with ``changes``, by the rules of :func:`resolve_run`: ``model_config``
        changes are merged into the preset's model fields, and a length given replaces the
        preset's steps and epochs.

        >>> TrainConfig.from_preset("vae-64", data="data/synth-64", steps=500,
        ...                         model_config={"latent_dim": 64})
        """
        return resolve_run(preset=name_or_path, **changes)


def check_device(device: str) -> None:
    """Refuse a device name that no machine has (``auto``, ``cpu``, ``cuda``, ``cuda:N``,
    ``mps``); whether this machine has it is decided when the run starts."""
    if device not in DEVICES and not re.fullmatch(r"cuda:\d+", device):
        raise FacegenError(
            f"device must be one of {', '.join(DEVICES)} (or cuda:N), not {device!r}"
        )


def _and(names: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


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
    # Names, types and bounds now, naming the file; the rules across fields wait for the
    # command line (a preset without "model" may be used with --model).
    TrainConfig.checked(values, origin)
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


# What a resumed run may change: how long it goes on, where its data set is now, the
# tracking, and the device (a run moved to another machine); nothing that changes what a
# step computes. Everything else is the saved run's.
RESUMABLE = ("steps", "epochs", "time_budget", "data", "log", "device")
LENGTH = ("steps", "epochs", "time_budget")


def with_sets(changes: Mapping[str, Any], sets: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """``changes`` with ``--set`` pairs (:func:`parse_override`) on top; ``model.width``
    goes into ``model_config``."""
    result = dict(changes)
    for key, value in sets:
        if key.startswith("model."):
            model_config = result.get("model_config")
            model_config = dict(model_config) if isinstance(model_config, Mapping) else {}
            result["model_config"] = {**model_config, key.removeprefix("model."): value}
        else:
            result[key] = value
    return result


def resolve_run(
    *,
    preset: str | None = None,
    out: str | Path | None = None,
    resume: bool = False,
    **changes: Any,
) -> TrainConfig:
    """The config of a training run, by the rules `facegen train` follows (its flags and
    ``--set`` are ``changes``; a model field goes in ``model_config={"width": 48}``).

    A new run is defaults < preset < ``changes``. The preset is ``preset`` (a shipped name
    or a JSON file) or else ``MODEL-SIZE`` for the model and the size of the data set in
    ``data``, where facegen ships one. ``model_config`` changes are merged into the
    preset's. A length given (``steps``, ``epochs`` or ``time_budget``) replaces the
    preset's steps and epochs; a time budget with steps or epochs: the first to end.

    ``resume=True`` continues the run in ``out`` with its saved config: ``changes`` may
    change only :data:`RESUMABLE` fields, and any other given (with ``preset``: the preset's
    fields too) must equal the saved value, so the command that started a run, given again,
    resumes it.

    >>> resolve_run(model="vae", data="data/synth-64", time_budget=600)  # vae-64, 10 minutes
    >>> resolve_run(out="runs/vae", resume=True, steps=20_000)
    """
    changes = TrainConfig.checked(changes)  # names, types and bounds before anything else
    if resume:
        if out is None:
            raise FacegenError("resume needs the run folder to continue (out)")
        return _resumed(Path(out), changes, preset)
    return TrainConfig.from_dict(_merge(_preset_values(preset, changes), changes))


def resolve_for_run(config: TrainConfig, out: str | Path, *, resume: bool) -> TrainConfig:
    """The config :func:`~facegen.training.trainer.train` runs: ``config`` for a new run;
    for a resume the saved one, with ``config``'s :data:`RESUMABLE` fields where they are
    set (not at their defaults). A whole config cannot say which fields its caller meant
    to give, so its others are the saved run's; :func:`resolve_run` with only the fields
    given is the strict form (a given field that differs is refused), as `facegen train
    --resume` uses it."""
    if not resume:
        return config
    fields = {field.name: field for field in dataclasses.fields(config)}
    changes = {
        name: getattr(config, name)
        for name in RESUMABLE
        if getattr(config, name) != default_of(fields[name])
    }
    return resolve_run(out=out, resume=True, **changes)


def resolve(
    preset: dict[str, Any], overrides: dict[str, Any], sets: list[tuple[str, Any]]
) -> TrainConfig:
    """defaults < ``preset`` (its fields, already read) < explicit flags (``overrides``,
    None = not given) < ``--set``, by the rules of :func:`resolve_run`."""
    changes = with_sets({k: v for k, v in overrides.items() if v is not None}, sets)
    changes = TrainConfig.checked(changes)
    return TrainConfig.from_dict(_merge(preset, changes))


def _preset_values(preset: str | None, changes: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of ``preset``, or of the shipped ``MODEL-SIZE`` for ``changes``' model
    and data set (none without a data set, or where facegen ships no such preset)."""
    model = changes.get("model")
    if preset is not None:
        values = read_preset(preset)
        if model is not None and values.get("model", model) != model:
            raise FacegenError(
                f"--model {model} contradicts the preset's model {values.get('model')!r}"
            )
        return values
    if not changes.get("data"):
        return {}
    from facegen.data.packed import open_packed

    name = f"{model or TrainConfig.model}-{open_packed(changes['data']).size}"
    return read_preset(name) if name in preset_names() else {}


def _merge(preset: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """``changes`` over ``preset``, model fields merged, a given length replacing the
    preset's (only --time-budget with --steps / --epochs keeps both: first to end)."""
    values = {**preset, **changes}
    values["model_config"] = {**preset.get("model_config", {}), **changes.get("model_config", {})}
    if any(changes.get(name) is not None for name in LENGTH):
        for name in ("steps", "epochs"):
            if name not in changes:
                values[name] = None
    return values


def _resumed(out: Path, changes: Mapping[str, Any], preset: str | None) -> TrainConfig:
    from facegen.layout import RUN_CONFIG, read_run_config
    from facegen.models import MODELS

    if not out.is_dir():
        raise FacegenError(f"cannot resume: {out} does not exist")
    run_config = read_run_config(out)
    if not isinstance(run_config.get("train"), dict):
        raise FacegenError(f"{out / RUN_CONFIG} is damaged: it holds no train config")
    saved = TrainConfig.from_saved(run_config["train"], str(out / RUN_CONFIG))
    # The model's fields as it was built (image_size filled in from the data set).
    model_fields = {**(run_config.get("model_config") or {}), **saved.model_config}
    model_class = MODELS.get(saved.model).config_class
    model_defaults = {field.name: default_of(field) for field in dataclasses.fields(model_class)}

    # Every field the command gives, as it would resolve for a new run (flags and --set
    # over the preset's), with where it came from: "" for a flag, the preset otherwise.
    given: dict[str, tuple[Any, str]] = {}
    layers = [(read_preset(preset), f"--config {preset}")] if preset is not None else []
    for values, source in [*layers, (changes, "")]:
        for name, value in values.items():
            if name not in (*RESUMABLE, "model_config", "description"):
                given[name] = (value, source)
        for name, value in (values.get("model_config") or {}).items():
            given[f"model.{name}"] = (value, source)
    # Another model first: it explains every other difference.
    for name in sorted(given, key=lambda name: name != "model"):
        value, source = given[name]
        if name.startswith("model."):
            key = name.removeprefix("model.")
            value = model_class.checked({key: value})[key]
            before = model_fields.get(key, model_defaults.get(key))
        else:
            value = TrainConfig.checked({name: value})[name]
            before = getattr(saved, name)
        if value != before:
            drop = f"drop {source}" if source else "drop the flag"
            where = f" (from {source})" if source else ""
            raise FacegenError(
                f"--resume: {name} is {show(before)} in the saved run, not {show(value)}"
                f"{where}; {drop} or start a new run"
            )
    updates: dict[str, Any] = {}
    if "steps" in changes or "epochs" in changes:
        updates.update(steps=changes.get("steps"), epochs=changes.get("epochs"))
    if "time_budget" in changes:
        updates["time_budget"] = changes["time_budget"]
    data = changes.get("data")
    if data and Path(data).resolve() != Path(saved.data).resolve():
        updates["data"] = data
    for name in ("log", "device"):
        if name in changes:
            updates[name] = changes[name]
    return saved.replace(**updates)


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
