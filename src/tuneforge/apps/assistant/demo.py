"""``tuneforge assistant demo``: the chatterbot corpus as a knowledge base, built, evaluated and asked."""

from __future__ import annotations

from pathlib import Path

SAMPLES = {
    "english": ["what is your name", "Do you like to read books?", "How can I get a refund for my plane ticket?"],
    "chinese": ["你叫什么名字", "你喜欢看书吗", "我的机票怎么退款"],
}


def demo(out: Path, language: str = "english", model: str = "minilm", finetune: bool = False,
         overrides: list[str] | None = None, progress: bool = True):
    """Build into ``out``; returns (assistant, evaluation, answers to the sample questions)."""
    from tuneforge.apps.assistant.build import build

    assistant = build({"name": f"assistant-{language}", "kb": {"builtin": "chatterbot", "language": language},
                       "retrieval": {"encoder": model}, "finetune": {"enabled": finetune}, "output_dir": str(out)},
                      list(overrides or []), progress=progress)
    metrics = assistant.evaluate()
    return assistant, metrics, [assistant.ask(q) for q in SAMPLES[language]]
