"""The monitor's HTTP API, CLI and end-to-end runs: the airline demo (exactly one alert) and a real tiny run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from monitor_helpers import KeywordClassifier, config, item

import tuneforge
from tuneforge.apps.monitor import open_monitor
from tuneforge.apps.monitor.app import create_app
from tuneforge.serve.auth import load_keys
from tuneforge.serve.config import AuthConfig

KEY = "monitor-test-key-0123456789"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def client(tmp_path):
    monitor = open_monitor(config(tmp_path, rules=[{"kind": "threshold", "name": "t", "above": 0.5,
                                                     "min_volume": 2}], max_items_per_request=5,
                                  max_body_bytes=4096),
                           classifiers={"sentiment": KeywordClassifier()})
    keys = load_keys(AuthConfig(), {"TUNEFORGE_API_KEYS": f"alice:{KEY}"})
    with TestClient(create_app(monitor, keys, watch=False), raise_server_exceptions=False) as c:
        yield c


def test_post_items_needs_a_key_and_counts_duplicates(client):
    body = {"items": [item(1, 0, "bad"), item(2, 1, "bad")]}
    refused = client.post("/v1/items", json=body)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"
    ok = client.post("/v1/items", json=body, headers={"X-API-Key": KEY})
    assert ok.status_code == 200
    assert ok.json() == {"received": 2, "new": 2, "duplicates": 0, "classified": 2, "alerts_opened": 1}
    again = client.post("/v1/items", json=[item(2, 1, "bad"), item(3, 2)], headers={"Authorization": f"Bearer {KEY}"})
    assert again.json()["new"] == 1 and again.json()["duplicates"] == 1
    summary = client.get("/api/summary", headers={"X-API-Key": KEY}).json()
    assert summary["counts"] == {"items": 3, "classified": 3, "alerts": 1}
    assert [i["id"] for i in summary["items"]] == ["i3", "i2", "i1"]
    assert summary["items"][0]["predictions"]["sentiment"]["label"] == "positive"
    assert summary["trend"]["acme"][-1]["volume"] == 3
    assert summary["alerts"][0]["rule"] == "t" and summary["alerts"][0]["state"] == "open"
    filtered = client.get("/api/summary?topic=nothing", headers={"X-API-Key": KEY}).json()
    assert filtered["items"] == [] and filtered["trend"] == {}


@pytest.mark.parametrize("send, status, code", [
    ({"content": b"{oops"}, 422, "bad_json"),
    ({"json": {"items": []}}, 422, "invalid_request"),
    ({"json": {"items": [item(i, i) for i in range(6)]}}, 413, "too_many_items"),
    ({"json": {"items": [{"id": 1, "text": "x"}]}}, 422, "invalid_items"),
    ({"json": {"items": [item(1, 0, "x" * 5000)]}}, 413, "body_too_large"),
])
def test_bad_requests_get_a_clear_4xx(client, send, status, code):
    response = client.post("/v1/items", headers={"X-API-Key": KEY}, **send)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    if code == "invalid_items":
        assert "item 0: missing time" in response.json()["error"]["message"]


def test_dashboard_page_and_health_need_no_key(client):
    page = client.get("/")
    assert page.status_code == 200 and 'id="trend"' in page.text and "#key=" not in page.text.split("<script>")[0]
    assert client.get("/healthz").json()["status"] == "ok"
    assert client.get("/api/summary").status_code == 401


def test_airline_demo_stream_raises_exactly_one_alert(tmp_path):
    from tuneforge.apps.monitor.demo import GoldClassifier, airline_stream, replay

    stream, gold = airline_stream()
    monitor = open_monitor(REPO / "configs" / "monitor-airline.yaml",
                           [f"database=sqlite:///{tmp_path}/demo.db", "watch.folder=null"],
                           classifiers={"sentiment": GoldClassifier(gold)})
    opened = replay(monitor, stream, chunk=50)
    assert len(opened) == 1
    alert = monitor.alerts()[0]
    assert (alert["rule"], alert["key"]) == ("airline-spike", "virginamerica")
    from datetime import datetime

    # the burst runs from minute 1000 (16:40) for half an hour; the rules are checked every 50 items
    assert datetime(2015, 2, 20, 16, 40) < alert["opened_at"] < datetime(2015, 2, 20, 17, 30)
    assert monitor.counts() == {"items": len(stream), "classified": len(stream), "alerts": 1}


def test_a_real_tiny_run_classifies_items(tmp_path, make_tiny_config):
    cfg = make_tiny_config(tmp_path / "run")
    cfg["train"].update(max_steps=2)
    run = tuneforge.train(cfg, progress=False)
    monitor = open_monitor(config(tmp_path, runs={"sentiment": str(run.dir)}))
    texts = ["the flight was late again", "great friendly crew"]
    monitor.ingest([item(i, i, t) for i, t in enumerate(texts)])
    assert monitor.process()["classified"] == 2
    expected = tuneforge.load(run.dir).predict(texts)
    from tuneforge.apps.monitor.summary import summary

    got = {i["text"]: i["predictions"]["sentiment"] for i in summary(monitor)["items"]}
    for text, pred in zip(texts, expected):
        assert got[text]["label"] == pred["label"]
        assert got[text]["scores"] == pytest.approx(pred["scores"], abs=1e-5)


@pytest.fixture()
def cli(monkeypatch, capsys):
    """``cli(*args) -> (exit code, stdout, stderr)`` through the real entry point, in this process."""
    from tuneforge.cli.main import main

    def invoke(*args):
        monkeypatch.setattr(sys, "argv", ["tuneforge", "monitor", *map(str, args)])
        with pytest.raises(SystemExit) as info:
            main()
        captured = capsys.readouterr()
        return (0 if info.value.code is None else info.value.code), captured.out, captured.err

    return invoke


def test_cli_help_ingest_and_errors(tmp_path, cli, monkeypatch):
    code, out, _ = cli("--help")
    assert code == 0 and "serve" in out and "demo" in out and "ingest" in out
    shipped = REPO / "configs" / "monitor-airline.yaml"
    code, _, err = cli("ingest", shipped, "runs.sentiment=/no/such/run", f"database=sqlite:///{tmp_path}/m.db",
                       f"watch.folder={tmp_path}")
    assert code == 2 and "does not exist" in err
    code, _, err = cli("serve", shipped, "windows.current=5")
    assert code == 2 and "current_minutes" in err
    code, _, err = cli("ingest", shipped, f"database=sqlite:///{tmp_path}/m.db", "watch.folder=null")
    assert code == 2 and "watch.folder" in err


def test_cli_ingest_reads_the_watched_folder(tmp_path, cli, monkeypatch):
    from tuneforge.apps.monitor import monitor as monitor_module

    monkeypatch.setattr(monitor_module, "load_classifiers", lambda cfg: {"sentiment": KeywordClassifier()})
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "a.jsonl").write_text("".join(json.dumps(item(i, i, "@united bad", topic=None)) + "\n"
                                           for i in range(3)))
    args = ("ingest", REPO / "configs" / "monitor-airline.yaml", f"watch.folder={inbox}",
            f"database=sqlite:///{tmp_path}/m.db")
    code, out, _ = cli(*args)
    assert code == 0 and json.loads(out)["new"] == 3 and json.loads(out)["classified"] == 3
    code, out, _ = cli(*args)  # a second run reads nothing twice
    assert json.loads(out)["lines"] == 0 and json.loads(out)["items"] == 3


def test_cli_demo_replays_the_stream_and_reports_one_alert(tmp_path, cli, monkeypatch):
    from tuneforge.apps.monitor import monitor as monitor_module
    from tuneforge.apps.monitor.demo import GoldClassifier, airline_stream

    gold = airline_stream()[1]
    monkeypatch.setattr(monitor_module, "load_classifiers", lambda cfg: {"sentiment": GoldClassifier(gold)})
    monkeypatch.chdir(tmp_path)  # the demo finds the shipped config from its own source folder
    code, out, err = cli("demo", "--run", "unused", "--out", tmp_path / "demo", "--speed", 0)
    assert code == 0, err
    assert "1 alert(s)" in out and "airline-spike: topic virginamerica" in out
    assert (tmp_path / "demo" / "monitor-demo.db").exists()
    code, _, err = cli("demo", "--speed", -1)
    assert code == 2 and "--speed" in err


def test_the_served_app_watches_its_folder(tmp_path):
    import time

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "a.jsonl").write_text("".join(json.dumps(item(i, i, "bad")) + "\n" for i in range(4)))
    monitor = open_monitor(config(tmp_path, watch={"folder": str(inbox), "poll_s": 0.1}),
                           classifiers={"sentiment": KeywordClassifier()})
    with TestClient(create_app(monitor, None, watch=True)) as c:
        for _ in range(200):  # the watcher thread polls every 0.1 s; wait for it, up to 20 s
            if c.get("/healthz").json()["classified"] == 4:
                break
            time.sleep(0.1)
        assert c.get("/healthz").json() == {"status": "ok", "items": 4, "classified": 4, "alerts": 0}
    assert not any(t.name == "monitor-watcher" and t.is_alive() for t in __import__("threading").enumerate())
