"""Decisions keyed by image path (audit decisions, labelling answers), one JSON file in bincls' cache.

Safe for several writers at once (two app tabs, the app and the command line, a server restarting): every
change is a read-merge-write under an exclusive file lock (`fcntl.flock` on a lock file beside it), and the
file is replaced atomically, so a reader sees the old or the new version, never half of one. The last
write wins per key. A file that is damaged (cut short, edited into something else) is refused with an
error naming it, and never overwritten: nothing in it is lost.

Keys are image paths with their folders resolved (`path_key`): a folder opened through a link, or a root
opened as its two class folders, finds the same keys.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bincls.errors import BinclsError
from bincls.json_files import write_json_atomic

FORMAT = "bincls-keyed-store"
VERSION = 1


def path_key(path: str | os.PathLike, _folders: dict[str, str] | None = None) -> str:
    """The key of an image path: its folder resolved (links, `..`, relative parts), its own name kept.

    The name is not followed when it is itself a link: the decision is about this entry of the folder.
    `_folders` caches resolved folders across calls (`path_keys`).
    """
    text = os.path.abspath(os.fspath(path))
    folder, name = os.path.split(text)
    if _folders is None:
        return os.path.join(os.path.realpath(folder), name)
    real = _folders.get(folder)
    if real is None:
        real = _folders[folder] = os.path.realpath(folder)
    return os.path.join(real, name)


def path_keys(paths: Iterable[str]) -> list[str]:
    """`path_key` of many paths, each folder resolved once."""
    folders: dict[str, str] = {}
    return [path_key(p, folders) for p in paths]


@dataclass(frozen=True)
class Applied:
    """What an update did: keys newly set, set to another value, removed, and already so."""

    added: int = 0
    changed: int = 0
    removed: int = 0
    unchanged: int = 0

    @property
    def written(self) -> int:
        return self.added + self.changed + self.removed


@dataclass
class StoreContent:
    entries: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


class KeyedStore:
    """One JSON file of {key: value}; `what` names it in messages ("audit decisions")."""

    def __init__(self, path: str | os.PathLike, what: str):
        self.path = Path(path)
        self.what = what

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    def read(self) -> StoreContent:
        """Everything in the file (empty when there is none); `BinclsError` when it is damaged."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return StoreContent()
        except OSError as exc:
            why = exc.strerror or exc
            raise BinclsError(f"The {self.what} in {self.path} cannot be read ({why}).") from None
        return self._parse(raw)

    def entries(self) -> dict[str, Any]:
        return self.read().entries

    def _parse(self, raw: bytes) -> StoreContent:
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            self._damaged(f"not complete JSON: {str(exc)[:80]}")
        if not isinstance(body, dict) or body.get("format") != FORMAT:
            self._damaged("not a bincls file of decisions")
        if body.get("version") != VERSION:
            self._damaged(f"written by another version of bincls (format version {body.get('version')!r})")
        entries, meta = body.get("entries"), body.get("meta", {})
        if not isinstance(entries, dict) or not isinstance(meta, dict):
            self._damaged("its entries are not a table of paths")
        return StoreContent(entries, meta)

    def _damaged(self, why: str):
        raise BinclsError(
            f"The {self.what} file {self.path} is damaged ({why}). It was left as it is and nothing was "
            "saved, so none of it is lost: restore it from a backup, or move it aside to start afresh."
        )

    @contextmanager
    def locked(self) -> Iterator[StoreContent]:
        """Hold the lock; yields the current content. Writes inside go through `_write`."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.lock_path, "a+b") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)  # released when the file closes, also on a crash
            yield self.read()

    def update(self, changes: Mapping[str, Any], meta: Mapping[str, Any] | None = None,
               replace: bool = False) -> Applied:  # fmt: skip
        """Set each key of `changes` to its value (None removes it), atomically, under the lock.

        `replace`: the changes become the whole content. `meta` is merged into the file's own notes.
        """
        return self.update_with(lambda _: changes, meta, replace)

    def update_with(self, changes_of: Callable[[dict[str, Any]], Mapping[str, Any]],
                    meta: Mapping[str, Any] | None = None, replace: bool = False) -> Applied:  # fmt: skip
        """`update` with the changes worked out from the current entries, under the same lock (a change
        that depends on what is there, such as "replace what this file brought in last time")."""
        with self.locked() as current:
            changes = changes_of(dict(current.entries))
            after = {} if replace else dict(current.entries)
            for key, value in changes.items():
                if value is None:
                    after.pop(key, None)
                else:
                    after[key] = value
            applied = _diff(current.entries, after)
            new_meta = {**current.meta, **(meta or {})}
            if applied.written or new_meta != current.meta or not self.path.exists():
                self._write(StoreContent(after, new_meta))
            return applied

    def _write(self, content: StoreContent) -> None:
        write_json_atomic(self.path, {"format": FORMAT, "version": VERSION, "meta": content.meta,
                                      "entries": content.entries})  # fmt: skip


def _diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> Applied:
    added = sum(1 for k in new if k not in old)
    changed = sum(1 for k, v in new.items() if k in old and old[k] != v)
    removed = sum(1 for k in old if k not in new)
    return Applied(added, changed, removed, len(new) - added - changed)
