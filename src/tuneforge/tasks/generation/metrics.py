"""Scores of generated answers: ROUGE-L F1 against the reference, and perplexity of the reference answers.

ROUGE-L (Lin, 2004, "ROUGE: A Package for Automatic Evaluation of Summaries", section 3.1): with the
longest common subsequence LCS of candidate c and reference r (as token lists),

    P = LCS / |c|,   R = LCS / |r|,   F1 = 2 P R / (P + R)        (0 when LCS = 0)

averaged over pairs. Tokens work for both languages: lower-cased runs of letters and digits for Latin
script, one token per character for CJK (Chinese has no spaces; character-level ROUGE is the usual choice
for it), punctuation dropped. We do not use the ``rouge-score`` package: its tokenizer keeps only
``[a-z0-9]``, so a Chinese answer becomes an empty token list and scores 0 whatever it says.

Perplexity over answer tokens only (the prompt is given, not predicted), token-weighted over all pairs:

    PPL = exp( sum_pairs sum_{t in answer} -log p(y_t | y_<t, prompt) / number of answer tokens )
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import torch
from torch import nn

from tuneforge.models.precision import Precision, autocast
from tuneforge.training.batching import Encoded, batch_order, collate

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af"
_TOKEN = re.compile(rf"[{_CJK}]|[^\W{_CJK}_]+", re.UNICODE)


def rouge_tokens(text: str) -> list[str]:
    """Lower-cased words (letters and digits) and single CJK characters, in order; punctuation dropped."""
    return _TOKEN.findall(text.lower())


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence (dynamic programming, one row at a time: O(|a| |b|))."""
    if len(a) < len(b):
        a, b = b, a
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def rouge_l(candidate: str, reference: str) -> dict[str, float]:
    """ROUGE-L precision, recall and F1 of one candidate against one reference."""
    c, r = rouge_tokens(candidate), rouge_tokens(reference)
    lcs = lcs_length(c, r)
    if lcs == 0:
        return {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    precision, recall = lcs / len(c), lcs / len(r)
    return {"precision": precision, "recall": recall, "f1": 2 * precision * recall / (precision + recall)}


def mean_rouge_l(candidates: Sequence[str], references: Sequence[str]) -> float:
    """Mean ROUGE-L F1 over pairs (0 for no pairs)."""
    scores = [rouge_l(c, r)["f1"] for c, r in zip(candidates, references, strict=True)]
    return sum(scores) / len(scores) if scores else 0.0


@torch.no_grad()
def answer_nll(model: nn.Module, data: Encoded, *, batch_size: int, precision: Precision, device: torch.device,
               pad_id: int) -> tuple[float, int]:
    """(sum of -log p over every answer token, number of answer tokens) of ``data`` (labels -100 elsewhere).

    The model's own loss is the mean over a batch's answer tokens (fp32 cross-entropy, the shift by one
    inside); times their count it is the batch's sum. Going through the model's loss keeps methods that add
    virtual tokens (prompt tuning) right: peft pads their labels itself.
    """
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    try:
        for indices in batch_order(data.lengths(), batch_size, seed=0, shuffle=False, group_by_length=True):
            inputs = {k: v.to(device) for k, v in collate(data, indices, pad_id, "right").items()}
            n = int((inputs["labels"][:, 1:] != -100).sum())  # predicted tokens: every label but the first
            if n == 0:
                continue
            with autocast(precision, device):
                loss = model(**inputs).loss
            total += float(loss) * n
            count += n
    finally:
        model.train(was_training)
    return total, count


def perplexity(nll: float, tokens: int) -> float:
    return math.exp(nll / tokens) if tokens else float("nan")
