"""The customer-service assistant: ``tuneforge assistant`` (docs/ASSISTANT.md).

A knowledge base of question/answer pairs indexed for hybrid retrieval (BM25 over words or Chinese characters
plus dense vectors from a sentence encoder in FAISS, fused), routing by retrieval score and an optional intent
run (knowledge base answer, generated reply, or a person), contrastive fine-tuning of the encoder on the
knowledge base's own paraphrases, and a chat service with serve's keys and limits.

    from tuneforge.apps.assistant import build_assistant, load_assistant
    bot = build_assistant("configs/assistant-chatterbot.yaml", ["output_dir=runs/bot"])
    bot.ask("what is your name")["route"]; bot.evaluate()["heldout"]["hybrid"]["mrr"]
"""

from __future__ import annotations

from typing import Any

__all__ = ["Assistant", "AssistantConfig", "build_assistant", "load_assistant"]


def __getattr__(name: str) -> Any:  # lazy: `tuneforge --help` must not import torch and transformers
    if name == "AssistantConfig":
        from tuneforge.apps.assistant.config import AssistantConfig

        return AssistantConfig
    if name == "build_assistant":
        from tuneforge.apps.assistant.build import build

        return build
    if name in ("Assistant", "load_assistant"):
        from tuneforge.apps.assistant import assistant

        return getattr(assistant, name)
    raise AttributeError(name)
