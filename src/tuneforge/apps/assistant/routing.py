"""Routing: answer from the knowledge base, with a generated reply, or hand over to a person; and say why.

    1. an intent classifier (optional) labels the question; an intent in ``human_intents`` at or above
       ``min_intent_confidence`` goes to a person at once;
    2. the best hit answers when its similarity reaches ``min_score`` and the intent (if any) is confident;
    3. otherwise: a generated reply when a generation run is configured, else a handover.

The classifier is anything with ``predict(texts) -> [{"label", "scores"}]`` (a tuneforge text-classification
run); the generator anything with ``generate(prompts, max_new_tokens=..., do_sample=..., temperature=...,
top_p=..., seed=...) -> list[str]`` (a tuneforge generation run; the last three only when sampling). Both are
duck-typed, so tests use stubs.
"""

from __future__ import annotations

from typing import Any, Protocol

from tuneforge.apps.assistant.kb import Entry
from tuneforge.apps.assistant.retriever import Hit


class Classifier(Protocol):
    def predict(self, texts: list[str]) -> list[dict[str, Any]]: ...


class Generator(Protocol):
    def generate(self, prompts: list[str], **kwargs: Any) -> list[str]: ...


def intent_of(classifier: Classifier | None, question: str) -> dict[str, Any] | None:
    if classifier is None:
        return None
    prediction = classifier.predict([question])[0]
    return {"label": prediction["label"], "confidence": round(float(prediction["scores"][prediction["label"]]), 4)}


def route(question: str, hits: list[Hit], entries: list[Entry], cfg, intent: dict[str, Any] | None,
          generator: Generator | None, score_kind: str) -> dict[str, Any]:
    """The reply to ``question``; ``cfg`` is the config's ``routing:`` section."""
    best = hits[0] if hits else None
    entry = entries[best.index] if best is not None else None
    reply: dict[str, Any] = {
        "question": question, "intent": intent,
        "matched_question": entry.question if entry else None, "matched_id": entry.id if entry else None,
        "category": entry.category if entry else None,
        "score": round(best.similarity, 4) if best else 0.0, "score_kind": score_kind,
        "alternatives": [{"question": entries[h.index].question, "answer": entries[h.index].answer,
                          "score": round(h.similarity, 4)} for h in hits[1:4]]}
    confident_intent = intent is None or intent["confidence"] >= cfg.min_intent_confidence
    if intent is not None and confident_intent and intent["label"] in cfg.human_intents:
        return {**reply, "route": "human", "answer": cfg.handover_message,
                "reason": f'intent "{intent["label"]}" ({intent["confidence"]:.2f}) is always handed to a person'}
    if best is not None and best.similarity >= cfg.min_score and confident_intent:
        return {**reply, "route": "kb", "answer": entry.answer,
                "reason": f"matched a knowledge base question with {score_kind} {best.similarity:.2f} >= "
                          f"{cfg.min_score}" + (f' and intent "{intent["label"]}" {intent["confidence"]:.2f} >= '
                                                f"{cfg.min_intent_confidence}" if intent else "")}
    doubts = []
    if best is None:
        doubts.append("nothing in the knowledge base matched")
    elif best.similarity < cfg.min_score:
        doubts.append(f"the best match's {score_kind} {best.similarity:.2f} is below {cfg.min_score}")
    if not confident_intent:
        doubts.append(f'intent "{intent["label"]}" confidence {intent["confidence"]:.2f} is below '
                      f"{cfg.min_intent_confidence}")
    why = " and ".join(doubts)
    if generator is not None:
        prompt = cfg.prompt.replace("{question}", question)
        # the sampling settings only with do_sample: a generation run refuses them next to do_sample=False
        sampling = dict(temperature=cfg.temperature, top_p=cfg.top_p, seed=cfg.seed) if cfg.do_sample else {}
        text = generator.generate([prompt], max_new_tokens=cfg.max_new_tokens, do_sample=cfg.do_sample,
                                  **sampling)[0]
        if text.strip():
            source = getattr(generator, "dir", None)  # a loaded run's folder; stand-ins may have none
            return {**reply, "route": "generated", "answer": text.strip(),
                    "reason": f"{why}: a generated reply" + (f" from the generation run {source}" if source else "")}
        why += ", and the generation run returned nothing"
    if generator is None:
        why += ", and no generation run is configured"
    return {**reply, "route": "human", "answer": cfg.handover_message, "reason": f"{why}: handed to a person"}
