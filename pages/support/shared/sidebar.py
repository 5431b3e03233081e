"""The sidebar on every page: the dataset in use and the run being followed (live while it trains)."""

from __future__ import annotations

import streamlit as st

from bincls import BinclsError
from bincls.paths import runs_dir
from bincls.runs.active import active_run
from bincls.runs.summary import summarize
from pages.support.shared import keys, loaders
from pages.support.shared.formatting import STATE_ICONS, data_label, md
from pages.support.shared.state import current_run


def sidebar(live: bool = True) -> None:
    """The dataset and the run in the sidebar; `live` keeps the run's state refreshing while it trains."""
    with st.sidebar:
        st.caption("DATASET")
        st.markdown(f"**{md(data_label(st.session_state[keys.DATA_PATHS]))}**")
        try:
            scan = loaders.current_scan()
            counts = scan.class_counts(usable_only=True)
            st.caption(" · ".join(f"{md(n)}: {c}" for n, c in zip(scan.class_names, counts)))
        except BinclsError:
            st.caption("Not usable yet: see the Data page.")
        st.caption("RUN")
        # Only while a run trains, and not on pages with file uploaders: a fragment rerunning on a
        # timer can drop an upload or a click made at the same moment (streamlit issue 9079).
        if live and active_run(runs_dir()) is not None:
            _run_live()
        else:
            _run()


@st.fragment(run_every=5.0)  # the Train page's own panel follows the run closely; this is a glance
def _run_live() -> None:
    if active_run(runs_dir()) is None:
        st.rerun()  # the run ended: redraw once with the static state, and stop refreshing
    _run()


def _run() -> None:
    """The run's state: the one this session follows, else the newest."""
    run = current_run()
    if run is None:
        st.caption("No run of this dataset yet.")
        return
    s = summarize(run)
    st.markdown(f"{STATE_ICONS.get(s.state, '')} **{s.state}** · {md(s.title)}")
    detail = run.id
    if s.state == "running" and s.epoch:
        detail += f" · epoch {s.epoch}/{run.status().get('epochs') or s.epochs_asked or '?'}"
    st.caption(detail)
    if s.learned_nothing:
        st.caption(":orange[⚠ learned nothing: see Train or Runs]")
