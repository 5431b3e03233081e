"""Pretrained backbone features of image files, computed once and kept in the cache folder.

The audit and the labelling session look at images the way an ImageNet backbone sees them: pooled
features of the eval transform, the same decode as training. Each file's features are cached on their
own (bincls.audit.feature_cache): files unchanged since the last pass are not decoded again, and a
pile that grows by one file costs one file. Decoding goes a chunk at a time: memory stays flat.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from bincls.audit.feature_cache import features_for
from bincls.compute import plan_inference, resolve_device
from bincls.data.decode_cache import resize_transform
from bincls.data.images import load_rgb
from bincls.data.transforms import BatchTransform, Preprocess
from bincls.errors import BinclsError
from bincls.models import build_model, model_config

Progress = Callable[[int, int], None]


def feature_backbone() -> tuple[str, str]:
    """(model, weights) of the first backbone whose ImageNet weights are at hand; BinclsError if none."""
    from bincls.models.weights import BACKBONES, missing_weights_help, weights_at_hand

    for name in BACKBONES:
        if weights_at_hand(name) is not None:
            return name, "imagenet"
    raise BinclsError(
        "The label audit looks at the images with a pretrained network, and there are no pretrained "
        f"weights here (none of {', '.join(BACKBONES)} is in the torch hub cache, and there is no network). "
        + missing_weights_help()
    )


def backbone_extractor(model: str, weights: str | None) -> str:
    """The name features of this backbone are cached under."""
    return f"{model}:{weights or 'imagenet'}"


def _decoded(paths: list[str], side: int) -> Iterator[tuple[int, torch.Tensor | None]]:
    """Each file decoded and resized as the eval transform starts (uint8 [3, side, side]), in parallel;
    None for a file that cannot be read now (it changed since it was checked)."""
    resize = resize_transform(side)

    def one(path: str) -> torch.Tensor | None:
        try:
            return resize(load_rgb(path, max_side=side))
        except (BinclsError, OSError, MemoryError):
            return None

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:  # Pillow decodes outside the GIL
        yield from enumerate(pool.map(one, paths))


def backbone_compute(model: str, weights: str | None, batch_size: int = 64):
    """A `feature_cache.Compute` for the pooled features of a pretrained backbone (built on first use)."""
    state: dict = {}

    @torch.no_grad()
    def compute(paths: list[str]) -> Iterator[tuple[int, np.ndarray | None]]:
        if not state:
            mcfg = model_config(model, weights=weights or "imagenet", freeze_backbone=True)
            device = resolve_device("auto")
            plan = plan_inference(device, model)
            fmt = torch.channels_last if plan.channels_last else torch.contiguous_format
            tf = BatchTransform(Preprocess(mcfg.img_size, mcfg.mean, mcfg.std))
            state.update(net=build_model(mcfg).eval().to(device, memory_format=fmt), device=device, plan=plan,
                         side=mcfg.img_size, tf=tf)  # fmt: skip
        decoded = list(_decoded(paths, state["side"]))
        good = [(i, t) for i, t in decoded if t is not None]
        for i, _ in ((i, t) for i, t in decoded if t is None):
            yield i, None
        for start in range(0, len(good), batch_size):
            part = good[start : start + batch_size]
            x = state["tf"](torch.stack([t for _, t in part]).to(state["device"]))
            if state["plan"].channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with state["plan"].autocast():
                feats = state["net"].forward_features(x).float().cpu().numpy()
            yield from ((i, f) for (i, _), f in zip(part, feats))

    return compute


def image_features(paths: list[str], model: str | None = None, weights: str | None = None,
                   progress: Progress | None = None, batch_size: int = 64) -> np.ndarray:  # fmt: skip
    """[N, D] float32 pooled features of `paths`, cached per file (path, size, mtime): files already seen
    are not decoded again, however the list around them changed. `BinclsError` naming any file that
    cannot be read now."""
    if model is None:
        model, weights = feature_backbone()
    feats, failed = features_for(paths, backbone_extractor(model, weights), backbone_compute(model, weights,
                                 batch_size), progress)  # fmt: skip
    if failed:
        names = ", ".join(paths[i] for i in failed[:3])
        raise BinclsError(f"{len(failed)} image(s) cannot be read any more ({names}): they changed since "
                          "they were checked. Check the folder again.")  # fmt: skip
    return feats.astype(np.float32)
