"""Shared fixtures: a tiny random BERT (real architecture, random weights) and tiny labelled data.

Everything is built in a temporary folder in about a second, so the suite needs no model download.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

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


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("tiny-data")
    return {"train": write_jsonl(folder / "train.jsonl", make_examples(96, seed=1)),
            "validation": write_jsonl(folder / "validation.jsonl", make_examples(24, seed=2)),
            "test": write_jsonl(folder / "test.jsonl", make_examples(30, seed=3))}


@pytest.fixture()
def tiny_config(tiny_bert, tiny_data, tmp_path) -> dict:
    """A complete training config on the tiny model and data (fp32 for exact comparisons)."""
    return {
        "name": "tiny",
        "model": str(tiny_bert),
        "data": {"train": str(tiny_data["train"]), "validation": str(tiny_data["validation"]),
                 "test": str(tiny_data["test"]), "max_length": 32},
        "method": {"name": "full"},
        "train": {"epochs": 2, "batch_size": 8, "learning_rate": 5e-3, "precision": "fp32", "seed": 0,
                  "log_every": 2},
        "output_dir": str(tmp_path / "run"),
    }


@pytest.fixture(scope="session")
def make_tiny_config(tiny_bert, tiny_data):
    """``tiny_config`` for a given output_dir, for module-scoped runs (which cannot use ``tmp_path``)."""

    def make(output_dir: Path) -> dict:
        return {
            "name": "tiny",
            "model": str(tiny_bert),
            "data": {"train": str(tiny_data["train"]), "validation": str(tiny_data["validation"]),
                     "test": str(tiny_data["test"]), "max_length": 32},
            "method": {"name": "full"},
            "train": {"epochs": 2, "batch_size": 8, "learning_rate": 5e-3, "precision": "fp32", "seed": 0,
                      "log_every": 2},
            "output_dir": str(output_dir),
        }

    return make


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run ~10x faster on one thread than on two when the machine is busy (the compression tests
    use it: ``pytestmark = pytest.mark.usefixtures("one_thread")``)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
