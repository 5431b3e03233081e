"""Look at folders without decoding anything: subfolders with image counts, and folder fingerprints.

What a folder browser needs (the app's, or anyone's), and what caches key on so they notice new files.
Counting goes by file extension only; checking and decoding every file is the scan's job.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from PIL import Image

from bincls.data import data_root
from bincls.data.images import ACCEPTED_FORMATS, is_junk_dir, is_junk_name

# The extensions Pillow gives the formats we train on (.jpg, .jpeg, .png, .webp, .tif, ...).
IMAGE_EXTENSIONS = frozenset(
    ext for ext, fmt in Image.registered_extensions().items() if fmt in ACCEPTED_FORMATS
)
COUNT_CAP = 1000  # images counted per subfolder before it shows as "1000+"
WALK_CAP = 5000  # directory entries looked at per subfolder before giving up counting
LIST_CAP = 300  # subfolders listed


@dataclass(frozen=True)
class Subfolder:
    """One visible subfolder and how many image files lie below it (by extension)."""

    name: str
    path: str
    images: int
    capped: bool  # counting stopped at a cap: there are at least `images`

    @property
    def images_label(self) -> str:
        return f"{self.images}+" if self.capped else str(self.images)


def is_image_name(name: str) -> bool:
    """A visible file whose extension is one of an accepted image format."""
    return not is_junk_name(name) and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def count_images(
    folder: str | os.PathLike, count_cap: int = COUNT_CAP, walk_cap: int = WALK_CAP
) -> tuple[int, bool]:
    """Image files below `folder` by extension, without decoding; (count, True when cut short)."""
    n = seen = 0
    stack = [os.fspath(folder)]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                for e in it:
                    seen += 1
                    if seen > walk_cap or n >= count_cap:
                        return n, True
                    try:
                        if e.is_dir(follow_symlinks=False):
                            if not is_junk_dir(e.name):
                                stack.append(e.path)
                        elif is_image_name(e.name):
                            n += 1
                    except OSError:
                        continue
        except OSError:
            continue
    return n, False


def list_subfolders(folder: str | os.PathLike, limit: int = LIST_CAP) -> list[Subfolder]:
    """The visible subfolders of `folder` (by name, at most `limit`) that `BINCLS_DATA_ROOT` allows,
    with their image counts. A folder that cannot be read has none."""
    try:
        entries = sorted(
            (e for e in os.scandir(folder)
             if e.is_dir(follow_symlinks=True) and not is_junk_dir(e.name) and data_root.allowed(e.path)),
            key=lambda e: e.name.lower(),
        )  # fmt: skip
    except OSError:
        return []
    return [Subfolder(e.name, e.path, *count_images(e.path)) for e in entries[:limit]]


def folder_fingerprint(paths: list[str]) -> tuple:
    """Changes when files are added, removed or renamed below `paths` (folder mtimes): a cache key."""
    out = []
    for p in paths:
        for dirpath, dirnames, _ in os.walk(p):
            dirnames.sort()
            try:
                out.append((dirpath, os.stat(dirpath).st_mtime_ns))
            except OSError:
                pass
    return tuple(out)


def file_stamp(path: str | os.PathLike) -> int:
    """A file's mtime in ns (0 when absent): part of cache keys, so a rewritten file is read again."""
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return 0
