"""Training speed: the tutorial baseline vs bincls vs the compute limit, on the same real images.

Builds a pre-split folder of real hymenoptera images (copies with distinct bytes, so none is a
duplicate) and runs, each in a fresh process with a cold cache, same model, epochs and seed:
  1. the tutorial baseline: ImageFolder + Resize((256,256)) + ToTensor + Normalize per image,
     DataLoader(batch_size=32, shuffle=True), seed-cnn, fp32, Adam;
  2. bincls (bincls.train.train) with the same model at the same size;
  3. the compute limit: the same model and precision stepping on tensors already in memory.
Prints epoch time (median of the epochs after the first), images/s, peak RSS and final val accuracy,
the ratios baseline/bincls and bincls/limit, the same for small-cnn at 128 px and mobilenet_v2 with a
frozen backbone, how epoch time and memory grow from 500 to 2,000 to 8,000 images, and the wall
time of `python -m bincls train` with mobilenet_v2 frozen on the 2,000-image folder.

    .venv/bin/python bench/train_speed.py [--n 2000] [--epochs 3] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
SHARED = ROOT.parent / "shared"
HYMENOPTERA = SHARED / "data" / "hymenoptera"
WEIGHTS = SHARED / "weights" / "mobilenet_v2_imagenet.pth"


def build_folder(dest: Path, n: int) -> Path:
    """A pre-split root (train/val, ants/bees) of about n real images, every copy with its own bytes."""
    from scan_speed import unique_copy

    sources = {
        split: {
            c: sorted(p for p in (HYMENOPTERA / split / c).iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))
            for c in ("ants", "bees")
        }
        for split in ("train", "val")
    }
    per_split = {"train": int(n * 0.8), "val": n - int(n * 0.8)}
    for split, count in per_split.items():
        for ci, c in enumerate(("ants", "bees")):
            files = sources[split][c]
            out = dest / split / c
            out.mkdir(parents=True, exist_ok=True)
            want = count // 2 + (count % 2 if ci == 0 else 0)
            for k in range(want):
                src = files[k % len(files)]
                data = src.read_bytes()
                (out / f"{k:05d}_{src.name}").write_bytes(data if k < len(files) else unique_copy(data, k))
    return dest


# Children: each configuration runs in its own process --------------------------------------------------
def _rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_baseline(root: str, model: str, size: int, epochs: int, seed: int) -> dict:
    import torch
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    from bincls.models import build_model, model_config

    torch.manual_seed(seed)
    tf = transforms.Compose(
        [
            transforms.Resize((size, size)),
            transforms.ToTensor(),
            transforms.Normalize([0.5, 0.5, 0.5], [0.5, 0.5, 0.5]),
        ]
    )
    train_ds = datasets.ImageFolder(os.path.join(root, "train"), tf)
    val_ds = datasets.ImageFolder(os.path.join(root, "val"), tf)
    train_dl = DataLoader(train_ds, batch_size=32, shuffle=True)
    val_dl = DataLoader(val_ds, batch_size=32)
    net = build_model(model_config(model, img_size=size))
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    times = []
    for _ in range(epochs):  # an epoch is a training pass and a validation pass, as in bincls
        t = time.perf_counter()
        net.train()
        for x, y in train_dl:
            loss = loss_fn(net(x), y.float().view(-1, 1))
            opt.zero_grad()
            loss.backward()
            opt.step()
        net.eval()
        correct = 0
        with torch.no_grad():
            for x, y in val_dl:
                correct += int(((net(x).view(-1) > 0).long() == y).sum())
        times.append(time.perf_counter() - t)
    return {
        "epoch_times": times,
        "n_train": len(train_ds),
        "val_acc": correct / len(val_ds),
        "rss_mb": _rss_mb(),
    }


def child_bincls(root: str, model: str, size: int, epochs: int, seed: int, extra: dict) -> dict:
    from bincls.training.config import TrainConfig
    from bincls.training.loop import train

    cfg = TrainConfig(
        data=[root],
        model=model,
        img_size=size,
        epochs=epochs,
        batch_size=32,
        optimizer="adam",
        lr=extra.pop("lr", 1e-3),
        schedule="none",
        patience=0,
        seed=seed,
        augment=False,
        **extra,
    )
    t0 = time.perf_counter()
    result = train(cfg, runs_dir=tempfile.mkdtemp())
    wall = time.perf_counter() - t0
    records = result.run.read_metrics()
    epochs_r = [r for r in records if r["kind"] == "epoch"]
    status = result.run.status()
    return {
        "epoch_times": [r["epoch_time"] for r in epochs_r],
        "n_train": status["train_images"],
        "val_acc": epochs_r[-1]["val_accuracy"],
        "rss_mb": _rss_mb(),
        "wall": wall,
        "mode": status.get("data_mode"),
        "precision": status.get("precision"),
    }


def child_limit(root: str, model: str, size: int, epochs: int, seed: int) -> dict:
    """Same model, plan and epochs, but every batch is a normalized tensor made before timing starts."""
    import random

    import torch

    from bincls.compute import plan_compute, tune_allocator
    from bincls.data.dataset import load_data
    from bincls.data.decode_cache import load_or_decode
    from bincls.data.transforms import BatchTransform, Preprocess
    from bincls.models import build_model, model_config

    tune_allocator()
    torch.manual_seed(seed)
    random.seed(seed)
    mcfg = model_config(model, img_size=size)
    pre = Preprocess(size, tuple(mcfg.mean), tuple(mcfg.std))
    data = load_data([root])
    plan = plan_compute(torch.device("cpu"), model)
    tf = BatchTransform(pre)

    def batches(part: str, shuffle: bool) -> list:
        t = data.part(part)
        imgs = load_or_decode(t["path"].tolist(), size).images
        ys = torch.tensor(t["label"].to_numpy(), dtype=torch.float32)
        order = torch.randperm(len(imgs)) if shuffle else torch.arange(len(imgs))
        out = []
        for i in range(0, len(imgs), 32):
            idx = order[i : i + 32]
            x = tf(imgs[idx])
            if plan.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            out.append((x, ys[idx].view(-1, 1)))
        return out

    train_b, val_b = batches("train", True), batches("val", False)
    net = build_model(mcfg)
    if plan.channels_last:
        net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    times = []
    for _ in range(epochs):  # a training pass and a validation pass, as in bincls
        random.shuffle(train_b)  # the order of whole batches only: no data work
        t = time.perf_counter()
        net.train()
        for x, y in train_b:
            with plan.autocast():
                out = net(x)
            loss = loss_fn(out.float(), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        net.eval()
        correct = total = 0
        with torch.no_grad(), plan.autocast():
            for x, y in val_b:
                correct += int(((net(x).float() > 0).float() == y).sum())
                total += len(y)
        times.append(time.perf_counter() - t)
    return {
        "epoch_times": times,
        "n_train": sum(len(y) for _, y in train_b),
        "val_acc": correct / total,
        "rss_mb": _rss_mb(),
    }


def run_child(
    kind: str,
    root: Path,
    model: str,
    size: int,
    epochs: int,
    seed: int,
    extra: dict | None = None,
    env_extra: dict | None = None,
) -> dict:
    cache = tempfile.mkdtemp(prefix="bincls-bench-cache-")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BINCLS_CACHE_DIR": cache, **(env_extra or {})}
    payload = json.dumps([kind, str(root), model, size, epochs, seed, extra or {}])
    try:
        out = subprocess.run(
            [sys.executable, __file__, "--child", payload], capture_output=True, text=True, env=env
        )
        if out.returncode != 0:
            raise RuntimeError(f"{kind} {model} failed:\n{out.stderr[-3000:]}")
        return json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def summarize(r: dict) -> dict:
    times = r["epoch_times"]
    t = statistics.median(times[1:]) if len(times) > 1 else times[0]
    return {**r, "epoch_s": t, "img_s": r["n_train"] / t}


def row(label: str, r: dict) -> str:
    return (
        f"| {label:<34} | {r['epoch_s']:>8.2f} | {r['img_s']:>8.0f} | {r['rss_mb']:>8.0f} | "
        f"{r['val_acc'] * 100:>7.1f} |"
    )


def compare(root: Path, model: str, size: int, epochs: int, seed: int, targets: bool = False) -> None:
    """Baseline, bincls and compute limit side by side for one model, with their ratios."""
    print(f"{model} at {size} px (fp32 in the baseline; bincls and the limit use bincls' compute plan)")
    print(HEADER)
    base = summarize(run_child("baseline", root, model, size, epochs, seed))
    print(row("tutorial baseline", base), flush=True)
    ours = summarize(run_child("bincls", root, model, size, epochs, seed))
    print(row(f"bincls ({ours['mode']}, {ours['precision']})", ours), flush=True)
    lim = summarize(run_child("limit", root, model, size, epochs, seed))
    print(row("compute limit", lim))
    goal = (" (target >= 5x)", " (target <= 1.2x)") if targets else ("", "")
    print(
        f"\nbaseline/bincls time per epoch: {base['epoch_s'] / ours['epoch_s']:.2f}x{goal[0]}; "
        f"bincls/limit: {ours['epoch_s'] / lim['epoch_s']:.2f}x{goal[1]}; "
        f"val accuracy bincls - baseline: {(ours['val_acc'] - base['val_acc']) * 100:+.1f} points\n"
    )


HEADER = (
    "| configuration                      | epoch s  | images/s | peak MB  | val acc |\n"
    "|------------------------------------|---------:|---------:|---------:|--------:|"
)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--quick", action="store_true", help="skip the scaling series and the CLI wall-time check"
    )
    ap.add_argument("--child")
    args = ap.parse_args()
    if args.child:
        kind, root, model, size, epochs, seed, extra = json.loads(args.child)
        fn = {"baseline": child_baseline, "bincls": child_bincls, "limit": child_limit}[kind]
        res = (
            fn(root, model, size, epochs, seed, extra)
            if kind == "bincls"
            else fn(root, model, size, epochs, seed)
        )
        print(json.dumps(res))
        return
    if not HYMENOPTERA.exists():
        sys.exit(f"needs {HYMENOPTERA} (../shared)")
    import torch

    work = Path(tempfile.mkdtemp(prefix="bincls-bench-"))
    try:
        print(
            f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}"
        )
        root = build_folder(work / f"n{args.n}", args.n)
        print(
            f"data: {args.n} real images (hymenoptera copies), {args.epochs} epochs, batch 32, "
            f"seed {args.seed}; "
            "epoch s = median of the epochs after the first\n"
        )
        e, s = args.epochs, args.seed
        compare(root, "seed-cnn", 256, e, s, targets=True)
        compare(root, "small-cnn", 128, e, s)
        if WEIGHTS.exists():
            print("mobilenet_v2, frozen backbone, shared ImageNet weights, 224 px, augmentation off")
            print(HEADER)
            mo = summarize(
                run_child(
                    "bincls",
                    root,
                    "mobilenet_v2",
                    224,
                    max(e, 3),
                    s,
                    {"weights": str(WEIGHTS), "freeze_backbone": True, "lr": 3e-3},
                )
            )
            print(row(f"bincls ({mo['mode']}, {mo['precision']})", mo))
            print(f"whole run (scan, decode, features, {max(e, 3)} epochs) in-process: {mo['wall']:.1f} s\n")

        if not args.quick:
            print("growth with the dataset: bincls, small-cnn at 128 px")
            print("| images | epoch s | images/s | peak MB |\n|-------:|--------:|---------:|--------:|")
            for n in (500, 2000, 8000):
                r = root if n == args.n else build_folder(work / f"n{n}", n)
                g = summarize(run_child("bincls", r, "small-cnn", 128, 2, s))
                print(
                    f"| {n:>6} | {g['epoch_s']:>7.2f} | {g['img_s']:>8.0f} | {g['rss_mb']:>7.0f} |",
                    flush=True,
                )
            if WEIGHTS.exists():
                cache = tempfile.mkdtemp(prefix="bincls-bench-cache-")
                env = {**os.environ, "PYTHONPATH": str(ROOT), "BINCLS_CACHE_DIR": cache}
                cmd = [
                    sys.executable,
                    "-m",
                    "bincls",
                    "train",
                    str(root),
                    "--model",
                    "mobilenet_v2",
                    "--weights",
                    str(WEIGHTS),
                    "--freeze-backbone",
                    "--no-augment",
                    "--lr",
                    "3e-3",
                    "--runs-dir",
                    str(work / "cli-runs"),
                ]
                t0 = time.perf_counter()
                out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
                wall = time.perf_counter() - t0
                shutil.rmtree(cache, ignore_errors=True)
                state = "ok" if out.returncode == 0 else f"failed: {out.stderr[-300:]}"
                print(
                    f"\n`python -m bincls train` {args.n} images, mobilenet_v2 frozen, cold cache, "
                    "10 epochs: "
                    f"{wall:.1f} s wall, start to finished run, scan included ({state}; target < 30 s)"
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
