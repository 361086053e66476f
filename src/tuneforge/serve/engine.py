"""What the server runs: anything with ``labels`` and ``predict_proba`` (a PyTorch :class:`~tuneforge.run.Run`,
an ONNX export loaded by ``tuneforge.load``, or a fake in tests), loaded, named and warmed up.

Runs trained on one backbone load together through ``tuneforge.load([...])`` so the base weights sit in
memory once; ONNX folders load one by one.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from tuneforge.errors import TuneforgeError


@runtime_checkable
class Predictor(Protocol):
    labels: list[str]

    def predict_proba(self, texts: Sequence[str], text_pairs: Sequence[str] | None = None,
                      batch_size: int = 64) -> np.ndarray:
        """Class probabilities, shape (len(texts), len(labels))."""
        ...


@dataclass
class ServedModel:
    name: str  # what requests pass as "adapter"
    predictor: Predictor
    engine: str  # "torch-bf16", "torch-fp32", "onnx", ...
    backbone: str = ""
    method: str = ""
    path: str = ""
    load_seconds: float = 0.0

    @property
    def labels(self) -> list[str]:
        return list(self.predictor.labels)

    def info(self) -> dict[str, Any]:
        return {"name": self.name, "labels": self.labels, "method": self.method, "backbone": self.backbone,
                "engine": self.engine, "load_seconds": round(self.load_seconds, 3)}


def parse_run_specs(specs: Sequence[str]) -> dict[str, Path]:
    """``PATH`` or ``NAME=PATH`` entries -> {name: path}; a bare path is named by its folder."""
    named: dict[str, Path] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep:
            name, path = Path(spec).name, spec
        name = name.strip()
        if not name:
            raise TuneforgeError(f'Run "{spec}": the name before "=" is empty; write NAME=PATH or just PATH.')
        if name in named:
            raise TuneforgeError(f'Two runs are named "{name}"; name them apart: tuneforge serve '
                                 f"sentiment={named[name]} other={path}.")
        named[name] = Path(path)
    if not named:
        raise TuneforgeError("Give at least one run folder to serve: tuneforge serve RUN_DIR (or list them under "
                             "`runs:` in the serve config).")
    return named


def _is_onnx_folder(path: Path) -> bool:
    """An ONNX export (``tuneforge export RUN_DIR OUT --format onnx``) holds model.onnx / model.int8.onnx; a run
    folder never holds a .onnx file."""
    return path.is_dir() and any(path.glob("*.onnx"))


def _info(predictor: Any, engine: str) -> dict[str, str]:
    config = getattr(predictor, "config", None)
    return {"engine": engine, "backbone": str(getattr(config, "model", "") or ""),
            "method": str(getattr(getattr(config, "method", None), "name", "") or "")}


def load_models(specs: Sequence[str], engine: str = "auto", precision: str = "auto",
                threads: int | None = None) -> dict[str, ServedModel]:
    """Load, group by backbone, and warm up every run; errors name the folder and the fix. ``threads``: the
    cores ONNX exports may use (serve's ``num_threads``; default every core). Torch runs use torch's thread
    count, which serve sets from the same field before loading."""
    import tuneforge
    from tuneforge.config import TrainConfig, load_config
    from tuneforge.models.backbones import resolve_model
    from tuneforge.onnx.runtime import OnnxRun
    from tuneforge.run import check_run_folder
    from tuneforge.tasks import task_of_run

    named = parse_run_specs(specs)
    for name, path in named.items():
        if not path.is_dir():
            raise TuneforgeError(f"Run {name}: {path.resolve()} does not exist. Give a run folder that `tuneforge "
                                 "train` wrote, or an ONNX export folder.")
    onnx = {n: p for n, p in named.items() if _is_onnx_folder(p)}
    torch_runs = {n: p for n, p in named.items() if n not in onnx}
    if engine == "onnx" and torch_runs:
        raise TuneforgeError(f"engine=onnx, but {', '.join(str(p) for p in torch_runs.values())} holds no .onnx "
                             "model. Export it first (tuneforge export RUN_DIR OUT --format onnx --quantize int8) "
                             "and serve OUT, or use engine=auto.")
    if engine == "torch" and onnx:
        raise TuneforgeError(f"engine=torch, but {', '.join(str(p) for p in onnx.values())} is an ONNX export. "
                             "Serve the run folder it came from, or use engine=auto.")
    served: dict[str, ServedModel] = {}
    groups: dict[str, dict[str, Path]] = {}
    for name, path in torch_runs.items():
        check_run_folder(path)
        task = task_of_run(path).name
        if task != "text-classification":  # refused before any model loads, in the words of the command line
            use = "tuneforge generate RUN_DIR --prompt TEXT" if task == "generation" else \
                "tuneforge predict RUN_DIR --text TEXT"
            raise TuneforgeError(f"Run {name}: {path} is a {task} run; tuneforge serve answers text-classification "
                                 f"runs only (docs/SERVING.md). Use `{use.replace('RUN_DIR', str(path))}` for it.")
        if not (path / "config.yaml").exists():
            tuneforge.load(path)  # raises the usual message for an unfinished or foreign folder
        groups.setdefault(resolve_model(load_config(TrainConfig, path=path / "config.yaml").model), {})[name] = path
    for group in groups.values():
        start = time.perf_counter()
        if len(group) == 1:
            loaded = {name: tuneforge.load(path, precision=precision) for name, path in group.items()}
        else:
            loaded = tuneforge.load(group, precision=precision).runs
        share = (time.perf_counter() - start) / len(group)  # the backbone is read once for the group
        for name, run in loaded.items():
            served[name] = ServedModel(name, run, path=str(group[name]), load_seconds=share + warm_up(run),
                                       **_info(run, f"torch-{run.precision}"))
    for name, path in onnx.items():
        start = time.perf_counter()
        predictor = OnnxRun.load(path, threads=threads)  # onnxruntime's threads are its own, not torch's
        seconds = time.perf_counter() - start
        variant = "int8" if "int8" in str(getattr(predictor, "file", "")) else "fp32"
        served[name] = ServedModel(name, predictor, path=str(path), load_seconds=seconds + warm_up(predictor),
                                   **_info(predictor, f"onnx-{variant}"))
    return {name: served[name] for name in named}  # the order the user gave


def warm_up(predictor: Predictor) -> float:
    """One small and one full-size forward pass, so the first request does not pay for lazy initialisation
    (allocator growth, oneDNN kernel selection). Returns the seconds it took."""
    start = time.perf_counter()
    predictor.predict_proba(["warm up"])
    predictor.predict_proba(["warm up the model with a longer text of a few more words"] * 16, batch_size=16)
    return time.perf_counter() - start
