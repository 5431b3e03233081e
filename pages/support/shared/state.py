"""The session: defaults on first start, the split it asks for, the run it follows, the way in via app.py."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from bincls.data import data_root
from bincls.data.split import SplitConfig
from bincls.paths import SAMPLE_DATA, runs_dir
from bincls.runs.folder import RunFolder, list_runs
from pages.support.shared import keys, memory


def init_state() -> None:
    """What this browser chose last time (`shared.memory`), else the defaults: the bundled sample."""
    ss = st.session_state
    memory.restore()
    ss.setdefault(keys.DATA_PATHS, [str(SAMPLE_DATA)])
    ss.setdefault(keys.CLASS_NAMES, None)
    ss.setdefault(keys.SPLIT_RATIOS, (0.7, 0.2, 0.1))
    ss.setdefault(keys.SPLIT_SEED, 0)
    ss.setdefault(keys.BROWSE_DIR, browse_start(ss[keys.DATA_PATHS]))
    ss.setdefault(keys.CURRENT_RUN, None)
    ss.setdefault(keys.PREVIEW_SEED, 0)


def browse_start(paths: list[str]) -> str:
    """Where the folder browser first opens: beside the data in use, else the root or home folder."""
    if paths and paths != [str(SAMPLE_DATA)]:
        parent = Path(paths[0]).parent
        if parent.is_dir() and data_root.allowed(parent):
            return str(parent)
    return str(data_root.browse_home())


def split_config() -> SplitConfig:
    t, v, te = st.session_state[keys.SPLIT_RATIOS]
    return SplitConfig(t, v, te, seed=int(st.session_state[keys.SPLIT_SEED]))


def keep_widget_state(widget_keys) -> None:
    """Streamlit forgets a widget's value once its page is left; writing it back keeps it."""
    for key in widget_keys:
        if key in st.session_state:
            st.session_state[key] = st.session_state[key]


def require_app(page_file: str) -> None:
    """Send a page opened without app.py through it.

    On a freshly started server, a direct link (or a refresh) to /train runs pages/train.py on its
    own, in Streamlit's folder-of-pages mode, before app.py has set up the navigation. app.py then
    opens the page that was asked for.
    """
    if not st.session_state.get(keys.APP_BOOTED):
        st.session_state[keys.WANTED_PAGE] = f"pages/{Path(page_file).name}"
        st.switch_page("app.py")


def run_by_id(run_id: str | None) -> RunFolder | None:
    """The run folder with this id in the runs folder, or None when it is gone."""
    if not run_id:
        return None
    path = runs_dir() / run_id
    return RunFolder(path) if (path / "status.json").exists() else None


def current_run() -> RunFolder | None:
    """The run picked or started in this session, else the newest run of the current dataset (a fresh
    session on one dataset does not open on another dataset's run), else None."""
    picked = run_by_id(st.session_state.get(keys.CURRENT_RUN))
    if picked is not None:
        return picked
    data = same_data(st.session_state[keys.DATA_PATHS])
    return next((r for r in list_runs(runs_dir()) if same_data(r.config().get("data") or []) == data), None)


def same_data(paths: list[str]) -> list[str]:
    """Dataset paths in one spelling, to tell whether a run trained on the data in use."""
    return [str(Path(p)) for p in paths]


def data_changed() -> None:
    """Another dataset was chosen: the run followed and the run name typed were about the one before."""
    ss = st.session_state
    ss[keys.CURRENT_RUN] = None
    name = keys.TRAIN_KEYS["name"]
    ss.pop(name, None)  # the Train page's widget is not drawn on the Data page: its value can be dropped
    if name in (ss.get(keys.TRAIN_SAVED) or {}):
        ss[keys.TRAIN_SAVED] = {k: v for k, v in ss[keys.TRAIN_SAVED].items() if k != name}
