"""Keep every folder the app is given inside `BINCLS_DATA_ROOT` when the app is served to others.

Unset, nothing is confined: a path is only expanded (``~``) and made absolute. Set, a path is
resolved with `os.path.realpath` (so ``..`` and links are followed to where they really lead) and
refused with a `BinclsError` unless it lands inside the root; a relative path is taken from the root.
"""

from __future__ import annotations

import os
from pathlib import Path

from bincls.errors import BinclsError

ENV = "BINCLS_DATA_ROOT"


def data_root() -> Path | None:
    """The real path of `BINCLS_DATA_ROOT`, or None when it is unset (or blank)."""
    raw = os.environ.get(ENV, "").strip()
    if not raw:
        return None
    return Path(os.path.realpath(os.path.expanduser(raw)))


def is_inside(path: str | os.PathLike, root: str | os.PathLike) -> bool:
    """True when the real path of `path` is `root` or below it (`root` must be a real path already)."""
    real, root = os.path.realpath(path), os.fspath(root)
    return real == root or real.startswith(root.rstrip(os.sep) + os.sep)


def allowed(path: str | os.PathLike) -> bool:
    """True when `path` may be used: no root is set, or it really lies inside the root."""
    root = data_root()
    return root is None or is_inside(path, root)


def readable_roots() -> list[str] | None:
    """Where files may be read from, as real paths: None when no root is set (anywhere). With a root: the
    root, and the app's own sample and uploads folders (the app offers those whatever the root)."""
    root = data_root()
    if root is None:
        return None
    from bincls.paths import SAMPLE_DATA, uploads_dir

    return [str(root), os.path.realpath(SAMPLE_DATA), os.path.realpath(uploads_dir())]


def outside_reason(path: str | os.PathLike, roots: list[str] | None) -> str | None:
    """Why `path` may not be read (it really leads outside `roots`, see `readable_roots`), or None."""
    if roots is None:
        return None
    real = os.path.realpath(path)
    if any(real == r or real.startswith(r.rstrip(os.sep) + os.sep) for r in roots):
        return None
    return f"leads outside the folder this app may read ({roots[0]})"


def confine(path: str | os.PathLike) -> Path:
    """`path` as the app may use it; raises `BinclsError` when a data root is set and it leads outside.

    Without a root: ``~`` expanded, made absolute, links kept as given. With one: the real path.
    """
    text = os.fspath(path)
    if "\x00" in text:
        raise BinclsError(f"{text!r} is not a valid path (it holds a NUL character).")
    root = data_root()
    if root is None:
        return Path(os.path.abspath(os.path.expanduser(text)))
    if not root.is_dir():
        raise BinclsError(
            f"{ENV} is set to {root}, which is not a folder: no folder can be opened. "
            "Ask whoever runs this app to set it to an existing folder."
        )
    given = Path(text)
    joined = given if given.is_absolute() else root / given
    if not is_inside(joined, root):
        lexical = os.path.abspath(joined)  # ".." applied, links not followed
        inside = lexical == str(root) or lexical.startswith(str(root).rstrip(os.sep) + os.sep)
        how = " through a link" if inside else ""
        raise BinclsError(
            f"{text} leads outside the folder this app may read ({root}){how}; choose a folder inside it."
        )
    return Path(os.path.realpath(joined))


def browse_home() -> Path:
    """Where the folder browser starts, and where its Home button goes: the root, else the home folder."""
    return data_root() or Path.home()
