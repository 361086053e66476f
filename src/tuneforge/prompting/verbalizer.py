"""Verbalizers: each label stands for one or more words, each word for one or more tokens.

A word's score is the log-probability the model gives its tokens in the answer slot. A word of several
tokens (" unhappy" -> " unh", "appy") combines its tokens' log-probabilities by ``multi_token``:

    mean:  (1/k) sum_j log p(t_j | ...)      no penalty for being long (PET, Schick & Schuetze 2021, averages)
    sum:   sum_j log p(t_j | ...)            the word's own log-probability; long words lose
    first: log p(t_1 | ...)                  only the first token, as single-token verbalizers do

A label's score is the **max** over its words' scores, not their log-sum-exp: log-sum-exp adds the
probabilities of a label's synonyms, so a label listed with five words would outscore one listed with
a single word by up to log 5 before the model reads the text. The max keeps labels comparable however
many words they have. Class probabilities are the softmax of the label scores.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

Combine = Literal["mean", "first", "sum"]


@dataclass(frozen=True)
class Verbalizer:
    """Labels (class order) and their words; ``word_label[i]`` is the class of the i-th word of :attr:`flat`."""

    labels: list[str]
    words: list[list[str]]

    @classmethod
    def from_mapping(cls, mapping: dict[str, list[str]]) -> Verbalizer:
        return cls(labels=list(mapping), words=[list(words) for words in mapping.values()])

    @property
    def flat(self) -> list[str]:
        return [word for words in self.words for word in words]

    @property
    def word_label(self) -> list[int]:
        return [label for label, words in enumerate(self.words) for _ in words]


def combine_tokens(token_logprobs: torch.Tensor, how: Combine) -> torch.Tensor:
    """(..., k) log-probabilities of a word's k tokens -> (...) the word's score."""
    if how == "mean":
        return token_logprobs.mean(-1)
    if how == "sum":
        return token_logprobs.sum(-1)
    return token_logprobs[..., 0]


def label_scores(word_scores: torch.Tensor, word_label: list[int], n_labels: int) -> torch.Tensor:
    """(N, W) word scores -> (N, C) label scores: the best word of each label (see the module docstring)."""
    # No in-place writes: PET training (prompting/pet.py) backpropagates through this.
    columns = [word_scores[:, [w for w, owner in enumerate(word_label) if owner == label]].amax(-1)
               for label in range(n_labels)]
    return torch.stack(columns, dim=-1)


def continuation_ids(tokenizer, prompts: list[str], continuations: list[str]) -> list[list[int]]:
    """The tokens that ``continuation`` adds after ``prompt``, tokenised in context (no special tokens).

    ``tokens(prompt + continuation)`` minus ``tokens(prompt)``: BPE merges depend on the neighbours, so
    " great" after "It was" is tokenised as the model saw it in pretraining. When the prompt's tokens
    are not a prefix of the joint tokens (the word merged with the prompt's last token, e.g. no space
    between them), the continuation is tokenised on its own: the prompt keeps its tokens and the
    word's tokens still spell the word.
    """
    joint = tokenizer([p + c for p, c in zip(prompts, continuations)], add_special_tokens=False)["input_ids"]
    alone = tokenizer(prompts, add_special_tokens=False)["input_ids"]
    out = []
    for whole, head, cont in zip(joint, alone, continuations):
        if whole[:len(head)] == head and len(whole) > len(head):
            out.append(whole[len(head):])
        else:
            out.append(tokenizer(cont, add_special_tokens=False)["input_ids"])
    return out


def word_problems(labels: list[str], words: list[str], ids: list[list[int]], first_only: bool, tokenizer,
                  model: str) -> list[str]:
    """Verbalizer words a model cannot tell apart, in the user's words (empty when there are none).

    ``words[i]`` stands for ``labels[i]`` and is tokenised as ``ids[i]``, of which only the first token is scored
    when ``first_only`` (multi_token: first). A word with the unknown token is scored as [UNK], like every other
    unknown word, and words of different labels scored as the same tokens get the same score from every text: the
    labels tie and the first one always wins (before this check: uniform probabilities, no error).
    """
    problems = []
    unk = tokenizer.unk_token_id
    unknown = [i for i, word_ids in enumerate(ids) if unk is not None and unk in word_ids]
    if unknown:
        listed = ", ".join(f'"{words[i]}" ({labels[i]})' for i in unknown)
        problems.append(f"{listed}: not in the vocabulary of {model}; the tokenizer turns "
                        f"{'it' if len(unknown) == 1 else 'each'} into {tokenizer.unk_token}, which scores the same "
                        "for every unknown word. Choose words the tokenizer knows")
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, word_ids in enumerate(ids):
        if i not in unknown:
            groups.setdefault(tuple(word_ids[:1] if first_only else word_ids), []).append(i)
    for members in groups.values():
        if len({labels[i] for i in members}) > 1:
            listed = " and ".join(f'"{words[i]}" ({labels[i]})' for i in members)
            scored = ids[members[0]][:1] if first_only else ids[members[0]]
            problems.append(f"{listed} are scored as the same token(s) {tokenizer.convert_ids_to_tokens(scored)}, so "
                            "those labels would get the same score from every text. Choose words that differ"
                            + (" in their first token (prompt.multi_token: first scores only that one), or set "
                               "prompt.multi_token: mean" if first_only else ""))
    return problems
