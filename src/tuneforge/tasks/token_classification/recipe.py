"""The training recipe's body for token classification: setup, fit, evaluate, save (the same steps as
recipes/train.py's ``_train``, with per-token labels, entity-level metrics and no [CLS] shortcut: every
position's output is read, so the first-token shortcut must stay off)."""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from tuneforge.errors import TuneforgeError
from tuneforge.evaluation.plots import plot_loss
from tuneforge.methods.params import count_parameters
from tuneforge.models.backbones import load_backbone
from tuneforge.recipes.runfolder import write_json
from tuneforge.tasks.token_classification.data import sample
from tuneforge.tasks.token_classification.encoding import encode_tokens
from tuneforge.tasks.token_classification.inference import predict_words, subword_probs
from tuneforge.tasks.token_classification.metrics import entity_metrics
from tuneforge.training import distributed
from tuneforge.training.loop import fit

console = Console(stderr=True)
# Methods that add virtual tokens (prompt, ptuning, prefix) shift or hide the positions a tag belongs to.
SUPPORTED_METHODS = ("full", "freeze", "bitfit", "lora", "adalora", "ia3", "adapter")


def evaluate_split(model, examples, encoded, labels, **kwargs) -> dict:
    """Entity metrics and loss of ``model`` on tagged ``examples`` (already ``encoded``)."""
    probs, loss = subword_probs(model, encoded, **kwargs)
    predicted = [tags for tags, _ in predict_words(examples, encoded, probs, labels)]
    metrics = entity_metrics([e.tags for e in examples], predicted)
    metrics["loss"] = loss
    return metrics


def check_config(cfg) -> None:
    """Options token classification cannot use, refused before the run folder is made."""
    if cfg.method.name not in SUPPORTED_METHODS:
        raise TuneforgeError(f"method {cfg.method.name} is not available for token classification: it adds virtual "
                             f"tokens, which shift the positions tags belong to. Use one of: "
                             f"{', '.join(SUPPORTED_METHODS)}.")
    if cfg.data.text_pair_column is not None:
        raise TuneforgeError("data.text_pair_column: token classification tags single sentences; remove it.")
    if cfg.prompt is not None:
        raise TuneforgeError("prompt: prompt-based training (PET) scores label words for a whole text; token "
                             "classification tags every token. Remove the prompt: section.")
    for field in ("contrastive", "augment"):
        if getattr(cfg, field) is not None:
            raise TuneforgeError(f"{field}: is for text classification (it edits or pairs whole texts, which would "
                                 f"break the tags); remove the {field}: section for token classification.")


def train_body(cfg, run_dir: Path, splits, device, precision, resume: bool, progress: bool, stop_after, tracker):
    from tuneforge.recipes.train import _read_log, apply_method, fit_metrics, save_model, wait_for_main
    from tuneforge.run import Run

    loop, labels = cfg.train, splits.labels
    console.quiet = not distributed.is_main()  # under torchrun one summary, from rank 0
    backbone = load_backbone(cfg.model, labels, cfg.task)
    tokenizer = backbone.tokenizer
    method, model = apply_method(backbone, cfg, len(splits.train), precision)
    n_trainable, n_total = count_parameters(model)
    console.print(f"[bold]{escape(cfg.name)}[/]: token classification, {cfg.method.name} on {escape(backbone.path)} "
                  f"- trainable parameters {n_trainable:,} of {n_total:,} ({100 * n_trainable / n_total:.3f}%), "
                  f"precision {precision}, {len(splits.train):,} training sentences, tags {', '.join(labels)}")

    max_len = cfg.data.max_length
    enc = {name: encode_tokens(getattr(splits, name), tokenizer, labels, max_len)
           for name in ("train", "validation", "test")}
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    side = getattr(tokenizer, "padding_side", "right")
    kwargs = dict(batch_size=max(64, loop.batch_size), precision=precision, device=device, pad_id=pad_id,
                  padding_side=side)
    val_examples, val = splits.validation, enc["validation"]
    if cfg.data.max_eval_samples and cfg.data.max_eval_samples < len(val_examples):
        val_examples = sample(val_examples, cfg.data.max_eval_samples, loop.seed)
        val = encode_tokens(val_examples, tokenizer, labels, max_len)

    def evaluate() -> dict[str, float]:
        m = evaluate_split(model, val_examples, val, labels, **kwargs)
        # macro_f1 (the default train.metric) is the entity-level macro-F1 here; f1 the micro one.
        return {k: m[k] for k in ("accuracy", "macro_f1", "f1", "precision", "recall", "loss")}

    result = fit(model, enc["train"], loop, run_dir=run_dir, precision=precision, device=device, pad_id=pad_id,
                 padding_side=side, evaluate=evaluate, resume=resume, progress=progress, stop_after=stop_after,
                 method=method, on_log=tracker.log)
    state = result.state
    if not distributed.is_main():
        return wait_for_main(run_dir)
    started = time.perf_counter()
    test = evaluate_split(model, splits.test, enc["test"], labels, **kwargs)
    test["seconds"] = time.perf_counter() - started
    metrics = fit_metrics(state, loop, precision, device, n_trainable, n_total, test)
    write_json(run_dir / "metrics.json", metrics)
    log_records = [r for r in _read_log(run_dir / "log.jsonl") if r.get("type") == "train"]
    plot_loss(log_records, state.evals, run_dir / "loss.png", loop.metric)

    save_model(run_dir, backbone, method, model, tokenizer, labels)
    tracker.finish(run_dir, metrics)
    console.print(f"test entities: precision {test['precision']:.4f}, recall {test['recall']:.4f}, "
                  f"F1 [bold]{test['f1']:.4f}[/] (macro-F1 {test['macro_f1']:.4f}, tag accuracy "
                  f"{test['accuracy']:.4f}); run folder: {escape(str(run_dir))}")
    distributed.barrier()  # the other ranks wait in wait_for_main until model/ is written
    return Run.load(run_dir)
