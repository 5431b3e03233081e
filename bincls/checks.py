"""Small checks of values, shared by every layer: the settings schema, run records, checkpoints, the
threshold. Each `is_*` returns True for a good value; free of torch, so the CLI can check at once."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from bincls.errors import BinclsError

Check = Callable[[Any], bool]


def is_int(v: Any) -> bool:
    """A whole number (a bool is not one, though Python says it is an int)."""
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v: Any) -> bool:
    """A finite int or float (NaN and inf are not: they compare false with every bound)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def is_bool(v: Any) -> bool:
    return isinstance(v, bool)


def is_text(v: Any) -> bool:
    """A string with something in it."""
    return isinstance(v, str) and bool(v.strip())


def int_at_least(low: int) -> Check:
    return lambda v: is_int(v) and v >= low


def int_between(low: int, high: int) -> Check:
    return lambda v: is_int(v) and low <= v <= high


def optional(check: Check) -> Check:
    """`check`, or None."""
    return lambda v: v is None or check(v)


def valid_threshold(value: Any) -> bool:
    """A decision threshold: a finite number from 0 to 1. P(second class) at or above it predicts the
    second class; a NaN one would silently predict the first class for every image."""
    return is_number(value) and 0.0 <= value <= 1.0


def check_threshold(value: Any, what: str = "threshold") -> float:
    """`value` as a threshold, or a `BinclsError` naming `what` (e.g. the --threshold option)."""
    if not valid_threshold(value):
        raise BinclsError(f"The {what} must be a probability from 0 to 1, got {value!r}.")
    return float(value)


# A table's fields: {key: (required, check, what a good value is)}.
Fields = dict[str, tuple[bool, Callable[[Any], bool], str]]


def table_problems(table: dict, fields: Fields, prefix: str = "") -> list[str]:
    """What is wrong with a JSON table read from a file (a checkpoint's, an export's), one sentence per
    missing or bad field; a value is quoted only when it is plain and short."""
    out = []
    for key, (required, check, expect) in fields.items():
        if key not in table:
            if required:
                out.append(f"it has no {prefix}{key}")
        elif not check(table[key]):
            value = table[key]
            plain = isinstance(value, (str, int, float, list, type(None)))
            shown = repr(value)[:60] if plain else type(value).__name__
            out.append(f"{prefix}{key} must be {expect}, not {shown}")
    return out
