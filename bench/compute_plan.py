"""Which precision, memory format and allocator setting train each model fastest on this CPU.

Each variant runs in its own process (the allocator setting is process-wide), stepping one model on
a batch already in memory: forward, backward, optimizer step. Prints ms/step and the ratio to plain
fp32 measured in the same run. bincls.compute's CPU defaults come from this table.

    .venv/bin/python bench/compute_plan.py [--models seed-cnn,small-cnn] [--steps 8]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS = {"seed-cnn": 256, "small-cnn": 128, "mobilenet_v2": 224, "mobilenet_v3_small": 224, "resnet18": 224}
VARIANTS = [  # (label, dtype, channels_last, allocator tuned)
    ("fp32", "fp32", False, True),
    ("fp32 + channels_last", "fp32", True, True),
    ("bf16", "bf16", False, True),
    ("bf16 + channels_last", "bf16", True, True),
    ("fp32, default allocator", "fp32", False, False),
]


def child(
    model_name: str, size: int, dtype: str, channels_last: bool, tuned: bool, steps: int, batch: int
) -> None:
    import time

    import torch

    from bincls.compute import tune_allocator
    from bincls.models import build_model, model_config

    if tuned:
        tune_allocator()
    torch.manual_seed(0)
    model = build_model(model_config(model_name, img_size=size))
    x = torch.randn(batch, 3, size, size)
    y = torch.randint(0, 2, (batch, 1)).float()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), 1e-4)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    model.train()
    times = []
    for i in range(steps + 2):
        t = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bf16"):
            out = model(x)
        loss = loss_fn(out.float(), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i >= 2:  # the first steps pay one-off costs (oneDNN primitive creation, page faults)
            times.append(time.perf_counter() - t)
    times.sort()
    print(json.dumps({"ms": 1000 * times[len(times) // 2]}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--child", nargs=5)
    args = ap.parse_args()
    if args.child:
        name, size, dtype, cl, tuned = args.child
        child(name, int(size), dtype, cl == "1", tuned == "1", args.steps, args.batch)
        return
    import torch

    print(
        f"cores: {os.cpu_count()}, torch {torch.__version__}, CPU capability "
        f"{torch.backends.cpu.get_cpu_capability()}, batch {args.batch}, median of {args.steps} steps"
    )
    print(f"{'model':<20}{'variant':<26}{'ms/step':>10}{'vs fp32':>9}")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BINCLS_NO_MALLOC_TUNING": ""}
    for name in args.models.split(","):
        size = MODELS[name]
        base = None
        for label, dtype, cl, tuned in VARIANTS:
            cmd = [
                sys.executable,
                __file__,
                "--steps",
                str(args.steps),
                "--batch",
                str(args.batch),
                "--child",
                name,
                str(size),
                dtype,
                "1" if cl else "0",
                "1" if tuned else "0",
            ]
            out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
            if out.returncode != 0:
                print(f"{name:<20}{label:<26}{'failed':>10}  {out.stderr.strip().splitlines()[-1][:80]}")
                continue
            ms = json.loads(out.stdout.strip().splitlines()[-1])["ms"]
            base = base or ms
            print(f"{name:<20}{label:<26}{ms:>10.1f}{base / ms:>8.2f}x", flush=True)


if __name__ == "__main__":
    main()
