"""Check every file under the class folders: what is usable, what is not and why, what repeats.

The scan only reads. It never writes, moves, renames or deletes anything in a user's folders; its
cache lives in bincls' own cache folder.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

from bincls.images import ImageInfo, ImageProblem, inspect_file, is_junk_dir, is_junk_name
from bincls.layout import SPLITS, Layout
from bincls.paths import cache_dir

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class ImageRecord:
    """One valid image file."""

    path: str
    label: int
    given_split: str | None  # the split folder it came from, in a pre-split layout
    width: int
    height: int
    mode: str
    format: str
    size: int
    sha256: str


@dataclass(frozen=True)
class SkippedFile:
    path: str
    reason: str


@dataclass
class ScanResult:
    """Everything the scan found. `usable` is what training may use."""

    layout: Layout
    images: list[ImageRecord]  # every valid image, duplicates included
    skipped: list[SkippedFile]
    duplicates: list[list[str]]  # groups of byte-identical files (within or across classes)
    conflicts: list[list[str]]  # the duplicate groups that span both classes
    excluded: dict[str, str]  # valid images left out of training, with the reason
    channel_mean: tuple[float, float, float]
    channel_std: tuple[float, float, float]
    from_cache: int = 0  # files whose check was reused from the cache
    notes: list[str] = field(default_factory=list)

    @property
    def class_names(self) -> list[str]:
        return self.layout.class_names

    @property
    def usable(self) -> list[ImageRecord]:
        return [r for r in self.images if r.path not in self.excluded]

    def class_counts(self, usable_only: bool = False) -> list[int]:
        counts = [0, 0]
        for r in self.usable if usable_only else self.images:
            counts[r.label] += 1
        return counts

    def mode_counts(self) -> dict[str, int]:
        return dict(Counter(r.mode for r in self.images))

    def format_counts(self) -> dict[str, int]:
        return dict(Counter(r.format for r in self.images))

    def to_dict(self) -> dict:
        """The JSON shape of `bincls scan --json` (the split is added by the caller)."""
        counts = self.class_counts()
        return {
            "classes": [
                {
                    "name": c.name,
                    "path": c.folders[0][0] if len(c.folders) == 1 else [f for f, _ in c.folders],
                    "images": counts[i],
                    "usable": self.class_counts(usable_only=True)[i],
                }
                for i, c in enumerate(self.layout.classes)
            ],
            "layout": self.layout.kind,
            "skipped": [asdict(s) for s in self.skipped],
            "duplicates": self.duplicates,
            "conflicts": self.conflicts,
            "excluded": [{"path": p, "reason": r} for p, r in sorted(self.excluded.items())],
            "modes": self.mode_counts(),
            "formats": self.format_counts(),
            "channel_mean": list(self.channel_mean),
            "channel_std": list(self.channel_std),
            "notes": self.notes,
        }


def _is_utf8(name: str) -> bool:
    """False for a name whose bytes are not UTF-8 (an old zip's Latin-1 'caf\xe9.jpg'): Python holds
    it with surrogates, which the cache, the split CSV and JSON output cannot store."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _readable(path: str) -> str:
    """`path` as text a person can read, the undecodable bytes shown as U+FFFD."""
    return os.fsencode(path).decode("utf-8", "replace")


def _walk(folder: str) -> tuple[list[str], list[SkippedFile]]:
    """All candidate files below `folder`, sorted; junk is listed, not checked."""
    files: list[str] = []
    skipped: list[SkippedFile] = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        keep = []
        for d in sorted(dirnames):
            full = os.path.join(dirpath, d)
            if os.path.islink(full):
                skipped.append(SkippedFile(full, "link to a folder (not followed)"))
            elif is_junk_dir(d):
                skipped.append(SkippedFile(full, "hidden or system folder (not scanned)"))
            elif not _is_utf8(d):
                skipped.append(SkippedFile(_readable(full), "folder name is not UTF-8 (not scanned)"))
            else:
                keep.append(d)
        dirnames[:] = keep
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            if is_junk_name(name):
                skipped.append(SkippedFile(full, "hidden or system file"))
            elif not _is_utf8(name):
                skipped.append(SkippedFile(_readable(full), "file name is not UTF-8 (rename it to use it)"))
            else:
                files.append(full)
    return files, skipped


class ScanCache:
    """Per-file check results keyed by (path, size, mtime), so unchanged files are not decoded again."""

    # Bumped whenever a file's verdict can change for the same bytes (v2: corrupt PNGs were accepted).
    VERSION = 2

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = os.fspath(path or cache_dir() / f"scan-v{self.VERSION}.sqlite")
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS files"
            " (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, result TEXT)"
        )

    def get_many(self, keys: dict[str, tuple[int, int]]) -> dict[str, dict]:
        out = {}
        with self._lock:
            cur = self._db.cursor()
            for path, (size, mtime) in keys.items():
                row = cur.execute(
                    "SELECT result FROM files WHERE path=? AND size=? AND mtime_ns=?", (path, size, mtime)
                ).fetchone()
                if row:
                    out[path] = json.loads(row[0])
        return out

    def put_many(self, rows: Iterable[tuple[str, int, int, dict]]) -> None:
        with self._lock, self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?)",
                [(p, s, m, json.dumps(r)) for p, s, m, r in rows],
            )

    def close(self) -> None:
        self._db.close()


def _stat_key(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def _check(path: str) -> dict:
    """Check one file; the result is a plain dict so it can be cached as JSON."""
    try:
        return {"ok": True, **asdict(inspect_file(path))}
    except ImageProblem as p:
        return {"ok": False, "reason": p.reason}
    except MemoryError:
        return {"ok": False, "reason": "too large (ran out of memory decoding it)"}
    except Exception as exc:  # noqa: BLE001 - one odd file must never stop a scan of thousands
        return {"ok": False, "reason": f"cannot be read ({type(exc).__name__}: {str(exc)[:80]})"}


# Verdicts that can change without the file's size or mtime changing (a chmod, memory pressure, an
# unexpected error): never cached, so the next scan tries again.
_TRANSIENT = ("cannot be read", "too large (ran out of memory")


def _cacheable(result: dict) -> bool:
    return result["ok"] or not result["reason"].startswith(_TRANSIENT)


def check_files(
    paths: list[str], progress: Progress | None = None, use_cache: bool = True, workers: int | None = None
) -> tuple[dict[str, dict], int]:
    """Check many files in parallel, reusing cached results; returns (results by path, cache hits)."""
    keys = {p: k for p in paths if (k := _stat_key(p)) is not None}
    cache = ScanCache() if use_cache else None
    try:
        results = cache.get_many(keys) if cache else {}
        hits = len(results)
        todo = [p for p in paths if p not in results]
        total, done = len(paths), hits
        if progress:
            progress(done, total)
        # Pillow and hashlib release the GIL while decoding and hashing, so threads use every core
        # without the start-up and pickling cost of processes.
        workers = workers or os.cpu_count() or 1
        fresh = []
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for path, res in zip(todo, pool.map(_check, todo, chunksize=1)):
                results[path] = res
                if path in keys and _cacheable(res):
                    fresh.append((path, *keys[path], res))
                done += 1
                if progress and (done % 25 == 0 or done == total):
                    progress(done, total)
                if cache and len(fresh) >= 500:
                    cache.put_many(fresh)
                    fresh = []
        if cache and fresh:
            cache.put_many(fresh)
    finally:
        if cache:
            cache.close()
    return results, hits


def scan_layout(layout: Layout, progress: Progress | None = None, use_cache: bool = True) -> ScanResult:
    """Scan every file of every class folder of `layout`."""
    entries: list[tuple[str, int, str | None]] = []
    skipped: list[SkippedFile] = []
    for label, cls in enumerate(layout.classes):
        for folder, split in cls.folders:
            files, junk = _walk(folder)
            entries.extend((f, label, split) for f in files)
            skipped.extend(junk)
    results, hits = check_files([e[0] for e in entries], progress, use_cache)

    images: list[ImageRecord] = []
    sums = [0.0, 0.0, 0.0]
    sqsums = [0.0, 0.0, 0.0]
    pixels = 0
    for path, label, split in entries:
        res = results[path]
        if not res["ok"]:
            skipped.append(SkippedFile(path, res["reason"]))
            continue
        info = ImageInfo(**{k: v for k, v in res.items() if k != "ok"})
        images.append(
            ImageRecord(
                path, label, split, info.width, info.height, info.mode, info.format, info.size, info.sha256
            )
        )
        for c in range(3):
            sums[c] += info.channel_sum[c]
            sqsums[c] += info.channel_sqsum[c]
        pixels += info.pixels

    duplicates, conflicts, excluded = find_duplicates(images, layout.class_names)
    mean = tuple(s / pixels for s in sums) if pixels else (0.0, 0.0, 0.0)
    std = tuple(max(q / pixels - m * m, 0.0) ** 0.5 for q, m in zip(sqsums, mean)) if pixels else (1.0,) * 3
    return ScanResult(
        layout=layout,
        images=images,
        skipped=sorted(skipped, key=lambda s: s.path),
        duplicates=duplicates,
        conflicts=conflicts,
        excluded=excluded,
        channel_mean=mean,
        channel_std=std,
        from_cache=hits,
        notes=list(layout.notes),
    )


def find_duplicates(
    images: list[ImageRecord], class_names: list[str]
) -> tuple[list[list[str]], list[list[str]], dict[str, str]]:
    """Group byte-identical files; decide which copies training leaves out and why.

    Within a class one copy is kept (the earliest split, then the first path), so copies never
    straddle splits. Across classes the image is a label conflict and every copy is left out.
    """
    split_rank = {None: 0, **{s: i for i, s in enumerate(SPLITS)}}
    groups: dict[str, list[ImageRecord]] = defaultdict(list)
    for r in images:
        groups[r.sha256].append(r)
    duplicates, conflicts = [], []
    excluded: dict[str, str] = {}
    for recs in groups.values():
        if len(recs) < 2:
            continue
        recs = sorted(recs, key=lambda r: (split_rank[r.given_split], r.path))
        duplicates.append([r.path for r in recs])
        labels = {r.label for r in recs}
        if len(labels) > 1:
            conflicts.append([r.path for r in recs])
            names = " and ".join(class_names[i] for i in sorted(labels))
            for r in recs:
                excluded[r.path] = f"label conflict: the same image is in {names}"
            continue
        keep = recs[0]
        for r in recs[1:]:
            excluded[r.path] = f"duplicate of {keep.path}"
    duplicates.sort()
    conflicts.sort()
    return duplicates, conflicts, excluded
