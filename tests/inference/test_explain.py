"""Grad-CAM heat maps: the right layer and a sane map for every registered model; maps that point right."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from bincls.inference.explain import GradCam, colorize, find_cam_layer, overlay
from bincls.models import MODELS, build_model, model_config

# Small inputs keep the test fast; every model still has a spatial map there (MIN_IMG_SIZE is 32).
SIZE = {"seed-lenet": 32}
EXPECTED_LAYER = {
    "small-cnn": "stages",
    "seed-cnn": "features",
    "resnet18": "backbone.layer4",
    "mobilenet_v2": "backbone.features",
    "efficientnet_b0": "backbone.features",
}


@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_gets_a_heat_map(name):
    size = SIZE.get(name, 64)
    torch.manual_seed(0)
    model = build_model(model_config(name, img_size=size)).eval()
    cam = GradCam(model, size)
    if name in EXPECTED_LAYER:
        assert cam.layer_name == EXPECTED_LAYER[name]
    assert not isinstance(cam.layer, (nn.AdaptiveAvgPool2d, nn.Flatten, nn.Linear))
    x = torch.randn(2, 3, size, size)
    maps = cam(x, [1, 0])
    assert maps.shape == (2, size, size) and maps.dtype == np.float32
    assert np.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1
    assert not any(p.grad is not None for p in model.parameters()), "the model's own gradients stay untouched"
    assert not model.training


def test_layer_search_skips_global_pooling():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(4, 1))
    name, layer = find_cam_layer(model, 16)
    assert name == "1" and isinstance(layer, nn.ReLU)
    with pytest.raises(Exception, match="spatial"):
        find_cam_layer(nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 1)), 8)


class _Brightness(nn.Module):
    """logit = mean brightness: evidence for class 1 is wherever the image is bright."""

    def __init__(self):
        super().__init__()
        self.features = nn.Conv2d(3, 1, 1, bias=False)
        nn.init.constant_(self.features.weight, 1.0)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(1, 1)
        nn.init.constant_(self.head.weight, 1.0)
        nn.init.constant_(self.head.bias, 0.0)

    def forward(self, x):
        return self.head(self.pool(self.features(x)).flatten(1))


def test_the_map_points_at_the_evidence_for_the_explained_class():
    x = torch.zeros(1, 3, 32, 32)
    x[..., :16, :16] = 1.0  # a bright top-left quadrant
    cam = GradCam(_Brightness().eval(), 32)
    for_one = cam(x, [1])[0]
    assert for_one[:16, :16].mean() > 0.9 and for_one[16:, 16:].max() < 0.1
    # Brightness is evidence against class 0: no region speaks for it, so its map is all zero.
    assert cam(x, [0])[0].max() == 0


def test_overlay_keeps_the_image_size_and_colours_the_hot_part():
    image = Image.new("RGB", (120, 80), (128, 128, 128))
    heat = np.zeros((32, 32), np.float32)
    heat[:, 16:] = 1.0
    out = overlay(image, heat)
    assert out.size == image.size and out.mode == "RGB"
    arr = np.asarray(out).astype(int)
    right, left = arr[:, 100], arr[:, 10]
    assert np.abs(right - 128).sum() > np.abs(left - 128).sum(), "the hot half is coloured more"
    assert colorize(np.linspace(0, 1, 64).reshape(8, 8)).size == (8, 8)
