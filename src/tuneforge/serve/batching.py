"""Micro-batching: concurrent requests share one forward pass.

Requests are queued; one worker thread owns the models (they are not thread-safe, and on a few CPU cores one
large matmul uses them better than several small ones in parallel). The worker takes the oldest request,
then keeps taking queued ones until the batch holds ``max_batch_size`` texts or ``max_wait_ms`` has passed
since that oldest request arrived, so batching adds at most ``max_wait_ms`` to a request's latency beyond
the forward pass it waits behind. It then runs one ``predict_proba`` per (model, with/without text pairs)
group and hands each request its rows. A request is never split; one larger than the batch bound runs alone.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from tuneforge.serve.engine import ServedModel

_STOP = object()


class QueueFull(Exception):
    """More requests wait than ``max_queue``: the caller should answer "busy, retry" rather than queue more."""


@dataclass
class Job:
    model: str
    texts: list[str]
    pairs: list[str] | None
    future: Future = field(default_factory=Future)
    enqueued: float = field(default_factory=time.monotonic)


class MicroBatcher:
    def __init__(self, models: dict[str, ServedModel], max_batch_size: int = 64, max_wait_ms: float = 5.0,
                 max_queue: int = 1024, on_batch: Callable[[int, int, float], None] | None = None,
                 on_queue: Callable[[int], None] | None = None) -> None:
        """``on_batch(texts, requests, seconds)`` is called after each forward pass, ``on_queue(delta)`` when a
        request enters (+1) or leaves (-1) the queue (both for metrics)."""
        self.models = models
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000
        self.max_queue = max_queue
        self.on_batch = on_batch or (lambda n, r, s: None)
        self.on_queue = on_queue or (lambda d: None)
        self.forward_passes = 0
        self._queue: queue.Queue = queue.Queue()
        self._carry: Job | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="tuneforge-batcher", daemon=True)
            self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Finish every queued request, then stop the worker (graceful shutdown)."""
        self._closed = True
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout)
            self._thread = None

    def submit(self, model: str, texts: list[str], pairs: list[str] | None = None) -> Future:
        if self._closed:
            raise RuntimeError("the server is shutting down")
        if self._queue.qsize() >= self.max_queue:
            raise QueueFull(f"{self.max_queue} requests are waiting")
        job = Job(model, list(texts), None if pairs is None else list(pairs))
        self.on_queue(1)
        self._queue.put(job)
        return job.future

    async def predict(self, model: str, texts: list[str], pairs: list[str] | None = None) -> np.ndarray:
        return await asyncio.wrap_future(self.submit(model, texts, pairs))

    # the worker thread
    def _loop(self) -> None:
        while True:
            jobs, stop = self._collect()
            if jobs:
                self.on_queue(-len(jobs))
                self._run(jobs)
            if stop:  # anything held back or still queued runs before the worker ends
                rest = [self._carry] if self._carry is not None else []
                self._carry = None
                while True:
                    try:
                        job = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if job is not _STOP:
                        rest.append(job)
                if rest:
                    self.on_queue(-len(rest))
                    self._run(rest)
                return

    def _collect(self) -> tuple[list[Job], bool]:
        first = self._carry if self._carry is not None else self._queue.get()
        self._carry = None
        if first is _STOP:
            return [], True
        jobs, size = [first], len(first.texts)
        deadline = first.enqueued + self.max_wait
        while size < self.max_batch_size:
            wait = deadline - time.monotonic()
            try:
                job = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if job is _STOP:
                return jobs, True
            if size + len(job.texts) > self.max_batch_size:
                self._carry = job  # starts the next batch; never split a request
                break
            jobs.append(job)
            size += len(job.texts)
        return jobs, False

    def _run(self, jobs: list[Job]) -> None:
        groups: dict[tuple[str, bool], list[Job]] = {}
        for job in jobs:
            if not job.future.set_running_or_notify_cancel():
                continue  # the client went away; its future was cancelled
            groups.setdefault((job.model, job.pairs is not None), []).append(job)
        for (model, has_pairs), group in groups.items():
            texts = [t for job in group for t in job.texts]
            pairs = [p for job in group for p in job.pairs] if has_pairs else None  # type: ignore[union-attr]
            start = time.perf_counter()
            try:
                probs = self.models[model].predictor.predict_proba(texts, pairs, batch_size=max(len(texts), 1))
            except Exception as exc:  # noqa: BLE001 (the requests get a 500; the worker lives on)
                for job in group:
                    job.future.set_exception(exc)
                continue
            seconds = time.perf_counter() - start
            self.forward_passes += 1
            self.on_batch(len(texts), len(group), seconds)
            offset = 0
            for job in group:
                job.future.set_result(probs[offset:offset + len(job.texts)])
                offset += len(job.texts)
