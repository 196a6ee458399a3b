"""How a training loop fails: the error it raises, and the bad-loss check that raises it.

The face-model trainer and the attribute classifier share both, so a NaN, an infinity or an
exploding loss reads the same from either: the step, each bad value by name, what was kept
and what to try. The error is a :class:`~facegen.errors.FacegenError` (one line, no
traceback) with exit code 1: the work failed, not the user's input.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from facegen.errors import FacegenError


class TrainingError(FacegenError):
    """Training itself failed (not the user's input): exit code 1."""

    exit_code = 1


def bad_losses(values: Mapping[str, float], limit: float = math.inf) -> dict[str, float]:
    """The values that are NaN, infinite or larger than ``limit`` in size, by name.

    >>> bad_losses({"loss": float("nan"), "kl": 3.0, "recon": -2e9}, limit=1e6)
    {'loss': nan, 'recon': -2000000000.0}
    """
    return {name: v for name, v in values.items() if not math.isfinite(v) or abs(v) > limit}


def loss_went_bad(
    step: int, bad: Mapping[str, float], outcome: str, then: str | None = None
) -> TrainingError:
    """The error for ``bad`` losses at ``step`` (none named: they were on another rank):
    ``outcome`` says what stopped and what was kept; the advice follows, then ``then``."""
    what = ", ".join(f"{name} = {value:.4g}" for name, value in bad.items()) or "on a rank"
    advice = "A lower --lr (or --precision fp32) usually helps" + (f"; {then}" if then else "")
    return TrainingError(f"the loss went bad at step {step} ({what}); {outcome}. {advice}")
