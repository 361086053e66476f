"""Shared pieces of the monitor tests: a keyword classifier, item builders, a local webhook receiver."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

START = datetime(2026, 1, 1)


class KeywordClassifier:
    """negative when the text says "bad", positive when it says "good", else neutral."""

    labels = ["negative", "neutral", "positive"]

    def __init__(self) -> None:
        self.calls = 0

    def predict_proba(self, texts, batch_size=64):
        self.calls += 1
        out = np.full((len(texts), 3), 0.05, dtype=np.float32)
        for i, t in enumerate(texts):
            out[i, 0 if "bad" in t else 2 if "good" in t else 1] = 0.9
        return out


def item(i: int, minute: float, text: str = "good flight", topic: str | None = "acme", source: str = "web") -> dict:
    row = {"id": f"i{i}", "time": (START + timedelta(minutes=minute)).isoformat() + "Z", "text": text,
           "source": source}
    if topic is not None:
        row["topic"] = topic
    return row


def config(tmp_path, **extra) -> dict:
    cfg = {"runs": {}, "database": f"sqlite:///{tmp_path}/monitor.db",
           "windows": {"current_minutes": 60, "baseline_minutes": 240, "bucket_minutes": 60},
           "rules": [{"kind": "spike", "name": "spike", "by": "topic", "min_difference": 0.4, "min_volume": 10,
                      "min_baseline_volume": 10}]}
    cfg.update(extra)
    return cfg


class Receiver:
    """A local HTTP server that records POSTed JSON; ``fail_first`` answers 500 that many times first."""

    def __init__(self, fail_first: int = 0) -> None:
        self.received: list[dict] = []
        self.attempts = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.attempts += 1
                if outer.attempts <= fail_first:
                    self.send_response(500)
                    self.end_headers()
                    return
                outer.received.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
