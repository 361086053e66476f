"""embedding_init: co-occurrence (PPMI + SVD) token embeddings before the masked LM."""

from __future__ import annotations

import random

import pytest
import torch

from tuneforge.config import load_config
from tuneforge.pretraining.config import PretrainConfig
from tuneforge.pretraining.embedding_init import cooccurrence_embeddings

pytestmark = pytest.mark.usefixtures("one_thread")


def _sequences(seed: int = 0) -> list[list[int]]:
    """Two topics over disjoint token ranges: tokens 1-10 only ever appear among 1-10, tokens 11-20 among 11-20;
    token 0 is a special token that appears everywhere (and must be ignored); token 21 never appears."""
    rng = random.Random(seed)
    out = []
    for i in range(400):
        low = 1 if i % 2 else 11
        out.append([0] + [rng.randrange(low, low + 10) for _ in range(12)] + [0])
    return out


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return torch.nn.functional.cosine_similarity(a, b, dim=0).item()


def test_tokens_that_share_contexts_get_closer_embeddings():
    vectors, counted = cooccurrence_embeddings(_sequences(), vocab_size=22, dim=4, window=3, skip={0})
    assert vectors.shape == (22, 4)
    assert counted[1:21].all() and not counted[0] and not counted[21]
    same = [_cos(vectors[a], vectors[b]) for a in range(1, 11) for b in range(1, 11) if a < b]
    across = [_cos(vectors[a], vectors[b]) for a in range(1, 11) for b in range(11, 21)]
    assert min(same) > max(across)
    assert sum(same) / len(same) > 0.5 > sum(across) / len(across) + 0.5


def test_pairs_never_cross_sequence_boundaries():
    # 1 and 2 only ever meet across a boundary (one sequence ends with 1, the next starts with 2): no pair
    vectors, counted = cooccurrence_embeddings([[3, 4, 1], [2, 5, 6], [3, 4, 1], [2, 5, 6]] * 5, vocab_size=7,
                                               dim=2, window=2)
    from scipy import sparse  # noqa: F401  (the function needs scipy; a missing one should fail here, clearly)

    assert counted[1] and counted[2]
    assert _cos(vectors[1], vectors[3]) > _cos(vectors[1], vectors[5])


def test_embedding_init_is_mlm_from_scratch_only(tmp_path):
    base = {"corpus": {"sources": ["x.txt"]}, "embedding_init": {"window": 3}}
    cfg = load_config(PretrainConfig, data=base)
    assert cfg.embedding_init.kind == "cooccurrence" and cfg.embedding_init.window == 3
    for extra in ({"objective": "clm"}, {"model": "some/encoder"}):
        with pytest.raises(Exception, match="embedding_init applies to objective: mlm from scratch"):
            load_config(PretrainConfig, data={**base, **extra})
    with pytest.raises(Exception, match="windw"):
        load_config(PretrainConfig, data={**base, "embedding_init": {"windw": 3}})
