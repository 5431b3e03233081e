"""Training under torchrun: sharding, one run folder, metrics like one process, stops and failures."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from bincls.cli import build_parser
from bincls.paths import PROJECT_ROOT
from bincls.runs.folder import RunFolder, list_runs
from bincls.runs.process import pid_alive
from bincls.training.config import TrainConfig, to_command
from bincls.training.distributed import World, shard
from bincls.training.launcher import start_training, stop_run

ARGS = ["--model", "small-cnn", "--img-size", "64", "--epochs", "6", "--patience", "0", "--workers", "0",
        "--batch-size", "16", "--no-augment"]  # fmt: skip


@pytest.mark.parametrize("n, size", [(42, 2), (41, 2), (10, 3), (1, 2)])
def test_shards_cover_every_row_with_equal_counts(n, size):
    table = pd.DataFrame({"path": [f"f{i}" for i in range(n)], "label": [i % 2 for i in range(n)]})
    parts = [shard(table, World(r, r, size), seed=3, pad=True) for r in range(size)]
    assert len({len(p) for p in parts}) == 1  # the same number of steps on every rank
    assert set().union(*(set(p["path"]) for p in parts)) == set(table["path"])
    unpadded = [shard(table, World(r, r, size), seed=3, pad=False) for r in range(size)]
    assert sorted(sum((p["path"].tolist() for p in unpadded), [])) == sorted(table["path"])
    assert shard(table, World(), seed=3, pad=True) is table  # one process: untouched


def test_train_command_reproduces_the_config(sample_dir, tmp_path, monkeypatch):
    import bincls.training.loop
    from bincls import cli
    from bincls.training.recipes import resolve

    for name, cls in (("a b", "ants"), ("c", "bees")):
        os.symlink(sample_dir / cls, tmp_path / name)
    cfg = TrainConfig(
        data=[str(tmp_path / "a b"), str(tmp_path / "c")], class_names=["cat", "dog"], model="mobilenet_v2",
        weights="imagenet", freeze_backbone=True, img_size=160, epochs=7, batch_size=48, optimizer="sgd",
        lr=0.03, weight_decay=1e-4, schedule="onecycle", patience=0, split=[0.8, 0.1, 0.1], seed=5,
        device="cpu", augment=False, balance=False, workers=2, precision="fp32", memory_budget="2G",
    )  # fmt: skip
    # Preflight checks that ImageNet weights are at hand before the CLI trains: a file under torchvision's
    # name is all it looks for, and the captured train below never loads it.
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / "mobilenet_v2-7ebf99e0.pth").write_bytes(b"present")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    cmd = to_command(cfg, processes=4)
    assert cmd[:4] == ["torchrun", "--nproc_per_node=4", "-m", "bincls"]
    seen = {}

    def capture(c, **kw):  # the config the CLI would train with
        seen["cfg"] = c
        raise SystemExit(0)

    monkeypatch.setattr(bincls.training.loop, "train", capture)
    with pytest.raises(SystemExit):
        cli.cmd_train(build_parser().parse_args(shlex.split(shlex.join(cmd))[4:]))
    # The CLI completes the settings once (preflight) and trains exactly what the command line gave.
    assert seen["cfg"].config.to_dict() == resolve(cfg).config.to_dict()
    assert to_command(TrainConfig(data=["d"]))[:5] == ["python", "-m", "bincls", "train", "d"]


def _torchrun(*args: str, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "bincls", "train", *args]  # fmt: skip
    return subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=env, text=True, **kw)


def _epochs(run: RunFolder) -> list[dict]:
    return [r for r in run.read_metrics() if r["kind"] == "epoch"]


@pytest.mark.slow
def test_torchrun_two_gloo_processes_match_one_process(sample_dir, tmp_path):
    runs1, runs2 = tmp_path / "one", tmp_path / "two"
    single = subprocess.run(
        [sys.executable, "-m", "bincls", "train", str(sample_dir), *ARGS, "--runs-dir", str(runs1)],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert single.returncode == 0, single.stderr
    proc = _torchrun(str(sample_dir), *ARGS, "--runs-dir", str(runs2), stdout=subprocess.PIPE,
                     stderr=subprocess.PIPE)  # fmt: skip
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    (one,), (two,) = list_runs(runs1), list_runs(runs2)  # exactly one run folder: only rank 0 writes
    assert out.strip().splitlines() == [str(two.path)]  # one result line, not one per process
    st = two.status()
    assert st["state"] == "finished" and st["processes"] == 2
    assert st["train_images"] == one.status()["train_images"]  # the shards add up to the whole train split
    assert st["val_images"] == one.status()["val_images"]
    a, b = _epochs(one), _epochs(two)
    assert [r["epoch"] for r in b] == list(range(1, 7))
    # Same seed, same global batch: the curves agree closely though the batches are dealt differently.
    assert abs(a[-1]["train_loss"] - b[-1]["train_loss"]) < 0.15
    assert b[-1]["train_loss"] < 0.6 * b[0]["train_loss"]  # it learned
    assert abs(min(r["val_loss"] for r in a) - min(r["val_loss"] for r in b)) < 0.1
    assert abs(a[-1]["val_accuracy"] - b[-1]["val_accuracy"]) <= 0.25
    assert {p.name for p in two.path.iterdir()} >= {"best.pt", "last.pt", "metrics.jsonl", "split.csv"}


def _wait_for_epoch(run: RunFolder, epoch: int, timeout: float = 300) -> None:
    end = time.monotonic() + timeout
    while (run.status().get("epoch") or 0) < epoch:
        assert run.status()["state"] in ("queued", "running"), (run.path / "console.txt").read_text()[-3000:]
        assert time.monotonic() < end, "the run did not get going"
        time.sleep(0.3)


def _wait_ended(run: RunFolder, timeout: float = 120) -> str:
    end = time.monotonic() + timeout
    while run.status()["state"] in ("queued", "running"):
        assert time.monotonic() < end, "the run did not end"
        time.sleep(0.3)
    return run.status()["state"]


@pytest.mark.slow
def test_a_stop_reaches_every_process_of_a_torchrun_launch(sample_dir, tmp_path):
    cfg = TrainConfig(data=[str(sample_dir)], img_size=64, epochs=500, patience=0, workers=0)
    run = start_training(cfg, tmp_path, processes=2)  # what the Train page's "use all GPUs" runs
    try:
        _wait_for_epoch(run, 2)
        stop_run(run)
        assert _wait_ended(run) == "stopped"
    finally:  # a failed assertion must not leave detached training processes behind
        if run.status()["state"] in ("queued", "running"):
            for pid in _run_pids(run):
                os.kill(pid, signal.SIGKILL)
    end = time.monotonic() + 60
    while left := _run_pids(run):
        assert time.monotonic() < end, f"processes left behind: {[_cmdline(p) for p in left]}"
        time.sleep(0.5)
    assert [r["epoch"] for r in run.read_metrics() if r["kind"] == "epoch"][:2] == [1, 2]


@pytest.mark.slow
def test_a_killed_process_fails_the_whole_run_with_the_reason(sample_dir, tmp_path):
    proc = _torchrun(str(sample_dir), *ARGS[:-3], "--epochs", "500", "--runs-dir", str(tmp_path),
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        end = time.monotonic() + 300
        while not list_runs(tmp_path) or (list_runs(tmp_path)[0].status().get("epoch") or 0) < 2:
            assert time.monotonic() < end and proc.poll() is None, "the run did not get going"
            time.sleep(0.3)
        run = list_runs(tmp_path)[0]
        rank0 = run.status()["pid"]
        workers = [p for p in _children(proc.pid) if p != rank0]
        assert len(workers) == 1
        os.kill(workers[0], signal.SIGKILL)  # rank 1 dies without a word
        assert proc.wait(timeout=120) != 0
    finally:
        if proc.poll() is None:
            proc.kill()
    st = run.status()
    assert st["state"] == "failed", st
    assert "Another training process of this run failed" in st["error"]
    assert not pid_alive(rank0)


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def _run_pids(run: RunFolder) -> list[int]:
    """The processes training this run: torchrun's agent and its workers."""
    out = subprocess.run(["pgrep", "-f", "bincls train"], capture_output=True, text=True).stdout
    return [int(p) for p in out.split() if str(run.path) in _cmdline(int(p))]


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""
