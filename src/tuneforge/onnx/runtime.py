"""Predict with an exported ONNX folder: ``tuneforge.load(OUT)`` gives an :class:`OnnxRun`.

Same interface and output as :class:`tuneforge.run.Run` (``labels``, ``predict_proba``, ``predict``,
``evaluate``), with the run's own tokenisation (``max_length`` from the run's config) and length-sorted
batches, so a text gets the same tokens and, within float error, the same probabilities.

How the cores are used (``parallel``): onnxruntime's default is one forward pass at a time with every matmul
split across all cores ("ops"). A classifier's passes are small (32 tweets x 30 tokens = 960 rows of 384):
split over 2 threads they scale poorly (MiniLM int8: 1.34x the one-thread speed on 2 cores). With
``parallel="batches"`` (the default) every core runs whole passes of its own, one thread each, on the same
session (onnxruntime's ``run`` is thread-safe and releases the GIL): on the same 2 cores that is 1.9x the
one-thread speed. A single large batch (a serving micro-batch) is cut into one slice per core, so it gains
too. Measured on AMD EPYC (AVX-512 VNNI/BF16), MiniLM full fine-tune, docs/BENCHMARKS.md.

One graph fusion is switched off: onnxruntime's ``SkipLayerNormalization`` (residual add + LayerNorm in one
kernel). Its CPU kernel was slower than the plain ``Add`` + ``LayerNormalization`` it replaces: with it, that
op alone took 18% of an int8 MiniLM forward pass; without it the pair takes 4.5%, and the whole pass is 18%
faster in int8 and 10% faster in fp32 (one thread, onnxruntime 1.32, ``enable_profiling``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tuneforge.data.records import Example
from tuneforge.errors import TuneforgeError

EXPORT_FILE = "export.json"
FP32_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
DISABLED_FUSIONS = ["SkipLayerNormFusion"]  # slower than Add + LayerNormalization on CPU: see the module docstring


def is_onnx_folder(path: str | Path) -> bool:
    path = Path(path)
    return path.is_dir() and ((path / FP32_FILE).is_file() or (path / INT8_FILE).is_file())


def cpu_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def session_options(threads: int | None = None):
    """``threads`` intra-op threads per forward pass (default: every core; onnxruntime's own default counts
    hyperthreads and ignores the process's CPU affinity, e.g. in containers), no inter-op parallelism (a
    transformer's graph is a chain), all graph optimisations (fusions of LayerNorm, GELU, MatMul + Add)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or cpu_cores()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return options


@dataclass
class OnnxRun:
    """An exported ONNX model with its tokenizer, label names and the source run's config."""

    dir: Path
    labels: list[str]
    session: Any  # onnxruntime.InferenceSession
    tokenizer: Any
    config: Any  # TrainConfig of the source run (data columns, max_length)
    info: dict[str, Any] = field(default_factory=dict)  # export.json
    file: str = FP32_FILE
    metrics: dict[str, Any] = field(default_factory=dict)
    workers: int = 1  # passes run at once (parallel="batches": one per core), each on its own thread

    @classmethod
    def load(cls, folder: str | Path, *, variant: str | None = None, threads: int | None = None,
             parallel: str = "batches") -> OnnxRun:
        """``variant``: ``"fp32"`` (model.onnx) or ``"int8"`` (model.int8.onnx); default: the one the export
        was asked for (int8 when it was quantised). ``threads``: cores to use (default: all this process may
        use). ``parallel``: ``"batches"`` (each core runs whole forward passes, one thread each; the faster
        for classifiers) or ``"ops"`` (one pass at a time, every matmul split across the cores)."""
        from tuneforge.config import TrainConfig, load_config
        from tuneforge.evaluation.inference import check_parallel
        from tuneforge.models.backbones import load_tokenizer
        from tuneforge.recipes.runfolder import read_json

        folder = Path(folder)
        info = read_json(folder / EXPORT_FILE) if (folder / EXPORT_FILE).exists() else {}
        if variant is None:
            variant = "int8" if info.get("quantize") == "int8" or not (folder / FP32_FILE).exists() else "fp32"
        check_parallel(parallel)
        if threads is not None and threads < 1:
            raise TuneforgeError(f"threads={threads}: give at least 1 (or leave it out to use every core).")
        if variant not in ("fp32", "int8"):
            raise TuneforgeError(f'variant "{variant}": use "fp32" (model.onnx) or "int8" (model.int8.onnx).')
        file = INT8_FILE if variant == "int8" else FP32_FILE
        if not (folder / file).is_file():
            raise TuneforgeError(f"{folder} has no {file}. Export it with `tuneforge export RUN_DIR OUT --format "
                                 f"onnx{' --quantize int8' if variant == 'int8' else ''}`.")
        for needed in ("labels.json", "config.yaml"):
            if not (folder / needed).is_file():
                raise TuneforgeError(f"{folder} has {file} but no {needed}, so it was not written by `tuneforge "
                                     "export`; export the run again.")
        try:
            import onnxruntime as ort
        except ImportError:
            raise TuneforgeError("Loading an ONNX export needs onnxruntime: pip install onnxruntime.") from None
        cores = threads or cpu_cores()
        workers = cores if parallel == "batches" else 1
        session = ort.InferenceSession(str(folder / file), session_options(1 if parallel == "batches" else cores),
                                       providers=["CPUExecutionProvider"], disabled_optimizers=DISABLED_FUSIONS)
        return cls(dir=folder, labels=read_json(folder / "labels.json"), session=session,
                   tokenizer=load_tokenizer(str(folder)), config=load_config(TrainConfig, path=folder / "config.yaml"),
                   info=info, file=file, workers=workers)

    @property
    def input_names(self) -> list[str]:
        return [i.name for i in self.session.get_inputs()]

    def predict_proba(self, texts: Sequence[str] | Sequence[Example], text_pairs: Sequence[str] | None = None,
                      batch_size: int = 64) -> np.ndarray:
        """Class probabilities, shape (len(texts), len(labels)), columns in ``self.labels`` order."""
        from tuneforge.evaluation.inference import pass_size, side_by_side
        from tuneforge.run import _as_examples
        from tuneforge.training.batching import batch_order, collate, encode

        examples = _as_examples(texts, text_pairs)
        out = np.zeros((len(examples), len(self.labels)), dtype=np.float32)
        if not examples:
            return out
        if batch_size < 1:
            raise TuneforgeError(f"batch_size={batch_size}: give at least 1 text per forward pass.")
        data = encode(examples, self.tokenizer, self.labels, self.config.data.max_length)
        pad_id = self.tokenizer.pad_token_id or 0
        side = getattr(self.tokenizer, "padding_side", "right")
        names = self.input_names

        def forward(batch: list[int]) -> None:
            tensors = collate(data, batch, pad_id, side)
            if "token_type_ids" in names and "token_type_ids" not in tensors:
                tensors["token_type_ids"] = tensors["input_ids"].new_zeros(tensors["input_ids"].shape)
            logits = self.session.run(["logits"], {n: tensors[n].numpy() for n in names})[0]
            out[batch] = softmax(logits)  # each pass writes its own rows

        size = pass_size(batch_size, len(examples), self.workers)  # one thread per pass: small passes
        batches = batch_order(data.lengths(), size, seed=0, shuffle=False, group_by_length=True)
        side_by_side(forward, batches, self.workers)
        return out

    def predict(self, texts: Sequence[str] | Sequence[Example], text_pairs: Sequence[str] | None = None,
                batch_size: int = 64) -> list[dict[str, Any]]:
        """One ``{"label": ..., "scores": {label: probability}}`` per text, as :meth:`Run.predict`."""
        from tuneforge.run import format_predictions

        return format_predictions(self.labels, self.predict_proba(texts, text_pairs, batch_size))

    def evaluate(self, examples: Sequence[Example], batch_size: int = 64) -> dict[str, Any]:
        """Accuracy, macro-F1, per-class scores and confusion matrix on labelled examples."""
        from tuneforge.run import evaluate_examples

        return evaluate_examples(self, examples, batch_size)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float32) - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)
