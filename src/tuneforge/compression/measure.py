"""Size, speed and accuracy of a classifier, measured the same way before and after compression."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from tuneforge.evaluation.inference import predict_proba
from tuneforge.evaluation.metrics import classification_metrics
from tuneforge.training.batching import Encoded

# Rows of the before/after tables, in order, with how each is printed.
COLUMNS = {"parameters": "{:,.0f}", "nonzero_parameters": "{:,.0f}", "size_mb": "{:.1f}",
           "texts_per_second": "{:.0f}", "test_accuracy": "{:.4f}", "test_macro_f1": "{:.4f}"}


def effective_weights(model: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(parameters, buffers) as the model computes with them: under torch's pruning masks a module holds
    ``weight_orig`` and ``weight_mask`` and computes with ``weight = weight_orig * mask``; that is what counts."""
    params, buffers = {}, {}
    for prefix, module in model.named_modules():
        dot = prefix + "." if prefix else ""
        for name, p in module.named_parameters(recurse=False):
            base = name.removesuffix("_orig")
            params[dot + base] = getattr(module, base) if base != name else p
        for name, b in module.named_buffers(recurse=False):
            if not name.endswith("_mask"):
                buffers[dot + name] = b
    return params, buffers


def size_mb(model: nn.Module) -> float:
    """Megabytes of the weights as safetensors writes them (dense: zeros take as much room as any value)."""
    params, buffers = effective_weights(model)
    state = {k: v.detach().cpu().contiguous() for k, v in (params | buffers).items()}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.safetensors"
        save_file(state, str(path))
        return path.stat().st_size / 2**20


def texts_per_second(model: nn.Module, sample: Encoded, repeats: int = 3, **kwargs) -> float:
    """Inference throughput on ``sample``: the best of ``repeats`` passes after a warm-up batch (the first call
    allocates and picks kernels). The best pass is the one least slowed by other work on the machine."""
    predict_proba(model, Encoded(sample.input_ids[:8], sample.labels[:8], None), **kwargs)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        predict_proba(model, sample, **kwargs)
        best = min(best, time.perf_counter() - started)
    return len(sample) / max(best, 1e-9)


def measure(model: nn.Module, test: Encoded, speed: Encoded, labels: list[str], **kwargs) -> dict[str, float]:
    """Parameters, non-zero parameters, size on disk (MB), texts/s on ``speed`` and test accuracy / macro-F1.

    ``kwargs`` go to :func:`~tuneforge.evaluation.inference.predict_proba` (precision, device, pad_id, ...).
    """
    params = list(effective_weights(model)[0].values())
    with torch.no_grad():
        nonzero = sum(int(torch.count_nonzero(p)) for p in params)
    probs = predict_proba(model, test, **kwargs)
    metrics = classification_metrics(test.labels, probs.argmax(-1).tolist(), labels)
    return {"parameters": sum(p.numel() for p in params), "nonzero_parameters": nonzero, "size_mb": size_mb(model),
            "texts_per_second": texts_per_second(model, speed, **kwargs), "test_accuracy": metrics["accuracy"],
            "test_macro_f1": metrics["macro_f1"]}


def first_texts(data: Encoded, n: int) -> Encoded:
    """The first ``n`` examples: the fixed sample every model is timed on."""
    types = data.token_type_ids[:n] if data.token_type_ids is not None else None
    return Encoded(data.input_ids[:n], data.labels[:n], types)


def markdown_table(columns: dict[str, dict[str, float]]) -> str:
    """One row per measurement, one column per model (``{"before": {...}, "after": {...}}``)."""
    names = list(columns)
    lines = ["| | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for key, fmt in COLUMNS.items():
        cells = [fmt.format(columns[n][key]) if key in columns[n] else "" for n in names]
        lines.append(f"| {key.replace('_', ' ')} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
