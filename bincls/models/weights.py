"""Pretrained weights for a backbone: torchvision's ImageNet weights, or a local state_dict file."""

from __future__ import annotations

import os
import pickle
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.error import URLError
from urllib.parse import urlparse

import torch
import torchvision

from bincls.errors import BinclsError
from bincls.models.backbones import TV_CLASSIFIERS, BackboneClassifier
from bincls.models.config import ModelConfig

# Backbones in the order presets (and the audit, the labelling session) look for their weights.
# mobilenet_v2 is the one measured here (bench/recipes.py; the only ImageNet weights in ../shared); the
# others work when their weights are present, stronger features first, then the smaller ones.
BACKBONES = ("mobilenet_v2", "efficientnet_b0", "resnet50", "resnet18", "mobilenet_v3_small")


def cached_imagenet_file(name: str) -> Path | None:
    """The torch hub cache's file of torchvision's ImageNet weights for `name` (its DEFAULT first, then any
    other ImageNet release of it that is there), or None when none is cached."""
    releases = list(torchvision.models.get_model_weights(name))
    default = torchvision.models.get_model_weights(name).DEFAULT
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    for weights in [default, *(w for w in releases if w is not default)]:
        path = folder / os.path.basename(weights.url)
        if path.is_file() and path.stat().st_size > 0:
            return path
    return None


def download_reachable(timeout: float = 2.0) -> bool:
    """True when torchvision's weights server answers: the ImageNet weights could be downloaded."""
    url = urlparse(torchvision.models.get_model_weights("resnet18").DEFAULT.url)
    try:
        with socket.create_connection((url.hostname, url.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def _imagenet_state_dict(name: str) -> dict[str, torch.Tensor]:
    """torchvision's ImageNet weights, from the torch hub cache or downloaded into it."""
    weights = torchvision.models.get_model_weights(name).DEFAULT
    cached = cached_imagenet_file(name)
    if cached is not None:  # any cached release: no download when one is here already
        return _local_state_dict(str(cached))
    try:
        return weights.get_state_dict(progress=True)
    except (URLError, OSError, RuntimeError) as e:
        target = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(weights.url))
        raise BinclsError(
            f"The ImageNet weights for {name} could not be downloaded or read ({e}). "
            f"On a machine with internet, download {weights.url} and put it at {target} "
            f"(replace the file if it is already there), or use a local state_dict file: "
            f"`--weights /path/to/file.pth` (the app: Weights, Local file)."
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
    fc_prefix = TV_CLASSIFIERS[name][0] + "."
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


def guess_architecture(path: str | os.PathLike) -> str | None:
    """The registered backbone whose layers a state_dict file fits exactly (names and shapes), or None."""
    from bincls.models.backbones import TV_CLASSIFIERS

    state = _local_state_dict(str(path))
    for name in TV_CLASSIFIERS:
        expected = torchvision.models.get_model(name, weights=None).state_dict()
        keys = _backbone_keys(state, name)
        wanted = {k: v for k, v in expected.items() if not k.startswith(TV_CLASSIFIERS[name][0] + ".")}
        same = set(keys) | {k for k in wanted if k.endswith("num_batches_tracked")} >= set(wanted)
        if same and set(keys) <= set(wanted) and all(keys[k].shape == wanted[k].shape for k in keys):
            return name
    return None


def weights_at_hand(model: str) -> str | None:
    """How the ImageNet weights of `model` can be had here ("cached at PATH", "downloadable"), or None."""
    cached = cached_imagenet_file(model)
    if cached is not None:
        return f"its ImageNet weights are in the torch hub cache ({cached})"
    if download_reachable():
        return "its ImageNet weights can be downloaded"
    return None
