"""Run a model over batches and collect its logits: shared by validation, evaluation and prediction."""

from __future__ import annotations

import torch
from torch import nn

from bincls.compute import ComputePlan


@torch.no_grad()
def predict_logits(
    model: nn.Module, batches, plan: ComputePlan, forward=None
) -> tuple[torch.Tensor, torch.Tensor]:
    """All logits and labels of an iterable of (x, y) batches, in order."""
    model.eval()
    outs, labels = [], []
    for x, y in batches:
        x = x.to(plan.device, non_blocking=True)
        if plan.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with plan.autocast():
            out = forward(model, x) if forward else model(x)
        outs.append(out.float().cpu().view(-1))
        labels.append(y.cpu().view(-1))
    if not outs:
        return torch.empty(0), torch.empty(0)
    return torch.cat(outs), torch.cat(labels)
