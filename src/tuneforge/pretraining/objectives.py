"""The two losses, as ``loss_fn`` hooks of the training loop, and held-out evaluation.

MLM: corrupt the batch (:func:`masking.mask_tokens`), run the encoder, and apply the LM head to the chosen
positions only. The head's vocabulary projection is as costly as a whole layer (MiniLM: 384 x 30,522 against
~12 x 384^2 per layer), and only ~15% of the positions have a label, so this is ~40% less work per step
than ``BertForMaskedLM.forward``, with the same loss.

Bag of characters at [CLS] (``cls_bag_weight``, mlm only): a masked LM never gives the first token a target,
so after pretraining its state is mostly the [CLS] embedding itself, while the classifier that ``tuneforge
train`` puts on the encoder reads that state alone. This adds a term that makes it summarise the text: the MLM
head applied to the first position predicts the distribution of the (uncorrupted) tokens of the sequence,

    L_bag = - sum_v  q_v log softmax(head(h_[CLS]))_v,     q_v = count of token v / number of tokens

(special tokens and padding excluded), the bag-of-words target of Condenser-style and retrieval pretraining
(e.g. Ma et al., 2021, "PROP"), one extra head row per sequence. Loss = L_MLM + cls_bag_weight x L_bag.

CLM: next-token cross-entropy over every non-padding position (transformers shifts the labels).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from tuneforge.models.precision import Precision, autocast
from tuneforge.pretraining.data import LMData
from tuneforge.pretraining.masking import IGNORE, mask_tokens
from tuneforge.training.batching import collate


def _special_mask(ids: torch.Tensor, attention: torch.Tensor, special_ids: list[int]) -> torch.Tensor:
    return (attention == 0) | torch.isin(ids, torch.tensor(special_ids, dtype=ids.dtype))


def _pad_word_ids(data: LMData, indices: list[int], width: int) -> torch.Tensor | None:
    if data.word_ids is None:
        return None
    out = torch.full((len(indices), width), -1, dtype=torch.long)
    for row, i in enumerate(indices):
        words = data.word_ids[i]
        out[row, :len(words)] = torch.tensor(words)
    return out


def _head(model: nn.Module) -> nn.Module | None:
    """The MLM head module applied to the encoder's last hidden states (BERT: ``cls``, RoBERTa: ``lm_head``)."""
    for name in ("cls", "lm_head"):
        if isinstance(getattr(model, name, None), nn.Module):
            return getattr(model, name)
    return None


def mlm_logits_and_labels(model: nn.Module, inputs: dict[str, torch.Tensor], labels: torch.Tensor
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (N, V) and labels (N,) at the N chosen positions."""
    chosen = labels != IGNORE
    head = _head(model)
    if head is None:  # an architecture we do not know: the full forward pass
        logits = model(**inputs).logits
        return logits[chosen], labels[chosen]
    hidden = model.base_model(**inputs).last_hidden_state  # (B, T, H)
    return head(hidden[chosen]), labels[chosen]


MLMLoss = Callable[[nn.Module, dict[str, torch.Tensor], list[int]], torch.Tensor]


def bag_targets(ids: torch.Tensor, special: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """(B, V): each row's token counts over its non-special positions, divided by their number."""
    keep = (~special).float()  # (B, T)
    counts = torch.zeros(ids.shape[0], vocab_size, device=ids.device).scatter_add_(1, ids, keep)
    return counts / counts.sum(-1, keepdim=True).clamp(min=1.0)


def mlm_loss_fn(data: LMData, tokenizer, probability: float, whole_word: bool, cls_bag_weight: float = 0.0
                ) -> MLMLoss:
    """The loop's ``loss_fn`` for MLM: fresh masks each time a batch is seen (RoBERTa's dynamic masking), plus
    ``cls_bag_weight`` x the bag-of-tokens loss at the first position (module docstring) when it is > 0."""
    special_ids = list(tokenizer.all_special_ids)

    def loss_fn(model: nn.Module, inputs: dict[str, torch.Tensor], indices: list[int]) -> torch.Tensor:
        ids, attention = inputs["input_ids"].cpu(), inputs["attention_mask"].cpu()
        words = _pad_word_ids(data, indices, ids.shape[1]) if whole_word else None
        special = _special_mask(ids, attention, special_ids)
        corrupted, labels = mask_tokens(ids, special, mask_id=tokenizer.mask_token_id, vocab_size=len(tokenizer),
                                        probability=probability, word_ids=words)
        device = inputs["input_ids"].device
        model_inputs = {k: v for k, v in inputs.items() if k != "labels"} | {"input_ids": corrupted.to(device)}
        head = _head(model)
        if cls_bag_weight > 0 and head is not None:
            hidden = model.base_model(**model_inputs).last_hidden_state  # (B, T, H)
            chosen = labels.to(device) != IGNORE
            logits, targets = head(hidden[chosen]), labels.to(device)[chosen]
            bag = bag_targets(ids, special, len(tokenizer)).to(device)  # (B, V)
            bag_loss = -(bag * F.log_softmax(head(hidden[:, 0]).float(), dim=-1)).sum(-1).mean()
        else:
            logits, targets = mlm_logits_and_labels(model, model_inputs, labels.to(device))
            bag_loss = 0.0
        # Sum over the chosen tokens / their count; a batch with none chosen contributes 0 (not NaN).
        mlm = F.cross_entropy(logits.float(), targets, reduction="sum") / max(1, targets.numel())
        return mlm + cls_bag_weight * bag_loss

    return loss_fn


def clm_loss_fn(model: nn.Module, inputs: dict[str, torch.Tensor], indices: list[int]) -> torch.Tensor:
    labels = inputs["input_ids"].masked_fill(inputs["attention_mask"] == 0, IGNORE)
    return model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], labels=labels).loss


@torch.no_grad()
def evaluate_lm(model: nn.Module, data: LMData, tokenizer, objective: str, *, precision: Precision,
                device: torch.device, batch_size: int, probability: float = 0.15, whole_word: bool = False,
                seed: int = 0) -> dict[str, float]:
    """Held-out loss, perplexity = exp(loss) and accuracy (masked tokens for MLM, next token for CLM).

    The masks come from a generator seeded with ``seed``: every evaluation scores the same masked positions,
    and training's random stream is untouched.
    """
    was_training = model.training
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    special_ids = list(tokenizer.all_special_ids)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    total_loss, correct, count = 0.0, 0, 0
    try:
        for start in range(0, len(data), batch_size):
            indices = list(range(start, min(start + batch_size, len(data))))
            batch = collate(data.encoded, indices, pad_id)
            ids, attention = batch["input_ids"], batch["attention_mask"]
            with autocast(precision, device):
                if objective == "mlm":
                    words = _pad_word_ids(data, indices, ids.shape[1]) if whole_word else None
                    corrupted, labels = mask_tokens(ids, _special_mask(ids, attention, special_ids),
                                                    mask_id=tokenizer.mask_token_id, vocab_size=len(tokenizer),
                                                    probability=probability, word_ids=words, generator=generator)
                    inputs = {"input_ids": corrupted.to(device), "attention_mask": attention.to(device)}
                    if "token_type_ids" in batch:
                        inputs["token_type_ids"] = batch["token_type_ids"].to(device)
                    logits, targets = mlm_logits_and_labels(model, inputs, labels.to(device))
                else:
                    logits = model(input_ids=ids.to(device), attention_mask=attention.to(device)).logits[:, :-1]
                    targets = ids[:, 1:].masked_fill(attention[:, 1:] == 0, IGNORE).to(device)
                    keep = targets != IGNORE
                    logits, targets = logits[keep], targets[keep]
            total_loss += F.cross_entropy(logits.float(), targets, reduction="sum").item()
            correct += int((logits.argmax(-1) == targets).sum())
            count += targets.numel()
    finally:
        model.train(was_training)
    loss = total_loss / max(1, count)
    return {"loss": loss, "perplexity": math.exp(min(loss, 50.0)), "accuracy": correct / max(1, count),
            "tokens": count}
