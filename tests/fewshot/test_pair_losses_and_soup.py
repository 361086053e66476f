"""The contrastive phase's pair losses against their formulas, CoSENT through the recipe, and the soup of members."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import tuneforge
from tuneforge.fewshot.losses import cosent_loss, cosine_loss

pytestmark = pytest.mark.usefixtures("one_thread")


def test_cosine_loss_is_the_mean_squared_error():
    cos, target = torch.tensor([0.9, 0.2, -0.1]), torch.tensor([1.0, 0.0, 0.0])
    assert cosine_loss(cos, target).item() == pytest.approx((0.01 + 0.04 + 0.01) / 3)


def test_cosent_is_the_formula_over_positive_negative_couples():
    cos, target = torch.tensor([0.8, 0.3, 0.5, -0.2]), torch.tensor([1.0, 0.0, 1.0, 0.0])
    couples = [(p, n) for p in (0, 2) for n in (1, 3)]  # every same-class pair vs every different-class pair
    expected = math.log(1 + sum(math.exp(20 * (cos[n] - cos[p])) for p, n in couples))
    assert cosent_loss(cos, target).item() == pytest.approx(expected, rel=1e-5)
    assert cosent_loss(cos, target, scale=5.0).item() == pytest.approx(
        math.log(1 + sum(math.exp(5 * (cos[n] - cos[p])) for p, n in couples)), rel=1e-5)


def test_cosent_ranks_and_ignores_the_absolute_level():
    target = torch.tensor([1.0, 0.0])
    good, bad = torch.tensor([0.9, 0.1]), torch.tensor([0.1, 0.9])
    assert cosent_loss(good, target) < 1e-6 < cosent_loss(bad, target)
    # only differences count: shifting every cosine leaves CoSENT unchanged, not the squared error
    assert cosent_loss(good - 0.5, target).item() == pytest.approx(cosent_loss(good, target).item(), abs=1e-6)
    assert cosine_loss(good - 0.5, target) > cosine_loss(good, target)
    # a batch of one class has nothing to rank
    assert cosent_loss(torch.tensor([0.2, 0.7]), torch.tensor([1.0, 1.0])).item() == 0.0


def test_cosent_gradient_pulls_positives_up_and_negatives_down():
    cos = torch.tensor([0.4, 0.5], requires_grad=True)
    cosent_loss(cos, torch.tensor([1.0, 0.0])).backward()
    assert cos.grad[0] < 0 < cos.grad[1]


def test_recipe_with_cosent_learns_and_records_it(make_tiny_config, tmp_path):
    cfg = make_tiny_config(tmp_path / "run")
    cfg["method"] = "full"
    cfg["contrastive"] = {"iterations": 4, "batch_size": 16, "learning_rate": 5e-3, "head": "logistic",
                          "loss": "cosent", "scale": 10.0}
    run = tuneforge.train(cfg, progress=False)
    assert run.config.contrastive.loss == "cosent" and run.config.contrastive.scale == 10.0
    assert run.metrics["train.pair_loss"] == "cosent"
    assert run.metrics["test.accuracy"] > 0.45  # keyword data, 3 classes: chance is 1/3


def test_unknown_loss_is_a_config_error(make_tiny_config, tmp_path):
    from tuneforge.config import TrainConfig, load_config
    from tuneforge.errors import TuneforgeError

    cfg = make_tiny_config(tmp_path / "run")
    cfg["contrastive"] = {"iterations": 2}
    with pytest.raises(TuneforgeError, match="cosent"):
        load_config(TrainConfig, data=cfg, overrides=["contrastive.loss=mnrl"])


def test_average_weights_is_the_mean_of_every_member():
    from tuneforge.fewshot.contrastive import average_weights

    torch.manual_seed(0)
    nets = [torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2)) for _ in range(3)]
    for k, net in enumerate(nets):
        net[1].running_mean.fill_(float(k))
        net[1].num_batches_tracked.fill_(k + 5)  # an integer buffer: kept, not averaged
    expected = torch.stack([n[0].weight.detach() for n in nets]).mean(0)
    average_weights(nets[0], nets[1:])
    assert torch.allclose(nets[0][0].weight, expected)
    assert torch.allclose(nets[0][1].running_mean, torch.full((2,), 1.0))
    assert int(nets[0][1].num_batches_tracked) == 5


def test_members_train_a_soup_that_reloads(make_tiny_config, tmp_path, tiny_data):
    from tuneforge.data.files import read_examples

    cfg = make_tiny_config(tmp_path / "run")
    cfg["method"] = "full"
    cfg["contrastive"] = {"iterations": 2, "batch_size": 16, "learning_rate": 5e-3, "members": 2}
    cfg["train"] |= {"epochs": 1, "learning_rate": 1e-3}
    run = tuneforge.train(cfg, progress=False)
    m = run.metrics
    assert m["train.members"] == 2 and m["train.pairs"] == 2 * (2 * 2 * 96)  # both members' pairs
    assert (run.dir / "contrastive" / "log.jsonl").exists() and (run.dir / "member-1" / "contrastive").is_dir()
    test = read_examples(tiny_data["test"])
    assert tuneforge.load(run.dir).evaluate(test)["accuracy"] == pytest.approx(m["test.accuracy"])
    # the soup is not member 0: the same config with one member gives other weights and predictions
    one = tuneforge.train(cfg | {"contrastive": cfg["contrastive"] | {"members": 1},
                                 "output_dir": str(tmp_path / "one")}, progress=False)
    assert not np.allclose(one.predict_proba(test), run.predict_proba(test), atol=1e-4)


def test_members_need_a_whole_weights_method(make_tiny_config, tmp_path):
    from tuneforge.errors import TuneforgeError

    cfg = make_tiny_config(tmp_path / "run")
    cfg["method"] = {"name": "lora", "r": 4}
    cfg["contrastive"] = {"iterations": 1, "members": 2}
    with pytest.raises(TuneforgeError, match="method: full"):
        tuneforge.train(cfg, progress=False)


def test_label_smoothing_applies_to_the_head_phase_only(make_tiny_config, tmp_path):
    cfg = make_tiny_config(tmp_path / "run")
    cfg["method"] = "full"
    cfg["contrastive"] = {"iterations": 1, "batch_size": 16, "learning_rate": 5e-3}
    cfg["train"] |= {"epochs": 1, "learning_rate": 1e-3, "label_smoothing": 0.1}
    run = tuneforge.train(cfg, progress=False)  # used to fail: the pair loss refused train.label_smoothing
    assert run.config.train.label_smoothing == 0.1 and run.metrics["train.contrastive_steps"] > 0


def test_auto_loss_is_cosent_from_16_examples_per_class():
    from tuneforge.fewshot.losses import resolve_loss

    assert resolve_loss("auto", [0] * 8 + [1] * 8 + [2] * 8) == "cosine"
    assert resolve_loss("auto", [0] * 16 + [1] * 16 + [2] * 16) == "cosent"
    assert resolve_loss("auto", [0] * 40 + [1] * 15) == "cosine"  # the smallest class decides
    assert resolve_loss("cosine", [0] * 40 + [1] * 40) == "cosine"  # an explicit choice is kept
