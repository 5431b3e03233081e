"""Training: config, device, data loaders, the loop, early stopping, checkpoints. Emits events."""

from __future__ import annotations

import math
import os
import random
import signal
import sys
import threading
import time
from dataclasses import dataclass
from itertools import islice

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from bincls.batches import prepare_training_data
from bincls.checkpoint import make_checkpoint, read_checkpoint
from bincls.config import DEFAULT_LR, DEVICES, OPTIMIZERS, SCHEDULES, TrainConfig  # noqa: F401 (re-exported)
from bincls.data import DataSource, load_data
from bincls.distributed import World, any_flags, barrier, gather, shard, sum_values, world_from_env
from bincls.distributed import start as start_world
from bincls.distributed import stop as stop_world
from bincls.errors import BinclsError
from bincls.events import Emitter, Listener, RunFolderWriter
from bincls.hardware import ComputePlan, plan_compute, tune_allocator
from bincls.metrics import binary_metrics
from bincls.models import (
    ModelConfig,
    build_model,
    format_summary,
    model_config,
    model_summary,
    trainable_parameters,
)
from bincls.runs import RunFolder
from bincls.split import SplitConfig, load_split, save_split
from bincls.tensorcache import parse_bytes
from bincls.transforms import Augment, Preprocess


# Devices --------------------------------------------------------------------------------------------
def resolve_device(name: str = "auto") -> torch.device:
    """auto picks CUDA, then Apple MPS, then the CPU; asking for one that is absent is an error."""
    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if name == "cuda" and not cuda:
        raise BinclsError(
            "device cuda was asked for, but no CUDA GPU is available here. Use --device auto or cpu."
        )
    if name == "mps" and not mps:
        raise BinclsError(
            "device mps was asked for, but Apple MPS is not available here. Use --device auto or cpu."
        )
    return torch.device(name)


def device_info(device: torch.device) -> dict:
    """Name and memory of the device, for the status and the UI."""
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return {
            "device": "cuda",
            "device_name": props.name,
            "device_memory_gb": round(props.total_memory / 2**30, 1),
        }
    if device.type == "mps":
        return {"device": "mps", "device_name": "Apple GPU (MPS)"}
    return {"device": "cpu", "device_name": f"CPU ({os.cpu_count()} cores)"}


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# Building blocks ------------------------------------------------------------------------------------
def make_optimizer(cfg: TrainConfig, params) -> torch.optim.Optimizer:
    lr, wd = cfg.learning_rate, cfg.weight_decay
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd or 0.01)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=wd)
    return torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=wd)


def make_scheduler(cfg: TrainConfig, opt: torch.optim.Optimizer, total_steps: int):
    """Stepped once per batch."""
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(total_steps, 1))
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=cfg.learning_rate, total_steps=max(total_steps, 1)
        )
    return None


class StopRequested(Exception):
    """Raised between batches when a stop was asked for (STOP file, SIGINT, SIGTERM)."""


class _StopFlag:
    """SIGINT/SIGTERM set a flag; the loop stops cleanly after the current batch."""

    def __init__(self, run: RunFolder | None, world: World, device: torch.device | None = None):
        self.run, self.world, self.device = run, world, device
        self.signalled = False
        self._old = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.signalled = True

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)

    def requested(self) -> bool:
        """This process's own view: a signal, or (on the main process) the run's STOP file."""
        file = self.run is not None and self.world.is_main and self.run.stop_requested()
        return self.signalled or file

    def check(self) -> None:
        if any_flags(self.world, [self.requested()], self.device)[0]:
            raise StopRequested()


# Resuming -------------------------------------------------------------------------------------------
@dataclass
class ResumePoint:
    """Where an interrupted run picks up: last.pt's weights and optimizer, the best epoch so far."""

    checkpoint: dict | None  # last.pt, or None when the run never finished an epoch
    epochs_done: int
    global_step: int
    best: dict
    epoch_times: list[float]


def resume_point(run: RunFolder) -> ResumePoint:
    """Read what a run left behind; raises BinclsError when there is nothing to resume."""
    best = {"val_loss": math.inf, "epoch": None, "state": None, "metrics": {}}
    ckpt = read_checkpoint(run.last_checkpoint) if run.last_checkpoint.exists() else None
    if ckpt is None:
        return ResumePoint(None, 0, 0, best, [])
    epochs_done = int(ckpt.get("epochs_done", ckpt.get("epoch", 0)))
    if run.best_checkpoint.exists():
        b = read_checkpoint(run.best_checkpoint)
        if int(b.get("epoch") or 0) <= epochs_done:  # a best.pt from after last.pt cannot happen, but be sure
            val = {k[4:]: v for k, v in (b.get("metrics") or {}).items() if k.startswith("val_")}
            best.update(
                val_loss=val.get("loss", math.inf), epoch=b.get("epoch"), state=b["state_dict"], metrics=val
            )
    times = [
        r["epoch_time"] for r in run.read_metrics() if r.get("kind") == "epoch" and r["epoch"] <= epochs_done
    ]
    return ResumePoint(ckpt, epochs_done, int(ckpt.get("global_step", 0)), best, times)


# The loop -------------------------------------------------------------------------------------------
@dataclass
class TrainResult:
    run: RunFolder | None  # None on the other processes of a distributed run: only rank 0 keeps it
    state: str
    best_epoch: int | None
    best_metrics: dict
    model: nn.Module | None = None


def train(
    cfg: TrainConfig,
    runs_dir: str | os.PathLike | None = None,
    listeners: list[Listener] | None = None,
    run: RunFolder | None = None,
    resume: bool = False,
) -> TrainResult:
    """Train one model and keep a run folder; returns when finished, stopped or failed (raises).

    With `resume`, `run` is an interrupted, stopped or failed run: training continues from its last.pt
    (weights, optimizer, scheduler, step) on the split saved in the run. Under torchrun every process
    calls this; only rank 0 writes.
    """
    world = world_from_env()
    if resume and run is None:
        raise BinclsError("Resuming needs the run folder to continue.")
    if world.is_main:
        run = run or RunFolder.create(runs_dir, label=cfg.model)
        if resume:
            run.clear_stop()  # the stop that ended the last attempt is done with
        else:
            run.write_config(cfg.to_dict())
        all_listeners: list[Listener] = [RunFolderWriter(run), *(listeners or [])]
        if cfg.tensorboard:
            try:
                from bincls.events import TensorBoardListener

                all_listeners.append(TensorBoardListener(run.path / "tensorboard"))
            except ImportError:
                run.log("tensorboard is not installed: pip install tensorboard to log to TensorBoard")
    else:
        all_listeners = []
    emit = Emitter(all_listeners)
    tune_allocator()
    try:
        with _StopFlag(run, world) as stop:
            return _train(cfg, run, emit, stop, world, resume)
    except BinclsError as exc:
        _failed(emit, str(exc))
        raise
    except torch.OutOfMemoryError:
        msg = (
            f"Out of memory on the device with batch size {cfg.batch_size} and image size {cfg.img_size}. "
            "Try a smaller batch size or image size."
        )
        _failed(emit, msg)
        raise BinclsError(msg) from None
    except Exception as exc:
        if world.active and isinstance(exc, (RuntimeError, dist.DistError)):
            msg = (
                f"Another training process of this run failed or was killed, so process {world.rank} "
                f"stopped too ({type(exc).__name__}: {exc}). The failing process's error is in the "
                "console output of torchrun."
            )
        else:
            msg = f"{type(exc).__name__}: {exc}"
        _failed(emit, msg)
        raise
    finally:
        stop_world(world)


def _failed(emit: Emitter, message: str) -> None:
    """Mark the run failed, if the run folder can still be written (a full disk may refuse even that:
    the run then reads as interrupted, and the reason is in the console output)."""
    try:
        emit("run_ended", "failed", {"error": message})
    except OSError as exc:
        print(f"error: could not record the failure in the run folder ({exc}): {message}", file=sys.stderr)


def _load_split(data: DataSource, run: RunFolder, emit: Emitter) -> DataSource:
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


class _Net(nn.Module):
    """The model as the batches feed it (whole images or cached features), so that DDP wraps the part
    that runs and its gradient hooks fire."""

    def __init__(self, model: nn.Module, forward):
        super().__init__()
        self.model, self._forward = model, forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._forward(self.model, x)


def _train(
    cfg: TrainConfig, run: RunFolder | None, emit: Emitter, stop: _StopFlag, world: World, resume: bool
) -> TrainResult:
    seed_everything(cfg.seed)
    device = start_world(world, resolve_device(cfg.device))
    stop.device = device
    point = resume_point(run) if resume else None
    emit("message", "checking the image files")
    split_cfg = SplitConfig(*cfg.split, seed=cfg.seed)
    for main_turn in (True, False):  # rank 0 scans first; the others then read its scan cache, not race it
        if world.is_main == main_turn:
            data = load_data(cfg.data, cfg.class_names, split_cfg)
        barrier(world)
    if resume and run.split_path.exists():
        data = _load_split(data, run, emit)
    elif world.is_main:
        save_split(data.split, run.split_path)
    mcfg: ModelConfig = model_config(
        cfg.model, img_size=cfg.img_size, weights=cfg.weights, freeze_backbone=cfg.freeze_backbone
    )
    pre = Preprocess(mcfg.img_size, tuple(mcfg.mean), tuple(mcfg.std))
    model = build_model(mcfg).to(device)
    if point and point.checkpoint:
        model.load_state_dict(point.checkpoint["state_dict"])
    summary = model_summary(model, mcfg.img_size)
    plan = plan_compute(device, cfg.model, cfg.precision)
    if plan.channels_last:
        model = model.to(memory_format=torch.channels_last)
    emit("message", "preparing the images")
    aug = Augment() if cfg.augment else Augment.none()
    frozen = model if (mcfg.freeze_backbone and hasattr(model, "forward_features")) else None
    budget = parse_bytes(cfg.memory_budget) if cfg.memory_budget else None
    # --batch-size is the global batch: N processes take a share each, so settings carry over unchanged.
    batch_size = max(1, cfg.batch_size // world.size)
    feed = prepare_training_data(
        _sharded(data, world, cfg.seed), pre, aug, batch_size, cfg.seed + world.rank, device,
        workers=cfg.workers, frozen_model=frozen, model_name=cfg.model, channels_last=plan.channels_last,
        budget=budget,
    )  # fmt: skip
    emit("message", feed.message)
    if world.active:
        emit(
            "message",
            f"{world.size} processes ({dist.get_backend()}), {batch_size} images per process and step; "
            "each holds its own share of the training images",
        )
    counts = data.counts()["train"]
    n_neg, n_pos = counts[data.class_names[0]], counts[data.class_names[1]]
    pos_weight = (n_neg / n_pos) if (cfg.balance and n_pos) else 1.0
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(pos_weight, device=device))
    net: nn.Module = _Net(model, feed.forward)
    if world.active:
        net = DDP(net, device_ids=[device.index] if device.type == "cuda" else None)
    opt = make_optimizer(cfg, trainable_parameters(model))
    steps = len(feed.train)
    sched = make_scheduler(cfg, opt, steps * cfg.epochs)
    scaler = torch.amp.GradScaler("cuda", enabled=plan.grad_scaling)
    best = {"val_loss": math.inf, "epoch": None, "state": None, "metrics": {}}
    epochs_done, global_step, epoch_times = 0, 0, []
    if point is not None:
        if point.checkpoint:
            opt.load_state_dict(point.checkpoint["optimizer"])
            if sched is not None and point.checkpoint.get("scheduler"):
                sched.load_state_dict(point.checkpoint["scheduler"])
        epochs_done, global_step, epoch_times = point.epochs_done, point.global_step, point.epoch_times
        best = point.best
        if epochs_done >= cfg.epochs:
            raise BinclsError(f"Run {run.id} has already trained all {cfg.epochs} epochs: nothing to resume.")
    # A run stopped mid-epoch resumes mid-epoch, so the schedule ends exactly where it was planned to.
    skip = min(max(global_step - epochs_done * steps, 0), steps)
    bad_epochs = (epochs_done - best["epoch"]) if best["epoch"] else epochs_done

    emit(
        "run_started",
        {
            "run_id": run.id if run else None,
            "model": cfg.model,
            "epochs": cfg.epochs,
            "img_size": mcfg.img_size,
            "class_names": data.class_names,
            "train_images": len(data.part("train")),  # all of them, not this process's share
            "val_images": len(data.part("val")),
            "data_mode": feed.mode,
            "data_message": feed.message,
            "precision": plan.precision,
            "channels_last": plan.channels_last,
            "test_images": int((data.split["split"] == "test").sum()),
            "pos_weight": pos_weight,
            "params": summary.total_params,
            "trainable_params": summary.trainable_params,
            "summary_text": format_summary(summary),
            "skipped_files": len(data.scan.skipped),
            "processes": world.size,
            **device_info(device),
        },
    )
    if point is not None:
        emit(
            "resumed",
            {"epoch": epochs_done, "global_step": global_step, "from_checkpoint": bool(point.checkpoint)},
        )

    def save(name: str, ckpt: dict) -> None:
        if world.is_main:
            emit("checkpoint_saved", name.removesuffix(".pt"), run.save_checkpoint(name, ckpt))

    def save_last(epochs_done: int, **extra) -> None:
        """last.pt: the weights plus what resuming needs (optimizer, scheduler, step)."""
        save("last.pt", make_checkpoint(
            model, mcfg, data.class_names, pos_weight=pos_weight, train_config=cfg.to_dict(),
            optimizer=opt.state_dict(), scheduler=sched.state_dict() if sched else None,
            global_step=global_step, epochs_done=epochs_done, **extra,
        ))  # fmt: skip

    state = "finished"
    epoch = epochs_done
    try:
        for epoch in range(epochs_done + 1, cfg.epochs + 1):
            t0 = time.perf_counter()
            net.train()
            seen, loss_sum, correct = 0, 0.0, 0
            first = skip + 1 if epoch == epochs_done + 1 else 1
            for step, (x, y) in enumerate(islice(feed.train, steps - first + 1), start=first):
                ts = time.perf_counter()
                y = y.float().view(-1, 1)
                with plan.autocast():
                    logits = net(x)
                loss = loss_fn(logits.float(), y)
                stop_now, diverged = any_flags(world, [stop.requested(), not torch.isfinite(loss)], device)
                if stop_now:
                    raise StopRequested()
                if diverged:
                    raise BinclsError(
                        f"The loss became {loss.item()} at epoch {epoch}, step {step}: training diverged. "
                        f"The learning rate ({cfg.learning_rate:g}) is probably too high; try 10x lower."
                    )
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
                if sched is not None:
                    sched.step()
                global_step += 1
                n = x.shape[0]
                seen += n
                loss_sum += loss.item() * n
                correct += int(((logits.detach() > 0).float() == y).sum())
                dt = time.perf_counter() - ts
                per_step = (time.perf_counter() - t0) / (step - first + 1)
                eta = per_step * (steps - step) + (
                    (sum(epoch_times) / len(epoch_times)) if epoch_times else per_step * steps
                ) * (cfg.epochs - epoch)
                emit(
                    "step",
                    {
                        "kind": "step",
                        "epoch": epoch,
                        "epochs": cfg.epochs,
                        "step": step,
                        "steps_per_epoch": steps,
                        "global_step": global_step,
                        "loss": loss.item(),
                        "lr": opt.param_groups[0]["lr"],
                        "images_per_s": n * world.size / max(dt, 1e-9),
                        "eta_s": eta,
                        "time": time.time(),
                    },
                )
            stop.check()
            seen, loss_sum, correct = sum_values(world, [seen, loss_sum, correct], device)
            logits_v, labels_v = gather(world, *predict_logits(model, feed.val, plan, feed.forward))
            val = binary_metrics(logits_v, labels_v)
            epoch_time = time.perf_counter() - t0
            epoch_times.append(epoch_time)
            improved = val["loss"] < best["val_loss"] - 1e-6
            if improved:
                best.update(
                    val_loss=val["loss"],
                    epoch=epoch,
                    metrics=val,
                    state={k: v.detach().clone() for k, v in model.state_dict().items()},
                )
                bad_epochs = 0
            else:
                bad_epochs += 1
            record = {
                "kind": "epoch",
                "epoch": epoch,
                "epochs": cfg.epochs,
                "train_loss": loss_sum / max(seen, 1),
                "train_accuracy": correct / max(seen, 1),
                **{f"val_{k}": v for k, v in val.items() if k not in ("confusion_matrix", "threshold")},
                "val_confusion_matrix": val["confusion_matrix"],
                "lr": opt.param_groups[0]["lr"],
                "epoch_time": epoch_time,
                "images_per_s": seen / max(epoch_time, 1e-9),
                "eta_s": (sum(epoch_times) / len(epoch_times)) * (cfg.epochs - epoch),
                "best_epoch": best["epoch"],
                "best_val_loss": best["val_loss"],
                "time": time.time(),
            }
            emit("epoch_end", record)
            ckpt_extra = {
                "epoch": epoch,
                "metrics": record,
                "pos_weight": pos_weight,
                "train_config": cfg.to_dict(),
            }
            if improved:
                save("best.pt", make_checkpoint(model, mcfg, data.class_names, **ckpt_extra))
            save_last(epoch, epoch=epoch, metrics=record)
            if cfg.patience and bad_epochs >= cfg.patience:
                emit("message", f"early stopping: val loss did not improve for {cfg.patience} epochs")
                break
    except StopRequested:
        state = "stopped"
        emit("message", f"stop requested: stopped in epoch {epoch}")
        if global_step > 0:
            save_last(epoch - 1, epoch=epoch)
    if best["state"] is not None:
        model.load_state_dict(best["state"])  # the best epoch, not the last, is the result
    summary_out = {
        "best_epoch": best["epoch"],
        "best_val_loss": best["metrics"].get("loss"),
        "best_val_accuracy": best["metrics"].get("accuracy"),
        "best_metrics": {k: v for k, v in best["metrics"].items()},
        "epochs_done": len(epoch_times),
    }
    emit("run_ended", state, summary_out)
    return TrainResult(run, state, best["epoch"], best["metrics"], model)


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
