"""Our training attention equals transformers' SDPA path (without dropout) on BERT and Llama shapes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tuneforge.models.attention import attention_forward, restore_attention, use_training_attention


class _Module(nn.Module):
    def __init__(self, groups: int, causal: bool):
        super().__init__()
        self.num_key_value_groups = groups
        self.is_causal = causal


@pytest.mark.parametrize("groups,causal,mask_kind", [(1, False, "bool"), (1, False, "none"), (3, True, "none"),
                                                      (1, False, "float")])
def test_explicit_path_matches_sdpa(groups, causal, mask_kind):
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    torch.manual_seed(0)
    b, heads, t, d = 2, 6, 7, 8
    q = torch.randn(b, heads, t, d)
    k = torch.randn(b, heads // groups, t, d)
    v = torch.randn(b, heads // groups, t, d)
    mask = None
    if mask_kind != "none":
        keep = torch.ones(b, 1, t, t, dtype=torch.bool)
        keep[0, :, :, -2:] = False  # padding at the end of the first sequence
        mask = keep if mask_kind == "bool" else torch.zeros(b, 1, t, t).masked_fill(~keep, -1e9)
    module = _Module(groups, causal).train()
    # dropout so small that the 16-bit mask keeps everything: the explicit path, with nothing dropped
    ours, _ = attention_forward(module, q, k, v, mask, dropout=1e-9)
    ref, _ = sdpa_attention_forward(module.eval(), q, k, v, mask)
    assert ours.shape == ref.shape == (b, t, heads, d)
    assert torch.allclose(ours, ref, atol=1e-5)


def test_model_switches_and_restores(tiny_bert):
    from tuneforge.models.backbones import load_backbone

    backbone = load_backbone(str(tiny_bert), ["a", "b"])
    model = backbone.model.eval()
    inputs = {"input_ids": torch.tensor([[2, 10, 11, 3, 0]]), "attention_mask": torch.tensor([[1, 1, 1, 1, 0]])}
    before = model(**inputs).logits
    assert use_training_attention(model)
    assert model.config._attn_implementation == "tuneforge_sdpa"
    assert torch.allclose(model(**inputs).logits, before, atol=1e-6)
    model.train()
    out = model(**inputs).logits  # the dropout path runs
    assert torch.isfinite(out).all()
    restore_attention(model)
    assert model.config._attn_implementation == "sdpa"


def test_saved_model_names_a_standard_attention(tiny_config):
    import tuneforge

    tiny_config["train"]["epochs"] = 1
    run = tuneforge.train(tiny_config, progress=False)
    saved = (run.dir / "model" / "config.json").read_text()
    assert "tuneforge" not in saved
    from transformers import AutoModelForSequenceClassification

    reloaded = AutoModelForSequenceClassification.from_pretrained(run.dir / "model")  # transformers alone
    assert reloaded.config._attn_implementation in ("sdpa", "eager")
