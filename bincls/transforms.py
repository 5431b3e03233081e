"""Train and eval presets on torchvision transforms v2, normalization stats, and the inverse."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torchvision.transforms import v2

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
