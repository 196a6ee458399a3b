"""Resume state: ``checkpoints/training-state-STEP.pt``, tensors and plain types only.

Loaded with ``weights_only=True`` (no pickled code runs on load), written to a temporary
name and renamed, and only the last ``keep`` are kept. Inference weights live apart, in
``model/`` as safetensors.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from facegen._version import __version__
from facegen.errors import FacegenError, first_line
from facegen.files import atomic_path

CHECKPOINT_FOLDER = "checkpoints"
STATE_FORMAT = 1
_NAME = re.compile(r"^training-state-(\d+)\.pt$")


def checkpoint_path(run: Path, step: int) -> Path:
    return run / CHECKPOINT_FOLDER / f"training-state-{step:07d}.pt"


def list_checkpoints(run: Path) -> list[tuple[int, Path]]:
    """(step, path) of every checkpoint of ``run``, oldest first."""
    folder = run / CHECKPOINT_FOLDER
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return sorted(found)


def save_training_state(run: Path, step: int, state: dict[str, Any], keep: int) -> Path:
    """Write the state for ``step`` and delete all but the newest ``keep`` checkpoints."""
    path = checkpoint_path(run, step)
    state = {"format": STATE_FORMAT, "facegen_version": __version__, "step": step, **state}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    for _, old in list_checkpoints(run)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def load_training_state(path: Path) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise FacegenError(f"checkpoint {path} does not exist") from None
    except Exception as error:  # unpickling errors of a damaged or foreign file
        raise FacegenError(f"checkpoint {path} cannot be read: {first_line(error)}") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise FacegenError(f"{path} is not a facegen training state (format {STATE_FORMAT})")
    return state


class EMA:
    """An exponential moving average of a model's weights (buffers are copied as they are).

    The decay ramps up as ``min(decay, (1 + n) / (10 + n))`` over the first updates, so the
    average is not dominated by the random initial weights early in training.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.updates = 0
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for average, current in zip(self.model.parameters(), model.parameters(), strict=True):
            average.lerp_(current.detach(), 1 - decay)
        for average_buffer, buffer in zip(self.model.buffers(), model.buffers(), strict=True):
            average_buffer.copy_(buffer)

    def state_dict(self) -> dict[str, Any]:
        return {"updates": self.updates, "model": self.model.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.updates = int(state["updates"])
        self.model.load_state_dict(state["model"])
