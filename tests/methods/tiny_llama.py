"""A tiny random Llama classifier and a batch for it, for method tests on a decoder (no download)."""

from __future__ import annotations

import torch

from tuneforge.models.backbones import Backbone

LLAMA_LAYERS = 2
LLAMA_LABELS = 3


def build_tiny_llama() -> torch.nn.Module:
    """hidden 32, 2 layers, 4 heads, 2 key/value heads (grouped-query attention), vocabulary 64."""
    from transformers import LlamaConfig, LlamaForSequenceClassification

    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=LLAMA_LAYERS,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                         pad_token_id=0, num_labels=LLAMA_LABELS)
    torch.manual_seed(0)
    return LlamaForSequenceClassification(config).eval()


def llama_backbone() -> Backbone:
    """A fresh tiny Llama classifier (methods modify the model in place); ``score`` is its new head."""
    return Backbone(model=build_tiny_llama(), tokenizer=None, path="", new_parameters={"score.weight"})


def llama_batch() -> dict[str, torch.Tensor]:
    """6 sequences of lengths 3..8, right-padded with pad id 0 (the classifier reads the last real token)."""
    gen = torch.Generator().manual_seed(1)
    lengths = [3, 8, 5, 6, 4, 7]
    ids = torch.zeros((len(lengths), max(lengths)), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, n in enumerate(lengths):
        ids[row, :n] = torch.randint(1, 64, (n,), generator=gen)
        mask[row, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor([0, 1, 2, 0, 1, 2])}
