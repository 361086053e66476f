"""Ingestion (HTTP-style and watched folder), idempotence across restarts and crashes, alerts and webhooks."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from monitor_helpers import KeywordClassifier, Receiver, config, item

from tuneforge.apps.monitor import open_monitor, store
from tuneforge.errors import TuneforgeError


def make(tmp_path, **extra):
    return open_monitor(config(tmp_path, **extra), classifiers={"sentiment": KeywordClassifier()})


def test_a_repeated_id_is_stored_once_even_after_a_restart(tmp_path):
    monitor = make(tmp_path)
    assert monitor.ingest([item(1, 0), item(2, 1), item(1, 0)]) == {"received": 3, "new": 2, "duplicates": 1}
    monitor.process()
    monitor.close()
    again = make(tmp_path)  # a restart on the same database
    assert again.ingest([item(2, 1), item(3, 2)]) == {"received": 2, "new": 1, "duplicates": 1}
    again.process()
    assert again.counts() == {"items": 3, "classified": 3, "alerts": 0}


def test_bad_items_store_nothing_and_name_every_problem(tmp_path):
    monitor = make(tmp_path)
    bad = [item(1, 0), {"id": "x", "text": "no time"}, {**item(2, 0), "time": "yesterday"}, "text", {**item(3, 0),
                                                                                                  "colour": 1}]
    with pytest.raises(TuneforgeError) as info:
        monitor.ingest(bad)
    message = str(info.value)
    assert "item 1: missing time" in message and "item 2: time \"yesterday\" is not ISO 8601" in message
    assert "item 3" in message and "item 4: unknown field(s) colour" in message
    assert monitor.counts()["items"] == 0


def test_predictions_topics_and_sentiment_are_stored(tmp_path):
    monitor = make(tmp_path, topic={"pattern": "@(\\w+)", "default": "none"})
    monitor.ingest([item(1, 0, "bad @Acme service", topic=None), item(2, 1, "good", topic="own"),
                    item(3, 2, "meh", topic=None)])
    assert monitor.process()["classified"] == 3
    with monitor.engine.connect() as conn:
        rows = {r.id: r for r in conn.execute(store.items.select())}
        preds = list(conn.execute(store.predictions.select()))
    assert (rows["i1"].topic, rows["i1"].sentiment) == ("acme", "negative")
    assert (rows["i2"].topic, rows["i2"].sentiment) == ("own", "positive")
    assert (rows["i3"].topic, rows["i3"].sentiment) == ("none", "neutral")
    assert rows["i1"].negative_score == pytest.approx(0.9)
    assert len(preds) == 3 and json.loads(preds[0].scores)["negative"] == pytest.approx(0.9)


def write_lines(path, rows, tail: str = ""):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + tail, encoding="utf-8")


def test_watched_folder_reads_complete_lines_and_resumes_after_a_restart(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    rows = [item(i, i) for i in range(10)]
    partial = json.dumps(item(10, 10))
    write_lines(inbox / "a.jsonl", rows, tail=partial[:15])  # the writer is in the middle of line 11
    (inbox / "notes.txt").write_text("not watched")
    watch = {"folder": str(inbox), "batch_lines": 3}
    monitor = make(tmp_path, watch=watch)
    assert monitor.scan_folder() == {"lines": 10, "new": 10, "duplicates": 0, "rejected": 0}
    assert monitor.scan_folder()["lines"] == 0  # nothing new: nothing read twice
    monitor.close()
    with (inbox / "a.jsonl").open("a", encoding="utf-8") as f:  # the writer finishes the line, adds a bad one
        f.write(partial[15:] + "\n" + "{not json\n" + json.dumps(item(3, 3)) + "\n")
    again = make(tmp_path, watch=watch)
    assert again.scan_folder() == {"lines": 3, "new": 1, "duplicates": 1, "rejected": 1}
    assert again.counts()["items"] == 11
    with again.engine.connect() as conn:
        assert store.file_offset(conn, str((inbox / "a.jsonl").resolve())) == \
            ((inbox / "a.jsonl").stat().st_size, 13)


def test_a_crash_mid_file_loses_and_doubles_nothing(tmp_path, monkeypatch):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    write_lines(inbox / "a.jsonl", [item(i, i) for i in range(25)])
    watch = {"folder": str(inbox), "batch_lines": 5}
    monitor = make(tmp_path, watch=watch)
    real = store.set_file_offset
    calls = []

    def crash_on_third(conn, path, offset, lines):
        calls.append(lines)
        real(conn, path, offset, lines)  # the items and the offset are written ...
        if len(calls) == 3:
            raise KeyboardInterrupt("killed")  # ... and the process dies before the commit

    monkeypatch.setattr(store, "set_file_offset", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        monitor.scan_folder()
    monkeypatch.setattr(store, "set_file_offset", real)
    monitor.close()
    again = make(tmp_path, watch=watch)
    assert again.counts()["items"] == 10  # two committed batches; the third rolled back with its offset
    with again.engine.connect() as conn:
        assert store.file_offset(conn, str((inbox / "a.jsonl").resolve()))[1] == 10
    assert again.scan_folder() == {"lines": 15, "new": 15, "duplicates": 0, "rejected": 0}
    assert again.counts()["items"] == 25
    with again.engine.connect() as conn:
        ids = sorted(r.id for r in conn.execute(store.items.select()))
    assert ids == sorted(f"i{i}" for i in range(25))


def spike_stream(start_id: int, start_minute: float, negatives: int, total: int) -> list[dict]:
    """``total`` items over one hour, the first ``negatives`` of them negative."""
    return [item(start_id + k, start_minute + 60 * k / total, "bad trip" if k < negatives else "good trip")
            for k in range(total)]


def test_spike_alert_opens_once_closes_and_reopens_with_webhook_and_log(tmp_path, caplog):
    with Receiver() as receiver:
        monitor = make(tmp_path, webhooks={"urls": [receiver.url], "timeout_s": 5, "retries": 0})
        calm = spike_stream(0, 0, 2, 40) + spike_stream(100, 60, 2, 40) + spike_stream(200, 120, 2, 40) \
            + spike_stream(300, 180, 2, 40)  # four hours at 5% negative: the baseline
        monitor.ingest(calm)
        assert monitor.process()["alerts_opened"] == 0
        monitor.ingest(spike_stream(400, 240, 10, 20))  # hour 5: 50% negative
        with caplog.at_level("WARNING", logger="tuneforge.serve"):
            assert monitor.process()["alerts_opened"] == 1
        assert any(getattr(r, "fields", {}).get("rule") == "spike" for r in caplog.records)
        monitor.ingest(spike_stream(500, 250, 8, 10))  # still bad: the open alert is not raised again
        assert monitor.process()["alerts_opened"] == 0
        monitor.ingest(spike_stream(600, 320, 0, 40))  # calm hour: the alert closes
        monitor.process()
        assert [a["state"] for a in monitor.alerts()] == ["closed"]
        monitor.ingest(spike_stream(700, 380, 30, 40))  # bad again: a second alert
        assert monitor.process()["alerts_opened"] == 1
        alerts = monitor.alerts()
        assert [(a["state"], a["key"], a["delivered"]) for a in alerts] == [("open", "acme", True),
                                                                          ("closed", "acme", True)]
        assert [r["key"] for r in receiver.received] == ["acme", "acme"]
        # the hour up to the newest item (minute 297) holds hour 5's 20 items and the calm hour's last one
        assert receiver.received[0]["rule"] == "spike" and receiver.received[0]["value"] == pytest.approx(10 / 21)


def test_webhook_retries_then_gives_up_without_stopping_the_monitor(tmp_path, monkeypatch):
    from tuneforge.apps.monitor import notify

    monkeypatch.setattr(notify.time, "sleep", lambda s: None)
    with Receiver(fail_first=1) as flaky, Receiver(fail_first=99) as down:
        rule = {"kind": "threshold", "name": "t", "above": 0.5, "min_volume": 2}
        monitor = make(tmp_path, rules=[rule], webhooks={"urls": [flaky.url, down.url], "retries": 2})
        monitor.ingest([item(1, 0, "bad"), item(2, 1, "bad")])
        assert monitor.process()["alerts_opened"] == 1
        assert (flaky.attempts, len(flaky.received)) == (2, 1)
        assert down.attempts == 3
        assert monitor.alerts()[0]["delivered"] is False
        monitor.ingest([item(3, 2, "bad")])  # the monitor goes on
        assert monitor.process()["classified"] == 1


def test_unreachable_database_and_mismatched_runs_are_clear_errors(tmp_path):
    with pytest.raises(TuneforgeError, match="not a SQLAlchemy URL"):
        open_monitor(config(tmp_path, database="nosuchdb://x"), classifiers={"sentiment": KeywordClassifier()})
    with pytest.raises(TuneforgeError, match='sentiment.run "sentiment" is not one of runs'):
        open_monitor(config(tmp_path), classifiers={"sentimnt": KeywordClassifier()})
    with pytest.raises(TuneforgeError, match="negative_label"):
        open_monitor(config(tmp_path, sentiment={"negative_label": "neg"}),
                     classifiers={"sentiment": KeywordClassifier()})



def test_database_urls_that_cannot_work_are_clear_errors_and_nothing_is_changed(tmp_path):
    # each was a traceback: ModuleNotFoundError (no MySQL driver), FileExistsError (a file where the folder
    # goes), sqlalchemy DatabaseError (a SQLite URL naming a file that is not a database)
    with pytest.raises(TuneforgeError, match=r'"mysql://u:\*\*\*@localhost/db" is not a SQLAlchemy URL this install '
                                             r"can use \(No module named"):
        open_monitor(config(tmp_path, database="mysql://u:secret@localhost/db"),
                     classifiers={"sentiment": KeywordClassifier()})
    (tmp_path / "afile").write_text("x")
    with pytest.raises(TuneforgeError, match="cannot create the folder .*afile for it \\(part of that path is a file"):
        open_monitor(config(tmp_path, database=f"sqlite:///{tmp_path}/afile/monitor.db"),
                     classifiers={"sentiment": KeywordClassifier()})
    (tmp_path / "notes.db").write_text("my notes, not a database\n")
    with pytest.raises(TuneforgeError, match="notes.db\" cannot be used: file is not a database"):
        open_monitor(config(tmp_path, database=f"sqlite:///{tmp_path}/notes.db"),
                     classifiers={"sentiment": KeywordClassifier()})
    assert (tmp_path / "notes.db").read_text() == "my notes, not a database\n"


KILLED_WORKER = """
import sys, time
sys.path.insert(0, {helpers!r})
from monitor_helpers import KeywordClassifier, config
from tuneforge.apps.monitor import open_monitor, store
real = store.set_file_offset
def slow(conn, path, offset, lines):
    real(conn, path, offset, lines)
    time.sleep(0.02)  # inside the transaction: the kill may land between the write and the commit
store.set_file_offset = slow
monitor = open_monitor(config({tmp!r}, watch={{"folder": {inbox!r}, "batch_lines": 7}}),
                       classifiers={{"sentiment": KeywordClassifier()}})
print("started", flush=True)
monitor.scan_folder()
"""


def test_a_killed_process_resumes_exactly(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    total = 1500
    write_lines(inbox / "a.jsonl", [item(i, i) for i in range(total)])
    script = KILLED_WORKER.format(helpers=str(Path(__file__).parent), tmp=str(tmp_path), inbox=str(inbox))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    worker = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True)
    assert worker.stdout.readline().strip() == "started"
    key = str((inbox / "a.jsonl").resolve())
    engine = store.connect(f"sqlite:///{tmp_path}/monitor.db")
    while True:  # wait for some committed progress, then kill -9 in the middle of the file
        with engine.connect() as conn:
            if store.file_offset(conn, key)[1] >= 70:
                break
        assert worker.poll() is None, "the worker ended before it was killed"
        time.sleep(0.05)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    with engine.connect() as conn:
        offset, lines = store.file_offset(conn, key)
        stored = store.counts(conn)["items"]
    assert 70 <= lines < total and stored == lines  # what the offset says was read is exactly what is stored
    engine.dispose()
    again = make(tmp_path, watch={"folder": str(inbox), "batch_lines": 500})
    assert again.scan_folder() == {"lines": total - lines, "new": total - lines, "duplicates": 0, "rejected": 0}
    assert again.counts()["items"] == total


class TopicClassifier:
    """A topic run stand-in: "fares" when the text says "price", else "service"."""

    labels = ["fares", "service"]

    def predict_proba(self, texts, batch_size=64):
        import numpy as np

        return np.array([[0.8, 0.2] if "price" in t else [0.3, 0.7] for t in texts], dtype=np.float32)


def test_a_topic_run_gives_the_topic_and_both_runs_predictions_are_stored(tmp_path):
    cfg = config(tmp_path, topic={"run": "topic", "from_item": False})
    monitor = open_monitor(cfg, classifiers={"sentiment": KeywordClassifier(), "topic": TopicClassifier()})
    monitor.ingest([item(1, 0, "bad price", topic="ignored"), item(2, 1, "good crew")])
    monitor.process()
    with monitor.engine.connect() as conn:
        topics = {r.id: r.topic for r in conn.execute(store.items.select())}
        runs = sorted((r.item_id, r.run, r.label) for r in conn.execute(store.predictions.select()))
    assert topics == {"i1": "fares", "i2": "service"}
    assert runs == [("i1", "sentiment", "negative"), ("i1", "topic", "fares"), ("i2", "sentiment", "positive"),
                    ("i2", "topic", "service")]
    with pytest.raises(TuneforgeError, match='topic.run "topics" is not one of runs'):
        open_monitor(config(tmp_path, topic={"run": "topics"}), classifiers={"sentiment": KeywordClassifier()})


def test_out_of_range_times_and_unstorable_characters_are_refused_not_crashes(tmp_path):
    # 1e20 / inf Unix seconds and a year-9999 time with an offset raised OverflowError (HTTP 500); a lone
    # surrogate ("\ud800" in JSON) failed in the database insert. In a watched file either one stopped every
    # later line of the folder from being read.
    monitor = make(tmp_path)
    bad = [{**item(1, 0), "time": 1e20}, {**item(2, 0), "time": float("inf")},
           {**item(3, 0), "time": "9999-12-31T23:59:59-05:00"}, {**item(4, 0), "text": "a\ud800b"},
           {**item(5, 0), "text": "a\x00b"}]
    with pytest.raises(TuneforgeError) as info:
        monitor.ingest(bad)
    message = str(info.value)
    assert "item 0: time 1e+20 is out of range" in message and "item 1: time inf is not a number" in message
    assert 'item 2: time "9999-12-31T23:59:59-05:00" is out of range' in message
    assert "item 3: text has the character U+D800" in message and "item 4: text has the character U+0000" in message
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "a.jsonl").write_text(json.dumps(item(6, 0)) + '\n{"id": "big", "time": 1e20, "text": "x"}\n'
                                   '{"id": "sur", "time": 0, "text": "a\\ud800"}\n' + json.dumps(item(7, 1)) + "\n",
                                   encoding="utf-8")
    watching = make(tmp_path, watch={"folder": str(inbox)})
    assert watching.scan_folder() == {"lines": 4, "new": 2, "duplicates": 0, "rejected": 2}
    assert watching.counts()["items"] == 2


def test_an_item_from_the_future_is_refused_so_it_cannot_silence_the_rules(tmp_path):
    # stream time is the newest item's time: one item dated 2999 (or Unix milliseconds) moved every window past
    # all real items, and no rule could fire again, without a word
    monitor = make(tmp_path)
    with pytest.raises(TuneforgeError) as info:
        monitor.ingest([item(1, 0), {**item(2, 0), "time": "2999-01-01T00:00:00Z"},
                        {**item(3, 0), "time": 1424777752000}])
    message = str(info.value)
    assert "item 1: time 2999-01-01T00:00:00Z is in the future" in message
    assert "item 2: time 1424777752000 is out of range as Unix seconds (years 1-9999; milliseconds?" in message
    assert monitor.counts()["items"] == 0
    assert monitor.ingest([{**item(4, 0), "time": datetime.now(timezone.utc).isoformat()}])["new"] == 1
