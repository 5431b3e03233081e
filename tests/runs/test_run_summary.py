"""Run summaries: what a run folder says about its run, the same for every page and the CLI."""

from __future__ import annotations

import json
import os
import time

import pytest

from bincls import BinclsError
from bincls.chance import chance_verdict
from bincls.runs.folder import RunFolder
from bincls.runs.names import set_run_name
from bincls.runs.results import keep_test_result, saved_test_result
from bincls.runs.summary import console_tail, epoch_records, runs_with_checkpoint, summarize
from bincls.training.config import config_problem

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
    assert s.lr is None  # as config.json has it: a run written by hand without one (presets always set it)
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
    assert "epochs must be a whole number from 1 to 10000" in config_problem(run.path)
    (run.path / "config.json").write_text("[1, 2]")
    s = summarize(run)  # a config that is no object reads as no settings
    assert s.model == "" and s.epochs_asked is None and config_problem(run.path)
    good = RunFolder.create(tmp_path, "ok")
    good.write_config({"data": ["x"], "epochs": 2})
    assert config_problem(good.path) is None


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


# Runs that learned nothing (issue 17, item 4) ----------------------------------------------------------
def _epochs_at(run: RunFolder, aurocs: list[float], p_std: float = 0.1, n: int = 200) -> list[dict]:
    """Epoch lines of `n` validation images (half of each class) at these AUROCs."""
    lines = [{"kind": "epoch", "epoch": e, "val_loss": 0.69, "val_accuracy": 0.5, "val_auroc": a,
              "val_p_std": p_std, "val_confusion_matrix": [[n // 2, 0], [n // 2, 0]]}
             for e, a in enumerate(aurocs, start=1)]  # fmt: skip
    for line in lines:
        run.append_metrics(line)
    return lines


def test_a_run_at_chance_at_every_epoch_learned_nothing_and_says_why(tmp_path):
    run = _run(tmp_path, "finished", epochs=3, train_images=42, epochs_done=3, val_images=200)
    run.write_config({**run.config(), "weights": "none"})
    lines = _epochs_at(run, [0.48, 0.52, 0.5])
    run.set_status(last_epoch_metrics=lines[-1])
    for s in (summarize(run), summarize(run, epoch_records(run.read_metrics()))):
        assert "learned nothing" in s.learned_nothing and "200 validation images" in s.learned_nothing
        assert "from scratch on 42 images for 3 epochs" in s.learned_nothing  # the likely cause
        assert "Local file" in s.learned_nothing  # what to do, in the page's own words


def test_a_run_that_gives_every_image_the_same_probability_names_the_learning_rate(tmp_path):
    run = _run(tmp_path, "finished", epochs=2, epochs_done=2, val_images=200)
    run.write_config({**run.config(), "lr": 0.5})
    _epochs_at(run, [0.5, 0.5], p_std=0.0)
    text = summarize(run, epoch_records(run.read_metrics())).learned_nothing
    assert "same probability" in text and "learning rate (0.5) is too high" in text


def test_one_epoch_better_than_chance_is_enough_and_small_validation_sets_get_a_wider_band(tmp_path):
    run = _run(tmp_path, "finished", epochs=3, epochs_done=3)
    _epochs_at(run, [0.5, 0.8, 0.55])
    assert summarize(run, epoch_records(run.read_metrics())).learned_nothing is None
    run.set_status(beat_chance_epoch=2, last_epoch_metrics={"val_auroc": 0.5, "val_p_std": 0.1,
                                                            "val_confusion_matrix": [[100, 0], [100, 0]]})
    assert summarize(run).learned_nothing is None  # the trainer noted epoch 2: no need to read the epochs
    # 12 validation images: 0.62 cannot be told from guessing (one standard error is 0.17)
    assert chance_verdict(0.62, 0.1, 6, 6) is not None and chance_verdict(0.95, 0.1, 6, 6) is None
    assert chance_verdict(0.56, 0.1, 200, 200) is None and chance_verdict(0.54, 0.1, 200, 200) is not None


def test_a_running_run_is_not_judged(tmp_path):
    run = _run(tmp_path, "running", epochs=3, pid=os.getpid())
    _epochs_at(run, [0.5])
    assert summarize(run, epoch_records(run.read_metrics())).learned_nothing is None


# Names, settings, duration, test accuracy (item 5) ----------------------------------------------------
def test_a_run_can_be_named_and_renamed_later(tmp_path):
    run = _run(tmp_path, "finished")
    s = summarize(run)  # unnamed: what it trained and when, never a blank
    date = time.strftime("%Y-%m-%d %H:%M", time.localtime(s.created))
    assert s.name is None and s.title == f"small-cnn · from scratch · {date}"
    run.write_config({**run.config(), "preset": "scratch"})
    assert summarize(run).title.startswith("small-cnn · scratch · ")
    run.write_config({**run.config(), "name": "first try"})
    assert summarize(run).name == "first try"
    assert set_run_name(run, "  more\timages\x00 ") == "more images"  # control characters dropped
    assert summarize(run).name == "more images" and summarize(run).title == "more images"
    assert set_run_name(run, "") == "first try"  # back to the name it started with
    with pytest.raises(BinclsError, match="at most 200"):
        set_run_name(run, "x" * 201)


def test_the_settings_a_newcomer_tells_runs_apart_by(tmp_path):
    run = _run(tmp_path, "finished")
    run.write_config({**run.config(), "model": "mobilenet_v2", "weights": "imagenet", "freeze_backbone": True,
                      "preset": "fast", "augment": False, "img_size": 224})  # fmt: skip
    s = summarize(run)
    assert (s.weights_label, s.frozen, s.preset) == ("ImageNet", True, "fast")
    assert (s.augment, s.img_size) == (False, 224)
    run.write_config({**run.config(), "weights": "/w/mobilenet_v2_imagenet.pth", "freeze_backbone": False})
    assert (summarize(run).weights_label, summarize(run).frozen) == ("mobilenet_v2_imagenet.pth", False)
    run.write_config({**run.config(), "weights": "none", "freeze_backbone": False})
    assert summarize(run).frozen is None  # nothing pretrained to freeze


def test_a_resumed_run_counts_every_attempt(tmp_path):
    # The last attempt ran 30 s; the trainer's elapsed_s carries the 120 s of the attempts before it.
    run = _run(tmp_path, "finished", started=1000.0, finished=1030.0, elapsed_s=150.0)
    assert summarize(run).duration_s == 150.0
    old = _run(tmp_path, "finished", started=1000.0, finished=1030.0)  # written before elapsed_s
    assert summarize(old).duration_s == 30.0


def test_a_test_result_is_kept_for_the_checkpoint_it_was_made_with(tmp_path):
    run = _run(tmp_path, "finished")
    ckpt = run.path / "best.pt"
    ckpt.write_bytes(b"weights")
    metrics = {"n": 10, "accuracy": 0.9, "auroc": 0.95, "confusion_matrix": [[4, 1], [0, 5]]}
    keep_test_result(run, ckpt, metrics)
    assert summarize(run).test_accuracy == 0.9 and saved_test_result(run)["positives"] == 5
    os.utime(ckpt, (1, 1))  # a new best.pt (a resumed run): the old test accuracy no longer holds
    assert summarize(run).test_accuracy is None
