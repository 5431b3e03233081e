"""The run folder contract and the background launcher."""

from __future__ import annotations

import json
import time

import pytest

from bincls import BinclsError
from bincls.launcher import BusyError, active_run, start_training, stop_run
from bincls.runs import RunFolder, list_runs
from bincls.train import TrainConfig


def test_status_and_metrics_files(tmp_path):
    run = RunFolder.create(tmp_path, "x")
    assert run.status()["state"] == "queued"
    run.set_status(state="running", epoch=1, loss=float("nan"))
    st = json.loads((run.path / "status.json").read_text())  # NaN is written as null: still valid JSON
    assert st["epoch"] == 1 and st["loss"] is None
    run.append_metrics({"kind": "step", "loss": 1.0})
    with open(run.path / "metrics.jsonl", "a") as f:
        f.write('{"kind": "step", "lo')  # a line still being written by another process
    assert run.read_metrics() == [{"kind": "step", "loss": 1.0}]
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
