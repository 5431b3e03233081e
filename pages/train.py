"""Train page: choose a model and settings, train in a background process, watch the run live."""

from __future__ import annotations

import shlex
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
import torch

from bincls import BinclsError
from bincls.compute import device_info, resolve_device
from bincls.data.data_root import confine
from bincls.models import MIN_IMG_SIZE, build_model, list_models, model_config, model_summary
from bincls.paths import runs_dir
from bincls.training.config import (
    DEFAULT_LR,
    DEVICES,
    OPTIMIZERS,
    PRECISIONS,
    SCHEDULES,
    TrainConfig,
    to_command,
)
from bincls.training.launcher import BusyError, active_run, resume_training, start_training, stop_run
from bincls.training.run_folder import ACTIVE, RunFolder
from pages import common

common.require_app(__file__)

K = common.TRAIN_KEYS
ss = st.session_state
MODELS = {m.name: m for m in list_models()}
WEIGHTS = {"imagenet": "ImageNet", "none": "None (random init)", "file": "Local file"}
TUNING = {"finetune": "Fine-tune everything", "freeze": "Freeze backbone, train the head"}
MAX_STEP_POINTS = 3000  # per-step loss points drawn; longer runs are thinned evenly
TRAIN_COLOR, VAL_COLOR, STEP_COLOR = "#2563eb", "#ea580c", "#93c5fd"


# Settings -------------------------------------------------------------------------------------------
def init_settings() -> None:
    # Streamlit drops a widget's value while its page is not shown; bring the settings back.
    for key, value in ss.get(common.TRAIN_SAVED, {}).items():
        ss.setdefault(key, value)
    ss.setdefault(K["model"], "small-cnn")
    entry = MODELS[ss[K["model"]]]
    ss.setdefault(K["weights"], "imagenet" if entry.pretrainable else "none")
    ss.setdefault(K["weights_file"], "")
    ss.setdefault(K["tuning"], "finetune")
    ss.setdefault(K["img_size"], entry.default_img_size)
    ss.setdefault(K["epochs"], 10)
    ss.setdefault(K["batch_size"], 32)
    ss.setdefault(K["optimizer"], "adam")
    ss.setdefault(K["lr"], DEFAULT_LR["adam"])
    ss.setdefault(K["schedule"], "cosine")
    ss.setdefault(K["patience"], 5)
    ss.setdefault(K["seed"], int(ss[common.SPLIT_SEED]))
    ss.setdefault(K["device"], "auto")
    ss.setdefault(K["augment"], True)
    ss.setdefault(K["all_gpus"], True)
    ss.setdefault(K["precision"], "auto")
    ss.setdefault(K["memory_budget"], "")


def model_changed() -> None:
    entry = MODELS[ss[K["model"]]]
    ss[K["img_size"]] = entry.default_img_size
    ss[K["weights"]] = "imagenet" if entry.pretrainable else "none"
    ss[K["tuning"]] = "finetune"


def optimizer_changed() -> None:
    ss[K["lr"]] = DEFAULT_LR[ss[K["optimizer"]]]


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


def weights_value() -> str:
    if not MODELS[ss[K["model"]]].pretrainable or ss[K["weights"]] == "none":
        return "none"
    return ss[K["weights_file"]].strip() if ss[K["weights"]] == "file" else "imagenet"


def freeze_value() -> bool:
    return weights_value() != "none" and ss[K["tuning"]] == "freeze"


def model_settings() -> None:
    """Settings that change the summary or other defaults: they rerun the page at once."""
    entry = MODELS[ss[K["model"]]]
    st.selectbox(
        "Model", list(MODELS), key=K["model"], on_change=model_changed,
        format_func=lambda n: f"{n}  ·  {'pretrainable' if MODELS[n].pretrainable else 'from scratch'}",
    )  # fmt: skip
    st.caption(entry.description)
    if entry.pretrainable:
        st.radio("Weights", list(WEIGHTS), format_func=WEIGHTS.get, key=K["weights"], horizontal=True)
        if ss[K["weights"]] == "file":
            st.text_input("Weights file (a torchvision state_dict)", key=K["weights_file"],
                          placeholder="/path/to/mobilenet_v2_imagenet.pth")
        st.radio("Training", list(TUNING), format_func=TUNING.get, key=K["tuning"], horizontal=True,
                 disabled=ss[K["weights"]] == "none", help="Freezing needs pretrained weights.")
    c1, c2 = st.columns(2)
    c1.number_input(
        "Image size (px)", min_value=MIN_IMG_SIZE, max_value=1024, step=16, key=K["img_size"],
        help=f"{entry.name} default: {entry.default_img_size}. "
        + ("Its dense layer is sized from this, so the model only takes this size."
           if entry.fixed_input else "Images are resized to a square of this side."),
    )  # fmt: skip
    c2.selectbox("Optimizer", OPTIMIZERS, key=K["optimizer"], on_change=optimizer_changed,
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
        c1.selectbox("Device", DEVICES, format_func=device_labels().get, key=K["device"])
        c2.toggle("Augmentation", key=K["augment"], help="Random flips, crops and colour jitter in training.")
        c1, c2 = st.columns(2)
        c1.selectbox("Precision", PRECISIONS, key=K["precision"],
                     help="auto: what measured fastest for this device and model (bench/compute_plan.py).")
        c2.text_input("Memory budget", key=K["memory_budget"], placeholder="auto: half of the free RAM",
                      help="A size like 4G or 512M. Above it, images stream from disk instead of memory.")
        if gpu_count() > 1:
            st.toggle(f"Use all {gpu_count()} GPUs", key=K["all_gpus"],
                      help="One training process per GPU with torchrun (DistributedDataParallel); the batch "
                      "size is the total over all GPUs.")
        pressed = st.form_submit_button("Train", type="primary", icon=":material/play_arrow:",
                                        disabled=not data_ok)
    split_seed = ss[common.SPLIT_SEED]
    if ss[K["seed"]] != split_seed:
        st.caption(f":material/info: The seed differs from the Data page's split seed ({split_seed}): "
                   "this run splits the images differently from what the Data page shows.")
    return pressed


@st.cache_data(show_spinner=False)
def gpu_count() -> int:
    return torch.cuda.device_count()


def processes() -> int:
    """Training processes: one per GPU when there are several and the user wants them all."""
    return gpu_count() if gpu_count() > 1 and ss[K["all_gpus"]] and ss[K["device"]] in ("auto", "cuda") else 1


def form_config() -> TrainConfig:
    return TrainConfig(
        data=[str(p) for p in ss[common.DATA_PATHS]], class_names=ss[common.CLASS_NAMES],
        model=ss[K["model"]], weights=weights_value(), freeze_backbone=freeze_value(),
        img_size=int(ss[K["img_size"]]), epochs=int(ss[K["epochs"]]), batch_size=int(ss[K["batch_size"]]),
        optimizer=ss[K["optimizer"]], lr=float(ss[K["lr"]]), schedule=ss[K["schedule"]],
        patience=int(ss[K["patience"]]), split=list(ss[common.SPLIT_RATIOS]), seed=int(ss[K["seed"]]),
        device=ss[K["device"]], augment=bool(ss[K["augment"]]), precision=ss[K["precision"]],
        memory_budget=ss[K["memory_budget"]].strip() or None,
    )  # fmt: skip


def show_command(data_ok: bool) -> None:
    """The same run as a command, to run in a terminal or on a cluster."""
    if not data_ok:
        return
    try:
        cfg = form_config()
    except BinclsError:
        return  # the Train button reports it
    with st.popover("Command line", icon=":material/terminal:"):
        st.caption("These settings as a command (the app runs the same engine):")
        st.code(shlex.join(to_command(cfg, processes())), language="bash", wrap_lines=True)
        st.caption("On several GPUs or machines, run it under torchrun (README: Training on several GPUs "
                   "or machines):")
        st.code(shlex.join(to_command(cfg, max(2, processes()))), language="bash", wrap_lines=True)


def launch(action) -> None:
    """Start or resume a run in the background; a busy device or a user error becomes a message."""
    try:
        run = action()
    except BusyError as exc:
        ss[common.CURRENT_RUN] = exc.run.id
        st.warning(str(exc), icon=":material/hourglass_top:")
    except BinclsError as exc:
        common.show_error(exc)
    else:
        ss[common.CURRENT_RUN] = run.id
        st.rerun()  # fold the settings away and show the run's live panel


def checked_start() -> RunFolder:
    cfg = form_config()
    # Checked here so a wrong combination is a message now, not a failed run in a few seconds.
    model_config(cfg.model, cfg.img_size, cfg.weights, cfg.freeze_backbone)
    if ss[K["weights"]] == "file" and cfg.weights != "none":
        confine(cfg.weights)  # served to others (BINCLS_DATA_ROOT): no reading files outside the root
        if not Path(cfg.weights).is_file():
            raise BinclsError(f"Weights file {cfg.weights!r} not found: give the path of a saved state_dict.")
    resolve_device(cfg.device)
    return start_training(cfg, runs_dir(), processes=processes())


# Model summary --------------------------------------------------------------------------------------
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
        rows, totals = summary_table(model, size, weights_value(), freeze_value())
    except BinclsError as exc:
        common.show_error(exc)
        return
    except RuntimeError as exc:  # e.g. an image too small for this architecture's downsampling
        common.show_error(BinclsError(f"{model} cannot take {size} px images: {exc}"))
        return
    c1, c2, c3 = st.columns(3)
    c1.metric("Total params", f"{totals['total']:,}")
    c2.metric("Trainable", f"{totals['trainable']:,}")
    c3.metric("Size", f"{totals['size_mb']:.1f} MB")
    st.caption(f"Input 3 × {size} × {size}; output shapes without the batch dimension.")
    st.dataframe(rows, hide_index=True, height=420,
                 column_config={"Params": st.column_config.NumberColumn(format="localized")})


# Dataset --------------------------------------------------------------------------------------------
def dataset_line() -> bool:
    """One line about the data the run will use; False when it cannot be used."""
    label = common.data_label(ss[common.DATA_PATHS])
    try:
        data = common.current_data()
    except BinclsError as exc:
        st.error(f"**{label}** cannot be used yet: {exc}", icon=":material/error:")
        st.page_link("pages/data.py", label="Fix it on the Data page", icon=":material/folder_open:")
        return False
    counts = data.counts()
    parts = " / ".join(f"{sum(counts[p].values())} {p}" for p in ("train", "val", "test"))
    t, v, te = ss[common.SPLIT_RATIOS]
    st.markdown(
        f":material/folder_open: **{label}** · {' vs '.join(data.class_names)} · {parts} images "
        f"(split {t:.0%} / {v:.0%} / {te:.0%}) · change it on the Data page"
    )
    return True


# The run --------------------------------------------------------------------------------------------
def epoch_records(records: list[dict]) -> list[dict]:
    return [r for r in records if r.get("kind") == "epoch"]


def loss_figure(records: list[dict], x_max: float) -> go.Figure:
    steps = [r for r in records if r.get("kind") == "step"]
    epochs = epoch_records(records)
    if len(steps) > MAX_STEP_POINTS:
        steps = steps[:: len(steps) // MAX_STEP_POINTS + 1]
    fig = go.Figure()
    fig.add_scatter(
        x=[r["epoch"] - 1 + r["step"] / max(r["steps_per_epoch"], 1) for r in steps],
        y=[r["loss"] for r in steps],
        mode="lines", name="train loss per step", line={"width": 1, "color": STEP_COLOR},
    )  # fmt: skip
    fig.add_scatter(x=[r["epoch"] for r in epochs], y=[r.get("train_loss") for r in epochs],
                    mode="lines+markers", name="train loss (epoch)", line={"color": TRAIN_COLOR})
    fig.add_scatter(x=[r["epoch"] for r in epochs], y=[r.get("val_loss") for r in epochs],
                    mode="lines+markers", name="val loss", line={"color": VAL_COLOR})
    return style(fig, "Loss", "loss (BCE)", x_max)


def accuracy_figure(records: list[dict], x_max: float) -> go.Figure:
    epochs = epoch_records(records)
    fig = go.Figure()
    fig.add_scatter(x=[r["epoch"] for r in epochs], y=[r.get("train_accuracy") for r in epochs],
                    mode="lines+markers", name="train accuracy", line={"color": TRAIN_COLOR})
    fig.add_scatter(x=[r["epoch"] for r in epochs], y=[r.get("val_accuracy") for r in epochs],
                    mode="lines+markers", name="val accuracy", line={"color": VAL_COLOR})
    fig = style(fig, "Accuracy", "accuracy", x_max)
    fig.update_yaxes(range=[0, 1.02], tickformat=".0%")
    return fig


def style(fig: go.Figure, title: str, y_title: str, x_max: float) -> go.Figure:
    fig.update_layout(
        title={"text": title}, height=340, margin={"l": 10, "r": 10, "t": 70, "b": 10}, showlegend=True,
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "left", "x": 0},
        hovermode="x unified",
    )  # fmt: skip
    # The axis spans the epochs asked for, so a live curve grows across it; ticks on whole epochs.
    x_data = max((max(t.x) for t in fig.data if t.x), default=0)
    x_end = max(x_max, x_data, 1)
    fig.update_xaxes(title_text="epoch", range=[0, x_end + 0.1 * max(1, x_end / 10)],
                     dtick=1 if x_end <= 12 else None)
    fig.update_yaxes(title_text=y_title)
    return fig


def show_curves(run: RunFolder, x_max: float) -> None:
    records = run.read_metrics()
    if not records:
        st.caption("The curves appear after the first training step.")
        return
    c1, c2 = st.columns(2)
    c1.plotly_chart(loss_figure(records, x_max))
    c2.plotly_chart(accuracy_figure(records, x_max))
    epochs = epoch_records(records)
    if epochs:
        last = epochs[-1]
        st.caption(
            f"Epoch {last['epoch']}: train loss {num(last.get('train_loss'), 4)}, "
            f"accuracy {pct(last.get('train_accuracy'))} · val loss {num(last.get('val_loss'), 4)}, "
            f"accuracy {pct(last.get('val_accuracy'))} · {last.get('epoch_time', 0):.1f} s"
        )


def run_header(run: RunFolder, status: dict) -> None:
    cfg = run.config()
    state = status.get("state", "unknown")
    st.subheader(f"{common.STATE_ICONS.get(state, '')} Run {run.id}", anchor=False)
    opt = cfg.get("optimizer", "")
    lr = cfg.get("lr") or DEFAULT_LR.get(opt)
    facts = [f"**{state}**", cfg.get("model", ""), f"{opt} lr {lr:g}" if lr else opt,
             status.get("device_name", "")]
    if status.get("train_images") is not None:
        facts.append(f"{status['train_images']} train / {status['val_images']} val images")
    st.caption(" · ".join(f for f in facts if f))


@st.fragment(run_every=1.0)
def live_panel(run_id: str) -> None:
    """Redrawn about once a second from the run folder alone; the page around it stays put."""
    run = common.run_by_id(run_id)
    if run is None:
        st.warning(f"Run {run_id} was deleted.")
        return
    status = run.status()
    if status.get("state") not in ACTIVE:
        st.rerun()  # the run ended: redraw the whole page with its results
    run_header(run, status)
    epochs = status.get("epochs") or run.config().get("epochs") or 1
    epoch, step, steps = status.get("epoch") or 0, status.get("step") or 0, status.get("steps_per_epoch") or 0
    bar, stop = st.columns([6, 1], vertical_alignment="bottom")
    if status.get("state") == "queued":
        bar.progress(0.0, text=f"Starting: {status.get('message') or 'launching the training process'}…")
    elif not epoch:
        bar.progress(0.0, text=f"Epoch 1/{epochs} · first batches…")
    else:
        done = min(((epoch - 1) + (step / steps if steps else 0)) / epochs, 1.0)
        ips = status.get("images_per_s")
        bar.progress(done, text=f"Epoch {epoch}/{epochs} · step {step}/{steps} · "
                                f"{ips or 0:.0f} images/s · ETA {common.fmt_duration(status.get('eta_s'))}")
    # One button whose identity never changes, so a rerun never shows two of them.
    if stop.button("Stop", icon=":material/stop:", width="stretch", disabled=run.stop_requested()):
        stop_run(run)
    if run.stop_requested():
        st.caption(":material/hourglass_top: Stop requested: the run ends after the current batch "
                   "and saves its last checkpoint.")
    show_curves(run, epochs)


def ended_panel(run: RunFolder) -> None:
    status = run.status()
    state = status.get("state")
    cfg = run.config()
    run_header(run, status)
    records = run.read_metrics()
    epochs = epoch_records(records)
    asked = cfg.get("epochs") or status.get("epochs") or 0
    started, finished = status.get("started"), status.get("finished")
    took = common.fmt_duration(finished - started) if started and finished else "?"
    if state == "failed":
        message = status.get("error") or "no message was recorded."
        st.error(f"The run failed: {message}", icon=":material/error:")
    elif state == "interrupted":
        st.warning("The training process ended without finishing (it was killed, or the machine restarted). "
                   "The checkpoints saved until then are kept.", icon=":material/warning:")
    elif state == "stopped":
        saved = ("its last checkpoint is saved" if run.last_checkpoint.exists()
                 else "it saved no checkpoint")
        st.info(f"Stopped on request after {len(epochs)} of {asked} epochs ({took}); {saved}.",
                icon=":material/stop_circle:")
    elif state == "finished":
        early = " (early stopping)" if len(epochs) < asked else ""
        st.success(f"Finished {len(epochs)} of {asked} epochs in {took}{early}.",
                   icon=":material/check_circle:")
    if state in ("failed", "interrupted", "stopped") and len(epochs) < asked:
        last = "its last checkpoint" if run.last_checkpoint.exists() else "the start (no checkpoint saved)"
        if st.button("Resume", icon=":material/resume:", type="primary",
                     help=f"Continue this run from {last}, with its optimizer state and the same split."):
            launch(lambda: resume_training(run, runs_dir()))
    if state in ("failed", "interrupted"):
        console = run.path / "console.txt"
        if console.exists():
            with st.expander("Console output (last lines)"):
                st.code("\n".join(console.read_text(errors="replace").splitlines()[-40:]) or "(empty)",
                        language=None)
    best = next((r for r in epochs if r["epoch"] == status.get("best_epoch")), None)
    if best is not None:
        cols = st.columns(5)
        cols[0].metric("Best epoch", f"{best['epoch']} of {len(epochs)}")
        cols[1].metric("Val accuracy", pct(best.get("val_accuracy")))
        cols[2].metric("Val F1", num(best.get("val_f1")))
        cols[3].metric("Val AUROC", num(best.get("val_auroc")))
        cols[4].metric("Val loss", num(best.get("val_loss"), 4))
        st.page_link("pages/evaluate.py", label="Evaluate the best checkpoint on the test set",
                     icon=":material/fact_check:")
    show_curves(run, max(len(epochs), 1))


def pct(v: float | None) -> str:
    return "–" if v is None else f"{v:.1%}"


def num(v: float | None, digits: int = 3) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def shown_run() -> RunFolder | None:
    """The run this session started or picked, else the active one, else the newest."""
    busy = active_run(runs_dir())
    picked = common.run_by_id(ss.get(common.CURRENT_RUN))
    return picked or busy or common.current_run()


def fold_settings_for(run: RunFolder | None) -> None:
    """Once per run the user is following, fold the settings away so the run is in view."""
    ss.setdefault(common.TRAIN_SETTINGS_OPEN, True)
    if run is None or ss.get(common.TRAIN_COLLAPSED_FOR) == run.id:
        return
    if run.id == ss.get(common.CURRENT_RUN) or run.status().get("state") in ACTIVE:
        ss[common.TRAIN_SETTINGS_OPEN] = False
        ss[common.TRAIN_COLLAPSED_FOR] = run.id


def run_panel(run: RunFolder | None) -> None:
    busy = active_run(runs_dir())
    if busy is not None and run is not None and run.id != busy.id:
        c1, c2 = st.columns([5, 1], vertical_alignment="center")
        c1.info(f"Run {busy.id} is training now.", icon=":material/play_circle:")
        if c2.button("Show it", width="stretch"):
            ss[common.CURRENT_RUN] = busy.id
            st.rerun()
    if run is None:
        st.info("No runs yet: choose the settings above and press Train.", icon=":material/model_training:")
    elif run.status().get("state") in ACTIVE:
        live_panel(run.id)
    else:
        ended_panel(run)


# Page -----------------------------------------------------------------------------------------------
st.title("Train")
init_settings()
data_ok = dataset_line()
run = shown_run()
fold_settings_for(run)
with st.expander("Model and training settings", icon=":material/tune:", key=common.TRAIN_SETTINGS_OPEN,
                 on_change="rerun"):
    left, right = st.columns([1, 1], gap="large")
    with left:
        model_settings()
        pressed = training_form(data_ok)
        show_command(data_ok)
    with right:
        show_summary()
ss[common.TRAIN_SAVED] = {k: ss[k] for k in (*K.values(), common.TRAIN_SETTINGS_OPEN) if k in ss}
if pressed:
    launch(checked_start)
run_panel(run)
