"""``tuneforge assistant demo``: the chatterbot corpus as a knowledge base, built with
configs/assistant-chatterbot.yaml, evaluated and asked a few questions (one of them outside the corpus).

Chinese builds BM25 only: MiniLM reads Chinese as [UNK] and its dense vectors lower the hybrid's scores
(docs/ASSISTANT.md); with ``finetune`` the dense part stays on, since fine-tuning trains it.
"""

from __future__ import annotations

from pathlib import Path

SAMPLES = {
    "english": ["who are you", "Do you like to read books?", "what is your name",
                "How can I get a refund for my plane ticket?"],
    "chinese": ["你是谁", "你读过柏拉图吗", "我的机票怎么退款"],
}


def shipped_config() -> Path:
    shipped = Path("configs/assistant-chatterbot.yaml")
    if not shipped.exists():  # run from elsewhere than the repository root: the source checkout's copy
        shipped = Path(__file__).resolve().parents[4] / "configs" / "assistant-chatterbot.yaml"
    return shipped


def demo(out: Path, language: str = "english", model: str = "minilm", finetune: bool = False,
         overrides: list[str] | None = None, progress: bool = True):
    """Build into ``out``; returns (assistant, evaluation, answers to the sample questions)."""
    from tuneforge.apps.assistant.build import build

    settings = [f"name=assistant-{language}", f"kb.language={language}", f"retrieval.encoder={model}",
                f"finetune.enabled={str(finetune).lower()}", f"output_dir={out}"]
    if language == "chinese" and not finetune:
        settings.append("retrieval.dense=false")
    assistant = build(shipped_config(), settings + list(overrides or []), progress=progress)
    metrics = assistant.evaluate()
    return assistant, metrics, [assistant.ask(q) for q in SAMPLES[language]]
