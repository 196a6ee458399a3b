"""What every training loop shares: the bad-loss check and its error, and gradient scaling
at a precision (float16's scaler skips an overflowing step; fp32 and bf16 step plainly)."""

from __future__ import annotations

import math

import pytest
import torch

from facegen.errors import FacegenError
from facegen.training.failures import TrainingError, bad_losses, loss_went_bad
from facegen.training.machine import GradScaling, Precision

CPU = torch.device("cpu")


def test_bad_losses_are_the_non_finite_and_the_exploding_ones():
    values = {"loss": 1.0, "kl": math.nan, "d_loss": -math.inf, "recon": -5e7, "g_loss": 5e7}
    assert list(bad_losses(values, limit=1e8)) == ["kl", "d_loss"]
    assert list(bad_losses(values, limit=1e7)) == ["kl", "d_loss", "recon", "g_loss"]
    assert bad_losses({"loss": 1e30}) == {}  # no limit: only NaN and infinities


def test_the_error_names_step_values_outcome_and_advice():
    error = loss_went_bad(12, {"loss": math.nan, "kl": 3e9}, "training stopped", "resume")
    assert isinstance(error, FacegenError) and isinstance(error, TrainingError)
    assert error.exit_code == 1
    assert str(error) == (
        "the loss went bad at step 12 (loss = nan, kl = 3e+09); training stopped. "
        "A lower --lr (or --precision fp32) usually helps; resume"
    )
    assert "(on a rank)" in str(loss_went_bad(3, {}, "stopped"))  # bad on another rank only


def one_step(scaling: GradScaling, loss_scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One SGD step of a 1-weight model whose loss is ``loss_scale * w``: (before, after)."""
    torch.manual_seed(0)
    model = torch.nn.Linear(1, 1, bias=False)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    before = model.weight.detach().clone()
    scaling.backward(model(torch.ones(1, 1)).sum() * loss_scale)
    scaling.step(optimizer)
    scaling.update()
    return before, model.weight.detach().clone()


@pytest.mark.parametrize("name", ["fp32", "bf16"])
def test_without_float16_a_step_is_a_plain_step(name):
    scaling = GradScaling(Precision(name, CPU))
    assert scaling.scaler is None and scaling.state_dict() == {}
    before, after = one_step(scaling, 2.0)
    torch.testing.assert_close(after, before - 0.1 * 2.0)
    scaling.load_state_dict({})  # a checkpoint without a scaler loads


def test_float16_scaling_unscales_gradients_and_skips_an_overflowing_step():
    scaling = GradScaling(Precision("fp16", CPU))
    assert scaling.scaler is not None
    before, after = one_step(scaling, 2.0)
    torch.testing.assert_close(after, before - 0.1 * 2.0)  # the scale does not reach the step
    scale = scaling.state_dict()["scale"]
    before, after = one_step(scaling, math.inf)
    assert torch.equal(after, before)  # inf gradients: the step is skipped...
    assert scaling.state_dict()["scale"] < scale  # ...and the scale backs off
    restored = GradScaling(Precision("fp16", CPU))
    restored.load_state_dict(scaling.state_dict())
    assert restored.state_dict() == scaling.state_dict()
