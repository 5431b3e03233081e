"""How much memory decoding one image takes, known from its header, and the budget all decodes share.

Pillow allocates what a file's header claims: a 233 KB PNG can claim 120 million 16-bit pixels, a PNG one
pixel wide 120 million rows. So before a single pixel is decoded, `decode_cost` works out the peak memory
of the whole decode (the image in its stored mode, the decoder's own buffers, each conversion on the way
to RGB, the EXIF rotation), an image above `MAX_DECODE_BYTES` is refused, and every decode holds its cost
in `DECODE_BUDGET` while it runs: the decodes of one process (the scan's parallel checks, training's decode
threads, predictions) never hold more than `DECODE_BUDGET_BYTES` together, whatever a folder holds.
"""

from __future__ import annotations

import math
import os
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

from PIL import Image

MiB = 2**20
# A longer side costs memory per row (Pillow keeps a pointer per row) and per resampled column whatever
# the pixel count: a 1 x 119,999,999 PNG is within the pixel limit and needs gigabytes. JPEG and GIF
# cannot go beyond this; WebP stops at 16,383.
MAX_SIDE = 65_535
MAX_DECODE_BYTES = 1024 * MiB  # one image, decode and conversion to RGB together
DECODE_BUDGET_BYTES = 2048 * MiB  # every decode of one process at the same moment
# Decoder state, the 16-bit conversion's bands, Python objects: measured well under this.
SLACK_BYTES = 16 * MiB
WIDE_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")  # converted in bands of this many pixels:
BAND_PIXELS = 1 << 20
ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")

# Bytes per pixel of Pillow's image memory (RGB, like every 3- and 4-band mode, takes 4).
_BYTES_PER_PIXEL = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2}
_ROW_BYTES = 8  # Pillow's pointer to each row


def image_bytes(width: int, height: int, mode: str) -> int:
    """Memory of one Pillow image of this size and mode."""
    return width * height * _BYTES_PER_PIXEL.get(mode, 4) + height * _ROW_BYTES


def has_transparency_key(im: Image.Image) -> bool:
    """Palette, grey and RGB images can mark one colour transparent (tRNS) instead of having alpha."""
    return im.mode in ("P", "L", "RGB") and im.info.get("transparency") is not None


def decode_cost(im: Image.Image, full_size: tuple[int, int], file_bytes: int) -> int:
    """Peak bytes to decode `im` (opened, maybe drafted to a smaller size) and make it RGB.

    `full_size` is the size before any draft (JPEG's DCT coefficients are kept at full size), and
    `file_bytes` the size of the file (some decoders read it whole).
    """
    w, h = im.size
    stored = image_bytes(w, h, im.mode)
    rgb = image_bytes(w, h, "RGB")
    stages = [stored + _decoder_bytes(im, full_size, file_bytes)]
    if im.mode in WIDE_MODES:  # to 8-bit grey in bands, then RGB
        grey = image_bytes(w, h, "L")
        stages += [stored + grey + BAND_PIXELS * 24, grey + rgb]
    elif im.mode == "RGBA":  # composited onto a new RGB image
        stages.append(stored + rgb)
    elif im.mode in ALPHA_MODES or has_transparency_key(im):  # to RGBA first, then composited
        stages += [stored + rgb, 2 * rgb]
    elif im.mode != "RGB":
        stages.append(stored + rgb)
    stages.append(2 * rgb)  # an EXIF rotation makes a rotated copy
    return max(stages) + SLACK_BYTES


def _decoder_bytes(im: Image.Image, full_size: tuple[int, int], file_bytes: int) -> int:
    """What a decoder allocates beside the image itself."""
    w, h = im.size
    fmt = im.format
    if fmt in ("JPEG", "MPO"):
        # Progressive and multi-scan JPEGs keep every DCT coefficient of the full-size image (2 bytes
        # each) whatever the draft scale; counted for all JPEGs, since a header cannot rule it out.
        layers = getattr(im, "layer", None) or [("", 1, 1, 0)] * 3
        hmax = max(max(h_ for _, h_, _, _ in layers), 1)
        vmax = max(max(v for _, _, v, _ in layers), 1)
        fw, fh = full_size
        return sum(2 * _blocks(fw * hs / hmax) * _blocks(fh * vs / vmax) for _, hs, vs, _ in layers)
    if fmt == "WEBP":  # the whole file, libwebp's RGBA canvas and its previous frame, their bytes copy
        return file_bytes + 3 * w * h * 4
    if fmt == "TIFF":
        return _tiff_buffer(im)
    if fmt == "GIF":  # the frame is composited onto a copy of the canvas
        return image_bytes(w, h, "RGBA")
    return 4 * w * 8  # PNG and BMP: a few rows of at most 8 bytes per pixel


def _blocks(pixels: float) -> int:
    """Pixels rounded up to whole 8 x 8 DCT blocks (and to the MCU of subsampled components)."""
    return (math.ceil(pixels / 16) + 1) * 16


def _tiff_buffer(im: Image.Image) -> int:
    """libtiff reads a strip (or tile) at a time into a buffer of its own: as large as the file says."""
    w, h = im.size
    tags = getattr(im, "tag_v2", {}) or {}
    try:
        bits = tags.get(258, (8,))
        bits = max(bits) if isinstance(bits, (tuple, list)) else int(bits)
        samples = int(tags.get(277, 1))
        rows = min(int(tags.get(278, h) or h), h)
        tile = int(tags.get(322, 0)) * int(tags.get(323, 0))
    except (TypeError, ValueError):
        return image_bytes(w, h, "RGBA") * 2  # tags that make no sense: assume the worst
    per_pixel = max(math.ceil(samples * bits / 8), 4)  # the RGBA path for YCbCr and old-style JPEG
    return max(rows * w, tile) * per_pixel


class DecodeBudget:
    """Bytes that the decodes of one process may hold at once; a decode waits its turn for its share.

    Turns are first come, first served, so a large image is not starved by a stream of small ones.
    """

    def __init__(self, capacity: int):
        self.capacity = int(capacity)
        self._reset()

    def _reset(self) -> None:
        self._cond = threading.Condition()
        self._queue: deque[object] = deque()
        self.in_use = 0
        self.peak = 0  # the most held at once, for tests and benchmarks

    @contextmanager
    def hold(self, nbytes: int) -> Iterator[None]:
        nbytes = min(int(nbytes), self.capacity)
        ticket = object()
        with self._cond:
            self._queue.append(ticket)
            try:
                while self._queue[0] is not ticket or self.in_use + nbytes > self.capacity:
                    self._cond.wait()
                self.in_use += nbytes
                self.peak = max(self.peak, self.in_use)
            finally:
                self._queue.remove(ticket)
                self._cond.notify_all()
        try:
            yield
        finally:
            with self._cond:
                self.in_use -= nbytes
                self._cond.notify_all()


DECODE_BUDGET = DecodeBudget(DECODE_BUDGET_BYTES)
# A process forked while another thread held the lock would inherit it locked (DataLoader workers fork).
os.register_at_fork(after_in_child=DECODE_BUDGET._reset)
