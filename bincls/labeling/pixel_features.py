"""Features without pretrained weights: a small colour thumbnail, a colour histogram and edge directions.

Only for when no pretrained network is at hand: they tell colour, brightness and coarse shape apart
(masked from unmasked faces somewhat; ants from bees barely), so the session's suggestions and guesses
are weaker, and it says so. Decoded as everywhere in bincls (bincls.data.images), in threads, no torch.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image

from bincls.data.images import load_rgb
from bincls.errors import BinclsError

EXTRACTOR = "pixels-v1"
SIDE = 32  # the image is looked at as 32 x 32 pixels
THUMB = 8  # colour layout: 8 x 8 x 3
HUE_BINS, SAT_BINS = 12, 3
CELLS, ORIENTATIONS = 4, 8  # edge directions: 4 x 4 cells, 8 directions each (a tiny HOG)


def pixel_vector(image: Image.Image) -> np.ndarray:
    """The feature vector of one RGB image (float32, 192 + 36 + 128 values)."""
    small = np.asarray(image.convert("RGB").resize((SIDE, SIDE), Image.Resampling.BILINEAR), np.float32) / 255
    thumb = small.reshape(THUMB, SIDE // THUMB, THUMB, SIDE // THUMB, 3).mean(axis=(1, 3)).ravel()
    hsv = np.asarray(image.convert("RGB").resize((SIDE, SIDE)).convert("HSV"), np.float32) / 255
    hist, _, _ = np.histogram2d(hsv[..., 0].ravel(), hsv[..., 1].ravel(), bins=(HUE_BINS, SAT_BINS),
                                range=((0, 1), (0, 1)))  # fmt: skip
    grey = small @ np.array([0.299, 0.587, 0.114], np.float32)
    gy, gx = np.gradient(grey)
    magnitude = np.hypot(gx, gy)
    direction = ((np.arctan2(gy, gx) % np.pi) / np.pi * ORIENTATIONS).astype(int) % ORIENTATIONS
    cell = SIDE // CELLS
    edges = np.zeros((CELLS, CELLS, ORIENTATIONS), np.float32)
    rows, cols = np.indices((SIDE, SIDE)) // cell
    np.add.at(edges, (rows, cols, direction), magnitude)
    edges /= max(float(edges.sum()), 1e-6)
    return np.concatenate([thumb, hist.ravel() / hist.sum(), edges.ravel()]).astype(np.float32)


def pixel_compute(paths: list[str]) -> Iterator[tuple[int, np.ndarray | None]]:
    """A `feature_cache.Compute`: each file's `pixel_vector`, None when it cannot be read now."""

    def one(path: str) -> np.ndarray | None:
        try:
            return pixel_vector(load_rgb(path, max_side=SIDE * 2))
        except (BinclsError, OSError, MemoryError, ValueError):
            return None

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        yield from enumerate(pool.map(one, paths))
