"""The user's audit decisions, kept beside the dataset in bincls' own folder: an overlay, not an edit.

A decision per image path: keep (the label is right), exclude (leave it out of training), or relabel
(train it as the other class). `apply_overlay` gives a scan with the decisions applied; the files
themselves are never touched, and removing the overlay brings the dataset back as it was.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import threading
from pathlib import Path

from bincls.data.scan import ScanResult
from bincls.errors import BinclsError
from bincls.paths import cache_dir

ACTIONS = ("keep", "exclude", "relabel")


def overlay_path(data: list[str]) -> Path:
    """Where the decisions for the dataset at `data` (one root or two class folders) are kept."""
    key = hashlib.sha256("\0".join(os.path.abspath(str(p)) for p in data).encode()).hexdigest()[:24]
    return cache_dir() / "audit" / f"{key}.json"


def load_decisions(data: list[str]) -> dict[str, str]:
    """{path: action} decided for this dataset so far (empty when none)."""
    try:
        raw = json.loads(overlay_path(data).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    decisions = raw.get("decisions") if isinstance(raw, dict) else None
    if not isinstance(decisions, dict):
        return {}
    return {str(p): a for p, a in decisions.items() if a in ACTIONS}


def save_decisions(data: list[str], decisions: dict[str, str]) -> Path:
    """Merge `decisions` ({path: keep|exclude|relabel}) into the dataset's overlay; returns its file."""
    bad = {p: a for p, a in decisions.items() if a not in ACTIONS}
    if bad:
        raise BinclsError(f"Unknown audit decision(s) {bad}: use one of {', '.join(ACTIONS)}.")
    return _write(data, {**load_decisions(data), **decisions})


def _write(data: list[str], decisions: dict[str, str]) -> Path:
    path = overlay_path(data)
    path.parent.mkdir(parents=True, exist_ok=True)
    # one temporary file per thread: the app's sessions are threads of one process
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    body = {"data": [os.path.abspath(str(p)) for p in data], "decisions": decisions}
    tmp.write_text(json.dumps(body, indent=1, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)  # atomic: training may read the overlay while a page writes it
    return path


def forget_decisions(data: list[str], paths: list[str] | None = None) -> Path:
    """Drop the decisions on `paths` (all of them when None): those images train as they are filed."""
    if paths is None:
        return _write(data, {})
    drop = set(paths)
    return _write(data, {p: a for p, a in load_decisions(data).items() if p not in drop})


def apply_overlay(scan: ScanResult, decisions: dict[str, str]) -> ScanResult:
    """A copy of `scan` with excluded images left out (with the reason) and relabelled ones moved."""
    if not decisions:
        return scan
    images = [
        dataclasses.replace(r, label=1 - r.label) if decisions.get(r.path) == "relabel" else r
        for r in scan.images
    ]
    excluded = dict(scan.excluded)
    for r in images:
        if decisions.get(r.path) == "exclude" and r.path not in excluded:
            excluded[r.path] = "excluded in the label audit"
    return dataclasses.replace(scan, images=images, excluded=excluded)
