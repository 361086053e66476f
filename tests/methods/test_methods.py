"""The method contract: every registered method, on a tiny random BERT and a tiny random Llama, through the
same checks. A newly registered method is tested here with no test code of its own.

For each method and backbone:
- forward and backward are finite, and only trainable parameters get gradients;
- after two AdamW steps exactly the trainable parameters changed; of the base model's own weights only
  the head changed (methods that train base weights in place, full/freeze/bitfit, declare which below);
- save then load gives identical logits;
- methods that merge: the merged model is a plain transformers model whose logits equal the unmerged
  ones within 1e-4, and it saves and loads with transformers alone;
- methods that can be switched off: inside ``disabled()`` the logits are exactly those of the base
  model before ``apply`` (its original head included), and afterwards those of the trained model.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
import torch
from tiny_llama import llama_backbone, llama_batch

from tuneforge.data import read_examples
from tuneforge.errors import TuneforgeError
from tuneforge.methods import build_method, registry
from tuneforge.methods.params import count_parameters
from tuneforge.models.backbones import Backbone, load_backbone
from tuneforge.training.batching import collate, encode

LABELS = ["negative", "neutral", "positive"]
N_LAYERS = 2  # transformer layers of both tiny models
PLANNED_STEPS = 10  # what the contract tells plan() (AdaLoRA's budget schedule needs a number)


def _head(name: str) -> bool:
    """The task head of a plain HF classifier: classifier/score and the pooler feeding it."""
    return name.startswith(("classifier.", "score.")) or ".pooler." in name


def _top_layers(name: str, k: int) -> bool:
    found = re.match(r"(?:bert\.encoder\.layer|model\.layers)\.(\d+)\.", name)
    return found is not None and int(found.group(1)) >= N_LAYERS - k


# Methods that train the base model's own weights in place: which of them (by base parameter name), beyond
# the head. Every other method may change no base weight but the head's.
TRAINS_BASE_WEIGHTS: dict[str, Callable[[str, object], bool]] = {
    "full": lambda name, cfg: True,
    "freeze": lambda name, cfg: _top_layers(name, cfg.layers),
    "bitfit": lambda name, cfg: name.endswith(".bias"),
}
# The methods the issue names as merging into the base weights (full and freeze are plain models already).
MERGING = {"lora", "adalora", "ia3", "bitfit"}

# Registered methods with their default options, plus other options that change what trains.
# The houlsby case uses gelu: in the tiny random BERT the attention output barely varies across tokens, so
# a ReLU unit of the 2-wide bottleneck can be negative for every token, get no gradient and stay unchanged.
CASES = [(name, {}) for name in sorted(registry())] + [
    ("freeze", {"layers": 1}), ("freeze", {"layers": 0}),
    ("adapter", {"placement": "houlsby", "non_linearity": "gelu"}), ("ptuning", {"encoder": "lstm"})]
CASES += [(name, options) for name, options in [("prefix", {"projection": True})] if name in registry()]
BACKBONES = ["bert", "llama"]


def case_id(case) -> str:
    name, options = case
    return name + "".join(f"-{k}={v}" for k, v in options.items())


def make(name: str, options: dict):
    method = build_method(registry()[name].config(**options))
    method.plan(PLANNED_STEPS)
    return method


@pytest.fixture(scope="module")
def batch(tiny_bert, tiny_data) -> dict[str, torch.Tensor]:
    tokenizer = load_backbone(str(tiny_bert), LABELS).tokenizer
    examples = read_examples(tiny_data["train"])[:8]
    return collate(encode(examples, tokenizer, LABELS, max_length=32), list(range(8)), tokenizer.pad_token_id)


@pytest.fixture(params=BACKBONES)
def arch(request, tiny_bert, batch):
    """(a function giving a fresh backbone, identical every call, and a batch for it)."""
    if request.param == "bert":
        def fresh() -> Backbone:
            torch.manual_seed(0)  # the same head initialisation every time
            return load_backbone(str(tiny_bert), LABELS)
        return fresh, batch
    return llama_backbone, llama_batch()


def logits(model: torch.nn.Module, batch: dict) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(**{k: v for k, v in batch.items() if k != "labels"}).logits


def train_steps(model: torch.nn.Module, batch: dict, steps: int = 2) -> None:
    """AdamW steps without weight decay (so a parameter changes only through its gradient).

    Two steps, not one: LoRA starts with B = 0, so A gets no gradient until B has moved once.
    """
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.0)
    for _ in range(steps):
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)


def trained(name: str, options: dict, fresh: Callable[[], Backbone], batch: dict):
    method = make(name, options)
    model = method.apply(fresh())
    train_steps(model, batch)
    return method, model


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_forward_backward_is_finite(case, arch):
    fresh, batch = arch
    model = make(*case).apply(fresh())
    model.train()
    out = model(**batch)
    assert out.logits.shape == (len(batch["labels"]), len(LABELS))
    assert torch.isfinite(out.loss)
    out.loss.backward()
    for n, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and torch.isfinite(p.grad).all(), n
        else:
            assert p.grad is None, n


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_only_the_method_and_the_head_change(case, arch):
    name, options = case
    fresh, batch = arch
    method = make(name, options)
    backbone = fresh()
    base_names = {id(p): n for n, p in backbone.model.named_parameters()}  # by identity: wrappers rename
    model = method.apply(backbone)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    train_steps(model, batch)

    params = dict(model.named_parameters())
    changed = {n for n in before if not torch.equal(before[n], params[n])}
    trainable = {n for n, p in params.items() if p.requires_grad}
    assert changed == trainable, (f"changed but frozen: {sorted(changed - trainable)[:5]}; "
                                  f"trainable but unchanged: {sorted(trainable - changed)[:5]}")
    base_changed = {base_names[id(params[n])] for n in changed if id(params[n]) in base_names}
    allowed = TRAINS_BASE_WEIGHTS.get(name, lambda n, cfg: False)
    wrong = sorted(n for n in base_changed if not (_head(n) or allowed(n, method.config)))
    assert not wrong, f"{name} changed base weights it should leave alone: {wrong[:5]}"
    if name in TRAINS_BASE_WEIGHTS:  # and it trains all it declares
        declared = {n for n in base_names.values() if _head(n) or allowed(n, method.config)}
        assert base_changed == declared
    head_leaves = {n.split(".")[0] for n in base_names.values() if _head(n) and ".pooler." not in n}
    assert any(leaf in n.split(".") for n in changed for leaf in head_leaves), "every method trains the head"

    n_trainable, total = count_parameters(model)
    assert n_trainable == sum(params[n].numel() for n in trainable)
    assert 0 < n_trainable <= total
    assert (n_trainable == total) == (name == "full")


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_save_then_load_gives_identical_logits(case, arch, tmp_path):
    name, options = case
    fresh, batch = arch
    method, model = trained(name, options, fresh, batch)
    expected = logits(model, batch)
    method.save(model, tmp_path / "saved")
    torch.manual_seed(123)  # a fresh head initialisation must not leak into the loaded model
    loaded = make(name, options).load(tmp_path / "saved", fresh)
    torch.testing.assert_close(logits(loaded, batch), expected, atol=1e-6, rtol=0)


def test_the_merging_methods_say_so():
    merging = {name for name, spec in registry().items() if spec.factory.merges}
    assert MERGING & set(registry()) <= merging
    assert merging - MERGING <= {"full", "freeze"}  # adapters, prefixes and prompts add modules


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_merged_model_is_plain_transformers_with_the_same_logits(case, arch, tmp_path):
    from transformers import AutoModelForSequenceClassification, PreTrainedModel

    name, options = case
    fresh, batch = arch
    method, model = trained(name, options, fresh, batch)
    expected = logits(model, batch)
    if not method.merges:
        with pytest.raises(TuneforgeError, match="does not merge"):
            method.merge(model)
        return
    merged = method.merge(model)
    assert isinstance(merged, PreTrainedModel)
    foreign = {type(m).__module__ for m in merged.modules()
               if not type(m).__module__.startswith(("torch.", "transformers."))}
    assert not foreign, f"the merged model still holds modules from {foreign}"
    torch.testing.assert_close(logits(merged, batch), expected, atol=1e-4, rtol=0)
    torch.testing.assert_close(logits(model, batch), expected, atol=0, rtol=0)  # merging left the model alone

    merged.save_pretrained(tmp_path / "merged")
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "merged")
    torch.testing.assert_close(logits(reloaded, batch), expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_disabling_gives_the_base_model_back(case, arch):
    name, options = case
    fresh, batch = arch
    base = logits(fresh().model, batch)
    method, model = trained(name, options, fresh, batch)
    expected = logits(model, batch)
    if not method.removable:
        assert name == "full", "only full fine-tuning may refuse to be switched off"
        with pytest.raises(TuneforgeError, match="cannot be switched off"):
            method.disabled(model)
        return
    with method.disabled(model):
        torch.testing.assert_close(logits(model, batch), base, atol=1e-6, rtol=0)
    torch.testing.assert_close(logits(model, batch), expected, atol=0, rtol=0)
    assert not torch.allclose(expected, base), "training changed nothing, so this test proves nothing"


@pytest.mark.parametrize("name", ["bitfit", "freeze"])
def test_disabling_a_loaded_model_reads_the_base_weights(name, tiny_bert, batch, tmp_path):
    def fresh() -> Backbone:
        torch.manual_seed(0)
        return load_backbone(str(tiny_bert), LABELS)

    base = logits(fresh().model, batch)
    method, model = trained(name, {}, fresh, batch)
    method.save(model, tmp_path / "saved")
    loaded_method = make(name, {})
    loaded = loaded_method.load(tmp_path / "saved", fresh)
    expected = logits(loaded, batch)
    with loaded_method.disabled(loaded):
        torch.testing.assert_close(logits(loaded, batch), base, atol=1e-6, rtol=0)
    torch.testing.assert_close(logits(loaded, batch), expected, atol=0, rtol=0)


def test_freeze_more_layers_than_the_model_has(tiny_bert):
    method = make("freeze", {"layers": N_LAYERS + 1})
    with pytest.raises(TuneforgeError, match=rf"method.layers = {N_LAYERS + 1}.*only {N_LAYERS}"):
        method.apply(load_backbone(str(tiny_bert), LABELS))


def test_lora_unknown_target_module_lists_the_linear_layers(tiny_bert):
    method = make("lora", {"target_modules": ["q_proj"]})
    with pytest.raises(TuneforgeError, match=r"q_proj.*not found.*'query'"):
        method.apply(load_backbone(str(tiny_bert), LABELS))

