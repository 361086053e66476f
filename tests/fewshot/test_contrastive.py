"""Contrastive (SetFit-style) training on a tiny BERT: it learns, the run folder reloads to the same
predictions (mean pooling installed again), with full and LoRA bodies and both heads."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import tuneforge
from tuneforge.config import TrainConfig
from tuneforge.data.files import read_examples
from tuneforge.fewshot.contrastive import set_head
from tuneforge.fewshot.pooling import use_mean_pooling

pytestmark = pytest.mark.usefixtures("one_thread")


def contrastive_config(make_tiny_config, folder, head="end_to_end", method="full") -> dict:
    cfg = make_tiny_config(folder)
    cfg["method"] = method
    cfg["contrastive"] = {"iterations": 4, "batch_size": 16, "learning_rate": 5e-3, "head": head}
    cfg["train"] |= {"epochs": 2, "learning_rate": 1e-3}
    return cfg


@pytest.fixture(scope="module")
def run(make_tiny_config, tmp_path_factory):
    return tuneforge.train(contrastive_config(make_tiny_config, tmp_path_factory.mktemp("c") / "run"))


def test_run_folder_and_learning(run):
    m = run.metrics
    assert m["train.pairs"] == 2 * 4 * 96 and m["train.contrastive_steps"] == 2 * 4 * 96 // 16
    assert m["test.accuracy"] > 0.45  # keyword data, 3 classes: chance is 1/3 (a random tiny BERT gets ~0.33)
    for name in ("config.yaml", "metrics.json", "confusion_matrix.png", "model/labels.json"):
        assert (run.dir / name).exists(), name
    assert json.loads((run.dir / "run.json").read_text())["status"] == "complete"
    log = (run.dir / "contrastive" / "log.jsonl").read_text().splitlines()
    assert any("loss" in json.loads(line) for line in log)  # the contrastive phase logs its own loss


def test_reload_gives_the_same_predictions(run, tiny_data):
    test = read_examples(tiny_data["test"])
    again = tuneforge.load(run.dir)
    assert again.evaluate(test)["accuracy"] == pytest.approx(run.metrics["test.accuracy"])
    probs = again.predict_proba(test)
    assert np.allclose(probs, run.predict_proba(test), atol=1e-6)
    # the reload matters: the same weights read through the [CLS] pooler predict differently
    plain = tuneforge.load(run.dir)
    plain.config = plain.config.model_copy(update={"contrastive": None})
    body = next(m for m in plain.model.modules() if hasattr(m, "_tuneforge_mean_pooling"))
    body.pooler._forward_hooks.clear()
    assert not np.allclose(plain.predict_proba(test), probs, atol=1e-3)


def test_predict_and_eval_from_the_cli(run, tiny_data, monkeypatch, capsys):
    import sys

    from tuneforge.cli.main import main

    monkeypatch.setattr(sys, "argv", ["tuneforge", "eval", str(run.dir), str(tiny_data["test"]),
                                      "--output", str(run.dir / "eval-test.json")])
    with pytest.raises(SystemExit) as info:
        main()
    assert (info.value.code or 0) == 0
    assert f"{run.metrics['test.accuracy']:.4f}"[:4] in capsys.readouterr().out


@pytest.mark.parametrize("head,method", [("logistic", "full"), ("end_to_end", {"name": "lora", "r": 4})])
def test_heads_and_lora_body_round_trip(make_tiny_config, tmp_path, tiny_data, head, method):
    cfg = contrastive_config(make_tiny_config, tmp_path / "run", head=head, method=method)
    cfg["contrastive"]["iterations"] = 2
    run = tuneforge.train(cfg)
    test = read_examples(tiny_data["test"])
    assert tuneforge.load(run.dir).evaluate(test)["accuracy"] == pytest.approx(run.metrics["test.accuracy"])
    if head == "logistic":
        assert not (run.dir / "log.jsonl").exists() or "head_seconds" in json.dumps(run.metrics)


def test_set_head_two_classes_is_the_logistic_regression():
    layer = torch.nn.Sequential()
    layer.classifier = torch.nn.Linear(3, 2)
    coef, intercept = np.array([[1.0, -2.0, 0.5]]), np.array([0.25])
    set_head(layer, coef, intercept, classes=np.array([0, 1]), n_labels=2)
    x = torch.tensor([[0.3, 0.1, -0.4]])
    p1 = torch.softmax(layer.classifier(x), -1)[0, 1].item()
    assert p1 == pytest.approx(torch.sigmoid(torch.tensor(x.numpy() @ coef[0] + intercept[0])).item(), abs=1e-6)


def test_mean_pooling_is_the_masked_mean(tiny_bert):
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=3).eval()
    pooling = use_mean_pooling(model, normalize=False)
    assert use_mean_pooling(model) is pooling  # installed once
    ids = torch.tensor([[2, 10, 11, 3, 0], [2, 12, 3, 0, 0]])
    mask = (ids != 0).long()
    with torch.no_grad():
        model(input_ids=ids, attention_mask=mask)
        hidden = model.bert(input_ids=ids, attention_mask=mask).last_hidden_state
    expected = torch.stack([hidden[0, :4].mean(0), hidden[1, :3].mean(0)])
    assert torch.allclose(pooling.last, expected, atol=1e-5)


def test_prompt_and_contrastive_refused_together(make_tiny_config, tmp_path):
    cfg = contrastive_config(make_tiny_config, tmp_path / "run")
    cfg["prompt"] = {"template": "{text} it was {answer}.", "verbalizer": {"negative": "bad", "positive": "good"}}
    with pytest.raises(ValueError, match="keep one of the two"):
        TrainConfig.model_validate(cfg)


def test_contrastive_with_tracking_is_refused_before_any_folder(make_tiny_config, tmp_path):
    import tuneforge
    from tuneforge.errors import TuneforgeError

    cfg = contrastive_config(make_tiny_config, tmp_path / "run")
    cfg["tracking"] = {"tensorboard": True}
    with pytest.raises(TuneforgeError, match="tracking.tensorboard=false"):
        tuneforge.train(cfg, progress=False)
    assert not (tmp_path / "run").exists()


def test_unknown_contrastive_key_names_the_closest(make_tiny_config, tmp_path):
    from tuneforge.config import load_config
    from tuneforge.errors import TuneforgeError

    cfg = contrastive_config(make_tiny_config, tmp_path / "run")
    with pytest.raises(TuneforgeError, match="iterations"):
        load_config(TrainConfig, data=cfg, overrides=["contrastive.iteration=3"])


def test_export_is_refused_with_a_clear_error(run, tmp_path, monkeypatch, capsys):
    import sys

    from tuneforge.cli.main import main

    monkeypatch.setattr(sys, "argv", ["tuneforge", "export", str(run.dir), str(tmp_path / "out")])
    with pytest.raises(SystemExit) as info:
        main()
    err = capsys.readouterr().err
    assert info.value.code == 2 and "mean-pooled" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_mean_pooling_state_is_per_thread():
    """The pooling hooks' mask and output belong to the thread whose forward pass set them (passes may run side
    by side on one model), and the state does not stop the model from being deep-copied."""
    import copy
    import threading

    import torch

    from tuneforge.fewshot.pooling import MeanPooling

    state = MeanPooling(normalize=False)
    mine = torch.ones(1, 3)
    state.mask = mine
    other = threading.Thread(target=lambda: setattr(state, "mask", torch.zeros(2, 5)))
    other.start()
    other.join()
    assert state.mask is mine
    hidden = torch.arange(6.0).view(1, 3, 2)
    assert torch.equal(state.pool(None, (hidden,), None), hidden.mean(1)) and state.last is not None
    assert copy.deepcopy(state).normalize is False  # a threading.local attribute would not deep-copy
