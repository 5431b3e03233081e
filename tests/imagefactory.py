"""Small, odd and broken image files made on the fly with Pillow, for the data-layer tests.

Every helper writes one file to `path`, creating parent folders, and returns the path. Images are
tiny so that a test folder of dozens of them scans in milliseconds.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def _ready(path: str | os.PathLike) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    return p


def noise_array(w: int = 24, h: int = 16, seed: int = 0, channels: int = 3) -> np.ndarray:
    """Random pixels: every seed gives different bytes, so files never count as duplicates by accident."""
    shape = (h, w, channels) if channels > 1 else (h, w)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def rgb_image(w: int = 24, h: int = 16, seed: int = 0) -> Image.Image:
    return Image.fromarray(noise_array(w, h, seed), "RGB")


def encode(im: Image.Image, fmt: str, **save_args) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **save_args)
    return buf.getvalue()


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    p = _ready(path)
    p.write_bytes(data)
    return p


def save(im: Image.Image, path: str | os.PathLike, fmt: str, **save_args) -> Path:
    """Save `im` as `fmt` whatever the file name says (a PNG named .jpg, a JPEG named .txt...)."""
    return write_bytes(path, encode(im, fmt, **save_args))


def jpeg(path, w: int = 24, h: int = 16, seed: int = 0, **save_args) -> Path:
    return save(rgb_image(w, h, seed), path, "JPEG", quality=90, **save_args)


def png(path, w: int = 24, h: int = 16, seed: int = 0) -> Path:
    return save(rgb_image(w, h, seed), path, "PNG")


def make_folder(folder, n: int, seed: int = 0, fmt: str = "PNG", ext: str = ".png", w: int = 24) -> list:
    """`n` distinct small images in `folder`; seeds start at `seed` so folders never share bytes."""
    return [save(rgb_image(w, 16, seed + i), Path(folder) / f"img{i:03d}{ext}", fmt) for i in range(n)]


def solid(path, colour: tuple, mode: str = "RGB", fmt: str = "PNG", size=(8, 8)) -> Path:
    return save(Image.new(mode, size, colour), path, fmt)


def jpeg_with_orientation(path, w: int = 40, h: int = 20, orientation: int = 6, seed: int = 0) -> Path:
    """A w x h JPEG whose EXIF says 'rotate for display' (6 = 90 degrees clockwise)."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    return save(rgb_image(w, h, seed), path, "JPEG", exif=exif.tobytes())


def truncated_jpeg(path, seed: int = 0) -> Path:
    """A real JPEG cut in half."""
    data = encode(rgb_image(64, 48, seed), "JPEG", quality=95)
    return write_bytes(path, data[: len(data) // 2])


def png_with_garbage(path, seed: int = 0) -> Path:
    """A real PNG with 64 bytes in the middle (inside the pixel data) overwritten by garbage."""
    data = bytearray(encode(rgb_image(64, 48, seed), "PNG"))
    mid = len(data) // 2
    data[mid : mid + 64] = np.random.default_rng(seed + 1).integers(0, 256, 64, dtype=np.uint8).tobytes()
    return write_bytes(path, bytes(data))


def truncated_png(path, keep: float = 0.9, seed: int = 0) -> Path:
    """A real PNG missing its last bytes (the end of the pixel data and the IEND chunk)."""
    data = encode(rgb_image(64, 48, seed), "PNG")
    return write_bytes(path, data[: int(len(data) * keep)])


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bomb(path, w: int = 20000, h: int = 20000) -> Path:
    """A valid-looking PNG header claiming w x h RGB pixels, with almost no pixel data behind it.

    Decoding it would need w*h*3 bytes (1.2 GB for the default); it must be refused from the header.
    """
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    chunks = _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")
    data = b"\x89PNG\r\n\x1a\n" + chunks
    return write_bytes(path, data)


def fake_heic(path) -> Path:
    """The start of an HEIC file (ISO box 'ftypheic'); Pillow cannot read HEIC."""
    box = struct.pack(">I", 24) + b"ftypheic" + struct.pack(">I", 0) + b"mif1heic"
    return write_bytes(path, box + b"\x00" * 200)


def svg(path) -> Path:
    text = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
        '<rect width="10" height="10" fill="red"/></svg>\n'
    )
    return write_bytes(path, text.encode())


def text_file(path, text: str = "these are my notes about the photos\n") -> Path:
    return write_bytes(path, text.encode())


def palette_with_transparency(path, size=(8, 8)) -> Path:
    """A palette PNG: index 0 is transparent (left half), index 1 is opaque red (right half)."""
    im = Image.new("P", size, 0)
    im.putpalette([0, 0, 0, 255, 0, 0] + [0, 0, 0] * 254)
    im.paste(1, (size[0] // 2, 0, size[0], size[1]))
    return save(im, path, "PNG", transparency=0)


def rgba_half_transparent(path, size=(8, 8), colour=(0, 0, 255)) -> Path:
    """Left half fully transparent black, right half opaque `colour`."""
    arr = np.zeros((size[1], size[0], 4), np.uint8)
    arr[:, size[0] // 2 :, :3] = colour
    arr[:, size[0] // 2 :, 3] = 255
    return save(Image.fromarray(arr, "RGBA"), path, "PNG")


def la_image(path, size=(8, 8), grey: int = 40) -> Path:
    """Grey + alpha: top half transparent, bottom half opaque `grey`."""
    arr = np.zeros((size[1], size[0], 2), np.uint8)
    arr[size[1] // 2 :, :, 0] = grey
    arr[size[1] // 2 :, :, 1] = 255
    return save(Image.fromarray(arr, "LA"), path, "PNG")


def png16(path, values: list[int], rows: int = 1) -> Path:
    """A 16-bit greyscale PNG (mode I;16) whose rows each hold `values`."""
    im = Image.new("I;16", (len(values), rows))
    im.putdata(values * rows)
    return save(im, path, "PNG")


def cmyk_jpeg(path, cmyk=(0, 255, 255, 0), size=(8, 8)) -> Path:
    """A CMYK JPEG; the default ink (no cyan, full magenta and yellow) is red."""
    return save(Image.new("CMYK", size, cmyk), path, "JPEG", quality=95)


def animated_gif(path, colours=((255, 0, 0), (0, 0, 255)), size=(8, 8)) -> Path:
    frames = [Image.new("RGB", size, c).convert("P") for c in colours]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return write_bytes(path, buf.getvalue())


def multipage_tiff(path, colours=((0, 255, 0), (255, 0, 0)), size=(8, 8)) -> Path:
    frames = [Image.new("RGB", size, c) for c in colours]
    buf = io.BytesIO()
    frames[0].save(buf, "TIFF", save_all=True, append_images=frames[1:])
    return write_bytes(path, buf.getvalue())
