"""Everything a run needs before its first step: data, model, feeds, optimizer, schedule, callbacks.

`setup` returns a `TrainingState`; with `resume` it continues from the run's last.pt (weights,
optimizer, schedule, step, callbacks) on the split the run started with.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from bincls.compute import ComputePlan, device_info, plan_compute, resolve_device
from bincls.data.batch_feeds import TrainingData, prepare_training_data
from bincls.data.dataset import DataSource, load_data
from bincls.data.decode_cache import parse_bytes
from bincls.data.split import SplitConfig, load_split, save_split
from bincls.data.transforms import Augment, Preprocess
from bincls.errors import BinclsError
from bincls.models import (
    ModelConfig,
    build_model,
    format_summary,
    model_config,
    model_summary,
    trainable_parameters,
)
from bincls.models.checkpoint import make_checkpoint, read_checkpoint
from bincls.training.callbacks import BestCheckpoint, Callback, EarlyStopping, default_callbacks
from bincls.training.config import TrainConfig
from bincls.training.distributed import World, barrier, shard
from bincls.training.distributed import start as start_world
from bincls.training.events import Emitter
from bincls.training.optimization import make_optimizer, make_scheduler
from bincls.training.run_folder import RunFolder


@dataclass
class TrainingState:
    """What the loop works on; `epoch` and `global_step` count what is done so far."""

    cfg: TrainConfig
    run: RunFolder | None  # None on the other processes of a distributed run
    world: World
    device: torch.device
    data: DataSource
    mcfg: ModelConfig
    model: nn.Module
    net: nn.Module  # the model as the feed drives it, DDP-wrapped under torchrun
    feed: TrainingData
    plan: ComputePlan
    loss_fn: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object | None
    scaler: torch.amp.GradScaler
    pos_weight: float
    emit: Emitter
    callbacks: list[Callback] = field(default_factory=list)
    epoch: int = 0
    global_step: int = 0
    skip_steps: int = 0  # steps of the first epoch already done before a resume
    epoch_times: list[float] = field(default_factory=list)

    @property
    def steps_per_epoch(self) -> int:
        return len(self.feed.train)

    @property
    def best(self) -> BestCheckpoint:
        return next(c for c in self.callbacks if isinstance(c, BestCheckpoint))

    def checkpoint(self, **extra) -> dict:
        return make_checkpoint(
            self.model, self.mcfg, self.data.class_names, pos_weight=self.pos_weight,
            train_config=self.cfg.to_dict(), **extra,
        )  # fmt: skip

    def save(self, name: str, ckpt: dict) -> None:
        if self.world.is_main:
            self.emit("checkpoint_saved", name.removesuffix(".pt"), self.run.save_checkpoint(name, ckpt))

    def save_last(self, epochs_done: int, **extra) -> None:
        """last.pt: the weights plus what resuming needs (optimizer, schedule, step, callbacks)."""
        self.save("last.pt", self.checkpoint(
            optimizer=self.optimizer.state_dict(),
            scheduler=self.scheduler.state_dict() if self.scheduler else None,
            global_step=self.global_step, epochs_done=epochs_done,
            callbacks={c.name: c.state_dict() for c in self.callbacks}, **extra,
        ))  # fmt: skip


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class _Net(nn.Module):
    """The model as the batches feed it (whole images or cached features), so that DDP wraps the part
    that runs and its gradient hooks fire."""

    def __init__(self, model: nn.Module, forward):
        super().__init__()
        self.model, self._forward = model, forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._forward(self.model, x)


def setup(
    cfg: TrainConfig, run: RunFolder | None, emit: Emitter, world: World, resume: bool
) -> TrainingState:
    seed_everything(cfg.seed)
    device = start_world(world, resolve_device(cfg.device))
    last = read_checkpoint(run.last_checkpoint) if resume and run.last_checkpoint.exists() else None
    data = _data(cfg, run, emit, world, resume)
    mcfg = model_config(
        cfg.model, img_size=cfg.img_size, weights=cfg.weights, freeze_backbone=cfg.freeze_backbone
    )
    model = build_model(mcfg).to(device)
    if last:
        model.load_state_dict(last["state_dict"])
    summary = model_summary(model, mcfg.img_size)
    plan = plan_compute(device, cfg.model, cfg.precision)
    if plan.channels_last:
        model = model.to(memory_format=torch.channels_last)
    feed = _feed(cfg, data, mcfg, model, plan, world, emit)
    counts = data.counts()["train"]
    n_neg, n_pos = counts[data.class_names[0]], counts[data.class_names[1]]
    pos_weight = (n_neg / n_pos) if (cfg.balance and n_pos) else 1.0
    net: nn.Module = _Net(model, feed.forward)
    if world.active:
        net = DDP(net, device_ids=[device.index] if device.type == "cuda" else None)
    opt = make_optimizer(cfg, trainable_parameters(model))
    state = TrainingState(
        cfg, run, world, device, data, mcfg, model, net, feed, plan,
        nn.BCEWithLogitsLoss(pos_weight=torch.tensor(pos_weight, device=device)), opt,
        make_scheduler(cfg, opt, len(feed.train) * cfg.epochs),
        torch.amp.GradScaler("cuda", enabled=plan.grad_scaling), pos_weight, emit,
        default_callbacks(cfg.patience),
    )  # fmt: skip
    if resume:
        _resume(state, last)
    emit("run_started", _run_info(state, summary))
    if resume:
        emit(
            "resumed", {"epoch": state.epoch, "global_step": state.global_step, "from_checkpoint": bool(last)}
        )
    return state


def _data(cfg: TrainConfig, run: RunFolder | None, emit: Emitter, world: World, resume: bool) -> DataSource:
    emit("message", "checking the image files")
    split_cfg = SplitConfig(*cfg.split, seed=cfg.seed)
    for main_turn in (True, False):  # rank 0 scans first; the others then read its scan cache, not race it
        if world.is_main == main_turn:
            data = load_data(cfg.data, cfg.class_names, split_cfg)
        barrier(world)
    if resume and run.split_path.exists():
        return _saved_split(data, run, emit)
    if world.is_main:
        save_split(data.split, run.split_path)
    return data


def _saved_split(data: DataSource, run: RunFolder, emit: Emitter) -> DataSource:
    """A resumed run trains on the split it started with, not on a fresh one."""
    split = load_split(run.split_path)
    gone = ~split["path"].map(os.path.exists)
    if gone.any():
        emit("message", f"{int(gone.sum())} file(s) of the saved split are gone; resuming without them")
        split = split[~gone].reset_index(drop=True)
    return DataSource(data.scan, split, data.split_config)


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


def _feed(cfg, data, mcfg, model, plan, world: World, emit: Emitter) -> TrainingData:
    emit("message", "preparing the images")
    pre = Preprocess(mcfg.img_size, tuple(mcfg.mean), tuple(mcfg.std))
    frozen = model if (mcfg.freeze_backbone and hasattr(model, "forward_features")) else None
    # --batch-size is the global batch: N processes take a share each, so settings carry over unchanged.
    batch_size = max(1, cfg.batch_size // world.size)
    budget = parse_bytes(cfg.memory_budget) if cfg.memory_budget else None
    feed = prepare_training_data(
        _sharded(data, world, cfg.seed), pre, Augment() if cfg.augment else Augment.none(), batch_size,
        cfg.seed + world.rank, plan.device, workers=cfg.workers, frozen_model=frozen, model_name=cfg.model,
        channels_last=plan.channels_last, budget=budget,
    )  # fmt: skip
    emit("message", feed.message)
    if world.active:
        emit(
            "message",
            f"{world.size} processes ({dist.get_backend()}), {batch_size} images per process and step; "
            "each holds its own share of the training images",
        )
    return feed


def _resume(state: TrainingState, last: dict | None) -> None:
    """Continue from last.pt: optimizer, schedule, step, and the callbacks' state."""
    run, cfg = state.run, state.cfg
    if last is None:
        return  # killed before its first checkpoint: start over in the same folder
    state.optimizer.load_state_dict(last["optimizer"])
    if state.scheduler is not None and last.get("scheduler"):
        state.scheduler.load_state_dict(last["scheduler"])
    state.epoch = int(last.get("epochs_done", last.get("epoch", 0)))
    state.global_step = int(last.get("global_step", 0))
    if state.epoch >= cfg.epochs:
        raise BinclsError(f"Run {run.id} has already trained all {cfg.epochs} epochs: nothing to resume.")
    state.best.restore(run.best_checkpoint, state.epoch)
    saved = last.get("callbacks") or {}
    for callback in state.callbacks:
        if callback.name in saved and not isinstance(callback, BestCheckpoint):  # best.pt is the truth
            callback.load_state_dict(saved[callback.name])
        elif isinstance(callback, EarlyStopping):  # a last.pt from before callbacks kept their state
            callback.bad_epochs = state.epoch - (state.best.epoch or 0)
    state.epoch_times = [
        r["epoch_time"] for r in run.read_metrics() if r.get("kind") == "epoch" and r["epoch"] <= state.epoch
    ]
    # A run stopped mid-epoch resumes mid-epoch, so the schedule ends exactly where it was planned to.
    state.skip_steps = min(
        max(state.global_step - state.epoch * state.steps_per_epoch, 0), state.steps_per_epoch
    )


def _run_info(state: TrainingState, summary) -> dict:
    data, cfg = state.data, state.cfg
    return {
        "run_id": state.run.id if state.run else None,
        "model": cfg.model,
        "epochs": cfg.epochs,
        "img_size": state.mcfg.img_size,
        "class_names": data.class_names,
        "train_images": len(data.part("train")),  # all of them, not this process's share
        "val_images": len(data.part("val")),
        "data_mode": state.feed.mode,
        "data_message": state.feed.message,
        "precision": state.plan.precision,
        "channels_last": state.plan.channels_last,
        "test_images": int((data.split["split"] == "test").sum()),
        "pos_weight": state.pos_weight,
        "params": summary.total_params,
        "trainable_params": summary.trainable_params,
        "summary_text": format_summary(summary),
        "skipped_files": len(data.scan.skipped),
        "processes": state.world.size,
        **device_info(state.device),
    }
