"""Epoch time and memory of the same training run as 1 process and as 2 gloo processes under torchrun.

On this 2-core machine two processes cannot be faster than one that already uses both cores (torchrun
gives each process one thread); the point is that the distributed path is correct and costs little.
Both runs use the same command line, seed and global batch size; the dataset is a pre-split folder of
about --n real images (copies of ../shared/data/hymenoptera, or the shipped sample without it).

    .venv/bin/python bench/distributed_epoch.py [--n 2000] [--epochs 3] [--size 128]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_speed import HYMENOPTERA, build_folder  # noqa: E402


def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            kids = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            kids = []
        todo.extend(int(k) for k in kids)
    return out


def _rss_mb(pids: list[int]) -> float:
    total = 0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def run(data: Path, runs: Path, processes: int, args: argparse.Namespace) -> dict:
    head = [sys.executable, "-m", "bincls"]
    if processes > 1:
        head = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                f"--nproc_per_node={processes}", "-m", "bincls"]  # fmt: skip
    cmd = [*head, "train", str(data), "--model", "small-cnn", "--img-size", str(args.size), "--epochs",
           str(args.epochs), "--patience", "0", "--batch-size", "32", "--runs-dir", str(runs)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0.0
    while proc.poll() is None:  # the whole process tree: torchrun's agent and every worker
        peak = max(peak, _rss_mb(_tree(proc.pid)))
        time.sleep(0.2)
    wall = time.perf_counter() - t0
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{processes} process(es) failed:\n{err[-3000:]}")
    run_dir = Path(out.strip().splitlines()[-1])
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in records if r["kind"] == "epoch"]
    times = [r["epoch_time"] for r in epochs]
    status = json.loads((run_dir / "status.json").read_text())
    return {
        "epoch_s": statistics.median(times[1:]) if len(times) > 1 else times[0],
        "wall_s": wall,
        "rss_mb": peak,
        "val_acc": epochs[-1]["val_accuracy"],
        "train_loss": epochs[-1]["train_loss"],
        "n_train": status["train_images"],
        "runs": len(list(runs.iterdir())),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--size", type=int, default=128)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bincls-ddp-"))
    try:
        if HYMENOPTERA.is_dir():
            data = build_folder(work / "data", args.n)
        else:
            data = ROOT / "bincls" / "sample_data"
            print(f"{HYMENOPTERA} is absent: using the shipped sample (60 images)")
        print(f"small-cnn at {args.size} px, {args.epochs} epochs, global batch 32, {os.cpu_count()} cores; "
              "epoch time is the median of epochs 2 onwards (train + validation)\n")
        print("| processes | train images | epoch s | wall s (with start-up) | peak RSS MB (all) | "
              "last train loss | val acc | run folders |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|")
        results = {}
        for n in (1, 2):
            r = run(data, work / f"runs{n}", n, args)
            results[n] = r
            print(f"| {n} | {r['n_train']} | {r['epoch_s']:.2f} | {r['wall_s']:.1f} | {r['rss_mb']:.0f} | "
                  f"{r['train_loss']:.3f} | {r['val_acc'] * 100:.1f}% | {r['runs']} |", flush=True)
        one, two = results[1], results[2]
        print(f"\n2 processes / 1 process: epoch time {two['epoch_s'] / one['epoch_s']:.2f}x, "
              f"peak memory {two['rss_mb'] / one['rss_mb']:.2f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
