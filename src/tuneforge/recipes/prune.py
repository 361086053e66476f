"""Prune a finished run, fine-tune it, and measure both: ``tuneforge prune RUN_DIR OUT --heads 0.5``.

    load the run (merging lora / ia3 into the weights if asked)  ->  measure (size, texts/s, test metrics)
    prune: heads by importance (compression/heads.py) or weights by magnitude (compression/magnitude.py)
    measure again  ->  fine-tune on the run's own training data and config (fit)  ->  measure again
    write OUT: a normal run folder (config.yaml, metrics.json, model/ ...) plus prune.yaml and compression.md

OUT is written under a temporary name and renamed when complete: a failed or interrupted prune leaves
nothing behind, and an existing folder is never touched.
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from tuneforge.compression import heads as head_pruning
from tuneforge.compression import magnitude as magnitude_pruning
from tuneforge.compression.config import PruneConfig
from tuneforge.compression.finetune import finetune, make_setting, stamp
from tuneforge.compression.measure import first_texts, markdown_table, measure
from tuneforge.config import TrainConfig, dump_config, load_config
from tuneforge.data.source import load_splits
from tuneforge.data.splits import subsample_stratified
from tuneforge.errors import TuneforgeError
from tuneforge.models.first_token import remove_first_token_shortcut, use_first_token_shortcut
from tuneforge.models.precision import resolve_precision
from tuneforge.recipes.runfolder import (check_new_folder, environment, require_text_classification, update_status,
                                         write_json)
from tuneforge.recipes.train import resolve_device
from tuneforge.run import Run
from tuneforge.training.batching import encode
from tuneforge.training.checkpoint import write_atomic_folder

console = Console(stderr=True)


def plain_model(run: Run, merge: bool, flag: str = "--merge"):
    """The run's model as a plain transformers classifier, or a clear refusal."""
    method = run.config.method.name
    for section, how in (("prompt", "through its cloze template and verbalizer (prompt:)"),
                         ("contrastive", "from the mean-pooled embedding (contrastive:)")):
        if getattr(run.config, section) is not None:
            raise TuneforgeError(f"{run.dir} predicts {how}; compression measures, trains and copies a plain "
                                 "classifier, which would not be that model. Compress a run trained without "
                                 f"{section}:.")
    if not getattr(run.method, "saves_base", False):
        if not run.method.merges:
            raise TuneforgeError(f"{run.dir} is a {method} run: it adds modules or virtual tokens that a plain "
                                 "transformers model does not have, so it cannot be pruned or copied. Compress a "
                                 "full, freeze, bitfit, lora, adalora or ia3 run.")
        if not merge:
            raise TuneforgeError(f"{run.dir} is a {method} run: its weights are the base model plus the method's "
                                 f"own. Add {flag} to fold {method} into the base weights first (the pruned model "
                                 "is then a plain model that fine-tunes in full).")
    model = run.method.merge(run.model)
    remove_first_token_shortcut(model)
    return model.float()


def prune(run_dir: str | Path, out: str | Path, *, heads: float | None = None, magnitude: float | None = None,
          finetune_epochs: float = 1, overrides: list[str] | None = None, progress: bool = True,
          **options) -> Run:
    """Prune the run in ``run_dir`` (``heads``: fraction of attention heads, or ``magnitude``: weight sparsity),
    fine-tune for ``finetune_epochs`` on its training data and write the run folder ``out``.

    ``overrides`` (``train.learning_rate=5e-5``) change the fine-tune's config (by default the run's own);
    ``options`` are the other :class:`PruneConfig` fields (scope, min_heads_per_layer, merge, ...).
    """
    for flag, value, example in (("--heads", heads, "0.5 removes half of the heads"),
                                 ("--magnitude", magnitude, "0.5 zeroes half of the weights")):
        if value is not None and not 0 < value < 1:
            raise TuneforgeError(f"{flag} {value}: give a fraction between 0 and 1, exclusive ({example}).")
    if finetune_epochs < 0:
        raise TuneforgeError(f"--finetune-epochs {finetune_epochs}: give 0 (no fine-tune) or more.")
    for override in overrides or []:  # it replaced --finetune-epochs, while the table still said the flag's value
        if override.replace(" ", "").startswith("train.epochs="):
            raise TuneforgeError(f"{override}: the fine-tune's epochs are --finetune-epochs N (finetune_epochs= in "
                                 f"Python); remove {override}.")
    cfg = load_config(PruneConfig, data={"heads": heads, "magnitude": magnitude, "finetune_epochs": finetune_epochs,
                                         **options})
    out = Path(out)
    check_new_folder(out, "OUT")
    run = Run.load(run_dir, precision="fp32")
    require_text_classification(run.config.task, str(run.dir), "tuneforge prune", "Prune a classifier's run folder.")
    model = plain_model(run, cfg.merge)
    epochs = [f"train.epochs={cfg.finetune_epochs}"] if cfg.finetune_epochs else []
    source = run.config.model_dump(mode="json") | {"name": f"{run.config.name}-pruned", "method": {"name": "full"},
                                                   "output_dir": str(out)}
    train_cfg = load_config(TrainConfig, data=source, overrides=epochs + list(overrides or []))
    device = resolve_device(train_cfg.train.device)
    precision = resolve_precision(train_cfg.train.precision, device)
    splits = load_splits(train_cfg.data, train_cfg.train.seed)
    if list(splits.labels) != list(run.labels):
        raise TuneforgeError(f"The data's labels {splits.labels} differ from the run's {run.labels}; the fine-tune "
                             "uses the run's own data: remove the data.* overrides.")
    train_data = None  # the run's own training data, with its augment: copies as train made them
    if train_cfg.augment is not None and cfg.finetune_epochs:
        from tuneforge.augment import augment_examples
        from tuneforge.models.backbones import resolve_model

        augmented = augment_examples(splits.train, train_cfg.augment, resolve_model(run.config.model),
                                     seed=train_cfg.train.seed)
        train_data = encode(augmented, run.tokenizer, splits.labels, train_cfg.data.max_length)
    setting = make_setting(splits, run.tokenizer, train_cfg, device, precision)
    kwargs = setting.inference_kwargs()
    speed = first_texts(setting.enc["test"], cfg.speed_samples)
    model.to(device)
    if train_cfg.train.first_token_shortcut:  # as the fine-tuned model will run: the same speed-ups before and after
        use_first_token_shortcut(model)

    def measured(m) -> dict[str, float]:
        return measure(m, setting.enc["test"], speed, splits.labels, **kwargs)

    console.print(f"measuring {escape(str(run.dir))} ...")
    columns = {"before": measured(model)}
    details: dict = {}
    if cfg.heads is not None:
        sample = subsample_stratified(splits.train, min(cfg.importance_samples, len(splits.train)),
                                      seed=train_cfg.train.seed)
        scores = head_pruning.head_importance(model, encode(sample, run.tokenizer, splits.labels,
                                                            train_cfg.data.max_length),
                                              batch_size=train_cfg.train.batch_size, device=device,
                                              pad_id=setting.pad_id, padding_side=setting.padding_side)
        removed = head_pruning.choose_heads(scores, cfg.heads, cfg.min_heads_per_layer)
        before_heads = sum(head_pruning.head_counts(model))
        head_pruning.prune_heads(model, removed)
        details = {"heads_before": before_heads, "heads_after": sum(head_pruning.head_counts(model)),
                   "heads_per_layer": head_pruning.head_counts(model), "removed_heads": removed,
                   "importance": [[round(v, 5) for v in row] for row in scores.tolist()]}
        columns["pruned"] = measured(model)
        finish = None
    else:
        magnitude_pruning.magnitude_prune(model, cfg.magnitude, cfg.scope)
        columns["pruned"] = measured(model)
        finish = magnitude_pruning.make_permanent

    def write(tmp: Path) -> None:
        cfg_saved = train_cfg.model_copy(update={"output_dir": out})
        (tmp / "config.yaml").write_text(dump_config(cfg_saved), encoding="utf-8")
        (tmp / "prune.yaml").write_text(dump_config(cfg), encoding="utf-8")
        write_json(tmp / "labels.json", splits.labels)
        update_status(tmp, status="running", name=train_cfg.name, started=stamp(), source_run=str(run.dir.resolve()),
                      source_method=run.config.method.name, precision=precision, device=str(device),
                      environment=environment())
        metrics = finetune(model, run.tokenizer, train_cfg, splits, setting, tmp, progress=progress,
                           epochs_done=not cfg.finetune_epochs, before_save=finish, train_data=train_data)
        if cfg.magnitude is not None:
            details["sparsity"] = magnitude_pruning.sparsity(model)
        columns["after"] = measured(model)
        metrics |= {f"{name}.{k}": v for name, col in columns.items() for k, v in col.items()}
        metrics |= {f"prune.{k}": v for k, v in details.items() if k not in ("importance", "removed_heads")}
        write_json(tmp / "metrics.json", metrics)
        write_json(tmp / "prune.json", {"source_run": str(run.dir.resolve()), "settings": cfg.model_dump(),
                                        **details, "measurements": columns})
        table = markdown_table({"before": columns["before"], "pruned, no fine-tune": columns["pruned"],
                                f"pruned + {cfg.finetune_epochs:g} epoch(s)": columns["after"]})
        (tmp / "compression.md").write_text(f"# {train_cfg.name}: pruned from {run.dir}\n\n{table}",
                                            encoding="utf-8")
        update_status(tmp, status="complete", finished=time.strftime("%Y-%m-%dT%H:%M:%S"))
        console.print(table)

    write_atomic_folder(out, write)
    return Run.load(out)
