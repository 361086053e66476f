"""Dropout with a cheap random mask, for CPUs.

``torch.nn.Dropout`` on CPU draws one random number per element with torch's default generator: on a
(32, 30, 384) bf16 activation that takes ~2.2 ms, and a BERT forward pass has ~25 of them, so dropout
alone was ~25% of a LoRA training step on MiniLM here (profiled). Drawing 64 random bits at once and
reading them as four 16-bit integers makes the mask ~6x cheaper; each element is kept with probability
``1 - p`` (to 1/65536), and kept values are scaled by ``1 / (1 - p)`` exactly as in ``nn.Dropout``.

The mask comes from torch's generator, so runs stay reproducible under ``torch.manual_seed`` and a
checkpointed RNG state resumes to the same masks. Only the random stream differs from ``nn.Dropout``.
"""

from __future__ import annotations

import torch
from torch import nn

_LEVELS = 65536  # 16-bit threshold resolution


def _random_int16(shape: torch.Size, device: torch.device) -> torch.Tensor:
    """Uniform integers in [-32768, 32767]: 64 random bits per four elements."""
    n = 1
    for size in shape:
        n *= size
    words = torch.randint(-(2**63), 2**63 - 1, ((n + 3) // 4,), dtype=torch.int64, device=device)
    return words.view(torch.int16)[:n].view(shape)


def _threshold(p: float) -> int:
    return round(p * _LEVELS) - 32768  # an element is kept where its 16-bit integer is >= this


def keep_mask(shape: torch.Size, p: float, device: torch.device) -> torch.Tensor:
    """Boolean mask, True with probability 1 - p (to 1 / 65536)."""
    return _random_int16(shape, device) >= _threshold(p)


def keep_multiplier(shape: torch.Size, p: float, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """The same mask as :func:`keep_mask` from the same random stream, as 1.0 (kept) and 0.0 in ``dtype``.

    For integers, ``bits >= t`` is ``clamp(bits - t + 1, 0, 1)``, exact in fp32. Computing it that way and
    multiplying by it is ~5x cheaper on CPU than the boolean route (``>=`` then ``torch.where`` on the mask
    and again on the gradient), whose bool kernels are not vectorised (profiled: (32, 30, 384) bf16,
    ``where`` 490 us against 74 us for a multiplication).
    """
    bits = _random_int16(shape, device)
    return bits.float().add_(1 - _threshold(p)).clamp_(0, 1).to(dtype)


class _MaskedScale(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, keep: torch.Tensor, scale: float) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(keep)
        ctx.scale = scale
        return x * keep * scale  # x * keep is x or 0 exactly; the scaling rounds as nn.Dropout's does

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (keep,) = ctx.saved_tensors
        return grad * keep * ctx.scale, None, None


def fast_dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    if not training or p == 0.0:
        return x
    if p >= 1.0:
        return torch.zeros_like(x)
    kept = 1.0 - round(p * _LEVELS) / _LEVELS  # the exact keep probability of the 16-bit threshold
    return _MaskedScale.apply(x, keep_multiplier(x.shape, p, x.device, x.dtype), 1.0 / kept)


class FastDropout(nn.Module):
    """Drop-in replacement for ``nn.Dropout`` (no parameters, so state dicts are unchanged)."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fast_dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def use_fast_dropout(model: nn.Module) -> int:
    """Replace every ``nn.Dropout`` in ``model`` with :class:`FastDropout`; returns how many."""
    swaps = [(name, module) for name, module in model.named_modules() if type(module) is nn.Dropout]
    for name, module in swaps:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        replacement = FastDropout(module.p)
        if isinstance(parent, (nn.ModuleDict, nn.ModuleList, nn.Sequential)):
            parent[child if not isinstance(parent, (nn.ModuleList, nn.Sequential)) else int(child)] = replacement
        else:
            setattr(parent, child, replacement)
    return len(swaps)
