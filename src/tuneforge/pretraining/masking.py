"""BERT's masked-LM corruption (Devlin et al., 2019, section 3.1 and appendix A.1), optionally by whole words.

Of the input tokens, ``probability`` (15%) are chosen for prediction; a chosen token is replaced by ``[MASK]``
80% of the time, by a random token 10% of the time, and kept 10% of the time; the loss is computed on the
chosen tokens only (labels -100 elsewhere). Special tokens ([CLS], [SEP], padding) are never chosen.

Whole-word masking (Cui et al., 2019, "Pre-Training with Whole Word Masking for Chinese BERT"): the choice is
made per word, and every token of a chosen word is predicted. Each chosen *word* then gets one 80/10/10 draw,
applied to all its tokens, as in Google's ``create_pretraining_data.py``. To keep ~15% of *tokens* chosen, a word
is chosen with probability ``probability`` too (words of Chinese characters are 1-4 tokens long: the token share
rises slightly with word length, as in the reference implementation, which picks words until 15% of tokens).

Randomness comes from ``generator`` (or torch's global generator, which checkpoints save and restore: a resumed
run draws the same masks).
"""

from __future__ import annotations

import torch

IGNORE = -100


def mask_tokens(input_ids: torch.Tensor, special: torch.Tensor, *, mask_id: int, vocab_size: int,
                probability: float = 0.15, word_ids: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (corrupted input ids, labels), both (B, T).

    ``special`` (B, T) is True at positions never to choose (special tokens, padding). ``word_ids`` (B, T) gives
    each token's word number within its row (-1 for special positions): tokens with the same number are chosen
    together. Without it each token is its own word.
    """
    shape = input_ids.shape
    if word_ids is None:
        chosen = torch.rand(shape, generator=generator) < probability
        action = torch.rand(shape, generator=generator)
    else:
        # One draw per (row, word): index a (B, W) table of draws by each token's word number.
        n_words = int(word_ids.max().item()) + 1 if word_ids.numel() else 0
        safe = word_ids.clamp(min=0)
        word_chosen = torch.rand((shape[0], max(n_words, 1)), generator=generator) < probability
        word_action = torch.rand((shape[0], max(n_words, 1)), generator=generator)
        chosen = word_chosen.gather(1, safe)
        action = word_action.gather(1, safe)
    chosen &= ~special
    labels = torch.where(chosen, input_ids, torch.full_like(input_ids, IGNORE))
    corrupted = input_ids.clone()
    to_mask = chosen & (action < 0.8)
    to_random = chosen & (action >= 0.8) & (action < 0.9)  # the last 10%: the token is kept
    corrupted[to_mask] = mask_id
    random_tokens = torch.randint(vocab_size, shape, generator=generator)
    corrupted[to_random] = random_tokens[to_random]
    return corrupted, labels


def word_ids_for(words: list[int | None], max_len: int) -> list[int]:
    """A tokenizer's ``word_ids()`` (None for special tokens) as a list of ints, -1 for None."""
    return [-1 if w is None else w for w in words[:max_len]]
