"""AdaLoRA (Zhang et al., 2023, "Adaptive Budget Allocation for Parameter-Efficient Fine-Tuning") through peft.

Each targeted linear layer W gets an update in SVD form, with its rank pruned while training:

    h = W x + (alpha / init_r) * P diag(lambda) Q x        P (d_out, r), lambda (r,), Q (r, d_in), r = init_r

(peft: ``lora_B`` = P, ``lora_E`` = lambda, ``lora_A`` = Q). lambda starts at zero, so training starts from
the pretrained model exactly. A triplet i (P[:, i], lambda_i, Q[i]) scores
S_i = s(lambda_i) + mean_j s(P[j, i]) + mean_j s(Q[i, j]), where s(w) = I_bar(w) * U_bar(w) smooths the
sensitivity I(w) = |w * dL/dw| over steps (I_bar: EMA with beta1; U_bar: EMA with beta2 of |I - I_bar|).
The total rank budget b(t) falls from init_r * n to target_r * n (n adapted layers) on a cubic schedule:

    b(t) = target + (initial - target) * (1 - (t - t_i) / (T - t_f - t_i))^3        for t_i < t <= T - t_f

and every ``delta_t`` steps the triplets scoring below the b(t)-th best have lambda_i set to 0. At step
T - t_f the ranks are fixed; the last t_f steps train the kept triplets. The loss adds
``orth_reg_weight`` * R, R the mean over adapted matrices of ||P^T P - I||_F and ||Q Q^T - I||_F (peft's
AdaLoraModel.forward; the paper squares the norms), which keeps P and Q near orthogonal so pruning a
triplet removes one direction.

The training loop drives the allocation: ``after_step`` calls peft's ``update_and_allocate(step)`` after
each optimizer step (accumulated gradients still in ``.grad``). The importance averages live outside the
model and are checkpointed with the run (``state_dict``), so ``--resume`` continues exactly. The run's
model folder holds a peft adapter folder (pruned triplets removed, ``rank_pattern`` in
``adapter_config.json``) and ``adalora_ranks.json``: the final rank of every adapted layer and the budget.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar, Literal

import torch
from pydantic import Field, ValidationInfo, field_validator, model_validator
from rich.console import Console
from torch import nn

from tuneforge.errors import TuneforgeError
from tuneforge.methods.adalora.ranks import (
    RANKS_FILE,
    Schedule,
    allocator_state,
    apply_rank_pattern,
    ranks_report,
    restore_allocator,
    summary_line,
)
from tuneforge.methods.base import MethodConfig, register
from tuneforge.methods.params import check_target_modules, head_modules, peft_task_type
from tuneforge.methods.peft_folder import PeftMethod
from tuneforge.models.backbones import Backbone

_PHASE_HELP = ("a number below 1 is a fraction of the training's optimizer steps, a whole number 1 or more "
               "counts steps")


class AdaLoraConfig(MethodConfig):
    name: Literal["adalora"] = "adalora"
    recommended_learning_rate: ClassVar[float] = 2e-3
    init_r: int = Field(12, ge=1, description="Rank every adapted layer starts with (its number of triplets).")
    target_r: int = Field(8, ge=1, description="Average rank per adapted layer once the budget has shrunk "
                                               "(total budget target_r x adapted layers); below init_r.")
    tinit: int | float = Field(0.1, ge=0, description="Warm-up before any rank is pruned: " + _PHASE_HELP + ".")
    tfinal: int | float = Field(0.2, ge=0, description="Final phase, ranks fixed: " + _PHASE_HELP + ".")
    delta_t: int = Field(1, ge=1, description="Prune to the scheduled budget every delta_t optimizer steps.")
    beta1: float = Field(0.85, gt=0, lt=1, description="EMA factor smoothing each weight's sensitivity |w dL/dw|.")
    beta2: float = Field(0.85, gt=0, lt=1, description="EMA factor of the sensitivity's uncertainty.")
    orth_reg_weight: float = Field(0.1, ge=0, description="Weight of the orthogonality penalty on P and Q "
                                                          "added to the loss (peft's default is 0.5).")
    alpha: float = Field(32, gt=0, description="Scale: the update is multiplied by alpha / init_r.")
    dropout: float = Field(0.1, ge=0, lt=1, description="Dropout on the AdaLoRA branch input.")
    target_modules: list[str] | None = Field(
        None, description="Names of the linear layers to adapt; default per architecture from peft "
                          "(query/value for BERT, q_proj/v_proj for Llama).")

    @field_validator("target_r")
    @classmethod
    def _below_init_r(cls, target_r: int, info: ValidationInfo) -> int:
        init_r = info.data.get("init_r")
        if init_r is not None and target_r >= init_r:
            raise ValueError(f"target_r must be below init_r ({init_r}): AdaLoRA prunes each layer's rank from "
                             "init_r toward an average of target_r. Raise init_r (the paper starts 1.5x higher: "
                             f"init_r: {max(target_r + 1, math.ceil(1.5 * target_r))}) or lower target_r; for one "
                             f"fixed rank use method lora (r: {target_r})")
        return target_r

    @field_validator("tinit", "tfinal")
    @classmethod
    def _fraction_or_steps(cls, value: float) -> float:
        if value >= 1 and not float(value).is_integer():
            raise ValueError(f"{_PHASE_HELP}; {value} is neither. Write {math.floor(value)} steps or a fraction "
                             "such as 0.1")
        return int(value) if value >= 1 else value

    @model_validator(mode="after")
    def _phases_leave_room(self) -> AdaLoraConfig:
        if self.tinit < 1 and self.tfinal < 1 and self.tinit + self.tfinal >= 1:
            raise ValueError(f"tinit ({self.tinit}) + tfinal ({self.tfinal}) cover the whole training, leaving no "
                             "steps to allocate ranks in; keep their sum below 1 (e.g. tinit: 0.1, tfinal: 0.2)")
        return self

    def schedule(self, total_steps: int) -> Schedule:
        """The phases in optimizer steps, for a training of ``total_steps``; a clear error if they do not fit."""
        def steps(value: float) -> int:
            return math.floor(value * total_steps + 1e-9) if value < 1 else int(value)

        tinit, tfinal = steps(self.tinit), steps(self.tfinal)
        if total_steps < 2:
            raise TuneforgeError(f"method adalora: training has {total_steps} optimizer step, too few to allocate "
                                 "ranks (the allocation needs importance scores from at least one step before the "
                                 "ranks are fixed). Train longer (train.epochs or train.max_steps), or use lora.")
        # peft needs a budget phase (tinit < T - tfinal), and its final allocation at step T - tfinal reads the
        # importance scores of the steps before it: so T - tfinal >= 2.
        if tinit + tfinal >= total_steps or tfinal > total_steps - 2:
            raise TuneforgeError(
                f"method.tinit = {self.tinit} ({tinit} steps) and method.tfinal = {self.tfinal} ({tfinal} steps) "
                f"leave no steps to allocate AdaLoRA's ranks in a training of {total_steps} optimizer steps: they "
                f"need tinit + tfinal <= {total_steps - 1} and tfinal <= {total_steps - 2} steps. Give them as "
                "fractions of the training (e.g. tinit: 0.1, tfinal: 0.2), lower them, or train longer "
                "(train.epochs or train.max_steps).")
        return Schedule(total_steps=total_steps, tinit=tinit, tfinal=tfinal, delta_t=self.delta_t)


def default_targets(model: nn.Module) -> list[str]:
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_ADALORA_TARGET_MODULES_MAPPING as TARGETS

    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type not in TARGETS:
        raise TuneforgeError(f"AdaLoRA has no default target modules for model type {model_type!r}. Set "
                             "method.target_modules to the names of its attention projections, e.g. "
                             "[q_proj, v_proj].")
    return list(TARGETS[model_type])


class AdaLora(PeftMethod):
    merges = True
    config: AdaLoraConfig

    def __init__(self, config: AdaLoraConfig) -> None:
        super().__init__(config)
        self.schedule: Schedule | None = None
        self._model: nn.Module | None = None  # the PeftModel from apply: its rank allocator holds the state
        self._step: int | None = None  # the last optimizer step after_step saw

    def plan(self, total_steps: int) -> None:
        self.schedule = self.config.schedule(total_steps)

    def apply(self, backbone: Backbone) -> nn.Module:
        import peft

        if self.schedule is None:
            raise TuneforgeError("method adalora schedules its rank budget over the training's optimizer steps: "
                                 "call method.plan(total_steps) before method.apply(backbone) (tuneforge train "
                                 "does this).")
        cfg, schedule = self.config, self.schedule
        model = backbone.model
        targets = cfg.target_modules or default_targets(model)
        check_target_modules(model, targets)
        peft_config = peft.AdaLoraConfig(
            task_type=peft_task_type(model), init_r=cfg.init_r, target_r=cfg.target_r, lora_alpha=cfg.alpha,
            lora_dropout=cfg.dropout, target_modules=targets, tinit=schedule.tinit, tfinal=schedule.tfinal,
            deltaT=schedule.delta_t, beta1=cfg.beta1, beta2=cfg.beta2, orth_reg_weight=cfg.orth_reg_weight,
            total_step=schedule.total_steps, modules_to_save=head_modules(model, backbone.new_parameters))
        self._model = peft.get_peft_model(model, peft_config)
        return self._model

    def after_step(self, model: nn.Module, step: int) -> None:
        # peft's convention is ours: ``step`` counts optimizer steps from 1, the ranks are fixed at step
        # T - tfinal, and the gradients (accumulated, clipped) are still in .grad.
        model.base_model.update_and_allocate(step)
        self._step = step

    def state_dict(self) -> dict[str, torch.Tensor]:
        if self._model is None:
            return {}
        step = {"step": torch.tensor(self._step)} if self._step is not None else {}
        return allocator_state(self._model) | step

    def load_state_dict(self, model: nn.Module, state: dict[str, torch.Tensor]) -> None:
        state = dict(state)
        step = state.pop("step", None)
        self._step = int(step) if step is not None else None
        restore_allocator(model, state)

    def save(self, model: nn.Module, folder: Path) -> None:
        # The saved adapter drops the pruned triplets; zero their lambda here too, so the model in memory
        # computes what the folder holds. A no-op after a full schedule (peft re-masks after every step of
        # the final phase); it matters when training stopped early, between two allocations.
        apply_rank_pattern(model)
        report = ranks_report(model, self._step)
        with _quiet_about_rank_patterns():
            super().save(model, folder)
        (folder / RANKS_FILE).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        Console(stderr=True).print(summary_line(report), highlight=False, markup=False, soft_wrap=True)

    def load(self, folder: Path, load_base: Callable[[], Backbone]) -> nn.Module:
        with _quiet_about_rank_patterns():
            return super().load(folder, load_base)


@contextmanager
def _quiet_about_rank_patterns() -> Iterator[None]:
    """Silence two peft 0.21 warnings that misread a pruned AdaLoRA adapter: saving flags a layer pruned to
    rank 0 as an ungathered DeepSpeed/FSDP shard, and loading reads ``rank_pattern`` as LoRA's (per-module
    ranks by name) and says its keys matched nothing. AdaLoRA's own loading still cuts each layer to its
    kept triplets (tested: identical logits)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*LoRA tensor\(s\) have invalid shape")
        warnings.filterwarnings("ignore", message=r"The following rank_pattern keys did not match")
        yield


register(AdaLoraConfig, AdaLora, "low-rank updates in SVD form whose ranks are pruned to a budget by importance "
                                 "while training, through peft (Zhang et al., 2023)")
