"""Image features kept in the cache folder per image, so that a pile that grows is not computed again.

One SQLite table holds each file's vector (float16: half the space, far below what a linear model or a
distance can tell apart) under its path, size, modification time and the extractor that made it. A
whole list of files also gets one .npy memo, read at once the next time the same files are asked for.
Free of torch: a labelling round whose features are all cached never loads it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from bincls.paths import cache_dir

VERSION = 1
LOOKUP_BATCH = 500  # paths per SELECT ... IN (...), below SQLite's oldest limit of 999 parameters
MEMOS_KEPT = 8  # whole-list memos kept (the newest); older ones are only a faster way to the same rows
Progress = Callable[[int, int], None]
# Computes the vectors of some files: yields (index into the list it was given, vector or None when the
# file cannot be read now); the vectors of one call all have the same length.
Compute = Callable[[list[str]], Iterator[tuple[int, np.ndarray | None]]]


def stat_key(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


class FeatureCache:
    """Per-file vectors by (path, extractor), valid while the file's size and mtime are unchanged."""

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path or cache_dir() / f"features-v{VERSION}.sqlite")
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=60, check_same_thread=False)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS vectors (path BLOB, extractor TEXT, size INTEGER, mtime_ns INTEGER,"
            " vector BLOB, PRIMARY KEY (path, extractor))"
        )

    def get_many(self, extractor: str, keys: dict[str, tuple[int, int]]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        by_bytes = {os.fsencode(p): p for p in keys}
        paths = list(by_bytes)
        with self._lock, contextlib.suppress(sqlite3.Error):  # an unreadable cache: nothing cached
            for i in range(0, len(paths), LOOKUP_BATCH):
                part = paths[i : i + LOOKUP_BATCH]
                rows = self._db.execute(
                    "SELECT path, size, mtime_ns, vector FROM vectors WHERE extractor = ? AND path IN "
                    f"({','.join('?' * len(part))})", [extractor, *part],
                )  # fmt: skip
                for raw, size, mtime, vector in rows:
                    path = by_bytes[raw]
                    if keys[path] == (size, mtime):
                        out[path] = np.frombuffer(vector, dtype=np.float16)
        return out

    def put_many(self, extractor: str, rows: list[tuple[str, tuple[int, int], np.ndarray]]) -> None:
        """Store vectors; a cache that cannot be written (a full disk) only costs the next pass time."""
        try:
            with self._lock, self._db:
                self._db.executemany(
                    "INSERT OR REPLACE INTO vectors VALUES (?, ?, ?, ?, ?)",
                    [(os.fsencode(p), extractor, k[0], k[1], np.asarray(v, np.float16).tobytes())
                     for p, k, v in rows],
                )  # fmt: skip
        except sqlite3.Error:
            pass

    def close(self) -> None:
        self._db.close()


def _memo_path(paths: list[str], keys: list[tuple[int, int] | None], extractor: str) -> Path:
    h = hashlib.sha256(f"features-v{VERSION}:{extractor}".encode())
    for p, k in zip(paths, keys):
        h.update(os.fsencode(os.path.abspath(p)) + f"\0{k}\0".encode())
    return cache_dir() / "features" / f"{h.hexdigest()[:32]}.npy"


def cached_features(paths: list[str], extractor: str) -> tuple[np.ndarray | None, list[int]]:
    """(the [N, D] float16 features when every file's are cached, else None; the indices not cached).
    float16 as stored: a million images' 1,280 values are 2.5 GB so, 5 GB as float32."""
    keys = [stat_key(p) for p in paths]
    memo = _memo_path(paths, keys, extractor)
    if memo.is_file():
        with contextlib.suppress(OSError, ValueError):
            return np.load(memo), []
    found = _lookup(paths, keys, extractor)
    missing = [i for i, p in enumerate(paths) if p not in found]
    if missing or not paths:
        return None, missing
    matrix = np.stack([found[p] for p in paths])
    _save_memo(memo, matrix)
    return matrix, []


def _lookup(paths: list[str], keys: list[tuple[int, int] | None], extractor: str) -> dict[str, np.ndarray]:
    try:
        cache = FeatureCache()
    except (OSError, sqlite3.Error):
        return {}
    try:
        return cache.get_many(extractor, {p: k for p, k in zip(paths, keys) if k is not None})
    finally:
        cache.close()


def compute_into_cache(paths: list[str], extractor: str, compute: Compute, progress: Progress | None = None,
                       chunk: int = 256) -> dict[str, np.ndarray]:  # fmt: skip
    """Compute the features of `paths` a chunk at a time, each chunk stored at once (an interrupted pass
    keeps what it did); returns them ({path: vector}; a file that cannot be read now is not in it)."""
    done: dict[str, np.ndarray] = {}
    try:
        cache = FeatureCache()
    except (OSError, sqlite3.Error):
        cache = None  # a cache that cannot be opened only costs the next pass the computation
    try:
        for start in range(0, len(paths), chunk):
            part = paths[start : start + chunk]
            rows = []
            for i, vector in compute(part):
                key = stat_key(part[i])
                if vector is not None and key is not None:
                    rows.append((part[i], key, vector))
                    done[part[i]] = np.asarray(vector, np.float16)
            if cache:
                cache.put_many(extractor, rows)
            if progress:
                progress(min(start + chunk, len(paths)), len(paths))
    finally:
        if cache:
            cache.close()
    return done


def features_for(paths: list[str], extractor: str, compute: Compute,
                 progress: Progress | None = None) -> tuple[np.ndarray, list[int]]:  # fmt: skip
    """[N, D] float16 features of `paths` (cached ones read, the rest computed and cached), and the indices
    of files that could not be read now (their rows are NaN)."""
    matrix, missing = cached_features(paths, extractor)
    if matrix is not None:
        return matrix, []
    keys = [stat_key(p) for p in paths]
    found = _lookup(paths, keys, extractor)  # also what other processes of a torchrun launch computed
    found.update(compute_into_cache([p for p in paths if p not in found], extractor, compute, progress))
    dim = next((len(v) for v in found.values()), 1)
    matrix = np.full((len(paths), dim), np.nan, np.float16)
    failed = []
    for i, p in enumerate(paths):
        if p in found:
            matrix[i] = found[p]
        else:
            failed.append(i)
    if not failed and paths:
        _save_memo(_memo_path(paths, keys, extractor), matrix)
    return matrix, failed


def _save_memo(memo: Path, matrix: np.ndarray) -> None:
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo.with_name(f".{memo.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        with open(tmp, "wb") as f:
            np.save(f, matrix.astype(np.float16))
        os.replace(tmp, memo)
        memos = sorted(memo.parent.glob("*.npy"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in memos[MEMOS_KEPT:]:
            old.unlink(missing_ok=True)
    except OSError:
        pass  # a full or read-only cache only costs the next pass the lookups
