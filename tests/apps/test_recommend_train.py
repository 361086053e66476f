"""The recommender end to end on the tiny BERT: train (the loss falls), the run folder, rank, eval, the demo at
tiny size, and the CLI's answers to bad input (exit 2, the file and line, no traceback)."""

from __future__ import annotations

import json
import sys

import pytest
import torch
from recommend_helpers import cli_runner, tiny_config, tiny_recommend_data, write_csv

from tuneforge.apps.recommend import load_recommender, train_recommender
from tuneforge.cli.main import main
from tuneforge.data.builtin.common import package_folder
from tuneforge.errors import TuneforgeError

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture()
def cli(monkeypatch, capsys):
    return cli_runner(monkeypatch, capsys)


@pytest.fixture(scope="module")
def trained(tiny_bert, tmp_path_factory):
    folder = tmp_path_factory.mktemp("recommend")
    data = tiny_recommend_data(folder / "data")
    return train_recommender(tiny_config(tiny_bert, data, folder / "run"), progress=False), data


def test_training_lowers_the_loss(trained):
    rec, _ = trained
    log = [json.loads(line) for line in (rec.dir / "log.jsonl").read_text().splitlines()]
    assert len(log) >= 5
    first, last = sum(e["loss"] for e in log[:2]) / 2, sum(e["loss"] for e in log[-2:]) / 2
    assert last < 0.8 * first, f"loss {first:.3f} -> {last:.3f}"
    assert rec.metrics["train"]["last_loss"] == log[-1]["loss"]
    assert rec.metrics["model"] != rec.metrics["untrained"]  # the encoder before training scores differently


def test_run_folder_explains_itself(trained):
    from safetensors.torch import load_file
    from transformers import AutoModel

    rec, _ = trained
    names = {p.name for p in rec.dir.iterdir()}
    assert {"config.yaml", "run.json", "split.json", "metrics.json", "metrics.png", "loss.png", "log.jsonl",
            "README.md", "encoder", "item_embeddings.safetensors", "items.json", "histories.json"} <= names
    assert json.loads((rec.dir / "run.json").read_text())["status"] == "complete"
    assert (rec.dir / "encoder" / "model.safetensors").exists()
    AutoModel.from_pretrained(rec.dir / "encoder")  # a plain Hugging Face folder
    vectors = load_file(str(rec.dir / "item_embeddings.safetensors"))["embeddings"]
    assert vectors.shape == (24, 32)
    assert torch.allclose(vectors.norm(dim=1), torch.ones(24), atol=1e-5)
    m = rec.metrics
    for method in ("model", "untrained", "tfidf", "popularity"):
        assert 0 <= m[method]["auc"] <= 1 and 0 <= m[method]["ndcg@10"] <= 1 and 0 <= m[method]["recall@10"] <= 1
        assert m[method]["users"] == m["model"]["users"] > 0  # the same users for every method


def test_rank_for_a_user_leaves_out_their_clicks(trained):
    rec = load_recommender(trained[0].dir)
    ranked = rec.rank(user="u00", k=5)
    assert len(ranked) == 5
    assert not {r["item"] for r in ranked} & set(rec.histories["u00"])
    assert [r["score"] for r in ranked] == sorted((r["score"] for r in ranked), reverse=True)
    assert len(rec.rank(history="late delayed lost", k=30)) == 24  # every item, none excluded


def test_eval_reproduces_the_training_metrics(trained, tmp_path, cli):
    rec, _ = trained
    code, out, err = cli("eval", rec.dir, "--output", tmp_path / "eval.json")
    assert code == 0, err
    again = json.loads((tmp_path / "eval.json").read_text())
    for method in ("model", "tfidf", "popularity"):
        for name in ("auc", "ndcg@10", "recall@10"):
            assert again[method][name] == pytest.approx(rec.metrics[method][name], abs=1e-6)
    assert "popularity" in out and "NDCG@10" in out


def test_rank_cli(trained, cli):
    rec, _ = trained
    code, out, err = cli("rank", rec.dir, "--user", "u01", "--k", "3", "--json")
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == 3 and {"item", "title", "score"} <= set(lines[0])
    code, out, err = cli("rank", rec.dir, "--history", "great thanks", "--k", "2")
    assert code == 0 and out.count("\n") == 2


@pytest.mark.parametrize(("args", "expected"), [
    (["--k", "3"], "--user U (a user of the log) or --history TEXT"),
    (["--user", "u01", "--history", "x"], "one of them"),
    (["--user", "u01", "--k", "0"], "--k must be at least 1"),
    (["--user", "u0l"], 'user "u0l" has no clicks in the run\'s log. Did you mean'),
    (["--history", "  "], "--history is empty; describe what the user liked"),  # ranked for nothing, silently
])
def test_rank_cli_bad_input(trained, cli, args, expected):
    code, out, err = cli("rank", trained[0].dir, *args)
    assert code == 2
    assert expected in " ".join(err.split())
    assert "Traceback" not in err + out


def test_an_unknown_user_of_a_big_log_is_named_with_a_few_examples_not_every_user(trained):
    rec = trained[0]
    saved = rec.histories
    try:  # the message listed every user of the log: thousands of ids in one error
        rec.histories = {**saved, **{f"shopper{i:05d}": ["negative-0"] for i in range(5000)}}
        with pytest.raises(TuneforgeError) as info:
            rec.rank(user="zz-nobody")
    finally:
        rec.histories = saved
    message = str(info.value)
    assert f"The log has {len(saved) + 5000} users with clicks, e.g. " in message and "shopper04999" not in message


def test_rank_on_a_folder_that_is_not_a_run(tmp_path, cli):
    code, _, err = cli("rank", tmp_path, "--user", "u")
    assert code == 2 and "is not a finished recommender run" in " ".join(err.split())


def test_train_cli_names_the_bad_csv_line_and_writes_nothing(tiny_bert, tmp_path, cli):
    data = tiny_recommend_data(tmp_path / "data")
    lines = data["interactions"].read_text().splitlines()
    lines[4] = "u00,no-such-item,1,5"
    data["interactions"].write_text("\n".join(lines) + "\n")
    config = tmp_path / "rec.yaml"
    config.write_text(json.dumps(tiny_config(tiny_bert, data, tmp_path / "run")))
    code, _, err = cli("train", config)
    err = " ".join(err.split())
    assert code == 2 and "Traceback" not in err
    assert f'{data["interactions"]}: 1 problem(s)' in err
    assert 'line 5: item "no-such-item" is not in the items file' in err
    assert not (tmp_path / "run").exists()  # nothing half-written
    code, _, err = cli("train", "train.epochs=1")
    assert code == 2 and "the config file comes first" in err


def test_train_needs_users_with_two_clicks(tiny_bert, tmp_path, cli):
    items = write_csv(tmp_path / "items.csv", ["item", "title", "description", "tags"],
                      [["a", "late", "", ""], ["b", "great", "", ""]])
    log = write_csv(tmp_path / "log.csv", ["user", "item", "label", "time"],
                    [["u1", "a", 1, 1], ["u1", "b", 0, 2], ["u2", "b", 1, 3], ["u2", "a", 1, 4]])
    code, _, err = cli("train", tmp_path / "c.yaml")
    assert code == 2 and "does not exist" in err
    (tmp_path / "c.yaml").write_text(json.dumps(tiny_config(tiny_bert, {"items": items, "interactions": log},
                                                            tmp_path / "run") | {"split": {"last_n": 1}}))
    code, _, err = cli("train", tmp_path / "c.yaml")
    assert code == 2 and "two clicks or more" in " ".join(err.split())


def test_config_show_recommend(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["tuneforge", "config", "show", "recommend"])
    with pytest.raises(SystemExit) as info:
        main()
    out = capsys.readouterr().out
    assert info.value.code in (0, None)
    assert "logged_negatives: bool = True" in out and "temperature: float = 0.05" in out


@pytest.mark.skipif(package_folder("chatterbot_corpus") is None, reason="pip install --no-deps chatterbot-corpus")
def test_demo_at_tiny_size(tiny_bert, tmp_path, cli):
    from tuneforge.apps.recommend.demo import LIKED_CLICK, OTHER_CLICK, TOPICS, chatterbot_items, simulate

    items = chatterbot_items(4)
    per_topic = {t: sum(1 for i in items if i["topic"] == t) for t in TOPICS}
    assert min(per_topic.values()) >= 2 and max(per_topic.values()) == 4  # a few openings repeat across files
    assert all(i["title"] and i["description"] and not i["tags"] for i in items)
    rows, likes = simulate(items, users=120, impressions=20, seed=1)
    assert rows == simulate(items, users=120, impressions=20, seed=1)[0]  # seeded
    topic = {i["item"]: i["topic"] for i in items}
    liked = [r["label"] for r in rows if topic[r["item"]] in likes[r["user"]]]
    other = [r["label"] for r in rows if topic[r["item"]] not in likes[r["user"]]]
    assert abs(sum(liked) / len(liked) - LIKED_CLICK) < 0.05 and abs(sum(other) / len(other) - OTHER_CLICK) < 0.03

    code, out, err = cli("demo", "--out", tmp_path, "--model", tiny_bert, "--users", 20, "--impressions", 10,
                         "--items-per-topic", 3, "--quiet", "train.precision=fp32", "data.history_max_length=16",
                         "data.item_max_length=16")
    assert code == 0, err
    assert "tfidf" in out and "popularity" in out
    run = next(tmp_path.glob("run-*"))
    assert json.loads((run / "metrics.json").read_text())["split"]["mode"] == "last"
    assert (tmp_path / "data" / "user_topics.csv").read_text().count("\n") == 21
    assert cli("demo", "--users", 1)[0] == 2


def test_global_time_cut_end_to_end(tiny_bert, tmp_path):
    data = tiny_recommend_data(tmp_path / "data")
    cfg = tiny_config(tiny_bert, data, tmp_path / "run")
    cfg["split"] = {"mode": "time", "cut": "900"}  # impressions 9, 10, 11 of every user (time 100 t + u)
    cfg["train"]["epochs"] = 1
    rec = train_recommender(cfg, progress=False)
    split = json.loads((rec.dir / "split.json").read_text())
    assert (split["mode"], split["cut"], split["test_users"], split["test_rows"]) == ("time", 900.0, 24, 72)
    assert rec.metrics["model"]["users"] == rec.metrics["tfidf"]["users"] == rec.metrics["popularity"]["users"] > 0
