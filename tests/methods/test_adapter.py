"""Bottleneck adapters: placement, identity at start, exact disabling, the saved folder, decoders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_methods import LABELS, N_LAYERS, make, train_steps
from tiny_llama import LLAMA_LAYERS, llama_backbone, llama_batch

from tuneforge.data import read_examples
from tuneforge.errors import TuneforgeError
from tuneforge.methods.adapter import adapters_disabled, set_adapters_enabled
from tuneforge.methods.adapter.layers import AdaptedLinear, adapter_modules
from tuneforge.models.backbones import Backbone, load_backbone
from tuneforge.training.batching import collate, encode


@pytest.fixture(scope="module")
def inputs(tiny_bert, tiny_data) -> dict[str, torch.Tensor]:
    tokenizer = load_backbone(str(tiny_bert), LABELS).tokenizer
    examples = read_examples(tiny_data["train"])[:8]
    batch = collate(encode(examples, tokenizer, LABELS, max_length=32), list(range(8)), tokenizer.pad_token_id)
    return batch


def logits(model: torch.nn.Module, batch: dict) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(**{k: v for k, v in batch.items() if k != "labels"}).logits


def bert(tiny_bert) -> Backbone:
    torch.manual_seed(0)  # the same head initialisation every time
    return load_backbone(str(tiny_bert), LABELS)


@pytest.mark.parametrize("placement, per_layer, names", [
    ("houlsby", 2, {"attention.output.dense", "output.dense"}),
    ("pfeiffer", 1, {"output.dense"}),
])
def test_placement_puts_adapters_after_the_output_projections(tiny_bert, placement, per_layer, names):
    model = make("adapter", {"placement": placement}).apply(bert(tiny_bert))
    found = [name for name, _ in adapter_modules(model)]
    assert len(found) == per_layer * N_LAYERS
    for i in range(N_LAYERS):
        assert {n.removeprefix(f"bert.encoder.layer.{i}.") for n in found if f".layer.{i}." in n} == names
    bottleneck = model.get_submodule(found[0]).adapter
    assert (bottleneck.down.in_features, bottleneck.down.out_features) == (32, 32 // 16)


@pytest.mark.parametrize("placement", ["houlsby", "pfeiffer"])
def test_adapters_start_as_the_identity(tiny_bert, inputs, placement):
    expected = logits(bert(tiny_bert).model, inputs)
    model = make("adapter", {"placement": placement, "non_linearity": "gelu"}).apply(bert(tiny_bert))
    assert torch.equal(logits(model, inputs), expected)  # W_up = 0, b_up = 0: exactly h + 0


def test_disabling_gives_the_backbone_exactly(tiny_bert, inputs):
    expected = logits(bert(tiny_bert).model, inputs)
    model = make("adapter", {"placement": "houlsby"}).apply(bert(tiny_bert))
    with torch.no_grad():  # adapters that are far from the identity
        for _, module in adapter_modules(model):
            module.adapter.up.weight.normal_(0, 1.0)
    adapted = logits(model, inputs)
    assert not torch.allclose(adapted, expected)
    with adapters_disabled(model):
        assert torch.equal(logits(model, inputs), expected)
    assert torch.equal(logits(model, inputs), adapted)  # back on after the block
    assert set_adapters_enabled(model, False) == 2 * N_LAYERS
    assert torch.equal(logits(model, inputs), expected)
    set_adapters_enabled(model, True)
    assert torch.equal(logits(model, inputs), adapted)


def test_saved_folder_is_safetensors_and_json(tiny_bert, inputs, tmp_path):
    method = make("adapter", {"reduction_factor": 8})
    model = method.apply(bert(tiny_bert))
    method.save(model, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]
    weights = load_file(str(tmp_path / "adapter_model.safetensors"))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert set(weights) == trainable  # adapters and head, nothing of the frozen base
    assert weights["bert.encoder.layer.0.output.dense.adapter.down.weight"].shape == (32 // 8, 32)
    info = json.loads((tmp_path / "adapter_config.json").read_text(encoding="utf-8"))
    assert info["config"] == {"name": "adapter", "placement": "pfeiffer", "reduction_factor": 8,
                              "non_linearity": "relu"}
    assert Path(info["base_model_name_or_path"]).resolve() == tiny_bert.resolve()
    assert info["adapted_modules"] == [f"bert.encoder.layer.{i}.output.dense" for i in range(N_LAYERS)]


def test_load_refuses_weights_that_do_not_fit(tiny_bert, tmp_path):
    method = make("adapter", {})
    method.save(method.apply(bert(tiny_bert)), tmp_path)
    info = json.loads((tmp_path / "adapter_config.json").read_text(encoding="utf-8"))
    info["config"]["placement"] = "houlsby"
    (tmp_path / "adapter_config.json").write_text(json.dumps(info), encoding="utf-8")
    with pytest.raises(TuneforgeError, match="was saved for adapters on"):
        make("adapter", {}).load(tmp_path, lambda: bert(tiny_bert))


def test_unknown_architecture_names_the_model():
    from transformers import GPT2Config, GPT2ForSequenceClassification

    model = GPT2ForSequenceClassification(GPT2Config(n_embd=32, n_layer=2, n_head=2, vocab_size=64, num_labels=3))
    with pytest.raises(TuneforgeError, match=r"GPT2ForSequenceClassification \(model type 'gpt2'\)"):
        make("adapter", {}).apply(Backbone(model=model, tokenizer=None, path=""))


def test_bottleneck_must_not_be_empty(tiny_bert):
    with pytest.raises(TuneforgeError, match=r"reduction_factor = 64 is larger than the hidden size 32"):
        make("adapter", {"reduction_factor": 64}).apply(bert(tiny_bert))


@pytest.mark.parametrize("placement, names", [
    ("houlsby", {"self_attn.o_proj", "mlp.down_proj"}),
    ("pfeiffer", {"mlp.down_proj"}),
])
def test_llama_adapters_train_only_adapters_and_head_and_round_trip(placement, names, tmp_path):
    method = make("adapter", {"placement": placement})
    model = method.apply(llama_backbone())
    found = [n for n, _ in adapter_modules(model)]
    assert {n.split(".", 3)[3] for n in found} == names and len(found) == len(names) * LLAMA_LAYERS
    assert all(isinstance(model.get_submodule(n), AdaptedLinear) for n in found)
    batch = llama_batch()
    assert torch.equal(logits(model, batch), logits(llama_backbone().model, batch))  # identity at start

    intended = {n for n, _ in model.named_parameters() if ".adapter." in n or n == "score.weight"}
    assert {n for n, p in model.named_parameters() if p.requires_grad} == intended
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    model.train()
    loss = model(**batch).loss
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)
    model.zero_grad()
    train_steps(model, batch)
    changed = {n for n, p in model.named_parameters() if not torch.equal(before[n], p)}
    assert changed == intended

    expected = logits(model, batch)
    method.save(model, tmp_path)
    loaded = make("adapter", {"placement": placement}).load(tmp_path, llama_backbone)
    torch.testing.assert_close(logits(loaded, batch), expected, atol=1e-6, rtol=0)
