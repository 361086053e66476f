"""Contrastive few-shot training, SetFit's recipe (Tunstall et al. 2022, arXiv:2209.11055) on tuneforge's loop.

    1. pairs:       2 x iterations x N pairs of the few labelled examples (fewshot/pairs.py), target 1 for
                    the same class, 0 otherwise;
    2. body:        the encoder learns from them with the cosine-similarity loss
                        L = mean_pairs (cos(e_i, e_j) - target)^2,   e = mean-pooled, unit-length embedding
                    (fewshot/pooling.py), or CoSENT (``loss: cosent``, fewshot/losses.py), through
                    ``method:`` (full or lora or any other method);
    3. head:        logistic regression on the embeddings (SetFit's default head), written into the
                    classifier's linear layer, so the model is a plain classifier again;
    4. end-to-end:  (head: end_to_end) the whole classifier then trains with cross-entropy on the few
                    examples for ``train.epochs``: the differentiable-head variant of SetFit, started
                    from the logistic regression instead of from random weights;
    5. soup:        (members: M > 1) steps 1-4 run M times from the same pretrained weights with seeds
                    train.seed, train.seed + 1, ... (other pairs, other batch order) and the run's model is
                    the average of their weights (a uniform model soup, Wortsman et al. 2022,
                    arXiv:2203.05482): one model, as fast to predict as one member, trained M times.

Why tuneforge's own loop rather than sentence-transformers (which the ``setfit`` library runs on): the
bar is accuracy at no more wall time on a CPU, and our loop gives bf16 autocast (~2x on AMX/AVX-512-BF16
CPUs), batches padded to their longest pair instead of to a fixed length, fast dropout and every PEFT
method for the body; and the result is an ordinary tuneforge run folder (``tuneforge predict``/``eval``,
``tuneforge.load``, export), not a second model format. Both sides are measured in
bench/fewshot_vs_setfit.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.markup import escape
from torch import nn

from tuneforge.errors import TuneforgeError
from tuneforge.evaluation.inference import predict_proba
from tuneforge.evaluation.metrics import classification_metrics, mean_loss
from tuneforge.evaluation.plots import plot_confusion
from tuneforge.fewshot.losses import PAIR_LOSSES, resolve_loss
from tuneforge.fewshot.pairs import make_pairs
from tuneforge.fewshot.pooling import MeanPooling, use_mean_pooling
from tuneforge.methods import build_method
from tuneforge.methods.params import count_parameters
from tuneforge.models.attention import use_training_attention
from tuneforge.models.backbones import load_backbone
from tuneforge.models.precision import Precision, autocast
from tuneforge.recipes.runfolder import flatten, write_json
from tuneforge.run import Run
from tuneforge.training.batching import Encoded, batch_order, collate, encode
from tuneforge.training.fast_dropout import use_fast_dropout
from tuneforge.training.loop import count_steps, fit

console = Console(stderr=True)


def train_contrastive(cfg: Any, run_dir: Path, splits: Any, device: torch.device, precision: Precision,
                      progress: bool = True) -> Run:
    """Steps 1-4 above on ``splits`` (and step 5 with ``members: M > 1``); writes the run folder like
    ``tuneforge train`` and returns the Run."""
    c = cfg.contrastive
    labels = splits.labels
    backbone = load_backbone(cfg.model, labels)
    tokenizer = backbone.tokenizer
    enc = {name: encode(getattr(splits, name), tokenizer, labels, cfg.data.max_length)
           for name in ("train", "validation", "test")}
    train, val = enc["train"], enc["validation"]
    eval_kwargs: dict[str, Any] = dict(batch_size=64, precision=precision, device=device,
                                       pad_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0,
                                       padding_side=getattr(tokenizer, "padding_side", "right"))

    def evaluate(model: nn.Module) -> dict[str, float]:
        probs = predict_proba(model, val, **eval_kwargs)
        m = classification_metrics(val.labels, probs.argmax(-1).tolist(), labels)
        return {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "loss": mean_loss(probs, val.labels)}

    members = [_train_member(cfg, k, backbone if k == 0 else load_backbone(cfg.model, labels),
                             run_dir if k == 0 else run_dir / f"member-{k}", train, labels, evaluate, device,
                             precision, progress) for k in range(c.members)]
    first = members[0]
    backbone, method, model = first.backbone, first.method, first.model
    if len(members) > 1:
        # 5. The soup: one model whose every weight is the mean of the members' (they share the start).
        average_weights(model, [m.model for m in members[1:]])
        final_val = {"step": first.evals[-1]["step"] if first.evals else 0, **evaluate(model)}
    else:
        final_val = first.evals[-1] if first.evals else {"step": 0, **evaluate(model)}
    n_trainable, n_total = count_parameters(model)
    n_pairs = sum(m.pairs for m in members)
    body_seconds = sum(m.body.state.seconds for m in members)
    head_seconds = sum(m.head_seconds for m in members)

    started = time.perf_counter()
    probs = predict_proba(model, enc["test"], **eval_kwargs)
    test = classification_metrics(enc["test"].labels, probs.argmax(-1).tolist(), labels)
    test["loss"] = mean_loss(probs, enc["test"].labels)
    test["seconds"] = time.perf_counter() - started
    seconds = body_seconds + head_seconds
    metrics = flatten("", {
        "train": {"seconds": seconds, "samples": n_pairs * c.epochs + len(train) * len(members),
                  "samples_per_second": sum(m.body.state.samples for m in members) / max(body_seconds, 1e-9),
                  "contrastive_seconds": body_seconds, "head_seconds": head_seconds, "pairs": n_pairs,
                  "contrastive_steps": sum(m.body.state.step for m in members), "members": len(members),
                  "pair_loss": first.loss, "precision": precision},
        "trainable_parameters": n_trainable, "total_parameters": n_total,
        "trainable_percent": 100 * n_trainable / n_total,
        "validation": {k: v for k, v in final_val.items() if k not in ("step", "epoch")},
        "test": test,
    })
    write_json(run_dir / "metrics.json", metrics)
    plot_confusion(test["confusion_matrix"], labels, run_dir / "confusion_matrix.png",
                   f"{cfg.name}: test accuracy {test['accuracy']:.3f}")

    from tuneforge.recipes.train import save_model

    save_model(run_dir, backbone, method, model, tokenizer, labels)
    console.print(f"test accuracy {test['accuracy']:.4f}, macro-F1 {test['macro_f1']:.4f}; {seconds:.1f} s "
                  f"training; run folder: {escape(str(run_dir))}")
    return Run.load(run_dir)


@dataclass
class Member:
    """One trained contrastive model (steps 1-4) and what its training cost."""

    backbone: Any
    method: Any
    model: nn.Module
    pairs: int
    body: Any  # the contrastive phase's FitResult
    head_seconds: float
    evals: list[dict]
    loss: str  # the pair loss it trained with (``auto`` resolved)


def _train_member(cfg: Any, k: int, backbone: Any, run_dir: Path, train: Encoded, labels: list[str],
                  evaluate: Callable[[nn.Module], dict[str, float]], device: torch.device, precision: Precision,
                  progress: bool) -> Member:
    """Steps 1-4 for member ``k``: its pairs and both phases' shuffling use seed ``train.seed + k``."""
    c = cfg.contrastive
    loop = cfg.train.model_copy(update={"seed": cfg.train.seed + k})
    tokenizer = backbone.tokenizer
    if loop.fast_dropout:
        use_training_attention(backbone.model)
    pairs = make_pairs(train.labels, c.iterations, loop.seed)
    loss_name = resolve_loss(c.loss, train.labels)
    # The contrastive phase runs through the ordinary loop with its own settings; train: is the head's (its
    # label smoothing and R-Drop are the head's cross-entropy's, not the pair loss's).
    body_loop = loop.model_copy(update=dict(epochs=c.epochs, max_steps=None, batch_size=c.batch_size,
                                            gradient_accumulation_steps=1, learning_rate=c.learning_rate,
                                            warmup=c.warmup, eval_every=None, early_stopping_patience=None,
                                            checkpoint_every=None, label_smoothing=0.0, rdrop_alpha=0.0))
    method = build_method(cfg.method)
    if c.members > 1 and not method.saves_base:
        raise TuneforgeError(f"contrastive.members={c.members} averages the members' whole weights, but method "
                             f"{cfg.method.name} trains and saves only its own parameters; use method: full, or "
                             "contrastive.members=1.")
    head_steps = count_steps(len(train), loop) if c.head == "end_to_end" else 0
    method.plan(count_steps(len(pairs), body_loop) + head_steps)
    model = method.apply(backbone)
    pooling = use_mean_pooling(model, c.normalize)
    if loop.fast_dropout:
        use_fast_dropout(model)
    member = f" (member {k + 1} of {c.members})" if c.members > 1 else ""
    console.print(f"[bold]{escape(cfg.name)}[/]{member}: contrastive ({cfg.method.name} body, {c.head} head, "
                  f"{loss_name} loss) on {escape(backbone.path)}: {len(pairs):,} pairs of {len(train):,} examples, "
                  f"precision {precision}")
    if precision == "bf16" and not method.saves_base:
        for param in model.parameters():  # as in recipes/train.py: frozen weights held in bf16
            if not param.requires_grad:
                param.data = param.data.to(torch.bfloat16)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    side = getattr(tokenizer, "padding_side", "right")

    # 1-2. The pairs as an Encoded whose "texts" are both sides joined: only their lengths (for batching by
    # length) and the batch's indices reach the loss, which encodes the two sides in one forward pass.
    pair_data = Encoded(input_ids=[train.input_ids[i] + train.input_ids[j] for i, j, _ in pairs],
                        labels=[int(t) for _, _, t in pairs])
    targets = torch.tensor([t for _, _, t in pairs])
    pair_loss = PAIR_LOSSES[loss_name]

    def pairs_loss(model: nn.Module, inputs: dict[str, torch.Tensor], indices: list[int]) -> torch.Tensor:
        sides = [pairs[i][0] for i in indices] + [pairs[i][1] for i in indices]
        batch = collate(train, sides, pad_id, side)
        batch.pop("labels")
        model(**{name: v.to(device) for name, v in batch.items()})
        e = pooling.last.float()  # (2B, H)
        u, v = e[:len(indices)], e[len(indices):]
        cos = nn.functional.cosine_similarity(u, v, dim=-1)  # (B,)
        return pair_loss(cos, targets[indices].to(device), c.scale)

    (run_dir / "contrastive").mkdir(parents=True, exist_ok=True)
    body = fit(model, pair_data, body_loop, run_dir=run_dir / "contrastive", precision=precision, device=device,
               pad_id=pad_id, padding_side=side, progress=progress, method=method, loss_fn=pairs_loss)

    # 3. Logistic regression on the embeddings, written into the classifier's linear layer.
    started = time.perf_counter()
    from sklearn.linear_model import LogisticRegression

    embeddings = embed(model, train, pooling, precision=precision, device=device, pad_id=pad_id, padding_side=side)
    head = LogisticRegression(C=c.head_c, max_iter=1000).fit(embeddings, train.labels)
    set_head(model, head.coef_, head.intercept_, classes=head.classes_, n_labels=len(labels))
    head_seconds = time.perf_counter() - started

    # 4. End to end: the ordinary loop with cross-entropy, from the logistic-regression head.
    evals: list[dict] = []
    if c.head == "end_to_end":
        result = fit(model, train, loop, run_dir=run_dir, precision=precision, device=device, pad_id=pad_id,
                     padding_side=side, evaluate=lambda: evaluate(model), progress=progress, method=method)
        head_seconds += result.state.seconds
        evals = result.state.evals
    return Member(backbone=backbone, method=method, model=model, pairs=len(pairs), body=body,
                  head_seconds=head_seconds, evals=evals, loss=loss_name)


@torch.no_grad()
def average_weights(model: nn.Module, others: list[nn.Module]) -> None:
    """Model soup (Wortsman et al. 2022, arXiv:2203.05482): every floating-point weight and buffer of
    ``model`` becomes the mean over ``model`` and ``others`` (same architecture, fine-tuned from the same
    start, so their average stays in one low-loss basin)."""
    states = [dict(m.state_dict()) for m in others]
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point():
            total = tensor.float().clone()
            for state in states:
                total += state[name].float()
            tensor.copy_(total / (1 + len(states)))


@torch.inference_mode()
def embed(model: nn.Module, data: Encoded, pooling: MeanPooling, *, precision: Precision, device: torch.device,
          pad_id: int, padding_side: str = "right", batch_size: int = 64) -> np.ndarray:
    """Mean-pooled embeddings, (N, H), in the order of ``data``."""
    was_training = model.training
    model.eval()
    out: np.ndarray | None = None
    try:
        for batch in batch_order(data.lengths(), batch_size, seed=0, shuffle=False, group_by_length=True):
            inputs = collate(data, batch, pad_id, padding_side)
            inputs.pop("labels")
            with autocast(precision, device):
                model(**{k: v.to(device) for k, v in inputs.items()})
            e = pooling.last.float().cpu().numpy()
            if out is None:
                out = np.zeros((len(data), e.shape[1]), dtype=np.float32)
            out[batch] = e
    finally:
        model.train(was_training)
    return out if out is not None else np.zeros((0, 0), dtype=np.float32)


@torch.no_grad()
def set_head(model: nn.Module, coef: np.ndarray, intercept: np.ndarray, classes: np.ndarray, n_labels: int) -> None:
    """Write a logistic regression into every ``classifier`` linear layer (peft keeps a trainable copy).

    scikit-learn gives one row per class, or for two classes one row w for class 1: softmax over
    (0, w.x + b) is the same sigmoid, so class 0 gets a zero row.
    """
    hidden = coef.shape[1]
    weight, bias = np.zeros((n_labels, hidden), dtype=np.float32), np.zeros(n_labels, dtype=np.float32)
    rows = [1] if len(coef) == 1 else list(range(len(coef)))
    for row, k in zip(rows, range(len(coef))):
        weight[int(classes[row])], bias[int(classes[row])] = coef[k], intercept[k]
    layers = [m for name, m in model.named_modules() if isinstance(m, nn.Linear) and m.out_features == n_labels
              and m.in_features == hidden and "classifier" in name]
    if not layers:
        raise RuntimeError(f"no classifier layer ({hidden} -> {n_labels}) in {type(model).__name__}")
    for layer in layers:
        layer.weight.copy_(torch.from_numpy(weight))
        if layer.bias is not None:
            layer.bias.copy_(torch.from_numpy(bias))
