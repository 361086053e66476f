"""The HTTP API on tiny runs: auth, rate limits, size limits, error shapes, predictions, routing, metrics, logs."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from serve_fakes import ALICE, KEYS, FakePredictor, fake_models

import tuneforge
from tuneforge.serve import auth as auth_module

TEXTS = ["the flight was late again", "great crew thanks", "my seat question", "lost bag awful"]


def assert_error(response, status: int, code: str, *fragments: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    for fragment in fragments:
        assert fragment in body["error"]["message"], body
    return body


@pytest.fixture()
def one(served):
    return {"sentiment-lora": served["sentiment-lora"]}


def test_every_endpoint_but_health_needs_a_key(make_client, one):
    client = make_client(one, rate_limit__failed_auth_burst=100)
    assert client.get("/healthz").status_code == 200
    for method, path in [("post", "/v1/predict"), ("get", "/v1/models"), ("get", "/metrics"),
                         ("get", "/openapi.json"), ("get", "/docs"), ("get", "/no-such-page")]:
        for headers in [{}, {"Authorization": "Bearer wrong-key-0123456789abcdef"}, {"X-API-Key": "nope"},
                        {"Authorization": f"Basic {KEYS['alice']}"}]:
            response = getattr(client, method)(path, headers=headers)
            assert_error(response, 401, "unauthorized", "Authorization: Bearer KEY")
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/v1/models", headers={"X-API-Key": KEYS["bob"]}).status_code == 200
    assert client.get("/v1/models", headers=ALICE).status_code == 200
    assert client.get("/openapi.json", headers=ALICE).json()["paths"]["/v1/predict"]


def test_public_docs_open_only_the_docs(make_client, one):
    client = make_client(one, public_docs=True)
    assert client.get("/openapi.json").status_code == 200
    assert client.get("/docs").status_code == 200
    assert client.get("/v1/models").status_code == 401


def test_a_key_is_compared_in_constant_time_against_every_key(make_client, one, monkeypatch):
    calls = []
    real = auth_module.hmac.compare_digest
    monkeypatch.setattr(auth_module.hmac, "compare_digest", lambda a, b: calls.append((len(a), len(b))) or real(a, b))
    client = make_client(one)
    for headers in [ALICE, {"X-API-Key": KEYS["bob"]}, {"X-API-Key": "wrong-but-long-enough-key"}]:
        calls.clear()
        client.get("/v1/models", headers=headers)
        assert len(calls) == len(KEYS), "every key is compared, with no early exit"
        assert all(a == b == 32 for a, b in calls), "fixed-length digests: the key length does not leak"


def test_rate_limit_per_key_answers_429_with_retry_after(make_client, one):
    client = make_client(one, rate_limit__requests_per_second=0.01, rate_limit__burst=2)
    assert [client.get("/v1/models", headers=ALICE).status_code for _ in range(2)] == [200, 200]
    response = client.get("/v1/models", headers=ALICE)
    assert_error(response, 429, "rate_limited", "2")
    assert int(response.headers["Retry-After"]) >= 1
    assert client.get("/v1/models", headers={"X-API-Key": KEYS["bob"]}).status_code == 200  # bob has his own bucket
    assert client.get("/healthz").status_code == 200  # health is never limited


def test_guessing_keys_is_throttled_per_client_address(make_client, one):
    client = make_client(one, rate_limit__failed_auth_per_second=0.01, rate_limit__failed_auth_burst=3)
    codes = [client.get("/v1/models", headers={"X-API-Key": f"guess-{i:020d}"}).status_code for i in range(4)]
    assert codes == [401, 401, 401, 429]
    assert_error(client.get("/v1/models"), 429, "rate_limited", "without a valid API key from this address")
    assert client.get("/v1/models", headers=ALICE).status_code == 200  # a valid key is not held back


def test_size_limits(make_client, one):
    client = make_client(one, limits__max_texts=3, limits__max_chars=20, limits__max_body_bytes=2048)
    assert_error(client.post("/v1/predict", json={"texts": ["a"] * 4}, headers=ALICE), 413, "too_many_texts",
                 "4 texts", "limit is 3")
    assert_error(client.post("/v1/predict", json={"texts": ["ok", "x" * 21]}, headers=ALICE), 422, "text_too_long",
                 "texts[1] has 21", "limit is 20")
    assert_error(client.post("/v1/predict", json={"texts": ["ok"], "text_pairs": ["y" * 30]}, headers=ALICE), 422,
                 "text_too_long", "text_pairs[0]")
    assert_error(client.post("/v1/predict", content=b'{"texts": ["' + b"x" * 3000 + b'"]}', headers=ALICE), 413,
                 "body_too_large", "2048 bytes")

    def chunked():  # no Content-Length: the gate counts the bytes as they arrive
        yield b'{"texts": ["'
        for _ in range(10):
            yield b"x" * 500
        yield b'"]}'

    assert_error(client.post("/v1/predict", content=chunked(), headers=ALICE), 413, "body_too_large")
    assert client.post("/v1/predict", json={"texts": ["x" * 20] * 3}, headers=ALICE).status_code == 200


@pytest.mark.parametrize("body, code, fragment", [
    (b"{not json", "bad_json", "not valid JSON"),
    (b"", "bad_json", "JSON object"),
    (b"[1, 2]", "invalid_request", "must be a JSON object"),
    (b'{"texts": "one text"}', "invalid_request", "texts: Input should be a valid list"),
    (b'{"texts": [1, 2]}', "invalid_request", "texts.0"),
    (b'{"texts": []}', "invalid_request", "at least 1"),
    (b'{"text": ["a"]}', "invalid_request", "texts: Field required"),
    (b'{"texts": ["a"], "extra": 1}', "invalid_request", "extra"),
    (b'{"texts": ["a"], "text_pairs": ["a", "b"]}', "pairs_mismatch", "1 texts but 2 text_pairs"),
    (b'{"texts": ["a"], "adapter": 3}', "invalid_request", "adapter"),
])
def test_bad_requests_get_422_with_the_same_shape(make_client, one, body, code, fragment):
    client = make_client(one)
    response = client.post("/v1/predict", content=body, headers={**ALICE, "Content-Type": "application/json"})
    assert_error(response, 422, code, fragment)


def test_a_body_that_is_not_utf8_says_what_to_send(make_client, one):
    # FastAPI's own 400 "There was an error parsing the body" said nothing about what to fix; bad_json is a 422
    client = make_client(one)
    response = client.post("/v1/predict", content='{"texts": ["café"]}'.encode("latin-1"),
                           headers={**ALICE, "Content-Type": "application/json"})
    assert_error(response, 422, "bad_json", "UTF-8", "Content-Type: application/json")


def test_a_body_that_is_not_json_typed_gets_422(make_client, one):
    client = make_client(one)
    assert_error(client.post("/v1/predict", content=b"{bad", headers={**ALICE, "Content-Type": "text/plain"}), 422,
                 "bad_json")


def test_predictions_equal_the_runs_own(make_client, served, tiny_runs, one):
    client = make_client(one)
    response = client.post("/v1/predict", json={"texts": TEXTS}, headers=ALICE)
    assert response.status_code == 200, response.text
    body = response.json()
    expected = tuneforge.load(tiny_runs["sentiment-lora"], precision="fp32").predict(TEXTS)
    assert body["adapter"] == "sentiment-lora" and body["model"] == served["sentiment-lora"].backbone
    assert [p["label"] for p in body["predictions"]] == [p["label"] for p in expected]
    for got, want in zip(body["predictions"], expected):
        np.testing.assert_allclose(list(got["scores"].values()), list(want["scores"].values()), atol=1e-5)
        assert list(got["scores"]) == list(want["scores"])
    assert response.headers["X-Request-ID"]


def test_adapter_routing_with_two_runs_on_one_backbone(make_client, served, tiny_runs):
    client = make_client(served)
    assert_error(client.post("/v1/predict", json={"texts": TEXTS}, headers=ALICE), 422, "adapter_required",
                 "sentiment-lora", "sentiment-adapter")
    assert_error(client.post("/v1/predict", json={"texts": TEXTS, "adapter": "sentiment-lor"}, headers=ALICE), 422,
                 "unknown_adapter", 'Did you mean "sentiment-lora"?')
    unknown = client.post("/v1/predict", json={"texts": TEXTS, "adapter": "topic"}, headers=ALICE).json()
    assert unknown["error"]["message"].count("sentiment-lora") == 1  # listed once, not as valid and as loaded
    for name, path in tiny_runs.items():
        body = client.post("/v1/predict", json={"texts": TEXTS, "adapter": name}, headers=ALICE).json()
        assert body["adapter"] == name
        want = tuneforge.load(path, precision="fp32").predict_proba(TEXTS)
        got = np.array([list(p["scores"].values()) for p in body["predictions"]])
        np.testing.assert_allclose(got, want, atol=1e-5)
    models = client.get("/v1/models", headers=ALICE).json()["models"]
    assert [(m["name"], m["method"], m["labels"]) for m in models] == [
        ("sentiment-lora", "lora", ["negative", "neutral", "positive"]),
        ("sentiment-adapter", "adapter", ["negative", "neutral", "positive"])]
    assert all(m["engine"] == "torch-fp32" and m["load_seconds"] > 0 for m in models)


def test_metrics_after_requests(make_client, one):
    client = make_client(one)
    client.post("/v1/predict", json={"texts": TEXTS}, headers=ALICE)
    client.post("/v1/predict", json={"texts": TEXTS[:1]}, headers=ALICE)
    client.get("/v1/models")  # 401
    response = client.get("/metrics", headers=ALICE)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    text = response.text
    for line in ['tuneforge_requests_total{endpoint="/v1/predict",status="200"} 2.0',
                 'tuneforge_requests_total{endpoint="/v1/models",status="401"} 1.0',
                 'tuneforge_errors_total{code="unauthorized",endpoint="/v1/models"} 1.0',
                 'tuneforge_texts_total{model="sentiment-lora"} 5.0',
                 "tuneforge_batch_texts_count 2.0", "tuneforge_batch_texts_sum 5.0",
                 'tuneforge_request_latency_seconds_count{endpoint="/v1/predict"} 2.0',
                 "tuneforge_queue_depth 0.0"]:
        assert line in text, line
    assert 'tuneforge_model_load_seconds{model="sentiment-lora"}' in text
    assert "_created" not in text


def _request_lines(caplog) -> list[dict]:
    return [r.fields for r in caplog.records if r.name == "tuneforge.serve" and r.getMessage() == "request"]


def test_logs_mask_texts_and_never_hold_the_key(make_client, one, caplog):
    caplog.set_level(logging.INFO, logger="tuneforge.serve")
    client = make_client(one)
    secret = "my booking code is XK42PQ"
    client.post("/v1/predict", json={"texts": [secret, "hello"]}, headers=ALICE)
    [line] = _request_lines(caplog)
    dumped = json.dumps(line)
    assert secret not in dumped and KEYS["alice"] not in dumped
    assert line["key"] == "alice" and line["status"] == 200 and line["n_texts"] == 2
    assert line["chars"] == len(secret) + 5 and line["texts"][0]["chars"] == len(secret)
    assert len(line["texts"][0]["sha256"]) == 12 and line["latency_ms"] > 0 and line["request_id"]
    assert secret not in caplog.text


def test_logs_hold_texts_when_enabled(make_client, one, caplog):
    caplog.set_level(logging.INFO, logger="tuneforge.serve")
    client = make_client(one, log_texts="true")
    client.post("/v1/predict", json={"texts": ["keep me"]}, headers={**ALICE, "X-Request-ID": "abc-123"})
    [line] = _request_lines(caplog)
    assert line["texts"] == ["keep me"] and line["request_id"] == "abc-123"


def test_log_lines_are_json(caplog):
    from tuneforge.serve.logs import JsonFormatter

    record = logging.LogRecord("tuneforge.serve", logging.INFO, __file__, 1, "request", None, None)
    record.fields = {"status": 200, "texts": [{"chars": 3, "sha256": "abc"}]}
    line = json.loads(JsonFormatter().format(record))
    assert line["status"] == 200 and line["message"] == "request" and line["time"].endswith("Z")


def test_a_failing_model_gives_500_in_the_same_shape_and_the_server_lives_on(make_client):
    client = make_client(fake_models(broken=FakePredictor(fail=True), fine=FakePredictor()))
    response = client.post("/v1/predict", json={"texts": ["a"], "adapter": "broken"}, headers=ALICE)
    assert_error(response, 500, "internal", response.headers["X-Request-ID"])
    assert "the model broke" not in response.text  # internals stay in the log
    assert client.post("/v1/predict", json={"texts": ["a"], "adapter": "fine"}, headers=ALICE).status_code == 200


def test_no_auth_serves_without_keys(make_client):
    client = make_client(fake_models(fake=FakePredictor()), no_auth=True)
    assert client.post("/v1/predict", json={"texts": ["a"]}).json()["predictions"][0]["label"] == "negative"
