"""A tiny random BERT whose WordPiece vocabulary splits some names into subwords, and synthetic tagged
sentences (English words and Chinese characters) where the entities follow from the words."""

from __future__ import annotations

import json
import random
from pathlib import Path

PEOPLE = [["john", "smith"], ["mary", "johansson"], ["ann"], ["peter", "berg"], ["liu", "yang"]]
PLACES = [["paris"], ["new", "york"], ["berlin"], ["oslo"]]
ORGS = [["acme", "corp"], ["united", "nations"], ["red", "cross"]]
FILLER = ["the", "a", "met", "in", "at", "visited", "from", "today", "with", "said", "and", "."]
ZH = {"PER": ["王小明", "李华", "张伟"], "LOC": ["北京", "上海", "香港"], "ORG": ["新华社", "人民日报"]}
ZH_FILLER = list("的在了是和说去到今天我们他")
# WordPiece pieces: "johansson" -> johan ##sson, "berg" -> be ##rg (first-subword labelling is exercised)
PIECES = ["johan", "##sson", "be", "##rg"]


def build_tiny_ner_bert(folder: Path) -> Path:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertModel, BertTokenizerFast

    words = {w for group in PEOPLE + PLACES + ORGS for name in [group] for w in name} | set(FILLER)
    words -= {"johansson", "berg"}
    chars = {c for names in ZH.values() for n in names for c in n} | set(ZH_FILLER)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(words) + PIECES + sorted(chars)
    folder.mkdir(parents=True, exist_ok=True)
    wordpiece = Tokenizer(models.WordPiece({w: i for i, w in enumerate(vocab)}, unk_token="[UNK]"))
    wordpiece.normalizer = normalizers.BertNormalizer(lowercase=True)
    wordpiece.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    wordpiece.post_processor = processors.BertProcessing(("[SEP]", 3), ("[CLS]", 2))
    tokenizer = BertTokenizerFast(tokenizer_object=wordpiece, unk_token="[UNK]", pad_token="[PAD]",
                                  cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    import torch

    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, type_vocab_size=2)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def english_sentences(n: int, seed: int) -> list[dict]:
    """``{"tokens", "tags"}`` rows: fillers around one to three entities."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        tokens, tags = [], []
        for _ in range(rng.randint(1, 3)):
            for _ in range(rng.randint(0, 2)):
                tokens.append(rng.choice(FILLER))
                tags.append("O")
            kind, names = rng.choice([("PER", PEOPLE), ("LOC", PLACES), ("ORG", ORGS)])
            name = rng.choice(names)
            tokens += name
            tags += [f"B-{kind}"] + [f"I-{kind}"] * (len(name) - 1)
        tokens.append(".")
        tags.append("O")
        rows.append({"tokens": tokens, "tags": tags})
    return rows


def chinese_sentences(n: int, seed: int) -> list[dict]:
    """``{"text", "entities"}`` rows of Chinese characters."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        text, entities = "", []
        for _ in range(rng.randint(1, 2)):
            text += "".join(rng.choice(ZH_FILLER) for _ in range(rng.randint(1, 3)))
            kind = rng.choice(sorted(ZH))
            name = rng.choice(ZH[kind])
            entities.append({"start": len(text), "end": len(text) + len(name), "label": kind})
            text += name
        rows.append({"text": text + "。", "entities": entities})
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def tiny_ner_config(folder: Path) -> dict:
    """A one-epoch token-classification config on the tiny tagger (for tools that must refuse such runs)."""
    folder.mkdir(parents=True, exist_ok=True)
    data = {name: write_jsonl(folder / f"{name}.jsonl", english_sentences(n, seed))
            for name, n, seed in (("train", 24, 1), ("validation", 8, 2), ("test", 8, 3))}
    return {"name": "ner", "model": str(build_tiny_ner_bert(folder / "bert")), "task": "token-classification",
            "data": {**{k: str(v) for k, v in data.items()}, "max_length": 32}, "method": {"name": "full"},
            "train": {"epochs": 1, "batch_size": 8, "precision": "fp32", "seed": 0}, "output_dir": str(folder / "run")}
