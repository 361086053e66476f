"""Alert rules on hand-built windows, alert state transitions, and the config's validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from tuneforge.apps.monitor.config import MonitorConfig, SpikeRule, ThresholdRule
from tuneforge.apps.monitor.rules import check, transitions
from tuneforge.config import load_config
from tuneforge.errors import TuneforgeError

REPO = Path(__file__).resolve().parents[2]


def test_threshold_fires_above_the_share_and_only_with_enough_volume():
    rule = ThresholdRule(kind="threshold", name="t", above=0.5, min_volume=10)
    current = {"a": (10, 6), "b": (10, 5), "c": (9, 9), "d": (40, 30)}  # a: 60%, b: exactly 50%, c: too few
    fired = check(rule, current, {})
    assert [(f.key, f.value, f.volume) for f in fired] == [("a", 0.6, 10), ("d", 0.75, 40)]
    assert "60%" in fired[0].message and "topic a" in fired[0].message


def test_spike_compares_with_the_baseline_window():
    rule = SpikeRule(kind="spike", name="s", min_difference=0.3, min_volume=10, min_baseline_volume=5)
    current = {"a": (10, 8), "b": (10, 8), "c": (10, 8), "d": (10, 8)}
    baseline = {"a": (20, 4), "b": (20, 12), "c": (4, 0)}  # a: 20% -> 80%; b: 60% -> 80%; c: too small; d: none
    assert [f.key for f in check(rule, current, baseline)] == ["a"]
    f = check(rule, current, baseline)[0]
    assert f.baseline == 0.2 and f.value == 0.8


def test_spike_by_ratio_and_a_zero_baseline():
    rule = SpikeRule(kind="spike", name="s", min_ratio=2, min_volume=5, min_baseline_volume=5)
    current = {"a": (10, 5), "b": (10, 5), "c": (10, 0)}
    baseline = {"a": (10, 2), "b": (10, 3), "c": (10, 0)}  # a: 20%->50% (2.5x); b: 30%->50% (1.7x); c: 0 -> 0
    assert [f.key for f in check(rule, current, baseline)] == ["a"]
    assert [f.key for f in check(rule, {"z": (10, 1)}, {"z": (10, 0)})] == ["z"]  # any share over 0 is a spike


def test_an_alert_is_not_repeated_while_its_condition_holds_and_returns_after_it_clears():
    rule = ThresholdRule(kind="threshold", name="t", above=0.5, min_volume=1)
    windows = [{"a": (4, 3)}, {"a": (4, 4)}, {"a": (4, 1)}, {"a": (4, 3)}]  # holds, holds, clears, returns
    open_keys: set[str] = set()
    history = []
    for w in windows:
        to_open, to_close = transitions("t", check(rule, w, {}), open_keys)
        open_keys |= {f.key for f in to_open}
        open_keys -= set(to_close)
        history.append(([f.key for f in to_open], to_close))
    assert history == [(["a"], []), ([], []), ([], ["a"]), (["a"], [])]


def test_shipped_monitor_config_is_valid():
    cfg = load_config(MonitorConfig, path=REPO / "configs" / "monitor-airline.yaml")
    assert cfg.sentiment.run in cfg.runs
    assert {r.kind for r in cfg.rules} == {"threshold", "spike"}


@pytest.mark.parametrize("data, words", [
    ({"rules": [{"kind": "spike", "name": "s"}]}, ["min_difference", "min_ratio"]),
    ({"rules": [{"kind": "treshold", "name": "t", "above": 0.5}]}, ["treshold", "threshold"]),
    ({"windows": {"current_minute": 5}}, ["current_minute", "current_minutes"]),
    ({"rules": [{"kind": "threshold", "name": "t", "above": 0.5}] * 2}, ["unique", "t"]),
])
def test_config_mistakes_are_named(data, words):
    with pytest.raises(TuneforgeError) as info:
        load_config(MonitorConfig, data=data)
    for word in words:
        assert word in str(info.value)
