"""The issue's protocol, end to end through the command line, on held-out parts of the shared piles.

For each pile (hymenoptera, face_mask_dirty, and a rare-class version of each, as bench/labeling.py makes
them): the pile's images are hard-linked under neutral names into one flat folder (nothing in a name or a
folder says the class), the held-out test part into two class folders. An oracle then answers
`bincls label PILE --classes A B --answers answers.csv --next 10 --json` four times (the first from an
empty answers file), the session exports `--export L.csv --accept-confident`, `bincls train L.csv` trains
with defaults, and `bincls evaluate RUN --data TEST/A TEST/B` measures it on the held-out part.

    .venv/bin/python bench/labeling_protocol.py [--seed 0] [--piles hymenoptera,face_mask_dirty]

Folders go to bench/out/labeling/ (kept: a second run reads the features from the cache).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from labeling import PILES, SHARED, hub_with_weights, split  # noqa: E402

OUT = ROOT / "bench" / "out" / "labeling"


def link(src: str, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not dest.exists():
        try:
            os.link(src, dest)
        except OSError:
            dest.write_bytes(Path(src).read_bytes())


def build(name: str, rare: bool, seed: int) -> tuple[Path, Path, dict[str, str]]:
    """(pile folder, test folder, {pile path: class}) for one split of a shared pile."""
    from bincls.labeling.pile import find_pile

    classes = PILES[name]
    paths = find_pile([SHARED / "data" / name]).paths
    labels = np.array([int(Path(p).parent.name == classes[1]) for p in paths])
    pile, test = split(labels, seed, rare)
    base = OUT / f"{name}{'-rare' if rare else ''}-{seed}"
    truth = {}
    for n, i in enumerate(pile):
        dest = base / "pile" / f"img{n:05d}{Path(paths[i]).suffix.lower()}"
        link(paths[i], dest)
        truth[str(dest)] = classes[labels[i]]
    for n, i in enumerate(test):
        link(paths[i], base / "test" / classes[labels[i]] / f"img{n:05d}{Path(paths[i]).suffix.lower()}")
    return base / "pile", base / "test", truth


def bincls(*args: str) -> tuple[str, float]:
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "bincls", *args], cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"bincls {' '.join(args)} failed:\n{out.stderr}")
    return out.stdout, time.perf_counter() - t0


def protocol(name: str, rare: bool, seed: int) -> dict:
    pile, test, truth = build(name, rare, seed)
    a, b = PILES[name]
    answers = pile.parent / "answers.csv"
    answers.write_text("")  # the first batch from an empty answers file
    rare_class = b if rare else None
    asked, calls = [], []
    for _ in range(4):
        base = ("label", str(pile), "--classes", a, b, "--answers", str(answers))
        out, seconds = bincls(*base, "--next", "10", "--json")
        calls.append(seconds)
        batch = json.loads(out)
        with open(answers, "a", newline="") as f:
            w = csv.writer(f)
            if not asked:
                w.writerow(["path", "label"])
            for s in batch:
                w.writerow([s["path"], truth[s["path"]]])
        asked += batch
    labels_csv = pile.parent / "L.csv"
    bincls("label", str(pile), "--classes", a, b, "--answers", str(answers), "--export", str(labels_csv),
           "--accept-confident")  # fmt: skip
    rows = list(csv.DictReader(open(labels_csv)))
    wrong = sum(truth[r["path"]] != r["label"] for r in rows)
    run_out, train_s = bincls("train", str(labels_csv), "--runs-dir", str(pile.parent / "runs"))
    run = run_out.strip().splitlines()[-1]
    ev, _ = bincls("evaluate", run, "--data", str(test / a), str(test / b), "--json")
    m = json.loads(ev)
    return {"pile": f"{name}{' rare' if rare else ''}", "images": len(truth),
            "rare_in_pile": sum(v == rare_class for v in truth.values()) if rare else None,
            "rare_found": sum(truth[s["path"]] == rare_class for s in asked) if rare else None,
            "labels": len(rows), "wrong_labels": wrong, "next_s": calls, "train_s": train_s,
            "test_n": m["n"], "accuracy": m["accuracy"],
            "balanced_accuracy": m["balanced_accuracy"]}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--piles", default=",".join(PILES))
    args = ap.parse_args()
    hub_with_weights()
    print("| pile | images (rare) | rare found in 40 | labels exported (wrong) | --next calls, s | train s | "
          "test images | test accuracy | test balanced accuracy |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for rare in (False, True):
        for name in args.piles.split(","):
            r = protocol(name, rare, args.seed)
            count = f"{r['images']} ({r['rare_in_pile']})" if rare else str(r["images"])
            found = str(r["rare_found"]) if rare else "-"
            calls = ", ".join(f"{s:.1f}" for s in r["next_s"])
            test = f"{r['test_n']} | {r['accuracy']:.3f} | {r['balanced_accuracy']:.3f}"
            labels = f"{r['labels']} ({r['wrong_labels']})"
            line = f"| {r['pile']} | {count} | {found} | {labels} | {calls} | {r['train_s']:.0f} | {test} |"
            print(line, flush=True)
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
