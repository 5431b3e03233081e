"""Latency of predicting one image with small-cnn while a run trains on the same CPU: p50, p95, max.

The issue asks that Predict stays under 1 s per image for small-cnn while a run trains. In one process:

  1. train a small-cnn checkpoint in-process (1 epoch on the bundled sample, the model's default size)
     and load it once with a Predictor, as the app's cache does;
  2. idle: predict every image on its own from its file's bytes, without and with the Grad-CAM heat
     map (the baseline of the ratios, measured in the same run before any training starts);
  3. start a small-cnn run in the background the way the Train page does (bincls.launcher.start_training,
     a separate process) on ../shared/data/hymenoptera when present, else the sample; wait until its
     metrics.jsonl has step lines, i.e. it is in its training steps;
  4. predict the same images again while it trains; then stop the run and wait for its process to end.

    .venv/bin/python bench/predict_under_training.py [--images 50] [--repeats 3] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from predict_latency import measure  # noqa: E402

from bincls.inference.predict import Predictor  # noqa: E402
from bincls.paths import SAMPLE_DATA  # noqa: E402
from bincls.runs.folder import ACTIVE, RunFolder  # noqa: E402
from bincls.training.config import TrainConfig  # noqa: E402
from bincls.training.launcher import start_training, stop_and_wait  # noqa: E402
from bincls.training.loop import train  # noqa: E402

HYMENOPTERA = ROOT.parent / "shared" / "data" / "hymenoptera"
MODES = ("predict", "predict + map")


def image_files(n: int) -> list[Path]:
    """`n` real images: hymenoptera's val split when present (not the training images), else the sample."""
    root = HYMENOPTERA / "val" if HYMENOPTERA.is_dir() else SAMPLE_DATA
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    return files[:: max(len(files) // n, 1)][:n]


def train_checkpoint(runs: Path) -> Path:
    """A real small-cnn checkpoint, trained for one epoch on the sample (latency needs no accuracy)."""
    cfg = TrainConfig(data=[str(SAMPLE_DATA)], model="small-cnn", epochs=1, workers=0)
    return train(cfg, runs_dir=runs).run.best_checkpoint


def time_predictions(pred: Predictor, blobs: list[bytes], repeats: int = 1) -> dict[str, list[float]]:
    """Seconds per image, one image per call as the Predict page does it, without and with the heat map."""
    return measure(pred, blobs, repeats, MODES)


def stats_ms(times: list[float]) -> dict[str, float]:
    ms = np.array(times) * 1000
    return {"p50": float(np.percentile(ms, 50)), "p95": float(np.percentile(ms, 95)), "max": float(ms.max())}


def step_lines(run: RunFolder) -> int:
    return sum(1 for r in run.read_metrics() if r.get("kind") == "step")


def start_background_run(runs: Path, data: Path, epochs: int = 500) -> RunFolder:
    """A small-cnn run in its own process, long enough to outlast the measurement (stopped afterwards)."""
    cfg = TrainConfig(data=[str(data)], model="small-cnn", epochs=epochs, patience=0)
    return start_training(cfg, runs)


def wait_for_steps(run: RunFolder, timeout: float = 600) -> None:
    """Until the run writes step lines (the scan and the decoding of the images are over)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if step_lines(run) >= 2:
            return
        state = run.status().get("state")
        if state not in ACTIVE:
            raise RuntimeError(
                f"run {run.id} ended ({state}) before training: see {run.path / 'console.txt'}"
            )
        time.sleep(0.5)
    raise TimeoutError(f"run {run.id} wrote no step lines in {timeout:.0f} s")




def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=50, help="real images, each predicted on its own")
    ap.add_argument("--repeats", type=int, default=3, help="passes over the images (default 3)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads here (default: torch's choice)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    files = image_files(args.images)
    blobs = [p.read_bytes() for p in files]
    data = HYMENOPTERA if HYMENOPTERA.is_dir() else SAMPLE_DATA
    print(
        f"machine: {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads "
        f"for predicting; load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    print(
        f"images: {len(blobs)} real images from {files[0].parents[1]}, one per call, {args.repeats} pass(es)"
    )
    with tempfile.TemporaryDirectory(prefix="bincls-bench-") as tmp:
        runs = Path(tmp) / "runs"
        pred = Predictor(train_checkpoint(runs), device="cpu")
        print(
            f"model: small-cnn at {pred.preprocess.img_size} px, a 1-epoch checkpoint trained on the sample"
        )
        idle = time_predictions(pred, blobs, args.repeats)

        run = start_background_run(runs, data)
        try:
            t0 = time.time()
            wait_for_steps(run)
            print(
                f"background run: small-cnn on {data}, {run.config()['epochs']} epochs asked, in its own "
                f"process (pid {run.status().get('pid')}); training steps after {time.time() - t0:.1f} s"
            )
            before = step_lines(run)
            busy = time_predictions(pred, blobs, args.repeats)
            after, state = step_lines(run), run.status().get("state")
        finally:
            ended = stop_and_wait(run)
        print(
            f"the run trained throughout: {after - before} steps during the measurement, still {state}; "
            f"then stopped ({ended}); load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
        )

    print(
        f"\n{'mode':<15} {'while':<10} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'p50 x idle':>10} "
        f"{'p95 x idle':>10}"
    )
    worst = 0.0
    for mode in MODES:
        base = stats_ms(idle[mode])
        for label, times in (("idle", idle[mode]), ("training", busy[mode])):
            s = stats_ms(times)
            worst = max(worst, s["p95"]) if label == "training" else worst
            print(
                f"{mode:<15} {label:<10} {s['p50']:>8.1f} {s['p95']:>8.1f} {s['max']:>8.1f} "
                f"{s['p50'] / base['p50']:>10.2f} {s['p95'] / base['p95']:>10.2f}"
            )
    verdict = "ok" if worst < 1000 else "TOO SLOW"
    print(f"\nworst p95 per image while training: {worst:.0f} ms ({verdict}; target < 1000 ms)")


if __name__ == "__main__":
    main()
