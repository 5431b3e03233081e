"""Engine calls behind Streamlit's caches: the scan, the data, evaluations, models, predictions, thumbnails.

Cache keys include file and folder stamps (`bincls.data.browse`), so a changed file is read again.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from bincls import BinclsError
from bincls.data import data_root
from bincls.data.browse import file_stamp, folder_fingerprint, list_subfolders
from bincls.data.dataset import DataSource, split_data
from bincls.data.folder_layout import resolve_layout
from bincls.data.overlay import load_decisions
from bincls.data.scan import ScanResult, scan_layout
from bincls.paths import runs_dir
from bincls.runs.folder import RunFolder, list_runs
from bincls.runs.summary import runs_with_checkpoint
from pages.support.shared import keys
from pages.support.shared.state import split_config


# A resource, not data: st.cache_data would pickle the result on every read, over a second per read
# at 100,000 files and three reads per rerun. Pages only read a ScanResult, so one shared copy is safe.
@st.cache_resource(show_spinner=False, max_entries=8)
def _scan(paths: tuple[str, ...], names: tuple[str, ...] | None, fingerprint: tuple) -> ScanResult:
    layout = resolve_layout(list(paths), list(names) if names else None)
    # The bar's slot is made in here: st.cache_resource replays the elements a cached call drew, and it
    # cannot replay into a block made outside the function (CacheReplayClosureError on a cache hit).
    slot = st.empty()

    def progress(done: int, total: int) -> None:
        if total >= 200:  # only long scans are worth a bar
            slot.progress(done / max(total, 1), text=f"Checking files: {done:,} of {total:,}")

    try:
        return scan_layout(layout, progress=progress)
    finally:
        slot.empty()


def current_scan() -> ScanResult:
    """The scan of the current dataset (cached by path + folder mtimes); raises BinclsError."""
    paths = [str(p) for p in st.session_state[keys.DATA_PATHS]]
    names = st.session_state[keys.CLASS_NAMES]
    return _scan(tuple(paths), tuple(names) if names else None, folder_fingerprint(paths))


def current_data() -> DataSource:
    """Scan and split of the current dataset, the label audit's decisions applied: the very split a run
    of it trains on (`split_data`, as the run calls it); raises BinclsError when it cannot be used."""
    return split_data(current_scan(), split_config(), load_decisions(st.session_state[keys.DATA_PATHS]))


@st.cache_data(ttl=30, show_spinner="Counting images...", max_entries=64)
def subfolders(folder: str) -> list:
    """The folder browser's listing (`bincls.data.browse.list_subfolders`), for 30 s."""
    return list_subfolders(folder)


@st.cache_data(ttl=60, show_spinner=False)
def _weights_at_hand(model: str, stamp: tuple) -> str | None:
    from bincls.models.weights import weights_at_hand as at_hand

    return at_hand(model)


def weights_at_hand(model: str) -> str | None:
    """How `model`'s ImageNet weights can be had here, or None (`bincls.models.weights.weights_at_hand`):
    cached, for a minute (it may try the network) or until a weights file comes or goes."""
    from bincls.models.weights import weights_stamp

    return _weights_at_hand(model, weights_stamp())


def pretrained_at_hand() -> str | None:
    """The first backbone whose ImageNet weights are at hand (the audit's and Auto's choice), or None."""
    from bincls.models.weights import BACKBONES

    return next((m for m in BACKBONES if weights_at_hand(m) is not None), None)


@st.cache_data(ttl=60, show_spinner=False)
def _auto_choice(stamp: tuple) -> tuple[str, int]:
    from bincls.training.config import TrainConfig
    from bincls.training.recipes import resolve

    cfg = resolve(TrainConfig(data=["."], preset="auto")).config  # the recipe does not depend on the data
    return cfg.model, int(cfg.img_size)


def auto_choice() -> tuple[str, int]:
    """(model, image size) the Auto recipe trains here: mobilenet_v2 at 224 px when its weights are at hand,
    else the scratch recipe's model and size."""
    from bincls.models.weights import weights_stamp

    return _auto_choice(weights_stamp())


def runs() -> list[RunFolder]:
    return list_runs(runs_dir())


def checkpoint_runs() -> list[RunFolder]:
    """Runs that are over and have a checkpoint to evaluate or predict with, newest first."""
    return runs_with_checkpoint(runs_dir())


@st.cache_data(show_spinner="Evaluating: running the model on every image…", max_entries=16)
def _evaluation(run_path: str, data: tuple[str, ...] | None, stamps: tuple):
    from bincls.inference.evaluate import evaluate

    return evaluate(run_path, data=list(data) if data else None)


def evaluation(run: RunFolder, data: list[str] | None = None):
    """The run's evaluation (cached by checkpoint path + mtime, split, data folders); raises BinclsError.

    Computed at the run's saved threshold; `inference.evaluate.at_threshold` moves it without the model.
    """
    from bincls.inference.evaluate import find_checkpoint

    data = [str(data_root.confine(p)) for p in data] if data else None  # typed on the page
    ckpt, _ = find_checkpoint(run.path)
    stamps = (str(ckpt), file_stamp(ckpt), file_stamp(run.split_path), folder_fingerprint(data or []))
    return _evaluation(str(run.path), tuple(data) if data else None, stamps)


@st.cache_resource(show_spinner="Loading the model…", max_entries=4)
def _predictor(checkpoint: str, stamps: tuple):
    from bincls.inference.predict import Predictor

    return Predictor(checkpoint)


def predictor(run: RunFolder):
    """The run's model, loaded once (cached by checkpoint path + mtime and the run's config.json, which
    holds the saved threshold); raises BinclsError."""
    from bincls.inference.evaluate import find_checkpoint

    ckpt, _ = find_checkpoint(run.path)
    return _predictor(str(ckpt), (file_stamp(ckpt), file_stamp(run.path / "config.json")))


@st.cache_data(show_spinner=False, max_entries=2000)
def _thumbnail(path: str, side: int, stamp: int):
    from bincls.data.images import load_rgb

    try:
        im = load_rgb(path, max_side=side)
    except BinclsError:
        return None
    im.thumbnail((side, side))
    return im


def thumbnail(path: str, side: int):
    """A small RGB copy of an image file for galleries (cached by path and mtime), or None when it
    cannot be read."""
    return _thumbnail(str(path), side, file_stamp(path))


@st.cache_data(show_spinner="Predicting…", max_entries=8)
def _predict_uploads(run_path: str, stamps: tuple, items: tuple[tuple[str, bytes], ...], heatmaps: bool):
    from bincls.inference.batch_predict import explain_many

    return explain_many(predictor(RunFolder(Path(run_path))), list(items), heatmaps, runs_dir=runs_dir())


def predict_uploads(run: RunFolder, items: list[tuple[str, bytes]], heatmaps: bool) -> list:
    """Predict uploaded files from their bytes (the names are only shown, never used as paths); cached."""
    pred = predictor(run)
    stamps = (str(pred.checkpoint), file_stamp(pred.checkpoint), pred.threshold)
    return _predict_uploads(str(run.path), stamps, tuple(items), heatmaps)


@st.cache_data(show_spinner=False, max_entries=4)
def _predict_folder(run_path: str, stamps: tuple, folder: str, fingerprint: tuple, heatmaps: bool) -> list:
    from bincls.inference.batch_predict import explain_many
    from bincls.inference.predict import expand_inputs

    slot = st.empty()  # made in here: see _scan
    slot.progress(0.0, text=f"Finding the images in {folder}…")
    files = expand_inputs([folder])

    def progress(done: int, total: int) -> None:
        slot.progress(done / max(total, 1), text=f"Predicting: {done:,} of {total:,} files")

    try:
        pred = predictor(RunFolder(Path(run_path)))
        return explain_many(pred, [(f, f) for f in files], heatmaps, progress=progress, runs_dir=runs_dir())
    finally:
        slot.empty()


def predict_folder(run: RunFolder, folder: str, heatmaps: bool) -> list:
    """Predict every file below a folder (cached by the folder's mtimes); raises BinclsError."""
    p = data_root.confine(folder)  # typed on the page: kept inside BINCLS_DATA_ROOT when it is set
    if not p.is_dir():
        raise BinclsError(f"{p} is not a folder: give the path of a folder of images on this computer.")
    pred = predictor(run)
    stamps = (str(pred.checkpoint), file_stamp(pred.checkpoint), pred.threshold)
    return _predict_folder(str(run.path), stamps, str(p), folder_fingerprint([str(p)]), heatmaps)
