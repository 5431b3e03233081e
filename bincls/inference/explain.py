"""Grad-CAM heat maps (captum) for any registered model: where the evidence for the predicted class lies.

The layer is found generically: the last module whose output is still a spatial map [B, C, H, W]
before the network pools or flattens it, found by running one dummy image with forward hooks.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from captum.attr import LayerAttribution, LayerGradCam
from PIL import Image
from torch import nn

from bincls.errors import BinclsError

_GLOBAL_POOLS = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)


def find_cam_layer(model: nn.Module, img_size: int) -> tuple[str, nn.Module]:
    """(name, module) of the last module that outputs a spatial feature map.

    Hooks record every module in the order it finishes, so a block that holds the last conv counts
    after the conv itself: its output is the one the head reads, and no later module changes it in
    place (a conv's own output may still be overwritten by the ReLU(inplace=True) after it). Global
    pooling is left out, whether a module or a layer that shrinks its input to 1 x 1: no "where" is left.
    """
    finished: list[tuple[str, nn.Module, torch.Tensor, torch.Tensor]] = []
    hooks = []
    for name, module in model.named_modules():
        if module is model:
            continue

        def hook(mod, inputs, output, name=name):
            x = inputs[0] if inputs and isinstance(inputs[0], torch.Tensor) else None
            if isinstance(output, torch.Tensor):
                finished.append((name, mod, x, output))

        hooks.append(module.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        with torch.no_grad():
            model(torch.zeros(1, 3, img_size, img_size, device=device))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    candidates = []
    for name, mod, x, out in finished:
        if out.dim() != 4 or isinstance(mod, _GLOBAL_POOLS):
            continue
        point = (1, 1)
        if out.shape[-2:] == point and x is not None and x.dim() == 4 and x.shape[-2:] != point:
            continue  # a global pool written another way
        candidates.append((name, mod, out))
    if not candidates:
        raise BinclsError(f"{type(model).__name__} has no layer with a spatial output: Grad-CAM needs a CNN.")
    name, mod, _ = candidates[-1]
    return name, mod


class _SignedLogit(nn.Module):
    """The model's logit times +1 (evidence for class 1) or -1 (evidence for class 0), per image."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
        return self.model(x).view(-1, 1) * sign.view(-1, 1)


class GradCam:
    """Grad-CAM maps for a model, upsampled to the input, ReLU'd and scaled to [0, 1] per image."""

    def __init__(self, model: nn.Module, img_size: int):
        self.model = model
        self.img_size = img_size
        self.layer_name, self.layer = find_cam_layer(model, img_size)
        self._cam = LayerGradCam(_SignedLogit(model), self.layer)

    def __call__(self, batch: torch.Tensor, labels: torch.Tensor | list[int]) -> np.ndarray:
        """[B, H, W] float32 in [0, 1] for a batch of preprocessed images and the class to explain."""
        device = next(self.model.parameters()).device
        x = batch.to(device).detach().clone().requires_grad_(True)
        sign = torch.as_tensor(labels, dtype=torch.float32, device=device).view(-1) * 2 - 1
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.enable_grad():
                attr = self._cam.attribute(x, target=0, additional_forward_args=(sign,),
                                           relu_attributions=True)
        finally:
            self.model.train(was_training)
        up = LayerAttribution.interpolate(attr.detach(), tuple(x.shape[-2:]), interpolate_mode="bilinear")
        up = up.float().clamp_min(0).view(x.shape[0], *x.shape[-2:])
        top = up.flatten(1).amax(dim=1).view(-1, 1, 1)
        safe = torch.where(top > 0, top, torch.ones_like(top))
        maps = torch.where(top > 0, up / safe, torch.zeros_like(up))
        return torch.nan_to_num(maps, nan=0.0).clamp(0, 1).cpu().numpy().astype(np.float32)


@functools.lru_cache(maxsize=4)
def _colormap(name: str = "jet") -> np.ndarray:
    """A 256 x 3 uint8 lookup table (matplotlib comes with captum)."""
    from matplotlib import colormaps

    return (colormaps[name](np.linspace(0, 1, 256))[:, :3] * 255).astype(np.uint8)


def colorize(heat: np.ndarray, cmap: str = "jet") -> Image.Image:
    """A [H, W] map in [0, 1] as an RGB image."""
    idx = np.clip(np.nan_to_num(heat) * 255 + 0.5, 0, 255).astype(np.uint8)
    return Image.fromarray(_colormap(cmap)[idx], "RGB")


def overlay(image: Image.Image, heat: np.ndarray, alpha: float = 0.45, cmap: str = "jet") -> Image.Image:
    """The heat map, stretched to the image (the model saw it squashed to a square too), blended on it.

    Where the map is weak, the photo shows through more, so the hot regions stand out.
    """
    image = image.convert("RGB")
    hm = Image.fromarray(np.clip(heat * 255, 0, 255).astype(np.uint8), "L").resize(image.size, Image.BILINEAR)
    strength = np.asarray(hm, dtype=np.float32)[..., None] / 255.0
    colour = np.asarray(colorize(np.asarray(hm, dtype=np.float32) / 255.0, cmap), dtype=np.float32)
    base = np.asarray(image, dtype=np.float32)
    weight = alpha * (0.35 + 0.65 * strength)
    return Image.fromarray(np.clip(base * (1 - weight) + colour * weight, 0, 255).astype(np.uint8), "RGB")
