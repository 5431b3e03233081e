"""JSON files that every reader can read back, written atomically (temp file, fsync, rename), and the
small disk reserve that lets a run still write why it failed when the disk is full."""

from __future__ import annotations

import errno
import json
import math
import os
import re
from pathlib import Path
from typing import Any

import psutil


def json_safe(obj: Any) -> Any:
    """JSON has no NaN/inf: write them as null so every line stays valid JSON for any reader."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def json_text(obj: Any, **kwargs: Any) -> str:
    """JSON that any reader can read back: NaN and inf as null; characters as they are, unless a name
    holds bytes that are not UTF-8 (Python keeps them as lone surrogates), which are then escaped."""
    safe = json_safe(obj)
    text = json.dumps(safe, ensure_ascii=False, **kwargs)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(safe, ensure_ascii=True, **kwargs)
    return text


# Kept in every run folder and given up when the disk is full, so that the run can still record why
# it failed: a status.json and a log line need a few kilobytes.
RESERVE_NAME = ".space-reserve"
RESERVE_BYTES = 128 * 1024
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def reserve_space(folder: str | os.PathLike) -> None:
    """(Re)create the folder's space reserve; best effort (a full or read-only disk goes without)."""
    target = Path(folder) / RESERVE_NAME
    try:
        if not target.exists() or target.stat().st_size < RESERVE_BYTES:
            with open(target, "wb") as f:
                f.write(b"\0" * RESERVE_BYTES)
    except OSError:
        pass


def with_space_reserve(folder: Path, write) -> None:
    """Run `write()`; when the disk is full, give up the folder's reserve once and try again."""
    try:
        write()
    except OSError as exc:
        reserve = folder / RESERVE_NAME
        if exc.errno not in _NO_SPACE or not reserve.exists():
            raise
        reserve.unlink()
        write()


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    text = json_text(obj, indent=1)

    def write() -> None:
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise

    with_space_reserve(path.parent, write)


def read_json(path: str | os.PathLike, default: Any = None) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):  # also a file cut inside a character (UnicodeDecodeError)
        return default


_TMP = re.compile(r"\.(\d+)\.tmp$")


def remove_stale_temp_files(folder: str | os.PathLike) -> list[str]:
    """Delete the half-written `*.<pid>.tmp` files that a killed process left in `folder` (those of a
    process that is still running are its saves in progress); returns their names."""
    gone = []
    try:
        names = os.listdir(folder)
    except OSError:
        return gone
    for name in names:
        m = _TMP.search(name)
        if m and not psutil.pid_exists(int(m.group(1))):
            try:
                os.unlink(os.path.join(folder, name))
                gone.append(name)
            except OSError:
                pass
    return gone
