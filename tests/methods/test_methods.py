"""The method contract: every registered method on the tiny BERT, through the same checks.

For each method: exactly the intended parameters train (and change), frozen ones stay bit-identical,
forward/backward is finite, and save then load reproduces the logits.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from tuneforge.data import read_examples
from tuneforge.errors import TuneforgeError
from tuneforge.methods import build_method, registry
from tuneforge.methods.params import count_parameters
from tuneforge.models.backbones import load_backbone
from tuneforge.training.batching import collate, encode

LABELS = ["negative", "neutral", "positive"]
N_LAYERS = 2  # the tiny BERT's transformer layers


def _head(name: str) -> bool:
    """The task head of a plain HF classifier: classifier and the pooler feeding it."""
    return name.startswith("classifier.") or name.startswith("bert.pooler.")


def _top_layers(name: str, k: int) -> bool:
    return any(name.startswith(f"bert.encoder.layer.{i}.") for i in range(N_LAYERS - k, N_LAYERS))


# The parameters each method is meant to train, by parameter name of the model ``apply`` returns.
# A newly registered method fails test_every_method_has_an_expectation until it gets a rule here.
INTENDED: dict[str, Callable[[str, object], bool]] = {
    "full": lambda name, cfg: True,
    "freeze": lambda name, cfg: _head(name) or _top_layers(name, cfg.layers),
    "bitfit": lambda name, cfg: _head(name) or name.endswith(".bias"),
    "lora": lambda name, cfg: ".lora_A." in name or ".lora_B." in name or ".modules_to_save." in name,
    "adapter": lambda name, cfg: _head(name) or ".adapter." in name,
    "ia3": lambda name, cfg: ".ia3_l." in name or ".modules_to_save." in name,
    "prompt": lambda name, cfg: name.startswith("prompt_encoder.") or ".modules_to_save." in name,
    "ptuning": lambda name, cfg: name.startswith("prompt_encoder.") or ".modules_to_save." in name,
}
# Registered methods with their default options, plus other options that change what trains.
# The houlsby case uses gelu: in the tiny random BERT the attention output barely varies across tokens, so
# a ReLU unit of the 2-wide bottleneck can be negative for every token, get no gradient and stay unchanged.
CASES = [(name, {}) for name in sorted(registry())] + [
    ("freeze", {"layers": 1}), ("freeze", {"layers": 0}),
    ("adapter", {"placement": "houlsby", "non_linearity": "gelu"}), ("ptuning", {"encoder": "lstm"})]


def case_id(case) -> str:
    name, options = case
    return name + "".join(f"-{k}={v}" for k, v in options.items())


def make(name: str, options: dict):
    return build_method(registry()[name].config(**options))


@pytest.fixture(scope="module")
def batch(tiny_bert, tiny_data) -> dict[str, torch.Tensor]:
    tokenizer = load_backbone(str(tiny_bert), LABELS).tokenizer
    examples = read_examples(tiny_data["train"])[:8]
    return collate(encode(examples, tokenizer, LABELS, max_length=32), list(range(8)), tokenizer.pad_token_id)


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


def test_every_method_has_an_expectation():
    missing = sorted(set(registry()) - set(INTENDED))
    assert not missing, f"add the intended trainable parameters of {missing} to INTENDED"


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_only_intended_parameters_change(case, tiny_bert, batch):
    name, options = case
    method = make(name, options)
    torch.manual_seed(0)
    model = method.apply(load_backbone(str(tiny_bert), LABELS))
    intended = {n for n, _ in model.named_parameters() if INTENDED[name](n, method.config)}
    before = {n: p.detach().clone() for n, p in model.named_parameters()}

    assert {n for n, p in model.named_parameters() if p.requires_grad} == intended
    train_steps(model, batch)
    after = dict(model.named_parameters())
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    assert changed == intended, (f"changed but frozen: {sorted(changed - intended)[:5]}; "
                                 f"meant to train but unchanged: {sorted(intended - changed)[:5]}")
    assert any("classifier" in n for n in intended), "every method trains the classifier head"

    trainable, total = count_parameters(model)
    assert trainable == sum(after[n].numel() for n in intended)
    assert 0 < trainable <= total
    if name == "full":
        assert trainable == total
    else:
        assert trainable < total


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_forward_backward_is_finite(case, tiny_bert, batch):
    name, options = case
    model = make(name, options).apply(load_backbone(str(tiny_bert), LABELS))
    model.train()
    out = model(**batch)
    assert out.logits.shape == (8, len(LABELS))
    assert torch.isfinite(out.loss)
    out.loss.backward()
    for n, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and torch.isfinite(p.grad).all(), n
        else:
            assert p.grad is None, n


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_save_then_load_gives_identical_logits(case, tiny_bert, batch, tmp_path):
    name, options = case
    method = make(name, options)
    torch.manual_seed(0)
    model = method.apply(load_backbone(str(tiny_bert), LABELS))
    train_steps(model, batch)  # trained weights, so the round trip is not just the initial ones
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    model.eval()
    with torch.no_grad():
        expected = model(**inputs).logits

    method.save(model, tmp_path / "saved")
    torch.manual_seed(123)  # a fresh head initialisation must not leak into the loaded model
    loaded = make(name, options).load(tmp_path / "saved", lambda: load_backbone(str(tiny_bert), LABELS))
    loaded.eval()
    with torch.no_grad():
        actual = loaded(**inputs).logits
    torch.testing.assert_close(actual, expected, atol=1e-6, rtol=0)


def test_freeze_more_layers_than_the_model_has(tiny_bert):
    method = make("freeze", {"layers": N_LAYERS + 1})
    with pytest.raises(TuneforgeError, match=rf"method.layers = {N_LAYERS + 1}.*only {N_LAYERS}"):
        method.apply(load_backbone(str(tiny_bert), LABELS))


def test_lora_unknown_target_module_lists_the_linear_layers(tiny_bert):
    method = make("lora", {"target_modules": ["q_proj"]})
    with pytest.raises(TuneforgeError, match=r"q_proj.*not found.*'query'"):
        method.apply(load_backbone(str(tiny_bert), LABELS))
