"""Stale state (issue 16 class 7): a run's process is known by its pid and its start time, so a pid that
now belongs to another live process (after a reboot) reads as interrupted, blocks nothing, and Stop and
Delete clear it; two `train` commands on one runs folder are checked for busy. Real processes only."""

from __future__ import annotations

import subprocess
import sys
import time

import psutil
import pytest
from appsupport import open_page

from bincls import BinclsError
from bincls.paths import PROJECT_ROOT, runs_dir
from bincls.runs.active import BusyError, active_run
from bincls.runs.folder import ACTIVE, RunFolder
from bincls.runs.process import pid_alive
from bincls.training.config import TrainConfig
from bincls.training.launcher import check_resumable, claim_new_run, stop_run


@pytest.fixture
def other_process():
    """A live process that has nothing to do with bincls (its pid is what a reboot could hand out)."""
    proc = subprocess.Popen(["sleep", "300"])
    yield proc
    proc.kill()
    proc.wait()


def _stale_run(pid: int, started: float | None) -> RunFolder:
    run = RunFolder.create(runs_dir(), "small-cnn")
    run.write_config(TrainConfig(data=["."], epochs=1).to_dict())
    fields = {"state": "running", "pid": pid}
    if started is not None:
        fields["pid_started"] = started
    run.set_status(**fields)
    if started is None:  # as an old release or a hand-written status has it: no start time at all
        import json

        status = json.loads((run.path / "status.json").read_text())
        status.pop("pid_started", None)
        (run.path / "status.json").write_text(json.dumps(status))
    return run


@pytest.mark.parametrize("recorded", ["before-reboot", "not-recorded"])
def test_a_pid_now_owned_by_another_process_reads_as_interrupted_and_blocks_nothing(other_process, recorded):
    pid = other_process.pid
    started = psutil.Process(pid).create_time() - 3600 if recorded == "before-reboot" else None
    run = _stale_run(pid, started)
    assert psutil.pid_exists(pid)
    assert run.status()["state"] == "interrupted"
    assert active_run(runs_dir()) is None
    check_resumable(run)  # may be resumed
    new = claim_new_run(TrainConfig(data=["."], epochs=1))  # a new run is not told "busy"
    assert new.status()["state"] == "queued"


def test_the_same_process_with_its_start_time_is_still_running(other_process):
    run = _stale_run(other_process.pid, psutil.Process(other_process.pid).create_time())
    assert run.status()["state"] == "running"
    with pytest.raises(BusyError, match=run.id):
        claim_new_run(TrainConfig(data=["."], epochs=1))


def test_stop_and_delete_clear_a_stale_run(other_process):
    run = _stale_run(other_process.pid, psutil.Process(other_process.pid).create_time() - 3600)
    stop_run(run)  # its process cannot answer a STOP file: the status is cleared at once
    status = run.status()
    assert status["state"] == "failed" and "is gone" in status["error"]
    assert not run.stop_requested() and other_process.poll() is None  # the other process is untouched
    stale = _stale_run(other_process.pid, None)
    stale.delete(runs_dir())
    assert not stale.path.exists()


def test_the_pages_do_not_show_a_stale_run_as_running(other_process):
    run = _stale_run(other_process.pid, psutil.Process(other_process.pid).create_time() - 3600)
    at = open_page("runs")
    table = next(d.value for d in at.dataframe if "State" in d.value.columns or "state" in d.value.columns)
    column = "State" if "State" in table.columns else "state"
    assert any("interrupted" in str(v) for v in table[column]), table
    at = open_page("train")
    assert not any(run.id in w.value and "already training" in w.value for w in at.warning)


def test_garbage_pids_are_never_alive():
    for pid in (None, 0, -1, True, "123", 2.5, 2**40):
        assert not pid_alive(pid)


def _train_cli(*args: str, **kwargs) -> subprocess.Popen | subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bincls", "train", *args], capture_output=True, text=True,
                          cwd=PROJECT_ROOT, timeout=300, **kwargs)  # fmt: skip


def test_train_and_resume_commands_are_told_which_run_is_busy(sample_dir, tmp_path):
    """This test's own process holds a run claimed as `train` claims it (queued, live pid and start time)."""
    runs = tmp_path / "runs"
    busy = claim_new_run(TrainConfig(data=[str(sample_dir)], epochs=1), runs)
    second = _train_cli(str(sample_dir), "--runs-dir", str(runs), "--epochs", "1", "--img-size", "32")
    assert second.returncode == 2 and "Traceback" not in second.stderr, second.stderr
    assert f"error: Run {busy.id} is already training" in second.stderr
    assert [p.name for p in runs.iterdir() if p.is_dir()] == [busy.id]  # the second made no run folder
    other = RunFolder.create(runs, "small-cnn")
    other.write_config(TrainConfig(data=[str(sample_dir)], epochs=1).to_dict())
    other.set_status(state="stopped")
    resumed = _train_cli("--resume", str(other.path))
    assert resumed.returncode == 2 and f"Run {busy.id} is already training" in resumed.stderr
    assert other.status()["state"] == "stopped"


@pytest.mark.slow
def test_a_second_train_command_on_the_same_runs_folder_is_told_which_run_is_busy(sample_dir, tmp_path):
    runs = tmp_path / "runs"
    first = subprocess.Popen(
        [sys.executable, "-m", "bincls", "train", str(sample_dir), "--runs-dir", str(runs), "--epochs", "200",
         "--img-size", "32", "--workers", "0", "--patience", "0"],
        cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while (busy := active_run(runs)) is None or busy.status()["state"] != "running":
            assert first.poll() is None, first.stderr.read()
            assert time.monotonic() < deadline, "the first run did not start"
            time.sleep(0.2)
        second = _train_cli(str(sample_dir), "--runs-dir", str(runs), "--epochs", "1", "--img-size", "32")
        assert second.returncode == 2 and "Traceback" not in second.stderr
        assert f"error: Run {busy.id} is already training" in second.stderr
        assert len([p for p in runs.iterdir() if p.is_dir()]) == 1  # the second made no run folder
        other = RunFolder.create(runs, "small-cnn")  # a stopped run: resuming it now is busy too
        other.write_config(TrainConfig(data=[str(sample_dir)], epochs=1).to_dict())
        other.set_status(state="stopped")
        resumed = _train_cli("--resume", str(other.path))
        assert resumed.returncode == 2 and f"Run {busy.id} is already training" in resumed.stderr
    finally:
        run = active_run(runs)
        if run is not None:
            stop_run(run)
        try:
            first.wait(120)
        except subprocess.TimeoutExpired:
            first.kill()
            first.wait()
    assert RunFolder(busy.path).status()["state"] not in ACTIVE


def test_a_run_that_is_busy_cannot_be_resumed_from_the_api(other_process):
    run = _stale_run(other_process.pid, psutil.Process(other_process.pid).create_time())
    with pytest.raises(BinclsError, match="still running"):
        check_resumable(run)
