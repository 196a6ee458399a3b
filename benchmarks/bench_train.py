"""Training speed: facegen's trainer against a plain PyTorch loop of the same architecture.

    python benchmarks/bench_train.py --data data/synth-64 --data32 data/synth-32
    python benchmarks/bench_train.py --data data/celeba-64 --models ae --compile --steps 300

The plain loop is what a user writes from the pytorch examples: float32, default memory
layout, Adam, the batch read from the packed images each step, no logging. The trainer
runs with its defaults (channels_last, bf16 autocast where the CPU supports it), its data
loader, logging, and the loss checks of every step (``--compile`` adds a column with
``torch.compile``, whose compiling falls in the warm-up); its speed is read from log.jsonl
after a warm-up (oneDNN builds its kernels in the first steps). Machine load matters:
run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
import time
from pathlib import Path

import torch

from facegen.config import TrainConfig, read_preset
from facegen.data.loader import load_images
from facegen.data.packed import open_packed
from facegen.losses import GAN_LOSSES, RECONSTRUCTION_LOSSES, kl_divergence
from facegen.models import build_model
from facegen.training.trainer import train


def plain_loop(name: str, data_path: str, warmup: int, steps: int, batch: int = 64) -> float:
    """images/s of a textbook float32 loop of the preset's architecture."""
    data = open_packed(data_path)
    preset = read_preset(f"{name}-{data.size}")
    torch.manual_seed(0)
    model = build_model(preset["model"], preset["model_config"])
    rows = data.split_indices("train")
    generator = torch.Generator().manual_seed(0)
    if model.is_gan:
        critic = model.make_discriminator()
        loss = GAN_LOSSES.get(preset["gan_loss"])()
        opt_g = torch.optim.Adam(model.parameters(), lr=2e-4, betas=(0.5, 0.999))
        opt_d = torch.optim.Adam(critic.parameters(), lr=2e-4, betas=(0.5, 0.999))
    else:
        reconstruction = RECONSTRUCTION_LOSSES.get("mse")
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step(i: int) -> None:
        start = (i * batch) % (len(rows) - batch)
        images = load_images(data, rows[start : start + batch])
        if model.is_gan:
            opt_d.zero_grad()
            fake = model(torch.randn(batch, model.latent_dim, generator=generator))
            d_loss = loss.discriminator_real(critic(images))
            d_loss = d_loss + loss.discriminator_fake(critic(fake.detach()))
            d_loss.backward()
            opt_d.step()
            opt_g.zero_grad()
            loss.generator(critic(fake)).backward()
            opt_g.step()
        else:
            optimizer.zero_grad()
            if model.name == "vae":
                logits, mu, logvar = model(images, generator)
                total = reconstruction(logits, images) + kl_divergence(mu, logvar)
            else:
                total = reconstruction(model(images).logits, images)
            total.backward()
            optimizer.step()

    for i in range(warmup):
        step(i)
    began = time.perf_counter()
    for i in range(warmup, warmup + steps):
        step(i)
    return steps * batch / (time.perf_counter() - began)


def trainer_speed(
    name: str, data_path: str, precision: str, warmup: int, steps: int, compile: bool = False
) -> float:
    data = open_packed(data_path)
    preset = read_preset(f"{name}-{data.size}")
    config = TrainConfig.from_dict(preset).replace(
        data=data_path,
        steps=warmup + steps,
        precision=precision,
        compile=compile,
        log_every=warmup,
        sample_every=10**9,
        checkpoint_every=10**9,
        sampler_images=256,
    )
    with tempfile.TemporaryDirectory() as folder:
        run = Path(folder) / "run"
        train(config, run, progress=False)
        records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    # The first record covers the warm-up; the rest is steady state.
    steady = [r for r in records if r["step"] > warmup]
    seconds = sum(
        (r["step"] - p["step"]) * 64 / r["images_per_second"]
        for p, r in itertools.pairwise(records)
        if r in steady
    )
    return (steady[-1]["step"] - warmup) * 64 / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="packed data set at 64x64")
    parser.add_argument("--data32", help="packed data set at 32x32 (for the 32 presets)")
    parser.add_argument("--models", nargs="+", default=["ae", "vae", "dcgan", "sngan"])
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--compile", action="store_true", help="also time bf16 + torch.compile")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch 64")
    print(
        f"{'preset':<10} {'plain fp32':>10} {'trainer fp32':>12} {'trainer bf16':>12} "
        f"{'speed-up':>8}" + (f" {'bf16+compile':>12}" if args.compile else "")
    )
    for data_path in [args.data, args.data32]:
        if data_path is None:
            continue
        size = open_packed(data_path).size
        for name in args.models:
            plain = plain_loop(name, data_path, args.warmup, args.steps)
            fp32 = trainer_speed(name, data_path, "fp32", args.warmup, args.steps)
            bf16 = trainer_speed(name, data_path, "bf16", args.warmup, args.steps)
            row = (
                f"{name}-{size:<6} {plain:>10.1f} {fp32:>12.1f} {bf16:>12.1f} "
                f"{max(fp32, bf16) / plain:>7.2f}x"
            )
            if args.compile:
                compiled = trainer_speed(name, data_path, "bf16", args.warmup, args.steps, True)
                row += f" {compiled:>12.1f}"
            print(row, flush=True)


if __name__ == "__main__":
    main()
