"""The presets against the old defaults, on the shared datasets: wall time, test accuracy, AUROC.

Each configuration is one `python -m bincls train` in a fresh process with a cold bincls cache (scan,
decode and features included in its wall time), then `bincls evaluate --json` on the run's own test
split. Pretrained weights come from a temporary torch hub cache holding ../shared's ImageNet
mobilenet_v2 under torchvision's file names, as on a user's machine after one download; the
"no weights" rows use an empty one. Datasets:
  hymenoptera: its train folder to train on (validation drawn from it), its val folder as the test split;
  face_mask_dirty: one root of two class folders, split 60/20/20 (the test split is 83 images);
  copies2000 (with --timing): 2,000 hymenoptera copies with distinct bytes, for the wall time of the
  default command at the issue's size (accuracy on copies means little).

    .venv/bin/python bench/recipes.py [--only hymenoptera,face_mask] [--configs old,auto,...] [--timing]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
WEIGHTS = SHARED / "weights" / "mobilenet_v2_imagenet.pth"

# name -> (train flags, pretrained weights at hand)
CONFIGS = {
    "old": (["--preset", "scratch", "--model", "small-cnn", "--img-size", "128", "--epochs", "10",
             "--optimizer", "adam", "--lr", "1e-3", "--weight-decay", "0", "--schedule", "cosine",
             "--patience", "5", "--augment", "--label-smoothing", "0"], False),
    "auto": ([], True),
    "best": (["--preset", "best"], True),
    "scratch": (["--preset", "scratch"], False),
    "no-weights": ([], False),
    "mobilenet": (["--model", "mobilenet_v2", "--weights", "imagenet"], True),
    "old-finetune": (["--model", "mobilenet_v2", "--weights", "imagenet", "--fine-tune", "--optimizer",
                      "adam", "--lr", "1e-3", "--head-epochs", "0", "--layer-decay", "1", "--epochs", "10"],
                     True),
}  # fmt: skip
LABELS = {
    "old": "old defaults (small-cnn, 10 epochs, Adam 1e-3)",
    "auto": "`bincls train` (auto)",
    "best": "--preset best",
    "scratch": "--preset scratch",
    "no-weights": "`bincls train`, no weights here",
    "mobilenet": "--model mobilenet_v2 --weights imagenet",
    "old-finetune": "mobilenet_v2 fine-tuned, Adam 1e-3, no head stage",
}


def datasets(base: Path, timing: bool) -> dict[str, tuple[list[str], list[str]]]:
    """name -> (data paths, extra flags)."""
    hym = base / "hymenoptera"
    for src, dst in (("train", "train"), ("val", "test")):
        shutil.copytree(SHARED / "data" / "hymenoptera" / src, hym / dst, copy_function=os.link)
    out = {
        "hymenoptera": ([str(hym)], []),
        "face_mask": ([str(SHARED / "data" / "face_mask_dirty")], ["--split", "0.6,0.2,0.2"]),
    }
    if timing:
        sys.path.insert(0, str(ROOT / "bench"))
        from train_speed import build_folder

        root = build_folder(base / "copies2000", 2000)
        os.rename(root / "val", root / "test")
        out["copies2000"] = ([str(root)], [])
    return out


def hub(base: Path, with_weights: bool) -> Path:
    home = base / ("torch-weights" if with_weights else "torch-empty")
    checkpoints = home / "hub" / "checkpoints"
    if not checkpoints.exists():
        checkpoints.mkdir(parents=True)
        if with_weights:
            for name in ("mobilenet_v2-b0353104.pth", "mobilenet_v2-7ebf99e0.pth"):
                shutil.copy(WEIGHTS, checkpoints / name)
    return home


def run_one(base: Path, data: list[str], extra: list[str], flags: list[str], weights: bool, tag: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TORCH_HOME": str(hub(base, weights)),
           "BINCLS_CACHE_DIR": str(base / f"cache-{tag}"), "BINCLS_RUNS_DIR": str(base / "runs")}  # fmt: skip
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "bincls", "train", *data, *extra, *flags],
                         env=env, capture_output=True, text=True, cwd=ROOT)  # fmt: skip
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        return {"error": (out.stderr.strip().splitlines() or ["?"])[-1], "wall": wall}
    run = Path(out.stdout.strip().splitlines()[-1])
    ev = subprocess.run([sys.executable, "-m", "bincls", "evaluate", str(run), "--json"], env=env,
                        capture_output=True, text=True, cwd=ROOT, check=True)  # fmt: skip
    m = json.loads(ev.stdout)
    status = json.loads((run / "status.json").read_text())
    return {"wall": wall, "n": m["n"], "acc": m["accuracy"], "acc_ci": m["accuracy_ci"],
            "bal": m["balanced_accuracy"], "auroc": m["auroc"], "ece": m["ece"],
            "preset": status.get("preset"), "model": status.get("model"), "epochs": status.get("epochs_done"),
            "threshold": m["threshold"], "tta": m["tta"]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default="hymenoptera,face_mask")
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--timing", action="store_true", help="also the 2,000-image copies")
    args = parser.parse_args()
    if not WEIGHTS.exists():
        sys.exit(f"{WEIGHTS} is absent: this benchmark needs ../shared")
    base = Path(tempfile.mkdtemp(prefix="bincls-recipes-"))
    try:
        sets = datasets(base, args.timing)
        wanted = args.only.split(",") + (["copies2000"] if args.timing else [])
        print(f"machine: {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f} at the start")
        for name in wanted:
            data, extra = sets[name]
            print(f"\n{name}")
            print("| configuration | preset · model | epochs | wall s | test acc (95% CI) | bal. acc | AUROC "
                  "| ECE |")
            print("|---|---|---:|---:|---:|---:|---:|---:|")
            for key in args.configs.split(","):
                flags, weights = CONFIGS[key]
                r = run_one(base, data, extra, flags, weights, f"{name}-{key}")
                if "error" in r:
                    print(f"| {LABELS[key]} | failed: {r['error'][:80]} | | {r['wall']:.0f} | | | | |")
                    continue
                lo, hi = r["acc_ci"]
                print(f"| {LABELS[key]} | {r['preset']} · {r['model']} | {r['epochs']} | {r['wall']:.0f} | "
                      f"{r['acc']:.1%} ({lo:.1%}-{hi:.1%}) of {r['n']} | {r['bal']:.3f} | {r['auroc']:.3f} | "
                      f"{r['ece']:.3f} |", flush=True)  # fmt: skip
        print(f"\nload average {os.getloadavg()[0]:.1f} at the end")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
