"""Micro-batching: queued requests share forward passes with the results they would get alone; shutdown
drains the queue; a real uvicorn server lets a request in flight finish when it is told to stop."""

from __future__ import annotations

import socket
import threading

import httpx
import numpy as np
from serve_fakes import ALICE, FakePredictor, fake_models

from tuneforge.serve.batching import MicroBatcher

TEXTS = ["the flight was late again", "great crew thanks", "my seat question", "lost bag awful",
         "thanks the crew was friendly", "the gate", "cancelled again very awful today", "best route"]


def test_queued_requests_share_one_forward_pass_and_match_unbatched_results(served):
    runs = {"sentiment-lora": served["sentiment-lora"]}
    batcher = MicroBatcher(runs, max_batch_size=64, max_wait_ms=50)
    requests = [TEXTS[i:i + 3] for i in range(0, len(TEXTS), 3)] + [TEXTS[:1]]
    futures = [batcher.submit("sentiment-lora", texts) for texts in requests]  # queued before the worker starts
    batcher.start()
    results = [f.result(timeout=60) for f in futures]
    batcher.stop()
    assert batcher.forward_passes == 1 < len(requests)
    run = served["sentiment-lora"].predictor
    for texts, got in zip(requests, results):
        np.testing.assert_allclose(got, run.predict_proba(texts), atol=1e-5)


def test_concurrent_http_requests_are_merged(make_client):
    gate, entered = threading.Event(), threading.Event()
    fake = FakePredictor(gate=gate, entered=entered)
    client = make_client(fake_models(fake=fake), batching__max_wait_ms=0)
    results: dict[int, dict] = {}

    def call(i: int) -> None:
        results[i] = client.post("/v1/predict", json={"texts": TEXTS[i:i + 2]}, headers=ALICE).json()

    first = threading.Thread(target=call, args=(0,))
    first.start()
    assert entered.wait(10)  # the worker is busy with request 0; the next ones queue up behind it
    others = [threading.Thread(target=call, args=(i,)) for i in range(1, 6)]
    for t in others:
        t.start()
    app_server = client.app.state.server
    for _ in range(200):  # until the five requests are queued
        if app_server.metrics.registry.get_sample_value("tuneforge_queue_depth") >= 5:
            break
        threading.Event().wait(0.01)
    gate.set()
    for t in [first, *others]:
        t.join(10)
    assert fake.calls == [2, 10], "request 0 alone, then the five queued requests in one forward pass"
    for i, body in results.items():
        alone = FakePredictor().predict_proba(TEXTS[i:i + 2])
        assert [p["label"] for p in body["predictions"]] == [["negative", "positive"][int(r.argmax())]
                                                             for r in alone]


def test_batches_respect_the_size_bound_and_never_split_a_request():
    fake = FakePredictor()
    batcher = MicroBatcher(fake_models(fake=fake), max_batch_size=4, max_wait_ms=0)
    sizes = [3, 1, 2, 5, 1]
    futures = [batcher.submit("fake", ["x" * (n + i) for i in range(n)]) for n in sizes]
    batcher.start()
    results = [f.result(timeout=10) for f in futures]
    batcher.stop()
    assert fake.calls == [4, 2, 5, 1]  # 3+1; 2 (5 would overflow); 5 alone; 1
    assert [len(r) for r in results] == sizes


def test_requests_for_different_models_or_pairs_run_in_separate_passes():
    a, b = FakePredictor(), FakePredictor()
    batcher = MicroBatcher(fake_models(a=a, b=b), max_batch_size=64, max_wait_ms=0)
    futures = [batcher.submit("a", ["x"]), batcher.submit("b", ["yy"]), batcher.submit("a", ["zzz"]),
               batcher.submit("a", ["p"], ["q"])]
    batcher.start()
    for f in futures:
        f.result(timeout=10)
    batcher.stop()
    assert a.calls == [2, 1] and b.calls == [1]


def test_stop_finishes_queued_requests_first():
    fake = FakePredictor()
    batcher = MicroBatcher(fake_models(fake=fake), max_batch_size=1, max_wait_ms=0)
    futures = [batcher.submit("fake", [f"text {i}"]) for i in range(5)]
    batcher.start()
    batcher.stop(timeout=10)
    assert all(f.done() and f.exception() is None for f in futures)
    assert sum(fake.calls) == 5


def test_a_request_in_flight_finishes_when_the_server_shuts_down():
    import uvicorn

    from tuneforge.serve.app import create_app
    from tuneforge.serve.auth import load_keys
    from tuneforge.serve.config import ServeConfig
    from tuneforge.serve.logs import log_config

    gate, entered = threading.Event(), threading.Event()
    cfg = ServeConfig()
    app = create_app(fake_models(fake=FakePredictor(gate=gate, entered=entered)), cfg,
                     load_keys(cfg.auth, {cfg.auth.keys_env: ALICE["Authorization"].split()[1]}))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_config=log_config(), access_log=False, lifespan="on",
                                           timeout_graceful_shutdown=10))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(500):
            if server.started:
                break
            threading.Event().wait(0.01)
        answer: dict = {}

        def call() -> None:
            answer["response"] = httpx.post(f"http://127.0.0.1:{port}/v1/predict", json={"texts": ["in flight"]},
                                            headers=ALICE, timeout=20)

        client = threading.Thread(target=call)
        client.start()
        assert entered.wait(10), "the request reached the model"
        server.should_exit = True  # what uvicorn's SIGTERM / SIGINT handler does
        threading.Event().wait(0.2)
        gate.set()
        client.join(20)
        thread.join(20)
        assert answer["response"].status_code == 200
        assert answer["response"].json()["predictions"][0]["label"] in ("negative", "positive")
        assert not thread.is_alive(), "the server stopped after the request finished"
    finally:
        gate.set()
        server.should_exit = True
        thread.join(5)
        sock.close()


def test_a_full_queue_answers_503_instead_of_queueing_more(make_client):
    gate, entered = threading.Event(), threading.Event()
    client = make_client(fake_models(fake=FakePredictor(gate=gate, entered=entered)), batching__max_queue=1)
    server = client.app.state.server
    codes: list[int] = []

    def call() -> None:
        codes.append(client.post("/v1/predict", json={"texts": ["x"]}, headers=ALICE).status_code)

    threads = [threading.Thread(target=call)]
    threads[0].start()
    assert entered.wait(10)  # request 1 is in the forward pass
    threads.append(threading.Thread(target=call))
    threads[1].start()
    for _ in range(500):  # request 2 waits in the queue
        if server.metrics.registry.get_sample_value("tuneforge_queue_depth") >= 1:
            break
        threading.Event().wait(0.01)
    response = client.post("/v1/predict", json={"texts": ["y"]}, headers=ALICE)
    gate.set()
    for t in threads:
        t.join(10)
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert response.json()["error"]["code"] == "overloaded"
    assert sorted(codes) == [200, 200]
