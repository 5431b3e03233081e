"""Models: the registry (one name per architecture), scratch CNNs, backbones, weights, summary, checkpoints.

`build_model(model_config("mobilenet_v2", weights="imagenet"))` is the whole API most callers need.
"""

from bincls.models.config import IMAGENET_MEAN, IMAGENET_STD, SCRATCH_MEAN, SCRATCH_STD, ModelConfig
from bincls.models.registry import (
    MIN_IMG_SIZE,
    MODELS,
    ModelEntry,
    build_model,
    list_models,
    model_config,
    trainable_parameters,
)
from bincls.models.summary import ModelSummary, SummaryRow, format_summary, model_summary

__all__ = [
    "IMAGENET_MEAN", "IMAGENET_STD", "MIN_IMG_SIZE", "MODELS", "SCRATCH_MEAN", "SCRATCH_STD", "ModelConfig",
    "ModelEntry", "ModelSummary", "SummaryRow", "build_model", "format_summary", "list_models",
    "model_config", "model_summary", "trainable_parameters",
]  # fmt: skip
