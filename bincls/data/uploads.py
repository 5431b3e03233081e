"""Store images uploaded through the app in bincls' own uploads folder, never in a user's folders.

Layout: ``uploads_dir()/<session>/<class>/<files>``. One *session* is one "use these uploads" action,
so two uploads never mix. An uploaded name is never used as a path as given: `safe_name` reduces it
to a plain base name. Zips are checked entry by entry before a single byte is written
(`extract_zip`): entries that would land outside the destination, links, encrypted entries and
zip bombs are refused with a `BinclsError` that names the zip and the entry.
"""

from __future__ import annotations

import io
import os
import re
import secrets
import shutil
import stat
import time
import unicodedata
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from bincls.data.images import JUNK_DIRS, JUNK_NAMES
from bincls.data.zip_directory import count_entries
from bincls.errors import BinclsError
from bincls.paths import uploads_dir

# Zip-bomb guards. A real photo folder compresses little (JPEG/PNG are compressed already); a bomb
# is a small file that claims gigabytes or packs millions of entries.
MAX_TOTAL_BYTES = 2 * 1024**3  # uncompressed size of everything extracted from one zip
MAX_RATIO = 200  # uncompressed / compressed size of one entry...
RATIO_MIN_BYTES = 1024**2  # ...checked only above this size: small files cannot make a bomb
MAX_ENTRIES = 100_000
# Folders inside folders, and the bytes of one entry's path: a real photo zip is a few folders deep;
# thousands of levels would recurse and pass PATH_MAX.
MAX_DEPTH = 32
MAX_ENTRY_NAME_BYTES = 1024
# Bytes uploaded for one class in one "use these uploads" action (Streamlit's own server.maxUploadSize,
# 500 MB in .streamlit/config.toml, caps each file).
MAX_UPLOAD_BYTES = 2 * 1024**3

_MAX_NAME_BYTES = 200  # most file systems allow 255 bytes per name; keep room for "-12" suffixes
_WINDOWS_RESERVED = {"con", "prn", "aux", "nul", *(f"{d}{i}" for d in ("com", "lpt") for i in range(10))}
_BAD_CHARS = re.compile(r'[<>:"/\\|?*]')
_DRIVE = re.compile(r"^[A-Za-z]:")
_CHUNK = 1024 * 1024


@dataclass
class SavedUpload:
    """What `save_uploads` wrote: the class folder, the files in it, and what it left out and why."""

    folder: Path
    files: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "name: reason"


def _is_junk_file(name: str) -> bool:
    """System litter: .DS_Store, Thumbs.db, macOS `._name` resource forks."""
    return name.lower() in JUNK_NAMES or name.startswith("._")


def _clean(text: str) -> str:
    """Drop control and format characters, replace characters no file system accepts."""
    text = unicodedata.normalize("NFC", text)
    text = "".join(c for c in text if unicodedata.category(c) not in ("Cc", "Cf", "Cs", "Zl", "Zp"))
    return _BAD_CHARS.sub("_", text)


def _fit(stem: str, ext: str) -> str:
    while len((stem + ext).encode("utf-8")) > _MAX_NAME_BYTES and stem:
        stem = stem[:-1]
    return stem + ext


def safe_name(name: str, taken: set[str] | None = None, default: str = "file") -> str:
    """A plain base name for an uploaded file name: never a path, never hidden, never a duplicate.

    Directories are stripped (both ``/`` and ``\\``), control characters removed, characters that
    Windows refuses replaced by ``_``, leading dots and spaces stripped; the extension is kept.
    With `taken` (lower-cased names already used in the folder) a collision gets ``-1``, ``-2``...
    and the chosen name is added to `taken`.
    """
    base = re.split(r"[/\\]", name or "")[-1]
    base = _clean(base).strip().rstrip(". ")
    hidden = base.startswith(".")
    base = base.lstrip(". ")
    stem, ext = os.path.splitext(base)
    if hidden and not ext and stem and "." not in stem:
        # ".jpg" is an extension without a name; keep it as one
        stem, ext = "", "." + stem
    ext = ext if re.fullmatch(r"\.[\w-]{1,16}", ext or "") else ""
    stem = stem.strip() or default
    if stem.split(".")[0].lower() in _WINDOWS_RESERVED:
        stem = "_" + stem
    out = _fit(stem, ext)
    if taken is not None:
        n = 0
        while out.lower() in taken:
            n += 1
            out = _fit(stem, f"-{n}{ext}")
        taken.add(out.lower())
    return out


def new_upload_session(root: str | os.PathLike | None = None) -> Path:
    """A fresh, empty folder for one upload session under `root` (default `uploads_dir()`)."""
    root = Path(root) if root is not None else uploads_dir()
    root.mkdir(parents=True, exist_ok=True)
    for _ in range(10):
        p = root / f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
        try:
            p.mkdir()
            return p
        except FileExistsError:
            continue
    raise BinclsError(f"Cannot create a new upload folder in {root}.")


def _inside(child: Path, parent: Path) -> bool:
    child, parent = child.resolve(), parent.resolve()
    return child == parent or parent in child.parents


def _check_session_dir(session_dir: str | os.PathLike) -> Path:
    """Uploads go below the app's uploads folder only, whatever a caller passes."""
    p = Path(session_dir)
    root = uploads_dir()
    if not _inside(p, root) or p.resolve() == root.resolve():
        raise BinclsError(
            f"Upload folder {p} is not a session folder inside the app's uploads folder {root}."
        )
    p.mkdir(parents=True, exist_ok=True)
    return p


def _write_new(path: Path, data: bytes) -> None:
    # "x": never overwrite, never follow a link planted at the name
    with open(path, "xb") as f:
        f.write(data)


def save_uploads(
    session_dir: str | os.PathLike,
    class_name: str,
    files: list[tuple[str, bytes]],
    **zip_limits: int,
) -> SavedUpload:
    """Save uploaded `(name, content)` pairs for one class into ``session_dir/<class_name>/``.

    A ``.zip`` is extracted there (see `extract_zip`, which takes `zip_limits`); other files are
    written under their sanitized base names. `session_dir` must be inside `uploads_dir()`, e.g. one
    made by `new_upload_session`. Raises `BinclsError` for an unsafe or broken zip (or a full disk),
    after removing the whole session folder: what this call wrote and the classes saved before it.
    """
    total = sum(len(data) for _, data in files)
    if total > MAX_UPLOAD_BYTES:
        raise BinclsError(
            f"The uploads for class {class_name!r} hold {total / 2**20:,.0f} MB, more than the "
            f"{MAX_UPLOAD_BYTES / 2**20:,.0f} MB allowed at once; nothing was saved. Upload fewer files, "
            "or point bincls at the folder instead."
        )
    session = _check_session_dir(session_dir)
    folder = session / safe_name(class_name, default="class")
    out = SavedUpload(folder)
    try:
        folder.mkdir(exist_ok=True)
        taken = {p.name.lower() for p in folder.iterdir()}
        for name, data in files:
            base = re.split(r"[/\\]", name or "")[-1]
            if _is_junk_file(base):
                out.skipped.append(f"{base}: system file")
                continue
            if base.lower().endswith(".zip") or (data[:4] == b"PK\x03\x04" and not os.path.splitext(base)[1]):
                sub = folder / safe_name(os.path.splitext(base)[0], taken, default="zip")
                out.files.extend(extract_zip(data, sub, name=base, **zip_limits))
                continue
            target = folder / safe_name(base, taken)
            try:
                _write_new(target, data)
            except OSError as exc:
                raise BinclsError(f"Could not save the upload {base!r}: {exc.strerror or exc}.") from None
            out.files.append(target)
    except BaseException:
        # One session is one "use these uploads" action: when any of it fails, nothing of it is kept
        # (the classes saved before this one included).
        shutil.rmtree(session, ignore_errors=True)
        raise
    return out


@dataclass(frozen=True)
class _Entry:
    info: zipfile.ZipInfo
    parts: tuple[str, ...]  # the entry's path, split, not yet sanitized


def _entry_parts(zname: str, info: zipfile.ZipInfo) -> tuple[str, ...]:
    """The entry's path components; raises if it could leave the destination folder."""
    raw = info.filename
    where = f"{zname}: entry {raw!r}"
    if "\x00" in raw:
        raise BinclsError(f"{where} has a NUL character in its name; the zip is refused.")
    if raw.startswith(("/", "\\")) or _DRIVE.match(raw):
        raise BinclsError(f"{where} has an absolute path; the zip is refused (it could write anywhere).")
    parts = tuple(p for p in re.split(r"[/\\]", raw) if p not in ("", "."))
    if ".." in parts:
        raise BinclsError(f"{where[:200]} climbs out of its folder ('..'); the zip is refused.")
    if len(parts) - 1 > MAX_DEPTH or len(raw.encode("utf-8", "replace")) > MAX_ENTRY_NAME_BYTES:
        raise BinclsError(
            f"{zname}: entry {raw[:80]!r}... is nested {len(parts) - 1} folders deep in a path of "
            f"{len(raw):,} characters (at most {MAX_DEPTH} folders and {MAX_ENTRY_NAME_BYTES} bytes); "
            "the zip is refused."
        )
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise BinclsError(f"{where} is a symbolic link; the zip is refused (links can point anywhere).")
    if info.flag_bits & 0x1:
        raise BinclsError(f"{where} is encrypted; bincls cannot read password-protected zips.")
    return parts


def _is_junk_entry(parts: tuple[str, ...], is_dir: bool) -> bool:
    dirs = parts if is_dir else parts[:-1]
    if any(d.lower() in JUNK_DIRS or d.startswith(".") for d in dirs):
        return True
    return not is_dir and bool(parts) and _is_junk_file(parts[-1])


def _plan(
    zf: zipfile.ZipFile, zname: str, max_total_bytes: int, max_ratio: float, max_entries: int
) -> list[_Entry]:
    """Check every entry before anything is written; return the files to extract."""
    infos = zf.infolist()
    if len(infos) > max_entries:  # `count_entries` saw this before ZipFile parsed them; never trust it
        raise BinclsError(
            f"{zname} has {len(infos):,} entries, more than the {max_entries:,} allowed; the zip is refused."
        )
    todo: list[_Entry] = []
    total = 0
    for info in infos:
        parts = _entry_parts(zname, info)  # checked even for junk: a bad entry condemns the zip
        if info.is_dir() or not parts or _is_junk_entry(parts, info.is_dir()):
            continue
        if info.file_size > RATIO_MIN_BYTES and info.file_size > max_ratio * max(info.compress_size, 1):
            ratio = info.file_size / max(info.compress_size, 1)
            raise BinclsError(
                f"{zname}: entry {info.filename!r} expands {ratio:,.0f} times ({info.compress_size:,} to "
                f"{info.file_size:,} bytes), more than {max_ratio:g}:1; the zip is refused as a possible "
                "zip bomb."
            )
        total += info.file_size
        if total > max_total_bytes:
            raise BinclsError(
                f"{zname}: entry {info.filename!r} takes the unpacked size above "
                f"{max_total_bytes / 2**30:g} GB; the zip is refused. Upload a smaller zip, or point bincls "
                "at the folder instead."
            )
        todo.append(_Entry(info, parts))
    return todo


def extract_zip(
    source: bytes | str | os.PathLike | BinaryIO,
    dest: str | os.PathLike,
    *,
    name: str | None = None,
    max_total_bytes: int = MAX_TOTAL_BYTES,
    max_ratio: float = MAX_RATIO,
    max_entries: int = MAX_ENTRIES,
) -> list[Path]:
    """Extract the files of a zip (bytes, a path or a binary file) into `dest`; return their paths.

    Folder structure inside the zip is kept, with every component sanitized by `safe_name`.
    ``__MACOSX/``, hidden folders, ``.DS_Store`` and the like are skipped. Every entry is checked
    first; the zip is refused with a `BinclsError` naming it (`name`, else the path) and the entry
    when an entry is absolute, climbs out with ``..``, is a link or encrypted, or when the zip has
    too many entries, too large a total size, or an entry compressed more than `max_ratio`:1.
    On any error, the files written so far are removed.
    """
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as f:
            return extract_zip(f, dest, name=name or os.fspath(source), max_total_bytes=max_total_bytes,
                               max_ratio=max_ratio, max_entries=max_entries)  # fmt: skip
    zname = name or "the zip"
    fileobj = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
    dest = Path(dest)
    dest_existed = dest.exists()
    written: list[Path] = []
    dir_map: dict[tuple[str, ...], Path] = {(): dest}
    try:
        # Counted from the zip's own directory first: ZipFile would build an object per entry (1,000,000
        # entries cost 5 s and 435 MB) before its entries could be counted.
        entries = count_entries(fileobj, max_entries)
        if entries > max_entries:
            raise BinclsError(
                f"{zname} has {entries:,} entries, more than the {max_entries:,} allowed; the zip is refused."
            )
        try:
            zf = zipfile.ZipFile(fileobj)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
            raise BinclsError(f"{zname} is not a readable zip file ({exc}).") from None
        with zf:
            todo = _plan(zf, zname, max_total_bytes, max_ratio, max_entries)
            dest.mkdir(parents=True, exist_ok=True)
            taken_by_dir: dict[Path, set[str]] = {}
            for entry in todo:
                try:
                    folder = _make_dirs(dest, entry.parts[:-1], dir_map, taken_by_dir)
                    taken = taken_by_dir.setdefault(folder, {p.name.lower() for p in folder.iterdir()})
                except OSError as exc:
                    where = f"{zname}: entry {entry.info.filename[:200]!r}"
                    raise BinclsError(f"{where} cannot be unpacked ({exc.strerror or exc}).") from None
                target = folder / safe_name(entry.parts[-1], taken)
                if not _inside(target.parent, dest):  # cannot happen after sanitizing; never trust it
                    raise BinclsError(f"{zname}: entry {entry.info.filename!r} would land outside {dest}.")
                _copy_entry(zf, entry.info, target, zname, max_total_bytes)
                written.append(target)
    except BaseException:
        for p in written:
            p.unlink(missing_ok=True)
        made = [d for parts, d in dir_map.items() if parts] + ([] if dest_existed else [dest])
        for d in sorted(made, key=lambda d: len(d.parts), reverse=True):
            try:
                d.rmdir()  # only when empty
            except OSError:
                pass
        raise
    return written


def _make_dirs(
    dest: Path,
    parts: tuple[str, ...],
    dir_map: dict[tuple[str, ...], Path],
    taken_by_dir: dict[Path, set[str]],
) -> Path:
    """Create the sanitized folders for an entry's directory parts (memoized per raw path), one level
    at a time (`MAX_DEPTH` bounds the levels)."""
    for depth in range(1, len(parts) + 1):
        key = parts[:depth]
        if key in dir_map:
            continue
        parent = dir_map[parts[: depth - 1]]
        taken = taken_by_dir.setdefault(parent, {p.name.lower() for p in parent.iterdir()})
        sub = parent / safe_name(parts[depth - 1], taken, default="folder")
        sub.mkdir()
        dir_map[key] = sub
    return dir_map[parts]


def _copy_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, zname: str, limit: int) -> None:
    """Stream one entry to `target`, counting bytes: a header that lies about sizes is caught too."""
    n = 0
    try:
        with zf.open(info) as src, open(target, "xb") as out:
            while chunk := src.read(_CHUNK):
                n += len(chunk)
                if n > info.file_size or n > limit:
                    raise BinclsError(
                        f"{zname}: entry {info.filename!r} unpacks to more than its header says; "
                        "the zip is refused as a possible zip bomb."
                    )
                out.write(chunk)
    except BinclsError:
        target.unlink(missing_ok=True)
        raise
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError, ValueError) as exc:
        target.unlink(missing_ok=True)
        raise BinclsError(f"{zname}: entry {info.filename!r} cannot be unpacked ({exc}).") from None


def remove_upload_session(session_dir: str | os.PathLike) -> None:
    """Delete one upload session folder (only ever inside `uploads_dir()`)."""
    p = _check_session_dir(session_dir)
    shutil.rmtree(p, ignore_errors=True)
