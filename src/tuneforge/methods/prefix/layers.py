"""The prefix keys and values, and the attention wrapper that puts them in front of every layer's own.

Shapes: L layers, p prefix positions, h_kv key/value heads of size d_h (h_kv < query heads under
grouped-query attention), B sequences of T tokens.

    PrefixEncoder(layer)                      -> K_p, V_p       (h_kv, p, d_h) each
    attention(module, Q, K, V, mask)          Q (B, h, T, d_h), K and V (B, h_kv, T, d_h)
        K' = [K_p; K], V' = [V_p; V]          (B, h_kv, p + T, d_h)
        mask' = [visible (.., T, p); mask]    every query, padding and causal ones included, sees all p
        -> the wrapped implementation (sdpa, eager or tuneforge_sdpa) on Q, K', V', mask'
"""

from __future__ import annotations

import inspect
import sys

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tuneforge.errors import TuneforgeError
from tuneforge.methods.params import transformer_layers
from tuneforge.models.attention import WRAP, attention_function, register_wrapper, set_attention, split_implementation

TAG = "tuneforge_prefix"
SLOT = "tuneforge_prefix"  # the attribute of an attention module that points at its layer's prefix
WRAPPABLE = ("sdpa", "eager", "tuneforge_sdpa")  # implementations whose masks we know how to extend
# (key projection, value projection) names of attention modules that call transformers' attention interface
PROJECTIONS = (("key", "value"),  # BERT, RoBERTa, MiniLM, ELECTRA
               ("k_proj", "v_proj"),  # Llama, Mistral, Qwen, Gemma
               ("k_lin", "v_lin"))  # DistilBERT


class PrefixEncoder(nn.Module):
    """Every layer's prefix keys and values: a table, or Li & Liang's MLP over p learned embeddings.

    table:       P (L, 2, h_kv, p, d_h), the prefix itself
    projection:  P = W_2 tanh(W_1 E + b_1) + b_2      E (p, e), W_1 (k, e), W_2 (L 2 h_kv d_h, k)

    Under projection a layer's prefix uses only its own rows of W_2 (and b_2), so each attention layer
    computes its slice and nothing is computed twice or cached between calls.
    """

    def __init__(self, layers: int, kv_heads: int, head_dim: int, num_tokens: int, *, embed_dim: int,
                 projection_hidden_size: int | None, dropout: float) -> None:
        super().__init__()
        self.layers, self.kv_heads, self.head_dim, self.num_tokens = layers, kv_heads, head_dim, num_tokens
        if projection_hidden_size is None:
            self.table = nn.Parameter(torch.randn(layers, 2, kv_heads, num_tokens, head_dim))
        else:
            self.register_parameter("table", None)
            self.embedding = nn.Parameter(torch.randn(num_tokens, embed_dim))  # nn.Embedding's N(0, 1)
            self.hidden = nn.Linear(embed_dim, projection_hidden_size)
            self.out = nn.Linear(projection_hidden_size, layers * 2 * kv_heads * head_dim)
        self.dropout = nn.Dropout(dropout)
        self.enabled = True  # False: every attention layer runs as if there were no prefix
        self.capture: dict[int, tuple[Tensor, Tensor]] | None = None  # set to collect K, V (vocab init)

    def raw(self, layer: int) -> Tensor:
        """Layer ``layer``'s keys and values, stacked: (2, h_kv, p, d_h), without dropout."""
        if self.table is not None:
            return self.table[layer]
        size = 2 * self.kv_heads * self.head_dim
        rows = slice(layer * size, (layer + 1) * size)
        hidden = torch.tanh(self.hidden(self.embedding))  # (p, k)
        flat = F.linear(hidden, self.out.weight[rows], self.out.bias[rows])  # (p, 2 h_kv d_h)
        return flat.view(self.num_tokens, 2, self.kv_heads, self.head_dim).permute(1, 2, 0, 3)

    def forward(self, layer: int) -> tuple[Tensor, Tensor]:
        kv = self.dropout(self.raw(layer))
        return kv[0], kv[1]

    @torch.no_grad()
    def as_table(self) -> Tensor:
        """All layers' prefixes as one (L, 2, h_kv, p, d_h) tensor: what a loaded model needs."""
        return torch.stack([self.raw(layer) for layer in range(self.layers)])

    def positions_hook(self, module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
        """Forward pre-hook: position ids counted from each sequence's first real token.

        The prefix keys carry no position, so with rotary embeddings a query's score against them depends on
        the query's absolute position; with left padding that position would depend on the padding. Counting
        from the first real token (as ``generate`` does) keeps real tokens at 0..n-1 whatever the padding;
        for right padding the real tokens' positions are unchanged.
        """
        mask = kwargs.get("attention_mask")
        if not self.enabled or kwargs.get("position_ids") is not None or mask is None or mask.dim() != 2:
            return None
        kwargs["position_ids"] = (mask.long().cumsum(-1) - 1).clamp(min=0)
        return args, kwargs


class PrefixSlot:
    """What an attention module knows of its prefix: the shared encoder and its layer's index.

    A plain object, not a module, so the encoder's parameters are registered once (on the model).
    """

    def __init__(self, encoder: PrefixEncoder, layer: int) -> None:
        self.encoder, self.layer = encoder, layer


def extend_mask(mask: Tensor | None, p: int, q_len: int, k_len: int, causal: bool, device: torch.device
                ) -> Tensor | None:
    """Put p visible key positions in front of an attention mask.

    ``mask`` is what the wrapped implementation takes: bool (True = attend, SDPA), additive float (0 =
    attend, eager) or None (attend everywhere, or causal when ``causal``: then the causal mask over the
    real keys is built here, as SDPA's own ``is_causal`` would misalign it once keys outnumber queries).
    """
    if mask is None:
        if not causal:
            return None  # everything, prefix included, is visible
        mask = torch.ones(q_len, k_len, dtype=torch.bool, device=device).tril(k_len - q_len)[None, None]
    visible = mask.new_ones if mask.dtype == torch.bool else mask.new_zeros
    return torch.cat([visible(*mask.shape[:-1], p), mask], dim=-1)


def prefix_attention(inner: str):
    """The attention function of implementation ``tuneforge_prefix+<inner>``."""

    def forward(module: nn.Module, query: Tensor, key: Tensor, value: Tensor, attention_mask: Tensor | None,
                **kwargs):
        function = attention_function(inner, module)
        slot: PrefixSlot | None = getattr(module, SLOT, None)
        if slot is None or not slot.encoder.enabled:
            return function(module, query, key, value, attention_mask, **kwargs)
        encoder = slot.encoder
        if encoder.capture is not None:  # collecting the model's own keys and values (vocab init)
            encoder.capture[slot.layer] = (key[0].detach().clone(), value[0].detach().clone())
            return function(module, query, key, value, attention_mask, **kwargs)
        prefix_key, prefix_value = encoder(slot.layer)  # (h_kv, p, d_h) each
        batch, p = key.shape[0], prefix_key.shape[1]
        # fp32 parameters, bf16 keys under autocast: the prefix takes the keys' dtype
        prefix_key = prefix_key.to(key.dtype).unsqueeze(0).expand(batch, -1, -1, -1)
        prefix_value = prefix_value.to(value.dtype).unsqueeze(0).expand(batch, -1, -1, -1)
        causal = kwargs.pop("is_causal", None)
        causal = causal if causal is not None else getattr(module, "is_causal", False)
        mask = extend_mask(attention_mask, p, query.shape[2], key.shape[2], causal, query.device)
        key = torch.cat([prefix_key, key], dim=2)  # (B, h_kv, p + T, d_h)
        value = torch.cat([prefix_value, value], dim=2)
        # the mask now says everything: is_causal=False keeps SDPA from applying (misaligned) causality again
        return function(module, query, key, value, mask, is_causal=False, **kwargs)

    return forward


register_wrapper(TAG, prefix_attention)


def attention_modules(model: nn.Module) -> list[nn.Module]:
    """One self-attention module per transformer block, in order; a :class:`TuneforgeError` if none.

    An attention module is one with key and value projections of a known name (see ``PROJECTIONS``)
    whose modeling file calls transformers' attention interface.
    """
    try:
        _, blocks = transformer_layers(model)
    except TuneforgeError:
        blocks = nn.ModuleList()
    found = []
    for block in blocks:
        here = [m for m in block.modules() if _is_attention(m)]
        if len(here) != 1:
            found = []
            break
        found.append(here[0])
    if not found:
        model_type = getattr(getattr(model, "config", None), "model_type", "unknown")
        names = ", ".join(f"{k}/{v}" for k, v in PROJECTIONS)
        raise TuneforgeError(
            f"method prefix found no attention layers in {type(model).__name__} (model type {model_type!r}): it "
            f"looks in each transformer block for one self-attention module with key and value projections "
            f"named {names} that calls transformers' attention interface. Use method lora or ia3 for this "
            "architecture.")
    return found


def _is_attention(module: nn.Module) -> bool:
    modeling = vars(sys.modules.get(type(module).__module__, object))
    return "ALL_ATTENTION_FUNCTIONS" in modeling and any(
        isinstance(getattr(module, k, None), nn.Linear) and isinstance(getattr(module, v, None), nn.Linear)
        for k, v in PROJECTIONS)


def key_value_shape(module: nn.Module) -> tuple[int, int]:
    """(h_kv, d_h) of an attention module, from its key projection and head size."""
    key = next(getattr(module, k) for k, _ in PROJECTIONS if isinstance(getattr(module, k, None), nn.Linear))
    config = getattr(module, "config", None)
    head_dim = getattr(module, "head_dim", None) or getattr(module, "attention_head_size", None) or \
        getattr(config, "head_dim", None)
    if head_dim is None and config is not None:
        head_dim = config.hidden_size // config.num_attention_heads
    if not head_dim or key.out_features % head_dim:
        raise TuneforgeError(f"method prefix: cannot tell the head size of {type(module).__name__} (key "
                             f"projection of {key.out_features} outputs).")
    return key.out_features // head_dim, head_dim


def check_implementation(model: nn.Module) -> str:
    """The attention implementation to wrap; a :class:`TuneforgeError` for one whose masks we do not know."""
    current = getattr(model.config, "_attn_implementation", None) or "eager"
    tag, inner = split_implementation(current)
    if tag == TAG:
        raise TuneforgeError("method prefix: this model already has prefixes; load a fresh backbone.")
    if tag or inner not in WRAPPABLE:
        raise TuneforgeError(
            f"method prefix works with the sdpa and eager attention implementations; "
            f"{type(model).__name__} uses {current!r}, whose attention masks it cannot extend. Load the model "
            "with attn_implementation='sdpa' (tuneforge's default).")
    return inner


def attach(model: nn.Module, encoder: PrefixEncoder, modules: list[nn.Module]) -> None:
    """Give each attention module its layer's slot, register the encoder and the positions hook."""
    inner = check_implementation(model)
    model.add_module("prefix_encoder", encoder)
    for layer, module in enumerate(modules):
        setattr(module, SLOT, PrefixSlot(encoder, layer))
    if "position_ids" in inspect.signature(model.forward).parameters:
        model.register_forward_pre_hook(encoder.positions_hook, with_kwargs=True)
    set_attention(model, f"{TAG}{WRAP}{inner}")


def sample_tokens(model: nn.Module, tokenizer, n: int) -> Tensor:
    """n token ids drawn uniformly from the vocabulary, special tokens (padding, [CLS], <s>...) excluded."""
    vocab = model.get_input_embeddings().num_embeddings
    config = model.config
    special = set(getattr(tokenizer, "all_special_ids", None) or []) | {
        i for i in (config.pad_token_id, getattr(config, "bos_token_id", None), getattr(config, "eos_token_id", None))
        if isinstance(i, int)}
    allowed = torch.ones(vocab, dtype=torch.bool)
    allowed[[i for i in special if 0 <= i < vocab]] = False
    choices = allowed.nonzero().squeeze(1)
    return choices[torch.randint(len(choices), (n,))]


@torch.no_grad()
def own_keys_values(model: nn.Module, encoder: PrefixEncoder, token_ids: Tensor) -> Tensor:
    """(L, 2, h_kv, p, d_h): the keys and values the model itself computes for ``token_ids`` read as a text
    (at positions 0..p-1, in eval mode, without a prefix). ``encoder`` must be attached to ``model``."""
    was_training = model.training
    model.eval()
    encoder.capture = {}
    try:
        model(input_ids=token_ids[None].to(model.device))
        captured = encoder.capture
    finally:
        encoder.capture = None
        model.train(was_training)
    if len(captured) != encoder.layers:
        raise RuntimeError(f"method prefix: {len(captured)} of {encoder.layers} attention layers ran")
    return torch.stack([torch.stack(captured[layer]) for layer in range(encoder.layers)]).float()


def find_encoder(model: nn.Module) -> PrefixEncoder:
    encoder = getattr(model, "prefix_encoder", None)
    if not isinstance(encoder, PrefixEncoder):
        raise TuneforgeError("method prefix: this model has no prefix (it was not made by method prefix).")
    return encoder
