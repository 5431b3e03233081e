"""Check every file under the class folders: what is usable, what is not and why, what repeats.

The scan only reads. It never writes, moves, renames or deletes anything in a user's folders; its
cache lives in bincls' own cache folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

import numpy as np

from bincls.data.file_access import readable, walk_files
from bincls.data.folder_layout import SPLITS, Layout
from bincls.data.images import ImageProblem, inspect_file
from bincls.data.near_duplicates import NearDuplicateGroup, find_near_duplicates, left_out_across_given_splits
from bincls.data.quality import QualityIssue, quality_issues
from bincls.paths import cache_dir

Progress = Callable[[int, int], None]


# Slots: a scan of 100,000 files holds 100,000 records, and a __dict__ per record would double them.
# An image this thin holds nothing to learn from (a 1 x 1 pixel, a 1 px line): it is listed, not trained on.
MIN_SIDE = 8

@dataclass(frozen=True, slots=True)
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
    near_duplicates: list[NearDuplicateGroup] = field(default_factory=list)  # the same photo, other files
    quality: list[QualityIssue] = field(default_factory=list)  # warnings only: these images still train

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
            "near_duplicates": [g.to_dict() for g in self.near_duplicates],
            "quality": [q.to_dict() for q in self.quality],
            "excluded": [{"path": p, "reason": r} for p, r in sorted(self.excluded.items())],
            "modes": self.mode_counts(),
            "formats": self.format_counts(),
            "channel_mean": list(self.channel_mean),
            "channel_std": list(self.channel_std),
            "notes": self.notes,
        }


def _walk(folder: str) -> tuple[list[str], list[SkippedFile]]:
    """All candidate files below `folder`, sorted; what is left out is listed with the reason."""
    walk = walk_files(folder)
    return walk.files, [SkippedFile(readable(p), r) for p, r in walk.skipped]


class ScanCache:
    """Per-file check results keyed by (path, size, mtime), so unchanged files are not decoded again."""

    # Bumped whenever a file's verdict can change for the same bytes (v2: corrupt PNGs were accepted;
    # v3: memory bombs, decoder exceptions and non-regular files; v4: perceptual hashes and quality
    # statistics). Paths are kept as their bytes, so a folder whose name is not UTF-8 is cached too.
    VERSION = 4

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = os.fspath(path or cache_dir() / f"scan-v{self.VERSION}.sqlite")
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS files"
            " (path BLOB PRIMARY KEY, size INTEGER, mtime_ns INTEGER, result TEXT)"
        )

    # Paths per SELECT ... IN (...): below SQLite's oldest limit of 999 bound parameters.
    LOOKUP_BATCH = 500

    def get_many(self, keys: dict[str, tuple[int, int]]) -> dict[str, dict]:
        out = {}
        by_bytes = {os.fsencode(p): p for p in keys}
        paths = list(by_bytes)
        with self._lock, contextlib.suppress(sqlite3.Error):  # an unreadable cache: nothing cached
            for i in range(0, len(paths), self.LOOKUP_BATCH):
                part = paths[i : i + self.LOOKUP_BATCH]
                marks = ",".join("?" * len(part))
                rows = self._db.execute(
                    f"SELECT path, size, mtime_ns, result FROM files WHERE path IN ({marks})", part
                )
                for raw, size, mtime, result in rows:
                    path = by_bytes[raw]
                    if keys[path] == (size, mtime):
                        out[path] = json.loads(result)
        return out

    def put_many(self, rows: Iterable[tuple[str, int, int, dict]]) -> None:
        """Store results; a cache that cannot be written (a full disk) only costs the next scan time."""
        try:
            with self._lock, self._db:
                self._db.executemany(
                    "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?)",
                    [(os.fsencode(p), s, m, json.dumps(r)) for p, s, m, r in rows],
                )
        except sqlite3.Error:
            pass

    def close(self) -> None:
        self._db.close()


def _open_cache() -> ScanCache | None:
    """The scan cache, or None when its folder cannot be written (read-only, full): scanning goes on."""
    try:
        return ScanCache()
    except (OSError, sqlite3.Error):
        return None


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
# unexpected error, a data root set or not): never cached, so the next scan tries again.
_TRANSIENT = ("cannot be read", "too large (ran out of memory", "leads outside", "changed while")


def _cacheable(result: dict) -> bool:
    return result["ok"] or not result["reason"].startswith(_TRANSIENT)


# Files per chunk: stat'ed, looked up in the cache and written back to it together.
CHUNK = 1000
# Checks queued per worker thread ahead of the one being collected: enough to keep every core busy,
# few enough that neither futures nor results pile up however many files there are.
IN_FLIGHT_PER_WORKER = 8
PROGRESS_SECONDS = 0.1  # at most this often, plus the last count: a UI or a terminal keeps up


def _throttled(progress: Progress, total: int) -> Callable[[int], None]:
    last = -PROGRESS_SECONDS

    def report(done: int) -> None:
        nonlocal last
        now = time.monotonic()
        if done == total or now - last >= PROGRESS_SECONDS:
            last = now
            progress(done, total)

    return report


def iter_checks(
    paths: list[str], progress: Progress | None = None, use_cache: bool = True, workers: int | None = None
) -> Iterator[tuple[str, dict, bool]]:
    """Check files in parallel, reusing cached results: (path, result, from cache), in the order of `paths`.

    Memory stays flat however many files there are: the cache is read and written a chunk at a time, a
    bounded number of checks is in flight, and each result is handed on as it comes, not collected.
    `progress(done, total)` is called from the caller's thread.
    """
    total = len(paths)
    report = _throttled(progress, total) if progress else None
    if progress:
        progress(0, total)
    workers = workers or os.cpu_count() or 1
    window = workers * IN_FLIGHT_PER_WORKER
    cache = _open_cache() if use_cache else None
    pending: deque[tuple[str, tuple[int, int] | None, Future | dict]] = deque()
    fresh: list[tuple[str, int, int, dict]] = []
    done = 0

    def collect() -> tuple[str, dict, bool]:
        nonlocal done
        path, key, job = pending.popleft()
        from_cache = not isinstance(job, Future)
        res = job if from_cache else job.result()
        if cache and not from_cache and key is not None and _cacheable(res):
            fresh.append((path, *key, res))
            if len(fresh) >= CHUNK:
                cache.put_many(fresh)
                fresh.clear()
        done += 1
        if report:
            report(done)
        return path, res, from_cache

    try:
        # Pillow and hashlib release the GIL while decoding and hashing, so threads use every core
        # without the start-up and pickling cost of processes.
        with ThreadPoolExecutor(max_workers=workers) as pool:
            try:
                for start in range(0, total, CHUNK):
                    chunk = paths[start : start + CHUNK]
                    keys = {p: k for p in chunk if (k := _stat_key(p)) is not None}
                    hits = cache.get_many(keys) if cache else {}
                    for path in chunk:
                        if path in hits:
                            pending.append((path, None, hits[path]))
                        else:
                            pending.append((path, keys.get(path), pool.submit(_check, path)))
                        while pending and (len(pending) > window or _ready(pending[0][2])):
                            yield collect()
                while pending:
                    yield collect()
            finally:  # the caller stopped early: do not check what nobody will read
                for _, _, job in pending:
                    if isinstance(job, Future):
                        job.cancel()
    finally:
        if cache:
            # Also when stopped (an app rerun, Ctrl+C): the next scan starts from what was checked.
            if fresh:
                cache.put_many(fresh)
            cache.close()


def _ready(job: Future | dict) -> bool:
    return not isinstance(job, Future) or job.done()


def scan_layout(layout: Layout, progress: Progress | None = None, use_cache: bool = True) -> ScanResult:
    """Scan every file of every class folder of `layout`.

    Memory grows with the number of files only by their records (path, size, hash...), never by
    their pixels or by the checks' full results.
    """
    entries: list[tuple[str, int, str | None]] = []
    skipped: list[SkippedFile] = []
    if layout.kind == "csv":  # a labelled CSV lists its files: nothing to walk
        entries = [(path, label, None) for path, label in layout.listing]
        skipped = [SkippedFile(where, reason) for where, reason in layout.unusable]
    for label, cls in enumerate(layout.classes if layout.kind != "csv" else ()):
        for folder, split in cls.folders:
            files, junk = _walk(folder)
            entries.extend((f, label, split) for f in files)
            skipped.extend(junk)

    images: list[ImageRecord] = []
    hashes: list[int] = []
    mirrored: list[int] = []
    quality: list[QualityIssue] = []
    sums = [0.0, 0.0, 0.0]
    sqsums = [0.0, 0.0, 0.0]
    pixels = hits = 0
    checks = iter_checks([e[0] for e in entries], progress, use_cache)
    # strict: the checks run to their end, which writes the last results to the cache
    for (path, label, split), (_, res, from_cache) in zip(entries, checks, strict=True):
        hits += from_cache
        if not res["ok"]:
            skipped.append(SkippedFile(path, res["reason"]))
            continue
        if min(res["width"], res["height"]) < MIN_SIDE:
            skipped.append(SkippedFile(path, f"too small to learn from ({res['width']} x {res['height']} px; "
                                             f"at least {MIN_SIDE} px a side)"))  # fmt: skip
            continue
        # Interned: thousands of records share a handful of mode and format names.
        mode, fmt = sys.intern(res["mode"]), sys.intern(res["format"])
        record = ImageRecord(
            path, label, split, res["width"], res["height"], mode, fmt, res["size"], res["sha256"]
        )
        images.append(record)
        hashes.append(int(res["hashes"][0], 16))
        mirrored.append(int(res["hashes"][1], 16))
        quality.extend(quality_issues(path, res["stats"], res["width"], res["height"]))
        for c in range(3):
            sums[c] += res["channel_sum"][c]
            sqsums[c] += res["channel_sqsum"][c]
        pixels += res["pixels"]

    duplicates, conflicts, excluded = find_duplicates(images, layout.class_names)
    near = find_near_duplicates(images, np.array(hashes, np.uint64), np.array(mirrored, np.uint64),
                                layout.class_names)  # fmt: skip
    if layout.presplit:
        given = {r.path: r.given_split for r in images}
        for path, reason in left_out_across_given_splits(near, given, _SPLIT_RANK).items():
            excluded.setdefault(path, reason)
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
        near_duplicates=near,
        quality=quality,
    )


_SPLIT_RANK: dict[str | None, int] = {None: 0, **{s: i for i, s in enumerate(SPLITS)}}


def find_duplicates(
    images: list[ImageRecord], class_names: list[str]
) -> tuple[list[list[str]], list[list[str]], dict[str, str]]:
    """Group byte-identical files; decide which copies training leaves out and why.

    Within a class one copy is kept (the earliest split, then the first path), so copies never
    straddle splits. Across classes the image is a label conflict and every copy is left out.
    """
    split_rank = _SPLIT_RANK
    # One pass over a dict by hash; only hashes seen twice get a list, so 100,000 distinct files
    # cost no 100,000 one-element lists.
    first: dict[str, ImageRecord] = {}
    groups: dict[str, list[ImageRecord]] = {}
    for r in images:
        seen = first.setdefault(r.sha256, r)
        if seen is not r:
            groups.setdefault(r.sha256, [seen]).append(r)
    duplicates, conflicts = [], []
    excluded: dict[str, str] = {}
    for recs in groups.values():
        recs.sort(key=lambda r: (split_rank[r.given_split], r.path))
        paths = [r.path for r in recs]
        duplicates.append(paths)
        labels = {r.label for r in recs}
        # One reason string per group, shared by its copies (a group can have thousands).
        if len(labels) > 1:
            conflicts.append(paths)
            names = " and ".join(class_names[i] for i in sorted(labels))
            reason = f"label conflict: the same image is in {names}"
            excluded.update(dict.fromkeys(paths, reason))
            continue
        reason = f"duplicate of {paths[0]}"
        excluded.update(dict.fromkeys(paths[1:], reason))
    duplicates.sort()
    conflicts.sort()
    return duplicates, conflicts, excluded
