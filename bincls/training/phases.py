"""The phases of a run: "head" trains only the new head on the frozen pretrained backbone (its features
computed once), "main" trains what the settings say (the whole network, or the head of a fixed
feature extractor). Each phase has its own batches, optimizer and schedule.
"""

from __future__ import annotations

import os

import pandas as pd
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from bincls.data.batch_feeds import prepare_training_data
from bincls.data.dataset import DataSource
from bincls.data.decode_cache import parse_bytes
from bincls.data.transforms import Augment, Preprocess
from bincls.training.distributed import World, shard
from bincls.training.optimization import make_optimizer
from bincls.training.schedule import ProgressSchedule
from bincls.training.state import TrainingState

# Crops keep at least this share of the image in training from scratch: a small dataset needs the
# variety (bench/recipes.py); a pretrained backbone keeps the milder default.
SCRATCH_CROP_SCALE = (0.35, 1.0)


def loader_workers(requested: int | None) -> int | None:
    """Data loader workers: as asked, but never more than the cores (64 on 2 cores made 147 processes and
    ran 4x slower); None lets the loader choose from the core count."""
    if requested is None:
        return None
    return min(requested, os.cpu_count() or 1)


class _Net(nn.Module):
    """The model as the batches feed it (whole images or cached features), so that DDP wraps the part
    that runs and its gradient hooks fire."""

    def __init__(self, model: nn.Module, forward):
        super().__init__()
        self.model, self._forward = model, forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._forward(self.model, x)


def head_epochs(state: TrainingState) -> int:
    """Epochs of the head phase: only when a pretrained backbone is fine-tuned."""
    cfg, model = state.cfg, state.model
    staged = getattr(model, "pretrained", False) and not cfg.freeze_backbone and hasattr(model, "backbone")
    return min(cfg.head_epochs or 0, cfg.epochs - 1) if staged else 0


def first_phase(state: TrainingState, last: dict | None) -> str:
    return "head" if state.epoch < head_epochs(state) else "main"


def _augment(state: TrainingState, phase: str) -> Augment:
    if phase == "head" or not state.cfg.augment:
        return Augment.none()
    if getattr(state.model, "pretrained", False):
        return Augment()
    return Augment(scale=SCRATCH_CROP_SCALE, rotation=0.0, color_jitter=0.2)


def _sharded(data: DataSource, world: World, seed: int) -> DataSource:
    """This process's share of train and val; the others keep the whole test split (unused here)."""
    if not world.active:
        return data
    parts = [
        shard(data.part("train"), world, seed, pad=True),
        shard(data.part("val"), world, seed, pad=False),
        data.part("test"),
    ]
    return DataSource(data.scan, pd.concat(parts, ignore_index=True), data.split_config)


def _set_frozen(model: nn.Module, frozen: bool) -> None:
    if not hasattr(model, "backbone") or not getattr(model, "pretrained", False):
        return
    if frozen:
        model.freeze_backbone()
    else:
        model.backbone.requires_grad_(True)
        model.train(model.training)  # re-apply the BatchNorm rule of a pretrained backbone


def enter_phase(state: TrainingState, phase: str) -> None:
    """Batches, optimizer and schedule for `phase`, starting at the run's current step."""
    cfg, world, emit = state.cfg, state.world, state.emit
    frozen = phase == "head" or bool(cfg.freeze_backbone)
    _set_frozen(state.model, frozen)
    if state.feed is not None and state.feed is not state.frozen_feed:  # the previous phase's batches go
        state.feed.close()  # before the new ones load (cached features are kept for calibration)
    state.phase, state.feed = phase, None
    state.step_s = state.last_val_s = None  # the time budget plans each phase at its own pace
    emit("message", "preparing the images" if phase == "main" else "computing the backbone's features")
    mcfg = state.mcfg
    pre = Preprocess(mcfg.img_size, tuple(mcfg.mean), tuple(mcfg.std))
    extractor = state.model if frozen and hasattr(state.model, "forward_features") else None
    batch_size = max(1, cfg.batch_size // world.size)  # the global batch: each process takes a share
    budget = parse_bytes(cfg.memory_budget) if cfg.memory_budget else None
    state.feed = prepare_training_data(
        _sharded(state.data, world, cfg.seed), pre, _augment(state, phase), batch_size,
        cfg.seed + world.rank + (1000 if phase == "main" else 0), state.device,
        workers=loader_workers(cfg.workers),
        frozen_model=extractor, model_name=cfg.model, channels_last=state.plan.channels_last, budget=budget,
        progress=lambda what, done, total: emit("preparing", what, done, total),
    )  # fmt: skip
    emit("message", state.feed.message)
    if state.feed.val_views is not None:
        state.frozen_feed = state.feed
        state.fp32_image_s = state.feed.fp32_image_s
    if not frozen:
        state.fine_tuned_after = state.epoch
    if world.active:
        emit("message", f"{world.size} processes ({dist.get_backend()}), {batch_size} images per process "
                        "and step; each holds its own share of the training images")  # fmt: skip
    state.net = _Net(state.model, state.feed.forward)
    if world.active:
        state.net = DDP(state.net, device_ids=[state.device.index] if state.device.type == "cuda" else None)
    optimization = make_optimizer(cfg, state.model)
    if optimization.note and phase == "main":
        emit("message", optimization.note)
    state.optimizer = optimization.optimizer
    _schedule(state, phase)
    state.scaler = torch.amp.GradScaler("cuda", enabled=state.plan.grad_scaling)


def _schedule(state: TrainingState, phase: str) -> None:
    """The phase's schedule over its planned steps (`_replan` in the loop shortens them to a time budget)."""
    cfg, steps = state.cfg, state.steps_per_epoch
    n_head = head_epochs(state)
    before, epochs = (0, n_head) if phase == "head" else (n_head, state.epochs - n_head)
    state.phase_start_step, state.phase_steps = before * steps, max(epochs * steps, 1)
    state.skip_steps = min(max(state.global_step - state.epoch * steps, 0), steps)

    def progress() -> float:
        return (state.global_step - state.phase_start_step) / state.phase_steps

    kind = "cosine" if phase == "head" else cfg.schedule
    warmup = (cfg.warmup_epochs or 0.0) / max(epochs, 1) if phase == "main" else 0.0
    state.scheduler = ProgressSchedule(state.optimizer, kind, progress, min(warmup, 0.5))
