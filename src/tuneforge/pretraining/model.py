"""The language model: a new BERT (masked LM; or its pre-norm form, RoBERTa-PreLayerNorm) or Llama (causal LM) of
the configured size, or an existing checkpoint to continue from (domain-adaptive pretraining, Gururangan et al.,
2020, "Don't Stop Pretraining")."""

from __future__ import annotations

import math

import torch
from torch import nn

from tuneforge.errors import TuneforgeError
from tuneforge.pretraining.config import PretrainConfig


def new_model(cfg: PretrainConfig, tokenizer) -> nn.Module:
    """Randomly initialised, sized by ``cfg.architecture`` and the tokenizer's vocabulary."""
    a = cfg.architecture
    inner = a.intermediate_size or 4 * a.hidden_size
    if cfg.objective == "mlm":
        from transformers import BertConfig, BertForMaskedLM, RobertaPreLayerNormConfig, \
            RobertaPreLayerNormForMaskedLM

        sizes = dict(vocab_size=len(tokenizer), hidden_size=a.hidden_size, num_hidden_layers=a.layers,
                     num_attention_heads=a.heads, intermediate_size=inner, hidden_dropout_prob=a.dropout,
                     attention_probs_dropout_prob=a.dropout, pad_token_id=tokenizer.pad_token_id, type_vocab_size=2)
        if a.norm == "post":
            model = BertForMaskedLM(BertConfig(max_position_embeddings=a.max_position, **sizes))
        else:
            # RoBERTa numbers positions from pad_token_id + 1: that many more position embeddings for the same inputs.
            config = RobertaPreLayerNormConfig(max_position_embeddings=a.max_position + tokenizer.pad_token_id + 1,
                                               bos_token_id=tokenizer.cls_token_id,
                                               eos_token_id=tokenizer.sep_token_id, **sizes)
            model = RobertaPreLayerNormForMaskedLM(config)
        if a.position_init == "sinusoidal":
            positions = model.base_model.embeddings.position_embeddings.weight
            with torch.no_grad():
                positions.copy_(sinusoidal_positions(*positions.shape, std=model.config.initializer_range))
        return model
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=a.hidden_size, intermediate_size=inner,
                         num_hidden_layers=a.layers, num_attention_heads=a.heads, num_key_value_heads=a.heads,
                         max_position_embeddings=a.max_position, attention_dropout=a.dropout,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True, use_cache=False)
    return LlamaForCausalLM(config)


def sinusoidal_positions(n_positions: int, dim: int, std: float = 0.02) -> torch.Tensor:
    """(n_positions, dim): PE[p, 2i] = sin(p / 10000^(2i/dim)), PE[p, 2i+1] = cos(p / 10000^(2i/dim)) (Vaswani et
    al., 2017, section 3.5), scaled to standard deviation ``std`` (that of the token embeddings they are added to)."""
    position = torch.arange(n_positions, dtype=torch.float32)[:, None]  # (P, 1)
    frequency = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))  # (ceil(D/2),)
    table = torch.zeros(n_positions, dim)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency)[:, :dim // 2]
    return table * (std / table.std())


def load_lm(path: str, objective: str) -> tuple[nn.Module, list[str]]:
    """An existing checkpoint with its LM head; returns the model and the parameters newly initialised (an
    encoder saved without its MLM head, such as the bundled MiniLM, gets a fresh head transform)."""
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM
    from transformers.utils import logging as hf_logging

    auto = AutoModelForMaskedLM if objective == "mlm" else AutoModelForCausalLM
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "newly initialized" is expected for a missing head
    try:
        model, info = auto.from_pretrained(path, output_loading_info=True, dtype=torch.float32)
    except (OSError, ValueError) as exc:
        kind = "masked" if objective == "mlm" else "causal"
        raise TuneforgeError(f"model: could not load {path} as a {kind} language model ({exc}). objective: mlm "
                             "needs an encoder (BERT-style), clm a decoder (GPT/Llama-style).") from None
    finally:
        hf_logging.set_verbosity(verbosity)
    if objective == "clm":
        model.config.use_cache = False
    return model, list(info["missing_keys"])
