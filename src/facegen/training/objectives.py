"""What one training step does for each kind of model, chosen by the model's ``objective``.

An objective owns the trainable modules (the model, and a GAN's discriminator), their
optimisers, the gradient scaler and the EMA; the trainer around it only feeds batches,
logs, samples and saves. GAN steps are explicit discriminator and generator phases.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, cast

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from facegen.augment import Augmentation
from facegen.config import TrainConfig
from facegen.errors import FacegenError
from facegen.losses import GAN_LOSSES, RECONSTRUCTION_LOSSES, kl_divergence
from facegen.models.base import FaceModel
from facegen.registry import Registry
from facegen.training.checkpoint import EMA
from facegen.training.machine import Distributed, GradScaling, Precision

OBJECTIVES: Registry[type[Objective]] = Registry("training objective")
# What an adversarial autoencoder logs besides the reconstruction (zeros before its critic
# starts, so every log line has the same columns).
ADVERSARIAL_LOGS = ("d_loss", "adv", "fm", "adv_weight", "d_real", "d_fake")


class Objective(ABC):
    def __init__(
        self,
        model: FaceModel,
        config: TrainConfig,
        precision: Precision,
        distributed: Distributed,
    ) -> None:
        self.model = model
        self.config = config
        self.precision = precision
        self.distributed = distributed
        self.modules: dict[str, nn.Module] = {"model": model}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.scaling = GradScaling(precision)
        self.ema = EMA(model, config.ema_decay) if config.ema_decay else None
        # How far the run has gone, 0 to 1 (steps or time budget, as lr_decay measures it):
        # the trainer sets it before every step for objectives whose schedule needs it.
        self.progress = 0.0

    uses_progress: bool = False  # whether step() reads self.progress
    # Modules that ``compile`` leaves eager on the CPU, where compiling them was measured slower.
    eager_on_cpu: tuple[str, ...] = ()

    def adam(self, module: nn.Module, lr: float) -> torch.optim.Optimizer:
        # fused: one kernel over all tensors; on 2 CPU cores it steps the 2.4 M weights of
        # ae-cpu in 1.1 ms against 6.7 ms for the per-tensor loop, whole steps 1.04-1.12x
        # faster (benchmarks/bench_step.py, "loop adam").
        optimizer = torch.optim.Adam(
            module.parameters(),
            lr=lr,
            betas=self.config.betas,
            weight_decay=self.config.weight_decay,
            fused=True,
        )
        for group in optimizer.param_groups:
            group["initial_lr"] = lr  # what scale_learning_rates scales (saved with the state)
        return optimizer

    def scale_learning_rates(self, scale: float) -> None:
        """Every optimiser's rate becomes ``scale`` times the rate it was created with."""
        for optimizer in self.optimizers.values():
            for group in optimizer.param_groups:
                group["lr"] = group["initial_lr"] * scale

    def trainable(self, name: str) -> nn.Module:
        """The module to run forward passes through in training: wrapped for DDP and
        compiled where asked; the plain module stays in ``self.modules`` for saving."""
        return self._wrapped[name]

    def prepare(self, device: torch.device, compile: bool = False) -> None:
        """Move to ``device`` and wrap for DDP and, with ``compile``, ``torch.compile`` (call
        once, after loading state)."""
        memory_format = torch.channels_last if self.config.channels_last else None
        self._wrapped: dict[str, nn.Module] = {}
        for name, module in self.modules.items():
            module.to(device)
            if memory_format is not None:
                # torch's overloads of Module.to leave out its documented memory_format
                module.to(memory_format=memory_format)  # type: ignore[call-overload]
            wrapped: nn.Module = module
            if self.distributed.enabled:
                ids = [device.index] if device.type == "cuda" else None
                wrapped = DistributedDataParallel(module, device_ids=ids)
            if compile and not (device.type == "cpu" and name in self.eager_on_cpu):
                # compiling a Module gives a Module (an OptimizedModule) back
                wrapped = cast(nn.Module, torch.compile(wrapped))
            self._wrapped[name] = wrapped
        if self.ema is not None:
            self.ema.model.to(device)
            if memory_format is not None:
                # torch's overloads of Module.to leave out its documented memory_format
                self.ema.model.to(memory_format=memory_format)  # type: ignore[call-overload]

    def backward(self, loss: torch.Tensor) -> None:
        self.scaling.backward(loss)

    def optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        self.scaling.step(optimizer)

    def finish_step(self) -> None:
        """After every optimiser of the step: one scaler update, one EMA update."""
        self.scaling.update()
        if self.ema is not None:
            self.ema.update(self.model)

    def sync_buffers(self) -> None:
        """Give every rank rank 0's buffers (BatchNorm statistics). DDP broadcasts them at
        the start of each forward, so after the last step each rank still holds those of
        its own last batch."""
        if not self.distributed.enabled:
            return
        modules = [*self.modules.values(), *([self.ema.model] if self.ema else [])]
        for module in modules:
            for buffer in module.buffers():
                torch.distributed.broadcast(buffer, src=0)

    def inference_model(self) -> FaceModel:
        """The weights to sample from and save: the EMA where there is one."""
        return self.ema.model if self.ema is not None else self.model  # type: ignore[return-value]

    @abstractmethod
    def step(
        self, images: torch.Tensor, step: int, noise: torch.Generator
    ) -> dict[str, torch.Tensor]:
        """One optimisation step on ``images``; returns detached losses to log."""

    def state_dict(self) -> dict[str, Any]:
        return {
            "modules": {name: m.state_dict() for name, m in self.modules.items()},
            "optimizers": {name: o.state_dict() for name, o in self.optimizers.items()},
            "scaler": self.scaling.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else {},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, module in self.modules.items():
            module.load_state_dict(state["modules"][name])
        for name, optimizer in self.optimizers.items():
            optimizer.load_state_dict(state["optimizers"][name])
        self.scaling.load_state_dict(state["scaler"])
        if self.ema is not None and state["ema"]:
            self.ema.load_state_dict(state["ema"])


@OBJECTIVES.register("autoencoder")
class AutoencoderObjective(Objective):
    """Reconstruction (``mse`` or ``bce``, summed per image; see facegen.losses)."""

    uses_critic = False  # a critic's inputs may be augmented; a reconstruction target may not

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.config.augment and not self.uses_critic:
            raise FacegenError(
                f"augment={self.config.augment!r} is for GANs (it guards the critic);"
                f" a {self.model.name} reconstructs its input and would learn the augmentations"
            )
        self.reconstruction = RECONSTRUCTION_LOSSES.get(self.config.reconstruction)
        self.optimizers["model"] = self.adam(self.model, self.config.lr)

    def forward(
        self, images: torch.Tensor, step: int, noise: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The loss to minimise and the values to log."""
        logits = self.trainable("model")(images).logits  # (B, 3, S, S) before tanh
        loss = self.reconstruction(logits, images)
        return loss, {"loss": loss.detach(), "recon": loss.detach(), "mse": _mse(logits, images)}

    def step(
        self, images: torch.Tensor, step: int, noise: torch.Generator
    ) -> dict[str, torch.Tensor]:
        optimizer = self.optimizers["model"]
        optimizer.zero_grad(set_to_none=True)
        with self.precision.autocast():
            loss, logged = self.forward(images, step, noise)
        self.backward(loss)
        self.optimizer_step(optimizer)
        self.finish_step()
        return logged


@OBJECTIVES.register("vae")
class VAEObjective(AutoencoderObjective):
    """Negative ELBO: reconstruction + beta * KL, beta warmed up linearly from 0."""

    def kl_weight(self, step: int) -> float:
        warmup = self.config.kl_warmup_steps
        ramp = min(1.0, (step + 1) / warmup) if warmup else 1.0
        return self.config.kl_weight * ramp

    def forward(
        self, images: torch.Tensor, step: int, noise: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        logits, mu, logvar = self.trainable("model")(images, noise)
        recon = self.reconstruction(logits, images)
        kl = kl_divergence(mu, logvar)
        weight = self.kl_weight(step)
        loss = recon + weight * kl
        logged = {
            "loss": loss.detach(),
            "recon": recon.detach(),
            "kl": kl.detach(),
            "kl_weight": torch.tensor(weight),
            "mse": _mse(logits, images),
        }
        return loss, logged


@OBJECTIVES.register("gan")
class GANObjective(Objective):
    """Discriminator phase(s), then a generator phase, with the configured GAN loss; with
    ``augment``, the critic sees every image (real or generated) through DiffAugment."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.loss = GAN_LOSSES.get(self.config.gan_loss)()
        self.augment = Augmentation.parse(self.config.augment)
        self.modules["discriminator"] = self.model.make_discriminator()
        self.optimizers["model"] = self.adam(self.model, self.config.lr)
        self.optimizers["discriminator"] = self.adam(
            self.modules["discriminator"], self.config.lr_d or self.config.lr
        )

    def _toggle_discriminator(self, trainable: bool) -> None:
        # Single process: skip computing D's weight gradients in the G phase. Under DDP every
        # parameter must get a gradient each backward, and D's are zeroed before its step.
        if not self.distributed.enabled:
            self.modules["discriminator"].requires_grad_(trainable)

    def _scores(self, images: torch.Tensor, noise: torch.Generator) -> torch.Tensor:
        critic = self.trainable("discriminator")
        return critic(self.augment(images, noise))  # (B,)

    def step(
        self, images: torch.Tensor, step: int, noise: torch.Generator
    ) -> dict[str, torch.Tensor]:
        generator = self.trainable("model")
        batch = images.shape[0]
        self._toggle_discriminator(True)
        # With one critic step, its fakes are the generator phase's too (as in DCGAN): one
        # generator forward per step instead of two. The graph waits while the critic steps.
        reuse = self.config.d_steps == 1
        for _ in range(self.config.d_steps):
            optimizer = self.optimizers["discriminator"]
            optimizer.zero_grad(set_to_none=True)
            with torch.set_grad_enabled(reuse), self.precision.autocast():
                fake = generator(self.model.prior(batch, noise))  # (B, 3, S, S)
            with self.precision.autocast():
                real_scores = self._scores(images, noise)
                real_loss = self.loss.discriminator_real(real_scores)
            self.backward(real_loss)
            with self.precision.autocast():
                fake_scores = self._scores(fake.detach(), noise)
                fake_loss = self.loss.discriminator_fake(fake_scores)
            self.backward(fake_loss)
            self.optimizer_step(optimizer)
            d_loss = real_loss.detach() + fake_loss.detach()

        self._toggle_discriminator(False)
        optimizer = self.optimizers["model"]
        optimizer.zero_grad(set_to_none=True)
        if not reuse:
            with self.precision.autocast():
                fake = generator(self.model.prior(batch, noise))
        with self.precision.autocast():
            g_loss = self.loss.generator(self._scores(fake, noise))
        self.backward(g_loss)
        self.optimizer_step(optimizer)
        self.finish_step()
        return {
            "d_loss": d_loss,
            "g_loss": g_loss.detach(),
            "d_real": real_scores.detach().float().mean(),
            "d_fake": fake_scores.detach().float().mean(),
        }


@OBJECTIVES.register("aegan")
class AdversarialAutoencoderObjective(AutoencoderObjective):
    """Reconstruction, plus a patch critic once ``adv_start`` of the run has gone (VQGAN).

    Before that, a plain autoencoder step (the critic costs nothing). After it, each step
    has two phases:

    - **critic**: hinge loss on real faces against the current reconstructions (detached),
      each through the ``augment`` policies;
    - **autoencoder**: ``recon + weight * (adversarial + fm_weight * feature_matching)``,
      where the adversarial term is the hinge generator loss on the reconstructions and
      feature matching is the L1 distance between the critic's activations of each face and
      of its reconstruction (under the same augmentation, taken from the critic phase).
      ``weight`` is ``adv_weight`` times the ratio of the gradient norms of the
      reconstruction and adversarial terms at the decoder's output (clipped to [0, 1e4]),
      so neither the loss scale nor the critic's strength needs tuning by hand.

    VQGAN measures the ratio at the last layer's weights; here it is measured one step
    further on, at that layer's output (the logits), where both gradients come from the loss
    side alone: the model runs one forward and one backward per step, with the two losses'
    gradients combined before entering it, and ``torch.compile`` sees one graph.
    """

    uses_critic = True
    uses_progress = True
    max_adaptive_weight = 1e4
    # Compiled, the critic's passes took about 37 ms of a 2-core step against 28 ms eager
    # (the whole step 0.88-0.89x as fast in benchmarks/bench_step.py).
    eager_on_cpu = ("discriminator",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.loss = GAN_LOSSES.get("hinge")()
        self.augment = Augmentation.parse(self.config.augment)
        self.modules["discriminator"] = self.model.make_discriminator()
        self.optimizers["discriminator"] = self.adam(
            self.modules["discriminator"], self.config.lr_d or self.config.lr
        )

    @property
    def critic_active(self) -> bool:
        return self.progress >= self.config.adv_start

    def _toggle_critic(self, trainable: bool) -> None:
        # As in GANObjective: single process only; DDP wants a gradient for every parameter.
        if not self.distributed.enabled:
            self.modules["discriminator"].requires_grad_(trainable)

    def step(
        self, images: torch.Tensor, step: int, noise: torch.Generator
    ) -> dict[str, torch.Tensor]:
        if not self.critic_active:
            logged = super().step(images, step, noise)
            zero = torch.zeros(())
            return {**logged, **dict.fromkeys(ADVERSARIAL_LOGS, zero)}
        model, critic = self.trainable("model"), self.trainable("discriminator")

        # The critic phase: real faces against the current reconstructions.
        self._toggle_critic(True)
        d_optimizer = self.optimizers["discriminator"]
        d_optimizer.zero_grad(set_to_none=True)
        with self.precision.autocast():
            logits = model(images).logits  # (B, 3, S, S); its graph waits for the second phase
        output = logits.detach().float().requires_grad_(True)  # where the gradients meet
        paired = torch.Generator().set_state(noise.get_state())  # the real faces' augmentation
        # Real faces and reconstructions through the critic as one batch (no batch statistics
        # there to mix them: one pass costs less than two), each augmented on its own draws.
        fakes = torch.tanh(output.detach())
        both = torch.cat([self.augment(images, noise), self.augment(fakes, noise)])
        with self.precision.autocast():
            scores, features = critic(both, features=True)
            real_scores, fake_scores = scores.chunk(2)
            real_features = [feature.chunk(2)[0] for feature in features]
            real_loss = self.loss.discriminator_real(real_scores)
            fake_loss = self.loss.discriminator_fake(fake_scores)
        self.backward(real_loss + fake_loss)
        self.optimizer_step(d_optimizer)

        # The autoencoder phase: both losses' gradients at the decoder's output, then one
        # backward through the model.
        self._toggle_critic(False)
        optimizer = self.optimizers["model"]
        optimizer.zero_grad(set_to_none=True)
        recon = self.reconstruction(output, images)
        with self.precision.autocast():
            scores, features = critic(self.augment(torch.tanh(output), paired), features=True)
            adversarial = self.loss.generator(scores)
            matching = torch.stack(
                [
                    (fake.float() - real.detach().float()).abs().mean()
                    for fake, real in zip(features, real_features, strict=True)
                ]
            ).mean()
        pull = adversarial + self.config.fm_weight * matching
        (recon_grad,) = torch.autograd.grad(recon, output)
        (pull_grad,) = torch.autograd.grad(pull, output)
        ratio = recon_grad.norm() / (pull_grad.norm() + 1e-4)
        weight = self.config.adv_weight * ratio.clamp(0, self.max_adaptive_weight).detach()
        combined = recon_grad + weight * pull_grad  # (B, 3, S, S) float32
        # d(surrogate)/d(logits) is exactly ``combined``; a scalar keeps the scaler's path.
        self.backward((logits.float() * combined).sum())
        self.optimizer_step(optimizer)
        self.finish_step()
        total = recon.detach() + weight * pull.detach()
        return {
            "loss": total,
            "recon": recon.detach(),
            "mse": _mse(logits, images),
            "d_loss": real_loss.detach() + fake_loss.detach(),
            "adv": adversarial.detach(),
            "fm": matching.detach(),
            "adv_weight": weight,
            "d_real": real_scores.detach().float().mean(),
            "d_fake": fake_scores.detach().float().mean(),
        }


def _mse(logits: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """Mean squared error per pixel on [-1, 1]: the number people compare across models."""
    return (torch.tanh(logits.detach().float()) - images.float()).pow(2).mean()
