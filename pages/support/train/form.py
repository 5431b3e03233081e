"""The Train page's settings: the preset first (with what it chose and why, the time budget, the Train
button), then every setting below, the command-line popover and the model summary.

No st.form here: a form submits on Enter in any of its number fields, and only the Train button may
start a run."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from bincls import BinclsError
from bincls.models import build_model, model_config, model_summary
from bincls.training.config import page_settings, to_command
from bincls.training.recipes import Resolved
from pages.support.shared import commands, keys, loaders
from pages.support.shared.formatting import as_text, count
from pages.support.shared.messages import show_error
from pages.support.shared.weights_offer import weights_news, weights_offer
from pages.support.train import settings

K = keys.TRAIN_KEYS
ss = st.session_state
MODELS = settings.MODELS
SETTINGS = page_settings()
# Every setting keeps its value while the user is on other pages (and while it is hidden, like the weights
# file's path under another Weights choice); pages.support.shared.memory keeps them over a reload.
KEEP = {"persist_state": "session"}


def _choice_note(result: Resolved | BinclsError) -> None:
    weights_news()
    if isinstance(result, BinclsError):
        st.error(as_text(result), icon=":material/error:")
        if loaders.pretrained_at_hand() is None:
            weights_offer("train", folded=True)
        return
    cfg = result.config
    budget = f", within a time budget of {cfg.time_budget / 60:g} min" if cfg.time_budget else ""
    lead = f"Auto chose **{cfg.preset}**" if ss[K["preset"]] == "auto" else f"Preset **{cfg.preset}**"
    icon = ":material/auto_awesome:" if cfg.preset != "scratch" else ":material/info:"
    size = cfg.img_size or MODELS[cfg.model].default_img_size
    st.info(f"{lead}: {as_text(result.why)}. It trains {cfg.model} at {size} px for up to "
            f"{count(cfg.epochs, 'epoch')}{budget}.", icon=icon)  # fmt: skip
    if cfg.preset == "scratch" and ss[K["preset"]] == "auto" and cfg.weights == "none":
        st.caption("To start from a pretrained network instead (far better on photos):")
        weights_offer("train", folded=True)


def preset_section(data_ok: bool) -> bool:
    """The preset, what it chose, the time budget, a run name and the Train button; True when pressed."""
    c1, c2 = st.columns([3, 2], vertical_alignment="top")
    with c1:
        st.radio("Recipe", list(settings.PRESETS), format_func=settings.PRESETS.get, key=K["preset"], **KEEP,
                 horizontal=True)  # fmt: skip
        st.caption(settings.PRESET_HELP[ss[K["preset"]]])
    budget = SETTINGS["time_budget"].metadata  # seconds in the schema, minutes on the page
    c2.number_input(budget["page"].label, min_value=budget["low"] / 60, max_value=budget["high"] / 60,
                    step=budget["page"].step, key=K["time_budget"], **KEEP, help=budget["page"].help)
    result = settings.resolved()
    _choice_note(result)
    c1, c2, c3 = st.columns([3, 1, 1], vertical_alignment="bottom")
    c1.text_input("Run name (optional)", key=K["name"], **KEEP, placeholder="e.g. first try, more images",
                  max_chars=200)  # fmt: skip
    pressed = c2.button("Train", type="primary", icon=":material/play_arrow:", width="stretch",
                        disabled=not data_ok or isinstance(result, BinclsError))  # fmt: skip
    with c3:
        show_command(data_ok)
    return pressed


def model_settings() -> None:
    """Model, weights and how the backbone trains."""
    entry = MODELS[ss[K["model"]]]
    st.selectbox(
        "Model", list(MODELS), key=K["model"], **KEEP,
        format_func=lambda n: f"{n}  ·  {'pretrainable' if MODELS[n].pretrainable else 'from scratch'}",
    )  # fmt: skip
    st.caption(entry.description)
    if entry.pretrainable:
        st.radio("Weights", list(settings.WEIGHTS), format_func=settings.WEIGHTS.get, key=K["weights"],
                 horizontal=True, **KEEP)  # fmt: skip
        if ss[K["weights"]] == "file":
            st.text_input("Weights file (a torchvision state_dict)", key=K["weights_file"], **KEEP,
                          placeholder="/path/to/mobilenet_v2_imagenet.pth")  # fmt: skip
        disabled = ss[K["weights"]] == "none"
        st.radio(SETTINGS["freeze_backbone"].metadata["page"].label, list(settings.TUNING),
                 format_func=settings.TUNING.get, key=K["freeze_backbone"], **KEEP,
                 horizontal=True, disabled=disabled, help="Freezing needs pretrained weights.")  # fmt: skip
        if ss[K["freeze_backbone"]] == "finetune" and not disabled:
            for name in _section("model"):
                setting_widget(st, name)


def setting_widget(container, name: str, **extra) -> None:
    """The widget of one setting as the schema declares it (bincls.training.config): its label, help,
    choices or bounds and step, so the page and the engine can never disagree about what is allowed."""
    f = SETTINGS[name]
    meta, shown = f.metadata, f.metadata["page"]
    common = {"key": K[name], "help": shown.help or meta["help"][:1].upper() + meta["help"][1:] + ".",
              **KEEP, **extra}  # fmt: skip
    if meta["choices"]:
        container.selectbox(shown.label, meta["choices"], **common)
    elif str(f.type).startswith("bool"):
        container.toggle(shown.label, **common)
    elif meta["low"] is not None or meta["high"] is not None:
        kind = int if meta["whole"] else float
        bound = {"min_value": meta["low"], "max_value": meta["high"]}
        container.number_input(shown.label, **{k: kind(v) for k, v in bound.items() if v is not None},
                               step=kind(shown.step or 1) if meta["whole"] else shown.step,
                               format=shown.format, **common)  # fmt: skip
    else:
        container.text_input(shown.label, **common)


def _section(name: str) -> list[str]:
    return [n for n, f in SETTINGS.items() if f.metadata["page"].section == name]


def training_settings() -> None:
    """The rest of the settings, in three columns in the schema's order; each shows the recipe's value
    until changed."""
    entry = MODELS[ss[K["model"]]]
    columns = st.columns(3)
    for i, name in enumerate(_section("training")):
        extra = {}
        if name == "img_size":
            extra["help"] = f"{entry.name} default: {entry.default_img_size}. " + (
                "Its dense layer is sized from this, so the model only takes this size."
                if entry.fixed_input else "Images are resized to a square of this side.")  # fmt: skip
        setting_widget(columns[i % 3], name, **extra)
    columns = st.columns(3)
    for i, name in enumerate(_section("system")):
        extra = {"format_func": settings.device_labels().get} if name == "device" else {}
        if name == "memory_budget":
            extra["placeholder"] = "auto: half of the free RAM"
        setting_widget(columns[i % 3], name, **extra)
    if settings.gpu_count() > 1:
        st.toggle(f"Use all {settings.gpu_count()} GPUs", key=K["all_gpus"], **KEEP,
                  help="One training process per GPU with torchrun (DistributedDataParallel); the batch "
                  "size is the total over all GPUs.")  # fmt: skip
    split_seed = ss[keys.SPLIT_SEED]
    if ss[K["seed"]] != split_seed:
        st.caption(f":material/info: The seed differs from the Data page's split seed ({split_seed}): "
                   "this run splits the images differently from what the Data page shows.")
    st.button("Back to the recipe's values", icon=":material/restart_alt:", on_click=settings.reset_to_preset)


def show_command(data_ok: bool) -> None:
    """The same run as a command, to run in a terminal or on a cluster."""
    if not data_ok:
        return
    try:
        cfg = settings.form_config()
    except BinclsError:
        return  # the Train button reports it
    with st.popover("Command line", icon=":material/terminal:", width="stretch"):
        st.caption("These settings as a command (the app runs the same engine; the recipe fills in the "
                   "rest):")
        commands.show_command(to_command(cfg, settings.processes()))
        st.caption("On several GPUs or machines, run it under torchrun (README: Training on several GPUs "
                   "or machines):")
        commands.show_command(to_command(cfg, max(2, settings.processes())))
        st.caption("From the project folder, with the Python that runs this app.")


def params(n: int) -> str:
    """A parameter count short enough for a metric tile: 2.23 M, 1,281."""
    return f"{n / 1e6:.2f} M" if n >= 1e6 else f"{n:,}"


@st.cache_data(show_spinner="Building the model summary…", max_entries=32)
def summary_table(model: str, img_size: int, pretrained: bool, freeze: bool) -> tuple[pd.DataFrame, dict]:
    # The architecture only (load_weights=False): the same layers, and nothing is downloaded.
    net = build_model(model_config(model, img_size, "imagenet" if pretrained else "none", freeze),
                      load_weights=False)  # fmt: skip
    summary = model_summary(net, img_size)
    rows = pd.DataFrame(
        {
            "Layer": r.name,
            "Type": r.type,
            "Output shape": " × ".join(map(str, r.output_shape)) if r.output_shape else "–",
            "Params": r.params,
            "Trainable": "yes" if r.trainable else ("no" if r.params else ""),
        }
        for r in summary.rows
    )
    totals = {"total": summary.total_params, "trainable": summary.trainable_params,
              "size_mb": summary.size_mb}
    return rows, totals


def show_summary() -> None:
    model, size = ss[K["model"]], int(ss[K["img_size"]])
    st.subheader("Model summary", anchor=False)
    pretrained = MODELS[model].pretrainable and ss[K["weights"]] != "none"
    try:
        frozen = pretrained and ss[K["freeze_backbone"]] == "freeze"
        rows, totals = summary_table(model, size, pretrained, frozen)
    except BinclsError as exc:
        show_error(exc)
        return
    except RuntimeError as exc:  # e.g. an image too small for this architecture's downsampling
        show_error(BinclsError(f"{model} cannot take {size} px images: {exc}"))
        return
    c1, c2, c3 = st.columns(3)
    c1.metric("Total params", params(totals["total"]), help=f"{totals['total']:,} parameters")
    c2.metric("Trainable", params(totals["trainable"]), help=f"{totals['trainable']:,} parameters")
    c3.metric("Size", f"{totals['size_mb']:.1f} MB")
    st.caption(f"Input 3 × {size} × {size}; output shapes without the batch dimension.")
    st.dataframe(rows, hide_index=True, height=420,
                 column_config={"Params": st.column_config.NumberColumn(format="localized")})
