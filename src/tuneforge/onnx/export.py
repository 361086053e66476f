"""Trace a loaded run into ``model.onnx``: inputs ``input_ids``, ``attention_mask`` (and ``token_type_ids``
when the tokenizer makes them), output ``logits`` (B, C); batch and sequence length dynamic.

The graph is what :meth:`tuneforge.run.Run.predict_proba` computes: the merged plain model when the method
merges, else the run's own model with its adapters, virtual tokens or prefixes inside the graph. The
first-token shortcut (``models/first_token.py``) stays on: it is a slice of the last layer's inputs, traced
like any other op, gives the same logits and saves ~12% of the work. Attention goes back to transformers'
SDPA (our training attention is only for dropout); the prefix method's wrapper around it stays, since the
prefix keys and values are part of the model.

Exporter: ``torch.onnx.export(dynamo=True)`` (torch.export), the default since torch 2.9 and the one that is
maintained; the TorchScript exporter (``dynamo=False``) is deprecated and prints so on torch 2.13. Both export
every tuneforge method on transformers 5 with the same probabilities (tests/onnx). dynamo=True is slower to
export (seconds rather than a fraction of one) but records the sequence length symbolically instead of
baking in the Python branches taken on the example batch. If torch.export cannot capture a model (data
dependent control flow in some architecture), the TorchScript exporter is tried next and export.json says
which one made the file.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

import torch
from torch import nn

from tuneforge.errors import TuneforgeError

log = logging.getLogger(__name__)

OPSET = 18  # onnxruntime >= 1.14 runs opset 18; the dynamo exporter's lowest well-tested opset
EXAMPLE_TEXTS = ["the flight was delayed again and nobody told us why", "thanks, great crew"]
EXTERNAL_DATA_BYTES = 1_500_000_000  # protobuf caps one file at 2 GB: larger weights go to model.onnx.data


def require_onnx() -> None:
    """Import the optional ONNX packages early, with the install line when they are missing."""
    missing = []
    for name in ("onnx", "onnxruntime", "onnxscript"):
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise TuneforgeError(f"ONNX export needs {', '.join(missing)}: pip install onnx onnxruntime onnxscript "
                             "(tuneforge's own dependencies list them; this Python lacks them).")


class LogitsOnly(nn.Module):
    """``model(**inputs).logits`` with positional inputs, the signature the exporter traces."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        extra = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
        return self.model(input_ids=input_ids, attention_mask=attention_mask, **extra).logits


def input_names_for(tokenizer) -> list[str]:
    names = ["input_ids", "attention_mask"]
    if "token_type_ids" in getattr(tokenizer, "model_input_names", []):
        names.append("token_type_ids")
    return names


def example_inputs(tokenizer, names: list[str]) -> tuple[torch.Tensor, ...]:
    """Two texts of different lengths: batch 2 and a padded row, so neither size is specialised to 1 and the
    mask path for padding is the one traced."""
    enc = tokenizer(EXAMPLE_TEXTS, padding=True, return_tensors="pt")
    out = []
    for name in names:
        out.append(enc[name] if name in enc else torch.zeros_like(enc["input_ids"]))
    return tuple(t.to(torch.long) for t in out)


def export_onnx(model: nn.Module, tokenizer, path: Path) -> dict:
    """Write ``path`` (model.onnx); returns what export.json records (opset, exporter, inputs)."""
    require_onnx()
    from tuneforge.models.attention import restore_attention

    restore_attention(model)
    model = model.float().eval()
    names = input_names_for(tokenizer)
    wrapped = LogitsOnly(model).eval()
    args = example_inputs(tokenizer, names)
    n_bytes = sum(p.numel() * 4 for p in model.parameters())
    try:
        exporter = _export_dynamo(wrapped, args, names, path, external=n_bytes > EXTERNAL_DATA_BYTES)
    except Exception as exc:  # torch.export failures come as many exception types
        log.warning("torch.export could not capture the model (%s: %s); using the TorchScript exporter",
                    type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
        exporter = _export_torchscript(wrapped, args, names, path)
    return {"opset": OPSET, "exporter": exporter, "inputs": names, "outputs": ["logits"],
            "dynamic_axes": {"batch": 0, "sequence": 1}}


def _export_dynamo(wrapped: nn.Module, args: tuple, names: list[str], path: Path, external: bool) -> str:
    batch, seq = torch.export.Dim("batch", min=1), torch.export.Dim("sequence", min=1)
    quiet = logging.getLogger("torch.onnx")  # "torchvision is not installed" notices, progress lines
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with torch.no_grad(), warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(wrapped, args, input_names=names, output_names=["logits"], opset_version=OPSET,
                                        dynamo=True, dynamic_shapes={n: {0: batch, 1: seq} for n in names},
                                        verbose=False, optimize=True)
    finally:
        quiet.setLevel(level)
    program.save(str(path), external_data=external)
    return f"torch.onnx.export(dynamo=True), torch {torch.__version__}"


def _export_torchscript(wrapped: nn.Module, args: tuple, names: list[str], path: Path) -> str:
    axes = {name: {0: "batch", 1: "sequence"} for name in names} | {"logits": {0: "batch"}}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(wrapped, args, str(path), input_names=names, output_names=["logits"],
                          opset_version=OPSET, dynamo=False, dynamic_axes=axes)
    return f"torch.onnx.export(dynamo=False), torch {torch.__version__}"
