"""(IA)^3, prompt tuning and P-tuning through peft: decoders, virtual tokens with the recipe's batches,
prompt initialisation, and each method end to end through ``tuneforge.train``."""

from __future__ import annotations

import pytest
import torch
from test_methods import LABELS, make, train_steps
from tiny_llama import llama_backbone, llama_batch

import tuneforge
from tuneforge.data import read_examples
from tuneforge.data.records import Example
from tuneforge.models.backbones import load_backbone
from tuneforge.training.batching import collate, encode

NEW_METHODS = ["adapter", "ia3", "prompt", "ptuning"]


def logits(model: torch.nn.Module, batch: dict) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(**{k: v for k, v in batch.items() if k != "labels"}).logits


def test_ia3_on_llama_trains_only_its_vectors_and_the_head(tmp_path):
    method = make("ia3", {})
    model = method.apply(llama_backbone())
    batch = llama_batch()
    torch.testing.assert_close(logits(model, batch), logits(llama_backbone().model, batch), atol=1e-6, rtol=0)
    intended = {n for n, _ in model.named_parameters() if ".ia3_l." in n or ".modules_to_save." in n}
    assert {n.split(".")[-3] for n in intended if ".ia3_l." in n} == {"k_proj", "v_proj", "down_proj"}
    assert {n for n, p in model.named_parameters() if p.requires_grad} == intended
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    model.train()
    loss = model(**batch).loss
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)
    model.zero_grad()
    train_steps(model, batch)
    assert {n for n, p in model.named_parameters() if not torch.equal(before[n], p)} == intended

    expected = logits(model, batch)
    method.save(model, tmp_path)
    assert (tmp_path / "adapter_model.safetensors").exists() and (tmp_path / "adapter_config.json").exists()
    loaded = make("ia3", {}).load(tmp_path, llama_backbone)
    torch.testing.assert_close(logits(loaded, batch), expected, atol=1e-6, rtol=0)


@pytest.fixture(scope="module")
def pair_data(tiny_bert, tiny_data):
    """Sentence pairs, so batches carry token_type_ids (0 for the first text, 1 for the second)."""
    tokenizer = load_backbone(str(tiny_bert), LABELS).tokenizer
    rows = read_examples(tiny_data["train"])[:6]
    examples = [Example(text=e.text, text_pair="flight " * (i + 1), label=e.label) for i, e in enumerate(rows)]
    return encode(examples, tokenizer, LABELS, max_length=32), tokenizer.pad_token_id


@pytest.mark.parametrize("name", ["prompt", "ptuning"])
def test_virtual_tokens_work_with_padded_pair_batches(name, tiny_bert, pair_data):
    """peft prepends p positions to the attention mask and token_type_ids; padding must not matter."""
    data, pad_id = pair_data
    batch = collate(data, list(range(len(data))), pad_id)
    assert "token_type_ids" in batch and batch["attention_mask"].min() == 0  # pairs, and some padding
    torch.manual_seed(0)
    model = make(name, {}).apply(load_backbone(str(tiny_bert), LABELS))
    train_steps(model, batch)  # a trained prompt, not the initial one
    together = logits(model, batch)
    alone = torch.cat([logits(model, collate(data, [i], pad_id)) for i in range(len(data))])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=0)
    model.train()
    out = model(**batch)
    out.loss.backward()
    assert torch.isfinite(out.loss) and out.logits.shape == (len(data), len(LABELS))


@pytest.mark.parametrize("init", ["vocab", "text"])
def test_prompt_starts_from_vocabulary_embeddings(init, tiny_bert):
    options = {"init": init, "num_virtual_tokens": 5} | ({"init_text": "great flight"} if init == "text" else {})
    backbone = load_backbone(str(tiny_bert), LABELS)
    vocab = backbone.model.bert.embeddings.word_embeddings.weight.detach().clone()
    model = make("prompt", options).apply(backbone)
    prompt = model.prompt_encoder["default"].embedding.weight.detach()
    assert prompt.shape == (5, 32)
    rows = [int(torch.nonzero((vocab == row).all(dim=1))[0]) for row in prompt]  # fails if a row is not a token
    if init == "text":  # [CLS] great flight [SEP], then repeated
        tokens = backbone.tokenizer("great flight")["input_ids"]
        assert rows == (tokens * 2)[:5]


def test_prompt_init_text_only_with_text_init():
    from tuneforge.methods import registry

    config = registry()["prompt"].config
    with pytest.raises(ValueError, match="init: text needs init_text"):
        config(init="text")
    with pytest.raises(ValueError, match="init_text is used only with init: text"):
        config(init_text="Classify:")


@pytest.mark.parametrize("method", NEW_METHODS)
def test_trains_end_to_end_and_the_run_reloads(method, tiny_config):
    tiny_config["method"] = {"name": method}
    tiny_config["train"].update(epochs=1, learning_rate=1e-2)
    if method in ("prompt", "ptuning"):  # sentence pairs: token_type_ids go through peft's prefix
        tiny_config["data"]["text_pair_column"] = "source"
    run = tuneforge.train(tiny_config, progress=False)
    assert 0 < run.metrics["trainable_parameters"] < run.metrics["total_parameters"]
    assert (run.dir / "model" / "adapter_config.json").exists()
    assert (run.dir / "model" / "adapter_model.safetensors").exists()

    loaded = tuneforge.load(run.dir)
    test = read_examples(tiny_config["data"]["test"], text_pair_column=tiny_config["data"].get("text_pair_column"))
    again = loaded.evaluate(test)
    assert again["accuracy"] == pytest.approx(run.metrics["test.accuracy"], abs=1e-9)
    assert again["loss"] == pytest.approx(run.metrics["test.loss"], abs=1e-5)
