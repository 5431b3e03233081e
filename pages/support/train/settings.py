"""The Train page's settings: a preset first, then every setting showing the preset's value until the
user changes it.

A widget whose value differs from what the preset gave it is the user's own setting and stays put
(across pages and reruns); the others follow the preset, which `bincls.training.recipes.resolve` fills
in from the settings given. `form_config` turns the page back into a `TrainConfig` holding only the
user's own settings, so the run resolves exactly as the page showed.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import streamlit as st
import torch

from bincls import BinclsError
from bincls.compute import device_info, resolve_device
from bincls.models import list_models
from bincls.models.weights import weights_stamp
from bincls.runs.folder import RunFolder
from bincls.training.config import DEVICES, TrainConfig
from bincls.training.preflight import preflight
from bincls.training.recipes import Resolved
from pages.support.shared import keys, loaders
from pages.support.shared.messages import page_words

K = keys.TRAIN_KEYS
ss = st.session_state
MODELS = {m.name: m for m in list_models()}
PRESETS = {
    "auto": "Auto (recommended)",
    "fast": "Fast",
    "best": "Best",
    "scratch": "From scratch",
}
PRESET_HELP = {
    "auto": "Fast when pretrained weights are at hand, else from scratch.",
    "fast": "A pretrained backbone as a fixed feature extractor: its features are computed once and only "
    "the head trains. Seconds to a minute; very good on photos.",
    "best": "A staged fine-tune of a pretrained backbone: the head first, then the whole network with lower "
    "rates for its early layers. Minutes; the most accurate.",
    "scratch": "No pretrained weights: a small CNN learns from your images alone, for as long as the time "
    "budget allows.",
}
WEIGHTS = {"imagenet": "ImageNet", "none": "None (random init)", "file": "Local file"}
TUNING = {"freeze": "Freeze backbone, train the head", "finetune": "Fine-tune everything"}
NO_WEIGHTS_FILE = ("Weights is set to Local file: give the path of the weights file (a torchvision "
                   "state_dict) under All settings, or choose ImageNet or None.")
_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
# Settings whose widget holds the value itself (weights, freezing and the budgets are shaped by their
# widgets; the preset, the name and the seed are always the page's own).
_SHAPED = ("weights", "freeze_backbone", "memory_budget", "time_budget", "preset", "name", "seed")
DIRECT = [name for name in _FIELDS if name in K and name not in _SHAPED]
_CASTS = {"int": int, "int | None": int, "float": float, "float | None": float, "bool": bool,
          "bool | None": bool}  # fmt: skip


def _widget_values(cfg: TrainConfig) -> dict[str, object]:
    """What each settings widget shows for a complete config."""
    values: dict[str, object] = {name: getattr(cfg, name) for name in DIRECT}
    if cfg.weights in ("imagenet", "none"):
        values.update(weights=cfg.weights)
    else:
        values.update(weights="file", weights_file=cfg.weights)
    values["freeze_backbone"] = "freeze" if cfg.freeze_backbone else "finetune"
    values["memory_budget"] = cfg.memory_budget or ""
    values["time_budget"] = round((cfg.time_budget or 0) / 60, 2)  # shown in minutes
    return values


def _own_settings() -> dict[str, object]:
    """The settings the user changed from what the preset showed, as TrainConfig fields."""
    shown = ss.get(keys.TRAIN_PRESET_SHOWN, {})
    own = {}
    for name in (*DIRECT, "weights", "weights_file", "freeze_backbone", "memory_budget", "time_budget"):
        key = K[name]
        if key in ss and name in shown and ss[key] != shown[name]:
            own[name] = ss[key]
    out = {n: _CASTS.get(str(_FIELDS[n].type), lambda v: v)(v) for n, v in own.items() if n in DIRECT}
    if "weights" in own or "weights_file" in own:
        choice = ss[K["weights"]]
        out["weights"] = ss[K["weights_file"]].strip().strip("'\"") if choice == "file" else choice
        if not out["weights"]:
            raise BinclsError(NO_WEIGHTS_FILE)
    if "freeze_backbone" in own:
        out["freeze_backbone"] = ss[K["freeze_backbone"]] == "freeze"
    if "memory_budget" in own:
        out["memory_budget"] = ss[K["memory_budget"]].strip() or None
    if "time_budget" in own:
        out["time_budget"] = float(ss[K["time_budget"]]) * 60
    return out


def form_config() -> TrainConfig:
    """The page as a config: the data and split of the Data page, the preset, the user's own settings."""
    return TrainConfig(
        data=[str(p) for p in ss[keys.DATA_PATHS]], class_names=ss[keys.CLASS_NAMES],
        split=list(ss[keys.SPLIT_RATIOS]), preset=ss[K["preset"]], name=ss[K["name"]].strip() or None,
        seed=int(ss[K["seed"]]), **_own_settings(),
    )  # fmt: skip


@st.cache_data(show_spinner=False, ttl=60)
def _resolved(cfg_dict: dict, weights: tuple) -> Resolved:
    """The preset's complete config, checked as the Train button will check it (cached a minute: it looks
    for weights files and the network; `weights`, the weights folders' stamp, renews it when a file comes)."""
    return preflight(TrainConfig.from_dict(cfg_dict))


def resolved() -> Resolved | BinclsError:
    """What the run will train with, or why it cannot (e.g. ImageNet weights asked for and none here), in
    the page's words."""
    try:
        return _resolved(form_config().to_dict(), weights_stamp())
    except BinclsError as exc:
        return BinclsError(page_words(str(exc)))


def resume_problem(run: RunFolder) -> str | None:
    """Why Resume would fail here for want of the weights the run starts from, or None. With a last.pt
    the weights come from it; without one, the run starts over from its pretrained weights."""
    if run.last_checkpoint.is_file():
        return None
    cfg = run.config()
    weights, model = cfg.get("weights"), cfg.get("model") or ""
    if weights == "imagenet" and model in MODELS and loaders.weights_at_hand(model) is None:
        return (f"it saved no checkpoint, so it would start again from {model}'s ImageNet weights, and there "
                "are none here (no torch hub cache file, no network). Start a new run with Weights: Local "
                "file, or from scratch.")  # fmt: skip
    if weights not in (None, "", "none", "imagenet", "auto") and not Path(weights).is_file():
        return (f"it saved no checkpoint, so it would start again from its weights file {weights}, which is "
                "gone. Start a new run with another weights file.")  # fmt: skip
    return None


def init_settings() -> None:
    """Bring the settings kept while on other pages back, then set every widget the user has not changed
    to the preset's value. Runs before any widget is drawn (a drawn widget's value cannot be set)."""
    for key, value in ss.get(keys.TRAIN_SAVED, {}).items():
        ss.setdefault(key, value)
    ss.setdefault(K["preset"], "auto")
    ss.setdefault(K["name"], "")
    ss.setdefault(K["seed"], int(ss[keys.SPLIT_SEED]))  # the Data page's split seed: as that page shows
    ss.setdefault(K["all_gpus"], True)
    ss.setdefault(K["weights_file"], "")
    if ss.pop(keys.TRAIN_CLEAR_NAME, False):
        ss[K["name"]] = ""  # a name says what one run tried: the next run starts unnamed
    _budget_follows_recipe()
    result = resolved()
    if isinstance(result, BinclsError):
        return  # the page shows why; the widgets keep what they show
    values = _widget_values(result.config)
    own = _own_settings()
    shown = dict(ss.get(keys.TRAIN_PRESET_SHOWN, {}))
    for name, value in values.items():
        if _is_own(name, own):
            continue
        ss[K[name]] = value
        shown[name] = value
    ss[keys.TRAIN_PRESET_SHOWN] = shown


def _budget_follows_recipe() -> None:
    """A time budget the user set belongs to the recipe it was set for: on another recipe the budget is that
    recipe's (the one the user set for it, else the recipe's own), never the last one's (90 s of a scratch
    run stayed on an Auto run)."""
    preset, before = ss[K["preset"]], ss.get(keys.TRAIN_BUDGET_PRESET)
    ss[keys.TRAIN_BUDGET_PRESET] = preset
    key, shown = K["time_budget"], ss.get(keys.TRAIN_PRESET_SHOWN, {})
    if before is None or before == preset or key not in ss or "time_budget" not in shown:
        return
    own = dict(ss.get(keys.TRAIN_OWN_BUDGETS) or {})
    if ss[key] != shown["time_budget"]:
        own[before] = ss[key]  # the user's budget for the recipe left
    else:
        own.pop(before, None)
    ss[keys.TRAIN_OWN_BUDGETS] = own
    # Shown as the last recipe left it, a budget is the recipe's to fill in (`_own_settings`).
    ss[key] = own.get(preset, shown["time_budget"])


def _is_own(name: str, own: dict) -> bool:
    field = {"weights_file": "weights"}.get(name, name)
    return field in own


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


def reset_to_preset() -> None:
    """Button callback: every setting back to what the recipe gives it."""
    for name, value in ss.get(keys.TRAIN_PRESET_SHOWN, {}).items():
        ss[K[name]] = value
