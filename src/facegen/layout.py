"""The names inside a run folder (the README's Layout) and the reading of its config.json,
in a module without torch so that the CLI's help and the report can use them without
loading it.

    RUN/config.json                      resolved config, data summary, versions
    RUN/model/                           config.json, model.safetensors, samplers, directions
    RUN/checkpoints/training-state-STEP.pt
    RUN/log.jsonl   RUN/loss.png   RUN/samples/step-STEP.png (+ recon-step-STEP.png)
    RUN/tensorboard/                     event files, with train --log tensorboard
    RUN/explore/*.png                    the exploration commands' pictures
    RUN/metrics.jsonl   RUN/eval/*.png   facegen eval's results and pictures
    RUN/export/generator.onnx            facegen export's files
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from facegen.errors import FacegenError

# The image sides facegen packs data at and builds models for (the packed format's, the
# models' and the presets' sizes: one list, below both data and models).
SIZES: tuple[int, ...] = (32, 64, 128)

RUN_CONFIG = "config.json"
MODEL_FOLDER = "model"
LOG_FILE = "log.jsonl"
LOSS_PLOT = "loss.png"
SAMPLES_FOLDER = "samples"
TENSORBOARD_FOLDER = "tensorboard"
EXPLORE_FOLDER = "explore"
METRICS_FILE = "metrics.jsonl"
EVAL_FOLDER = "eval"
EXPORT_FOLDER = "export"


def read_run_config(run: Path) -> dict[str, Any]:
    path = Path(run) / RUN_CONFIG
    if not Path(run).is_dir():
        raise FacegenError(f"{run} does not exist; train one with: facegen train --out {run} ...")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FacegenError(f"{run} is not a facegen run (no {RUN_CONFIG})") from None
    except ValueError as error:
        raise FacegenError(f"{path} is damaged: {error}") from None
