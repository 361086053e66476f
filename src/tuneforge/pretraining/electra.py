"""ELECTRA's replaced-token detection (Clark et al., 2020, "ELECTRA: Pre-training Text Encoders as Discriminators
Rather Than Generators"), with transformers' Electra classes.

A small generator (a masked LM, ~1/4 of the discriminator's width) fills the masked positions with samples from
its own softmax; the discriminator reads the result and predicts, at EVERY position, whether the token is the
original one:

    x_masked = mask(x)                       the 15% chosen positions (masking.py: 80% [MASK], 10% random, 10% kept)
    x_hat_i  ~ p_G(. | x_masked)  at chosen i, x_hat_i = x_i elsewhere        (sampled, no gradient through it)
    L = L_MLM(G) + lambda * mean_i BCE(D(x_hat)_i, [x_hat_i != x_i])          (lambda = 50 in the paper)

A sample equal to the original counts as "original" (paper, section 2). The discriminator learns from all
positions rather than MLM's 15%, which is what makes ELECTRA-Small beat a BERT of the same compute. Generator and
discriminator share the token and position embeddings (paper, section 3.2); the generator's output layer is
tied to the token embeddings. After pretraining the generator is dropped: the discriminator is the encoder to
fine-tune (``model/``, an ``ElectraForPreTraining`` folder that ``tuneforge train`` loads with a fresh head).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from tuneforge.models.precision import Precision, autocast
from tuneforge.pretraining.masking import IGNORE, mask_tokens


class ElectraPair(nn.Module):
    """The discriminator (``ElectraForPreTraining``) and the generator (``ElectraForMaskedLM``), embeddings shared.

    One module so that the training loop's optimizer, clipping, checkpoints and resume see both.
    """

    def __init__(self, discriminator: nn.Module, generator: nn.Module):
        super().__init__()
        self.discriminator = discriminator
        self.generator = generator
        generator.electra.embeddings = discriminator.electra.embeddings  # token, position and type embeddings
        generator.generator_lm_head.weight = discriminator.electra.embeddings.word_embeddings.weight


def new_electra(cfg, tokenizer) -> ElectraPair:
    """Randomly initialised pair sized by ``cfg.architecture`` (the discriminator) and ``cfg.electra``."""
    from transformers import ElectraConfig, ElectraForMaskedLM, ElectraForPreTraining

    a, e = cfg.architecture, cfg.electra
    inner = a.intermediate_size or 4 * a.hidden_size
    shared = dict(vocab_size=len(tokenizer), embedding_size=a.hidden_size, max_position_embeddings=a.max_position,
                  hidden_dropout_prob=a.dropout, attention_probs_dropout_prob=a.dropout, type_vocab_size=2,
                  pad_token_id=tokenizer.pad_token_id)
    discriminator = ElectraForPreTraining(ElectraConfig(hidden_size=a.hidden_size, num_hidden_layers=a.layers,
                                                        num_attention_heads=a.heads, intermediate_size=inner,
                                                        **shared))
    g_hidden = generator_hidden(cfg)
    generator = ElectraForMaskedLM(ElectraConfig(hidden_size=g_hidden, num_hidden_layers=e.generator_layers or a.layers,
                                                 num_attention_heads=generator_heads(cfg),
                                                 intermediate_size=inner * g_hidden // a.hidden_size, **shared))
    return ElectraPair(discriminator, generator)


def generator_hidden(cfg) -> int:
    return cfg.electra.generator_hidden or max(cfg.architecture.hidden_size // 4, 8)


def generator_heads(cfg) -> int:
    """The discriminator's head width (hidden / heads) kept, so fewer heads in a narrower generator."""
    a = cfg.architecture
    return max(1, generator_hidden(cfg) * a.heads // a.hidden_size)


def replace_tokens(generator: nn.Module, ids: torch.Tensor, corrupted: torch.Tensor, labels: torch.Tensor,
                   attention: torch.Tensor, *, generator_rng: torch.Generator | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run the generator on ``corrupted``; return (its logits (N, V) and targets (N,) at the N chosen positions,
    the discriminator's input (B, T): ``ids`` with the chosen positions replaced by samples, and the RTD labels
    (B, T): 1.0 exactly where the replaced input differs from ``ids``)."""
    chosen = labels != IGNORE
    hidden = generator.electra(input_ids=corrupted, attention_mask=attention).last_hidden_state  # (B, T, Hg)
    logits = generator.generator_lm_head(generator.generator_predictions(hidden[chosen]))  # (N, V)
    with torch.no_grad():
        probs = torch.softmax(logits.detach().float(), dim=-1)
        sampled = torch.multinomial(probs, 1, generator=generator_rng).squeeze(-1)  # (N,)
    replaced = ids.clone()
    replaced[chosen] = sampled
    return logits, labels[chosen], replaced, (replaced != ids).float()


ElectraLoss = Callable[[nn.Module, dict[str, torch.Tensor], list[int]], torch.Tensor]


def _rtd_loss(logits: torch.Tensor, rtd: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy at the non-padding positions, averaged over them."""
    keep = attention.bool()
    return F.binary_cross_entropy_with_logits(logits.float()[keep], rtd[keep])


def electra_loss_fn(tokenizer, probability: float, weight: float) -> ElectraLoss:
    """The loop's ``loss_fn``: generator MLM loss + ``weight`` x discriminator RTD loss (fresh masks each step)."""
    special_ids = torch.tensor(list(tokenizer.all_special_ids))

    def loss_fn(model: nn.Module, inputs: dict[str, torch.Tensor], indices: list[int]) -> torch.Tensor:
        ids, attention = inputs["input_ids"], inputs["attention_mask"]
        special = (attention == 0) | torch.isin(ids.cpu(), special_ids).to(ids.device)
        corrupted, labels = mask_tokens(ids.cpu(), special.cpu(), mask_id=tokenizer.mask_token_id,
                                        vocab_size=len(tokenizer), probability=probability)
        g_logits, g_targets, replaced, rtd = replace_tokens(model.generator, ids, corrupted.to(ids.device),
                                                            labels.to(ids.device), attention)
        g_loss = F.cross_entropy(g_logits.float(), g_targets, reduction="sum") / max(1, g_targets.numel())
        d_logits = model.discriminator(input_ids=replaced, attention_mask=attention).logits  # (B, T)
        return g_loss + weight * _rtd_loss(d_logits, rtd, attention)

    return loss_fn


def auc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """Area under the ROC curve = P(score of a positive > score of a negative), ties counted half
    (Mann-Whitney U over average ranks). NaN with no positives or no negatives."""
    n_pos = int(labels.sum())
    n_neg = labels.numel() - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = torch.argsort(scores.double())
    sorted_scores = scores.double()[order]
    ranks = torch.empty(scores.numel(), dtype=torch.float64)
    ranks[order] = torch.arange(1, scores.numel() + 1, dtype=torch.float64)
    # average the ranks of tied scores
    unique, inverse = torch.unique(sorted_scores, return_inverse=True)
    if unique.numel() < scores.numel():
        sums = torch.zeros(unique.numel(), dtype=torch.float64).index_add_(0, inverse, ranks[order])
        counts = torch.bincount(inverse, minlength=unique.numel()).double()
        ranks[order] = (sums / counts)[inverse]
    rank_sum = ranks[labels.bool()].sum().item()
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


@torch.no_grad()
def evaluate_electra(model: ElectraPair, data, tokenizer, *, precision: Precision, device: torch.device,
                     batch_size: int, probability: float, weight: float, seed: int = 0) -> dict[str, float]:
    """Held-out metrics with fixed masks and samples (a generator seeded with ``seed``):

    loss (generator MLM + weight x RTD, what training minimises), perplexity / accuracy of the generator at the
    masked positions (comparable with objective: mlm's), rtd_loss, rtd_accuracy and rtd_auc of the discriminator
    over every non-padding position, and replaced_share (the share of those positions the generator changed;
    accuracy of "nothing replaced" is 1 - replaced_share)."""
    from tuneforge.training.batching import collate

    was_training = model.training
    model.eval()
    rng = torch.Generator().manual_seed(seed)
    special_ids = torch.tensor(list(tokenizer.all_special_ids))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    g_loss, g_correct, g_count, d_loss, d_correct, d_count = 0.0, 0, 0, 0.0, 0, 0
    all_scores, all_labels = [], []
    try:
        for start in range(0, len(data), batch_size):
            indices = list(range(start, min(start + batch_size, len(data))))
            batch = collate(data.encoded, indices, pad_id)
            ids, attention = batch["input_ids"], batch["attention_mask"]
            special = (attention == 0) | torch.isin(ids, special_ids)
            corrupted, labels = mask_tokens(ids, special, mask_id=tokenizer.mask_token_id, vocab_size=len(tokenizer),
                                            probability=probability, generator=rng)
            with autocast(precision, device):
                logits, targets, replaced, rtd = replace_tokens(model.generator, ids.to(device), corrupted.to(device),
                                                                labels.to(device), attention.to(device),
                                                                generator_rng=rng)
                d_logits = model.discriminator(input_ids=replaced, attention_mask=attention.to(device)).logits
            g_loss += F.cross_entropy(logits.float(), targets, reduction="sum").item()
            g_correct += int((logits.argmax(-1) == targets).sum())
            g_count += targets.numel()
            keep = attention.to(device).bool()
            scores, truth = d_logits.float()[keep].cpu(), rtd[keep].cpu()
            d_loss += F.binary_cross_entropy_with_logits(scores, truth, reduction="sum").item()
            d_correct += int(((scores > 0).float() == truth).sum())
            d_count += truth.numel()
            all_scores.append(scores)
            all_labels.append(truth)
    finally:
        model.train(was_training)
    mlm = g_loss / max(1, g_count)
    rtd_loss = d_loss / max(1, d_count)
    labels_cat = torch.cat(all_labels) if all_labels else torch.zeros(0)
    return {"loss": mlm + weight * rtd_loss, "perplexity": math.exp(min(mlm, 50.0)),
            "accuracy": g_correct / max(1, g_count), "tokens": g_count, "rtd_loss": rtd_loss,
            "rtd_accuracy": d_correct / max(1, d_count),
            "rtd_auc": auc(torch.cat(all_scores), labels_cat) if all_scores else float("nan"),
            "replaced_share": float(labels_cat.mean()) if labels_cat.numel() else 0.0}
