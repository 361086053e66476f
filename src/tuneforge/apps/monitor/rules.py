"""Alert rules over windows of counts, as pure functions (tested on hand-built windows).

A window is ``{key: (volume, negatives)}`` for one scope (each topic, or each source). ``check`` says which
keys break a rule now; ``transitions`` turns that into alerts to open (the condition starts to hold) and to
close (it stopped holding), so an alert is raised once while its condition holds and again only after the
condition has cleared and come back.
"""

from __future__ import annotations

from dataclasses import dataclass

from tuneforge.apps.monitor.config import SpikeRule, ThresholdRule

Window = dict[str, tuple[int, int]]


@dataclass(frozen=True)
class Firing:
    rule: str
    scope: str
    key: str
    value: float  # negative share of the current window
    baseline: float | None  # negative share of the baseline window (spike rules)
    volume: int
    message: str


def share(volume: int, negatives: int) -> float:
    return negatives / volume if volume else 0.0


def check(rule: ThresholdRule | SpikeRule, current: Window, baseline: Window) -> list[Firing]:
    """The keys for which ``rule`` holds, sorted by key."""
    fired = []
    for key in sorted(current):
        volume, negatives = current[key]
        if volume < rule.min_volume:
            continue
        now = share(volume, negatives)
        if isinstance(rule, ThresholdRule):
            if now > rule.above:
                fired.append(Firing(rule.name, rule.by, key, now, None, volume,
                                    f"{rule.by} {key}: negative share {now:.0%} of {volume} items is above "
                                    f"{rule.above:.0%}"))
            continue
        base_volume, base_negatives = baseline.get(key, (0, 0))
        if base_volume < rule.min_baseline_volume:
            continue
        before = share(base_volume, base_negatives)
        by_difference = rule.min_difference is not None and now - before >= rule.min_difference
        # a baseline of 0 negatives: any negative share is an infinite ratio
        by_ratio = rule.min_ratio is not None and now > 0 and (before == 0 or now / before >= rule.min_ratio)
        if by_difference or by_ratio:
            fired.append(Firing(rule.name, rule.by, key, now, before, volume,
                                f"{rule.by} {key}: negative share {now:.0%} of {volume} items against "
                                f"{before:.0%} of {base_volume} in the baseline window"))
    return fired


def transitions(rule_name: str, fired: list[Firing], open_keys: set[str]) -> tuple[list[Firing], list[str]]:
    """(alerts to open, keys whose open alert closes) for one rule, given the keys with an open alert."""
    now = {f.key for f in fired}
    return [f for f in fired if f.key not in open_keys], sorted(open_keys - now)
