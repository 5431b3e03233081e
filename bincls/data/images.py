"""Open one image file the same way everywhere: check it, decode it, make it plain RGB.

The scan, the datasets and prediction all call `load_rgb`, so an image looks the same to the model
at training and at prediction time (EXIF orientation, transparency, 16-bit and CMYK handled once).
Whatever a file holds, the only exception that leaves this module is `ImageProblem`, with a reason a
person understands: files are opened only when regular (`file_access`), and every decode is costed from
its header and held within the shared memory budget (`decode_memory`) before a pixel is decoded.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageFile

from bincls.data.decode_memory import (
    ALPHA_MODES,
    BAND_PIXELS,
    DECODE_BUDGET,
    MAX_DECODE_BYTES,
    MAX_SIDE,
    WIDE_MODES,
    MiB,
    decode_cost,
    has_transparency_key,
)
from bincls.data.file_access import (
    JUNK_DIRS,
    JUNK_NAMES,
    FileProblem,
    is_junk_dir,
    is_junk_name,
    open_regular,
)
from bincls.data.near_duplicates import image_hashes
from bincls.data.quality import thumbnail_stats

__all__ = [  # the junk names live in file_access; re-exported from here, their old home
    "ACCEPTED_FORMATS", "BACKGROUND", "JUNK_DIRS", "JUNK_NAMES", "MAX_FILE_BYTES", "MAX_PIXELS", "STATS_SIDE",
    "ImageInfo", "ImageProblem", "inspect_file", "is_junk_dir", "is_junk_name", "load_rgb", "to_rgb",
]  # fmt: skip

# Pillow formats we train on. MPO is what many cameras write for JPEG; it decodes as JPEG.
ACCEPTED_FORMATS = {"JPEG", "MPO", "PNG", "BMP", "GIF", "WEBP", "TIFF"}
# The only Pillow plugins that ever parse a file (MPO comes through the JPEG plugin): the parsers of
# formats we never use (PPM, DDS...) never see its bytes.
_OPEN_FORMATS = ("JPEG", "PNG", "BMP", "GIF", "WEBP", "TIFF")

# Decompression-bomb guard: a 10,000 x 10,000 photo is accepted, anything with more pixels than
# this is refused from its header alone, before a single pixel is decoded.
MAX_PIXELS = 120_000_000
MAX_FILE_BYTES = 512 * 1024 * 1024

# Transparent pixels are composited on this fixed background so that the same file always gives
# the same RGB image (a random or black background would teach the model an accident).
BACKGROUND = (255, 255, 255)

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

# EXIF orientation -> the transposition that shows the image upright (as ImageOps.exif_transpose).
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

# Pillow refuses (rather than warns about) images over its own limit; ours is checked explicitly.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
ImageFile.LOAD_TRUNCATED_IMAGES = False


class ImageProblem(FileProblem):
    """A file that cannot be used as an image; `reason` is short and readable."""


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
    hashes: tuple[str, str]  # perceptual hashes of the thumbnail and its mirror, for near-duplicates
    stats: dict[str, float]  # brightness, entropy, edges of the thumbnail, for the quality checks


def _sniff_unsupported(head: bytes) -> str | None:
    for offset, magic, name in _UNSUPPORTED_MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return name
    stripped = head.lstrip()
    if stripped.startswith(b"<svg") or (stripped.startswith(b"<?xml") and b"<svg" in head):
        return "SVG"
    return None


def _pillow_format(prefix: bytes) -> str | None:
    """The format a Pillow plugin recognises from the first bytes alone (its `_accept` check), without
    letting that plugin parse the file."""
    Image.init()
    for fmt in Image.ID:
        accept = Image.OPEN[fmt][1]
        try:
            if accept is not None and accept(prefix) is True:
                return fmt
        except Exception:  # noqa: BLE001 - a plugin's check failing only means "not this format"
            continue
    return None


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text[:120]


def _corrupt(name: str, exc: BaseException) -> ImageProblem:
    """The reason for whatever a decoder raised (Pillow raises OSError, ValueError, SyntaxError,
    struct.error, IndexError, NotImplementedError... on malformed files)."""
    if isinstance(exc, MemoryError):
        return ImageProblem(name, "too large (ran out of memory decoding it)")
    if isinstance(exc, Image.DecompressionBombError):
        return ImageProblem(name, f"too large (more than {MAX_PIXELS:,} pixels)")
    if isinstance(exc, OSError) and exc.errno is not None:  # the file system, not the content
        return ImageProblem(name, f"cannot be read ({exc.strerror or exc})")
    return ImageProblem(name, f"truncated or corrupt ({_short(exc)})")


def _seekable(fp: BinaryIO) -> BinaryIO:
    """A caller's stream as one Pillow can seek in: read into memory (up to the file limit) if it cannot."""
    try:
        if fp.seekable():
            return fp
    except (AttributeError, OSError, ValueError):
        pass
    return io.BytesIO(fp.read(MAX_FILE_BYTES + 1))


def _stream_size(fp: BinaryIO) -> int:
    here = fp.tell()
    end = fp.seek(0, io.SEEK_END)
    fp.seek(here)
    return end - here


@contextmanager
def _opened(source: str | Path | bytes | BinaryIO, name: str) -> Iterator[tuple[Image.Image, BinaryIO, int]]:
    """(image opened lazily, header only; its file; the file's size in bytes). Refuses what we will
    not decode; closes the file afterwards when it opened it."""
    own = isinstance(source, (str, os.PathLike))
    if own:
        try:
            fp = open_regular(source)
        except FileProblem as p:
            raise ImageProblem(name, p.reason) from None
    elif isinstance(source, (bytes, bytearray, memoryview)):
        fp = io.BytesIO(source)
    else:
        try:
            fp = _seekable(source)
        except OSError as exc:
            raise ImageProblem(name, f"cannot be read ({exc.strerror or exc})") from None
    try:
        size = os.fstat(fp.fileno()).st_size if own else _stream_size(fp)
        if size == 0:
            raise ImageProblem(name, "empty file (0 bytes)")
        if size > MAX_FILE_BYTES:
            limit = f"limit {MAX_FILE_BYTES / MiB:,.0f} MB"
            raise ImageProblem(name, f"too large ({size / MiB:,.0f} MB, {limit})")
        yield _open_image(fp, name), fp, size
    finally:
        if own:
            fp.close()


def _open_image(fp: BinaryIO, name: str) -> Image.Image:
    start = fp.tell() if hasattr(fp, "tell") else 0
    try:
        im = Image.open(fp, formats=_OPEN_FORMATS)
    except Image.UnidentifiedImageError:
        fp.seek(start)
        head = fp.read(64)
        fmt = _sniff_unsupported(head) or _pillow_format(head[:16])
        if fmt in _OPEN_FORMATS:  # its own plugin gave up on the header
            raise ImageProblem(name, f"truncated or corrupt (a {fmt} header that cannot be read)") from None
        if fmt:
            raise ImageProblem(name, f"unsupported format ({fmt})") from None
        raise ImageProblem(name, "not an image (content not recognised)") from None
    except Exception as exc:  # noqa: BLE001 - any parser failure is this file's reason, never a crash
        raise _corrupt(name, exc) from None
    w, h = im.size
    if im.format not in ACCEPTED_FORMATS:
        raise ImageProblem(name, f"unsupported format ({im.format})")
    if w < 1 or h < 1:
        raise ImageProblem(name, "empty image (0 pixels)")
    if w * h > MAX_PIXELS:
        raise ImageProblem(name, f"too large ({w}x{h} pixels, limit {MAX_PIXELS:,})")
    if max(w, h) > MAX_SIDE:
        raise ImageProblem(name, f"too large ({w}x{h} pixels: a side over {MAX_SIDE:,} px)")
    return im


@contextmanager
def _reserved(im: Image.Image, name: str, max_side: int | None, file_bytes: int) -> Iterator[None]:
    """Pick the draft scale, cost the decode from the header, refuse it above the per-image limit, and
    hold its cost in the shared budget (waiting for room) while the caller decodes."""
    full = im.size
    try:
        if max_side and im.format in ("JPEG", "MPO"):
            w, h = full
            scale = max(max_side / min(w, h), 1 / 8)
            im.draft("RGB", (max(1, int(w * scale)), max(1, int(h * scale))))
        cost = decode_cost(im, full, file_bytes)
    except Exception as exc:  # noqa: BLE001 - a header the cost model cannot read
        raise _corrupt(name, exc) from None
    if cost > MAX_DECODE_BYTES:
        raise ImageProblem(
            name,
            f"too large to decode ({full[0]}x{full[1]} {im.mode} needs about {cost / MiB:,.0f} MB, "
            f"limit {MAX_DECODE_BYTES / MiB:,.0f} MB)",
        )
    with DECODE_BUDGET.hold(cost):
        yield


def load_rgb(
    source: str | Path | bytes | BinaryIO, max_side: int | None = None, name: str | None = None
) -> Image.Image:
    """Decode an image file to RGB with EXIF orientation applied.

    `max_side` lets JPEG decode at a reduced scale (draft mode: 1/2, 1/4, 1/8), which is several
    times faster; the result is at least `max_side` on its shorter side when the file is that big.
    Raises `ImageProblem` with a readable reason for anything that is not a usable image.
    """
    name = name or (os.fspath(source) if isinstance(source, (str, os.PathLike)) else "upload")
    with _opened(source, name) as (im, _, size), _reserved(im, name, max_side, size):
        return _decode(im, name, owned=True)[0]


def to_rgb(im: Image.Image, name: str = "image") -> Image.Image:
    """An already opened PIL image made RGB exactly as files are (EXIF orientation, transparency)."""
    with _reserved(im, name, None, 0):
        rgb = _decode(im, name, owned=False)[0]
    return rgb.copy() if rgb is im else rgb  # never the caller's own object


def _decode(im: Image.Image, name: str, owned: bool) -> tuple[Image.Image, int]:
    """(the RGB image, upright; the EXIF orientation it had). `owned`: `im` is ours to release as soon
    as a converted copy exists, so that at most two images are alive at any moment."""
    try:
        im.load()  # decodes the first frame / page only
        orientation = _orientation(im)
        rgb = _to_rgb(im, owned)
        upright = _UPRIGHT.get(orientation)
        if upright is not None:
            turned = rgb.transpose(upright)
            if owned or rgb is not im:
                _release(rgb)
            rgb = turned
        return rgb, orientation
    except ImageProblem:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever a decoder raises is this file's reason
        raise _corrupt(name, exc) from None


def _orientation(im: Image.Image) -> int:
    try:
        value = im.getexif().get(0x0112, 1)
        return int(value) if int(value) in _UPRIGHT else 1
    except Exception:  # noqa: BLE001 - broken EXIF must not lose an otherwise good image
        return 1


def _release(im: Image.Image) -> None:
    """Free an image's pixels now rather than when the last reference goes (base close: no file I/O)."""
    Image.Image.close(im)


def _to_rgb(im: Image.Image, owned: bool) -> Image.Image:
    """Any Pillow mode to 8-bit RGB, transparency composited on `BACKGROUND`."""
    if im.mode in WIDE_MODES:
        grey = _wide_to_grey(im)
        if owned:
            _release(im)
        rgb = grey.convert("RGB")
        _release(grey)
        return rgb
    if im.mode != "RGBA" and (im.mode in ALPHA_MODES or has_transparency_key(im)):
        rgba = im.convert("RGBA")
        if owned:
            _release(im)
        im, owned = rgba, True
    if im.mode == "RGBA":
        base = Image.new("RGB", im.size, BACKGROUND)
        base.paste(im, mask=im)  # an RGBA mask means its alpha band
        if owned:
            _release(im)
        return base
    if im.mode == "RGB":
        return im
    rgb = im.convert("RGB")
    if owned:
        _release(im)
    return rgb


def _wide_to_grey(im: Image.Image) -> Image.Image:
    """16-bit, 32-bit and float grey to 8-bit grey, scaled rather than clipped (Pillow's own convert
    clips at 255), a band of rows at a time so the float copies stay small."""
    w, h = im.size
    rows = max(1, BAND_PIXELS // w)
    bands = [(y, min(y + rows, h)) for y in range(0, h, rows)]

    def band(y0: int, y1: int) -> np.ndarray:
        return np.asarray(im.crop((0, y0, w, y1)), dtype=np.float64)

    lo, hi = 0.0, 1.0 if im.mode == "F" else 0.0  # as numpy's min(initial=0), max(initial=...)
    for y0, y1 in bands:
        values = band(y0, y1)
        lo, hi = min(lo, float(values.min())), max(hi, float(values.max()))
    if im.mode == "F":
        offset, top = lo, max(hi - lo, 1e-12)
    else:
        offset, top = 0.0, 65535.0 if hi > 255 or im.mode.startswith("I;16") else 255.0
    out = Image.new("L", (w, h))
    for y0, y1 in bands:
        scaled = np.clip((band(y0, y1) - offset) / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        out.paste(Image.fromarray(scaled, "L"), (0, y0))
    return out


# A small decode is enough for statistics and to prove the whole file decodes.
STATS_SIDE = 64


def inspect_file(path: str | os.PathLike) -> ImageInfo:
    """Decode a file once (reduced size where possible) and return its facts.

    Raises `ImageProblem` with the reason a person understands.
    """
    path = os.fspath(path)
    with _opened(path, path) as (im, fp, size):
        fmt, stored_mode = im.format, im.mode
        width, height = im.size  # before the draft decode shrinks it
        try:  # streamed: the file's bytes are never all in memory (Pillow seeks to its pixels itself)
            fp.seek(0)
            digest = hashlib.file_digest(fp, "sha256").hexdigest()
        except OSError as exc:
            raise ImageProblem(path, f"cannot be read ({exc.strerror or exc})") from None
        with _reserved(im, path, STATS_SIDE, size):
            rgb, orientation = _decode(im, path, owned=True)
            rgb.thumbnail((STATS_SIDE, STATS_SIDE))
    if orientation in (5, 6, 7, 8):  # rotated by 90 degrees
        width, height = height, width
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
        hashes=image_hashes(rgb),
        stats=thumbnail_stats(rgb),
    )
