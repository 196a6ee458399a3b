"""Reconstruction quality per image: MSE, PSNR and SSIM, batched in torch.

Inputs are what the package stores and what Inception sees (README: Metrics): uint8 images
(B, H, W, C), numpy or torch; a model's [-1, 1] output goes through
``facegen.data.loader.to_uint8`` first, so these numbers describe the images a user
looks at. Pixels are read as value / 255, so:

- MSE is on the [0, 1] scale (multiply by 255^2 for 0..255 units);
- PSNR = 10 log10(1 / MSE), the same as data range 255 on the raw bytes; identical images
  give inf, as in scikit-image;
- SSIM is Wang et al. (2004) as scikit-image's ``structural_similarity(a, b,
  gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255,
  channel_axis=-1)`` computes it: an 11 x 11 Gaussian window (sigma 1.5, truncated at 3.5
  sigma), K1 = 0.01, K2 = 0.03, population (co)variances, the map averaged over the
  positions where the window lies inside the image and over channels.

Every function returns one value per image (B,), float64, on the input's device; a set's
figure is the mean over its images (per-image PSNR averaged, not the PSNR of the pooled
error). Tests match scikit-image image by image.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from facegen.batches import row_slices

Images = np.ndarray | torch.Tensor  # uint8 (B, H, W, C)
BATCH_SIZE = 256

SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5  # scipy.ndimage.gaussian_filter's default, which scikit-image uses
SSIM_RADIUS = int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5)  # 5: an 11 x 11 window
SSIM_K1, SSIM_K2 = 0.01, 0.03


def mean_squared_error(
    originals: Images, reconstructions: Images, *, batch_size: int = BATCH_SIZE
) -> torch.Tensor:
    """Mean squared error per image (B,) on pixels scaled to [0, 1].

    >>> mean_squared_error(images, to_uint8(model.reconstruct(from_uint8(images)))).mean()
    """
    return _per_image(_squared_error, originals, reconstructions, batch_size)


def peak_signal_noise_ratio(
    originals: Images, reconstructions: Images, *, batch_size: int = BATCH_SIZE
) -> torch.Tensor:
    """PSNR in dB per image (B,), peak 255 on uint8 pixels.

    >>> peak_signal_noise_ratio(images, reconstructed).mean()
    """
    return -10 * torch.log10(mean_squared_error(originals, reconstructions, batch_size=batch_size))


def structural_similarity(
    originals: Images, reconstructions: Images, *, batch_size: int = BATCH_SIZE
) -> torch.Tensor:
    """Mean SSIM per image (B,), averaged over channels, in [-1, 1].

    >>> structural_similarity(images, reconstructed).mean()
    """
    return _per_image(_ssim, originals, reconstructions, batch_size)


def _squared_error(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (x - y).pow(2).mean(dim=(1, 2, 3))


def _ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """SSIM per image of float64 (B, H, W, C) pixels in [0, 1]."""
    batch, height, width, channels = x.shape
    if min(height, width) < 2 * SSIM_RADIUS + 1:
        raise ValueError(f"SSIM needs images of at least 11 x 11 pixels, got {height} x {width}")
    # Every channel of every image is filtered on its own: (B * C, 1, H, W).
    x = x.permute(0, 3, 1, 2).reshape(batch * channels, 1, height, width)
    y = y.permute(0, 3, 1, 2).reshape(batch * channels, 1, height, width)
    # One filter pass for the five local moments; a valid convolution keeps exactly the
    # positions scikit-image averages over (it crops the window radius from every border).
    moments = _gaussian_filter(torch.cat([x, y, x * x, y * y, x * y]))
    mean_x, mean_y, mean_xx, mean_yy, mean_xy = moments.chunk(5)
    variance_x = mean_xx - mean_x * mean_x
    variance_y = mean_yy - mean_y * mean_y
    covariance = mean_xy - mean_x * mean_y
    c1, c2 = SSIM_K1**2, SSIM_K2**2  # (K * data range)^2 with data range 1
    ssim_map = ((2 * mean_x * mean_y + c1) * (2 * covariance + c2)) / (
        (mean_x**2 + mean_y**2 + c1) * (variance_x + variance_y + c2)
    )
    return ssim_map.reshape(batch, -1).mean(dim=1)


def _gaussian_filter(images: torch.Tensor) -> torch.Tensor:
    """Separable normalised Gaussian window, valid positions only: (N, 1, H, W) ->
    (N, 1, H - 10, W - 10)."""
    offsets = torch.arange(-SSIM_RADIUS, SSIM_RADIUS + 1, dtype=images.dtype, device=images.device)
    weights = torch.exp(-0.5 * (offsets / SSIM_SIGMA) ** 2)
    weights = weights / weights.sum()
    filtered = F.conv2d(images, weights.view(1, 1, 1, -1))
    return F.conv2d(filtered, weights.view(1, 1, -1, 1))


def _per_image(
    metric: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    originals: Images,
    reconstructions: Images,
    batch_size: int,
) -> torch.Tensor:
    """``metric`` on float64 [0, 1] pixels, ``batch_size`` images at a time (the float64 copies
    and SSIM's five filtered moments of a whole test split would not fit in memory)."""
    originals, reconstructions = _checked(originals), _checked(reconstructions)
    if originals.shape != reconstructions.shape:
        raise ValueError(
            f"image batches differ in shape: {tuple(originals.shape)} and "
            f"{tuple(reconstructions.shape)}"
        )
    parts = [
        metric(originals[rows].double() / 255, reconstructions[rows].double() / 255)
        for rows in row_slices(len(originals), batch_size)
    ]
    return torch.cat(parts)


def _checked(images: Images) -> torch.Tensor:
    """uint8 images (B, H, W, C) as a tensor."""
    if not torch.is_tensor(images):
        images = torch.from_numpy(np.array(images))  # a copy: memory maps are read-only
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise ValueError(
            f"expected uint8 images (B, H, W, C), got {images.dtype} {tuple(images.shape)}"
        )
    return images
