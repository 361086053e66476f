"""Tokenise once, then serve length-grouped, dynamically padded batches.

Padding is wasted compute: tweets average ~29 tokens, and random batches of 32 pad them to ~47. Sorting
texts of similar length into the same batch ("length grouping", as in HF's ``group_by_length``) keeps
the randomness of the epoch while cutting most of the padding.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from tuneforge.data.records import Example


@dataclass
class Encoded:
    """Token ids of every example (unpadded) and label ids (-1 where unlabelled; token classification: a
    list per example, one per token)."""

    input_ids: list[list[int]]
    labels: list[int] | list[list[int]]
    token_type_ids: list[list[int]] | None = None

    def __len__(self) -> int:
        return len(self.input_ids)

    def lengths(self) -> list[int]:
        return [len(ids) for ids in self.input_ids]


def encode(examples: Sequence[Example], tokenizer, labels: Sequence[str], max_length: int) -> Encoded:
    """Tokenise all examples in one call of the fast tokenizer (no padding: batches pad later)."""
    label_ids = {name: i for i, name in enumerate(labels)}
    texts = [e.text for e in examples]
    pairs = [e.text_pair for e in examples]
    has_pairs = any(p is not None for p in pairs)
    out = tokenizer(texts, [p or "" for p in pairs] if has_pairs else None, truncation=True,
                    max_length=max_length, padding=False)
    token_types = out.get("token_type_ids") if has_pairs else None
    return Encoded(input_ids=out["input_ids"],
                   labels=[label_ids[e.label] if e.label is not None else -1 for e in examples],
                   token_type_ids=token_types)


def batch_order(lengths: Sequence[int], batch_size: int, *, seed: int, shuffle: bool, group_by_length: bool
                ) -> list[list[int]]:
    """Indices of each batch for one epoch, deterministic in ``seed``.

    With grouping: shuffle, cut into mega-batches of 50 batches, sort each by length, cut into batches,
    shuffle the batch order. Without shuffling (evaluation): sort all by length for the least padding.
    """
    indices = list(range(len(lengths)))
    rng = random.Random(seed)
    if not shuffle:
        if group_by_length:
            indices.sort(key=lambda i: lengths[i])
        return [indices[i:i + batch_size] for i in range(0, len(indices), batch_size)]
    rng.shuffle(indices)
    if group_by_length:
        mega = batch_size * 50
        grouped: list[int] = []
        for start in range(0, len(indices), mega):
            grouped.extend(sorted(indices[start:start + mega], key=lambda i: -lengths[i]))
        indices = grouped
    batches = [indices[i:i + batch_size] for i in range(0, len(indices), batch_size)]
    if group_by_length:
        rng.shuffle(batches)
    return batches


def collate(data: Encoded, batch: Sequence[int], pad_id: int, padding_side: str = "right") -> dict[str, torch.Tensor]:
    """Pad the batch to its longest member. ``padding_side`` follows the tokenizer (left for some decoders)."""
    seqs = [data.input_ids[i] for i in batch]
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    types = torch.zeros((len(seqs), width), dtype=torch.long) if data.token_type_ids is not None else None
    # Token classification has a label per token: padded with -100, which the cross-entropy ignores.
    per_token = bool(batch) and isinstance(data.labels[batch[0]], list)
    labels = torch.full((len(seqs), width), -100, dtype=torch.long) if per_token else None
    for row, (i, seq) in enumerate(zip(batch, seqs)):
        span = slice(0, len(seq)) if padding_side == "right" else slice(width - len(seq), width)
        ids[row, span] = torch.tensor(seq)
        mask[row, span] = 1
        if types is not None:
            types[row, span] = torch.tensor(data.token_type_ids[i])
        if labels is not None:
            labels[row, span] = torch.tensor(data.labels[i])
    out = {"input_ids": ids, "attention_mask": mask}
    if types is not None:
        out["token_type_ids"] = types
    out["labels"] = labels if labels is not None else torch.tensor([data.labels[i] for i in batch], dtype=torch.long)
    return out


def iterate(data: Encoded, batches: list[list[int]], pad_id: int, padding_side: str = "right"
            ) -> Iterator[dict[str, torch.Tensor]]:
    for batch in batches:
        yield collate(data, batch, pad_id, padding_side)
