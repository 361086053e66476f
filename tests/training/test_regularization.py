"""Training tricks: FGM / PGD, R-Drop, label smoothing, EMA, dropout overrides, weight decay groups.

Each on the tiny BERT (and the tiny Llama where the model family matters), with every method, with resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

import tuneforge
from tuneforge.config import TrainLoopConfig, load_config
from tuneforge.config.regularization import AdversarialConfig, DropoutConfig
from tuneforge.config.schema import TrainConfig
from tuneforge.data import read_examples
from tuneforge.errors import TuneforgeError
from tuneforge.methods import build_method, registry
from tuneforge.models.attention import use_training_attention
from tuneforge.models.backbones import load_backbone
from tuneforge.models.first_token import use_first_token_shortcut
from tuneforge.training import adversarial
from tuneforge.training.adversarial import adversarial_backward
from tuneforge.training.dropout import set_dropout
from tuneforge.training.ema import EMA
from tuneforge.training.fast_dropout import FastDropout, use_fast_dropout
from tuneforge.training.losses import build_loss, cross_entropy, rdrop_loss, symmetric_kl
from tuneforge.training.optim import decay_groups

pytestmark = pytest.mark.usefixtures("one_thread")
LABELS = ["negative", "neutral", "positive"]


def tiny_model(tiny_bert: Path, method: str = "full", *, dropout: float | None = None, speedups: bool = True):
    """The model as the train recipe builds it: method applied, fast dropout, training attention, first-token
    shortcut; ``dropout`` overrides every backbone dropout probability."""
    backbone = load_backbone(str(tiny_bert), LABELS)
    if speedups:
        use_training_attention(backbone.model)
    built = build_method(registry()[method].config())
    built.plan(100)  # AdaLoRA schedules its rank budget over the steps
    model = built.apply(backbone)
    if speedups:
        use_fast_dropout(model)
        use_first_token_shortcut(model)
    if dropout is not None:
        set_dropout(model, DropoutConfig(hidden=dropout, attention=dropout, classifier=dropout))
    return model, backbone.tokenizer


def batch(tokenizer, n: int = 6) -> dict[str, torch.Tensor]:
    texts = ["the flight was late again", "great crew thanks", "my seat", "awful lost bag today very rude",
             "happy smooth boarding", "a gate question"][:n]
    enc = tokenizer(texts, padding=True, return_tensors="pt")
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
            "labels": torch.tensor([0, 2, 1, 0, 2, 1][:n])}


def grads(model) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


# --- R-Drop and label smoothing -------------------------------------------------------------------

def test_rdrop_passes_see_different_dropout_masks_with_every_speedup_on(tiny_bert):
    torch.manual_seed(0)
    model, tok = tiny_model(tiny_bert)
    assert any(isinstance(m, FastDropout) for m in model.modules())
    inputs = batch(tok)
    doubled = {k: torch.cat([v, v]) for k, v in inputs.items() if k != "labels"}
    model.train()
    first, second = model(**doubled).logits.chunk(2)
    assert not torch.allclose(first, second), "the two R-Drop passes got the same dropout masks"
    assert symmetric_kl(first, second) > 0
    model.eval()
    first, second = model(**doubled).logits.chunk(2)
    torch.testing.assert_close(first, second)  # without dropout the stacked copies agree


def test_rdrop_loss_is_mean_ce_plus_alpha_symmetric_kl(tiny_bert):
    model, tok = tiny_model(tiny_bert)
    model.train()
    inputs = batch(tok)
    torch.manual_seed(1)
    loss = rdrop_loss(model, inputs, alpha=4.0, smoothing=0.1)
    torch.manual_seed(1)  # the same masks again
    doubled = {k: torch.cat([v, v]) for k, v in inputs.items() if k != "labels"}
    a, b = model(**doubled).logits.chunk(2)
    p, q = a.softmax(-1), b.softmax(-1)
    kl = ((p * (p.log() - q.log())).sum(-1).mean() + (q * (q.log() - p.log())).sum(-1).mean()) / 2
    ce = (F.cross_entropy(a, inputs["labels"], label_smoothing=0.1) +
          F.cross_entropy(b, inputs["labels"], label_smoothing=0.1)) / 2
    torch.testing.assert_close(loss, ce + 4.0 * kl)
    assert kl > 0


def test_label_smoothing_matches_the_formula():
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.0, 3.0, 1.0]])
    labels = torch.tensor([0, 2])
    s, k = 0.2, 3
    target = torch.full((2, k), s / k)
    target[torch.arange(2), labels] += 1 - s
    expected = -(target * logits.log_softmax(-1)).sum(-1).mean()
    torch.testing.assert_close(cross_entropy(logits, labels, smoothing=s), expected)
    assert cross_entropy(logits, labels, s) > cross_entropy(logits, labels)  # confident right answers cost more


@pytest.mark.parametrize("cfg", [TrainLoopConfig(label_smoothing=0.2), TrainLoopConfig(rdrop_alpha=1.0)])
def test_smoothing_and_rdrop_keep_a_methods_own_loss_term(tiny_bert, cfg):
    """AdaLoRA's orthogonality penalty is added by peft only when the labels go through the model."""
    torch.manual_seed(0)
    model, tok = tiny_model(tiny_bert, "adalora", dropout=0.0)  # no dropout: both R-Drop passes agree
    model.train()
    inputs = batch(tok)
    out = model(**inputs)
    penalty = out.loss - cross_entropy(out.logits, inputs["labels"])
    assert penalty > 1e-4, "the tiny AdaLoRA model should start with a non-zero orthogonality penalty"
    loss = build_loss(cfg, None)(model, inputs, [])
    expected = cross_entropy(out.logits, inputs["labels"], cfg.label_smoothing) + penalty
    torch.testing.assert_close(loss, expected)


def test_rdrop_and_label_smoothing_refuse_a_recipe_loss():
    cfg = TrainLoopConfig(rdrop_alpha=1.0)
    with pytest.raises(TuneforgeError, match="rdrop_alpha"):
        build_loss(cfg, lambda model, inputs, indices: torch.zeros(()))


# --- FGM and PGD ----------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["full", "lora"])  # lora: the embedding matrix is frozen
def test_fgm_perturbs_each_example_by_epsilon_and_adds_a_harder_loss(tiny_bert, method):
    model, tok = tiny_model(tiny_bert, method, dropout=0.0)
    model.train()
    inputs = batch(tok)
    seen = {}

    def loss_of():
        out = model(**inputs)
        seen.setdefault("losses", []).append(out.loss.detach())
        return out.loss

    embedding = adversarial.input_embeddings(model)
    weight_before = embedding.weight.detach().clone()
    hooks_before = len(embedding._forward_hooks)
    clean = adversarial_backward(model, loss_of, 1.0, AdversarialConfig(method="fgm", epsilon=0.5))
    adv_grads = grads(model)
    assert torch.equal(embedding.weight, weight_before)  # the perturbation never touches the embedding matrix
    assert len(embedding._forward_hooks) == hooks_before  # and its hook is gone
    assert len(seen["losses"]) == 2 and torch.equal(clean.detach(), seen["losses"][0])
    assert seen["losses"][1] > seen["losses"][0], "the adversarial example should have a higher loss"

    model.zero_grad()
    model(**inputs).loss.backward()
    clean_grads = grads(model)
    assert adv_grads.keys() == clean_grads.keys()
    assert any(not torch.allclose(adv_grads[n], clean_grads[n]) for n in adv_grads)
    for p in model.parameters():  # nothing left perturbed: the next clean pass gives the clean loss
        p.grad = None
    torch.testing.assert_close(model(**inputs).loss, seen["losses"][0])


def test_perturbation_norm_is_epsilon_per_example_and_pgd_stays_in_the_ball(tiny_bert):
    model, tok = tiny_model(tiny_bert, dropout=0.0)
    model.train()
    inputs = batch(tok)
    for cfg in [AdversarialConfig(method="fgm", epsilon=0.7), AdversarialConfig(method="pgd", epsilon=0.7, steps=3)]:
        captured = []
        original = adversarial.EmbeddingPerturbation.__call__

        def spy(self, module, args, output, _original=original):
            if self.delta is not None:
                captured.append(self.delta.detach().clone())
            return _original(self, module, args, output)

        adversarial.EmbeddingPerturbation.__call__ = spy
        try:
            model.zero_grad()
            adversarial_backward(model, lambda: model(**inputs).loss, 1.0, cfg)
        finally:
            adversarial.EmbeddingPerturbation.__call__ = original
        assert len(captured) == (1 if cfg.method == "fgm" else cfg.steps)
        norms = torch.stack([d.flatten(1).norm(dim=1) for d in captured])  # (passes, B)
        if cfg.method == "fgm":
            torch.testing.assert_close(norms, torch.full_like(norms, 0.7))
        else:
            assert (norms <= 0.7 + 1e-5).all() and (norms > 0).all()


def test_pgd_with_one_step_of_epsilon_is_fgm(tiny_bert):
    model, tok = tiny_model(tiny_bert, dropout=0.0)
    model.train()
    inputs = batch(tok)
    results = []
    for cfg in [AdversarialConfig(method="fgm", epsilon=0.3), AdversarialConfig(method="pgd", epsilon=0.3, steps=1,
                                                                                alpha=0.3)]:
        model.zero_grad()
        adversarial_backward(model, lambda: model(**inputs).loss, 0.5, cfg)
        results.append(grads(model))
    for name in results[0]:
        torch.testing.assert_close(results[0][name], results[1][name], msg=name)


def test_adversarial_on_a_decoder(one_thread):
    import sys

    sys.path.insert(0, str(Path(__file__).parents[1] / "methods"))
    from tiny_llama import llama_backbone, llama_batch

    model = build_method(registry()["lora"].config()).apply(llama_backbone())
    model.train()
    inputs = llama_batch()
    loss = adversarial_backward(model, lambda: model(**inputs).loss, 1.0, AdversarialConfig(method="pgd", steps=2))
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    assert any(p.grad is not None for p in model.parameters())


# --- EMA ------------------------------------------------------------------------------------------

def test_ema_follows_the_formula_and_swaps_back(tiny_bert):
    model, _ = tiny_model(tiny_bert, "lora", speedups=False)
    ema = EMA(model, decay=0.9)
    name, param = next((n, p) for n, p in model.named_parameters() if p.requires_grad)
    start = param.detach().clone()
    with torch.no_grad():
        param.add_(1.0)
    ema.update(model, step=100)  # d = min(0.9, 101 / 110) = 0.9
    torch.testing.assert_close(ema.shadow[name], start + 0.1)
    ema.update(model, step=1)  # warm-up: d = 2 / 11
    torch.testing.assert_close(ema.shadow[name], (start + 0.1) * 2 / 11 + (start + 1) * 9 / 11)
    raw = param.detach().clone()
    with ema.applied(model):
        torch.testing.assert_close(param.detach(), ema.shadow[name])
    torch.testing.assert_close(param.detach(), raw)
    assert not any(n.startswith("base_model.model.bert.embeddings.word") for n in ema.shadow)  # trainable only


def test_ema_run_evaluates_and_saves_the_averaged_weights(tiny_config, tiny_data, tmp_path):
    tiny_config["train"].update(ema_decay=0.8, epochs=1)
    run = tuneforge.train(tiny_config, progress=False)
    log = [json.loads(line) for line in (run.dir / "log.jsonl").read_text().splitlines()]
    last_eval = [r for r in log if r["type"] == "eval"][-1]
    again = tuneforge.load(run.dir, precision="fp32").evaluate(read_examples(tiny_data["validation"]))
    assert again["loss"] == pytest.approx(last_eval["loss"], abs=1e-6)  # the evaluated weights are the saved ones

    tiny_config["train"]["ema_decay"] = None
    tiny_config["output_dir"] = str(tmp_path / "raw")
    raw = tuneforge.train(tiny_config, progress=False)
    a, b = (load_file(str(r.dir / "model" / "model.safetensors")) for r in (run, raw))
    assert any(not torch.equal(a[k], b[k]) for k in a), "EMA changed nothing in the saved weights"


def test_ema_with_early_stopping_keeps_the_best_average(tiny_config, tiny_data):
    tiny_config["train"].update(ema_decay=0.5, eval_every=1, early_stopping_patience=1, metric="loss")
    run = tuneforge.train(tiny_config, progress=False)
    evals = [json.loads(line) for line in (run.dir / "log.jsonl").read_text().splitlines()
             if json.loads(line)["type"] == "eval"]
    best = min(evals, key=lambda r: r["loss"])
    assert run.metrics["train.best_step"] == best["step"]
    again = tuneforge.load(run.dir, precision="fp32").evaluate(read_examples(tiny_data["validation"]))
    assert again["loss"] == pytest.approx(best["loss"], abs=1e-6)


# --- every method, bf16, accumulation, resume -----------------------------------------------------

TRICKS = {"adversarial": "fgm", "rdrop_alpha": 1.0, "ema_decay": 0.9, "label_smoothing": 0.1,
          "dropout": {"hidden": 0.2}}


@pytest.mark.parametrize("method", sorted(registry()))
def test_every_method_trains_with_the_tricks(tiny_config, method):
    tiny_config["method"] = {"name": method}
    tiny_config["train"].update(epochs=1, **TRICKS)
    run = tuneforge.train(tiny_config, progress=False)
    assert run.metrics["train.steps"] == 12
    losses = [json.loads(line)["loss"] for line in (run.dir / "log.jsonl").read_text().splitlines()
              if json.loads(line)["type"] == "train"]
    assert losses and all(0 < loss < 10 for loss in losses)


def test_pgd_with_bf16_autocast_and_accumulation(tiny_config):
    tiny_config["method"] = {"name": "lora"}
    tiny_config["train"].update(epochs=1, precision="bf16", gradient_accumulation_steps=2, batch_size=4,
                                adversarial={"method": "pgd", "steps": 2}, rdrop_alpha=0.5)
    run = tuneforge.train(tiny_config, progress=False)
    assert run.metrics["train.precision"] == "bf16" and run.metrics["train.steps"] == 12


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return {f"{f.name}:{k}": v for f in sorted((run_dir / "model").glob("*.safetensors"))
            for k, v in load_file(str(f)).items()}


@pytest.mark.parametrize("method", ["full", "lora"])
def test_resume_with_the_tricks_equals_uninterrupted(tiny_config, tmp_path, method):
    tiny_config["method"] = {"name": method}
    tiny_config["train"].update(checkpoint_every=2, **TRICKS)
    run_dir = Path(tiny_config["output_dir"])
    with pytest.raises(KeyboardInterrupt):
        tuneforge.train(tiny_config, progress=False, _stop_after=5)
    assert (run_dir / "checkpoints" / "step-00000004" / "extra.safetensors").exists()  # the EMA weights
    tuneforge.train(None, resume=run_dir, progress=False)

    tiny_config["output_dir"] = str(tmp_path / "uninterrupted")
    tuneforge.train(tiny_config, progress=False)
    a, b = weights(run_dir), weights(tmp_path / "uninterrupted")
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-6, rtol=0, msg=name)


# --- dropout overrides ----------------------------------------------------------------------------

def test_dropout_overrides_set_each_kind_and_leave_method_dropout_alone(tiny_bert):
    model, _ = tiny_model(tiny_bert, "lora")
    changed = set_dropout(model, DropoutConfig(hidden=0.3, attention=0.05, classifier=0.5))
    assert changed == {"hidden": 5, "attention": 2, "classifier": 1}  # 2 layers: embeddings + 2 x 2 hidden
    probs = {n: m.p for n, m in model.named_modules() if hasattr(m, "p") and isinstance(m.p, float)}
    assert probs["base_model.model.dropout"] == 0.5
    assert probs["base_model.model.bert.encoder.layer.1.attention.self.dropout"] == 0.05
    assert probs["base_model.model.bert.encoder.layer.0.output.dropout"] == 0.3
    assert all(p == 0.1 for n, p in probs.items() if "lora_dropout" in n)  # method.dropout, untouched


def test_zero_dropout_makes_training_mode_deterministic(tiny_bert):
    model, tok = tiny_model(tiny_bert)
    model.train()
    inputs = {k: v for k, v in batch(tok).items() if k != "labels"}
    assert not torch.equal(model(**inputs).logits, model(**inputs).logits)
    set_dropout(model, DropoutConfig(hidden=0.0, attention=0.0, classifier=0.0))
    torch.testing.assert_close(model(**inputs).logits, model(**inputs).logits, rtol=0, atol=0)


def test_dropout_override_reaches_llama_attention():
    import sys

    sys.path.insert(0, str(Path(__file__).parents[1] / "methods"))
    from tiny_llama import build_tiny_llama

    model = build_tiny_llama()
    assert set_dropout(model, DropoutConfig(attention=0.25))["attention"] == 2
    assert all(layer.self_attn.attention_dropout == 0.25 for layer in model.model.layers)


# --- weight decay groups (training/optim.py) ------------------------------------------------------

@pytest.mark.parametrize("method", ["full", "lora"])
def test_weight_decay_skips_biases_and_norms(tiny_bert, method):
    model, _ = tiny_model(tiny_bert, method, speedups=False)
    names = {id(p): n for n, p in model.named_parameters()}
    decay, no_decay = decay_groups(model, 0.01)
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    decayed = {names[id(p)] for p in decay["params"]}
    assert decayed and all(n.endswith("weight") and "LayerNorm" not in n for n in decayed)
    skipped = {names[id(p)] for p in no_decay["params"]}
    assert any(n.endswith(".bias") for n in skipped)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert decayed | skipped == trainable and not decayed & skipped
    if method == "full":
        assert any("LayerNorm.weight" in n for n in skipped)


# --- config ---------------------------------------------------------------------------------------

def test_config_shorthands_overrides_and_errors(tiny_config):
    cfg = load_config(TrainConfig, data=tiny_config, overrides=["train.adversarial=pgd", "train.adversarial.steps=5",
                                                                "train.dropout.hidden=0.2", "train.ema_decay=0.99"])
    assert cfg.train.adversarial.method == "pgd" and cfg.train.adversarial.steps == 5
    assert cfg.train.adversarial.step_size == pytest.approx(2.5 * 1.0 / 5)
    assert cfg.train.dropout.hidden == 0.2 and cfg.train.ema_decay == 0.99
    with pytest.raises(TuneforgeError, match="epsilom.*epsilon"):
        load_config(TrainConfig, data=tiny_config, overrides=["train.adversarial.epsilom=1"])
    with pytest.raises(TuneforgeError, match="fgn"):
        load_config(TrainConfig, data=tiny_config, overrides=["train.adversarial=fgn"])
    with pytest.raises(TuneforgeError, match="ema_decay"):
        load_config(TrainConfig, data=tiny_config, overrides=["train.ema_decay=1.5"])


def test_config_show_lists_the_tricks():
    from tuneforge.config.describe import describe

    text = describe("train")
    for field in ("label_smoothing", "rdrop_alpha", "adversarial:", "epsilon", "ema_decay", "dropout:",
                  "classifier"):
        assert field in text
    assert "method: Literal['none', 'fgm', 'pgd']" in text


def test_cli_trains_with_the_tricks_and_refuses_a_misspelt_one(tiny_config, tmp_path, monkeypatch, capsys):
    import sys

    import yaml

    from tuneforge.cli.main import main

    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config), encoding="utf-8")

    def cli(*args):
        monkeypatch.setattr(sys, "argv", ["tuneforge", "train", str(config), *args, "--quiet"])
        with pytest.raises(SystemExit) as info:
            main()
        return info.value.code or 0, capsys.readouterr()

    code, _ = cli("train.epochs=1", "train.adversarial=pgd", "train.adversarial.steps=2", "train.rdrop_alpha=0.5",
                  "train.ema_decay=0.9", "train.label_smoothing=0.1", "train.dropout.attention=0")
    assert code == 0
    saved = yaml.safe_load((Path(tiny_config["output_dir"]) / "config.yaml").read_text(encoding="utf-8"))["train"]
    assert saved["adversarial"] == {"method": "pgd", "epsilon": 1.0, "steps": 2, "alpha": None}
    assert (saved["rdrop_alpha"], saved["ema_decay"], saved["label_smoothing"]) == (0.5, 0.9, 0.1)
    assert saved["dropout"] == {"hidden": None, "attention": 0.0, "classifier": None}

    code, captured = cli("output_dir=" + str(tmp_path / "other"), "train.adversarial=fgn", "train.rdrop=1")
    assert code == 2 and "Traceback" not in captured.err
    assert "fgn" in captured.err and "rdrop_alpha" in captured.err  # both problems at once, with the fix
    assert not (tmp_path / "other").exists()
