"""``tuneforge compare``: every method on the same data and budget, a table, a chart, learning rates chosen
on validation pilots, and a failing method recorded without stopping the others."""

from __future__ import annotations

import json

import pytest
import yaml
from PIL import Image

import tuneforge
from tuneforge.errors import TuneforgeError


@pytest.fixture(scope="module")
def comparison(make_tiny_config, tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    cfg = make_tiny_config(root / "unused")
    cfg["train"]["epochs"] = 1
    return tuneforge.compare(cfg, ["bitfit", "lora", "freeze"], ["lora.r=4", "freeze.layers=9"],
                             learning_rates={"bitfit": 1e-2}, sweep=[0.5, 2.0], sweep_samples=30,
                             output_dir=root / "cmp", progress=False)


def test_every_method_trains_on_the_same_data_with_its_own_settings(comparison):
    rows = {r.method: r for r in comparison.rows}
    assert list(rows) == ["bitfit", "lora", "freeze"]
    assert rows["bitfit"].status == rows["lora"].status == "complete"
    configs = {m: yaml.safe_load((comparison.dir / m / "config.yaml").read_text(encoding="utf-8"))
               for m in ("bitfit", "lora")}
    assert configs["bitfit"]["data"] == configs["lora"]["data"]
    assert configs["bitfit"]["train"]["epochs"] == configs["lora"]["train"]["epochs"] == 1
    assert configs["lora"]["method"]["r"] == 4  # lora.r=4 reached lora only
    assert configs["bitfit"]["train"]["learning_rate"] == 1e-2 and rows["bitfit"].lr_source == "--lr"
    for m in ("bitfit", "lora"):
        metrics = rows[m].metrics
        assert metrics["train.peak_memory_mb"] > 50  # a Python process with torch loaded
        assert 0 < metrics["trainable_percent"] < 100


def test_the_sweep_keeps_the_best_pilot_on_validation(comparison):
    pilots = [r for r in comparison.sweep if r.method == "lora"]
    assert [p.learning_rate for p in pilots] == [1e-3, 4e-3]  # 0.5x and 2x the recommended 2e-3
    for p in pilots:
        saved = yaml.safe_load((comparison.dir / "sweep" / f"lora-lr{p.learning_rate:g}" / "config.yaml").read_text())
        assert saved["data"]["max_train_samples"] == 30
    best = max(pilots, key=lambda p: p.metrics["validation.macro_f1"])
    lora = next(r for r in comparison.rows if r.method == "lora")
    assert lora.learning_rate == best.learning_rate and lora.lr_source == "sweep"
    assert not [r for r in comparison.sweep if r.method == "bitfit"], "--lr fixes the rate: no pilots"


def test_a_failing_method_is_recorded_and_the_others_go_on(comparison):
    freeze = next(r for r in comparison.rows if r.method == "freeze")
    assert freeze.status.startswith("failed") and "method.layers = 9" in freeze.status
    assert "| freeze | " in comparison.markdown and "failed" in comparison.markdown


def test_table_chart_and_json_are_written(comparison):
    text = (comparison.dir / "compare.md").read_text(encoding="utf-8")
    assert text == comparison.markdown
    header = next(line for line in text.splitlines() if line.startswith("| method | learning rate"))
    for column in ["trainable parameters", "trainable %", "train s", "samples/s", "peak memory MB",
                   "test accuracy", "test macro-F1"]:
        assert column in header
    lora_line = next(line for line in text.splitlines() if line.startswith("| lora |"))
    lora = next(r for r in comparison.rows if r.method == "lora")
    assert f"{lora.metrics['test.accuracy']:.4f}" in lora_line
    data = json.loads((comparison.dir / "compare.json").read_text(encoding="utf-8"))
    assert [r["method"] for r in data["rows"]] == ["bitfit", "lora", "freeze"]
    with Image.open(comparison.dir / "compare.png") as image:
        image.verify()


def test_bad_method_lists_are_refused_before_anything_trains(tiny_config, tmp_path):
    with pytest.raises(TuneforgeError, match='"lorra" is not a method.*"lora"'):
        tuneforge.compare(tiny_config, ["full", "lorra"], output_dir=tmp_path / "x")
    from tuneforge.recipes.compare import parse_learning_rates

    with pytest.raises(TuneforgeError, match="METHOD=RATE"):
        parse_learning_rates(["2e-3"], ["lora"])
    with pytest.raises(TuneforgeError, match="not among --methods"):
        parse_learning_rates(["ia3=1e-2"], ["lora"])
    assert not (tmp_path / "x").exists()
