"""Models, chosen by name through :data:`MODELS`, saved as ``config.json`` +
``model.safetensors`` and rebuilt from those two files alone.

>>> model = build_model("vae", {"image_size": 64, "latent_dim": 128})
>>> save_model(model, "runs/vae/model")
>>> load_model("runs/vae/model").sample(16).shape
torch.Size([16, 3, 64, 64])
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from facegen._version import __version__
from facegen.errors import FacegenError
from facegen.files import atomic_path, write_json
from facegen.models.base import FaceModel, ModelConfig
from facegen.registry import Registry

MODELS: Registry[type[FaceModel]] = Registry("model")

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


def build_model(name: str, config: ModelConfig | dict[str, Any] | None = None) -> FaceModel:
    """A fresh model ``name`` from its config (a dataclass or a dict of its fields)."""
    model_class = MODELS.get(name)
    if config is None or isinstance(config, dict):
        config = model_class.config_class.from_dict(config or {})
    elif not isinstance(config, model_class.config_class):
        raise FacegenError(f"the {name} model needs a {model_class.config_class.__name__}")
    return model_class(config)


def save_model(model: FaceModel, folder: str | Path) -> Path:
    """Write ``folder/config.json`` and ``folder/model.safetensors`` (each atomically)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    with atomic_path(folder / WEIGHTS_FILE) as tmp:
        save_file(state, str(tmp), metadata={"facegen_version": __version__, "model": model.name})
    write_json(
        folder / CONFIG_FILE,
        {"model": model.name, "config": model.config.to_dict(), "facegen_version": __version__},
    )
    return folder


def load_model(folder: str | Path, device: str | torch.device = "cpu") -> FaceModel:
    """Rebuild a saved model from its folder, in eval mode on ``device``."""
    folder = Path(folder)
    try:
        saved = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
        name, config = saved["model"], saved["config"]
    except FileNotFoundError:
        raise FacegenError(f"{folder} holds no saved model ({CONFIG_FILE} is missing)") from None
    except (ValueError, KeyError, TypeError) as error:
        raise FacegenError(f"{folder / CONFIG_FILE} is damaged: {error}") from None
    model = build_model(name, config)
    load_weights(model, folder)
    return model.to(device).eval()


def load_weights(module: torch.nn.Module, folder: Path, hint: str = "") -> None:
    """Load ``folder/model.safetensors`` into ``module``; a missing, damaged or mismatched
    file is one clear error (``hint`` says how to make one)."""
    path = folder / WEIGHTS_FILE
    try:
        state = load_file(str(path))
    except FileNotFoundError:
        raise FacegenError(f"{folder} has no {WEIGHTS_FILE}{'; ' + hint if hint else ''}") from None
    except Exception as error:  # safetensors raises its own error types for damaged files
        raise FacegenError(f"{path} is damaged: {error}") from None
    try:
        module.load_state_dict(state)
    except RuntimeError as error:  # missing, unexpected or differently shaped tensors
        lines = str(error).splitlines()
        reason = lines[1].strip() if len(lines) > 1 else lines[0]
        raise FacegenError(f"{path} does not match its {CONFIG_FILE} ({reason})") from None


# Importing the model modules registers them.
from facegen.models import ae, aegan, dcgan, sngan, vae  # noqa: E402, F401
