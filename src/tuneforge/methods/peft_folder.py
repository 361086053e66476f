"""Save and load peft adapter folders (used by lora, ia3, prompt and ptuning)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from torch import nn

from tuneforge.models.backbones import Backbone


def save_peft_folder(model: nn.Module, folder: Path) -> None:
    """adapter_config.json + adapter_model.safetensors (the method's weights and the head's copies)."""
    model.save_pretrained(folder, safe_serialization=True)


def load_peft_folder(folder: Path, load_base: Callable[[], Backbone]) -> nn.Module:
    import peft

    return peft.PeftModel.from_pretrained(load_base().model, folder)
