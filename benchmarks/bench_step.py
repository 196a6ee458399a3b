"""One training step, and the choices that make it faster, timed side by side.

    python benchmarks/bench_step.py --data data/celeba-9k1k-64
    python benchmarks/bench_step.py --data data/celeba-9k1k-64 --presets aegan-cpu --rounds 5

For each preset, objectives are built as ``facegen train`` builds them (the preset's
precision, memory layout and ``compile``), with the critic switched on (``progress`` 1, past
any ``adv_start``), and each times ``--steps`` of its ``step()`` on the same 8 batches of
the training split, after a warm-up that holds ``torch.compile``'s compiling:

- ``shipped``: as ``facegen train`` runs it;
- ``loop adam``: the optimisers stepped tensor by tensor (``fused=False``), torch's CPU
  default and facegen's before it asked for the fused kernel;
- ``compiled critic``: where the objective keeps its critic eager on the CPU
  (``eager_on_cpu``), compiled like the rest.

The variants alternate round by round, so a change in the machine's speed lands on all of
them; the figure is the median over rounds of the mean step time. Nothing else should run:
two torch processes on 2 cores slow each other many times over.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from facegen.config import TrainConfig
from facegen.training.machine import Distributed
from facegen.training.objectives import Objective
from facegen.training.trainer import _build, _step_generator

Variant = Callable[[Objective], None]


def _loop_adam(objective: Objective) -> None:
    for optimizer in objective.optimizers.values():
        for group in optimizer.param_groups:
            group["fused"] = False


def _compiled_critic(objective: Objective) -> None:
    objective.eager_on_cpu = ()


VARIANTS: dict[str, Variant] = {
    "shipped": lambda objective: None,
    "loop adam": _loop_adam,
    "compiled critic": _compiled_critic,
}


def build(preset: str, data: str, variant: Variant) -> tuple[Objective, list[torch.Tensor]]:
    """An objective as ``facegen train`` prepares it, with ``variant`` applied, and 8
    training batches."""
    config = TrainConfig.from_preset(preset, data=data, steps=1000)
    device, distributed = torch.device("cpu"), Distributed()
    parts = _build(config, device, distributed)
    variant(parts.objective)
    parts.objective.prepare(device, compile=config.compile)
    parts.objective.progress = 1.0
    batches = iter(parts.loader)
    return parts.objective, [next(batches).images for _ in range(8)]


def run_steps(objective: Objective, batches: list[torch.Tensor], first: int, count: int) -> float:
    """Seconds per step over ``count`` steps from index ``first``."""
    began = time.perf_counter()
    for index in range(first, first + count):
        objective.model.train()
        logged = objective.step(batches[index % 8], index, _step_generator(0, Distributed(), index))
        {name: float(value) for name, value in logged.items()}  # the trainer's sync point
    return (time.perf_counter() - began) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a packed data set at the presets' size")
    parser.add_argument("--presets", nargs="+", default=["ae-cpu", "vae-cpu", "aegan-cpu"])
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--steps", type=int, default=40, help="steps per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'preset':<12} {'variant':<16} {'ms/step':>8} {'images/s':>9} {'vs shipped':>10}")
    for preset in args.presets:
        built = {}
        for name, variant in VARIANTS.items():
            objective, batches = build(preset, args.data, variant)
            if name == "compiled critic" and not type(objective).eager_on_cpu:
                continue  # nothing is kept eager: the same as shipped
            run_steps(objective, batches, 0, args.warmup)
            built[name] = objective, batches
        times: dict[str, list[float]] = {name: [] for name in built}
        for round_index in range(args.rounds):
            first = args.warmup + round_index * args.steps
            for name, (objective, batches) in built.items():
                times[name].append(run_steps(objective, batches, first, args.steps))
        shipped = statistics.median(times["shipped"])
        for name, values in times.items():
            seconds = statistics.median(values)
            batch = built[name][1][0].shape[0]
            print(
                f"{preset:<12} {name:<16} {1000 * seconds:>8.1f} {batch / seconds:>9.1f} "
                f"{shipped / seconds:>9.2f}x",
                flush=True,
            )


if __name__ == "__main__":
    main()
