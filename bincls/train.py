"""Training: config, device, data loaders, the loop, early stopping, checkpoints. Emits events."""

from __future__ import annotations

import math
import os
import random
import signal
import threading
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from bincls.batches import prepare_training_data
from bincls.checkpoint import make_checkpoint
from bincls.config import DEFAULT_LR, DEVICES, OPTIMIZERS, SCHEDULES, TrainConfig  # noqa: F401 (re-exported)
from bincls.data import load_data
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
from bincls.split import SplitConfig, save_split
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

    def __init__(self, run: RunFolder):
        self.run = run
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

    def check(self) -> None:
        if self.signalled or self.run.stop_requested():
            raise StopRequested()


# The loop -------------------------------------------------------------------------------------------
@dataclass
class TrainResult:
    run: RunFolder
    state: str
    best_epoch: int | None
    best_metrics: dict
    model: nn.Module | None = None


def train(
    cfg: TrainConfig,
    runs_dir: str | os.PathLike | None = None,
    listeners: list[Listener] | None = None,
    run: RunFolder | None = None,
) -> TrainResult:
    """Train one model and keep a run folder; returns when finished, stopped or failed (raises)."""
    run = run or RunFolder.create(runs_dir, label=cfg.model)
    run.write_config(cfg.to_dict())
    all_listeners: list[Listener] = [RunFolderWriter(run), *(listeners or [])]
    if cfg.tensorboard:
        try:
            from bincls.events import TensorBoardListener

            all_listeners.append(TensorBoardListener(run.path / "tensorboard"))
        except ImportError:
            run.log("tensorboard is not installed: pip install tensorboard to log to TensorBoard")
    emit = Emitter(all_listeners)
    tune_allocator()
    try:
        with _StopFlag(run) as stop:
            return _train(cfg, run, emit, stop)
    except BinclsError as exc:
        emit("run_ended", "failed", {"error": str(exc)})
        raise
    except torch.OutOfMemoryError:
        msg = (
            f"Out of memory on the device with batch size {cfg.batch_size} and image size {cfg.img_size}. "
            "Try a smaller batch size or image size."
        )
        emit("run_ended", "failed", {"error": msg})
        raise BinclsError(msg) from None
    except Exception as exc:
        emit("run_ended", "failed", {"error": f"{type(exc).__name__}: {exc}"})
        raise


def _train(cfg: TrainConfig, run: RunFolder, emit: Emitter, stop: _StopFlag) -> TrainResult:
    seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    emit("message", "checking the image files")
    split_cfg = SplitConfig(*cfg.split, seed=cfg.seed)
    data = load_data(cfg.data, cfg.class_names, split_cfg)
    save_split(data.split, run.split_path)
    mcfg: ModelConfig = model_config(
        cfg.model, img_size=cfg.img_size, weights=cfg.weights, freeze_backbone=cfg.freeze_backbone
    )
    pre = Preprocess(mcfg.img_size, tuple(mcfg.mean), tuple(mcfg.std))
    model = build_model(mcfg).to(device)
    summary = model_summary(model, mcfg.img_size)
    plan = plan_compute(device, cfg.model, cfg.precision)
    if plan.channels_last:
        model = model.to(memory_format=torch.channels_last)
    emit("message", "preparing the images")
    aug = Augment() if cfg.augment else Augment.none()
    frozen = model if (mcfg.freeze_backbone and hasattr(model, "forward_features")) else None
    budget = parse_bytes(cfg.memory_budget) if cfg.memory_budget else None
    feed = prepare_training_data(
        data, pre, aug, cfg.batch_size, cfg.seed, device, workers=cfg.workers, frozen_model=frozen,
        model_name=cfg.model, channels_last=plan.channels_last, budget=budget,
    )  # fmt: skip
    emit("message", feed.message)
    counts = data.counts()["train"]
    n_neg, n_pos = counts[data.class_names[0]], counts[data.class_names[1]]
    pos_weight = (n_neg / n_pos) if (cfg.balance and n_pos) else 1.0
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(pos_weight, device=device))
    opt = make_optimizer(cfg, trainable_parameters(model))
    steps = len(feed.train)
    sched = make_scheduler(cfg, opt, steps * cfg.epochs)
    scaler = torch.amp.GradScaler("cuda", enabled=plan.grad_scaling)

    emit(
        "run_started",
        {
            "run_id": run.id,
            "model": cfg.model,
            "epochs": cfg.epochs,
            "img_size": mcfg.img_size,
            "class_names": data.class_names,
            "train_images": feed.train.n_items,
            "val_images": feed.val.n_items,
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
            **device_info(device),
        },
    )

    def save_last(**extra) -> None:
        """last.pt: the weights plus what resuming needs (optimizer, scheduler, step)."""
        ckpt = make_checkpoint(
            model, mcfg, data.class_names, pos_weight=pos_weight, train_config=cfg.to_dict(),
            optimizer=opt.state_dict(), scheduler=sched.state_dict() if sched else None,
            global_step=global_step, **extra,
        )  # fmt: skip
        emit("checkpoint_saved", "last", run.save_checkpoint("last.pt", ckpt))

    best = {"val_loss": math.inf, "epoch": None, "state": None, "metrics": {}}
    bad_epochs, global_step, epoch_times = 0, 0, []
    state = "finished"
    epoch = 0
    try:
        for epoch in range(1, cfg.epochs + 1):
            t0 = time.perf_counter()
            model.train()
            seen, loss_sum, correct = 0, 0.0, 0
            for step, (x, y) in enumerate(feed.train, start=1):
                stop.check()
                ts = time.perf_counter()
                y = y.float().view(-1, 1)
                with plan.autocast():
                    logits = feed.forward(model, x)
                loss = loss_fn(logits.float(), y)
                if not torch.isfinite(loss):
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
                elapsed = time.perf_counter() - t0
                per_step = elapsed / step
                done_epochs_time = sum(epoch_times)
                eta = per_step * (steps - step) + (
                    (done_epochs_time / len(epoch_times)) if epoch_times else per_step * steps
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
                        "images_per_s": n / max(dt, 1e-9),
                        "eta_s": eta,
                        "time": time.time(),
                    },
                )
            stop.check()
            logits_v, labels_v = predict_logits(model, feed.val, plan, feed.forward)
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
                path = run.save_checkpoint(
                    "best.pt", make_checkpoint(model, mcfg, data.class_names, **ckpt_extra)
                )
                emit("checkpoint_saved", "best", path)
            save_last(epoch=epoch, metrics=record)
            if cfg.patience and bad_epochs >= cfg.patience:
                emit("message", f"early stopping: val loss did not improve for {cfg.patience} epochs")
                break
    except StopRequested:
        state = "stopped"
        emit("message", f"stop requested: stopped in epoch {epoch}")
        if epoch >= 1:
            save_last(epoch=epoch)
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
