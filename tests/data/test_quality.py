"""Image quality warnings: each planted fault is named with its reason, a good photo is not, and a
flagged image still trains."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageFilter

from bincls.cli import main as cli_main
from bincls.data.dataset import load_data
from bincls.data.quality import CHECKS, quality_issues, thumbnail_stats


def photo(sample_dir) -> Image.Image:
    return Image.open(sorted((sample_dir / "bees").iterdir())[0]).convert("RGB")


def faults(im: Image.Image) -> dict[str, Image.Image]:
    w, h = im.size
    flat = Image.new("RGB", (w, h), (128, 130, 126))
    return {
        "blurry": im.filter(ImageFilter.GaussianBlur(0.05 * min(w, h))),
        "dark": ImageEnhance.Brightness(im).enhance(0.15),
        "bright": Image.blend(im, Image.new("RGB", im.size, "white"), 0.97),
        "blank": flat,
        "aspect": im.crop((0, 0, w, w // 4)),
        "small": im.resize((48, 36)),
    }


@pytest.fixture
def faulty(tmp_path, sample_dir):
    root = tmp_path / "data"
    for cls in ("good", "faulty"):
        (root / cls).mkdir(parents=True)
    for p in sorted((sample_dir / "ants").iterdir())[:6]:
        (root / "good" / p.name).write_bytes(p.read_bytes())
    for name, im in faults(photo(sample_dir)).items():
        im.save(root / "faulty" / f"{name}.png")
    return root


def test_each_planted_fault_is_found_with_its_reason(faulty):
    data = load_data([faulty])
    by_file = {}
    for q in data.scan.quality:
        by_file.setdefault(q.path.rsplit("/", 1)[1], set()).add(q.check)
        assert q.check in CHECKS and q.reason
    for name in ("blurry", "dark", "bright", "blank", "aspect", "small"):
        assert name in by_file.get(f"{name}.png", set()), (name, by_file)
    assert "blurry" not in by_file["bright.png"] | by_file["dark.png"]  # weak edges, for another reason
    assert not any(f in by_file for f in (p.name for p in (faulty / "good").iterdir()))
    # warnings, not verdicts: every flagged image is still in the split
    assert {q.path for q in data.scan.quality} <= set(data.split["path"])
    assert not data.scan.excluded


def test_scan_json_and_text_show_the_warnings(faulty, capsys):
    assert cli_main(["scan", str(faulty), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {q["check"] for q in out["quality"]} >= {"blurry", "dark", "bright", "blank", "aspect", "small"}
    assert all(set(q) == {"path", "check", "reason"} for q in out["quality"])
    assert cli_main(["scan", str(faulty)]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("Quality warnings:"))
    assert "they still train" in line and "1 dark" in line


def test_a_blank_image_is_called_blank_not_also_blurry():
    flat = Image.fromarray(np.full((64, 64, 3), 90, np.uint8))
    checks = {q.check for q in quality_issues("x", thumbnail_stats(flat), 640, 640)}
    assert checks == {"blank"}


def test_the_shipped_sample_has_no_warnings(sample_dir):
    assert load_data([sample_dir]).scan.quality == []
