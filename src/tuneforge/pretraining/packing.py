"""Sequence packing for causal LM pretraining (as in GPT-2 / Llama pretraining).

Documents are tokenised with their ``<s> ... </s>`` markers, concatenated in order, and cut into blocks of
``block_size`` tokens, so no compute is spent on padding. Attention within a block crosses document
boundaries (the standard recipe: the ``</s>`` / ``<s>`` markers tell the model where a new document starts);
the loss is the next-token prediction over every position of the block. The last, shorter remainder is kept
as a block of its own (padded in its batch, its padding masked out of the loss), unless it is a single token,
which has nothing to predict.
"""

from __future__ import annotations


def pack(token_lists: list[list[int]], block_size: int) -> list[list[int]]:
    """Concatenate ``token_lists`` and cut into blocks of ``block_size`` (the last one may be shorter)."""
    if block_size < 2:
        raise ValueError("block_size must be at least 2")
    stream = [t for tokens in token_lists for t in tokens]
    return [stream[i:i + block_size] for i in range(0, len(stream), block_size) if len(stream[i:i + block_size]) > 1]
