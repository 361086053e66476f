"""Last-token pooling for decoder classifiers that gives the same answer whatever the padding.

A decoder (Llama, GPT-2, Qwen, ...) classifies a text from the hidden state of its last real token: under
causal attention it is the only position that has read the whole text. transformers' classifiers
(``LlamaForSequenceClassification`` and the like, whose head is named ``score``) find that token as the
rightmost one whose id differs from ``config.pad_token_id``, or take position -1 when given
``inputs_embeds`` instead of ids, as peft's prompt tuning and P-tuning do. Both can depend on the padding:

- pad == eos (SmolLM2, GPT-2 and most decoders pad with their end token): a text whose last token is
  that token (a literal ``<|im_end|>``) is pooled at an earlier token; a text made only of it, at padding;
- right padding with ``inputs_embeds``: position -1 is padding in every row but the longest.

And decoders number positions 0..T-1 whatever the mask says, so left padding moves a text by its amount
of padding. Under rotary embeddings (relative) the attention between text tokens does not change, but
the distance between peft's virtual tokens (prepended before the padding) and the text does, and with it
the prediction (~1e-4 on a random tiny Llama).

:func:`use_last_token_pooling` fixes both with two hooks on the decoder body, read from the attention
mask (which peft extends over its virtual tokens):

- positions count real tokens, ``position_ids = cumsum(mask) - 1``, as ``generate()`` does;
- every position of the body's output carries the last real token's state, so whichever index the
  head's pooling picks, it reads that state. The head (a linear layer on every position) and the loss are
  transformers' own: no transformers code is copied, and the model saves as the plain classifier it is.

With both, left and right padding give the same predictions as one text at a time.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

import torch
from torch import nn

_MARK = "_tuneforge_last_token_pooling"


def is_last_token_classifier(model: nn.Module) -> bool:
    """transformers' decoder classifiers name their head ``score`` and pool the last token (encoders:
    ``classifier``, pooling the first)."""
    return (type(model).__name__.endswith("ForSequenceClassification") and isinstance(getattr(model, "score", None),
                                                                                      nn.Module)
            and isinstance(getattr(model, "base_model", None), nn.Module) and model.base_model is not model)


def use_last_token_pooling(model: nn.Module) -> bool:
    """Install the two hooks on a decoder classifier's body (once); False, and nothing done, for others."""
    if not is_last_token_classifier(model):
        return False
    body = model.base_model
    if getattr(body, _MARK, False):
        return True
    if "position_ids" in inspect.signature(body.forward).parameters:  # Bloom (ALiBi from the mask) has none
        body.register_forward_pre_hook(_positions_from_mask, with_kwargs=True)
    body.register_forward_hook(_last_real_token_everywhere, with_kwargs=True)
    setattr(body, _MARK, True)
    # "will not detect padding tokens in `inputs_embeds`": it no longer needs to.
    logging.getLogger(type(model).forward.__module__).addFilter(_EMBEDS_WARNING)
    return True


def last_real_token(mask: torch.Tensor | None, batch: int, length: int, device: torch.device) -> torch.Tensor:
    """(B,) index of the last position whose mask is set (T - 1 without a mask), for either padding side."""
    positions = torch.arange(length, device=device)
    if mask is None or mask.dim() != 2 or mask.shape[1] != length:
        return positions[-1].expand(batch)
    return (positions * (mask > 0)).argmax(-1)


def _sequence_length(args: tuple, kwargs: dict[str, Any]) -> int | None:
    ids = args[0] if args else kwargs.get("input_ids")
    embeds = kwargs.get("inputs_embeds")
    source = ids if ids is not None else embeds
    return None if source is None else source.shape[1]


def _positions_from_mask(module: nn.Module, args: tuple, kwargs: dict[str, Any]):
    mask = kwargs.get("attention_mask")
    if (kwargs.get("position_ids") is not None or mask is None or mask.dim() != 2
            or any(kwargs.get(k) is not None for k in ("cache", "past_key_values"))
            or mask.shape[1] != _sequence_length(args, kwargs)):
        return None  # the caller chose positions, or is generating with a cache: leave them
    positions = ((mask > 0).long().cumsum(-1) - 1).clamp(min=0)  # (B, T): 0, 1, ... over real tokens
    return args, {**kwargs, "position_ids": positions}


def _last_real_token_everywhere(module: nn.Module, args: tuple, kwargs: dict[str, Any], output: Any):
    hidden = output[0]  # last_hidden_state, (B, T, H), for a ModelOutput and a tuple alike
    batch, length, width = hidden.shape
    last = last_real_token(kwargs.get("attention_mask"), batch, length, hidden.device)  # (B,)
    pooled = hidden[torch.arange(batch, device=hidden.device), last]  # (B, H)
    everywhere = pooled[:, None, :].expand(batch, length, width)
    if isinstance(output, tuple):
        return (everywhere, *output[1:])
    output.last_hidden_state = everywhere  # a ModelOutput keeps its dict and tuple views in step
    return output


class _EmbedsWarningFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "will not detect padding tokens in `inputs_embeds`" not in record.getMessage()


_EMBEDS_WARNING = _EmbedsWarningFilter()
