"""Training on several processes with torch.distributed, as launched by torchrun.

torchrun (and the SLURM or Kubernetes launchers built on it) sets RANK, LOCAL_RANK and WORLD_SIZE;
without them the run is a plain single process and nothing here does anything. The loop only needs a
few collectives: stop and failure flags, summed training counts, and the gathered validation logits.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import pandas as pd
import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    local_rank: int = 0
    size: int = 1

    @property
    def active(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        """Only the main process writes the run folder, checkpoints and the console."""
        return self.rank == 0


def world_from_env() -> World:
    try:
        size = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError:
        return World()
    return World(rank, local, size) if size > 1 else World()


def start(world: World, device: torch.device) -> torch.device:
    """Join the process group: NCCL between GPUs (one per process), gloo between CPU processes."""
    if not world.active:
        return device
    if device.type == "cuda":
        torch.cuda.set_device(world.local_rank)
        device = torch.device("cuda", world.local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def stop(world: World, together: bool = True) -> None:
    """Leave the process group. `together` (every process got here without failing): wait for the others
    first. A process that left gloo while a peer was still in it aborted the peer at exit now and then
    ("terminate called without an active exception", 1 launch in 6 here). After a failure there is no
    waiting: a peer may never come, and torchrun ends the launch once this process exits."""
    if world.active and dist.is_initialized():
        if together:
            try:
                dist.barrier()
            except RuntimeError:  # a peer failed after its work was done (DistError is one): leave anyway
                pass
        dist.destroy_process_group()


def _comm_device(device: torch.device) -> torch.device:
    return device if dist.get_backend() == "nccl" else torch.device("cpu")


def any_flags(world: World, flags: list[bool], device: torch.device) -> list[bool]:
    """Each flag is true on every rank when it is true on any: one rank's stop or NaN stops all of them
    at the same step, so no rank is left waiting in a collective for a peer that has gone."""
    if not world.active:
        return flags
    t = torch.tensor([float(f) for f in flags], device=_comm_device(device))
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [bool(v) for v in t.tolist()]


def sum_values(world: World, values: list[float], device: torch.device) -> list[float]:
    if not world.active:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=_comm_device(device))
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def min_value(world: World, value: int, device: torch.device) -> int:
    """The smallest of every rank's `value`: one plan that every rank follows."""
    if not world.active:
        return value
    t = torch.tensor([value], dtype=torch.int64, device=_comm_device(device))
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return int(t.item())


def gather(world: World, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Every rank's tensors concatenated in rank order (shards may differ in length)."""
    if not world.active:
        return tensors
    out: list = [None] * world.size
    dist.all_gather_object(out, [t.cpu() for t in tensors])
    return tuple(torch.cat([part[i] for part in out]) for i in range(len(tensors)))


def barrier(world: World) -> None:
    if world.active:
        dist.barrier()


def shard(table: pd.DataFrame, world: World, seed: int, pad: bool) -> pd.DataFrame:
    """This rank's share of a split table, as DistributedSampler deals it: a seeded shuffle, then every
    size-th row. With `pad`, rows repeat so every rank gets the same count and so the same number of
    steps (DDP needs every rank in every backward)."""
    if not world.active:
        return table
    order = torch.randperm(len(table), generator=torch.Generator().manual_seed(seed)).tolist()
    if pad and order:
        per_rank = math.ceil(len(order) / world.size)
        order = (order * world.size)[: per_rank * world.size]
    return table.iloc[order[world.rank :: world.size]].reset_index(drop=True)
