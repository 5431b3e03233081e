"""The Train page's settings: widget values start from the settings schema (`TrainConfig.defaults()`)
and turn back into a `TrainConfig`. A setting whose widget key is in `keys.TRAIN_KEYS` under the
setting's own name is carried over as it is; `weights`, `freeze_backbone` and `memory_budget` are
shaped by their widgets (a radio and a text box)."""

from __future__ import annotations

import dataclasses

import streamlit as st
import torch

from bincls import BinclsError
from bincls.compute import device_info, resolve_device
from bincls.models import list_models
from bincls.training.config import DEFAULT_LR, DEVICES, TrainConfig
from pages.support import keys

K = keys.TRAIN_KEYS
ss = st.session_state
MODELS = {m.name: m for m in list_models()}
WEIGHTS = {"imagenet": "ImageNet", "none": "None (random init)", "file": "Local file"}
TUNING = {"finetune": "Fine-tune everything", "freeze": "Freeze backbone, train the head"}
_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
_SHAPED = ("weights", "freeze_backbone", "memory_budget")  # set from widgets of another shape
# Settings whose widget holds the value itself, with the type the schema wants.
DIRECT = [name for name in _FIELDS if name in K and name not in _SHAPED]
_CASTS = {"int": int, "int | None": int, "float": float, "float | None": float, "bool": bool}


def init_settings() -> None:
    """Widget values on first show: the settings kept while on other pages, else the schema's defaults."""
    # Streamlit drops a widget's value while its page is not shown; bring the settings back.
    for key, value in ss.get(keys.TRAIN_SAVED, {}).items():
        ss.setdefault(key, value)
    start = TrainConfig.defaults()
    entry = MODELS[ss.setdefault(K["model"], start["model"])]
    optimizer = ss.setdefault(K["optimizer"], start["optimizer"])
    start.update(  # where the schema's default is "decided later", the page shows what it will be
        img_size=start["img_size"] or entry.default_img_size,
        lr=start["lr"] or DEFAULT_LR[optimizer],
        seed=int(ss[keys.SPLIT_SEED]),  # the Data page's split seed: the run splits as that page shows
    )
    for name in DIRECT:
        ss.setdefault(K[name], start[name])
    ss.setdefault(K["weights"], "imagenet" if entry.pretrainable else start["weights"])
    ss.setdefault(K["weights_file"], "")
    ss.setdefault(K["tuning"], "freeze" if start["freeze_backbone"] else "finetune")
    ss.setdefault(K["memory_budget"], start["memory_budget"] or "")
    ss.setdefault(K["all_gpus"], True)


def model_changed() -> None:
    entry = MODELS[ss[K["model"]]]
    ss[K["img_size"]] = entry.default_img_size
    ss[K["weights"]] = "imagenet" if entry.pretrainable else "none"
    ss[K["tuning"]] = "finetune"


def optimizer_changed() -> None:
    ss[K["lr"]] = DEFAULT_LR[ss[K["optimizer"]]]


def weights_value() -> str:
    if not MODELS[ss[K["model"]]].pretrainable or ss[K["weights"]] == "none":
        return "none"
    return ss[K["weights_file"]].strip() if ss[K["weights"]] == "file" else "imagenet"


def freeze_value() -> bool:
    return weights_value() != "none" and ss[K["tuning"]] == "freeze"


def form_config() -> TrainConfig:
    """The settings on the page, with the data and split of the Data page; raises BinclsError."""
    values = {name: _CASTS.get(str(_FIELDS[name].type), lambda v: v)(ss[K[name]]) for name in DIRECT}
    return TrainConfig(
        data=[str(p) for p in ss[keys.DATA_PATHS]], class_names=ss[keys.CLASS_NAMES],
        split=list(ss[keys.SPLIT_RATIOS]), weights=weights_value(), freeze_backbone=freeze_value(),
        memory_budget=ss[K["memory_budget"]].strip() or None, **values,
    )  # fmt: skip


@st.cache_data(show_spinner=False)
def gpu_count() -> int:
    return torch.cuda.device_count()


def processes() -> int:
    """Training processes: one per GPU when there are several and the user wants them all."""
    return gpu_count() if gpu_count() > 1 and ss[K["all_gpus"]] and ss[K["device"]] in ("auto", "cuda") else 1


@st.cache_data(show_spinner=False)
def device_labels() -> dict[str, str]:
    """Each device choice with what it resolves to here (GPU name and memory when there is one)."""
    labels = {}
    for name in DEVICES:
        try:
            info = device_info(resolve_device(name))
        except BinclsError:
            labels[name] = f"{name} (not available here)"
            continue
        memory = f", {info['device_memory_gb']} GB" if info.get("device_memory_gb") else ""
        labels[name] = f"{name}: {info['device_name']}{memory}"
    return labels
