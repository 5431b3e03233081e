"""What the training loop works on: the run's data, model, optimizer and schedule, where it is, and
the callbacks. Data only: checkpoints are written by `checkpoint_saver`, built here."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from torch import nn

from bincls.compute import ComputePlan
from bincls.data.batch_feeds import TrainingData
from bincls.data.dataset import DataSource
from bincls.models import ModelConfig
from bincls.models.checkpoint import make_checkpoint
from bincls.runs.folder import RunFolder
from bincls.training.callbacks import BestCheckpoint, Callback
from bincls.training.checkpoint_saver import CheckpointSaver
from bincls.training.config import TrainConfig
from bincls.training.distributed import World
from bincls.training.events import Emitter


@dataclass
class TrainingState:
    """`epoch` and `global_step` count what is done so far."""

    cfg: TrainConfig
    run: RunFolder | None  # None on the other processes of a distributed run
    world: World
    device: torch.device
    data: DataSource
    mcfg: ModelConfig
    model: nn.Module
    plan: ComputePlan
    loss_fn: nn.Module
    pos_weight: float
    emit: Emitter
    saver: CheckpointSaver
    started: float  # time.time() when the run's process began (earlier attempts' time subtracted)
    callbacks: list[Callback] = field(default_factory=list)
    epochs: int = 1  # planned: the epochs asked for, fewer when a time budget holds fewer
    epoch: int = 0
    global_step: int = 0
    skip_steps: int = 0  # steps of the first epoch already done before a resume
    # This process's [images, loss sum, correct] in the epoch under way: a stop keeps them in last.pt, so
    # the resumed epoch's training loss covers its steps before the stop too (none may be left after it).
    epoch_sums: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    epoch_times: list[float] = field(default_factory=list)
    # The current phase (bincls.training.phases): "head" trains the head on the frozen backbone,
    # "main" trains what the settings say. Set by `enter_phase`.
    phase: str = ""
    feed: TrainingData | None = None
    net: nn.Module | None = None
    optimizer: torch.optim.Optimizer | None = None
    scheduler: object | None = None
    scaler: torch.amp.GradScaler | None = None
    phase_start_step: int = 0
    phase_steps: int = 1
    step_s: float | None = None  # seconds per training step in this phase (the time budget plans with it)
    last_val_s: float | None = None  # seconds of the last validation pass
    fp32_image_s: float | None = None  # measured seconds of one image's fp32 forward pass (as prediction's)
    # The features phase's batches (cached backbone features, the validation views), kept while they still
    # describe the model: a fine-tune whose best epoch is still a head epoch is calibrated from them.
    frozen_feed: TrainingData | None = None
    fine_tuned_after: int | None = None  # epochs done when the backbone began to train (None: it never did)
    stop_reason: str | None = None  # why training ended before the planned epochs, in words

    @property
    def steps_per_epoch(self) -> int:
        return len(self.feed.train)

    @property
    def best(self) -> BestCheckpoint:
        return next(c for c in self.callbacks if isinstance(c, BestCheckpoint))

    @property
    def calibration_feed(self) -> TrainingData:
        """The batches calibration reads: the features phase's, while the best epoch is of the frozen
        backbone (their cached features and views are the best model's), else the current phase's."""
        frozen = self.frozen_feed is not None and (
            self.fine_tuned_after is None or (self.best.epoch or 0) <= self.fine_tuned_after)
        return self.frozen_feed if frozen else self.feed

    @property
    def budget(self) -> float | None:
        """Seconds the run may take, or None."""
        return self.cfg.time_budget or None

    def checkpoint(self, **extra) -> dict:
        """The model as a checkpoint: its weights and everything needed to rebuild it and predict."""
        return make_checkpoint(
            self.model, self.mcfg, self.data.class_names, pos_weight=self.pos_weight,
            train_config=self.cfg.to_dict(), **extra,
        )  # fmt: skip

    def last_checkpoint(self, epochs_done: int, **extra) -> dict:
        """last.pt: the weights plus what resuming needs (optimizer, step, clock, every callback's state)."""
        return self.checkpoint(
            optimizer=self.optimizer.state_dict(), phase=self.phase,
            scheduler=self.scheduler.state_dict() if self.scheduler else None,
            global_step=self.global_step, epochs_done=epochs_done, elapsed_s=time.time() - self.started,
            planned_epochs=self.epochs, callbacks={c.name: c.state_dict() for c in self.callbacks}, **extra,
        )  # fmt: skip
