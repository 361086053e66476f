"""Prompting: templates with an answer slot, verbalizers, and scoring label words on a language model."""

from tuneforge.prompting.config import PromptConfig
from tuneforge.prompting.template import Template
from tuneforge.prompting.verbalizer import Verbalizer

__all__ = ["PromptConfig", "Template", "Verbalizer"]
