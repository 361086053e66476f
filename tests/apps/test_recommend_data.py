"""The click log and item CSVs: errors that name the file and the line; the time-based split leaks no future."""

from __future__ import annotations

from pathlib import Path

import pytest
from recommend_helpers import write_csv

from tuneforge.apps.recommend.config import RecommendConfig
from tuneforge.apps.recommend.data import Interaction, Item, history_text, read_interactions, read_items, time_split
from tuneforge.apps.recommend.evaluate import evaluate_all
from tuneforge.apps.recommend.train import training_examples
from tuneforge.config import load_config
from tuneforge.errors import TuneforgeError

REPO = Path(__file__).resolve().parents[2]
ITEM_HEADER = ["item", "title", "description", "tags"]
LOG_HEADER = ["user", "item", "label", "time"]


@pytest.fixture()
def items_csv(tmp_path):
    return write_csv(tmp_path / "items.csv", ITEM_HEADER, [[f"i{n}", f"title {n}", "", "a;b"] for n in range(6)])


def error(fn, *args) -> str:
    with pytest.raises(TuneforgeError) as info:
        fn(*args)
    return str(info.value)


def test_items_read_with_tags(items_csv):
    items = read_items(items_csv)
    assert list(items) == [f"i{n}" for n in range(6)]
    assert items["i1"].tags == ("a", "b")
    assert items["i1"].text == "title 1 | a, b"
    assert items["i1"].short == "title 1 (a, b)"


def test_missing_column_names_file_line_and_column(tmp_path):
    path = write_csv(tmp_path / "items.csv", ["item", "title", "tags"], [["i1", "t", ""]])
    message = error(read_items, path)
    assert str(path) in message and "line 1" in message and "missing description" in message


def test_item_problems_are_listed_with_their_lines(tmp_path):
    path = write_csv(tmp_path / "items.csv", ITEM_HEADER, [["i1", "t", "", ""], ["i1", "again", "", ""],
                                                           ["", "no id", "", ""], ["i3", "", "", "x"]])
    message = error(read_items, path)
    assert str(path) in message and "3 problem(s)" in message
    assert 'line 3: item "i1" again (first on line 2)' in message
    assert "line 4: the item id is empty" in message
    assert 'line 5: item "i3" has neither a title nor a description' in message


def test_interaction_problems_are_listed_with_their_lines(tmp_path, items_csv):
    items = read_items(items_csv)
    path = write_csv(tmp_path / "log.csv", LOG_HEADER, [["u1", "i1", 1, 5], ["u1", "i2", "yes", 6],
                                                         ["u1", "nope", 1, 7], ["u2", "i1", 0, "tuesday"],
                                                         ["", "i1", 1, 8]])
    message = error(read_interactions, path, items)
    assert str(path) in message and "4 problem(s)" in message
    assert 'line 3: label "yes" must be 1 (clicked) or 0' in message
    assert 'line 4: item "nope" is not in the items file' in message
    assert 'line 5: time "tuesday" is neither a number nor an ISO date' in message
    assert "line 6: the user is empty" in message


def test_extra_field_and_missing_file(tmp_path, items_csv):
    path = tmp_path / "log.csv"
    path.write_text("user,item,label,time\nu1,i1,1,5,extra\n", encoding="utf-8")
    assert "line 2: more fields than the header" in error(read_interactions, path, read_items(items_csv))
    assert "does not exist" in error(read_items, tmp_path / "nothing.csv")


def test_iso_times_and_numbers(tmp_path, items_csv):
    path = write_csv(tmp_path / "log.csv", LOG_HEADER, [["u1", "i1", 1, "2024-01-01T00:00:10"],
                                                         ["u1", "i2", 1, "2024-01-01T00:00:00Z"]])
    rows = read_interactions(path, read_items(items_csv))
    assert rows[0].time - rows[1].time == 10


def rows_of(spec: list[tuple[str, str, int, float]]) -> list[Interaction]:
    return [Interaction(u, i, y, t, line) for line, (u, i, y, t) in enumerate(spec, start=2)]


LOG = rows_of([("a", "i0", 1, 1), ("b", "i1", 1, 2), ("a", "i2", 0, 3), ("a", "i3", 1, 4), ("b", "i4", 1, 5),
               ("a", "i5", 1, 6), ("c", "i0", 1, 7), ("a", "i1", 1, 6)])  # a's i1 and i5 at the same time


def test_last_split_holds_out_each_users_last_interactions():
    split = time_split(LOG, "last", last_n=2)
    assert {(r.user, r.item) for r in split.test} == {("a", "i5"), ("a", "i1")}
    assert [r for r in split.test if r.user in ("b", "c")] == []  # 2 and 1 rows: no more than last_n, train only
    for user in {r.user for r in split.test}:  # no future: every train row of a user precedes their test rows
        last_train = max((r.time, r.line) for r in split.train if r.user == user)
        first_test = min((r.time, r.line) for r in split.test if r.user == user)
        assert last_train < first_test
    assert split.history["a"] == ["i0", "i3"]  # train clicks only, oldest first; i2 was not clicked


def test_time_split_cuts_everyone_at_one_time():
    split = time_split(LOG, "time", cut="5")
    assert max(r.time for r in split.train) < 5 <= min(r.time for r in split.test)
    assert split.history == {"a": ["i0", "i3"], "b": ["i1"]}
    default = time_split(LOG, "time", test_fraction=0.25)
    assert len(default.test) == 3 and default.cut == 6  # the rows at 6 and after
    assert "neither a number nor an ISO date" in error(time_split, LOG, "time", 2, "soon")


def test_split_errors_when_nothing_is_held_out():
    assert "no test interactions" in error(time_split, LOG, "time", 2, "100")


def test_training_histories_hold_only_earlier_clicks():
    items = {f"i{n}": Item(f"i{n}", f"t{n}") for n in range(6)}
    split = time_split(LOG, "last", last_n=1)
    examples = training_examples(split, items, history_items=10)
    # a's train clicks in time order: i0 (1), i3 (4), i5 (6); i1 (6, later line) is the test
    by_positive = {e.positive: e.history for e in examples if e.user == "a"}
    assert by_positive == {"i3": "t0", "i5": "t3 ; t0"}
    assert all(e.negatives == ("i2",) for e in examples if e.user == "a")


def test_evaluation_describes_users_by_train_clicks_only():
    items = {f"i{n}": Item(f"i{n}", f"title{n}") for n in range(6)}
    split = time_split(LOG, "last", last_n=2)
    seen: list[str] = []

    def scorer(texts):
        import numpy as np

        seen.extend(texts)
        return np.zeros((len(texts), len(items)))

    results = evaluate_all(scorer, split, items, history_items=10, k=10)
    assert seen == [history_text(["i0", "i3"], items, 10)] == ["title3 ; title0"]  # not title5, title1 (test)
    assert results["model"]["users"] == 1
    assert set(results) == {"model", "popularity", "tfidf"}


def test_shipped_config_validates():
    cfg = load_config(RecommendConfig, path=REPO / "configs" / "recommend-demo.yaml")
    assert cfg.split.mode == "last" and cfg.model == "minilm"


def test_config_errors_name_the_closest_key(tmp_path):
    path = tmp_path / "rec.yaml"
    path.write_text("data: {interactions: a.csv, items: b.csv}\ntrain:\n  temprature: 0.1\n", encoding="utf-8")
    message = error(load_config, RecommendConfig, path)
    assert 'line 3, unknown key "train.temprature". Did you mean "temperature"?' in message
    path.write_text("data: {interactions: a.csv, items: b.csv}\nsplit: {cut: 2024-01-01}\n", encoding="utf-8")
    assert "set split.mode=time to cut by time" in error(load_config, RecommendConfig, path)
    assert load_config(RecommendConfig, path, ["split.mode=time"]).split.cut == "2024-01-01"
