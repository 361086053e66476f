"""AdaLoRA's rank allocation as tuneforge sees it: the schedule in steps, the allocator's state for checkpoints,
and the final ranks written next to the adapter (``adalora_ranks.json``).

peft keeps the allocation in two places: ``peft_config.rank_pattern`` maps each layer's ``lora_E`` parameter
to a keep-mask over its init_r triplets (set at every allocation; saved in ``adapter_config.json``, where
loading uses it to cut the layers to their final ranks), and the model's ``rankallocator`` holds the
importance averages (EMAs of |w dL/dw| and of its deviation) per AdaLoRA parameter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

RANKS_FILE = "adalora_ranks.json"
_EMAS = ("exp_avg_ipt", "exp_avg_unc")  # the RankAllocator's averages; its ``ipt`` is recomputed each step


@dataclass(frozen=True)
class Schedule:
    """The phases in optimizer steps: warm-up 1..tinit, budget shrinking up to step total - tfinal (where the
    ranks are fixed), then tfinal steps training the kept triplets."""

    total_steps: int
    tinit: int
    tfinal: int
    delta_t: int


def _parts(model: nn.Module) -> tuple[nn.Module, str, Any]:
    """(the AdaLoraModel, the adapter's name, its peft config) of a PeftModel."""
    adapter = model.active_adapter
    return model.base_model, adapter, model.peft_config[adapter]


def _layer_name(key: str) -> str:
    """``bert.encoder.layer.0.attention.self.query.lora_E.default`` (or without ``.default``, as peft rewrites
    the keys when it saves) -> ``bert.encoder.layer.0.attention.self.query``."""
    return key.split(".lora_E")[0]


def _adapted_layers(model: nn.Module) -> dict[str, nn.Module]:
    from peft.tuners.adalora import AdaLoraLayer

    return {name: m for name, m in model.base_model.model.named_modules() if isinstance(m, AdaLoraLayer)}


def rank_pattern(model: nn.Module) -> dict[str, list[bool]] | None:
    """Layer name -> which of its init_r triplets the last allocation kept (None before any allocation)."""
    pattern = _parts(model)[2].rank_pattern
    return None if pattern is None else {_layer_name(k): list(v) for k, v in pattern.items()}


def apply_rank_pattern(model: nn.Module) -> None:
    """Zero the singular values lambda of the triplets the last allocation pruned (training layers only: a
    loaded model's layers are already cut to their kept triplets)."""
    pattern = rank_pattern(model)
    if pattern is None:
        return
    adapter = _parts(model)[1]
    with torch.no_grad():
        for name, layer in _adapted_layers(model).items():
            values = layer.lora_E[adapter]  # (init_r, 1) while training
            keep = pattern[name]
            if values.shape[0] == len(keep):
                values.masked_fill_(~torch.tensor(keep, device=values.device).unsqueeze(-1), 0.0)


def ranks_report(model: nn.Module, last_step: int | None) -> dict[str, Any]:
    """What ``adalora_ranks.json`` holds: each adapted layer's final rank and the budget they share."""
    _, adapter, config = _parts(model)
    pattern = rank_pattern(model)
    layers = _adapted_layers(model)
    ranks = {name: (sum(pattern[name]) if pattern is not None else layer.r[adapter])
             for name, layer in sorted(layers.items())}
    return {
        "init_r": config.init_r,
        "target_r": config.target_r,
        "budget": {"initial": config.init_r * len(ranks), "target": config.target_r * len(ranks),
                   "final": sum(ranks.values())},
        "schedule": {"total_steps": config.total_step, "tinit": config.tinit, "tfinal": config.tfinal,
                     "delta_t": config.deltaT, "ranks_fixed_at_step": config.total_step - config.tfinal},
        "last_step": last_step,
        "allocated": pattern is not None,
        "ranks": ranks,
    }


def summary_line(report: dict[str, Any]) -> str:
    ranks = list(report["ranks"].values())
    budget = report["budget"]
    if not report["allocated"]:
        return (f"adalora: no rank allocation ran (training did not call after_step); the {len(ranks)} layers "
                f"keep init_r = {report['init_r']} ({RANKS_FILE})")
    fixed_at, last = report["schedule"]["ranks_fixed_at_step"], report["last_step"]
    early = f"; stopped at step {last}, before the ranks were fixed at step {fixed_at}" \
        if last is not None and last < fixed_at else ""
    return (f"adalora: rank budget {budget['final']} of {budget['initial']} (target {budget['target']}) over "
            f"{len(ranks)} layers; ranks min {min(ranks)}, mean {sum(ranks) / len(ranks):.1f}, max {max(ranks)}"
            f"{early} ({RANKS_FILE})")


def allocator_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The allocation state kept outside the weights: the importance averages and the last keep-masks."""
    allocator = model.base_model.rankallocator
    state = {f"{ema}:{name}": value for ema in _EMAS for name, value in getattr(allocator, ema).items()}
    for name, keep in (rank_pattern(model) or {}).items():
        state[f"rank_pattern:{name}"] = torch.tensor(keep, dtype=torch.bool)
    return state


def restore_allocator(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Put back what :func:`allocator_state` returned (on resume; the weights are restored separately)."""
    ada, adapter, config = _parts(model)
    allocator = ada.rankallocator
    allocator.reset_ipt()
    params = dict(ada.model.named_parameters())
    pattern: dict[str, list[bool]] = {}
    for key, value in state.items():
        kind, _, name = key.partition(":")
        if kind in _EMAS and name in params:
            getattr(allocator, kind)[name] = value.to(params[name].device)
            # peft starts a parameter's averages from zero when it has no ``ipt`` entry; ``ipt`` itself is
            # overwritten before it is read.
            allocator.ipt.setdefault(name, torch.zeros_like(params[name]))
        elif kind == "rank_pattern":
            pattern[f"{name}.lora_E.{adapter}"] = value.tolist()
        else:
            raise RuntimeError(f"adalora checkpoint state has an unexpected entry {key!r}")
    config.rank_pattern = pattern or None
