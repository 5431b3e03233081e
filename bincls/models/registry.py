"""The model registry: every architecture reachable by name, with its input size and normalization."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from bincls.errors import BinclsError
from bincls.models.backbones import tv_builder
from bincls.models.config import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    IMG_SIZE_RANGE,
    SCRATCH_MEAN,
    SCRATCH_STD,
    ModelConfig,
)
from bincls.models.scratch import (
    build_seed_cnn,
    build_seed_cnn_dropout,
    build_seed_lenet,
    build_small_cnn,
)
from bincls.models.weights import load_backbone_weights

MIN_IMG_SIZE = IMG_SIZE_RANGE[0]


@dataclass(frozen=True)
class ModelEntry:
    """One registry row: how to build a model and what it expects."""

    name: str
    description: str  # one short line, shown as a UI hint
    pretrainable: bool
    default_img_size: int
    fixed_input: bool  # True when Flatten + Dense ties the model to cfg.img_size
    builder: Callable[[ModelConfig], nn.Module]
    default_dropout: float = 0.0


def _registry() -> dict[str, ModelEntry]:
    scratch = [
        ModelEntry("small-cnn", "Small modern CNN (BatchNorm, global pooling), from scratch; fast on CPU",
                   False, 128, False, build_small_cnn, default_dropout=0.2),
        ModelEntry("seed-cnn", "Keras-tutorial CNN (3 conv + dense 256), from scratch; fixed input size",
                   False, 256, True, build_seed_cnn),
        ModelEntry("seed-cnn-dropout", "3 strided convs + dense 10 + dropout, from scratch; fixed input size",
                   False, 128, True, build_seed_cnn_dropout, default_dropout=0.5),
        ModelEntry("seed-lenet", "LeNet-5 style (2 conv + 3 dense), from scratch; fixed input size",
                   False, 32, True, build_seed_lenet),
    ]  # fmt: skip
    backbones = [
        ("resnet18", "ResNet-18 (11 M params), pretrained on ImageNet or from scratch", 0.0),
        ("resnet50", "ResNet-50 (24 M params, slow on CPU), pretrained on ImageNet or from scratch", 0.0),
        ("mobilenet_v2", "MobileNetV2 (2.2 M params), pretrained on ImageNet or from scratch", 0.2),
        ("mobilenet_v3_small", "MobileNetV3-Small (1.5 M params), pretrained on ImageNet or scratch", 0.2),
        ("efficientnet_b0", "EfficientNet-B0 (4 M params), pretrained on ImageNet or from scratch", 0.2),
    ]
    tv = [ModelEntry(n, d, True, 224, False, tv_builder(n), default_dropout=p) for n, d, p in backbones]
    return {e.name: e for e in scratch + tv}


MODELS: dict[str, ModelEntry] = _registry()


def list_models() -> list[ModelEntry]:
    return list(MODELS.values())


def _entry(name: str) -> ModelEntry:
    if name not in MODELS:
        raise BinclsError(f"Unknown model {name!r}. Choose one of: {', '.join(MODELS)}.")
    return MODELS[name]


def _validate(cfg: ModelConfig) -> ModelEntry:
    entry = _entry(cfg.name)
    if not isinstance(cfg.img_size, int) or cfg.img_size < MIN_IMG_SIZE:
        raise BinclsError(f"Image size {cfg.img_size!r} for {cfg.name}: use an integer >= {MIN_IMG_SIZE}.")
    if cfg.weights != "none" and not entry.pretrainable:
        pretrainable = ", ".join(e.name for e in MODELS.values() if e.pretrainable)
        raise BinclsError(
            f"{cfg.name} is trained from scratch and takes no pretrained weights (got {cfg.weights!r}). "
            f"Use weights 'none', or pick a pretrainable model: {pretrainable}."
        )
    if cfg.freeze_backbone and cfg.weights == "none":
        raise BinclsError(
            f"freeze_backbone needs pretrained weights, but {cfg.name} has weights 'none': a frozen random "
            f"backbone cannot learn. Use weights 'imagenet' or a local file, or turn freeze_backbone off."
        )
    if not 0.0 <= cfg.dropout < 1.0:
        raise BinclsError(f"Dropout {cfg.dropout} for {cfg.name} must be in [0, 1).")
    if len(cfg.mean) != 3 or len(cfg.std) != 3 or min(cfg.std) <= 0:
        raise BinclsError(f"mean and std for {cfg.name} need 3 values each, std > 0: {cfg.mean}, {cfg.std}.")
    return entry


def model_config(
    name: str,
    img_size: int | None = None,
    weights: str | os.PathLike = "none",
    freeze_backbone: bool = False,
    *,
    mean: tuple[float, float, float] | None = None,
    std: tuple[float, float, float] | None = None,
    dropout: float | None = None,
) -> ModelConfig:
    """A checked config, with the registry's defaults for everything not given."""
    entry = _entry(name)
    imagenet_stats = entry.pretrainable  # torchvision backbones expect ImageNet normalization
    cfg = ModelConfig(
        name=name,
        img_size=entry.default_img_size if img_size is None else img_size,
        mean=mean or (IMAGENET_MEAN if imagenet_stats else SCRATCH_MEAN),
        std=std or (IMAGENET_STD if imagenet_stats else SCRATCH_STD),
        weights=str(weights),
        freeze_backbone=freeze_backbone,
        dropout=entry.default_dropout if dropout is None else dropout,
    )
    _validate(cfg)
    return cfg


def build_model(cfg: ModelConfig, load_weights: bool = True) -> nn.Module:
    """The model for cfg, with one output logit ([B, 1]).

    load_weights=False builds the architecture only, for a checkpoint's state_dict to be loaded after;
    the pretrained-model behaviour (frozen backbone, BatchNorm kept in eval mode) is set up either way.
    """
    entry = _validate(cfg)
    model = entry.builder(cfg)
    if load_weights and cfg.weights != "none":
        load_backbone_weights(model, cfg)
    return model


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]
