"""Callbacks that decide after each epoch: keep the best checkpoint, stop early, stop a diverged run.

Each holds its own state and gives it to `last.pt` (`state_dict` / `load_state_dict`), as Lightning's
callbacks do, so a resumed run carries on with the same best epoch and patience count; the loop restores
every one alike.
"""

from __future__ import annotations

import math
import os
from functools import partial
from pathlib import Path
from typing import Protocol

from torch import nn

from bincls.errors import BinclsError
from bincls.models.checkpoint import read_checkpoint
from bincls.training.checkpoint_saver import CheckpointSaver


class TrainingState(Protocol):
    """What callbacks read of `bincls.training.state.TrainingState` (which holds them)."""

    epoch: int
    model: nn.Module
    saver: CheckpointSaver

    def checkpoint(self, **extra) -> dict: ...


class Callback:
    """Override what you need. `after_epoch` returns a reason to stop training, or None."""

    name = "callback"

    def on_validation(self, state: TrainingState, val: dict) -> None: ...

    def after_epoch(self, state: TrainingState, record: dict) -> str | None:
        return None

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, saved: dict) -> None: ...


class BestCheckpoint(Callback):
    """Tracks the epoch with the lowest validation loss, keeps its weights and writes best.pt."""

    name = "best_checkpoint"

    def __init__(self, path: Path | None = None) -> None:
        self.path = path  # best.pt in the run folder: on resume, the truth about the best epoch
        self.val_loss = math.inf
        self.epoch: int | None = None
        self.metrics: dict = {}
        self.weights: dict | None = None  # the best epoch's state_dict, in memory
        self.record: dict = {}  # its epoch record, as best.pt holds it
        self.improved = False
        self.pending = False  # improved since best.pt was last written (writes are throttled)
        self.damaged: str | None = None  # why best.pt could not be restored on resume

    def on_validation(self, state: TrainingState, val: dict) -> None:
        self.improved = val["loss"] < self.val_loss - 1e-6
        if self.improved:
            self.val_loss, self.epoch, self.metrics = val["loss"], state.epoch, val
            self.weights = {k: v.detach().clone() for k, v in state.model.state_dict().items()}

    def after_epoch(self, state: TrainingState, record: dict) -> str | None:
        if self.improved:
            self.record = record
            self.pending = not state.saver.save("best.pt", partial(self.checkpoint, state), throttle=True)
        return None

    def checkpoint(self, state: TrainingState, **extra) -> dict:
        return state.checkpoint(weights=self.weights, epoch=self.epoch, metrics=self.record, **extra)

    def flush(self, state: TrainingState) -> None:
        if self.pending:
            state.saver.save("best.pt", partial(self.checkpoint, state))
            self.pending = False

    def state_dict(self) -> dict:
        return {"val_loss": self.val_loss, "epoch": self.epoch, "metrics": self.metrics}

    def load_state_dict(self, saved: dict) -> None:
        """The best epoch as best.pt holds it (weights and validation metrics): what the run keeps.

        A damaged best.pt is set aside as best.pt.damaged (so that Evaluate and Predict use last.pt
        meanwhile), and the best epoch is tracked again from the resumed epochs on, as it is when best.pt
        is of a later epoch than the last.pt resumed from (killed between the two writes)."""
        if self.path is None or not self.path.exists():
            return
        try:
            best = read_checkpoint(self.path)
        except BinclsError as exc:
            self.damaged = str(exc)
            try:
                os.replace(self.path, self.path.with_name(self.path.name + ".damaged"))
            except OSError:
                pass
            return
        if int(best.get("epoch") or 0) > int(saved.get("epoch") or 0):
            return
        self.record = best.get("metrics") or {}
        val = {k[4:]: v for k, v in self.record.items() if k.startswith("val_")}
        self.val_loss, self.epoch, self.metrics = val.get("loss", math.inf), best.get("epoch"), val
        self.weights = best["state_dict"]


class EarlyStopping(Callback):
    """Stops when the validation loss has not improved for `patience` epochs (0: never)."""

    name = "early_stopping"

    def __init__(self, patience: int, best: BestCheckpoint):
        self.patience, self.best = patience, best
        self.bad_epochs = 0

    def on_validation(self, state: TrainingState, val: dict) -> None:
        self.bad_epochs = 0 if self.best.improved else self.bad_epochs + 1

    def after_epoch(self, state: TrainingState, record: dict) -> str | None:
        if self.patience and self.bad_epochs >= self.patience:
            return f"early stopping: val loss did not improve for {self.patience} epochs"
        return None

    def state_dict(self) -> dict:
        return {"bad_epochs": self.bad_epochs}

    def load_state_dict(self, saved: dict) -> None:
        self.bad_epochs = int(saved.get("bad_epochs", 0))


TRAIN_RISE = 0.35  # a collapse returns the loss to chance (ln 2 = 0.69) from well below it


class DivergenceGuard(Callback):
    """Stops when training has blown up: the validation loss is not a number, or it ran far above its
    best while the training loss rose too (overfitting lowers the training loss; divergence does not).
    The run then keeps its best checkpoint and says so, instead of training on from destroyed weights."""

    name = "divergence_guard"

    def __init__(self, best: BestCheckpoint):
        self.best = best
        self.lowest_train_loss = math.inf

    def after_epoch(self, state: TrainingState, record: dict) -> str | None:
        val, train, best = record["val_loss"], record["train_loss"], self.best
        self.lowest_train_loss = min(self.lowest_train_loss, train)
        if best.epoch is None or best.epoch == state.epoch:
            return None
        # The training loss must rise by a real amount, not just double: on a few dozen images it swings
        # between 0.25 and 0.5 from batch noise alone while the validation loss overfits upwards.
        rose = train > max(2 * self.lowest_train_loss, self.lowest_train_loss + TRAIN_RISE)
        ran_away = val > max(3 * best.val_loss, best.val_loss + 1.0) and rose
        if math.isfinite(val) and not ran_away:
            return None
        return (
            f"training diverged (validation loss {val:.3g} at epoch {state.epoch}, best {best.val_loss:.3g} "
            f"at epoch {best.epoch}; training loss {train:.3g}): stopping, and keeping the best checkpoint"
        )

    def state_dict(self) -> dict:
        return {"lowest_train_loss": self.lowest_train_loss}

    def load_state_dict(self, saved: dict) -> None:
        self.lowest_train_loss = float(saved.get("lowest_train_loss", math.inf))


def default_callbacks(patience: int, best_path: Path | None = None) -> list[Callback]:
    best = BestCheckpoint(best_path)
    return [best, EarlyStopping(patience, best), DivergenceGuard(best)]
