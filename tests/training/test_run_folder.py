"""The run folder contract and the background launcher."""

from __future__ import annotations

import json
import time

import pytest

from bincls import BinclsError
from bincls.runs.active import BusyError, active_run
from bincls.runs.folder import RunFolder, list_runs
from bincls.training.config import TrainConfig
from bincls.training.launcher import start_training, stop_run


def test_status_and_metrics_files(tmp_path):
    run = RunFolder.create(tmp_path, "x")
    assert run.status()["state"] == "queued"
    run.set_status(state="running", epoch=1, loss=float("nan"))
    st = json.loads((run.path / "status.json").read_text())  # NaN is written as null: still valid JSON
    assert st["epoch"] == 1 and st["loss"] is None
    step = {"kind": "step", "epoch": 1, "step": 1, "steps_per_epoch": 2, "global_step": 1, "loss": 1.0}
    run.append_metrics(step)
    with open(run.path / "metrics.jsonl", "a") as f:
        f.write('{"kind": "step", "lo')  # a line still being written by another process
    assert run.read_metrics() == [step]
    assert not list(run.path.glob("*.tmp")) and not list(run.path.glob(".*.tmp"))


def test_dead_running_process_reads_as_interrupted(tmp_path):
    run = RunFolder.create(tmp_path, "x")
    run.set_status(state="running", pid=2**22 + 12345)  # no such process
    assert run.status()["state"] == "interrupted"


def test_delete_is_confined_to_the_runs_folder(tmp_path):
    runs = tmp_path / "runs"
    run = RunFolder.create(runs, "x")
    run.set_status(state="finished")
    outside = RunFolder.create(tmp_path / "elsewhere", "y")
    outside.set_status(state="finished")
    with pytest.raises(BinclsError, match="Refusing"):
        outside.delete(runs)
    assert outside.path.exists()
    run.delete(runs)
    assert not run.path.exists() and list_runs(runs) == []


@pytest.mark.slow
def test_launcher_runs_in_background_one_at_a_time_and_stops(tmp_path, sample_dir):
    cfg = TrainConfig(data=[str(sample_dir)], epochs=50, img_size=32, workers=0, patience=0)
    run = start_training(cfg, tmp_path)
    try:
        with pytest.raises(BusyError, match=run.id):
            start_training(cfg, tmp_path)
        assert active_run(tmp_path) == run
        deadline = time.time() + 120
        while time.time() < deadline and not [m for m in run.read_metrics() if m["kind"] == "epoch"]:
            time.sleep(0.5)
        assert [m for m in run.read_metrics() if m["kind"] == "epoch"], (run.path / "console.txt").read_text()
        stop_run(run)
        while time.time() < deadline and run.status()["state"] in ("queued", "running"):
            time.sleep(0.3)
        assert run.status()["state"] == "stopped"
        assert run.last_checkpoint.is_file()
        assert active_run(tmp_path) is None
    finally:
        run.request_stop()


@pytest.mark.slow
def test_sigterm_to_the_whole_group_stops_a_streaming_run_cleanly(tmp_path, sample_dir):
    """As `pkill -f` or a terminal's Ctrl+C does: every process of the run, workers included, gets it."""
    import os
    import signal
    import subprocess
    import sys

    from bincls.paths import PROJECT_ROOT

    proc = subprocess.Popen(
        [sys.executable, "-m", "bincls", "train", str(sample_dir), "--epochs", "50", "--img-size", "32",
         "--workers", "2", "--patience", "0", "--runs-dir", str(tmp_path)],
        cwd=PROJECT_ROOT, env={**os.environ, "BINCLS_MEMORY_BUDGET": "1K"}, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.time() + 120
        run = None
        while time.time() < deadline:
            runs = list_runs(tmp_path)
            if runs and [m for m in runs[0].read_metrics() if m["kind"] == "step"]:
                run = runs[0]
                break
            time.sleep(0.3)
        assert run is not None, "the run never took a step"
        os.killpg(proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, err
    assert run.status()["state"] == "stopped", run.status().get("error")
    assert out.strip().splitlines()[-1] == str(run.path)
