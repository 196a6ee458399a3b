"""The flow sampler: a rectified flow on whitened latents. Fits here are tiny (a 64-unit MLP,
at most 800 steps on 2-D latents) so that each takes about a second at most."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from facegen.errors import FacegenError
from facegen.sampling import (
    FLOW_LATENTS_PER_DIMENSION,
    SAMPLERS,
    FlowSampler,
    GMMSampler,
    _Velocity,
    load_sampler,
    save_sampler,
)

# Two well-separated 2-D Gaussians, 70% and 30%: nothing should land between them.
LEFT, RIGHT, SPREAD, LEFT_SHARE = (-4.0, 0.0), (4.0, 1.0), 0.5, 0.7
TINY = {"width": 64, "depth": 2, "lr": 1e-2, "batch": 256}


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """Tiny matrices gain nothing from threads, and on a busy machine OpenMP threads wait on
    each other (a fit took ten times longer with 2 threads on 2 shared cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def two_modes(n: int, seed: int) -> torch.Tensor:
    generator = seeded(seed)
    left = torch.rand(n, generator=generator) < LEFT_SHARE
    centres = torch.where(left[:, None], torch.tensor(LEFT), torch.tensor(RIGHT))
    return centres + SPREAD * torch.randn(n, 2, generator=generator)  # (n, 2)


def true_log_likelihood(x: torch.Tensor) -> float:
    normal = torch.distributions.Normal(0.0, SPREAD)
    left = normal.log_prob(x - torch.tensor(LEFT)).sum(dim=1) + math.log(LEFT_SHARE)
    right = normal.log_prob(x - torch.tensor(RIGHT)).sum(dim=1) + math.log(1 - LEFT_SHARE)
    return float(torch.logaddexp(left, right).mean())


@pytest.fixture(scope="module")
def latents() -> torch.Tensor:
    return two_modes(2000, seed=0)


@pytest.fixture(scope="module")
def flow(latents: torch.Tensor) -> FlowSampler:
    return FlowSampler(iterations=800, **TINY).fit(latents, seeded(0))  # 0.8 s


def quick(latents: torch.Tensor, seed: int = 0, **options) -> FlowSampler:
    return FlowSampler(**{"iterations": 30, **TINY, **options}).fit(latents, seeded(seed))


def test_samples_have_both_modes_in_their_shares_and_nothing_between(flow: FlowSampler):
    z = flow.sample(4000, seeded(1))
    assert z.shape == (4000, 2) and z.dtype == torch.float32 and torch.isfinite(z).all()
    left = float((z[:, 0] < -2).float().mean())
    between = float((z[:, 0].abs() < 2).float().mean())  # 4 standard deviations from either
    assert left == pytest.approx(LEFT_SHARE, abs=0.05)
    assert between < 0.05  # a Gaussian fitted to the same latents puts 40% here
    for centre, side in ((LEFT, z[:, 0] < -2), (RIGHT, z[:, 0] > 2)):
        mode = z[side].double()
        assert torch.allclose(mode.mean(dim=0), torch.tensor(centre).double(), atol=0.15)
        assert mode.std(dim=0).max() < 2 * SPREAD


def test_the_log_likelihood_is_near_the_true_one_and_beats_a_gaussian(flow, latents):
    held_out = two_modes(200, seed=1)
    ours = flow.log_likelihood(held_out)
    gaussian = GMMSampler(components=1).fit(latents, seeded(0)).log_likelihood(held_out)
    assert ours == pytest.approx(true_log_likelihood(held_out), abs=0.2)  # measured 0.11 below
    assert ours > gaussian + 1  # the Gaussian: about -3.4 nats, the truth -2.1


def test_the_density_integrates_to_one(flow: FlowSampler):
    # log_likelihood is a density in the latents' own coordinates (the whitening counted).
    step = 0.2
    xs, ys = torch.arange(-7, 7, step) + step / 2, torch.arange(-3, 4, step) + step / 2
    grid = torch.cartesian_prod(xs, ys)  # (2450, 2) cell centres
    mass = float(flow._log_densities(grid).exp().sum()) * step**2
    assert mass == pytest.approx(1, abs=0.03)


def test_the_exact_trace_is_the_jacobians(latents):
    velocity = _Velocity(dim=5, width=16, depth=3)
    velocity.reset(seeded(0))
    with torch.no_grad():  # random weights everywhere: the zero last layer would hide errors
        for layer in velocity.layers:
            layer.weight.normal_(generator=seeded(1))
    x = torch.randn(4, 5, generator=seeded(2))
    with torch.no_grad():
        v, trace = velocity.with_trace(x, 0.3)
        assert torch.allclose(v, velocity(x, 0.3), atol=1e-5)
    for row in range(4):
        jacobian = torch.autograd.functional.jacobian(lambda y: velocity(y[None], 0.3)[0], x[row])
        assert float(trace[row]) == pytest.approx(float(jacobian.trace()), rel=1e-4, abs=1e-3)


def test_an_untrained_flow_is_the_latents_gaussian(latents):
    # A zero velocity carries the noise unchanged: the un-whitened N(0, I) is the Gaussian
    # of the latents' mean and covariance, so the densities must agree.
    flow = quick(latents, iterations=1, lr=1e-12)
    gaussian = GMMSampler(components=1).fit(latents, seeded(0))
    assert flow.log_likelihood(latents) == pytest.approx(gaussian.log_likelihood(latents), abs=1e-3)


def test_the_same_seed_fits_and_samples_identically(latents):
    first, second, other = quick(latents, 0), quick(latents, 0), quick(latents, 1)
    for key, value in first.state().items():
        assert torch.equal(value, second.state()[key]), key
    assert not torch.equal(
        first.state()["velocity.layers.0.weight"], other.state()["velocity.layers.0.weight"]
    )
    assert torch.equal(first.sample(300, seeded(5)), second.sample(300, seeded(5)))
    assert not torch.equal(first.sample(300, seeded(5)), first.sample(300, seeded(6)))
    assert not torch.equal(first.sample(300, seeded(5)), other.sample(300, seeded(5)))
    assert first.fit_info == second.fit_info
    assert first.fit_info["iterations"] == 30 and first.fit_info["latents"] == 2000


def test_fitting_draws_only_from_its_generator_and_keeps_the_threads(latents):
    torch.manual_seed(123)
    before, threads = torch.get_rng_state(), torch.get_num_threads()
    quick(latents, 0)
    assert torch.equal(torch.get_rng_state(), before)  # the global RNG untouched
    assert torch.get_num_threads() == threads


def test_truncation_pulls_samples_to_where_the_noise_is_zero(flow: FlowSampler):
    centre = flow.sample(1, truncation=1e-6)  # the image of x0 = 0
    near = flow.sample(200, seeded(1), truncation=1e-3)
    assert (near - centre).abs().max() < 0.05
    wide = flow.sample(200, seeded(1), truncation=0.5)
    assert not torch.equal(wide, flow.sample(200, seeded(1)))
    with pytest.raises(FacegenError, match="truncation must be positive"):
        flow.sample(2, truncation=-1.0)
    assert flow.sample(0).shape == (0, 2)


def test_save_and_load_give_identical_samples(tmp_path: Path, flow: FlowSampler, latents):
    path = save_sampler(flow, tmp_path)
    assert path.name == "sampler-flow.safetensors"
    loaded = load_sampler(tmp_path, "flow")
    assert isinstance(loaded, FlowSampler)
    assert (
        loaded.options()
        == flow.options()
        == {**TINY, "iterations": 800, "steps": 32, "latent_dim": 2}
    )
    assert loaded.fit_info == flow.fit_info
    assert torch.equal(loaded.sample(300, seeded(5)), flow.sample(300, seeded(5)))
    assert loaded.log_likelihood(latents[:50]) == flow.log_likelihood(latents[:50])
    with safe_open(path, framework="pt") as file:
        assert {"mean", "whiten", "unwhiten", "velocity.layers.0.weight"} <= set(file.keys())


def test_a_damaged_flow_file_names_the_file(tmp_path: Path, flow: FlowSampler):
    path = save_sampler(flow, tmp_path)
    with safe_open(path, framework="pt") as file:
        metadata = file.metadata()
        tensors = {key: file.get_tensor(key) for key in file.keys()}  # noqa: SIM118
    tensors["velocity.layers.1.weight"] = tensors["velocity.layers.1.weight"][:, :10].contiguous()
    save_file(tensors, path, metadata=metadata)
    with pytest.raises(FacegenError, match=r"sampler-flow\.safetensors is damaged.*width 64"):
        load_sampler(tmp_path, "flow")


@pytest.mark.parametrize(
    "degenerate",
    [
        torch.ones(40, 3),  # every latent the same
        torch.cat([torch.randn(60, 2), torch.full((60, 1), 3.0)], dim=1),  # a dead unit
    ],
    ids=["identical", "dead unit"],
)
@pytest.mark.filterwarnings("ignore:the flow sampler needs at least")  # 40 and 60 latents
def test_degenerate_latents_give_a_finite_flow(degenerate):
    flow = quick(degenerate)
    z = flow.sample(100, seeded(1))
    assert torch.isfinite(z).all() and all(torch.isfinite(t).all() for t in flow.state().values())
    constant = degenerate.std(dim=0) == 0
    assert torch.allclose(z[:, constant], degenerate[:1, constant], atol=1e-4)


def test_the_flow_refuses_bad_input(latents):
    with pytest.raises(FacegenError, match="the flow sampler is not fitted"):
        FlowSampler().sample(3)
    with pytest.raises(FacegenError, match="the flow sampler is not fitted"):
        FlowSampler().log_likelihood(latents)
    damaged = latents.clone()
    damaged[11, 0] = math.nan
    with pytest.raises(FacegenError, match="1 of 2000 latents contain NaN or inf.*row 11"):
        quick(damaged)
    with pytest.raises(FacegenError, match="latents have dimension 2, the sampler 3"):
        quick(latents, latent_dim=3)
    with pytest.raises(FacegenError, match="needs at least 2 latents, got 1"):
        quick(latents[:1])
    flow = quick(latents)
    with pytest.raises(FacegenError, match="latents have dimension 4, the sampler 2"):
        flow.log_likelihood(torch.randn(5, 4))
    with pytest.raises(FacegenError, match="non-negative integer"):
        flow.sample(-1)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"width": 0}, "width must be a whole number >= 1"),
        ({"depth": 1.5}, "depth must be a whole number >= 1"),
        ({"iterations": 0}, "iterations must be a whole number >= 1"),
        ({"steps": True}, "steps must be a whole number >= 1"),
        ({"batch": -4}, "batch must be a whole number >= 1"),
        ({"lr": 0}, "lr must be a positive number"),
        ({"lr": math.nan}, "lr must be a positive number"),
        ({"latent_dim": 0}, "latent_dim must be >= 1"),
    ],
)
def test_bad_options_are_refused_by_name(options, message):
    with pytest.raises(FacegenError, match=f"flow sampler: {message}"):
        FlowSampler(**options)


def test_the_registry_builds_it_by_name():
    assert SAMPLERS.get("flow") is FlowSampler and FlowSampler.needs_fit


def test_too_few_latents_per_dimension_are_named_and_warned_about(latents):
    need = FLOW_LATENTS_PER_DIMENSION * 128
    assert FlowSampler.too_few(need, 128) is None and GMMSampler.too_few(2, 128) is None
    reason = FlowSampler.too_few(233, 128)
    assert reason == (
        f"the flow sampler needs at least {need:,} latents ({FLOW_LATENTS_PER_DIMENSION} per"
        " dimension), not 233: from fewer it draws faces near the average one"
    )
    with pytest.warns(RuntimeWarning, match="needs at least 60 latents .* not 59"):
        quick(latents[:59])  # 2-D latents
