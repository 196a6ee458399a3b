"""Experiment tracking: `train --log tensorboard` puts every logged value, the milestone
pictures and the config into RUN/tensorboard/, read back here as TensorBoard reads them;
a resumed run shows each step once; only rank 0 writes; mistakes are one line."""

from __future__ import annotations

import importlib.util
import io
import json
import math
import sys
import textwrap
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from facegen.cli import main
from facegen.config import TrainConfig
from facegen.errors import FacegenError
from facegen.tracking import event_files
from facegen.training import objectives
from facegen.training.trainer import TrainingError, train
from tests.conftest import tiny_config
from tests.training.test_trainer import ctrl_c_during_step, read_log

needs_tensorboard = pytest.mark.skipif(
    importlib.util.find_spec("tensorboard") is None,
    reason="tensorboard is not installed (pip install 'facegen[tensorboard]')",
)

# log.jsonl's bookkeeping keys and their tags; every other key is one of the objective's.
BOOKKEEPING = {
    "epoch": "progress/epoch",
    "seconds": "progress/seconds",
    "images_per_second": "speed/images_per_second",
}


def tag_of(key: str) -> str:
    return BOOKKEEPING.get(key, f"loss/{key}")


def read_events(run: Path):
    """Everything in RUN/tensorboard/ as TensorBoard's own reader gives it (all of it:
    0 turns off its sampling)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    folder = run / "tensorboard"
    assert folder.is_dir()
    keep_all = {"scalars": 0, "images": 0, "tensors": 0}
    return EventAccumulator(str(folder), size_guidance=keep_all).Reload()


def recorded(run: Path) -> Counter:
    """How many times each (tag, step) is in the event files themselves, whatever a
    reader would purge."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    counts: Counter = Counter()
    for path in event_files(run / "tensorboard"):
        for event in EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                counts[value.tag, event.step] += 1
    return counts


def scalars(events, tag: str) -> dict[int, float]:
    return {e.step: e.value for e in sorted(events.Scalars(tag), key=lambda e: e.step)}


def picture(events, tag: str, step: int) -> np.ndarray:
    (event,) = [e for e in events.Images(tag) if e.step == step]
    return np.asarray(Image.open(io.BytesIO(event.encoded_image_string)))


def config_text(events) -> dict:
    (event,) = events.Tensors("config/text_summary")
    return json.loads(textwrap.dedent(event.tensor_proto.string_val[0].decode()))


def grids_written(run: Path) -> dict[str, dict[int, np.ndarray]]:
    """The grids in RUN/samples/ by tracker name and step."""
    written: dict[str, dict[int, np.ndarray]] = {"samples": {}, "reconstructions": {}}
    for path in (run / "samples").glob("*.png"):
        kind, step = path.stem.rsplit("-", 1)
        tag = "reconstructions" if kind == "recon-step" else "samples"
        written[tag][int(step)] = np.asarray(Image.open(path))
    return written


@pytest.mark.slow
@needs_tensorboard
def test_tensorboard_holds_the_log_the_pictures_and_the_config(faces32, tmp_path):
    from tensorboard.plugins.hparams.metadata import (
        SESSION_START_INFO_TAG,
        parse_session_start_info_plugin_data,
    )

    config = tiny_config("vae", faces32, log="tensorboard", lr_decay=0.5)
    run = tmp_path / "run"
    train(config, run, progress=False)
    events = read_events(run)

    # Every value of log.jsonl, at its step (stored as float32).
    log = read_log(run)
    keys = {key for record in log for key in record} - {"step"}
    assert set(events.Tags()["scalars"]) == {tag_of(key) for key in keys} | {"lr/model"}
    assert {"loss/recon", "loss/kl", "speed/images_per_second"} <= {tag_of(k) for k in keys}
    for key in keys:
        expected = {r["step"]: pytest.approx(r[key], rel=1e-6, abs=1e-6) for r in log}
        assert scalars(events, tag_of(key)) == expected, key
    # The learning rate each logged step ran at: full, then falling over the last half.
    # The 6th step is at progress 5/6: (1 - 5/6) / 0.5 = 1/3 of the rate.
    lr = scalars(events, "lr/model")
    assert lr == {2: pytest.approx(2e-3), 4: pytest.approx(2e-3), 6: pytest.approx(2e-3 / 3)}

    # The grids of samples/, pixel for pixel, at the steps the trainer wrote them.
    written = grids_written(run)
    assert set(written["samples"]) == set(written["reconstructions"]) == {3, 6}
    assert set(events.Tags()["images"]) == set(written)
    for tag, grids in written.items():
        assert sorted(e.step for e in events.Images(tag)) == sorted(grids)
        for step, grid in grids.items():
            assert np.array_equal(picture(events, tag, step), grid), (tag, step)

    # The config: config.json as text, and flattened as hyperparameters.
    saved = json.loads((run / "config.json").read_text())
    assert config_text(events) == saved
    start = events.PluginTagToContent("hparams")[SESSION_START_INFO_TAG]
    hparams = parse_session_start_info_plugin_data(start).hparams
    assert hparams["train.lr"].number_value == pytest.approx(2e-3)
    assert hparams["model_config.latent_dim"].number_value == 16
    assert hparams["train.log"].string_value == "tensorboard"
    assert hparams["precision"].string_value == saved["precision"]
    assert json.loads(hparams["train.betas"].string_value) == [0.9, 0.999]


def _crash_at(monkeypatch, objective: type, at: int) -> None:
    """A NaN loss logged by step index ``at``: the run stops there with a TrainingError,
    keeping its last checkpoint, as a crash would; what it logged since then runs again."""
    real_step = objective.step

    def poisoned(self, images, step, noise):
        logged = real_step(self, images, step, noise)
        if step == at:
            logged["g_loss"] = torch.tensor(math.nan)
        return logged

    monkeypatch.setattr(objective, "step", poisoned)


def without_pictures(counts: Counter) -> Counter:
    return Counter({key: n for key, n in counts.items() if key[0] != "samples"})


@pytest.mark.slow
@needs_tensorboard
@pytest.mark.parametrize("stop", ["crash", "ctrl-c"])
def test_a_resumed_run_records_each_step_once(faces32, tmp_path, monkeypatch, stop):
    config = tiny_config(
        "dcgan", faces32, steps=8, log_every=1, sample_every=2, checkpoint_every=3,
        log="tensorboard",
    )  # fmt: skip
    train(config, tmp_path / "whole", progress=False)

    run = tmp_path / "resumed"
    if stop == "crash":
        _crash_at(monkeypatch, objectives.GANObjective, at=5)  # the 6th step; checkpoint 3
        with pytest.raises(TrainingError, match="step 6"):
            train(config, run, progress=False)
        # Steps 4 and 5 and the pictures of step 4 came after the checkpoint: they run again.
        before = recorded(run)
        assert before["loss/d_loss", 5] == 1 and before["samples", 4] == 1
    else:
        ctrl_c_during_step(monkeypatch, objectives.GANObjective, at=4)  # saved at step 5
        assert train(config, run, progress=False).interrupted
    monkeypatch.undo()
    train(config, run, resume=True, progress=False)

    counts = recorded(run)
    assert set(counts.values()) == {1}, [key for key, n in counts.items() if n > 1]
    # The same values, configs and learning rates as the run that was never stopped...
    assert without_pictures(counts) == without_pictures(recorded(tmp_path / "whole"))
    whole, resumed = read_events(tmp_path / "whole"), read_events(run)
    assert set(resumed.Tags()["scalars"]) == set(whole.Tags()["scalars"])
    assert {"lr/model", "lr/discriminator", "loss/g_loss"} <= set(whole.Tags()["scalars"])
    for tag in whole.Tags()["scalars"]:
        assert list(scalars(resumed, tag)) == list(range(1, 9)), tag
        if tag.startswith(("loss/", "lr/")):  # the same numbers: the resume is exact
            assert scalars(resumed, tag) == scalars(whole, tag), tag
    # ...and the pictures of samples/: the milestones, plus a Ctrl-C's stopping step.
    steps = sorted(grids_written(run)["samples"])
    assert steps == ([2, 4, 6, 8] if stop == "crash" else [2, 4, 5, 6, 8])
    assert sorted(e.step for e in resumed.Images("samples")) == steps
    for step in (2, 4, 6, 8):
        assert np.array_equal(picture(resumed, "samples", step), picture(whole, "samples", step))
    # The config once: the resumed run's own, as its config.json.
    assert config_text(resumed) == json.loads((run / "config.json").read_text())


@pytest.mark.slow
@needs_tensorboard
def test_only_rank_zero_writes_events(faces32, tmp_path):
    from tests.training.test_distributed import run_ddp

    config = tiny_config("vae", faces32, steps=4, checkpoint_every=2, sample_every=2)
    run = tmp_path / "run"
    run_ddp(config.replace(log="tensorboard"), run, tmp_path / "results")
    assert len(list(event_files(run / "tensorboard"))) == 1  # one writer's file, not two
    counts = recorded(run)
    assert set(counts.values()) == {1}
    events = read_events(run)
    for record in read_log(run):
        assert scalars(events, "loss/recon")[record["step"]] == pytest.approx(record["recon"])
    assert config_text(events)["world_size"] == 2


def test_log_tensorboard_without_the_package_is_one_line_before_training(
    faces32, tmp_path, monkeypatch, capsys
):
    # As if tensorboard were not installed: importing it (or torch's writer) fails.
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    out = tmp_path / "run"
    code = main(["train", "--data", str(faces32.path), "--out", str(out), "--steps", "2",
                 "--log", "tensorboard", "--quiet"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err == (
        "facegen: error: --log tensorboard needs the tensorboard package: "
        "pip install 'facegen[tensorboard]'\n"
    )
    assert not out.exists()  # nothing started


def test_an_unknown_tracker_is_a_one_line_error(faces32, tmp_path, capsys):
    with pytest.raises(FacegenError, match=r"^log must be one of none, tensorboard, not 'wandb'$"):
        TrainConfig(log="wandb").validate()
    base = ["train", "--data", str(faces32.path), "--out", str(tmp_path / "run"), "--steps", "2"]
    assert main([*base, "--set", "log=wandb"]) == 2
    err = capsys.readouterr().err
    assert err == "facegen: error: log must be one of none, tensorboard, not 'wandb'\n"
    with pytest.raises(SystemExit) as stop:
        main([*base, "--log", "wandb"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "invalid choice: 'wandb'" in err
    assert not (tmp_path / "run").exists()


@needs_tensorboard
def test_no_tracking_by_default_and_a_resume_can_turn_it_on(faces32, tmp_path):
    run = tmp_path / "run"
    train(tiny_config("ae", faces32, steps=2), run, progress=False)
    assert not (run / "tensorboard").exists()
    assert json.loads((run / "config.json").read_text())["train"]["log"] == "none"

    train(tiny_config("ae", faces32, steps=4, log="tensorboard"), run, resume=True, progress=False)
    assert json.loads((run / "config.json").read_text())["train"]["log"] == "tensorboard"
    assert list(scalars(read_events(run), "loss/recon")) == [4]  # from where it resumed
