"""Export a finished run: ``tuneforge export RUN_DIR OUT [--format hf|onnx] [--merge] [--quantize int8]``.

- ``--format hf`` with the method merged (the default where it merges: full, freeze, bitfit, lora, adalora,
  ia3): LoRA's B A added to W, (IA)^3's vectors multiplied in; a plain Hugging Face folder that loads with
  transformers alone (safetensors weights, config with the label names, tokenizer).
- ``--format hf`` unmerged (``--no-merge``, or a method that cannot merge: adapter, prefix, prompt, ptuning):
  the run's own model folder and config, which ``tuneforge.load(OUT)`` loads (it needs tuneforge and the base
  model the run was trained from).
- ``--format onnx``: ``model.onnx`` traced from the merged model, or from the unmerged one with the adapters,
  virtual tokens or prefixes inside the graph (``tuneforge/onnx/export.py``); ``--quantize int8`` adds
  ``model.int8.onnx``. ``tuneforge.load(OUT)`` runs it with onnxruntime.

Every OUT folder holds ``labels.json``, the tokenizer, ``export.json`` (source run, method, merged, format,
quantisation, versions, parity summary) and ``parity.json`` (``tuneforge/onnx/parity.py``), and is written
atomically: a temporary folder renamed at the end, so a failed export leaves nothing behind.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path
from typing import Any

from tuneforge.errors import TuneforgeError
from tuneforge.recipes.runfolder import check_new_folder, write_json
from tuneforge.training.checkpoint import write_atomic_folder

FORMATS = ("hf", "onnx")
QUANTIZATIONS = ("int8",)


def export_merged(run, folder: Path) -> Path:
    """``run`` is a loaded :class:`~tuneforge.run.Run`; a merged Hugging Face folder; returns ``folder``."""
    return export(run, folder, format="hf", merge=True, flag="--merge")


def export(run, folder: Path, *, format: str = "hf", merge: bool | None = None, quantize: str | None = None,
           parity_samples: int = 256, parity_data: str | Path | None = None, flag: str = "OUT") -> Path:
    """Write the export of ``run`` (a loaded :class:`~tuneforge.run.Run`) to ``folder`` and its parity report.

    ``merge=None`` merges where the method can; ``merge=True`` on a method that cannot is an error.
    """
    if getattr(run, "prompt_inputs", None) is not None:
        # The exported graph would take token ids of the *rendered* template; OnnxRun and plain transformers
        # classifiers know nothing of templates, so predictions would silently be wrong.
        raise TuneforgeError(f"{run.dir} was trained through a prompt (PET): its model reads texts rendered into the "
                             "template and answers with the verbalizer's words, which export does not carry yet. "
                             "Serve or load the run folder itself (tuneforge serve RUN_DIR, tuneforge.load).")
    if getattr(run.config, "contrastive", None) is not None:
        # Its head reads the mean-pooled embedding through hooks (fewshot/pooling.py); a plain transformers
        # folder or ONNX graph would feed the [CLS] pooler to the head instead and predict something else.
        raise TuneforgeError(f"{run.dir} was trained with contrastive: (SetFit-style): its head reads mean-pooled "
                             "embeddings, which an exported model does not carry yet. Serve or load the run "
                             "folder itself (tuneforge serve RUN_DIR, tuneforge predict RUN_DIR, tuneforge.load).")
    problems = []
    if format not in FORMATS:
        problems.append(f'--format "{format}": use one of {", ".join(FORMATS)}.')
    if quantize is not None and quantize not in QUANTIZATIONS:
        problems.append(f'--quantize "{quantize}": the one quantisation is int8.')
    if quantize is not None and format != "onnx":
        problems.append("--quantize int8 applies to --format onnx (onnxruntime's int8 kernels); add --format onnx.")
    if parity_samples < 1:
        problems.append(f"--parity-samples {parity_samples}: give at least 1.")
    if problems:
        raise TuneforgeError("Cannot export:", problems)
    check_new_folder(folder, flag)
    merge = run.method.merges if merge is None else merge
    merged = run.method.merge(run.model) if merge else None  # raises for methods that do not merge
    reference = dataclasses.replace(run, precision="fp32")  # the check compares with the run's fp32 output

    def write(tmp: Path) -> None:
        tmp.chmod(0o755)  # mkdtemp makes it private; an export is meant to be read by others (a server)
        if format == "hf":
            info, predictors = (_write_hf_merged(run, merged, tmp) if merged is not None
                                else _write_hf_unmerged(run, tmp))
        else:
            info, predictors = _write_onnx(run, merged, tmp, quantize)
        from tuneforge.onnx.parity import parity_report

        report = parity_report(reference, predictors, parity_samples, parity_data)
        write_json(tmp / "parity.json", report)
        write_json(tmp / "export.json", _export_info(run, format, merge, quantize) | info | {
            "parity": {name: {k: r[k] for k in ("samples", "max_abs_prob_diff", "accuracy_difference") if k in r}
                       for name, r in report["models"].items()},
            "parity_warning": report["warning"]})

    return write_atomic_folder(folder, write)


def _export_info(run, format: str, merged: bool, quantize: str | None) -> dict[str, Any]:
    import torch
    import transformers

    from tuneforge import __version__

    return {"source_run": str(run.dir.resolve()), "method": run.config.method.name, "merged": merged,
            "format": format, "quantize": quantize, "model": run.config.model, "labels": run.labels,
            "tuneforge": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
            "exported": time.strftime("%Y-%m-%dT%H:%M:%S")}


def _write_common(run, tmp: Path) -> None:
    run.tokenizer.save_pretrained(tmp)
    write_json(tmp / "labels.json", run.labels)


def _write_hf_merged(run, merged, tmp: Path) -> tuple[dict, dict]:
    from tuneforge.models.attention import restore_attention

    restore_attention(merged)
    merged.config.id2label = dict(enumerate(run.labels))
    merged.config.label2id = {label: i for i, label in enumerate(run.labels)}
    merged.save_pretrained(tmp, safe_serialization=True)
    pruned = "pruned_heads" in merged.config.to_dict()
    if pruned:  # heads removed by `tuneforge prune`: the folder carries the class that rebuilds the smaller layers
        for code in (run.dir / "model").glob("*.py"):
            shutil.copy2(code, tmp / code.name)
    _write_common(run, tmp)

    def predict(examples):  # transformers alone, as a user of the folder will load it
        from transformers import AutoModelForSequenceClassification

        from tuneforge.evaluation.inference import predict_proba
        from tuneforge.training.batching import encode

        # A pruned model's class is the code file we just wrote into the folder (its config's auto_map).
        model = AutoModelForSequenceClassification.from_pretrained(tmp, trust_remote_code=pruned).eval()
        data = encode(examples, run.tokenizer, run.labels, run.config.data.max_length)
        return predict_proba(model, data, pad_id=run.tokenizer.pad_token_id or 0,
                             padding_side=getattr(run.tokenizer, "padding_side", "right"))

    return {"files": sorted(p.name for p in tmp.iterdir())}, {"model.safetensors": predict}


def _write_hf_unmerged(run, tmp: Path) -> tuple[dict, dict]:
    """A minimal run folder (config.yaml, model/, metrics.json) that ``tuneforge.load`` reads."""
    shutil.copytree(run.dir / "model", tmp / "model")
    shutil.copy2(run.dir / "config.yaml", tmp / "config.yaml")
    if (run.dir / "metrics.json").exists():
        shutil.copy2(run.dir / "metrics.json", tmp / "metrics.json")
    write_json(tmp / "labels.json", run.labels)

    def predict(examples):
        from tuneforge.run import Run

        return Run.load(tmp, precision="fp32").predict_proba(examples)

    return {"files": sorted(p.name for p in tmp.iterdir()), "loader": "tuneforge.load(OUT)"}, {"model/": predict}


def _write_onnx(run, merged, tmp: Path, quantize: str | None) -> tuple[dict, dict]:
    from tuneforge.onnx.export import export_onnx
    from tuneforge.onnx.runtime import FP32_FILE, INT8_FILE, OnnxRun

    info: dict[str, Any] = {"onnx": export_onnx(merged if merged is not None else run.model, run.tokenizer,
                                                tmp / FP32_FILE)}
    _write_common(run, tmp)
    shutil.copy2(run.dir / "config.yaml", tmp / "config.yaml")  # data columns and max_length for OnnxRun
    predictors = {FP32_FILE: OnnxRun.load(tmp, variant="fp32").predict_proba}
    if quantize == "int8":
        from tuneforge.onnx.quantize import quantize_int8

        info["quantization"] = quantize_int8(tmp / FP32_FILE, tmp / INT8_FILE)
        predictors[INT8_FILE] = OnnxRun.load(tmp, variant="int8").predict_proba
    info["files"] = sorted(p.name for p in tmp.iterdir())
    return info, predictors
