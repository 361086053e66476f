"""EWC's penalty and Fisher against hand computations, and the rehearsal sample's draw."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from tuneforge.continual import EWC, ewc_penalty, fisher_diagonal, rehearsal_sample
from tuneforge.data.records import Example
from tuneforge.training.batching import Encoded


class TinyClassifier(nn.Module):
    """Mean of token embeddings -> linear layer: logits = W x + b, whose log-likelihood gradient is known."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(6, 3)
        self.head = nn.Linear(3, 2)

    def features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        mask = attention_mask.unsqueeze(-1).float()  # (B, T, 1)
        return (self.embed(input_ids) * mask).sum(1) / mask.sum(1)  # (B, 3)

    def forward(self, input_ids, attention_mask, labels=None, **_):
        return SimpleNamespace(logits=self.head(self.features(input_ids, attention_mask)))


def test_penalty_is_zero_at_the_anchor_and_grows_quadratically():
    model = nn.Linear(3, 2)
    fisher = {"weight": torch.rand(2, 3), "bias": torch.rand(2)}
    ewc = EWC(model, fisher, strength=10.0)
    assert ewc(model).item() == 0.0
    moved = []
    for delta in (0.1, 0.2):
        with torch.no_grad():
            for name, param in model.named_parameters():
                param.copy_(ewc.anchor[name] + delta)
        moved.append(ewc(model).item())
        by_hand = 10.0 / 2 * sum(float((f * delta ** 2).sum()) for f in fisher.values())
        assert moved[-1] == pytest.approx(by_hand, rel=1e-5)
    assert moved[1] == pytest.approx(4 * moved[0], rel=1e-5)  # twice the distance, four times the penalty


def test_penalty_counts_only_the_parameters_with_a_fisher_and_weights_each_by_it():
    model = nn.Linear(2, 1)
    anchor = {"weight": torch.zeros(1, 2)}
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 2.0]]))
        model.bias.fill_(100.0)  # no Fisher entry: not penalised
    fisher = {"weight": torch.tensor([[3.0, 0.5]])}
    # 2/2 * (3 * 1^2 + 0.5 * 2^2) = 5
    assert ewc_penalty(model, anchor, fisher, strength=2.0).item() == pytest.approx(5.0)
    ewc_penalty(model, anchor, fisher, strength=2.0).backward()
    # d/dw lambda/2 F (w - w*)^2 = lambda F (w - w*)
    torch.testing.assert_close(model.weight.grad, torch.tensor([[6.0, 2.0]]))
    assert model.bias.grad is None


def test_fisher_is_the_mean_of_squared_per_example_log_likelihood_gradients():
    model = TinyClassifier()
    data = Encoded(input_ids=[[1, 2, 3], [4, 5], [2, 2, 5, 1]], labels=[0, 1, 1])
    fisher = fisher_diagonal(model, data, pad_id=0)
    # log p(y|x) = z_y - logsumexp(z), z = W x + b: d/dW = (onehot(y) - p) x^T, d/db = onehot(y) - p.
    expected_w, expected_b, mean_w = torch.zeros(2, 3), torch.zeros(2), torch.zeros(2, 3)
    with torch.no_grad():
        for ids, label in zip(data.input_ids, data.labels):
            x = model.features(torch.tensor([ids]), torch.ones(1, len(ids)))[0]
            p = torch.softmax(model.head(x), -1)
            residual = torch.nn.functional.one_hot(torch.tensor(label), 2).float() - p
            expected_w += torch.outer(residual, x) ** 2 / 3
            expected_b += residual ** 2 / 3
            mean_w += torch.outer(residual, x) / 3
    torch.testing.assert_close(fisher["head.weight"], expected_w)
    torch.testing.assert_close(fisher["head.bias"], expected_b)
    assert not torch.allclose(fisher["head.weight"], mean_w ** 2)  # the mean of squares, not the squared mean
    assert fisher["embed.weight"][0].abs().sum() == 0  # the padding id 0 is never looked up: no information
    assert model.training, "the model is back in training mode"


def test_fisher_skips_frozen_parameters():
    model = TinyClassifier()
    model.embed.weight.requires_grad_(False)
    fisher = fisher_diagonal(model, Encoded(input_ids=[[1, 2]], labels=[1]), pad_id=0)
    assert set(fisher) == {"head.weight", "head.bias"}


def test_rehearsal_sample_is_seeded_drawn_from_the_given_split_and_marked():
    train = [Example(text=f"text {i}", label="ab"[i % 2], meta={"i": str(i)}) for i in range(50)]
    first = rehearsal_sample(train, 10, seed=3)
    assert [e.text for e in first] == [e.text for e in rehearsal_sample(train, 10, seed=3)]
    assert [e.text for e in first] != [e.text for e in rehearsal_sample(train, 10, seed=4)]
    assert len(first) == 10 and len({e.text for e in first}) == 10
    assert {e.text for e in first} <= {e.text for e in train}
    assert all(e.meta["continual"] == "rehearsal" and e.label == train[int(e.meta["i"])].label for e in first)
    assert len(rehearsal_sample(train, 500, seed=3)) == 50  # never more than the split holds
