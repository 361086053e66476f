"""Tiny recommendation data in the tiny BERT's vocabulary (tests/conftest.py): three topics of items, users
who each click the items of one topic, a time per interaction; the tiny run config; a stand-in pair scorer for
the re-ranker; the CLI runner."""

from __future__ import annotations

import csv
import random
import sys
from pathlib import Path

import numpy as np
import pytest

from tiny_fixtures import FILLER, WORDS


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def tiny_recommend_data(folder: Path, users: int = 24, impressions: int = 12, seed: int = 0) -> dict[str, Path]:
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    items = []
    for topic, words in WORDS.items():
        for n, word in enumerate(words):
            title = f"{word} {rng.choice(FILLER)} {rng.choice(words)}"
            items.append([f"{topic}-{n}", title, f"{rng.choice(FILLER)} {word} {rng.choice(FILLER)}", topic, topic])
    rows = []
    topics = sorted(WORDS)
    for u in range(users):
        liked = topics[u % len(topics)]
        for t, item in enumerate(rng.sample(items, impressions)):
            rows.append([f"u{u:02d}", item[0], int(item[4] == liked), 100 * t + u])  # users interleave in time
    return {"items": write_csv(folder / "items.csv", ["item", "title", "description", "tags"],
                               [i[:3] + [""] for i in items]),
            "interactions": write_csv(folder / "interactions.csv", ["user", "item", "label", "time"], rows)}


def tiny_config(model, data, out) -> dict:
    return {"name": "tiny", "model": str(model), "output_dir": str(out),
            "data": {"interactions": str(data["interactions"]), "items": str(data["items"]), "history_items": 4,
                     "history_max_length": 32, "item_max_length": 16},
            "split": {"mode": "last", "last_n": 3},
            "train": {"epochs": 6, "batch_size": 8, "learning_rate": 2e-3, "precision": "fp32", "log_every": 2}}


def cli_runner(monkeypatch, capsys):
    """``invoke(*args) -> (exit code, stdout, stderr)`` of ``tuneforge recommend ...`` through the real entry
    point."""
    from tuneforge.cli.main import main

    def invoke(*args):
        monkeypatch.setattr(sys, "argv", ["tuneforge", "recommend", *map(str, args)])
        with pytest.raises(SystemExit) as info:
            main()
        captured = capsys.readouterr()
        return (0 if info.value.code is None else info.value.code), captured.out, captured.err

    return invoke


class OverlapScorer:
    """Stands in for the cross-encoder: a pair's score is the number of distinct words the item text shares with
    the history text (checkable by hand). Records the pairs it is asked about."""

    def __init__(self) -> None:
        self.pairs: list[tuple[str, str]] = []

    def __call__(self, histories: list[str], texts: list[str]) -> np.ndarray:
        self.pairs += list(zip(histories, texts))
        return np.array([len(set(h.lower().split()) & set(t.lower().split())) for h, t in zip(histories, texts)],
                        dtype=float)
