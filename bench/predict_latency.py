"""Latency of predicting one image on CPU, as the Predict page does it: p50 and p90 per image.

For small-cnn (random init: latency does not depend on the weights) and mobilenet_v2 (ImageNet weights from
../shared/weights when present), each at its default input size, on the real images of bincls/sample_data.
Each checkpoint is built with bincls.checkpoint.make_checkpoint in a temporary run folder and loaded once
by a Predictor, as the app's cache does. Then every image is predicted on its own, from its file's bytes:

  model only       the forward pass on an already preprocessed tensor (the baseline of the ratios)
  predict          decode + preprocess + forward (Predictor.predict_explained without heat map)
  predict + map    the same plus the Grad-CAM heat map (one backward pass) and the overlay image

    .venv/bin/python bench/predict_latency.py [--repeats 1] [--threads N]

On a machine busy with other work, compare --threads 1 with the default: torch's intra-op threads
spin-wait, and when the cores are oversubscribed a one-image forward pass can take many times longer
with more threads than with one.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bincls.inference.predict import Predictor  # noqa: E402
from bincls.models import build_model, model_config  # noqa: E402
from bincls.models.checkpoint import make_checkpoint  # noqa: E402
from bincls.paths import SAMPLE_DATA  # noqa: E402
from bincls.runs.folder import RunFolder  # noqa: E402

MOBILENET_WEIGHTS = ROOT.parent / "shared" / "weights" / "mobilenet_v2_imagenet.pth"


def checkpoint(runs: Path, name: str) -> tuple[Path, str]:
    weights, note = "none", "random init"
    if name == "mobilenet_v2" and MOBILENET_WEIGHTS.is_file():
        weights, note = str(MOBILENET_WEIGHTS), "ImageNet weights"
    cfg = model_config(name, weights=weights)
    torch.manual_seed(0)
    run = RunFolder.create(runs, name)
    run.write_config({"model": name})
    return run.save_checkpoint("best.pt", make_checkpoint(build_model(cfg), cfg, ["ants", "bees"])), note


def percentiles(times: list[float]) -> tuple[float, float]:
    ms = np.array(times) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 90))


ALL_MODES = ("model only", "predict", "predict + map")


def measure(
    pred: Predictor, blobs: list[bytes], repeats: int, modes: tuple[str, ...] = ALL_MODES
) -> dict[str, list[float]]:
    """Seconds per image, one image per call, for each of `modes`."""
    tensors = [pred.to_tensor(b) for b in blobs]
    out: dict[str, list[float]] = {mode: [] for mode in modes}
    # Warm-up: the first calls pay for lazy initialisation (kernels, Grad-CAM's layer search).
    for b in blobs[:3]:
        pred.predict_explained([b], heatmaps=True)[0].overlay()
    for _ in range(repeats):
        if "model only" in modes:
            for t in tensors:
                start = time.perf_counter()
                pred.probabilities(t.unsqueeze(0))
                out["model only"].append(time.perf_counter() - start)
        if "predict" in modes:
            for b in blobs:
                start = time.perf_counter()
                pred.predict_explained([b], heatmaps=False)
                out["predict"].append(time.perf_counter() - start)
        if "predict + map" in modes:
            for b in blobs:
                start = time.perf_counter()
                pred.predict_explained([b], heatmaps=True)[0].overlay()
                out["predict + map"].append(time.perf_counter() - start)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=1, help="passes over the 60 sample images (default 1)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    files = sorted(p for p in SAMPLE_DATA.rglob("*") if p.is_file())
    blobs = [p.read_bytes() for p in files]
    sizes = [len(b) for b in blobs]
    print(f"{len(blobs)} sample images ({min(sizes) // 1024}-{max(sizes) // 1024} KB JPEG), "
          f"{args.repeats} pass(es), CPU, {torch.get_num_threads()} torch threads, torch {torch.__version__}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bincls-bench-") as tmp:
        for name in ("small-cnn", "mobilenet_v2"):
            ckpt, note = checkpoint(Path(tmp), name)
            pred = Predictor(ckpt, device="cpu")
            times = measure(pred, blobs, args.repeats)
            base = statistics.median(times["model only"])
            for mode, t in times.items():
                p50, p90 = percentiles(t)
                rows.append((f"{name} ({pred.preprocess.img_size} px, {note})", mode, p50, p90,
                             statistics.median(t) / base))
            print(f"  {name}: Grad-CAM layer {pred.gradcam.layer_name}", file=sys.stderr)
    print(f"\n{'model':<40} {'mode':<15} {'p50 ms':>8} {'p90 ms':>8} {'x model':>8}")
    for model, mode, p50, p90, ratio in rows:
        print(f"{model:<40} {mode:<15} {p50:>8.1f} {p90:>8.1f} {ratio:>8.1f}")


if __name__ == "__main__":
    main()
