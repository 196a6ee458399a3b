"""Every registered model, on tiny configs: the interface, sizes, memory formats, autocast,
saving, config errors, and that gradients reach every weight. A newly registered model is
tested by being registered."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from facegen.errors import FacegenError
from facegen.models import MODELS, build_model, load_model, save_model
from facegen.models.ae import AutoencoderOutput
from facegen.models.base import FaceModel

ALL = MODELS.names()
ENCODERS = [name for name in ALL if MODELS.get(name).has_encoder]
GANS = [name for name in ALL if MODELS.get(name).is_gan]
SIZE = 32


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """Tiny tensors gain nothing from threads, and on a busy machine OpenMP threads wait on
    each other: these tests took 2 minutes instead of 3 seconds with 2 threads on 2 shared
    cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny(name: str, **overrides: Any) -> dict[str, Any]:
    """A tiny config for any model: every ``*width`` field 8, latent_dim 16, 32x32."""
    fields = dataclasses.fields(MODELS.get(name).config_class)
    config: dict[str, Any] = {"image_size": SIZE, "latent_dim": 16}
    config.update({field.name: 8 for field in fields if field.name.endswith("width")})
    return {**config, **overrides}


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images(n: int = 4, size: int = SIZE, seed: int = 0) -> torch.Tensor:
    """Smooth random images in [-1, 1] (noise at 1/4 resolution, upsampled)."""
    low = torch.rand(n, 3, size // 4, size // 4, generator=seeded(seed)) * 2 - 1
    return F.interpolate(low, size=size, mode="bilinear", align_corners=False)  # (n, 3, S, S)


def model_outputs(model: FaceModel, x: torch.Tensor, z: torch.Tensor) -> list[torch.Tensor]:
    """What a user gets from the model: decodes, and encodes where it can."""
    outputs = [model.decode(z)]
    if model.has_encoder:
        outputs += [model.encode(x), model.reconstruct(x)]
    return outputs


@pytest.mark.parametrize("name", ALL)
def test_every_model_names_its_training_objective(name: str) -> None:
    from facegen.training.objectives import OBJECTIVES

    assert MODELS.get(name).objective in OBJECTIVES


@pytest.mark.parametrize("name", ALL)
def test_sample_is_in_range_and_reproducible(name: str) -> None:
    model = build_model(name, tiny(name)).eval()
    first = model.sample(4, seeded(0))
    assert first.shape == (4, 3, SIZE, SIZE)
    assert first.min() >= -1 and first.max() <= 1
    assert torch.equal(first, model.sample(4, seeded(0)))
    assert not torch.allclose(first, model.sample(4, seeded(1)))


@pytest.mark.parametrize("name", ALL)
def test_decode_of_explicit_latents_matches_sample(name: str) -> None:
    model = build_model(name, tiny(name)).eval()
    z = torch.randn(3, 16, generator=seeded(2))
    assert torch.equal(model.decode(z), model.sample(3, z=z))


@pytest.mark.parametrize("name", ALL)
def test_weights_are_fixed_by_the_torch_seed(name: str) -> None:
    def weights(seed: int) -> list[torch.Tensor]:
        torch.manual_seed(seed)
        model = build_model(name, tiny(name))
        critic = [model.make_discriminator()] if model.is_gan else []
        return [t for module in [model, *critic] for t in module.state_dict().values()]

    first, again, other = weights(0), weights(0), weights(1)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=True))


@pytest.mark.parametrize("size", [32, 64, 128])
@pytest.mark.parametrize("name", ALL)
def test_every_size_builds_and_gives_its_size(name: str, size: int) -> None:
    model = build_model(name, tiny(name, image_size=size)).eval()
    assert model.sample(2, seeded(0)).shape == (2, 3, size, size)
    x = images(2, size)
    if model.has_encoder:
        assert model.encode(x).shape == (2, 16)
        assert model.reconstruct(x).shape == (2, 3, size, size)
    if model.is_gan:
        assert model.make_discriminator().eval()(x).shape == (2,)


@pytest.mark.parametrize("name", ENCODERS)
def test_encoder_models_encode_and_reconstruct(name: str) -> None:
    model = build_model(name, tiny(name)).eval()
    x = images(4)
    assert model.encode(x).shape == (4, 16)
    reconstruction = model.reconstruct(x)
    assert reconstruction.shape == x.shape
    assert reconstruction.min() >= -1 and reconstruction.max() <= 1
    if not model.has_critic:
        with pytest.raises(FacegenError, match="not trained against a critic"):
            model.make_discriminator()


def test_adversarial_autoencoder_critic_scores_patches_and_returns_features() -> None:
    model = build_model("aegan", tiny("aegan", d_layers=3))
    scores, features = model.make_discriminator()(images(2), features=True)
    assert scores.shape == (2, 1, 4, 4)  # 32 / 2**3
    assert [f.shape[1:] for f in features] == [(8, 16, 16), (16, 8, 8), (32, 4, 4)]
    with pytest.raises(FacegenError, match="d_layers 4 is too many for 32x32"):
        build_model("aegan", tiny("aegan", d_layers=4))


@pytest.mark.parametrize("name", ENCODERS)
def test_every_autoencoder_forward_returns_the_same_fields(name: str) -> None:
    """AE, VAE and AEGAN are called alike, (images, generator), and answer alike: what a
    training objective reads is there under the same name whichever model it trains."""
    model = build_model(name, tiny(name)).eval()
    x = images(3)
    output = model(x, seeded(0))
    assert isinstance(output, AutoencoderOutput)
    assert output.logits.shape == x.shape and output.mu.shape == (3, 16)
    assert torch.equal(output.mu, model.encode(x))
    if name == "vae":
        assert output.logvar is not None and output.logvar.shape == (3, 16)
    else:  # no noise: forward is the reconstruction, the generator changes nothing
        assert output.logvar is None
        assert torch.equal(torch.tanh(output.logits), model.reconstruct(x))
        assert torch.equal(model(x).logits, output.logits)


def test_vae_forward_draws_reproducible_noise() -> None:
    model = build_model("vae", tiny("vae")).eval()
    x = images(4)
    logits, mu, logvar = model(x, seeded(0))
    assert logits.shape == x.shape and mu.shape == logvar.shape == (4, 16)
    assert torch.equal(mu, model.encode(x))
    assert torch.equal(logits, model(x, seeded(0))[0])
    assert not torch.allclose(logits, model(x, seeded(1))[0])
    assert model(x)[0].shape == x.shape  # no generator: the global RNG


def test_vae_logvar_is_clamped_to_a_safe_range() -> None:
    model = build_model("vae", tiny("vae")).eval()
    with torch.no_grad():
        model.to_logvar.bias.fill_(1000.0)  # exp(1000) would be inf
    logits, _, logvar = model(images(2), seeded(0))
    assert logvar.max() <= 20 and torch.isfinite(logits).all()


@pytest.mark.parametrize("name", GANS)
def test_gans_score_images_and_cannot_encode(name: str) -> None:
    model = build_model(name, tiny(name))
    assert model.make_discriminator()(images(4)).shape == (4,)
    with pytest.raises(FacegenError) as error:
        model.encode(images(4))
    assert {"ae", "vae"} <= set(str(error.value).replace(",", " ").split())


@pytest.mark.parametrize("name", ALL)
def test_gradients_reach_every_weight(name: str) -> None:
    model = build_model(name, tiny(name)).train()
    x = images(4)
    modules: list[torch.nn.Module] = [model]
    if model.is_gan:
        critic = model.make_discriminator().train()
        modules.append(critic)
        fake = model.decode(model.prior(4, seeded(0)))  # (4, 3, S, S)
        # Squared, so that no weight's gradients cancel between real and fake.
        critic(torch.cat([x, fake])).square().mean().backward()
    else:
        logits = model(x).logits
        F.mse_loss(torch.tanh(logits), x).backward()
    for module in modules:
        for key, parameter in module.named_parameters():
            assert parameter.grad is not None and parameter.grad.abs().sum() > 0, key


@pytest.mark.parametrize("name", ALL)
def test_channels_last_gives_the_same_outputs(name: str) -> None:
    model = build_model(name, tiny(name)).eval()
    x, z = images(4), torch.randn(4, 16, generator=seeded(0))
    expected = model_outputs(model, x, z)
    model.to(memory_format=torch.channels_last)
    got = model_outputs(model, x.contiguous(memory_format=torch.channels_last), z)
    for a, b in zip(expected, got, strict=True):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-4)
    if model.is_gan:
        critic = model.make_discriminator().eval()
        expected_scores = critic(x)
        critic.to(memory_format=torch.channels_last)
        scores = critic(x.contiguous(memory_format=torch.channels_last))
        torch.testing.assert_close(scores, expected_scores, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", ALL)
def test_bfloat16_autocast_forward_and_backward(name: str) -> None:
    model = build_model(name, tiny(name)).train()
    x, z = images(4), torch.randn(4, 16, generator=seeded(0))
    reference = model.decode(z)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        decoded = model.decode(z)
        if model.is_gan:
            loss = model.make_discriminator().train()(decoded).mean()
        else:
            logits = model(x).logits
            loss = F.mse_loss(torch.tanh(logits), x)
    assert decoded.dtype == torch.bfloat16  # autocast did take effect
    assert (decoded.float() - reference).abs().max() < 0.1
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("name", ALL)
def test_save_and_load_give_identical_outputs(name: str, tmp_path: Path) -> None:
    model = build_model(name, tiny(name)).train()
    with torch.no_grad():  # move BatchNorm's running statistics off their initial values
        model.decode(torch.randn(8, 16, generator=seeded(3)))
    model.eval()
    x, z = images(4), torch.randn(4, 16, generator=seeded(0))
    loaded = load_model(save_model(model, tmp_path / "model"))
    assert type(loaded) is type(model) and loaded.config == model.config
    for a, b in zip(model_outputs(model, x, z), model_outputs(loaded, x, z), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name", ALL)
def test_load_refuses_weights_that_do_not_match_the_config(name: str, tmp_path: Path) -> None:
    folder = save_model(build_model(name, tiny(name)), tmp_path / "model")
    saved = json.loads((folder / "config.json").read_text())
    saved["config"] = tiny(name, **{k: 16 for k in saved["config"] if k.endswith("width")})
    (folder / "config.json").write_text(json.dumps(saved))
    with pytest.raises(FacegenError, match="does not match"):
        load_model(folder)


@pytest.mark.parametrize("name", ALL)
def test_config_mistakes_are_clear_errors(name: str) -> None:
    with pytest.raises(FacegenError, match="unknown .* field: colour"):
        build_model(name, tiny(name, colour=1))
    with pytest.raises(FacegenError, match="image size 48"):
        build_model(name, tiny(name, image_size=48))
    for field in tiny(name):
        if field.endswith("width"):
            with pytest.raises(FacegenError, match=field):
                build_model(name, tiny(name, **{field: 0}))
    # A type mistake is named before any layer sees it (not a TypeError from nn.Linear).
    with pytest.raises(FacegenError, match=r"^latent_dim must be an int, not 12\.5$"):
        build_model(name, tiny(name, latent_dim=12.5))
    with pytest.raises(FacegenError, match="^image_size must be an int, not '32'$"):
        build_model(name, tiny(name, image_size="32"))


def test_dcgan_starts_from_its_published_initialisation() -> None:
    torch.manual_seed(0)
    model = build_model("dcgan", tiny("dcgan", image_size=64))
    for module in [model, model.make_discriminator()]:
        for key, tensor in module.state_dict().items():
            if key.endswith("weight") and tensor.dim() == 4:  # convolutions
                assert abs(tensor.std().item() - 0.02) < 0.003, key
            elif key.endswith("weight"):  # BatchNorm scales
                assert abs(tensor.mean().item() - 1) < 0.02 and tensor.std() < 0.04, key


def test_sngan_critic_layers_have_unit_spectral_norm() -> None:
    critic = build_model("sngan", tiny("sngan")).make_discriminator().train()
    with torch.no_grad():
        for _ in range(30):  # each training-mode forward runs one power iteration
            critic(images(2))
    layers = [m for m in critic.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert layers and all(hasattr(layer, "parametrizations") for layer in layers)
    for layer in layers:
        sigma = torch.linalg.matrix_norm(layer.weight.detach().flatten(1), ord=2)
        assert abs(sigma.item() - 1) < 0.05


@pytest.mark.parametrize("name", ENCODERS)
def test_autoencoders_fit_a_few_images(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, tiny(name)).train()
    x = images(8)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    errors = []
    for _ in range(30):
        logits = model(x).logits
        loss = F.mse_loss(torch.tanh(logits), x)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        errors.append(loss.item())
    # 0.27 -> 0.15 (AE) and 0.17 (VAE) at the time of writing: the decoder learns the
    # images' shared look first; that every weight gets gradients is tested above.
    assert errors[-1] < 0.75 * errors[0]
