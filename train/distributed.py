"""DDP under torchrun with no code change: initialise from the environment when ``WORLD_SIZE`` > 1.

``torchrun --nproc_per_node N -m shrinkface.train.cli CONFIG`` (or ``python -m torch.distributed.run …``)
sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT; gloo is used on the CPU, nccl on CUDA. A single process
(no WORLD_SIZE) runs exactly the same code path with rank 0 of 1.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from shrinkface.train.config import ConfigError


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job."""

    rank: int
    world: int
    local_rank: int
    device: torch.device

    @property
    def main(self) -> bool:
        """True on the process that writes logs and checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``cpu``, ``cuda`` (this process's GPU) or ``auto``; asking for an absent GPU is a ``ConfigError``."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("device cuda was asked for, but torch sees no CUDA GPU (use --device cpu)")
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    if name != "cpu":
        raise ConfigError(f"unknown device {name!r} (cpu, cuda or auto)")
    return torch.device("cpu")


def init_distributed(device: str) -> DistInfo:
    """Join the torchrun job if there is one (idempotent); returns rank, world size and device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, timeout=timedelta(hours=2))
    return DistInfo(rank, world, local_rank, dev)


def barrier(info: DistInfo) -> None:
    """Wait for every process (no-op alone)."""
    if info.distributed:
        if info.device.type == "cuda":
            dist.barrier(device_ids=[info.device.index])
        else:
            dist.barrier()


def broadcast_buffers(module: torch.nn.Module, info: DistInfo) -> None:
    """Copy rank 0's buffers (BatchNorm statistics) to every process, so all end with identical state."""
    if info.distributed:
        for buf in module.buffers():
            dist.broadcast(buf, 0)


def shutdown(info: DistInfo) -> None:
    """Leave the process group."""
    if info.distributed and dist.is_initialized():
        dist.destroy_process_group()
