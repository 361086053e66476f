"""The learning-rate range test (Smith, 2017, "Cyclical Learning Rates for Training Neural Networks", sec. 3.3;
the fastai ``lr_find``): train for N steps while the rate grows exponentially, lr_i = lr_0 (lr_N / lr_0)^(i/(N-1)),
and watch the loss.

The raw loss of one batch is noisy, so the curve is an exponential moving average with bias correction
(as in Adam): avg_i = b avg_{i-1} + (1 - b) loss_i, smoothed_i = avg_i / (1 - b^(i+1)), b = 0.98 by default
(``smoothing``). The test stops early when the smoothed loss exceeds ``diverge`` times its minimum, or is not
finite: past that point the rate is too high to train at all.

Two suggestions are computed and reported:
- ``steepest``: the rate where the smoothed loss falls fastest per decade of rate (the most negative
  d smoothed / d log10 lr, before the minimum). This is what Smith's test looks for, the start of the range
  where the model learns fastest, and is the suggested value.
- ``minimum / 10``: a tenth of the rate at the lowest smoothed loss (fastai's older rule). The minimum sits
  next to divergence, so a tenth of it is a safe, slightly conservative choice; it is reported for comparison.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


def lr_at(step: int, steps: int, start_lr: float, end_lr: float) -> float:
    """The exponential schedule: ``start_lr`` at step 0, ``end_lr`` at step ``steps - 1``."""
    return start_lr * (end_lr / start_lr) ** (step / max(1, steps - 1))


@dataclass
class RangeTest:
    """Accumulates (lr, loss) pairs, smooths them and says when to stop."""

    smoothing: float = 0.98
    diverge: float = 4.0
    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    smoothed: list[float] = field(default_factory=list)
    stopped_early: bool = False
    _avg: float = 0.0

    def add(self, lr: float, loss: float) -> bool:
        """Record one step; True when the test should stop (divergence or a non-finite loss)."""
        self.lrs.append(lr)
        self.losses.append(loss)
        if not math.isfinite(loss):
            self.smoothed.append(float("nan"))
            self.stopped_early = True
            return True
        self._avg = self.smoothing * self._avg + (1 - self.smoothing) * loss
        value = self._avg / (1 - self.smoothing ** len(self.losses))
        self.smoothed.append(value)
        best = min(v for v in self.smoothed if math.isfinite(v))
        if len(self.smoothed) > 1 and value > self.diverge * best:
            self.stopped_early = True
            return True
        return False

    def suggestions(self) -> dict[str, float | None]:
        return suggest(self.lrs, self.smoothed)


def suggest(lrs: Sequence[float], smoothed: Sequence[float]) -> dict[str, float | None]:
    """``{"steepest": lr, "minimum": lr, "minimum_over_10": lr}`` (None where the curve is too short)."""
    lr = np.asarray(lrs, dtype=float)
    loss = np.asarray(smoothed, dtype=float)
    finite = np.isfinite(loss)
    lr, loss = lr[finite], loss[finite]
    if len(loss) < 3:
        return {"steepest": None, "minimum": None, "minimum_over_10": None}
    lowest = int(np.argmin(loss))
    slope = np.gradient(loss, np.log10(lr))  # change in loss per decade of learning rate
    end = max(lowest, 2)  # only the fall before the minimum counts; the rise after it is divergence
    steepest = int(np.argmin(slope[:end]))
    return {"steepest": float(lr[steepest]), "minimum": float(lr[lowest]), "minimum_over_10": float(lr[lowest] / 10)}


def plot_range_test(test: RangeTest, suggestions: dict[str, float | None], path, title: str) -> None:
    """Loss (raw, faint; smoothed, solid) against the learning rate on a log axis, suggestions marked."""
    from tuneforge.evaluation.plots import plt

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(test.lrs, test.losses, color="tab:blue", alpha=0.25, label="loss")
    ax.plot(test.lrs, test.smoothed, color="tab:blue", label="smoothed loss")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    finite = [v for v in test.smoothed if math.isfinite(v)]
    if finite:  # keep the divergent tail from squashing the curve
        low, high = min(finite), min(max(finite), 2 * finite[0] if finite[0] > 0 else max(finite))
        ax.set_ylim(low - 0.05 * abs(low), high + 0.05 * abs(high) + 1e-6)
    styles = {"steepest": ("tab:red", "steepest (suggested)"), "minimum_over_10": ("tab:green", "minimum / 10")}
    for key, (color, name) in styles.items():
        if suggestions.get(key):
            ax.axvline(suggestions[key], color=color, linestyle="--", label=f"{name}: {suggestions[key]:.2e}")
    ax.legend(loc="best")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
