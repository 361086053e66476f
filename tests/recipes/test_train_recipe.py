"""The training recipe's own choices: which validation examples it evaluates on, which device it uses."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import torch

import tuneforge
import tuneforge.recipes.train as train_recipe
from tiny_fixtures import make_examples, write_jsonl


def test_max_eval_samples_takes_a_stratified_sample(tiny_config, tmp_path, monkeypatch):
    # Validation files are often one class after another (files concatenated per class); the first
    # N examples are then a single class. The schema promises a stratified sample.
    rows = sorted(make_examples(24, seed=2), key=lambda r: r["label"])
    tiny_config["data"]["validation"] = str(write_jsonl(tmp_path / "sorted-validation.jsonl", rows))
    tiny_config["data"]["max_eval_samples"] = 6
    tiny_config["train"].update(max_steps=1)
    evaluated: list[list[int]] = []
    real = train_recipe.predict_proba

    def spy(model, data, **kwargs):
        if len(data) == 6:
            evaluated.append(list(data.labels))
        return real(model, data, **kwargs)

    monkeypatch.setattr(train_recipe, "predict_proba", spy)
    tuneforge.train(tiny_config, progress=False)
    assert evaluated, "no evaluation on the 6-example validation sample"
    assert Counter(evaluated[0]) == {0: 2, 1: 2, 2: 2}, f"label ids evaluated: {evaluated[0]}"


@pytest.mark.parametrize("device", ["tpu0", "cuda:0"])
def test_unusable_device_is_a_user_error(tiny_config, device):
    if device.startswith("cuda") and torch.cuda.is_available():
        pytest.skip("a CUDA GPU is available here")
    tiny_config["train"]["device"] = device
    with pytest.raises(tuneforge.TuneforgeError, match=f'train.device = "{device}"'):
        tuneforge.train(tiny_config, progress=False)
    assert not Path(tiny_config["output_dir"]).exists()


def test_test_split_defaults_to_validation_and_the_run_says_so(tiny_config):
    del tiny_config["data"]["test"]
    tiny_config["train"]["max_steps"] = 1
    run = tuneforge.train(tiny_config, progress=False)
    info = json.loads((run.dir / "run.json").read_text(encoding="utf-8"))
    assert info["data"]["test"] == info["data"]["validation"] == 24
    assert "test = validation" in info["data"]["source"]
    assert run.metrics["test.accuracy"] == run.metrics["validation.accuracy"]
