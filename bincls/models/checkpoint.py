"""Self-describing checkpoints: a plain dict that rebuilds the model from the file alone."""

from __future__ import annotations

import dataclasses
import io
import os
import pickle
import platform
import re
from pathlib import Path

import torch
import torchvision

import bincls
from bincls.data.transforms import Preprocess
from bincls.errors import BinclsError
from bincls.models import ModelConfig, build_model
from bincls.models.checkpoint_schema import validate_checkpoint

FORMAT = "bincls-checkpoint/1"


def make_checkpoint(
    model: torch.nn.Module,
    model_cfg: ModelConfig,
    class_names: list[str],
    weights: dict | None = None,
    **extra,
) -> dict:
    """Everything needed to predict (and, with optimizer state in `extra`, to resume). `weights`: a
    state_dict to save instead of the model's current one (the best epoch's, kept in memory)."""
    state = {k: v.detach().cpu() for k, v in (weights if weights is not None else model.state_dict()).items()}
    return {
        "format": FORMAT,
        "model_config": _plain(dataclasses.asdict(model_cfg)),
        "state_dict": state,
        "class_names": list(class_names),
        "threshold": 0.5,
        "versions": {
            "bincls": bincls.__version__,
            "torch": str(torch.__version__),  # TorchVersion is not a plain str: weights_only refuses it
            "torchvision": str(torchvision.__version__),
            "python": platform.python_version(),
        },
        **extra,
    }


def _plain(obj):
    """Tuples become lists: weights_only loading accepts plain containers."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def read_checkpoint(path: str | os.PathLike, data: bytes | None = None) -> dict:
    """Load with weights_only=True: a checkpoint carrying code (a pickled payload) is refused.

    `data`: the file's bytes, read once by a caller that records their hash (an export), so what is
    loaded is what was hashed even if the file is replaced meanwhile; `path` then only names it."""
    path = Path(path)
    if data is None and not path.is_file():
        raise BinclsError(f"Checkpoint {path} does not exist.")
    try:
        ckpt = torch.load(path if data is None else io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"(?:unsupported )?GLOBAL ([\w.]+)", str(exc), re.IGNORECASE)
        what = f"it names {found.group(1)}" if found else "it holds objects other than tensors"
        raise BinclsError(
            f"Refused to load {path}: it holds Python objects other than weights, which could run code "
            f"({what}). Only checkpoints made by bincls are loaded."
        ) from None
    except Exception as exc:  # noqa: BLE001 - whatever a damaged file makes torch.load raise
        raise BinclsError(
            f"Cannot read checkpoint {path}: it is damaged or not a checkpoint ({type(exc).__name__}: "
            f"{str(exc)[:200]})."
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise BinclsError(f"{path} is not a bincls checkpoint (no '{FORMAT}' format tag).")
    return validate_checkpoint(ckpt, path)  # before anything is built from it


def model_config_of(ckpt: dict) -> ModelConfig:
    fields = {f.name for f in dataclasses.fields(ModelConfig)}
    raw = {k: v for k, v in ckpt["model_config"].items() if k in fields}
    for key in ("mean", "std"):
        if key in raw:
            raw[key] = tuple(raw[key])
    return ModelConfig(**raw)


def preprocess_of(ckpt: dict) -> Preprocess:
    cfg = model_config_of(ckpt)
    return Preprocess(cfg.img_size, tuple(cfg.mean), tuple(cfg.std))


def load_model(
    path: str | os.PathLike, device: str | torch.device = "cpu", data: bytes | None = None
) -> tuple[torch.nn.Module, dict]:
    """The model in eval mode, and the checkpoint dict it came from (`data`: as `read_checkpoint`)."""
    ckpt = read_checkpoint(path, data)
    model = build_model(model_config_of(ckpt), load_weights=False)
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as exc:
        raise BinclsError(
            f"Checkpoint {path} does not match its model {ckpt['model_config']['name']}: {exc}"
        ) from None
    return model.to(device).eval(), ckpt
