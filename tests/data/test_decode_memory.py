"""Memory bombs that pass the pixel limit (issue 16 class 4): every accepted image's decode is costed from
its header (per pixel, per mode, per side), refused above the per-image limit, and the decodes of a
process (a scan's parallel checks) hold no more than the shared budget. Peaks are measured in a fresh
process (VmHWM) on real files, never estimated."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import hostile
import imagefactory as fac
import numpy as np
import pytest
from PIL import Image

from bincls.data.decode_memory import (
    DECODE_BUDGET_BYTES,
    MAX_DECODE_BYTES,
    MAX_SIDE,
    SLACK_BYTES,
    DecodeBudget,
)
from bincls.data.images import ImageProblem, inspect_file, load_rgb

CHILD = Path(__file__).resolve().parents[1] / "decode_child.py"
MiB = 2**20


def child(*args: str, timeout: float = 300) -> list[dict]:
    out = subprocess.run([sys.executable, str(CHILD), *args], capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr[-3000:]
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def _noise(w: int, h: int, channels: int, dtype=np.uint8, top: int = 256) -> np.ndarray:
    """Random tiles repeated: real-looking pixels that compress well, so the files stay small."""
    tile = np.random.default_rng(0).integers(0, top, (64, 64, channels)).astype(dtype)
    return np.tile(tile, (h // 64 + 1, w // 64 + 1, 1))[:h, :w].squeeze()


def every_mode(folder: Path, w: int, h: int) -> list[Path]:
    """One file per accepted format and per mode that takes its own path through the decoder."""
    rgb = Image.fromarray(_noise(w, h, 3), "RGB")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: the rotation's copy is part of the peak
    grey16 = Image.fromarray(_noise(w, h, 1, np.uint16, 65536))
    lzw = {"compression": "tiff_lzw"}
    files = {
        "rgb.png": (rgb, "PNG", {"compress_level": 1}),
        "rotated.png": (rgb, "PNG", {"compress_level": 1, "exif": exif.tobytes()}),
        "rgba.png": (Image.fromarray(_noise(w, h, 4), "RGBA"), "PNG", {"compress_level": 1}),
        "la.png": (Image.fromarray(_noise(w, h, 2), "LA"), "PNG", {"compress_level": 1}),
        "palette-transparent.png": (rgb.convert("P"), "PNG", {"transparency": 0}),
        "grey16.png": (grey16, "PNG", {"compress_level": 1}),
        "bilevel.png": (rgb.convert("1"), "PNG", {}),
        "baseline.jpg": (rgb, "JPEG", {"quality": 90, "subsampling": 0}),
        "progressive.jpg": (rgb, "JPEG", {"quality": 90, "subsampling": 0, "progressive": True}),
        "progressive-rotated.jpg": (rgb, "JPEG", {"progressive": True, "exif": exif.tobytes()}),
        "cmyk.jpg": (rgb.convert("CMYK"), "JPEG", {"quality": 90}),
        "rgb.bmp": (rgb, "BMP", {}),
        "palette.gif": (rgb.convert("P"), "GIF", {}),
        "rgb.webp": (rgb, "WEBP", {"quality": 80}),
        "rgba.webp": (Image.fromarray(_noise(w, h, 4), "RGBA"), "WEBP", {"quality": 80}),
        "raw.tif": (rgb, "TIFF", {}),
        "lzw.tif": (rgb, "TIFF", {"compression": "tiff_lzw"}),
        "grey16.tif": (grey16, "TIFF", {"compression": "tiff_lzw"}),
        "float.tif": (Image.fromarray(_noise(w, h, 1).astype(np.float32)), "TIFF", lzw),
        "int32.tif": (Image.fromarray(_noise(w, h, 1).astype(np.int32) * 9), "TIFF", lzw),
        "cmyk.tif": (rgb.convert("CMYK"), "TIFF", {"compression": "tiff_lzw"}),
    }
    from PIL import ImageFile

    ImageFile.MAXBLOCK = max(2**26, 4 * w * h)  # progressive JPEGs this large need a larger encoder buffer
    paths = []
    for name, (im, fmt, kwargs) in files.items():
        paths.append(folder / name)
        im.save(paths[-1], fmt, **kwargs)
    return paths


def test_the_cost_model_bounds_the_measured_peak_of_every_format_and_mode(tmp_path):
    """Each decode (whole, and the scan's small one), measured in a fresh process, stays under what the
    model said before a pixel was decoded; and the model is not wildly above it for the common files."""
    paths = every_mode(tmp_path, 2400, 1600)  # 3.8 megapixels: well above allocator noise
    rows = child("peak", *map(str, paths))
    assert len(rows) == 2 * len(paths)
    over = [(Path(r["path"]).name, r["how"], r["peak"] // MiB, r["cost"] // MiB) for r in rows
            if r["peak"] > r["cost"]]  # fmt: skip
    assert not over, f"measured peak above the model (MB): {over}"
    assert all(r["result"] == "ok" for r in rows), [r for r in rows if r["result"] != "ok"]
    full = {Path(r["path"]).name: r for r in rows if r["how"] == "full"}
    for name in ("rotated.png", "rgba.png", "progressive.jpg"):  # the model is close where it matters
        assert full[name]["peak"] > 0.8 * (full[name]["cost"] - SLACK_BYTES), (name, full[name])


def test_a_one_pixel_wide_png_of_120_million_rows_is_refused_from_its_header(tmp_path):
    path = hostile.tall_png(tmp_path / "tall.png")
    assert path.stat().st_size < 1000
    started = time.monotonic()
    for call, kwargs in ((inspect_file, {}), (load_rgb, {"max_side": 64})):
        with pytest.raises(ImageProblem, match=f"a side over {MAX_SIDE:,} px"):
            call(path, **kwargs)
    assert time.monotonic() - started < 1


def test_an_image_above_the_per_image_limit_is_refused_before_decoding(tmp_path):
    """A CMYK JPEG header claiming 10,000 x 10,000 pixels (within the pixel limit): decoded whole, its DCT
    coefficients (8 bytes per pixel) and pixels (4) need more than the limit; the draft decode fits."""
    small = bytearray(hostile.saved(Image.new("CMYK", (16, 16)), "JPEG"))
    sof = small.index(b"\xff\xc0")
    small[sof + 5 : sof + 9] = struct.pack(">HH", 10_000, 10_000)
    path = fac.write_bytes(tmp_path / "cmyk.jpg", bytes(small))
    started = time.monotonic()
    with pytest.raises(ImageProblem, match=r"too large to decode \(10000x10000 CMYK needs about [\d,]+ MB"):
        load_rgb(path)
    assert time.monotonic() - started < 1
    try:  # at 1/8 scale it is admitted (what the pixel data then does is another matter)
        load_rgb(path, max_side=64)
    except ImageProblem as p:
        assert "too large" not in p.reason


def test_the_issues_tiff_bomb_is_refused_within_the_bound(tmp_path):
    path = hostile.tiff_bomb(tmp_path / "bomb.tif")
    assert path.stat().st_size < 4096
    (row,) = [r for r in child("peak", str(path)) if r["how"] == "inspect"]
    assert row["result"].startswith("problem: truncated or corrupt")
    assert row["peak"] <= row["cost"] <= MAX_DECODE_BYTES


def test_a_scan_holds_no_more_than_the_budget_whatever_the_folder_holds(tmp_path):
    """Four 16-bit 3,500 x 3,500 PNGs (each costed at about 110 MB) beside ordinary images, scanned by four
    threads with the budget set to 150 MB: the decodes take turns, and the scan's peak stays within the
    budget (plus the scan's own small overhead)."""
    for i in range(4):
        hostile.png16_bomb(tmp_path / "a" / f"bomb{i}.png", 3500, 3500)
    fac.make_folder(tmp_path / "a", 10, seed=0)
    fac.make_folder(tmp_path / "b", 10, seed=100)
    (result,) = child("scan", "150", str(tmp_path / "a"), str(tmp_path / "b"))
    assert result["images"] == 24, result["skipped"]
    assert result["budget_peak"] <= 150 * MiB
    assert result["peak"] < 150 * MiB + 40 * MiB, result


@pytest.mark.slow
def test_the_issues_bombs_at_full_size(tmp_path):
    """As the issue found them: a 233 KB 16-bit 10,950 x 10,950 PNG (3.3 GB to decode before), and four of
    them in one scan (6.5 GB before), with the real limits."""
    for i in range(4):  # each a different size: four files to check, not duplicates
        hostile.png16_bomb(tmp_path / "a" / f"bomb{i}.png", 10_950 - i, 10_950)
    assert (tmp_path / "a" / "bomb0.png").stat().st_size < 240_000
    (one,) = [r for r in child("peak", str(tmp_path / "a" / "bomb0.png")) if r["how"] == "inspect"]
    assert one["result"] == "ok" and one["peak"] <= one["cost"] <= MAX_DECODE_BYTES
    fac.make_folder(tmp_path / "b", 4, seed=100)
    budget_mb = str(DECODE_BUDGET_BYTES // MiB)
    (scan,) = child("scan", budget_mb, str(tmp_path / "a"), str(tmp_path / "b"), timeout=600)
    assert scan["images"] == 8 and scan["budget_peak"] <= DECODE_BUDGET_BYTES
    assert scan["peak"] < DECODE_BUDGET_BYTES + 100 * MiB, scan


# The budget itself -----------------------------------------------------------------------------------
def test_the_budget_never_holds_more_than_its_capacity_and_serves_in_order():
    budget = DecodeBudget(100)
    held, order, lock = [], [], threading.Lock()

    def work(i: int, size: int) -> None:
        with budget.hold(size):
            with lock:
                held.append(budget.in_use)
                order.append(i)
            time.sleep(0.01)

    sizes = [60, 60, 100, 10, 10, 500]
    threads = [threading.Thread(target=work, args=(i, size)) for i, size in enumerate(sizes)]
    for t in threads:
        t.start()
        time.sleep(0.002)  # arrive in this order
    for t in threads:
        t.join(10)
    assert max(held) <= 100 and budget.in_use == 0 and budget.peak <= 100
    assert order.index(2) < order.index(3)  # the large request is not overtaken by later small ones
