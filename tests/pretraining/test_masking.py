"""BERT's 80/10/10 masking and whole-word masking: statistics on large random batches."""

from __future__ import annotations

import pytest
import torch

from tuneforge.pretraining.masking import IGNORE, mask_tokens

MASK, VOCAB = 4, 1000


def batch(rows: int = 64, width: int = 512, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(10, VOCAB, (rows, width), generator=g)
    special = torch.zeros_like(ids, dtype=torch.bool)
    ids[:, 0], ids[:, -1] = 2, 3  # [CLS] ... [SEP]
    special[:, 0] = special[:, -1] = True
    special[:, -50:] = True  # padding
    return ids, special


def test_eighty_ten_ten():
    ids, special = batch()
    corrupted, labels = mask_tokens(ids, special, mask_id=MASK, vocab_size=VOCAB, probability=0.15,
                                    generator=torch.Generator().manual_seed(1))
    chosen = labels != IGNORE
    assert abs(chosen.sum().item() / (~special).sum().item() - 0.15) < 0.01
    assert torch.equal(labels[chosen], ids[chosen])  # the label is the original token
    n = chosen.sum().item()
    masked = (corrupted[chosen] == MASK).sum().item() / n
    kept = (corrupted[chosen] == ids[chosen]).sum().item() / n
    replaced = 1 - masked - kept
    assert abs(masked - 0.8) < 0.02 and abs(kept - 0.1) < 0.015 and abs(replaced - 0.1) < 0.015
    # Tokens not chosen are never changed
    assert torch.equal(corrupted[~chosen], ids[~chosen])


def test_special_tokens_and_padding_never_masked():
    ids, special = batch()
    for seed in range(5):
        corrupted, labels = mask_tokens(ids, special, mask_id=MASK, vocab_size=VOCAB, probability=0.9,
                                        generator=torch.Generator().manual_seed(seed))
        assert (labels[special] == IGNORE).all()
        assert torch.equal(corrupted[special], ids[special])


def test_whole_words_are_masked_together():
    ids, special = batch(rows=32, width=300)
    # words of 1-4 tokens; -1 at special positions
    word_ids = torch.full_like(ids, -1)
    g = torch.Generator().manual_seed(3)
    for row in range(ids.shape[0]):
        pos, word = 1, 0
        while pos < 249:
            size = int(torch.randint(1, 5, (1,), generator=g))
            word_ids[row, pos:min(pos + size, 249)] = word
            pos, word = pos + size, word + 1
    corrupted, labels = mask_tokens(ids, special, mask_id=MASK, vocab_size=VOCAB, probability=0.15,
                                    word_ids=word_ids, generator=torch.Generator().manual_seed(4))
    chosen = labels != IGNORE
    groups_seen = 0
    for row in range(ids.shape[0]):
        for word in word_ids[row].unique().tolist():
            if word < 0:
                continue
            in_word = word_ids[row] == word
            states = chosen[row][in_word]
            assert states.all() or not states.any(), "a word was partly masked"
            if states.all():
                groups_seen += 1
                # one 80/10/10 draw per word: all [MASK], or none of them
                is_mask = corrupted[row][in_word] == MASK
                assert is_mask.all() or not is_mask.any()
    assert groups_seen > 100
    share = chosen.sum().item() / (word_ids >= 0).sum().item()
    assert 0.12 < share < 0.2
    assert (labels[special] == IGNORE).all()


def test_masking_follows_the_global_generator_for_resume():
    ids, special = batch(rows=4, width=64)
    torch.manual_seed(7)
    a = mask_tokens(ids, special, mask_id=MASK, vocab_size=VOCAB)
    torch.manual_seed(7)
    b = mask_tokens(ids, special, mask_id=MASK, vocab_size=VOCAB)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_bag_targets_are_each_rows_token_distribution_without_special_tokens():
    from tuneforge.pretraining.objectives import bag_targets

    ids = torch.tensor([[1, 5, 5, 7, 2, 0], [1, 6, 2, 0, 0, 0]])
    special = torch.tensor([[1, 0, 0, 0, 1, 1], [1, 0, 1, 1, 1, 1]], dtype=torch.bool)
    bag = bag_targets(ids, special, 8)
    assert bag.shape == (2, 8) and torch.allclose(bag.sum(-1), torch.ones(2))
    assert bag[0, 5] == pytest.approx(2 / 3) and bag[0, 7] == pytest.approx(1 / 3) and bag[1, 6] == 1.0
    assert bag[:, [0, 1, 2]].sum() == 0
