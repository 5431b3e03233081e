"""Preview page: one training batch exactly as the model gets it, and what augmentation does."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import streamlit as st
import torch

from bincls import BinclsError
from bincls.data.batch_feeds import preview_batch
from bincls.data.transforms import Augment, Preprocess, denormalize
from bincls.models import list_models, model_config
from pages.support.shared import keys, loaders
from pages.support.shared.charts import RGB, channel_histogram
from pages.support.shared.formatting import md
from pages.support.shared.messages import show_error, stop_on_error
from pages.support.shared.state import require_app

require_app(__file__)

ss = st.session_state

BATCH = 16
# Tiles flow in rows that wrap (four in a row beside the statistics on a wide screen, two on a phone), not in
# columns, which a phone stacks one under the other at full width: 16 photos 360 px tall each.
GRID_TILE = 148
AUG_TILE = 104
AUG_VIEWS = 8
TILE = 128  # display width of a tile; small inputs are enlarged without smoothing


def _preprocess(name: str, img_size: int | None = None) -> Preprocess:
    cfg = model_config(name, img_size)
    return Preprocess(cfg.img_size, cfg.mean, cfg.std)


def _to_uint8(x: torch.Tensor, pre: Preprocess) -> np.ndarray:
    """Normalized [..., 3, S, S] -> displayable [..., S, S, 3] uint8."""
    img = denormalize(x, pre).mul(255).round().to(torch.uint8)
    return img.movedim(-3, -1).numpy()


@st.cache_data(show_spinner="Loading a batch...", max_entries=16)
def load_batch(paths: tuple[str, ...], labels: tuple[int, ...], model: str, size: int, train: bool,
               seed: int) -> dict:  # fmt: skip
    """A seeded random batch of the train split through the model's train or eval transform.

    x: normalized [B, 3, S, S] float32, what the model gets; shown: denormalized [B, S, S, 3] uint8.
    (A plain dict: st.cache_data pickles it, and classes defined in a page script do not pickle.)
    """
    pre = _preprocess(model, size)
    idx = np.random.default_rng(seed).choice(len(paths), size=min(BATCH, len(paths)), replace=False)
    # The trainer's own batch path: same decode, resize and (train) batch augmentation.
    x = preview_batch([paths[i] for i in idx], pre, Augment() if train else None, seed)
    return {
        "x": x.numpy(),
        "shown": _to_uint8(x, pre),
        "labels": [labels[i] for i in idx],
        "paths": [paths[i] for i in idx],
    }


@st.cache_data(show_spinner="Augmenting...", max_entries=32)
def augmented_views(path: str, mtime: float, model: str, size: int, seed: int) -> tuple[np.ndarray, ...]:
    """(the eval view, AUG_VIEWS random train views) of one image, as uint8 for display."""
    pre = _preprocess(model, size)
    plain = preview_batch([path], pre, None, seed)[0]
    views = preview_batch([path], pre, Augment(), seed, repeat=AUG_VIEWS)
    return _to_uint8(plain, pre), _to_uint8(views, pre)


def _enlarge(tiles: np.ndarray) -> list[np.ndarray]:
    """Tiles smaller than TILE are enlarged by repeating pixels, so they stay exactly what the model sees."""
    k = max(1, TILE // tiles.shape[1])
    return [t.repeat(k, axis=0).repeat(k, axis=1) if k > 1 else t for t in tiles]


def _new_batch() -> None:
    ss[keys.PREVIEW_SEED] = int(ss[keys.PREVIEW_SEED]) + 1


# Page --------------------------------------------------------------------------------------------
st.title("Preview")
st.caption(
    "One batch of the train split exactly as the model gets it: decoded, resized, augmented (train "
    "transform) and normalized. Tiles are shown denormalized, so colours look natural."
)
with stop_on_error(hint="Fix the data on the Data page first."):
    data = loaders.current_data()

models = {e.name: e for e in list_models()}
auto_model, auto_size = loaders.auto_choice()  # what the Train page's Auto recipe would train
if ss.get(keys.PREVIEW_MODEL) not in models:
    ss[keys.PREVIEW_MODEL] = auto_model if auto_model in models else next(iter(models))
ss.setdefault(keys.PREVIEW_TRAIN, True)

c_model, c_mode, c_new = st.columns([2, 2, 1], vertical_alignment="bottom")
model = c_model.selectbox(
    "Model (sets the input size and normalization)", list(models), key=keys.PREVIEW_MODEL,
)
train_mode = c_mode.toggle(
    "Train transform (random augmentation)", key=keys.PREVIEW_TRAIN,
    help="Off: the eval transform used for validation, test and prediction (resize + normalize only).",
)
c_new.button("New batch", on_click=_new_batch, icon=":material/refresh:", width="stretch")

size = auto_size if model == auto_model else models[model].default_img_size
pre = _preprocess(model, size)
aug = Augment()
seed = int(ss[keys.PREVIEW_SEED])
st.caption(
    f"{models[model].description}. Input {pre.img_size}x{pre.img_size} px"
    + (" (as Auto trains it)" if model == auto_model else "") + ", "
    f"mean {tuple(round(v, 3) for v in pre.mean)}, std {tuple(round(v, 3) for v in pre.std)}. "
    + (
        f"Train transform: random crop keeping {aug.scale[0]:.0%}-{aug.scale[1]:.0%} of the area, "
        f"{'horizontal flip, ' if aug.hflip else ''}{'vertical flip, ' if aug.vflip else ''}"
        f"rotation up to {aug.rotation:g} degrees, colour jitter {aug.color_jitter:g}."
        if train_mode
        else "Eval transform: the whole image squashed to a square, then normalized."
    )
    + f" Batch {seed}."
)

part = data.part("train")
names = data.class_names
with stop_on_error():
    labels = tuple(int(v) for v in part["label"])
    batch = load_batch(tuple(part["path"]), labels, model, size, train_mode, seed)

labels, shown, x = batch["labels"], batch["shown"], batch["x"]
st.subheader(f"One batch: {len(labels)} images of the train split")
grid, stats = st.columns([3, 1], gap="large")
with grid:
    tiles = _enlarge(shown)
    with st.container(horizontal=True, gap="small"):
        for tile, label in zip(tiles, labels):
            st.image(tile, caption=md(names[label]), width=GRID_TILE)
with stats:
    st.markdown("**Normalized batch tensor**")
    table = pd.DataFrame(
        [x.mean(axis=(0, 2, 3)), x.std(axis=(0, 2, 3)), x.min(axis=(0, 2, 3)), x.max(axis=(0, 2, 3))],
        index=["mean", "std", "min", "max"],
        columns=[n for n, _ in RGB],
    ).round(3)
    st.dataframe(table, width="stretch")
    counts = [labels.count(i) for i in range(2)]
    st.caption(
        f"Shape {list(x.shape)} (batch, channel, height, width), float32. "
        f"Labels: {counts[0]} x {md(names[0])} (0), {counts[1]} x {md(names[1])} (1)."
    )
    st.caption(
        "Scratch models map 0..1 to -1..1 (mean 0.5, std 0.5); pretrained backbones use the ImageNet "
        "statistics, which give mean near 0 and std near 1 on typical photos."
    )

st.subheader("Pixel values before and after normalization")
h1, h2 = st.columns(2, gap="large")
before = shown.astype(np.float32).transpose(0, 3, 1, 2) / 255.0
h1.plotly_chart(channel_histogram(before, "Before: RGB values of the batch", "Pixel value (0..1)", 0.0, 1.0),
                width="stretch")
lo, hi = float(x.min()), float(x.max())
after = channel_histogram(x, "After: normalized values the model gets", "Normalized value", lo,
                          max(hi, lo + 1e-6))
h2.plotly_chart(after, width="stretch")

st.subheader("Augmentation: one image, several random train transforms")
options = list(dict.fromkeys(batch["paths"]))
if ss.get(keys.PREVIEW_IMAGE) not in options:
    ss[keys.PREVIEW_IMAGE] = options[0]
label_of = dict(zip(batch["paths"], batch["labels"]))
path = st.selectbox(
    "Image from the batch", options, key=keys.PREVIEW_IMAGE,
    format_func=lambda p: f"{names[label_of[p]]}: {os.path.basename(p)}",
)
try:
    plain, views = augmented_views(path, os.path.getmtime(path), model, size, seed)
except (BinclsError, OSError) as exc:
    show_error(exc)
    st.stop()
tiles = _enlarge(np.concatenate([plain[None], views]))
captions = ["eval"] + [f"train #{i + 1}" for i in range(len(views))]
with st.container(horizontal=True, gap="small"):
    for tile, caption in zip(tiles, captions):
        st.image(tile, caption=caption, width=AUG_TILE)
st.caption("\"New batch\" also draws new random transforms.")

st.page_link("pages/train.py", label="Next: train a model on these images", icon=":material/model_training:")
