"""Save webcam photos into a class folder of bincls' uploads folder, one new file per photo, and take
back only a photo bincls itself saved there.

A photo is checked to decode (JPEG or PNG) before it is named; it is written under a hidden temporary
name and published with a hard link, so a class folder never shows a half-written file and an existing
file is never replaced. Photos are named ``webcam-0001.jpg``, ``webcam-0002.jpg``... per folder.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from bincls.data.images import ImageProblem, load_rgb
from bincls.errors import BinclsError
from bincls.paths import uploads_dir

CAPTURE_PREFIX = "webcam-"
_EXTENSIONS = {"JPEG": ".jpg", "MPO": ".jpg", "PNG": ".png"}
_CAPTURE_NAME = re.compile(rf"{CAPTURE_PREFIX}(\d+)\.(jpg|png)")
MAX_CAPTURE_BYTES = 50 * 1024**2  # a webcam frame is well under 1 MB, even at 4K as PNG


@dataclass(frozen=True)
class Capture:
    """One photo bincls saved: where, and the hash of what it wrote (undo deletes only that)."""

    path: Path
    sha256: str


def _inside_uploads(folder: str | os.PathLike) -> Path:
    """`folder` as a path, if it is a class folder below bincls' uploads folder (never a user's)."""
    p = Path(folder)
    root = uploads_dir().resolve()
    resolved = p.resolve()
    if root not in resolved.parents or resolved.parent == root:
        raise BinclsError(
            f"Webcam photos go into a class folder inside bincls' uploads folder {root}; {p} is not one."
        )
    return p


def _image_format(data: bytes) -> str:
    """The photo's format if it is a JPEG or PNG that decodes whole; else a `BinclsError`."""
    if len(data) > MAX_CAPTURE_BYTES:
        raise BinclsError(f"The webcam photo holds {len(data):,} bytes, more than a photo should; not saved.")
    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt = im.format or ""
        load_rgb(data, name="the webcam photo")  # the same checks and decode the scan applies
    except (ImageProblem, UnidentifiedImageError, OSError) as exc:
        raise BinclsError(f"The webcam photo does not decode as an image ({exc}); not saved.") from None
    if fmt not in _EXTENSIONS:
        raise BinclsError(f"The webcam photo is a {fmt or 'unknown'} image, not a JPEG or PNG; not saved.")
    return fmt


def captures_in(folder: str | os.PathLike) -> list[Path]:
    """The webcam photos in `folder`, in the order they were taken (by number: ``webcam-0007.jpg`` is 7)."""
    p = Path(folder)
    if not p.is_dir():
        return []
    found = [(int(m.group(1)), e) for e in p.iterdir() if (m := _CAPTURE_NAME.fullmatch(e.name))]
    found = [(n, e) for n, e in found if e.is_file() and not e.is_symlink()]
    return [path for _, path in sorted(found)]


def count_captures(folder: str | os.PathLike) -> int:
    """How many webcam photos `folder` holds."""
    return len(captures_in(folder))


def save_capture(folder: str | os.PathLike, data: bytes) -> Capture:
    """Save one webcam photo (JPEG or PNG bytes) as a new file in `folder`, inside the uploads folder.

    The photo must decode; it is named after the highest photo number in the folder and never replaces
    a file. Raises `BinclsError` for a folder outside the uploads folder, an image that does not decode
    or a disk that refuses the write.
    """
    folder = _inside_uploads(folder)
    ext = _EXTENSIONS[_image_format(data)]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # A hidden name: the scan skips hidden files, so a crash here never leaves a half photo in a class.
        fd, tmp = tempfile.mkstemp(prefix=".webcam-", suffix=".part", dir=folder)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            target = _publish(Path(tmp), folder, ext)
        finally:
            Path(tmp).unlink(missing_ok=True)
    except OSError as exc:
        raise BinclsError(f"Could not save the webcam photo in {folder}: {exc.strerror or exc}.") from None
    return Capture(target, hashlib.sha256(data).hexdigest())


def _publish(tmp: Path, folder: Path, ext: str) -> Path:
    """Give the written file its photo name: a hard link fails rather than replace a file, so two tabs
    saving at once each get a number of their own."""
    taken = [int(_CAPTURE_NAME.fullmatch(p.name).group(1)) for p in captures_in(folder)]
    n = max(taken, default=0)
    for _ in range(1000):
        n += 1
        target = folder / f"{CAPTURE_PREFIX}{n:04d}{ext}"
        try:
            os.link(tmp, target)
            return target
        except FileExistsError:
            continue
        except (PermissionError, NotImplementedError):  # a file system without hard links (FAT, some shares)
            with open(tmp, "rb") as src, open(target, "xb") as out:  # "x": still never replaces a file
                out.write(src.read())
            return target
    raise OSError(f"no free photo name after {target.name}")


def undo_capture(capture: Capture) -> bool:
    """Delete the photo `capture` names if it is still the very file bincls saved; True if deleted.

    A file that has been replaced, or that is not a webcam photo inside the uploads folder, is left alone.
    """
    path = capture.path
    try:
        _inside_uploads(path.parent)
    except BinclsError:
        return False
    if not _CAPTURE_NAME.fullmatch(path.name) or path.is_symlink() or not path.is_file():
        return False
    with open(path, "rb") as f:
        if hashlib.file_digest(f, "sha256").hexdigest() != capture.sha256:
            return False
    path.unlink(missing_ok=True)
    return True


def move_captures(source: str | os.PathLike, dest: str | os.PathLike) -> list[Path]:
    """Move the webcam photos of one class folder into another (both inside the uploads folder), numbered
    after the photos already there; the emptied source folder is removed. Returns the new paths."""
    source, dest = _inside_uploads(source), _inside_uploads(dest)
    moved = []
    try:
        dest.mkdir(parents=True, exist_ok=True)
        for old in captures_in(source):
            moved.append(_publish(old, dest, old.suffix))
            old.unlink()
        if source.is_dir() and not any(source.iterdir()):
            source.rmdir()
    except OSError as exc:
        raise BinclsError(f"Could not move the webcam photos from {source} to {dest}: {exc}.") from None
    return moved
