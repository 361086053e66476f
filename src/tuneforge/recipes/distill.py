"""Distil a finished run into a smaller student: ``tuneforge distill CONFIG.yaml``.

    load the teacher run  ->  build the student (the teacher's model with fewer layers, or another backbone)
    teacher logits for every training text, once (or every step: distill.teacher_logits: online)
    fit the student with the distillation loss (compression/distill.py) in the usual training loop
    measure teacher and student (size, texts/s, test metrics) and write a normal run folder

The run folder is written under a temporary name and renamed when complete. Its config.yaml is the
training part (so ``tuneforge.load``, predict, eval and export work); distill.yaml is the whole config.
"""

from __future__ import annotations

import time
from pathlib import Path

import yaml
from rich.console import Console

from tuneforge.compression.config import DistillConfig
from tuneforge.compression.distill import DistillLoss, student_from_teacher, teacher_logits
from tuneforge.compression.finetune import finetune, make_setting, stamp
from tuneforge.compression.measure import first_texts, markdown_table, measure
from tuneforge.config import dump_config, load_config
from tuneforge.data.records import Example
from tuneforge.data.source import load_splits
from tuneforge.errors import TuneforgeError
from tuneforge.models.backbones import load_backbone
from tuneforge.models.first_token import use_first_token_shortcut
from tuneforge.models.precision import resolve_precision
from tuneforge.recipes.prune import plain_model
from tuneforge.recipes.runfolder import (check_new_folder, environment, new_run_dir, refuse_sections,
                                         require_text_classification, update_status, write_json)
from tuneforge.recipes.train import resolve_device
from tuneforge.run import Run
from tuneforge.training.batching import Encoded, encode
from tuneforge.training.checkpoint import write_atomic_folder

console = Console(stderr=True)


def as_distill_config(config: DistillConfig | dict | str | Path, overrides: list[str] | None) -> DistillConfig:
    if isinstance(config, DistillConfig):
        data = config.model_dump(mode="json", exclude_unset=True)
        return load_config(DistillConfig, data=data, overrides=overrides)
    if isinstance(config, dict):
        return load_config(DistillConfig, data=config, overrides=overrides)
    return load_config(DistillConfig, path=config, overrides=overrides)


def read_texts(path: Path, text_column: str) -> list[Example]:
    """Unlabelled texts: a .txt file (one per line) or a data file's text column."""
    from tuneforge.data import read_examples

    if not path.is_file():
        raise TuneforgeError(f"distill.unlabelled: {path.resolve()} does not exist (or is a folder). Give a .txt "
                             "file with one text per line, or a .jsonl/.csv/.tsv file with a text column.")
    if path.suffix == ".txt":
        return [Example(text=line.strip()) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [Example(text=e.text) for e in read_examples(path, text_column=text_column, require_label=False)]


def distill(config: DistillConfig | dict | str | Path, overrides: list[str] | None = None, *,
            progress: bool = True) -> Run:
    """Train a student on a teacher run's predictions and the labels; returns the student's run."""
    cfg = as_distill_config(config, overrides)
    d = cfg.distill
    run_dir = new_run_dir(cfg.name, cfg.output_dir)
    check_new_folder(run_dir, "output_dir")
    if not (d.teacher / "config.yaml").exists() or not (d.teacher / "model").is_dir():
        state = "does not exist" if not d.teacher.exists() else "holds no finished run (no config.yaml and model/)"
        raise TuneforgeError(f"distill.teacher: {d.teacher.resolve()} {state}. Give the folder of a finished "
                             "`tuneforge train` run.")
    require_text_classification(cfg.task, f"config {config}" if isinstance(config, (str, Path)) else "This config",
                                "tuneforge distill", "Remove task: (a distilled student is a text classifier).")
    refuse_sections(cfg, "tuneforge distill")
    teacher = Run.load(d.teacher, precision="fp32")
    require_text_classification(teacher.config.task, f"distill.teacher {d.teacher}", "tuneforge distill",
                                "Give the folder of a text classification run.")
    if teacher.config.prompt is not None:  # its logits come from texts rendered into the template, not the texts
        raise TuneforgeError(f"distill.teacher {d.teacher} predicts through a cloze template (prompt:), which "
                             "distill does not render; give a teacher trained without prompt:.")
    train_cfg = cfg.train_config()
    device = resolve_device(cfg.train.device)
    precision = resolve_precision(cfg.train.precision, device)
    splits = load_splits(cfg.data, cfg.train.seed)
    if list(splits.labels) != list(teacher.labels):
        raise TuneforgeError(f"distill.teacher was trained on the labels {teacher.labels}, but data gives "
                             f"{splits.labels}; distil on data with the teacher's labels.")
    unlabelled = read_texts(d.unlabelled, cfg.data.text_column) if d.unlabelled is not None else []

    teacher_model = teacher.model
    if d.student.layers is not None:
        teacher_model = plain_model(teacher, merge=True)
        student, chosen = student_from_teacher(teacher_model, d.student.layers)
        tokenizer = teacher.tokenizer
        origin = {"layers_of_teacher": chosen}
        train_cfg = train_cfg.model_copy(update={"model": teacher.config.model})
    else:
        backbone = load_backbone(d.student.model, splits.labels)
        student, tokenizer, origin = backbone.model, backbone.tokenizer, {"model": backbone.path}
        train_cfg = train_cfg.model_copy(update={"model": d.student.model})
    if teacher.config.train.first_token_shortcut:
        use_first_token_shortcut(teacher_model)
    teacher_model.to(device).eval()
    train_cfg = train_cfg.model_copy(update={"output_dir": run_dir})

    if cfg.augment is not None:  # edited copies of the training texts, learned from the teacher and the labels
        from tuneforge.augment import augment_examples
        from tuneforge.models.backbones import resolve_model

        splits.train = augment_examples(splits.train, cfg.augment, resolve_model(train_cfg.model), seed=cfg.train.seed)
    setting = make_setting(splits, tokenizer, train_cfg, device, precision)
    examples = list(splits.train) + unlabelled
    train_data = setting.enc["train"]
    if unlabelled:
        if train_data.token_type_ids is not None:
            raise TuneforgeError("distill.unlabelled adds single texts, but the training data has text pairs.")
        extra = encode(unlabelled, tokenizer, splits.labels, cfg.data.max_length)
        train_data = Encoded(train_data.input_ids + extra.input_ids, train_data.labels + extra.labels)
    t_pad = teacher.tokenizer.pad_token_id or 0
    t_side = getattr(teacher.tokenizer, "padding_side", "right")
    t_train = encode(examples, teacher.tokenizer, splits.labels, cfg.data.max_length)
    if d.teacher_logits == "cache":
        started = time.perf_counter()
        cache = teacher_logits(teacher_model, t_train, batch_size=max(64, cfg.train.batch_size), precision=precision,
                               device=device, pad_id=t_pad, padding_side=t_side)
        cache_seconds = time.perf_counter() - started
        loss = DistillLoss(d.temperature, d.alpha, cache=cache)
        console.print(f"teacher logits for {len(examples):,} texts in {cache_seconds:.1f} s")
    else:
        cache_seconds = 0.0
        loss = DistillLoss(d.temperature, d.alpha, teacher=teacher_model, teacher_data=t_train, pad_id=t_pad,
                           padding_side=t_side)

    def write(tmp: Path) -> None:
        (tmp / "config.yaml").write_text(dump_config(train_cfg), encoding="utf-8")
        full = cfg.model_dump(mode="json", exclude={"model", "output_dir"}) | {"output_dir": str(run_dir)}
        (tmp / "distill.yaml").write_text(yaml.safe_dump(full, sort_keys=False, allow_unicode=True), encoding="utf-8")
        write_json(tmp / "labels.json", splits.labels)
        update_status(tmp, status="running", name=cfg.name, started=stamp(), teacher=str(d.teacher.resolve()),
                      data={"train": len(splits.train), "unlabelled": len(unlabelled),
                            "validation": len(splits.validation), "test": len(splits.test)},
                      precision=precision, device=str(device), environment=environment())
        metrics = finetune(student, tokenizer, train_cfg, splits, setting, tmp, progress=progress, loss_fn=loss,
                           train_data=train_data)
        t_test = encode(splits.test, teacher.tokenizer, splits.labels, cfg.data.max_length)
        kwargs = {"batch_size": 64, "precision": precision, "device": device}
        columns = {"teacher": measure(teacher_model, t_test, first_texts(t_test, d.speed_samples), splits.labels,
                                      pad_id=t_pad, padding_side=t_side, **kwargs),
                   "student": measure(student, setting.enc["test"], first_texts(setting.enc["test"], d.speed_samples),
                                      splits.labels, **setting.inference_kwargs())}
        metrics |= {f"{name}.{k}": v for name, col in columns.items() for k, v in col.items()}
        metrics |= {"distill.teacher_logits": d.teacher_logits, "distill.teacher_logits_seconds": cache_seconds}
        write_json(tmp / "metrics.json", metrics)
        write_json(tmp / "distill.json", {"teacher": str(d.teacher.resolve()), **origin, "measurements": columns})
        table = markdown_table(columns)
        (tmp / "compression.md").write_text(f"# {cfg.name}: distilled from {d.teacher}\n\n{table}", encoding="utf-8")
        update_status(tmp, status="complete", finished=time.strftime("%Y-%m-%dT%H:%M:%S"))
        console.print(table)

    write_atomic_folder(run_dir, write)
    return Run.load(run_dir)
