"""torchvision backbones with their ImageNet classifier replaced by dropout and a one-logit head."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torchvision
from torch import nn

from bincls.models.config import ModelConfig

_BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)

# Where each torchvision model keeps its ImageNet classifier: the final Linear and the Dropout before it.
# Both are taken out of the backbone; the wrapper re-adds the dropout (same place, same default p).
TV_CLASSIFIERS: dict[str, tuple[str, str | None]] = {
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


def tv_builder(name: str) -> Callable[[ModelConfig], nn.Module]:
    def build(cfg: ModelConfig) -> nn.Module:
        backbone = torchvision.models.get_model(name, weights=None)
        fc_path, dropout_path = TV_CLASSIFIERS[name]
        in_features = backbone.get_submodule(fc_path).in_features
        _set_submodule(backbone, fc_path, nn.Identity())
        if dropout_path:
            _set_submodule(backbone, dropout_path, nn.Identity())
        model = BackboneClassifier(backbone, in_features, cfg.dropout, pretrained=cfg.weights != "none")
        if cfg.freeze_backbone:
            model.freeze_backbone()
        return model

    return build
