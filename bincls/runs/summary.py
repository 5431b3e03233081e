"""What a run folder says about its run, in one place: state, name, settings, epochs done of asked,
duration, best epoch, test accuracy, and whether it learned anything.

The Runs table, the Train page's run panel, the sidebar and the run pickers all read runs through
`summarize`, so they never disagree about a run; it reads only the run folder, never a trainer.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from bincls.chance import TIED_STD, chance_verdict
from bincls.runs.folder import ACTIVE, RunFolder, list_runs
from bincls.runs.names import run_name
from bincls.runs.results import saved_test_result

ENDED_EARLY = ("failed", "interrupted", "stopped")  # states a run can be resumed from


@dataclass(frozen=True)
class RunSummary:
    id: str
    state: str  # queued, running, finished, stopped, failed, interrupted (or unknown)
    model: str
    optimizer: str
    lr: float | None  # as the run's config.json has it (a preset always fills it in)
    data: list[str] = field(default_factory=list)
    name: str | None = None  # given on the Train page (config) or later (name.txt)
    preset: str | None = None  # the recipe that filled in the settings
    weights: str | None = None  # "imagenet", "none" or a weights file
    frozen: bool | None = None  # the pretrained backbone stayed fixed (None: no pretrained backbone)
    augment: bool | None = None
    img_size: int | None = None
    created: float | None = None  # seconds since the epoch
    epoch: int | None = None  # the epoch in progress, while the run trains
    epochs_done: int = 0
    epochs_asked: int | None = None
    duration_s: float | None = None  # start to end, once the run has ended
    best_epoch: int | None = None
    best_val_accuracy: float | None = None
    best_record: dict | None = None  # the best epoch's metrics line, when the epochs were given
    error: str | None = None  # why it failed
    ended_by: str | None = None  # what ended training: epochs, early_stopping, time_budget, ... (status.json)
    stop_reason: str | None = None  # the same in words, when it ended before the epochs asked for
    has_last_checkpoint: bool = False
    test_accuracy: float | None = None  # on its test split, once evaluated (TEST_RESULT_FILE)
    learned_nothing: str | None = None  # why its validation results are those of guessing, with the cause

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    @property
    def resumable(self) -> bool:
        """It ended before its last epoch without finishing: Resume can continue it."""
        return self.state in ENDED_EARLY and self.epochs_done < (self.epochs_asked or 0)

    @property
    def early_stopped(self) -> bool:
        """Early stopping (patience) ended it; runs written before `ended_by` existed: fewer epochs than
        asked."""
        if self.ended_by is not None:
            return self.ended_by == "early_stopping"
        return self.state == "finished" and self.epochs_done < (self.epochs_asked or 0)

    @property
    def weights_label(self) -> str:
        """How the model started: ImageNet, random (from scratch) or a weights file's name."""
        if self.weights in (None, "", "none"):
            return "from scratch"
        return "ImageNet" if self.weights == "imagenet" else Path(self.weights).name

    @property
    def title(self) -> str:
        """The run in one short line: its name, else what it trained and when (model · recipe or weights ·
        date), so an unnamed run is never a blank or an id."""
        if self.name:
            return self.name
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(self.created)) if self.created else ""
        return " · ".join(p for p in (self.model, self.preset or self.weights_label, when) if p)


def epoch_records(records: list[dict]) -> list[dict]:
    """The per-epoch lines of a run's metrics (the others are per step)."""
    return [r for r in records if r.get("kind") == "epoch"]


def summarize(run: RunFolder, epochs: list[dict] | None = None) -> RunSummary:
    """The run as its folder describes it.

    `epochs`: the run's epoch lines from metrics.jsonl, when the caller has read them (to draw curves):
    epochs done and the best epoch's metrics then come from them. Without them, only small files
    (status.json, config.json, name.txt, the test result) are read, which keeps a table of many runs fast.
    """
    status, cfg = run.status(), run.config()
    optimizer = cfg.get("optimizer", "")
    if epochs is None:
        done = status.get("epochs_done")
        if done is None:  # still running, or interrupted: the epochs finished so far
            done = (status.get("last_epoch_metrics") or {}).get("epoch", 0)
    else:
        done = len(epochs)
    best_epoch = status.get("best_epoch")
    weights = cfg.get("weights")
    pretrained = weights not in (None, "", "none")
    state = status.get("state", "unknown")
    return RunSummary(
        id=run.id,
        state=state,
        model=cfg.get("model") or status.get("model", ""),
        optimizer=optimizer,
        lr=cfg.get("lr"),
        data=[str(p) for p in cfg.get("data", [])],
        name=run_name(run, cfg),
        preset=cfg.get("preset") or status.get("preset"),
        weights=weights,
        frozen=bool(cfg.get("freeze_backbone")) if pretrained else None,
        augment=cfg.get("augment"),
        img_size=cfg.get("img_size") or status.get("img_size"),
        created=status.get("created") or status.get("started"),
        epoch=status.get("epoch"),
        epochs_done=int(done or 0),
        epochs_asked=cfg.get("epochs") or status.get("epochs"),
        duration_s=_duration(status),
        best_epoch=best_epoch,
        best_val_accuracy=status.get("best_val_accuracy"),
        best_record=next((r for r in epochs or [] if r.get("epoch") == best_epoch), None),
        error=status.get("error"),
        ended_by=status.get("ended_by"),
        stop_reason=status.get("stop_reason"),
        has_last_checkpoint=run.last_checkpoint.exists(),
        test_accuracy=(saved_test_result(run) or {}).get("accuracy"),
        learned_nothing=None if state in ACTIVE else learned_nothing(status, cfg, epochs),
    )


def _duration(status: dict) -> float | None:
    """Training time over every attempt: a resumed run's `elapsed_s` counts the earlier ones (from its
    checkpoint); runs written before that field existed give their last attempt's start to end."""
    started, finished = status.get("started"), status.get("finished")
    if not (started and finished):
        return None
    return max(status.get("elapsed_s") or 0.0, finished - started)


def learned_nothing(status: dict, cfg: dict, epochs: list[dict] | None = None) -> str | None:
    """Why the run's validation results are those of guessing at every epoch, with the likely cause; None
    when some epoch did better (or no epoch was validated)."""
    if epochs is None and status.get("beat_chance_epoch"):
        return None
    lines = [r for r in epochs or [] if r.get("val_loss") is not None] or [
        m for m in (status.get("last_epoch_metrics"), _as_epoch(status.get("best_metrics"))) if m
    ]
    if not lines:
        return None
    verdicts = []
    for line in lines:
        cm = line.get("val_confusion_matrix") or [[0, 0], [0, 0]]
        verdict = chance_verdict(line.get("val_auroc"), line.get("val_p_std"), sum(cm[0]), sum(cm[1]))
        if verdict is None:
            return None
        verdicts.append(verdict)
    n_val = status.get("val_images") or sum(map(sum, lines[-1].get("val_confusion_matrix") or []))
    spread = lines[-1].get("val_p_std")
    tied = spread is not None and spread < TIED_STD
    return (f"This run learned nothing: on its {n_val} validation images {verdicts[-1]}, at every "
            f"epoch. Likely cause: {likely_cause(status, cfg, tied)}")  # fmt: skip


def _as_epoch(best: dict | None) -> dict | None:
    """status.json's best_metrics (names without val_) as an epoch line."""
    return {f"val_{k}": v for k, v in best.items()} if best else None


def likely_cause(status: dict, cfg: dict, tied: bool) -> str:
    """The most likely reason a run learned nothing, from its settings and data, with what to try."""
    n_train, done = status.get("train_images") or 0, status.get("epochs_done") or 0
    lr = cfg.get("lr")
    if tied:
        return (f"the learning rate ({lr:g}) is too high for this model, so its units stopped responding; "
                "try a 10x lower one, or the Auto recipe.") if lr else "the training diverged."  # fmt: skip
    if cfg.get("weights") in (None, "", "none"):
        return (f"a network trained from scratch on {n_train} images for {done} epoch"
                f"{'s' if done != 1 else ''} has not learned to tell the classes apart yet. A pretrained "
                "network learns this from a few hundred photos: choose the Fast recipe with ImageNet "
                "weights, or Weights: Local file under All settings. From scratch needs many more epochs "
                "and images.")  # fmt: skip
    return ("the pretrained features do not separate the two classes: check on the Data page that the "
            "folders hold what their names say (mixed-up labels look like this), or fine-tune the whole "
            "network (the Best recipe).")
def runs_with_checkpoint(runs_dir: str | os.PathLike | None = None) -> list[RunFolder]:
    """Runs that are over and have a checkpoint to evaluate or predict with, newest first."""
    out = []
    for run in list_runs(runs_dir):
        if run.status().get("state") in ACTIVE:
            continue
        if run.best_checkpoint.is_file() or run.last_checkpoint.is_file():
            out.append(run)
    return out


def console_tail(run: RunFolder, lines: int = 40) -> str | None:
    """The last lines the training process printed (console.txt), or None when it printed nothing."""
    path = Path(run.path) / "console.txt"
    if not path.exists():
        return None
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
