"""Helpers for the server tests: API keys, and a fake predictor (deterministic, countable, blockable)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

KEYS = {"alice": "alice-key-0123456789abcdef", "bob": "bob-key-0123456789abcdef00"}
ALICE = {"Authorization": f"Bearer {KEYS['alice']}"}


class FakePredictor:
    """Scores from the text alone (so batching cannot change them); counts calls; can block or fail."""

    def __init__(self, fail: bool = False, gate=None, entered=None) -> None:
        self.labels = ["negative", "positive"]
        self.calls: list[int] = []
        self.fail, self.gate, self.entered = fail, gate, entered

    def predict_proba(self, texts: Sequence[str], text_pairs: Sequence[str] | None = None,
                      batch_size: int = 64) -> np.ndarray:
        if self.entered is not None:
            self.entered.set()
        if self.gate is not None:
            self.gate.wait(10)
        if self.fail:
            raise RuntimeError("the model broke")
        self.calls.append(len(texts))
        p = np.array([(len(t) % 7) / 7 for t in texts], dtype=np.float32)
        return np.stack([1 - p, p], axis=1)


def fake_models(**predictors):
    from tuneforge.serve.engine import ServedModel

    return {name: ServedModel(name, p, engine="fake", backbone="fake-backbone") for name, p in predictors.items()}
