"""The towers: one Hugging Face encoder shared by users and items, mean pooling, unit-length vectors.

Both towers share weights (a siamese two-tower model): user history text and item text are the same kind of
text, and one encoder halves memory and training time on a CPU. The score of a user u and an item i is the
cosine similarity of their vectors, s(u, i) = <e(u), e(i)>, with e(x) = normalise(mean of the last hidden
states over x's real tokens) (Sentence-BERT, Reimers & Gurevych 2019).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from tuneforge.errors import TuneforgeError
from tuneforge.models.precision import Precision, autocast


class TextEncoder(nn.Module):
    def __init__(self, model: nn.Module, tokenizer) -> None:
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer

    @classmethod
    def load(cls, path: str | Path) -> TextEncoder:
        from transformers import AutoModel
        from transformers.utils import logging as hf_logging

        from tuneforge.models.backbones import load_tokenizer

        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # "some weights were not used" (an MLM head): expected for an encoder
        try:
            model = AutoModel.from_pretrained(str(path), dtype=torch.float32)
        except (OSError, ValueError) as exc:
            raise TuneforgeError(f"Could not load an encoder from {path}: {exc}") from None
        finally:
            hf_logging.set_verbosity(verbosity)
        return cls(model, load_tokenizer(str(path), padding_side="right"))

    def forward(self, texts: list[str], max_length: int) -> torch.Tensor:
        """(B, H) unit vectors."""
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        hidden = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)  # (B, H)
        return nn.functional.normalize(pooled.float(), dim=-1)

    @torch.no_grad()
    def encode(self, texts: list[str], max_length: int, precision: Precision = "fp32", batch_size: int = 64,
               on_batch=None) -> torch.Tensor:
        """(N, H) unit vectors, in batches sorted by length (less padding), returned in the input order."""
        was_training = self.training
        self.eval()
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = torch.empty(len(texts), self.model.config.hidden_size)
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            with autocast(precision):
                out[idx] = self([texts[i] for i in idx], max_length)
            if on_batch is not None:
                on_batch(len(idx))
        self.train(was_training)
        return out

    def save(self, folder: Path) -> None:
        """A Hugging Face folder (safetensors + tokenizer): ``AutoModel.from_pretrained(folder)`` reads it."""
        self.model.save_pretrained(folder, safe_serialization=True)
        self.tokenizer.save_pretrained(folder)
