"""Pretrained weights for a backbone: torchvision's ImageNet weights, or a local state_dict file."""

from __future__ import annotations

import functools
import os
import pickle
import shutil
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
from bincls.paths import cache_dir

# Backbones in the order presets (and the audit, the labelling session) look for their weights.
# mobilenet_v2 is the one measured here (bench/recipes.py; the only ImageNet weights in ../shared); the
# others work when their weights are present, stronger features first, then the smaller ones.
BACKBONES = ("mobilenet_v2", "efficientnet_b0", "resnet50", "resnet18", "mobilenet_v3_small")


def hub_checkpoints() -> Path:
    """Where torchvision downloads ImageNet weights and looks for them: $TORCH_HOME/hub/checkpoints."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def torchvision_file(name: str) -> tuple[str, str]:
    """(file name, download URL) of torchvision's default ImageNet weights for `name`:
    ("mobilenet_v2-7ebf99e0.pth", "https://download.pytorch.org/models/mobilenet_v2-7ebf99e0.pth")."""
    url = torchvision.models.get_model_weights(name).DEFAULT.url
    return os.path.basename(url), url


def own_weights_file(name: str) -> Path:
    """bincls' own copy of a weights file the user gave as `name`'s ImageNet weights (`import_weights`)."""
    return cache_dir() / "weights" / f"{name}-imagenet.pth"


def _release_names() -> dict[str, str]:
    """Every torchvision ImageNet file name of the pretrainable backbones -> its architecture."""
    return {os.path.basename(w.url): name for name in TV_CLASSIFIERS
            for w in torchvision.models.get_model_weights(name)}  # fmt: skip


def cached_imagenet_file(name: str) -> Path | None:
    """A file of ImageNet weights for `name` that is here, or None. Looked for in this order: torchvision's
    own file names in the torch hub cache (its DEFAULT first, then any other release); bincls' own copy of
    a file the user gave (`import_weights`); any other file in the hub cache whose every layer has
    `name`'s name and shape (`guess_architecture`), so a file put there under another name is found."""
    releases = list(torchvision.models.get_model_weights(name))
    default = torchvision.models.get_model_weights(name).DEFAULT
    folder = hub_checkpoints()
    for weights in [default, *(w for w in releases if w is not default)]:
        path = folder / os.path.basename(weights.url)
        if path.is_file() and path.stat().st_size > 0:
            return path
    own = own_weights_file(name)
    if own.is_file() and own.stat().st_size > 0:
        return own
    return _renamed_in_hub(name, folder)


def _renamed_in_hub(name: str, folder: Path) -> Path | None:
    """A file in the hub cache, under a name torchvision does not use, that holds `name`'s weights."""
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return None
    known = _release_names()
    for path in entries:
        # torchvision's own names belong to their architecture; dot files and tmp* are downloads in progress.
        if path.name in known or path.name.startswith((".", "tmp")) or not path.is_file():
            continue
        stat = path.stat()
        if stat.st_size > 0 and _architecture_of(str(path), stat.st_size, stat.st_mtime_ns) == name:
            return path
    return None


@functools.lru_cache(maxsize=64)
def _architecture_of(path: str, size: int, mtime_ns: int) -> str | None:
    """`guess_architecture`, once per file version (size and time key it): the lookup runs on every page."""
    try:
        return guess_architecture(path, mmap=True)
    except BinclsError:
        return None


def import_weights(path: str | os.PathLike, model: str | None = None) -> tuple[str, Path]:
    """Take a weights file the user picked, whatever its name, as ImageNet weights here: check that every
    layer has the name and shape of a pretrainable architecture's (`model`, when given), then copy it into
    bincls' own weights folder, where `cached_imagenet_file` looks. The file itself is only read.
    Returns (architecture, the copy)."""
    src = Path(path).expanduser()
    name = guess_architecture(src)
    if name is None:
        raise BinclsError(
            f"{src} holds no weights of {', '.join(BACKBONES)}: the names and shapes of its layers fit none "
            "of these architectures. Give a file saved with torch.save(model.state_dict(), path) from "
            f"torchvision's model of one of them (e.g. torchvision's {torchvision_file(BACKBONES[0])[0]})."
        )
    if model is not None and name != model:
        raise BinclsError(f"{src} holds {name} weights, not {model}'s.")
    dest = own_weights_file(name)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not (dest.exists() and os.path.samefile(src, dest)):
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
        try:
            shutil.copyfile(src, tmp)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
    return name, dest


def missing_weights_help(name: str = BACKBONES[0]) -> str:
    """Where to put ImageNet weights for `name` offline: the folder and torchvision's file name, or any file
    of that architecture under any name."""
    file, url = torchvision_file(name)
    folder = hub_checkpoints()
    return (
        f"Put torchvision's file {file} in the folder {folder}, as {folder / file} (download it from {url} "
        f"on a machine with internet), or any file of {name} weights, whatever its name: in that folder too, "
        "or checked and copied into bincls' own cache with `python -m bincls weights add FILE` "
        "(the app: Use a weights file)."
    )


def weights_stamp() -> tuple:
    """Changes when a weights file comes or goes in the folders the lookup reads (the hub cache, bincls'
    own): a page's cache of "what is at hand" is keyed by it."""
    stamps = []
    for folder in (hub_checkpoints(), own_weights_file(BACKBONES[0]).parent):
        try:
            stamps.append((str(folder), folder.stat().st_mtime_ns))
        except OSError:
            stamps.append((str(folder), None))
    return tuple(stamps)


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
        raise BinclsError(
            f"The ImageNet weights for {name} could not be downloaded or read ({e}). "
            f"{missing_weights_help(name)} Or train with a weights file as it is: "
            "`--weights /path/to/file.pth` (the app: Weights, Local file)."
        ) from e


def _local_state_dict(path: str, mmap: bool = False) -> Mapping[str, Any]:
    """A state_dict file saved with torch.save, possibly wrapped in a checkpoint dict; `mmap`: the tensors
    stay on disk until read (a check of names and shapes reads next to nothing)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise BinclsError(
            f"Weights file {p} does not exist. Weights must be 'none', 'imagenet', or the path of a "
            f"state_dict file saved with torch.save(model.state_dict(), path)."
        )
    try:
        try:
            obj = torch.load(p, map_location="cpu", weights_only=True, mmap=mmap)
        except RuntimeError:
            if not mmap:
                raise
            obj = torch.load(p, map_location="cpu", weights_only=True)  # the legacy format cannot be mapped
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


@functools.cache
def _shapes(name: str) -> dict[str, torch.Size]:
    """Every tensor's shape in torchvision's `name` (built on the meta device: no memory, no init time)."""
    with torch.device("meta"):
        return {k: v.shape for k, v in torchvision.models.get_model(name, weights=None).state_dict().items()}


def guess_architecture(path: str | os.PathLike, mmap: bool = False) -> str | None:
    """The registered backbone whose layers a state_dict file fits exactly, or None: every tensor of the
    backbone is there under its name with its shape, and nothing else is (an ImageNet classifier may be)."""
    state = _local_state_dict(str(path), mmap=mmap)
    for name in TV_CLASSIFIERS:
        expected = _shapes(name)
        keys = _backbone_keys(state, name)
        wanted = {k: v for k, v in expected.items() if not k.startswith(TV_CLASSIFIERS[name][0] + ".")}
        same = set(keys) | {k for k in wanted if k.endswith("num_batches_tracked")} >= set(wanted)
        if same and set(keys) <= set(wanted) and all(keys[k].shape == wanted[k] for k in keys):
            return name
    return None


def weights_at_hand(model: str) -> str | None:
    """How the ImageNet weights of `model` can be had here ("cached at PATH", "downloadable"), or None."""
    cached = cached_imagenet_file(model)
    if cached is not None:
        where = "bincls' cache" if cached == own_weights_file(model) else "the torch hub cache"
        return f"its ImageNet weights are in {where} ({cached})"
    if download_reachable():
        return "its ImageNet weights can be downloaded"
    return None
