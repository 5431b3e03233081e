"""Decode memory: the peak of one decode per format and mode, measured in a fresh process (VmHWM), against
what the cost model said from the header; then a scan of four of the issue's 16-bit PNG bombs against the
decode budget.

    .venv/bin/python bench/decode_memory.py [SIDE]     # SIDE x SIDE images, default 10000

Needs about 2.5 GB of disk in the temp folder at the default size, and a few minutes.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "data")]

import hostile  # noqa: E402
from test_decode_memory import child, every_mode  # noqa: E402

from bincls.data.decode_memory import DECODE_BUDGET_BYTES, MAX_DECODE_BYTES  # noqa: E402

MiB = 2**20


def main(side: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bincls-decode-memory-") as tmp:
        folder = Path(tmp)
        paths = every_mode(folder, side, side)
        rows = child("peak", *map(str, paths), timeout=3600)
        print(f"one decode, {side} x {side} px; per-image limit {MAX_DECODE_BYTES // MiB} MB\n")
        print(f"| {'file':<24} | {'decode':<7} | {'peak MB':>8} | {'model MB':>8} | peak/model | result |")
        print(f"|{'-' * 26}|{'-' * 9}|{'-' * 10}:|{'-' * 10}:|-----------:|--------|")
        for r in rows:
            ratio = f"{r['peak'] / r['cost']:.2f}"
            result = "ok" if r["result"] == "ok" else r["result"].split(" (")[0].removeprefix("problem: ")
            how = "whole" if r["how"] == "full" else "scan"
            name, peak, cost = Path(r["path"]).name, r["peak"] / MiB, r["cost"] / MiB
            print(f"| {name:<24} | {how:<7} | {peak:8.0f} | {cost:8.0f} | {ratio:>10} | {result} |")
        for p in paths:
            p.unlink()
        bombs = folder / "bombs"
        for i in range(4):  # about 233 KB each, 16-bit grey; two per class, each a different size
            hostile.png16_bomb(bombs / "ab"[i // 2] / f"bomb{i}.png", 10_950 - i, 10_950)
        budget = str(DECODE_BUDGET_BYTES // MiB)
        (scan,) = child("scan", budget, str(bombs / "a"), str(bombs / "b"), timeout=3600)
        print(f"\nscan of four 233 KB 16-bit ~10,950 x 10,950 PNGs: {scan['seconds']:.1f} s, peak "
              f"{scan['peak'] / MiB:.0f} MB over the process's start (decode budget {budget} MB, held at "
              f"most {scan['budget_peak'] / MiB:.0f} MB); {scan['images']} accepted")  # fmt: skip


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
