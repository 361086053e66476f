"""Cross-encoder re-ranking (rerank.enabled): the re-ordering by hand with a stand-in scorer, metrics outside the
top K untouched, end to end on the tiny BERT (train -> metrics side by side -> save -> load -> rank/eval), and
bad config values (exit 2, the key named, nothing written)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from recommend_helpers import OverlapScorer, cli_runner, tiny_config, tiny_recommend_data

from tuneforge.apps.recommend import load_recommender, train_recommender
from tuneforge.apps.recommend.data import Item, read_interactions, read_items, time_split
from tuneforge.apps.recommend.evaluate import evaluate_all
from tuneforge.apps.recommend.rerank import evaluate_rerank, rerank_matrix, rerank_row, top_candidates

pytestmark = pytest.mark.usefixtures("one_thread")
TOP_K = 5


@pytest.fixture()
def cli(monkeypatch, capsys):
    return cli_runner(monkeypatch, capsys)


def test_rerank_row_by_hand():
    base = np.array([0.9, 0.1, 0.5, 0.7, 0.3, 0.2])  # items a..f
    ids = list("abcdef")
    top = top_candidates(base, ids, skip={"a"}, k=3)
    assert top == [3, 2, 4]  # d 0.7, c 0.5, e 0.3; a is skipped (clicked in train)
    out = rerank_row(base, top, np.array([0.0, 2.0, 1.0]))  # the re-ranker prefers c, then e, then d
    order = [ids[j] for j in np.argsort(-out, kind="stable") if ids[j] != "a"]
    assert order == ["c", "e", "d", "f", "b"]
    assert out[0] == base[0] and out[1] == base[1] and out[5] == base[5]  # outside the top 3: untouched
    assert min(out[top]) > max(base)  # the top 3 stay above everything else
    assert top_candidates(np.array([1.0, 1.0, 0.0]), ["x", "y", "z"], set(), 1) == [0]  # ties: catalogue order


def test_rerank_matrix_scores_only_the_top_k_and_orders_them_by_its_scores():
    items = {i: Item(i, title) for i, title in [("a", "late flight"), ("b", "great crew"), ("c", "lost bag"),
                                                 ("d", "great seat"), ("e", "flight gate")]}
    ids = list(items)
    base = np.array([[0.5, 0.4, 0.3, 0.2, 0.1],   # user 0: two towers a > b > c > d > e
                     [0.1, 0.2, 0.3, 0.4, 0.5]])  # user 1: e > d > c > b > a
    histories, skips = ["great crew great seat", "lost bag late flight"], [{"a"}, set()]
    scorer = OverlapScorer()
    out = rerank_matrix(base, histories, skips, ids, items, scorer, top_k=3)
    # user 0: candidates b, c, d (a was clicked); overlaps b 2 ("great", "crew"), c 0, d 1 ("great")
    # user 1: candidates e, d, c; overlaps e 1 ("flight"), d 0, c 2 ("lost", "bag")
    assert scorer.pairs == [(histories[0], "great crew"), (histories[0], "lost bag"), (histories[0], "great seat"),
                            (histories[1], "flight gate"), (histories[1], "great seat"), (histories[1], "lost bag")]
    assert [ids[j] for j in np.argsort(-out[0], kind="stable")][:4] == ["b", "d", "c", "a"]
    assert [ids[j] for j in np.argsort(-out[1], kind="stable")] == ["c", "e", "d", "b", "a"]
    assert out[0, 0] == 0.5 and out[0, 4] == 0.1 and out[1, 0] == 0.1 and out[1, 1] == 0.2  # below the top 3


def test_negatives_are_never_the_click_or_a_train_click():
    import random

    from tuneforge.apps.recommend.rerank import sample_negatives

    ids = [f"i{n}" for n in range(10)]
    rng = random.Random(0)
    for hard in (None, ["i1", "i2", "i3", "i0"]):
        for _ in range(50):
            got = sample_negatives("i0", ("i1", "i4"), hard, {"i0", "i2", "i5"}, ids, 3, rng)
            assert len(got) == len(set(got)) == 3 and not {"i0", "i2", "i5"} & set(got)
    assert set(sample_negatives("i0", ("i1", "i4"), None, {"i0"}, ids, 2, rng)) == {"i1", "i4"}  # logged first
    assert set(sample_negatives("i0", (), ["i3", "i1"], {"i0"}, ids, 2, rng)) == {"i1", "i3"}  # hard first
    assert len(sample_negatives("i0", (), None, set(ids[:8]), ids, 5, rng)) == 2  # the catalogue runs out


@pytest.fixture(scope="module")
def tiny_split(tmp_path_factory):
    data = tiny_recommend_data(tmp_path_factory.mktemp("rerank-data"))
    items = read_items(data["items"])
    split = time_split(read_interactions(data["interactions"], items), "last", 3)
    return items, split


def fixed_scores(texts: list[str]) -> np.ndarray:
    """A stand-in two-tower scorer: seeded random scores, the same matrix for the same users."""
    return np.random.default_rng(7).random((len(texts), 24))


def test_metrics_outside_the_top_k_are_unchanged(tiny_split):
    items, split = tiny_split
    plain = evaluate_all(fixed_scores, split, items, 4, TOP_K)["model"]
    scorer = OverlapScorer()
    reranked = evaluate_rerank(fixed_scores, scorer, split, items, 4, TOP_K, TOP_K)
    # the re-ranker reorders inside the top K only: the set of the first K, hence recall@K, is the same
    assert reranked[f"recall@{TOP_K}"] == pytest.approx(plain[f"recall@{TOP_K}"], abs=1e-12)
    assert reranked[f"ndcg@{TOP_K}"] != pytest.approx(plain[f"ndcg@{TOP_K}"], abs=1e-6)  # but not its order
    assert reranked["users"] == plain["users"] and reranked["top_k"] == TOP_K
    # entry by entry: every item outside a user's top K keeps its two-tower score, below the top K
    users = sorted({r.user for r in split.test})
    texts = [f"history of {u}" for u in users]
    base = fixed_scores(texts)
    out = rerank_matrix(base, texts, [set(split.history.get(u, [])) for u in users], list(items), items,
                        OverlapScorer(), TOP_K)
    for u in range(len(users)):
        top = top_candidates(base[u], list(items), set(split.history.get(users[u], [])), TOP_K)
        rest = [j for j in range(24) if j not in top]
        assert np.array_equal(out[u, rest], base[u, rest])
        assert out[u, top].min() > out[u, rest].max()


def test_a_stand_in_that_agrees_with_the_towers_changes_nothing(tiny_split):
    items, split = tiny_split
    users = sorted({r.user for r in split.test})
    from tuneforge.apps.recommend.data import history_text

    texts = [history_text(split.history.get(u, []), items, 4) for u in users]
    base = fixed_scores(texts)
    lookup = {(texts[u], items[i].text): base[u, j] for u in range(len(users)) for j, i in enumerate(items)}
    assert len(lookup) == len(users) * 24  # every (history, item text) pair is distinct: the lookup is exact

    def agree(histories, item_texts):
        return np.array([lookup[(h, t)] for h, t in zip(histories, item_texts)])

    plain = evaluate_all(fixed_scores, split, items, 4, 10)["model"]
    same = evaluate_rerank(fixed_scores, agree, split, items, 4, 10, TOP_K)
    for name in ("ndcg@10", "recall@10", "users"):
        assert same[name] == pytest.approx(plain[name], abs=1e-12)


def test_the_head_runs_in_fp32_under_bf16_autocast(tiny_bert):
    import torch

    from tuneforge.apps.recommend.rerank import CrossEncoder
    from tuneforge.models.precision import autocast

    model = CrossEncoder.load(tiny_bert)
    histories, texts = ["late flight again"] * 3, ["late gate", "great crew", "lost bag today"]
    with autocast("bf16"):
        assert model(histories, texts, 32).dtype == torch.float32  # a bf16 logit steps by 1/64 near 3: ties
    assert set(model.model.state_dict()) == set(type(model.model)(model.model.config).state_dict())  # names kept
    fp32 = model.score(histories, texts, 32, "fp32")
    assert np.allclose(model.score(histories, texts, 32, "bf16"), fp32, atol=0.1)


@pytest.fixture(scope="module")
def reranked_run(tiny_bert, tmp_path_factory):
    folder = tmp_path_factory.mktemp("rerank")
    data = tiny_recommend_data(folder / "data")
    cfg = tiny_config(tiny_bert, data, folder / "run")
    cfg["rerank"] = {"enabled": True, "top_k": TOP_K, "epochs": 10, "batch_size": 8, "learning_rate": 5e-3,
                     "max_length": 48}
    return train_recommender(cfg, progress=False)


def test_training_writes_both_rankings_side_by_side(reranked_run):
    from transformers import AutoModelForSequenceClassification

    rec = reranked_run
    m = rec.metrics
    assert m["ranking"] == rec.ranking == f"two-tower + cross-encoder re-rank of the top {TOP_K}"
    assert {"model", "rerank", "untrained", "tfidf", "popularity"} <= set(m)
    assert m["rerank"]["users"] == m["model"]["users"] > 0 and m["rerank"]["top_k"] == TOP_K
    assert m["rerank"]["ndcg@10"] != m["model"]["ndcg@10"]
    assert m["rerank_train"]["steps"] > 0 and m["rerank_train"]["train_seconds"] >= 0
    log = [json.loads(line) for line in (rec.dir / "rerank_log.jsonl").read_text().splitlines()]
    first, last = sum(e["loss"] for e in log[:2]) / 2, sum(e["loss"] for e in log[-2:]) / 2
    assert last < 0.85 * first, f"re-ranker loss {first:.3f} -> {last:.3f}"
    assert (rec.dir / "reranker" / "model.safetensors").exists()
    head = AutoModelForSequenceClassification.from_pretrained(rec.dir / "reranker")  # a plain HF folder
    assert head.config.num_labels == 1
    readme = (rec.dir / "README.md").read_text()
    assert f"re-rank of the top {TOP_K}" in readme and "reranker/" in readme


def test_save_load_round_trip_and_rank(reranked_run):
    rec = load_recommender(reranked_run.dir)
    assert rec.reranker is not None
    again = rec.evaluate()  # the loaded cross-encoder gives the metrics the trained one gave
    for name in ("auc", "ndcg@10", "recall@10"):
        assert again["rerank"][name] == pytest.approx(reranked_run.metrics["rerank"][name], abs=1e-6)
        assert again["model"][name] == pytest.approx(reranked_run.metrics["model"][name], abs=1e-6)
    assert again["ranking"] == rec.ranking

    ranked = rec.rank(user="u01", k=8)
    plain = rec.rank(user="u01", k=8, rerank=False)
    assert "rerank_score" not in plain[0]
    assert [r["score"] for r in plain] == sorted((r["score"] for r in plain), reverse=True)
    top, rest = ranked[:TOP_K], ranked[TOP_K:]
    assert {r["item"] for r in top} == {r["item"] for r in plain[:TOP_K]}  # the same candidates...
    assert [r["rerank_score"] for r in top] == sorted((r["rerank_score"] for r in top), reverse=True)  # re-ordered
    assert [r["item"] for r in rest] == [r["item"] for r in plain[TOP_K:]]  # and the rest untouched
    assert all(r["rerank_score"] is None for r in rest)
    texts = [i["text"] for i in rec.items if i["item"] in {r["item"] for r in top}]
    assert len(texts) == TOP_K  # items.json keeps the text the cross-encoder reads


def test_rank_cli_says_which_ranking(reranked_run, cli, tiny_bert, tmp_path):
    code, out, err = cli("rank", reranked_run.dir, "--user", "u01", "--k", "6", "--json")
    assert code == 0, err
    assert f"ranking: two-tower + cross-encoder re-rank of the top {TOP_K}" in err
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == 6 and rows[0]["rerank_score"] is not None and rows[-1]["rerank_score"] is None
    code, out, err = cli("rank", reranked_run.dir, "--user", "u01", "--k", "3", "--no-rerank")
    assert code == 0 and "ranking: two-tower\n" in err and out.count("\n") == 3
    code, out, err = cli("eval", reranked_run.dir, "--output", tmp_path / "eval.json")
    assert code == 0 and "\nrerank " in out and f"re-rank of the top {TOP_K}" in out


def test_rank_rerank_on_a_run_without_a_reranker(tiny_bert, tmp_path, cli):
    data = tiny_recommend_data(tmp_path / "data")
    cfg = tiny_config(tiny_bert, data, tmp_path / "run")
    cfg["train"]["epochs"] = 1
    rec = train_recommender(cfg, progress=False)
    assert rec.reranker is None and rec.metrics["ranking"] == "two-tower" and "rerank" not in rec.metrics
    code, _, err = cli("rank", rec.dir, "--user", "u01", "--rerank")
    assert code == 2 and "has no re-ranker" in " ".join(err.split()) and "Traceback" not in err


@pytest.mark.parametrize(("override", "expected"), [
    ("rerank.top_k=1", '"rerank.top_k" = 1: input should be greater than or equal to 2'),
    ("rerank.los=bce", 'unknown key "rerank.los". Did you mean "loss"?'),
    ("rerank.negative_source=hard", "input should be 'logged', 'random' or 'two_tower'"),
    ("rerank.epochs=0", '"rerank.epochs" = 0: input should be greater than 0'),
])
def test_bad_rerank_values_exit_2_and_write_nothing(tiny_bert, tmp_path, cli, override, expected):
    data = tiny_recommend_data(tmp_path / "data")
    config = tmp_path / "rec.yaml"
    config.write_text(json.dumps(tiny_config(tiny_bert, data, tmp_path / "run")))
    code, out, err = cli("train", config, "rerank.enabled=true", override)
    assert code == 2 and "Traceback" not in err + out
    assert expected in " ".join(err.split())
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("source", ["random", "two_tower"])
def test_other_negative_sources_and_bce_train(tiny_bert, tmp_path, source):
    data = tiny_recommend_data(tmp_path / "data")
    cfg = tiny_config(tiny_bert, data, tmp_path / "run")
    cfg["train"]["epochs"] = 1
    cfg["rerank"] = {"enabled": True, "top_k": 4, "epochs": 1, "loss": "bce", "negative_source": source,
                     "negatives": 2, "max_length": 48}
    m = train_recommender(cfg, progress=False).metrics
    assert 0 <= m["rerank"]["auc"] <= 1 and m["rerank"]["users"] == m["model"]["users"]


@pytest.fixture(scope="module")
def plain_run(tiny_bert, tmp_path_factory):
    folder = tmp_path_factory.mktemp("plain")
    data = tiny_recommend_data(folder / "data")
    return train_recommender(tiny_config(tiny_bert, data, folder / "run"), progress=False)


def test_a_reranker_is_added_to_a_finished_run_without_touching_the_towers(plain_run, cli):
    from safetensors.torch import load_file

    from tuneforge.apps.recommend import add_reranker

    run = plain_run.dir
    towers = {f: (run / f).read_bytes() for f in ("item_embeddings.safetensors", "encoder/model.safetensors")
              if (run / f).exists()}
    assert "item_embeddings.safetensors" in towers
    before = json.loads((run / "metrics.json").read_text())
    assert "rerank" not in before and before["ranking"] == "two-tower"
    # refused: a setting outside rerank.*, then nothing is written
    code, _, err = cli("rerank", run, "train.epochs=3")
    assert code == 2 and "only rerank.* settings" in err and "Traceback" not in err
    assert not (run / "reranker").exists()

    rec = add_reranker(run, [f"rerank.top_k={TOP_K}", "rerank.epochs=10", "rerank.batch_size=8",
                             "rerank.learning_rate=5e-3", "rerank.max_length=48"], progress=False)
    assert rec.reranker is not None and rec.ranking == f"two-tower + cross-encoder re-rank of the top {TOP_K}"
    after = json.loads((run / "metrics.json").read_text())
    for name in ("model", "untrained", "tfidf", "popularity", "train"):
        assert after[name] == before[name]  # the two towers' results are untouched
    assert after["rerank"]["users"] == before["model"]["users"] and after["rerank"]["top_k"] == TOP_K
    assert all((run / f).read_bytes() == b for f, b in towers.items())
    assert load_file(str(run / "item_embeddings.safetensors"))["embeddings"].shape[0] == len(rec.items)
    assert "enabled: true" in (run / "config.yaml").read_text()
    assert (run / "rerank_log.jsonl").exists() and not (run / ".rerank-staging").exists()
    assert rec.evaluate()["rerank"]["ndcg@10"] == pytest.approx(after["rerank"]["ndcg@10"], abs=1e-6)

    # a second one only with --replace; the first stays until then
    code, _, err = cli("rerank", run)
    assert code == 2 and "--replace" in err
    first = (run / "reranker" / "model.safetensors").read_bytes()
    code, out, err = cli("rerank", run, "rerank.epochs=1", "rerank.batch_size=8", "rerank.max_length=48",
                         f"rerank.top_k={TOP_K}", "rerank.seed=1", "--replace", "--quiet")
    assert code == 0, err
    assert "reranker/" in out and (run / "reranker" / "model.safetensors").read_bytes() != first
    assert not (run / ".reranker-old").exists()
