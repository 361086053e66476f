"""Precision: ``auto`` follows the hardware; fp32 and bf16 both train; LoRA holds its frozen base in bf16."""

from __future__ import annotations

import json
import math

import pytest
import torch

import tuneforge
import tuneforge.recipes.train as train_recipe
from tuneforge.models import precision


@pytest.mark.parametrize(("fast", "expected"), [(True, "bf16"), (False, "fp32")])
def test_auto_follows_bf16_is_fast(monkeypatch, fast, expected):
    seen = []

    def fake(device="cpu"):
        seen.append(torch.device(device).type)
        return fast

    monkeypatch.setattr(precision, "bf16_is_fast", fake)
    assert precision.resolve_precision("auto", "cpu") == expected
    assert seen == ["cpu"]


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("setting", ["fp32", "bf16"])
def test_explicit_precision_is_honoured(monkeypatch, fast, setting):
    monkeypatch.setattr(precision, "bf16_is_fast", lambda device="cpu": fast)
    assert precision.resolve_precision(setting) == setting


def test_unknown_precision():
    with pytest.raises(ValueError, match="fp16"):
        precision.resolve_precision("fp16")


def train_losses(run_dir) -> list[float]:
    lines = (run_dir / "log.jsonl").read_text(encoding="utf-8").splitlines()
    return [r["loss"] for r in map(json.loads, lines) if r["type"] == "train"]


@pytest.mark.parametrize("setting", ["fp32", "bf16"])
def test_training_runs_end_to_end(tiny_config, setting):
    tiny_config["train"].update(precision=setting, epochs=1)
    run = tuneforge.train(tiny_config, progress=False)
    assert run.metrics["train.precision"] == setting
    losses = train_losses(run.dir)
    assert losses and all(math.isfinite(x) for x in losses)
    assert math.isfinite(run.metrics["test.loss"]) and math.isfinite(run.metrics["validation.loss"])
    scores = run.predict(["great flight"])[0]["scores"]
    assert sum(scores.values()) == pytest.approx(1.0, abs=1e-4)


def test_lora_bf16_holds_the_frozen_base_in_bf16_and_the_run_loads(tiny_config, monkeypatch):
    tiny_config["method"] = {"name": "lora"}
    tiny_config["train"].update(precision="bf16", epochs=1)
    dtypes: dict[str, set[torch.dtype]] = {}
    real_fit = train_recipe.fit

    def spy_fit(model, *args, **kwargs):
        for trainable in (True, False):
            dtypes[f"trainable={trainable}"] = {p.dtype for p in model.parameters() if p.requires_grad is trainable}
        return real_fit(model, *args, **kwargs)

    monkeypatch.setattr(train_recipe, "fit", spy_fit)
    run = tuneforge.train(tiny_config, progress=False)
    assert dtypes == {"trainable=True": {torch.float32}, "trainable=False": {torch.bfloat16}}
    assert all(math.isfinite(x) for x in train_losses(run.dir))

    loaded = tuneforge.load(run.dir, precision="fp32")
    assert {p.dtype for p in loaded.model.parameters()} == {torch.float32}
    predictions = loaded.predict(["the flight was late again", "great crew thanks"])
    for p in predictions:
        assert p["label"] in loaded.labels
        assert all(math.isfinite(v) for v in p["scores"].values())
        assert sum(p["scores"].values()) == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("method", ["full", "lora"])
def test_bf16_prediction_uses_a_bf16_copy_and_keeps_the_fp32_model(make_tiny_config, tmp_path, method):
    cfg = make_tiny_config(tmp_path / "run")
    cfg["method"] = {"name": method}
    cfg["train"].update(max_steps=4, learning_rate=1e-2, precision="fp32")
    run_dir = tuneforge.train(cfg, progress=False).dir
    texts = ["good service", "the flight was late and the crew was rude", "ok", "thanks a lot for the help"]
    fp32 = tuneforge.load(run_dir, precision="fp32")
    bf16 = tuneforge.load(run_dir, precision="bf16")
    expected = fp32.predict_proba(texts)
    got = bf16.predict_proba(texts)
    model, used = bf16._inference_model()
    assert used == "fp32"  # no autocast: the copy's weights are bf16 already
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in bf16.model.parameters()} == {torch.float32}  # export and merge read this one
    assert fp32._inference_model() == (fp32.model, "fp32")
    assert got.shape == expected.shape and abs(got - expected).max() < 0.05
    assert bf16._inference_model()[0] is model  # built once


def test_training_works_with_gradients_switched_off_by_the_caller(tiny_config):
    # A script that set torch.set_grad_enabled(False) for its inference part (bench/infer_vs_hf.py did)
    # must still train: fit() turns gradients on for itself and leaves the caller's setting as it was.
    tiny_config["train"].update(epochs=1)
    with torch.no_grad():
        run = tuneforge.train(tiny_config, progress=False)
        assert not torch.is_grad_enabled()
    losses = train_losses(run.dir)
    assert losses and all(math.isfinite(x) for x in losses)
