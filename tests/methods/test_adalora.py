"""AdaLoRA: the rank allocation the loop drives, its config checks, merging, saving and loading pruned ranks,
the orthogonality penalty, resuming, and runs end to end (fp32 and bf16) through ``tuneforge.train``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tiny_llama import llama_backbone, llama_batch

import tuneforge
from tuneforge.config import TrainConfig, load_config
from tuneforge.data import read_examples
from tuneforge.errors import TuneforgeError
from tuneforge.methods import build_method, registry
from tuneforge.methods.adalora import AdaLora
from tuneforge.models.backbones import Backbone, load_backbone
from tuneforge.training.batching import collate, encode

LABELS = ["negative", "neutral", "positive"]
SMALL = {"init_r": 4, "target_r": 2, "dropout": 0.0}  # 4 adapted layers in both tiny models: budget 16 -> 8


def make(total_steps: int | None, **options) -> AdaLora:
    method = build_method(registry()["adalora"].config(**options))
    if total_steps is not None:
        method.plan(total_steps)
    return method


@pytest.fixture(scope="module")
def bert_batch(tiny_bert, tiny_data) -> dict[str, torch.Tensor]:
    tokenizer = load_backbone(str(tiny_bert), LABELS).tokenizer
    examples = read_examples(tiny_data["train"])[:8]
    return collate(encode(examples, tokenizer, LABELS, max_length=32), list(range(8)), tokenizer.pad_token_id)


@pytest.fixture(params=["bert", "llama"])
def arch(request, tiny_bert, bert_batch):
    """(a function giving a fresh backbone, identical every call, and a batch for it)."""
    if request.param == "bert":
        def fresh() -> Backbone:
            torch.manual_seed(0)
            return load_backbone(str(tiny_bert), LABELS)
        return fresh, bert_batch
    return llama_backbone, llama_batch()


def logits(model: torch.nn.Module, batch: dict) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(**{k: v for k, v in batch.items() if k != "labels"}).logits


def train(method: AdaLora, model: torch.nn.Module, batch: dict, steps: int, allocate: bool = True,
          on_step=None) -> None:
    """AdamW steps as the loop takes them: backward, step, ``after_step``, then clear the gradients."""
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-2, weight_decay=0.0)
    for step in range(1, steps + 1):
        model(**batch).loss.backward()
        optimizer.step()
        if allocate:
            method.after_step(model, step)
        if on_step is not None:
            on_step(step)
        optimizer.zero_grad(set_to_none=True)


def kept(model: torch.nn.Module) -> dict[str, int]:
    pattern = model.peft_config["default"].rank_pattern
    return {} if pattern is None else {k: sum(v) for k, v in pattern.items()}


# --- rank allocation --------------------------------------------------------------------------------------

def test_ranks_shrink_on_the_cubic_schedule_to_the_target_budget():
    total, method = 12, make(12, **SMALL)  # tinit 0.1 -> 1 step, tfinal 0.2 -> 2 steps: ranks fixed at step 10
    assert (method.schedule.tinit, method.schedule.tfinal) == (1, 2)
    model = method.apply(llama_backbone())
    n_layers, initial, target = 4, 16, 8
    budgets: dict[int, int] = {}
    train(method, model, llama_batch(), total, on_step=lambda step: budgets.update({step: sum(kept(model).values())}))

    assert budgets[1] == 0  # warm-up: no allocation yet
    for step in range(2, 11):  # b(t) = target + (initial - target) (1 - (t - tinit) / (T - tfinal - tinit))^3
        scheduled = target + (initial - target) * (1 - (step - 1) / (total - 2 - 1)) ** 3
        assert budgets[step] <= math.floor(scheduled), step
    assert budgets[2] > target and budgets[10] == target
    assert [budgets[s] for s in range(2, 13)] == sorted((budgets[s] for s in range(2, 13)), reverse=True)
    assert budgets[11] == budgets[12] == target  # final phase: ranks fixed

    ranks = kept(model)
    assert len(ranks) == n_layers and all(0 <= r <= 4 for r in ranks.values())
    pattern = model.peft_config["default"].rank_pattern
    for name, values in model.base_model.model.named_parameters():
        if ".lora_E." in name:  # pruned triplets stay at lambda = 0 through the final phase's optimizer steps
            keep = torch.tensor(pattern[name])
            assert torch.all(values.detach().view(-1)[~keep] == 0) and torch.all(values.detach().view(-1)[keep] != 0)


def test_orthogonality_penalty_is_added_to_the_classification_loss(bert_batch, tiny_bert):
    torch.manual_seed(0)
    method = make(10, **SMALL, orth_reg_weight=0.3)
    model = method.apply(load_backbone(str(tiny_bert), LABELS))
    model.eval()
    with torch.no_grad():
        total = model(**bert_batch).loss
        task = model.base_model.model(**bert_batch).loss  # the transformers forward, adapters included
        terms = []
        for name, p in model.named_parameters():
            if ".lora_A." in name:  # Q (r, d_in): Q Q^T = I
                terms.append(torch.linalg.matrix_norm(p @ p.T - torch.eye(p.shape[0])))
            elif ".lora_B." in name:  # P (d_out, r): P^T P = I
                terms.append(torch.linalg.matrix_norm(p.T @ p - torch.eye(p.shape[1])))
    assert len(terms) == 8
    torch.testing.assert_close(total - task, 0.3 * torch.stack(terms).mean(), atol=1e-5, rtol=1e-5)


# --- config checks ----------------------------------------------------------------------------------------

def config_problem(method: dict) -> str:
    with pytest.raises(TuneforgeError) as err:
        load_config(TrainConfig, data={"model": "x", "data": {"dataset": "airline-sentiment"}, "method": method})
    return str(err.value)


def test_config_errors_name_the_field_and_the_fix():
    assert '"method.target_r" = 8: target_r must be below init_r (8)' in config_problem(
        {"name": "adalora", "init_r": 8, "target_r": 8})
    assert "init_r: 12" in config_problem({"name": "adalora", "init_r": 8, "target_r": 8})
    assert '"method.tinit" = 2.5' in config_problem({"name": "adalora", "tinit": 2.5})
    assert "keep their sum below 1" in config_problem({"name": "adalora", "tinit": 0.5, "tfinal": 0.5})
    assert '"method.beta1"' in config_problem({"name": "adalora", "beta1": 1.0})
    assert 'unknown key "method.deltaT". Did you mean "delta_t"?' in config_problem({"name": "adalora", "deltaT": 2})


def test_fractions_and_step_counts():
    assert make(100, tinit=0.1, tfinal=0.25).schedule.__dict__ == {"total_steps": 100, "tinit": 10, "tfinal": 25,
                                                                    "delta_t": 1}
    assert make(100, tinit=5, tfinal=30.0, delta_t=10).schedule.__dict__ == {
        "total_steps": 100, "tinit": 5, "tfinal": 30, "delta_t": 10}
    assert make(2).schedule.__dict__ == {"total_steps": 2, "tinit": 0, "tfinal": 0, "delta_t": 1}


def test_a_training_too_short_for_the_schedule_is_refused_with_the_fix():
    with pytest.raises(TuneforgeError, match=r"method.tinit = 5 \(5 steps\) and method.tfinal = 3 \(3 steps\) "
                                             r"leave no steps.* of 8 optimizer steps.*fractions.*train longer"):
        make(8, tinit=5, tfinal=3)
    with pytest.raises(TuneforgeError, match=r"tfinal <= 3 steps"):
        make(5, tinit=0, tfinal=4)
    with pytest.raises(TuneforgeError, match=r"training has 1 optimizer step, too few.*train.max_steps"):
        make(1)


def test_apply_without_plan_says_what_to_call():
    with pytest.raises(TuneforgeError, match=r"call method.plan\(total_steps\) before method.apply"):
        make(None).apply(llama_backbone())


# --- the method contract, after a real allocation ----------------------------------------------------------

@pytest.mark.parametrize("allocate", [True, False], ids=["allocated", "contract-steps"])
def test_trained_model_merges_saves_loads_and_switches_off(arch, allocate, tmp_path):
    """With ``allocate`` the ranks are pruned (some layers may reach rank 0); without it, what the contract
    test does: plan(10) and two optimizer steps that never call ``after_step``."""
    fresh, batch = arch
    base = logits(fresh().model, batch)
    method = make(10, **SMALL)
    model = method.apply(fresh())
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {n for n, _ in model.named_parameters() if ".lora_" in n or ".modules_to_save." in n}
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    train(method, model, batch, steps=10 if allocate else 2, allocate=allocate)
    changed = {n for n, p in model.named_parameters() if not torch.equal(before[n], p)}
    params = dict(model.named_parameters())
    # lambda starts at 0: a layer pruned to rank 0 ends where it started
    assert changed <= trainable and all(".lora_E." in n and not params[n].any() for n in trainable - changed)
    assert allocate or changed == trainable
    expected = logits(model, batch)
    assert not torch.allclose(expected, base)

    merged = method.merge(model)
    torch.testing.assert_close(logits(merged, batch), expected, atol=1e-4, rtol=0)
    with method.disabled(model):
        torch.testing.assert_close(logits(model, batch), base, atol=1e-6, rtol=0)
    torch.testing.assert_close(logits(model, batch), expected, atol=0, rtol=0)

    method.save(model, tmp_path)
    report = json.loads((tmp_path / "adalora_ranks.json").read_text(encoding="utf-8"))
    config = json.loads((tmp_path / "adapter_config.json").read_text(encoding="utf-8"))
    loaded = make(None, **SMALL).load(tmp_path, fresh)
    torch.testing.assert_close(logits(loaded, batch), expected, atol=1e-6, rtol=0)
    loaded_ranks = {n.removeprefix("base_model.model.").split(".lora_E")[0]: p.shape[0]
                    for n, p in loaded.named_parameters() if ".lora_E." in n}
    assert report["ranks"] == loaded_ranks  # the file says what the loaded layers hold
    assert report["allocated"] is allocate and (config["rank_pattern"] is not None) is allocate
    if allocate:
        assert report["budget"] == {"initial": 16, "target": 8, "final": 8}
    else:
        assert set(loaded_ranks.values()) == {4}


def test_saving_between_allocations_keeps_the_model_and_the_folder_in_step(tmp_path):
    """Stopped in the budget phase (early stopping), the pruned lambdas have moved off zero since the last
    allocation (AdamW momentum); the folder drops those triplets, so save zeroes them in the model too."""
    batch = llama_batch()
    method = make(12, **SMALL, delta_t=3)
    model = method.apply(llama_backbone())
    train(method, model, batch, steps=4)  # allocations at steps 3 (delta_t) ... next would be 6
    pattern = model.peft_config["default"].rank_pattern
    drifted = [n for n, p in model.base_model.model.named_parameters()
               if ".lora_E." in n and p.detach().view(-1)[~torch.tensor(pattern[n])].abs().sum() > 0]
    assert drifted, "nothing moved off zero: this test proves nothing"
    method.save(model, tmp_path)
    expected = logits(model, batch)
    loaded = make(None, **SMALL).load(tmp_path, llama_backbone)
    torch.testing.assert_close(logits(loaded, batch), expected, atol=1e-6, rtol=0)
    report = json.loads((tmp_path / "adalora_ranks.json").read_text(encoding="utf-8"))
    assert report["last_step"] == 4 and report["schedule"]["ranks_fixed_at_step"] == 10
    assert report["budget"]["final"] > report["budget"]["target"]


def test_state_dict_restores_the_allocator_exactly(tmp_path):
    """What the checkpoint holds (importance averages, keep-masks) put into a fresh model: the next
    allocations are the same as the original's."""
    batch = llama_batch()
    first = make(12, **SMALL)
    model = first.apply(llama_backbone())
    train(first, model, batch, steps=5)
    state = first.state_dict()
    assert {k.split(":")[0] for k in state} == {"exp_avg_ipt", "exp_avg_unc", "rank_pattern", "step"}

    second = make(12, **SMALL)
    again = second.apply(llama_backbone())
    again.load_state_dict(model.state_dict())
    second.load_state_dict(again, {k: v.clone() for k, v in state.items()})
    for name in ("exp_avg_ipt", "exp_avg_unc"):
        a, b = getattr(model.base_model.rankallocator, name), getattr(again.base_model.rankallocator, name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert kept(again) == kept(model)
    for m, method in ((model, first), (again, second)):  # the same gradients, then one more allocation each
        m.train()
        m(**batch).loss.backward()
        method.after_step(m, 6)
    assert model.peft_config["default"].rank_pattern == again.peft_config["default"].rank_pattern


# --- end to end through the recipe ------------------------------------------------------------------------

def run_config(make_tiny_config, output_dir: Path, **train) -> dict:
    config = make_tiny_config(output_dir)
    config["method"] = {"name": "adalora", "init_r": 4, "target_r": 2}
    config["train"].update(learning_rate=2e-2, checkpoint_every=2, **train)
    return config


@pytest.fixture(scope="module")
def finished(make_tiny_config, tmp_path_factory):
    """An uninterrupted run: 2 epochs of 12 steps, tinit 2 steps, ranks fixed at step 20, tfinal 4 steps."""
    config = run_config(make_tiny_config, tmp_path_factory.mktemp("adalora") / "run")
    return config, tuneforge.train(config, progress=False)


def test_train_writes_the_ranks_and_the_run_reloads(finished, tmp_path):
    config, run = finished
    model_dir = run.dir / "model"
    report = json.loads((model_dir / "adalora_ranks.json").read_text(encoding="utf-8"))
    assert report["schedule"] == {"total_steps": 24, "tinit": 2, "tfinal": 4, "delta_t": 1, "ranks_fixed_at_step": 20}
    assert report["last_step"] == 24 and report["allocated"]
    assert report["budget"] == {"initial": 16, "target": 8, "final": 8}
    assert sorted(report["ranks"]) == [f"bert.encoder.layer.{i}.attention.self.{m}" for i in (0, 1)
                                       for m in ("query", "value")]
    assert sum(report["ranks"].values()) == 8
    assert json.loads((model_dir / "adapter_config.json").read_text(encoding="utf-8"))["rank_pattern"]

    loaded = tuneforge.load(run.dir)  # ``run`` was loaded from the folder too; load again, on its own
    again = loaded.evaluate(read_examples(config["data"]["test"]))
    assert again["accuracy"] == pytest.approx(run.metrics["test.accuracy"], abs=1e-9)
    assert again["loss"] == pytest.approx(run.metrics["test.loss"], abs=1e-6)

    from transformers import AutoModelForSequenceClassification

    exported = AutoModelForSequenceClassification.from_pretrained(loaded.export_merged(tmp_path / "merged")).eval()
    encoded = encode(read_examples(config["data"]["test"]), loaded.tokenizer, loaded.labels, 32)
    batch = collate(encoded, list(range(len(encoded))), loaded.tokenizer.pad_token_id)
    torch.testing.assert_close(logits(exported, batch), logits(loaded.model, batch), atol=1e-4, rtol=0)


def test_resume_equals_uninterrupted(finished, make_tiny_config, tmp_path):
    """Interrupted in the budget phase (resumes from step 4: the importance averages matter) and again in the
    final phase (resumes from step 20, where the ranks were fixed: the keep-masks matter)."""
    _, uninterrupted = finished
    config = run_config(make_tiny_config, tmp_path / "run")
    run_dir = Path(config["output_dir"])
    with pytest.raises(KeyboardInterrupt):
        tuneforge.train(config, progress=False, _stop_after=5)
    state = load_file(str(run_dir / "checkpoints" / "step-00000004" / "method.safetensors"))
    assert any(k.startswith("exp_avg_ipt:") for k in state) and any(k.startswith("rank_pattern:") for k in state)
    with pytest.raises(KeyboardInterrupt):
        tuneforge.train(None, resume=run_dir, progress=False, _stop_after=21)
    state = load_file(str(run_dir / "checkpoints" / "step-00000020" / "method.safetensors"))
    assert not any(k.startswith("exp_avg") for k in state) and any(k.startswith("rank_pattern:") for k in state)
    resumed = tuneforge.train(None, resume=run_dir, progress=False)

    for name in ("adapter_model.safetensors",):
        a, b = load_file(str(resumed.dir / "model" / name)), load_file(str(uninterrupted.dir / "model" / name))
        assert a.keys() == b.keys()
        for key in a:
            torch.testing.assert_close(a[key], b[key], atol=1e-6, rtol=0, msg=key)
    ranks = [json.loads((r.dir / "model" / "adalora_ranks.json").read_text(encoding="utf-8")) for r in
             (resumed, uninterrupted)]
    assert ranks[0] == ranks[1]


def test_bf16_with_gradient_accumulation_trains_and_reloads(make_tiny_config, tmp_path, monkeypatch):
    """The recipe holds the frozen base (and peft's ``ranknum``) in bf16 under autocast; the allocation must
    see the accumulated gradients of every AdaLoRA parameter when the loop calls ``after_step``."""
    config = run_config(make_tiny_config, tmp_path / "run", precision="bf16", epochs=1, gradient_accumulation_steps=2,
                        max_steps=4)
    config["data"]["max_eval_samples"] = 6
    seen: list[int] = []
    real_after_step = AdaLora.after_step

    def spy(self, model, step):
        grads = [p.grad for n, p in model.named_parameters() if ".lora_" in n and p.requires_grad]
        assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
        seen.append(step)
        real_after_step(self, model, step)

    monkeypatch.setattr(AdaLora, "after_step", spy)
    run = tuneforge.train(config, progress=False)
    assert seen == [1, 2, 3, 4]
    assert run.metrics["train.precision"] == "bf16" and math.isfinite(run.metrics["test.loss"])
    report = json.loads((run.dir / "model" / "adalora_ranks.json").read_text(encoding="utf-8"))
    assert report["budget"]["final"] == 8
    loaded = tuneforge.load(run.dir, precision="fp32")
    assert all(math.isfinite(v) for p in loaded.predict(["great crew thanks"]) for v in p["scores"].values())


def test_early_stopping_snapshot_brings_back_the_best_steps_ranks():
    """The loop's best-weights snapshot holds the allocator's state too: after more allocations change the
    ranks, restoring the snapshot gives the best step's ranks and outputs, not the last step's."""
    from tuneforge.training.loop import _best_state, _restore_best

    batch = llama_batch()
    method = make(12, **SMALL)
    model = method.apply(llama_backbone())
    train(method, model, batch, steps=5)
    best, ranks, expected = _best_state(model, method), kept(model), logits(model, batch)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-2)
    for step in range(6, 13):  # on to the end of the schedule: the budget is reached
        model(**batch).loss.backward()
        optimizer.step()
        method.after_step(model, step)
        optimizer.zero_grad(set_to_none=True)
    assert kept(model) != ranks, "the test needs the ranks to change after the snapshot"
    _restore_best(model, method, best)
    assert kept(model) == ranks
    torch.testing.assert_close(logits(model, batch), expected, atol=1e-6, rtol=0)
