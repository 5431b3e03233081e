"""Work shared out among the processes of a `torchrun` launch, as training shares its data.

Each process does every size-th item from its rank (checking files, computing features) into bincls'
caches, then all wait for each other; afterwards every process finds the whole in the caches. Without
torchrun (WORLD_SIZE unset or 1) nothing is shared and torch is not even imported.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def under_torchrun() -> bool:
    return os.environ.get("WORLD_SIZE", "1").strip() not in ("", "0", "1")


def share(items: list[T], work: Callable[[list[T]], object]) -> int | None:
    """Run `work` on this process's share of `items`, then wait for the others; the share's size. None
    (and nothing done) when there is one process."""
    if not under_torchrun():
        return None
    import torch

    from bincls.training.distributed import barrier, start, world_from_env

    world = world_from_env()
    if not world.active:
        return None
    start(world, torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    barrier(world)  # every process has listed `items` before any of them works: the lists are the same
    mine = items[world.rank :: world.size]
    work(mine)
    barrier(world)
    return len(mine)


def leave() -> None:
    """Leave the process group once the shared passes are done, all processes together (an unsynchronised
    exit from gloo aborted a process now and then: see bincls.training.distributed.stop)."""
    if not under_torchrun():
        return
    from bincls.training.distributed import stop, world_from_env

    stop(world_from_env())
