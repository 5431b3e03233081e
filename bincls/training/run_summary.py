"""What a run folder says about its run, in one place: state, epochs done of asked, duration, best epoch.

The Runs table, the Train page's run panel, the sidebar and the run pickers all read runs through
`summarize`, so they never disagree about a run; it reads only the run folder, never a trainer.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from bincls.errors import BinclsError
from bincls.training.config import DEFAULT_LR, read_run_config
from bincls.training.run_folder import ACTIVE, RunFolder, list_runs

ENDED_EARLY = ("failed", "interrupted", "stopped")  # states a run can be resumed from


@dataclass(frozen=True)
class RunSummary:
    id: str
    state: str  # queued, running, finished, stopped, failed, interrupted (or unknown)
    model: str
    optimizer: str
    lr: float | None  # the one set, else the optimizer's default
    data: list[str] = field(default_factory=list)
    created: float | None = None  # seconds since the epoch
    epoch: int | None = None  # the epoch in progress, while the run trains
    epochs_done: int = 0
    epochs_asked: int | None = None
    duration_s: float | None = None  # start to end, once the run has ended
    best_epoch: int | None = None
    best_val_accuracy: float | None = None
    best_record: dict | None = None  # the best epoch's metrics line, when the epochs were given
    error: str | None = None  # why it failed
    has_last_checkpoint: bool = False

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    @property
    def resumable(self) -> bool:
        """It ended before its last epoch without finishing: Resume can continue it."""
        return self.state in ENDED_EARLY and self.epochs_done < (self.epochs_asked or 0)

    @property
    def early_stopped(self) -> bool:
        return self.state == "finished" and self.epochs_done < (self.epochs_asked or 0)


def epoch_records(records: list[dict]) -> list[dict]:
    """The per-epoch lines of a run's metrics (the others are per step)."""
    return [r for r in records if r.get("kind") == "epoch"]


def summarize(run: RunFolder, epochs: list[dict] | None = None) -> RunSummary:
    """The run as its folder describes it.

    `epochs`: the run's epoch lines from metrics.jsonl, when the caller has read them (to draw curves):
    epochs done and the best epoch's metrics then come from them. Without them, only status.json and
    config.json are read, which keeps a table of many runs fast.
    """
    status, cfg = run.status(), run.config()
    optimizer = cfg.get("optimizer", "")
    if epochs is None:
        done = status.get("epochs_done")
        if done is None:  # still running, or interrupted: the epochs finished so far
            done = (status.get("last_epoch_metrics") or {}).get("epoch", 0)
    else:
        done = len(epochs)
    started, finished = status.get("started"), status.get("finished")
    best_epoch = status.get("best_epoch")
    return RunSummary(
        id=run.id,
        state=status.get("state", "unknown"),
        model=cfg.get("model") or status.get("model", ""),
        optimizer=optimizer,
        lr=cfg.get("lr") or DEFAULT_LR.get(optimizer),
        data=[str(p) for p in cfg.get("data", [])],
        created=status.get("created") or status.get("started"),
        epoch=status.get("epoch"),
        epochs_done=int(done or 0),
        epochs_asked=cfg.get("epochs") or status.get("epochs"),
        duration_s=finished - started if started and finished else None,
        best_epoch=best_epoch,
        best_val_accuracy=status.get("best_val_accuracy"),
        best_record=next((r for r in epochs or [] if r.get("epoch") == best_epoch), None),
        error=status.get("error"),
        has_last_checkpoint=run.last_checkpoint.exists(),
    )


def config_problem(run: RunFolder) -> str | None:
    """Why the run's config.json does not read back as settings (edited by hand), or None."""
    try:
        read_run_config(run.path)
    except BinclsError as exc:
        return str(exc)
    return None


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
