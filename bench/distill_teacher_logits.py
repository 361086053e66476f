"""Cached or online teacher logits for distillation: which trains faster?

Builds the student of ``configs/airline-distill.yaml`` (or CONFIG), then trains it for ``--steps`` optimizer
steps with the training loop (``fit``) in turns: cached logits, online teacher, cached, online, ... (so both
see the same machine load) and reports the loop's own samples/s for each, plus the one-off cost of the cache
(one teacher pass over the training texts). Each turn starts from the same student weights.

    PYTHONPATH=src python bench/distill_teacher_logits.py [CONFIG] --steps 30 --rounds 2
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path

from tuneforge.compression.config import DistillConfig
from tuneforge.compression.distill import DistillLoss, student_from_teacher, teacher_logits
from tuneforge.config import load_config
from tuneforge.data.source import load_splits
from tuneforge.models.first_token import use_first_token_shortcut
from tuneforge.models.precision import resolve_precision
from tuneforge.recipes.prune import plain_model
from tuneforge.recipes.train import resolve_device
from tuneforge.run import Run
from tuneforge.training.batching import encode
from tuneforge.training.loop import fit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default="configs/airline-distill.yaml")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    cfg = load_config(DistillConfig, path=args.config, overrides=[f"train.max_steps={args.steps}"])
    teacher = Run.load(cfg.distill.teacher, precision="fp32")
    device = resolve_device(cfg.train.device)
    precision = resolve_precision(cfg.train.precision, device)
    splits = load_splits(cfg.data, cfg.train.seed)
    teacher_model = plain_model(teacher, merge=True)
    student, _ = student_from_teacher(teacher_model, cfg.distill.student.layers)
    use_first_token_shortcut(teacher_model)
    use_first_token_shortcut(student)
    teacher_model.eval()
    data = encode(splits.train, teacher.tokenizer, splits.labels, cfg.data.max_length)
    pad = teacher.tokenizer.pad_token_id or 0

    started = time.perf_counter()
    cache = teacher_logits(teacher_model, data, batch_size=64, precision=precision, device=device, pad_id=pad)
    cache_seconds = time.perf_counter() - started
    losses = {"cache": DistillLoss(cfg.distill.temperature, cfg.distill.alpha, cache=cache),
              "online": DistillLoss(cfg.distill.temperature, cfg.distill.alpha, teacher=teacher_model,
                                    teacher_data=data, pad_id=pad)}
    rates: dict[str, list[float]] = {mode: [] for mode in losses}
    for _ in range(args.rounds):
        for mode, loss in losses.items():
            model = copy.deepcopy(student)
            with tempfile.TemporaryDirectory() as tmp:
                state = fit(model, data, cfg.train, run_dir=Path(tmp), precision=precision, device=device,
                            pad_id=pad, progress=False, loss_fn=loss).state
            rates[mode].append(state.samples / state.seconds)
    epochs = cfg.train.epochs
    print(f"{len(data)} training texts, {args.steps} steps of {cfg.train.batch_size}, precision {precision}")
    print(f"cache: one teacher pass {cache_seconds:.1f} s ({len(data) / cache_seconds:.0f} texts/s)")
    for mode, values in rates.items():
        print(f"{mode}: {max(values):.1f} samples/s (best of {len(values)}: "
              f"{', '.join(f'{v:.1f}' for v in values)})")
    train_cache = epochs * len(data) / max(rates["cache"]) + cache_seconds
    train_online = epochs * len(data) / max(rates["online"])
    print(f"{epochs:g} epochs: cache {train_cache:.0f} s (pass included), online {train_online:.0f} s")


if __name__ == "__main__":
    main()
