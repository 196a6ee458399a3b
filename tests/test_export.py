"""ONNX and TorchScript export: the files run in their own runtimes and match PyTorch at
batch sizes they were not traced at, carry what a user needs to feed them, and the README's
onnxruntime snippet makes faces with neither facegen nor torch importable."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch
from PIL import Image

import facegen.export as export_module
from facegen import __version__
from facegen.cli import main
from facegen.errors import FacegenError
from facegen.export import ExportResult, export
from facegen.models import MODELS
from facegen.run import Run, load_run
from facegen.training.trainer import train
from tests.conftest import tiny_config

TOLERANCE = 1e-4
BATCH_SIZES = (1, 5)  # the exporters trace at 2: both prove the batch axis is dynamic
GENERATORS = ["ae", "vae", "aegan", "dcgan", "sngan"]
ENCODERS = ["ae", "vae", "aegan"]
GANS = ["dcgan", "sngan"]
LATENT_DIM, SIZE = 16, 32  # conftest's tiny models

# The README's "Use a model without facegen (ONNX)" snippet, exactly as it appears there.
README_HEADING = "Use a model without facegen (ONNX)"
README_SNIPPET = """\
import numpy as np
import onnxruntime as ort
from PIL import Image

session = ort.InferenceSession("generator.onnx")
latent_dim = session.get_inputs()[0].shape[1]  # the model's latent size
z = np.random.default_rng(0).standard_normal((16, latent_dim), dtype=np.float32)
images = session.run(None, {"z": z})[0]  # (16, 3, S, S) in [-1, 1]
pixels = ((images + 1) * 127.5).round().clip(0, 255).astype(np.uint8)
s = pixels.shape[-1]
grid = pixels.reshape(4, 4, 3, s, s).transpose(0, 3, 1, 4, 2).reshape(4 * s, 4 * s, 3)
Image.fromarray(grid).save("faces.png")  # a 4x4 grid of new faces
"""


@pytest.fixture(scope="module")
def runs(runs32, faces32, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """``runs32`` plus an SNGAN (BatchNorm statistics, EMA weights) and an AEGAN (its critic
    is left out of what is exported), each trained for 4 steps."""
    root = tmp_path_factory.mktemp("export-runs")
    extra = {}
    for name in ("sngan", "aegan"):
        config = tiny_config(name, faces32, steps=4, sample_every=4, checkpoint_every=4)
        train(config, root / name, progress=False)
        extra[name] = load_run(root / name)
    return {**runs32, **extra}


@pytest.fixture(scope="module")
def onnx_generators(runs, tmp_path_factory: pytest.TempPathFactory) -> dict[str, ExportResult]:
    """Each model's generator exported once to ONNX (verified by ``export`` itself)."""
    folder = tmp_path_factory.mktemp("onnx")
    return {name: export(runs[name], folder / f"{name}.onnx") for name in GENERATORS}


def _session(path: Path) -> onnxruntime.InferenceSession:
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _onnx(session: onnxruntime.InferenceSession, inputs: torch.Tensor) -> torch.Tensor:
    name = session.get_inputs()[0].name
    return torch.from_numpy(session.run(None, {name: inputs.numpy()})[0])


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape
    return (a - b).abs().max().item()


@pytest.mark.parametrize("name", GENERATORS)
def test_onnx_generator_matches_pytorch_at_any_batch_size(name, runs, onnx_generators):
    run, result = runs[name], onnx_generators[name]
    assert result.max_abs_diff is not None and result.max_abs_diff < TOLERANCE
    assert result.input_shape == ("N", LATENT_DIM)
    assert result.output_shape == ("N", 3, SIZE, SIZE)
    session = _session(result.path)
    (inputs,), (outputs,) = session.get_inputs(), session.get_outputs()
    assert (inputs.name, outputs.name) == ("z", "images")
    assert isinstance(inputs.shape[0], str) and inputs.shape[1:] == [LATENT_DIM]
    assert outputs.shape[0] == inputs.shape[0] and outputs.shape[1:] == [3, SIZE, SIZE]
    for n in BATCH_SIZES:
        z = run.latents(n, seed=n)  # the run's own sampler: the GMM for the AE
        images = _onnx(session, z)
        assert _max_diff(images, run.decode(z)) < TOLERANCE
        assert images.abs().max() <= 1


@pytest.mark.parametrize("name", GENERATORS)
def test_onnx_file_says_what_to_feed_it(name, onnx_generators):
    metadata = _session(onnx_generators[name].path).get_modelmeta().custom_metadata_map
    assert metadata["facegen.version"] == __version__
    assert metadata["facegen.model"] == name and metadata["facegen.part"] == "generator"
    assert metadata["facegen.latent_dim"] == str(LATENT_DIM)
    assert metadata["facegen.image_size"] == str(SIZE)
    assert metadata["facegen.value_range"] == "[-1, 1]"
    assert json.loads(metadata["facegen.model_config"])["latent_dim"] == LATENT_DIM
    if not MODELS.get(name).prior_is_trained:  # the AE and the AEGAN
        assert "gmm" in metadata["facegen.latents"]
        assert "sampler-gmm.safetensors" in metadata["facegen.latents"]
        assert "sampler-gmm.safetensors" in onnx_generators[name].note
    else:
        assert metadata["facegen.latents"] == "N(0, I)"
        assert onnx_generators[name].note is None


@pytest.mark.parametrize("name", ENCODERS)
def test_onnx_encoder_matches_and_round_trips(name, runs, onnx_generators, tmp_path):
    run = runs[name]
    result = export(run, tmp_path / "encoder.onnx", part="encoder")
    assert result.max_abs_diff < TOLERANCE
    assert (result.input_name, result.output_name) == ("images", "z")
    encoder, decoder = _session(result.path), _session(onnx_generators[name].path)
    faces = run.sample(max(BATCH_SIZES), seed=1)  # (5, 3, S, S) in [-1, 1]
    for n in BATCH_SIZES:
        z = _onnx(encoder, faces[:n])
        assert z.shape == (n, LATENT_DIM)
        assert _max_diff(z, run.encode(faces[:n])) < TOLERANCE  # a VAE's posterior mean
    assert _max_diff(_onnx(decoder, _onnx(encoder, faces)), run.reconstruct(faces)) < TOLERANCE


@pytest.mark.parametrize("name", GANS)
def test_gan_encoder_is_refused_in_one_line(name, runs, tmp_path):
    with pytest.raises(FacegenError, match="models that can encode: ae, aegan, vae") as error:
        export(runs[name], tmp_path / "encoder.onnx", part="encoder")
    assert "\n" not in str(error.value)
    assert not list(tmp_path.iterdir())


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
@pytest.mark.parametrize(
    ("name", "part"), [(name, "generator") for name in GENERATORS] + [("vae", "encoder")]
)
def test_torchscript_loads_with_torch_jit_and_matches(name, part, runs, tmp_path):
    run = runs[name]
    result = export(run, tmp_path / f"{part}.pt", format="torchscript", part=part)
    assert result.max_abs_diff < TOLERANCE and result.opset is None
    extra_files = {"facegen.json": ""}
    module = torch.jit.load(str(result.path), _extra_files=extra_files)
    metadata = json.loads(extra_files["facegen.json"])
    assert metadata["facegen.model"] == name and metadata["facegen.part"] == part
    function = run.decode if part == "generator" else run.encode
    for n in BATCH_SIZES:
        inputs = run.latents(n, seed=n) if part == "generator" else run.sample(n, seed=n)
        with torch.no_grad():
            assert _max_diff(module(inputs), function(inputs)) < TOLERANCE


def test_decoder_is_the_generator_and_the_default_path_is_in_the_run(runs, tmp_path):
    run = runs["vae"]
    # A copy of the run's folder: the default output goes inside it.
    copy = load_run(shutil.copytree(run.path, tmp_path / "vae"))
    result = export(copy, part="decoder", format="torchscript")
    assert result.part == "generator"
    assert result.path == tmp_path / "vae" / "export" / "generator.pt"
    assert [p.name for p in result.path.parent.iterdir()] == ["generator.pt"]  # no temp file


def test_a_file_that_fails_verification_is_not_written(runs, tmp_path, monkeypatch):
    monkeypatch.setattr(export_module, "TOLERANCE", -1.0)  # any difference fails
    out = tmp_path / "generator.pt"
    with pytest.raises(FacegenError, match="nothing was written"):
        export(runs["dcgan"], out, format="torchscript")
    assert not list(tmp_path.iterdir())


def _cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_prints_the_file_its_inputs_and_the_check(runs, onnx_generators, tmp_path, capsys):
    out = tmp_path / "ae.onnx"
    code, printed, err = _cli(capsys, "export", runs["ae"].path, "--out", out)
    assert code == 0 and out.is_file() and err == ""
    assert str(out) in printed
    assert f"z: float32 (N, {LATENT_DIM})" in printed
    assert f"images: float32 (N, 3, {SIZE}, {SIZE})" in printed
    assert "matches PyTorch at batch sizes 1 and 5" in printed
    assert "note:" in printed and "gmm" in printed  # an AE wants its sampler's latents
    # Nothing from the exporter's own chatter reaches the user.
    assert "[torch.onnx]" not in printed and len(printed.splitlines()) == 5


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("vae", ["--part", "nose"], "unknown part 'nose'"),
        ("vae", ["--format", "tflite"], "unknown export format 'tflite'"),
        ("vae", ["--format", "torchscript", "--opset", "18"], "ONNX setting"),
        ("dcgan", ["--part", "encoder"], "has no encoder"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(name, options, message, runs, tmp_path, capsys):
    out = tmp_path / "file"
    code, printed, err = _cli(capsys, "export", runs[name].path, "--out", out, *options)
    assert code == 2 and printed == ""
    assert len(err.strip().splitlines()) == 1 and message in err
    assert not list(tmp_path.iterdir())


def test_missing_onnxruntime_gives_the_install_hint(runs, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` now fails
    code, _, err = _cli(capsys, "export", runs["vae"].path, "--out", tmp_path / "g.onnx")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "onnxruntime missing" in err and "pip install 'facegen[export]'" in err
    # TorchScript needs none of them.
    code, _, _ = _cli(
        capsys, "export", runs["vae"].path, "--format", "torchscript", "--out", tmp_path / "g.pt"
    )
    assert code == 0


def test_readme_snippet_makes_faces_without_facegen_or_torch(onnx_generators, tmp_path):
    shutil.copy(onnx_generators["vae"].path, tmp_path / "generator.onnx")
    (tmp_path / "snippet.py").write_text(README_SNIPPET, encoding="utf-8")
    # Only numpy, onnxruntime and Pillow: importing facegen or torch would fail.
    blocked = "import sys; sys.modules.update(facegen=None, torch=None); "
    script = blocked + "exec(open('snippet.py').read())"
    subprocess.run([sys.executable, "-c", script], cwd=tmp_path, check=True, timeout=120)
    with Image.open(tmp_path / "faces.png") as image:
        assert image.format == "PNG" and image.mode == "RGB"
        assert image.size == (4 * SIZE, 4 * SIZE)
        assert np.asarray(image).std() > 1  # faces, not a blank picture


def test_readme_shows_the_tested_snippet():
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    if README_HEADING not in readme:
        pytest.skip(f"README.md has no '{README_HEADING}' section yet")
    assert README_SNIPPET in readme.split(README_HEADING, 1)[1]
