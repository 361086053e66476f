"""A finished run, loaded for prediction and evaluation: ``tuneforge.load(run_dir)``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tuneforge.data.records import Example
from tuneforge.errors import TuneforgeError


@dataclass
class Run:
    """A trained model with its tokenizer, label names, config and metrics."""

    dir: Path
    config: Any  # TrainConfig
    labels: list[str]
    model: nn.Module
    tokenizer: Any
    metrics: dict[str, Any]
    precision: str = "fp32"
    device: torch.device = torch.device("cpu")
    method: Any = None  # the Method that loaded the model (merge, disabled)
    prompt_inputs: Any = None  # PET runs: renders texts into the template (prompting/pet.py PromptInputs)
    # bf16 prediction runs a copy of the model whose weights are bf16 (built on first use; see _inference_model)
    bf16_weights: bool = True
    # forward passes run at once on CPU, one thread each (tuneforge.evaluation.inference); 1: one pass at a time
    # with every matmul split across torch's threads
    workers: int = 1
    _bf16_model: Any = field(default=None, repr=False)

    @classmethod
    def load(cls, run_dir: str | Path, *, precision: str | None = None, device: str = "cpu",
             shared: Any = None, parallel: str = "batches") -> Run:
        """``precision`` defaults to the run's own ``train.precision`` (auto, fp32 or bf16). ``shared``, a
        :class:`~tuneforge.models.shared.SharedBackbone`, gives the base model (for :class:`Runs`).
        ``parallel`` (CPU): ``"batches"`` runs one forward pass per core side by side, one thread each (the
        faster for classifiers: docs/EXPORT.md); ``"ops"`` runs one pass at a time on all of torch's threads."""
        from tuneforge.config import TrainConfig, load_config
        from tuneforge.methods import build_method
        from tuneforge.models.backbones import load_backbone, load_tokenizer
        from tuneforge.models.precision import resolve_precision
        from tuneforge.recipes.runfolder import read_json
        from tuneforge.tasks import get_task

        from tuneforge.evaluation.inference import check_parallel
        from tuneforge.onnx.runtime import cpu_cores

        check_parallel(parallel)
        run_dir = Path(run_dir)
        if not run_dir.is_dir():
            raise TuneforgeError(f"Run folder {run_dir.resolve()} does not exist. Give the folder that "
                                 "`tuneforge train` printed (runs/<name>-<timestamp>).")
        check_run_folder(run_dir)
        model_dir = run_dir / "model"
        if (run_dir / "prompt.json").exists() and not model_dir.is_dir() \
                and "training" not in read_json(run_dir / "prompt.json"):
            raise TuneforgeError(f"{run_dir} is a zero-shot run (tuneforge zeroshot): nothing was trained, so it "
                                 "holds no model to load. Its prompt and model are in config.yaml: point its data: "
                                 f"section at other data and run `tuneforge zeroshot {run_dir / 'config.yaml'} "
                                 "output_dir=NEW_DIR`.")
        if not (run_dir / "config.yaml").exists() or not model_dir.is_dir():
            status = read_json(run_dir / "run.json").get("status", "unknown") if (run_dir / "run.json").exists() \
                else "not a run folder"
            if status == "not a run folder":  # no run.json: not something `tuneforge train` wrote
                raise TuneforgeError(f"{run_dir} is not a run folder (it has no run.json, config.yaml or model/). "
                                     "Give the folder that `tuneforge train` printed (runs/<name>-<timestamp>).")
            raise TuneforgeError(f"{run_dir} holds no finished model (status: {status}). An interrupted run "
                                 f"continues with `tuneforge train --resume {run_dir}`.")
        cfg = load_config(TrainConfig, path=run_dir / "config.yaml")
        labels = read_json(model_dir / "labels.json")
        method = build_method(cfg.method)
        if cfg.prompt is not None:  # trained through a prompt (PET): its own language-model backbone
            from tuneforge.prompting.pet import load_prompt_backbone

            model = method.load(model_dir, lambda: load_prompt_backbone(cfg.model, cfg.prompt, labels,
                                                                        cfg.data.max_length)[0])
        elif shared is not None:
            model = method.load(model_dir, lambda: shared.backbone(labels))
        else:
            model = method.load(model_dir, lambda: load_backbone(cfg.model, labels, cfg.task))
        model.eval()
        if cfg.contrastive is not None:  # a contrastive run's head reads the mean-pooled embedding
            from tuneforge.fewshot.pooling import use_mean_pooling

            use_mean_pooling(model, cfg.contrastive.normalize)
        elif cfg.train.first_token_shortcut:
            from tuneforge.models.first_token import use_first_token_shortcut

            use_first_token_shortcut(model)
        tokenizer = load_tokenizer(str(model_dir))
        inputs = None
        if cfg.prompt is not None:
            from tuneforge.prompting.pet import prompt_inputs_for

            inputs = prompt_inputs_for(model, tokenizer, cfg.prompt, cfg.data.max_length)
        dev = torch.device(device)
        model.to(dev)
        metrics_path = run_dir / "metrics.json"
        metrics = read_json(metrics_path) if metrics_path.exists() else {}
        run_class = get_task(cfg.task).part("run_class")  # token classification: spans, entity metrics
        return run_class(dir=run_dir, config=cfg, labels=labels, model=model, tokenizer=tokenizer,
                   metrics=metrics, precision=resolve_precision(precision or cfg.train.precision, dev), device=dev,
                   method=method, prompt_inputs=inputs, bf16_weights=shared is None,
                   workers=min(cpu_cores(), torch.get_num_threads()) if parallel == "batches" and dev.type == "cpu"
                   else 1)

    def export_merged(self, folder: str | Path) -> Path:
        """Write a plain Hugging Face model folder with the method folded into the weights: it loads with
        ``transformers.AutoModelForSequenceClassification`` alone (``tuneforge export RUN_DIR --merge OUT``)."""
        from tuneforge.recipes.export import export_merged

        return export_merged(self, Path(folder))

    def export(self, folder: str | Path, format: str = "hf", merge: bool | None = None, quantize: str | None = None,
               parity_samples: int = 256, parity_data: str | Path | None = None) -> Path:
        """Export for use without training code and check it: ``format="hf"`` (a Hugging Face folder) or
        ``"onnx"`` (model.onnx, with ``quantize="int8"`` also model.int8.onnx). ``merge``: fold the method into
        the weights (None: where the method merges). Every export carries a parity report (parity.json) against
        this run on ``parity_samples`` test examples. See docs/EXPORT.md."""
        from tuneforge.recipes.export import export

        return export(self, Path(folder), format=format, merge=merge, quantize=quantize,
                      parity_samples=parity_samples, parity_data=parity_data)

    def _encode(self, examples: Sequence[Example]):
        from tuneforge.training.batching import encode

        if self.prompt_inputs is not None:
            examples = self.prompt_inputs.render(examples)
        return encode(examples, self.tokenizer, self.labels, self.config.data.max_length)

    def predict_proba(self, texts: Sequence[str] | Sequence[Example], text_pairs: Sequence[str] | None = None,
                      batch_size: int = 64) -> np.ndarray:
        """Class probabilities, shape (len(texts), len(labels)), columns in ``self.labels`` order."""
        from tuneforge.evaluation.inference import predict_proba

        examples = _as_examples(texts, text_pairs)
        if not examples:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        model, precision = self._inference_model()
        if batch_size < 1:
            raise TuneforgeError(f"batch_size={batch_size}: give at least 1 text per forward pass.")
        return predict_proba(model, self._encode(examples), batch_size=batch_size, precision=precision,
                             device=self.device, pad_id=self.tokenizer.pad_token_id or 0,
                             padding_side=getattr(self.tokenizer, "padding_side", "right"), workers=self.workers)

    def _inference_model(self) -> tuple[nn.Module, str]:
        """The model and autocast precision prediction uses. In bf16, a copy of the model with bf16 weights and
        no autocast: autocast keeps fp32 weights and re-casts every one of them on every batch, and runs
        LayerNorm and softmax in fp32 with a cast back after each; holding the weights in bf16 removes those
        copies (MiniLM, batch 128: ~1,060 texts/s against ~790 with autocast, on 2 cores with AMX). The fp32
        model stays as it is for export and merging; runs sharing one backbone (``Runs``) keep autocast, so
        the backbone is not copied once per run."""
        if self.precision != "bf16" or not self.bf16_weights:
            return self.model, self.precision
        if self._bf16_model is None:
            import copy

            self._bf16_model = copy.deepcopy(self.model).to(torch.bfloat16).eval()
        return self._bf16_model, "fp32"  # "fp32": autocast off, the weights are already bf16

    def predict(self, texts: Sequence[str] | Sequence[Example], text_pairs: Sequence[str] | None = None,
                batch_size: int = 64) -> list[dict[str, Any]]:
        """One ``{"label": ..., "scores": {label: probability}}`` per text."""
        return format_predictions(self.labels, self.predict_proba(texts, text_pairs, batch_size))

    def summary(self) -> str:
        """One line of the test scores in metrics.json (rich markup), for ``tuneforge train``."""
        m = self.metrics
        return (f"test accuracy [bold]{m['test.accuracy']:.4f}[/], macro-F1 [bold]{m['test.macro_f1']:.4f}[/]; "
                f"{m['train.samples_per_second']:.1f} samples/s; run folder: [bold]{self.dir}[/]")

    def evaluate(self, examples: Sequence[Example], batch_size: int = 64, by: str | Sequence[str] | None = None
                 ) -> dict[str, Any]:
        """Accuracy, macro-F1, per-class scores and confusion matrix on labelled examples. ``by`` (a field of
        the examples' ``meta``, or "length") adds ``metrics["by"][field]``: the metrics per slice, as
        ``tuneforge eval --by`` reports them (docs/EXPLAIN.md)."""
        if not by:
            return evaluate_examples(self, examples, batch_size)
        from tuneforge.evaluation.slices import evaluate_slices

        sliced = evaluate_slices(self, examples, by, batch_size)
        return {**sliced["overall"], "by": sliced["by"]}

    def explain(self, texts: str | Sequence[str], label: str | None = None, steps: int = 50) -> list[Any]:
        """Per-token attributions (integrated gradients) toward the predicted label or ``label``; see
        :func:`tuneforge.explain` and docs/EXPLAIN.md."""
        from tuneforge.explain import explain

        return explain(self, texts, label=label, steps=steps)


def format_predictions(labels: list[str], probs: np.ndarray) -> list[dict[str, Any]]:
    """``{"label": ..., "scores": {label: probability}}`` per row; shared with the ONNX runtime."""
    return [{"label": labels[int(row.argmax())],
             "scores": {name: round(float(p), 6) for name, p in zip(labels, row)}} for row in probs]


def evaluate_examples(run: Any, examples: Sequence[Example], batch_size: int = 64) -> dict[str, Any]:
    """Metrics of anything with ``labels`` and ``predict_proba`` (a :class:`Run`, an ONNX export)."""
    from tuneforge.evaluation.metrics import classification_metrics, mean_loss

    from tuneforge.data.validate import check_known_labels

    check_known_labels(examples, run.labels)
    probs = run.predict_proba(examples, batch_size=batch_size)
    y_true = [run.labels.index(e.label) for e in examples]
    metrics = classification_metrics(y_true, probs.argmax(-1).tolist(), run.labels)
    metrics["loss"] = mean_loss(probs, y_true)
    return metrics


def _as_examples(texts: Sequence[str] | Sequence[Example], pairs: Sequence[str] | None) -> list[Example]:
    if isinstance(texts, str):
        raise TypeError("predict() takes a list of texts; wrap a single text as [text]")
    if pairs is not None and len(pairs) != len(texts):
        raise ValueError(f"{len(texts)} texts but {len(pairs)} text pairs")
    bad = [(f"texts[{i}]", item) for i, item in enumerate(texts) if not isinstance(item, (str, Example))]
    bad += [(f"text_pairs[{i}]", pair) for i, pair in enumerate(pairs or [])
            if pair is not None and not isinstance(pair, str)]
    if bad:  # None, a pandas NaN or a list would be classified as the text "None", "nan", "['a']"
        shown = ", ".join(f"{where} = {item!r:.40} ({type(item).__name__})" for where, item in bad[:5])
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise TuneforgeError(f"predict() takes texts as strings; {len(bad)} item(s) are not: {shown}{more}. Drop "
                             "the missing ones (None, NaN) or convert them with str() if they are meant as text.")
    out = []
    for i, item in enumerate(texts):
        if isinstance(item, Example):
            out.append(item)
        else:
            out.append(Example(text=item, text_pair=pairs[i] if pairs is not None else None))
    return out


@dataclass
class Runs:
    """Several runs trained on the same backbone, loaded once: ``predict(texts, adapter=NAME)``.

    The base model's weights are in memory once and shared by every run (see
    :class:`~tuneforge.models.shared.SharedBackbone`); each run adds only its own weights (LoRA matrices,
    adapters, prompts, its head). Runs of methods that train the base weights themselves (full, freeze,
    bitfit) bring their own copy.
    """

    runs: dict[str, Run]

    @property
    def names(self) -> list[str]:
        return list(self.runs)

    def __getitem__(self, adapter: str) -> Run:
        if adapter not in self.runs:
            from tuneforge.errors import did_you_mean

            raise TuneforgeError(f'adapter "{adapter}" is not loaded.{did_you_mean(adapter, self.runs)} Loaded: '
                                 f"{', '.join(self.runs)}.")
        return self.runs[adapter]

    def predict(self, texts: Sequence[str] | Sequence[Example], adapter: str, text_pairs: Sequence[str] | None = None,
                batch_size: int = 64) -> list[dict[str, Any]]:
        return self[adapter].predict(texts, text_pairs, batch_size)

    def predict_proba(self, texts: Sequence[str] | Sequence[Example], adapter: str,
                      text_pairs: Sequence[str] | None = None, batch_size: int = 64) -> np.ndarray:
        return self[adapter].predict_proba(texts, text_pairs, batch_size)

    def evaluate(self, examples: Sequence[Example], adapter: str, batch_size: int = 64) -> dict[str, Any]:
        return self[adapter].evaluate(examples, batch_size)


def _recipe(folder: Path) -> str | None:
    import json

    try:
        record = json.loads((folder / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record.get("recipe") if isinstance(record, dict) else None


def folder_of_runs(folder: Path) -> str | None:
    """What a `tuneforge fewshot` or `tuneforge tune` folder is and which of its runs to give instead (None for
    other folders): people give the folder those commands print where one run is wanted."""
    if (folder / "fewshot.json").is_file():
        seeds = sorted((p.name for p in folder.glob("seed-*") if (p / "model").is_dir()),
                       key=lambda name: int(name[5:]) if name[5:].isdigit() else 0)
        example = f"e.g. {folder / seeds[0]}" if seeds else "none of them has finished"
        return (f"{folder} is a few-shot folder (tuneforge fewshot) that holds one run per seed "
                f"({', '.join(seeds) or 'seed-<s>/'}): give one of them ({example}), or average them with "
                f"`tuneforge ensemble {folder}/seed-*`.")
    if (folder / "study.db").is_file() and not (folder / "run.json").exists():
        return (f"{folder} is a tune folder (tuneforge tune) that holds one run per trial (trial-NNN/): give a "
                f"trial's folder, or train the best trial's config with `tuneforge train {folder / 'best.yaml'}`.")
    return None


def check_run_folder(run_dir: str | Path) -> None:
    """Refuse, with the fix, the folders people give instead of a run to predict with: a `tuneforge pretrain` run
    (or its model/), a run's model/ folder, a plain Hugging Face model folder, a few-shot or tune folder. Other
    folders pass (their own errors come from loading)."""
    run_dir = Path(run_dir)
    if (collection := folder_of_runs(run_dir)) is not None:
        raise TuneforgeError(collection)
    for folder in (run_dir, run_dir.parent) if run_dir.name == "model" else (run_dir,):
        if _recipe(folder) == "pretrain":
            raise TuneforgeError(f"{folder} is a pretraining run (tuneforge pretrain): its model/ is a bare language "
                                 "model, not a fine-tuned run to predict, evaluate, generate or serve with. "
                                 f"Fine-tune it first: `tuneforge train CONFIG.yaml model={folder / 'model'}`, then "
                                 "give the run folder that prints.")
    from tuneforge.onnx.runtime import is_onnx_folder

    if (run_dir / "config.yaml").exists() or not (run_dir / "config.json").is_file() or is_onnx_folder(run_dir):
        return
    if run_dir.name == "model" and (run_dir.parent / "config.yaml").exists():
        raise TuneforgeError(f"{run_dir} is the model/ folder inside the run {run_dir.parent}: give the run folder "
                             f"itself ({run_dir.parent}).")
    raise TuneforgeError(f"{run_dir} is a Hugging Face model folder, not a tuneforge run folder: fine-tune it with "
                         f"`tuneforge train CONFIG.yaml model={run_dir}` and give the run folder that prints.")


def load(run_dir: str | Path | Sequence[str | Path] | dict[str, str | Path], *, precision: str | None = None,
         device: str = "cpu", parallel: str = "batches") -> Run | Runs | Any:
    """Load a finished run: ``tuneforge.load("runs/airline-lora-...").predict(["great flight"])``.

    Several runs on one backbone (a list, named by their folders, or a ``{name: folder}`` mapping) load into
    one :class:`Runs`, the backbone read once: ``tuneforge.load([a, b]).predict(texts, adapter="b")``.
    An ONNX export folder (``tuneforge export RUN_DIR OUT --format onnx``) loads as an
    :class:`~tuneforge.onnx.runtime.OnnxRun` with the same ``labels`` / ``predict_proba`` / ``predict``.
    ``parallel`` (CPU): ``"batches"`` (default: one forward pass per core at once, one thread each) or ``"ops"``
    (one pass at a time, split across the cores); docs/EXPORT.md has the measurements.
    """
    if isinstance(run_dir, (str, Path)):
        from tuneforge.onnx.runtime import OnnxRun, is_onnx_folder

        if is_onnx_folder(run_dir):
            return OnnxRun.load(run_dir, parallel=parallel)
        return Run.load(run_dir, precision=precision, device=device, parallel=parallel)
    return _load_many(run_dir, precision, device, parallel)


def _load_many(run_dirs: Sequence[str | Path] | dict[str, str | Path], precision: str | None, device: str,
               parallel: str = "batches") -> Runs:
    from tuneforge.config import TrainConfig, load_config
    from tuneforge.models.backbones import resolve_model
    from tuneforge.models.shared import SharedBackbone

    if isinstance(run_dirs, dict):
        named = {str(k): Path(v) for k, v in run_dirs.items()}
    else:
        paths = [Path(p) for p in run_dirs]
        named = {p.name: p for p in paths}
        if len(named) < len(paths):
            raise TuneforgeError("Two of the run folders have the same name; name them: "
                                 "tuneforge.load({'sentiment': path_a, 'topic': path_b}).")
    if not named:
        raise TuneforgeError("tuneforge.load() got an empty list of runs.")
    models = {}
    for name, path in named.items():
        from tuneforge.onnx.runtime import is_onnx_folder

        if is_onnx_folder(path):
            raise TuneforgeError(f"{path} is an ONNX export: its graph holds its own copy of the backbone, so it "
                                 "cannot share one. Load it alone: tuneforge.load(path).")
        check_run_folder(path)
        if not (path / "config.yaml").exists():
            Run.load(path)  # raises the usual message for a missing or unfinished run
        models[name] = resolve_model(load_config(TrainConfig, path=path / "config.yaml").model)
    if len(set(models.values())) > 1:
        listing = "; ".join(f"{name}: {model}" for name, model in models.items())
        raise TuneforgeError(f"These runs were trained on different backbones ({listing}); runs share a backbone "
                             "only if they were trained on the same one. Load them one at a time.")
    shared = SharedBackbone(next(iter(models.values())))
    return Runs({name: Run.load(path, precision=precision, device=device, shared=shared, parallel=parallel)
                 for name, path in named.items()})
