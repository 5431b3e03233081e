"""Pretrained backbone features of image files, computed once and kept in the cache folder.

The audit looks at images the way an ImageNet backbone sees them: pooled features of the eval
transform, the same decode as training. Files unchanged since the last audit are not decoded again.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable

import numpy as np
import torch

from bincls.compute import plan_inference, resolve_device
from bincls.data.decode_cache import load_or_decode
from bincls.data.transforms import BatchTransform, Preprocess
from bincls.errors import BinclsError
from bincls.models import build_model, model_config
from bincls.paths import cache_dir

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


def _key(paths: list[str], model: str, weights: str) -> str:
    h = hashlib.sha256(f"features-v1:{model}:{weights}".encode())
    for p in paths:
        st = os.stat(p)
        h.update(f"\0{os.path.abspath(p)}\0{st.st_size}\0{st.st_mtime_ns}".encode())
    return h.hexdigest()[:32]


@torch.no_grad()
def image_features(paths: list[str], model: str | None = None, weights: str | None = None,
                   progress: Progress | None = None, batch_size: int = 64) -> np.ndarray:  # fmt: skip
    """[N, D] float32 pooled features of `paths` (cached by the files' paths, sizes and times)."""
    if model is None:
        model, weights = feature_backbone()
    key = _key(paths, model, weights or "imagenet")
    cached = cache_dir() / "features" / f"{key}.npy"
    if cached.is_file():
        try:
            return np.load(cached)
        except (OSError, ValueError):
            pass  # rebuilt below
    mcfg = model_config(model, weights=weights or "imagenet", freeze_backbone=True)
    net = build_model(mcfg).eval()
    device = resolve_device("auto")
    plan = plan_inference(device, model)
    net = net.to(device, memory_format=torch.channels_last if plan.channels_last else torch.contiguous_format)
    images = load_or_decode(paths, mcfg.img_size, progress).images
    tf = BatchTransform(Preprocess(mcfg.img_size, mcfg.mean, mcfg.std))
    out = []
    for start in range(0, len(images), batch_size):
        x = tf(images[start : start + batch_size].to(device))
        if plan.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with plan.autocast():
            out.append(net.forward_features(x).float().cpu())
    feats = torch.cat(out).numpy() if out else np.zeros((0, 1), np.float32)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_name(f".{cached.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            np.save(f, feats)
        os.replace(tmp, cached)
    except OSError:
        pass  # a full or read-only cache only costs the next audit the computation
    return feats
