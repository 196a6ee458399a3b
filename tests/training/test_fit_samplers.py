"""The samplers a run fits after training (``samplers`` in the config): each saved, the first
listed drawn for the last grid and the run's default, and the commands that draw from it."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from facegen.cli import main
from facegen.config import TrainConfig, resolve
from facegen.data.loader import to_uint8
from facegen.demo.studio import Studio
from facegen.errors import FacegenError
from facegen.models import build_model
from facegen.run import Run, load_run
from facegen.sampling import SAMPLERS, FlowSampler, save_sampler
from facegen.training.trainer import train
from facegen.viz.grid import image_grid
from tests.conftest import TINY_MODELS, tiny_config


class TinyFlow(FlowSampler):
    """The flow with defaults small enough for a test (a fit in a few hundredths of a second):
    training calls the sampler with the config's options only."""

    latents_per_dimension = 0  # the tiny data sets have fewer latents than a real flow needs

    def __init__(self, width=16, depth=1, iterations=20, steps=4, lr=1e-3, batch=32, **rest):
        super().__init__(width, depth, iterations, steps, lr, batch, **rest)


class DemandingFlow(TinyFlow):
    """A tiny flow that keeps a real minimum: more latents than any test data set has."""

    latents_per_dimension = 10**6


@pytest.fixture(scope="module")
def ae_with_flow(faces32, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("samplers") / "ae"
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(SAMPLERS._entries, "flow", TinyFlow)
        train(tiny_config("ae", faces32, samplers=("flow", "gmm")), out, progress=False)
    return out


def test_training_fits_and_saves_every_listed_sampler(ae_with_flow: Path):
    model = ae_with_flow / "model"
    assert (model / "sampler-gmm.safetensors").is_file()
    assert (model / "sampler-flow.safetensors").is_file()
    run = load_run(ae_with_flow)
    assert run.sampler_names == ["flow", "gmm", "normal"] and run.default_sampler == "flow"
    flow = run.sampler("flow")  # the file holds its options: the real class rebuilds it
    assert type(flow) is FlowSampler and flow.width == 16 and flow.latent_dim == 16
    assert run.sampler("gmm").components == 3  # the config's sampler_components still counts


def test_the_last_grid_draws_from_the_flow(ae_with_flow: Path):
    run = load_run(ae_with_flow)
    z = run.sampler("flow").sample(16, torch.Generator().manual_seed(0))  # config seed 0
    expected = image_grid(to_uint8(run.decode(z)))
    grid = np.asarray(Image.open(ae_with_flow / "samples" / "step-0000006.png"))
    assert np.array_equal(grid, expected)


def test_sample_and_the_studio_use_the_flow(ae_with_flow: Path, tmp_path: Path, capsys):
    run = tmp_path / "ae"
    shutil.copytree(ae_with_flow, run)
    argv = ["sample", str(run), "--n", "4", "--quiet", "--out"]
    assert main([*argv, str(tmp_path / "default.png")]) == 0
    assert "from the flow sampler" in capsys.readouterr().out
    assert main([*argv, str(tmp_path / "flow.png"), "--sampler", "flow"]) == 0
    assert (tmp_path / "default.png").read_bytes() == (tmp_path / "flow.png").read_bytes()
    assert main([*argv, str(tmp_path / "gmm.png"), "--sampler", "gmm"]) == 0
    assert (tmp_path / "gmm.png").read_bytes() != (tmp_path / "flow.png").read_bytes()
    studio = Studio([load_run(run)])
    try:
        assert studio.samplers("ae") == ["flow", "gmm", "normal"]
        assert studio.sample("ae", seed=0, count=2, sampler="flow").ndim == 3
    finally:
        studio.close()


@pytest.mark.parametrize("listed", [["gmm", "flow"], ["flow", "gmm"], ["gmm"], ["flow"], None])
def test_an_aes_default_is_the_first_listed_sampler_it_fitted(ae_with_flow: Path, listed):
    run = load_run(ae_with_flow)  # fitted both; its saved config lists them
    assert run.config["train"]["samplers"] == ["flow", "gmm"]
    if listed is None:  # a run saved without the list
        del run.config["train"]["samplers"]
    else:
        run.config["train"]["samplers"] = listed
    assert run.sampler_names == ["flow", "gmm", "normal"]
    assert run.default_sampler == (listed[0] if listed else "flow")


def test_a_fitted_flow_becomes_a_vaes_default_too(tmp_path: Path):
    vae = build_model("vae", {**TINY_MODELS["vae"], "image_size": 32})
    run = Run(path=tmp_path, config={}, model=vae, device=torch.device("cpu"))
    assert run.default_sampler == "normal"
    latents = torch.randn(64, vae.latent_dim, generator=torch.Generator().manual_seed(0))
    with pytest.warns(RuntimeWarning, match="the flow sampler needs at least"):  # 64 latents
        flow = FlowSampler(width=16, depth=1, iterations=5).fit(latents, torch.Generator())
    save_sampler(flow, tmp_path / "model")
    assert run.sampler_names == ["flow", "normal"] and run.default_sampler == "flow"


def test_samplers_are_checked_and_parsed_from_set():
    config = resolve({}, {}, [("samplers", "gmm,flow")])
    assert config.samplers == ("gmm", "flow")
    assert TrainConfig.from_dict(config.to_dict()).samplers == ("gmm", "flow")
    TrainConfig(samplers=()).validate()  # fit none
    for bad in ("vamp", "normal"):
        message = f"samplers: '{bad}' is not a sampler fitted after training; choose from: "
        with pytest.raises(FacegenError, match=message + "flow, gmm$"):
            TrainConfig(samplers=("gmm", bad)).validate()


@pytest.mark.parametrize(
    ("samplers", "note"), [(("flow",), "the GMM instead"), (("gmm", "flow"), "only gmm")]
)
def test_too_few_latents_for_the_flow_leave_it_out_with_a_note(
    faces32, tmp_path, capsys, samplers, note
):
    out = tmp_path / "ae"
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(SAMPLERS._entries, "flow", DemandingFlow)
        train(tiny_config("ae", faces32, samplers=samplers), out, progress=False)
    err = capsys.readouterr().err
    assert "note: the flow sampler needs at least" in err and f"fitting {note}" in err
    assert sorted(p.name for p in (out / "model").glob("sampler-*")) == ["sampler-gmm.safetensors"]
    assert load_run(out).default_sampler == "gmm"
