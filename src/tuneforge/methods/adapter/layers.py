"""Bottleneck adapter modules and where they go in a transformer block.

An adapter is a small residual MLP on a sublayer's output (Houlsby et al., 2019):

    adapter(h) = h + W_up f(W_down h + b_down) + b_up       h: (B, T, d)
    W_down: (m, d), W_up: (d, m), m = d / reduction_factor, f a non-linearity

W_up, b_up and b_down start at zero (W_down random), so adapter(h) = h exactly before training and the
adapted model starts as the pretrained one. Each adapter has 2 d m + d + m parameters.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

from torch import Tensor, nn

from tuneforge.errors import TuneforgeError
from tuneforge.methods.params import transformer_layers

Placement = Literal["houlsby", "pfeiffer"]
NonLinearity = Literal["relu", "gelu", "swish", "tanh"]

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU, "swish": nn.SiLU, "tanh": nn.Tanh}


@dataclass(frozen=True)
class BlockLayout:
    """Names, relative to one transformer block, of the linear layers whose output gets an adapter."""

    family: str
    attention_output: str  # the attention output projection (Houlsby only)
    feed_forward_output: str  # the feed-forward output projection (Houlsby and Pfeiffer)


# Each output projection is followed by (dropout,) the residual add and (in post-LN encoders) LayerNorm,
# so an adapter on the projection's output sits where the papers put it: before the skip connection.
LAYOUTS = (
    BlockLayout("BERT-style encoders (BERT, RoBERTa, MiniLM, ELECTRA, ...)", "attention.output.dense", "output.dense"),
    BlockLayout("Llama-style decoders (Llama, Mistral, Qwen, ...)", "self_attn.o_proj", "mlp.down_proj"),
    BlockLayout("DistilBERT", "attention.out_lin", "ffn.lin2"),
)


class Bottleneck(nn.Module):
    """h + up(f(down(h))), with ``up`` zero-initialised (an identity map before training)."""

    def __init__(self, hidden: int, bottleneck: int, non_linearity: NonLinearity) -> None:
        super().__init__()
        self.down = nn.Linear(hidden, bottleneck)  # Kaiming-uniform weight (nn.Linear's default)
        self.act = ACTIVATIONS[non_linearity]()
        self.up = nn.Linear(bottleneck, hidden)
        # A zero b_down: sublayer outputs can be small (std ~0.01 in a randomly initialised BERT), and nn.Linear's
        # random bias would then decide alone whether a ReLU unit is on; a unit off for every token gets
        # no gradient and never trains.
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, h: Tensor) -> Tensor:  # (B, T, d) -> (B, T, d)
        return h + self.up(self.act(self.down(h))).to(h.dtype)


class AdaptedLinear(nn.Module):
    """A frozen linear layer followed by an adapter; ``enabled = False`` gives the base output exactly."""

    def __init__(self, base: nn.Linear, adapter: Bottleneck) -> None:
        super().__init__()
        self.base = base
        self.adapter = adapter
        self.enabled = True

    def forward(self, x: Tensor) -> Tensor:
        out = self.base(x)
        return self.adapter(out) if self.enabled else out

    def adapter_params(self) -> list[str]:
        """Names of the adapter's own parameters, relative to this module."""
        return [f"adapter.{name}" for name, _ in self.adapter.named_parameters()]


def insertion_points(model: nn.Module, placement: Placement) -> list[str]:
    """Full names of the linear layers that get an adapter: 2 per block (houlsby) or 1 (pfeiffer).

    The blocks are found by shape (:func:`transformer_layers`); inside each, the first layout whose
    output projections all exist as ``nn.Linear`` decides the names.
    """
    try:
        stack_name, stack = transformer_layers(model)
    except TuneforgeError:
        stack_name, stack = "", nn.ModuleList()
    points = []
    for index, block in enumerate(stack):
        modules = dict(block.named_modules())
        for layout in LAYOUTS:
            wanted = [layout.feed_forward_output] if placement == "pfeiffer" else \
                [layout.attention_output, layout.feed_forward_output]
            if all(isinstance(modules.get(name), nn.Linear) for name in wanted):
                points += [f"{stack_name}.{index}.{name}" for name in wanted]
                break
    if not points:
        model_type = getattr(getattr(model, "config", None), "model_type", "unknown")
        known = "; ".join(f"{lay.family}: {lay.attention_output} and {lay.feed_forward_output}" for lay in LAYOUTS)
        raise TuneforgeError(
            f"method adapter found no place for adapters in {type(model).__name__} (model type {model_type!r}): "
            f"it looks in each transformer block for the attention and feed-forward output projections of a "
            f"known layout ({known}). Use method lora or ia3 for this architecture.")
    return points


def add_adapters(model: nn.Module, points: list[str], reduction_factor: int, non_linearity: NonLinearity
                 ) -> list[AdaptedLinear]:
    """Replace each linear layer named in ``points`` by an :class:`AdaptedLinear` (in place)."""
    wrapped = []
    for name in points:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        linear = getattr(parent, child)
        hidden = linear.out_features
        if hidden < reduction_factor:
            raise TuneforgeError(f"method.reduction_factor = {reduction_factor} is larger than the hidden size "
                                 f"{hidden} of {name}; the bottleneck would be empty. Use at most {hidden}.")
        adapter = Bottleneck(hidden, hidden // reduction_factor, non_linearity)
        adapter.to(device=linear.weight.device)  # fp32 even when the base is held in bf16 (trainable)
        module = AdaptedLinear(linear, adapter)
        setattr(parent, child, module)
        wrapped.append(module)
    return wrapped


def adapter_modules(model: nn.Module) -> Iterator[tuple[str, AdaptedLinear]]:
    for name, module in model.named_modules():
        if isinstance(module, AdaptedLinear):
            yield name, module


def adapter_parameter_names(model: nn.Module) -> set[str]:
    return {f"{name}.{p}" for name, module in adapter_modules(model) for p in module.adapter_params()}


def set_adapters_enabled(model: nn.Module, enabled: bool) -> int:
    """Switch every adapter of ``model`` on or off; returns how many there are."""
    count = 0
    for _, module in adapter_modules(model):
        module.enabled = enabled
        count += 1
    return count


@contextmanager
def adapters_disabled(model: nn.Module) -> Iterator[nn.Module]:
    """``with adapters_disabled(model):`` the model computes exactly what the backbone did before adapters."""
    set_adapters_enabled(model, False)
    try:
        yield model
    finally:
        set_adapters_enabled(model, True)
