"""Reach the files in a user's folders safely: the one folder walk and the one way to open a file.

Only regular files are ever opened: a FIFO would block the reader forever, a device can be endless. When
`BINCLS_DATA_ROOT` is set, nothing that really lies outside it (or the app's own sample and uploads
folders) is walked or opened, whatever the links inside it say. A walk never leaves anything out without
saying so: every file or folder it does not hand on is listed with the reason.
"""

from __future__ import annotations

import io
import os
import stat
from dataclasses import dataclass, field
from typing import BinaryIO

from bincls.data.data_root import outside_reason, readable_roots
from bincls.errors import BinclsError

# Hidden and system names that operating systems and tools leave in folders; they are never images.
JUNK_NAMES = {".ds_store", "thumbs.db", "desktop.ini", "ehthumbs.db", ".directory", "icon\r"}
# Folders that tools leave behind and that never hold training images (macOS zips add __MACOSX).
JUNK_DIRS = {"__macosx", "$recycle.bin", "system volume information", "@eadir", ".trash", "__pycache__"}

_KINDS = {
    stat.S_IFIFO: "a named pipe (FIFO)",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFDIR: "a folder",
}


def is_junk_name(name: str) -> bool:
    """Hidden and system files (`.DS_Store`, `Thumbs.db`, `._*` resource forks...)."""
    return name.lower() in JUNK_NAMES or name.startswith(".")


def is_junk_dir(name: str) -> bool:
    """Hidden and system folders: never a class, never scanned."""
    return is_junk_name(name) or name.lower() in JUNK_DIRS


def is_utf8(name: str) -> bool:
    """False for a name whose bytes are not UTF-8 (an old zip's Latin-1 'caf\\xe9.jpg')."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def readable(path: str) -> str:
    """`path` as text a person can read, bytes that are not UTF-8 shown as U+FFFD."""
    return os.fsencode(path).decode("utf-8", "replace")


class FileProblem(BinclsError):
    """A path that is not opened, with a short readable reason."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def kind_reason(mode: int, via_link: bool = False) -> str | None:
    """Why a file of this `st_mode` is never opened (None for a regular file)."""
    if stat.S_ISREG(mode):
        return None
    kind = _KINDS.get(stat.S_IFMT(mode), "not a regular file")
    if stat.S_ISDIR(mode):
        return "link to a folder (not followed)" if via_link else "a folder, not a file"
    return f"{'link to ' if via_link else ''}{kind}, not a regular file (never opened)"


def _folder_reason(path: str) -> str:
    """The reason for a folder given where a file was expected (as `expand_inputs` lists them)."""
    try:
        with os.scandir(path):
            pass
    except OSError as exc:
        return unreadable_folder_reason(exc)
    return "a folder, not a file"


def unreadable_folder_reason(exc: OSError) -> str:
    return f"folder cannot be read ({exc.strerror or exc}): the files in it were left out"


def check_path(path: str, roots: list[str] | None = None) -> os.stat_result:
    """What must hold before `path` is opened: it exists, leads nowhere outside the data root, and is a
    regular file (links followed). Returns its stat; raises `FileProblem` with the reason."""
    try:
        lst = os.lstat(path)
    except OSError as exc:
        raise FileProblem(path, f"cannot be read ({exc.strerror or exc})") from None
    link = stat.S_ISLNK(lst.st_mode)
    try:
        st = os.stat(path) if link else lst
    except OSError:
        raise FileProblem(path, "dangling link (its target does not exist)") from None
    reason = outside_reason(path, roots if roots is not None else readable_roots())
    if reason is not None:
        reason += "; not read"
    elif stat.S_ISDIR(st.st_mode) and not link:
        reason = _folder_reason(path)
    reason = reason or kind_reason(st.st_mode, via_link=link)
    if reason:
        raise FileProblem(path, reason)
    return st


def open_regular(path: str | os.PathLike) -> BinaryIO:
    """Open a file for reading, only if `check_path` allows it; raises `FileProblem`.

    The file is opened without blocking and checked again once open, so a file swapped for a FIFO, a
    device or a link in between is refused rather than read.
    """
    path = os.fspath(path)
    st = check_path(path)
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise FileProblem(path, f"cannot be read ({exc.strerror or exc})") from None
    try:
        now = os.fstat(fd)
        if not stat.S_ISREG(now.st_mode) or (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
            raise FileProblem(path, "changed while it was being opened (not read)")
        os.set_blocking(fd, True)
        return _ClampedReader(io.FileIO(fd, "r"), size=now.st_size)
    except BaseException:
        os.close(fd)
        raise


class _ClampedReader(io.BufferedReader):
    """A file whose `read(n)` never asks for more than the file holds: a decoder that believes a damaged
    length field (a PNG chunk of 2 GB in a 1 KB file) would otherwise allocate that much first."""

    def __init__(self, raw: io.FileIO, size: int):
        super().__init__(raw)
        self._size = size

    def read(self, n: int | None = -1) -> bytes:
        if n is not None and n > 0:
            n = max(0, min(n, self._size - self.tell()))
        return super().read(n)


@dataclass
class Walk:
    """What a walk found: the files to use, and what it left out with the reason (path, reason). Paths
    are as the file system has them (see `readable` to show one whose name is not UTF-8)."""

    files: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def walk_files(folder: str | os.PathLike, utf8_names: bool = True) -> Walk:
    """Every regular file below `folder`, sorted folder by folder as `os.walk` goes; the rest listed.

    Left out, with the reason: hidden and system files and folders, links to folders (never followed),
    links that lead outside the data root, dangling links, FIFOs, sockets and devices, folders that
    cannot be read, and (with `utf8_names`) names that are not UTF-8. Only the folders are listed here
    (one `scandir` each): no file is opened.
    """
    roots = readable_roots()
    out = Walk()
    stack = [os.fspath(folder)]
    while stack:
        current = stack.pop()
        try:
            with os.scandir(current) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            out.skipped.append((current, unreadable_folder_reason(exc)))
            continue
        subdirs = []
        for entry in entries:
            sub = _classify(entry, roots, utf8_names, out)
            if sub:
                subdirs.append(entry.path)
        stack.extend(reversed(subdirs))
    return out


def _classify(entry: os.DirEntry, roots: list[str] | None, utf8_names: bool, out: Walk) -> bool:
    """File `entry` in `out`; True when it is a folder to walk into."""
    path, name = entry.path, entry.name
    try:
        is_link = entry.is_symlink()
        is_dir = not is_link and entry.is_dir(follow_symlinks=False)
    except OSError as exc:
        out.skipped.append((path, f"cannot be read ({exc.strerror or exc})"))
        return False
    if is_dir:
        if is_junk_dir(name):
            out.skipped.append((path, "hidden or system folder (not scanned)"))
        elif utf8_names and not is_utf8(name):
            out.skipped.append((path, "folder name is not UTF-8 (not scanned)"))
        else:
            return True
        return False
    if is_junk_name(name):
        out.skipped.append((path, "hidden or system file"))
        return False
    if utf8_names and not is_utf8(name):
        out.skipped.append((path, "file name is not UTF-8 (rename it to use it)"))
        return False
    try:
        # A plain regular file (the common case) needs no system call: the folder listing says so.
        if is_link or not entry.is_file(follow_symlinks=False):
            check_path(path, roots)
    except OSError as exc:
        out.skipped.append((path, f"cannot be read ({exc.strerror or exc})"))
        return False
    except FileProblem as p:
        out.skipped.append((path, p.reason))
        return False
    out.files.append(path)
    return False
