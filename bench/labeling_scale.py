"""How a labelling session scales: a round (suggestions + status) on a 10,000-image pile with its features
cached, and `bincls label --next` calls (process start included) on a 2,000-image pile.

The piles are distinct small JPEGs made from the shared photos (hymenoptera + face_mask_dirty): each
one resized to at most 256 px and marked with its number in a corner pixel, so no two files are the
same bytes (hard links would all be one image to the session, which asks about copies once). The oracle
answers with the photo's folder (ants / with_mask: class a; bees / without_mask: class b).

--size 2000 (default for the CLI calls): the first call checks the files and computes their real
backbone features; the next calls are what is timed. For the 10,000 round the features are put into the
cache directly (each file gets its source photo's real 1,280-value features plus a little noise), since
computing 10,000 on two shared cores takes half an hour and the round's cost does not depend on them.

    .venv/bin/python bench/labeling_scale.py [--round-size 10000] [--cli-size 2000]
    .venv/bin/python bench/labeling_scale.py --synthetic 100000,1000000   # rounds on made-up rows only
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from labeling import SHARED, hub_with_weights  # noqa: E402

OUT = ROOT / "bench" / "out" / "labeling-scale"
CLASS_A = ("ants", "with_mask")


def sources() -> list[Path]:
    found = [p for name in ("hymenoptera", "face_mask_dirty") for p in (SHARED / "data" / name).rglob("*")]
    return sorted(p for p in found if p.is_file() and p.suffix.lower() in (".jpg", ".jpeg", ".png"))


def build(n: int) -> tuple[Path, dict[str, str], dict[str, Path]]:
    """(pile folder, {path: class}, {path: source photo}); made once, kept in bench/out."""
    pile = OUT / f"pile{n}"
    truth_file = pile.parent / f"pile{n}.json"
    if truth_file.is_file():
        saved = json.loads(truth_file.read_text())
        return pile, saved["truth"], {k: Path(v) for k, v in saved["source"].items()}
    src = sources()
    truth, source = {}, {}
    for i in range(n):
        s = src[i % len(src)]
        dest = pile / f"part{i // 1000:02d}" / f"img{i:06d}.jpg"
        dest.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(s) as im:
            im = im.convert("RGB")
            im.thumbnail((256, 256))
            im.putpixel((0, 0), (i % 256, (i // 256) % 256, (i // 65536) % 256))
            im.save(dest, "JPEG", quality=85)
        truth[str(dest)] = "a" if s.parent.name in CLASS_A else "b"
        source[str(dest)] = s
    truth_file.write_text(json.dumps({"truth": truth, "source": {k: str(v) for k, v in source.items()}}))
    return pile, truth, source


def fill_cache(paths: list[str], source: dict[str, Path]) -> None:
    """Each file's features: its source photo's real ones plus noise, into the per-file feature cache."""
    from bincls.audit.feature_cache import FeatureCache, stat_key
    from bincls.audit.features import image_features
    from bincls.labeling.features import choose_extractor

    extractor = choose_extractor()
    photos = sorted({str(source[p]) for p in paths})
    real = dict(zip(photos, image_features(photos, extractor.model, extractor.weights)))
    rng = np.random.default_rng(0)
    scale = 0.05 * float(np.std(np.stack(list(real.values()))))
    cache = FeatureCache()
    rows = [
        (p, stat_key(p), real[str(source[p])] + rng.normal(0, scale, 1280).astype(np.float32)) for p in paths
    ]
    cache.put_many(extractor.name, rows)
    cache.close()


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def rounds(pile: Path, truth: dict[str, str], n_rounds: int = 4) -> None:
    from bincls.labeling.session import LabelingSession

    t0, c0 = time.perf_counter(), cpu()
    session = LabelingSession.open([pile], ("a", "b"))
    session.store.update({}, replace=True)  # a new session: no answers from an earlier run of this bench
    print(f"open ({len(session.pile.paths)} images: check from the scan cache, features from the feature "
          f"cache, projection): {time.perf_counter() - t0:.2f} s, {cpu() - c0:.2f} CPU s")  # fmt: skip
    for r in range(1, n_rounds + 1):
        t0, c0 = time.perf_counter(), cpu()
        batch = session.suggest(10)
        status = session.status()
        seconds, cpu_s = time.perf_counter() - t0, cpu() - c0
        est = status.estimate
        print(f"round {r}: suggestions + status {seconds:.3f} s ({cpu_s:.3f} CPU s); answered so far "
              f"{sum(status.answered.values())}, confident {sum(status.confident.values())}, estimate "
              f"{'-' if est is None else f'{est.rest:.3f}'}")  # fmt: skip
        session.answer_many({s.path: truth[s.path] for s in batch})


def synthetic_rounds(n: int, n_rounds: int = 4) -> None:
    """A round's work (suggestions, guesses, estimates) on n projected feature rows made up here: how a round
    grows with the pile, beyond what files on this machine allow. Two Gaussian classes, one 5% rare."""
    from bincls.labeling.estimate import accuracy_estimate, guesses
    from bincls.labeling.model import one_blas_thread
    from bincls.labeling.strategy import choose

    rng = np.random.default_rng(0)
    y = (rng.random(n) < 0.05).astype(int)
    x = (rng.normal(0, 1, (n, 128)) + y[:, None] * 1.5).astype(np.float32)
    answered: list[int] = []

    @one_blas_thread
    def one_round():
        a = np.array(answered, int)
        batch = choose(x, a, y[a], a, 10)
        g = guesses(x, a, y[a])
        free = np.setdiff1d(np.arange(n), a)
        accuracy_estimate(g, y[a], free)
        return batch

    for r in range(1, n_rounds + 1):
        t0, c0 = time.perf_counter(), cpu()
        batch = one_round()
        print(f"{n:,} rows, round {r}: {time.perf_counter() - t0:.2f} s ({cpu() - c0:.2f} CPU s)")
        answered += [p.index for p in batch]


def cli_calls(pile: Path, truth: dict[str, str], calls: int = 4) -> None:
    answers = pile.parent / f"{pile.name}-answers.csv"
    answers.write_text("")
    for c in range(calls):
        t0 = time.perf_counter()
        cmd = ["label", str(pile), "--classes", "a", "b", "--answers", str(answers), "--next", "10", "--json"]
        out = subprocess.run([sys.executable, "-m", "bincls", *cmd], cwd=ROOT, capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        if out.returncode:
            raise SystemExit(out.stderr)
        batch = json.loads(out.stdout)
        with open(answers, "a", newline="") as f:
            w = csv.writer(f)
            if c == 0:
                w.writerow(["path", "label"])
            w.writerows([s["path"], truth[s["path"]]] for s in batch)
        print(f"bincls label --next 10 call {c + 1}: {seconds:.2f} s wall (process start included)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--round-size", type=int, default=10000)
    ap.add_argument("--cli-size", type=int, default=2000)
    ap.add_argument("--synthetic", default="", help="also rounds on made-up rows, e.g. 100000,1000000")
    args = ap.parse_args()
    for n in filter(None, args.synthetic.split(",")):
        synthetic_rounds(int(n))
    if args.synthetic:
        return
    hub_with_weights()
    print(f"load average at start {os.getloadavg()[0]:.1f}")
    pile, truth, source = build(args.round_size)
    from bincls.labeling.pile import find_pile

    t0 = time.perf_counter()
    paths = find_pile([pile]).paths
    print(f"{args.round_size}-image pile checked in {time.perf_counter() - t0:.1f} s ({len(paths)} distinct)")
    fill_cache(paths, source)
    rounds(pile, truth)
    pile, truth, _ = build(args.cli_size)
    cli_calls(pile, truth)
    print(f"load average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
