"""Checks a run's settings before anything starts, so a wrong combination is a message now rather
than a failed run a few seconds later. The Train page and `python -m bincls train` both call it."""

from __future__ import annotations

from bincls.errors import BinclsError
from bincls.training.config import TrainConfig
from bincls.training.recipes import Resolved, resolve


def preflight(cfg: TrainConfig) -> Resolved:
    """The complete config the preset makes of `cfg` (and why), after checking that it can train here.

    Raises a `BinclsError` that names the setting when it cannot: the data does not resolve to two
    classes, the weights file is missing (or outside `BINCLS_DATA_ROOT` when that is set), the preset
    needs pretrained weights that are not here, the model does not take these weights or this image
    size, or the device is absent."""
    from bincls.compute import resolve_device
    from bincls.data.data_root import confine
    from bincls.data.folder_layout import resolve_layout
    from bincls.models import model_config

    resolve_layout(cfg.data, cfg.class_names)  # a mistyped path fails here, before a run folder exists
    if cfg.weights not in ("auto", "imagenet", "none"):
        # A path: when the app is served to others it may not read files outside the data root.
        if not confine(cfg.weights).is_file():
            raise BinclsError(
                f"Weights file {cfg.weights!r} not found: give the path of a saved state_dict "
                "(or use weights imagenet or none)."
            )
    resolved = resolve(cfg)
    full = resolved.config
    model_config(full.model, full.img_size, full.weights, bool(full.freeze_backbone))
    if full.weights == "imagenet" and not full.init_from:
        _imagenet_at_hand(full.model)
    resolve_device(full.device)
    return resolved


def _imagenet_at_hand(model: str) -> None:
    """ImageNet weights asked for by name must be here (torch hub cache) or downloadable, or the run would
    fail a few seconds after it started."""
    from bincls.models.weights import missing_weights_help, weights_at_hand

    if weights_at_hand(model) is None:
        raise BinclsError(
            f"There are no ImageNet weights for {model} here, and torchvision's server cannot be reached. "
            f"{missing_weights_help(model)} Or train with a weights file as it is (--weights FILE), or from "
            "scratch (--weights none)."
        )
