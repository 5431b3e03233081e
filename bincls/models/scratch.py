"""Models trained from scratch: the seed tutorials' CNNs and a modern small CNN, each with one logit."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from bincls.models.config import ModelConfig


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


def build_seed_cnn(cfg: ModelConfig) -> nn.Module:
    # "valid" padding and stride 1, as in the Keras tutorial this reproduces.
    features = nn.Sequential(
        nn.Conv2d(3, 16, 3), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(32, 16, 3), nn.ReLU(inplace=True), nn.MaxPool2d(2),
    )  # fmt: skip
    return _flatten_net(features, cfg.img_size, [256], cfg.dropout)


def build_seed_cnn_dropout(cfg: ModelConfig) -> nn.Module:
    features = nn.Sequential(
        nn.Conv2d(3, 32, 3, stride=2), nn.ReLU(inplace=True),
        nn.Conv2d(32, 64, 3, stride=2), nn.ReLU(inplace=True),
        nn.Conv2d(64, 128, 3, stride=2), nn.ReLU(inplace=True),
    )  # fmt: skip
    return _flatten_net(features, cfg.img_size, [10], cfg.dropout)


def build_seed_lenet(cfg: ModelConfig) -> nn.Module:
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
        return self.forward_head(self.forward_features(x))

    # As in the backbones: the pooled features are what out-of-distribution detection looks at.
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.stages(self.stem(x))).flatten(1)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(features))


def build_small_cnn(cfg: ModelConfig) -> nn.Module:
    return SmallCNN(dropout=cfg.dropout)
