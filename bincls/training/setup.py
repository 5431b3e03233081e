"""Everything a run needs before its first step: data, model, loss, callbacks, the first phase.

`setup` returns a `TrainingState`; with `resume` it continues from the run's last.pt (weights,
optimizer, step, clock, every callback's state) on the split the run started with.
"""

from __future__ import annotations

import os
import random
import time

import numpy as np
import torch
from torch import nn

from bincls.compute import device_info, plan_compute, resolve_device
from bincls.data.dataset import DataSource, load_data
from bincls.data.overlay import applied_decisions, load_decisions, overlay_counts
from bincls.data.split import SplitConfig, load_split, save_split
from bincls.errors import BinclsError
from bincls.json_files import write_json_atomic
from bincls.models import build_model, format_summary, model_config, model_summary
from bincls.models.checkpoint import read_checkpoint
from bincls.runs.folder import RunFolder
from bincls.training.callbacks import default_callbacks
from bincls.training.checkpoint_saver import CheckpointSaver
from bincls.training.config import TrainConfig
from bincls.training.distributed import World, barrier
from bincls.training.distributed import start as start_world
from bincls.training.events import Emitter
from bincls.training.phases import enter_phase, first_phase
from bincls.training.state import TrainingState


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class SmoothedBCE(nn.Module):
    """BCE with logits, its targets pulled towards 0.5 by `smoothing` (label smoothing), class-weighted."""

    def __init__(self, pos_weight: torch.Tensor, smoothing: float = 0.0):
        super().__init__()
        self.bce = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
        self.smoothing = smoothing

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.smoothing:
            target = target * (1 - self.smoothing) + 0.5 * self.smoothing
        return self.bce(logits, target)


def setup(cfg: TrainConfig, run: RunFolder | None, emit: Emitter, world: World, resume: bool,
          started: float) -> TrainingState:  # fmt: skip
    seed_everything(cfg.seed)
    device = start_world(world, resolve_device(cfg.device))
    last = read_checkpoint(run.last_checkpoint) if resume and run.last_checkpoint.exists() else None
    data = _data(cfg, run, emit, world, resume)
    mcfg = model_config(cfg.model, img_size=cfg.img_size, weights=cfg.weights,
                        freeze_backbone=bool(cfg.freeze_backbone))  # fmt: skip
    # A continued or resumed run's weights come from its checkpoint: the pretrained ones need not be at hand.
    model = build_model(mcfg, load_weights=not (cfg.init_from or last)).to(device)
    if cfg.init_from and not last:
        from bincls.training.continuation import load_initial_weights

        load_initial_weights(model, cfg.init_from)
    if last:
        try:
            model.load_state_dict(last["state_dict"])
        except RuntimeError as exc:
            raise BinclsError(f"{run.last_checkpoint} does not fit the model {cfg.model}: {exc}") from None
        started = time.time() - float(last.get("elapsed_s", 0.0))  # the budget counts earlier attempts
    summary = model_summary(model, mcfg.img_size)
    plan = plan_compute(device, cfg.model, cfg.precision)
    if plan.channels_last:
        model = model.to(memory_format=torch.channels_last)
    counts = data.counts()["train"]
    n_neg, n_pos = counts[data.class_names[0]], counts[data.class_names[1]]
    pos_weight = (n_neg / n_pos) if (cfg.balance and n_pos) else 1.0
    loss_fn = SmoothedBCE(torch.tensor(pos_weight, device=device), cfg.label_smoothing or 0.0)
    callbacks = default_callbacks(cfg.patience or 0, run.best_checkpoint if run else None)
    state = TrainingState(cfg, run, world, device, data, mcfg, model, plan, loss_fn, pos_weight, emit,
                          CheckpointSaver(run, emit), started, callbacks, epochs=cfg.epochs)  # fmt: skip
    if resume and last is not None:
        _resume(state, last)
    enter_phase(state, first_phase(state, last))
    if resume and last is not None and last.get("optimizer"):
        try:
            state.optimizer.load_state_dict(last["optimizer"])
        except (KeyError, ValueError, TypeError, RuntimeError) as exc:
            raise BinclsError(
                f"The optimizer state in {run.last_checkpoint} does not fit this run's settings ({exc}); "
                "it cannot be resumed. Start a new run."
            ) from None
        state.scheduler.step()
    emit("run_started", _run_info(state, summary))
    if resume:
        point = {"epoch": state.epoch, "global_step": state.global_step, "from_checkpoint": bool(last)}
        emit("resumed", point)
    return state


def _data(cfg: TrainConfig, run: RunFolder | None, emit: Emitter, world: World, resume: bool) -> DataSource:
    emit("message", "checking the image files")
    split_cfg = SplitConfig(*cfg.split, seed=cfg.seed)
    decisions = load_decisions(cfg.data) if cfg.audit_decisions else {}
    for main_turn in (True, False):  # rank 0 scans first; the others then read its scan cache, not race it
        if world.is_main == main_turn:
            data = load_data(cfg.data, cfg.class_names, split_cfg, decisions=decisions)
        barrier(world)
    applied = applied_decisions(data.scan, decisions)  # only those on images of this dataset count
    if applied and world.is_main:
        _record_decisions(run, applied, emit)
    if resume and run.split_path.exists():
        return _saved_split(data, run.split_path, emit)
    if cfg.init_from:
        from bincls.training.continuation import continued_split

        data = continued_split(data, cfg.init_from, emit)
    if world.is_main:
        save_split(data.split, run.split_path)
    return data


def _record_decisions(run: RunFolder, decisions: dict[str, str], emit: Emitter) -> None:
    """The audit decisions this run honours, kept in its folder: the run can be repeated as it was."""
    write_json_atomic(run.path / "audit_decisions.json", decisions)
    counts = overlay_counts(decisions)
    emit("message", f"label audit: {counts['exclude']} image(s) excluded, {counts['relabel']} relabelled "
                    "(--ignore-audit trains without these decisions)")  # fmt: skip


def _saved_split(data: DataSource, path, emit: Emitter) -> DataSource:
    """A resumed run trains on the split it started with, not on a fresh one."""
    split = load_split(path)
    gone = ~split["path"].map(os.path.exists)
    if gone.any():
        emit("message", f"{int(gone.sum())} file(s) of the saved split are gone; resuming without them")
        split = split[~gone].reset_index(drop=True)
    return DataSource(data.scan, split, data.split_config)


def _resume(state: TrainingState, last: dict) -> None:
    """Continue from last.pt: step, epochs, and the callbacks' state (the optimizer follows its phase)."""
    run, cfg = state.run, state.cfg
    state.epoch = int(last.get("epochs_done", last.get("epoch", 0)))
    state.global_step = int(last.get("global_step", 0))
    sums = last.get("epoch_sums")
    # Stopped inside an epoch (see TrainingState.epoch_sums). last.pt holds the main process's sums only:
    # the others start from zero, so the epoch's totals count them once, not once per process.
    if isinstance(sums, list) and len(sums) == 3 and state.world.is_main:
        state.epoch_sums = [float(v) for v in sums]
    state.epochs = int(last.get("planned_epochs", cfg.epochs))
    if state.epoch >= state.epochs:
        raise BinclsError(f"Run {run.id} has already trained all {state.epochs} epochs: nothing to resume.")
    saved = last.get("callbacks") or {}
    for callback in state.callbacks:
        callback.load_state_dict(saved.get(callback.name) or {})
    if state.best.damaged:
        state.emit("message", f"best.pt was damaged and is set aside as best.pt.damaged "
                   f"({state.best.damaged}); the best epoch is tracked again from epoch {state.epoch + 1}")
    metrics = run.metrics_log()
    if metrics.note():
        state.emit("message", metrics.note())
    state.epoch_times = [
        r["epoch_time"] for r in metrics.records
        if r["kind"] == "epoch" and r["epoch"] <= state.epoch and "epoch_time" in r
    ]  # fmt: skip


def _run_info(state: TrainingState, summary) -> dict:
    data, cfg = state.data, state.cfg
    return {
        "run_id": state.run.id if state.run else None,
        "run_dir": str(state.run.path) if state.run else None,
        "model": cfg.model,
        "preset": cfg.preset,
        "epochs": cfg.epochs,
        "time_budget": state.budget,
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
