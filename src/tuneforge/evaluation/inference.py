"""Batched inference over encoded examples, sorted by length so batches carry little padding.

``workers`` > 1 runs whole forward passes side by side, one per thread, each thread with one intra-op thread
("data parallel" inside one process), instead of one pass at a time with every matmul split across the cores.
A classifier's passes are small (32 tweets x 30 tokens): split over 2 cores they scale poorly, run side by side
they scale almost fully, and the CPU time per text is unchanged (MiniLM bf16, one thread: 233-242 texts per
CPU-second either way). The threads share the model: inference does not change it.
"""

from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn

from tuneforge.errors import TuneforgeError
from tuneforge.models.precision import Precision, autocast
from tuneforge.training.batching import Encoded, batch_order, collate

PARALLEL = ("batches", "ops")
T = TypeVar("T")

# workers > 1: at most this many texts per pass and thread. One thread's speed is flat from 8 to 64 texts per
# pass and drops by a fifth at 128, once a pass's activations leave the core's cache (MiniLM ONNX int8, one
# thread: 379 / 362 / 356 / 351 / 283 texts per CPU-second at 8 / 16 / 32 / 64 / 128).
THREAD_PASS_TEXTS = 32
_pools: dict[int, ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()
_thread_states = threading.local()


def check_parallel(parallel: str) -> None:
    if parallel not in PARALLEL:
        raise TuneforgeError(f'parallel "{parallel}": use "batches" (each core runs its own forward passes) '
                             'or "ops" (every forward pass split across the cores).')


def thread_state(owner: object) -> dict[str, Any]:
    """The calling thread's scratch dict for ``owner`` (a model, a hook's state object): what one step of a
    forward pass hands on to a later step of the same pass. Passes run side by side on one model (``workers``
    > 1), so such state must not live on the shared model. Kept outside ``owner`` (a model with a
    ``threading.local`` attribute could not be deep-copied) and weakly (it goes when ``owner`` does)."""
    states = getattr(_thread_states, "states", None)
    if states is None:
        states = _thread_states.states = weakref.WeakKeyDictionary()
    return states.setdefault(owner, {})


class PerThread:
    """An attribute whose value is kept per thread, in :func:`thread_state` (``mask = PerThread()`` in a class
    body); None until the calling thread sets it."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: object, objtype: type | None = None) -> Any:
        return self if obj is None else thread_state(obj).get(self.name)

    def __set__(self, obj: object, value: Any) -> None:
        thread_state(obj)[self.name] = value


def pass_size(batch_size: int, texts: int, workers: int) -> int:
    """Texts per forward pass: ``batch_size``, or with ``workers`` > 1 at most ``THREAD_PASS_TEXTS`` and small
    enough that every worker gets a pass (a serving micro-batch is cut into one slice per core)."""
    if workers <= 1:
        return batch_size
    return max(1, min(batch_size, THREAD_PASS_TEXTS, math.ceil(texts / workers)))


def _one_intra_op_thread() -> None:
    # torch sets a thread's count lazily, at its first parallel op or get_num_threads(), from the process-wide
    # default, unless that first call already happened: without it, a pool thread whose first pass came after
    # side_by_side() had put the caller's default back (2, say) would take 2 threads then and for good (4
    # threads on 2 cores; a fresh clone's test saw it). So: the lazy step first, then one thread.
    torch.get_num_threads()
    torch.set_num_threads(1)


def inference_pool(workers: int) -> ThreadPoolExecutor:
    """A process-wide pool of ``workers`` threads, each running torch with one intra-op thread.

    ``torch.set_num_threads`` called in a thread sets that thread's own OpenMP and MKL thread counts
    (``omp_set_num_threads`` / ``mkl_set_num_threads_local``) and, as a side effect, the default of threads
    started later; :func:`predict_proba` puts that default back after each parallel call, so no other thread
    of the process (the caller's included) loses its cores."""
    with _pools_lock:
        if workers not in _pools:
            _pools[workers] = ThreadPoolExecutor(workers, thread_name_prefix="tuneforge-infer",
                                                 initializer=_one_intra_op_thread)
        return _pools[workers]


def side_by_side(forward: Callable[[list[int]], T], batches: Sequence[list[int]], workers: int) -> list[T]:
    """``forward`` of every batch: on the calling thread when ``workers`` is 1 or there is one batch, else on
    :func:`inference_pool`, longest batches first (``batch_order`` sorts by length) so no thread is left with a
    long one at the end. Results come in that order; an error in a pass is raised here."""
    if workers <= 1 or len(batches) <= 1:
        return [forward(batch) for batch in batches]
    threads = torch.get_num_threads()
    try:
        return list(inference_pool(workers).map(forward, batches[::-1]))
    finally:
        torch.set_num_threads(threads)  # the default for threads started later (inference_pool)


@torch.inference_mode()
def predict_proba(model: nn.Module, data: Encoded, *, batch_size: int = 64, precision: Precision = "fp32",
                  device: torch.device | str = "cpu", pad_id: int = 0, padding_side: str = "right",
                  workers: int = 1) -> np.ndarray:
    """Class probabilities, shape (N, C), in the order of ``data``. ``workers`` > 1 (CPU only): that many
    forward passes at once, one thread each (module docstring)."""
    was_training = model.training
    model.eval()
    parallel = workers > 1 and torch.device(device).type == "cpu" and len(data) > 1
    size = pass_size(batch_size, len(data), workers if parallel else 1)
    batches = batch_order(data.lengths(), size, seed=0, shuffle=False, group_by_length=True)

    @torch.inference_mode()  # inference mode is per thread: the pool's threads need it too
    def forward(batch: list[int]) -> tuple[list[int], np.ndarray]:
        inputs = collate(data, batch, pad_id, padding_side)
        inputs.pop("labels")
        inputs = {k: v.to(device) for k, v in inputs.items()}
        with autocast(precision, device):
            logits = model(**inputs).logits
        return batch, torch.softmax(logits.float(), dim=-1).cpu().numpy()

    try:
        results = side_by_side(forward, batches, workers if parallel else 1)
    finally:
        model.train(was_training)
    if not results:
        return np.zeros((0, 0), dtype=np.float32)
    out = np.zeros((len(data), results[0][1].shape[1]), dtype=np.float32)
    for batch, probs in results:
        out[batch] = probs
    return out
