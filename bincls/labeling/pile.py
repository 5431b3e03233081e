"""A pile: every image below one or more folders, each file checked as the scan checks it.

Nothing is read as a class: the folders are searched recursively and every file goes through the
scan's checks (and its cache). What cannot be used is listed with the reason, byte-identical copies
are asked about once, and nothing in the folders is ever written, moved or renamed.
"""

from __future__ import annotations

import hashlib
import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from bincls.data.file_access import readable, walk_files
from bincls.data.folder_layout import check_folder
from bincls.data.keyed_store import path_keys
from bincls.data.scan import MIN_SIDE, SkippedFile, iter_checks
from bincls.errors import BinclsError
from bincls.labeling.shared_work import share

Progress = Callable[[int, int], None]


@dataclass
class Pile:
    folders: list[str]  # as given, absolute
    paths: list[str]  # the usable images, one per distinct content, sorted
    skipped: list[SkippedFile] = field(default_factory=list)  # everything else, with the reason

    @property
    def identity(self) -> str:
        """The same for the same folders however they are reached (links, relative paths, order)."""
        real = sorted({os.path.realpath(f) for f in self.folders})
        return hashlib.sha256("\0".join(real).encode("utf-8", "surrogateescape")).hexdigest()[:24]

    @property
    def keys(self) -> list[str]:
        """Each image's key in the session's answers (`bincls.data.keyed_store.path_key`)."""
        return path_keys(self.paths)


def find_pile(folders: list[str | os.PathLike], progress: Progress | None = None) -> Pile:
    """Walk `folders`, check every file, keep one usable image per distinct content."""
    if not folders:
        raise BinclsError("Give the folder(s) of the pile to label.")
    given = [str(check_folder(f, "Pile folder")) for f in folders]
    files: dict[str, str] = {}  # key -> path: a folder given twice, or inside another, counts once
    skipped: list[SkippedFile] = []
    for folder in given:
        walk = walk_files(folder)
        for key, path in zip(path_keys(walk.files), walk.files):
            files.setdefault(key, path)
        skipped += [SkippedFile(readable(p), r) for p, r in walk.skipped]
    ordered = sorted(files.values())
    # under torchrun each process checks its share into the scan cache first (cold: the longest part)
    share(ordered, lambda mine: deque(iter_checks(mine), maxlen=0))
    first: dict[str, str] = {}
    for path, res, _ in iter_checks(ordered, progress):
        if not res["ok"]:
            skipped.append(SkippedFile(path, res["reason"]))
        elif min(res["width"], res["height"]) < MIN_SIDE:
            size = f"{res['width']} x {res['height']} px"
            skipped.append(SkippedFile(path, f"too small to learn from ({size})"))
        elif res["sha256"] in first:
            skipped.append(SkippedFile(path, f"the same image as {first[res['sha256']]} (asked about once)"))
        else:
            first[res["sha256"]] = path
    if not first:
        raise BinclsError(f"No usable images in {', '.join(given)} ({len(skipped)} file(s) left out).")
    return Pile(given, sorted(first.values()), sorted(skipped, key=lambda s: s.path))
