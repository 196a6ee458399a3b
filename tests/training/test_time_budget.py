"""`--time-budget`: a run that ends when its training time is spent, as at any other end."""

from __future__ import annotations

import json

import pytest

from facegen.cli import main
from facegen.config import format_duration, parse_duration
from facegen.errors import FacegenError
from facegen.training.trainer import train
from tests.conftest import tiny_config


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("600", 600), ("90s", 90), ("10m", 600), ("1.5h", 5400), ("1h30m", 5400), (" 2m 5s", 125)],
)
def test_durations_parse(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "ten minutes", "10x", "-5m", "0", "m"])
def test_bad_durations_are_refused(text):
    with pytest.raises(FacegenError, match="duration"):
        parse_duration(text)


def test_durations_format():
    assert format_duration(5400) == "1h30m00s"
    assert format_duration(75) == "1m15s"
    assert format_duration(9.6) == "10s"


def test_a_spent_budget_ends_the_run_like_its_last_step(faces32, tmp_path):
    config = tiny_config("ae", faces32, steps=None, time_budget=0.5, checkpoint_every=10_000)
    result = train(config, tmp_path / "run", progress=False)
    assert result.time_budget_spent and not result.interrupted
    assert result.total_steps is None and result.step >= 1
    run = tmp_path / "run"
    assert (run / "checkpoints" / f"training-state-{result.step:07d}.pt").exists()
    assert (run / "samples" / f"step-{result.step:07d}.png").exists()
    assert (run / "model" / "sampler-gmm.safetensors").exists()  # fitted as at any end
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == result.step and log[-1]["seconds"] >= 0.5


def test_steps_end_first_when_they_come_first(faces32, tmp_path):
    config = tiny_config("ae", faces32, steps=3, time_budget=3600)
    result = train(config, tmp_path / "run", progress=False)
    assert result.step == 3 and not result.time_budget_spent


def test_resume_needs_a_larger_budget(faces32, tmp_path):
    config = tiny_config("vae", faces32, steps=None, time_budget=0.3)
    first = train(config, tmp_path / "run", progress=False)
    with pytest.raises(FacegenError, match="larger --time-budget"):
        train(config, tmp_path / "run", resume=True, progress=False)
    longer = config.replace(time_budget=first.seconds + 0.3)
    second = train(longer, tmp_path / "run", resume=True, progress=False)
    assert second.step > first.step and second.time_budget_spent


def test_cli_time_budget_replaces_the_presets_length(faces32, tmp_path, capsys):
    code = main(
        ["train", "--model", "ae", "--data", str(faces32.path), "--out", str(tmp_path / "r"),
         "--time-budget", "1s", "--set", "model.width=8", "--set", "model.latent_dim=8",
         "--batch-size", "8", "--quiet"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0 and "time budget 1s spent" in out
    saved = json.loads((tmp_path / "r" / "config.json").read_text())["train"]
    assert saved["steps"] is None and saved["time_budget"] == 1.0
    with pytest.raises(SystemExit) as refused:
        main(["train", "--out", str(tmp_path / "x"), "--data", str(faces32.path),
              "--time-budget", "soon"])  # fmt: skip
    assert refused.value.code == 2
    assert "a duration looks like 600, 90s, 10m" in capsys.readouterr().err
