"""The user's audit decisions, kept beside the dataset in bincls' own folder: an overlay, not an edit.

A decision per image path: keep (the label is right), exclude (leave it out of training), or relabel
(train it as the other class). `apply_overlay` gives a scan with the decisions applied; the files
themselves are never touched, and removing the overlay brings the dataset back as it was.

The decisions live in a `KeyedStore` (a file lock around every change, atomic replace, a damaged file
refused): two app sessions deciding at once lose nothing. The file belongs to the dataset's class folders
as they really are, and its keys are resolved paths, so a root, its two class folders and a link to
either find the same decisions.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections import Counter
from pathlib import Path

from bincls.data.folder_layout import resolve_layout
from bincls.data.keyed_store import KeyedStore, path_key, path_keys
from bincls.data.scan import ScanResult
from bincls.errors import BinclsError
from bincls.paths import cache_dir

ACTIONS = ("keep", "exclude", "relabel")
WHAT = "audit decisions"


class Decisions(dict):
    """{resolved path: action}; looking up any spelling of a path (through a link, relative) finds it."""

    def __contains__(self, path: object) -> bool:
        return isinstance(path, (str, os.PathLike)) and super().__contains__(path_key(path))

    def __getitem__(self, path: str) -> str:
        return super().__getitem__(path_key(path))

    def get(self, path: str, default: str | None = None) -> str | None:
        return super().get(path_key(path), default)

    @classmethod
    def of(cls, decisions: dict[str, str]) -> Decisions:
        if isinstance(decisions, Decisions):
            return decisions
        return cls(zip(path_keys(list(decisions)), decisions.values()))


def dataset_folders(data: list[str]) -> list[str]:
    """The real paths of every class folder (or the labelled CSV) that `data` resolves to, sorted."""
    layout = resolve_layout([str(p) for p in data])
    return sorted({os.path.realpath(folder) for c in layout.classes for folder, _ in c.folders})


def overlay_path(data: list[str]) -> Path:
    """Where the decisions for the dataset at `data` (one root, two class folders, a CSV) are kept."""
    key = hashlib.sha256("\0".join(dataset_folders(data)).encode("utf-8", "surrogateescape")).hexdigest()
    return cache_dir() / "audit" / f"decisions-{key[:24]}.json"


def _store(data: list[str]) -> KeyedStore:
    store = KeyedStore(overlay_path(data), WHAT)
    _migrate_legacy(data, store)
    return store


def _legacy_path(data: list[str]) -> Path:
    """Where bincls before the keyed store kept them: by the paths as typed, links not followed."""
    key = hashlib.sha256("\0".join(os.path.abspath(str(p)) for p in data).encode()).hexdigest()[:24]
    return cache_dir() / "audit" / f"{key}.json"


def _migrate_legacy(data: list[str], store: KeyedStore) -> None:
    """Fold an older decisions file for `data` into the store once (newer decisions win); set it aside."""
    legacy = _legacy_path(data)
    if not legacy.is_file():
        return
    try:
        old = json.loads(legacy.read_text(encoding="utf-8")).get("decisions")
        if not isinstance(old, dict):
            raise ValueError("no table of decisions")
    except (OSError, ValueError, AttributeError) as exc:
        raise BinclsError(
            f"The older {WHAT} file {legacy} is damaged ({str(exc)[:80]}); it was left as it is. "
            "Restore it, or move it aside to go on without its decisions."
        ) from None
    with store.locked() as current:
        keys = path_keys(list(old))
        merged = {k: a for k, a in zip(keys, old.values()) if a in ACTIONS}
        merged.update(current.entries)
        store._write(dataclasses.replace(current, entries=merged))
    os.replace(legacy, legacy.with_name(legacy.name + ".migrated"))


def load_decisions(data: list[str]) -> Decisions:
    """The decisions on images of this dataset that exist now (empty when none); `BinclsError` when the
    file is damaged (a run must not silently train without decisions the user made)."""
    entries = _store(data).entries()
    return Decisions({p: a for p, a in entries.items() if a in ACTIONS and os.path.lexists(p)})


def save_decisions(data: list[str], decisions: dict[str, str]) -> Path:
    """Merge `decisions` ({path: keep|exclude|relabel}) into the dataset's overlay; returns its file."""
    bad = {p: a for p, a in decisions.items() if a not in ACTIONS}
    if bad:
        raise BinclsError(f"Unknown audit decision(s) {bad}: use one of {', '.join(ACTIONS)}.")
    store = _store(data)
    store.update(dict(zip(path_keys(list(decisions)), decisions.values())))
    return store.path


def forget_decisions(data: list[str], paths: list[str] | None = None) -> Path:
    """Drop the decisions on `paths` (all of them when None): those images train as they are filed."""
    store = _store(data)
    if paths is None:
        store.update({}, replace=True)
    else:
        store.update(dict.fromkeys(path_keys(paths)))
    return store.path


def applied_decisions(scan: ScanResult, decisions: dict[str, str]) -> dict[str, str]:
    """{path as the scan has it: action} for the images of `scan` that have a decision: what a run honours
    (decisions on images that are not in the dataset, or no longer exist, count for nothing)."""
    if not decisions:
        return {}
    decided = Decisions.of(decisions)
    keys = path_keys([r.path for r in scan.images])
    return {r.path: decided[k] for r, k in zip(scan.images, keys) if dict.__contains__(decided, k)}


def overlay_counts(applied: dict[str, str]) -> dict[str, int]:
    """{action: images} of `applied_decisions`, every action present."""
    counts = Counter(applied.values())
    return {a: counts.get(a, 0) for a in ACTIONS}


def apply_overlay(scan: ScanResult, decisions: dict[str, str]) -> ScanResult:
    """A copy of `scan` with excluded images left out (with the reason) and relabelled ones moved."""
    applied = applied_decisions(scan, decisions)
    if not applied:
        return scan
    images = [
        dataclasses.replace(r, label=1 - r.label) if applied.get(r.path) == "relabel" else r
        for r in scan.images
    ]
    excluded = dict(scan.excluded)
    for r in images:
        if applied.get(r.path) == "exclude" and r.path not in excluded:
            excluded[r.path] = "excluded in the label audit"
    return dataclasses.replace(scan, images=images, excluded=excluded)
