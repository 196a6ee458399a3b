"""Latent samplers: where an autoencoder's latents come from when it generates.

A VAE is trained towards N(0, I), so ``normal`` suits it; a plain autoencoder's latents
follow no fixed law, so it generates through a density fitted on its training latents:
``gmm``, the 10-component full-covariance Gaussian mixture of Ghosh et al. 2020 ("From
variational to deterministic autoencoders") and pythae's ``GaussianMixtureSampler``
(scikit-learn's EM), or ``flow``, a learned prior: a small rectified flow on the whitened
latents, which any model with an encoder can use instead of its own prior.
Samplers are chosen by name through :data:`SAMPLERS`, fitted after training and saved in the
run folder as ``sampler-<name>.safetensors`` (tensors, with the constructor options as JSON
in the file's metadata).

>>> sampler = SAMPLERS.get("gmm")(components=10).fit(latents, torch.Generator().manual_seed(0))
>>> z = sampler.sample(64, torch.Generator().manual_seed(1))  # (64, D) float32
"""

from __future__ import annotations

import itertools
import json
import math
import warnings
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, cast

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from facegen._version import __version__
from facegen.batches import map_batches
from facegen.errors import FacegenError
from facegen.files import atomic_path
from facegen.progress import progress_bar
from facegen.registry import Registry

FORMAT_VERSION = 1
METADATA_KEY = "facegen_sampler"
COVARIANCES = ("full", "diag")
LOG_2PI = math.log(2 * math.pi)
TINY = torch.finfo(torch.float64).tiny


class LatentSampler(ABC):
    """Draws latents for a decoder: ``fit`` on training latents (where ``needs_fit``), then
    ``sample``. Subclasses set ``name`` (their registry key) and ``needs_fit``."""

    name: ClassVar[str]
    needs_fit: ClassVar[bool]
    latent_dim: int | None
    fit_info: dict[str, Any]  # how the fit went (iterations, convergence...), JSON values

    @abstractmethod
    def fit(
        self,
        latents: torch.Tensor,
        generator: torch.Generator | None = None,
        progress: bool = False,
    ) -> LatentSampler:
        """Fit on ``latents`` (N, D); returns ``self``. ``progress`` shows a bar where the
        fit takes a while (the flow's training)."""

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

    @classmethod
    def too_few(cls, n: int, dim: int) -> str | None:
        """Why ``n`` training latents of ``dim`` dimensions are too few for this sampler to
        fit well (one line), or ``None``: training leaves out a sampler that would be poor."""
        return None

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

    def fit(
        self,
        latents: torch.Tensor,
        generator: torch.Generator | None = None,
        progress: bool = False,
    ) -> NormalSampler:
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
    """A Gaussian mixture fitted by scikit-learn's EM (``GaussianMixture``, float64, after
    k-means initialisation), seeded from the torch generator.

    Every covariance gets ``reg_covar`` on its diagonal, so none is singular; ``tol`` bounds
    the change of the mean log-likelihood per latent between two EM iterations.
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

    def fit(
        self,
        latents: torch.Tensor,
        generator: torch.Generator | None = None,
        progress: bool = False,
    ) -> GMMSampler:
        # Slow to import: only when fitting. threadpoolctl comes with scikit-learn.
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.mixture import GaussianMixture
        from threadpoolctl import threadpool_limits

        x = _as_latents(latents, self.latent_dim)  # (N, D)
        n, k = x.shape[0], self.components
        if n < k:
            raise FacegenError(f"a GMM with {k} components needs at least {k} latents, got {n}")
        mixture = GaussianMixture(
            n_components=k,
            covariance_type=self.covariance,
            tol=self.tol,
            reg_covar=self.reg_covar,
            max_iter=self.max_iter,
            random_state=_random_state(generator),
        )
        # One thread for scikit-learn's BLAS and OpenMP (k-means), restored after: EM's
        # products are small (D x D per component), and their threads on two busy cores
        # made a fit ten times slower (37 s instead of 3.1 s for 10 iterations on
        # 9,000 x 128 latents; k-means on 600 x 8 took 0.2 s).
        with warnings.catch_warnings(), threadpool_limits(1):
            # Not converging is reported in fit_info; duplicate latents (fewer distinct
            # points than components) only leave some components nearly empty.
            warnings.simplefilter("ignore", ConvergenceWarning)
            try:
                mixture.fit(x.numpy())
                # Under the final parameters (lower_bound_ is the one before the last M-step).
                log_likelihood = float(mixture.score(x.numpy()))
            except ValueError as error:
                if "ill-defined empirical covariance" not in str(error):
                    raise FacegenError(f"the GMM fit failed: {error}") from None
                raise FacegenError(
                    "the GMM fit failed: a component's covariance is singular (collapsed or "
                    f"duplicate latents); raise reg_covar (now {self.reg_covar:g}) or use "
                    "fewer components"
                ) from None
        parameters = (mixture.weights_, mixture.means_, mixture.covariances_)
        tensors = [torch.from_numpy(p).to(torch.float64) for p in parameters]
        if not all(torch.isfinite(t).all() for t in tensors):
            raise FacegenError("the GMM fit diverged (non-finite parameters): check the latents")
        self._set_parameters(*tensors)
        self.fit_info = {
            "latents": n,
            "iterations": int(mixture.n_iter_),
            "converged": bool(mixture.converged_),
            "log_likelihood": log_likelihood,
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
        return float(self._log_likelihoods(_as_latents(latents, self._require_fitted())).mean())

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

    def _log_likelihoods(self, x: torch.Tensor) -> torch.Tensor:
        """Each latent's log-likelihood under the mixture, (N,) float64."""
        assert self.weights is not None and self.means is not None
        out = torch.empty(x.shape[0], self.components, dtype=torch.float64)  # (N, K)
        for k in range(self.components):
            centred = x - self.means[k]  # (N, D)
            if self.covariance == "full":
                whitened = centred @ self._inverse_scale[k].mT  # rows of L^-1 (x - mean)
            else:
                whitened = centred * self._inverse_scale[k]
            out[:, k] = -0.5 * whitened.square().sum(dim=1)
        constant = -0.5 * x.shape[1] * LOG_2PI - self._half_log_det + self.weights.log()
        return torch.logsumexp(out + constant, dim=1)


def _random_state(generator: torch.Generator | None) -> int:
    """A seed for libraries that take an integer (scikit-learn), drawn from ``generator``:
    the same generator state gives the same seed, and the generator moves on."""
    return int(torch.randint(2**31 - 1, (1,), generator=generator))


# The flow's velocity field sees the time as sines and cosines of 8 angular frequencies,
# pi to 32 pi (2^5 pi) apart by octaves. Up to 128 pi fitted no better but made v(x, t)
# wiggle in t faster than 32 ODE steps resolve (samples 0.6% from the converged ODE's,
# against 0.08% here, on 9,000 x 128 face latents).
FLOW_FREQUENCIES = 8
FLOW_TOP_OCTAVE = 5
# The flow integrates this many latents at a time when sampling (memory stays small).
SAMPLE_ROWS = 4096
# The exact trace of the flow's Jacobian holds (rows, D, width) tangents: this many floats
# (64 MiB) a chunk of latents.
TRACE_FLOATS = 2**24
# Whitening raises eigenvalues of the latents' covariance below this fraction of the
# average variance (and below 1e-12) to it: a constant direction (a dead latent unit) would
# otherwise divide by zero.
VARIANCE_FLOOR = 1e-8
# The fewest latents per dimension the flow is fitted on in training. Measured on a 10-minute
# AE's 128-dimensional CelebA latents (1,000 samples each): the samples' total variance was
# 0.13 of the latents' from 233 of them, 0.52 from 1,000, 0.90 from 4,000 and 0.95 from
# 9,000; the GMM's stayed at 1.00-1.02. Too few, and the flow draws latents near their mean
# (most faces one average face) or near single training latents.
FLOW_LATENTS_PER_DIMENSION = 30
WARMUP = 0.02  # the flow's learning rate rises linearly over this first fraction of its fit


class _Velocity(torch.nn.Module):
    """v(x, t): an MLP of ``depth`` hidden SiLU layers of ``width`` units on the whitened
    latent and sinusoidal features of the time."""

    frequencies: torch.Tensor  # a buffer (B, F), registered in __init__

    def __init__(self, dim: int, width: int, depth: int) -> None:
        super().__init__()
        sizes = [dim + 2 * FLOW_FREQUENCIES, *[width] * depth, dim]
        # Left uninitialised (torch's init would draw from the global RNG): see reset().
        self.layers = torch.nn.ModuleList(
            torch.nn.utils.skip_init(torch.nn.Linear, fan_in, fan_out)
            for fan_in, fan_out in itertools.pairwise(sizes)
        )
        self.dim = dim
        # From pi (half a turn over t in [0, 1]): slow trends, and faster changes near
        # t = 1, where the flow sharpens onto the data.
        frequencies = math.pi * torch.logspace(0, FLOW_TOP_OCTAVE, FLOW_FREQUENCIES, base=2)
        self.register_buffer("frequencies", frequencies, persistent=False)

    @property
    def linears(self) -> list[torch.nn.Linear]:
        """The layers, as the Linear modules they are (a ModuleList types them as Modules)."""
        return cast("list[torch.nn.Linear]", list(self.layers))

    def reset(self, generator: torch.Generator | None) -> None:
        """Initialise from ``generator`` alone: torch's U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
        and a zero last layer, so the flow starts as the identity map (the latents'
        Gaussian) and the first steps learn the average velocity."""
        with torch.no_grad():
            linears = self.linears
            for layer in linears[:-1]:
                bound = 1 / math.sqrt(layer.in_features)
                for tensor in (layer.weight, layer.bias):
                    tensor.copy_((2 * torch.rand(tensor.shape, generator=generator) - 1) * bound)
            linears[-1].weight.zero_()
            linears[-1].bias.zero_()

    def _first(self, x: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
        """The first layer's pre-activations (B, width) for latents ``x`` (B, D) at times
        ``t``, a (B, 1) tensor or one float for all."""
        if not isinstance(t, torch.Tensor):
            t = torch.full((x.shape[0], 1), t)
        angles = t * self.frequencies  # (B, F)
        return self.layers[0](torch.cat([x, angles.sin(), angles.cos()], dim=1))

    def forward(self, x: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
        h = torch.nn.functional.silu(self._first(x, t))
        for layer in self.layers[1:-1]:
            h = torch.nn.functional.silu(layer(h))
        return self.layers[-1](h)  # (B, D)

    def with_trace(
        self, x: torch.Tensor, t: torch.Tensor | float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """v(x, t) (B, D) and the exact trace of its Jacobian in x (B,): forward-mode
        differentiation written out for the MLP, carrying the derivatives of every hidden
        unit in each of the D inputs, (B, D, width). That costs about D forward passes."""
        pre = self._first(x, t)  # (B, W)
        linears = self.linears
        tangent = linears[0].weight[:, : self.dim].T.expand(x.shape[0], -1, -1)  # (B, D, W)
        h, tangent = _silu_with_tangent(pre, tangent)
        for layer in linears[1:-1]:
            h, tangent = _silu_with_tangent(layer(h), tangent @ layer.weight.T)
        last = linears[-1]
        # trace = sum_i dv_i/dx_i = sum_i tangent[:, i, :] . last.weight[i, :]
        return last(h), torch.einsum("bdw,dw->b", tangent, last.weight)


def _silu_with_tangent(
    pre: torch.Tensor, tangent: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """SiLU of ``pre`` (B, W) and the tangents (B, D, W) carried through it."""
    gate = torch.sigmoid(pre)
    slope = gate * (1 + pre * (1 - gate))  # d silu(u) / du
    return pre * gate, tangent * slope[:, None, :]


def _whitening(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The mean (D,) of latents ``x`` (N, D) float64, and the symmetric (ZCA) whitening
    matrix W = C^-1/2 and its inverse C^1/2 (D, D), from the eigendecomposition of their
    covariance C (with :data:`VARIANCE_FLOOR`)."""
    mean = x.mean(dim=0)
    centred = x - mean
    covariance = centred.T @ centred / max(x.shape[0] - 1, 1)
    eigenvalues, eigenvectors = torch.linalg.eigh(covariance)
    floor = max(VARIANCE_FLOOR * float(eigenvalues.clamp_min(0).mean()), 1e-12)
    scales = eigenvalues.clamp_min(floor).sqrt()  # (D,) standard deviations
    whiten = (eigenvectors / scales) @ eigenvectors.T  # U diag(1/s) U^T
    unwhiten = (eigenvectors * scales) @ eigenvectors.T
    return mean, whiten, unwhiten


@SAMPLERS.register("flow")
class FlowSampler(LatentSampler):
    """A learned prior: a rectified flow (flow matching; Lipman et al. 2023, Liu et al.
    2023) from N(0, I) to the whitened training latents.

    Fitting whitens the latents with their mean and full covariance (float64, kept as
    float32), then trains a velocity MLP v(x, t) to regress x1 - x0 at x_t = (1 - t) x0 +
    t x1, for noise x0 ~ N(0, I), whitened latents x1 and t ~ U(0, 1): Adam, ``iterations``
    batches of ``batch``, the learning rate warming up over the first 2% and then falling
    to zero along a cosine. Everything random comes from the generator, so one seed gives
    bit-identical weights on one machine. Sampling integrates dx/dt = v(x, t) from noise
    at t = 0 to t = 1 with ``steps`` midpoint steps (two evaluations each) and un-whitens.
    Whitening means the network only has to learn what a Gaussian does not already give.

    The fit costs the same whatever the number of latents (``iterations`` batches: 3,000 by
    default); its measured time is in the README (Training, **Samplers**). It uses torch's
    thread setting as it finds it: two threads on two cores that another process keeps busy
    are several times slower than one (OpenMP threads waiting on each other), with the same
    weights to the bit. On 9,000 x 128 latents of faces (their first 128 principal
    components) the held-out log-likelihood was 3 nats per latent above the 10-component
    GMM's (-273.3 for seeds 0 and 1, against -276.3).
    """

    name = "flow"
    needs_fit = True
    latents_per_dimension: ClassVar[int] = FLOW_LATENTS_PER_DIMENSION

    @classmethod
    def too_few(cls, n: int, dim: int) -> str | None:
        need = cls.latents_per_dimension * dim
        if n >= need:
            return None
        return (
            f"the flow sampler needs at least {need:,} latents ({cls.latents_per_dimension} per"
            f" dimension), not {n:,}: from fewer it draws faces near the average one"
        )

    def __init__(
        self,
        width: int = 512,
        depth: int = 2,
        iterations: int = 3000,
        steps: int = 32,
        lr: float = 3e-3,
        batch: int = 256,
        latent_dim: int | None = None,
    ) -> None:
        def whole(value: Any) -> bool:
            return isinstance(value, int) and not isinstance(value, bool)

        checks = [
            (whole(width) and width >= 1, f"width must be a whole number >= 1, not {width!r}"),
            (whole(depth) and depth >= 1, f"depth must be a whole number >= 1, not {depth!r}"),
            (
                whole(iterations) and iterations >= 1,
                f"iterations must be a whole number >= 1, not {iterations!r}",
            ),
            (whole(steps) and steps >= 1, f"steps must be a whole number >= 1, not {steps!r}"),
            (whole(batch) and batch >= 1, f"batch must be a whole number >= 1, not {batch!r}"),
            (
                isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0,
                f"lr must be a positive number, not {lr!r}",
            ),
            (
                latent_dim is None or (whole(latent_dim) and latent_dim >= 1),
                f"latent_dim must be >= 1, not {latent_dim!r}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise FacegenError(f"flow sampler: {message}")
        self.width, self.depth, self.iterations = width, depth, iterations
        self.steps, self.lr, self.batch = steps, float(lr), batch
        self.latent_dim = latent_dim
        self.velocity: _Velocity | None = None
        self.mean: torch.Tensor | None = None  # (D,) float32
        self.whiten: torch.Tensor | None = None  # (D, D) float32, symmetric
        self.unwhiten: torch.Tensor | None = None  # (D, D) float32, its inverse
        self.fit_info: dict[str, Any] = {}

    @property
    def fitted(self) -> bool:
        return self.velocity is not None

    def fit(
        self,
        latents: torch.Tensor,
        generator: torch.Generator | None = None,
        progress: bool = False,
    ) -> FlowSampler:
        x = _as_latents(latents, self.latent_dim)  # (N, D) float64
        n, d = x.shape
        if n < 2:
            raise FacegenError(f"the flow sampler needs at least 2 latents, got {n}")
        reason = self.too_few(n, d)
        if reason is not None:
            warnings.warn(reason, RuntimeWarning, stacklevel=2)
        mean, whiten, unwhiten = (t.float() for t in _whitening(x))
        data = ((x.float() - mean) @ whiten).contiguous()  # (N, D) whitened (W symmetric)
        velocity = _Velocity(d, self.width, self.depth)
        velocity.reset(generator)
        optimizer = torch.optim.Adam(velocity.parameters(), lr=self.lr, fused=True)
        batch, warmup = min(self.batch, n), max(1, round(WARMUP * self.iterations))
        order, used = torch.randperm(n, generator=generator), 0
        tail, tail_loss = max(1, self.iterations // 10), 0.0
        steps = progress_bar(
            range(self.iterations), desc="flow sampler", unit="step", disable=not progress
        )
        with torch.enable_grad():
            for iteration in steps:
                if used + batch > n:  # a new epoch: every latent once before any twice
                    order, used = torch.randperm(n, generator=generator), 0
                x1 = data[order[used : used + batch]]  # (B, D)
                used += batch
                x0 = torch.randn(batch, d, generator=generator)
                t = torch.rand(batch, 1, generator=generator)
                xt = (1 - t) * x0 + t * x1
                loss = (velocity(xt, t) - (x1 - x0)).square().mean()
                cosine = 0.5 * (1 + math.cos(math.pi * iteration / self.iterations))
                for group in optimizer.param_groups:
                    group["lr"] = self.lr * min(1.0, (iteration + 1) / warmup) * cosine
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if iteration >= self.iterations - tail:
                    tail_loss += float(loss.detach()) / tail
        velocity.requires_grad_(False).eval()
        self._set_parameters(velocity, mean, whiten, unwhiten)
        # The velocity-matching loss, not a likelihood: even a perfect fit to Gaussian
        # latents leaves 2 - pi/2 = 1.57 (what x_t cannot tell of x1 - x0); more structured
        # latents leave less (1.46 on 10,000 x 128 mixture latents, 1.39 on two 2-D modes).
        self.fit_info = {"latents": n, "iterations": self.iterations, "loss": tail_loss}
        return self

    def sample(
        self, n: int, generator: torch.Generator | None = None, truncation: float | None = None
    ) -> torch.Tensor:
        _check_count(n)
        d = self._require_fitted()
        assert self.mean is not None and self.unwhiten is not None
        noise = standard_normal(n, d, generator, truncation).float()  # (n, D) x0
        with torch.no_grad():
            y = map_batches(self._integrate, noise, SAMPLE_ROWS)
            return self.mean + y @ self.unwhiten  # (n, D); unwhiten is symmetric

    def log_likelihood(self, latents: torch.Tensor) -> float:
        """Mean log density under the continuous flow, by the instantaneous change of
        variables: log p(x) = log N(x0; 0, I) - integral over t of the trace of dv/dx, with
        x0 the ODE run back from the whitened x (``steps`` midpoint steps), plus the log
        determinant of the whitening. The trace is exact, not estimated, which costs about
        ``latent_dim`` forward passes a step for each latent, so a few hundred or thousand
        held-out latents are the practical number."""
        return float(self._log_densities(latents).mean())

    def _log_densities(self, latents: torch.Tensor) -> torch.Tensor:
        """Each latent's log density (N,) float64, as :meth:`log_likelihood` describes."""
        d = self._require_fitted()
        assert self.mean is not None and self.whiten is not None
        x = _as_latents(latents, d)
        y = ((x - self.mean.double()) @ self.whiten.double()).float()  # (N, D) whitened
        rows = max(1, TRACE_FLOATS // (d * self.width))
        with torch.no_grad():
            log_p = map_batches(self._log_density, y, rows)
        return log_p + self._log_det_whiten

    def state(self) -> dict[str, torch.Tensor]:
        self._require_fitted()
        assert self.velocity is not None and self.mean is not None
        assert self.whiten is not None and self.unwhiten is not None
        weights = {f"velocity.{key}": value for key, value in self.velocity.state_dict().items()}
        return {"mean": self.mean, "whiten": self.whiten, "unwhiten": self.unwhiten, **weights}

    def options(self) -> dict[str, Any]:
        return {
            "width": self.width,
            "depth": self.depth,
            "iterations": self.iterations,
            "steps": self.steps,
            "lr": self.lr,
            "batch": self.batch,
            "latent_dim": self.latent_dim,
        }

    @classmethod
    def from_state(cls, options: dict[str, Any], state: dict[str, torch.Tensor]) -> FlowSampler:
        sampler = cls(**options)
        d = sampler.latent_dim
        if d is None:
            raise FacegenError("flow sampler options lack latent_dim")
        mean, whiten, unwhiten = (state[key] for key in ("mean", "whiten", "unwhiten"))
        if (mean.shape, whiten.shape, unwhiten.shape) != ((d,), (d, d), (d, d)):
            raise FacegenError(
                f"flow whitening shapes {tuple(mean.shape)}, {tuple(whiten.shape)}, "
                f"{tuple(unwhiten.shape)} do not match dimension {d}"
            )
        velocity = _Velocity(d, sampler.width, sampler.depth)
        weights = {
            key.removeprefix("velocity."): value
            for key, value in state.items()
            if key.startswith("velocity.")
        }
        expected = velocity.state_dict()
        if {k: tuple(v.shape) for k, v in weights.items()} != {
            k: tuple(v.shape) for k, v in expected.items()
        }:
            raise FacegenError(
                f"the flow's weights do not match a velocity MLP of width {sampler.width}, "
                f"depth {sampler.depth} and dimension {d}"
            )
        velocity.load_state_dict(weights)
        velocity.requires_grad_(False).eval()
        tensors = [mean, whiten, unwhiten, *weights.values()]
        if not all(torch.isfinite(t).all() for t in tensors):
            raise FacegenError("flow state holds NaN or inf")
        sampler._set_parameters(velocity, mean.float(), whiten.float(), unwhiten.float())
        return sampler

    def _set_parameters(
        self,
        velocity: _Velocity,
        mean: torch.Tensor,
        whiten: torch.Tensor,
        unwhiten: torch.Tensor,
    ) -> None:
        self.velocity, self.mean, self.whiten, self.unwhiten = velocity, mean, whiten, unwhiten
        self.latent_dim = mean.shape[0]
        # log |det W| of the stored float32 whitening, so a loaded sampler gives the
        # same densities as the fitted one.
        self._log_det_whiten = float(torch.linalg.slogdet(whiten.double()).logabsdet)

    def _integrate(self, x: torch.Tensor) -> torch.Tensor:
        """Noise (B, D) at t = 0 carried to t = 1 along v: midpoint steps."""
        assert self.velocity is not None
        h = 1 / self.steps
        for k in range(self.steps):
            t = k * h
            half = x + h / 2 * self.velocity(x, t)
            x = x + h * self.velocity(half, t + h / 2)
        return x

    def _log_density(self, y: torch.Tensor) -> torch.Tensor:
        """log p(y) (B,) of whitened latents ``y`` (B, D) under the flow: the ODE run back
        from t = 1 to 0 with midpoint steps, the trace of dv/dx integrated at the midpoints."""
        assert self.velocity is not None
        h = 1 / self.steps
        x, divergence = y, torch.zeros(y.shape[0])
        for k in reversed(range(self.steps)):
            t = (k + 1) * h
            half = x - h / 2 * self.velocity(x, t)
            v, trace = self.velocity.with_trace(half, t - h / 2)
            x = x - h * v
            divergence += h * trace
        log_noise = -0.5 * (x.shape[1] * LOG_2PI + x.double().square().sum(dim=1))
        return log_noise - divergence.double()


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
