"""train.gradient_checkpointing: the same gradients (dropout included) for less activation memory."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import tuneforge
from tuneforge.data import read_examples
from tuneforge.errors import TuneforgeError
from tuneforge.methods import build_method, registry
from tuneforge.models.backbones import load_backbone
from tuneforge.training.batching import collate, encode
from tuneforge.training.fast_dropout import use_fast_dropout
from tuneforge.training.grad_checkpointing import enable_gradient_checkpointing, transformers_model

LABELS = ["negative", "neutral", "positive"]


def gradients(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    torch.manual_seed(7)  # the same dropout masks in both runs (checkpointing replays the RNG state)
    model(**batch).loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("method", ["full", "lora"])
def test_gradients_with_checkpointing_equal_without(tiny_bert, tiny_data, method):
    torch.manual_seed(0)
    backbone = load_backbone(str(tiny_bert), LABELS)
    model = build_method(registry()[method].config()).apply(backbone)
    use_fast_dropout(model)  # dropout on (0.1): the recomputed forward must draw the same masks
    model.train()
    examples = read_examples(tiny_data["train"])[:8]
    batch = collate(encode(examples, backbone.tokenizer, LABELS, max_length=32), list(range(8)),
                    backbone.tokenizer.pad_token_id)
    layers = [m for m in transformers_model(model).modules() if hasattr(m, "gradient_checkpointing")]

    plain = gradients(model, batch)
    disable = enable_gradient_checkpointing(model)
    assert layers and all(m.gradient_checkpointing for m in layers)
    checkpointed = gradients(model, batch)
    disable()
    assert not any(m.gradient_checkpointing for m in layers)

    assert plain.keys() == checkpointed.keys() and len(plain) > 0
    for name in plain:
        torch.testing.assert_close(checkpointed[name], plain[name], rtol=1e-5, atol=1e-7, msg=name)
    assert any(p.abs().sum() > 0 for p in plain.values())


def test_training_with_checkpointing_reaches_the_same_weights(tiny_config, tmp_path):
    tiny_config["train"]["epochs"] = 1
    plain = tuneforge.train(tiny_config, progress=False)
    tiny_config["output_dir"] = str(tmp_path / "checkpointed")
    checkpointed = tuneforge.train(tiny_config, ["train.gradient_checkpointing=true"], progress=False)
    a = load_file(str(next((Path(plain.dir) / "model").glob("*.safetensors"))))
    b = load_file(str(next((Path(checkpointed.dir) / "model").glob("*.safetensors"))))
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-4, atol=1e-6, msg=name)


def test_a_model_without_checkpointing_support_is_refused_in_the_users_words(tiny_bert, monkeypatch):
    torch.manual_seed(0)
    model = load_backbone(str(tiny_bert), LABELS).model
    monkeypatch.setattr(type(model), "supports_gradient_checkpointing", False)
    with pytest.raises(TuneforgeError, match=r"train.gradient_checkpointing: the model \(BertForSequenceClassif"
                                             r"ication\) does not support.*gradient_checkpointing=false"):
        enable_gradient_checkpointing(model)
