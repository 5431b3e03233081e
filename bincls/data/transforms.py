"""Train and eval presets on torchvision transforms v2, normalization stats, and the inverse."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocess:
    """What a model needs of its input; travels with the model into the checkpoint."""

    img_size: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD


@dataclass(frozen=True)
class Augment:
    """Random train-time changes. All off gives the eval transform plus nothing."""

    hflip: bool = True
    vflip: bool = False
    rotation: float = 10.0  # degrees, either way
    scale: tuple[float, float] = (0.8, 1.0)  # area share kept by the random resized crop
    color_jitter: float = 0.1  # brightness/contrast/saturation strength

    @classmethod
    def none(cls) -> Augment:
        return cls(hflip=False, vflip=False, rotation=0.0, scale=(1.0, 1.0), color_jitter=0.0)

    @property
    def enabled(self) -> bool:
        return self != Augment.none()


def _finish(pre: Preprocess) -> list:
    return [v2.ToDtype(torch.float32, scale=True), v2.Normalize(pre.mean, pre.std)]


def build_eval_transform(pre: Preprocess) -> v2.Compose:
    """PIL RGB image -> normalized float tensor [3, S, S]; the whole image, squashed to a square.

    Squashing (not centre-cropping) keeps what is at the edges of a photo, which matters for
    small objects, and it is what the seed tutorials do.
    """
    return v2.Compose([v2.ToImage(), v2.Resize((pre.img_size, pre.img_size), antialias=True), *_finish(pre)])


def eval_tensor(pixels: np.ndarray, pre: Preprocess) -> torch.Tensor:
    """uint8 RGB [H, W, 3] -> what `build_eval_transform` makes of the same image, bit for bit.

    For serving, one image at a time: the same torchvision kernels called directly (v2's per-call
    dispatch cost 0.4 ms an image), on the channels-last pixels as decoded, where torch's uint8 resize
    is twice as fast as on the planes `ToImage` makes and gives the same bytes (1,210 images and sizes).
    """
    owned = pixels if pixels.flags.writeable else pixels.copy()  # torch warns about read-only arrays
    chw = torch.from_numpy(owned).permute(2, 0, 1)
    resized = F.resize(chw, [pre.img_size, pre.img_size], antialias=True)
    return F.normalize(F.to_dtype(resized, torch.float32, scale=True), list(pre.mean), list(pre.std))


def build_train_transform(pre: Preprocess, aug: Augment | None = None) -> v2.Compose:
    """The eval transform with random augmentation in front of normalization."""
    aug = aug if aug is not None else Augment()
    size = (pre.img_size, pre.img_size)
    steps: list = [v2.ToImage()]
    if aug.scale[0] < 1.0:
        steps.append(v2.RandomResizedCrop(size, scale=aug.scale, ratio=(3 / 4, 4 / 3), antialias=True))
    else:
        steps.append(v2.Resize(size, antialias=True))
    if aug.hflip:
        steps.append(v2.RandomHorizontalFlip())
    if aug.vflip:
        steps.append(v2.RandomVerticalFlip())
    if aug.rotation > 0:
        steps.append(v2.RandomRotation(aug.rotation))
    if aug.color_jitter > 0:
        j = aug.color_jitter
        steps.append(v2.ColorJitter(brightness=j, contrast=j, saturation=j))
    return v2.Compose(steps + _finish(pre))


def denormalize(x: torch.Tensor, pre: Preprocess) -> torch.Tensor:
    """Normalized tensor [..., 3, H, W] back to displayable values in 0..1."""
    mean = torch.tensor(pre.mean, dtype=x.dtype, device=x.device).view(3, 1, 1)
    std = torch.tensor(pre.std, dtype=x.dtype, device=x.device).view(3, 1, 1)
    return (x * std + mean).clamp(0, 1)


class BatchTransform:
    """uint8 batches [B, 3, M, M] -> normalized float [B, 3, S, S], on whatever device they are on.

    With augmentation, each image gets its own random crop (area share and aspect ratio), flip,
    rotation and colour jitter, all in one `affine_grid`/`grid_sample` per batch instead of per image
    in PIL. Without it, and for evaluation, it only converts and normalizes (the images are already
    stored at the model's size with the eval transform's resize).
    """

    def __init__(self, pre: Preprocess, aug: Augment | None = None, generator: torch.Generator | None = None):
        self.pre = pre
        self.aug = aug if aug is not None and aug.enabled else None
        self.generator = generator

    def _rand(self, n: int, lo: float, hi: float, device) -> torch.Tensor:
        r = torch.rand(n, generator=self.generator).to(device)
        return lo + (hi - lo) * r

    def _affine(self, device, pixel_scale: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(bias, scale) so that normalized = bias + x * scale, for x in 0..1 / pixel_scale."""
        mean = torch.tensor(self.pre.mean, device=device).view(1, 3, 1, 1)
        std = torch.tensor(self.pre.std, device=device).view(1, 3, 1, 1)
        return -mean / std, 1.0 / (std * pixel_scale)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        size = self.pre.img_size
        if self.aug is None and x.shape[-2:] == (size, size):
            # The common case (eval, or training without augmentation): one fused pass from uint8
            # to normalized float, keeping the batch's memory format (channels_last stays so).
            bias, scale = self._affine(x.device, 255.0)
            return torch.addcmul(bias, x.float(), scale)
        x = x.float().div_(255.0)
        if self.aug is not None:
            x = self._geometry(x, size)
            x = self._colour(x)
        else:
            x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True)
        bias, scale = self._affine(x.device, 1.0)
        return torch.addcmul(bias, x, scale)

    def _geometry(self, x: torch.Tensor, size: int) -> torch.Tensor:
        b, dev, a = x.shape[0], x.device, self.aug
        area = self._rand(b, a.scale[0], a.scale[1], dev)
        log_ratio = (
            self._rand(b, math.log(3 / 4), math.log(4 / 3), dev)
            if a.scale[0] < 1
            else torch.zeros(b, device=dev)
        )
        ratio = torch.exp(log_ratio)
        sx = torch.sqrt(area * ratio).clamp(max=1.0)  # crop width as a share of the image
        sy = torch.sqrt(area / ratio).clamp(max=1.0)
        tx = (self._rand(b, -1, 1, dev)) * (1 - sx)  # the crop stays inside the image
        ty = (self._rand(b, -1, 1, dev)) * (1 - sy)
        angle = self._rand(b, -a.rotation, a.rotation, dev) * (math.pi / 180)
        flip = torch.ones(b, device=dev)
        if a.hflip:
            flip = torch.where(torch.rand(b, generator=self.generator).to(dev) < 0.5, -flip, flip)
        vflip = torch.ones(b, device=dev)
        if a.vflip:
            vflip = torch.where(torch.rand(b, generator=self.generator).to(dev) < 0.5, -vflip, vflip)
        cos, sin = torch.cos(angle), torch.sin(angle)
        theta = torch.stack(
            [
                torch.stack([sx * cos * flip, -sy * sin * vflip, tx], dim=1),
                torch.stack([sx * sin * flip, sy * cos * vflip, ty], dim=1),
            ],
            dim=1,
        )
        grid = torch.nn.functional.affine_grid(theta, [b, 3, size, size], align_corners=False)
        return torch.nn.functional.grid_sample(
            x, grid, mode="bilinear", padding_mode="reflection", align_corners=False
        )

    def _colour(self, x: torch.Tensor) -> torch.Tensor:
        j = self.aug.color_jitter
        if j <= 0:
            return x
        b, dev = x.shape[0], x.device
        shape = (b, 1, 1, 1)
        weights = torch.tensor([0.299, 0.587, 0.114], device=dev).view(1, 3, 1, 1)
        x = x * self._rand(b, 1 - j, 1 + j, dev).view(shape)  # brightness
        grey_mean = (x * weights).sum(1, keepdim=True).mean((2, 3), keepdim=True)
        x = (x - grey_mean) * self._rand(b, 1 - j, 1 + j, dev).view(shape) + grey_mean  # contrast
        grey = (x * weights).sum(1, keepdim=True)
        x = (x - grey) * self._rand(b, 1 - j, 1 + j, dev).view(shape) + grey  # saturation
        return x.clamp_(0.0, 1.0)


def train_margin(pre: Preprocess, aug: Augment) -> int:
    """Side at which training images are stored: a margin above the model's size leaves room for crops."""
    return int(round(pre.img_size * 1.15)) if aug.enabled else pre.img_size
