"""Metric maths on feature arrays and images: FID, KID, precision/recall, reconstruction
quality and nearest neighbours, each checked against closed forms, brute force written
here, or scikit-image."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist
from skimage import data as skimage_data
from skimage import metrics as skimage_metrics

from facegen.metrics.fid import feature_statistics, frechet_distance
from facegen.metrics.kid import kernel_inception_distance
from facegen.metrics.neighbours import nearest_neighbours
from facegen.metrics.precision_recall import precision_recall
from facegen.metrics.reconstruction import (
    mean_squared_error,
    peak_signal_noise_ratio,
    structural_similarity,
)

METHODS = ["sqrtm", "eigen"]


def correlated_features(n: int, dim: int, seed: int, shift: float = 0.0) -> np.ndarray:
    """Non-negative, correlated features (N, D), a little like pooled Inception ones."""
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(dim, dim)) / math.sqrt(dim)
    return np.abs(rng.normal(size=(n, dim)) @ mixing + shift).astype(np.float32)


# FID


@pytest.mark.parametrize("method", METHODS)
def test_fid_of_a_set_against_itself_is_zero(method):
    statistics = feature_statistics(correlated_features(500, 32, seed=0))
    assert frechet_distance(*statistics, *statistics, method=method) == pytest.approx(0, abs=1e-8)


@pytest.mark.parametrize("method", METHODS)
def test_fid_matches_an_independent_numpy_computation(method):
    real = correlated_features(400, 24, seed=1)
    fake = correlated_features(300, 24, seed=2, shift=0.3)
    # Written out by hand: tr((s1 s2)^(1/2)) is the sum of the square roots of the
    # eigenvalues of s1 s2 (real and non-negative, as for any product of two PSD matrices).
    x, y = real.astype(np.float64), fake.astype(np.float64)
    mu_x, mu_y = x.sum(0) / len(x), y.sum(0) / len(y)
    sigma_x = (x - mu_x).T @ (x - mu_x) / (len(x) - 1)
    sigma_y = (y - mu_y).T @ (y - mu_y) / (len(y) - 1)
    eigenvalues = np.linalg.eigvals(sigma_x @ sigma_y).real.clip(0)
    expected = (
        np.sum((mu_x - mu_y) ** 2)
        + np.trace(sigma_x)
        + np.trace(sigma_y)
        - 2 * np.sqrt(eigenvalues).sum()
    )
    mu1, sigma1 = feature_statistics(real)
    mu2, sigma2 = feature_statistics(torch.from_numpy(fake))  # torch input gives the same
    np.testing.assert_allclose(mu1, mu_x, rtol=1e-12)
    np.testing.assert_allclose(sigma1, sigma_x, rtol=1e-10, atol=1e-14)
    fid = frechet_distance(mu1, sigma1, mu2, sigma2, method=method)
    assert fid == pytest.approx(expected, rel=1e-9)
    assert fid > 0.1


@pytest.mark.parametrize("method", METHODS)
def test_fid_of_two_gaussians_matches_the_closed_form(method):
    mu1, mu2 = np.array([0.0, 1.0, 2.0, -1.0]), np.array([0.5, 0.0, 2.0, 1.0])
    s1, s2 = np.array([1.0, 2.0, 3.0, 0.5]), np.array([2.0, 0.5, 3.0, 4.0])
    closed_form = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2), method=method) == pytest.approx(
        closed_form, rel=1e-12
    )
    # Covariances sharing eigenvectors (a random rotation) keep the same closed form.
    rotation, _ = np.linalg.qr(np.random.default_rng(3).normal(size=(4, 4)))
    sigma1, sigma2 = rotation @ np.diag(s1) @ rotation.T, rotation @ np.diag(s2) @ rotation.T
    fid = frechet_distance(mu1, sigma1, mu2, sigma2, method=method)
    assert fid == pytest.approx(closed_form, rel=1e-9)
    # And features drawn from the two Gaussians estimate it.
    rng = np.random.default_rng(4)
    a = mu1 + rng.normal(size=(100_000, 4)) * np.sqrt(s1)
    b = mu2 + rng.normal(size=(100_000, 4)) * np.sqrt(s2)
    estimate = frechet_distance(*feature_statistics(a), *feature_statistics(b), method=method)
    assert estimate == pytest.approx(closed_form, rel=0.02)  # sampling error about 0.4%


def test_fid_eigen_route_agrees_with_scipy_sqrtm_also_when_covariances_are_singular():
    for n in (2000, 40):  # 40 points in 64 dimensions: rank-deficient covariances
        real = feature_statistics(correlated_features(n, 64, seed=5))
        fake = feature_statistics(correlated_features(n, 64, seed=6, shift=0.2))
        reference = frechet_distance(*real, *fake, method="sqrtm")
        assert frechet_distance(*real, *fake, method="eigen") == pytest.approx(reference, rel=1e-6)


def test_fid_refuses_mismatched_statistics_and_unknown_methods():
    mu, sigma = feature_statistics(correlated_features(50, 8, seed=0))
    with pytest.raises(ValueError, match="statistics do not match"):
        frechet_distance(mu, sigma, mu[:4], sigma[:4, :4])
    with pytest.raises(ValueError, match="unknown method 'svd'"):
        frechet_distance(mu, sigma, mu, sigma, method="svd")


# KID


def brute_force_unbiased_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Pair by pair, in float64, the unbiased estimator with the cubic polynomial kernel."""
    m, dim = x.shape

    def kernel(a: np.ndarray, b: np.ndarray) -> float:
        return (float(a @ b) / dim + 1) ** 3

    within = sum(
        kernel(x[i], x[j]) + kernel(y[i], y[j])
        for i, j in itertools.product(range(m), repeat=2)
        if i != j
    )
    across = sum(kernel(x[i], y[j]) for i, j in itertools.product(range(m), repeat=2))
    return within / (m * (m - 1)) - 2 * across / m**2


def test_kid_on_whole_sets_equals_a_brute_force_unbiased_mmd():
    real = correlated_features(40, 6, seed=7)
    fake = correlated_features(60, 6, seed=8, shift=0.5)
    # subset_size is clipped to 40: every subset of the real set is the whole set.
    kid = kernel_inception_distance(real, fake[:40], subsets=3, subset_size=1000)
    expected = brute_force_unbiased_mmd2(real.astype(np.float64), fake[:40].astype(np.float64))
    assert kid.mean == pytest.approx(expected, rel=1e-5)
    assert kid.std == pytest.approx(0, abs=1e-6 * abs(expected))


def test_kid_is_unbiased_for_samples_of_one_distribution():
    rng = np.random.default_rng(9)
    real, fake = rng.normal(size=(20_000, 8)), rng.normal(size=(20_000, 8))
    # Subsets of 10: the biased (V-statistic) estimate would sit near 2 E[k(x, x)] / 10 > 1.
    kid = kernel_inception_distance(real, fake, subsets=2000, subset_size=10, seed=1)
    assert abs(kid.mean) < 4 * kid.std / math.sqrt(2000)
    assert kid.std > 0.1


def test_kid_is_unbiased_for_the_population_mmd_of_two_gaussians():
    # For x ~ N(0, A), y ~ N(0, B) in D dimensions the cubic kernel's odd moments vanish and
    # MMD^2 = 3 / D^2 * ||A - B||_F^2; here A = I, B = 1.5 I.
    dim, variance = 8, 1.5
    rng = np.random.default_rng(10)
    real = rng.normal(size=(20_000, dim))
    fake = rng.normal(size=(20_000, dim)) * math.sqrt(variance)
    population = 3 / dim**2 * dim * (1 - variance) ** 2
    # Small subsets, where the biased estimate would be off by far more than the tolerance.
    kid = kernel_inception_distance(real, fake, subsets=2000, subset_size=10, seed=2)
    assert abs(kid.mean - population) < 4 * kid.std / math.sqrt(2000)


def test_kid_is_seeded():
    real, fake = correlated_features(300, 16, seed=11), correlated_features(300, 16, seed=12)
    first = kernel_inception_distance(real, fake, subsets=5, subset_size=100, seed=3)
    assert kernel_inception_distance(real, fake, subsets=5, subset_size=100, seed=3) == first
    assert kernel_inception_distance(real, fake, subsets=5, subset_size=100, seed=4) != first


# Precision and recall


def brute_force_precision_recall(real: np.ndarray, fake: np.ndarray, k: int) -> tuple:
    def radii(points: np.ndarray) -> np.ndarray:
        return np.sort(cdist(points, points), axis=1)[:, k]  # column 0: the point itself

    inside_real = (cdist(fake, real) <= radii(real)).any(axis=1)
    inside_fake = (cdist(real, fake) <= radii(fake)).any(axis=1)
    return inside_real.mean(), inside_fake.mean()


def test_precision_recall_of_identical_sets_is_one():
    features = correlated_features(300, 16, seed=13)
    assert precision_recall(features, features.copy()) == (1.0, 1.0)


def test_precision_recall_of_far_apart_sets_is_zero():
    features = correlated_features(300, 16, seed=14)
    assert precision_recall(features, features + 100) == (0.0, 0.0)


def test_precision_recall_on_a_hand_made_line():
    real = np.arange(10, dtype=np.float32)[:, None]  # 0..9; 3rd-neighbour radii 3, 2, ..., 2, 3
    # Generated radii 1.7, 1.3, 1.0, 1.7: all four inside the real balls, and together they
    # cover the real points 0..3 (3 through the ball of 1.7), not 4 (2.3 from 1.7).
    fake = np.array([[0.0], [0.4], [1.0], [1.7]], dtype=np.float32)
    assert precision_recall(real, fake, k=3) == pytest.approx((1.0, 0.4))
    # One outlier is outside every real ball, but its own ball (radius 49.6) covers the
    # real points 1..9: recall's known sensitivity to outliers.
    with_outlier = np.concatenate([fake, [[50.0]]]).astype(np.float32)
    assert precision_recall(real, with_outlier, k=3) == pytest.approx((0.8, 1.0))


def test_precision_recall_in_blocks_matches_brute_force():
    real = correlated_features(230, 8, seed=15)
    fake = correlated_features(170, 8, seed=16, shift=0.4)
    expected = brute_force_precision_recall(real.astype(np.float64), fake.astype(np.float64), 3)
    assert 0.05 < expected[0] < 0.95 and 0.05 < expected[1] < 0.95  # a case with both kinds
    for batch_size in (1000, 64, 7):
        result = precision_recall(torch.from_numpy(real), fake, batch_size=batch_size)
        assert result == pytest.approx(expected)


# Nearest neighbours (memorization)


@pytest.mark.parametrize("batch_size", [1000, 16])
def test_nearest_neighbours_finds_a_planted_copy(tmp_path, batch_size):
    rng = np.random.default_rng(17)
    training = rng.integers(0, 256, size=(200, 16, 16, 3), dtype=np.uint8)
    np.save(tmp_path / "training.npy", training)
    training = np.load(tmp_path / "training.npy", mmap_mode="r")  # read-only, like packed data
    generated = rng.integers(0, 256, size=(20, 16, 16, 3), dtype=np.uint8)
    generated[7] = training[123]
    distances, indices = nearest_neighbours(generated, training, batch_size)
    assert indices[7] == 123 and distances[7] == 0.0
    all_distances = cdist(generated.reshape(20, -1), training.reshape(200, -1).astype(np.float64))
    np.testing.assert_array_equal(indices, all_distances.argmin(1))
    np.testing.assert_allclose(distances, all_distances.min(1), rtol=1e-12)


def test_nearest_neighbours_in_feature_space_with_torch_input():
    references = torch.from_numpy(correlated_features(300, 64, seed=18))
    queries = torch.from_numpy(correlated_features(50, 64, seed=19))
    queries[30] = references[5]
    distances, indices = nearest_neighbours(queries, references, batch_size=64)
    assert (indices[30], distances[30]) == (5, 0.0)
    expected = torch.cdist(
        queries.double(), references.double(), compute_mode="donot_use_mm_for_euclid_dist"
    )
    np.testing.assert_array_equal(indices, expected.argmin(1).numpy())
    np.testing.assert_allclose(distances, expected.min(1).values.numpy(), rtol=1e-10)


# Reconstruction: MSE, PSNR and SSIM against scikit-image


def distorted_faces() -> tuple[np.ndarray, np.ndarray]:
    """Four copies of scikit-image's astronaut's face (64 x 48 RGB) and four distortions."""
    face = skimage_data.astronaut()[0:256:4, 128:320:4]  # (64, 48, 3)
    rng = np.random.default_rng(20)
    noisy = np.clip(face + rng.normal(0, 20, face.shape), 0, 255)
    blurred = (
        sum(np.roll(face.astype(float), shift, axis=(0, 1)) for shift in [(0, 0), (1, 1), (-1, 2)])
        / 3
    )
    brighter = np.clip(face * 0.8 + 60, 0, 255)
    originals = np.stack([face] * 4)
    distorted = np.stack([noisy, blurred, brighter, face]).round().astype(np.uint8)
    return originals, distorted


def test_reconstruction_metrics_match_scikit_image_image_by_image():
    originals, distorted = distorted_faces()
    mse = mean_squared_error(originals, distorted)
    psnr = peak_signal_noise_ratio(torch.from_numpy(originals), distorted)
    ssim = structural_similarity(originals, torch.from_numpy(distorted), batch_size=3)
    assert mse.shape == psnr.shape == ssim.shape == (4,)
    for i, (a, b) in enumerate(zip(originals, distorted, strict=True)):
        reference_mse = skimage_metrics.mean_squared_error(a, b) / 255**2
        reference_ssim = skimage_metrics.structural_similarity(
            a,
            b,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=255,
            channel_axis=-1,
        )
        assert mse[i].item() == pytest.approx(reference_mse, rel=1e-12, abs=0)
        assert ssim[i].item() == pytest.approx(reference_ssim, rel=1e-10)
        if i < 3:
            reference_psnr = skimage_metrics.peak_signal_noise_ratio(a, b, data_range=255)
            assert psnr[i].item() == pytest.approx(reference_psnr, rel=1e-12)
    # The unchanged face: perfect scores, PSNR infinite as in scikit-image.
    assert (mse[3].item(), psnr[3].item(), ssim[3].item()) == (0.0, math.inf, 1.0)
    # The three distortions are clearly visible but the face is still there.
    assert ((ssim[:3] > 0.3) & (ssim[:3] < 0.99)).all()
    assert ((psnr[:3] > 15) & (psnr[:3] < 30)).all()


def test_reconstruction_metrics_refuse_float_or_mismatched_images():
    originals, distorted = distorted_faces()
    with pytest.raises(ValueError, match="expected uint8 images"):
        structural_similarity(originals / 255, distorted)
    with pytest.raises(ValueError, match="differ in shape"):
        mean_squared_error(originals, distorted[:, :32])
    with pytest.raises(ValueError, match="at least 11 x 11"):
        structural_similarity(originals[:, :8, :8], distorted[:, :8, :8])
