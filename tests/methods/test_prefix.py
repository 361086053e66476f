"""Prefix tuning: the attention wrapper and its masks, what trains, disabling, saving, padding, positions,
the training attention and bf16, on the tiny BERT and the tiny Llama (grouped-query attention)."""

from __future__ import annotations

import json

import pytest
import torch
from pydantic import ValidationError
from safetensors.torch import load_file
from test_methods import LABELS, N_LAYERS, make, train_steps
from tiny_llama import LLAMA_LAYERS, build_tiny_llama, llama_backbone, llama_batch
from torch import nn

import tuneforge
from tuneforge.data import read_examples
from tuneforge.errors import TuneforgeError
from tuneforge.methods import registry
from tuneforge.methods.prefix.layers import SLOT, PrefixEncoder, PrefixSlot, prefix_attention
from tuneforge.models.attention import restore_attention, use_training_attention
from tuneforge.models.backbones import Backbone, load_backbone
from tuneforge.training.batching import collate, encode

PROJECTION = [pytest.param({}, id="table"), pytest.param({"projection": True, "projection_hidden_size": 16},
                                                         id="projection")]


def logits(model: nn.Module, batch: dict) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(**{k: v for k, v in batch.items() if k != "labels"}).logits


@pytest.fixture(scope="module")
def bert_data(tiny_bert, tiny_data):
    tokenizer = load_backbone(str(tiny_bert), LABELS).tokenizer
    return encode(read_examples(tiny_data["train"])[:8], tokenizer, LABELS, max_length=32), tokenizer.pad_token_id


@pytest.fixture(scope="module")
def bert_batch(bert_data) -> dict[str, torch.Tensor]:
    data, pad_id = bert_data
    batch = collate(data, list(range(len(data))), pad_id)
    assert batch["attention_mask"].min() == 0  # some padding
    return batch


def bert(tiny_bert) -> Backbone:
    torch.manual_seed(0)  # the same head initialisation every time
    return load_backbone(str(tiny_bert), LABELS)


def backbone_and_batch(arch: str, tiny_bert, bert_batch) -> tuple:
    if arch == "bert":
        return (lambda: bert(tiny_bert)), bert_batch
    return llama_backbone, llama_batch()


def prefix_names(model: nn.Module) -> set[str]:
    return {n for n, _ in model.named_parameters() if n.startswith("prefix_encoder.")}


def head_names(arch: str, model: nn.Module) -> set[str]:
    if arch == "llama":
        return {"score.weight"}
    return {n for n, _ in model.named_parameters() if n.startswith(("classifier.", "bert.pooler."))}


# --- config ---------------------------------------------------------------------------------------------------

def test_config_defaults_and_mistakes():
    config = registry()["prefix"].config
    assert config().model_dump() == {"name": "prefix", "num_virtual_tokens": 20, "init": "vocab", "projection": False,
                                     "projection_hidden_size": 512, "dropout": 0.0}
    with pytest.raises(ValidationError, match="num_virtual_tokens"):
        config(num_virtual_tokens=0)
    with pytest.raises(ValidationError, match="extra"):
        config(num_tokens=10)
    with pytest.raises(ValidationError, match="projection_hidden_size = 256 has no effect without projection"):
        config(projection_hidden_size=256)
    assert config(projection=True, projection_hidden_size=256).projection_hidden_size == 256


# --- the attention wrapper ------------------------------------------------------------------------------------

class _Attention(nn.Module):
    """Stands in for a model's attention module: what the SDPA function reads from it."""

    def __init__(self, causal: bool, groups: int) -> None:
        super().__init__()
        self.is_causal = causal
        self.num_key_value_groups = groups


@pytest.mark.parametrize("mask_kind, causal, groups", [("bool", False, 1), ("float", False, 1), ("none", False, 1),
                                                       ("none", True, 2), ("bool", True, 2)])
def test_wrapper_is_attention_over_prefix_and_own_keys(mask_kind, causal, groups):
    """softmax(Q [K_p; K]^T s + [0; M]) [V_p; V], computed by hand, with every query seeing all p prefix keys."""
    torch.manual_seed(0)
    b, heads, t, d, p = 2, 4, 5, 8, 3
    kv_heads = heads // groups
    q, k, v = torch.randn(b, heads, t, d), torch.randn(b, kv_heads, t, d), torch.randn(b, kv_heads, t, d)
    keep = torch.ones(b, 1, t, t, dtype=torch.bool)
    if causal:
        keep = keep & torch.ones(t, t, dtype=torch.bool).tril()
    keep[0, :, :, -2:] = False  # padding at the end of the first sequence: its last queries see only the prefix
    if causal:
        keep[1, :, :, :2] = False  # left padding in the second: its first queries see nothing of their own
    mask = {"bool": keep, "float": torch.zeros(b, 1, t, t).masked_fill(~keep, -1e9), "none": None}[mask_kind]
    if mask is None:
        keep = torch.ones(t, t, dtype=torch.bool).tril().expand(b, 1, t, t) if causal else \
            torch.ones(b, 1, t, t, dtype=torch.bool)
    encoder = PrefixEncoder(1, kv_heads, d, p, embed_dim=d, projection_hidden_size=None, dropout=0.0)
    module = _Attention(causal, groups).eval()
    setattr(module, SLOT, PrefixSlot(encoder, 0))
    out, _ = prefix_attention("sdpa")(module, q, k, v, mask, scaling=d ** -0.5)

    keys = torch.cat([encoder.table[0, 0].expand(b, -1, -1, -1), k], 2).repeat_interleave(groups, 1)
    values = torch.cat([encoder.table[0, 1].expand(b, -1, -1, -1), v], 2).repeat_interleave(groups, 1)
    scores = (q @ keys.transpose(2, 3) * d ** -0.5).masked_fill(
        ~torch.cat([torch.ones(b, 1, t, p, dtype=torch.bool), keep], -1), float("-inf"))
    expected = (scores.softmax(-1) @ values).transpose(1, 2)
    assert out.shape == (b, t, heads, d) and torch.isfinite(out).all()
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


# --- on the models ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("options", PROJECTION)
@pytest.mark.parametrize("arch", ["bert", "llama"])
def test_only_the_prefix_and_head_train_and_change(arch, options, tiny_bert, bert_batch):
    load, batch = backbone_and_batch(arch, tiny_bert, bert_batch)
    model = make("prefix", options).apply(load())
    layers = N_LAYERS if arch == "bert" else LLAMA_LAYERS
    intended = prefix_names(model) | head_names(arch, model)
    assert {n for n, p in model.named_parameters() if p.requires_grad} == intended
    if not options:  # (L, 2, key/value heads, p, head size): Llama has 2 key/value heads of 8, BERT 2 heads of 16
        assert model.prefix_encoder.table.shape == ((layers, 2, 2, 20, 16) if arch == "bert" else (layers, 2, 2, 20, 8))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    model.train()
    loss = model(**batch).loss
    loss.backward()
    assert torch.isfinite(loss)
    for n, p in model.named_parameters():
        assert (p.grad is not None and torch.isfinite(p.grad).all()) if n in intended else p.grad is None, n
    model.zero_grad(set_to_none=True)
    train_steps(model, batch)
    changed = {n for n, p in model.named_parameters() if not torch.equal(before[n], p)}
    assert changed == intended


@pytest.mark.parametrize("options", PROJECTION)
@pytest.mark.parametrize("arch", ["bert", "llama"])
def test_prefix_changes_the_output_and_disabling_gives_the_base_exactly(arch, options, tiny_bert, bert_batch):
    load, batch = backbone_and_batch(arch, tiny_bert, bert_batch)
    base = logits(load().model, batch)
    method = make("prefix", options)
    model = method.apply(load())
    assert not torch.allclose(logits(model, batch), base, atol=1e-6)  # every query attends to the prefix
    train_steps(model, batch)  # the head moves too: disabling must bring back the base model's head
    trained = logits(model, batch)
    with method.disabled(model):
        assert torch.equal(logits(model, batch), base)
    assert torch.equal(logits(model, batch), trained)  # back, bit for bit
    assert all(p.requires_grad for n, p in model.named_parameters() if n in prefix_names(model))


def test_vocab_init_is_the_model_reading_those_tokens_first():
    """On a decoder, prefix keys and values taken from p real tokens give exactly what the base model gives
    when it reads those tokens before the text, with the text's positions starting again at 0 (the prefix
    takes no positions) and the prefix keys used as computed (rotated for positions 0..p-1)."""
    method = make("prefix", {"num_virtual_tokens": 4})
    model = method.apply(llama_backbone())
    tokens = torch.tensor(method.init_token_ids)
    assert len(tokens) == 4 and 0 not in tokens.tolist()  # no padding token
    text = llama_batch()["input_ids"][1:2]  # 8 tokens, no padding
    both = torch.cat([tokens[None], text], 1)
    positions = torch.cat([torch.arange(4), torch.arange(text.shape[1])])[None]
    expected = logits(llama_backbone().model, {"input_ids": both, "position_ids": positions})
    torch.testing.assert_close(logits(model, {"input_ids": text}), expected, atol=1e-5, rtol=0)


def _one_at_a_time(model: nn.Module, batch: dict) -> torch.Tensor:
    rows = []
    for ids, mask in zip(batch["input_ids"], batch["attention_mask"]):
        keep = mask.bool()
        rows.append(logits(model, {"input_ids": ids[keep][None], "attention_mask": mask[keep][None]}))
    return torch.cat(rows)


def _left_padded(batch: dict) -> dict:
    out = {k: v.clone() for k, v in batch.items()}
    for row, n in enumerate(batch["attention_mask"].sum(1).tolist()):
        for key in ("input_ids", "attention_mask"):
            out[key][row] = batch[key][row].roll(batch[key].shape[1] - n)
    assert out["attention_mask"][:, -1].all() and not out["attention_mask"][:, 0].all()
    return out


@pytest.mark.parametrize("options", PROJECTION)
@pytest.mark.parametrize("arch, side", [("bert", "right"), ("llama", "right"), ("llama", "left")])
def test_padding_does_not_matter(arch, side, options, tiny_bert, bert_data):
    if arch == "bert":
        data, pad_id = bert_data
        model = make("prefix", options).apply(bert(tiny_bert))
        batch = collate(data, list(range(len(data))), pad_id)
    else:
        model = make("prefix", options).apply(llama_backbone())
        batch = llama_batch() if side == "right" else _left_padded(llama_batch())
    train_steps(model, batch)  # a trained prefix, not the initial one
    if arch == "bert":
        alone = torch.cat([logits(model, collate(data, [i], pad_id)) for i in range(len(data))])
    else:
        alone = _one_at_a_time(model, batch)
    torch.testing.assert_close(logits(model, batch), alone, atol=1e-5, rtol=0)


@pytest.mark.parametrize("arch", ["bert", "llama"])
def test_wraps_eager_and_sdpa_alike(arch, tiny_bert, bert_batch):
    load, batch = backbone_and_batch(arch, tiny_bert, bert_batch)
    results = {}
    for implementation in ("sdpa", "eager"):
        backbone = load()
        backbone.model.set_attn_implementation(implementation)
        torch.manual_seed(1)  # the same prefix tokens
        model = make("prefix", {}).apply(backbone)
        assert model.config._attn_implementation == f"tuneforge_prefix+{implementation}"
        results[implementation] = logits(model, batch)
    torch.testing.assert_close(results["eager"], results["sdpa"], atol=1e-5, rtol=0)


@pytest.mark.parametrize("arch", ["bert", "llama"])
def test_training_attention_composes_with_the_prefix(arch, tiny_bert, bert_batch):
    """The recipe switches to tuneforge_sdpa before apply and back to sdpa before saving."""
    load, batch = backbone_and_batch(arch, tiny_bert, bert_batch)
    backbone = load()
    if arch == "llama":
        backbone.model.config.attention_dropout = 0.1  # so the explicit dropout path runs in training
    assert use_training_attention(backbone.model)
    method = make("prefix", {})
    model = method.apply(backbone)
    assert model.config._attn_implementation == "tuneforge_prefix+tuneforge_sdpa"
    model.train()
    loss = model(**batch).loss
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(model.prefix_encoder.table.grad).all()
    fast = logits(model, batch)
    restore_attention(model)
    assert model.config._attn_implementation == "tuneforge_prefix+sdpa"
    torch.testing.assert_close(logits(model, batch), fast, atol=1e-6, rtol=0)
    with method.disabled(model):
        assert not torch.allclose(logits(model, batch), fast, atol=1e-6)  # the prefix was still on
    assert use_training_attention(model)  # after apply too: the inner part switches, the prefix stays
    assert model.config._attn_implementation == "tuneforge_prefix+tuneforge_sdpa"
    torch.testing.assert_close(logits(model, batch), fast, atol=1e-6, rtol=0)


@pytest.mark.parametrize("arch", ["bert", "llama"])
def test_bf16_autocast_like_the_recipe(arch, tiny_bert, bert_batch):
    load, batch = backbone_and_batch(arch, tiny_bert, bert_batch)
    model = make("prefix", {"projection": True, "projection_hidden_size": 16, "dropout": 0.1}).apply(load())
    for param in model.parameters():  # what train() does for methods that do not save the base
        if not param.requires_grad:
            param.data = param.data.to(torch.bfloat16)
    model.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model(**batch).loss
    loss.backward()
    assert torch.isfinite(loss)
    for n, p in model.named_parameters():
        if p.requires_grad:
            assert p.dtype == torch.float32 and torch.isfinite(p.grad).all(), n
    model.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.isfinite(model(**{k: v for k, v in batch.items() if k != "labels"}).logits).all()


def test_dropout_only_while_training(tiny_bert, bert_batch):
    torch.manual_seed(2)
    plain = make("prefix", {}).apply(bert(tiny_bert))
    torch.manual_seed(2)
    dropped = make("prefix", {"dropout": 0.5}).apply(bert(tiny_bert))
    assert torch.equal(plain.prefix_encoder.table, dropped.prefix_encoder.table)
    assert torch.equal(logits(dropped, bert_batch), logits(plain, bert_batch))
    dropped.train()
    inputs = {k: v for k, v in bert_batch.items() if k != "labels"}
    dropped.bert.embeddings.dropout.p = 0.0  # only the prefix dropout is random now
    for layer in dropped.bert.encoder.layer:
        layer.attention.self.dropout.p = layer.attention.output.dropout.p = layer.output.dropout.p = 0.0
    dropped.config.attention_probs_dropout_prob = 0.0
    first, second = dropped(**inputs).logits, dropped(**inputs).logits
    assert not torch.equal(first, second)


# --- saving and loading ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("options", PROJECTION)
@pytest.mark.parametrize("arch", ["bert", "llama"])
def test_save_then_load_gives_identical_logits(arch, options, tiny_bert, bert_batch, tmp_path):
    load, batch = backbone_and_batch(arch, tiny_bert, bert_batch)
    method = make("prefix", options)
    model = method.apply(load())
    train_steps(model, batch)
    expected = logits(model, batch)
    method.save(model, tmp_path)

    assert sorted(p.name for p in tmp_path.iterdir()) == ["prefix_config.json", "prefix_model.safetensors"]
    weights = load_file(str(tmp_path / "prefix_model.safetensors"))
    layers, kv_heads, head_dim = (N_LAYERS, 2, 16) if arch == "bert" else (LLAMA_LAYERS, 2, 8)
    assert set(weights) == {"prefix_encoder.table"} | head_names(arch, model)  # nothing of the frozen base
    assert weights["prefix_encoder.table"].shape == (layers, 2, kv_heads, 20, head_dim)  # the MLP's output
    info = json.loads((tmp_path / "prefix_config.json").read_text(encoding="utf-8"))
    assert info["config"] == make("prefix", options).config.model_dump()
    assert (info["num_layers"], info["key_value_heads"], info["head_dim"]) == (layers, kv_heads, head_dim)
    assert len(info["attention_modules"]) == layers and info["init_token_ids"] == method.init_token_ids

    torch.manual_seed(123)  # a fresh head initialisation must not leak into the loaded model
    loaded_method = make("prefix", options)
    loaded = loaded_method.load(tmp_path, load)
    torch.testing.assert_close(logits(loaded, batch), expected, atol=1e-6, rtol=0)
    assert not any(p.requires_grad for p in loaded.parameters())
    with loaded_method.disabled(loaded):  # the loaded model can be switched off too
        torch.manual_seed(123)
        assert torch.equal(logits(loaded, batch), logits(load().model, batch))


def test_load_refuses_a_different_base(tiny_bert, bert_batch, tmp_path):
    from transformers import BertConfig, BertForSequenceClassification

    method = make("prefix", {})
    method.save(method.apply(bert(tiny_bert)), tmp_path)
    deeper = BertForSequenceClassification(BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=3,
                                                      num_attention_heads=2, intermediate_size=64, num_labels=3))
    with pytest.raises(TuneforgeError, match=r"saved for a model with 2 attention layers.*has 3 layers"):
        make("prefix", {}).load(tmp_path, lambda: Backbone(model=deeper, tokenizer=None, path=""))
    with pytest.raises(TuneforgeError, match="is not a prefix folder"):
        make("prefix", {}).load(tmp_path / "nowhere", lambda: bert(tiny_bert))


# --- what it refuses ---------------------------------------------------------------------------------------------

def test_unknown_architecture_names_the_model():
    from transformers import GPT2Config, GPT2ForSequenceClassification

    model = GPT2ForSequenceClassification(GPT2Config(n_embd=32, n_layer=2, n_head=2, vocab_size=64, num_labels=3))
    with pytest.raises(TuneforgeError, match=r"no attention layers in GPT2ForSequenceClassification \(model type "
                                             r"'gpt2'\).*Use method lora or ia3"):
        make("prefix", {}).apply(Backbone(model=model, tokenizer=None, path=""))


def test_refuses_attention_it_cannot_extend_and_a_second_prefix(tiny_bert):
    backbone = bert(tiny_bert)
    backbone.model.config._attn_implementation_internal = "flash_attention_2"  # masks of another format
    with pytest.raises(TuneforgeError, match="uses 'flash_attention_2'.*attn_implementation='sdpa'"):
        make("prefix", {}).apply(backbone)
    model = make("prefix", {}).apply(bert(tiny_bert))
    with pytest.raises(TuneforgeError, match="already has prefixes"):
        make("prefix", {}).apply(Backbone(model=model, tokenizer=None, path=""))


# --- end to end ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("options", [pytest.param({}, id="table"), pytest.param({"projection": True}, id="projection")])
def test_trains_end_to_end_and_the_run_reloads(options, tiny_config):
    tiny_config["method"] = {"name": "prefix", **options}
    tiny_config["train"].update(epochs=1, learning_rate=1e-2)
    run = tuneforge.train(tiny_config, progress=False)
    assert 0 < run.metrics["trainable_parameters"] < run.metrics["total_parameters"]
    assert (run.dir / "model" / "prefix_config.json").exists()
    assert (run.dir / "model" / "prefix_model.safetensors").exists()

    loaded = tuneforge.load(run.dir)
    again = loaded.evaluate(read_examples(tiny_config["data"]["test"]))
    assert again["accuracy"] == pytest.approx(run.metrics["test.accuracy"], abs=1e-9)
    assert again["loss"] == pytest.approx(run.metrics["test.loss"], abs=1e-5)


def test_build_tiny_llama_has_grouped_query_attention():
    config = build_tiny_llama().config  # the decoder tests above exercise grouped-query attention
    assert config.num_key_value_heads < config.num_attention_heads


def test_a_prefix_run_shares_its_backbone_with_other_runs(make_tiny_config, tiny_data, tmp_path):
    """``tuneforge.load([...])`` deep-copies the module tree per run: each copy has its own prefix, attention
    slots and implementation name, and a run without a prefix on the same backbone is untouched."""
    import numpy as np

    paths = []
    for method in ("prefix", "adapter"):
        cfg = make_tiny_config(tmp_path / method)
        cfg["method"] = {"name": method}
        cfg["train"].update(epochs=1, learning_rate=1e-2)
        paths.append(tuneforge.train(cfg, progress=False).dir)
    texts = [e.text for e in read_examples(tiny_data["test"])][:10]
    together = tuneforge.load(paths, precision="fp32")
    for name, path in [*zip(together.names, paths), *reversed(list(zip(together.names, paths)))]:
        alone = tuneforge.load(path, precision="fp32").predict_proba(texts)
        np.testing.assert_allclose(together.predict_proba(texts, adapter=name), alone, atol=1e-6, rtol=0)
