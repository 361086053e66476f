"""The training recipe's continual part, called at four points of ``recipes/train.py``:

    start(cfg, splits)          before B's run folder exists: check A, align labels, add the rehearsal sample
    init_weights(backbone)      B's classifier gets A's weights (A's method merged in)
    penalty(model, ...)         EWC: A's Fisher and weights, for the loop to add to B's loss (or None)
    finish(model, ...)          A's test split through B's final model; continual.json and metrics
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from tuneforge.continual.ewc import EWC, fisher_diagonal
from tuneforge.continual.previous import PreviousRun, check_compatible, load_previous, load_weights, merged_weights
from tuneforge.continual.rehearsal import rehearsal_sample, seeded_sample
from tuneforge.data.records import DatasetSplits
from tuneforge.errors import TuneforgeError


@dataclasses.dataclass
class Continuation:
    """What B's run knows about A while it trains."""

    previous: PreviousRun
    settings: Any  # ContinualConfig
    previous_splits: DatasetSplits | None  # A's data, when rehearsal, EWC or the after-test need it
    rehearsed: int = 0
    ewc: EWC | None = None

    def init_weights(self, model) -> None:
        load_weights(model, merged_weights(self.previous), self.previous.dir)

    def penalty(self, model, tokenizer, max_length: int, *, seed: int, pad_id: int, padding_side: str, device,
                autocast) -> EWC | None:
        """EWC over ``model``'s trainable parameters, with the Fisher of a seeded sample of A's training split at
        A's weights (call it after :meth:`init_weights`, before training). None when ``ewc:`` is off."""
        if self.settings.ewc is None:
            return None
        from tuneforge.training.batching import encode

        assert self.previous_splits is not None  # loaded by start() whenever ewc is set
        sample = seeded_sample(self.previous_splits.train, self.settings.ewc.fisher_samples, seed + 1)
        data = encode(sample, tokenizer, self.previous.labels, max_length)
        fisher = fisher_diagonal(model, data, pad_id=pad_id, padding_side=padding_side, device=device,
                                 autocast=autocast)
        self.ewc = EWC(model, fisher, self.settings.ewc.strength)
        return self.ewc

    def finish(self, run_dir: Path, model, tokenizer, max_length: int, predict) -> dict[str, float]:
        """Score A's test split with B's final model (``predict(encoded) -> probabilities``); write
        continual.json; return the metrics.json entries."""
        from tuneforge.evaluation.metrics import classification_metrics
        from tuneforge.recipes.runfolder import write_json
        from tuneforge.training.batching import encode

        before = {k.removeprefix("test."): v for k, v in self.previous.metrics.items()
                  if k in ("test.accuracy", "test.macro_f1")}
        after: dict[str, float] = {}
        if self.settings.evaluate_previous and self.previous_splits is not None:
            test = encode(self.previous_splits.test, tokenizer, self.previous.labels, max_length)
            scores = classification_metrics(test.labels, predict(test).argmax(-1).tolist(), self.previous.labels)
            after = {"accuracy": scores["accuracy"], "macro_f1": scores["macro_f1"]}
        write_json(run_dir / "continual.json", {
            "previous": str(self.previous.dir), "previous_name": self.previous.config.name,
            "setting": "domain-incremental: one head over run A's labels; this run predicts A's and B's inputs alike",
            "labels": self.previous.labels,
            "rehearsal": {"samples": self.rehearsed} if self.settings.rehearsal is not None else None,
            "ewc": {**self.ewc.describe(), "fisher_samples": self.settings.ewc.fisher_samples}
            if self.ewc is not None else None,
            "previous_test_before": before, "previous_test_after": after,
        })
        out = {f"continual.previous_test_before.{k}": v for k, v in before.items()}
        return out | {f"continual.previous_test.{k}": v for k, v in after.items()}


def start(cfg, splits: DatasetSplits) -> tuple[DatasetSplits, Continuation]:
    """Check run A against this config, put B's labels in A's order, and add the rehearsal sample to B's
    training split. Raises before anything is written."""
    from tuneforge.methods import build_method, registry

    settings = cfg.continual
    if cfg.task != "text-classification":
        raise TuneforgeError(f"continual: continues text-classification runs; this config has task: {cfg.task}. "
                             "Remove the continual: section.")
    method = build_method(cfg.method)
    if not method.saves_base:
        whole = ", ".join(sorted(n for n, spec in registry().items() if getattr(spec.factory, "saves_base", False)))
        raise TuneforgeError(f"continual.previous: B continues run A's weights and saves them whole, which needs a "
                             f"method that trains the model's own weights ({whole}); method: {cfg.method.name} "
                             "keeps the backbone frozen. For one adapter per task, train B with this method and "
                             "no continual: section, then load both runs together: tuneforge.load([A, B]) "
                             "(docs/CONTINUAL.md).")
    if settings.ewc is not None and cfg.train.adversarial.method != "none":
        raise TuneforgeError("continual.ewc with train.adversarial: the adversarial passes would count the EWC "
                             "penalty's gradient twice. Set train.adversarial=none or continual.ewc=null.")
    previous = load_previous(settings.previous)
    labels = check_compatible(previous, cfg, splits.labels)
    needs_data = settings.rehearsal is not None or settings.ewc is not None or settings.evaluate_previous
    previous_splits = previous.splits() if needs_data else None
    splits = dataclasses.replace(splits, labels=labels)
    rehearsed = 0
    if settings.rehearsal is not None:
        assert previous_splits is not None
        sample = rehearsal_sample(previous_splits.train, settings.rehearsal.samples, cfg.train.seed)
        splits.train = list(splits.train) + sample
        rehearsed = len(sample)
        splits.source = f"{splits.source} + {rehearsed} rehearsal examples of run {previous.dir.name}"
    return splits, Continuation(previous, settings, previous_splits, rehearsed)
