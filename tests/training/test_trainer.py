"""The trainer: the run folder, losses that fall, exact resume, Ctrl-C and SIGTERM, bad losses,
bad input."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

import facegen
from facegen.config import TrainConfig
from facegen.errors import DataError, FacegenError
from facegen.models import MODELS
from facegen.training import objectives, trainer
from facegen.training.checkpoint import checkpoint_path, list_checkpoints
from facegen.training.machine import compile_unavailable
from facegen.training.trainer import TrainingError, train
from tests.conftest import tiny_config


def read_log(run):
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def ctrl_c_during_step(monkeypatch, objective: type, at: int) -> None:
    """Make ``objective``'s step of index ``at`` raise SIGINT after it runs, as a Ctrl-C
    arriving during that step would (``monkeypatch.undo()`` ends it)."""
    signal_during_step(monkeypatch, objective, at, signal.SIGINT)


def signal_during_step(monkeypatch, objective: type, at: int, signum: int, times: int = 1) -> None:
    """Make ``objective``'s step of index ``at`` raise ``signum`` ``times`` times after it
    runs, as that signal arriving during that step would (``monkeypatch.undo()`` ends it)."""
    real_step = objective.step

    def step_then_signal(self, images, step, noise):
        logged = real_step(self, images, step, noise)
        if step == at:
            for _ in range(times):
                signal.raise_signal(signum)
        return logged

    monkeypatch.setattr(objective, "step", step_then_signal)


@pytest.mark.parametrize("model", MODELS.names())
def test_run_folder_has_everything_design_promises(faces32, tmp_path, model):
    run = tmp_path / "run"
    result = train(tiny_config(model, faces32), run, progress=False)
    assert result.step == 6 and not result.interrupted
    config = json.loads((run / "config.json").read_text())
    assert config["model"] == model and config["data"]["size"] == 32
    assert config["facegen_version"] == facegen.__version__ and config["torch_version"]
    assert (run / "model" / "config.json").exists() and (
        run / "model" / "model.safetensors"
    ).exists()
    steps = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert steps == ["training-state-0000003.pt", "training-state-0000006.pt"]
    log = read_log(run)
    assert [r["step"] for r in log] == [2, 4, 6]
    assert all(r["images_per_second"] > 0 and "seconds" in r for r in log)
    assert (run / "loss.png").exists()
    grids = sorted(p.name for p in (run / "samples").iterdir())
    model_class = MODELS.get(model)
    if model_class.has_encoder:
        assert "recon-step-0000006.png" in grids
        assert (run / "model" / "sampler-gmm.safetensors").exists()
    assert "step-0000006.png" in grids
    grid = np.asarray(Image.open(run / "samples" / "step-0000006.png"))
    assert grid.shape == (4 * 34 + 2, 4 * 34 + 2, 3)  # 16 faces of 32x32, padding 2


@pytest.mark.parametrize("model", ["ae", "vae"])
def test_reconstruction_loss_falls(faces32, tmp_path, model):
    config = tiny_config(
        model, faces32, steps=40, log_every=10, sample_every=100, checkpoint_every=100
    )
    train(config, tmp_path / "run", progress=False)
    log = read_log(tmp_path / "run")
    assert log[-1]["mse"] < 0.7 * log[0]["mse"]


def test_gan_discriminator_learns(faces32, tmp_path):
    config = tiny_config(
        "dcgan", faces32, steps=30, log_every=5, sample_every=100, checkpoint_every=100
    )
    train(config, tmp_path / "run", progress=False)
    log = read_log(tmp_path / "run")
    assert log[-1]["d_loss"] < log[0]["d_loss"]
    assert log[-1]["d_real"] > log[-1]["d_fake"]  # it tells real from fake


@pytest.mark.parametrize("model", MODELS.names())
def test_resume_continues_exactly(faces32, tmp_path, model):
    train(tiny_config(model, faces32, steps=6), tmp_path / "a", progress=False)
    train(tiny_config(model, faces32, steps=3), tmp_path / "b", progress=False)
    resumed = train(
        tiny_config(model, faces32, steps=6), tmp_path / "b", resume=True, progress=False
    )
    assert resumed.step == 6
    a = load_file(tmp_path / "a" / "model" / "model.safetensors")
    b = load_file(tmp_path / "b" / "model" / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key

    # The 3-step run logged its last step too; the resumed run logs on from there.
    assert [r["step"] for r in read_log(tmp_path / "b")] == [2, 3, 4, 6]
    assert read_log(tmp_path / "b")[0] == read_log(tmp_path / "a")[0] | {
        k: read_log(tmp_path / "b")[0][k] for k in ("images_per_second", "seconds")
    }


def test_gan_with_augmentation_trains_and_resumes_exactly(faces32, tmp_path):
    changes = {"augment": "color,translation,cutout", "steps": 6}
    train(tiny_config("sngan", faces32, **changes), tmp_path / "a", progress=False)
    train(tiny_config("sngan", faces32, **changes | {"steps": 3}), tmp_path / "b", progress=False)
    train(tiny_config("sngan", faces32, **changes), tmp_path / "b", resume=True, progress=False)
    plain = tiny_config("sngan", faces32, steps=6)
    train(plain, tmp_path / "plain", progress=False)
    a, b, c = (load_file(tmp_path / n / "model" / "model.safetensors") for n in ("a", "b", "plain"))
    assert all(torch.equal(a[key], b[key]) for key in a)
    assert not all(torch.equal(a[key], c[key]) for key in a)  # the critic saw other images


@pytest.mark.slow
def test_adversarial_autoencoder_critic_starts_late_and_resumes_exactly(
    faces32, tmp_path, monkeypatch
):
    config = tiny_config(
        "aegan", faces32, steps=8, log_every=1, adv_start=0.5, augment="translation,cutout"
    )
    train(config, tmp_path / "a", progress=False)
    log = read_log(tmp_path / "a")
    # Steps 1-4 (progress 0 to 3/8) are plain AE steps, the critic joins from step 5 (4/8).
    assert all(r["d_loss"] == 0 and r["adv_weight"] == 0 for r in log[:4])
    assert all(r["d_loss"] > 0 and r["adv_weight"] > 0 for r in log[4:])

    # Ctrl-C inside the critic's part of the run.
    ctrl_c_during_step(monkeypatch, objectives.AdversarialAutoencoderObjective, at=5)
    assert train(config, tmp_path / "b", progress=False).interrupted
    monkeypatch.undo()
    train(config, tmp_path / "b", resume=True, progress=False)
    a, b = (load_file(tmp_path / n / "model" / "model.safetensors") for n in ("a", "b"))
    assert all(torch.equal(a[key], b[key]) for key in a)
    state = {
        n: torch.load(tmp_path / n / "checkpoints" / "training-state-0000008.pt") for n in "ab"
    }
    critic = {n: state[n]["modules"]["discriminator"] for n in "ab"}
    assert all(torch.equal(critic["a"][key], critic["b"][key]) for key in critic["a"])


def test_adversarial_autoencoder_critic_moves_the_decoder(faces32, tmp_path):
    """Same seed, same data: the critic changes the decoder; with adv_weight 0 the loss is
    the reconstruction alone."""
    changes = {"steps": 6, "adv_start": 0.0}
    train(tiny_config("aegan", faces32, **changes), tmp_path / "adv", progress=False)
    train(
        tiny_config("aegan", faces32, **changes, adv_weight=0.0), tmp_path / "off", progress=False
    )
    adv, off = (load_file(tmp_path / n / "model" / "model.safetensors") for n in ("adv", "off"))
    assert not all(torch.equal(adv[key], off[key]) for key in adv)
    assert read_log(tmp_path / "off")[-1]["loss"] == pytest.approx(
        read_log(tmp_path / "off")[-1]["recon"]
    )


def test_lr_decay_ends_at_zero_and_resumes_exactly(faces32, tmp_path, monkeypatch):
    decayed = tiny_config("dcgan", faces32, steps=6, lr=1e-3, lr_d=2e-3, lr_decay=0.5)
    train(decayed, tmp_path / "a", progress=False)
    # Ctrl-C in the 3rd step: the schedule must go on from step 3 of 6.
    ctrl_c_during_step(monkeypatch, objectives.GANObjective, at=2)
    assert train(decayed, tmp_path / "b", progress=False).interrupted
    monkeypatch.undo()
    train(decayed, tmp_path / "b", resume=True, progress=False)
    train(decayed.replace(lr_decay=0.0), tmp_path / "flat", progress=False)
    state = torch.load(tmp_path / "a" / "checkpoints" / "training-state-0000006.pt")
    # The last step (index 5 of 6) ran at (1 - 5/6) / 0.5 = 1/3 of each optimiser's rate.
    rates = {name: o["param_groups"][0]["lr"] for name, o in state["optimizers"].items()}
    assert rates == pytest.approx({"model": 1e-3 / 3, "discriminator": 2e-3 / 3})
    a, b, c = (load_file(tmp_path / n / "model" / "model.safetensors") for n in ("a", "b", "flat"))
    assert all(torch.equal(a[key], b[key]) for key in a)
    assert not all(torch.equal(a[key], c[key]) for key in a)


@pytest.mark.parametrize(
    ("step", "total", "seconds", "budget", "scale"),
    [
        (0, 100, 0.0, None, 1.0),
        (70, 100, 0.0, None, 1.0),  # decay starts at 70%
        (85, 100, 0.0, None, 0.5),
        (100, 100, 0.0, None, 0.0),
        (10, None, 90.0, 120.0, 5 / 6),  # by the clock alone
        (85, 100, 10.0, 120.0, 0.5),  # steps further on than the clock
        (10, 100, 114.0, 120.0, 1 / 6),  # the clock further on than the steps
        (10, None, 500.0, 120.0, 0.0),  # past the budget: never negative
    ],
)
def test_lr_scale_follows_the_furthest_of_steps_and_clock(step, total, seconds, budget, scale):
    config = TrainConfig(lr_decay=0.3, time_budget=budget)
    progress = trainer._progress(config, step, total, seconds)
    assert trainer._lr_scale(config, progress) == pytest.approx(scale)


def test_augmentation_is_refused_for_autoencoders(faces32, tmp_path):
    config = tiny_config("ae", faces32, augment="translation")
    with pytest.raises(FacegenError, match="augment='translation' is for GANs"):
        train(config, tmp_path / "run", progress=False)


def test_load_run_samples_reproducibly(faces32, tmp_path):
    train(tiny_config("vae", faces32), tmp_path / "run", progress=False)
    run = facegen.load_run(tmp_path / "run")
    a, b = run.sample(5, seed=1), run.sample(5, seed=1)
    assert a.shape == (5, 3, 32, 32) and torch.equal(a, b)
    assert not torch.equal(a, run.sample(5, seed=2))
    assert run.sample(4, seed=0, sampler="gmm").shape == (4, 3, 32, 32)
    images = torch.rand(3, 3, 32, 32) * 2 - 1
    assert run.reconstruct(images).shape == (3, 3, 32, 32)


def test_ctrl_c_saves_and_resume_finishes(faces32, tmp_path, monkeypatch):
    ctrl_c_during_step(monkeypatch, objectives.AutoencoderObjective, at=3)  # the 4th step
    result = train(
        tiny_config("ae", faces32, steps=10, checkpoint_every=100), tmp_path / "r", progress=False
    )
    assert result.interrupted and result.step == 4
    assert result.stop_signal == signal.SIGINT and result.exit_code == 130
    assert (tmp_path / "r" / "checkpoints" / "training-state-0000004.pt").exists()
    monkeypatch.undo()
    result = train(
        tiny_config("ae", faces32, steps=10), tmp_path / "r", resume=True, progress=False
    )
    assert result.step == 10 and not result.interrupted and result.exit_code == 0


def test_sigterm_saves_like_ctrl_c_and_exits_143(faces32, tmp_path, monkeypatch, capsys):
    """What `timeout`, SLURM, Kubernetes and systemd send: the step ends, the run saves."""
    before = signal.getsignal(signal.SIGTERM)
    signal_during_step(monkeypatch, objectives.AutoencoderObjective, at=3, signum=signal.SIGTERM)
    run = tmp_path / "r"
    result = train(tiny_config("ae", faces32, steps=10, checkpoint_every=100), run, progress=False)
    assert result.interrupted and result.step == 4
    assert result.stop_signal == signal.SIGTERM and result.exit_code == 143
    assert checkpoint_path(run, 4).exists() and read_log(run)[-1]["step"] == 4
    assert "SIGTERM: stopping after this step and saving" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) is before  # the caller's handler is back


@pytest.mark.parametrize(
    ("signum", "quits"), [(signal.SIGINT, KeyboardInterrupt), (signal.SIGTERM, SystemExit)]
)
def test_a_second_signal_quits_at_once_leaving_nothing_half_written(
    faces32, tmp_path, monkeypatch, signum, quits
):
    signal_during_step(monkeypatch, objectives.AutoencoderObjective, at=3, signum=signum, times=2)
    run = tmp_path / "r"
    with pytest.raises(quits) as stop:
        train(tiny_config("ae", faces32, steps=10, checkpoint_every=3), run, progress=False)
    if quits is SystemExit:
        assert stop.value.code == 143
    # The milestone before it, no checkpoint for the step it quit in, no temporary file.
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["training-state-0000003.pt"]


def test_a_signal_while_the_stopped_run_saves_quits_at_once(faces32, tmp_path, monkeypatch, capsys):
    signal_during_step(monkeypatch, objectives.AutoencoderObjective, at=3, signum=signal.SIGTERM)
    real_save = trainer.save_training_state

    def signal_then_save(run, step, state, keep):
        if step == 4:  # the save the first SIGTERM asked for
            signal.raise_signal(signal.SIGTERM)
        return real_save(run, step, state, keep)

    monkeypatch.setattr(trainer, "save_training_state", signal_then_save)
    run = tmp_path / "r"
    with pytest.raises(SystemExit) as stop:
        train(tiny_config("ae", faces32, steps=10, checkpoint_every=3), run, progress=False)
    assert stop.value.code == 143
    assert "SIGTERM: quitting at once" in capsys.readouterr().err
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["training-state-0000003.pt"]


def wait_for_log_line(run, process: subprocess.Popen, stderr, timeout: float = 120.0) -> None:
    """Until the run has logged a step (so it is in its loop), or fail if it ended first."""
    deadline = time.monotonic() + timeout
    log = run / "log.jsonl"
    while not (log.exists() and log.read_text().strip()):
        if process.poll() is not None:
            stderr.seek(0)
            pytest.fail(f"the run ended first (status {process.returncode}): {stderr.read()}")
        assert time.monotonic() < deadline, "no log line in time"
        time.sleep(0.01)


@pytest.mark.slow
def test_sigterm_stops_a_real_run_that_resumes_exactly(faces32, tmp_path):
    """`facegen train` in its own process, with stderr a file (as under SLURM or in CI)."""
    steps = 100  # ~2 s of steps: the signal lands long before the end
    config = tiny_config("ae", faces32, steps=steps, checkpoint_every=1000, sample_every=1000)
    preset = tmp_path / "tiny.json"
    preset.write_text(json.dumps(config.to_dict()))
    run = tmp_path / "run"
    command = [sys.executable, "-m", "facegen", "train", "--config", str(preset)]
    command += ["--data", str(faces32.path), "--out"]
    # The same thread count as this process, so that its arithmetic matches bit for bit.
    env = os.environ | {"OMP_NUM_THREADS": str(torch.get_num_threads())}
    with open(tmp_path / "stderr.txt", "w+") as stderr:
        process = subprocess.Popen(
            [*command, str(run)], stdout=subprocess.PIPE, stderr=stderr, text=True, env=env
        )
        wait_for_log_line(run, process, stderr)
        process.send_signal(signal.SIGTERM)
        stdout, _ = process.communicate(timeout=120)
        stderr.seek(0)
        errors = stderr.read()
    assert process.returncode == 143, errors
    assert "SIGTERM: stopping after this step and saving" in errors
    stopped = int(re.search(rf"interrupted at step (\d+) of {steps} .*; saved", stdout).group(1))
    assert 2 <= stopped < steps
    assert [step for step, _ in list_checkpoints(run)] == [stopped]
    assert read_log(run)[-1]["step"] == stopped

    resumed = subprocess.run(
        [*command, str(run), "--resume"], capture_output=True, text=True, env=env, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"trained ae for {steps} steps" in resumed.stdout
    # Not a TTY: progress as a few plain lines, not hundreds of carriage-return redraws.
    assert "\r" not in resumed.stderr and "\r" not in errors
    assert 2 <= sum(line.startswith("train ae") for line in resumed.stderr.splitlines()) <= 25

    train(config, tmp_path / "whole", progress=False)
    a = load_file(tmp_path / "whole" / "model" / "model.safetensors")
    b = load_file(run / "model" / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_nan_loss_stops_naming_the_step_and_keeps_the_last_checkpoint(
    faces32, tmp_path, monkeypatch
):
    real_step = objectives.AutoencoderObjective.step

    def poisoned(self, images, step, noise):
        logged = real_step(self, images, step, noise)
        if step == 4:
            logged["loss"] = torch.tensor(math.nan)
        return logged

    monkeypatch.setattr(objectives.AutoencoderObjective, "step", poisoned)
    with pytest.raises(TrainingError, match="step 5") as error:
        train(
            tiny_config("ae", faces32, steps=10, checkpoint_every=2), tmp_path / "r", progress=False
        )
    assert "training-state-0000004.pt" in str(error.value)
    names = sorted(p.name for p in (tmp_path / "r" / "checkpoints").iterdir())
    assert names[-1] == "training-state-0000004.pt"


def test_bad_input_gets_clear_errors(faces32, tmp_path):
    with pytest.raises(FacegenError, match="unknown model 'unet'; choose one of: ae, aegan, dcgan"):
        train(tiny_config("ae", faces32, model="unet"), tmp_path / "a", progress=False)
    with pytest.raises(DataError, match="not a packed data set"):
        train(tiny_config("ae", tmp_path), tmp_path / "b", progress=False)
    big = tiny_config("ae", faces32)
    big.model_config["image_size"] = 64
    with pytest.raises(FacegenError, match="set for 64x64 images but .* holds 32x32"):
        train(big, tmp_path / "c", progress=False)
    train(tiny_config("ae", faces32, steps=2), tmp_path / "d", progress=False)
    with pytest.raises(FacegenError, match="already exists; pass --resume .* or --overwrite"):
        train(tiny_config("ae", faces32, steps=2), tmp_path / "d", progress=False)
    with pytest.raises(FacegenError, match="already reached step 2"):
        train(tiny_config("ae", faces32, steps=2), tmp_path / "d", resume=True, progress=False)
    with pytest.raises(FacegenError, match="cannot resume: .* does not exist"):
        train(tiny_config("ae", faces32), tmp_path / "nope", resume=True, progress=False)
    result = train(
        tiny_config("ae", faces32, steps=2), tmp_path / "d", overwrite=True, progress=False
    )
    assert result.step == 2


def test_resume_refuses_another_data_set(faces32, packed_factory, tmp_path):
    train(tiny_config("ae", faces32, steps=3), tmp_path / "r", progress=False)
    other = packed_factory(n=50, size=32)
    with pytest.raises(FacegenError, match="not the data set this run was trained on"):
        train(tiny_config("ae", other, steps=6), tmp_path / "r", resume=True, progress=False)


def test_compile_without_a_compiler_trains_eagerly_and_says_so(
    faces32, tmp_path, monkeypatch, capsys
):
    # Not through $CXX: Inductor reads it once, when torch first imports it, so setting it
    # here could break compiling for the rest of the session.
    monkeypatch.setattr(trainer, "compile_unavailable", lambda device: "no C++ compiler (test)")
    run = tmp_path / "run"
    result = train(tiny_config("ae", faces32, compile=True), run, progress=False)
    assert result.step == 6
    assert "no C++ compiler (test); training without torch.compile" in capsys.readouterr().err
    config = json.loads((run / "config.json").read_text())
    assert config["train"]["compile"] is True and config["compiled"] is False


@pytest.mark.slow
# torch's own use of torch.jit inside Inductor warns; nothing of ours to change.
@pytest.mark.filterwarnings(r"ignore:`torch\.jit\.:DeprecationWarning")
@pytest.mark.skipif(
    compile_unavailable(torch.device("cpu")) is not None, reason="no C++ compiler for Inductor"
)
@pytest.mark.parametrize("model", ["ae", "aegan"])
def test_compiled_training_matches_eager(faces32, tmp_path, model):
    def losses(compile: bool) -> list[float]:
        config = tiny_config(
            model, faces32, steps=4, log_every=1, precision="fp32", compile=compile
        )
        run = tmp_path / str(compile)
        train(config, run, progress=False)
        assert json.loads((run / "config.json").read_text())["compiled"] is compile
        return [r["loss"] for r in read_log(run)]

    assert losses(True) == pytest.approx(losses(False), rel=1e-3)
