"""Models: the registry (one name per architecture), scratch CNNs, backbones, weights, summary, checkpoints.

`build_model(model_config("mobilenet_v2", weights="imagenet"))` is the whole API most callers need.
The names below load on first use, so reading `bincls.models.config` (the settings schema does, for the
image sizes every model takes) does not load torch.
"""

from __future__ import annotations

import importlib

_LAZY = {
    **dict.fromkeys(("IMAGENET_MEAN", "IMAGENET_STD", "IMG_SIZE_RANGE", "SCRATCH_MEAN", "SCRATCH_STD",
                     "ModelConfig"), "bincls.models.config"),
    **dict.fromkeys(("MIN_IMG_SIZE", "MODELS", "ModelEntry", "build_model", "list_models", "model_config",
                     "trainable_parameters"), "bincls.models.registry"),
    **dict.fromkeys(("ModelSummary", "SummaryRow", "format_summary", "model_summary"),
                    "bincls.models.summary"),
}  # fmt: skip

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'bincls.models' has no attribute {name!r}")
