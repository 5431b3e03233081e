"""What every page shares: session keys (all of them, here), cached engine calls, the sidebar.

Pages stay thin: they read and write state through this module and call `bincls` for the work.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import streamlit as st

from bincls import BinclsError
from bincls.compute import cpu_threads
from bincls.data import data_root as confinement
from bincls.data.dataset import DataSource
from bincls.data.folder_layout import resolve_layout
from bincls.data.scan import ScanResult, scan_layout
from bincls.data.split import SplitConfig, make_split
from bincls.paths import SAMPLE_DATA, runs_dir
from bincls.training.launcher import active_run
from bincls.training.run_folder import RunFolder, list_runs

# Session keys ---------------------------------------------------------------------------------------
DATA_PATHS = "data_paths"  # list[str]: one root or two class folders
CLASS_NAMES = "class_names"  # list[str] | None: renamed classes
SPLIT_RATIOS = "split_ratios"  # (train, val, test)
SPLIT_SEED = "split_seed"
BROWSE_DIR = "browse_dir"  # folder shown by the folder browser
CURRENT_RUN = "current_run"  # run id last started or picked
PREVIEW_SEED = "preview_seed"  # changes on "new batch"
APP_BOOTED = "app_booted"  # app.py has set up the navigation in this session
WANTED_PAGE = "wanted_page"  # page asked for by a direct link before app.py had run
# Data page (set up by data_page_state(), at the end of this file)
BROWSE_PICKS = "browse_picks"  # {"A": str | None, "B": str | None}: class folders picked while browsing
DATA_MESSAGE = "data_message"  # (kind, text) about the last data choice, shown once
DATA_ROOT_INPUT = "w_data_root"  # text inputs of the "type a path" form
DATA_CLASS_A_INPUT = "w_data_class_a"
DATA_CLASS_B_INPUT = "w_data_class_b"
BROWSE_SELECTED = "w_browse_selected"  # subfolder chosen in the browser's list
UPLOAD_FILES = ("w_upload_a", "w_upload_b")  # file uploaders, one per class
UPLOAD_NAMES = ("w_upload_name_a", "w_upload_name_b")  # class names for the uploads
UPLOAD_GENERATION = "upload_generation"  # bumped after saving, to clear the uploaders
SPLIT_VAL_PCT = "w_split_val"  # split sliders, percent; SPLIT_RATIOS stays the truth
SPLIT_TEST_PCT = "w_split_test"
SPLIT_SEED_INPUT = "w_split_seed"
DATA_SKIPPED_PAGE = "w_data_skipped_page"  # page of the skipped-files table
DATA_EXCLUDED_PAGE = "w_data_excluded_page"  # page of the left-out-of-training table
# Preview page
PREVIEW_MODEL = "preview_model"  # registry name whose img_size/mean/std the preview uses
PREVIEW_TRAIN = "preview_train"  # True: train transform (random augmentation); False: eval
PREVIEW_IMAGE = "preview_image"  # path of the image shown in the augmentation preview


def init_state() -> None:
    """Defaults on first start: the bundled sample is preselected."""
    ss = st.session_state
    ss.setdefault(DATA_PATHS, [str(SAMPLE_DATA)])
    ss.setdefault(CLASS_NAMES, None)
    ss.setdefault(SPLIT_RATIOS, (0.7, 0.2, 0.1))
    ss.setdefault(SPLIT_SEED, 0)
    ss.setdefault(BROWSE_DIR, str(Path.home()))
    ss.setdefault(CURRENT_RUN, None)
    ss.setdefault(PREVIEW_SEED, 0)


def split_config() -> SplitConfig:
    t, v, te = st.session_state[SPLIT_RATIOS]
    return SplitConfig(t, v, te, seed=int(st.session_state[SPLIT_SEED]))


# Cached engine calls --------------------------------------------------------------------------------
def folder_fingerprint(paths: list[str]) -> tuple:
    """Changes when files are added, removed or renamed below `paths` (folder mtimes)."""
    out = []
    for p in paths:
        for dirpath, dirnames, _ in os.walk(p):
            dirnames.sort()
            try:
                out.append((dirpath, os.stat(dirpath).st_mtime_ns))
            except OSError:
                pass
    return tuple(out)


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
    paths = [str(p) for p in st.session_state[DATA_PATHS]]
    names = st.session_state[CLASS_NAMES]
    return _scan(tuple(paths), tuple(names) if names else None, folder_fingerprint(paths))


def current_data() -> DataSource:
    """Scan and split of the current dataset; raises BinclsError when it cannot be used."""
    scan = current_scan()
    cfg = split_config()
    return DataSource(scan, make_split(scan, cfg), cfg)


def show_error(exc: BaseException) -> None:
    """Engine errors are shown as messages, never as tracebacks."""
    st.error(str(exc), icon=":material/error:")


# Runs -----------------------------------------------------------------------------------------------
def runs() -> list[RunFolder]:
    return list_runs(runs_dir())


def current_run() -> RunFolder | None:
    """The run picked or started in this session, else the newest run."""
    rid = st.session_state.get(CURRENT_RUN)
    if rid and (runs_dir() / rid / "status.json").exists():
        return RunFolder(runs_dir() / rid)
    all_runs = runs()
    return all_runs[0] if all_runs else None


STATE_ICONS = {
    "queued": ":material/schedule:",
    "running": ":material/play_circle:",
    "finished": ":material/check_circle:",
    "stopped": ":material/stop_circle:",
    "failed": ":material/error:",
    "interrupted": ":material/warning:",
}


# Sidebar --------------------------------------------------------------------------------------------
def sidebar(live: bool = True) -> None:
    """The dataset and the run in the sidebar; `live` keeps the run's state refreshing while it trains."""
    with st.sidebar:
        st.caption("DATASET")
        paths = st.session_state[DATA_PATHS]
        is_sample = paths == [str(SAMPLE_DATA)]
        label = "Bundled sample (ants vs bees)" if is_sample else " + ".join(Path(p).name for p in paths)
        st.markdown(f"**{label}**")
        try:
            scan = current_scan()
            counts = scan.class_counts(usable_only=True)
            st.caption(" · ".join(f"{n}: {c}" for n, c in zip(scan.class_names, counts)))
        except BinclsError:
            st.caption("Not usable yet: see the Data page.")
        st.caption("RUN")
        # Only while a run trains, and not on pages with file uploaders: a fragment rerunning on a
        # timer can drop an upload or a click made at the same moment (streamlit issue 9079).
        if live and active_run(runs_dir()) is not None:
            _sidebar_run_live()
        else:
            _sidebar_run()


@st.fragment(run_every=2.0)
def _sidebar_run_live() -> None:
    if active_run(runs_dir()) is None:
        st.rerun()  # the run ended: redraw once with the static state, and stop refreshing
    _sidebar_run()


def _sidebar_run() -> None:
    """The run's state: the one this session follows, else the newest."""
    run = current_run()
    if run is None:
        st.caption("No runs yet.")
        return
    status = run.status()
    state = status.get("state", "unknown")
    model = status.get("model") or run.config().get("model", "")
    st.markdown(f"{STATE_ICONS.get(state, '')} **{state}** · {model}")
    detail = run.id
    if state == "running" and status.get("epoch"):
        detail += f" · epoch {status['epoch']}/{status.get('epochs', '?')}"
    st.caption(detail)


def require_app(page_file: str) -> None:
    """Send a page opened without app.py through it.

    On a freshly started server, a direct link (or a refresh) to /train runs pages/train.py on its
    own, in Streamlit's folder-of-pages mode, before app.py has set up the navigation. app.py then
    opens the page that was asked for.
    """
    if not st.session_state.get(APP_BOOTED):
        st.session_state[WANTED_PAGE] = f"pages/{Path(page_file).name}"
        st.switch_page("app.py")


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    s = int(max(seconds, 0))
    return f"{s // 3600}h {s // 60 % 60:02d}m" if s >= 3600 else f"{s // 60}m {s % 60:02d}s"


def fmt_time(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else ""


# Train and Runs pages -------------------------------------------------------------------------------
# Session keys of the Train page's settings widgets, by setting name.
TRAIN_KEYS = {
    name: f"train_{name}"
    for name in ("model", "weights", "weights_file", "tuning", "img_size", "epochs", "batch_size",
                 "optimizer", "lr", "schedule", "patience", "seed", "device", "augment", "all_gpus",
                 "precision", "memory_budget")
}  # fmt: skip
TRAIN_SETTINGS_OPEN = "train_settings_open"  # the Train page's settings expander is open
TRAIN_COLLAPSED_FOR = "train_collapsed_for"  # run id the settings were folded away for, once
TRAIN_SAVED = "train_saved"  # {widget key: value}: the Train settings, kept while on other pages
RUNS_TABLE = "runs_table"  # the Runs table's row selection
RUNS_TABLE_IDS = "runs_table_ids"  # run ids in table order when that selection was made
RUNS_DELETE_ERRORS = "runs_delete_errors"  # engine errors from the last deletion, shown once


def keep_widget_state(keys) -> None:
    """Streamlit forgets a widget's value once its page is left; writing it back keeps it."""
    for key in keys:
        if key in st.session_state:
            st.session_state[key] = st.session_state[key]


def run_by_id(run_id: str | None) -> RunFolder | None:
    """The run folder with this id in the runs folder, or None when it is gone."""
    if not run_id:
        return None
    path = runs_dir() / run_id
    return RunFolder(path) if (path / "status.json").exists() else None


# Plain-text state marks, for tables where material icons do not render.
STATE_MARKS = {
    "queued": "◷ queued",
    "running": "▶ running",
    "finished": "✔ finished",
    "stopped": "■ stopped",
    "failed": "✖ failed",
    "interrupted": "⚠ interrupted",
}


def data_label(paths: list[str]) -> str:
    """How a dataset is named on the pages: the sample, or its folder names."""
    paths = [str(p) for p in paths]
    if paths == [str(SAMPLE_DATA)]:
        return "Bundled sample (ants vs bees)"
    return " + ".join(Path(p).name for p in paths)


# Evaluate and Predict pages -------------------------------------------------------------------------
EVAL_RUN = "w_eval_run"  # run picker on the Evaluate page (run id)
EVAL_SOURCE = "w_eval_source"  # "test" (the run's own test split) or "folder"
EVAL_FOLDER = "w_eval_folder"  # another folder to evaluate on: a root with one subfolder per class
EVAL_THRESHOLD = "w_eval_threshold"  # decision-threshold slider
EVAL_THRESHOLD_FOR = "eval_threshold_for"  # run id the slider was last set up for (from its saved value)
EVAL_MATRIX = "w_eval_matrix"  # confusion-matrix chart: its click selection
EVAL_MESSAGE = "eval_message"  # (kind, text) after saving a threshold or exporting, shown once
PREDICT_RUN = "w_predict_run"  # run picker on the Predict page
PREDICT_HEATMAPS = "w_predict_heatmaps"  # show Grad-CAM heat maps
PREDICT_UPLOADS = "w_predict_uploads"  # file uploader
PREDICT_CAMERA_ON = "w_predict_camera_on"  # webcam toggle: the browser asks for the camera only when on
PREDICT_CAMERA = "w_predict_camera"  # camera input
PREDICT_FOLDER_INPUT = "w_predict_folder"  # folder path typed for batch prediction
PREDICT_FOLDER = "predict_folder"  # folder submitted for batch prediction (stays until cleared)

# How many images get a full card (image, heat map, probability bars); the rest are table rows only.
PREDICT_CARDS = 12


def checkpoint_runs() -> list[RunFolder]:
    """Runs that are over and have a checkpoint to evaluate or predict with, newest first."""
    out = []
    for run in runs():
        if run.status().get("state") in ("queued", "running"):
            continue
        if run.best_checkpoint.is_file() or run.last_checkpoint.is_file():
            out.append(run)
    return out


def default_run_id(candidates: list[RunFolder]) -> str | None:
    """The current run when it can be used, else the newest finished one, else the newest."""
    ids = [r.id for r in candidates]
    cur = st.session_state.get(CURRENT_RUN)
    if cur in ids:
        return cur
    finished = [r.id for r in candidates if r.status().get("state") == "finished"]
    return (finished or ids or [None])[0]


def config_problem(run: RunFolder) -> str | None:
    """Why the run's config.json does not read back as settings (edited by hand), or None."""
    from bincls.training.config import read_run_config

    try:
        read_run_config(run.path)
    except BinclsError as exc:
        return str(exc)
    return None


def run_label(run: RunFolder) -> str:
    status, cfg = run.status(), run.config()
    when = fmt_time(status.get("created") or status.get("started"))
    model = cfg.get("model") or status.get("model", "")
    return f"{model} · {when} · {status.get('state', '?')} · {run.id.rsplit('-', 1)[-1]}"


def pick_run(key: str, candidates: list[RunFolder], label: str = "Run") -> RunFolder:
    """A run picker that follows, and sets, the session's current run (the sidebar's RUN)."""
    by_id = {r.id: r for r in candidates}
    if st.session_state.get(key) not in by_id or st.session_state.get(CURRENT_RUN) in by_id:
        st.session_state[key] = default_run_id(candidates)

    def follow() -> None:
        st.session_state[CURRENT_RUN] = st.session_state[key]

    rid = st.selectbox(label, list(by_id), key=key, on_change=follow,
                       format_func=lambda r: run_label(by_id[r]))
    return by_id[rid]


def file_stamp(path: str | os.PathLike) -> int:
    """A file's mtime in ns (0 when absent): part of cache keys, so a rewritten file is read again."""
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return 0


@st.cache_data(show_spinner="Evaluating: running the model on every image…", max_entries=16)
def _evaluation(run_path: str, data: tuple[str, ...] | None, stamps: tuple):
    from bincls.inference.evaluate import evaluate

    return evaluate(run_path, data=list(data) if data else None)


def evaluation(run: RunFolder, data: list[str] | None = None):
    """The run's evaluation (cached by checkpoint path + mtime, split, data folders); raises BinclsError.

    Computed at the run's saved threshold; `bincls.evaluate.at_threshold` moves it without the model.
    """
    from bincls.inference.evaluate import find_checkpoint

    data = [str(confinement.confine(p)) for p in data] if data else None  # typed on the page
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
def thumbnail(path: str, side: int, stamp: int):
    """A small RGB copy of an image file for galleries, or None when it cannot be read."""
    from bincls.data.images import load_rgb

    try:
        im = load_rgb(path, max_side=side)
    except BinclsError:
        return None
    im.thumbnail((side, side))
    return im


def _explained(run: RunFolder, items: list[tuple[str, bytes | str]], heatmaps: bool, progress=None) -> list:
    """Predictions (with display images, and heat maps for the first PREDICT_CARDS) in chunks."""
    pred = predictor(run)
    out, step = [], 32
    # While a run trains on this CPU, predict on one thread: both processes' thread pools would fight.
    sharing = pred.device.type == "cpu" and active_run(runs_dir()) is not None
    with cpu_threads(1 if sharing else None):
        for start in range(0, len(items), step):
            chunk = items[start : start + step]
            cards = max(PREDICT_CARDS - start, 0)  # the first images get a card: full size and a heat map
            names, sources = [n for n, _ in chunk], [s for _, s in chunk]
            if cards:
                out += pred.predict_explained(sources[:cards], names[:cards], heatmaps=heatmaps)
            if chunk[cards:]:
                out += pred.predict_explained(sources[cards:], names[cards:], heatmaps=False, display_side=96)
            if progress:
                progress(min(start + step, len(items)), len(items))
    return out


@st.cache_data(show_spinner="Predicting…", max_entries=8)
def _predict_uploads(run_path: str, stamps: tuple, items: tuple[tuple[str, bytes], ...], heatmaps: bool):
    return _explained(RunFolder(Path(run_path)), list(items), heatmaps)


def predict_uploads(run: RunFolder, items: list[tuple[str, bytes]], heatmaps: bool) -> list:
    """Predict uploaded files from their bytes (the names are only shown, never used as paths); cached."""
    pred = predictor(run)
    stamps = (str(pred.checkpoint), file_stamp(pred.checkpoint), pred.threshold)
    return _predict_uploads(str(run.path), stamps, tuple(items), heatmaps)


@st.cache_data(show_spinner=False, max_entries=4)
def _predict_folder(run_path: str, stamps: tuple, folder: str, fingerprint: tuple, heatmaps: bool) -> list:
    from bincls.inference.predict import expand_inputs

    files = expand_inputs([folder])
    slot = st.empty()  # made in here: see _scan

    def progress(done: int, total: int) -> None:
        if total > 32:
            slot.progress(done / total, text=f"Predicting: {done:,} of {total:,} files")

    try:
        return _explained(RunFolder(Path(run_path)), [(f, f) for f in files], heatmaps, progress)
    finally:
        slot.empty()


def predict_folder(run: RunFolder, folder: str, heatmaps: bool) -> list:
    """Predict every file below a folder (cached by the folder's mtimes); raises BinclsError."""
    p = confinement.confine(folder)  # typed on the page: kept inside BINCLS_DATA_ROOT when it is set
    if not p.is_dir():
        raise BinclsError(f"{p} is not a folder: give the path of a folder of images on this computer.")
    pred = predictor(run)
    stamps = (str(pred.checkpoint), file_stamp(pred.checkpoint), pred.threshold)
    return _predict_folder(str(run.path), stamps, str(p), folder_fingerprint([str(p)]), heatmaps)


EVAL_CELL = "eval_cell"  # (true, predicted) of the confusion-matrix cell clicked; kept as the threshold moves


def checkpoint_runs_or_stop() -> list[RunFolder]:
    """Runs that have a checkpoint; without any, say how to get one and end the page here."""
    candidates = checkpoint_runs()
    if not candidates:
        st.info("No trained model yet: train one on the Train page first.", icon=":material/info:")
        st.page_link("pages/train.py", label="Go to Train", icon=":material/model_training:")
        st.stop()
    return candidates
