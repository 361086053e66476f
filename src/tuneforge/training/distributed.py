"""Scale-out: the same training loop in N processes under ``torchrun``, with PyTorch DDP.

    torchrun --nproc_per_node 2 -m tuneforge train CONFIG.yaml [key=value ...]

torchrun starts N copies of the command and gives each its ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``. Each
copy builds the same model from the same seed and reads the same data; :func:`start` joins them in a process
group (gloo on CPU, NCCL on GPUs, one GPU per process). Then, for every optimizer step:

    the global batch: train.batch_size examples, batch_order(seed, epoch), the same list on every rank
      -> rank r takes its contiguous slice of each micro-batch, batch_size / N examples (:func:`shard`)
      -> forward/backward of the slice; DDP all-reduces (averages) the gradients on the step's last backward
      -> every rank takes the same optimizer step from the same gradients: the weights stay identical

The slices are weighted so that the averaged gradient is the one-process gradient of the whole batch: rank
r's mean loss over its slice is scaled by N * |slice_r| / |step's examples| (DDP divides the summed gradients
by N). For losses that are a mean over examples (cross-entropy, label smoothing, R-Drop, FGM/PGD) the result
is one process's, up to floating-point summation order; a rank with an empty slice (a last batch smaller than
N) runs one example at weight 0 so that it still joins the all-reduce.

Rank 0 alone evaluates (:func:`on_main` sends the metrics to every rank, so all ranks make the same
early-stopping decision at the same step) and writes the run folder: log, checkpoints, plots, model.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from tuneforge.errors import TuneforgeError

T = TypeVar("T")


@dataclass(frozen=True)
class World:
    """This process's place among the processes torchrun started (one process: rank 0 of 1)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.size > 1


def world() -> World:
    if not (dist.is_available() and dist.is_initialized()):
        return World()
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def is_main() -> bool:
    """True in a single process and on rank 0: the process that writes files and prints."""
    return world().is_main


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def start(device: torch.device, batch_size: int) -> torch.device:
    """Under torchrun (``WORLD_SIZE`` > 1): join the process group, gloo for a CPU device and NCCL for CUDA,
    and return this process's device (``cuda`` becomes ``cuda:LOCAL_RANK``). A process group the caller
    already made is used as it is. Without torchrun: ``device`` unchanged."""
    if not launched_by_torchrun() and not dist.is_initialized():
        return device
    if device.type == "cuda":
        if device.index is not None and device.index != int(os.environ.get("LOCAL_RANK", "0")):
            raise TuneforgeError(f'train.device = "{device}" puts every process on the same GPU; under torchrun set '
                                 "train.device=auto or cuda, and each process takes the GPU of its LOCAL_RANK.")
        local_rank, gpus = int(os.environ.get("LOCAL_RANK", "0")), torch.cuda.device_count()
        if local_rank >= gpus:  # torch.cuda.set_device would fail with "invalid device ordinal"
            if not gpus:
                raise TuneforgeError(f'train.device = "{device}", but this machine has no GPU that torch can use; '
                                     "under torchrun set train.device=cpu (gloo) or auto.")
            processes = os.environ.get("LOCAL_WORLD_SIZE", str(local_rank + 1))
            raise TuneforgeError(f'train.device = "{device}": torchrun started {processes} processes on this machine, '
                                 f"one per GPU, but it has {gpus} GPU(s), none left for process {local_rank}. Use "
                                 f"--nproc_per_node {gpus} (or fewer), or train.device=cpu for gloo on the CPU.")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        atexit.register(_destroy)
    check_global_batch(batch_size, world().size)
    return device


def check_global_batch(batch_size: int, processes: int) -> None:
    if batch_size % processes:
        lower, upper = batch_size - batch_size % processes, batch_size + processes - batch_size % processes
        options = f"{lower} or {upper}" if lower else f"{upper}"
        raise TuneforgeError(f"train.batch_size = {batch_size} is the global batch, split evenly across the "
                             f"{processes} processes torchrun started, and {batch_size} is not divisible by "
                             f"{processes}. Use train.batch_size={options}, or a --nproc_per_node that divides "
                             f"{batch_size}.")


def run_info() -> dict:
    """For run.json: how many processes trained the run, and over which backend (nothing for one process)."""
    w = world()
    return {"distributed": {"processes": w.size, "backend": dist.get_backend()}} if w.enabled else {}


def _destroy() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    w = world()
    if not w.enabled:
        return
    if dist.get_backend() == "nccl":
        dist.barrier(device_ids=[torch.cuda.current_device()])
    else:
        dist.barrier()


def on_main(compute: Callable[[], T]) -> T:
    """``compute()`` on rank 0, its (picklable) result sent to every rank; one process: ``compute()``."""
    if not world().enabled:
        return compute()
    box = [compute() if is_main() else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]  # type: ignore[return-value]


def sum_over_ranks(*values: float) -> tuple[float, ...]:
    """The sums of ``values`` over all ranks (one small all-reduce; one process: the values)."""
    if not world().enabled:
        return values
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else None
    total = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(total)
    return tuple(total.tolist())


@dataclass(frozen=True)
class Shard:
    indices: list[int]  # this rank's examples of the micro-batch
    share: float  # their share of the optimizer step's examples (0 for a stand-in)
    weight: float  # what their mean loss is scaled by: share x world size (DDP averages over ranks)


def shard(indices: list[int], step_samples: int) -> Shard:
    """This rank's contiguous slice of one global micro-batch (the whole batch in one process). Slices differ
    in size by at most one example when the batch does not split evenly (the last batch of an epoch)."""
    w = world()
    if not w.enabled:
        share = len(indices) / step_samples
        return Shard(list(indices), share, share)
    per, extra = divmod(len(indices), w.size)
    begin = w.rank * per + min(w.rank, extra)
    mine = list(indices[begin:begin + per + (1 if w.rank < extra else 0)])
    if not mine:  # fewer examples than ranks: one example at weight 0 keeps this rank in the all-reduce
        return Shard(list(indices[:1]), 0.0, 0.0)
    share = len(mine) / step_samples
    return Shard(mine, share, share * w.size)


def decorrelate_dropout(seed: int, step: int) -> None:
    """Reseed ranks other than 0 (rank 0 keeps the one-process random stream): from one seed every rank would
    draw the same dropout masks for its different examples. A function of (seed, step, rank), so a resumed
    run draws what it drew before."""
    w = world()
    if w.enabled and not w.is_main:
        torch.manual_seed((seed * 1_000_003 + step * 1_009 + w.rank) % 2**63)


def wrap(model: nn.Module, device: torch.device, probe: Callable[[], torch.Tensor]) -> nn.Module:
    """``model`` in DistributedDataParallel under torchrun (itself otherwise). ``probe()`` returns one small
    batch's loss: its backward, run once before wrapping (random state kept), finds trainable parameters
    that get no gradient, and only then is DDP's slower ``find_unused_parameters`` search switched on.
    Frozen parameters (LoRA's base) are no concern: DDP leaves out parameters that do not require grad."""
    if not world().enabled:
        return model
    unused = unused_parameters(model, device, probe)
    (any_unused,) = sum_over_ranks(float(bool(unused)))
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                   find_unused_parameters=any_unused > 0, broadcast_buffers=False)


def unused_parameters(model: nn.Module, device: torch.device, probe: Callable[[], torch.Tensor]) -> list[str]:
    """Names of trainable parameters that ``probe()``'s backward leaves without a gradient."""
    devices = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):  # the probe's dropout masks must not shift the run's
        probe().backward()
    unused = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    model.zero_grad(set_to_none=True)
    return unused


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside DDP (the model itself when not wrapped)."""
    return model.module if isinstance(model, DistributedDataParallel) else model


def accumulating(model: nn.Module, last: bool) -> AbstractContextManager:
    """Gradients of the step's earlier micro-batches stay local; the last micro-batch's backward all-reduces
    the sum (DDP's ``no_sync``, which saves one all-reduce per accumulated micro-batch)."""
    if last or not isinstance(model, DistributedDataParallel):
        return nullcontext()
    return model.no_sync()


def local_pass(model: nn.Module) -> Callable[[], AbstractContextManager]:
    """A context for forward passes whose backward reaches only the inputs (PGD's ascent steps take the
    gradient of the embeddings' perturbation, none of the parameters'): DDP must not wait for an all-reduce."""
    return model.no_sync if isinstance(model, DistributedDataParallel) else nullcontext
