"""Latent samplers: the registry, N(0, I), the GMM (scikit-learn's EM), determinism and saving.
The flow sampler has its own file, test_sampling_flow.py."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import distributions

from facegen.errors import FacegenError
from facegen.sampling import (
    SAMPLERS,
    FlowSampler,
    GMMSampler,
    LatentSampler,
    NormalSampler,
    load_sampler,
    sampler_path,
    save_sampler,
)

# Three well-separated 2-D Gaussians with correlated, unequal covariances.
TRUE_WEIGHTS = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
TRUE_MEANS = torch.tensor([[-6.0, 0.0], [6.0, 2.0], [0.0, 9.0]], dtype=torch.float64)
TRUE_COVARIANCES = torch.tensor(
    [[[1.0, 0.5], [0.5, 1.0]], [[0.5, 0.0], [0.0, 2.0]], [[2.0, -0.8], [-0.8, 1.0]]],
    dtype=torch.float64,
)


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def draw_mixture(
    n: int,
    weights: torch.Tensor,
    means: torch.Tensor,
    covariances: torch.Tensor,
    seed: int | torch.Generator,
) -> torch.Tensor:
    """(n, D) float64 draws from a Gaussian mixture, independently of facegen's sampler."""
    generator = seed if isinstance(seed, torch.Generator) else seeded(seed)
    component = torch.multinomial(weights, n, replacement=True, generator=generator)
    noise = torch.randn(n, means.shape[1], generator=generator, dtype=torch.float64)
    scale = torch.linalg.cholesky(covariances)  # (K, D, D)
    return means[component] + (scale[component] @ noise[:, :, None]).squeeze(2)


def torch_mixture(weights, means, covariances) -> distributions.Distribution:
    """The same mixture as torch.distributions builds it: a reference for densities."""
    if covariances.ndim == 2:  # diagonal
        normals = distributions.Independent(distributions.Normal(means, covariances.sqrt()), 1)
    else:
        normals = distributions.MultivariateNormal(means, covariance_matrix=covariances)
    return distributions.MixtureSameFamily(distributions.Categorical(probs=weights), normals)


def matched(fitted_means: torch.Tensor, true_means: torch.Tensor) -> list[int]:
    """For each true component, the index of the fitted component with the nearest mean."""
    order = torch.cdist(true_means, fitted_means).argmin(dim=1).tolist()
    assert sorted(order) == list(range(len(true_means))), "two true components share a fit"
    return order


@pytest.fixture(scope="module")
def mixture_latents() -> torch.Tensor:
    return draw_mixture(6000, TRUE_WEIGHTS, TRUE_MEANS, TRUE_COVARIANCES, seed=0)


@pytest.fixture(scope="module")
def fitted_gmm(mixture_latents: torch.Tensor) -> GMMSampler:
    return GMMSampler(components=3).fit(mixture_latents, seeded(0))


# Registry


def test_registry_finds_normal_gmm_and_flow():
    assert SAMPLERS.get("normal") is NormalSampler
    assert SAMPLERS.get("gmm") is GMMSampler
    assert SAMPLERS.get("flow") is FlowSampler and FlowSampler.needs_fit
    for name in SAMPLERS:
        assert issubclass(SAMPLERS.get(name), LatentSampler)
        assert SAMPLERS.get(name).name == name
    assert not NormalSampler.needs_fit and GMMSampler.needs_fit


def test_unknown_sampler_lists_the_known_ones():
    with pytest.raises(
        FacegenError, match=r"unknown sampler 'vamp'; choose one of: flow, gmm, normal"
    ):
        SAMPLERS.get("vamp")


# N(0, I)


def test_normal_sampler_draws_standard_normal_latents():
    z = NormalSampler(latent_dim=16).sample(20_000, seeded(0))
    assert z.shape == (20_000, 16) and z.dtype == torch.float32 and z.device.type == "cpu"
    assert z.mean(dim=0).abs().max() < 0.04
    assert (z.std(dim=0) - 1).abs().max() < 0.03
    assert (torch.cov(z.T) - torch.eye(16)).abs().max() < 0.04


def test_normal_sampler_is_deterministic_from_the_seed():
    sampler = NormalSampler(latent_dim=8)
    assert torch.equal(sampler.sample(10, seeded(3)), sampler.sample(10, seeded(3)))
    assert not torch.equal(sampler.sample(10, seeded(3)), sampler.sample(10, seeded(4)))


def test_normal_sampler_takes_its_dimension_from_fit():
    with pytest.raises(FacegenError, match="not fitted"):
        NormalSampler().sample(3)
    sampler = NormalSampler().fit(torch.randn(5, 7))
    assert sampler.latent_dim == 7 and sampler.sample(3, seeded(0)).shape == (3, 7)
    expected = distributions.Normal(0.0, 1.0).log_prob(torch.ones(4, 7)).sum(dim=1).mean()
    assert sampler.log_likelihood(torch.ones(4, 7)) == pytest.approx(float(expected))


def test_truncation_keeps_latents_within_the_bound_as_a_truncated_normal():
    t = 0.5
    z = NormalSampler(latent_dim=4).sample(40_000, seeded(0), truncation=t)
    assert z.abs().max() <= t and z.abs().max() > 0.49
    # The variance of N(0, 1) truncated to [-t, t]: 1 - 2 t pdf(t) / (2 cdf(t) - 1).
    pdf = math.exp(-(t**2) / 2) / math.sqrt(2 * math.pi)
    cdf = 0.5 * (1 + math.erf(t / math.sqrt(2)))
    assert float(z.var()) == pytest.approx(1 - 2 * t * pdf / (2 * cdf - 1), rel=0.02)
    wide = NormalSampler(latent_dim=4).sample(20_000, seeded(0), truncation=50.0)
    assert torch.isfinite(wide).all() and float(wide.std()) == pytest.approx(1, abs=0.02)
    with pytest.raises(FacegenError, match="truncation must be positive"):
        NormalSampler(latent_dim=4).sample(2, truncation=0.0)


# GMM: fitting


def test_gmm_recovers_a_known_mixture(fitted_gmm: GMMSampler):
    order = matched(fitted_gmm.means, TRUE_MEANS)
    assert torch.allclose(fitted_gmm.weights[order], TRUE_WEIGHTS, atol=0.02)
    assert torch.allclose(fitted_gmm.means[order], TRUE_MEANS, atol=0.12)
    assert torch.allclose(fitted_gmm.covariances[order], TRUE_COVARIANCES, atol=0.2)
    assert fitted_gmm.fit_info["converged"]


def test_gmm_log_likelihood_is_the_mixture_density(fitted_gmm, mixture_latents):
    ours = fitted_gmm.log_likelihood(mixture_latents)
    reference = torch_mixture(fitted_gmm.weights, fitted_gmm.means, fitted_gmm.covariances)
    assert ours == pytest.approx(float(reference.log_prob(mixture_latents).mean()), abs=1e-9)
    assert ours == pytest.approx(fitted_gmm.fit_info["log_likelihood"], abs=1e-9)
    # The maximum-likelihood fit beats the true parameters on its own data, but barely.
    truth = torch_mixture(TRUE_WEIGHTS, TRUE_MEANS, TRUE_COVARIANCES)
    true_log_likelihood = float(truth.log_prob(mixture_latents).mean())
    assert true_log_likelihood - 1e-6 <= ours <= true_log_likelihood + 0.01


def test_gmm_samples_match_the_data(fitted_gmm, mixture_latents):
    z = fitted_gmm.sample(20_000, seeded(1)).double()
    assert z.shape == (20_000, 2) and torch.isfinite(z).all()
    assert torch.allclose(z.mean(dim=0), mixture_latents.mean(dim=0), atol=0.15)
    assert torch.allclose(torch.cov(z.T), torch.cov(mixture_latents.T), rtol=0.05, atol=0.2)
    share = torch.bincount(torch.cdist(z, TRUE_MEANS).argmin(dim=1), minlength=3).double() / len(z)
    assert torch.allclose(share, TRUE_WEIGHTS, atol=0.02)


def test_full_covariance_captures_correlation_and_diag_does_not():
    covariance = torch.tensor([[1.0, 0.8], [0.8, 1.0]], dtype=torch.float64)
    x = draw_mixture(5000, torch.ones(1), torch.zeros(1, 2), covariance[None], seed=1)
    full = GMMSampler(components=1, covariance="full").fit(x, seeded(0))
    diag = GMMSampler(components=1, covariance="diag").fit(x, seeded(0))
    assert full.covariances.shape == (1, 2, 2) and diag.covariances.shape == (1, 2)
    assert torch.allclose(full.covariances[0], covariance, atol=0.05)
    assert torch.allclose(diag.covariances[0], covariance.diagonal(), atol=0.05)
    # A correlation of 0.8 is worth -log(1 - 0.8^2) / 2 = 0.51 nats per latent.
    gain = full.log_likelihood(x) - diag.log_likelihood(x)
    assert gain == pytest.approx(-0.5 * math.log(1 - 0.8**2), abs=0.03)
    assert torch.corrcoef(full.sample(10_000, seeded(2)).T)[0, 1] == pytest.approx(0.8, abs=0.02)
    assert torch.corrcoef(diag.sample(10_000, seeded(2)).T)[0, 1] == pytest.approx(0, abs=0.03)
    # Truncation bounds the noise: within one standard deviation of the mean on each axis.
    spread = (diag.sample(10_000, seeded(2), truncation=1.0) - diag.means).abs()
    spread = spread / diag.covariances.sqrt()
    assert spread.max() <= 1 + 1e-6 and spread.max() > 0.99


def test_diag_gmm_recovers_axis_aligned_components():
    variances = torch.tensor([[0.5, 2.0, 1.0], [1.5, 0.3, 0.8]], dtype=torch.float64)
    means = torch.tensor([[-5.0, 0.0, 2.0], [5.0, 1.0, -2.0]], dtype=torch.float64)
    weights = torch.tensor([0.6, 0.4], dtype=torch.float64)
    x = draw_mixture(6000, weights, means, torch.diag_embed(variances), seed=2)
    gmm = GMMSampler(components=2, covariance="diag").fit(x, seeded(0))
    order = matched(gmm.means, means)
    assert torch.allclose(gmm.weights[order], weights, atol=0.02)
    assert torch.allclose(gmm.means[order], means, atol=0.1)
    assert torch.allclose(gmm.covariances[order], variances, atol=0.1)
    reference = torch_mixture(gmm.weights, gmm.means, gmm.covariances)
    assert gmm.log_likelihood(x) == pytest.approx(float(reference.log_prob(x).mean()), abs=1e-9)


def test_gmm_is_deterministic_from_the_seed(mixture_latents):
    first = GMMSampler(components=4).fit(mixture_latents, seeded(7))
    second = GMMSampler(components=4).fit(mixture_latents, seeded(7))
    for key, value in first.state().items():
        assert torch.equal(value, second.state()[key]), key
    assert torch.equal(first.sample(500, seeded(1)), second.sample(500, seeded(1)))
    assert not torch.equal(first.sample(500, seeded(1)), first.sample(500, seeded(2)))


@pytest.mark.parametrize(
    "latents",
    [
        torch.ones(40, 3),  # every latent the same
        torch.tensor([[0.0, 0.0], [1.0, 1.0], [5.0, -5.0]]).repeat(20, 1),  # 3 points, 5 parts
        torch.cat([torch.randn(200, 2), torch.full((60, 2), 20.0)]),  # a collapsed cluster
    ],
    ids=["identical", "duplicates", "collapsed"],
)
@pytest.mark.parametrize("covariance", ["full", "diag"])
def test_gmm_on_degenerate_latents_stays_finite(latents, covariance):
    gmm = GMMSampler(components=5, covariance=covariance).fit(latents, seeded(0))
    assert all(torch.isfinite(value).all() for value in gmm.state().values())
    assert torch.isfinite(gmm.sample(1000, seeded(1))).all()
    assert math.isfinite(gmm.log_likelihood(latents))
    assert gmm.weights.sum() == pytest.approx(1)


def test_em_stops_on_tolerance_or_after_max_iter(mixture_latents):
    def fit(**options) -> GMMSampler:
        return GMMSampler(components=5, **options).fit(mixture_latents, seeded(0))

    exhaustive = fit(tol=0.0, max_iter=30)
    assert exhaustive.fit_info["iterations"] == 30 and not exhaustive.fit_info["converged"]
    loose = fit(tol=1e9)  # the first change, from nothing, never counts as converged
    assert loose.fit_info["iterations"] == 2 and loose.fit_info["converged"]
    default = fit()
    assert default.fit_info["converged"] and 2 < default.fit_info["iterations"] < 100
    # EM never lowers the likelihood: more iterations, a better fit.
    assert loose.log_likelihood(mixture_latents) <= default.log_likelihood(mixture_latents)
    assert default.log_likelihood(mixture_latents) <= exhaustive.fit_info["log_likelihood"] + 1e-3


def old_em_fixture() -> torch.Tensor:
    """600 x 8 latents from four Gaussians (weights 0.4 to 0.1, random means 4 sigma apart,
    random full covariances): the fixture the old EM's numbers below were measured on."""
    generator = seeded(20240)
    k, d, n = 4, 8, 600
    means = 4.0 * torch.randn(k, d, generator=generator, dtype=torch.float64)
    mixing = torch.randn(k, d, d, generator=generator, dtype=torch.float64)
    covariances = mixing @ mixing.mT / d + 0.2 * torch.eye(d, dtype=torch.float64)
    weights = torch.tensor([0.4, 0.3, 0.2, 0.1], dtype=torch.float64)
    return draw_mixture(n, weights, means, covariances, seed=generator)


# The old EM (k-means++ and our own EM, before scikit-learn) on old_em_fixture(): with 4
# components its seeds 2-5 reached these optima (seeds 0 and 1 stopped in a worse local
# one, -12.138 full and -13.896 diag); with 10 components, the mean over seeds 0-5.
OLD_EM_4 = {"full": -11.1470459512027, "diag": -12.50196309043922}
OLD_EM_10_MEAN = {"full": -10.752162855606755, "diag": -12.020037252087995}


@pytest.mark.parametrize("covariance", ["full", "diag"])
def test_the_scikit_learn_gmm_matches_the_old_log_likelihood_on_a_fixture(covariance):
    x = old_em_fixture()

    def fitted(components: int, seed: int) -> float:
        gmm = GMMSampler(components=components, covariance=covariance).fit(x, seeded(seed))
        return gmm.fit_info["log_likelihood"]  # log_likelihood(x), as a test above checks

    # The same optimum to 1e-6 nats (it measured equal to 2e-15): one EM, whoever runs it.
    # Like the old EM, a seed can stop in a local optimum, so the best of four is compared.
    assert max(fitted(4, seed) for seed in range(4)) == pytest.approx(
        OLD_EM_4[covariance], abs=1e-6
    )
    # More components than clusters: local optima differ by seed (0.2 nats apart), so the
    # mean over seeds; measured -10.771 full (old -10.752) and -11.905 diag (old -12.020).
    ten = [fitted(10, seed) for seed in range(6)]
    assert sum(ten) / len(ten) >= OLD_EM_10_MEAN[covariance] - 0.03


def test_a_gmm_file_of_the_old_em_still_loads_and_samples_the_same():
    # Written by the old EM's code (format 1) with the samples it drew, seeds 5 and 6.
    folder = Path(__file__).parent / "fixtures" / "gmm-v1"
    gmm = load_sampler(folder, "gmm")
    assert isinstance(gmm, GMMSampler) and gmm.components == 4 and gmm.latent_dim == 8
    assert gmm.fit_info["reseeded"] == 0  # the old fit info comes back as it was saved
    with safe_open(folder / "expected.safetensors", framework="pt") as file:
        expected = {key: file.get_tensor(key) for key in file.keys()}  # noqa: SIM118
        recorded = float(file.metadata()["log_likelihood"])
    assert torch.equal(gmm.sample(32, seeded(5)), expected["samples"])
    assert torch.equal(gmm.sample(32, seeded(6), truncation=1.0), expected["truncated"])
    assert gmm.log_likelihood(old_em_fixture()) == pytest.approx(recorded, abs=1e-9)


def test_a_singular_fit_says_what_to_change():
    with pytest.raises(FacegenError, match=r"covariance is singular.*raise reg_covar \(now 0\)"):
        GMMSampler(components=2, reg_covar=0.0).fit(torch.ones(40, 3), seeded(0))


def test_gmm_refuses_too_few_latents():
    with pytest.raises(FacegenError, match="10 components needs at least 10 latents, got 5"):
        GMMSampler(components=10).fit(torch.randn(5, 3))


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_gmm_refuses_non_finite_latents(bad):
    x = torch.randn(50, 3)
    x[7, 1] = bad
    with pytest.raises(FacegenError, match="1 of 50 latents contain NaN or inf.*row 7"):
        GMMSampler(components=2).fit(x)


def test_gmm_refuses_bad_options_and_shapes():
    with pytest.raises(FacegenError, match="covariance must be one of full, diag"):
        GMMSampler(covariance="spherical")
    with pytest.raises(FacegenError, match="components must be at least 1"):
        GMMSampler(components=0)
    with pytest.raises(FacegenError, match=r"non-empty \(N, D\) tensor"):
        GMMSampler(components=1).fit(torch.randn(20))
    with pytest.raises(FacegenError, match="not fitted"):
        GMMSampler().sample(4)
    gmm = GMMSampler(components=1).fit(torch.randn(20, 3), seeded(0))
    with pytest.raises(FacegenError, match="latents have dimension 4, the sampler 3"):
        gmm.log_likelihood(torch.randn(5, 4))


# Saving and loading


@pytest.mark.parametrize("name", ["normal", "gmm"])
def test_save_and_load_give_identical_samples(tmp_path: Path, name: str, mixture_latents):
    sampler = SAMPLERS.get(name)(**({"components": 3} if name == "gmm" else {}))
    sampler.fit(mixture_latents, seeded(0))
    path = save_sampler(sampler, tmp_path)
    assert path == tmp_path / f"sampler-{name}.safetensors" == sampler_path(tmp_path, name)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary left behind
    loaded = load_sampler(tmp_path, name)
    assert type(loaded) is type(sampler)
    assert loaded.options() == sampler.options() and loaded.fit_info == sampler.fit_info
    assert torch.equal(loaded.sample(300, seeded(5)), sampler.sample(300, seeded(5)))
    assert loaded.log_likelihood(mixture_latents) == sampler.log_likelihood(mixture_latents)


def test_loading_a_missing_sampler_says_how_to_make_one(tmp_path: Path):
    with pytest.raises(FacegenError, match=r"no gmm sampler at .*sampler-gmm\.safetensors.*fit"):
        load_sampler(tmp_path, "gmm")
    with pytest.raises(FacegenError, match="unknown sampler 'vamp'"):
        load_sampler(tmp_path, "vamp")


@pytest.mark.parametrize("damage", ["truncated", "garbage", "another sampler", "future format"])
def test_loading_a_damaged_sampler_names_the_file(tmp_path: Path, damage: str, fitted_gmm):
    path = save_sampler(fitted_gmm, tmp_path)
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:-40])
    elif damage == "garbage":
        path.write_bytes(b"not a safetensors file at all")
    elif damage == "another sampler":
        save_sampler(NormalSampler(latent_dim=2), tmp_path).replace(path)
    else:
        with safe_open(path, framework="pt") as file:
            header = json.loads(file.metadata()["facegen_sampler"])
            tensors = {key: file.get_tensor(key) for key in file.keys()}  # noqa: SIM118
        header["format"] = 99
        save_file(tensors, path, metadata={"facegen_sampler": json.dumps(header)})
    with pytest.raises(FacegenError, match=r"sampler-gmm\.safetensors is damaged"):
        load_sampler(tmp_path, "gmm")


def test_saving_an_unfitted_sampler_is_refused(tmp_path: Path):
    with pytest.raises(FacegenError, match="not fitted"):
        save_sampler(GMMSampler(), tmp_path)
    assert not list(tmp_path.iterdir())
