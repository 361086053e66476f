"""Prometheus metrics of one server, in a registry of its own (two apps in one process do not mix counts).

Endpoint labels are the fixed route paths (unknown paths count as ``other``) so a scanner cannot create
unbounded label values.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class Metrics:
    def __init__(self) -> None:
        disable_created_metrics()  # the *_created series only double the output; scrapers do not need them
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("tuneforge_requests", "HTTP requests by endpoint and status code.",
                                ["endpoint", "status"], registry=r)
        self.errors = Counter("tuneforge_errors", "Refused or failed requests by endpoint and error code.",
                              ["endpoint", "code"], registry=r)
        self.latency = Histogram("tuneforge_request_latency_seconds", "Time from request to response.",
                                 ["endpoint"], buckets=LATENCY_BUCKETS, registry=r)
        self.texts = Counter("tuneforge_texts", "Texts classified, by model.", ["model"], registry=r)
        self.batch_texts = Histogram("tuneforge_batch_texts", "Texts per forward pass.", buckets=BATCH_BUCKETS,
                                     registry=r)
        self.batch_requests = Histogram("tuneforge_batch_requests", "Requests merged into one batch.",
                                        buckets=BATCH_BUCKETS, registry=r)
        self.forward_seconds = Histogram("tuneforge_forward_seconds", "Time of one forward pass.",
                                         buckets=LATENCY_BUCKETS, registry=r)
        self.queue_depth = Gauge("tuneforge_queue_depth", "Requests waiting for a forward pass.", registry=r)
        self.model_load_seconds = Gauge("tuneforge_model_load_seconds", "Seconds to load and warm up each model.",
                                        ["model"], registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
