"""Memory with and without a budget: the same run in memory, then with BINCLS_MEMORY_BUDGET below the
size of its decoded images, where it must stream from disk and keep its memory flat.

    .venv/bin/python bench/memory_budget.py [--n 8000] [--budget 100M]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_speed import build_folder, run_child, summarize  # noqa: E402

from bincls.data.decode_cache import dataset_bytes  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=8000)
    ap.add_argument("--budget", default="100M")
    ap.add_argument("--size", type=int, default=128)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bincls-budget-"))
    try:
        root = build_folder(work / "data", args.n)
        need = dataset_bytes(args.n, args.size)
        print(f"{args.n} real images, small-cnn at {args.size} px, 2 epochs; decoded images take "
              f"{need / 2**20:.0f} MB\n")
        print("| memory budget        | mode   | epoch s | images/s | peak RSS MB |")
        print("|----------------------|--------|--------:|---------:|------------:|")
        for label, budget in (("default (half of RAM)", None), (args.budget, args.budget)):
            extra = {"memory_budget": budget} if budget else {}
            r = summarize(run_child("bincls", root, "small-cnn", args.size, 2, 0, extra))
            cells = f"{r['mode']:<6} | {r['epoch_s']:>7.2f} | {r['img_s']:>8.0f} | {r['rss_mb']:>11.0f}"
            print(f"| {label:<20} | {cells} |", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
