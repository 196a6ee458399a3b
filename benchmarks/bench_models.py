"""What each model costs: parameters, FLOPs and CPU time per training image.

    python benchmarks/bench_models.py --size 64 --batch-size 64 --steps 5 --threads 1
    python benchmarks/bench_models.py --models sngan --set g_width=24 --set d_width=24

Prints two tables:

1. parameters of each model (generator or autoencoder, and critic for GANs) at 32, 64, 128;
2. for each model at ``--size``: forward+backward FLOPs per training image (counted by
   ``torch.utils.flop_counter``, convolutions and matrix products) and median ms per image
   over ``--steps`` steps after two warm-up steps, in plain float32 and with channels_last +
   bfloat16 autocast; the models take turns step by step.

A training step, without the optimiser: for an AE or VAE, a forward pass and the backward
of an MSE loss; for a GAN, a critic phase (generator forward without gradients, critic
forward and backward on real and fake images) and a generator phase (generator and critic
forward, backward into the generator only), as the trainer runs them. Timings on a shared
machine are noisy: run it twice before trusting a difference.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from facegen.models import MODELS, build_model
from facegen.models.base import FaceModel


def parameter_count(module: nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


def training_step(model: FaceModel, critic: nn.Module | None, images: torch.Tensor) -> None:
    """One training step's forward and backward passes (see the module docstring)."""
    if critic is None:
        F.mse_loss(torch.tanh(model(images).logits), images).backward()
        return
    z = model.prior(images.shape[0])  # (B, latent_dim)
    with torch.no_grad():
        fake = model.decode(z)  # (B, 3, S, S)
    critic.requires_grad_(True)
    (F.relu(1 - critic(images)).mean() + F.relu(1 + critic(fake)).mean()).backward()
    critic.requires_grad_(False)  # the generator phase needs no critic weight gradients
    (-critic(model.decode(z)).mean()).backward()


def make_step(name: str, config: dict[str, int], batch: int, *, fast: bool) -> Callable[[], None]:
    """A fresh model (and critic) and a closure running one training step on random
    images; ``fast``: channels_last tensors under bfloat16 autocast."""
    torch.manual_seed(0)
    model = build_model(name, config).train()
    critic = model.make_discriminator().train() if model.is_gan else None
    size = config["image_size"]
    images = torch.rand(batch, 3, size, size) * 2 - 1  # (B, 3, S, S)
    if fast:
        images = images.contiguous(memory_format=torch.channels_last)
        for module in (model, critic):
            if module is not None:
                module.to(memory_format=torch.channels_last)

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=fast):
            training_step(model, critic, images)

    return step


def gflop_per_image(step: Callable[[], None], batch: int) -> float:
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops() / batch / 1e9


def parameter_table(names: list[str], overrides: dict[str, int]) -> None:
    print("1. parameters (millions): model / critic")
    print(f"{'model':<8}" + "".join(f"{size:>16}" for size in (32, 64, 128)))
    for name in names:
        row = f"{name:<8}"
        for size in (32, 64, 128):
            model = build_model(name, config_for(name, size, overrides))
            cell = f"{parameter_count(model) / 1e6:.3f}"
            if model.is_gan:
                cell += f" / {parameter_count(model.make_discriminator()) / 1e6:.3f}"
            row += f"{cell:>16}"
        print(row)


def cost_table(names: list[str], overrides: dict[str, int], args: argparse.Namespace) -> None:
    batch = args.batch_size
    print(f"\n2. one training step at {args.size}x{args.size}, batch {batch}, "
          f"{torch.get_num_threads()} torch threads; median ms per image")  # fmt: skip
    print(f"{'model':<8} {'GFLOP/image':>12} {'fp32':>8} {'cl+bf16':>8}   (x dcgan)")
    steps = {}
    for name in names:
        config = config_for(name, args.size, overrides)
        steps[name] = [make_step(name, config, batch, fast=fast) for fast in (False, True)]
    gflop = {name: gflop_per_image(plain, batch) for name, (plain, _) in steps.items()}
    for step in (step for pair in steps.values() for step in pair):
        for _ in range(2):  # oneDNN builds its kernels on the first steps
            step()
    # Models take turns, so a load that comes and goes on a shared machine hits them alike.
    seconds: dict[str, list[list[float]]] = {name: [[], []] for name in names}
    for _ in range(args.steps):
        for name, pair in steps.items():
            for times, step in zip(seconds[name], pair, strict=True):
                start = time.perf_counter()
                step()
                times.append(time.perf_counter() - start)
    medians = {name: [float(np.median(times)) for times in seconds[name]] for name in names}
    for name, (plain, fast) in medians.items():
        row = (
            f"{name:<8} {gflop[name]:12.2f} {1000 * plain / batch:8.1f} {1000 * fast / batch:8.1f}"
        )
        if "dcgan" in medians:
            base_plain, base_fast = medians["dcgan"]
            row += f"   ({plain / base_plain:.2f}, {fast / base_fast:.2f})"
        print(row)


def config_for(name: str, size: int, overrides: dict[str, int]) -> dict[str, int]:
    """``overrides`` restricted to the fields this model has, at ``size``."""
    fields = MODELS.get(name).config_class.__dataclass_fields__
    return {"image_size": size, **{key: value for key, value in overrides.items() if key in fields}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=MODELS.names())
    parser.add_argument("--size", type=int, default=64, choices=(32, 64, 128))
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=INT",
                        help="override a config field in every model that has it")  # fmt: skip
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    overrides = {key: int(value) for key, value in (item.split("=", 1) for item in args.set)}
    parameter_table(args.models, overrides)
    cost_table(args.models, overrides, args)


if __name__ == "__main__":
    main()
