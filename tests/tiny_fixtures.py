"""Tiny labelled data and a tiny random BERT for the tests (imported by conftest.py and helper modules).

A module of its own, not conftest.py: tests/serve has a conftest.py too, so ``from conftest import ...``
finds whichever conftest directory came first on sys.path in a mixed run (tests/serve before tests/apps broke).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

WORDS = {
    "negative": ["late", "delayed", "lost", "rude", "awful", "cancelled", "broken", "worst"],
    "neutral": ["flight", "gate", "ticket", "seat", "schedule", "question", "boarding", "route"],
    "positive": ["great", "thanks", "friendly", "awesome", "love", "best", "smooth", "happy"],
}
FILLER = ["the", "a", "my", "was", "is", "today", "again", "very", "our", "crew", "plane", "bag"]


def make_examples(n: int, seed: int) -> list[dict]:
    """Texts whose label is signalled by a keyword, with filler words of varied length."""
    rng = random.Random(seed)
    labels = sorted(WORDS)
    rows = []
    for i in range(n):
        label = labels[i % len(labels)]
        words = [rng.choice(FILLER) for _ in range(rng.randint(2, 12))]
        words.insert(rng.randrange(len(words) + 1), rng.choice(WORDS[label]))
        rows.append({"text": " ".join(words), "label": label, "source": rng.choice(["web", "app"])})
    return rows


def write_corpus(path: Path, lines: int = 300, seed: int = 0) -> Path:
    """A pretraining corpus: one document per line, 4-14 of the test words each (seeded)."""
    rng = random.Random(seed)
    words = [w for ws in WORDS.values() for w in ws] + FILLER
    docs = [" ".join(rng.choice(words) for _ in range(rng.randint(4, 14))) for _ in range(lines)]
    path.write_text("\n".join(docs) + "\n", encoding="utf-8")
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def build_tiny_bert(folder: Path) -> Path:
    """A 2-layer, hidden-32 BERT with a word-level vocabulary covering the test texts."""
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    words = {w for ws in WORDS.values() for w in ws} | set(FILLER)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(words)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    wordpiece = Tokenizer(models.WordPiece({w: i for i, w in enumerate(vocab)}, unk_token="[UNK]"))
    wordpiece.normalizer = normalizers.BertNormalizer(lowercase=True)
    wordpiece.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    wordpiece.post_processor = processors.BertProcessing(("[SEP]", 3), ("[CLS]", 2))
    tokenizer = BertTokenizerFast(tokenizer_object=wordpiece, unk_token="[UNK]", pad_token="[PAD]",
                                  cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, type_vocab_size=2)
    import torch

    torch.manual_seed(0)
    model = BertForSequenceClassification(config)  # random weights; the pooler is part of the base
    model.base_model.save_pretrained(folder)  # a base-model checkpoint, like a hub encoder
    tokenizer.save_pretrained(folder)
    return folder
