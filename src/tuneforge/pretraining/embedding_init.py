"""Warm-start the token embeddings of a from-scratch encoder from co-occurrence counts, before the masked LM.

A masked LM from random weights first learns the unigram distribution and sits on that plateau for hundreds of
steps before context starts to help (docs/PRETRAINING.md measures ~300 of a 1,800-step budget). Distributional
embeddings are much cheaper to get: count how often tokens occur within ``window`` positions of each other,
weight the counts by positive pointwise mutual information with context-distribution smoothing,

    PPMI(w, c) = max(0, log P(w, c) / (P(w) P_alpha(c))),   P_alpha(c) = #(c)^alpha / sum_c' #(c')^alpha,

and factorise the (vocabulary x vocabulary) matrix with a truncated SVD, E = U_d S_d^(1/2) (Levy, Goldberg and
Dagan, 2015, "Improving distributional similarity with lessons learned from word embeddings": alpha 0.75,
eigenvalue weighting 0.5). Tokens that share contexts get nearby rows. The rows are rescaled to the model's
initialisation standard deviation, so the first steps see inputs of the usual size; special tokens and tokens
never counted keep their random rows. BERT ties its MLM output layer to these embeddings, so the head starts
from them too.
"""

from __future__ import annotations

import time

import numpy as np
import torch


def cooccurrence_embeddings(sequences: list[list[int]], vocab_size: int, dim: int, window: int = 5,
                            alpha: float = 0.75, skip: set[int] | None = None, seed: int = 0
                            ) -> tuple[torch.Tensor, np.ndarray]:
    """(vocab_size, min(dim, vocab_size - 1)) PPMI-SVD embeddings of token ids, and a mask of the rows that were
    counted.

    Pairs are counted within each sequence (never across two), both directions, every offset 1..window with
    weight 1 / offset (nearer neighbours say more); ids in ``skip`` (special tokens) are not counted.
    """
    from scipy import sparse
    from sklearn.utils.extmath import randomized_svd

    flat = np.concatenate([np.asarray(s, dtype=np.int64) for s in sequences])
    # a sequence number per position, so that offsets never pair tokens of two sequences
    seq = np.repeat(np.arange(len(sequences)), [len(s) for s in sequences])
    keep = np.ones(len(flat), dtype=bool)
    if skip:
        keep = ~np.isin(flat, list(skip))
    rows, cols, weights = [], [], []
    for offset in range(1, window + 1):
        ok = (seq[offset:] == seq[:-offset]) & keep[offset:] & keep[:-offset]
        a, b = flat[:-offset][ok], flat[offset:][ok]
        w = np.full(len(a), 1.0 / offset, dtype=np.float32)
        rows += [a, b]
        cols += [b, a]
        weights += [w, w]
    counts = sparse.coo_matrix((np.concatenate(weights), (np.concatenate(rows), np.concatenate(cols))),
                               shape=(vocab_size, vocab_size)).tocsr()  # duplicates summed
    counts.sum_duplicates()
    word = np.asarray(counts.sum(axis=1)).ravel()  # #(w)
    context = np.asarray(counts.sum(axis=0)).ravel() ** alpha  # #(c)^alpha
    coo = counts.tocoo()
    # log [#(w, c) / T] / ([#(w) / T] [#(c)^alpha / sum #(c')^alpha]): the total T cancels
    pmi = np.log(coo.data) - np.log(word[coo.row]) - np.log(context[coo.col]) + np.log(context.sum())
    positive = pmi > 0
    ppmi = sparse.csr_matrix((pmi[positive], (coo.row[positive], coo.col[positive])), shape=counts.shape)
    # at most vocab_size - 1 components: a tiny vocabulary gets fewer columns than dim (warm_start_embeddings
    # leaves the rest random)
    u, s, _ = randomized_svd(ppmi, n_components=min(dim, vocab_size - 1), n_iter=4, random_state=seed)
    vectors = u * np.sqrt(s)[None, :]  # (V, dim)
    return torch.from_numpy(vectors.astype(np.float32)), word > 0


def warm_start_embeddings(model, sequences: list[list[int]], tokenizer, window: int, alpha: float,
                          seed: int) -> dict:
    """Overwrite the counted rows of ``model``'s input embeddings (tied to the MLM output layer) with PPMI-SVD
    vectors at the model's initialisation scale; returns what to record in metrics.json."""
    started = time.perf_counter()
    embeddings = model.get_input_embeddings().weight  # (V, H)
    vocab_size, dim = embeddings.shape
    skip = set(tokenizer.all_special_ids)
    vectors, counted = cooccurrence_embeddings(sequences, vocab_size, dim, window, alpha, skip, seed)
    counted[list(skip)] = False
    rows = torch.from_numpy(np.flatnonzero(counted))
    with torch.no_grad():
        chosen = vectors[rows]  # (R, k), k <= H
        chosen = (chosen - chosen.mean(0)) * (model.config.initializer_range / chosen.std())
        embeddings[rows, :chosen.shape[1]] = chosen.to(embeddings.dtype)
    return {"kind": "cooccurrence", "window": window, "alpha": alpha, "rows": len(rows),
            "seconds": time.perf_counter() - started}
