"""The Train page's settings widgets, the command-line popover and the model summary."""

from __future__ import annotations

import shlex

import pandas as pd
import streamlit as st

from bincls import BinclsError
from bincls.models import MIN_IMG_SIZE, build_model, model_config, model_summary
from bincls.training.config import DEFAULT_LR, DEVICES, OPTIMIZERS, PRECISIONS, SCHEDULES, to_command
from pages.support import keys
from pages.support import train_settings as settings
from pages.support.messages import show_error

K = keys.TRAIN_KEYS
ss = st.session_state
MODELS = settings.MODELS


def model_settings() -> None:
    """Settings that change the summary or other defaults: they rerun the page at once."""
    entry = MODELS[ss[K["model"]]]
    st.selectbox(
        "Model", list(MODELS), key=K["model"], on_change=settings.model_changed,
        format_func=lambda n: f"{n}  ·  {'pretrainable' if MODELS[n].pretrainable else 'from scratch'}",
    )  # fmt: skip
    st.caption(entry.description)
    if entry.pretrainable:
        st.radio("Weights", list(settings.WEIGHTS), format_func=settings.WEIGHTS.get, key=K["weights"],
                 horizontal=True)
        if ss[K["weights"]] == "file":
            st.text_input("Weights file (a torchvision state_dict)", key=K["weights_file"],
                          placeholder="/path/to/mobilenet_v2_imagenet.pth")
        st.radio("Training", list(settings.TUNING), format_func=settings.TUNING.get, key=K["tuning"],
                 horizontal=True, disabled=ss[K["weights"]] == "none",
                 help="Freezing needs pretrained weights.")
    c1, c2 = st.columns(2)
    c1.number_input(
        "Image size (px)", min_value=MIN_IMG_SIZE, max_value=1024, step=16, key=K["img_size"],
        help=f"{entry.name} default: {entry.default_img_size}. "
        + ("Its dense layer is sized from this, so the model only takes this size."
           if entry.fixed_input else "Images are resized to a square of this side."),
    )  # fmt: skip
    c2.selectbox("Optimizer", OPTIMIZERS, key=K["optimizer"], on_change=settings.optimizer_changed,
                 help="Changing it resets the learning rate to its default.")


def training_form(data_ok: bool) -> bool:
    """The rest of the settings and the Train button; True when Train was pressed."""
    with st.form("train_form", border=False):
        c1, c2, c3 = st.columns(3)
        c1.number_input("Epochs", min_value=1, max_value=1000, key=K["epochs"])
        c2.number_input("Batch size", min_value=1, max_value=1024, key=K["batch_size"])
        c3.number_input("Learning rate", min_value=1e-6, max_value=5.0, step=1e-4, format="%g", key=K["lr"],
                        help=f"Default for {ss[K['optimizer']]}: {DEFAULT_LR[ss[K['optimizer']]]:g}")
        c1.selectbox("LR schedule", SCHEDULES, key=K["schedule"])
        c2.number_input("Patience", min_value=0, max_value=1000, key=K["patience"],
                        help="Early stopping: epochs without a better val loss before it stops; 0: off.")
        c3.number_input("Seed", step=1, key=K["seed"], help="Seeds the train/val/test split and training.")
        c1, c2 = st.columns([3, 2], vertical_alignment="bottom")
        c1.selectbox("Device", DEVICES, format_func=settings.device_labels().get, key=K["device"])
        c2.toggle("Augmentation", key=K["augment"], help="Random flips, crops and colour jitter in training.")
        c1, c2 = st.columns(2)
        c1.selectbox("Precision", PRECISIONS, key=K["precision"],
                     help="auto: what measured fastest for this device and model (bench/compute_plan.py).")
        c2.text_input("Memory budget", key=K["memory_budget"], placeholder="auto: half of the free RAM",
                      help="A size like 4G or 512M. Above it, images stream from disk instead of memory.")
        if settings.gpu_count() > 1:
            st.toggle(f"Use all {settings.gpu_count()} GPUs", key=K["all_gpus"],
                      help="One training process per GPU with torchrun (DistributedDataParallel); the batch "
                      "size is the total over all GPUs.")
        pressed = st.form_submit_button("Train", type="primary", icon=":material/play_arrow:",
                                        disabled=not data_ok)
    split_seed = ss[keys.SPLIT_SEED]
    if ss[K["seed"]] != split_seed:
        st.caption(f":material/info: The seed differs from the Data page's split seed ({split_seed}): "
                   "this run splits the images differently from what the Data page shows.")
    return pressed


def show_command(data_ok: bool) -> None:
    """The same run as a command, to run in a terminal or on a cluster."""
    if not data_ok:
        return
    try:
        cfg = settings.form_config()
    except BinclsError:
        return  # the Train button reports it
    with st.popover("Command line", icon=":material/terminal:"):
        st.caption("These settings as a command (the app runs the same engine):")
        st.code(shlex.join(to_command(cfg, settings.processes())), language="bash", wrap_lines=True)
        st.caption("On several GPUs or machines, run it under torchrun (README: Training on several GPUs "
                   "or machines):")
        st.code(shlex.join(to_command(cfg, max(2, settings.processes()))), language="bash", wrap_lines=True)


@st.cache_data(show_spinner="Building the model summary…", max_entries=32)
def summary_table(model: str, img_size: int, weights: str, freeze: bool) -> tuple[pd.DataFrame, dict]:
    # The architecture only (load_weights=False): the same layers, and nothing is downloaded.
    pretrained = "none" if weights == "none" else "imagenet"
    net = build_model(model_config(model, img_size, pretrained, freeze), load_weights=False)
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
    try:
        rows, totals = summary_table(model, size, settings.weights_value(), settings.freeze_value())
    except BinclsError as exc:
        show_error(exc)
        return
    except RuntimeError as exc:  # e.g. an image too small for this architecture's downsampling
        show_error(BinclsError(f"{model} cannot take {size} px images: {exc}"))
        return
    c1, c2, c3 = st.columns(3)
    c1.metric("Total params", f"{totals['total']:,}")
    c2.metric("Trainable", f"{totals['trainable']:,}")
    c3.metric("Size", f"{totals['size_mb']:.1f} MB")
    st.caption(f"Input 3 × {size} × {size}; output shapes without the batch dimension.")
    st.dataframe(rows, hide_index=True, height=420,
                 column_config={"Params": st.column_config.NumberColumn(format="localized")})
