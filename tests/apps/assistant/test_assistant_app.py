"""The chat service: serve's keys, limits, metrics and log masking on POST /v1/chat; the page; health."""

from __future__ import annotations

import logging

import pytest
from assistant_helpers import KB, write_kb
from fastapi.testclient import TestClient

from tuneforge.apps.assistant import build_assistant
from tuneforge.apps.assistant.app import create_app
from tuneforge.apps.assistant.config import ChatServeConfig
from tuneforge.config import load_config
from tuneforge.serve.auth import load_keys

KEY = "alice-key-0123456789abcdef"
ALICE = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def assistant(tmp_path_factory):
    """A BM25-only assistant (no model to load) on the tiny knowledge base, everything indexed."""
    root = tmp_path_factory.mktemp("chat")
    return build_assistant({"kb": {"path": str(write_kb(root / "kb.jsonl"))}, "retrieval": {"dense": False},
                            "eval": {"holdout": False, "synthetic": 0}, "output_dir": str(root / "bot")},
                           progress=False)


@pytest.fixture()
def client(assistant):
    clients = []

    def make(**overrides):
        cfg = load_config(ChatServeConfig, overrides=[f"{k.replace('__', '.')}={v}" for k, v in overrides.items()])
        keys = load_keys(cfg.auth, {cfg.auth.keys_env: f"alice:{KEY}"})
        c = TestClient(create_app(assistant, cfg, keys), raise_server_exceptions=False)
        c.__enter__()
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.__exit__(None, None, None)


def error_of(response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"]["code"] == code, body
    return body["error"]["message"]


def test_chat_needs_a_valid_key(client):
    c = client()
    for headers in [{}, {"Authorization": "Bearer wrong-key-0123456789abcdef"}, {"X-API-Key": "nope"}]:
        response = c.post("/v1/chat", json={"question": "Where is my order?"}, headers=headers)
        assert "Authorization: Bearer KEY" in error_of(response, 401, "unauthorized")
    assert error_of(c.get("/metrics"), 401, "unauthorized")
    assert c.get("/healthz").json()["modes"] == ["bm25"]
    page = c.get("/")
    assert page.status_code == 200 and "v1/chat" in page.text and 'id="key"' in page.text


def test_a_chat_answer_says_its_route(client):
    c = client()
    response = c.post("/v1/chat", json={"question": "Where is my order?"}, headers={"X-API-Key": KEY})
    assert response.status_code == 200, response.text
    reply = response.json()
    assert reply["route"] == "kb" and reply["answer"] == KB[2]["answer"] and reply["score_kind"] == "token coverage"
    unknown = c.post("/v1/chat", json={"question": "zebra giraffe"}, headers=ALICE).json()
    assert unknown["route"] == "human" and "no generation run" in unknown["reason"]
    metrics = c.get("/metrics", headers=ALICE).text
    assert 'tuneforge_assistant_replies_total{route="kb"} 1.0' in metrics
    assert 'tuneforge_assistant_replies_total{route="human"} 1.0' in metrics
    assert 'tuneforge_requests_total{endpoint="/v1/chat",status="200"} 2.0' in metrics


def test_size_limits_and_bad_bodies(client):
    c = client(limits__max_chars=20, limits__max_body_bytes=1024)
    too_long = c.post("/v1/chat", json={"question": "x" * 21}, headers=ALICE)
    assert "21 characters; the limit is 20" in error_of(too_long, 422, "text_too_long")
    huge = c.post("/v1/chat", content=b'{"question": "' + b"y" * 2000 + b'"}', headers={**ALICE,
                  "Content-Type": "application/json"})
    assert "1024 bytes" in error_of(huge, 413, "body_too_large")
    assert error_of(c.post("/v1/chat", content=b"{not json", headers={**ALICE, "Content-Type": "application/json"}),
                    422, "bad_json")
    assert error_of(c.post("/v1/chat", json={"question": ""}, headers=ALICE), 422, "invalid_request")
    assert error_of(c.post("/v1/chat", json={"question": "hi", "extra": 1}, headers=ALICE), 422, "invalid_request")
    assert error_of(c.post("/v1/chat", json={"question": 5}, headers=ALICE), 422, "invalid_request")


def test_rate_limit_per_key(client):
    c = client(rate_limit__requests_per_second=0.01, rate_limit__burst=2)
    codes = [c.post("/v1/chat", json={"question": "Where is my order?"}, headers=ALICE).status_code for _ in range(3)]
    assert codes == [200, 200, 429]


def test_logs_mask_the_question(client, caplog):
    caplog.set_level(logging.INFO, logger="tuneforge.serve")
    c = client()
    secret = "my card number is 4111 and where is my order"
    assert c.post("/v1/chat", json={"question": secret}, headers=ALICE).status_code == 200
    [line] = [r.fields for r in caplog.records if r.name == "tuneforge.serve" and r.getMessage() == "request"]
    assert line["endpoint"] == "/v1/chat" and line["key"] == "alice" and line["n_texts"] == 1
    assert line["texts"] == [{"chars": len(secret), "sha256": line["texts"][0]["sha256"]}]
    assert secret not in caplog.text and KEY not in caplog.text
