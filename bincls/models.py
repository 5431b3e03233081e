"""The model registry: seed CNNs, a modern small CNN and torchvision backbones, each with one output logit."""

from __future__ import annotations

import os
import pickle
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from urllib.error import URLError

import torch
import torchvision
from torch import nn

from bincls.errors import BinclsError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Scratch models see inputs scaled to [-1, 1]: no dataset statistics are needed to train them.
SCRATCH_MEAN = (0.5, 0.5, 0.5)
SCRATCH_STD = (0.5, 0.5, 0.5)
# Every registered model still gives a feature map at this size (the seed CNNs shrink it the most).
MIN_IMG_SIZE = 32

_BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model; saved in checkpoints as `dataclasses.asdict(cfg)`."""

    name: str
    img_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    weights: str = "none"  # "none", "imagenet", or a path to a local state_dict file
    freeze_backbone: bool = False
    dropout: float = 0.0

    def __post_init__(self) -> None:
        # A config read back from JSON has lists and maybe a Path; keep it hashable and comparable.
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        object.__setattr__(self, "weights", str(self.weights))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelConfig:
        """Rebuild a config saved with `dataclasses.asdict`, e.g. from a checkpoint."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise BinclsError(f"Model config has unknown settings {unknown}; expected only {sorted(names)}.")
        try:
            return cls(**d)
        except (TypeError, ValueError) as e:
            raise BinclsError(f"Model config {dict(d)} is incomplete or malformed: {e}") from e


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


# ---------------------------------------------------------------------------------------------------
# Scratch models


def _mlp_head(in_features: int, hidden: list[int], dropout: float) -> nn.Sequential:
    """Dense layers with ReLU, optional dropout, then the single output logit."""
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(in_features, width), nn.ReLU(inplace=True)]
        in_features = width
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(in_features, 1))
    return nn.Sequential(*layers)


def _flatten_net(features: nn.Sequential, img_size: int, hidden: list[int], dropout: float) -> nn.Sequential:
    """Conv features, flatten, dense head: the Keras-tutorial shape, whose input size is fixed."""
    # Measuring the feature map on a dummy image avoids re-deriving conv arithmetic by hand.
    with torch.no_grad():
        flat = features(torch.zeros(1, 3, img_size, img_size)).numel()
    return nn.Sequential(
        OrderedDict(features=features, flatten=nn.Flatten(), classifier=_mlp_head(flat, hidden, dropout))
    )


def _build_seed_cnn(cfg: ModelConfig) -> nn.Module:
    # "valid" padding and stride 1, as in the Keras tutorial this reproduces.
    features = nn.Sequential(
        nn.Conv2d(3, 16, 3), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(32, 16, 3), nn.ReLU(inplace=True), nn.MaxPool2d(2),
    )  # fmt: skip
    return _flatten_net(features, cfg.img_size, [256], cfg.dropout)


def _build_seed_cnn_dropout(cfg: ModelConfig) -> nn.Module:
    features = nn.Sequential(
        nn.Conv2d(3, 32, 3, stride=2), nn.ReLU(inplace=True),
        nn.Conv2d(32, 64, 3, stride=2), nn.ReLU(inplace=True),
        nn.Conv2d(64, 128, 3, stride=2), nn.ReLU(inplace=True),
    )  # fmt: skip
    return _flatten_net(features, cfg.img_size, [10], cfg.dropout)


def _build_seed_lenet(cfg: ModelConfig) -> nn.Module:
    features = nn.Sequential(
        nn.Conv2d(3, 6, 5), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(inplace=True), nn.MaxPool2d(2),
    )  # fmt: skip
    return _flatten_net(features, cfg.img_size, [120, 84], cfg.dropout)


def _conv_bn_relu(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    # No conv bias: the BatchNorm that follows has its own.
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class SmallCNN(nn.Module):
    """A modern small CNN from scratch: BatchNorm, stride-2 stages, global average pooling, any input size."""

    def __init__(self, widths: tuple[int, int, int, int] = (32, 64, 128, 256), dropout: float = 0.2):
        super().__init__()
        w = widths
        self.stem = _conv_bn_relu(3, w[0], stride=2)
        self.stages = nn.Sequential(
            _conv_bn_relu(w[0], w[0]),
            nn.Sequential(_conv_bn_relu(w[0], w[1], stride=2), _conv_bn_relu(w[1], w[1])),
            nn.Sequential(_conv_bn_relu(w[1], w[2], stride=2), _conv_bn_relu(w[2], w[2])),
            # The widest stage gets a single conv: a second one would double the parameter count.
            _conv_bn_relu(w[2], w[3], stride=2),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(widths[-1], 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.stages(self.stem(x))).flatten(1)
        return self.head(self.dropout(x))


def _build_small_cnn(cfg: ModelConfig) -> nn.Module:
    return SmallCNN(dropout=cfg.dropout)


# ---------------------------------------------------------------------------------------------------
# torchvision backbones

# Where each torchvision model keeps its ImageNet classifier: the final Linear and the Dropout before it.
# Both are taken out of the backbone; the wrapper re-adds the dropout (same place, same default p).
_TV_CLASSIFIERS: dict[str, tuple[str, str | None]] = {
    "resnet18": ("fc", None),
    "resnet50": ("fc", None),
    "mobilenet_v2": ("classifier.1", "classifier.0"),
    "mobilenet_v3_small": ("classifier.3", "classifier.2"),
    "efficientnet_b0": ("classifier.1", "classifier.0"),
}


class BackboneClassifier(nn.Module):
    """A torchvision backbone (ImageNet classifier removed), dropout, and a new one-logit head."""

    def __init__(self, backbone: nn.Module, in_features: int, dropout: float, pretrained: bool):
        super().__init__()
        self.backbone = backbone
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(in_features, 1)
        self.pretrained = pretrained

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    # The split lets training with a frozen backbone compute features once and train only the head.
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(features))

    def train(self, mode: bool = True) -> BackboneClassifier:
        super().train(mode)
        if mode and self.pretrained:
            # A frozen backbone is a fixed feature extractor (as in Keras' transfer-learning guide), and
            # the BatchNorm statistics of pretrained weights must not drift on a small dataset (the shared
            # mobilenet_v2 file even has BN folded into the convs), so both stay in eval mode.
            frozen = not any(p.requires_grad for p in self.backbone.parameters())
            for m in self.backbone.modules():
                if frozen or isinstance(m, _BATCHNORMS):
                    m.training = False
        return self

    def freeze_backbone(self) -> None:
        self.backbone.requires_grad_(False)
        self.train(self.training)  # re-apply the eval-mode rule above


def _set_submodule(root: nn.Module, path: str, new: nn.Module) -> None:
    parent, _, attr = path.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, attr, new)


def _tv_builder(name: str) -> Callable[[ModelConfig], nn.Module]:
    def build(cfg: ModelConfig) -> nn.Module:
        backbone = torchvision.models.get_model(name, weights=None)
        fc_path, dropout_path = _TV_CLASSIFIERS[name]
        in_features = backbone.get_submodule(fc_path).in_features
        _set_submodule(backbone, fc_path, nn.Identity())
        if dropout_path:
            _set_submodule(backbone, dropout_path, nn.Identity())
        model = BackboneClassifier(backbone, in_features, cfg.dropout, pretrained=cfg.weights != "none")
        if cfg.freeze_backbone:
            model.freeze_backbone()
        return model

    return build


# ---------------------------------------------------------------------------------------------------
# Pretrained weights


def _imagenet_state_dict(name: str) -> dict[str, torch.Tensor]:
    """torchvision's ImageNet weights, from the torch hub cache or downloaded into it."""
    weights = torchvision.models.get_model_weights(name).DEFAULT
    try:
        return weights.get_state_dict(progress=True)
    except (URLError, OSError, RuntimeError) as e:
        target = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(weights.url))
        raise BinclsError(
            f"The ImageNet weights for {name} could not be downloaded or read ({e}). "
            f"On a machine with internet, download {weights.url} and put it at {target} "
            f"(replace the file if it is already there), or pass a local state_dict file with "
            f"`--weights /path/to/file.pth`."
        ) from e


def _local_state_dict(path: str) -> Mapping[str, Any]:
    """A state_dict file saved with torch.save, possibly wrapped in a checkpoint dict."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise BinclsError(
            f"Weights file {p} does not exist. Weights must be 'none', 'imagenet', or the path of a "
            f"state_dict file saved with torch.save(model.state_dict(), path)."
        )
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - on a corrupt file torch's unpickler raises almost anything
        # torch's unpickling message advises weights_only=False: unsafe for a file from elsewhere.
        reason = "not a plain file of tensors" if isinstance(e, pickle.UnpicklingError) else e
        raise BinclsError(
            f"Weights file {p} could not be read as PyTorch weights ({reason or type(e).__name__}). It must "
            f"be a state_dict saved with torch.save(model.state_dict(), path), not a whole pickled model."
        ) from e
    for key in ("state_dict", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise BinclsError(
            f"Weights file {p} holds a {type(obj).__name__}, not a state_dict (a dict of parameter names to "
            f"tensors). Save it with torch.save(model.state_dict(), path)."
        )
    return obj


def _backbone_keys(state: Mapping[str, Any], name: str) -> dict[str, torch.Tensor]:
    """Keys as the backbone names them: drop the ImageNet classifier and wrapper prefixes."""
    out = {}
    fc_prefix = _TV_CLASSIFIERS[name][0] + "."
    for key, value in state.items():
        key = key.removeprefix("module.")  # saved from DistributedDataParallel
        if key.startswith("head."):  # a bincls BackboneClassifier: its one-logit head is not reused
            continue
        key = key.removeprefix("backbone.")
        if not key.startswith(fc_prefix):
            out[key] = value
    return out


def _check_keys(state: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor], source: str) -> None:
    # BatchNorm step counters do not change the model; older files may lack them.
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}"
        for k in state
        if k in expected and state[k].shape != expected[k].shape
    ]
    problems = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
        if keys:
            problems.append(f"{len(keys)} {label} (e.g. {', '.join(keys[:3])})")
    if problems:
        raise BinclsError(
            f"{source} does not match the architecture: {'; '.join(problems)}. "
            f"Check that the file holds weights for this model."
        )


def load_backbone_weights(model: BackboneClassifier, cfg: ModelConfig) -> None:
    """Load cfg.weights ("imagenet" or a local file) into the backbone; the new head stays random."""
    if cfg.weights == "imagenet":
        raw, source = _imagenet_state_dict(cfg.name), f"The ImageNet weights for {cfg.name}"
    else:
        raw, source = _local_state_dict(cfg.weights), f"Weights file {cfg.weights} (for {cfg.name})"
    state = _backbone_keys(raw, cfg.name)
    _check_keys(state, model.backbone.state_dict(), source)
    model.backbone.load_state_dict(state, strict=False)  # strictness was checked above, counters aside


# ---------------------------------------------------------------------------------------------------
# Registry


def _registry() -> dict[str, ModelEntry]:
    scratch = [
        ModelEntry("small-cnn", "Small modern CNN (BatchNorm, global pooling), from scratch; fast on CPU",
                   False, 128, False, _build_small_cnn, default_dropout=0.2),
        ModelEntry("seed-cnn", "Keras-tutorial CNN (3 conv + dense 256), from scratch; fixed input size",
                   False, 256, True, _build_seed_cnn),
        ModelEntry("seed-cnn-dropout", "3 strided convs + dense 10 + dropout, from scratch; fixed input size",
                   False, 128, True, _build_seed_cnn_dropout, default_dropout=0.5),
        ModelEntry("seed-lenet", "LeNet-5 style (2 conv + 3 dense), from scratch; fixed input size",
                   False, 32, True, _build_seed_lenet),
    ]  # fmt: skip
    backbones = [
        ("resnet18", "ResNet-18 (11 M params), pretrained on ImageNet or from scratch", 0.0),
        ("resnet50", "ResNet-50 (24 M params, slow on CPU), pretrained on ImageNet or from scratch", 0.0),
        ("mobilenet_v2", "MobileNetV2 (2.2 M params), pretrained on ImageNet or from scratch", 0.2),
        ("mobilenet_v3_small", "MobileNetV3-Small (1.5 M params), pretrained on ImageNet or scratch", 0.2),
        ("efficientnet_b0", "EfficientNet-B0 (4 M params), pretrained on ImageNet or from scratch", 0.2),
    ]
    tv = [ModelEntry(n, d, True, 224, False, _tv_builder(n), default_dropout=p) for n, d, p in backbones]
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


# ---------------------------------------------------------------------------------------------------
# Summary


@dataclass(frozen=True)
class SummaryRow:
    name: str
    type: str
    output_shape: tuple[int, ...] | None  # without the batch dimension; None if not called in forward
    params: int
    trainable: bool


@dataclass(frozen=True)
class ModelSummary:
    rows: list[SummaryRow]
    total_params: int
    trainable_params: int
    size_mb: float  # parameters and buffers, i.e. roughly the checkpoint's size


def _summary_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    # Leaves, plus any container holding parameters of its own, so that the rows add up to the total.
    return [
        (name, m)
        for name, m in model.named_modules()
        if name and (not list(m.children()) or any(True for _ in m.parameters(recurse=False)))
    ]


def model_summary(model: nn.Module, img_size: int) -> ModelSummary:
    """Per-layer output shapes and parameter counts, like Keras' model.summary()."""
    modules = _summary_modules(model)
    shapes: dict[str, tuple[int, ...]] = {}

    def hook_for(name: str) -> Callable:
        def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
            if name not in shapes and isinstance(output, torch.Tensor):
                shapes[name] = tuple(output.shape[1:])

        return hook

    handles = [m.register_forward_hook(hook_for(name)) for name, m in modules]
    modes = {m: m.training for m in model.modules()}
    device = next(model.parameters()).device
    try:
        model.eval()  # a batch of one breaks BatchNorm in training mode
        with torch.no_grad():
            model(torch.zeros(1, 3, img_size, img_size, device=device))
    finally:
        for h in handles:
            h.remove()
        for m, training in modes.items():
            m.training = training

    rows = []
    for name, m in modules:
        own = list(m.parameters(recurse=False))
        rows.append(
            SummaryRow(
                name=name,
                type=type(m).__name__,
                output_shape=shapes.get(name),
                params=sum(p.numel() for p in own),
                trainable=bool(own) and all(p.requires_grad for p in own),
            )
        )
    params = list(model.parameters())
    size = sum(t.numel() * t.element_size() for t in [*params, *model.buffers()])
    return ModelSummary(
        rows=rows,
        total_params=sum(p.numel() for p in params),
        trainable_params=sum(p.numel() for p in params if p.requires_grad),
        size_mb=size / 2**20,
    )


def format_summary(summary: ModelSummary) -> str:
    """A text table of the summary, Keras style."""
    table = [("Layer (type)", "Output shape", "Params", "Trainable")]
    for r in summary.rows:
        shape = "-" if r.output_shape is None else str([None, *r.output_shape]).replace("None", "B")
        trainable = "yes" if r.trainable else ("no" if r.params else "")
        table.append((f"{r.name} ({r.type})", shape, f"{r.params:,}", trainable))
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    lines = [f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:>{widths[2]}}  {d}".rstrip() for a, b, c, d in table]
    rule = "-" * len(lines[0])
    total, trainable = summary.total_params, summary.trainable_params
    return "\n".join(
        [lines[0], rule, *lines[1:], rule,
         f"Total params: {total:,}", f"Trainable params: {trainable:,}",
         f"Non-trainable params: {total - trainable:,}", f"Size: {summary.size_mb:.2f} MB"]
    )  # fmt: skip
