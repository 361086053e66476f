"""Backbones: resolving a model name to a folder, loading tokenizer and classifier, precision."""

from tuneforge.models.backbones import Backbone, load_backbone, resolve_model
from tuneforge.models.precision import bf16_is_fast, resolve_precision

__all__ = ["Backbone", "bf16_is_fast", "load_backbone", "resolve_model", "resolve_precision"]
