"""The decision threshold: P(second class) at or above it predicts the second class.

Checked wherever one comes in (a checkpoint, a run's config, the --threshold option, the API): NaN
compares false with everything, so a NaN threshold would silently predict the first class for every
image. Free of torch, so the CLI can check its option at once.
"""

from __future__ import annotations

import math
from typing import Any

from bincls.errors import BinclsError


def valid_threshold(value: Any) -> bool:
    """A finite number from 0 to 1."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return number and math.isfinite(value) and 0.0 <= value <= 1.0


def check_threshold(value: Any, what: str = "threshold") -> float:
    """`value` as a threshold, or a `BinclsError` naming `what` (e.g. the --threshold option)."""
    if not valid_threshold(value):
        raise BinclsError(f"The {what} must be a probability from 0 to 1, got {value!r}.")
    return float(value)
