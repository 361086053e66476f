"""Resumable checkpoints, written atomically.

A checkpoint is a folder ``checkpoints/step-NNNNNNNN`` holding the trainable weights (safetensors), the
optimizer state (``torch.save``, read back with ``weights_only=True``), the RNG state and the loop's
counters (JSON). It is written under a temporary name and renamed when complete, so an interrupted
write never leaves a folder that looks like a checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

PREFIX = "step-"


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A CPU copy of the trainable parameters (what a method changes)."""
    return {n: p.detach().to("cpu", copy=True).contiguous() for n, p in model.named_parameters() if p.requires_grad}


def load_trainable_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    params = dict(model.named_parameters())
    missing = [n for n, p in params.items() if p.requires_grad and n not in state]
    if missing:
        raise RuntimeError(f"checkpoint lacks trainable parameters: {missing[:5]}")
    with torch.no_grad():
        for name, value in state.items():
            params[name].copy_(value.to(params[name].dtype))


def write_atomic_folder(final: Path, write: Any) -> Path:
    """Call ``write(tmp_folder)``, then rename the folder to ``final`` in one step."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        write(tmp)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def write_atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def save_checkpoint(folder: Path, step: int, model: nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: torch.optim.lr_scheduler.LRScheduler, loop_state: dict[str, Any],
                    best: dict[str, torch.Tensor] | None, keep: int, method: Any = None,
                    extra: dict[str, torch.Tensor] | None = None) -> Path:
    """``extra``: the loop's own training state (the EMA weights), read back with :func:`load_extra_state`."""
    def write(tmp: Path) -> None:
        save_file(trainable_state(model), str(tmp / "trainable.safetensors"))
        method_state = method.state_dict() if method is not None else {}
        if method_state:
            save_file({k: v.detach().cpu().contiguous() for k, v in method_state.items()},
                      str(tmp / "method.safetensors"))
        if best is not None:
            save_file(best, str(tmp / "best.safetensors"))
        if extra:
            save_file(extra, str(tmp / "extra.safetensors"))
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        save_file({"cpu": torch.get_rng_state()}, str(tmp / "rng.safetensors"))
        state = {"loop": loop_state, "scheduler": scheduler.state_dict()}
        (tmp / "state.json").write_text(json.dumps(state, indent=1), encoding="utf-8")

    path = write_atomic_folder(folder / f"{PREFIX}{step:08d}", write)
    for old in list_checkpoints(folder)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return path


def list_checkpoints(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and p.name.startswith(PREFIX)
             and (p / "state.json").exists()]
    return sorted(found, key=lambda p: p.name)


def load_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: torch.optim.lr_scheduler.LRScheduler, method: Any = None
                    ) -> tuple[dict[str, Any], dict[str, torch.Tensor] | None]:
    """Restore weights, optimizer, scheduler, RNG and the method's own state; return the loop state and the
    best weights."""
    load_trainable_state(model, load_file(str(path / "trainable.safetensors")))
    method_file = path / "method.safetensors"
    if method is not None:
        method.load_state_dict(model, load_file(str(method_file)) if method_file.exists() else {})
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True))
    state = json.loads((path / "state.json").read_text(encoding="utf-8"))
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(load_file(str(path / "rng.safetensors"))["cpu"])
    best_file = path / "best.safetensors"
    best = load_file(str(best_file)) if best_file.exists() else None
    return state["loop"], best


def load_extra_state(path: Path) -> dict[str, torch.Tensor]:
    """The ``extra`` state :func:`save_checkpoint` wrote (empty when it wrote none)."""
    file = path / "extra.safetensors"
    return load_file(str(file)) if file.exists() else {}
