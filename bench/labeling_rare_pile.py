"""How many rare images the session finds in 40 answers on a pile shaped like the issue's: 1,050 photos
of which 50 are of the rare class.

The shared data has no 1,000 photos of one class, so each pile is made: 1,000 photos of the common class,
each a random crop (55-100%), mirror, turn (up to 15 degrees), brightness and colour change of a shared
photo (about five of each), and 50 untouched photos of the other class, all in one flat folder under
neutral names. Piles: ants common / bees rare, bees / ants, with_mask / without_mask. An oracle answers
`--next 10` four times (the first from no answers) through the Python API, which the CLI calls; the
session's strategy is compared with variants in the same run.

    .venv/bin/python bench/labeling_rare_pile.py

Piles and their features are kept in bench/out/labeling-rare/ (a second run reads them).
"""

from __future__ import annotations

import csv
import os
import random
import sys
import time
from pathlib import Path

from PIL import Image, ImageEnhance, ImageOps

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from labeling import SHARED, hub_with_weights  # noqa: E402

OUT = ROOT / "bench" / "out" / "labeling-rare"
COMMON, RARE = 1000, 50
HYM = SHARED / "data" / "hymenoptera"
PILES = {  # name: (common-class folders, rare-class folders)
    "ants-common": ([HYM / "train/ants", HYM / "val/ants"], [HYM / "train/bees", HYM / "val/bees"]),
    "bees-common": ([HYM / "train/bees", HYM / "val/bees"], [HYM / "train/ants", HYM / "val/ants"]),
    "with_mask-common": (
        [SHARED / "data/face_mask_dirty/with_mask"],
        [SHARED / "data/face_mask_dirty/without_mask"],
    ),
}


def _photos(folders: list[Path]) -> list[Path]:
    return sorted(p for d in folders for p in d.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))


def _changed(im: Image.Image, rng: random.Random) -> Image.Image:
    w, h = im.size
    s = rng.uniform(0.55, 1.0)
    cw, ch = int(w * s), int(h * s)
    x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
    im = im.crop((x, y, x + cw, y + ch))
    if rng.random() < 0.5:
        im = ImageOps.mirror(im)
    im = ImageEnhance.Brightness(im).enhance(rng.uniform(0.7, 1.3))
    im = ImageEnhance.Color(im).enhance(rng.uniform(0.6, 1.4))
    return im.rotate(rng.uniform(-15, 15))


def build(name: str, seed: int) -> tuple[Path, dict[str, str]]:
    """(pile folder, {path: "common" or "rare"}), made once."""
    common, rare = PILES[name]
    base = OUT / name
    truth_csv = base / "truth.csv"
    if not truth_csv.exists():
        rng = random.Random(seed)
        items = [(p, "common") for p in (_photos(common) * 10)[:COMMON]]
        items += [(p, "rare") for p in rng.sample(_photos(rare), RARE)]
        rng.shuffle(items)
        (base / "pile").mkdir(parents=True, exist_ok=True)
        rows = []
        for n, (src, cls) in enumerate(items):
            im = Image.open(src).convert("RGB")
            dest = base / "pile" / f"img{n:05d}.jpg"
            (_changed(im, rng) if cls == "common" else im).save(dest, quality=90)
            rows.append((str(dest), cls))
        with open(truth_csv, "w", newline="") as f:
            csv.writer(f).writerows([("path", "label"), *rows])
    return base / "pile", {r["path"]: r["label"] for r in csv.DictReader(open(truth_csv))}


def rare_found(pile: Path, truth: dict[str, str], strategy) -> list[int]:
    """Rare images in each of four batches of 10 suggestions, answered by the oracle."""
    from bincls.labeling.session import LabelingSession

    session = LabelingSession.open([pile], ("common", "rare"))
    session.forget(list(session.entries()))
    found = []
    for _ in range(4):
        batch = session.suggest(10, strategy)
        session.answer_many({s.path: truth[s.path] for s in batch})
        found.append(sum(truth[s.path] == "rare" for s in batch))
    session.forget(list(session.entries()))  # the next strategy starts from no answers too
    return found


def main() -> None:
    os.environ.setdefault("BINCLS_CACHE_DIR", str(OUT / "cache"))
    hub_with_weights()
    from bincls.labeling.strategy import SESSION, Strategy

    strategies = [SESSION, Strategy("rare 7 in 10, spread", rare_part=0.7, rare_shortlist=4),
                  Strategy("rare 9 in 10", rare_part=0.9)]  # fmt: skip
    t0 = time.perf_counter()
    piles = {name: build(name, seed) for seed, name in enumerate(PILES)}
    print(f"piles made or read in {time.perf_counter() - t0:.0f} s; load {os.getloadavg()[0]:.1f}\n")
    print("| pile (1,050: 50 rare) | picking | rare found per batch of 10 | rare found in 40 answers |")
    print("|---|---|---|---|")
    for name, (pile, truth) in piles.items():
        for strategy in strategies:
            found = rare_found(pile, truth, strategy)
            print(f"| {name} | {strategy.name} | {', '.join(map(str, found))} | {sum(found)} |", flush=True)
    print(f"\n{time.perf_counter() - t0:.0f} s; load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
