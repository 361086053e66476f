"""The fast dropout keeps elements with probability 1 - p, scales them like nn.Dropout, and is seeded."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tuneforge.training.fast_dropout import FastDropout, fast_dropout, keep_mask, keep_multiplier, use_fast_dropout


@pytest.mark.parametrize("p", [0.1, 0.5])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_keep_rate_scaling_and_gradient(p, dtype):
    torch.manual_seed(0)
    x = torch.ones(64, 50, 100, dtype=dtype, requires_grad=True)
    y = fast_dropout(x, p)
    kept = y != 0
    assert abs(kept.float().mean().item() - (1 - p)) < 0.01
    # kept values are scaled by 1 / (1 - p) (the exact keep probability of the 16-bit threshold)
    assert torch.allclose(y[kept].float(), torch.full_like(y[kept].float(), 1 / (1 - p)), rtol=1e-2)
    y.sum().backward()
    assert torch.equal(x.grad != 0, kept)
    assert torch.allclose(x.grad[kept].float(), y[kept].float())


def test_eval_mode_and_p0_are_identity_and_seed_reproduces():
    x = torch.randn(4, 8)
    assert fast_dropout(x, 0.3, training=False) is x
    assert fast_dropout(x, 0.0) is x
    torch.manual_seed(5)
    a = fast_dropout(x, 0.3)
    torch.manual_seed(5)
    b = fast_dropout(x, 0.3)
    assert torch.equal(a, b)


def test_use_fast_dropout_replaces_every_dropout_and_keeps_state_dict():
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.2), nn.ModuleDict({"d": nn.Dropout(0.3)}))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert use_fast_dropout(model) == 2
    assert isinstance(model[1], FastDropout) and model[1].p == 0.2
    assert isinstance(model[2]["d"], FastDropout) and model[2]["d"].p == 0.3
    assert not any(type(m) is nn.Dropout for m in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_multiplier_is_the_boolean_mask_and_dropout_matches_the_where_form(dtype):
    """The 0/1 multiplier (the fast path) keeps exactly the elements the boolean mask keeps, from the same
    random stream, and the dropout output and gradient equal the boolean form where(mask, x / (1 - p), 0)."""
    shape = torch.Size((7, 33, 65))  # an element count not divisible by 4
    for p in (0.1, 0.25, 0.9):
        torch.manual_seed(3)
        mask = keep_mask(shape, p, torch.device("cpu"))
        torch.manual_seed(3)
        multiplier = keep_multiplier(shape, p, torch.device("cpu"), dtype)
        assert multiplier.dtype == dtype
        assert torch.equal(multiplier == 1, mask) and torch.equal(multiplier == 0, ~mask)
        x = torch.randn(shape).to(dtype).requires_grad_()
        torch.manual_seed(3)
        y = fast_dropout(x, p)
        scale = 1.0 / (1.0 - round(p * 65536) / 65536)
        assert torch.equal(y, torch.where(mask, x.detach() * scale, 0))
        grad = torch.randn(shape).to(dtype)
        y.backward(grad)
        assert torch.equal(x.grad, torch.where(mask, grad * scale, 0))
