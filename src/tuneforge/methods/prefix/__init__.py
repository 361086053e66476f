"""Prefix tuning (Li & Liang, 2021, "Prefix-Tuning: Optimizing Continuous Prompts for Generation"; Liu et
al., 2022, "P-Tuning v2: Prompt Tuning Can Be Comparable to Fine-tuning Universally Across Scales and Tasks").

Every attention layer l gets p learned key and value vectors in front of its own:

    head_i(x) = softmax(Q_i [K_p^l; K_i]^T / sqrt(d_h) + [0; M]) [V_p^l; V_i]     K_p^l, V_p^l: (h_kv, p, d_h)

so each token can attend to p extra positions that hold no token: a learned context, in every layer
(prompt tuning's virtual tokens only enter at the input). Only K_p, V_p (L 2 h_kv p d_h numbers) and the
task head train. Li & Liang reparameterise the prefix through an MLP for stable training,

    [K_p; V_p] = W_2 tanh(W_1 E + b_1) + b_2          E (p, e), hidden size k    (projection: true)

which P-tuning v2 found helps on some tasks and hurts on others. The MLP is a training device: the saved
folder holds its output, so a loaded model has the plain table.

Where: transformers 5 calls ``ALL_ATTENTION_FUNCTIONS[config._attn_implementation](module, Q, K, V, mask,
...)`` in every attention layer. The model is switched to the wrapped implementation
``tuneforge_prefix+<inner>`` (``models/attention.py``), which concatenates the module's layer's prefix
and calls the implementation that was active (sdpa, eager or the training attention ``tuneforge_sdpa``).

- Masks: p visible columns are put in front of the mask the inner implementation takes (True in a bool
  SDPA mask, 0 in an additive eager one), so every query, padding and (in a decoder) every causal position
  included, sees all p prefix positions. A decoder whose mask was left as None (SDPA's ``is_causal``) gets
  the causal mask built explicitly: SDPA aligns ``is_causal`` to the top left, wrong once keys outnumber
  queries.
- Positions: the prefix takes no positions. Real tokens keep positions 0..T-1 (BERT's position embeddings,
  Llama's rotary angles are unchanged) and the prefix keys are used as stored, without rotary rotation:
  a query's score against them may depend on its position, as a learned function of it. Because of that,
  position ids are counted from each sequence's first real token (a forward pre-hook, as ``generate``
  does), so left padding does not shift them; with right padding nothing changes.
- Grouped-query attention: the prefix has the model's h_kv key/value heads; the inner implementation
  repeats them for the query heads like the model's own keys.

Initialisation (``init``): ``vocab`` (default) starts each layer's prefix as the keys and values the model
itself computes for p vocabulary tokens drawn at random (Li & Liang, section 7.4: "initializing with
activations of real words" trains better and with less variance than random initialisation, most of all
with little data); the model then starts as if reading p real words before the text. With projection the
MLP's input E starts as those tokens' embeddings instead. ``random``: N(0, 1), as in peft and P-tuning v2.

Why our own: peft 0.21's prefix tuning passes the prefix as a past key/value cache, which BERT-style encoders
do not take in transformers 5 (``ValueError: Model does not support past key values which are required for
prefix tuning``), and on decoders it shifts the real tokens' positions by p. The attention interface gives
one place, the same for encoders and decoders, to add keys and values.

The model folder holds ``prefix_model.safetensors`` (``prefix_encoder.table`` (L, 2, h_kv, p, d_h) and the
head's weights by parameter name) and ``prefix_config.json`` (these options, the base model path, the layer
count and key/value shape, the attention modules). Prefixes do not merge into the base weights.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar, Literal

import torch
from pydantic import Field, model_validator
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from tuneforge.errors import TuneforgeError
from tuneforge.methods.base import MethodBase, MethodConfig, register
from tuneforge.methods.params import head_parameter_names, set_trainable, snapshot, swapped_in
from tuneforge.methods.prefix.layers import (
    PrefixEncoder,
    attach,
    attention_modules,
    check_implementation,
    find_encoder,
    key_value_shape,
    own_keys_values,
    sample_tokens,
)
from tuneforge.models.backbones import Backbone

WEIGHTS_FILE = "prefix_model.safetensors"
CONFIG_FILE = "prefix_config.json"
TABLE = "prefix_encoder.table"
DEFAULT_HIDDEN = 512

__all__ = ["Prefix", "PrefixConfig", "PrefixEncoder"]


class PrefixConfig(MethodConfig):
    name: Literal["prefix"] = "prefix"
    # P-tuning v2 trained its prefixes at 5e-3 to 1e-2 on BERT/RoBERTa classification; not tuned here.
    recommended_learning_rate: ClassVar[float] = 1e-2
    num_virtual_tokens: int = Field(
        20, ge=1, description="p: key and value vectors put in front of every attention layer's own. They cost "
                              "attention over p more keys, not p more tokens through the whole model.")
    init: Literal["vocab", "random"] = Field(
        "vocab", description="vocab: the keys and values the model computes for p random vocabulary tokens (with "
                             "projection: their embeddings as the MLP's input); random: N(0, 1).")
    projection: bool = Field(
        False, description="Compute the prefixes with Li & Liang's MLP, W_2 tanh(W_1 E + b_1) + b_2, while "
                           "training (the saved folder holds its output).")
    projection_hidden_size: int = Field(DEFAULT_HIDDEN, ge=1, description="Hidden size k of the MLP (projection: "
                                                                          "true).")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout on the prefix keys and values while "
                                                            "training (P-tuning v2's code uses 0.1).")

    @model_validator(mode="after")
    def _hidden_size_with_projection(self) -> PrefixConfig:
        if not self.projection and self.projection_hidden_size != DEFAULT_HIDDEN:
            raise ValueError(f"projection_hidden_size = {self.projection_hidden_size} has no effect without "
                             "projection: true; set projection: true or remove projection_hidden_size")
        return self


class Prefix(MethodBase):
    config: PrefixConfig

    def __init__(self, config: PrefixConfig) -> None:
        super().__init__(config)
        self._head: set[str] = set()  # names of the head parameters (trained and saved with the prefix)
        self._head_originals: dict[str, Tensor] = {}  # the head as the base model had it, for disabled()
        self.init_token_ids: list[int] | None = None  # the tokens whose activations started the prefix (vocab)

    def apply(self, backbone: Backbone) -> nn.Module:
        model = backbone.model
        cfg = self.config
        modules = attention_modules(model)
        check_implementation(model)  # before anything changes
        kv_heads, head_dim = _shape(modules)
        self._head = head_parameter_names(model, backbone.new_parameters)
        embeddings = model.get_input_embeddings()
        encoder = PrefixEncoder(len(modules), kv_heads, head_dim, cfg.num_virtual_tokens,
                                embed_dim=embeddings.embedding_dim,
                                projection_hidden_size=cfg.projection_hidden_size if cfg.projection else None,
                                dropout=cfg.dropout)
        encoder.to(device=embeddings.weight.device)  # fp32 even when the base is held in bf16 (trainable)
        attach(model, encoder, modules)
        if cfg.init == "vocab":
            tokens = sample_tokens(model, backbone.tokenizer, cfg.num_virtual_tokens)
            with torch.no_grad():
                if encoder.table is not None:
                    encoder.table.copy_(own_keys_values(model, encoder, tokens))
                else:
                    encoder.embedding.copy_(embeddings.weight[tokens.to(embeddings.weight.device)])
            self.init_token_ids = tokens.tolist()
        self._head_originals = snapshot(model, self._head)
        set_trainable(model, _prefix_names(model) | self._head)
        return model

    @contextmanager
    def disabled(self, model: nn.Module) -> Iterator[None]:
        encoder = find_encoder(model)
        was = encoder.enabled
        encoder.enabled = False
        try:
            with swapped_in(model, self._head_originals):
                yield
        finally:
            encoder.enabled = was

    def save(self, model: nn.Module, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        encoder = find_encoder(model)
        weights = {TABLE: encoder.as_table()}
        weights |= {n: p.detach() for n, p in model.named_parameters() if n in self._head}
        save_file({n: t.float().cpu().contiguous() for n, t in weights.items()}, str(folder / WEIGHTS_FILE),
                  metadata={"format": "pt"})
        names = {id(m): n for n, m in model.named_modules()}
        modules = attention_modules(model)
        info = {"method": "prefix", "config": self.config.model_dump(),
                "base_model_name_or_path": getattr(model, "name_or_path", None),
                "num_layers": encoder.layers, "key_value_heads": encoder.kv_heads, "head_dim": encoder.head_dim,
                "attention_modules": [names[id(m)] for m in modules], "head_parameters": sorted(self._head),
                "init_token_ids": self.init_token_ids}
        (folder / CONFIG_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")

    def load(self, folder: Path, load_base: Callable[[], Backbone]) -> nn.Module:
        if not (folder / CONFIG_FILE).exists() or not (folder / WEIGHTS_FILE).exists():
            raise TuneforgeError(f"{folder} is not a prefix folder: it needs {CONFIG_FILE} and {WEIGHTS_FILE}.")
        info = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
        cfg = PrefixConfig(**info["config"])  # the options the weights were trained with
        model = load_base().model
        modules = attention_modules(model)
        saved = (info["num_layers"], info["key_value_heads"], info["head_dim"])
        found = (len(modules), *_shape(modules))
        if found != saved:
            raise TuneforgeError(
                f"{folder / CONFIG_FILE} was saved for a model with {saved[0]} attention layers of {saved[1]} "
                f"key/value heads of size {saved[2]}, but the base model ({type(model).__name__}) has {found[0]} "
                f"layers of {found[1]} heads of size {found[2]}; load it with the base model it was trained on "
                f"({info.get('base_model_name_or_path')}).")
        weights = load_file(str(folder / WEIGHTS_FILE))
        table = weights.pop(TABLE, None)
        expected = (saved[0], 2, saved[1], cfg.num_virtual_tokens, saved[2])
        unknown = sorted(set(weights) - {n for n, _ in model.named_parameters()})
        if table is None or tuple(table.shape) != expected or unknown:
            raise TuneforgeError(f"{folder / WEIGHTS_FILE} does not match the model: it needs {TABLE} of shape "
                                 f"{expected} (has {None if table is None else tuple(table.shape)}) and the head's "
                                 f"weights by name (unknown: {unknown[:3]}).")
        encoder = PrefixEncoder(saved[0], saved[1], saved[2], cfg.num_virtual_tokens,
                                embed_dim=model.get_input_embeddings().embedding_dim, projection_hidden_size=None,
                                dropout=cfg.dropout)
        encoder.to(device=model.get_input_embeddings().weight.device)
        attach(model, encoder, modules)
        self._head = set(weights)
        self._head_originals = snapshot(model, self._head)
        with torch.no_grad():
            encoder.table.copy_(table)
        model.load_state_dict(weights, strict=False)
        for p in model.parameters():
            p.requires_grad_(False)
        return model


def _shape(modules: list[nn.Module]) -> tuple[int, int]:
    shapes = {key_value_shape(m) for m in modules}
    if len(shapes) != 1:
        raise TuneforgeError(f"method prefix: the attention layers have different key/value shapes {sorted(shapes)}; "
                             "one prefix table needs them equal.")
    return shapes.pop()


def _prefix_names(model: nn.Module) -> set[str]:
    return {n for n, _ in model.named_parameters() if n.startswith("prefix_encoder.")}


register(PrefixConfig, Prefix, "learned keys and values in front of every attention layer's own, and the head "
                               "(Li & Liang, 2021; P-tuning v2, Liu et al., 2022)")
