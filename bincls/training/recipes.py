"""Presets: a complete, measured recipe for every setting a user leaves unset.

`resolve(cfg)` turns the settings a user gave (anything left None is "the preset's") into a complete
config, and says which preset it used and why. `auto` picks `fast` when pretrained weights are at
hand (torch hub cache, a local weights file, or downloadable) and `scratch` otherwise.
The numbers behind each recipe: bench/recipes.py.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from bincls.errors import BinclsError
from bincls.models.weights import BACKBONES, missing_weights_help, weights_at_hand
from bincls.training.config import TrainConfig

SCRATCH_MODEL = "small-cnn"

# What each preset gives to the settings left unset (None). Measured in bench/recipes.py.
RECIPES: dict[str, dict] = {
    # A fixed feature extractor: features computed once, only the head trains (seconds).
    # Augmentation off: cached features of augmented views measured no better on hymenoptera.
    "fast": {
        "freeze_backbone": True, "head_epochs": 0, "epochs": 40, "augment": False, "optimizer": "adamw",
        "lr": 1e-3, "weight_decay": 0.05, "schedule": "cosine", "warmup_epochs": 0.0, "patience": 10,
        "label_smoothing": 0.0, "layer_decay": 1.0, "time_budget": 0.0,
    },
    # The staged fine-tune: the head on the frozen backbone first (cached features), then everything
    # with layer-wise decayed learning rates, warm-up and a cosine decay, within the time budget.
    "best": {
        "freeze_backbone": False, "head_epochs": 5, "epochs": 20, "augment": True, "optimizer": "adamw",
        "lr": 1e-3, "weight_decay": 0.05, "schedule": "cosine", "warmup_epochs": 1.0, "patience": 0,
        "label_smoothing": 0.1, "layer_decay": 0.75, "time_budget": 420.0,
    },
    # From scratch on a CPU: a small CNN at a low resolution, strong augmentation, one-cycle schedule,
    # as many epochs as the time budget holds.
    "scratch": {
        "model": SCRATCH_MODEL, "freeze_backbone": False, "head_epochs": 0, "img_size": 96, "epochs": 300,
        "augment": True, "optimizer": "adamw", "lr": 3e-3, "weight_decay": 0.05, "schedule": "onecycle",
        "warmup_epochs": 0.0, "patience": 0, "label_smoothing": 0.1, "layer_decay": 1.0,
        "time_budget": 300.0,
    },
}  # fmt: skip


@dataclass(frozen=True)
class Resolved:
    config: TrainConfig  # every setting filled in; `preset` names the recipe used
    why: str  # why that preset (and model), for the console and the page

    @property
    def note(self) -> str:
        return f"preset {self.config.preset}: {self.why}"


def _pretrainable(model: str) -> bool:
    from bincls.models import MODELS

    entry = MODELS.get(model)
    if entry is None:
        raise BinclsError(f"Unknown model {model!r}. Choose one of: {', '.join(MODELS)}.")
    return entry.pretrainable


def _pretrained_choice(cfg: TrainConfig) -> tuple[str, str, str] | None:
    """(model, weights, why) for a pretrained preset, or None when no pretrained weights are at hand."""
    if cfg.weights not in ("auto", "imagenet", "none"):  # a local weights file
        from bincls.models.weights import guess_architecture

        model = cfg.model or guess_architecture(cfg.weights)
        if model is None:
            raise BinclsError(
                f"Weights file {cfg.weights} fits none of the pretrainable models "
                f"({', '.join(BACKBONES)}); give the model it belongs to with --model."
            )
        return model, cfg.weights, f"the weights file {Path(cfg.weights).name} holds {model} weights"
    if cfg.weights == "none" or (cfg.model and not _pretrainable(cfg.model)):
        return None
    candidates = [cfg.model] if cfg.model else list(BACKBONES)
    for model in candidates:
        how = weights_at_hand(model)
        if how is not None:
            return model, "imagenet", f"{model}: {how}"
        if cfg.weights == "imagenet":  # asked for: the loader's message says how to get them
            return model, "imagenet", f"{model} with ImageNet weights, as asked"
    return None


def resolve(cfg: TrainConfig) -> Resolved:
    """The complete config for `cfg`: the preset's values for every setting left unset."""
    if cfg.init_from:
        from bincls.training.continuation import continued_config

        cfg = continued_config(cfg)
    choice = None if cfg.preset == "scratch" else _pretrained_choice(cfg)
    if cfg.preset in ("fast", "best") and choice is None:
        raise BinclsError(
            f"Preset {cfg.preset} fine-tunes pretrained weights, and there are none here for "
            f"{cfg.model or ' or '.join(BACKBONES)} (not in the torch hub cache, no network). "
            f"{missing_weights_help(cfg.model if cfg.model in BACKBONES else BACKBONES[0])} Or use preset "
            "scratch, or train with a weights file as it is: --weights FILE (the app: Weights, Local file)."
        )
    if choice is None:
        preset = "scratch"
        why = (
            "no pretrained weights here: training from scratch"
            if cfg.preset == "auto" and cfg.weights == "auto" and not cfg.model
            else "training from scratch, as asked"
        )
        values = {**RECIPES["scratch"], "weights": "none"}
        if cfg.model is not None:  # the user's own architecture: at its own input size
            values.pop("img_size")
    else:
        model, weights, why = choice
        preset = cfg.preset if cfg.preset != "auto" else ("best" if cfg.freeze_backbone is False else "fast")
        values = {**RECIPES[preset], "model": model, "weights": weights}
    if cfg.epochs is not None and cfg.time_budget is None:  # epochs asked for are trained, not planned
        values["time_budget"] = 0.0
    if cfg.optimizer is not None and cfg.lr is None:  # a recipe's rate is for its own optimizer
        from bincls.training.config import DEFAULT_LR

        values["lr"] = DEFAULT_LR[cfg.optimizer]
    given = {k: v for k, v in cfg.to_dict().items() if v is not None and k not in ("preset", "weights")}
    if cfg.weights != "auto":
        given["weights"] = cfg.weights
    merged = {**cfg.to_dict(), **values, **given, "preset": preset}
    if merged["img_size"] is None:
        from bincls.models import MODELS

        merged["img_size"] = MODELS[merged["model"]].default_img_size
    return Resolved(dataclasses.replace(cfg, **_settings_only(merged)), why)


def is_resolved(cfg: TrainConfig) -> bool:
    """True for a config a preset has completed (every recipe setting has a value)."""
    keys = set().union(*RECIPES.values())
    return cfg.preset != "auto" and cfg.model is not None and all(getattr(cfg, k) is not None for k in keys)


def _settings_only(values: dict) -> dict:
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    return {k: v for k, v in values.items() if k in names}
