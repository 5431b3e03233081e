"""Hostile and unlucky files made on the fly: special files, malformed images, memory bombs.

Every maker writes real files (a real FIFO, a real socket, real bytes); nothing is mocked. The bombs
are small on disk and claim huge images in their headers, as an attacker's would.
"""

from __future__ import annotations

import os
import socket
import stat
import struct
import zlib
from pathlib import Path

from PIL import Image


def _ready(path) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    return p


# Special files ------------------------------------------------------------------------------------
def fifo(path) -> Path:
    """A named pipe: opening it for reading blocks until a writer comes, which never happens."""
    p = _ready(path)
    os.mkfifo(p)
    return p


def unix_socket(path) -> Path:
    """A socket file left on disk (bound, then closed: the file stays)."""
    p = _ready(path)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.bind(str(p))
    finally:
        s.close()
    return p


def char_device(path) -> Path | None:
    """A character device like /dev/zero (endless when read) made in place; None where mknod is not
    allowed (then a link to /dev/zero is the closest real thing)."""
    p = _ready(path)
    try:
        os.mknod(p, stat.S_IFCHR | 0o600, os.makedev(1, 5))
    except (PermissionError, OSError):
        return None
    return p


def link(path, target) -> Path:
    p = _ready(path)
    os.symlink(target, p)
    return p


# Malformed images ---------------------------------------------------------------------------------
def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def short_ihdr_png() -> bytes:
    """A 62-byte PNG whose IHDR chunk is cut short (Pillow raises ValueError, not OSError)."""
    ihdr = struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0)[:9]
    idat = png_chunk(b"IDAT", zlib.compress(b"\0" * 8))
    data = PNG_SIGNATURE + png_chunk(b"IHDR", ihdr) + idat + png_chunk(b"IEND", b"")
    return data + b"\0" * max(0, 62 - len(data))


def iccp_bomb_png(expands_to: int = 64 * 2**20) -> bytes:
    """A small valid PNG whose colour profile (iCCP) decompresses to `expands_to` bytes."""
    ihdr = struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0)
    comp = zlib.compressobj(9)
    profile = b"".join(comp.compress(b"\0" * 2**20) for _ in range(expands_to // 2**20)) + comp.flush()
    rows = zlib.compress(b"".join(b"\0" + b"\x80" * 24 for _ in range(8)))
    return PNG_SIGNATURE + b"".join(
        [png_chunk(b"IHDR", ihdr), png_chunk(b"iCCP", b"icc\0\0" + profile), png_chunk(b"IDAT", rows),
         png_chunk(b"IEND", b"")]
    )  # fmt: skip


def bad_ppm() -> bytes:
    return b"P6\n10 10\n0\n" + b"\0" * 20  # maxval 0: Pillow raises ValueError


def bad_dds() -> bytes:
    return b"DDS " + struct.pack("<I", 124) + b"\0" * 40  # header cut short


def bad_tiff() -> bytes:
    return b"II*\x00\x08\x00\x00\x00\x01\x00" + b"\0" * 20  # one IFD entry of nothing


def _zeros_idat(row_bytes: int, rows: int) -> bytes:
    """The IDAT of `rows` rows of zeros (filter byte 0), compressed a row at a time (never all in memory)."""
    comp = zlib.compressobj(9)
    row = b"\0" * (row_bytes + 1)
    parts = [comp.compress(row) for _ in range(rows)]
    parts.append(comp.flush())
    return b"".join(parts)


def png16_bomb(path, w: int = 10950, h: int = 10950) -> Path:
    """A 16-bit greyscale PNG of w x h zeros: about 233 KB on disk at the default 10,950 x 10,950."""
    ihdr = struct.pack(">IIBBBBB", w, h, 16, 0, 0, 0, 0)
    data = PNG_SIGNATURE + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", _zeros_idat(2 * w, h))
    p = _ready(path)
    p.write_bytes(data + png_chunk(b"IEND", b""))
    return p


def tall_png(path, w: int = 1, h: int = 119_999_999) -> Path:
    """An RGB PNG claiming w x h pixels (within the pixel limit for the default 1 x 119,999,999)."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    data = PNG_SIGNATURE + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
    p = _ready(path)
    p.write_bytes(data + png_chunk(b"IEND", b""))
    return p


def tiff_bomb(path, w: int = 10950, h: int = 10950) -> Path:
    """A 3 KB corrupt TIFF claiming w x h 32-bit float pixels in one strip that is not there."""
    entries = [  # (tag, type, count, value): SHORT=3, LONG=4
        (256, 4, 1, w), (257, 4, 1, h), (258, 3, 1, 32), (259, 3, 1, 1), (262, 3, 1, 1),
        (273, 4, 1, 3000), (277, 3, 1, 1), (278, 4, 1, h), (279, 4, 1, 4 * w * h), (339, 3, 1, 3),
    ]  # fmt: skip
    ifd = struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        packed = struct.pack("<H", value) + b"\0\0" if kind == 3 else struct.pack("<I", value)
        ifd += struct.pack("<HHI", tag, kind, count) + packed
    body = b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0)
    p = _ready(path)
    p.write_bytes(body + b"\x7f" * (3000 - len(body)) + b"\0" * 64)
    return p


def saved(im: Image.Image, fmt: str, **kw) -> bytes:
    import io

    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()
