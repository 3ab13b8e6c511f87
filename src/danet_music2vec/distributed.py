"""Data-parallel training under ``torchrun``: the process group, ranks, shards and reductions.

``torchrun`` (``torch.distributed.run``) starts N copies of a stage script and tells each
its ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` in the environment. :func:`join` turns
that into a :class:`World`: one process group (NCCL on GPUs, gloo on CPUs), the
device of this rank (``cuda:LOCAL_RANK``), and the few collective operations the
trainers need. Started without ``torchrun``, the world is one process and every
operation is a no-op, so the trainers have a single code path.

The trainers keep the meaning of their params whatever the number of processes:
``batch_size`` is the GLOBAL batch, split evenly over the ranks, and DDP averages the
ranks' gradients, so N processes take the same optimizer steps as one process with
the whole batch (the learning rate needs no scaling). Every rank draws the same
examples' seeds and mixes only its own share (as ``DistributedSampler`` shares one
permutation), and each rank has its own dropout seed derived from the run seed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import overload

import torch
import torch.distributed as dist
from torch import nn

from danet_music2vec.devices import resolve_device
from danet_music2vec.errors import DeviceError
from danet_music2vec.params import ParamError

_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE")


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (one process: rank 0 of 1)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        """Rank 0 writes checkpoints, outputs and MLflow records; the others only compute."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def share(self, items: Sequence, key: str = "batch_size") -> Sequence:
        """This rank's contiguous share of ``items`` (a global batch); the shares must be equal.

        Equal shares make DDP's mean of the ranks' gradients the gradient of the whole batch.
        """
        if len(items) % self.size:
            raise ParamError(
                f"{key}={len(items)} is not divisible by the {self.size} training processes; "
                f"use a multiple of {self.size} (the batch is global and split evenly over the processes)"
            )
        per_rank = len(items) // self.size
        return items[self.rank * per_rank : (self.rank + 1) * per_rank]

    @overload
    def sum(self, values: torch.Tensor) -> torch.Tensor: ...
    @overload
    def sum(self, values: Sequence[float]) -> list[float]: ...

    def sum(self, values: torch.Tensor | Sequence[float]) -> torch.Tensor | list[float]:
        """Element-wise sum over the ranks: of a tensor (returned where it came from), or of floats (in float64)."""
        if isinstance(values, torch.Tensor):
            if not self.distributed:
                return values
            total = values.to(self.device, copy=True)  # NCCL reduces GPU tensors only
            dist.all_reduce(total)
            return total.to(values.device)
        if not self.distributed:
            return [float(v) for v in values]
        return self.sum(torch.tensor(list(values), dtype=torch.float64)).tolist()

    def wrap(self, model: nn.Module, find_unused_parameters: bool = False) -> nn.Module:
        """``model`` in DistributedDataParallel when there are several ranks (rank 0's weights are broadcast)."""
        if not self.distributed:
            return model
        ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=find_unused_parameters)

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DistributedDataParallel wrapper (for evaluation and saving)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def launched() -> bool:
    """Whether this process was started by ``torchrun`` (its environment names a rank and a world size)."""
    return all(name in os.environ for name in _ENV)


@contextmanager
def join(device: str) -> Iterator[World]:
    """The :class:`World` of this process; with ``torchrun``'s environment, inside its process group.

    ``device`` is ``auto | cpu | cuda``. Under ``torchrun`` on
    GPUs each rank takes ``cuda:LOCAL_RANK`` and the NCCL backend; on CPUs gloo.
    """
    resolved = resolve_device(device)
    if not launched() or int(os.environ["WORLD_SIZE"]) == 1:
        yield World(device=resolved)
        return
    rank, local_rank, size = (int(os.environ[name]) for name in _ENV)
    if resolved.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise DeviceError(
                f"torchrun started {size} processes but this machine has {torch.cuda.device_count()} GPU(s); "
                "lower --nproc_per_node (or the nproc param) or train on the CPU (device: cpu)"
            )
        resolved = torch.device("cuda", local_rank)
        torch.cuda.set_device(resolved)
    dist.init_process_group("nccl" if resolved.type == "cuda" else "gloo")
    try:
        yield World(rank=rank, size=size, local_rank=local_rank, device=resolved)
    finally:
        dist.destroy_process_group()


def relaunch(script: str | os.PathLike[str], nproc: int) -> None:
    """With ``nproc > 1`` and not under ``torchrun`` yet: run ``script`` under it and exit with its status.

    A stage calls this first, so ``dvc repro`` keeps its plain ``python stages/...`` commands
    and ``torchrun ... stages/<stage>.py`` typed by hand is not started twice.
    """
    if nproc > 1 and not launched():
        sys.exit(torchrun(script, nproc))


def torchrun(script: str | os.PathLike[str], nproc: int, args: Sequence[str] = ()) -> int:
    """Run ``script`` as ``torchrun --standalone --nproc_per_node=nproc script args``; its exit status.

    See :func:`relaunch`.
    """
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", str(script), *args]
    return subprocess.call(command)
