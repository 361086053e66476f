"""An attention function for training on CPUs, registered with transformers' ``AttentionInterface``.

Without attention dropout (inference, or dropout 0) it *is* transformers' SDPA path. With dropout in
training, PyTorch's CPU ``scaled_dot_product_attention`` falls back to a path that draws the dropout
mask one element at a time; for short texts (tweets: ~30 tokens) attention then cost ~15% of a MiniLM
training step here. This function computes the same thing explicitly, softmax(Q K^T * scale + mask) V,
with :func:`tuneforge.training.fast_dropout.fast_dropout` on the probabilities.
"""

from __future__ import annotations

import torch
from torch import nn

from tuneforge.training.fast_dropout import fast_dropout

NAME = "tuneforge_sdpa"


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


def use_training_attention(model: nn.Module) -> bool:
    """Switch a model that uses SDPA attention to :func:`attention_forward`; False if it uses another."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    config = getattr(model, "config", None)
    if config is None or getattr(config, "_attn_implementation", None) != "sdpa":
        return False
    AttentionInterface.register(NAME, attention_forward)
    AttentionMaskInterface.register(NAME, sdpa_mask)  # our function takes the masks SDPA takes
    model.set_attn_implementation(NAME)
    return True


def restore_attention(model: nn.Module) -> None:
    """Back to transformers' own SDPA before saving, so saved configs name a standard implementation."""
    config = getattr(model, "config", None)
    if config is not None and getattr(config, "_attn_implementation", None) == NAME:
        model.set_attn_implementation("sdpa")
