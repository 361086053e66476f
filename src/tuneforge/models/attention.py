"""An attention function for training on CPUs, registered with transformers' ``AttentionInterface``.

Without attention dropout (inference, or dropout 0) it *is* transformers' SDPA path. With dropout in
training, PyTorch's CPU ``scaled_dot_product_attention`` falls back to a path that draws the dropout
mask one element at a time; for short texts (tweets: ~30 tokens) attention then cost ~15% of a MiniLM
training step here. This function computes the same thing explicitly, softmax(Q K^T * scale + mask) V,
with :func:`tuneforge.training.fast_dropout.fast_dropout` on the probabilities.

Methods that change attention itself (``prefix``: learned keys and values in every layer) wrap whichever
implementation is active rather than replace it. A wrapped implementation is named ``"<tag>+<inner>"``
(``"tuneforge_prefix+sdpa"``): its function calls the inner one, its masks are the inner one's, and
:func:`use_training_attention` / :func:`restore_attention` switch the inner part and keep the wrapper.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import torch
from torch import nn

from tuneforge.training.fast_dropout import fast_dropout

NAME = "tuneforge_sdpa"
WRAP = "+"  # "<tag>+<inner>": a wrapper (registered with register_wrapper) around the inner implementation

# tag -> a factory that, given the inner implementation's name, returns the wrapping attention function
_WRAPPERS: dict[str, Callable[[str], Callable]] = {}


def attention_forward(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                      attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                      is_causal: bool | None = None, **kwargs):
    from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward

    if not module.training or dropout == 0.0:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)
    groups = getattr(module, "num_key_value_groups", 1)
    if groups > 1:  # grouped-query attention (Llama): each key/value head serves `groups` query heads
        key, value = repeat_kv(key, groups), repeat_kv(value, groups)
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    scores = torch.matmul(query, key.transpose(2, 3)) * scale  # (B, heads, T_q, T_k)
    q_len, k_len = scores.shape[-2:]
    if attention_mask is not None:  # sdpa-style mask: bool (True = attend) or additive float
        if attention_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
        else:
            scores = scores + attention_mask
    elif (is_causal if is_causal is not None else getattr(module, "is_causal", False)) and q_len > 1:
        causal = torch.ones(q_len, k_len, dtype=torch.bool, device=scores.device).tril(k_len - q_len)
        scores = scores.masked_fill(~causal, torch.finfo(scores.dtype).min)
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(value.dtype)
    probs = fast_dropout(probs, dropout, training=True)
    return torch.matmul(probs, value).transpose(1, 2).contiguous(), None


def register_wrapper(tag: str, make: Callable[[str], Callable]) -> None:
    """Make ``"<tag>+<inner>"`` usable as an attention implementation for every inner one: ``make(inner)``
    returns the attention function, which is expected to call :func:`attention_function` of ``inner``."""
    _WRAPPERS[tag] = make


def split_implementation(name: str) -> tuple[str, str]:
    """``("tuneforge_prefix", "sdpa")`` for ``"tuneforge_prefix+sdpa"``; ``("", name)`` when unwrapped."""
    tag, _, inner = name.rpartition(WRAP)
    return tag, inner


def attention_function(name: str, module: nn.Module) -> Callable:
    """The function transformers would call for implementation ``name`` in ``module``.

    ``eager`` is not in transformers' registry: each modeling file has its own ``eager_attention_forward``
    (Llama's repeats grouped key/value heads, BERT's does not), so it is taken from the module's file.
    """
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    if name == "eager":
        function = getattr(sys.modules[type(module).__module__], "eager_attention_forward", None)
        if function is None:
            raise RuntimeError(f"{type(module).__name__} has no eager_attention_forward in its modeling file")
        return function
    return ALL_ATTENTION_FUNCTIONS[name]


def set_attention(model: nn.Module, name: str) -> None:
    """Switch ``model`` to attention implementation ``name``, registering tuneforge's own names first."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface, sdpa_mask

    tag, inner = split_implementation(name)
    if inner == NAME:
        AttentionInterface.register(NAME, attention_forward)
        AttentionMaskInterface.register(NAME, sdpa_mask)  # our function takes the masks SDPA takes
    if tag:
        if tag not in _WRAPPERS:
            raise ValueError(f"attention implementation {name!r}: no wrapper {tag!r} is registered")
        AttentionInterface.register(name, _WRAPPERS[tag](inner))
        AttentionMaskInterface.register(name, ALL_MASK_ATTENTION_FUNCTIONS[inner])  # masks as the inner makes them
    model.set_attn_implementation(name)


def _current(model: nn.Module) -> str | None:
    config = getattr(model, "config", None)
    return getattr(config, "_attn_implementation", None) if config is not None else None


def use_training_attention(model: nn.Module) -> bool:
    """Switch a model that uses SDPA attention to :func:`attention_forward`; False if it uses another.

    Under a wrapper (``tuneforge_prefix+sdpa``) the inner SDPA is switched and the wrapper stays.
    """
    current = _current(model)
    if current is None:
        return False
    tag, inner = split_implementation(current)
    if inner != "sdpa":
        return False
    set_attention(model, f"{tag}{WRAP}{NAME}" if tag else NAME)
    return True


def restore_attention(model: nn.Module) -> None:
    """Back to transformers' own SDPA before saving, so saved configs name a standard implementation.

    Under a wrapper only the inner part goes back (``tuneforge_prefix+tuneforge_sdpa`` ->
    ``tuneforge_prefix+sdpa``): the method that wrapped attention still needs it.
    """
    current = _current(model)
    if current is None:
        return
    tag, inner = split_implementation(current)
    if inner == NAME:
        set_attention(model, f"{tag}{WRAP}sdpa" if tag else "sdpa")
