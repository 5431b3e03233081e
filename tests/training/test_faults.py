"""Faults: resuming, SIGKILL at random moments, a full or read-only disk, out of memory on the device."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch

from bincls import BinclsError
from bincls.models.checkpoint import load_model, read_checkpoint
from bincls.paths import PROJECT_ROOT
from bincls.runs.folder import RunFolder
from bincls.runs.process import pid_alive
from bincls.training.config import TrainConfig
from bincls.training.events import Listener
from bincls.training.launcher import check_resumable, resume_training, start_training
from bincls.training.loop import train

FAST = {"epochs": 4, "img_size": 48, "batch_size": 16, "workers": 0, "patience": 0}


def _cfg(sample_dir, **kw) -> TrainConfig:
    return TrainConfig(data=[str(sample_dir)], **{**FAST, **kw})


class _StopAt(Listener):
    """Asks for a stop when the run reaches (epoch, step); step 0 means at the end of that epoch, -1 right
    after its last step (the stop is seen only once the epoch's steps are done, before validation)."""

    def __init__(self, run_holder: list, epoch: int, step: int = 0):
        self.holder, self.epoch, self.step_no = run_holder, epoch, step

    def run_started(self, info: dict) -> None:
        self.holder.append(info["run_id"])

    def step(self, record: dict) -> None:
        step = record["steps_per_epoch"] if self.step_no == -1 else self.step_no
        if (record["epoch"], record["step"]) == (self.epoch, step):
            self._stop()

    def epoch_end(self, record: dict) -> None:
        if self.step_no == 0 and record["epoch"] == self.epoch:
            self._stop()

    def _stop(self) -> None:
        from bincls.paths import runs_dir

        (runs_dir() / self.holder[0] / "STOP").write_text("test")


def _adam_steps(ckpt: dict) -> int:
    return int(max(s["step"] for s in ckpt["optimizer"]["state"].values()))


@pytest.mark.parametrize(
    "stop_at", [(2, 0), (2, 2), (2, -1)], ids=["epoch-end", "mid-epoch", "after-last-step"]
)
def test_resume_continues_with_optimizer_state_and_the_same_split(sample_dir, tmp_path, stop_at):
    data = tmp_path / "data"
    for cls in ("ants", "bees"):
        (data / cls).mkdir(parents=True)
        for f in sorted((sample_dir / cls).iterdir()):
            os.link(f, data / cls / f.name)
    holder: list = []
    cfg = _cfg(data, schedule="onecycle")  # one-cycle refuses to step past its planned total
    first = train(cfg, listeners=[_StopAt(holder, *stop_at)])
    run = first.run
    assert first.state == "stopped"
    split_before = run.split_path.read_bytes()
    last = read_checkpoint(run.last_checkpoint)
    # New images after the first attempt must not change what the resumed run trains on.
    extra = next((sample_dir / "ants").iterdir())
    os.link(extra, data / "ants" / "zz-new.jpg")
    check_resumable(run)
    resumed = train(TrainConfig.from_dict(run.config()), run=run, resume=True)
    assert resumed.state == "finished"
    assert run.split_path.read_bytes() == split_before
    records = run.read_metrics()
    epochs = [r for r in records if r["kind"] == "epoch"]
    assert [r["epoch"] for r in epochs] == [1, 2, 3, 4]
    # The resumed epoch's training loss counts its steps before the stop too: with none left after a
    # stop at its last step it read 0.0, and a loss that "rose" from 0 tripped the divergence guard.
    assert all(r["train_loss"] > 0.05 for r in epochs), [r["train_loss"] for r in epochs]
    steps = records[0]["steps_per_epoch"]
    step_ids = [r["global_step"] for r in records if r["kind"] == "step"]
    assert step_ids == list(range(1, 4 * steps + 1))  # every step once: none lost, none repeated
    final = read_checkpoint(run.last_checkpoint)
    assert final["global_step"] == 4 * steps and final["epochs_done"] == 4
    # Adam counts its own steps: had its state not been restored, it would count only the resumed ones.
    assert _adam_steps(final) == 4 * steps
    assert _adam_steps(last) == last["global_step"] < 4 * steps
    assert run.status()["resumes"] == 1


def test_resume_refuses_a_finished_or_running_run(sample_dir, tmp_path):
    run = train(_cfg(sample_dir, epochs=1)).run
    with pytest.raises(BinclsError, match="finished"):
        check_resumable(run)
    other = subprocess.Popen(["sleep", "60"])
    try:
        run.set_status(state="running", pid=other.pid)
        with pytest.raises(BinclsError, match="still running"):
            check_resumable(run)
    finally:
        other.kill()
        other.wait()


def test_cli_resume_of_a_run_killed_before_its_first_checkpoint_starts_over(sample_dir, tmp_path):
    run = RunFolder.create(tmp_path / "runs", label="small-cnn")
    run.write_config(_cfg(sample_dir, epochs=2).to_dict())
    run.set_status(state="running", pid=999_999_999)  # a process that no longer exists
    assert run.status()["state"] == "interrupted"
    out = subprocess.run(
        [sys.executable, "-m", "bincls", "train", "--resume", str(run.path)],
        capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == str(run.path)
    assert run.status()["state"] == "finished"
    assert [r["epoch"] for r in run.read_metrics() if r["kind"] == "epoch"] == [1, 2]


# A full disk and a read-only runs folder, on real tmpfs mounts: tests/training/test_write_faults.py


def test_out_of_memory_on_the_device_says_what_to_change(sample_dir, tmp_path, monkeypatch):
    import bincls.training.setup as tr

    real_build = tr.build_model

    def build(cfg, load_weights=True):
        model = real_build(cfg, load_weights)

        def oom(module, inputs):
            raise torch.OutOfMemoryError(
                "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 4 GiB total)"
            )

        model.register_forward_pre_hook(oom)
        return model

    monkeypatch.setattr(tr, "build_model", build)
    with pytest.raises(BinclsError, match="smaller batch size or image size"):
        train(_cfg(sample_dir), runs_dir=tmp_path)
    run = RunFolder(next(p for p in tmp_path.iterdir() if p.is_dir()))
    st = run.status()
    assert st["state"] == "failed" and "Out of memory" in st["error"] and "batch size 16" in st["error"]


# SIGKILL at random moments ------------------------------------------------------------------------------
def _check_readable(run: RunFolder) -> dict:
    """What must hold after any kill: every file a reader opens is whole."""
    status = json.loads((run.path / "status.json").read_text())  # valid JSON, never half a file
    text = (run.path / "metrics.jsonl").read_text() if (run.path / "metrics.jsonl").exists() else ""
    for line in text.split("\n")[:-1]:  # every complete line; a torn last line (no newline) is allowed
        json.loads(line)
    for ckpt in (run.best_checkpoint, run.last_checkpoint):
        if ckpt.exists():
            load_model(ckpt)
    return status


def _lines(run: RunFolder) -> int:
    try:
        return (run.path / "metrics.jsonl").read_bytes().count(b"\n")
    except OSError:
        return 0


def _wait_training(run: RunFolder, lines_before: int, timeout: float = 300) -> None:
    """Until this attempt has logged a training step of its own."""
    end = time.monotonic() + timeout
    while _lines(run) <= lines_before and run.status()["state"] != "finished":
        assert run.status()["state"] in ("queued", "running"), run.status()
        assert time.monotonic() < end, "the run did not start training"
        time.sleep(0.05)


def _wait_dead(pid: int, timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    while pid_alive(pid):
        assert time.monotonic() < end, f"process {pid} survived SIGKILL"
        time.sleep(0.05)


@pytest.mark.slow
def test_sigkill_twenty_times_then_resume_to_the_end(sample_dir, tmp_path):
    from appsupport import open_page

    from bincls.paths import runs_dir

    runs = runs_dir()  # the one the app's Runs page reads
    rng = random.Random(7)
    cfg = _cfg(sample_dir, epochs=100, img_size=64)
    run = start_training(cfg, runs)
    kills, states, shown = 0, [], False
    try:
        while kills < 20:
            lines_before = _lines(run)
            if kills % 2:  # anywhere: importing torch, scanning, preparing the images
                time.sleep(rng.uniform(0.2, 6.0))
            else:  # in training: during steps, validation and checkpoint saves
                _wait_training(run, lines_before)
                time.sleep(rng.uniform(0.0, 1.5))
            if run.status().get("state") == "finished":
                run = start_training(cfg, runs)  # it outran the kills: start another and keep killing
                continue
            pid = run.status()["pid"]
            os.killpg(pid, signal.SIGKILL)
            _wait_dead(pid)
            kills += 1
            status = _check_readable(run)
            assert status["state"] in ("queued", "running")  # the dead process could not say otherwise
            assert run.status()["state"] == "interrupted"
            states.append(_lines(run) - lines_before)  # what this attempt logged before it was killed
            if not shown:  # the app says so too
                at = open_page("runs")
                assert any("interrupted" in str(df.value.to_dict()) for df in at.dataframe), "Runs page"
                shown = True
            resume_training(run, runs)
        end = time.monotonic() + 600
        while run.status()["state"] in ("queued", "running"):
            assert time.monotonic() < end, "the resumed run did not finish"
            time.sleep(0.5)
    finally:  # a failed assertion must not leave a detached training process behind
        if run.status().get("state") in ("queued", "running"):
            os.killpg(run.status()["pid"], signal.SIGKILL)
    status = _check_readable(run)
    assert run.status()["state"] == "finished", (run.path / "console.txt").read_text()[-2000:]
    assert not [p.name for p in run.path.iterdir() if p.name.endswith(".tmp")]  # killed saves cleaned up
    records = run.read_metrics()
    assert [r["epoch"] for r in records if r["kind"] == "epoch"] == list(range(1, 101))
    steps = records[0]["steps_per_epoch"]
    assert read_checkpoint(run.last_checkpoint)["global_step"] == 100 * steps
    assert status["resumes"] >= 1
    assert sum(n > 0 for n in states) >= 10, f"kills in training: lines logged by each attempt {states}"
