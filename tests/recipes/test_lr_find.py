"""lr-find: the learning-rate range test on tiny models, for a full fine-tune, LoRA and a decoder."""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pytest

import tuneforge
from tuneforge.cli.main import main
from tuneforge.errors import TuneforgeError
from tuneforge.training.lr_range import RangeTest, lr_at, suggest

pytestmark = pytest.mark.usefixtures("one_thread")


def test_schedule_smoothing_and_divergence():
    assert lr_at(0, 11, 1e-6, 1e-1) == pytest.approx(1e-6)
    assert lr_at(10, 11, 1e-6, 1e-1) == pytest.approx(1e-1)
    assert lr_at(5, 11, 1e-6, 1e-1) == pytest.approx(10 ** -3.5)  # exponential: the middle step is the middle decade
    test = RangeTest(smoothing=0.5, diverge=2.0)
    assert not test.add(1e-3, 1.0)
    assert test.smoothed[0] == pytest.approx(1.0)  # bias-corrected: the first value is the first loss
    assert not test.add(1e-2, 0.5)
    assert test.smoothed[1] == pytest.approx((0.25 * 1 + 0.5 * 0.5) / 0.75)
    assert test.add(1e-1, 10.0)  # smoothed jumps above 2x the minimum: stop
    assert test.stopped_early
    assert RangeTest().add(1.0, float("nan"))


def test_suggestions_find_the_steepest_fall_before_the_minimum():
    lrs = [10 ** e for e in np.linspace(-6, 0, 61)]
    # flat until 1e-4, falls fastest around 1e-3, bottoms at 1e-2, then rises
    loss = [1.0 - 0.9 / (1 + math.exp(-4 * (math.log10(lr) + 3))) + (5 * (math.log10(lr) + 2) ** 2 if lr > 1e-2 else 0)
            for lr in lrs]
    s = suggest(lrs, loss)
    assert s["steepest"] == pytest.approx(1e-3, rel=0.3)
    assert 3e-3 <= s["minimum"] <= 1.2e-2
    assert s["minimum_over_10"] == pytest.approx(s["minimum"] / 10)
    assert suggest([1e-3, 1e-2], [1.0, 0.5]) == {"steepest": None, "minimum": None, "minimum_over_10": None}


@pytest.mark.parametrize("method", ["full", "lora"])
def test_lr_find_trains_the_method_and_writes_a_plot_and_json(make_tiny_config, tmp_path, method):
    cfg = make_tiny_config(tmp_path / "never-written")
    cfg["method"] = {"name": method}
    result = tuneforge.lr_find(cfg, steps=40, start_lr=1e-5, end_lr=10.0, output_dir=tmp_path / "lr", progress=False)
    report = json.loads((tmp_path / "lr" / "lr_find.json").read_text())
    assert (tmp_path / "lr" / "lr_find.png").read_bytes()[:4] == b"\x89PNG"
    assert report["method"] == method and report["steps_run"] == len(result.lrs) <= 40
    assert report["lrs"][0] == pytest.approx(1e-5)
    assert all(b > a for a, b in zip(report["lrs"], report["lrs"][1:]))
    # the tiny model learns at moderate rates: the smoothed loss falls below its start somewhere
    assert min(v for v in report["smoothed"] if v is not None) < report["smoothed"][0]
    assert result.suggested is not None and 1e-5 <= result.suggested <= 10.0
    assert report["suggested"] == result.suggested == report["suggestions"]["steepest"]
    assert not (tmp_path / "never-written").exists()  # the config's output_dir is not touched: no weights saved
    assert not list((tmp_path / "lr").glob("**/*.safetensors"))


def test_lr_find_on_a_decoder(make_tiny_config, tmp_path):
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parents[1] / "models"))
    from test_backbones_decoder import build_tiny_decoder

    cfg = make_tiny_config(tmp_path / "run")
    cfg.update(model=str(build_tiny_decoder(tmp_path / "decoder")), method={"name": "lora"})
    result = tuneforge.lr_find(cfg, steps=12, start_lr=1e-4, end_lr=1.0, output_dir=tmp_path / "lr", progress=False)
    assert len(result.lrs) >= 3 and all(math.isfinite(v) for v in result.losses[:3])


def test_lr_find_cli_and_its_errors(make_tiny_config, tmp_path, monkeypatch, capsys):
    import yaml

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(make_tiny_config(tmp_path / "run")))

    def cli(*args):
        monkeypatch.setattr(sys, "argv", ["tuneforge", "lr-find", *map(str, args)])
        with pytest.raises(SystemExit) as info:
            main()
        return info.value.code or 0, capsys.readouterr()

    code, captured = cli(path, "--steps", "20", "--end-lr", "5", "--output", tmp_path / "lr", "--quiet")
    assert code == 0 and "suggested learning rate" in captured.out
    code, captured = cli(path, "--output", tmp_path / "lr", "--quiet")  # already written: not overwritten
    assert code == 2 and "not empty" in captured.err
    code, captured = cli(path, "--output", path / "lr", "--quiet")  # inside a file: a traceback after the test
    assert code == 2 and "is a file, so no folder can be made inside it" in " ".join(captured.err.split())
    code, captured = cli(path, "--start-lr", "1", "--end-lr", "0.1", "--quiet")
    assert code == 2 and "start-lr < end-lr" in captured.err
    with pytest.raises(TuneforgeError, match="Did you mean"):
        tuneforge.lr_find(path, ["train.learnig_rate=1"], output_dir=tmp_path / "x", progress=False)


def test_lr_find_refuses_a_token_classification_config(tmp_path, monkeypatch, capsys):
    """It said the tagged data had no "text" and "label" fields, as if the data were wrong."""
    import yaml

    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parents[1] / "tasks"))
    from tiny_ner import tiny_ner_config

    path = tmp_path / "ner.yaml"
    path.write_text(yaml.safe_dump(tiny_ner_config(tmp_path)))
    monkeypatch.setattr(sys, "argv", ["tuneforge", "lr-find", str(path), "--output", str(tmp_path / "lr"), "--quiet"])
    with pytest.raises(SystemExit) as info:
        main()
    err = " ".join(capsys.readouterr().err.split())
    assert info.value.code == 2 and "Traceback" not in err
    assert "task: token-classification; tuneforge lr-find works on text classification only" in err
    assert not (tmp_path / "lr").exists()


def test_lr_find_applies_augment_and_refuses_sections_it_cannot(make_tiny_config, tmp_path):
    """augment:, prompt: and contrastive: were silently ignored: the test ran on other data or another model."""
    cfg = make_tiny_config(tmp_path / "run") | {"augment": {"copies": 1, "back_translate": "no_such_module:f"}}
    with pytest.raises(TuneforgeError, match='cannot import the module "no_such_module"'):
        tuneforge.lr_find(cfg, steps=5, output_dir=tmp_path / "lr", progress=False)
    cfg = make_tiny_config(tmp_path / "run") | {"prompt": {"template": "{text} It was {answer}.",
                                                           "verbalizer": {"negative": "bad", "neutral": "ok",
                                                                          "positive": "good"}}}
    with pytest.raises(TuneforgeError, match="tuneforge lr-find does not apply the config's prompt: section"):
        tuneforge.lr_find(cfg, steps=5, output_dir=tmp_path / "lr", progress=False)
    assert not (tmp_path / "lr").exists()
