"""What an exported model's JSON must hold before anything serves it: one check of every field read.

The JSON beside an ONNX file (or the copy inside it) can come from anywhere: a hand edit, another
tool, a file copied from another run. As checkpoints are checked (`bincls.models.checkpoint_schema`),
every field a server or page reads is checked for its type and range before it is used: a threshold of
"abc", NaN or 7 would serve one class for every image, three class names would be an IndexError, an
`ood_threshold` of "x" a 500 on every request. Fields a newer release adds are allowed; known ones must
have their type and range. `model_sha256` ties the JSON to the file beside it (`bincls export` writes it).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

from bincls.checks import Fields, is_bool, is_int, is_number, is_text, table_problems, valid_threshold
from bincls.errors import BinclsError
from bincls.models.config import IMG_SIZE_RANGE

EXPORT_FORMAT = "bincls-onnx/2"
PRECISIONS = ("fp32", "int8")
SHA256 = re.compile(r"[0-9a-f]{64}")


def _three(v: Any, positive: bool = False) -> bool:
    return isinstance(v, list) and len(v) == 3 and all(is_number(x) and (x > 0 or not positive) for x in v)


def _two_names(v: Any) -> bool:
    return isinstance(v, list) and len(v) == 2 and all(is_text(n) for n in v) and v[0] != v[1]


def _shape(v: Any) -> bool:
    """[height, width, 3] or [batch, height, width, 3] for pixels; [batch, 3, S, S] for tensors."""
    return isinstance(v, list) and len(v) in (3, 4) and all(is_text(d) or (is_int(d) and d > 0) for d in v)


def _at_least_zero(v: Any) -> bool:
    return is_number(v) and v >= 0


def _optional(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: v is None or check(v)


_TOP: Fields = {
    "format": (True, lambda v: v == EXPORT_FORMAT, f"{EXPORT_FORMAT!r}"),
    "model_file": (False, is_text, "a file name"),
    "model_sha256": (False, lambda v: isinstance(v, str) and bool(SHA256.fullmatch(v)), "64 hex digits"),
    "model": (True, is_text, "a model name"),
    "class_names": (True, _two_names, "exactly two different, non-empty class names"),
    "threshold": (True, valid_threshold, "a number from 0 to 1"),
    "precision": (True, lambda v: v in PRECISIONS, " or ".join(PRECISIONS)),
    "input": (True, lambda v: isinstance(v, dict), "a table"),
    "temperature": (False, lambda v: is_number(v) and v > 0, "a number above 0"),
    "logit_bias": (False, is_number, "a finite number"),
    "ood_threshold": (False, _optional(is_number), "a finite number or null"),
    "tta": (False, is_bool, "true or false"),
    "provenance": (False, lambda v: isinstance(v, dict), "a table"),
    "verification": (False, lambda v: isinstance(v, dict), "a table"),
}
_INPUT: Fields = {
    "name": (True, is_text, "the input's name"),
    "dtype": (True, lambda v: v in ("uint8", "float32"), "uint8 or float32"),
    "shape": (True, _shape, "3 or 4 dimensions"),
    "preprocessing": (True, lambda v: isinstance(v, dict), "a table"),
}
_PREPROCESSING: Fields = {
    "img_size": (True, lambda v: is_int(v) and IMG_SIZE_RANGE[0] <= v <= IMG_SIZE_RANGE[1],
                 f"a whole number from {IMG_SIZE_RANGE[0]} to {IMG_SIZE_RANGE[1]}"),
    "mean": (True, _three, "three numbers"),
    "std": (True, lambda v: _three(v, positive=True), "three numbers above 0"),
}  # fmt: skip
_VERIFICATION: Fields = {
    "passed": (True, is_bool, "true or false"),
    "max_prob_diff": (True, lambda v: is_number(v) and 0 <= v <= 1, "a number from 0 to 1"),
    "max_ood_diff": (False, _optional(_at_least_zero), "a number >= 0 or null"),
    "images": (False, lambda v: is_int(v) and v >= 0, "a whole number >= 0"),
    "latency_ms": (False, _optional(_at_least_zero), "a number >= 0"),
    "reference_latency_ms": (False, _optional(_at_least_zero), "a number >= 0 or null"),
}


def export_problems(info: Any) -> list[str]:
    """What is wrong with an export's JSON (empty when nothing is)."""
    if not isinstance(info, dict):
        return [f"it is {type(info).__name__}, not a table"]
    problems = table_problems(info, _TOP)
    inp = info.get("input")
    if isinstance(inp, dict):
        problems += table_problems(inp, _INPUT, "input.")
        if isinstance(inp.get("preprocessing"), dict):
            problems += table_problems(inp["preprocessing"], _PREPROCESSING, "input.preprocessing.")
    if isinstance(info.get("verification"), dict):
        problems += table_problems(info["verification"], _VERIFICATION, "verification.")
    return problems


def validate_export(info: Any, where: str | os.PathLike) -> dict:
    """`info` unchanged when every known field has its type and range; else a `BinclsError` naming the
    file (`where`) and each field that is wrong."""
    problems = export_problems(info)
    if problems:
        raise BinclsError(
            f"{where} cannot be used: {'; '.join(problems[:6])}. It is damaged or was not written by "
            "`bincls export`: export the run again."
        )
    return info
