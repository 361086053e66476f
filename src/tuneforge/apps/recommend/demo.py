"""``tuneforge recommend demo``: real item texts, simulated users, a real model against the baselines.

Items: conversations of the English chatterbot corpus (pip ``chatterbot-corpus``), the first
``items_per_topic`` of each of 15 categories; the title is the opening line, the description the reply, the
tags are left empty (the category name would give the topic away to TF-IDF and the model alike).

Users are simulated (seeded): each likes two categories, drawn with weights 1/1, 1/2, ..., 1/15 over a
seeded order of the categories (so some topics are popular). Each user is shown ``impressions`` items one
after another (half of them from the liked topics, half from the whole catalogue, never the same item
twice) and clicks a liked-topic item with probability 0.8, any other with probability 0.05.
"""

from __future__ import annotations

import csv
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

from tuneforge.data.builtin.common import package_folder
from tuneforge.errors import TuneforgeError

TOPICS = ["ai", "coding", "emotion", "food", "gossip", "humor", "literature", "money", "movies", "politics",
          "psychology", "science", "sports", "tech_support", "trivia"]
LIKED_CLICK, OTHER_CLICK = 0.8, 0.05
START = datetime(2024, 1, 1, tzinfo=timezone.utc)


def chatterbot_items(items_per_topic: int) -> list[dict]:
    """[{item, title, description, tags, topic}] from the installed chatterbot corpus."""
    import yaml

    folder = package_folder("chatterbot_corpus")
    if folder is None:
        raise TuneforgeError("The demo's items come from the chatterbot corpus, which is not installed: "
                             "pip install --no-deps chatterbot-corpus==1.3.3")
    items, seen = [], set()
    for topic in TOPICS:
        data = yaml.safe_load((folder / "data" / "english" / f"{topic}.yml").read_text(encoding="utf-8"))
        n = 0
        for conversation in data["conversations"]:
            lines = [" ".join(str(x).split()) for x in conversation if str(x).strip()]
            key = " ".join(lines).lower()  # openings repeat ("Tell me a joke"), whole conversations rarely
            if len(lines) < 2 or key in seen or n >= items_per_topic:
                continue
            seen.add(key)
            n += 1
            items.append({"item": f"{topic}-{n:03d}", "title": lines[0], "description": " ".join(lines[1:])[:300],
                          "tags": "", "topic": topic})
    return items


def simulate(items: list[dict], users: int, impressions: int, seed: int) -> tuple[list[dict], dict[str, list[str]]]:
    """Interactions (user, item, label, time) and each user's liked topics."""
    rng = random.Random(seed)
    order = rng.sample(TOPICS, len(TOPICS))
    weights = [1 / (r + 1) for r in range(len(order))]
    by_topic: dict[str, list[dict]] = {}
    for it in items:
        by_topic.setdefault(it["topic"], []).append(it)
    rows, likes = [], {}
    for u in range(users):
        user = f"u{u:03d}"
        liked: list[str] = []
        while len(liked) < 2:
            t = rng.choices(order, weights)[0]
            if t not in liked:
                liked.append(t)
        likes[user] = liked
        pool_liked = [it for t in liked for it in by_topic.get(t, [])]
        shown: set[str] = set()
        moment = START + timedelta(days=rng.uniform(0, 30))
        for _ in range(min(impressions, len(items))):
            source = pool_liked if rng.random() < 0.5 and len(shown) < len(pool_liked) else items
            candidates = [it for it in source if it["item"] not in shown] or [it for it in items
                                                                             if it["item"] not in shown]
            it = rng.choice(candidates)
            shown.add(it["item"])
            p = LIKED_CLICK if it["topic"] in liked else OTHER_CLICK
            moment += timedelta(minutes=rng.expovariate(1 / 90))
            rows.append({"user": user, "item": it["item"], "label": int(rng.random() < p),
                         "time": moment.strftime("%Y-%m-%dT%H:%M:%S")})
    rows.sort(key=lambda r: r["time"])
    return rows, likes


def write_demo_data(folder: Path, users: int = 300, impressions: int = 30, items_per_topic: int = 30,
                    seed: int = 0) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    items = chatterbot_items(items_per_topic)
    rows, likes = simulate(items, users, impressions, seed)
    paths = {"items": folder / "items.csv", "interactions": folder / "interactions.csv",
             "likes": folder / "user_topics.csv"}
    with paths["items"].open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, ["item", "title", "description", "tags"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(items)
    with paths["interactions"].open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, ["user", "item", "label", "time"])
        writer.writeheader()
        writer.writerows(rows)
    with paths["likes"].open("w", newline="", encoding="utf-8") as f:  # the truth the simulation used
        writer = csv.writer(f)
        writer.writerow(["user", "liked_topics"])
        writer.writerows([u, ";".join(t)] for u, t in likes.items())
    return paths
