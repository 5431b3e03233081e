"""What a checkpoint must hold before anything is built from it: one check of every known field.

A checkpoint file can come from anywhere (an upload, a colleague, a damaged disk). `weights_only` loading
keeps code out; this keeps nonsense out: an `img_size` of 40,000 would allocate gigabytes in the model
summary, a missing `state_dict` would be a KeyError, a NaN threshold would predict one class for every
image. Fields a newer release adds are allowed (and left to their readers); known ones must have their
type and range.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from bincls.checks import int_at_least, is_int, is_number, table_problems, valid_threshold
from bincls.errors import BinclsError
from bincls.models.config import IMG_SIZE_RANGE


def _three_numbers(v: Any, positive: bool = False) -> bool:
    if not (isinstance(v, (list, tuple)) and len(v) == 3):
        return False
    return all(is_number(x) and (x > 0 or not positive) for x in v)


def _tensor_table(v: Any) -> bool:
    import torch

    return isinstance(v, dict) and bool(v) and all(isinstance(k, str) and isinstance(t, torch.Tensor)
                                                   for k, t in v.items())  # fmt: skip


# Known top-level fields: (required, check, what it must be).
_FIELDS: dict[str, tuple[bool, Callable[[Any], bool], str]] = {
    "model_config": (True, lambda v: isinstance(v, dict), "a table of model settings"),
    "state_dict": (True, lambda v: _tensor_table(v), "a table of named weight tensors"),
    "class_names": (
        True,
        lambda v: isinstance(v, list) and len(v) == 2 and all(isinstance(n, str) and n.strip() for n in v),
        "exactly two non-empty class names",
    ),
    "threshold": (False, valid_threshold, "a number from 0 to 1"),
    "temperature": (False, lambda v: is_number(v) and v > 0, "a number above 0"),
    "pos_weight": (False, lambda v: is_number(v) and v >= 0, "a number >= 0"),
    "logit_bias": (False, lambda v: is_number(v), "a finite number"),
    "tta": (False, lambda v: isinstance(v, bool), "true or false"),
    "calibration": (False, lambda v: v is None or isinstance(v, dict), "a table"),
    "ood": (False, lambda v: v is None or isinstance(v, dict), "a table describing the detector"),
    "recipe": (False, lambda v: v is None or isinstance(v, dict), "a table"),
    **dict.fromkeys(
        ("metrics", "optimizer", "callbacks", "train_config", "versions"),
        (False, lambda v: isinstance(v, dict), "a table"),
    ),
    "scheduler": (False, lambda v: v is None or isinstance(v, dict), "a table or null"),
    **dict.fromkeys(
        ("epoch", "epochs_done", "global_step"), (False, int_at_least(0), "a whole number >= 0")
    ),
}

_MODEL_FIELDS: dict[str, tuple[bool, Callable[[Any], bool], str]] = {
    "name": (True, lambda v: isinstance(v, str) and bool(v), "a model name"),
    "img_size": (
        True,
        lambda v: is_int(v) and IMG_SIZE_RANGE[0] <= v <= IMG_SIZE_RANGE[1],
        f"a whole number from {IMG_SIZE_RANGE[0]} to {IMG_SIZE_RANGE[1]}",
    ),
    "mean": (True, _three_numbers, "three numbers"),
    "std": (True, lambda v: _three_numbers(v, positive=True), "three numbers above 0"),
    "weights": (False, lambda v: isinstance(v, str), "text"),
    "freeze_backbone": (False, lambda v: isinstance(v, bool), "true or false"),
    "dropout": (False, lambda v: is_number(v) and 0 <= v < 1, "a number in [0, 1)"),
}


def validate_checkpoint(ckpt: dict, path: str | os.PathLike) -> dict:
    """`ckpt` unchanged when every known field has its type and range; else a `BinclsError` naming the
    file and each field that is wrong."""
    problems = table_problems(ckpt, _FIELDS)
    if isinstance(ckpt.get("model_config"), dict):
        problems += table_problems(ckpt["model_config"], _MODEL_FIELDS, prefix="model_config.")
    if problems:
        raise BinclsError(
            f"Checkpoint {path} cannot be used: {'; '.join(problems)}. It is damaged or was not made by "
            "bincls; use a checkpoint from a bincls run folder (best.pt or last.pt)."
        )
    return ckpt
