"""Faults while writing (issue 16 class 6), on real tmpfs mounts, never faked exceptions: a disk that fills
up in the middle of a run, a disk too small for the first checkpoint, a read-only runs folder; and the
half-written files that a killed process leaves behind."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from appsupport import shown
from streamlit.testing.v1 import AppTest

from bincls import BinclsError
from bincls.models.checkpoint import read_checkpoint
from bincls.paths import PROJECT_ROOT
from bincls.runs.folder import RunFolder, list_runs
from bincls.training.config import TrainConfig
from bincls.training.events import Listener
from bincls.training.launcher import start_training
from bincls.training.loop import train
from pages.support.shared.keys import TRAIN_KEYS

TINY = {"epochs": 3, "img_size": 32, "batch_size": 16, "workers": 0, "patience": 0}
APP = str(Path(__file__).resolve().parents[2] / "app.py")


@pytest.fixture
def tmpfs(tmp_path):
    """`mount(size, read_only=False)` mounts a real tmpfs and returns its folder; unmounted afterwards.
    (The tests run as root on developer machines and in CI; where mounting is refused they skip, saying
    why.)"""
    mounted: list[Path] = []

    def mount(size: str, read_only: bool = False) -> Path:
        where = tmp_path / f"tmpfs{len(mounted)}"
        where.mkdir()
        options = f"size={size}" + (",ro" if read_only else "")
        out = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
                             capture_output=True, text=True)  # fmt: skip
        if out.returncode:
            pytest.skip(f"cannot mount a tmpfs here ({out.stderr.strip()})")
        mounted.append(where)
        return where

    yield mount
    for where in mounted:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def fill(folder: Path) -> Path:
    """Write zeros until the file system says it is full: a really full disk."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


class FillTheDiskAt(Listener):
    """Fills the runs folder's disk once the run reports the end of `epoch` (before that epoch's saves)."""

    def __init__(self, epoch: int):
        self.epoch, self.run_id = epoch, None

    def run_started(self, info: dict) -> None:
        self.run_id = info["run_id"]

    def epoch_end(self, record: dict) -> None:
        if record["epoch"] == self.epoch:
            fill(Path(os.environ["BINCLS_RUNS_DIR"]))


def test_a_disk_that_fills_up_mid_run_keeps_the_checkpoints_and_fails_the_run_with_the_reason(
    sample_dir, tmpfs, monkeypatch
):
    runs = tmpfs("48m")
    monkeypatch.setenv("BINCLS_RUNS_DIR", str(runs))
    cfg = TrainConfig(data=[str(sample_dir)], **TINY)
    with pytest.raises(BinclsError, match="No space left on device") as info:
        train(cfg, listeners=[FillTheDiskAt(2)])
    assert "previous" in str(info.value) and "is kept" in str(info.value)
    (run,) = list_runs(runs)
    status = json.loads((run.path / "status.json").read_text())  # written although the disk is full
    assert status["state"] == "failed" and "No space left on device" in status["error"]
    assert run.status()["state"] == "failed"  # not "interrupted" without a reason
    assert read_checkpoint(run.last_checkpoint)["epochs_done"] == 1
    assert read_checkpoint(run.best_checkpoint)["epoch"] == 1
    assert not [p.name for p in run.path.iterdir() if p.name.endswith(".tmp")]
    # Free the space and resume: the run ends as if nothing had happened.
    (runs / "filler").unlink()
    result = train(TrainConfig.from_dict(run.config()), run=run, resume=True)
    assert result.state == "finished" and read_checkpoint(run.last_checkpoint)["epochs_done"] == 3


def _train_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bincls", "train", *args], capture_output=True, text=True,
                          cwd=PROJECT_ROOT, timeout=300)  # fmt: skip


def test_the_cli_on_a_disk_too_small_for_a_checkpoint_says_so_without_a_traceback(sample_dir, tmpfs):
    runs = tmpfs("1m")  # room for the run's small files, not for a 2 MB checkpoint
    out = _train_cli(str(sample_dir), "--runs-dir", str(runs), "--epochs", "2", "--img-size", "32",
                     "--workers", "0")  # fmt: skip
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    last = out.stderr.strip().splitlines()[-1]  # after the console's progress lines
    assert last.startswith("error: Could not save the checkpoint best.pt")
    assert "No space left on device" in last
    (run,) = list_runs(runs)
    status = run.status()
    assert status["state"] == "failed" and "No space left on device" in status["error"]


def test_a_read_only_runs_folder_is_a_message_in_the_cli_and_the_api(sample_dir, tmpfs):
    runs = tmpfs("1m", read_only=True)
    out = _train_cli(str(sample_dir), "--runs-dir", str(runs), "--epochs", "1", "--img-size", "32")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("error: Cannot start a run in") and "Read-only file system" in last
    cfg = TrainConfig(data=[str(sample_dir)], **TINY)
    with pytest.raises(BinclsError, match="Read-only file system"):
        start_training(cfg, runs)
    with pytest.raises(BinclsError, match="Read-only file system"):
        train(cfg, runs_dir=runs)
    with pytest.raises(BinclsError, match="Read-only file system"):
        train(cfg, runs_dir=runs / "new-subfolder")


def test_a_read_only_runs_folder_is_a_message_on_the_train_page(tmpfs, monkeypatch):
    monkeypatch.setenv("BINCLS_RUNS_DIR", str(tmpfs("1m", read_only=True)))
    at = AppTest.from_file(APP, default_timeout=90)
    at.run()
    at.switch_page("pages/train.py").run()
    at.number_input(key=TRAIN_KEYS["img_size"]).set_value(32).run()
    next(b for b in at.button if b.label == "Train").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Read-only file system" in shown(e.value) for e in at.error), [e.value for e in at.error]


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_half_written_files_of_a_killed_process_are_removed_when_the_run_resumes(sample_dir, tmp_path):
    holder: list = []

    class StopAfterFirstEpoch(Listener):
        def run_started(self, info: dict) -> None:
            holder.append(info["run_id"])

        def epoch_end(self, record: dict) -> None:
            RunFolder(tmp_path / "runs" / holder[0]).request_stop()

    cfg = TrainConfig(data=[str(sample_dir)], **{**TINY, "epochs": 2})
    run = train(cfg, runs_dir=tmp_path / "runs", listeners=[StopAfterFirstEpoch()]).run
    dead = _dead_pid()
    leftovers = [f".{name}.{dead}.tmp" for name in ("last.pt", "best.pt", "status.json")]
    leftovers.append(f"split.csv.{dead}.tmp")
    for name in leftovers:
        (run.path / name).write_bytes(b"PK\x03\x04 half a checkpoint")
    alive = run.path / f".last.pt.{os.getpid()}.tmp"  # a save in progress by a live process: kept
    alive.write_bytes(b"in progress")
    out = _train_cli("--resume", str(run.path))
    assert out.returncode == 0, out.stderr
    assert not [n for n in leftovers if (run.path / n).exists()] and alive.exists()
    assert run.status()["state"] == "finished"
