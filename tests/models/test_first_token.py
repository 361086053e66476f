"""The first-token shortcut: the last layer's feed-forward runs on [CLS] only, with the same logits and
gradients as the full computation, under every method, and only on classifiers that read [CLS] alone."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "methods"))
from test_methods import LABELS, batch, logits, make  # noqa: E402,F401  (batch is a fixture)
from tiny_llama import llama_backbone  # noqa: E402

from tuneforge.models.backbones import load_backbone  # noqa: E402
from tuneforge.models.first_token import remove_first_token_shortcut, use_first_token_shortcut  # noqa: E402


@pytest.fixture(scope="module")
def bert_no_dropout(tiny_bert, tmp_path_factory) -> Path:
    """The tiny BERT without dropout, so train-mode forward passes are comparable."""
    folder = tmp_path_factory.mktemp("bert-no-dropout")
    shutil.copytree(tiny_bert, folder, dirs_exist_ok=True)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return folder


@pytest.mark.parametrize("method", ["full", "lora", "adapter", "ia3", "prompt", "prefix"])
def test_same_logits_and_gradients_with_the_shortcut(method, bert_no_dropout, batch):  # noqa: F811
    torch.manual_seed(0)
    model = make(method, {}).apply(load_backbone(str(bert_no_dropout), LABELS))
    model.train()
    torch.manual_seed(1)
    loss = model(**batch).loss
    loss.backward()
    expected = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    reference = logits(model, batch)

    assert use_first_token_shortcut(model)
    widths = []
    layer = [m for n, m in model.named_modules() if n.endswith("encoder.layer.1.intermediate")][0]
    handle = layer.register_forward_hook(lambda mod, args, out: widths.append(args[0].shape[1]))
    torch.testing.assert_close(logits(model, batch), reference, atol=1e-6, rtol=0)
    model.train()
    torch.manual_seed(1)
    shortcut_loss = model(**batch).loss
    shortcut_loss.backward()
    handle.remove()
    assert widths == [1, 1], "the last feed-forward block ran on the first position only"
    torch.testing.assert_close(shortcut_loss, loss, atol=1e-6, rtol=0)
    for name, grad in expected.items():
        torch.testing.assert_close(dict(model.named_parameters())[name].grad, grad, atol=1e-6, rtol=1e-5)

    remove_first_token_shortcut(model)
    widths.clear()
    model(**batch)
    assert use_first_token_shortcut(model) and use_first_token_shortcut(model)  # idempotent


def test_not_for_models_whose_head_reads_other_positions():
    model = llama_backbone().model  # the last real token, not the first
    assert use_first_token_shortcut(model) is False
    assert not any(hook for m in model.modules() for hook in m._forward_pre_hooks.values())


def test_runs_train_and_load_with_it_and_without(tiny_config, bert_no_dropout):
    import tuneforge

    tiny_config["model"] = str(bert_no_dropout)  # no dropout: both runs see the same randomness
    tiny_config["train"]["epochs"] = 1
    on = tuneforge.train(tiny_config, progress=False)
    tiny_config["train"]["first_token_shortcut"] = False
    tiny_config["output_dir"] = str(Path(tiny_config["output_dir"]).parent / "off")
    off = tuneforge.train(tiny_config, progress=False)
    assert on.metrics["test.accuracy"] == off.metrics["test.accuracy"]
    assert on.metrics["test.loss"] == pytest.approx(off.metrics["test.loss"], abs=1e-5)
