"""Save and load whole models as Hugging Face folders (used by full, freeze and bitfit)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


def save_hf_folder(model: nn.Module, folder: Path) -> None:
    model.save_pretrained(folder, safe_serialization=True)


def load_hf_folder(folder: Path) -> nn.Module:
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(folder, dtype=torch.float32)
