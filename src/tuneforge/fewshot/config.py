"""The ``contrastive:`` config section: SetFit-style contrastive training of the sentence encoder."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tuneforge.config.base import StrictModel


class ContrastiveConfig(StrictModel):
    """Contrastive fine-tuning of the encoder on pairs, then a head (docs/FEWSHOT.md#contrastive).

    The body's method (full, lora, ...) is the config's ``method:``; the end-to-end head phase uses ``train:``.
    """

    iterations: int = Field(20, ge=1, description="Pair rounds: each round gives every example one positive and one "
                                                  "negative partner (SetFit's num_iterations), 2 x iterations x "
                                                  "examples pairs in all.")
    epochs: float = Field(1, gt=0, description="Passes over the pairs.")
    batch_size: int = Field(16, ge=1, description="Pairs per optimizer step.")
    learning_rate: float = Field(2e-5, gt=0, description="Peak AdamW learning rate of the contrastive phase.")
    warmup: float = Field(0.1, ge=0, description="Warmup fraction (< 1) or steps of the contrastive phase.")
    normalize: bool = Field(True, description="Unit-length embeddings (all-MiniLM-L6-v2's sentence-transformers "
                                              "pipeline normalises its mean-pooled output).")
    loss: Literal["cosine", "cosent", "auto"] = Field(
        "cosine", description="cosine: SetFit's (cos - target)^2 per pair; cosent: CoSENT, a ranking loss asking every "
                              "same-class pair of a batch to be more similar than every different-class pair; "
                              "auto: cosent from 16 examples per class (smallest class), cosine below "
                              "(fewshot/losses.py).")
    scale: float = Field(20.0, gt=0, description="CoSENT's scale s on the cosine differences (loss: cosent).")
    head: Literal["logistic", "end_to_end"] = Field(
        "end_to_end", description="logistic: logistic regression on the frozen embeddings (SetFit's default); "
                                  "end_to_end: that, then the whole classifier trains with cross-entropy for "
                                  "train.epochs at train.learning_rate.")
    members: int = Field(1, ge=1, description="Train steps 1-4 this many times (seeds train.seed, train.seed + 1, "
                                              "...) and keep the average of their weights, a model soup: one "
                                              "model, M times the training time. Needs a method that trains the "
                                              "whole weights (full).")
    head_c: float = Field(1.0, gt=0, description="Inverse L2 strength of the logistic regression (scikit-learn C).")
