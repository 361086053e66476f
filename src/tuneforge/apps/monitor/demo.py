"""``tuneforge monitor demo``: the airline-sentiment test split replayed as a timed stream.

Each test tweet becomes an item one minute of stream time after the previous one (topic: the airline it
@-mentions, source: twitter). Halfway through, a burst of negative tweets about one airline (taken from the
train split, so the texts are real) arrives within half an hour: the spike rule of
configs/monitor-airline.yaml must raise exactly one alert for it, and nothing else may alert.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from tuneforge.apps.monitor.monitor import Monitor

START = datetime(2015, 2, 20)


def airline_stream(burst_airline: str = "virginamerica", burst_size: int = 30, burst_minutes: float = 30,
                   burst_at: float = 0.5, limit: int | None = None) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """(items sorted by time, {text: gold label}) for the replay."""
    from tuneforge.data import load_builtin

    splits = load_builtin("airline-sentiment")
    test = splits.test[:limit] if limit else splits.test
    stream = [{"id": f"test-{i}", "time": (START + timedelta(minutes=i)).isoformat() + "Z", "text": e.text,
               "source": "twitter"} for i, e in enumerate(test)]
    burst = [e for e in splits.train if e.label == "negative" and e.meta.get("airline") == burst_airline]
    burst = burst[:burst_size]
    begin = START + timedelta(minutes=int(len(test) * burst_at))
    for j, e in enumerate(burst):
        at = begin + timedelta(minutes=burst_minutes * j / max(1, len(burst)), seconds=30)
        stream.append({"id": f"burst-{j}", "time": at.isoformat() + "Z", "text": e.text, "source": "twitter"})
    stream.sort(key=lambda item: item["time"])
    gold = {e.text: e.label for e in [*test, *burst]}
    return stream, gold


class GoldClassifier:
    """A stand-in sentiment run that answers the gold label (for fast, exact end-to-end tests)."""

    labels = ["negative", "neutral", "positive"]

    def __init__(self, gold: dict[str, str]) -> None:
        self.gold = gold

    def predict_proba(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        out = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        for i, text in enumerate(texts):
            out[i, self.labels.index(self.gold.get(text, "neutral"))] = 1.0
        return out


def replay(monitor: Monitor, stream: list[dict[str, Any]], speed: float = 0, chunk: int = 20,
           on_chunk: Callable[[int, dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Feed ``stream`` in chunks, processing after each; ``speed``: stream seconds per real second (0: no wait).
    Returns the alerts opened."""
    opened = []
    previous = None
    for start in range(0, len(stream), chunk):
        part = stream[start:start + chunk]
        first = datetime.fromisoformat(part[0]["time"].removesuffix("Z"))
        if speed > 0 and previous is not None:
            time.sleep(max(0.0, (first - previous).total_seconds() / speed))
        previous = first
        monitor.ingest(part)
        result = monitor.process()
        if result["alerts_opened"]:
            opened.extend(monitor.alerts(result["alerts_opened"]))
        if on_chunk is not None:
            on_chunk(start + len(part), result)
    return opened


def find_run() -> Path | None:
    """The newest finished airline run under runs/ (compare-airline/lora first), or None."""
    fixed = Path("runs/compare-airline/lora")
    if (fixed / "model").is_dir():
        return fixed
    found = sorted((p.parent for p in Path("runs").glob("airline-*/model") if p.is_dir()),
                   key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def quick_run() -> Path:
    """Train a short LoRA run on airline-sentiment (a few minutes on 2 cores) when none exists."""
    import tuneforge

    return tuneforge.train("configs/airline-lora.yaml", ["train.epochs=1", "data.max_train_samples=2000"]).dir
