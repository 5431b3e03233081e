"""How the scan scales with the number of files: time and peak memory for 10k and 100k files.

Builds a two-class folder of N hard links (copies where links are impossible) to real images:
../shared/data/hymenoptera and ../shared/data/face_mask_dirty when present, else the shipped sample.
Class a gets ants and with_mask, class b bees and without_mask. Every link is a byte-identical
duplicate of its source, so this is also the worst case for the duplicate finder (a few hundred
groups of hundreds of copies each). Each file is still opened, hashed and decoded: the scan's cache
is keyed by path, not by inode.

Every scan runs in a fresh process, so its peak RSS is its own: a cold scan (empty cache), then a
warm re-scan (the cache filled by the cold one). "base" is the RSS after imports, before the scan;
"CPU s" is the process's user + system time (what a busy machine does not inflate); "progress" counts
the calls to the progress callback.

    .venv/bin/python bench/scan_scale.py [--sizes 10000,100000] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"
SOURCES = [SHARED / "hymenoptera", SHARED / "face_mask_dirty"]
SAMPLE = ROOT / "bincls" / "sample_data"
CLASS_A = ("ants", "with_mask")


HEADER = """\
| files   | scan   | seconds | files/s | CPU s | base MB | peak RSS MB | growth MB | progress |
|--------:|--------|--------:|--------:|------:|--------:|------------:|----------:|---------:|"""


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def sources() -> tuple[list[Path], str]:
    found = sorted(p for src in SOURCES if src.is_dir() for p in src.rglob("*") if p.is_file())
    if found:
        return found, "hymenoptera + face_mask_dirty"
    return sorted(p for p in SAMPLE.rglob("*") if p.is_file()), "the shipped sample"


def build(dest: Path, n: int, files: list[Path]) -> None:
    """`n` links named by class, spread over the sources in turn."""
    for cls in "ab":
        (dest / cls).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        src = files[i % len(files)]
        cls = "a" if src.parent.name in CLASS_A else "b"
        out = dest / cls / f"{i:06d}{src.suffix.lower()}"
        try:
            os.link(src, out)
        except OSError:  # another file system, or links not allowed: a copy does the same
            shutil.copyfile(src, out)


def child(data: str) -> None:
    """One scan in this process; prints its figures as one JSON line."""
    from bincls.data.folder_layout import resolve_layout
    from bincls.data.scan import scan_layout  # what `python -m bincls scan` runs: no torch

    base, cpu = rss_mb(), cpu_seconds()
    calls = []
    start = time.perf_counter()
    result = scan_layout(resolve_layout([data]), progress=lambda done, total: calls.append(done))
    seconds = time.perf_counter() - start
    figures = {
        "seconds": seconds, "cpu": cpu_seconds() - cpu, "base_mb": base, "peak_mb": rss_mb(),
        "files": len(result.images) + len(result.skipped), "cached": result.from_cache,
        "progress_calls": len(calls), "last": calls[-1] if calls else 0,
        "groups": len(result.duplicates), "usable": sum(result.class_counts(usable_only=True)),
    }  # fmt: skip
    print(json.dumps(figures))


def run_child(data: Path, cache: Path) -> dict:
    env = {**os.environ, "BINCLS_CACHE_DIR": str(cache)}
    cmd = [sys.executable, __file__, "--child", str(data)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if out.returncode:
        sys.exit(f"the scan failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000", help="file counts, comma-separated")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child)

    files, what = sources()
    sizes = [int(s) for s in args.sizes.split(",")]
    work = Path(tempfile.mkdtemp(prefix="bincls-scale-"))
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start")
    print(f"files: hard links to {len(files)} real images ({what})")
    print("the OS page cache is warm (the sources were just read), so this measures the scan, not the disk\n")
    print(HEADER)
    rows: dict[tuple[int, str], dict] = {}
    try:
        for n in sizes:
            data = work / f"data-{n}"
            build(data, n, files)
            for phase in ("cold", "warm"):
                r = run_child(data, work / f"cache-{n}")
                assert r["files"] == n and r["last"] == n, r
                rows[n, phase] = r
                cells = (
                    f"{n:>7}", f"{phase:<6}", f"{r['seconds']:>7.2f}", f"{n / r['seconds']:>7.0f}",
                    f"{r['cpu']:>5.1f}", f"{r['base_mb']:>7.0f}", f"{r['peak_mb']:>11.0f}",
                    f"{r['peak_mb'] - r['base_mb']:>9.0f}", f"{r['progress_calls']:>8}",
                )  # fmt: skip
                print("| " + " | ".join(cells) + " |", flush=True)
            shutil.rmtree(data, ignore_errors=True)
        r = rows[sizes[0], "cold"]
        print(f"\nduplicate groups at {sizes[0]} files: {r['groups']}, usable images: {r['usable']}")
        if len(sizes) > 1:
            lo, hi = sizes[0], sizes[-1]
            print(f"\n{hi}/{lo} files = {hi / lo:.0f}x:")
            for phase in ("cold", "warm"):
                a, b = rows[lo, phase], rows[hi, phase]
                grow_a, grow_b = a["peak_mb"] - a["base_mb"], b["peak_mb"] - b["base_mb"]
                per_file = (grow_b - grow_a) * 1024 / (hi - lo)
                print(
                    f"  {phase}: time {b['seconds'] / a['seconds']:.1f}x, CPU {b['cpu'] / a['cpu']:.1f}x, "
                    f"peak RSS {b['peak_mb'] / a['peak_mb']:.2f}x, growth over base "
                    f"{grow_b / max(grow_a, 1):.1f}x ({per_file:.2f} KB per extra file)"
                )
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
