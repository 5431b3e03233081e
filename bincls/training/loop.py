"""The training loop, as torchvision's references write it: setup, then per epoch `train_one_epoch`,
`validate`, the callbacks. It emits events and knows nothing of who listens."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from itertools import islice

import torch
import torch.distributed as dist
from torch import nn

from bincls.compute import tune_allocator
from bincls.errors import BinclsError
from bincls.inference.logits import predict_logits
from bincls.inference.metrics import binary_metrics
from bincls.training.config import TrainConfig
from bincls.training.distributed import World, any_flags, gather, sum_values, world_from_env
from bincls.training.distributed import stop as stop_world
from bincls.training.events import Emitter, Listener, RunFolderWriter
from bincls.training.run_folder import RunFolder
from bincls.training.setup import TrainingState, setup
from bincls.training.stopping import StopFlag, StopRequested


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
    run = _open_run(cfg, runs_dir, run, resume) if world.is_main else None
    emit = Emitter(_listeners(cfg, run, listeners) if world.is_main else [])
    tune_allocator()
    try:
        with StopFlag(run, world) as stop:
            state = setup(cfg, run, emit, world, resume)
            stop.device = state.device
            return fit(state, stop)
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
        _failed(emit, _failure_message(exc, world))
        raise
    finally:
        stop_world(world)


def _open_run(cfg: TrainConfig, runs_dir, run: RunFolder | None, resume: bool) -> RunFolder:
    run = run or RunFolder.create(runs_dir, label=cfg.model)
    if resume:
        run.clear_stop()  # the stop that ended the last attempt is done with
    else:
        run.write_config(cfg.to_dict())
    return run


def _listeners(cfg: TrainConfig, run: RunFolder, extra: list[Listener] | None) -> list[Listener]:
    out: list[Listener] = [RunFolderWriter(run), *(extra or [])]
    if cfg.tensorboard:
        try:
            from bincls.training.events import TensorBoardListener

            out.append(TensorBoardListener(run.path / "tensorboard"))
        except ImportError:
            run.log("tensorboard is not installed: pip install tensorboard to log to TensorBoard")
    return out


def _failure_message(exc: Exception, world: World) -> str:
    if world.active and isinstance(exc, (RuntimeError, dist.DistError)):
        return (
            f"Another training process of this run failed or was killed, so process {world.rank} "
            f"stopped too ({type(exc).__name__}: {exc}). The failing process's error is in the "
            "console output of torchrun."
        )
    return f"{type(exc).__name__}: {exc}"


def _failed(emit: Emitter, message: str) -> None:
    """Mark the run failed, if the run folder can still be written (a full disk may refuse even that:
    the run then reads as interrupted, and the reason is in the console output)."""
    try:
        emit("run_ended", "failed", {"error": message})
    except OSError as exc:
        print(f"error: could not record the failure in the run folder ({exc}): {message}", file=sys.stderr)


def fit(state: TrainingState, stop: StopFlag) -> TrainResult:
    """Epochs until done, stopped early by a callback, or stopped on request."""
    cfg, emit = state.cfg, state.emit
    result = "finished"
    try:
        for epoch in range(state.epoch + 1, cfg.epochs + 1):
            t0 = time.perf_counter()
            train_metrics = train_one_epoch(state, epoch, stop)
            stop.check()
            val = validate(state)
            state.epoch = epoch
            for callback in state.callbacks:
                callback.on_validation(state, val)
            record = _epoch_record(state, train_metrics, val, time.perf_counter() - t0)
            emit("epoch_end", record)
            reasons = [r for c in state.callbacks if (r := c.after_epoch(state, record))]
            state.save_last(epoch, epoch=epoch, metrics=record)
            if reasons:
                emit("message", reasons[0])
                break
    except StopRequested:
        result = "stopped"
        emit("message", f"stop requested: stopped in epoch {state.epoch + 1}")
        if state.global_step > 0:
            state.save_last(state.epoch, epoch=state.epoch + 1)
    best = state.best
    if best.weights is not None:
        state.model.load_state_dict(best.weights)  # the best epoch, not the last, is the result
    emit("run_ended", result, {
        "best_epoch": best.epoch,
        "best_val_loss": best.metrics.get("loss"),
        "best_val_accuracy": best.metrics.get("accuracy"),
        "best_metrics": dict(best.metrics),
        "epochs_done": len(state.epoch_times),
    })  # fmt: skip
    return TrainResult(state.run, result, best.epoch, best.metrics, state.model)


def train_one_epoch(state: TrainingState, epoch: int, stop: StopFlag) -> dict:
    """One pass over the training batches (the rest of one, after a mid-epoch resume); emits each step."""
    steps, world, device = state.steps_per_epoch, state.world, state.device
    t0 = time.perf_counter()
    state.net.train()
    seen, loss_sum, correct = 0, 0.0, 0
    first = state.skip_steps + 1 if epoch == state.epoch + 1 else 1
    for step, (x, y) in enumerate(islice(state.feed.train, steps - first + 1), start=first):
        ts = time.perf_counter()
        y = y.float().view(-1, 1)
        with state.plan.autocast():
            logits = state.net(x)
        loss = state.loss_fn(logits.float(), y)
        stop_now, diverged = any_flags(world, [stop.requested(), not torch.isfinite(loss)], device)
        if stop_now:
            raise StopRequested()
        if diverged:
            raise BinclsError(
                f"The loss became {loss.item()} at epoch {epoch}, step {step}: training diverged. "
                f"The learning rate ({state.cfg.learning_rate:g}) is probably too high; try 10x lower."
            )
        _step(state, loss)
        n = x.shape[0]
        seen += n
        loss_sum += loss.item() * n
        correct += int(((logits.detach() > 0).float() == y).sum())
        per_step = (time.perf_counter() - t0) / (step - first + 1)
        state.emit("step", {
            "kind": "step", "epoch": epoch, "epochs": state.cfg.epochs, "step": step,
            "steps_per_epoch": steps, "global_step": state.global_step, "loss": loss.item(),
            "lr": state.optimizer.param_groups[0]["lr"],
            "images_per_s": n * world.size / max(time.perf_counter() - ts, 1e-9),
            "eta_s": _eta(state, epoch, step, per_step), "time": time.time(),
        })  # fmt: skip
    state.skip_steps = 0
    seen, loss_sum, correct = sum_values(world, [seen, loss_sum, correct], device)
    return {"loss": loss_sum / max(seen, 1), "accuracy": correct / max(seen, 1), "seen": seen}


def _step(state: TrainingState, loss: torch.Tensor) -> None:
    state.optimizer.zero_grad(set_to_none=True)
    state.scaler.scale(loss).backward()
    state.scaler.step(state.optimizer)
    state.scaler.update()
    if state.scheduler is not None:
        state.scheduler.step()
    state.global_step += 1


def _eta(state: TrainingState, epoch: int, step: int, per_step: float) -> float:
    times = state.epoch_times
    per_epoch = (sum(times) / len(times)) if times else per_step * state.steps_per_epoch
    return per_step * (state.steps_per_epoch - step) + per_epoch * (state.cfg.epochs - epoch)


def validate(state: TrainingState) -> dict:
    """Metrics on the whole validation split (every process's share gathered)."""
    logits, labels = gather(
        state.world, *predict_logits(state.model, state.feed.val, state.plan, state.feed.forward)
    )
    return binary_metrics(logits, labels)


def _epoch_record(state: TrainingState, train: dict, val: dict, epoch_time: float) -> dict:
    state.epoch_times.append(epoch_time)
    times = state.epoch_times
    return {
        "kind": "epoch",
        "epoch": state.epoch,
        "epochs": state.cfg.epochs,
        "train_loss": train["loss"],
        "train_accuracy": train["accuracy"],
        **{f"val_{k}": v for k, v in val.items() if k not in ("confusion_matrix", "threshold")},
        "val_confusion_matrix": val["confusion_matrix"],
        "lr": state.optimizer.param_groups[0]["lr"],
        "epoch_time": epoch_time,
        "images_per_s": train["seen"] / max(epoch_time, 1e-9),
        "eta_s": (sum(times) / len(times)) * (state.cfg.epochs - state.epoch),
        "best_epoch": state.best.epoch,
        "best_val_loss": state.best.val_loss,
        "time": time.time(),
    }
