"""How fast the scan checks a folder of real images: cold (empty cache) and re-scan (warm cache).

Builds a temporary two-class folder of about --n files by copying ../shared/data/hymenoptera and
../shared/data/face_mask_dirty over and over. Most copies are made unique, so that the duplicate
finder does not shrink the work: a JPEG copy gets its copy number in a comment (COM) segment and a
PNG copy in a tEXt chunk; the few GIF and WebP files are copied unchanged (byte-identical
duplicates, which the scan reports but still checks), as are the duplicates face_mask_dirty has
of its own. Class a gets ants and with_mask, class b bees and without_mask, so no copy of one
image lands in both classes.

The baseline, measured in the same run on the same files, is what a naive check does: one thread,
`Image.open(...).convert("RGB")` at full size plus a SHA-256 of the bytes.

    .venv/bin/python bench/scan_speed.py [--n 3000] [--no-baseline] [--keep]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import struct
import sys
import tempfile
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"
SOURCES = [SHARED / "hymenoptera", SHARED / "face_mask_dirty"]


def unique_copy(data: bytes, k: int) -> bytes:
    """The same image with `k` written into metadata, so every copy has different bytes."""
    tag = f"bincls bench copy {k}".encode()
    if data[:2] == b"\xff\xd8":  # JPEG: a COM segment right after the start-of-image marker
        return data[:2] + b"\xff\xfe" + struct.pack(">H", len(tag) + 2) + tag + data[2:]
    if data[:8] == b"\x89PNG\r\n\x1a\n":  # PNG: a tEXt chunk right after IHDR (8 + 25 bytes)
        body = b"Comment\x00" + tag
        chunk = struct.pack(">I", len(body)) + b"tEXt" + body + struct.pack(">I", zlib.crc32(b"tEXt" + body))
        return data[:33] + chunk + data[33:]
    return data


def build(dest: Path, n: int) -> list[Path]:
    sources = sorted(p for src in SOURCES for p in src.rglob("*") if p.is_file())
    if not sources:
        sys.exit(f"no images under {SHARED}: this benchmark needs ../shared/data")
    blobs = [p.read_bytes() for p in sources]
    made = []
    for i in range(n):
        src = i % len(sources)
        k = i // len(sources)
        cls = "a" if sources[src].parent.name in ("ants", "with_mask") else "b"
        out = dest / cls / f"{k:03d}_{src:04d}{sources[src].suffix}"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(unique_copy(blobs[src], k) if k else blobs[src])
        made.append(out)
    return made


def naive_check(files: list[Path]) -> int:
    import warnings

    from PIL import Image

    warnings.simplefilter("ignore")  # Pillow's palette-transparency notes, once per such file
    ok = 0
    for p in files:
        data = p.read_bytes()
        hashlib.sha256(data).hexdigest()
        try:
            with Image.open(p) as im:
                im.convert("RGB")
            ok += 1
        except Exception:  # noqa: BLE001 - a benchmark counts, it does not judge
            pass
    return ok


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000, help="number of files to build (default 3000)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the single-thread naive baseline")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bincls-bench-"))
    os.environ["BINCLS_CACHE_DIR"] = str(work / "cache")  # a fresh cache: the first scan is cold
    from bincls.data.dataset import scan_folders

    try:
        files, t_build = timed(lambda: build(work / "data", args.n))
        total_mb = sum(p.stat().st_size for p in files) / 2**20
        print(f"built {len(files)} files ({total_mb:.0f} MB) in {t_build:.1f}s under {work / 'data'}")
        print(f"cores: {os.cpu_count()} (the scan uses one thread per core)")
        classes = [work / "data" / "a", work / "data" / "b"]

        rows = []
        if not args.no_baseline:
            _, t = timed(lambda: naive_check(files))
            rows.append(("naive (1 thread, full decode)", len(files), t, None))
        cold, t_cold = timed(lambda: scan_folders(classes))
        rows.append(("scan, cold cache", len(files), t_cold, cold.from_cache))
        warm, t_warm = timed(lambda: scan_folders(classes))
        rows.append(("re-scan, warm cache", len(files), t_warm, warm.from_cache))

        base = rows[0][2] if not args.no_baseline else t_cold
        print(f"\n{'phase':<32} {'files':>6} {'seconds':>8} {'images/s':>9} {'vs base':>8} {'cached':>7}")
        for name, n, t, cached in rows:
            cached_text = "-" if cached is None else str(cached)
            print(f"{name:<32} {n:>6} {t:>8.2f} {n / t:>9.0f} {base / t:>7.1f}x {cached_text:>7}")
        usable = sum(cold.class_counts(usable_only=True))
        print(
            f"\nimages {len(cold.images)}, usable {usable}, skipped {len(cold.skipped)}, "
            f"duplicate groups {len(cold.duplicates)}, label conflicts {len(cold.conflicts)}"
        )
        print("Files were just written, so the OS page cache is warm for every phase: this measures")
        print("decoding and hashing, not disk reads.")
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
