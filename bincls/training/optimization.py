"""The optimizer a run's settings ask for, with parameter groups that keep pretrained features intact.

A pretrained backbone that is fine-tuned never gets the head's learning rate: its rate is a tenth of
it at most, capped (Adam at 1e-3 on a pretrained mobilenet_v2 collapsed to chance in the issue's
measurement; 1e-4 reached 98%), and each earlier layer learns `layer_decay` times slower than the one
after it. Biases and normalization weights get no weight decay, as in timm and torchvision's recipes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bincls.training.config import TrainConfig

BACKBONE_SHARE = 0.1  # a fine-tuned pretrained backbone learns at most this share of the head's rate
BACKBONE_LR_CAP = {"adam": 3e-4, "adamw": 3e-4, "sgd": 3e-3, "sgd-momentum": 3e-3}
DEPTH_LEVELS = 12  # layer-wise decay: the first layer learns layer_decay**DEPTH_LEVELS of the last one's rate


@dataclass
class Optimization:
    optimizer: torch.optim.Optimizer
    note: str | None  # what was done to keep a pretrained backbone safe, for the run's log


def _decays(p: nn.Parameter) -> bool:
    return p.ndim > 1  # weights of convolutions and linear layers; not biases, not norm scales


def _groups(params: list[tuple[nn.Parameter, float]], weight_decay: float) -> list[dict]:
    """One group per distinct (lr, decays) pair, in order."""
    groups: dict[tuple[float, bool], dict] = {}
    for p, lr in params:
        key = (lr, _decays(p))
        groups.setdefault(key, {"params": [], "lr": lr, "weight_decay": weight_decay if key[1] else 0.0})
        groups[key]["params"].append(p)
    return list(groups.values())


Rates = list[tuple[nn.Parameter, float]]


def parameter_rates(model: nn.Module, cfg: TrainConfig) -> tuple[Rates, str | None]:
    """Every trainable parameter with its learning rate."""
    lr = cfg.learning_rate
    backbone = getattr(model, "backbone", None)
    pretrained = bool(getattr(model, "pretrained", False)) and backbone is not None
    trainable_backbone = [p for p in backbone.parameters() if p.requires_grad] if pretrained else []
    if not trainable_backbone:
        return [(p, lr) for p in model.parameters() if p.requires_grad], None
    top = min(lr * BACKBONE_SHARE, BACKBONE_LR_CAP[cfg.optimizer])
    decay = cfg.layer_decay if cfg.layer_decay is not None else 1.0
    n = len(trainable_backbone)
    rates = [(p, top * decay ** (DEPTH_LEVELS * (1 - (i + 1) / n))) for i, p in enumerate(trainable_backbone)]
    ids = {id(p) for p in trainable_backbone}
    rates += [(p, lr) for p in model.parameters() if p.requires_grad and id(p) not in ids]
    note = (
        f"fine-tuning the pretrained backbone at {top:g} at most (the head at {lr:g})"
        + (f", earlier layers slower (layer decay {decay:g})" if decay < 1 else "")
        + ": a higher rate would destroy its features"
    )
    return rates, note


def make_optimizer(cfg: TrainConfig, model: nn.Module) -> Optimization:
    rates, note = parameter_rates(model, cfg)
    wd = cfg.weight_decay or 0.0
    groups = _groups(rates, wd if cfg.optimizer != "adamw" else (wd or 0.01))
    if cfg.optimizer == "adam":
        return Optimization(torch.optim.Adam(groups), note)
    if cfg.optimizer == "adamw":
        return Optimization(torch.optim.AdamW(groups), note)
    if cfg.optimizer == "sgd":
        return Optimization(torch.optim.SGD(groups), note)
    return Optimization(torch.optim.SGD(groups, momentum=0.9, nesterov=True), note)
