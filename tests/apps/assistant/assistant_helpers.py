"""A tiny hand-built knowledge base (English and Chinese), a bag-of-words stand-in encoder, a hybrid retriever
and an assistant built on them, and stub runs."""

from __future__ import annotations

import json
from pathlib import Path

import torch

KB = [
    {"id": "pw-1", "question": "How do I reset my password?", "answer": "Use the forgot password link on the sign-in "
     "page.", "category": "account"},
    {"id": "pw-2", "question": "I forgot my password", "answer": "Use the forgot password link on the sign-in page.",
     "category": "account"},
    {"id": "order-1", "question": "Where is my order?", "answer": "Track it under My orders.", "category": "orders"},
    {"id": "order-2", "question": "How can I track my parcel?", "answer": "Track it under My orders.",
     "category": "orders"},
    {"id": "refund", "question": "Can I get a refund?", "answer": "Refunds are possible within 30 days.",
     "category": "billing"},
    {"id": "pay", "question": "What payment methods do you accept?", "answer": "Cards and bank transfers.",
     "category": "billing"},
    {"id": "address", "question": "How do I change my delivery address?", "answer": "Edit it under Account, "
     "Addresses.", "category": "account"},
    {"id": "zh-pw", "question": "如何修改密码", "answer": "在设置页面修改密码。", "category": "account"},
    {"id": "zh-refund", "question": "怎么申请退款", "answer": "三十天内可以退款。", "category": "billing"},
    {"id": "zh-order", "question": "订单在哪里查看", "answer": "在我的订单里查看。", "category": "orders"},
]


def write_kb(path: Path, rows: list[dict] = KB) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


class BagOfWordsEncoder(torch.nn.Module):
    """Stands in for a sentence encoder: hashed bag of lower-cased words, unit length (deterministic, no model)."""

    def __init__(self, dim: int = 64) -> None:
        super().__init__()
        self.dim = dim

    def encode(self, texts, max_length, precision="fp32", batch_size=64, on_batch=None) -> torch.Tensor:
        from tuneforge.apps.assistant.text import tokenize

        out = torch.zeros(len(texts), self.dim)
        for i, text in enumerate(texts):
            for token in tokenize(text, "chars"):
                out[i, sum(map(ord, token)) % self.dim] += 1.0
        return torch.nn.functional.normalize(out, dim=-1)


class StubClassifier:
    """``predict`` answers a fixed label with a fixed probability."""

    def __init__(self, label: str, confidence: float) -> None:
        self.label, self.confidence = label, confidence
        self.seen: list[str] = []

    def predict(self, texts):
        self.seen += list(texts)
        return [{"label": self.label, "scores": {self.label: self.confidence, "other": 1 - self.confidence}}
                for _ in texts]


class StubGenerator:
    """``generate`` echoes the prompt's length, and records its arguments."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], dict]] = []

    def generate(self, prompts, **kwargs):
        self.calls.append((list(prompts), kwargs))
        return [f"  generated reply to a {len(p)}-character prompt " for p in prompts]


def make_retriever(entries, bm25=True, dense=True, **settings):
    """BM25 and/or dense retrieval over ``entries``' questions, the dense side with :class:`BagOfWordsEncoder`."""
    from tuneforge.apps.assistant.bm25 import BM25Index
    from tuneforge.apps.assistant.config import RetrievalConfig
    from tuneforge.apps.assistant.dense import DenseIndex, build_faiss
    from tuneforge.apps.assistant.retriever import Retriever

    cfg = RetrievalConfig(bm25=bm25, dense=dense, **settings)
    texts = [e.question for e in entries]
    lexical = BM25Index.build(texts, cfg.k1, cfg.b, cfg.cjk) if bm25 else None
    vectors = None
    if dense:
        encoder = BagOfWordsEncoder()
        vectors = encoder.encode(texts, 32).numpy()
        vectors = DenseIndex(encoder, vectors, build_faiss(vectors, cfg.index), 32, "fp32")
    return Retriever(entries, lexical, vectors, cfg)


def stand_in_assistant(folder: Path, classifier=None, generator=None, **routing):
    """An :class:`Assistant` on :data:`KB` with the hybrid stand-in retriever (no model to load)."""
    from tuneforge.apps.assistant.assistant import Assistant
    from tuneforge.apps.assistant.config import AssistantConfig
    from tuneforge.apps.assistant.kb import read_kb

    entries = read_kb(write_kb(folder / "kb.jsonl"))
    cfg = AssistantConfig(kb={"path": str(folder / "kb.jsonl")}, routing=routing)
    return Assistant(folder, cfg, entries, make_retriever(entries), classifier, generator)
