"""The inference pool's threads keep one torch thread each, whenever their first pass comes."""

from __future__ import annotations

import threading

import torch

from tuneforge.evaluation.inference import inference_pool


def test_a_pool_thread_keeps_one_thread_when_the_caller_restores_its_count_first():
    # torch gives a thread its count lazily, from the process-wide default, at its first parallel op or
    # get_num_threads(). side_by_side() restores the caller's count (which sets that default) after each call,
    # so a pool thread whose first pass comes later must not take the default then.
    caller = torch.get_num_threads()
    pool = inference_pool(7)  # a pool of its own: its one thread is started here
    started, go = threading.Event(), threading.Event()

    def first_pass() -> int:
        started.set()
        go.wait(timeout=60)
        return torch.get_num_threads()  # the thread's first torch call after its initializer

    try:
        future = pool.submit(first_pass)
        assert started.wait(timeout=60)
        torch.set_num_threads(max(2, caller))  # what side_by_side's finally does: the default is now >= 2
        go.set()
        assert future.result(timeout=60) == 1
        assert pool.submit(torch.get_num_threads).result(timeout=60) == 1
    finally:
        go.set()
        torch.set_num_threads(caller)
