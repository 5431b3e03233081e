"""Learning-rate schedules as a function of training progress, stepped once per batch.

Progress is the share of the planned steps done, or, with a time budget, the share of the budget's
training time used, whichever is further: so a schedule decays to its end exactly when the budget
runs out, however fast the machine is. Each parameter group keeps its own base rate (layer-wise
decay), and every group follows the same curve.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

# torch's OneCycleLR defaults: 30% warm-up from max/25, then a cosine down to max/25/1e4.
ONECYCLE_PCT, ONECYCLE_DIV, ONECYCLE_FINAL_DIV = 0.3, 25.0, 1e4


def lr_factor(kind: str, progress: float, warmup: float = 0.0) -> float:
    """The learning rate as a share of its base at `progress` in [0, 1]; `warmup` is a share too."""
    p = min(max(progress, 0.0), 1.0)
    if warmup > 0 and p < warmup:
        return 0.01 + 0.99 * p / warmup
    if warmup > 0:
        p = (p - warmup) / max(1.0 - warmup, 1e-9)
    if kind == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * p))
    if kind == "onecycle":
        low = 1.0 / ONECYCLE_DIV
        if p < ONECYCLE_PCT:
            return low + (1.0 - low) * (1.0 - math.cos(math.pi * p / ONECYCLE_PCT)) / 2.0
        q = (p - ONECYCLE_PCT) / (1.0 - ONECYCLE_PCT)
        end = low / ONECYCLE_FINAL_DIV
        return end + (1.0 - end) * (1.0 + math.cos(math.pi * q)) / 2.0
    return 1.0


class ProgressSchedule:
    """Sets every group's lr to base x lr_factor(progress()) at each step (and at the start)."""

    def __init__(self, optimizer: torch.optim.Optimizer, kind: str, progress: Callable[[], float],
                 warmup: float = 0.0):  # fmt: skip
        self.optimizer, self.kind, self.progress, self.warmup = optimizer, kind, progress, warmup
        for group in optimizer.param_groups:
            group.setdefault("base_lr", group["lr"])
        self.step()

    def step(self) -> None:
        factor = lr_factor(self.kind, self.progress(), self.warmup)
        for group in self.optimizer.param_groups:
            group["lr"] = group["base_lr"] * factor

    # Nothing to save: the rates follow from the progress, which the run's step and clock give back.
    def state_dict(self) -> dict:
        return {"kind": self.kind}

    def load_state_dict(self, state: dict) -> None:
        self.step()
