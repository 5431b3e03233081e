"""Decode every image once into one uint8 tensor, persisted so the next run starts at once.

The tutorials our users come from decode and resize every JPEG again in every epoch; here each file
is decoded once (JPEG draft mode, EXIF, colour handling as everywhere), resized with the same
torchvision resize the eval transform uses, and kept as [N, 3, S, S] uint8 (4x smaller than float).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil
import torch
from torchvision.transforms import v2

from bincls.data.images import load_rgb
from bincls.paths import cache_dir

VERSION = 1
Progress = Callable[[int, int], None]


def resize_transform(side: int) -> v2.Compose:
    """PIL RGB -> uint8 tensor [3, side, side]: exactly the first steps of the eval transform."""
    return v2.Compose([v2.ToImage(), v2.Resize((side, side), antialias=True)])


def dataset_bytes(n: int, side: int) -> int:
    return n * 3 * side * side


def parse_bytes(text: str) -> int:
    """'4G', '512M', '1.5GB' or a plain number of bytes."""
    t = str(text).strip().upper().rstrip("B")
    scale = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}.get(t[-1:], 1)
    return int(float(t[:-1] if scale > 1 else t) * scale)


def available_memory() -> int:
    """Memory the system can give without swapping (psutil's `available`)."""
    return int(psutil.virtual_memory().available)


def memory_budget() -> int:
    """Bytes the decoded dataset may take: BINCLS_MEMORY_BUDGET, else half of the available memory."""
    env = os.environ.get("BINCLS_MEMORY_BUDGET")
    return parse_bytes(env) if env else available_memory() // 2


def _key(paths: list[str], side: int) -> str:
    h = hashlib.sha256(f"v{VERSION}:{side}".encode())
    for p in paths:
        st = os.stat(p)
        h.update(f"\0{os.path.abspath(p)}\0{st.st_size}\0{st.st_mtime_ns}".encode())
    return h.hexdigest()[:32]


@dataclass
class DecodedImages:
    images: torch.Tensor  # uint8 [N, 3, side, side]
    side: int
    from_cache: bool


def _decode_one(path: str, side: int, resize) -> np.ndarray:
    # A file that decoded at scan time but fails now (changed under us) must not kill the run silently.
    return resize(load_rgb(path, max_side=side)).numpy()


def decode_images(
    paths: list[str], side: int, progress: Progress | None = None, workers: int | None = None
) -> torch.Tensor:
    """Decode in parallel (Pillow releases the GIL while decoding and resizing) into one tensor."""
    out = np.empty((len(paths), 3, side, side), dtype=np.uint8)
    resize = resize_transform(side)
    workers = workers or os.cpu_count() or 1
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for i, arr in enumerate(pool.map(lambda p: _decode_one(p, side, resize), paths)):
            out[i] = arr
            if progress and (i % 50 == 0 or i == len(paths) - 1):
                progress(i + 1, len(paths))
    return torch.from_numpy(out)


def load_or_decode(
    paths: list[str], side: int, progress: Progress | None = None, use_cache: bool = True
) -> DecodedImages:
    """The decoded images from the cache folder when the files are unchanged, else decoded now and saved."""
    folder = cache_dir() / "decoded"
    key = _key(paths, side)
    npy, meta = folder / f"{key}.npy", folder / f"{key}.json"
    if use_cache and npy.exists() and meta.exists():
        try:
            arr = np.load(npy)
            if arr.shape == (len(paths), 3, side, side) and arr.dtype == np.uint8:
                return DecodedImages(torch.from_numpy(arr), side, True)
        except (OSError, ValueError):
            pass  # a damaged cache file is rebuilt below
    images = decode_images(paths, side, progress)
    if use_cache:
        _save(folder, npy, meta, images, paths, side)
    return DecodedImages(images, side, False)


def _save(folder: Path, npy: Path, meta: Path, images: torch.Tensor, paths: list[str], side: int) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = npy.with_name(f".{npy.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            np.save(f, images.numpy())
        os.replace(tmp, npy)
        meta.write_text(json.dumps({"side": side, "n": len(paths), "first": paths[:3]}))
    except OSError:
        pass  # a full or read-only cache folder only costs the next run a decode
