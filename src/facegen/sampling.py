"""Latent samplers: where an autoencoder's latents come from when it generates.

A VAE is trained towards N(0, I), so ``normal`` suits it; a plain autoencoder's latents
follow no fixed law, so it generates through a density fitted on its training latents:
``gmm``, the 10-component full-covariance Gaussian mixture of Ghosh et al. 2020 ("From
variational to deterministic autoencoders") and pythae's ``GaussianMixtureSampler``.
Samplers are chosen by name through :data:`SAMPLERS`, fitted after training and saved in the
run folder as ``sampler-<name>.safetensors`` (tensors, with the constructor options as JSON
in the file's metadata).

>>> sampler = SAMPLERS.get("gmm")(components=10).fit(latents, torch.Generator().manual_seed(0))
>>> z = sampler.sample(64, torch.Generator().manual_seed(1))  # (64, D) float32
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from facegen import __version__
from facegen.errors import FacegenError
from facegen.files import atomic_path
from facegen.registry import Registry

FORMAT_VERSION = 1
METADATA_KEY = "facegen_sampler"
COVARIANCES = ("full", "diag")
LOG_2PI = math.log(2 * math.pi)
# Responsibility mass added to every component (as scikit-learn does), so an empty one
# divides by a tiny number instead of zero.
EMPTY_COUNT = 10 * torch.finfo(torch.float64).eps
TINY = torch.finfo(torch.float64).tiny
# EM works through the latents this many rows at a time: the temporaries stay in cache,
# which made a pass about twice as fast as whole-array operations (10,000 x 128 latents).
CHUNK_ROWS = 1024
LOG_NEGLIGIBLE = -100.0  # responsibilities below e^-100 are set to zero


class LatentSampler(ABC):
    """Draws latents for a decoder: ``fit`` on training latents (where ``needs_fit``), then
    ``sample``. Subclasses set ``name`` (their registry key) and ``needs_fit``."""

    name: ClassVar[str]
    needs_fit: ClassVar[bool]
    latent_dim: int | None
    fit_info: dict[str, Any]  # how the fit went (iterations, convergence...), JSON values

    @abstractmethod
    def fit(self, latents: torch.Tensor, generator: torch.Generator | None = None) -> LatentSampler:
        """Fit on ``latents`` (N, D); returns ``self``."""

    @abstractmethod
    def sample(
        self, n: int, generator: torch.Generator | None = None, truncation: float | None = None
    ) -> torch.Tensor:
        """``n`` latents, (n, D) float32 on the CPU, deterministic from ``generator``.
        ``truncation`` draws the underlying standard-normal noise within [-t, t]."""

    @abstractmethod
    def log_likelihood(self, latents: torch.Tensor) -> float:
        """Mean log density of ``latents`` (N, D) under the sampler, per latent."""

    @abstractmethod
    def state(self) -> dict[str, torch.Tensor]:
        """The fitted parameters, tensors only (what goes into the safetensors file)."""

    @abstractmethod
    def options(self) -> dict[str, Any]:
        """The constructor options and ``latent_dim``, plain JSON values."""

    @classmethod
    @abstractmethod
    def from_state(cls, options: dict[str, Any], state: dict[str, torch.Tensor]) -> LatentSampler:
        """Rebuild a fitted sampler from :meth:`options` and :meth:`state`."""

    @property
    def fitted(self) -> bool:
        return self.latent_dim is not None

    def _require_fitted(self) -> int:
        if not self.fitted or self.latent_dim is None:
            raise FacegenError(f"the {self.name} sampler is not fitted: call fit(latents) first")
        return self.latent_dim


SAMPLERS: Registry[type[LatentSampler]] = Registry("sampler")


def standard_normal(
    n: int, dim: int, generator: torch.Generator | None = None, truncation: float | None = None
) -> torch.Tensor:
    """(n, dim) float64 N(0, 1) noise; with ``truncation`` t, N(0, 1) conditioned on
    |z| <= t (the truncation trick), drawn exactly by inverting the normal CDF."""
    if truncation is None:
        return torch.randn(n, dim, generator=generator, dtype=torch.float64)
    if not truncation > 0:
        raise FacegenError(f"truncation must be positive, not {truncation}")
    low = float(torch.special.ndtr(torch.tensor(-float(truncation), dtype=torch.float64)))
    uniform = low + (1 - 2 * low) * torch.rand(n, dim, generator=generator, dtype=torch.float64)
    # Invert each half from its own tail: 1 - u is exact for u >= 0.5, 1 - tiny is not.
    tail = torch.where(uniform < 0.5, uniform, 1 - uniform).clamp_min(TINY)
    z = torch.special.ndtri(tail) * torch.where(uniform < 0.5, 1.0, -1.0)
    return z.clamp(-truncation, truncation)


def _as_latents(latents: torch.Tensor, latent_dim: int | None) -> torch.Tensor:
    """``latents`` checked and converted to a CPU float64 (N, D) tensor."""
    x = torch.as_tensor(latents).detach()
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise FacegenError(f"latents must be a non-empty (N, D) tensor, not shape {tuple(x.shape)}")
    if latent_dim is not None and x.shape[1] != latent_dim:
        raise FacegenError(f"latents have dimension {x.shape[1]}, the sampler {latent_dim}")
    x = x.to("cpu", torch.float64)
    bad = ~torch.isfinite(x).all(dim=1)
    if bad.any():
        first = int(bad.nonzero()[0])
        raise FacegenError(
            f"{int(bad.sum())} of {x.shape[0]} latents contain NaN or inf (the first is row "
            f"{first}): the encoder has diverged or the latents are damaged"
        )
    return x


def _check_count(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise FacegenError(f"the number of samples must be a non-negative integer, not {n!r}")


@SAMPLERS.register("normal")
class NormalSampler(LatentSampler):
    """N(0, I): the prior a VAE is trained towards. Fitting only records the dimension."""

    name = "normal"
    needs_fit = False

    def __init__(self, latent_dim: int | None = None) -> None:
        if latent_dim is not None and latent_dim < 1:
            raise FacegenError(f"latent_dim must be at least 1, not {latent_dim}")
        self.latent_dim = latent_dim
        self.fit_info: dict[str, Any] = {}

    def fit(self, latents: torch.Tensor, generator: torch.Generator | None = None) -> NormalSampler:
        self.latent_dim = _as_latents(latents, self.latent_dim).shape[1]
        return self

    def sample(
        self, n: int, generator: torch.Generator | None = None, truncation: float | None = None
    ) -> torch.Tensor:
        _check_count(n)
        return standard_normal(n, self._require_fitted(), generator, truncation).float()

    def log_likelihood(self, latents: torch.Tensor) -> float:
        x = _as_latents(latents, self._require_fitted())
        return float((-0.5 * (x.shape[1] * LOG_2PI + x.square().sum(dim=1))).mean())

    def state(self) -> dict[str, torch.Tensor]:
        return {}

    def options(self) -> dict[str, Any]:
        return {"latent_dim": self.latent_dim}

    @classmethod
    def from_state(cls, options: dict[str, Any], state: dict[str, torch.Tensor]) -> NormalSampler:
        return cls(**options)


@SAMPLERS.register("gmm")
class GMMSampler(LatentSampler):
    """A Gaussian mixture fitted by EM (float64, on the CPU) after k-means++ seeding.

    A component left with less than one latent's worth of responsibility is re-seeded on the
    worst-explained latent with the data's covariance (at most ``components`` times a fit);
    every covariance gets ``reg_covar`` on its diagonal, so none is singular.
    """

    name = "gmm"
    needs_fit = True

    def __init__(
        self,
        components: int = 10,
        covariance: str = "full",
        max_iter: int = 100,
        tol: float = 1e-4,
        reg_covar: float = 1e-6,
        latent_dim: int | None = None,
    ) -> None:
        checks = [
            (components >= 1, f"components must be at least 1, not {components}"),
            (covariance in COVARIANCES, f"covariance must be one of {', '.join(COVARIANCES)}"),
            (max_iter >= 1, f"max_iter must be at least 1, not {max_iter}"),
            (tol >= 0, f"tol must not be negative, not {tol}"),
            (reg_covar >= 0, f"reg_covar must not be negative, not {reg_covar}"),
            (latent_dim is None or latent_dim >= 1, f"latent_dim must be >= 1, not {latent_dim}"),
        ]
        for ok, message in checks:
            if not ok:
                raise FacegenError(f"gmm sampler: {message}")
        self.components = int(components)
        self.covariance = covariance
        self.max_iter = int(max_iter)
        self.tol = float(tol)
        self.reg_covar = float(reg_covar)
        self.latent_dim = latent_dim
        self.weights: torch.Tensor | None = None  # (K,)
        self.means: torch.Tensor | None = None  # (K, D)
        self.covariances: torch.Tensor | None = None  # (K, D, D) full, (K, D) diag
        self.fit_info: dict[str, Any] = {}

    @property
    def fitted(self) -> bool:
        return self.weights is not None

    def fit(self, latents: torch.Tensor, generator: torch.Generator | None = None) -> GMMSampler:
        x = _as_latents(latents, self.latent_dim)  # (N, D)
        n, k = x.shape[0], self.components
        if n < k:
            raise FacegenError(f"a GMM with {k} components needs at least {k} latents, got {n}")
        centres, assignment, distance = _kmeans(x, k, generator)
        moments = _Moments(centres, self.covariance)
        for rows in _chunks(n):
            moments.add(x[rows], torch.nn.functional.one_hot(assignment[rows], k).to(x.dtype))
        # Per-latent fit (higher is better): where a re-seeded component starts.
        fit_score = -distance  # (N,)
        reseeds_left, reseeded = k, 0
        log_likelihood, converged, iterations = -math.inf, False, 0
        for iteration in range(1, self.max_iter + 1):
            iterations = iteration
            counts, means, covariances = moments.result()
            starving = (counts < 1).nonzero().squeeze(1)[:reseeds_left]
            if starving.numel():
                worst = torch.argsort(fit_score, stable=True)[: starving.numel()]
                means[starving] = x[worst]
                covariances[starving] = _data_covariance(x, self.covariance)
                counts[starving] = n / k
                reseeds_left -= starving.numel()
                reseeded += starving.numel()
            self._set_parameters(counts / counts.sum(), means, self._regularised(covariances))
            # E-step under the new parameters, accumulating the next M-step as it goes.
            moments = _Moments(means, self.covariance)
            fit_score = self._pass(x, moments)
            previous, log_likelihood = log_likelihood, float(fit_score.mean())
            if abs(log_likelihood - previous) < self.tol and not starving.numel():
                converged = True
                break
        self.fit_info = {
            "latents": n,
            "iterations": iterations,
            "converged": converged,
            "log_likelihood": log_likelihood,
            "reseeded": reseeded,
        }
        return self

    def sample(
        self, n: int, generator: torch.Generator | None = None, truncation: float | None = None
    ) -> torch.Tensor:
        _check_count(n)
        d = self._require_fitted()
        assert self.weights is not None and self.means is not None
        if n == 0:
            return torch.empty(0, d, dtype=torch.float32)
        component = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        noise = standard_normal(n, d, generator, truncation)  # (n, D)
        z = torch.empty(n, d, dtype=torch.float64)
        for k in range(self.components):
            rows = (component == k).nonzero().squeeze(1)
            if self.covariance == "full":
                z[rows] = self.means[k] + noise[rows] @ self._scale[k].mT  # mean + L @ eps
            else:
                z[rows] = self.means[k] + noise[rows] * self._scale[k]
        return z.float()

    def log_likelihood(self, latents: torch.Tensor) -> float:
        return float(self._pass(_as_latents(latents, self._require_fitted())).mean())

    def state(self) -> dict[str, torch.Tensor]:
        self._require_fitted()
        assert self.weights is not None and self.means is not None
        assert self.covariances is not None
        return {"weights": self.weights, "means": self.means, "covariances": self.covariances}

    def options(self) -> dict[str, Any]:
        return {
            "components": self.components,
            "covariance": self.covariance,
            "max_iter": self.max_iter,
            "tol": self.tol,
            "reg_covar": self.reg_covar,
            "latent_dim": self.latent_dim,
        }

    @classmethod
    def from_state(cls, options: dict[str, Any], state: dict[str, torch.Tensor]) -> GMMSampler:
        sampler = cls(**options)
        weights, means, covariances = (state[key] for key in ("weights", "means", "covariances"))
        k, d = sampler.components, sampler.latent_dim
        shape = (k, d, d) if sampler.covariance == "full" else (k, d)
        if (weights.shape, means.shape, covariances.shape) != ((k,), (k, d), shape):
            raise FacegenError(
                f"GMM state shapes {tuple(weights.shape)}, {tuple(means.shape)}, "
                f"{tuple(covariances.shape)} do not match {k} components of dimension {d}"
            )
        tensors = [t.to(torch.float64) for t in (weights, means, covariances)]
        if not all(torch.isfinite(t).all() for t in tensors) or (tensors[0] < 0).any():
            raise FacegenError("GMM state holds NaN, inf or negative weights")
        sampler._set_parameters(*tensors)
        return sampler

    def _set_parameters(
        self, weights: torch.Tensor, means: torch.Tensor, covariances: torch.Tensor
    ) -> None:
        """Store the parameters and their factors: ``_scale`` (L with L L^T = covariance,
        or the standard deviations) for sampling, its inverse and log-determinant for
        densities."""
        self.weights, self.means, self.covariances = weights, means, covariances
        self.latent_dim = means.shape[1]
        if self.covariance == "full":
            scale, info = torch.linalg.cholesky_ex(covariances)  # (K, D, D)
            if info.any():
                raise FacegenError("a GMM covariance is not positive definite")
            eye = torch.eye(self.latent_dim, dtype=torch.float64).expand_as(scale)
            self._inverse_scale = torch.linalg.solve_triangular(scale, eye, upper=False)
            self._half_log_det = scale.diagonal(dim1=1, dim2=2).log().sum(dim=1)  # (K,)
        else:
            if not (covariances > 0).all():
                raise FacegenError("a GMM variance is not positive")
            scale = covariances.sqrt()  # (K, D)
            self._inverse_scale = 1 / scale
            self._half_log_det = scale.log().sum(dim=1)
        self._scale = scale

    def _pass(self, x: torch.Tensor, moments: _Moments | None = None) -> torch.Tensor:
        """Each latent's log-likelihood (N,); with ``moments``, also the E-step: the
        responsibilities are accumulated into them chunk by chunk."""
        log_likelihood = torch.empty(x.shape[0], dtype=torch.float64)
        for rows in _chunks(x.shape[0]):
            weighted = self._weighted_log_prob(x[rows])  # (C, K)
            log_likelihood[rows] = torch.logsumexp(weighted, dim=1)
            if moments is not None:
                log_responsibility = weighted - log_likelihood[rows, None]  # (C, K)
                # Negligible responsibilities become exact zeros: subnormal floats would
                # slow every product they enter tenfold or more.
                responsibility = torch.where(
                    log_responsibility > LOG_NEGLIGIBLE, log_responsibility.exp(), 0.0
                )
                moments.add(x[rows], responsibility)
        return log_likelihood

    def _weighted_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log(weight_k) + log N(x | mean_k, covariance_k) for every latent: (N, K)."""
        assert self.weights is not None and self.means is not None
        out = torch.empty(x.shape[0], self.components, dtype=torch.float64)
        for k in range(self.components):
            centred = x - self.means[k]  # (N, D)
            if self.covariance == "full":
                whitened = centred @ self._inverse_scale[k].mT  # rows of L^-1 (x - mean)
            else:
                whitened = centred * self._inverse_scale[k]
            out[:, k] = -0.5 * whitened.square().sum(dim=1)
        constant = -0.5 * x.shape[1] * LOG_2PI - self._half_log_det + self.weights.log()
        return out + constant

    def _regularised(self, covariances: torch.Tensor) -> torch.Tensor:
        """``reg_covar`` added to the diagonals; where a full covariance still fails to
        factor (only with a tiny or zero ``reg_covar``), more jitter until it does."""
        if not torch.isfinite(covariances).all():
            raise FacegenError("the GMM fit diverged (non-finite covariance): check the latents")
        if self.covariance == "diag":
            return covariances.clamp_min(0) + max(self.reg_covar, TINY)
        eye = torch.eye(covariances.shape[1], dtype=torch.float64)
        covariances = (covariances + covariances.mT) / 2 + self.reg_covar * eye
        jitter = max(self.reg_covar, 1e-10)
        for _ in range(12):
            failed = torch.linalg.cholesky_ex(covariances).info > 0
            if not failed.any():
                return covariances
            covariances[failed] += jitter * eye
            jitter *= 10
        raise FacegenError(
            "GMM covariances stay singular even with added jitter: the latents are badly scaled"
        )


def _kmeans(
    x: torch.Tensor, k: int, generator: torch.Generator | None, iterations: int = 10
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """k-means++ seeding then a few Lloyd steps; returns the centres (K, D), each latent's
    cluster (N,) and its squared distance to that cluster's centre (N,)."""
    n = x.shape[0]
    first = int(torch.randint(n, (1,), generator=generator))
    centres = [x[first]]
    closest = (x - x[first]).square().sum(dim=1)  # (N,)
    for _ in range(1, k):
        total = closest.sum()
        if total > 0:
            pick = int(torch.multinomial(closest / total, 1, generator=generator))
        else:  # every latent sits on a centre already (duplicates): any will do
            pick = int(torch.randint(n, (1,), generator=generator))
        centres.append(x[pick])
        closest = torch.minimum(closest, (x - x[pick]).square().sum(dim=1))
    centre = torch.stack(centres)  # (K, D)
    assignment = None
    for _ in range(iterations):
        distance = torch.cdist(x, centre).square()  # (N, K)
        new_assignment = distance.argmin(dim=1)
        if assignment is not None and torch.equal(new_assignment, assignment):
            break
        assignment = new_assignment
        counts = torch.bincount(assignment, minlength=k).to(x.dtype)
        sums = torch.zeros_like(centre).index_add_(0, assignment, x)
        occupied = counts > 0  # an empty cluster keeps its centre
        centre[occupied] = sums[occupied] / counts[occupied, None]
    distance = torch.cdist(x, centre).square()
    squared, assignment = distance.min(dim=1)
    return centre, assignment, squared


def _chunks(n: int) -> list[slice]:
    return [slice(start, min(start + CHUNK_ROWS, n)) for start in range(0, n, CHUNK_ROWS)]


class _Moments:
    """The sums of one M-step, accumulated chunk by chunk: responsibility-weighted counts,
    offsets and scatter of the latents about the current means. Centring on the current
    means (close to the new ones) keeps the covariances free of cancellation."""

    def __init__(self, means: torch.Tensor, covariance: str) -> None:
        k, d = means.shape
        self.means = means  # (K, D)
        self.full = covariance == "full"
        self.counts = torch.zeros(k, dtype=torch.float64)
        self.offsets = torch.zeros(k, d, dtype=torch.float64)
        self.scatter = torch.zeros((k, d, d) if self.full else (k, d), dtype=torch.float64)

    def add(self, x: torch.Tensor, responsibility: torch.Tensor) -> None:
        """Add latents ``x`` (C, D) with their ``responsibility`` (C, K)."""
        self.counts += responsibility.sum(dim=0)
        for k in range(self.means.shape[0]):
            centred = x - self.means[k]  # (C, D)
            weighted = centred * responsibility[:, k, None]
            self.offsets[k] += weighted.sum(dim=0)
            if self.full:
                self.scatter[k].addmm_(weighted.T, centred)
            else:
                self.scatter[k] += (weighted * centred).sum(dim=0)

    def result(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Counts (K,), means (K, D) and unregularised covariances; an empty component
        keeps its mean and gets a zero covariance rather than 0 / 0."""
        counts = self.counts + EMPTY_COUNT
        means = self.means + self.offsets / counts[:, None]
        if self.full:
            outer = self.offsets[:, :, None] * self.offsets[:, None, :]  # (K, D, D)
            covariances = (self.scatter - outer / counts[:, None, None]) / counts[:, None, None]
        else:
            covariances = (self.scatter - self.offsets.square() / counts[:, None]) / counts[:, None]
        return self.counts.clone(), means, covariances


def _data_covariance(x: torch.Tensor, covariance: str) -> torch.Tensor:
    centred = x - x.mean(dim=0)
    if covariance == "full":
        return centred.T @ centred / x.shape[0]
    return centred.square().mean(dim=0)


def sampler_path(folder: str | Path, name: str) -> Path:
    """Where a run keeps its ``name`` sampler: ``folder/sampler-<name>.safetensors``."""
    return Path(folder) / f"sampler-{name}.safetensors"


def save_sampler(sampler: LatentSampler, folder: str | Path) -> Path:
    """Write a fitted sampler to ``folder/sampler-<name>.safetensors`` atomically; returns
    the path. Options and fit information go into the file's metadata as JSON."""
    if not sampler.fitted:
        raise FacegenError(f"the {sampler.name} sampler is not fitted: call fit(latents) first")
    header = {
        "format": FORMAT_VERSION,
        "name": sampler.name,
        "options": sampler.options(),
        "fit": sampler.fit_info,
        "facegen_version": __version__,
    }
    tensors = {key: value.detach().cpu().contiguous() for key, value in sampler.state().items()}
    path = sampler_path(folder, sampler.name)
    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata={METADATA_KEY: json.dumps(header)})
    return path


def load_sampler(folder: str | Path, name: str) -> LatentSampler:
    """The ``name`` sampler saved in ``folder`` (a run folder).

    >>> z = load_sampler(run_folder, "gmm").sample(16, torch.Generator().manual_seed(0))
    """
    sampler_class = SAMPLERS.get(name)
    path = sampler_path(folder, name)
    how = (
        "`facegen train` fits one at the end of training models with an encoder (AE, VAE); "
        f"or fit one on latents: save_sampler(SAMPLERS.get({name!r})().fit(latents), folder)"
    )
    if not path.is_file():
        raise FacegenError(f"no {name} sampler at {path}: {how}")
    try:
        with safe_open(path, framework="pt") as file:
            header = json.loads(file.metadata()[METADATA_KEY])
            state = {key: file.get_tensor(key) for key in file.keys()}  # noqa: SIM118 (not a dict)
        if header["format"] != FORMAT_VERSION or header["name"] != name:
            raise ValueError(f"format {header['format']} of sampler {header['name']!r}")
        sampler = sampler_class.from_state(header["options"], state)
    except (SafetensorError, OSError, ValueError, KeyError, TypeError, FacegenError) as error:
        raise FacegenError(f"{path} is damaged ({error}); delete it and {how}") from error
    sampler.fit_info = dict(header.get("fit") or {})
    return sampler
