"""The training loop, as torchvision's references write it: setup, then per epoch `train_one_epoch`,
`validate`, the callbacks. It emits events and knows nothing of who listens."""

from __future__ import annotations

import errno
import os
import sys
import time
from dataclasses import dataclass
from functools import partial
from itertools import islice

import torch
import torch.distributed as dist
from torch import nn

from bincls.compute import tune_allocator
from bincls.errors import BinclsError
from bincls.inference.logits import predict_logits
from bincls.inference.metrics import binary_metrics
from bincls.json_files import remove_stale_temp_files, reserve_space
from bincls.runs.folder import RunFolder
from bincls.training import budget
from bincls.training.config import TrainConfig
from bincls.training.distributed import World, any_flags, gather, min_value, sum_values, world_from_env
from bincls.training.distributed import stop as stop_world
from bincls.training.events import Emitter, Listener, RunFolderWriter
from bincls.training.finish import finish_model
from bincls.training.phases import enter_phase, head_epochs
from bincls.training.recipes import Resolved, is_resolved, resolve
from bincls.training.setup import setup
from bincls.training.state import TrainingState
from bincls.training.stopping import StopFlag, StopRequested


@dataclass
class TrainResult:
    run: RunFolder | None  # None on the other processes of a distributed run: only rank 0 keeps it
    state: str
    best_epoch: int | None
    best_metrics: dict
    model: nn.Module | None = None


def train(
    cfg: TrainConfig | Resolved,
    runs_dir: str | os.PathLike | None = None,
    listeners: list[Listener] | None = None,
    run: RunFolder | None = None,
    resume: bool = False,
    started: float | None = None,
) -> TrainResult:
    """Train one model and keep a run folder; returns when finished, stopped or failed (raises).

    `cfg` is completed by its preset here, once, unless it is complete already (a run folder's config.json,
    or the `Resolved` that `preflight` returned).

    With `resume`, `run` is an interrupted, stopped or failed run: training continues from its last.pt
    (weights, optimizer, scheduler, step) on the split saved in the run. Under torchrun every process
    calls this; only rank 0 writes.
    """
    started = started or time.time()  # the time budget counts from here (the CLI: its process's start)
    world = world_from_env()
    if resume and run is None:
        raise BinclsError("Resuming needs the run folder to continue.")
    note = None
    if isinstance(cfg, Resolved):  # resolved by the caller (the CLI's preflight): once per run
        cfg, note = cfg.config, cfg.note
    elif not is_resolved(cfg):  # the Python API's settings; a run folder's config.json is complete
        resolved = resolve(cfg)
        cfg, note = resolved.config, resolved.note
    run = _open_run(cfg, runs_dir, run, resume, note is not None) if world.is_main else None
    emit = Emitter(_listeners(cfg, run, listeners) if world.is_main else [])
    emit("attempt_started")  # running from now: checking files and computing features are part of the run
    if note:
        if run is not None:
            run.set_status(preset_note=note)
        emit("message", note)
    tune_allocator()
    ended = False  # fit returned on every process (a stop, too, reaches all of them at the same step)
    try:
        with StopFlag(run, world) as stop:
            state = setup(cfg, run, emit, world, resume, started)
            stop.device = state.device
            try:
                result = fit(state, stop)
                ended = True
                return result
            finally:
                state.feed.close()
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
    except OSError as exc:  # a full disk or a read-only folder while writing the run (or reading data)
        msg = file_error(exc)
        _failed(emit, msg)
        raise BinclsError(msg) from None
    except Exception as exc:
        _failed(emit, _failure_message(exc, world))
        raise
    finally:
        stop_world(world, together=ended)


def _open_run(cfg: TrainConfig, runs_dir, run: RunFolder | None, resume: bool, resolved: bool) -> RunFolder:
    run = run or RunFolder.create(runs_dir, label=cfg.name or cfg.model)
    try:
        remove_stale_temp_files(run.path)  # half-written saves of an attempt that was killed
        reserve_space(run.path)  # given up on a full disk, so the run can still say why it failed
        if resume:
            run.clear_stop()  # the stop that ended the last attempt is done with
        if not resume or resolved:  # a resumed run's config is rewritten only when a preset completed it
            run.write_config({**run.config(), **cfg.to_dict()})  # keeps a threshold saved in it
    except OSError as exc:
        raise BinclsError(file_error(exc)) from None
    return run


def file_error(exc: OSError) -> str:
    """A sentence for a file-system error while training: what, where, and what to do."""
    where = f" ({exc.filename})" if exc.filename else ""
    hint = ""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM):
        hint = " Free disk space or make the runs folder writable, then resume the run."
    return f"Could not write or read a file of the run: {exc.strerror or exc}{where}.{hint}"


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


class _Diverged(Exception):
    """The training loss became NaN or infinite."""


def fit(state: TrainingState, stop: StopFlag) -> TrainResult:
    """Epochs until done, stopped early by a callback or the time budget, or stopped on request."""
    emit = state.emit
    result, ended_by = "finished", "epochs"
    try:
        while state.epoch < state.epochs:
            epoch = state.epoch + 1
            if not _before_epoch(state, epoch):
                ended_by = "time_budget"
                break
            t0 = time.perf_counter()
            train_metrics = train_one_epoch(state, epoch, stop)
            stop.check()
            val = validate(state)
            state.epoch = epoch
            for callback in state.callbacks:
                callback.on_validation(state, val)
            record = _epoch_record(state, train_metrics, val, time.perf_counter() - t0)
            emit("epoch_end", record)
            reasons = [(c.name, r) for c in state.callbacks if (r := c.after_epoch(state, record))]
            if train_metrics["cut"]:
                reasons.append(("time_budget", state.stop_reason))
            state.saver.save_last(partial(state.last_checkpoint, epoch, epoch=epoch, metrics=record),
                                  throttle=True)
            _replan(state)
            if reasons:
                ended_by, state.stop_reason = reasons[0]
                emit("message", state.stop_reason)
                break
        else:
            if state.epochs < state.cfg.epochs:  # the budget planned fewer than asked
                ended_by = "time_budget"
                state.stop_reason = (f"time budget: the {state.budget:.0f} s held {state.epochs} of "
                                     f"{state.cfg.epochs} epochs")  # fmt: skip
    except StopRequested:
        result, ended_by = "stopped", "request"
        state.stop_reason = f"stop requested: stopped in epoch {state.epoch + 1}"
        emit("message", state.stop_reason)
        if state.global_step > 0:
            state.saver.save_last(partial(state.last_checkpoint, state.epoch, epoch=state.epoch + 1,
                                          epoch_sums=list(state.epoch_sums)))
    except _Diverged as exc:
        ended_by = "divergence_guard"
        _fall_back(state, exc)
    return _wrap_up(state, result, ended_by)


def _wrap_up(state: TrainingState, result: str, ended_by: str) -> TrainResult:
    """Write what throttling held back, go back to the best epoch, calibrate it, and say how it ended."""
    if state.global_step > 0:
        state.saver.flush()
        state.best.flush(state)
    best = state.best
    if best.weights is not None:
        state.model.load_state_dict(best.weights)  # the best epoch, not the last, is the result
    if result == "finished" and best.epoch is not None:
        finish_model(state)
    state.emit("run_ended", result, {
        "best_epoch": best.epoch,
        "best_val_loss": best.metrics.get("loss"),
        "best_val_accuracy": best.metrics.get("accuracy"),
        "best_metrics": dict(best.metrics),
        "epochs_done": len(state.epoch_times),
        "elapsed_s": time.time() - state.started,
        "ended_by": ended_by,
        "stop_reason": state.stop_reason,
        "time_budget": state.budget,
    })  # fmt: skip
    return TrainResult(state.run, result, best.epoch, best.metrics, state.model)


def _before_epoch(state: TrainingState, epoch: int) -> bool:
    """Switch from the head phase to the main one when the head's epochs are done; False when the time
    budget leaves no time for the main phase at all (the run keeps the head it trained)."""
    if state.phase == "head" and epoch > head_epochs(state):
        if not budget.main_phase_fits(state):
            state.stop_reason = (f"time budget: no time left of the {state.budget:.0f} s to fine-tune "
                                 "the whole network; keeping the head trained on the frozen backbone")
            state.emit("message", state.stop_reason)
            return False
        state.emit("message", f"head trained for {head_epochs(state)} epochs: fine-tuning the whole network")
        enter_phase(state, "main")
    return True


def _replan(state: TrainingState) -> None:
    """With a time budget, as many more epochs as the time left holds (at most the epochs asked for),
    keeping back what follows the last epoch (validation, calibration).

    The schedule follows: it spans the planned steps, so it still ends where the budget does. Without a
    budget, or with time to spare, the plan is the epochs asked for, and runs repeat exactly.
    """
    if state.budget is None or state.phase != "main":
        return
    recent = state.epoch_times[-3:]
    fits = budget.epochs_that_fit(state, sum(recent) / len(recent))
    planned = min_value(state.world, min(state.cfg.epochs, state.epoch + fits), state.device)
    planned = max(planned, state.epoch)
    if planned != state.epochs:
        was, state.epochs = state.epochs, planned
        state.phase_steps = max((planned - head_epochs(state)) * state.steps_per_epoch, 1)
        used = time.time() - state.started
        state.emit("message", f"time budget: {planned} epochs planned (was {was}); {used:.0f} s of "
                              f"{state.budget:.0f} s used")  # fmt: skip
        if state.run is not None:
            state.run.set_status(epochs=planned)


def _fall_back(state: TrainingState, exc: Exception) -> None:
    """A diverged loss ends the run with its best checkpoint, or fails it without one."""
    if state.best.epoch is None:
        raise BinclsError(
            f"The loss became {exc} at epoch {state.epoch + 1}: training diverged. The learning rate "
            f"({state.cfg.learning_rate:g}) is probably too high; try 10x lower."
        )
    state.stop_reason = (f"the training loss became {exc} in epoch {state.epoch + 1}: training diverged, "
                         f"so the run keeps its best checkpoint (epoch {state.best.epoch})")  # fmt: skip
    state.emit("message", state.stop_reason)


def train_one_epoch(state: TrainingState, epoch: int, stop: StopFlag) -> dict:
    """One pass over the training batches (the rest of one, after a mid-epoch resume); emits each step.

    With a time budget, the epoch ends early at the last step after which validation and calibration
    still end in time ("cut": True), so no work is thrown away."""
    steps, world, device = state.steps_per_epoch, state.world, state.device
    t0 = time.perf_counter()
    state.net.train()
    cut = False
    first = state.skip_steps + 1 if epoch == state.epoch + 1 else 1
    sums = state.epoch_sums = state.epoch_sums if first > 1 else [0.0, 0.0, 0.0]
    for step, (x, y) in enumerate(islice(state.feed.train, steps - first + 1), start=first):
        ts = time.perf_counter()
        y = y.float().view(-1, 1)
        with state.plan.autocast():
            logits = state.net(x)
        loss = state.loss_fn(logits.float(), y)
        # The first step of a run always trains: without it there is no model to keep.
        late = state.global_step > 0 and budget.must_cut(state, state.step_s or 0.0, steps - step + 1)
        stop_now, diverged, cut = any_flags(world, [stop.requested(), not torch.isfinite(loss), late], device)
        if stop_now:
            raise StopRequested()
        if diverged:
            raise _Diverged(loss.item())
        if cut:
            state.stop_reason = (f"time budget: epoch {epoch} ended after step {step - 1} of {steps}, so "
                                 f"that validation and calibration end within the {state.budget:.0f} s")
            break
        _step(state, loss)
        n = x.shape[0]
        sums[0] += n
        sums[1] += loss.item() * n
        sums[2] += int(((logits.detach() > 0).float() == y).sum())
        state.step_s = per_step = (time.perf_counter() - t0) / (step - first + 1)
        state.emit("step", {
            "kind": "step", "epoch": epoch, "epochs": state.epochs, "step": step,
            "steps_per_epoch": steps, "global_step": state.global_step, "loss": loss.item(),
            "lr": state.optimizer.param_groups[-1]["lr"], "phase": state.phase,
            "images_per_s": n * world.size / max(time.perf_counter() - ts, 1e-9),
            "eta_s": _eta(state, epoch, step, per_step), "time": time.time(),
        })  # fmt: skip
    state.skip_steps = 0
    seen, loss_sum, correct = sum_values(world, list(sums), device)
    return {"loss": loss_sum / max(seen, 1), "accuracy": correct / max(seen, 1), "seen": seen, "cut": cut}


def _step(state: TrainingState, loss: torch.Tensor) -> None:
    state.optimizer.zero_grad(set_to_none=True)
    state.scaler.scale(loss).backward()
    if state.cfg.grad_clip:  # on the true gradients: mixed precision's loss scale taken out first
        state.scaler.unscale_(state.optimizer)
        params = [p for group in state.optimizer.param_groups for p in group["params"]]
        torch.nn.utils.clip_grad_norm_(params, state.cfg.grad_clip)
    state.scaler.step(state.optimizer)
    state.scaler.update()
    if state.scheduler is not None:
        state.scheduler.step()
    state.global_step += 1


def _eta(state: TrainingState, epoch: int, step: int, per_step: float) -> float:
    """Seconds left: this epoch's remaining steps, then the planned epochs at the pace of this phase's
    last few epochs (validation included), never past the time budget.

    Only this phase's epochs count: the head phase's epochs on cached features are far faster than the
    fine-tune's, and an average over both made the estimate swing."""
    steps = state.steps_per_epoch
    return _remaining(state, epoch, epoch - 1, per_step * (steps - step), per_step * steps)


def _remaining(state: TrainingState, epoch: int, done: int, this_epoch: float, per_epoch: float) -> float:
    """After `epoch` (`done` epochs finished, `this_epoch` seconds left in the one running)."""
    in_phase = done - (head_epochs(state) if state.phase == "main" else 0)
    recent = state.epoch_times[-min(in_phase, 3) :] if in_phase > 0 else []
    per_epoch = sum(recent) / len(recent) if recent else per_epoch
    left = this_epoch + per_epoch * max(state.epochs - epoch, 0) + budget.finish_estimate(state)
    if (end := budget.end(state)) is not None:
        left = min(left, max(end - time.time(), 0.0))
    return left


def validate(state: TrainingState) -> dict:
    """Metrics on the whole validation split (every process's share gathered); its time is kept, as the
    time budget plans with it."""
    t0 = time.perf_counter()
    logits, labels = gather(
        state.world, *predict_logits(state.model, state.feed.val, state.plan, state.feed.forward)
    )
    state.last_val_s = time.perf_counter() - t0
    if state.plan.dtype is None and state.feed.mode != "features":  # whole images in fp32: prediction's pace
        state.fp32_image_s = state.last_val_s / max(len(labels), 1)
    return binary_metrics(logits, labels)


def _epoch_record(state: TrainingState, train: dict, val: dict, epoch_time: float) -> dict:
    state.epoch_times.append(epoch_time)
    return {
        "kind": "epoch",
        "epoch": state.epoch,
        "epochs": state.epochs,
        "train_loss": train["loss"],
        "train_accuracy": train["accuracy"],
        **{f"val_{k}": v for k, v in val.items() if k not in ("confusion_matrix", "threshold")},
        "val_confusion_matrix": val["confusion_matrix"],
        "lr": state.optimizer.param_groups[-1]["lr"],
        "epoch_time": epoch_time,
        "images_per_s": train["seen"] / max(epoch_time, 1e-9),
        "eta_s": _remaining(state, state.epoch, state.epoch, 0.0, epoch_time),
        "best_epoch": state.best.epoch,
        "best_val_loss": state.best.val_loss,
        "time": time.time(),
    }
