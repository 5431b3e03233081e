"""Run summaries: what a run folder says about its run, the same for every page and the CLI."""

from __future__ import annotations

import json
import os

from bincls.training.run_folder import RunFolder
from bincls.training.run_summary import (
    config_problem,
    console_tail,
    epoch_records,
    runs_with_checkpoint,
    summarize,
)

GONE_PID = 2**22 + 12345  # no such process


def _run(base, state: str, epochs: int = 3, done: int | None = None, **status) -> RunFolder:
    """A run folder as a training process leaves it, written by hand: `done` epochs of `epochs`."""
    run = RunFolder.create(base, "small-cnn")
    run.write_config({"data": ["/data/ants", "/data/bees"], "model": "small-cnn", "optimizer": "sgd",
                      "epochs": epochs})  # fmt: skip
    for e in range(1, (done or 0) + 1):
        run.append_metrics({"kind": "step", "epoch": e, "step": 1, "steps_per_epoch": 1, "loss": 1.0 / e})
        run.append_metrics({"kind": "epoch", "epoch": e, "val_accuracy": 0.5 + e / 10, "val_loss": 1.0 / e})
    run.set_status(state=state, **status)
    return run


def test_a_finished_run(tmp_path):
    run = _run(tmp_path, "finished", epochs=3, done=3, started=100.0, finished=190.0, epochs_done=3,
               best_epoch=2, best_val_accuracy=0.7)  # fmt: skip
    s = summarize(run)
    assert (s.id, s.state, s.model, s.optimizer) == (run.id, "finished", "small-cnn", "sgd")
    assert s.lr == 1e-2  # sgd's default: the run did not set one
    assert s.data == ["/data/ants", "/data/bees"] and s.created is not None
    assert (s.epochs_done, s.epochs_asked, s.duration_s) == (3, 3, 90.0)
    assert (s.best_epoch, s.best_val_accuracy, s.best_record) == (2, 0.7, None)  # no epochs given
    assert not s.active and not s.resumable and not s.early_stopped
    full = summarize(run, epoch_records(run.read_metrics()))
    assert full.best_record["epoch"] == 2 and full.best_record["val_accuracy"] == 0.7


def test_early_stopping_and_a_stopped_run(tmp_path):
    early = summarize(_run(tmp_path, "finished", epochs=10, done=4, epochs_done=4))
    assert early.early_stopped and not early.resumable
    stopped = summarize(_run(tmp_path, "stopped", epochs=10, done=2, epochs_done=2))
    assert stopped.resumable and not stopped.has_last_checkpoint and stopped.duration_s is None


def test_an_interrupted_run_counts_its_epochs_from_the_last_epoch_line(tmp_path):
    run = _run(tmp_path, "running", epochs=5, done=2, pid=GONE_PID, epoch=3,
               last_epoch_metrics={"epoch": 2, "val_accuracy": 0.7})  # fmt: skip
    s = summarize(run)
    assert s.state == "interrupted" and s.epochs_done == 2 and s.resumable
    assert summarize(run, epoch_records(run.read_metrics())).epochs_done == 2


def test_a_live_run_and_a_failed_one(tmp_path):
    live = summarize(_run(tmp_path, "running", pid=os.getpid(), epoch=2, epochs=7))
    assert live.active and live.epoch == 2 and live.epochs_asked == 7 and live.epochs_done == 0
    failed = summarize(_run(tmp_path, "failed", error="CUDA out of memory"))
    assert failed.error == "CUDA out of memory" and failed.resumable


def test_a_hand_edited_config_is_named_not_raised(tmp_path):
    run = _run(tmp_path, "finished")
    (run.path / "config.json").write_text(json.dumps({"data": ["x"], "epochs": "many"}))
    assert "epochs must be a whole number >= 1" in config_problem(run)
    (run.path / "config.json").write_text("[1, 2]")
    s = summarize(run)  # a config that is no object reads as no settings
    assert s.model == "" and s.epochs_asked is None and config_problem(run)
    good = RunFolder.create(tmp_path, "ok")
    good.write_config({"data": ["x"], "epochs": 2})
    assert config_problem(good) is None


def test_runs_with_checkpoint_are_the_ended_ones_with_a_pt(tmp_path):
    ended = _run(tmp_path, "finished")
    (ended.path / "best.pt").write_bytes(b"x")
    stopped = _run(tmp_path, "stopped")
    (stopped.path / "last.pt").write_bytes(b"x")
    _run(tmp_path, "failed")  # no checkpoint
    live = _run(tmp_path, "running", pid=os.getpid())
    (live.path / "last.pt").write_bytes(b"x")
    assert {r.id for r in runs_with_checkpoint(tmp_path)} == {ended.id, stopped.id}


def test_console_tail(tmp_path):
    run = _run(tmp_path, "failed")
    assert console_tail(run) is None
    (run.path / "console.txt").write_text("\n".join(f"line {i}" for i in range(100)))
    assert console_tail(run, lines=3) == "line 97\nline 98\nline 99"
