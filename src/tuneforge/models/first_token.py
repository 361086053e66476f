"""Compute the last layer for the first token only, when the classifier reads nothing else.

A BERT-style sequence classifier reads one vector: the last layer's output at position 0 ([CLS]), through
the pooler (BERT) or the classification head (RoBERTa, ELECTRA). In the last layer, that output depends on
every position only through the attention's keys and values; the attention output projection, the
residual add and LayerNorm, and the feed-forward block act on each position separately. So after the last
layer's self-attention, everything can run on position 0 alone:

    per layer, T tokens, hidden d:   Q, K, V projections 3 T d^2,  attention 2 T^2 d,  output projection
    T d^2,  feed-forward 8 T d^2  ->  with the shortcut the last two become d^2 and 8 d^2

For MiniLM (6 layers) that removes about 3/4 of one layer's work: ~12% of a training step and of
inference, with the same logits (tests check it). Hugging Face has no such switch; the hook below slices
the inputs of the last layer's attention output module (``BertSelfOutput(hidden, input_tensor)``) to the
first position. The model's ``last_hidden_state`` then has length 1, so this is only for classifiers
whose head reads position 0, and it is switched on only for those (by class name, below).
"""

from __future__ import annotations

from torch import nn

from tuneforge.methods.params import transformer_layers

# Classifiers whose head reads only position 0 of the last layer, with BERT's layer structure.
FIRST_TOKEN_CLASSIFIERS = {"BertForSequenceClassification", "RobertaForSequenceClassification",
                           "XLMRobertaForSequenceClassification", "ElectraForSequenceClassification",
                           "CamembertForSequenceClassification"}
HANDLE = "_tuneforge_first_token_hook"


def _base(model: nn.Module) -> nn.Module:
    get = getattr(model, "get_base_model", None)  # a peft model wraps the transformers model
    return get() if callable(get) else model


def _first_position(module: nn.Module, args: tuple) -> tuple:
    hidden, residual, *rest = args
    return (hidden[:, :1], residual[:, :1], *rest)


def use_first_token_shortcut(model: nn.Module) -> bool:
    """Switch the shortcut on for a supported classifier (idempotent); False if the model is not one."""
    base = _base(model)
    if type(base).__name__ not in FIRST_TOKEN_CLASSIFIERS or getattr(base.config, "is_decoder", False):
        return False
    _, layers = transformer_layers(base)
    output = getattr(getattr(layers[-1], "attention", None), "output", None)
    if output is None or getattr(base, HANDLE, None) is not None:
        return output is not None
    setattr(base, HANDLE, output.register_forward_pre_hook(_first_position))
    return True


def remove_first_token_shortcut(model: nn.Module) -> None:
    base = _base(model)
    handle = getattr(base, HANDLE, None)
    if handle is not None:
        handle.remove()
        setattr(base, HANDLE, None)
