"""Image quality warnings: blurry, very dark, very bright, nearly blank, extreme shape, very small.

The statistics come from the small thumbnail the scan decodes anyway (at most 64 px a side, as
CleanVision measures blur), so they cost well under a millisecond per file and are cached with the
scan. They are warnings: a flagged image still trains unless the user leaves it out. The scores
follow CleanVision's definitions; the thresholds and what they catch on the shared photos are in
docs/measurements.md (`bench/image_quality.py`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image, ImageFilter

# Perceived brightness of each pixel (HSP colour model, as CleanVision): 0 black .. 1 white.
_HSP = np.array([0.241, 0.691, 0.068])

# Dark: even the brightest 1% of pixels are below this (CleanVision's "dark" threshold).
DARK_P99 = 0.32
# Bright: even the darkest 5% of pixels are above this (CleanVision: 1 - 0.05).
BRIGHT_P05 = 0.95
# Nearly blank: grey-level entropy below this many bits (CleanVision's low_information: 3 bits).
BLANK_ENTROPY = 3.0
# Blurry: edge strength (std of the edge filter on the 64 px grey thumbnail, as CleanVision) below
# this. Set at the 2nd percentile of the shared photos: a Gaussian blur of 4% of the shorter side
# falls below it 99 times in 100, one of 2% about half the time; milder blur is not seen at 64 px.
BLUR_EDGES = 22.0
# Extreme shape: the long side over this many times the short one. Images are squashed to a square
# for the model, so at 3:1 everything in the picture is three times thinner than it was.
MAX_ASPECT = 3.0
# Very small: the shorter side below this; the model's 224 px input blows it up more than 3.5 times.
SMALL_SIDE = 64

CHECKS = ("blurry", "dark", "bright", "blank", "aspect", "small")


@dataclass(frozen=True, slots=True)
class QualityIssue:
    path: str
    check: str  # one of CHECKS
    reason: str  # what was measured against what, for a person

    def to_dict(self) -> dict:
        return asdict(self)


def thumbnail_stats(rgb: Image.Image) -> dict[str, float]:
    """The statistics the checks need, from a small RGB image (kept in the scan cache as they are)."""
    arr = np.asarray(rgb, dtype=np.float64) / 255.0
    bright = np.sqrt((arr**2) @ _HSP).ravel()
    grey = rgb.convert("L")
    # The filter's one-pixel border is not an edge of the picture: left out.
    edges = np.asarray(grey.filter(ImageFilter.FIND_EDGES), dtype=np.float64)[1:-1, 1:-1]
    p05, p99 = np.percentile(bright, [5, 99])
    return {"bright_p05": round(float(p05), 4), "bright_p99": round(float(p99), 4),
            "entropy": round(float(grey.entropy()), 3), "edges": round(float(edges.std()), 2)}  # fmt: skip


def quality_issues(path: str, stats: dict[str, float], width: int, height: int) -> list[QualityIssue]:
    """Every check the image fails, each with its measured value and the threshold."""
    out = []

    def flag(check: str, reason: str) -> None:
        out.append(QualityIssue(path, check, reason))

    dark, bright = stats["bright_p99"] < DARK_P99, stats["bright_p05"] > BRIGHT_P05
    if stats["entropy"] < BLANK_ENTROPY:
        flag("blank", f"nearly blank: {stats['entropy']:.1f} bits of grey-level entropy "
                      f"(under {BLANK_ENTROPY:g})")  # fmt: skip
    # A blank, very dark or washed-out image has weak edges too: said once, for the reason it has.
    elif stats["edges"] < BLUR_EDGES and not (dark or bright):
        flag("blurry", f"blurry: edge strength {stats['edges']:.1f} (under {BLUR_EDGES:g})")
    if dark:
        flag("dark", f"very dark: its brightest pixels reach {stats['bright_p99']:.0%} "
                     f"(under {DARK_P99:.0%})")  # fmt: skip
    if bright:
        flag("bright", f"very bright: its darkest pixels are at {stats['bright_p05']:.0%} "
                       f"(over {BRIGHT_P05:.0%})")  # fmt: skip
    long, short = max(width, height), min(width, height)
    if long > MAX_ASPECT * short:
        flag("aspect", f"extreme shape: {width} x {height} px, {long / short:.1f}:1 (over {MAX_ASPECT:g}:1)")
    if short < SMALL_SIDE:
        flag("small", f"very small: {width} x {height} px (shorter side under {SMALL_SIDE} px)")
    return out
