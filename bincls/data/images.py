"""Open one image file the same way everywhere: check it, decode it, make it plain RGB.

The scan, the datasets and prediction all call `load_rgb`, so an image looks the same to the model
at training and at prediction time (EXIF orientation, transparency, 16-bit and CMYK handled once).
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageFile, ImageOps

from bincls.errors import BinclsError

# Pillow formats we train on. MPO is what many cameras write for JPEG; it decodes as JPEG.
ACCEPTED_FORMATS = {"JPEG", "MPO", "PNG", "BMP", "GIF", "WEBP", "TIFF"}

# Decompression-bomb guard: a 10,000 x 10,000 photo is accepted, anything with more pixels than
# this is refused from its header alone, before a single pixel is decoded.
MAX_PIXELS = 120_000_000
MAX_FILE_BYTES = 512 * 1024 * 1024

# Transparent pixels are composited on this fixed background so that the same file always gives
# the same RGB image (a random or black background would teach the model an accident).
BACKGROUND = (255, 255, 255)

# Names that operating systems and tools leave in folders; they are never images.
JUNK_NAMES = {".ds_store", "thumbs.db", "desktop.ini", "ehthumbs.db", ".directory", "icon\r"}
# Folders that tools leave behind and that never hold training images (macOS zips add __MACOSX).
JUNK_DIRS = {"__macosx", "$recycle.bin", "system volume information", "@eadir", ".trash", "__pycache__"}

# Magic numbers of image formats Pillow cannot read, so the message can say "unsupported" rather
# than "not an image".
_UNSUPPORTED_MAGIC = [
    (4, b"ftypheic", "HEIC"),
    (4, b"ftypheix", "HEIC"),
    (4, b"ftypmif1", "HEIF"),
    (4, b"ftypavif", "AVIF"),
    (0, b"%PDF", "PDF"),
    (0, b"8BPS", "PSD"),
    (0, b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
    (0, b"\xff\x0a", "JPEG XL"),
    (0, b"\x00\x00\x00\x0cJXL ", "JPEG XL"),
]

# Pillow refuses (rather than warns about) images over its own limit; ours is checked explicitly.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
ImageFile.LOAD_TRUNCATED_IMAGES = False


class ImageProblem(BinclsError):
    """A file that cannot be used as an image; `reason` is short and readable."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True)
class ImageInfo:
    """What the scan learns from decoding one file."""

    width: int  # after EXIF orientation
    height: int
    mode: str  # Pillow mode of the file as stored (RGB, RGBA, P, L, I;16, CMYK...)
    format: str  # Pillow format name (JPEG, PNG...)
    channel_sum: tuple[float, float, float]  # over the small decoded RGB image, values in 0..1
    channel_sqsum: tuple[float, float, float]
    pixels: int  # pixels in that small image
    sha256: str  # of the file's bytes, for exact duplicates
    size: int  # bytes


def is_junk_name(name: str) -> bool:
    """Hidden and system files (`.DS_Store`, `Thumbs.db`, `._*` resource forks...)."""
    low = name.lower()
    return low in JUNK_NAMES or name.startswith(".")


def is_junk_dir(name: str) -> bool:
    """Hidden and system folders: never a class, never scanned."""
    return is_junk_name(name) or name.lower() in JUNK_DIRS


def _sniff_unsupported(head: bytes) -> str | None:
    for offset, magic, name in _UNSUPPORTED_MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return name
    stripped = head.lstrip()
    if stripped.startswith(b"<svg") or (stripped.startswith(b"<?xml") and b"<svg" in head):
        return "SVG"
    return None


def _open(source: str | Path | bytes | BinaryIO, name: str) -> Image.Image:
    """Open lazily (header only) and refuse what we will not decode."""
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(source)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageProblem(name, f"too large (more than {MAX_PIXELS:,} pixels)") from None
    except Image.UnidentifiedImageError:
        head = _read_head(source)
        fmt = _sniff_unsupported(head)
        if fmt:
            raise ImageProblem(name, f"unsupported format ({fmt})") from None
        raise ImageProblem(name, "not an image (content not recognised)") from None
    except OSError as exc:
        # An OSError with an errno is the file system (permissions, I/O); without one it is Pillow
        # giving up on the content ("Truncated File Read", "could not create decoder object").
        if exc.errno is None:
            raise ImageProblem(name, f"truncated or corrupt ({_short(exc)})") from None
        raise ImageProblem(name, f"cannot be read ({exc.strerror or exc})") from None
    if im.format not in ACCEPTED_FORMATS:
        im.close()
        raise ImageProblem(name, f"unsupported format ({im.format})")
    w, h = im.size
    if w * h > MAX_PIXELS:
        im.close()
        raise ImageProblem(name, f"too large ({w}x{h} pixels, limit {MAX_PIXELS:,})")
    if w < 1 or h < 1:
        im.close()
        raise ImageProblem(name, "empty image (0 pixels)")
    return im


def _read_head(source) -> bytes:
    try:
        if isinstance(source, (str, Path)):
            with open(source, "rb") as f:
                return f.read(64)
        source.seek(0)
        return source.read(64)
    except OSError:
        return b""


def _to_rgb(im: Image.Image) -> Image.Image:
    """Any Pillow mode to 8-bit RGB, transparency composited on `BACKGROUND`."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # Pillow's own convert clips 16-bit values at 255; scale them instead.
        arr = np.asarray(im, dtype=np.float64)
        top = 65535.0 if arr.max(initial=0) > 255 or im.mode.startswith("I;16") else 255.0
        if im.mode == "F":
            lo, hi = float(arr.min(initial=0)), float(arr.max(initial=1))
            arr, top = arr - lo, max(hi - lo, 1e-12)
        arr = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(arr, "L").convert("RGB")
    # Palette, grey and RGB PNGs can mark one colour transparent (tRNS) instead of having alpha.
    if im.mode in ("P", "L", "RGB") and im.info.get("transparency") is not None:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        im = im.convert("RGBA")
        base = Image.new("RGB", im.size, BACKGROUND)
        base.paste(im, mask=im.getchannel("A"))
        return base
    if im.mode == "RGB":
        return im
    return im.convert("RGB")


def load_rgb(
    source: str | Path | bytes | BinaryIO, max_side: int | None = None, name: str | None = None
) -> Image.Image:
    """Decode an image file to RGB with EXIF orientation applied.

    `max_side` lets JPEG decode at a reduced scale (draft mode: 1/2, 1/4, 1/8), which is several
    times faster; the result is at least `max_side` on its shorter side when the file is that big.
    Raises `ImageProblem` with a readable reason for anything that is not a usable image.
    """
    name = name or (str(source) if isinstance(source, (str, Path)) else "upload")
    with _open(source, name) as im:
        return _decode(im, name, max_side)


def to_rgb(im: Image.Image, name: str = "image") -> Image.Image:
    """An already opened PIL image made RGB exactly as files are (EXIF orientation, transparency)."""
    return _decode(im, name, None)


def _decode(im: Image.Image, name: str, max_side: int | None) -> Image.Image:
    if max_side and im.format in ("JPEG", "MPO"):
        w, h = im.size
        scale = max(max_side / min(w, h), 1 / 8)
        im.draft("RGB", (max(1, int(w * scale)), max(1, int(h * scale))))
    try:
        im.load()  # decodes the first frame / page only
    except Image.DecompressionBombError:
        raise ImageProblem(name, f"too large (more than {MAX_PIXELS:,} pixels)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageProblem(name, f"truncated or corrupt ({_short(exc)})") from None
    try:
        im = ImageOps.exif_transpose(im) or im
    except Exception:  # noqa: BLE001 - broken EXIF must not lose an otherwise good image
        pass
    return _to_rgb(im)


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text[:120]


# A small decode is enough for statistics and to prove the whole file decodes.
STATS_SIDE = 64


def inspect_file(path: str | os.PathLike) -> ImageInfo:
    """Decode a file once (reduced size where possible) and return its facts.

    Raises `ImageProblem` with the reason a person understands.
    """
    path = os.fspath(path)
    if os.path.islink(path) and not os.path.exists(path):
        raise ImageProblem(path, "dangling link (its target does not exist)")
    try:
        size = os.path.getsize(path)
    except OSError as exc:
        raise ImageProblem(path, f"cannot be read ({exc.strerror or exc})") from None
    if size == 0:
        raise ImageProblem(path, "empty file (0 bytes)")
    if size > MAX_FILE_BYTES:
        raise ImageProblem(path, f"too large ({size / 2**20:,.0f} MB)")
    # One read serves both the hash and the decode.
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ImageProblem(path, f"cannot be read ({exc.strerror or exc})") from None
    digest = hashlib.sha256(data).hexdigest()
    with _open(io.BytesIO(data), path) as im:
        fmt, stored_mode = im.format, im.mode
        width, height = im.size  # before the draft decode shrinks it
        rgb = _decode(im, path, STATS_SIDE)
        # Only after the decode: for PNG, getexif() decodes the image itself, and a decode error
        # swallowed here would let a corrupt file through as a good one.
        try:
            if im.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # rotated by 90 degrees
                width, height = height, width
        except Exception:  # noqa: BLE001 - unreadable EXIF: keep the stored size
            pass
    rgb.thumbnail((STATS_SIDE, STATS_SIDE))
    arr = np.asarray(rgb, dtype=np.float64) / 255.0
    flat = arr.reshape(-1, 3)
    return ImageInfo(
        width=width,
        height=height,
        mode=stored_mode,
        format=fmt,
        channel_sum=tuple(float(v) for v in flat.sum(0)),
        channel_sqsum=tuple(float(v) for v in (flat**2).sum(0)),
        pixels=int(flat.shape[0]),
        sha256=digest,
        size=size,
    )
