"""Bottleneck adapters: small residual MLPs inserted in every transformer block.

Houlsby et al., 2019, "Parameter-Efficient Transfer Learning for NLP": each adapter maps a sublayer's
output h (dimension d) to

    h + W_up f(W_down h + b_down) + b_up,        W_down: (m, d), W_up: (d, m), m = d / reduction_factor

and two of them go in each block, after the attention output projection and after the feed-forward
output, before the residual add and LayerNorm. Pfeiffer et al., 2020, "AdapterFusion: Non-Destructive
Task Composition for Transfer Learning", found that one adapter per block, after the feed-forward
output, does about as well with half the parameters (the default here). W_up starts at zero, so the
adapted model computes exactly what the pretrained one did until training moves it. Only the adapters
and the task head train (Houlsby et al. also trained the LayerNorms; they stay frozen here), and
adapters do not merge into the base weights: the adapted model keeps its extra modules.

Written here rather than taken from a library: peft has no bottleneck adapters, and AdapterHub's
``adapters`` package is a separate, heavy dependency that pins its own transformers versions.

The model folder holds ``adapter_model.safetensors`` (adapter and head weights, by parameter name) and
``adapter_config.json`` (these options, the base model path and the adapted module names).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from tuneforge.errors import TuneforgeError
from tuneforge.methods.adapter.layers import NonLinearity, Placement, adapter_modules, adapter_parameter_names, \
    adapters_disabled, add_adapters, insertion_points, set_adapters_enabled
from tuneforge.methods.base import MethodBase, MethodConfig, register
from tuneforge.methods.params import head_parameter_names, set_trainable, snapshot, swapped_in
from tuneforge.models.backbones import Backbone

WEIGHTS_FILE = "adapter_model.safetensors"
CONFIG_FILE = "adapter_config.json"

__all__ = ["Adapter", "AdapterConfig", "adapters_disabled", "set_adapters_enabled"]


class AdapterConfig(MethodConfig):
    name: Literal["adapter"] = "adapter"
    recommended_learning_rate: ClassVar[float] = 1e-3
    placement: Placement = Field(
        "pfeiffer", description="houlsby: two adapters per block (after the attention output and after the "
                                "feed-forward output); pfeiffer: one, after the feed-forward output.")
    reduction_factor: int = Field(16, ge=1, description="Bottleneck size = hidden size / reduction_factor.")
    non_linearity: NonLinearity = Field("relu", description="Activation inside the bottleneck (swish = SiLU).")


class Adapter(MethodBase):
    config: AdapterConfig

    def __init__(self, config: AdapterConfig) -> None:
        super().__init__(config)
        self._head: set[str] = set()  # names of the head parameters (trained and saved with the adapters)
        self._head_originals: dict[str, Tensor] = {}  # the head as the base model had it, for disabled()

    def apply(self, backbone: Backbone) -> nn.Module:
        model = backbone.model
        if any(True for _ in adapter_modules(model)):
            raise TuneforgeError("method adapter: this model already has adapters; load a fresh backbone.")
        # The head by identity: wrapping renames the linear layers it replaces (x.dense -> x.dense.base).
        head = head_parameter_names(model, backbone.new_parameters)
        head_ids = {id(p) for n, p in model.named_parameters() if n in head}
        cfg = self.config
        add_adapters(model, insertion_points(model, cfg.placement), cfg.reduction_factor, cfg.non_linearity)
        self._head = {n for n, p in model.named_parameters() if id(p) in head_ids}
        self._head_originals = snapshot(model, self._head)
        set_trainable(model, adapter_parameter_names(model) | self._head)
        return model

    @contextmanager
    def disabled(self, model: nn.Module) -> Iterator[None]:
        with adapters_disabled(model), swapped_in(model, self._head_originals):
            yield

    def save(self, model: nn.Module, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        names = adapter_parameter_names(model) | self._head
        weights = {n: p.detach().float().cpu().contiguous() for n, p in model.named_parameters() if n in names}
        save_file(weights, str(folder / WEIGHTS_FILE), metadata={"format": "pt"})
        info = {"method": "adapter", "config": self.config.model_dump(),
                "base_model_name_or_path": getattr(model, "name_or_path", None),
                "adapted_modules": [n for n, _ in adapter_modules(model)], "head_parameters": sorted(self._head)}
        (folder / CONFIG_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")

    def load(self, folder: Path, load_base: Callable[[], Backbone]) -> nn.Module:
        if not (folder / CONFIG_FILE).exists() or not (folder / WEIGHTS_FILE).exists():
            raise TuneforgeError(f"{folder} is not an adapter folder: it needs {CONFIG_FILE} and {WEIGHTS_FILE}.")
        info = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
        cfg = AdapterConfig(**info["config"])  # the options the weights were trained with
        model = load_base().model
        add_adapters(model, insertion_points(model, cfg.placement), cfg.reduction_factor, cfg.non_linearity)
        found = [n for n, _ in adapter_modules(model)]
        if found != info["adapted_modules"]:
            raise TuneforgeError(f"{folder / CONFIG_FILE} was saved for adapters on {info['adapted_modules'][:2]}..., "
                                 f"but the base model has {found[:2]}...; load it with the base model it was "
                                 f"trained on ({info.get('base_model_name_or_path')}).")
        weights = load_file(str(folder / WEIGHTS_FILE))
        params = {n for n, _ in model.named_parameters()}
        unknown = sorted(set(weights) - params)
        missing = sorted(adapter_parameter_names(model) - set(weights))
        if unknown or missing:
            raise TuneforgeError(f"{folder / WEIGHTS_FILE} does not match the adapted model: unknown weights "
                                 f"{unknown[:3]}, missing weights {missing[:3]}.")
        self._head = set(weights) - adapter_parameter_names(model)
        self._head_originals = snapshot(model, self._head)
        model.load_state_dict(weights, strict=False)
        for p in model.parameters():
            p.requires_grad_(False)
        return model


register(AdapterConfig, Adapter, "bottleneck adapters in every block and the head (Houlsby et al., 2019; "
                                 "Pfeiffer et al., 2020)")
