"""Tiny recommendation data in the tiny BERT's vocabulary (tests/conftest.py): three topics of items, users
who each click the items of one topic, a time per interaction."""

from __future__ import annotations

import csv
import random
from pathlib import Path

from conftest import FILLER, WORDS


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
