"""The scan's data checks on the shared photos: near-duplicate recall and false merges, quality checks'
catch rate and false alarms, and what both add to the scan's cost per file.

Near-duplicates: 120 photos drawn (seed 0) from ../shared/data/hymenoptera and face_mask_dirty, each
edited 7 ways (resized to half, JPEG quality 15, cropped 5% and 10%, brightness +25% and -25%,
mirrored) into a temporary folder. Recall: the share of (photo, edit) pairs within the threshold; false
merges: pairs of the 800 distinct photos (by content) within it. Every hash is taken from the scan's
own thumbnail (`load_rgb(max_side=STATS_SIDE)` then a 64 px thumbnail, as `inspect_file` does); the
mirror's hash counts, as the scan's does. `--features` adds the label audit's pretrained features
(cosine similarity; needs the ImageNet weights in the torch hub cache; about a minute of CPU).

Quality: 100 photos of >= 128 px, each blurred (Gaussian, 1/2/4% of the shorter side), darkened to 15%,
washed out (97% white), cropped to 4:1 and shrunk to 48 px: the share each check flags, and the share
of the untouched photos each check flags (false alarms).

Cost: CPU ms per file of `inspect_file` (the scan's whole check) and of the two additions alone.

    .venv/bin/python bench/data_checks.py [--features] [--shared ../shared/data]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import imagehash
import numpy as np
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"

from bincls.data.file_access import walk_files  # noqa: E402
from bincls.data.images import STATS_SIDE, inspect_file, load_rgb  # noqa: E402
from bincls.data.near_duplicates import image_hashes  # noqa: E402
from bincls.data.quality import quality_issues, thumbnail_stats  # noqa: E402

EDITS = ("resize50", "jpeg_q15", "crop5", "crop10", "bright+25", "dark-25", "mirror")
HASHES = {"phash": imagehash.phash, "dhash": imagehash.dhash, "whash": imagehash.whash}


def distinct_photos(shared: Path) -> list[str]:
    seen, out = set(), []
    for d in ("hymenoptera", "face_mask_dirty"):
        for f in walk_files(str(shared / d)).files:
            digest = hashlib.sha256(Path(f).read_bytes()).hexdigest()
            try:
                load_rgb(f, max_side=STATS_SIDE)
            except Exception:  # noqa: BLE001 - the scan skips these too
                continue
            if digest not in seen:
                seen.add(digest)
                out.append(f)
    return out


def edited(im: Image.Image, name: str) -> tuple[Image.Image, int]:
    w, h = im.size
    if name == "resize50":
        return im.resize((max(1, w // 2), max(1, h // 2)), Image.LANCZOS), 95
    if name.startswith("crop"):
        c = int(name[4:]) / 200
        return im.crop((int(w * c), int(h * c), w - int(w * c), h - int(h * c))), 95
    if name.startswith(("bright", "dark")):
        return ImageEnhance.Brightness(im).enhance(1 + int(name[-3:]) / 100), 95
    if name == "mirror":
        return ImageOps.mirror(im), 95
    return im, 15


def thumb(path_or_bytes) -> Image.Image:
    im = load_rgb(path_or_bytes, max_side=STATS_SIDE)
    im.thumbnail((STATS_SIDE, STATS_SIDE))
    return im


def near_duplicates(photos: list[str], folder: Path, features: bool) -> None:
    sources = random.Random(0).sample(photos, 120)
    pairs = []
    for i, f in enumerate(sources):
        im = load_rgb(f)
        for name in EDITS:
            out = folder / f"{i:03d}_{name}.jpg"
            v, quality = edited(im, name)
            v.save(out, "JPEG", quality=quality)
            pairs.append((f, str(out), name))
    thumbs = {p: thumb(p) for p in set(photos) | {p for _, p, _ in pairs}}
    print(f"near-duplicates: {len(sources)} photos x {len(EDITS)} edits; {len(photos)} distinct photos "
          f"({len(photos) * (len(photos) - 1) // 2:,} pairs) for false merges")
    for method, fn in HASHES.items():
        t0 = time.process_time()
        h = {p: int(str(fn(im)), 16) for p, im in thumbs.items()}
        hm = {p: int(str(fn(ImageOps.mirror(im))), 16) for p, im in thumbs.items()}
        ms = 1000 * (time.process_time() - t0) / (2 * len(thumbs))
        u = np.array([h[p] for p in photos], np.uint64)
        um = np.array([hm[p] for p in photos], np.uint64)
        d = np.minimum(np.bitwise_count(u[:, None] ^ u[None, :]), np.bitwise_count(um[:, None] ^ u[None, :]))
        d = np.minimum(d, d.T)[np.triu_indices(len(photos), 1)]
        for t in (4, 6, 8, 10, 12):
            rec = {n: np.mean([min((h[a] ^ h[b]).bit_count(), (hm[a] ^ h[b]).bit_count()) <= t
                               for a, b, m in pairs if m == n]) for n in EDITS}  # fmt: skip
            found = " ".join(f"{k} {v:.2f}" for k, v in rec.items())
            merged = int((d <= t).sum())
            print(f"  {method} <= {t:2d} bits ({ms:.2f} ms/hash): {found} | false merges {merged}")
    if features:
        feature_pairs(photos, pairs)


def feature_pairs(photos: list[str], pairs: list[tuple[str, str, str]]) -> None:
    from bincls.audit.features import image_features

    paths = photos + [p for _, p, _ in pairs]
    t0 = time.process_time()
    f = image_features(paths)
    print(f"  pretrained features: {1000 * (time.process_time() - t0) / len(paths):.1f} ms CPU per image")
    f = f / np.linalg.norm(f, axis=1, keepdims=True)
    at = {p: i for i, p in enumerate(paths)}
    s = (f[: len(photos)] @ f[: len(photos)].T)[np.triu_indices(len(photos), 1)]
    for c in (0.85, 0.90, 0.92, 0.95):
        rec = {n: np.mean([f[at[a]] @ f[at[b]] >= c for a, b, m in pairs if m == n]) for n in EDITS}
        print(f"  cosine >= {c:.2f}: " + " ".join(f"{k} {v:.2f}" for k, v in rec.items())
              + f" | false merges {int((s >= c).sum())}")  # fmt: skip


def quality(photos: list[str]) -> None:
    faults = {
        **{f"blur{p}%": (lambda im, p=p: im.filter(ImageFilter.GaussianBlur(p / 100 * min(im.size))))
           for p in (1, 2, 4)},
        "dark15%": lambda im: ImageEnhance.Brightness(im).enhance(0.15),
        "washed97%": lambda im: Image.blend(im, Image.new("RGB", im.size, "white"), 0.97),
        "aspect4:1": lambda im: im.crop((0, 0, im.width, im.width // 4)),
        "48px": lambda im: im.resize((48, max(1, 48 * im.height // im.width))),
    }  # fmt: skip
    want = {"blur1%": "blurry", "blur2%": "blurry", "blur4%": "blurry", "dark15%": "dark",
            "washed97%": "bright", "aspect4:1": "aspect", "48px": "small"}  # fmt: skip
    caught = {k: [] for k in faults}
    alarms: dict[str, int] = {}
    n = 0
    for f in photos:
        im = load_rgb(f)
        for issue in quality_issues(f, thumbnail_stats(thumb(f)), *im.size):
            alarms[issue.check] = alarms.get(issue.check, 0) + 1
        if min(im.size) < 128 or n >= 100:
            continue
        n += 1
        for name, fault in faults.items():
            buf = io.BytesIO()
            v = fault(im)
            v.save(buf, "JPEG", quality=90)
            checks = {q.check for q in quality_issues("x", thumbnail_stats(thumb(buf.getvalue())), *v.size)}
            caught[name].append(want[name] in checks)
    print(f"quality: {n} photos x {len(faults)} faults")
    print("  caught: " + " ".join(f"{k} {np.mean(v):.2f}" for k, v in caught.items()))
    print(f"  flagged among the {len(photos)} distinct shared photos: "
          + (", ".join(f"{k} {v}" for k, v in sorted(alarms.items())) or "none"))  # fmt: skip


def cost(photos: list[str]) -> None:
    t0 = time.process_time()
    for f in photos:
        inspect_file(f)
    whole = time.process_time() - t0
    thumbs = [thumb(f) for f in photos]
    t0 = time.process_time()
    for im in thumbs:
        image_hashes(im)
    hashes = time.process_time() - t0
    t0 = time.process_time()
    for im in thumbs:
        thumbnail_stats(im)
    stats = time.process_time() - t0
    n = len(photos)
    print(f"cost per file (CPU ms, {n} files): inspect_file {1000 * whole / n:.2f} (hashes and statistics "
          f"included); hashes {1000 * hashes / n:.2f}, quality statistics {1000 * stats / n:.2f}: "
          f"{(hashes + stats) / whole:.0%} of the check")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--features", action="store_true", help="also the audit's pretrained features (slow)")
    ap.add_argument("--shared", type=Path, default=SHARED, help=f"the shared data folder (default {SHARED})")
    args = ap.parse_args()
    if not args.shared.is_dir():
        sys.exit(f"{args.shared} is absent: this bench needs the shared photos")
    print(f"load average: {os.getloadavg()[0]:.2f}")
    photos = distinct_photos(args.shared)
    cost(photos)
    quality(photos)
    with tempfile.TemporaryDirectory() as tmp:
        near_duplicates(photos, Path(tmp), args.features)
    print(f"load average: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
